//! A misbehaving manager for tests: a TLS server on 127.0.0.1 speaking fixed HTTP/1.1 answers,
//! or forwarding to the real emulator and then misbehaving. The real emulator cannot send a
//! wrong content type, a redirect, a huge or truncated body, stall, or drop a connection after
//! accepting; this test double can.
//!
//! Agents reach it by pinning its certificate's fingerprint (`--cm-fingerprint` /
//! `CM_FINGERPRINT`), so it needs no host name in its certificate. When forwarding, it presents
//! the agent's own client certificate to the emulator (the test knows the keys it issued), so the
//! emulator's proof-of-possession checks still apply.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// What the fake manager does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// These bytes (status line, headers, body), then close.
    Raw(Vec<u8>),
    /// Wait, then these bytes.
    Slow(Duration, Vec<u8>),
    /// Close the connection without answering.
    Drop,
    /// Forward to the emulator and relay its answer.
    Forward,
    /// Forward to the emulator (which acts on the request), then close without answering: the
    /// manager accepted, and the answer never arrives.
    ForwardThenDrop,
}

/// An answer with a status, a content type and a body.
pub fn http(status: u16, content_type: &str, body: &[u8]) -> Reply {
    Reply::Raw(response(status, &[("Content-Type", content_type)], body))
}

/// Response bytes with extra headers.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("HTTP/1.1 {status} Fake\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    bytes.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(body);
    bytes
}

/// One request as the fake manager saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `POST`, `GET`.
    pub method: String,
    /// The path, e.g. `/api/v1/auth/tokens/`.
    pub path: String,
    /// What was done with it.
    pub reply: String,
    /// The status the emulator answered, when forwarded.
    pub upstream_status: Option<u16>,
}

/// Where forwarded requests go.
pub struct Upstream {
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// The emulator's web CA.
    pub ca_pem: Vec<u8>,
    /// Client identities the agent may present: chain (DER, leaf first) and PKCS#8 PEM key.
    pub identities: Mutex<Vec<(Vec<Vec<u8>>, String)>>,
}

type Script = dyn Fn(&str, &str, usize) -> Reply + Send + Sync;

/// A running fake manager. Stops when dropped.
pub struct FakeManager {
    address: String,
    fingerprint: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    upstream: Option<Arc<Upstream>>,
}

impl FakeManager {
    /// Starts a server whose answer to the `n`-th request (from 0, counted per path) to
    /// `method path` is `script(method, path, n)`.
    pub fn start(
        script: impl Fn(&str, &str, usize) -> Reply + Send + Sync + 'static,
        upstream: Option<Upstream>,
    ) -> Self {
        let ca = test_pki::CertificateAuthority::new_root(
            "fake manager CA (test only)",
            test_pki::KeyType::P384,
        )
        .unwrap();
        let issued = ca
            .issue(
                &test_pki::ClientCertificateRequest::new("fake-manager.test")
                    .key_type(test_pki::KeyType::P384)
                    .extended_key_usage(test_pki::ExtendedKeyUsage::ClientAndServerAuth),
            )
            .unwrap();
        let fingerprint = cert_loading::Fingerprint::of(issued.certificate_der()).to_string();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(
                cm_emulator::UnjudgedClientCertificates::accepting(provider),
            ))
            .with_single_cert(
                vec![issued.certificate_der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_pkcs8_der().to_vec())),
            )
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.map(Arc::new);
        let script: Arc<Script> = Arc::new(script);
        let counts = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
        {
            let (seen, stop, upstream) = (seen.clone(), stop.clone(), upstream.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, seen, upstream, script, counts) = (
                        config.clone(),
                        seen.clone(),
                        upstream.clone(),
                        script.clone(),
                        counts.clone(),
                    );
                    std::thread::spawn(move || {
                        serve(
                            stream,
                            config,
                            &seen,
                            upstream.as_deref(),
                            &*script,
                            &counts,
                        )
                    });
                }
            });
        }
        Self {
            address,
            fingerprint,
            seen,
            stop,
            upstream,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The SHA-256 of its certificate, lower-case hex: what an agent pins.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests so far to paths ending with `suffix`.
    pub fn seen_at(&self, suffix: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|seen| seen.path.ends_with(suffix))
            .collect()
    }

    /// Adds an identity the agent may present (for forwarding).
    pub fn add_identity(&self, chain: Vec<Vec<u8>>, key_pkcs8_pem: String) {
        if let Some(upstream) = &self.upstream {
            upstream
                .identities
                .lock()
                .unwrap()
                .push((chain, key_pkcs8_pem));
        }
    }
}

