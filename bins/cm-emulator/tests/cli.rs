//! Runs the real `cm-emulator` binary: start on a free port, read the "listening on" line,
//! make a call, stop it with SIGTERM and check that it exits cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

#[test]
fn binary_prints_its_url_serves_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        // Test-only password, passed through the environment as an operator would.
        .env("CM_EMULATOR_ADMIN_PASSWORD", "test-only password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "{url}");

    let ca = std::fs::read(state.join("web-ca.pem")).unwrap();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[
            Certificate::from_pem(&ca).unwrap()
        ]))
        .build();
    let agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .post(format!("{url}/api/v1/auth/tokens/"))
        .send_json(serde_json::json!({
            "grant_type": "password", "username": "admin", "password": "test-only password"
        }))
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.body_mut().read_json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    drop(agent);

    #[cfg(unix)]
    {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = child.try_wait().unwrap() {
                break exit;
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(exit.success(), "exit {exit:?}, stderr: {stderr}");
        assert!(
            !stderr.contains("test-only password"),
            "the password leaked: {stderr}"
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(rest, "", "exactly one line on stdout");
    }
    #[cfg(not(unix))]
    {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn binary_reports_a_bind_failure_with_exit_code_1() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = blocker.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .args(["--listen", &address, "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_lists_and_checks_the_retire_old_certificate_values() {
    let help = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--retire-old-certificate"), "{help}");
    assert!(
        help.contains("[possible values: on-renew, on-first-login, at-expiry]"),
        "{help}"
    );
    assert!(help.contains("[default: on-first-login]"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .args(["--retire-old-certificate", "never", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'never'"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_lists_and_checks_the_trusted_ca_changes_values() {
    let help = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    // Lines wrap at the terminal width: compare with single spaces.
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("--trusted-ca-changes"), "{help}");
    assert!(
        help.contains("[possible values: immediately, at-web-restart]"),
        "{help}"
    );
    assert!(help.contains("[default: immediately]"), "{help}");

    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cm-emulator"))
        .args(["--trusted-ca-changes", "later", "--state-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("'later'"), "{stderr}");
}
