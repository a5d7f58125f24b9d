//! A blocking HTTPS client for the manager's REST API, as `docs/protocol.md` describes it.
//!
//! [`ManagerClient`] registers a host with a registration token, logs in with the client
//! certificate, reads its own status (the heartbeat), renews its certificate and uploads log
//! records. It presents a [`ClientIdentity`] (certificate chain and decrypted PKCS#8 key, held
//! in memory only) as its TLS client certificate, and verifies the manager by [`ServerTrust`]:
//! CA certificates, or the SHA-256 fingerprint of the manager's web certificate (pinning, as the
//! product does). There is no way to switch verification off.
//!
//! # Errors
//! One [`Error`] type separates what an operator acts on differently: the configuration is
//! unusable ([`Error::InvalidConfiguration`]), the manager could not be reached or TLS failed
//! ([`Error::Connect`], [`Error::Tls`], [`Error::Timeout`]), the manager refused
//! ([`Error::Refused`] with status, `codeDesc` and message), or it answered something unexpected
//! ([`Error::Unexpected`], with a bounded piece of the body).
//!
//! A failing HTTP proxy is [`Error::Proxy`], naming the proxy (password hidden) and, when it
//! refused the tunnel, its status (403, 407).
//!
//! # Proxies
//! [`Options::proxy`] ([`ProxySetting`]): the environment as curl reads it for https URLs
//! (`https_proxy`, `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY`, `no_proxy`/`NO_PROXY`; the default),
//! none, or an explicit `http://` proxy. Through a proxy the client opens a `CONNECT` tunnel and
//! runs TLS with the manager inside it, so the manager is verified exactly as without one. See
//! [`proxy`].
//!
//! # Timeouts and retries
//! Connecting times out after [`Options::connect_timeout`] (default 5 s) and a whole request after
//! [`Options::request_timeout`] (default 20 s). Calls that are idempotent by the protocol
//! (login, status, fingerprint, and the register and renew calls, which the manager accepts
//! again unchanged) are retried after connection failures and 502/503/504 answers, with backoff
//! ([`Options::retries`], default 2 more attempts after 0.5 s and 1 s). Timeouts are not retried,
//! so a manager that stops answering costs at most one request timeout plus the connect retries.
//! Response bodies are read up to [`Options::max_response_bytes`] (default 1 MiB).
//!
//! # What this crate does not do
//! It knows nothing of the keystore or of certificate files (callers pass DER and PKCS#8 bytes),
//! writes nothing to disk and never logs: secrets (token, key, bearer) stay in memory, and the
//! bearer is zeroized on drop.
//!
//! # Example
//! ```no_run
//! use cm_client::{ManagerClient, ManagerUrl, Options, ServerTrust};
//! let url = ManagerUrl::parse("cm.example.com")?;
//! let ca = std::fs::read("/etc/cm-ca.pem").unwrap();
//! let client = ManagerClient::new(url, ServerTrust::from_pem(&ca)?, None, Options::default())?;
//! println!("web certificate: {}", client.webcert_fingerprint()?);
//! # Ok::<(), cm_client::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
pub mod proxy;
mod tls;
pub mod transport;
mod url;
mod wire;

use std::fmt;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use cert_vocabulary::Fingerprint;
pub use error::{Cause, Certainty, Error, RetryAfter};
pub use proxy::{ProxySetting, ProxyUrl};
pub use transport::{Request, Response, Transport, UreqTransport};
pub use url::ManagerUrl;
pub use wire::{ClientRecord, LogRecord, RegisterRequest, os_type};

/// How the manager's TLS certificate is verified.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ServerTrust {
    /// The chain must lead to one of these CA certificates and name the host.
    CaCertificates(Vec<CertificateDer<'static>>),
    /// The manager's web certificate must have exactly this SHA-256 fingerprint.
    Sha256Fingerprint(Fingerprint),
}

