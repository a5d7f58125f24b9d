//! In-process requests answer exactly as the HTTPS server does, on the same state.

use std::time::{Duration, Instant};

use cm_emulator::{Emulator, EmulatorConfig, InProcessHandle, InProcessRequest, InProcessResponse};
use serde_json::{Value, json};
use test_pki::{CertificateAuthority, IssuedCertificate, KeyType};

use crate::support::{ADMIN_PASSWORD, Reply, World};

const TOKENS: &str = "/api/v1/auth/tokens/";
const CLIENTS: &str = "/api/v1/client-management/clients/";

fn request(
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    presenting: Option<&IssuedCertificate>,
) -> InProcessRequest {
    InProcessRequest {
        method: method.to_owned(),
        path_and_query: path.to_owned(),
        authorization: bearer.map(|bearer| format!("Bearer {bearer}")),
        body: body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default(),
        peer_certificates: presenting.map(IssuedCertificate::chain_der),
    }
}

fn json_of(response: &InProcessResponse) -> Value {
    if response.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&response.body).expect("a JSON body")
    }
}

/// The JSON with every leaf replaced by its type: what must match between the transports.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| (key.clone(), shape(value)))
                .collect(),
        ),
    }
}

/// Same status, same JSON shape, same `codeDesc` (for errors).
#[track_caller]
fn assert_same(over_tls: &Reply, in_process: &InProcessResponse) -> Value {
    let body = json_of(in_process);
    assert_eq!(
        over_tls.status, in_process.status,
        "TLS {} vs in-process {}",
        over_tls.body, body
    );
    assert_eq!(shape(&over_tls.body), shape(&body));
    assert_eq!(over_tls.body.get("codeDesc"), body.get("codeDesc"));
    body
}

fn send(
    handle: &InProcessHandle,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
    presenting: Option<&IssuedCertificate>,
) -> InProcessResponse {
    handle.handle(request(method, path, bearer, body, presenting))
}

#[test]
fn in_process_requests_answer_as_the_https_server_does() {
    let world = World::new();
    let handle = world.emulator.in_process();

    // Admin login.
    let admin_body =
        json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD});
    let over_tls = world.admin.call("POST", TOKENS, None, Some(&admin_body));
    let in_process = send(&handle, "POST", TOKENS, None, Some(&admin_body), None);
    assert_eq!(over_tls.status, 200);
    let admin_jwt = assert_same(&over_tls, &in_process)["jwt"]
        .as_str()
        .unwrap()
        .to_owned();

    // Registration presenting a certificate (one client per transport).
    let tls_cert = world.issue("host1.example");
    let local_cert = world.issue("host2.example");
    let over_tls = world.register(&tls_cert, "host1");
    let in_process = send(
        &handle,
        "POST",
        CLIENTS,
        None,
        Some(&json!({
            "reg_token": world.reg_token,
            "cert": local_cert.chain_pem(),
            "client_type": "CTE",
            "name": "host2",
            "description": "test host",
        })),
        Some(&local_cert),
    );
    assert_eq!(over_tls.status, 201);
    let local_id = assert_same(&over_tls, &in_process)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let tls_id = over_tls.body["id"].as_str().unwrap().to_owned();

    // Client-credential login presenting the certificate.
    let over_tls = world.login(&tls_cert, &tls_id);
    let login = json!({"grant_type": "client_credential", "client_id": local_id});
    let in_process = send(
        &handle,
        "POST",
        TOKENS,
        None,
        Some(&login),
        Some(&local_cert),
    );
    assert_eq!(over_tls.status, 200);
    let local_jwt = assert_same(&over_tls, &in_process)["jwt"]
        .as_str()
        .unwrap()
        .to_owned();

    // The same refusals.
    let wrong = json!({"grant_type": "password", "username": "admin", "password": "wrong"});
    assert_same(
        &world.admin.call("POST", TOKENS, None, Some(&wrong)),
        &send(&handle, "POST", TOKENS, None, Some(&wrong), None),
    );
    let no_certificate = json!({"grant_type": "client_credential", "client_id": tls_id});
    let over_tls = world
        .admin
        .call("POST", TOKENS, None, Some(&no_certificate));
    assert_eq!(over_tls.code_desc(), "NCERRClientCertificateRequired");
    assert_same(
        &over_tls,
        &send(&handle, "POST", TOKENS, None, Some(&no_certificate), None),
    );
    let over_tls = world.login(&local_cert, &tls_id);
    assert_eq!(over_tls.status, 401);
    let not_its_own = json!({"grant_type": "client_credential", "client_id": tls_id});
    assert_same(
        &over_tls,
        &send(
            &handle,
            "POST",
            TOKENS,
            None,
            Some(&not_its_own),
            Some(&local_cert),
        ),
    );
    assert_same(
        &world.admin_call("GET", "/api/v1/no/such/endpoint", None),
        &send(
            &handle,
            "GET",
            "/api/v1/no/such/endpoint",
            Some(&admin_jwt),
            None,
            None,
        ),
    );
    let oversized = vec![b' '; 1024 * 1024 + 1];
    let over_tls = world
        .admin
        .try_raw("POST", TOKENS, None, Some(oversized.clone()))
        .unwrap();
    assert_eq!(over_tls.code_desc(), "NCERRRequestTooLarge");
    let mut too_large = request("POST", TOKENS, None, None, None);
    too_large.body = oversized;
    assert_same(&over_tls, &handle.handle(too_large));
    let unparsable = handle.handle(request("NOT A METHOD", TOKENS, None, None, None));
    assert_eq!((unparsable.status, unparsable.body.len()), (400, 0));

    // One state and one session table: bearers work across the transports, and the bytes of
    // a deterministic answer are identical.
    let path = format!("{CLIENTS}{local_id}");
    let over_tls = world.admin.call("GET", &path, Some(&admin_jwt), None);
    let in_process = send(&handle, "GET", &path, Some(&world.admin_token), None, None);
    assert_eq!(over_tls.status, 200);
    assert_eq!(over_tls.text.as_bytes(), in_process.body.as_slice());
    let status_path = "/api/v1/client-management/self/client";
    world
        .presenting(&local_cert)
        .call("GET", status_path, Some(&local_jwt), None)
        .expect(200);
    let list = send(&handle, "GET", CLIENTS, Some(&admin_jwt), None, None);
    assert_eq!(json_of(&list)["total"], 2);
    // A 204 has no body on either transport.
    let delete = format!("{CLIENTS}{tls_id}");
    let over_tls = world.admin_call("DELETE", &delete, None);
    assert_eq!((over_tls.status, over_tls.text.as_str()), (204, ""));
    let in_process = send(&handle, "DELETE", &path, Some(&admin_jwt), None, None);
    assert_eq!((in_process.status, in_process.body.len()), (204, 0));
}

