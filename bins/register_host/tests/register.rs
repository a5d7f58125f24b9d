//! The real `register_host` binary against the real emulator over TLS on 127.0.0.1, with
//! certificate sets made by the `openssl` CLI (committed vectors in testdata/).

use std::path::Path;
use std::process::{Command, Output};

use test_support::{Manager, copy_vector, files_containing, snapshot_tree, test_ca_pem};

const RSA_PKCS8: &str = "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256";
const P384_TRADITIONAL: &str = "p384-ecdsa-sha384-traditional-aes256";

fn register_host(root: &Path, arguments: &[&str], environment: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_register_host"));
    command.arg("--agent-root").arg(root).args(arguments);
    command
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT");
    for (key, value) in environment {
        command.env(key, value);
    }
    command.output().expect("register_host runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn passphrase_of(directory: &Path) -> String {
    std::fs::read_to_string(directory.join("passphrase"))
        .unwrap()
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

/// No file under the agent root holds the decrypted key, and the secrets never show.
fn assert_no_secrets(root: &Path, set: &Path, output: &str, token: &str) {
    let loaded = cert_loading::load_directory(
        set,
        &cert_loading::LoadOptions::default(),
        std::time::SystemTime::now(),
    );
    if let Ok(loaded) = loaded {
        let der = loaded.identity.key().pkcs8_der();
        assert!(
            files_containing(root, der).is_empty(),
            "plaintext key DER under the agent root"
        );
        let pem = loaded.identity.key().to_pkcs8_pem();
        let body_line = pem.lines().nth(1).unwrap();
        assert!(
            files_containing(root, body_line.as_bytes()).is_empty(),
            "plaintext key PEM under the agent root"
        );
    }
    assert!(!output.contains(token), "the token appeared in the output");
    assert!(
        files_containing(root, token.as_bytes()).is_empty(),
        "the token was written under the agent root"
    );
    let passphrase = passphrase_of(set);
    assert!(
        !output.contains(&passphrase),
        "the passphrase appeared in the output"
    );
}

#[test]
fn registers_with_an_rsa_pkcs8_set_and_a_ca_file() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let set = copy_vector("good", RSA_PKCS8).unwrap();
    let root = tempfile::tempdir().unwrap();
    let output = register_host(
        root.path(),
        &[
            "--token",
            &token,
            "--agent",
            "host1",
            "--extcertdir",
            set.path().to_str().unwrap(),
            "--cm-ca",
            manager.web_ca_path().to_str().unwrap(),
            &manager.host_port(),
        ],
        &[],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("Registered with"), "{all}");
    assert!(root.path().join("vmd/pem/agent.pem").is_file());
    let conf = std::fs::read_to_string(root.path().join("vmd/etc/agent.conf")).unwrap();
    let clients = manager.clients().unwrap();
    assert_eq!(clients.len(), 1);
    let client_id = clients[0]["id"].as_str().unwrap();
    assert!(conf.contains(&format!("CLIENT_ID={client_id}")), "{conf}");
    // The host facts the manager shows for an agent (issue 22, item 8).
    let agent = manager
        .call(
            "GET",
            &format!("/api/v1/transparent-encryption/clients/{client_id}"),
            None,
            200,
        )
        .unwrap();
    let os_type = if cfg!(target_os = "linux") {
        "LINUX"
    } else if cfg!(windows) {
        "WINDOWS"
    } else {
        "UNKNOWN"
    };
    assert_eq!(agent["os_type"], os_type, "{agent}");
    assert_eq!(
        agent["client_version"],
        env!("CARGO_PKG_VERSION"),
        "{agent}"
    );
    assert!(
        conf.contains(&format!("EXTERNAL_CERT_DIR={}", set.path().display())),
        "{conf}"
    );
    assert!(conf.contains("RENEW_DAYS_BEFORE_EXPIRY=60"), "{conf}");
    assert!(
        set.path().join("client_key.pem").exists(),
        "inputs kept without --shred-input"
    );
    assert!(all.contains("remove or shred"), "{all}");
    assert_no_secrets(root.path(), set.path(), &all, &token);
    #[cfg(unix)]
    for (path, _) in snapshot_tree(root.path()) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{} has mode {mode:o}", path.display());
    }
}