impl ServerTrust {
    /// CA certificates from PEM text.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when the text holds no certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| Error::InvalidConfiguration {
                reason: format!("the manager CA file is not PEM certificates: {error}"),
            })?;
        if certificates.is_empty() {
            return Err(Error::InvalidConfiguration {
                reason: "the manager CA file holds no certificate".to_string(),
            });
        }
        Ok(Self::CaCertificates(certificates))
    }
}

/// The client certificate chain and its decrypted key, presented in the TLS handshake.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key as unencrypted PKCS#8 DER, zeroized on drop.
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .field("key_pkcs8_der", &"..")
            .finish()
    }
}

/// Timeouts, limits and retries.
#[derive(Clone, Debug)]
pub struct Options {
    /// Time allowed to establish the TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, TLS handshake and response included.
    pub request_timeout: Duration,
    /// Largest response body read.
    pub max_response_bytes: u64,
    /// Extra attempts for idempotent calls after transient failures.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// The HTTP proxy to the manager (default: the environment, as curl reads it for https
    /// URLs; see [`proxy`]).
    pub proxy: ProxySetting,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_response_bytes: 1024 * 1024,
            retries: 2,
            initial_backoff: Duration::from_millis(500),
            proxy: ProxySetting::FromEnvironment,
        }
    }
}

/// A bearer token from a login. Zeroized on drop; `Debug` does not show it.
pub struct Session {
    jwt: Zeroizing<String>,
    /// The client id the session belongs to.
    pub client_id: String,
    /// Lifetime announced by the manager, in seconds.
    pub duration_seconds: u64,
}

impl Session {
    /// Builds a session from a bearer obtained elsewhere (for example, the bearer of the
    /// current identity, used on a connection that presents a new certificate during renewal).
    pub fn bearer(&self) -> &str {
        &self.jwt
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Session")
            .field("client_id", &self.client_id)
            .field("jwt", &"..")
            .finish()
    }
}

/// A blocking client for one manager, with one TLS identity (or none).
pub struct ManagerClient {
    url: ManagerUrl,
    transport: Box<dyn Transport>,
    options: Options,
}

impl fmt::Debug for ManagerClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ManagerClient")
            .field("url", &self.url)
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    Idempotent,
    Once,
}

impl ManagerClient {
    /// Prepares a client. Nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when the CA certificates or the client identity cannot be
    /// used by rustls (for example a key that does not match its certificate or an RSA key ring
    /// refuses).
    pub fn new(
        url: ManagerUrl,
        trust: ServerTrust,
        identity: Option<&ClientIdentity>,
        options: Options,
    ) -> Result<Self, Error> {
        let transport = UreqTransport::new(url.clone(), &trust, identity, &options)?;
        Ok(Self::with_transport(url, Box::new(transport), options))
    }

    /// A client over another [`Transport`] (for example an in-process manager in a
    /// simulation). `options` still decides the retries; timeouts and the body limit are the
    /// transport's business.
    pub fn with_transport(
        url: ManagerUrl,
        transport: Box<dyn Transport>,
        options: Options,
    ) -> Self {
        Self {
            url,
            transport,
            options,
        }
    }

    /// The manager's base URL.
    pub fn url(&self) -> &ManagerUrl {
        &self.url
    }

    /// Registers this host (no bearer; the TLS client certificate must be the one in the body).
    ///
    /// # Errors
    /// See [`Error`]; refusals carry the manager's `codeDesc` (e.g. `NCERRRegTokenExpired`).
    pub fn register(&self, request: &RegisterRequest) -> Result<ClientRecord, Error> {
        self.call_for_record(
            &http::Method::POST,
            "/api/v1/client-management/clients/",
            None,
            Some(request),
            Retry::Idempotent,
        )
    }

