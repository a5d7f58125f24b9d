//! The seam under [`ManagerClient`](crate::ManagerClient): one request out, one answer back.
//!
//! [`ManagerClient`](crate::ManagerClient) encodes requests, retries idempotent calls and decodes
//! answers; a [`Transport`] only moves bytes. The production transport is [`UreqTransport`]
//! (ureq over this crate's own rustls connector, with the manager verified by CA file or pinned
//! fingerprint and the client certificate presented in the handshake). Simulations plug in a
//! transport that hands the request to an in-process manager together with the client
//! certificate the connection would present, so the same client code runs against the same
//! manager logic without sockets, and faults (lost replies, timeouts, 5xx) can be injected
//! deterministically.

use std::fmt;

use zeroize::Zeroizing;

use crate::{ClientIdentity, Error, ManagerUrl, Options, ServerTrust, tls};

/// One request to the manager.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path, starting with `/api/`.
    pub path: &'a str,
    /// The bearer token, without the `Bearer ` prefix.
    pub bearer: Option<&'a str>,
    /// The JSON body of a `POST`.
    pub json_body: Option<&'a [u8]>,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bearer and the body (a registration token, a certificate) are not shown.
        formatter
            .debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("bearer", &self.bearer.map(|_| ".."))
            .field("json_body_len", &self.json_body.map(<[u8]>::len))
            .finish()
    }
}

/// The manager's answer: any HTTP status with its body (already bounded by the transport).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// Moves one request to the manager and its answer back. Implementations map their failures to
/// [`Error`]: `Connect`, `Tls` and `Timeout` for transport failures (which
/// [`Error::outcome`] counts as indefinite), never `Refused` (only an answer can refuse).
pub trait Transport: Send + Sync {
    /// Sends `request` and returns the manager's answer, whatever its status.
    ///
    /// # Errors
    /// When no answer was received.
    fn send(&self, request: &Request<'_>) -> Result<Response, Error>;
}

/// The production transport: HTTPS with ureq over rustls.
pub struct UreqTransport {
    url: ManagerUrl,
    agent: ureq::Agent,
    options: Options,
}

impl fmt::Debug for UreqTransport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("UreqTransport")
            .field("url", &self.url)
            .finish()
    }
}

impl UreqTransport {
    /// Prepares the transport. Nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when the CA certificates or the client identity cannot be
    /// used by rustls.
    pub fn new(
        url: ManagerUrl,
        trust: &ServerTrust,
        identity: Option<&ClientIdentity>,
        options: &Options,
    ) -> Result<Self, Error> {
        let config = tls::client_config(trust, identity)?;
        use ureq::unversioned::transport::Connector;
        let connector =
            ureq::unversioned::transport::TcpConnector::default().chain(tls::OwnTlsConnector {
                config,
                presents_client_certificate: identity.is_some(),
            });
        let agent_config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.request_timeout))
            .max_redirects(0)
            .user_agent(concat!("cte-agent/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(
            agent_config,
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Ok(Self {
            url,
            agent,
            options: options.clone(),
        })
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        let url = self.url.to_string();
        match error {
            // Say the timeout that expired: connection setup (TCP and TLS handshake) has its own.
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                Error::Timeout {
                    url,
                    seconds: self.options.connect_timeout.as_secs(),
                }
            }
            ureq::Error::Timeout(_) => Error::Timeout {
                url,
                seconds: self.options.request_timeout.as_secs(),
            },
            ureq::Error::HostNotFound => Error::Connect {
                url,
                reason: "host name not found".to_string(),
            },
            ureq::Error::ConnectionFailed => Error::Connect {
                url,
                reason: "connection failed".to_string(),
            },
            ureq::Error::Rustls(error) => Error::Tls {
                url,
                reason: error.to_string(),
            },
            ureq::Error::Tls(reason) => Error::Tls {
                url,
                reason: reason.to_string(),
            },
            ureq::Error::Io(io) => {
                let is_tls = io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
                if is_tls {
                    Error::Tls {
                        url,
                        reason: io.to_string(),
                    }
                } else if io.kind() == std::io::ErrorKind::TimedOut {
                    Error::Timeout {
                        url,
                        seconds: self.options.request_timeout.as_secs(),
                    }
                } else {
                    Error::Connect {
                        url,
                        reason: io.to_string(),
                    }
                }
            }
            other => Error::Connect {
                url,
                reason: other.to_string(),
            },
        }
    }
}

impl Transport for UreqTransport {
    fn send(&self, request: &Request<'_>) -> Result<Response, Error> {
        let url = format!("{}{}", self.url, request.path);
        let bearer = request
            .bearer
            .map(|bearer| Zeroizing::new(format!("Bearer {bearer}")));
        let result = match (request.method, request.json_body) {
            ("GET", _) => {
                let mut call = self.agent.get(&url).header("Accept", "application/json");
                if let Some(bearer) = &bearer {
                    call = call.header("Authorization", bearer.as_str());
                }
                call.call()
            }
            (_, body) => {
                let mut call = self.agent.post(&url).header("Accept", "application/json");
                if let Some(bearer) = &bearer {
                    call = call.header("Authorization", bearer.as_str());
                }
                call.header("Content-Type", "application/json")
                    .send(body.unwrap_or(b"null"))
            }
        };
        let mut response = result.map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.options.max_response_bytes)
            .read_to_vec()
            .map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(limit) => Error::Unexpected {
                    status,
                    body_excerpt: format!("response body over the {limit}-byte limit"),
                },
                other => self.transport_error(other),
            })?;
        Ok(Response { status, body })
    }
}
