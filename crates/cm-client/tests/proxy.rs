//! The client through HTTP proxies, against the real manager emulator over HTTPS: a real proxy
//! (Debian's tinyproxy, skipped when not installed), small in-test proxies (a CONNECT relay, one
//! that refuses), a proxy that is not listening, NO_PROXY, the real process environment (in a
//! child process, so no test changes this process's environment), and pinning through the
//! tunnel.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cm_client::{
    ClientIdentity, Error, Fingerprint, ManagerClient, ManagerUrl, Options, ProxySetting, ProxyUrl,
    RegisterRequest, ServerTrust,
};
use cm_emulator::{Emulator, EmulatorConfig, InProcessRequest, RunningEmulator};
use serde_json::{Value, json};
use test_pki::{CertificateAuthority, ClientCertificateRequest, IssuedCertificate, KeyType};

/// An emulator set up by an admin (external CA trusted, registration token), and one client
/// certificate from that CA.
struct Manager {
    emulator: RunningEmulator,
    _state: tempfile::TempDir,
    token: String,
    issued: IssuedCertificate,
}

impl Manager {
    fn start() -> Manager {
        let state = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(EmulatorConfig::new(state.path())).unwrap();
        let admin = emulator.in_process();
        let call = |method: &str, path: &str, bearer: Option<&str>, body: Value| -> Value {
            let response = admin.handle(InProcessRequest {
                method: method.to_string(),
                path_and_query: path.to_string(),
                authorization: bearer.map(|bearer| format!("Bearer {bearer}")),
                body: body.to_string().into_bytes(),
                peer_certificates: None,
            });
            assert!(
                (200..300).contains(&response.status),
                "{method} {path}: {} {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            );
            serde_json::from_slice(&response.body).unwrap_or(Value::Null)
        };
        let login = json!({"grant_type": "password", "username": "admin",
                           "password": emulator.admin_password()});
        let jwt = call("POST", "/api/v1/auth/tokens/", None, login)["jwt"]
            .as_str()
            .unwrap()
            .to_string();
        let bearer = Some(jwt.as_str());
        let ca = CertificateAuthority::new_root("Proxy Test CA", KeyType::P256).unwrap();
        let ca_id = call(
            "POST",
            "/api/v1/ca/external-cas",
            bearer,
            json!({"cert": ca.certificate_pem(), "name": "proxy-test-ca"}),
        )["id"]
            .as_str()
            .unwrap()
            .to_string();
        call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            bearer,
            json!({"trusted_cas": {"external": [ca_id], "local": []}}),
        );
        call(
            "POST",
            "/api/v1/system/services/restart",
            bearer,
            json!({"services": ["web"], "delay": 0}),
        );
        let token = call(
            "POST",
            "/api/v1/client-management/regtokens/",
            bearer,
            json!({"ca_id": ca_id}),
        )["token"]
            .as_str()
            .unwrap()
            .to_string();
        let issued = ca
            .issue(&ClientCertificateRequest::new("proxy-test-host").key_type(KeyType::P256))
            .unwrap();
        Manager {
            emulator,
            _state: state,
            token,
            issued,
        }
    }

    fn url(&self) -> ManagerUrl {
        ManagerUrl::parse(self.emulator.url()).unwrap()
    }

    fn port(&self) -> u16 {
        self.emulator.local_addr().port()
    }

    fn ca_trust(&self) -> ServerTrust {
        ServerTrust::from_pem(self.emulator.web_ca_pem().as_bytes()).unwrap()
    }

    fn identity(&self) -> ClientIdentity {
        ClientIdentity {
            chain: self.issued.chain_der(),
            key_pkcs8_der: self.issued.key_pkcs8_der(),
        }
    }

    fn client(&self, trust: ServerTrust, proxy: ProxySetting) -> ManagerClient {
        let options = Options {
            proxy,
            retries: 0,
            connect_timeout: Duration::from_secs(5),
            ..Options::default()
        };
        ManagerClient::new(self.url(), trust, Some(&self.identity()), options).unwrap()
    }

    /// Registers (if not yet) and logs in through `proxy`; returns the client id.
    fn register_and_login(&self, proxy: ProxySetting) -> Result<String, Error> {
        let client = self.client(self.ca_trust(), proxy);
        let record = client.register(&RegisterRequest {
            reg_token: self.token.clone(),
            cert: self.issued.chain_pem(),
            client_type: "CTE".to_string(),
            name: "proxy-test-host".to_string(),
            description: "through a proxy".to_string(),
            os_type: String::new(),
            client_version: String::new(),
        })?;
        let session = client.login(&record.id)?;
        assert_eq!(session.client_id, record.id);
        client.status(&session)?;
        Ok(record.id)
    }
}

