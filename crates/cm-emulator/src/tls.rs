//! The rustls server configuration: the web certificate, the web interface's TLS versions and
//! client-certificate mode, and client-certificate checking against the CAs it trusts.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::Error;

/// CM's interface modes (`mode`), as the Ansible collection 1.0.2 (`plugins/modules/
/// interface_save.py`) and Terraform's provider (`internal/provider/cm/resource_interface.go`)
/// list them.
pub(crate) const MODES: [&str; 9] = [
    "no-tls-pw-opt",
    "no-tls-pw-req",
    "unauth-tls-pw-opt",
    "unauth-tls-pw-req",
    "tls-cert-opt-pw-opt",
    "tls-pw-opt",
    "tls-pw-req",
    "tls-cert-pw-opt",
    "tls-cert-and-pw",
];

/// CM's TLS versions (`minimum_tls_version`, `maximum_tls_version`), as both clients list them.
pub(crate) const TLS_VERSIONS: [&str; 4] = ["tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3"];

/// What the web interface does with a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientCertificates {
    /// Not asked for (`unauth-tls-*`): agents cannot log in with one.
    Ignored,
    /// Asked for, not required (`tls-cert-opt-pw-opt`, the default): administrators connect
    /// without one, agents with theirs.
    Optional,
}

/// A TLS version the emulator speaks (rustls: 1.2 and 1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    Tls12,
    Tls13,
}

/// The web interface's TLS settings, applied together at a web restart.
#[derive(Clone, Debug)]
pub(crate) struct WebTls {
    pub(crate) trusted_cas: Vec<CertificateDer<'static>>,
    pub(crate) client_certificates: ClientCertificates,
    pub(crate) minimum: TlsVersion,
    pub(crate) maximum: TlsVersion,
    /// Cipher suites turned off, by [`cipher_name`].
    pub(crate) disabled_ciphers: Vec<String>,
}

/// One cipher suite the emulator speaks, as an interface's `tls_ciphers` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cipher {
    /// The IANA name (`TLS_AES_256_GCM_SHA384`), as CM shows it.
    pub(crate) name: String,
    /// `0x1302`.
    pub(crate) hex_code: String,
    /// A TLS 1.3 suite (else TLS 1.2).
    pub(crate) tls13: bool,
}

/// The IANA name of a suite (rustls spells TLS 1.3 suites `TLS13_...`).
fn cipher_name(suite: rustls::CipherSuite) -> String {
    let name = format!("{suite:?}");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// Every cipher suite of the emulator's crypto provider, in its order of preference.
pub(crate) fn ciphers() -> Vec<Cipher> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|suite| Cipher {
            name: cipher_name(suite.suite()),
            hex_code: format!("0x{:04x}", u16::from(suite.suite())),
            tls13: suite.version() == &rustls::version::TLS13,
        })
        .collect()
}

/// What `mode` means for the emulator, or why it does not implement it. The modes' meanings
/// are not defined on a Thales page (docs/protocol.md): `no-tls` has no TLS, `unauth-tls` does
/// not ask for a client certificate, `tls-cert-opt` makes it optional, and the others verify a
/// required one.
pub(crate) fn client_certificates(mode: &str) -> Result<ClientCertificates, String> {
    match mode {
        "tls-cert-opt-pw-opt" => Ok(ClientCertificates::Optional),
        "unauth-tls-pw-opt" | "unauth-tls-pw-req" => Ok(ClientCertificates::Ignored),
        "no-tls-pw-opt" | "no-tls-pw-req" => Err(format!(
            "{mode:?} (no TLS) is not implemented by the emulator: its web interface always uses \
             TLS; use tls-cert-opt-pw-opt"
        )),
        "tls-pw-opt" | "tls-pw-req" | "tls-cert-pw-opt" | "tls-cert-and-pw" => Err(format!(
            "{mode:?} (a client certificate required) is not implemented by the emulator: its \
             administrators connect without one; use tls-cert-opt-pw-opt"
        )),
        other => Err(format!(
            "{other:?} is not one of CM's modes: {}",
            MODES.join(", ")
        )),
    }
}

/// A TLS version by CM's name, or why the emulator does not speak it.
pub(crate) fn tls_version(name: &str) -> Result<TlsVersion, String> {
    match name {
        "tls_1_2" => Ok(TlsVersion::Tls12),
        "tls_1_3" => Ok(TlsVersion::Tls13),
        "tls_1_0" | "tls_1_1" => Err(format!(
            "{name:?} is not implemented by the emulator (rustls speaks TLS 1.2 and 1.3 only); \
             use tls_1_2 or tls_1_3"
        )),
        other => Err(format!(
            "{other:?} is not one of CM's TLS versions: {}",
            TLS_VERSIONS.join(", ")
        )),
    }
}

/// Builds the server configuration for `web`: its TLS versions, and client certificates asked
/// for (never required) unless ignored; a presented one is accepted only if it chains to one
/// of `web.trusted_cas`.
pub(crate) fn server_config(
    certificate: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
    web: &WebTls,
) -> Result<Arc<ServerConfig>, Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| !web.disabled_ciphers.contains(&cipher_name(suite.suite())));
    let provider = Arc::new(provider);
    let mut roots = RootCertStore::empty();
    for ca in &web.trusted_cas {
        // A CA that webpki cannot use as an anchor is skipped rather than failing the restart.
        let _ = roots.add(ca.clone());
    }
    let verifier: Arc<dyn ClientCertVerifier> = match web.client_certificates {
        ClientCertificates::Ignored => WebPkiClientVerifier::no_client_auth(),
        ClientCertificates::Optional if roots.is_empty() => {
            Arc::new(UnjudgedClientCertificates::refusing(provider.clone()))
        }
        ClientCertificates::Optional => {
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|error| Error::Tls(rustls::Error::General(error.to_string())))?
        }
    };
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(version, _)| (web.minimum..=web.maximum).contains(version))
    .map(|(_, supported)| supported)
    .collect();
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
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
    /// Starts with the given web settings applied.
    pub(crate) fn new(
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        web: &WebTls,
    ) -> Result<Self, Error> {
        let config = server_config(&certificate, &key, web)?;
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

    /// Rebuilds the configuration with new web settings (a "web restart").
    pub(crate) fn apply(&self, web: &WebTls) -> Result<(), Error> {
        let config = server_config(&self.certificate, &self.key, web)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }
}
