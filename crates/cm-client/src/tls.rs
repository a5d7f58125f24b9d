//! The rustls configuration and the ureq connector that uses it.
//!
//! ureq builds its own rustls configuration and offers no hook for a custom server-certificate
//! verifier, which fingerprint pinning needs. So this module makes the rustls `ClientConfig`
//! itself and plugs it into ureq through the small `Connector` seam of ureq's `unversioned`
//! transport API (outside ureq's semver promise; ureq is pinned to `~3.5` for that reason).

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use cert_vocabulary::Fingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

use crate::{ClientIdentity, Error, ServerTrust};

/// Builds the rustls client configuration: one crypto provider (ring), the server trust, and the
/// client certificate if any. Loading the key here also catches keys that ring cannot use, which
/// would otherwise make ureq panic in the middle of a request.
pub(crate) fn client_config(
    trust: &ServerTrust,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::InvalidConfiguration {
            reason: format!("TLS protocol versions: {error}"),
        })?;
    let builder = match trust {
        ServerTrust::CaCertificates(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(ca.clone())
                    .map_err(|error| Error::InvalidConfiguration {
                        reason: format!("manager CA certificate is unusable: {error}"),
                    })?;
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| Error::InvalidConfiguration {
                    reason: format!("manager CA certificates: {error}"),
                })?;
            builder.with_webpki_verifier(verifier)
        }
        ServerTrust::Sha256Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier {
                fingerprint: *fingerprint,
                algorithms: provider.signature_verification_algorithms,
            })),
    };
    let config = match identity {
        Some(identity) => {
            let unusable = |error: rustls::Error| Error::InvalidConfiguration {
                reason: format!("the client key cannot be used for TLS: {error}"),
            };
            // Load the signing key from a borrowed view of the zeroizing buffer: rustls's own
            // `with_client_auth_cert` wants an owned copy of the key, which it drops unzeroized.
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(&identity.key_pkcs8_der[..]));
            let signing_key =
                rustls::crypto::ring::sign::any_supported_type(&key).map_err(unusable)?;
            let certified = rustls::sign::CertifiedKey::new(identity.chain.clone(), signing_key);
            certified.keys_match().map_err(unusable)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                certified,
            )))
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts exactly one server certificate, named by the SHA-256 of its DER, as the product does
/// when it pins the manager's web certificate. Handshake signatures are still verified, so the
/// server must hold that certificate's key.
#[derive(Debug)]
struct FingerprintVerifier {
    fingerprint: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Fingerprint::of(end_entity.as_ref());
        if actual == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the manager's certificate has SHA-256 fingerprint {actual}, not the pinned {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A ureq connector that wraps the TCP transport in rustls with our own configuration.
pub(crate) struct OwnTlsConnector {
    pub(crate) config: Arc<ClientConfig>,
    /// Whether `config` presents a client certificate; only then can a close right after the
    /// handshake mean that the manager refused the certificate.
    pub(crate) presents_client_certificate: bool,
}

impl fmt::Debug for OwnTlsConnector {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("OwnTlsConnector")
    }
}

impl<In: Transport> Connector<In> for OwnTlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("the manager URL has no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("the manager host is not a valid TLS server name"))?;
        let mut connection = ClientConnection::new(self.config.clone(), name)?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        connection.complete_io(&mut socket)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned {
                conn: connection,
                sock: socket,
            },
            fresh: true,
            presents_client_certificate: self.presents_client_certificate,
        })))
    }
}

/// A rustls stream as a ureq transport.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    /// No application data has been read yet on this connection.
    fresh: bool,
    presents_client_certificate: bool,
}

impl TlsTransport {
    /// Explains an I/O failure on the connection. In TLS 1.3 the client's side of the handshake
    /// is complete before the server has checked the client certificate, so a manager that
    /// refuses the certificate answers the first request with an alert and closes the connection;
    /// the write of that request may then fail with a broken pipe or a reset before the alert was
    /// read. Pick up the alert if it is there, so the error says what the manager objected to.
    fn explain(&mut self, error: std::io::Error) -> ureq::Error {
        use std::io::ErrorKind;
        let closed = matches!(
            error.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        );
        if !closed || !self.fresh {
            return error.into();
        }
        for _ in 0..4 {
            match self.stream.conn.read_tls(&mut self.stream.sock) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if let Err(tls) = self.stream.conn.process_new_packets() {
                        return ureq::Error::Rustls(tls);
                    }
                }
            }
        }
        if self.presents_client_certificate {
            return ureq::Error::Tls(
                "the manager closed the connection right after the TLS handshake, before any \
                 answer: it most likely did not accept this client certificate (is its issuing CA \
                 in the web interface's trusted CAs, and was the web server restarted since?)",
            );
        }
        error.into()
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        if let Err(error) = self.stream.write_all(output) {
            return Err(self.explain(error));
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = match self.stream.read(input) {
            Ok(amount) => amount,
            Err(error) => return Err(self.explain(error)),
        };
        self.buffers.input_appended(amount);
        if amount > 0 {
            self.fresh = false;
        }
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