fn proxy_at(url: &str) -> ProxySetting {
    ProxySetting::Url(ProxyUrl::parse(url).unwrap())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads an HTTP request head (up to the blank line); returns its lines.
fn read_head(reader: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return lines;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            return lines;
        }
        lines.push(line);
    }
}

/// A small CONNECT proxy: relays each tunnel to the host:port asked for and records the
/// request heads it got.
struct RelayProxy {
    port: u16,
    heads: Arc<Mutex<Vec<Vec<String>>>>,
}

impl RelayProxy {
    fn start() -> RelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let head = read_head(&mut reader);
                    let target = head
                        .first()
                        .and_then(|line| line.strip_prefix("CONNECT "))
                        .and_then(|rest| rest.split(' ').next())
                        .map(str::to_string);
                    seen.lock().unwrap().push(head);
                    let mut client = stream;
                    let Some(upstream) = target.and_then(|t| TcpStream::connect(t).ok()) else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
                        return;
                    };
                    client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .unwrap();
                    let mut up_write = upstream.try_clone().unwrap();
                    let mut down_write = client.try_clone().unwrap();
                    let mut up_read = upstream;
                    let upward = thread::spawn(move || {
                        // Bytes the reader buffered after the head belong to the tunnel.
                        let buffered = reader.buffer().to_vec();
                        let _ = up_write.write_all(&buffered);
                        let mut rest = reader.into_inner();
                        let _ = std::io::copy(&mut rest, &mut up_write);
                        let _ = up_write.shutdown(Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut up_read, &mut down_write);
                    let _ = down_write.shutdown(Shutdown::Both);
                    let _ = upward.join();
                });
            }
        });
        RelayProxy { port, heads }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn connects(&self) -> Vec<Vec<String>> {
        self.heads.lock().unwrap().clone()
    }
}

