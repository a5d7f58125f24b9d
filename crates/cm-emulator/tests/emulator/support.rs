//! Shared helpers: start an emulator, talk to it over real HTTPS with ureq, make certificates.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use cm_emulator::{Clock, Emulator, EmulatorConfig, RetireOldCertificate, RunningEmulator};
use serde_json::{Value, json};
use tempfile::TempDir;
use test_pki::{CertificateAuthority, ClientCertificateRequest, IssuedCertificate, KeyType};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// Test-only admin password.
pub const ADMIN_PASSWORD: &str = "test-only admin password";

/// A clock the test can move forward.
#[derive(Debug, Default)]
pub struct ShiftableClock {
    offset_seconds: AtomicI64,
}

impl ShiftableClock {
    pub fn advance(&self, by: Duration) {
        self.offset_seconds
            .fetch_add(i64::try_from(by.as_secs()).unwrap(), Ordering::SeqCst);
    }
}

impl Clock for ShiftableClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
            + Duration::from_secs(self.offset_seconds.load(Ordering::SeqCst).unsigned_abs())
    }
}

pub fn start(dir: &Path, clock: Arc<dyn Clock>) -> RunningEmulator {
    start_retiring(dir, clock, RetireOldCertificate::default())
}

pub fn start_retiring(
    dir: &Path,
    clock: Arc<dyn Clock>,
    retire_old_certificate: RetireOldCertificate,
) -> RunningEmulator {
    start_configured(dir, |config| EmulatorConfig {
        clock,
        retire_old_certificate,
        ..config
    })
}

/// Starts an emulator with the test password and `configure` applied to the defaults.
pub fn start_configured(
    dir: &Path,
    configure: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
) -> RunningEmulator {
    Emulator::start(configure(EmulatorConfig {
        admin_password: Some(ADMIN_PASSWORD.to_owned()),
        ..EmulatorConfig::new(dir)
    }))
    .expect("the emulator starts")
}

/// A JSON answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The body as received.
    pub text: String,
}

impl Reply {
    /// The name at the start of `codeDesc` (CM writes `"NCERRName: Description"`).
    pub fn code_desc(&self) -> &str {
        let full = self.body["codeDesc"].as_str().unwrap_or("");
        full.split_once(':').map_or(full, |(name, _)| name)
    }

    /// Asserts the status (and, for errors, the CM error shape) and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        if status >= 400 {
            for field in ["code", "codeDesc", "message", "requestID"] {
                assert!(
                    self.body.get(field).is_some(),
                    "no {field} in {}",
                    self.body
                );
            }
        }
        self.body
    }

    #[track_caller]
    pub fn expect_error(self, status: u16, code_desc: &str) -> Value {
        let code = self.code_desc().to_owned();
        let body = self.expect(status);
        assert_eq!(code, code_desc, "{body}");
        body
    }
}

/// An HTTPS client trusting the emulator's web CA, optionally presenting a certificate.
pub struct Http {
    agent: ureq::Agent,
    base: String,
}

impl Http {
    fn build(emulator: &RunningEmulator, identity: Option<&IssuedCertificate>) -> Http {
        let root = Certificate::from_pem(emulator.web_ca_pem().as_bytes()).unwrap();
        let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[root]));
        if let Some(issued) = identity {
            let chain: Vec<Certificate<'static>> = issued
                .chain_der()
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect();
            let key = PrivateKey::from_pem(issued.key_pkcs8_pem().as_bytes()).unwrap();
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .new_agent();
        Http {
            agent,
            base: emulator.url().to_owned(),
        }
    }

    pub fn anonymous(emulator: &RunningEmulator) -> Http {
        Self::build(emulator, None)
    }

    pub fn presenting(emulator: &RunningEmulator, issued: &IssuedCertificate) -> Http {
        Self::build(emulator, Some(issued))
    }

    /// Sends raw bytes; `Err` on transport failures such as a refused TLS handshake.
    pub fn try_raw(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ureq::Error> {
        self.try_typed(method, path, bearer, body, Some("application/json"))
    }

    /// As [`Http::try_raw`] with the given `Content-Type` (`None`: no header).
    pub fn try_typed(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<Reply, ureq::Error> {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(bearer) = bearer {
            builder = builder.header("Authorization", format!("Bearer {bearer}"));
        }
        if let (Some(content_type), Some(_)) = (content_type, &body) {
            builder = builder.header("Content-Type", content_type);
        }
        let mut response = match body {
            Some(body) => self.agent.run(builder.body(body).unwrap())?,
            None => self.agent.run(builder.body(()).unwrap())?,
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
        };
        Ok(Reply { status, body, text })
    }

    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, ureq::Error> {
        self.try_raw(
            method,
            path,
            bearer,
            body.map(|body| body.to_string().into_bytes()),
        )
    }

    #[track_caller]
    pub fn call(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        match self.try_call(method, path, bearer, body) {
            Ok(reply) => reply,
            Err(error) => panic!("{method} {path} failed: {error}"),
        }
    }
}

pub fn admin_login(http: &Http) -> String {
    let body = json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD});
    let reply = http
        .call("POST", "/api/v1/auth/tokens/", None, Some(&body))
        .expect(200);
    reply["jwt"].as_str().unwrap().to_owned()
}

/// An emulator with a trusted external CA (web restarted) and a registration token for it.
pub struct World {
    pub clock: Arc<ShiftableClock>,
    pub emulator: RunningEmulator,
    pub admin: Http,
    pub admin_token: String,
    pub ca: CertificateAuthority,
    pub ca_id: String,
    pub reg_token: String,
    pub dir: TempDir,
}

impl World {
    pub fn new() -> World {
        Self::retiring(RetireOldCertificate::default())
    }

