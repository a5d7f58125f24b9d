//! The fault relay between a plain ureq/rustls client and the real emulator.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use test_pki::{ClientCertificateRequest, IssuedCertificate, KeyType};
use test_support::Manager;
use test_support::relay::{Exchange, Fault, FaultRelay, Rule, leaf_sha256};

const LOGIN: &str = "/api/v1/auth/tokens/";
const REGTOKENS: &str = "/api/v1/client-management/regtokens/";
const CLIENTS: &str = "/api/v1/client-management/clients/";
const FINGERPRINT: &str = "/api/v1/client-management/webcert-fingerprint/";

/// A P-384 client certificate (a key type the agent accepts) from the committed P-384 test CA.
fn issue(common_name: &str) -> IssuedCertificate {
    let ca = test_support::test_ca("ca-p384").unwrap();
    let now = SystemTime::now();
    ca.issue(
        &ClientCertificateRequest::new(common_name)
            .key_type(KeyType::P384)
            .validity(
                now - Duration::from_secs(60),
                now + Duration::from_secs(86_400),
            ),
    )
    .unwrap()
}

/// A ureq agent trusting the relay's CA, presenting `identity` if given.
fn client(
    relay: &FaultRelay,
    identity: Option<&IssuedCertificate>,
    timeout: Option<Duration>,
) -> ureq::Agent {
    let ca = ureq::tls::Certificate::from_pem(relay.ca_pem().as_bytes())
        .unwrap()
        .to_owned();
    let client_cert = identity.map(|issued| {
        let chain: Vec<ureq::tls::Certificate<'static>> = issued
            .chain_der()
            .iter()
            .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        let key = ureq::tls::PrivateKey::from_pem(issued.key_pkcs8_pem().as_bytes())
            .unwrap()
            .to_owned();
        ureq::tls::ClientCert::new_with_certs(&chain, key)
    });
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .client_cert(client_cert)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .new_agent()
}

