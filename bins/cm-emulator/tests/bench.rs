//! Throughput and memory benchmark (ignored by default; run in release):
//!
//! ```text
//! cargo test --release -p cm-emulator-bin --test bench -- --ignored --nocapture
//! ```
//!
//! Starts the real binary, registers 500 P-384 and 500 RSA-3072 clients through 32
//! concurrent mTLS connections (each registration is a fresh TLS connection presenting that
//! client's certificate, as separate hosts would), and reads the emulator's resident memory
//! (VmRSS in /proc/<pid>/status) after the 1,000 clients. Client and server share the machine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_pki::{
    CertificateAuthority, ClientCertificateRequest, IssuedCertificate, KeyMaterial, KeyType,
};

const CONCURRENCY: usize = 32;
const CLIENTS_PER_KEY_TYPE: usize = 500;
/// RSA key generation is slow; certificates share a few keys (the server's work per
/// registration does not depend on whether keys repeat).
const RSA_KEYS: usize = 4;

fn agent(ca_pem: &[u8], identity: Option<&IssuedCertificate>) -> ureq::Agent {
    test_support::mtls_agent(ca_pem, identity, None).unwrap()
}

fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(bearer) = bearer {
        builder = builder.header("Authorization", format!("Bearer {bearer}"));
    }
    let request = builder
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn resident_kib(child: &Child) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    (
        test_support::proc_status_field(&status, "VmRSS:"),
        test_support::proc_status_field(&status, "VmHWM:"),
    )
}

fn register_all(
    url: &str,
    ca_pem: &[u8],
    token: &str,
    certificates: Vec<(String, IssuedCertificate)>,
) -> Duration {
    let queue = Arc::new(Mutex::new(certificates));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let url = url.to_owned();
            let ca_pem = ca_pem.to_vec();
            let token = token.to_owned();
            std::thread::spawn(move || {
                loop {
                    let Some((name, issued)) = queue.lock().unwrap().pop() else { break };
                    let client = agent(&ca_pem, Some(&issued));
                    let body = json!({"reg_token": token, "cert": issued.chain_pem(), "name": name, "client_type": "CTE"});
                    let (status, reply) = call(&client, "POST", &format!("{url}/api/v1/client-management/clients/"), None, &body);
                    assert_eq!(status, 201, "{reply}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    started.elapsed()
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn registrations_per_second_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-password",
            "test-only password",
            "--state-dir",
        ])
        .arg(&state)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let ca_pem = std::fs::read(state.join("web-ca.pem")).unwrap();
    let (rss_start, _) = resident_kib(&child);

    let admin = agent(&ca_pem, None);
    let (_, login) = call(
        &admin,
        "POST",
        &format!("{url}/api/v1/auth/tokens/"),
        None,
        &json!({"grant_type": "password", "username": "admin", "password": "test-only password"}),
    );
    let bearer = login["jwt"].as_str().unwrap().to_owned();
    let external = CertificateAuthority::new_root("Bench CA", KeyType::P384).unwrap();
    let (status, ca) = call(
        &admin,
        "POST",
        &format!("{url}/api/v1/ca/external-cas"),
        Some(&bearer),
        &json!({"cert": external.certificate_pem(), "name": "bench"}),
    );
    assert_eq!(status, 201, "{ca}");
    call(
        &admin,
        "PATCH",
        &format!("{url}/api/v1/configs/interfaces/web"),
        Some(&bearer),
        &json!({"trusted_cas": {"external": ["bench"]}}),
    );
    call(
        &admin,
        "POST",
        &format!("{url}/api/v1/system/services/restart"),
        Some(&bearer),
        &json!({"services": ["web"], "delay": 0}),
    );
    let (_, token) = call(
        &admin,
        "POST",
        &format!("{url}/api/v1/client-management/regtokens/"),
        Some(&bearer),
        &json!({"ca_id": "bench"}),
    );
    let token = token["token"].as_str().unwrap().to_owned();

    let generation = Instant::now();
    let rsa_keys: Vec<KeyMaterial> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RSA_KEYS)
            .map(|_| scope.spawn(|| KeyMaterial::generate(KeyType::RSA_3072).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    println!(
        "generated {RSA_KEYS} RSA-3072 keys in {:.1} s",
        generation.elapsed().as_secs_f64()
    );

    for (label, key_type) in [("P-384", KeyType::P384), ("RSA-3072", KeyType::RSA_3072)] {
        let certificates: Vec<(String, IssuedCertificate)> = (0..CLIENTS_PER_KEY_TYPE)
            .map(|index| {
                let name = format!("{label}-host{index}").to_lowercase();
                let mut request = ClientCertificateRequest::new(&format!("{name}.example"));
                request = match key_type {
                    KeyType::P384 => request.key_type(KeyType::P384),
                    _ => request.key(rsa_keys[index % RSA_KEYS].clone()),
                };
                (name, external.issue(&request).unwrap())
            })
            .collect();
        let elapsed = register_all(&url, &ca_pem, &token, certificates);
        println!(
            "{label}: {CLIENTS_PER_KEY_TYPE} registrations over {CONCURRENCY} concurrent mTLS clients in {:.2} s = {:.0} registrations/s",
            elapsed.as_secs_f64(),
            CLIENTS_PER_KEY_TYPE as f64 / elapsed.as_secs_f64()
        );
    }

    let (_, clients) = call(
        &admin,
        "GET",
        &format!("{url}/api/v1/client-management/clients/?limit=1"),
        Some(&bearer),
        &json!({}),
    );
    assert_eq!(clients["total"], 2 * CLIENTS_PER_KEY_TYPE);
    let (rss, peak) = resident_kib(&child);
    println!(
        "emulator resident memory: {:.1} MiB at start, {:.1} MiB after {} clients (peak {:.1} MiB)",
        rss_start as f64 / 1024.0,
        rss as f64 / 1024.0,
        2 * CLIENTS_PER_KEY_TYPE,
        peak as f64 / 1024.0
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
