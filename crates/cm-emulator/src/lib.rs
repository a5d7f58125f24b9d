//! A local emulator of the CipherTrust Manager (CM) REST API used for external-certificate
//! enrollment and renewal, for tests, demos and development of the agent.
//!
//! It serves exactly the contract in `docs/protocol.md` over HTTPS (rustls with ring, hyper 1):
//! the admin endpoints (password grant, external CAs, the web interface's trusted CA list and
//! its restart, registration tokens, clients, client log records) and the agent endpoints
//! (registration with an external certificate, client-credential login, status heartbeat,
//! self renewal with proof of possession, log upload, web certificate fingerprint).
//!
//! # Main types
//! - [`EmulatorConfig`]: where to listen, the state folder, the admin password, extra host
//!   names for the web certificate, a [`Clock`], and when a renewed client's previous
//!   certificate is retired ([`RetireOldCertificate`], an invented behaviour).
//! - [`Emulator::start`]: the blocking entry point for synchronous tests and the xtask. It runs
//!   a tokio runtime on a background thread and returns a [`RunningEmulator`], which knows the
//!   URL, the web CA and the admin password, and stops the server on
//!   [`RunningEmulator::shutdown`] or drop.
//! - [`Emulator::bind`] and [`Emulator::run_until`]: the async entry point for the
//!   `cm-emulator` binary (bind first, print the URL, then serve until a signal).
//! - [`EmulatorDetails`]: what a client needs to talk to it.
//! - [`RunningEmulator::in_process`] / [`Emulator::in_process`]: an [`InProcessHandle`] that
//!   answers [`InProcessRequest`]s on the calling thread through the same request handling
//!   as the HTTPS server (for deterministic simulations); only the TLS handshake is skipped,
//!   the caller names the client certificate chain.
//!
//! # The state folder
//! On first start the emulator creates, in the state folder:
//! - `web-ca.pem` (the web CA certificate clients verify the server with) and
//!   `web-ca-key.pem`, `web-cert.pem`, `web-key.pem` (ECDSA P-256, keys mode 0600). Later
//!   starts reuse them; the server certificate (SANs `localhost`, `127.0.0.1`, `::1` and
//!   [`EmulatorConfig::extra_hostnames`]) is re-issued from the same CA when a host name is
//!   missing or it expires within 30 days.
//! - `admin-password` (mode 0600) with a generated password, unless one is configured.
//! - `local-ca.pem` and `local-ca-key.pem` (mode 0600): the local CA listed at
//!   `/api/v1/ca/local-cas`.
//! - `objects/`: one JSON file per external CA, registration token, client and log upload,
//!   plus `web-interface.json`, each written atomically (temporary file, fsync, rename, fsync
//!   of the folder). State therefore survives restarts; bearer tokens do not (they live in
//!   memory for their 300 seconds, so clients log in again after a restart).
//!
//! # TLS and client certificates
//! The server requests a client certificate but accepts connections without one. A presented
//! certificate must chain to an external CA that was in the web interface's trusted list
//! (and allows client authentication) at the last web restart
//! (`POST /api/v1/system/services/restart` with `"services":["web"]`, applied after `delay`
//! seconds, default 5, 0 = immediately) or at start-up; otherwise the handshake fails. Until
//! the first restart after a change, the previous list stays in force, as on CM. The TLS layer
//! always uses the real clock; the [`Clock`] only affects the API's own checks (token expiry,
//! certificate validity, bearer expiry, time stamps).
//!
//! # Bearer tokens
//! Logins (`POST /api/v1/auth/tokens`, password, refresh-token and client-credential grants;
//! JSON or form-encoded) answer with a real JWT, ES256-signed by a key pair made at start
//! ([`EmulatorDetails::jwt_public_key`]), with `iss`, `sub`, `iat`, `nbf`, `exp`, `jti` and an
//! `account` claim. Bearers are checked by signature, expiry and their session (a deleted
//! client's bearers stop working). A client's bearer is bound to the TLS client certificate
//! it was obtained with on every `self` endpoint except the renewal, whose connection presents
//! the new certificate.
//!
//! # What it deliberately does not do
//! - The local CA ([`EmulatorConfig`]'s state folder, `local-ca.pem`) issues nothing: no CSR
//!   handling, no revocation, no domains, no users other than `admin`, no HTTP/2. Only the
//!   endpoints of `docs/protocol.md` exist; everything else is a 404 in CM's error shape.
//! - Not meant for exposure to untrusted networks: it is a test double. It does bound what
//!   grows (connections, sessions, log records) and times out slow or idle connections.
//!   Secrets (admin password, tokens, keys) are never logged.
//!
//! # Numbers worth knowing
//! Request bodies over 1 MiB get 413. Lists honour `skip` and `limit` (default 10, as CM) and
//! the filters of `docs/protocol.md`; unknown filters are ignored. Registration tokens without
//! `max_clients` (or with 0) have no limit; without `lifetime` (or with `""`) they never
//! expire; without `ca_id` they are bound to the local CA. Errors carry `codeDesc` as CM writes
//! it (`"NCERRResourceNotFound: Resource not found"`); the numeric codes 5, 9, 15 and 16 are
//! CM's, the others invented: match on the name.
//!
//! # Example
//! ```
//! use cm_emulator::{Emulator, EmulatorConfig};
//!
//! # fn main() -> Result<(), cm_emulator::Error> {
//! let state = tempfile::tempdir().expect("a temporary folder");
//! let emulator = Emulator::start(EmulatorConfig {
//!     admin_password: Some("test-only password".to_owned()),
//!     ..EmulatorConfig::new(state.path())
//! })?;
//! assert!(emulator.url().starts_with("https://127.0.0.1:"));
//! assert!(emulator.web_ca_path().exists());
//! println!("manager at {}, CA in {}", emulator.url(), emulator.web_ca_path().display());
//! // curl --cacert <web_ca_path> -d '{"grant_type":"password","username":"admin",
//! //      "password":"test-only password"}' <url>/api/v1/auth/tokens/
//! emulator.shutdown();
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod certs;
mod error;
mod in_process;
mod server;
mod settings;
mod state;
mod store;
mod tls;
mod util;
mod web_pki;

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::Error;
pub use in_process::{InProcessHandle, InProcessRequest, InProcessResponse};
pub use settings::{
    ParseRetireOldCertificateError, RetireOldCertificate, Throttle, TrustedCaChanges,
};
pub use tls::UnjudgedClientCertificates;

