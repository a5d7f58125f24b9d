//! A fault-injecting TLS relay to put between the real agent binaries and the manager emulator,
//! so tests can lose requests and replies the way a real network does.
//!
//! # How it works
//! ```text
//!  agent ──TLS (relay CA, any client cert)──▶ FaultRelay ──new TLS per request──▶ cm-emulator
//!                                             (rules)       (same client chain,
//!                                                            registered key)
//! ```
//! - **Agent side.** The relay listens on `127.0.0.1:0` with a server certificate for
//!   `127.0.0.1` and `localhost` issued by a CA of its own, made at start ([`FaultRelay::ca_pem`],
//!   also written to [`FaultRelay::ca_path`]; [`FaultRelay::web_fingerprint`] for agents that pin
//!   the web certificate). Point the agent at [`FaultRelay::url`] and make it trust that CA
//!   instead of the emulator's. TLS 1.2 and 1.3 are offered. The relay requests a client
//!   certificate and accepts any (or none): it checks the handshake signature, as every TLS
//!   server does, but not the chain. It serves HTTP/1.1 with keep-alive, so several requests
//!   may arrive on one connection.
//! - **Upstream side.** Each request is forwarded over a *new* TLS connection to the upstream
//!   emulator (trusting its web CA), with the same method, path and query, headers (minus the
//!   hop-by-hop ones; `Host` names the upstream) and body. When the agent presented a client
//!   certificate whose leaf was registered with [`FaultRelay::add_identity`] (or
//!   [`FaultRelay::add_identity_dir`]), the upstream connection presents exactly the chain the
//!   agent presented, signed with the registered key; the relay cannot know the agent's key
//!   otherwise. With no client certificate or an unregistered one, it connects without one (the
//!   emulator then answers agent calls with 401 `NCERRClientCertificateRequired`). The answer is
//!   passed back with its status, headers and body.
//! - **Faults.** [`Rule`]s are matched in the order pushed against each request (method,
//!   substring of the path and query, optionally the SHA-256 of the presented leaf). The first
//!   rule that matches and is not spent applies its [`Fault`] and counts one of its
//!   [`Rule::times`]; once they are used up the rule is removed. Requests that match no rule are
//!   relayed faithfully.
//!   - [`Fault::DropRequest`]: not forwarded; the agent's connection is closed without an
//!     answer (the manager never saw the request).
//!   - [`Fault::DropReply`]: forwarded and answered by the manager (which committed it), then
//!     the agent's connection is closed without an answer (the reply was lost).
//!   - [`Fault::DelayReply`]: forwarded, then the answer is held back for the duration (a
//!     timeout after commit when longer than the client's timeout).
//!   - [`Fault::Status503`]: not forwarded; answered with 503 and a small JSON body in the
//!     manager's error shape (`codeDesc` `NCERRServiceUnavailable`).
//!
//!   A connection closed "without an answer" is dropped without a TLS `close_notify`, so the
//!   client sees an unexpected end of stream, as when a network path dies.
//! - **Log.** Every request the relay read is recorded as an [`Exchange`] before the agent gets
//!   anything back (so a client that has its answer, or its error, finds the exchange in
//!   [`FaultRelay::exchanges`]). `status` is what the *emulator* answered: `None` when the
//!   request was not forwarded (drop request, 503) or the upstream call failed
//!   (`upstream_error` says why).
//!
//! # Limits
//! Listens on 127.0.0.1 only and forwards to a loopback upstream only. At most
//! [`MAX_CONNECTIONS`] agent connections at once (further ones are closed at once); request and
//! response bodies up to [`MAX_BODY_BYTES`] (a larger request body closes the connection);
//! handshakes within 10 s; an upstream exchange within 60 s (then the agent's connection is
//! closed); the log keeps the last [`MAX_LOGGED_EXCHANGES`] exchanges. The relay runs on its own
//! thread with a single-threaded tokio runtime and stops (closing every open connection) when
//! the [`FaultRelay`] is dropped.
//!
//! This is a test double: it accepts any client certificate and holds private keys in memory.
//! Never use it outside tests.
//!
//! # Example
//! ```no_run
//! use test_support::relay::{Fault, FaultRelay, Rule};
//!
//! let manager = test_support::Manager::start()?;
//! let relay = FaultRelay::in_front_of(&manager)?;
//! // The next registration reaches the manager but its answer is lost.
//! relay.push_rule(
//!     Rule::new("/api/v1/client-management/clients/", Fault::DropReply).with_method("POST"),
//! );
//! // ... run register_host with URL = relay.url() and CM_CA_FILE = relay.ca_path() ...
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

