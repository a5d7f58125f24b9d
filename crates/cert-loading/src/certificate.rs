//! Certificate parsing, summaries and the source document's certificate rules.

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Tagged};
use rustls_pki_types::CertificateDer;
use x509_cert::ext::pkix::name::DirectoryString;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::{Certificate, Version};

use crate::pem::parse_blocks;
use crate::{Error, format_rfc3339};

const OID_COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const OID_CLIENT_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// The DER content of the id-ce arc (2.5.29), under which webpki recognises extensions.
const ID_CE_PREFIX: [u8; 2] = [0x55, 0x1d];
/// The last arc of the id-ce extensions rustls-webpki 0.103 processes in a certificate:
/// keyUsage (15), subjectAltName (17), basicConstraints (19), nameConstraints (30),
/// cRLDistributionPoints (31), extKeyUsage (37). Mirrors `remember_cert_extension` in
/// rustls-webpki-0.103.17/src/cert.rs (lines 309-331); anything else, critical, is
/// `Error::UnsupportedCriticalExtension` there (x509.rs lines 26-31 and 73-77).
const WEBPKI_ID_CE_EXTENSIONS: [u8; 6] = [15, 17, 19, 30, 31, 37];
/// The signed certificate timestamp list (1.3.6.1.4.1.11129.2.4.2), the one extension outside
/// id-ce that webpki processes (cert.rs lines 301-307, x509.rs line 134).
const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

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

pub use cert_vocabulary::Fingerprint;

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

/// A name for extension OIDs, for messages.
fn extension_name(oid: &ObjectIdentifier) -> String {
    let oid_text = oid.to_string();
    let name = match oid_text.as_str() {
        "2.5.29.9" => "subjectDirectoryAttributes",
        "2.5.29.14" => "subjectKeyIdentifier",
        "2.5.29.15" => "keyUsage",
        "2.5.29.16" => "privateKeyUsagePeriod",
        "2.5.29.17" => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        "2.5.29.19" => "basicConstraints",
        "2.5.29.30" => "nameConstraints",
        "2.5.29.31" => "cRLDistributionPoints",
        "2.5.29.32" => "certificatePolicies",
        "2.5.29.33" => "policyMappings",
        "2.5.29.35" => "authorityKeyIdentifier",
        "2.5.29.36" => "policyConstraints",
        "2.5.29.37" => "extendedKeyUsage",
        "2.5.29.46" => "freshestCRL",
        "2.5.29.54" => "inhibitAnyPolicy",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        "1.3.6.1.5.5.7.1.24" => "tlsfeature",
        "1.3.6.1.4.1.11129.2.4.2" => "signedCertificateTimestampList",
        "2.16.840.1.113730.1.1" => "nsCertType",
        "2.16.840.1.113730.1.13" => "nsComment",
        _ => return format!("OID {oid_text}"),
    };
    format!("{name} ({oid_text})")
}