/// A proxy that answers every request with `status_line` (and nothing else).
fn refusing_proxy(status_line: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            read_head(&mut reader);
            let mut stream = stream;
            let _ = stream.write_all(
                format!("{status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    port
}

/// A tinyproxy run by the test with its own configuration, stopped on drop.
struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// `None` when tinyproxy is not installed.
    fn start(connect_port: u16) -> Option<Tinyproxy> {
        let binary = [
            "/usr/bin/tinyproxy",
            "/usr/sbin/tinyproxy",
            "/usr/local/bin/tinyproxy",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .or_else(|| {
            Command::new("tinyproxy")
                .arg("-v")
                .output()
                .ok()
                .map(|_| PathBuf::from("tinyproxy"))
        })?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let config = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\n\
                 MaxClients 20\nAllow 127.0.0.1\nConnectPort {connect_port}\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut proxy = Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("tinyproxy exited at start ({status}): {}", proxy.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "tinyproxy did not start listening"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Some(proxy)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn register_and_login_through_tinyproxy() {
    let manager = Manager::start();
    let Some(tinyproxy) = Tinyproxy::start(manager.port()) else {
        eprintln!("SKIPPED: tinyproxy not installed");
        return;
    };
    manager
        .register_and_login(proxy_at(&tinyproxy.url()))
        .unwrap_or_else(|error| panic!("{error}\ntinyproxy log:\n{}", tinyproxy.log_text()));
    // tinyproxy logged the tunnels (it writes its log as it goes; give it a moment).
    let expected = format!("CONNECT 127.0.0.1:{}", manager.port());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tinyproxy.log_text().contains(&expected) {
        assert!(
            Instant::now() < deadline,
            "no {expected} in the tinyproxy log:\n{}",
            tinyproxy.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    // The pin of the manager's web certificate holds through the real proxy too.
    let pin = manager
        .emulator
        .web_cert_sha256_fingerprint()
        .parse::<Fingerprint>()
        .unwrap();
    let client = manager.client(
        ServerTrust::Sha256Fingerprint(pin),
        proxy_at(&tinyproxy.url()),
    );
    client.webcert_fingerprint().unwrap();
}

#[test]
fn tinyproxy_refusing_the_port_names_the_proxy_and_its_status() {
    let manager = Manager::start();
    // tinyproxy allows CONNECT only to the ports it lists: list another one.
    let Some(tinyproxy) = Tinyproxy::start(manager.port().wrapping_add(1).max(1)) else {
        eprintln!("SKIPPED: tinyproxy not installed");
        return;
    };
    let error = manager
        .register_and_login(proxy_at(&tinyproxy.url()))
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Proxy {
                status: Some(403),
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", tinyproxy.port)),
        "{text}"
    );
    assert!(text.contains("403"), "{text}");
}

#[test]
fn the_pin_is_checked_against_the_manager_through_the_tunnel() {
    let manager = Manager::start();
    let relay = RelayProxy::start();
    let pin = manager
        .emulator
        .web_cert_sha256_fingerprint()
        .parse::<Fingerprint>()
        .unwrap();
    let client = manager.client(ServerTrust::Sha256Fingerprint(pin), proxy_at(&relay.url()));
    assert_eq!(
        client
            .webcert_fingerprint()
            .unwrap()
            .replace(':', "")
            .to_lowercase(),
        manager
            .emulator
            .web_cert_sha256_fingerprint()
            .replace(':', "")
            .to_lowercase()
    );
    let connects = relay.connects();
    assert!(!connects.is_empty(), "the relay saw no CONNECT");
    assert_eq!(
        connects[0][0],
        format!("CONNECT 127.0.0.1:{} HTTP/1.1", manager.port())
    );

    // A pin of another certificate fails the TLS handshake with the manager, through the proxy.
    let mut other = pin;
    other.0[0] ^= 0xff;
    let before = relay.connects().len();
    let client = manager.client(
        ServerTrust::Sha256Fingerprint(other),
        proxy_at(&relay.url()),
    );
    let error = client.webcert_fingerprint().unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    // The cause is kept for callers that match on it: rustls's own error.
    let cause = std::error::Error::source(&error).expect("a TLS failure keeps its cause");
    let rustls_error = cause.downcast_ref::<rustls::Error>().or_else(|| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    });
    assert!(rustls_error.is_some(), "{cause:?}");
    let text = error.to_string();
    eprintln!("{text}");
    assert!(text.contains("not the pinned"), "{text}");
    assert!(text.contains(&relay.url()), "{text}");
    assert!(
        relay.connects().len() > before,
        "the failed attempt did not go through the relay"
    );
}

#[test]
fn proxy_credentials_are_sent_as_basic_and_never_shown() {
    let manager = Manager::start();
    let relay = RelayProxy::start();
    let url = format!("http://agent%40corp:pa%3Ass@127.0.0.1:{}", relay.port);
    let setting = ProxySetting::parse(&url).unwrap();
    assert!(!format!("{setting:?}").contains("pa:ss"));
    let client = manager.client(manager.ca_trust(), setting);
    client.webcert_fingerprint().unwrap();
    let head = &relay.connects()[0];
    // base64("agent@corp:pa:ss")
    assert!(
        head.iter()
            .any(|line| line == "Proxy-Authorization: Basic YWdlbnRAY29ycDpwYTpzcw=="),
        "{head:?}"
    );
    // An error through that proxy shows the user but not the password.
    let refusing = refusing_proxy("HTTP/1.1 407 Proxy Authentication Required");
    let url = format!("http://agent%40corp:pa%3Ass@127.0.0.1:{refusing}");
    let error = manager
        .client(manager.ca_trust(), ProxySetting::parse(&url).unwrap())
        .webcert_fingerprint()
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Proxy {
                status: Some(407),
                ..
            }
        ),
        "{error:?}"
    );
    let text = format!("{error} {error:?}");
    assert!(
        !text.contains("pa:ss") && !text.contains("pa%3Ass"),
        "{text}"
    );
    assert!(text.contains("agent@corp:***@127.0.0.1"), "{text}");
}

#[test]
fn a_refused_connect_names_the_proxy_and_the_status() {
    let manager = Manager::start();
    let port = refusing_proxy("HTTP/1.1 403 Forbidden");
    let client = manager.client(
        manager.ca_trust(),
        proxy_at(&format!("http://127.0.0.1:{port}")),
    );
    let error = client.webcert_fingerprint().unwrap_err();
    let Error::Proxy {
        status, proxy, url, ..
    } = &error
    else {
        panic!("not a proxy error: {error:?}");
    };
    assert_eq!(*status, Some(403));
    assert_eq!(proxy, &format!("http://127.0.0.1:{port}"));
    assert_eq!(url, manager.emulator.url());
    let text = error.to_string();
    eprintln!("{text}");
    assert!(
        text.contains("HTTP 403") && text.contains("Forbidden"),
        "{text}"
    );
    assert_eq!(error.certainty(), cm_client::Certainty::Indefinite);
}

#[test]
fn a_proxy_that_is_not_listening_is_named() {
    let manager = Manager::start();
    let port = free_port();
    let client = manager.client(
        manager.ca_trust(),
        proxy_at(&format!("http://127.0.0.1:{port}")),
    );
    let error = client.webcert_fingerprint().unwrap_err();
    assert!(
        matches!(error, Error::Proxy { status: None, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!("proxy http://127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("cannot connect to the proxy"), "{text}");
}

#[test]
fn no_proxy_covering_the_manager_bypasses_the_proxy() {
    let manager = Manager::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let variables = |name: &str| match name {
        "HTTPS_PROXY" => Some(dead.clone()),
        "NO_PROXY" => Some("localhost, 127.0.0.1".to_string()),
        _ => None,
    };
    let decided = ProxySetting::FromEnvironment
        .resolve_with(&manager.url(), variables)
        .unwrap();
    assert_eq!(decided, None);
    manager.register_and_login(ProxySetting::None).unwrap();
    // Without the exception the same environment sends the manager to the (dead) proxy.
    let decided = ProxySetting::FromEnvironment
        .resolve_with(&manager.url(), |name| {
            (name == "HTTPS_PROXY").then(|| dead.clone())
        })
        .unwrap()
        .unwrap();
    let error = manager
        .client(manager.ca_trust(), ProxySetting::Url(decided))
        .webcert_fingerprint()
        .unwrap_err();
    assert!(matches!(error, Error::Proxy { .. }), "{error:?}");
}

/// Runs `child_probe` in a child process with `environment` (and the setting `setting`), so the
/// real process environment is read, as in production; returns its verdict line.
fn probe(manager: &Manager, setting: &str, environment: &[(&str, String)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_probe",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CM_CLIENT_PROXY_PROBE", setting)
        .env("CM_CLIENT_PROBE_URL", manager.emulator.url())
        .env("CM_CLIENT_PROBE_CA", manager.emulator.web_ca_path());
    for name in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ] {
        command.env_remove(name);
    }
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        // The libtest harness writes "test child_probe ... " on the same line.
        .find_map(|line| line.find("PROBE ").map(|start| &line[start..]))
        .unwrap_or_else(|| {
            panic!(
                "no verdict from the child:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
        .to_string()
}

/// Not a test of its own: the child side of [`probe`] (does nothing unless
/// `CM_CLIENT_PROXY_PROBE` is set).
#[test]
fn child_probe() {
    let Ok(setting) = std::env::var("CM_CLIENT_PROXY_PROBE") else {
        return;
    };
    let url = ManagerUrl::parse(&std::env::var("CM_CLIENT_PROBE_URL").unwrap()).unwrap();
    let ca = std::fs::read(std::env::var("CM_CLIENT_PROBE_CA").unwrap()).unwrap();
    let proxy = match setting.as_str() {
        "environment" => ProxySetting::FromEnvironment,
        other => ProxySetting::parse(other).unwrap(),
    };
    let options = Options {
        proxy,
        retries: 0,
        ..Options::default()
    };
    let verdict = ManagerClient::new(url, ServerTrust::from_pem(&ca).unwrap(), None, options)
        .and_then(|client| client.webcert_fingerprint());
    match verdict {
        Ok(_) => println!("PROBE OK"),
        Err(error) => println!("PROBE ERR {error}"),
    }
}

#[test]
fn the_process_environment_is_honoured_and_overridden() {
    let manager = Manager::start();
    let relay = RelayProxy::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    // No variables: direct.
    assert_eq!(probe(&manager, "environment", &[]), "PROBE OK");
    // HTTPS_PROXY is used: through the relay.
    assert_eq!(
        probe(&manager, "environment", &[("HTTPS_PROXY", relay.url())]),
        "PROBE OK"
    );
    assert_eq!(relay.connects().len(), 1, "HTTPS_PROXY was not used");
    // ... and a dead one fails, naming it.
    let verdict = probe(&manager, "environment", &[("https_proxy", dead.clone())]);
    assert!(
        verdict.starts_with("PROBE ERR") && verdict.contains(&dead),
        "{verdict}"
    );
    // HTTP_PROXY is not for https URLs (as curl).
    assert_eq!(
        probe(
            &manager,
            "environment",
            &[("HTTP_PROXY", dead.clone()), ("http_proxy", dead.clone())]
        ),
        "PROBE OK"
    );
    // NO_PROXY exempts the manager.
    assert_eq!(
        probe(
            &manager,
            "environment",
            &[
                ("ALL_PROXY", dead.clone()),
                ("NO_PROXY", "127.0.0.1".to_string())
            ]
        ),
        "PROBE OK"
    );
    // `none` switches every variable off, ureq's own reading included.
    let all_dead: Vec<(&str, String)> = ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy"]
        .into_iter()
        .map(|name| (name, dead.clone()))
        .collect();
    assert_eq!(probe(&manager, "none", &all_dead), "PROBE OK");
    // An explicit proxy wins over the environment (and NO_PROXY).
    let mut explicit = all_dead.clone();
    explicit.push(("NO_PROXY", "*".to_string()));
    assert_eq!(probe(&manager, &relay.url(), &explicit), "PROBE OK");
    assert_eq!(relay.connects().len(), 2, "the explicit proxy was not used");
}