/// The source of "now" for the API's checks. Tests can shift it; the default is
/// [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// How to run an emulator. Build with [`EmulatorConfig::new`] and struct update syntax.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The state folder (created if missing).
    pub state_dir: PathBuf,
    /// The `admin` password. `None`: read `<state_dir>/admin-password`, or generate one and
    /// write it there (mode 0600).
    pub admin_password: Option<String>,
    /// Host names or IP addresses the web certificate should cover besides `localhost`,
    /// `127.0.0.1` and `::1`.
    pub extra_hostnames: Vec<String>,
    /// The clock for the API's checks.
    pub clock: Arc<dyn Clock>,
    /// When a client's previous certificate stops logging in after a self renewal (an
    /// invented behaviour; see [`RetireOldCertificate`]).
    pub retire_old_certificate: RetireOldCertificate,
    /// When trusted-CA changes take effect (see [`TrustedCaChanges`]).
    pub trusted_ca_changes: TrustedCaChanges,
    /// Most open connections served at once; further ones wait in the kernel's queue.
    pub max_connections: usize,
    /// Most live bearer sessions (and as many refresh tokens); beyond it the oldest is
    /// dropped (and its bearer refused).
    pub max_sessions: usize,
    /// Most client log records kept; beyond it the oldest uploads are dropped (counted in the
    /// list's `dropped`).
    pub max_client_records: usize,
    /// Request headers must arrive within this time (hyper's header-read timeout).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this much idleness.
    pub idle_timeout: Duration,
    /// Refuse (409) to register or renew to a certificate that is already another client's
    /// current or previous certificate: one certificate is at most one client (invented).
    pub one_client_per_certificate: bool,
    /// Answer a share of agent requests with 429/503 and `Retry-After` ([`Throttle`]).
    pub throttle: Option<Throttle>,
    /// The web interface's `port` as the API shows it: 443 by default, as on a real manager
    /// (whose web interface listens there). The emulator listens on `listen` whatever this says.
    pub reported_web_port: u16,
    /// Append a JSON line per durable change of the state to this file (created if missing):
    /// its time, the object's path under `<state_dir>/objects` and its new content (`null`
    /// when removed), written after the change is on disk and before the request is
    /// answered. For crash explorers that need the manager's state as of any moment
    /// (`bins/vmd/tests/powerloss.rs`). `None` (the default): no log.
    pub change_log: Option<PathBuf>,
}