#[test]
fn registers_a_p384_traditional_set_from_the_environment_with_product_spellings_and_a_fingerprint()
{
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext-p384")
        .unwrap();
    let set = copy_vector("good", P384_TRADITIONAL).unwrap();
    let root = tempfile::tempdir().unwrap();
    let fingerprint = manager.web_fingerprint();
    let output = register_host(
        root.path(),
        &[
            &format!("-token={token}"),
            "-agent=host-p384",
            "-description=a test host",
            "--cm-fingerprint",
            &fingerprint,
            "--json",
            &manager.url(),
        ],
        &[("EXTERNAL_CERT_DIR", set.path().to_str().unwrap())],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["client_name"], "host-p384");
    let conf = std::fs::read_to_string(root.path().join("vmd/etc/agent.conf")).unwrap();
    // Parsed once from the flag, written in one canonical form (OpenSSL's).
    let canonical = fingerprint
        .parse::<cert_loading::Fingerprint>()
        .unwrap()
        .to_colon_hex();
    assert!(
        conf.contains(&format!("CM_FINGERPRINT={canonical}\n")),
        "{conf}"
    );
    assert_no_secrets(root.path(), set.path(), &all, &token);
}

#[test]
fn registers_from_a_silent_file_and_shreds_the_inputs_on_success() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let set = copy_vector("good", "rsa3072-sha256-traditional-aes256").unwrap();
    let root = tempfile::tempdir().unwrap();
    let silent = root.path().with_extension("silent.txt");
    std::fs::write(
        &silent,
        format!(
            "SERVER_HOSTNAME={}\nREG_TOKEN={token}\nAGENT_HOST_NAME=silent-host\nHOST_DESC=from a file\nEXTERNAL_CERT_DIR={}\nAGENT_USEIP=no\n",
            manager.host_port(),
            set.path().display()
        ),
    )
    .unwrap();
    let passphrase = passphrase_of(set.path());
    let output = register_host(
        root.path(),
        &[
            "--cm-ca",
            manager.web_ca_path().to_str().unwrap(),
            "--shred-input",
            "silent",
            silent.to_str().unwrap(),
        ],
        &[],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert_eq!(manager.clients().unwrap()[0]["name"], "silent-host");
    for file in ["client_cert.pem", "client_key.pem", "passphrase"] {
        assert!(!set.path().join(file).exists(), "{file} was not removed");
    }
    assert!(!all.contains(&token) && !all.contains(&passphrase));
    std::fs::remove_file(silent).unwrap();
}

#[test]
fn a_second_registration_needs_force() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let set = copy_vector("good", RSA_PKCS8).unwrap();
    let root = tempfile::tempdir().unwrap();
    let arguments = |name: &'static str| {
        vec![
            "--token".to_string(),
            token.clone(),
            "--agent".to_string(),
            name.to_string(),
            "--extcertdir".to_string(),
            set.path().display().to_string(),
            "--cm-ca".to_string(),
            manager.web_ca_path().display().to_string(),
            manager.host_port(),
        ]
    };
    let first: Vec<String> = arguments("host1");
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    assert_eq!(
        register_host(root.path(), &first, &[]).status.code(),
        Some(0)
    );
    let before = snapshot_tree(root.path());
    let again = register_host(root.path(), &first, &[]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again));
    assert!(text(&again).contains("--force"));
    assert_eq!(snapshot_tree(root.path()), before);
}

struct Failure {
    name: &'static str,
    vector: (&'static str, &'static str),
    expected_code: i32,
    expected_text: &'static str,
}