    /// Logs in with the client certificate (`client_credential` grant).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn login(&self, client_id: &str) -> Result<Session, Error> {
        let request = wire::ClientCredentialRequest {
            grant_type: "client_credential".to_string(),
            client_id: client_id.to_string(),
        };
        let response: wire::TokenResponse = self.call(
            &http::Method::POST,
            "/api/v1/auth/tokens/",
            None,
            Some(&request),
            Retry::Idempotent,
        )?;
        Ok(Session {
            jwt: Zeroizing::new(response.jwt),
            client_id: client_id.to_string(),
            duration_seconds: response.duration,
        })
    }

    /// Reads this client's record (the heartbeat).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn status(&self, session: &Session) -> Result<ClientRecord, Error> {
        self.call_for_record::<()>(
            &http::Method::GET,
            "/api/v1/client-management/self/client",
            Some(session),
            None,
            Retry::Idempotent,
        )
    }

    /// Renews to the certificate chain `new_chain_pem`. Call it on a client whose TLS identity is
    /// the NEW certificate and key (which proves possession), with the session of a login made
    /// with the CURRENT identity.
    ///
    /// # Errors
    /// See [`Error`]; a changed common name is refused with `NCERRCommonNameMismatch`.
    pub fn renew(&self, session: &Session, new_chain_pem: &str) -> Result<ClientRecord, Error> {
        let request = wire::RenewRequest {
            ext_cert: new_chain_pem.to_string(),
        };
        self.call_for_record(
            &http::Method::POST,
            "/api/v1/client-management/self/client/renew",
            Some(session),
            Some(&request),
            Retry::Idempotent,
        )
    }

    /// Uploads log records; returns how many the manager accepted. Not retried (a retry could
    /// duplicate records).
    ///
    /// # Errors
    /// See [`Error`].
    pub fn upload_records(&self, session: &Session, records: &[LogRecord]) -> Result<usize, Error> {
        let upload = wire::LogUpload {
            records: records.to_vec(),
        };
        let response: wire::LogUploadResponse = self.call(
            &http::Method::POST,
            "/api/v1/audit/client-records",
            Some(session),
            Some(&upload),
            Retry::Once,
        )?;
        Ok(response.accepted)
    }

    /// The SHA-256 fingerprint of the manager's web certificate as the manager reports it.
    ///
    /// # Errors
    /// See [`Error`].
    pub fn webcert_fingerprint(&self) -> Result<String, Error> {
        let response: wire::FingerprintResponse = self.call::<(), _>(
            &http::Method::GET,
            "/api/v1/client-management/webcert-fingerprint/",
            None,
            None,
            Retry::Idempotent,
        )?;
        Ok(response.fingerprint)
    }

    /// A call answered by a client record, checked before anyone stores or prints it: a bad
    /// field is an unexpected answer (exit 5) naming the field.
    fn call_for_record<B: Serialize>(
        &self,
        method: &http::Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<ClientRecord, Error> {
        let record: ClientRecord = self.call(method, path, session, body, retry)?;
        match record.problem() {
            None => Ok(record),
            Some((field, problem)) => Err(Error::Unexpected {
                status: 200,
                body_excerpt: format!(
                    "the client record's `{field}` cannot be used: {problem}; nothing was stored"
                ),
            }),
        }
    }

    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &http::Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<T, Error> {
        let attempts = match retry {
            Retry::Idempotent => self.options.retries + 1,
            Retry::Once => 1,
        };
        let mut backoff = self.options.initial_backoff;
        let mut attempt = 1;
        // The first attempt whose outcome is unknown: a later refusal does not undo it.
        let mut uncertain: Option<Error> = None;
        loop {
            match self.call_once(method, path, session, body) {
                Err(error) if attempt < attempts && is_transient(&error) => {
                    if uncertain.is_none() && error.certainty() == Certainty::Indefinite {
                        uncertain = Some(error);
                    }
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
                Err(refusal @ Error::Refused { .. }) if uncertain.is_some() => {
                    return Err(Error::RefusedAfterUncertainAttempt {
                        first: Box::new(uncertain.unwrap_or(Error::Unexpected {
                            status: 0,
                            body_excerpt: String::new(),
                        })),
                        refusal: Box::new(refusal),
                    });
                }
                result => return result,
            }
        }
    }

    fn call_once<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &http::Method,
        path: &str,
        session: Option<&Session>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let json = match body {
            Some(body) => Some(Zeroizing::new(serde_json::to_vec(body).map_err(
                |error| Error::InvalidConfiguration {
                    reason: format!("cannot encode the request: {error}"),
                },
            )?)),
            None => None,
        };
        let request = Request {
            method,
            path,
            bearer: session.map(Session::bearer),
            json_body: json.as_deref().map(Vec::as_slice),
        };
        let response = self.transport.send(&request)?;
        throttled(&response)?;
        decode_answer(response.status, &response.body)
    }
}