impl EmulatorConfig {
    /// Listens on `127.0.0.1:0` with state in `state_dir`, a generated password, no extra
    /// host names, the system clock and [`RetireOldCertificate::OnFirstLogin`].
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        EmulatorConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            state_dir: state_dir.into(),
            admin_password: None,
            extra_hostnames: Vec::new(),
            clock: Arc::new(SystemClock),
            retire_old_certificate: RetireOldCertificate::default(),
            trusted_ca_changes: TrustedCaChanges::default(),
            max_connections: 512,
            max_sessions: 10_000,
            max_client_records: 100_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            one_client_per_certificate: true,
            reported_web_port: 443,
            throttle: None,
            change_log: None,
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EmulatorConfig")
            .field("listen", &self.listen)
            .field("state_dir", &self.state_dir)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("extra_hostnames", &self.extra_hostnames)
            .field("clock", &self.clock)
            .field("retire_old_certificate", &self.retire_old_certificate)
            .field("trusted_ca_changes", &self.trusted_ca_changes)
            .field("max_connections", &self.max_connections)
            .field("max_sessions", &self.max_sessions)
            .field("max_client_records", &self.max_client_records)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field(
                "one_client_per_certificate",
                &self.one_client_per_certificate,
            )
            .field("throttle", &self.throttle)
            .field("reported_web_port", &self.reported_web_port)
            .field("change_log", &self.change_log)
            .finish()
    }
}

/// What a client needs to talk to a running emulator.
#[derive(Clone)]
pub struct EmulatorDetails {
    url: String,
    local_addr: SocketAddr,
    state_dir: PathBuf,
    web_ca_pem: String,
    web_ca_path: PathBuf,
    web_cert_sha256_fingerprint: String,
    admin_password: String,
    jwt_public_key: Vec<u8>,
}

impl fmt::Debug for EmulatorDetails {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("EmulatorDetails")
            .field("url", &self.url)
            .field("web_ca_path", &self.web_ca_path)
            .field(
                "web_cert_sha256_fingerprint",
                &self.web_cert_sha256_fingerprint,
            )
            .finish_non_exhaustive()
    }
}

impl EmulatorDetails {
    /// The base URL, for example `https://127.0.0.1:8443` (API paths start with `/api`). An
    /// unspecified listen address (`0.0.0.0`, `::`) is shown as the loopback address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The web CA certificate (PEM) that issued the server certificate.
    pub fn web_ca_pem(&self) -> &str {
        &self.web_ca_pem
    }

    /// `<state_dir>/web-ca.pem`.
    pub fn web_ca_path(&self) -> &Path {
        &self.web_ca_path
    }

    /// SHA-256 of the web server certificate's DER, lower-case hex without separators.
    pub fn web_cert_sha256_fingerprint(&self) -> &str {
        &self.web_cert_sha256_fingerprint
    }

    /// The `admin` password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The public key that verifies the emulator's bearer tokens (ES256 JWTs): an uncompressed
    /// SEC1 P-256 point, `04 ‖ x ‖ y` (65 bytes). New at every start.
    pub fn jwt_public_key(&self) -> &[u8] {
        &self.jwt_public_key
    }
}

