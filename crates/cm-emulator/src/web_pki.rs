//! The manager's own web PKI: a root CA and the HTTPS server certificate it issues.
//!
//! Made with rcgen (ring, ECDSA P-256) on first start and reused afterwards. The server
//! certificate is re-issued from the same CA when it lacks a requested host name, when it
//! expires within 30 days, or when it no longer chains to the CA.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::Error;
use crate::store::write_atomic;

/// File names inside the state folder.
pub(crate) const WEB_CA_CERTIFICATE: &str = "web-ca.pem";
const WEB_CA_KEY: &str = "web-ca-key.pem";
const WEB_CERTIFICATE: &str = "web-cert.pem";
const WEB_KEY: &str = "web-key.pem";

/// Host names every web certificate covers.
const DEFAULT_HOST_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The loaded web identity.
pub(crate) struct WebIdentity {
    pub(crate) ca_pem: String,
    pub(crate) ca_path: PathBuf,
    pub(crate) certificate: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) fingerprint: String,
}

fn web_error(message: impl std::fmt::Display) -> Error {
    Error::WebCertificate {
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|source| Error::StateIo {
        path: path.to_owned(),
        source,
    })
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    write_atomic(path, contents.as_bytes()).map_err(|source| Error::StateIo {
        path: path.to_owned(),
        source,
    })
}

/// Loads the web CA and server certificate from `state_dir`, creating what is missing.
pub(crate) fn load_or_create(
    state_dir: &Path,
    extra_host_names: &[String],
    now: SystemTime,
) -> Result<WebIdentity, Error> {
    let mut host_names: Vec<String> = DEFAULT_HOST_NAMES
        .iter()
        .map(|&name| name.to_owned())
        .collect();
    for name in extra_host_names {
        if !host_names.contains(name) {
            host_names.push(name.clone());
        }
    }

    let ca_path = state_dir.join(WEB_CA_CERTIFICATE);
    let ca_key_path = state_dir.join(WEB_CA_KEY);
    let (ca_pem, issuer, ca_is_new) = if ca_path.exists() && ca_key_path.exists() {
        let ca_pem = read(&ca_path)?;
        let key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(web_error)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(web_error)?;
        (ca_pem, issuer, false)
    } else {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(web_error)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "cm-emulator");
        name.push(DnType::CommonName, "cm-emulator web CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(10 * 365 * 86_400)).into();
        params.serial_number = Some(random_serial());
        let certificate = params.self_signed(&key).map_err(web_error)?;
        // The key first: a CA certificate without its key would be useless.
        write(&ca_key_path, &key.serialize_pem())?;
        write(&ca_path, &certificate.pem())?;
        let ca_pem = certificate.pem();
        (ca_pem, Issuer::new(params, key), true)
    };
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(ca_pem.as_bytes())
        .map_err(|error| web_error(format!("{}: {error}", ca_path.display())))?;

    let certificate_path = state_dir.join(WEB_CERTIFICATE);
    let key_path = state_dir.join(WEB_KEY);
    if !ca_is_new && certificate_path.exists() && key_path.exists() {
        let existing = load_server_certificate(&certificate_path, &key_path)?;
        if server_certificate_is_usable(&existing.0, &ca_der, &host_names, now) {
            return Ok(identity(ca_pem, ca_path, existing.0, existing.1));
        }
    }

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(web_error)?;
    let mut params = CertificateParams::new(host_names).map_err(web_error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "cm-emulator");
    name.push(DnType::CommonName, "cm-emulator web");
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(397 * 86_400)).into();
    params.serial_number = Some(random_serial());
    params.use_authority_key_identifier_extension = true;
    let certificate = params.signed_by(&key, &issuer).map_err(web_error)?;
    write(&key_path, &key.serialize_pem())?;
    write(&certificate_path, &certificate.pem())?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(identity(
        ca_pem,
        ca_path,
        certificate.der().clone(),
        key_der,
    ))
}

fn identity(
    ca_pem: String,
    ca_path: PathBuf,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> WebIdentity {
    let fingerprint = crate::certs::sha256_fingerprint(&certificate);
    WebIdentity {
        ca_pem,
        ca_path,
        certificate,
        key,
        fingerprint,
    }
}

fn load_server_certificate(
    certificate_path: &Path,
    key_path: &Path,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    use rustls_pki_types::pem::PemObject;
    let certificate = CertificateDer::from_pem_slice(read(certificate_path)?.as_bytes())
        .map_err(|error| web_error(format!("{}: {error}", certificate_path.display())))?;
    let key = PrivateKeyDer::from_pem_slice(read(key_path)?.as_bytes())
        .map_err(|error| web_error(format!("{}: {error}", key_path.display())))?;
    Ok((certificate, key))
}

/// Whether an existing server certificate chains to the CA, covers every host name and
/// stays valid for at least 30 more days.
fn server_certificate_is_usable(
    certificate: &CertificateDer<'_>,
    ca: &CertificateDer<'_>,
    host_names: &[String],
    now: SystemTime,
) -> bool {
    let Ok(anchor) = webpki::anchor_from_trusted_cert(ca) else {
        return false;
    };
    let Ok(end_entity) = webpki::EndEntityCert::try_from(certificate) else {
        return false;
    };
    let in_thirty_days = now + Duration::from_secs(30 * 86_400);
    let time = |time: SystemTime| {
        UnixTime::since_unix_epoch(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    };
    let chains_now_and_later = [now, in_thirty_days].into_iter().all(|at| {
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor),
                &[],
                time(at),
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .is_ok()
    });
    chains_now_and_later
        && host_names.iter().all(|name| {
            ServerName::try_from(name.as_str()).is_ok_and(|server_name| {
                end_entity
                    .verify_is_valid_for_subject_name(&server_name)
                    .is_ok()
            })
        })
}

fn random_serial() -> SerialNumber {
    let mut bytes = crate::util::random_bytes(16);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// File names of the local CA inside the state folder.
const LOCAL_CA_CERTIFICATE: &str = "local-ca.pem";
const LOCAL_CA_KEY: &str = "local-ca-key.pem";

/// Loads the emulator's local CA certificate (PEM) from `state_dir`, creating it (ECDSA
/// P-256, ten years, key mode 0600) on first start.
pub(crate) fn load_or_create_local_ca(state_dir: &Path, now: SystemTime) -> Result<String, Error> {
    let path = state_dir.join(LOCAL_CA_CERTIFICATE);
    let key_path = state_dir.join(LOCAL_CA_KEY);
    if path.exists() && key_path.exists() {
        return read(&path);
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(web_error)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CountryName, "US");
    name.push(DnType::OrganizationName, "cm-emulator");
    name.push(DnType::CommonName, "cm-emulator Root CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(10 * 365 * 86_400)).into();
    params.serial_number = Some(random_serial());
    let certificate = params.self_signed(&key).map_err(web_error)?;
    write(&key_path, &key.serialize_pem())?;
    write(&path, &certificate.pem())?;
    Ok(certificate.pem())
}