/// What rustls-webpki 0.103 refuses when it parses a certificate (`Cert::from_der`, done by
/// rustls on the client before it uses the certificate, and by the manager's verifier) or
/// checks an end-entity certificate (`check_issuer_independent_properties`), short of time and
/// chain: the manager would refuse such a set, so it is refused here first, with a fix.
fn check_webpki_rules(path: &Path, leaf: &Certificate) -> Result<(), Error> {
    let tbs = leaf.tbs_certificate();
    // cert.rs lines 258-274 (`version3`): only v3 ([0] EXPLICIT INTEGER 2), otherwise
    // `Error::UnsupportedCertVersion`.
    let version = match tbs.version() {
        Version::V3 => None,
        Version::V2 => Some("v2"),
        Version::V1 => Some("v1"),
    };
    if let Some(version) = version {
        return Err(Error::UnsupportedCertificateVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    // cert.rs lines 86-92: tbsCertificate.signature must equal the outer signatureAlgorithm byte
    // for byte, otherwise `Error::SignatureAlgorithmMismatch`.
    if tbs.signature().to_der().ok() != leaf.signature_algorithm().to_der().ok() {
        return Err(Error::SignatureAlgorithmMismatch {
            path: path.to_path_buf(),
            inner: signature_algorithm_name(&tbs.signature().oid),
            outer: signature_algorithm_name(&leaf.signature_algorithm().oid),
        });
    }
    // cert.rs lines 99-102 and 133-155: issuerUniqueID [1] / subjectUniqueID [2] are not
    // accepted (only [3] extensions may follow subjectPublicKeyInfo: `TrailingData`).
    for (present, field) in [
        (tbs.issuer_unique_id().is_some(), "issuerUniqueID"),
        (tbs.subject_unique_id().is_some(), "subjectUniqueID"),
    ] {
        if present {
            return Err(Error::UniqueIdentifierPresent {
                path: path.to_path_buf(),
                field,
            });
        }
    }
    let mut seen: Vec<&ObjectIdentifier> = Vec::new();
    for extension in tbs.extensions().map(Vec::as_slice).unwrap_or_default() {
        let oid = &extension.extn_id;
        let bytes = oid.as_bytes();
        // x509.rs lines 64-82: an id-ce extension is recognised by its last arc when the OID
        // is exactly 2.5.29.x with x < 128.
        let id_ce_arc = (bytes.len() == ID_CE_PREFIX.len() + 1 && bytes.starts_with(&ID_CE_PREFIX))
            .then(|| bytes[ID_CE_PREFIX.len()]);
        let known_id_ce = id_ce_arc.filter(|arc| WEBPKI_ID_CE_EXTENSIONS.contains(arc));
        let is_sct = *oid == OID_SCT_LIST;
        if known_id_ce.is_none() && !is_sct {
            if extension.critical {
                return Err(Error::UnknownCriticalExtension {
                    path: path.to_path_buf(),
                    extension: extension_name(oid),
                });
            }
            continue;
        }
        // x509.rs lines 49-62 (`set_extension_once`): a processed extension twice is
        // `Error::ExtensionValueInvalid`.
        if seen.contains(&oid) {
            return Err(Error::DuplicateExtension {
                path: path.to_path_buf(),
                extension: extension_name(oid),
            });
        }
        seen.push(oid);
        // cert.rs lines 301-307 and 333-341: the value of a processed extension is read whole as
        // one OCTET STRING (SCT list) or one SEQUENCE (all but keyUsage), otherwise `BadDer`.
        let expected = match known_id_ce {
            Some(15) => None,
            Some(_) => Some(der::Tag::Sequence),
            None => Some(der::Tag::OctetString),
        };
        if let Some(expected) = expected {
            let shape = der::asn1::AnyRef::from_der(extension.extn_value.as_bytes())
                .map_err(|error| error.to_string())
                .and_then(|value| {
                    if value.tag() == expected {
                        Ok(())
                    } else {
                        Err(format!("the value is a {}, not a {expected}", value.tag()))
                    }
                });
            if let Err(reason) = shape {
                return Err(Error::InvalidExtension {
                    path: path.to_path_buf(),
                    extension: webpki_extension_static_name(known_id_ce),
                    reason: format!(
                        "{reason}; TLS (rustls/webpki, and so the manager) refuses it. Have the CA reissue the certificate"
                    ),
                });
            }
        }
    }
    // verify_cert.rs lines 437-465 (`check_basic_constraints`): an end-entity certificate with
    // cA TRUE is `Error::CaUsedAsEndEntity`.
    let basic_constraints =
        tbs.get_extension::<BasicConstraints>()
            .map_err(|error| Error::InvalidExtension {
                path: path.to_path_buf(),
                extension: "basicConstraints",
                reason: error.to_string(),
            })?;
    if let Some((_, constraints)) = basic_constraints
        && constraints.ca
    {
        return Err(Error::CaCertificateAsClient {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The name of an extension webpki processes, by its id-ce arc (`None`: the SCT list).
fn webpki_extension_static_name(id_ce_arc: Option<u8>) -> &'static str {
    match id_ce_arc {
        Some(15) => "keyUsage",
        Some(17) => "subjectAltName",
        Some(19) => "basicConstraints",
        Some(30) => "nameConstraints",
        Some(31) => "cRLDistributionPoints",
        Some(37) => "extendedKeyUsage",
        Some(_) => "an id-ce extension",
        None => "signedCertificateTimestampList",
    }
}

/// Applies the time-independent rules to the leaf and summarises it.
pub(crate) fn summarize(
    path: &Path,
    leaf: &Certificate,
    leaf_der: &[u8],
) -> Result<CertificateSummary, Error> {
    check_webpki_rules(path, leaf)?;
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
        [single] if single.chars().any(cert_vocabulary::is_unsafe_for_terminal) => {
            return Err(Error::UnsafeCommonName {
                path: path.to_path_buf(),
                escaped: cert_vocabulary::escape_for_terminal(single),
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
    // verify_cert.rs lines 401-411 and 586-611 (`check_eku`, `KeyUsage::validate` with
    // `KeyUsage::client_auth()`): when the extension is present it must list clientAuth itself;
    // webpki does not honour anyExtendedKeyUsage (2.5.29.37.0), and an empty list is
    // `Error::EmptyEkuExtension`.
    if let Some((_, usages)) = extended_key_usage
        && !usages.0.contains(&OID_CLIENT_AUTH)
    {
        return Err(Error::ExtendedKeyUsageNotAllowed {
            path: path.to_path_buf(),
        });
    }
    let serial_hex = base16ct::lower::encode_string(tbs.serial_number().as_bytes());
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
            not_before: format_rfc3339(summary.not_before),
        });
    }
    if now > summary.not_after {
        return Err(Error::Expired {
            path: path.to_path_buf(),
            not_after: format_rfc3339(summary.not_after),
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

/// The type of the leaf's public key, which the private key must match: read from the
/// certificate alone, so nothing is decrypted to show it. `None` for a type this crate refuses.
pub(crate) fn public_key_algorithm(leaf: &Certificate) -> Option<crate::KeyAlgorithm> {
    use rsa::traits::PublicKeyParts;
    use spki::DecodePublicKey;
    let der = public_key_info_der(leaf);
    if let Ok(key) = rsa::PublicKey::from_public_key_der(&der) {
        return Some(crate::KeyAlgorithm::Rsa {
            bits: key.size() * 8,
        });
    }
    p384::PublicKey::from_public_key_der(&der)
        .ok()
        .map(|_| crate::KeyAlgorithm::EcP384)
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

    /// DER surgery on a committed good certificate, for the webpki rules openssl cannot break.
    mod surgery {
        use der::asn1::AnyRef;
        use der::{Decode, Encode, Reader, SliceReader};

        pub fn good_leaf() -> Vec<u8> {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../testdata/pki/leaf-certs/rsa3072-host1.pem");
            let pem = std::fs::read(&path).unwrap();
            super::super::parse_chain(&path, &pem).unwrap()[0].to_vec()
        }

        /// The TLVs inside a constructed TLV.
        pub fn children(tlv: &[u8]) -> Vec<Vec<u8>> {
            let outer = AnyRef::from_der(tlv).unwrap();
            let mut reader = SliceReader::new(outer.value()).unwrap();
            let mut items = Vec::new();
            while !reader.is_finished() {
                items.push(reader.decode::<AnyRef<'_>>().unwrap().to_der().unwrap());
            }
            items
        }

        pub fn tlv(tag: u8, items: &[Vec<u8>]) -> Vec<u8> {
            let content: Vec<u8> = items.concat();
            let mut out = vec![tag];
            match content.len() {
                length @ 0..=0x7f => out.push(length as u8),
                length @ 0x80..=0xff => out.extend([0x81, length as u8]),
                length => out.extend([0x82, (length >> 8) as u8, length as u8]),
            }
            out.extend(content);
            out
        }

        /// Rebuilds the certificate after `change` edits the tbsCertificate's fields.
        pub fn edit_tbs(change: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
            let mut certificate = children(&good_leaf());
            let mut tbs = children(&certificate[0]);
            change(&mut tbs);
            certificate[0] = tlv(0x30, &tbs);
            tlv(0x30, &certificate)
        }
    }

    fn refusal(der: &[u8]) -> Error {
        let certificate = Certificate::from_der(der).unwrap();
        summarize(Path::new("client_cert.pem"), &certificate, der).unwrap_err()
    }

    #[test]
    fn the_unedited_certificate_passes() {
        let der = surgery::edit_tbs(|_| {});
        assert_eq!(der, surgery::good_leaf());
        let certificate = Certificate::from_der(&der).unwrap();
        summarize(Path::new("client_cert.pem"), &certificate, &der).unwrap();
    }

    #[test]
    fn a_tbs_signature_algorithm_unlike_the_outer_one_is_refused() {
        // sha384WithRSAEncryption in the signed part; the outer field says sha256WithRSAEncryption.
        let der = surgery::edit_tbs(|tbs| {
            tbs[2] = vec![
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05,
                0x00,
            ];
        });
        let error = refusal(&der);
        assert_eq!(error.kind(), "SignatureAlgorithmMismatch", "{error}");
        assert!(
            error.to_string().contains("sha384WithRSAEncryption"),
            "{error}"
        );
    }

    #[test]
    fn a_unique_identifier_is_refused() {
        // issuerUniqueID [1] IMPLICIT BIT STRING, just before the extensions.
        let der = surgery::edit_tbs(|tbs| tbs.insert(7, vec![0x81, 0x02, 0x00, 0x01]));
        let error = refusal(&der);
        assert_eq!(error.kind(), "UniqueIdentifierPresent", "{error}");
        assert!(error.to_string().contains("issuerUniqueID"), "{error}");
    }

    #[test]
    fn a_repeated_extended_key_usage_is_refused() {
        let der = surgery::edit_tbs(|tbs| {
            let explicit = tbs.last_mut().unwrap();
            let mut extensions = surgery::children(&surgery::children(explicit)[0]);
            let eku_oid = [0x06, 0x03, 0x55, 0x1d, 0x25];
            let eku = extensions
                .iter()
                .find(|extension| extension.windows(5).any(|window| window == eku_oid))
                .unwrap()
                .clone();
            extensions.push(eku);
            *explicit = surgery::tlv(0xa3, &[surgery::tlv(0x30, &extensions)]);
        });
        let error = refusal(&der);
        assert_eq!(error.kind(), "DuplicateExtension", "{error}");
        assert!(
            error.to_string().contains("extendedKeyUsage (2.5.29.37)"),
            "{error}"
        );
    }

    #[test]
    fn a_non_critical_unknown_extension_is_accepted_and_a_critical_one_is_not() {
        let with_extension = |critical: bool| {
            surgery::edit_tbs(|tbs| {
                let explicit = tbs.last_mut().unwrap();
                let mut extensions = surgery::children(&surgery::children(explicit)[0]);
                // 1.3.6.1.4.1.55555.1 with an empty SEQUENCE value.
                let mut extension = vec![vec![
                    0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x01,
                ]];
                if critical {
                    extension.push(vec![0x01, 0x01, 0xff]);
                }
                extension.push(vec![0x04, 0x02, 0x30, 0x00]);
                extensions.push(surgery::tlv(0x30, &extension));
                *explicit = surgery::tlv(0xa3, &[surgery::tlv(0x30, &extensions)]);
            })
        };
        let der = with_extension(false);
        let certificate = Certificate::from_der(&der).unwrap();
        summarize(Path::new("client_cert.pem"), &certificate, &der).unwrap();
        let error = refusal(&with_extension(true));
        assert_eq!(error.kind(), "UnknownCriticalExtension", "{error}");
        assert!(error.to_string().contains("1.3.6.1.4.1.55555.1"), "{error}");
    }
}
