//! The relay's TLS side: its own throw-away CA and server certificate, and a server
//! configuration that asks for (and passes on, unjudged) the agent's client certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use cm_emulator::UnjudgedClientCertificates;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The relay's own CA and server certificate.
pub(super) struct RelayPki {
    pub(super) ca_pem: String,
    pub(super) server_certificate: CertificateDer<'static>,
    server_key: PrivateKeyDer<'static>,
}

impl RelayPki {
    pub(super) fn generate() -> Result<RelayPki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let now = SystemTime::now();
        let not_before = now - Duration::from_secs(3600);
        let not_after = now + Duration::from_secs(30 * 86_400);

        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca_params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "Test fault relay CA");
        ca_params.distinguished_name = name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = not_before.into();
        ca_params.not_after = not_after.into();
        let ca_pem = ca_params.self_signed(&ca_key)?.pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "127.0.0.1");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params.use_authority_key_identifier_extension = true;
        let server_certificate = params.signed_by(&server_key, &issuer)?.der().clone();
        Ok(RelayPki {
            ca_pem,
            server_certificate,
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        })
    }
}

pub(super) fn server_config(pki: &RelayPki) -> Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(UnjudgedClientCertificates::accepting(provider)))
        .with_single_cert(
            vec![pki.server_certificate.clone()],
            pki.server_key.clone_key(),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