#[test]
fn in_process_requests_work_from_plain_threads_while_the_server_runs() {
    let world = World::new();
    let second = CertificateAuthority::new_root("Second CA", KeyType::P384).unwrap();
    let handle = world.emulator.in_process();
    let admin = world.admin_token.clone();

    // Trust a second CA and restart the web interface with a delay, all in-process from a
    // thread tokio knows nothing about: the delayed restart still happens on the server.
    let second_pem = second.certificate_pem();
    let ca_id = std::thread::spawn({
        let handle = handle.clone();
        let admin = admin.clone();
        let first = world.ca_id.clone();
        move || {
            let created = send(
                &handle,
                "POST",
                "/api/v1/ca/external-cas",
                Some(&admin),
                Some(&json!({"cert": second_pem, "name": "second"})),
                None,
            );
            assert_eq!(created.status, 201);
            let id = json_of(&created)["id"].as_str().unwrap().to_owned();
            let trusted = json!({"trusted_cas": {"external": [first, id], "local": []}});
            let patch = send(
                &handle,
                "PATCH",
                "/api/v1/configs/interfaces/web",
                Some(&admin),
                Some(&trusted),
                None,
            );
            assert_eq!(patch.status, 200);
            let restart = send(
                &handle,
                "POST",
                "/api/v1/system/services/restart",
                Some(&admin),
                Some(&json!({"services": ["web"], "delay": 1})),
                None,
            );
            assert_eq!(restart.status, 202);
            id
        }
    })
    .join()
    .unwrap();
    assert!(!ca_id.is_empty());

    let host = second
        .issue(&test_pki::ClientCertificateRequest::new("host3.example"))
        .unwrap();
    let fingerprint = "/api/v1/client-management/webcert-fingerprint/";
    let deadline = Instant::now() + Duration::from_secs(15);
    while world
        .presenting(&host)
        .try_call("GET", fingerprint, None, None)
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the delayed web restart did not happen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Several plain threads at once, next to HTTPS traffic.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let handle = handle.clone();
            let admin = admin.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let list = send(&handle, "GET", CLIENTS, Some(&admin), None, None);
                    assert_eq!(list.status, 200);
                }
            })
        })
        .collect();
    for _ in 0..5 {
        world.admin_call("GET", CLIENTS, None).expect(200);
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn an_async_emulator_answers_in_process_and_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime
        .block_on(Emulator::bind(EmulatorConfig {
            admin_password: Some(ADMIN_PASSWORD.to_owned()),
            ..EmulatorConfig::new(dir.path())
        }))
        .unwrap();
    let handle = emulator.in_process();
    let login = json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD});
    // Before the server runs (only bound)...
    assert_eq!(
        send(&handle, "POST", TOKENS, None, Some(&login), None).status,
        200
    );
    runtime.block_on(emulator.run_until(async {}));
    // ...and after it stopped: the API itself is still there.
    let answer = send(&handle, "POST", TOKENS, None, Some(&login), None);
    assert_eq!(answer.status, 200);
    assert_eq!(json_of(&answer)["token_type"], "Bearer");
}
