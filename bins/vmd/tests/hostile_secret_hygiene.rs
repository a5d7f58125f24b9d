//! Secret hygiene beyond the per-scenario checks of the other hostile tests: exposed input files
//! are warned about, a full registration and renewal leave no secret anywhere, and every binary
//! makes itself non-dumpable at start.

mod common;
mod hostile;

use std::process::Command;

use hostile::{Host, PASSPHRASE, assert_hygiene, sibling_binary, text};
use test_support::{Manager, copy_vector, test_ca_pem};

#[cfg(unix)]
fn make_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[cfg(unix)]
#[test]
fn key_and_passphrase_files_readable_by_others_are_warned_about() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext")
        .unwrap();
    let set = copy_vector("good", "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256").unwrap();
    for file in ["client_key.pem", "passphrase"] {
        make_readable_by_others(&set.path().join(file));
    }
    let passphrase = std::fs::read_to_string(set.path().join("passphrase")).unwrap();
    let passphrase = passphrase.trim_end();
    let check = Command::new(sibling_binary("vmutil"))
        .args([
            "-a",
            "vmd",
            "-d",
            set.path().to_str().unwrap(),
            "checkcerts",
        ])
        .output()
        .unwrap();
    let all = text(&check);
    assert_eq!(check.status.code(), Some(0), "{all}");
    for file in ["client_key.pem", "passphrase"] {
        let expected = format!(
            "{}: readable by group or others; restrict it with: chmod 600",
            set.path().join(file).display()
        );
        assert!(
            all.contains(&expected),
            "checkcerts: no warning for {file}: {all}"
        );
    }
    let root = tempfile::tempdir().unwrap();
    let output = Command::new(sibling_binary("register_host"))
        .arg("--agent-root")
        .arg(root.path())
        .args([
            "--token",
            &token,
            "--agent",
            "host1",
            "--extcertdir",
            set.path().to_str().unwrap(),
            "--cm-ca",
            manager.web_ca_path().to_str().unwrap(),
            &manager.host_port(),
        ])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(
        all.contains("warning:") && all.contains("passphrase: readable by group or others"),
        "register_host: no warning: {all}"
    );
    assert!(!all.contains(passphrase) && !all.contains(&token));
    let loaded = cert_loading::load_directory(
        set.path(),
        &cert_loading::LoadOptions::default(),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let der = loaded.identity.key().pkcs8_der();
    assert!(test_support::files_containing(root.path(), der).is_empty());
    assert_hygiene(
        "exposed inputs",
        root.path(),
        &[],
        &[passphrase, &token],
        &all,
    );
}

#[test]
fn a_registration_and_a_renewal_leave_no_secret_behind() {
    let host = Host::registered(20);
    let renewal = host.place_renewal();
    let output = host.vmd(&["--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let status = Command::new(sibling_binary("vmutil"))
        .args([
            "--agent-root",
            host.root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "status",
            "--json",
        ])
        .output()
        .unwrap();
    let everything = format!("{}{}{}", text(&output), text(&status), host.log());
    assert_hygiene(
        "registration and renewal",
        host.root.path(),
        &[&host.current, &renewal],
        &[PASSPHRASE, &host.token],
        &everything,
    );
    // The uploaded log records (the manager's copy of the agent's log) hold no secret either.
    let records = serde_json::to_string(&host.manager.client_records().unwrap()).unwrap();
    assert!(!records.contains(PASSPHRASE) && !records.contains(&host.token));
}

#[test]
fn every_binary_makes_itself_non_dumpable_at_start() {
    // The call is the first statement of each main (docs/security.md, "Core dumps").
    for binary in ["register_host", "vmd", "vmutil"] {
        let main = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(binary)
                .join("src/main.rs"),
        )
        .unwrap();
        let body = main.split("fn main() -> ExitCode {").nth(1).unwrap();
        let first_statement = body
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with("//"))
            .unwrap();
        assert_eq!(
            first_statement, "let _ = agent::hardening::restrict_process();",
            "{binary}"
        );
    }
    // And the function does what it says, here in this test process.
    agent::hardening::restrict_process().unwrap();
    #[cfg(target_os = "linux")]
    {
        assert!(agent::hardening::is_restricted());
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let core = limits
            .lines()
            .find(|line| line.starts_with("Max core file size"))
            .unwrap();
        assert!(
            core.split_whitespace().filter(|word| *word == "0").count() == 2,
            "{core}"
        );
    }
}