/// Turns a status and a body (already bounded by the size limit) into the typed answer or an
/// [`Error`]: a 2xx body must decode as `T`; any other status is a refusal when the body has the
/// manager's error shape, else (5xx included) an unexpected answer with an excerpt.
/// A 429, or a 503 with `Retry-After`: the manager asks to come back later
/// ([`Error::Throttled`]). A 503 without the header stays a plain 5xx (retried here if the call
/// is idempotent).
fn throttled(response: &transport::Response) -> Result<(), Error> {
    let asks_to_wait =
        response.status == 429 || (response.status == 503 && response.retry_after.is_some());
    if !asks_to_wait {
        return Ok(());
    }
    let message = match serde_json::from_slice::<wire::ErrorBody>(&response.body) {
        Ok(body) => printable(&body.message, MESSAGE_LIMIT),
        Err(_) => excerpt(&response.body),
    };
    Err(Error::Throttled {
        status: response.status,
        retry_after: response.retry_after,
        message,
    })
}

fn decode_answer<T: DeserializeOwned>(status: u16, bytes: &[u8]) -> Result<T, Error> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(bytes).map_err(|error| Error::Unexpected {
            status,
            body_excerpt: format!("{}: {}", printable(&error.to_string(), 200), excerpt(bytes)),
        });
    }
    // Only a 4xx is a refusal of this request. A 5xx is the manager failing, even in its error
    // shape: it counts as unreachable (exit 5, retried with the short backoff), not as refused.
    match serde_json::from_slice::<wire::ErrorBody>(bytes) {
        Ok(body) if (400..500).contains(&status) => Err(Error::Refused {
            status,
            code_desc: printable(&body.code_desc, 100),
            message: printable(&body.message, MESSAGE_LIMIT),
            request_id: printable(&body.request_id, 100),
        }),
        _ => Err(Error::Unexpected {
            status,
            body_excerpt: excerpt(bytes),
        }),
    }
}

/// The response decoding, exposed for the fuzz targets in `fuzz/` and their stable smoke test
/// (as rustls exposes `rustls::internal` to its fuzzers). Not part of the supported API.
#[doc(hidden)]
pub mod fuzzing {
    use super::{ClientRecord, Error, decode_answer, wire};

    fn every_answer(status: u16, body: &[u8]) -> [Result<(), Error>; 4] {
        [
            decode_answer::<ClientRecord>(status, body).map(drop),
            decode_answer::<wire::TokenResponse>(status, body).map(drop),
            decode_answer::<wire::LogUploadResponse>(status, body).map(drop),
            decode_answer::<wire::FingerprintResponse>(status, body).map(drop),
        ]
    }

    /// Decodes `body` with `status` as every answer type this client reads (client record,
    /// login token, log-upload count, web-certificate fingerprint). Returns how many decoded
    /// successfully; it must never panic.
    pub fn decode_every_answer(status: u16, body: &[u8]) -> usize {
        every_answer(status, body)
            .iter()
            .filter(|result| result.is_ok())
            .count()
    }

    /// The messages of the errors those decodings give, as they would be shown and logged.
    pub fn error_messages(status: u16, body: &[u8]) -> Vec<String> {
        every_answer(status, body)
            .into_iter()
            .filter_map(Result::err)
            .map(|error| error.to_string())
            .collect()
    }
}

