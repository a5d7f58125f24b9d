//! Certificate parsing, summaries and the source document's certificate rules.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};

use crate::Error;
use crate::pem::parse_blocks;

const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");
const OID_ANY_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// The two certificate signature algorithms the product accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// `sha256WithRSAEncryption` (1.2.840.113549.1.1.11).
    Sha256WithRsaEncryption,
    /// `ecdsa-with-SHA384` (1.2.840.10045.4.3.3).
    EcdsaWithSha384,
}

impl SignatureAlgorithm {
    /// Recognises an accepted algorithm by OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match oid.to_string().as_str() {
            "1.2.840.113549.1.1.11" => Some(Self::Sha256WithRsaEncryption),
            "1.2.840.10045.4.3.3" => Some(Self::EcdsaWithSha384),
            _ => None,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Sha256WithRsaEncryption => "sha256WithRSAEncryption",
            Self::EcdsaWithSha384 => "ecdsa-with-SHA384",
        })
    }
}

/// A name for signature algorithm OIDs commonly met in refused certificates.
fn signature_algorithm_name(oid: &ObjectIdentifier) -> String {
    let oid_text = oid.to_string();
    let name = match oid_text.as_str() {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        _ => return format!("an unknown algorithm (OID {oid_text})"),
    };
    format!("{name} ({oid_text})")
}

/// A SHA-256 fingerprint of a DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The SHA-256 of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits, with or without `:` separators, in either case.
    pub fn parse(text: &str) -> Option<Self> {
        let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
        if digits.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(digits.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// Upper-case hex with colons, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn to_colon_hex(&self) -> String {
        self.0
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl fmt::Display for Fingerprint {
    /// Lower-case hex without separators.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Fingerprint({self})")
    }
}

/// What an administrator needs to know about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject's single common name.
    pub common_name: String,
    /// The whole subject, RFC 4514 style.
    pub subject: String,
    /// The issuer, RFC 4514 style.
    pub issuer: String,
    /// The serial number in hex.
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// The accepted signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
}

/// Formats a time as RFC 3339 UTC (`2036-01-01T00:00:00Z`), as shown in every message.
pub fn format_time(time: SystemTime) -> String {
    match der::DateTime::from_system_time(time) {
        Ok(date_time) => date_time.to_string(),
        Err(_) => format!("{time:?}"),
    }
}

/// Reads a PEM file's certificate blocks, leaf first.
pub(crate) fn parse_chain(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let blocks = parse_blocks(bytes).map_err(|reason| Error::InvalidPem {
        path: path.to_path_buf(),
        reason,
    })?;
    let mut chain = Vec::with_capacity(blocks.len());
    for block in blocks {
        if block.label != "CERTIFICATE" {
            return Err(Error::NotACertificate {
                path: path.to_path_buf(),
                label: block.label,
            });
        }
        chain.push(CertificateDer::from(block.der.to_vec()));
    }
    Ok(chain)
}