/// An emulator whose state is loaded and whose socket is bound, ready to serve.
pub struct Emulator {
    listener: TcpListener,
    api: Arc<api::Api>,
    tls: Arc<tls::TlsSwitch>,
    details: EmulatorDetails,
    limits: server::ConnectionLimits,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Emulator")
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Loads or creates the state folder and web certificates, and binds the listen address.
    /// Connections are queued by the kernel from here on and served once
    /// [`Emulator::run_until`] runs. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`Error::StateIo`] / [`Error::StateCorrupt`] for the state folder,
    /// [`Error::WebCertificate`] / [`Error::Tls`] for the web certificate, [`Error::Bind`]
    /// when the address cannot be bound.
    pub async fn bind(config: EmulatorConfig) -> Result<Emulator, Error> {
        let state_dir = config.state_dir.clone();
        store::create_private_dir(&state_dir)?;
        let admin_password = match config.admin_password {
            Some(password) => password,
            None => load_or_create_admin_password(&state_dir)?,
        };
        let identity =
            web_pki::load_or_create(&state_dir, &config.extra_hostnames, SystemTime::now())?;
        let local_ca = load_local_ca(&state_dir)?;
        let state = state::State::load(
            &state_dir,
            local_ca,
            state::Limits {
                max_sessions: config.max_sessions,
                max_client_records: config.max_client_records,
            },
            config.change_log.as_deref(),
        )?;
        // Starting the emulator is a web (re)start: apply the web interface's settings.
        let tls = Arc::new(tls::TlsSwitch::new(
            identity.certificate.clone(),
            identity.key.clone_key(),
            &state.web_tls(),
        )?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                address: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            address: config.listen,
            source,
        })?;
        let api = Arc::new(api::Api::new(
            state,
            api::ApiSettings {
                clock: config.clock,
                admin_password: admin_password.clone(),
                web_fingerprint: identity.fingerprint.clone(),
                web_port: config.reported_web_port,
                retire_old_certificate: config.retire_old_certificate,
                trusted_ca_changes: config.trusted_ca_changes,
                one_client_per_certificate: config.one_client_per_certificate,
                throttle: config.throttle,
            },
            Arc::clone(&tls),
            tokio::runtime::Handle::current(),
        ));
        let details = EmulatorDetails {
            url: url_for(local_addr),
            local_addr,
            state_dir,
            web_ca_pem: identity.ca_pem,
            web_ca_path: identity.ca_path,
            web_cert_sha256_fingerprint: identity.fingerprint,
            admin_password,
            jwt_public_key: api.jwt_public_key(),
        };
        Ok(Emulator {
            listener,
            api,
            tls,
            details,
            limits: server::ConnectionLimits {
                max_connections: config.max_connections,
                header_read_timeout: config.header_read_timeout,
                idle_timeout: config.idle_timeout,
            },
        })
    }

    /// What a client needs to connect.
    pub fn details(&self) -> &EmulatorDetails {
        &self.details
    }

    /// The base URL, for example `https://127.0.0.1:8443`.
    pub fn url(&self) -> &str {
        self.details.url()
    }

    /// A handle that answers requests in-process through the same API as the HTTPS server
    /// (see [`InProcessHandle::handle`]). It stays usable while and after
    /// [`Emulator::run_until`] runs.
    pub fn in_process(&self) -> InProcessHandle {
        InProcessHandle::new(Arc::clone(&self.api))
    }

    /// Serves until `shutdown` completes, then lets open connections finish their current
    /// request (for up to two seconds) and returns.
    pub async fn run_until<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send,
    {
        let (stop_sender, stop_receiver) = watch::channel(false);
        let server = server::serve(
            self.listener,
            api::router(self.api),
            self.tls,
            stop_receiver,
            self.limits,
        );
        tokio::pin!(server);
        tokio::select! {
            () = &mut server => return,
            () = shutdown => {}
        }
        let _ = stop_sender.send(true);
        server.await;
    }

    /// Starts an emulator on a background thread with its own tokio runtime and returns once
    /// it accepts connections. Usable from synchronous code (tests, xtask); not from inside
    /// an async task that must not block.
    ///
    /// # Errors
    /// As [`Emulator::bind`], plus [`Error::Runtime`] when the thread or runtime cannot be
    /// created and [`Error::ThreadPanicked`] when start-up panicked.
    pub fn start(config: EmulatorConfig) -> Result<RunningEmulator, Error> {
        let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
        let (stop_sender, mut stop_receiver) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("cm-emulator".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("cm-emulator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_sender.send(Err(Error::Runtime(error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let emulator = match Emulator::bind(config).await {
                        Ok(emulator) => emulator,
                        Err(error) => {
                            let _ = ready_sender.send(Err(error));
                            return;
                        }
                    };
                    let _ =
                        ready_sender.send(Ok((emulator.details().clone(), emulator.in_process())));
                    emulator
                        .run_until(async move {
                            // Also ends when the RunningEmulator (the sender) is dropped.
                            let _ = stop_receiver.wait_for(|stop| *stop).await;
                        })
                        .await;
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(Error::Runtime)?;
        match ready_receiver.recv() {
            Ok(Ok((details, in_process))) => Ok(RunningEmulator {
                details,
                in_process,
                stop: Some(stop_sender),
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::ThreadPanicked)
            }
        }
    }
}