mod tls;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use tls::{RelayPki, server_config};

/// At most this many agent connections are served at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Largest request or response body relayed.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The log keeps this many of the latest exchanges.
pub const MAX_LOGGED_EXCHANGES: usize = 10_000;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// What to do to a matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Do not forward; close the agent's connection without answering.
    DropRequest,
    /// Forward (the manager commits), then close the agent's connection without answering.
    DropReply,
    /// Forward, then wait this long before answering.
    DelayReply(Duration),
    /// Do not forward; answer 503 with a small JSON body.
    Status503,
}

/// A fault rule. Build with [`Rule::new`] and the `with_*` methods, or as a struct literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The HTTP method to match (case-insensitive); `None` matches any.
    pub method: Option<String>,
    /// A substring of the request's path and query (`""` matches every request).
    pub path_contains: String,
    /// The SHA-256 of the client certificate leaf the agent presented, hex (compared
    /// case-insensitively); `None` matches with or without a certificate.
    pub presented_leaf_sha256: Option<String>,
    /// How many matching requests the rule still applies to; then it is spent and removed.
    pub times: u32,
    /// What to do.
    pub fault: Fault,
}

impl Rule {
    /// A rule for any method on paths containing `path_contains`, applying once.
    pub fn new(path_contains: impl Into<String>, fault: Fault) -> Rule {
        Rule {
            method: None,
            path_contains: path_contains.into(),
            presented_leaf_sha256: None,
            times: 1,
            fault,
        }
    }

    /// Only requests with this method.
    #[must_use]
    pub fn with_method(mut self, method: &str) -> Rule {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests on connections that presented this leaf (SHA-256 of its DER, hex).
    #[must_use]
    pub fn with_presented_leaf_sha256(mut self, sha256_hex: &str) -> Rule {
        self.presented_leaf_sha256 = Some(sha256_hex.to_ascii_lowercase());
        self
    }

    /// Applies to the first `times` matching requests.
    #[must_use]
    pub fn with_times(mut self, times: u32) -> Rule {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path: &str, leaf_sha256: Option<&str>) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
            && self.presented_leaf_sha256.as_deref().is_none_or(|wanted| {
                leaf_sha256.is_some_and(|leaf| wanted.eq_ignore_ascii_case(leaf))
            })
    }
}

/// One request the relay read, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The HTTP method.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// SHA-256 (lower-case hex) of the client certificate leaf the agent presented, if any.
    pub presented_leaf_sha256: Option<String>,
    /// The status the upstream emulator answered; `None` when the request was not forwarded
    /// or the upstream call failed.
    pub status: Option<u16>,
    /// The fault applied, if a rule matched.
    pub fault: Option<Fault>,
    /// Whether the upstream connection presented a client certificate (the agent's leaf was
    /// registered with the relay).
    pub forwarded_certificate: bool,
    /// Why the upstream call failed (the agent's connection was then closed without answer).
    pub upstream_error: Option<String>,
}

/// SHA-256 of a certificate's DER, lower-case hex (what [`Rule::presented_leaf_sha256`] and
/// [`Exchange::presented_leaf_sha256`] hold).
pub fn leaf_sha256(der: &[u8]) -> String {
    base16ct::lower::encode_string(&Sha256::digest(der))
}

/// A running fault-injecting relay; stops on drop. See the [module documentation](self).
pub struct FaultRelay {
    shared: Arc<Shared>,
    url: String,
    local_addr: SocketAddr,
    ca_pem: String,
    ca_path: PathBuf,
    web_fingerprint: String,
    _dir: tempfile::TempDir,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultRelay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultRelay")
            .field("url", &self.url)
            .field("upstream", &self.shared.upstream.authority)
            .finish_non_exhaustive()
    }
}