impl Drop for FakeManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.address);
    }
}

fn serve(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    seen: &Mutex<Vec<Seen>>,
    upstream: Option<&Upstream>,
    script: &Script,
    counts: &Mutex<std::collections::HashMap<String, usize>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, stream);
    let Some((method, path, headers, body)) = read_request(&mut tls) else {
        return;
    };
    let index = {
        let mut counts = counts.lock().unwrap();
        let count = counts.entry(format!("{method} {path}")).or_insert(0);
        *count += 1;
        *count - 1
    };
    let reply = script(&method, &path, index);
    let mut record = Seen {
        method: method.clone(),
        path: path.clone(),
        reply: format!("{reply:?}").chars().take(40).collect(),
        upstream_status: None,
    };
    let answer = match reply {
        Reply::Raw(bytes) => Some(bytes),
        Reply::Slow(delay, bytes) => {
            std::thread::sleep(delay);
            Some(bytes)
        }
        Reply::Drop => None,
        Reply::Forward | Reply::ForwardThenDrop => {
            let peer = tls
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| leaf.to_vec());
            let upstream = upstream.expect("forwarding needs an upstream");
            let (status, answer) = forward(upstream, peer, &method, &path, &headers, &body);
            record.upstream_status = Some(status);
            matches!(reply, Reply::Forward)
                .then(|| response(status, &[("Content-Type", "application/json")], &answer))
        }
    };
    seen.lock().unwrap().push(record);
    if let Some(answer) = answer {
        let _ = tls.write_all(&answer);
        let _ = tls.flush();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    } else {
        // Drop the TCP connection without a TLS close: as a crash or a cut network would.
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
    }
}

type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(tls: &mut impl Read) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = tls.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let read = tls.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some((method, path, headers, body))
}

fn forward(
    upstream: &Upstream,
    peer_leaf: Option<Vec<u8>>,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let ca = ureq::tls::Certificate::from_pem(&upstream.ca_pem)
        .unwrap()
        .to_owned();
    let mut tls =
        ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]));
    if let Some(leaf) = peer_leaf {
        let identities = upstream.identities.lock().unwrap();
        let (chain, key) = identities
            .iter()
            .find(|(chain, _)| chain[0] == leaf)
            .expect("the agent presented a certificate the test did not issue");
        let chain: Vec<ureq::tls::Certificate<'static>> = chain
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
            .collect();
        let key = ureq::tls::PrivateKey::from_pem(key.as_bytes()).unwrap();
        tls = tls.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&chain, key)));
    }
    let agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .build()
        .new_agent();
    let url = format!("{}{path}", upstream.base_url);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.clone())
    };
    let result = if method == "GET" {
        let mut request = agent.get(&url);
        if let Some(bearer) = header("authorization") {
            request = request.header("Authorization", &bearer);
        }
        request.call()
    } else {
        let mut request = agent.post(&url).header("Content-Type", "application/json");
        if let Some(bearer) = header("authorization") {
            request = request.header("Authorization", &bearer);
        }
        request.send(body)
    };
    let mut response = result.expect("the emulator answers");
    let status = response.status().as_u16();
    let answer = response.body_mut().read_to_vec().unwrap_or_default();
    (status, answer)
}
