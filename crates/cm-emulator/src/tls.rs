//! The rustls server configuration: the web certificate, and client-certificate checking
//! against the external CAs the web interface trusted at its last restart.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::Error;

/// The one crypto provider the emulator uses (ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a server configuration that requests (but does not require) a client certificate,
/// and accepts a presented one only if it chains to one of `trusted_cas`.
pub(crate) fn server_config(
    certificate: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
    trusted_cas: &[CertificateDer<'static>],
) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for ca in trusted_cas {
        // A CA that webpki cannot use as an anchor is skipped rather than failing the restart.
        let _ = roots.add(ca.clone());
    }
    let verifier: Arc<dyn ClientCertVerifier> = if roots.is_empty() {
        Arc::new(UnjudgedClientCertificates::refusing(provider.clone()))
    } else {
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|error| Error::Tls(rustls::Error::General(error.to_string())))?
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![certificate.clone()], key.clone_key())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client-certificate verifier that does not judge chains: it asks for a client certificate
/// (so clients behave as with a real manager), lets connections without one through, and then
/// either refuses every presented certificate ([`UnjudgedClientCertificates::refusing`]: the
/// emulator while its web interface trusts no external CA, since nothing can vouch for one and
/// `WebPkiClientVerifier` cannot be built on an empty root store) or accepts every presented
/// chain ([`UnjudgedClientCertificates::accepting`]: test servers that pass the certificate on
/// to the emulator, which judges it). Either way the handshake signature is verified, proving
/// the client holds the leaf's key. Never accept unjudged certificates in a real server.
#[derive(Debug)]
pub struct UnjudgedClientCertificates {
    provider: Arc<CryptoProvider>,
    accept: bool,
}

impl UnjudgedClientCertificates {
    /// Refuses every presented certificate.
    pub fn refusing(provider: Arc<CryptoProvider>) -> Self {
        Self {
            provider,
            accept: false,
        }
    }

    /// Accepts every presented chain (for test servers in front of the emulator only).
    pub fn accepting(provider: Arc<CryptoProvider>) -> Self {
        Self {
            provider,
            accept: true,
        }
    }
}

impl ClientCertVerifier for UnjudgedClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.accept {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The current server configuration, swapped whole when the web interface restarts.
/// Each accepted connection takes the configuration current at that moment.
pub(crate) struct TlsSwitch {
    current: std::sync::RwLock<Arc<ServerConfig>>,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl TlsSwitch {
    /// Starts with the given trusted CAs applied.
    pub(crate) fn new(
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        trusted_cas: &[CertificateDer<'static>],
    ) -> Result<Self, Error> {
        let config = server_config(&certificate, &key, trusted_cas)?;
        Ok(TlsSwitch {
            current: std::sync::RwLock::new(config),
            certificate,
            key,
        })
    }

    /// The configuration for a new connection.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Rebuilds the configuration with a new trusted CA list (a "web restart").
    pub(crate) fn apply(&self, trusted_cas: &[CertificateDer<'static>]) -> Result<(), Error> {
        let config = server_config(&self.certificate, &self.key, trusted_cas)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }
}