impl FaultRelay {
    /// Starts a relay in front of a [`crate::Manager`]'s emulator.
    ///
    /// # Errors
    /// As [`FaultRelay::start`].
    pub fn in_front_of(manager: &crate::Manager) -> Result<FaultRelay> {
        let details = manager.details();
        FaultRelay::start(details.url(), details.web_ca_pem())
    }

    /// Starts a relay forwarding to `upstream_url` (`https://HOST:PORT`, a loopback address),
    /// whose web certificate is verified against `upstream_ca_pem`.
    ///
    /// # Errors
    /// When the URL is not a loopback `https://HOST:PORT`, the CA is unusable, or the
    /// certificates, the listener or the thread cannot be made.
    pub fn start(upstream_url: &str, upstream_ca_pem: &str) -> Result<FaultRelay> {
        let upstream = Upstream::new(upstream_url, upstream_ca_pem)?;
        let pki = RelayPki::generate()?;
        let dir = tempfile::tempdir()?;
        let ca_path = dir.path().join("relay-ca.pem");
        std::fs::write(&ca_path, &pki.ca_pem)
            .with_context(|| format!("writing {}", ca_path.display()))?;
        let server_config = server_config(&pki)?;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the relay")?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            exchanges: Mutex::new(Vec::new()),
            identities: Mutex::new(Vec::new()),
        });
        let (stop_sender, stop_receiver) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the relay's runtime")?;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fault-relay".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            serve(listener, server_config, thread_shared, stop_receiver).await;
                        }
                        Err(error) => eprintln!("fault relay: cannot use its listener: {error}"),
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .context("starting the relay thread")?;
        Ok(FaultRelay {
            shared,
            url: format!("https://127.0.0.1:{}", local_addr.port()),
            local_addr,
            ca_pem: pki.ca_pem,
            ca_path,
            web_fingerprint: leaf_sha256(&pki.server_certificate),
            _dir: dir,
            stop: Some(stop_sender),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The relay's CA certificate (PEM): what an agent talking to the relay must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`FaultRelay::ca_pem`] (removed when the relay is dropped).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// SHA-256 of the relay's server certificate, lower-case hex (for agents that pin it).
    pub fn web_fingerprint(&self) -> &str {
        &self.web_fingerprint
    }

    /// Registers a client identity: when an agent presents a chain whose leaf is the first
    /// certificate of `chain_pem`, the upstream connection presents that chain with this key
    /// (unencrypted PKCS#8 DER). A later registration of the same leaf replaces the earlier.
    ///
    /// # Errors
    /// When the PEM holds no certificate or rustls cannot use the key with it.
    pub fn add_identity(&self, chain_pem: &str, pkcs8_key_der: Vec<u8>) -> Result<()> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .context("reading the identity's certificate chain")?;
        let leaf = chain
            .first()
            .context("the identity's PEM holds no certificate")?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_key_der));
        // Check now that rustls can use the key with this certificate.
        self.shared
            .upstream
            .client_config(Some((chain.clone(), key.clone_key())))
            .context("the identity's key cannot be used with its certificate")?;
        let mut identities = lock(&self.shared.identities);
        identities.retain(|identity| identity.leaf.as_ref() != leaf.as_ref());
        identities.push(RelayIdentity {
            leaf: leaf.clone(),
            key,
        });
        Ok(())
    }

    /// Registers the identity of an external certificate set (`client_cert.pem`,
    /// `client_key.pem` encrypted under `passphrase`) in `directory`, loaded with
    /// `cert_loading` at the current time (so the certificate must be valid now; for another
    /// one use [`FaultRelay::add_identity`]).
    ///
    /// # Errors
    /// When the set does not load or [`FaultRelay::add_identity`] fails.
    pub fn add_identity_dir(&self, directory: &Path) -> Result<()> {
        let loaded = cert_loading::load_directory(
            directory,
            &cert_loading::LoadOptions::default(),
            SystemTime::now(),
        )
        .with_context(|| format!("loading the set in {}", directory.display()))?;
        let identity = loaded.identity;
        self.add_identity(&identity.chain_pem(), identity.key().pkcs8_der().to_vec())
    }

    /// Appends a rule (rules are matched in the order pushed). A rule with `times: 0` is
    /// spent already and is not kept.
    pub fn push_rule(&self, rule: Rule) {
        if rule.times > 0 {
            lock(&self.shared.rules).push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        lock(&self.shared.rules).clear();
    }

    /// The rules not yet spent, with the `times` they have left.
    pub fn rules(&self) -> Vec<Rule> {
        lock(&self.shared.rules).clone()
    }

    /// What passed through so far, oldest first.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.shared.exchanges).clone()
    }

    /// Forgets the logged exchanges.
    pub fn clear_exchanges(&self) {
        lock(&self.shared.exchanges).clear();
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct RelayIdentity {
    leaf: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

struct Shared {
    upstream: Upstream,
    rules: Mutex<Vec<Rule>>,
    exchanges: Mutex<Vec<Exchange>>,
    identities: Mutex<Vec<RelayIdentity>>,
}

impl Shared {
    /// The fault of the first live rule matching, counting one of its uses.
    fn take_fault(&self, method: &str, path: &str, leaf_sha256: Option<&str>) -> Option<Fault> {
        let mut rules = lock(&self.rules);
        let index = rules
            .iter()
            .position(|rule| rule.matches(method, path, leaf_sha256))?;
        let fault = rules[index].fault;
        rules[index].times -= 1;
        if rules[index].times == 0 {
            rules.remove(index);
        }
        Some(fault)
    }

    fn log(&self, exchange: Exchange) {
        let mut exchanges = lock(&self.exchanges);
        if exchanges.len() >= MAX_LOGGED_EXCHANGES {
            let excess = exchanges.len() + 1 - MAX_LOGGED_EXCHANGES;
            exchanges.drain(..excess);
        }
        exchanges.push(exchange);
    }

    /// The client key for a presented chain, when its leaf was registered.
    fn key_for(&self, presented: &[CertificateDer<'static>]) -> Option<PrivateKeyDer<'static>> {
        let leaf = presented.first()?;
        lock(&self.identities)
            .iter()
            .find(|identity| identity.leaf.as_ref() == leaf.as_ref())
            .map(|identity| identity.key.clone_key())
    }
}

/// Where requests go.
struct Upstream {
    address: SocketAddr,
    authority: String,
    server_name: ServerName<'static>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl Upstream {
    fn new(url: &str, ca_pem: &str) -> Result<Upstream> {
        let authority = url
            .strip_prefix("https://")
            .with_context(|| format!("the upstream URL {url} is not https://HOST:PORT"))?
            .trim_end_matches('/');
        if authority.contains('/') {
            bail!("the upstream URL {url} has a path");
        }
        let (host, port) = authority
            .rsplit_once(':')
            .with_context(|| format!("the upstream URL {url} has no port"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("the upstream URL {url} has a bad port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let address = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .find(|address| address.ip().is_loopback())
            .with_context(|| format!("the upstream {host} is not a loopback address"))?;
        let server_name = ServerName::try_from(host.to_owned())
            .with_context(|| format!("the upstream host {host} is not a valid TLS name"))?;
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots
                .add(certificate.context("reading the upstream CA")?)
                .context("the upstream CA is unusable")?;
        }
        if roots.is_empty() {
            bail!("the upstream CA PEM holds no certificate");
        }
        Ok(Upstream {
            address,
            authority: authority.to_owned(),
            server_name,
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        })
    }

    fn client_config(
        &self,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<Arc<ClientConfig>, rustls::Error> {
        let builder = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(Arc::clone(&self.roots));
        let mut config = match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Accepts agent connections until `stop` turns true or its sender is dropped; then every open
/// connection is aborted.
async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) if connections.len() < MAX_CONNECTIONS => {
                    connections.spawn(connection(stream, acceptor.clone(), Arc::clone(&shared)));
                }
                // Over the limit: close at once.
                Ok(_) => {}
                // Usually too many open files: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

/// What a request handler knows about its connection.
struct ConnectionContext {
    shared: Arc<Shared>,
    presented: Option<Vec<CertificateDer<'static>>>,
    presented_leaf_sha256: Option<String>,
}

/// The error that makes hyper close the agent's connection without an answer.
fn close_connection(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, why.to_owned())
}

async fn connection(stream: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let presented: Option<Vec<CertificateDer<'static>>> =
        tls.get_ref().1.peer_certificates().map(|chain| {
            chain
                .iter()
                .map(|certificate| certificate.clone().into_owned())
                .collect()
        });
    let presented_leaf_sha256 = presented
        .as_ref()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf_sha256(leaf));
    let context = Arc::new(ConnectionContext {
        shared,
        presented,
        presented_leaf_sha256,
    });
    let service = service_fn(move |request| handle(Arc::clone(&context), request));
    // Ends when the agent closes, or with an error when a handler asked to drop the connection;
    // either way the TLS stream is dropped here without close_notify.
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn handle(
    context: Arc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    // Read the whole request first, as the manager would, whatever happens to it next.
    let body = match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => return Err(close_connection("request body unreadable or too large")),
    };
    let shared = &context.shared;
    let leaf = context.presented_leaf_sha256.clone();
    let fault = shared.take_fault(&method, &path, leaf.as_deref());
    let mut exchange = Exchange {
        method,
        path,
        presented_leaf_sha256: leaf,
        status: None,
        fault,
        forwarded_certificate: false,
        upstream_error: None,
    };
    match fault {
        Some(Fault::DropRequest) => {
            shared.log(exchange);
            return Err(close_connection("fault: drop request"));
        }
        Some(Fault::Status503) => {
            shared.log(exchange);
            return Ok(service_unavailable());
        }
        Some(Fault::DropReply | Fault::DelayReply(_)) | None => {}
    }
    let key = context
        .presented
        .as_deref()
        .and_then(|chain| shared.key_for(chain));
    let identity = match (key, &context.presented) {
        (Some(key), Some(chain)) => Some((chain.clone(), key)),
        _ => None,
    };
    exchange.forwarded_certificate = identity.is_some();
    let forwarded = tokio::time::timeout(
        UPSTREAM_TIMEOUT,
        forward(&shared.upstream, identity, &parts, body),
    )
    .await
    .unwrap_or_else(|_| Err("the upstream call timed out".to_owned()));
    let response = match forwarded {
        Ok(response) => response,
        Err(error) => {
            exchange.upstream_error = Some(error);
            shared.log(exchange);
            return Err(close_connection("upstream failed"));
        }
    };
    exchange.status = Some(response.status().as_u16());
    shared.log(exchange);
    match fault {
        Some(Fault::DropReply) => Err(close_connection("fault: drop reply")),
        Some(Fault::DelayReply(delay)) => {
            tokio::time::sleep(delay).await;
            Ok(response)
        }
        _ => Ok(response),
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) and those the relay sets itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Sends one request to the upstream over a new TLS connection and reads the whole answer.
async fn forward(
    upstream: &Upstream,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, String> {
    let config = upstream
        .client_config(identity)
        .map_err(|error| format!("client TLS configuration: {error}"))?;
    let tcp = TcpStream::connect(upstream.address)
        .await
        .map_err(|error| format!("connecting to {}: {error}", upstream.address))?;
    let _ = tcp.set_nodelay(true);
    let tls = TlsConnector::from(config)
        .connect(upstream.server_name.clone(), tcp)
        .await
        .map_err(|error| format!("TLS handshake with the upstream: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|error| format!("HTTP handshake with the upstream: {error}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(path)
            .header(HOST, upstream.authority.as_str());
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) {
                request = request.header(name, value);
            }
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| format!("building the upstream request: {error}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("upstream request: {error}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|error| format!("upstream response body: {error}"))?
            .to_bytes();
        let mut answer = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) {
                answer = answer.header(name, value);
            }
        }
        answer
            .body(Full::new(body))
            .map_err(|error| format!("building the answer: {error}"))
    }
    .await;
    driver.abort();
    result
}

fn service_unavailable() -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "code": 503,
        "codeDesc": "NCERRServiceUnavailable",
        "message": "service unavailable (fault injected by the test relay)",
    })
    .to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