/// An emulator serving on a background thread; stops on [`RunningEmulator::shutdown`] or drop.
pub struct RunningEmulator {
    details: EmulatorDetails,
    in_process: InProcessHandle,
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("RunningEmulator")
            .field("details", &self.details)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// Everything a client needs, in one cloneable value.
    pub fn details(&self) -> &EmulatorDetails {
        &self.details
    }

    /// The base URL, for example `https://127.0.0.1:8443`.
    pub fn url(&self) -> &str {
        self.details.url()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.details.local_addr()
    }

    /// The state folder.
    pub fn state_dir(&self) -> &Path {
        self.details.state_dir()
    }

    /// The web CA certificate (PEM).
    pub fn web_ca_pem(&self) -> &str {
        self.details.web_ca_pem()
    }

    /// `<state_dir>/web-ca.pem`.
    pub fn web_ca_path(&self) -> &Path {
        self.details.web_ca_path()
    }

    /// SHA-256 of the web server certificate, lower-case hex.
    pub fn web_cert_sha256_fingerprint(&self) -> &str {
        self.details.web_cert_sha256_fingerprint()
    }

    /// The `admin` password.
    pub fn admin_password(&self) -> &str {
        self.details.admin_password()
    }

    /// A handle that answers requests in-process, on the calling thread, through the same
    /// API (routing, authentication, handlers, state, clock, response bytes) as the HTTPS
    /// server, which keeps serving meanwhile. See [`InProcessHandle::handle`].
    pub fn in_process(&self) -> InProcessHandle {
        self.in_process.clone()
    }

    /// Stops accepting connections, lets open ones finish their request (up to two seconds)
    /// and waits for the background thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// `https://HOST:PORT`, with unspecified addresses shown as loopback.
fn url_for(address: SocketAddr) -> String {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => format!("https://127.0.0.1:{}", address.port()),
        IpAddr::V4(ip) => format!("https://{ip}:{}", address.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            format!("https://[{}]:{}", Ipv6Addr::LOCALHOST, address.port())
        }
        IpAddr::V6(ip) => format!("https://[{ip}]:{}", address.port()),
    }
}

/// The local CA: its certificate (made at first start) and an id derived from it, so that it
/// stays the same across restarts.
fn load_local_ca(state_dir: &Path) -> Result<state::LocalCa, Error> {
    let pem = web_pki::load_or_create_local_ca(state_dir, SystemTime::now())?;
    let path = state_dir.join("local-ca.pem");
    let corrupt = |message: String| Error::StateCorrupt {
        path: path.clone(),
        message,
    };
    let der = certs::parse_pem_chain(&pem)
        .map_err(corrupt)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no certificate".to_owned()))?;
    let facts = certs::CertificateFacts::parse(der).map_err(corrupt)?;
    let digest = certs::sha256_fingerprint(&facts.der);
    let id = format!(
        "{}-{}-4{}-8{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[13..16],
        &digest[17..20],
        &digest[20..32]
    );
    Ok(state::LocalCa {
        id,
        name: "Local CA".to_owned(),
        facts,
    })
}

const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// Reads `<state_dir>/admin-password`, or generates a password and writes it there.
fn load_or_create_admin_password(state_dir: &Path) -> Result<String, Error> {
    let path = state_dir.join(ADMIN_PASSWORD_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let password = text.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                return Err(Error::StateCorrupt {
                    path,
                    message: "the admin password file is empty".to_owned(),
                });
            }
            Ok(password)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
            let mut password = String::new();
            while password.len() < 24 {
                password.extend(
                    util::random_bytes(32)
                        .into_iter()
                        // Rejection sampling keeps every character equally likely.
                        .filter(|byte| usize::from(*byte) < 256 - 256 % ALPHABET.len())
                        .map(|byte| char::from(ALPHABET[usize::from(byte) % ALPHABET.len()])),
                );
            }
            password.truncate(24);
            store::write_atomic(&path, password.as_bytes())
                .map_err(|source| Error::StateIo { path, source })?;
            Ok(password)
        }
        Err(source) => Err(Error::StateIo { path, source }),
    }
}
