//! Certificate parsing (x509-cert) and chain checks (rustls-webpki).

use std::time::SystemTime;

use der::Decode;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::Digest;
use x509_cert::ext::pkix::BasicConstraints;

use crate::util::{decimal_from_be_bytes, hex, unix_seconds, upper_hex};

/// A distinguished name in OpenSSL's one-line form (`/C=US/O=Example/CN=Example CA`), in the
/// certificate's order, as CM shows `subject` and `issuer`.
pub(crate) fn openssl_name(name: &x509_cert::name::Name) -> String {
    name.iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn.iter().map(ToString::to_string).collect();
            format!("/{}", parts.join("+"))
        })
        .collect()
}

/// The facts about one certificate that the API reports or checks.
#[derive(Debug, Clone)]
pub(crate) struct CertificateFacts {
    pub(crate) der: CertificateDer<'static>,
    /// OpenSSL's one-line form, as CM shows it: `/C=US/O=Example/CN=Example CA`.
    pub(crate) subject: String,
    pub(crate) issuer: String,
    pub(crate) common_name: Option<String>,
    /// Decimal, as CM shows it.
    pub(crate) serial_number: String,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) is_ca: bool,
}

impl CertificateFacts {
    /// Parses one DER certificate.
    pub(crate) fn parse(der: CertificateDer<'static>) -> Result<Self, String> {
        let certificate = x509_cert::Certificate::from_der(der.as_ref())
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let tbs = certificate.tbs_certificate();
        let common_name = tbs
            .subject()
            .common_name()
            .ok()
            .flatten()
            .map(|name| name.value().into_owned());
        let is_ca = matches!(
            tbs.get_extension::<BasicConstraints>(),
            Ok(Some((_, BasicConstraints { ca: true, .. })))
        );
        let serial_number = decimal_from_be_bytes(tbs.serial_number().as_bytes());
        Ok(CertificateFacts {
            subject: openssl_name(tbs.subject()),
            issuer: openssl_name(tbs.issuer()),
            common_name,
            serial_number,
            not_before: unix_seconds(tbs.validity().not_before.to_system_time()),
            not_after: unix_seconds(tbs.validity().not_after.to_system_time()),
            is_ca,
            der,
        })
    }

    /// Lower-case hex SHA-256 of the DER.
    pub(crate) fn sha256_fingerprint(&self) -> String {
        sha256_fingerprint(&self.der)
    }

    /// Upper-case hex SHA-1 of the DER (as CM shows CA fingerprints).
    pub(crate) fn sha1_fingerprint_upper(&self) -> String {
        upper_hex(&sha1::Sha1::digest(self.der.as_ref()))
    }

    /// Upper-case hex SHA-256 of the DER.
    pub(crate) fn sha256_fingerprint_upper(&self) -> String {
        upper_hex(&sha2::Sha256::digest(self.der.as_ref()))
    }

    /// Upper-case hex SHA-512 of the DER.
    pub(crate) fn sha512_fingerprint_upper(&self) -> String {
        upper_hex(&sha2::Sha512::digest(self.der.as_ref()))
    }

    /// Whether `now` lies inside the validity period.
    pub(crate) fn valid_at(&self, now: SystemTime) -> bool {
        let now = unix_seconds(now);
        self.not_before <= now && now <= self.not_after
    }

    /// The certificate as PEM.
    pub(crate) fn pem(&self) -> String {
        certificate_pem(&self.der)
    }
}

/// Lower-case hex SHA-256 of a DER certificate.
pub(crate) fn sha256_fingerprint(der: &[u8]) -> String {
    hex(&sha2::Sha256::digest(der))
}

/// PEM text for a DER certificate.
pub(crate) fn certificate_pem(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der)
        .expect("PEM encoding of an in-memory certificate cannot fail")
}

/// Reads every `CERTIFICATE` block of a PEM text, in order.
pub(crate) fn parse_pem_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|error| format!("not a PEM certificate: {error}"))?;
    if chain.is_empty() {
        return Err("no PEM CERTIFICATE block found".to_owned());
    }
    Ok(chain)
}

/// Why a chain check failed.
#[derive(Debug)]
pub(crate) enum ChainError {
    /// The certificate does not chain to the CA (or is otherwise unacceptable to webpki).
    NotTrusted(String),
    /// The chain is fine except that the leaf (or a certificate above it) is outside its
    /// validity period at the time of the check.
    OutsideValidity(String),
}

/// Verifies that `leaf` (with `intermediates`) chains to `ca` for client authentication at
/// `now`, using rustls-webpki with the CA as the only trust anchor.
///
/// A chain that fails only because of the time is reported as
/// [`ChainError::OutsideValidity`], after checking that it does chain at the leaf's own
/// `notBefore`, so callers can report "not trusted" and "not valid now" separately.
pub(crate) fn verify_client_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    ca: &CertificateDer<'_>,
    now: SystemTime,
    leaf_not_before: i64,
) -> Result<(), ChainError> {
    let at = |time: SystemTime| {
        UnixTime::since_unix_epoch(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    };
    match verify_at(leaf, intermediates, ca, at(now)) {
        Ok(()) => Ok(()),
        Err(
            error @ (webpki::Error::CertExpired { .. }
            | webpki::Error::CertNotValidYet { .. }
            | webpki::Error::InvalidCertValidity),
        ) => {
            let then = crate::util::from_unix_seconds(leaf_not_before.max(0));
            match verify_at(leaf, intermediates, ca, at(then)) {
                Ok(()) => Err(ChainError::OutsideValidity(format!("{error}"))),
                Err(other) => Err(ChainError::NotTrusted(format!("{other}"))),
            }
        }
        Err(error) => Err(ChainError::NotTrusted(format!("{error}"))),
    }
}

fn verify_at(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    ca: &CertificateDer<'_>,
    time: UnixTime,
) -> Result<(), webpki::Error> {
    let anchor = webpki::anchor_from_trusted_cert(ca)?;
    let end_entity = webpki::EndEntityCert::try_from(leaf)?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
}
