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

use crate::proxy::{ProxyFailure, ProxyUrl};
use crate::{ClientIdentity, Error, ManagerUrl, Options, ServerTrust, tls};

/// The size of each connection's input and output buffer, and the largest header section an
/// answer may have: one TLS record's worth.
const CONNECTION_BUFFER_BYTES: usize = 16 * 1024;

/// One request to the manager.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// `GET` or `POST` (the manager's client API uses no other).
    pub method: &'a http::Method,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body bytes.
    pub body: Vec<u8>,
    /// Its `Retry-After` header, when it sent one that parses.
    pub retry_after: Option<crate::RetryAfter>,
}

/// Moves one request to the manager and its answer back. Implementations map their failures to
/// [`Error`]: `Connect`, `Tls` and `Timeout` for transport failures (which
/// [`Error::certainty`] counts as indefinite), never `Refused` (only an answer can refuse).
pub trait Transport: Send + Sync {
    /// Sends `request` and returns the manager's answer, whatever its status.
    ///
    /// # Errors
    /// When no answer was received.
    fn send(&self, request: &Request<'_>) -> Result<Response, Error>;
}

/// The production transport: HTTPS with ureq over rustls, directly or through a `CONNECT`
/// tunnel of an HTTP proxy ([`Options::proxy`]).
pub struct UreqTransport {
    url: ManagerUrl,
    agent: ureq::Agent,
    options: Options,
    /// The proxy decided when the transport was built; `None`: direct.
    proxy: Option<ProxyUrl>,
}

impl fmt::Debug for UreqTransport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("UreqTransport")
            .field("url", &self.url)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl UreqTransport {
    /// Prepares the transport. Nothing is sent yet. The proxy is decided now, once
    /// ([`crate::ProxySetting::resolve`]: the environment is read here for
    /// [`crate::ProxySetting::FromEnvironment`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when the CA certificates or the client identity cannot be
    /// used by rustls, or the proxy setting (or the proxy variable that decides) is unusable.
    pub fn new(
        url: ManagerUrl,
        trust: &ServerTrust,
        identity: Option<&ClientIdentity>,
        options: &Options,
    ) -> Result<Self, Error> {
        let config = tls::client_config(trust, identity)?;
        let proxy = options.proxy.resolve(&url)?;
        use ureq::unversioned::transport::Connector;
        // The proxy step comes first: with a proxy it opens the TCP connection to the proxy
        // itself (through this same chain, with the proxy removed from the configuration) and
        // returns the tunnel, which TcpConnector passes on; without one it does nothing. TLS with
        // the manager is then made over whichever connection there is, with the manager's host
        // name and our verifier, so the pin or CA is checked against the manager, never the proxy.
        let connector = ProxyTunnelConnector {
            target: tunnel_target(&url),
        }
        .chain(ureq::unversioned::transport::TcpConnector::default())
        .chain(tls::OwnTlsConnector {
            config,
            presents_client_certificate: identity.is_some(),
        });
        let agent_config = ureq::Agent::config_builder()
            // Always explicit: ureq would otherwise read ALL_PROXY/HTTPS_PROXY/HTTP_PROXY itself.
            .proxy(proxy.as_ref().map(ProxyUrl::to_ureq).transpose()?)
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_global(Some(options.request_timeout))
            .max_redirects(0)
            .user_agent(concat!("cte-agent/", env!("CARGO_PKG_VERSION")))
            // ureq's 128 KiB input and output buffers per connection were almost all of the
            // daemon's heap peak (a dhat profile of `vmd`: a renewal check holds two
            // connections, 1.0 of 1.1 MiB), and glibc kept those pages after the check. The
            // manager's requests and answers are a few KiB; a header section must fit in the
            // input buffer, so the header limit is the same size.
            .input_buffer_size(CONNECTION_BUFFER_BYTES)
            .output_buffer_size(CONNECTION_BUFFER_BYTES)
            .max_response_header_size(CONNECTION_BUFFER_BYTES)
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
            proxy,
        })
    }

    /// The proxy this transport goes through; `None`: it connects directly.
    pub fn proxy(&self) -> Option<&ProxyUrl> {
        self.proxy.as_ref()
    }

    fn transport_error(&self, error: ureq::Error) -> Error {
        let error = self.plain_transport_error(error);
        let Some(proxy) = &self.proxy else {
            return error;
        };
        match error {
            // Through a tunnel, a TLS failure is still with the manager; but a proxy that
            // intercepts TLS would show its own certificate, which is worth saying.
            Error::Tls {
                url,
                reason,
                source,
            } => Error::Tls {
                url,
                reason: format!(
                    "{reason} (through the proxy {proxy}; the manager's certificate is checked end \
                     to end, so a proxy that intercepts TLS cannot be used)"
                ),
                source,
            },
            other => other,
        }
    }

    fn plain_transport_error(&self, error: ureq::Error) -> Error {
        let url = self.url.to_string();
        if let ureq::Error::Io(io) = &error
            && let Some(failure) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ProxyFailure>())
        {
            let reason = if failure.timed_out {
                format!(
                    "{} (connect timeout {} s)",
                    failure.reason,
                    self.options.connect_timeout.as_secs()
                )
            } else {
                failure.reason.clone()
            };
            return Error::Proxy {
                url,
                proxy: self
                    .proxy
                    .as_ref()
                    .map_or_else(|| "(none)".to_string(), ToString::to_string),
                status: failure.status,
                reason,
            };
        }
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
            error @ ureq::Error::HostNotFound => Error::Connect {
                url,
                reason: "host name not found".to_string(),
                source: Some(Box::new(error)),
            },
            error @ ureq::Error::ConnectionFailed => Error::Connect {
                url,
                reason: "connection failed".to_string(),
                source: Some(Box::new(error)),
            },
            ureq::Error::Rustls(error) => Error::Tls {
                url,
                reason: error.to_string(),
                source: Some(Box::new(error)),
            },
            error @ ureq::Error::Tls(_) => Error::Tls {
                url,
                reason: error.to_string(),
                source: Some(Box::new(error)),
            },
            ureq::Error::Io(io) => {
                let is_tls = io
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
                if is_tls {
                    Error::Tls {
                        url,
                        reason: io.to_string(),
                        source: Some(Box::new(io)),
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
                        source: Some(Box::new(io)),
                    }
                }
            }
            other => Error::Connect {
                url,
                reason: other.to_string(),
                source: Some(Box::new(other)),
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
            (&http::Method::GET, _) => {
                let mut call = self.agent.get(&url).header("Accept", "application/json");
                if let Some(bearer) = &bearer {
                    call = call.header("Authorization", bearer.as_str());
                }
                call.call()
            }
            (&http::Method::POST, body) => {
                let mut call = self.agent.post(&url).header("Accept", "application/json");
                if let Some(bearer) = &bearer {
                    call = call.header("Authorization", bearer.as_str());
                }
                call.header("Content-Type", "application/json")
                    .send(body.unwrap_or(b"null"))
            }
            (method, _) => {
                return Err(Error::InvalidConfiguration {
                    reason: format!("the manager's client API uses GET and POST, not {method}"),
                });
            }
        };
        let mut response = result.map_err(|error| self.transport_error(error))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(crate::RetryAfter::parse);
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
        Ok(Response {
            status,
            body,
            retry_after,
        })
    }
}

/// `host:port` of the manager, as the CONNECT request names it.
fn tunnel_target(url: &ManagerUrl) -> String {
    let (host, port) = url.host_and_port();
    format!("{host}:{port}")
}

/// ureq's CONNECT step ([`ConnectProxyConnector`](ureq::unversioned::transport::ConnectProxyConnector)),
/// with its failures marked as the proxy's, so that errors name the proxy rather than the
/// manager. It acts only when the agent's configuration has a proxy.
#[derive(Debug)]
struct ProxyTunnelConnector {
    target: String,
}

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for ProxyTunnelConnector
{
    type Out =
        ureq::unversioned::transport::Either<In, Box<dyn ureq::unversioned::transport::Transport>>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        ureq::unversioned::transport::ConnectProxyConnector::default()
            .connect(details, chained)
            .map_err(|error| {
                ureq::Error::Io(std::io::Error::other(ProxyFailure::from_ureq(
                    error,
                    &self.target,
                )))
            })
    }
}