/// Every refusal gives its exit code and message, and leaves the agent root byte-identical
/// (here: an existing agent root holding an administrator's agent.conf without a registration).
#[test]
fn failures_give_their_exit_code_and_leave_the_agent_root_byte_identical() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let p384_ca = manager
        .add_external_ca(&test_ca_pem("ca-p384").unwrap(), "p384-not-trusted")
        .unwrap();
    // A token for one client, used up by a first registration.
    let exhausted = manager
        .create_token(&manager_ca_id(&manager, "ext-rsa"), Some(1), "")
        .unwrap();
    {
        let set = copy_vector("good", "rsa3072-sha256-traditional-aes128").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let output = register_host(
            scratch.path(),
            &[
                "--token",
                &exhausted,
                "--agent",
                "first",
                "--extcertdir",
                set.path().to_str().unwrap(),
                "--cm-ca",
                manager.web_ca_path().to_str().unwrap(),
                &manager.host_port(),
            ],
            &[],
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    }
    let untrusted_token = manager.create_token(&p384_ca, None, "").unwrap();
    let wrong_ca = test_support::testdata().join("pki/other-ca/ca.pem");
    let cases = [
        Failure {
            name: "wrong passphrase",
            vector: ("bad", "wrong-passphrase-pkcs8"),
            expected_code: 3,
            expected_text: "passphrase does not decrypt",
        },
        Failure {
            name: "unencrypted key",
            vector: ("bad", "unencrypted-key-pkcs8"),
            expected_code: 3,
            expected_text: "not encrypted",
        },
        Failure {
            name: "sha1 certificate",
            vector: ("bad", "signature-sha1-with-rsa"),
            expected_code: 3,
            expected_text: "sha1WithRSAEncryption",
        },
        Failure {
            name: "expired certificate",
            vector: ("bad", "expired"),
            expected_code: 3,
            expected_text: "expired",
        },
        Failure {
            name: "wrong token",
            vector: ("good", RSA_PKCS8),
            expected_code: 4,
            expected_text: "NCERRInvalidRegToken",
        },
        Failure {
            name: "exhausted token",
            vector: ("good", RSA_PKCS8),
            expected_code: 4,
            expected_text: "NCERRRegTokenExhausted",
        },
        Failure {
            name: "CA not trusted by the web interface",
            vector: ("good", "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256"),
            expected_code: 5,
            expected_text: "TLS",
        },
        Failure {
            name: "wrong --cm-ca",
            vector: ("good", RSA_PKCS8),
            expected_code: 5,
            expected_text: "TLS",
        },
        Failure {
            name: "wrong fingerprint",
            vector: ("good", RSA_PKCS8),
            expected_code: 5,
            expected_text: "not the pinned",
        },
        Failure {
            name: "manager not listening",
            vector: ("good", RSA_PKCS8),
            expected_code: 5,
            expected_text: "cannot connect",
        },
    ];
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    for case in cases {
        let set = copy_vector(case.vector.0, case.vector.1).unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("vmd/etc")).unwrap();
        std::fs::write(
            root.path().join("vmd/etc/agent.conf"),
            "# prepared by the admin\nCUSTOM=1\n",
        )
        .unwrap();
        let before = snapshot_tree(root.path());
        let used_token = match case.name {
            "wrong token" => "not-a-token".to_string(),
            "exhausted token" => exhausted.clone(),
            "CA not trusted by the web interface" => untrusted_token.clone(),
            _ => token.clone(),
        };
        let ca = match case.name {
            "wrong --cm-ca" => wrong_ca.clone(),
            _ => manager.web_ca_path(),
        };
        let target = match case.name {
            "manager not listening" => closed_port.clone(),
            _ => manager.host_port(),
        };
        let mut arguments = vec![
            "--token".to_string(),
            used_token.clone(),
            "--agent".to_string(),
            "h".to_string(),
            "--extcertdir".to_string(),
            set.path().display().to_string(),
        ];
        if case.name == "wrong fingerprint" {
            arguments.extend(["--cm-fingerprint".to_string(), "ab".repeat(32)]);
        } else {
            arguments.extend(["--cm-ca".to_string(), ca.display().to_string()]);
        }
        arguments.push(target);
        let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
        let output = register_host(root.path(), &arguments, &[]);
        let all = text(&output);
        assert_eq!(
            output.status.code(),
            Some(case.expected_code),
            "{}: {all}",
            case.name
        );
        assert!(all.contains(case.expected_text), "{}: {all}", case.name);
        assert_eq!(
            snapshot_tree(root.path()),
            before,
            "{}: the agent root changed",
            case.name
        );
        assert!(
            set.path().join("client_cert.pem").exists(),
            "{}: input removed",
            case.name
        );
        assert!(
            !all.contains(&used_token) || used_token.is_empty(),
            "{}: token in output",
            case.name
        );
    }
}

fn manager_ca_id(manager: &Manager, name: &str) -> String {
    let ca = manager
        .call("GET", &format!("/api/v1/ca/external-cas/{name}"), None, 200)
        .unwrap();
    ca["id"].as_str().unwrap().to_string()
}

#[test]
fn usage_errors_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let output = register_host(root.path(), &["--token", "t", "cm:443"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("EXTERNAL_CERT_DIR"));
    let output = register_host(root.path(), &["--bogus"], &[]);
    assert_eq!(output.status.code(), Some(2));
}

