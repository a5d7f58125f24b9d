//! `vmutil -a vmd -d DIR checkcerts`: validate a directory locally and describe it.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::AgentError;

/// What an administrator needs to know about a certificate set or an installed identity.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CertificateReport {
    /// Subject common name.
    pub common_name: String,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Whole days left at "now" (negative when expired).
    pub days_left: i64,
    /// Signature algorithm.
    pub signature_algorithm: String,
    /// Key type and size.
    pub key: String,
    /// How the key file was encrypted (for a directory), or `pem store`.
    pub key_format: String,
    /// SHA-256 fingerprint, lower-case hex.
    pub sha256_fingerprint: String,
    /// Number of certificates in the chain.
    pub chain_length: usize,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

impl CertificateReport {
    /// Describes an identity at `now`.
    pub fn of(
        identity: &cert_loading::Identity,
        key_format: String,
        warnings: Vec<String>,
        now: SystemTime,
    ) -> Self {
        Self::of_certificate(
            identity.certificate(),
            Some(identity.key_algorithm()),
            identity.chain().len(),
            key_format,
            warnings,
            now,
        )
    }

    /// Describes a certificate at `now` from what it shows (its key type read from its public
    /// key): nothing is decrypted.
    pub(crate) fn of_certificate(
        certificate: &cert_loading::CertificateSummary,
        key: Option<cert_loading::KeyAlgorithm>,
        chain_length: usize,
        key_format: String,
        warnings: Vec<String>,
        now: SystemTime,
    ) -> Self {
        Self {
            common_name: certificate.common_name.clone(),
            subject: certificate.subject.clone(),
            issuer: certificate.issuer.clone(),
            not_before: cert_loading::format_rfc3339(certificate.not_before),
            not_after: cert_loading::format_rfc3339(certificate.not_after),
            days_left: days_between(now, certificate.not_after),
            signature_algorithm: certificate.signature_algorithm.to_string(),
            key: key.map_or_else(|| "unknown".to_string(), |key| key.to_string()),
            key_format,
            sha256_fingerprint: certificate.fingerprint.to_string(),
            chain_length,
            warnings,
        }
    }

    /// Human-readable lines.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "common name:         {}\nsubject:             {}\nissuer:              {}\nnot before:          {}\nnot after:           {} ({} days left)\nsignature algorithm: {}\nkey:                 {}\nkey format:          {}\nSHA-256 fingerprint: {}\nchain length:        {}\n",
            self.common_name,
            self.subject,
            self.issuer,
            self.not_before,
            self.not_after,
            self.days_left,
            self.signature_algorithm,
            self.key,
            self.key_format,
            self.sha256_fingerprint,
            self.chain_length
        );
        for warning in &self.warnings {
            text.push_str(&format!("warning:             {warning}\n"));
        }
        text
    }
}

/// Whole days from `now` to `then`: full days left while ahead, and from the first second past
/// `then` on a negative count (-1 during the first day after), so "expired" never reads as 0.
pub(crate) fn days_between(now: SystemTime, then: SystemTime) -> i64 {
    match then.duration_since(now) {
        Ok(ahead) => (ahead.as_secs() / 86_400) as i64,
        Err(behind) => -(behind.duration().as_secs().div_ceil(86_400).max(1) as i64),
    }
}

/// Loads and validates `directory` at `now` without contacting anything.
///
/// # Errors
/// [`AgentError::CertificateSet`] with the refusal.
pub fn check_directory(directory: &Path, now: SystemTime) -> Result<CertificateReport, AgentError> {
    check_directory_against(directory, None, now)
}

/// [`check_directory`], and when `ca_file` is given (PEM, the external CA added on the manager),
/// also that the certificate chain leads to it, as the manager checks at registration.
///
/// # Errors
/// As [`check_directory`]; [`AgentError::InvalidFile`] or [`AgentError::Io`] for an unusable
/// CA file; `ChainNotTrusted` when the chain does not lead to it.
pub fn check_directory_against(
    directory: &Path,
    ca_file: Option<&Path>,
    now: SystemTime,
) -> Result<CertificateReport, AgentError> {
    let trusted_cas = match ca_file {
        Some(path) => {
            let read =
                crate::secrets::read_secret_file(path, "the CA file", "reading the CA file")?;
            let cas = cert_loading::parse_certificate_pem(path, read.text.as_bytes())?;
            Some(cas)
        }
        None => None,
    };
    let options = cert_loading::LoadOptions {
        trusted_cas,
        ..cert_loading::LoadOptions::default()
    };
    let set = cert_loading::load_directory(directory, &options, now)?;
    let warnings = set.warnings.iter().map(ToString::to_string).collect();
    Ok(CertificateReport::of(
        &set.identity,
        set.key_format.to_string(),
        warnings,
        now,
    ))
}