/// Decodes every certificate of a chain (so a broken intermediate is caught too) and returns the
/// decoded leaf.
pub(crate) fn decode_chain(
    path: &Path,
    chain: &[CertificateDer<'_>],
) -> Result<Certificate, Error> {
    let mut leaf = None;
    for (index, der) in chain.iter().enumerate() {
        let certificate =
            Certificate::from_der(der).map_err(|error| Error::InvalidCertificate {
                path: path.to_path_buf(),
                index: index + 1,
                reason: error.to_string(),
            })?;
        if leaf.is_none() {
            leaf = Some(certificate);
        }
    }
    leaf.ok_or_else(|| Error::InvalidPem {
        path: path.to_path_buf(),
        reason: "no certificate found".to_string(),
    })
}

/// Applies the time-independent rules to the leaf and summarises it.
pub(crate) fn summarize(
    path: &Path,
    leaf: &Certificate,
    leaf_der: &[u8],
) -> Result<CertificateSummary, Error> {
    let oid = leaf.signature_algorithm().oid;
    let signature_algorithm =
        SignatureAlgorithm::from_oid(&oid).ok_or_else(|| Error::UnsupportedSignatureAlgorithm {
            path: path.to_path_buf(),
            algorithm: signature_algorithm_name(&oid),
        })?;
    let tbs = leaf.tbs_certificate();
    let subject = tbs.subject().to_string();
    let common_names: Vec<String> = tbs
        .subject()
        .iter()
        .filter(|attribute| attribute.oid == OID_COMMON_NAME)
        .map(|attribute| {
            attribute
                .value
                .decode_as::<DirectoryString>()
                .map(String::from)
                .map_err(|error| Error::InvalidCertificate {
                    path: path.to_path_buf(),
                    index: 1,
                    reason: format!("common name does not decode: {error}"),
                })
        })
        .collect::<Result<_, _>>()?;
    let common_name = match common_names.as_slice() {
        [] => {
            return Err(Error::MissingCommonName {
                path: path.to_path_buf(),
                subject,
            });
        }
        [single] if single.trim().is_empty() => {
            return Err(Error::MissingCommonName {
                path: path.to_path_buf(),
                subject,
            });
        }
        [single] => single.clone(),
        several => {
            return Err(Error::MultipleCommonNames {
                path: path.to_path_buf(),
                subject,
                count: several.len(),
            });
        }
    };
    let key_usage = tbs
        .get_extension::<KeyUsage>()
        .map_err(|error| Error::InvalidExtension {
            path: path.to_path_buf(),
            extension: "keyUsage",
            reason: error.to_string(),
        })?;
    if let Some((_, key_usage)) = key_usage
        && !key_usage.digital_signature()
    {
        return Err(Error::KeyUsageNotAllowed {
            path: path.to_path_buf(),
        });
    }
    let extended_key_usage =
        tbs.get_extension::<ExtendedKeyUsage>()
            .map_err(|error| Error::InvalidExtension {
                path: path.to_path_buf(),
                extension: "extendedKeyUsage",
                reason: error.to_string(),
            })?;
    if let Some((_, usages)) = extended_key_usage
        && !usages
            .0
            .iter()
            .any(|oid| *oid == OID_CLIENT_AUTH || *oid == OID_ANY_EXTENDED_KEY_USAGE)
    {
        return Err(Error::ExtendedKeyUsageNotAllowed {
            path: path.to_path_buf(),
        });
    }
    let serial_hex = tbs
        .serial_number()
        .as_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(CertificateSummary {
        common_name,
        subject,
        issuer: tbs.issuer().to_string(),
        serial_hex,
        not_before: tbs.validity().not_before.to_system_time(),
        not_after: tbs.validity().not_after.to_system_time(),
        signature_algorithm,
        fingerprint: Fingerprint::of(leaf_der),
    })
}

/// The certificate must be inside its validity period at `now`.
pub(crate) fn check_validity(
    path: &Path,
    summary: &CertificateSummary,
    now: SystemTime,
) -> Result<(), Error> {
    if now < summary.not_before {
        return Err(Error::NotYetValid {
            path: path.to_path_buf(),
            not_before: format_time(summary.not_before),
        });
    }
    if now > summary.not_after {
        return Err(Error::Expired {
            path: path.to_path_buf(),
            not_after: format_time(summary.not_after),
        });
    }
    Ok(())
}

/// The DER of the leaf's SubjectPublicKeyInfo, for matching against the private key.
pub(crate) fn public_key_info_der(leaf: &Certificate) -> Vec<u8> {
    leaf.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap_or_default()
}

/// Verifies the chain against trusted CA certificates with rustls-webpki.
pub(crate) fn verify_chain(
    path: &Path,
    chain: &[CertificateDer<'_>],
    trusted: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<(), Error> {
    let untrusted = |reason: String| Error::ChainNotTrusted {
        path: path.to_path_buf(),
        reason,
    };
    let anchors = trusted
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map(|anchor| anchor.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| untrusted(format!("a trusted CA certificate is unusable: {error}")))?;
    let leaf = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|error| untrusted(format!("{error}")))?;
    let seconds = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|duration| duration.as_secs())
        .unwrap_or(0);
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds)),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|error| untrusted(format!("{error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_parses_both_spellings() {
        let plain = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let fingerprint = Fingerprint::parse(plain).unwrap();
        assert_eq!(fingerprint.to_string(), plain);
        assert_eq!(
            Fingerprint::parse(&fingerprint.to_colon_hex()),
            Some(fingerprint)
        );
        assert_eq!(Fingerprint::parse("0011"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn times_print_as_rfc3339() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_082_758_400);
        assert_eq!(format_time(time), "2036-01-01T00:00:00Z");
    }
}