fn is_transient(error: &Error) -> bool {
    match error {
        Error::Connect { .. } => true,
        // The proxy unreachable or failing upstream: worth another try; a refusal (403, 407) is
        // its policy and will not change by itself.
        Error::Proxy { status, .. } => status.is_none_or(|status| (502..=504).contains(&status)),
        Error::Refused { status, .. } | Error::Unexpected { status, .. } => {
            matches!(status, 502..=504)
        }
        _ => false,
    }
}

/// The longest manager message kept in a [`Error::Refused`], in characters.
const MESSAGE_LIMIT: usize = 500;

fn excerpt(bytes: &[u8]) -> String {
    printable(&String::from_utf8_lossy(bytes), 200)
}

/// At most `limit` characters of text from the manager, with control characters (line breaks,
/// escape sequences) written as escapes, so that an answer cannot forge log lines or drive the
/// terminal, and cannot make a log line arbitrarily long.
fn printable(text: &str, limit: usize) -> String {
    let mut clean = String::new();
    let mut length = 0;
    for character in text.chars() {
        let escaped = character.escape_default();
        let width = if character.is_control() {
            escaped.len()
        } else {
            1
        };
        if length + width > limit {
            clean.push('…');
            break;
        }
        length += width;
        if character.is_control() {
            clean.extend(escaped);
        } else {
            clean.push(character);
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_text_is_bounded_and_cannot_forge_log_lines() {
        let body = format!(
            r#"{{"codeDesc":"NCERRX\n","message":"bad\n2026-01-01 [VMD] [INFO] forged\u001b[31m{}"}}"#,
            "x".repeat(5000)
        );
        let error = decode_answer::<ClientRecord>(403, body.as_bytes()).unwrap_err();
        let text = error.to_string();
        assert!(!text.contains(['\n', '\r', '\u{1b}']), "{text}");
        assert!(
            text.chars().count() < 700,
            "{} characters",
            text.chars().count()
        );
        let error = decode_answer::<ClientRecord>(200, b"<html>\n<body>\r\n").unwrap_err();
        assert!(!error.to_string().contains(['\n', '\r']), "{error}");
    }

    #[test]
    fn debug_of_requests_and_errors_holds_no_secret() {
        let request = RegisterRequest {
            reg_token: "SECRET-TOKEN-4711".to_string(),
            cert: "-----BEGIN CERTIFICATE-----".to_string(),
            client_type: "CTE".to_string(),
            name: "host1".to_string(),
            description: String::new(),
            os_type: String::new(),
            client_version: String::new(),
        };
        let body = serde_json::to_vec(&request).unwrap();
        let wire = transport::Request {
            method: &http::Method::POST,
            path: "/api/v1/client-management/clients/",
            bearer: Some("SECRET-BEARER-4711"),
            json_body: Some(&body),
        };
        let identity = ClientIdentity {
            chain: Vec::new(),
            key_pkcs8_der: Zeroizing::new(b"SECRET-KEY-4711".to_vec()),
        };
        let error = Error::RefusedAfterUncertainAttempt {
            first: Box::new(Error::Timeout {
                url: "https://cm".to_string(),
                seconds: 20,
            }),
            refusal: Box::new(Error::Refused {
                status: 401,
                code_desc: "NCERRInvalidRegToken".to_string(),
                message: "Invalid token".to_string(),
                request_id: "r1".to_string(),
            }),
        };
        for shown in [
            format!("{request:?}"),
            format!("{wire:?}"),
            format!("{identity:?}"),
            format!("{error:?}"),
            error.to_string(),
        ] {
            assert!(!shown.contains("SECRET"), "{shown}");
        }
    }

    #[test]
    fn session_debug_hides_the_bearer() {
        let session = Session {
            jwt: Zeroizing::new("secret-bearer".to_string()),
            client_id: "c1".to_string(),
            duration_seconds: 300,
        };
        assert!(!format!("{session:?}").contains("secret-bearer"));
    }
}
