//! Starts the emulator on 127.0.0.1 with a fresh state folder, then, through an in-process
//! handle (the same request handling as HTTPS, without the socket), logs in as the admin, adds
//! an external CA from the committed test PKI, and shows a refusal in the manager's error shape.
//!
//! Run with `cargo run --example admin_and_client -p cm-emulator`.

use std::path::Path;

use cm_emulator::{Emulator, EmulatorConfig, InProcessHandle, InProcessRequest};
use serde_json::{Value, json};

fn call(
    handle: &InProcessHandle,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let response = handle.handle(InProcessRequest {
        method: method.to_owned(),
        path_and_query: path.to_owned(),
        authorization: bearer.map(|jwt| format!("Bearer {jwt}")),
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
        ..InProcessRequest::default()
    });
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = tempfile::tempdir()?;
    let emulator = Emulator::start(EmulatorConfig {
        admin_password: Some("test-only password".to_owned()),
        ..EmulatorConfig::new(state.path())
    })?;
    println!(
        "manager at {}, web certificate SHA-256 {}",
        emulator.url(),
        emulator.web_cert_sha256_fingerprint()
    );
    let handle = emulator.in_process();

    let login =
        json!({"grant_type": "password", "username": "admin", "password": "test-only password"});
    let (status, answer) = call(&handle, "POST", "/api/v1/auth/tokens/", None, login);
    let jwt = answer["jwt"]
        .as_str()
        .ok_or("no jwt in the login answer")?
        .to_owned();
    println!(
        "admin login: HTTP {status}, bearer for {} s",
        answer["duration"]
    );

    let ca = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/pki/ca-rsa/ca.pem"),
    )?;
    let body = json!({"cert": ca, "name": "test-only-root-rsa"});
    let (status, answer) = call(&handle, "POST", "/api/v1/ca/external-cas", Some(&jwt), body);
    println!(
        "external CA added: HTTP {status}, {} ({})",
        answer["name"], answer["subject"]
    );

    let wrong = json!({"grant_type": "password", "username": "admin", "password": "wrong"});
    let (status, answer) = call(&handle, "POST", "/api/v1/auth/tokens/", None, wrong);
    println!(
        "wrong password: HTTP {status}, {} {}",
        answer["codeDesc"], answer["message"]
    );

    emulator.shutdown();
    Ok(())
}