/// A JSON call through `agent`: status and body, or the transport error.
fn call(
    agent: &ureq::Agent,
    url: &str,
    method: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), ureq::Error> {
    let mut response = match (method, body) {
        ("GET", _) => {
            let mut request = agent.get(url);
            if let Some(bearer) = bearer {
                request = request.header("Authorization", &format!("Bearer {bearer}"));
            }
            request.call()?
        }
        (_, body) => {
            let mut request = agent.post(url);
            if let Some(bearer) = bearer {
                request = request.header("Authorization", &format!("Bearer {bearer}"));
            }
            request.send_json(body.unwrap_or(json!({})))?
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn admin_login(agent: &ureq::Agent, relay: &FaultRelay, manager: &Manager) -> String {
    let password = manager.details().admin_password();
    let (status, body) = call(
        agent,
        &format!("{}{LOGIN}", relay.url()),
        "POST",
        None,
        Some(json!({"grant_type": "password", "username": "admin", "password": password})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body["jwt"].as_str().unwrap().to_owned()
}

/// The registration tokens with this `name_prefix`, listed directly on the emulator.
fn tokens_named(manager: &Manager, prefix: &str) -> Vec<Value> {
    manager.call("GET", REGTOKENS, None, 200).unwrap()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|token| token["name_prefix"] == prefix)
        .cloned()
        .collect()
}

fn last(relay: &FaultRelay) -> Exchange {
    relay.exchanges().last().cloned().expect("an exchange")
}

#[test]
fn admin_login_passes_through_and_is_logged() {
    let manager = Manager::start().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    assert!(relay.url().starts_with("https://127.0.0.1:"));
    assert_eq!(
        std::fs::read_to_string(relay.ca_path()).unwrap(),
        relay.ca_pem()
    );
    let agent = client(&relay, None, None);
    let jwt = admin_login(&agent, &relay, &manager);
    assert!(!jwt.is_empty());
    // The bearer from the relayed login works through the relay (Authorization is forwarded).
    let (status, _) = call(
        &agent,
        &format!("{}{REGTOKENS}", relay.url()),
        "GET",
        Some(&jwt),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    // A wrong password is the emulator's 401, passed back unchanged.
    let (status, body) = call(
        &agent,
        &format!("{}{LOGIN}", relay.url()),
        "POST",
        None,
        Some(json!({"grant_type": "password", "username": "admin", "password": "wrong"})),
    )
    .unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["codeDesc"],
        "NCERRUnauthorizedAccess: Unauthorized access"
    );
    let exchanges = relay.exchanges();
    assert_eq!(exchanges.len(), 3);
    assert_eq!(
        exchanges[0],
        Exchange {
            method: "POST".into(),
            path: LOGIN.into(),
            presented_leaf_sha256: None,
            status: Some(200),
            fault: None,
            forwarded_certificate: false,
            upstream_error: None,
        }
    );
    assert_eq!(exchanges[1].status, Some(200));
    assert_eq!(exchanges[2].status, Some(401));
}

#[test]
fn drop_reply_loses_the_answer_after_the_manager_committed() {
    let manager = Manager::start().unwrap();
    let ca_id = manager
        .add_external_ca(&test_support::test_ca_pem("ca-p384").unwrap(), "ext")
        .unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let agent = client(&relay, None, None);
    let jwt = admin_login(&agent, &relay, &manager);
    relay.push_rule(Rule::new(REGTOKENS, Fault::DropReply).with_method("POST"));
    let result = call(
        &agent,
        &format!("{}{REGTOKENS}", relay.url()),
        "POST",
        Some(&jwt),
        Some(json!({"ca_id": ca_id, "name_prefix": "lost-reply"})),
    );
    assert!(
        result.is_err(),
        "the client must not get an answer: {result:?}"
    );
    // The emulator did create the token.
    assert_eq!(tokens_named(&manager, "lost-reply").len(), 1);
    let exchange = last(&relay);
    assert_eq!(exchange.fault, Some(Fault::DropReply));
    assert_eq!(exchange.status, Some(201));
    assert!(relay.rules().is_empty());
}

#[test]
fn drop_request_never_reaches_the_manager() {
    let manager = Manager::start().unwrap();
    let ca_id = manager
        .add_external_ca(&test_support::test_ca_pem("ca-p384").unwrap(), "ext")
        .unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let agent = client(&relay, None, None);
    let jwt = admin_login(&agent, &relay, &manager);
    relay.push_rule(Rule::new("regtokens", Fault::DropRequest).with_method("post"));
    let result = call(
        &agent,
        &format!("{}{REGTOKENS}", relay.url()),
        "POST",
        Some(&jwt),
        Some(json!({"ca_id": ca_id, "name_prefix": "lost-request"})),
    );
    assert!(
        result.is_err(),
        "the client must not get an answer: {result:?}"
    );
    assert!(tokens_named(&manager, "lost-request").is_empty());
    let exchange = last(&relay);
    assert_eq!(exchange.fault, Some(Fault::DropRequest));
    assert_eq!(exchange.status, None);
    // The rule is spent: the same request now goes through.
    let (status, body) = call(
        &agent,
        &format!("{}{REGTOKENS}", relay.url()),
        "POST",
        Some(&jwt),
        Some(json!({"ca_id": ca_id, "name_prefix": "lost-request"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(tokens_named(&manager, "lost-request").len(), 1);
}

#[test]
fn status_503_is_answered_by_the_relay_and_rules_are_spent_after_times() {
    let manager = Manager::start().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let agent = client(&relay, None, None);
    let url = format!("{}{FINGERPRINT}", relay.url());
    // A rule for another method or path does not match.
    relay.push_rule(Rule::new(FINGERPRINT, Fault::DropRequest).with_method("POST"));
    relay.push_rule(Rule::new("/nowhere", Fault::DropRequest));
    relay.push_rule(
        Rule::new("webcert-fingerprint", Fault::Status503)
            .with_method("GET")
            .with_times(2),
    );
    for _ in 0..2 {
        let (status, body) = call(&agent, &url, "GET", None, None).unwrap();
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["codeDesc"], "NCERRServiceUnavailable");
    }
    let (status, body) = call(&agent, &url, "GET", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["fingerprint"].as_str(),
        Some(manager.web_fingerprint().as_str())
    );
    let faults: Vec<_> = relay
        .exchanges()
        .iter()
        .map(|exchange| (exchange.fault, exchange.status))
        .collect();
    assert_eq!(
        faults,
        [
            (Some(Fault::Status503), None),
            (Some(Fault::Status503), None),
            (None, Some(200))
        ]
    );
    // The two other rules are untouched.
    assert_eq!(relay.rules().len(), 2);
    relay.clear_rules();
    assert!(relay.rules().is_empty());
}

#[test]
fn delay_reply_times_the_client_out_after_the_manager_answered() {
    let manager = Manager::start().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let agent = client(&relay, None, Some(Duration::from_millis(500)));
    relay.push_rule(Rule::new(
        FINGERPRINT,
        Fault::DelayReply(Duration::from_secs(3)),
    ));
    let url = format!("{}{FINGERPRINT}", relay.url());
    let started = std::time::Instant::now();
    let result = call(&agent, &url, "GET", None, None);
    assert!(matches!(result, Err(ureq::Error::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let exchange = last(&relay);
    assert_eq!(
        exchange.fault,
        Some(Fault::DelayReply(Duration::from_secs(3)))
    );
    assert_eq!(exchange.status, Some(200));
    // A shorter delay only slows the answer down.
    relay.push_rule(Rule::new(
        FINGERPRINT,
        Fault::DelayReply(Duration::from_millis(100)),
    ));
    let (status, _) = call(&agent, &url, "GET", None, None).unwrap();
    assert_eq!(status, 200);
}

#[test]
fn the_presented_client_certificate_reaches_the_manager() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_support::test_ca_pem("ca-p384").unwrap(), "ext")
        .unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let issued = issue("relay-host.example");
    let leaf = leaf_sha256(issued.certificate_der());
    let register = json!({
        "reg_token": token,
        "cert": issued.chain_pem(),
        "client_type": "CTE",
        "name": "relay-host",
    });
    let agent = client(&relay, Some(&issued), None);
    let url = format!("{}{CLIENTS}", relay.url());

    // Not registered with the relay: forwarded without a client certificate.
    let (status, body) = call(&agent, &url, "POST", None, Some(register.clone())).unwrap();
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["codeDesc"],
        "NCERRClientCertificateRequired: Client certificate required"
    );
    let exchange = last(&relay);
    assert_eq!(
        exchange.presented_leaf_sha256.as_deref(),
        Some(leaf.as_str())
    );
    assert!(!exchange.forwarded_certificate);

    // Registered (from the encrypted key files the agent reads): the same chain goes upstream.
    let set = tempfile::tempdir().unwrap();
    issued
        .write_directory(set.path(), "test-only passphrase")
        .unwrap();
    relay.add_identity_dir(set.path()).unwrap();
    // A rule for another leaf does not apply; one for this leaf loses the reply.
    relay.push_rule(
        Rule::new(CLIENTS, Fault::Status503).with_presented_leaf_sha256(&"0".repeat(64)),
    );
    relay.push_rule(
        Rule::new(CLIENTS, Fault::DropReply).with_presented_leaf_sha256(&leaf.to_uppercase()),
    );
    let result = call(&agent, &url, "POST", None, Some(register.clone()));
    assert!(result.is_err(), "{result:?}");
    let exchange = last(&relay);
    assert_eq!(exchange.fault, Some(Fault::DropReply));
    assert_eq!(exchange.status, Some(201));
    assert!(exchange.forwarded_certificate);
    let clients = manager.clients().unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0]["cert_fingerprint"].as_str(), Some(leaf.as_str()));

    // The retry is the manager's idempotent 200, and the client id lets it log in with the
    // certificate (client-credential login needs the TLS client certificate upstream).
    let (status, body) = call(&agent, &url, "POST", None, Some(register)).unwrap();
    assert_eq!(status, 200, "{body}");
    let client_id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(client_id, clients[0]["id"].as_str().unwrap());
    let (status, body) = call(
        &agent,
        &format!("{}{LOGIN}", relay.url()),
        "POST",
        None,
        Some(json!({"grant_type": "client_credential", "client_id": client_id})),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"].as_str(), Some(client_id.as_str()));
    assert_eq!(relay.rules().len(), 1, "the rule for another leaf is left");

    // add_identity with the raw parts works too (and replaces the earlier registration).
    relay
        .add_identity(&issued.chain_pem(), issued.key_pkcs8_der().to_vec())
        .unwrap();
    // A key that does not match the certificate is refused.
    let other = issue("other.example");
    assert!(
        relay
            .add_identity(&issued.chain_pem(), other.key_pkcs8_der().to_vec())
            .is_err()
    );
}

/// Reads one HTTP/1.1 response with a Content-Length body from `stream`.
fn read_response(stream: &mut impl Read) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 64 * 1024, "response head too long");
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn tls12_and_keep_alive_with_several_requests_on_one_connection() {
    let manager = Manager::start().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let issued = issue("tls12.example");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            first_certificate_der(relay.ca_pem()),
        ))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        issued.chain_der(),
        rustls_pki_types::PrivateKeyDer::Pkcs8(issued.key_pkcs8_der().to_vec().into()),
    )
    .unwrap();
    let tcp = std::net::TcpStream::connect(relay.local_addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let connection = rustls::ClientConnection::new(
        Arc::new(config),
        rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);

    stream
        .write_all(format!("GET {FINGERPRINT} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    let login = json!({
        "grant_type": "password",
        "username": "admin",
        "password": manager.details().admin_password(),
    })
    .to_string();
    stream
        .write_all(
            format!(
                "POST {LOGIN} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{login}",
                login.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "{body}");
    let jwt = serde_json::from_str::<Value>(&body).unwrap()["jwt"]
        .as_str()
        .unwrap()
        .to_owned();

    stream
        .write_all(
            format!(
                "GET {REGTOKENS} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {jwt}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "{body}");

    let exchanges = relay.exchanges();
    assert_eq!(exchanges.len(), 3);
    let leaf = leaf_sha256(issued.certificate_der());
    assert!(
        exchanges
            .iter()
            .all(
                |exchange| exchange.presented_leaf_sha256.as_deref() == Some(leaf.as_str())
                    && exchange.status == Some(200)
            )
    );
}

/// The DER of the first certificate in a PEM text.
fn first_certificate_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn dropping_the_relay_closes_its_port() {
    let manager = Manager::start().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let address = relay.local_addr();
    let ca_path = relay.ca_path().to_path_buf();
    drop(relay);
    assert!(std::net::TcpStream::connect(address).is_err());
    assert!(!ca_path.exists());
}