/// A manager that accepts the TCP connection and then says nothing (a hung service, a firewall
/// that swallows packets after the handshake): with the default timeouts `register_host` gives up
/// with exit 5 well under a minute, and changes nothing.
#[test]
fn a_manager_that_accepts_and_never_answers_ends_with_exit_5_within_a_minute() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Keep every accepted connection open and silent until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => held.push(stream),
                Err(_) => break,
            }
        }
    });
    let set = copy_vector("good", RSA_PKCS8).unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("vmd/etc")).unwrap();
    std::fs::write(root.path().join("vmd/etc/agent.conf"), "CUSTOM=1\n").unwrap();
    let before = snapshot_tree(root.path());
    let started = std::time::Instant::now();
    let fingerprint = "ab".repeat(32);
    let output = register_host(
        root.path(),
        &[
            "--token",
            "a-token-that-is-never-sent",
            "--extcertdir",
            &set.path().display().to_string(),
            "--cm-fingerprint",
            &fingerprint,
            &address,
        ],
        &[],
    );
    let elapsed = started.elapsed();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(5), "{all}");
    // The TLS handshake never completes: the connection-setup timeout (5 s) is the one that
    // expires, and the message says so rather than the 20 s request timeout.
    assert!(all.contains("did not answer within 5 s"), "{all}");
    assert!(
        elapsed < std::time::Duration::from_secs(60),
        "took {elapsed:?}: {all}"
    );
    assert_eq!(snapshot_tree(root.path()), before, "the agent root changed");
    assert!(!all.contains("a-token-that-is-never-sent"), "{all}");
}

/// The token never needs to be on the command line: from a file (mode warned), from standard
/// input, from REG_TOKEN. While register_host runs (held by a relay that delays the manager's
/// answer), its argv as every local user sees it in /proc holds no token.
#[cfg(target_os = "linux")]
#[test]
fn the_token_comes_from_a_file_standard_input_or_the_environment_never_from_argv() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use test_support::relay::{Fault, FaultRelay, Rule};

    let manager = Manager::start().unwrap();
    let ca = manager
        .add_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext-p384")
        .unwrap();
    manager.trust_external_ca(&ca).unwrap();
    manager.restart_web().unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let issuer = test_support::test_ca("ca-p384").unwrap();
    // A certificate of its own for each host: the manager holds one certificate for one client.
    let fresh_set = |host: &str| {
        let set = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        test_support::issue_set(
            &issuer,
            test_pki::KeyType::P384,
            &format!("{host}.example"),
            (
                now - Duration::from_secs(3600),
                now + Duration::from_secs(30 * 86_400),
            ),
            set.path(),
            "test-only-token-source-passphrase",
        )
        .unwrap();
        set
    };
    for source in ["file", "stdin", "env"] {
        let token = manager.create_token(&ca, None, "1h").unwrap();
        let set = fresh_set(&format!("host-{source}"));
        relay.add_identity_dir(set.path()).unwrap();
        relay.push_rule(
            Rule::new(
                "/client-management/clients",
                Fault::DelayReply(Duration::from_secs(2)),
            )
            .with_method("POST"),
        );
        let root = tempfile::tempdir().unwrap();
        let token_file = root.path().join("token.txt");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let agent_root = root.path().join("agent");
        let mut command = Command::new(env!("CARGO_BIN_EXE_register_host"));
        command
            .arg("--agent-root")
            .arg(&agent_root)
            .args(["--agent", &format!("host-{source}"), "--extcertdir"])
            .arg(set.path())
            .arg("--cm-ca")
            .arg(relay.ca_path())
            .env_remove("EXTERNAL_CERT_DIR")
            .env_remove("REG_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match source {
            "file" => {
                command.arg("--token-file").arg(&token_file);
            }
            "stdin" => {
                command.args(["--token", "-"]);
            }
            _ => {
                command.env("REG_TOKEN", &token);
            }
        }
        command.arg(relay.url());
        let mut child = command.spawn().unwrap();
        if source == "stdin" {
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{token}").unwrap();
        }
        // While it waits for the manager, its command line is what `ps` shows everyone.
        let started = Instant::now();
        let mut seen = 0;
        while started.elapsed() < Duration::from_millis(1500) {
            if let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", child.id())) {
                assert!(
                    !String::from_utf8_lossy(&cmdline).contains(&token),
                    "{source}: the token is in argv"
                );
                seen += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(seen > 0, "{source}: the process was never seen running");
        let output = child.wait_with_output().unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(0), "{source}: {all}");
        assert!(!all.contains(&token), "{source}: the token was printed");
        if source == "file" {
            assert!(
                all.contains("chmod 600"),
                "{source}: no mode warning: {all}"
            );
        }
        assert!(
            !all.contains("visible to other local users"),
            "{source}: {all}"
        );
        relay.clear_rules();
    }
    // A token on the command line still works, with a note saying why not to.
    let token = manager.create_token(&ca, None, "1h").unwrap();
    let set = fresh_set("host-argv");
    let root = tempfile::tempdir().unwrap();
    let output = register_host(
        root.path(),
        &[
            "--token",
            &token,
            "--agent",
            "host-argv",
            "--extcertdir",
            set.path().to_str().unwrap(),
            "--cm-ca",
            manager.web_ca_path().to_str().unwrap(),
            &manager.host_port(),
        ],
        &[],
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("visible to other local users"), "{all}");
}