    /// A world whose emulator retires renewed clients' previous certificates `when`.
    pub fn retiring(when: RetireOldCertificate) -> World {
        Self::configured(move |config| EmulatorConfig {
            retire_old_certificate: when,
            ..config
        })
    }

    /// A world whose emulator has `configure` applied to the defaults (the clock is the
    /// world's shiftable one).
    pub fn configured(configure: impl FnOnce(EmulatorConfig) -> EmulatorConfig) -> World {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ShiftableClock::default());
        let shared: Arc<dyn Clock> = clock.clone();
        let emulator = start_configured(dir.path(), |config| {
            configure(EmulatorConfig {
                clock: shared,
                ..config
            })
        });
        let admin = Http::anonymous(&emulator);
        let admin_token = admin_login(&admin);
        let ca = CertificateAuthority::new_root("Test External CA", KeyType::P384).unwrap();
        let mut world = World {
            clock,
            emulator,
            admin,
            admin_token,
            ca,
            ca_id: String::new(),
            reg_token: String::new(),
            dir,
        };
        let ca_pem = world.ca.certificate_pem();
        world.ca_id = world.add_ca(&ca_pem, "test-ca");
        world.trust(&[world.ca_id.clone()]);
        world.restart_web(0);
        world.reg_token = world.create_token(json!({"ca_id": world.ca_id}))["token"]
            .as_str()
            .unwrap()
            .to_owned();
        world
    }

    pub fn admin_call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.admin.call(method, path, Some(&self.admin_token), body)
    }

    pub fn add_ca(&self, pem: &str, name: &str) -> String {
        let body = json!({"cert": pem, "name": name});
        let ca = self
            .admin_call("POST", "/api/v1/ca/external-cas", Some(&body))
            .expect(201);
        ca["id"].as_str().unwrap().to_owned()
    }

    pub fn trust(&self, ids: &[String]) {
        let body = json!({"trusted_cas": {"external": ids, "local": []}});
        self.admin_call("PATCH", "/api/v1/configs/interfaces/web", Some(&body))
            .expect(200);
    }

    pub fn restart_web(&self, delay: u64) {
        let body = json!({"services": ["web"], "delay": delay});
        self.admin_call("POST", "/api/v1/system/services/restart", Some(&body))
            .expect(202);
    }

    pub fn create_token(&self, body: Value) -> Value {
        self.admin_call("POST", "/api/v1/client-management/regtokens/", Some(&body))
            .expect(201)
    }

    pub fn issue(&self, common_name: &str) -> IssuedCertificate {
        self.ca
            .issue(&ClientCertificateRequest::new(common_name))
            .unwrap()
    }

    pub fn issue_valid_for(&self, common_name: &str, days: u64) -> IssuedCertificate {
        let now = SystemTime::now();
        self.ca
            .issue(&ClientCertificateRequest::new(common_name).validity(
                now - Duration::from_secs(60),
                now + Duration::from_secs(days * 86_400),
            ))
            .unwrap()
    }

    pub fn presenting(&self, issued: &IssuedCertificate) -> Http {
        Http::presenting(&self.emulator, issued)
    }

    pub fn register_with(&self, token: &str, issued: &IssuedCertificate, name: &str) -> Reply {
        let body = json!({
            "reg_token": token,
            "cert": issued.chain_pem(),
            "client_type": "CTE",
            "name": name,
            "description": "test host",
        });
        self.presenting(issued).call(
            "POST",
            "/api/v1/client-management/clients/",
            None,
            Some(&body),
        )
    }

    pub fn register(&self, issued: &IssuedCertificate, name: &str) -> Reply {
        self.register_with(&self.reg_token, issued, name)
    }

    /// Registers and returns the client id.
    pub fn registered(&self, issued: &IssuedCertificate, name: &str) -> String {
        let client = self.register(issued, name).expect(201);
        client["id"].as_str().unwrap().to_owned()
    }

    pub fn login(&self, issued: &IssuedCertificate, client_id: &str) -> Reply {
        let body = json!({"grant_type": "client_credential", "client_id": client_id});
        self.presenting(issued)
            .call("POST", "/api/v1/auth/tokens/", None, Some(&body))
    }

    pub fn client_bearer(&self, issued: &IssuedCertificate, client_id: &str) -> String {
        self.login(issued, client_id).expect(200)["jwt"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn renew(
        &self,
        presenting: &IssuedCertificate,
        bearer: &str,
        new: &IssuedCertificate,
    ) -> Reply {
        let body = json!({"ext_cert": new.chain_pem()});
        self.presenting(presenting).call(
            "POST",
            "/api/v1/client-management/self/client/renew",
            Some(bearer),
            Some(&body),
        )
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A raw TLS connection to the emulator's web interface (no client certificate), for HTTP/1.1
/// written by hand: offering `versions` (all when empty) and only the cipher suite `only` when
/// given, verifying the web certificate against the emulator's web CA. `Err` when the TCP
/// connection fails; the handshake runs at the first write or read.
pub fn raw_tls(
    world: &World,
    versions: &[&'static rustls::SupportedProtocolVersion],
    only: Option<rustls::CipherSuite>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for der in
        rustls_pki_types::CertificateDer::pem_slice_iter(world.emulator.web_ca_pem().as_bytes())
    {
        roots.add(der.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(only) = only {
        provider.cipher_suites.retain(|suite| suite.suite() == only);
    }
    let versions = if versions.is_empty() {
        rustls::DEFAULT_VERSIONS
    } else {
        versions
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connection =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let socket = std::net::TcpStream::connect(world.emulator.local_addr())
        .map_err(|error| error.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    Ok(rustls::StreamOwned::new(connection, socket))
}
