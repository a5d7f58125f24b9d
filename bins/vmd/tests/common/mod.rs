//! What the vmd test files share: certificate sets issued at test time, a host registered
//! in-process with the real emulator (`agent::register::register`, as `register_host` does), and
//! small readers of its state. Each test file uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use agent::paths::AgentRoot;
use agent::register::{ManagerTrust, RegistrationOptions};
use test_pki::{IssuedCertificate, KeyType};
use test_support::Manager;

pub const DAY: Duration = Duration::from_secs(86_400);
/// Test-only secrets, long and distinctive so that a leak is found by a plain search.
pub const PASSPHRASE: &str = "test-only-passphrase-Qx7#hostile";

/// stdout and stderr together.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Another binary of the workspace, built now so a `cargo test -p vmd` never runs a stale copy.
pub fn sibling_binary(name: &str) -> PathBuf {
    test_support::sibling_binary(Path::new(env!("CARGO_BIN_EXE_vmd")), name)
}

/// Issues a certificate valid from `not_before` to `not_after` and writes the three files
/// (key encrypted with [`PASSPHRASE`]) into `directory`.
pub fn issue(
    ca: &test_pki::CertificateAuthority,
    key_type: KeyType,
    common_name: &str,
    not_before: SystemTime,
    not_after: SystemTime,
    directory: &Path,
) -> IssuedCertificate {
    test_support::issue_set(
        ca,
        key_type,
        common_name,
        (not_before, not_after),
        directory,
        PASSPHRASE,
    )
    .unwrap()
}

/// Issues a P-384 set for `common_name`, valid from a day ago for `days` more days, into
/// `directory`.
pub fn issue_for_days(
    ca: &test_pki::CertificateAuthority,
    common_name: &str,
    days: u32,
    directory: &Path,
) -> IssuedCertificate {
    let now = SystemTime::now();
    issue(
        ca,
        KeyType::P384,
        common_name,
        now - DAY,
        now + days * DAY,
        directory,
    )
}

/// The real `register_host` registering `root` as `name` with the set in `set`, trusting the
/// manager's web CA, with `extra` arguments (for example `--key-protector tpm`); the
/// environment's agent root and certificate folder are removed.
pub fn register_host_command(
    manager: &Manager,
    token: &str,
    name: &str,
    set: &Path,
    root: &Path,
    extra: &[&str],
) -> Command {
    let mut command = Command::new(sibling_binary("register_host"));
    command
        .arg("--agent-root")
        .arg(root)
        .args(["--token", token, "--agent", name])
        .args(extra)
        .arg("--extcertdir")
        .arg(set)
        .arg("--cm-ca")
        .arg(manager.web_ca_path())
        .arg(manager.host_port())
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR");
    command
}

/// The SHA-256 fingerprint of an issued certificate, as the store and the manager show it.
pub fn fingerprint(issued: &IssuedCertificate) -> String {
    cert_loading::Fingerprint::of(issued.certificate_der()).to_string()
}

/// Registers the agent root `root` as client `name` with the set in `cert_dir`, in-process and
/// at the real time, trusting the manager's web CA.
pub fn register(manager: &Manager, token: &str, name: &str, cert_dir: &Path, root: &Path) {
    let options = RegistrationOptions {
        manager: manager.host_port(),
        token: token.to_string().into(),
        agent_name: Some(name.to_string()),
        description: String::new(),
        external_cert_dir: cert_dir.to_path_buf(),
        trust: ManagerTrust::CaFile(manager.web_ca_path()),
        shred_input: false,
        force: false,
        proxy: None,
        key_protection: None,
    };
    agent::register::register(&AgentRoot::new(root), &options, SystemTime::now()).unwrap();
}

/// The current certificate's fingerprint in the pem store under `root`.
pub fn current_fingerprint(root: &Path) -> String {
    AgentRoot::new(root)
        .open_store()
        .unwrap()
        .current()
        .unwrap()
        .certificate()
        .fingerprint
        .to_string()
}

/// The agent's log file under `root` (empty when there is none yet).
pub fn log(root: &Path) -> String {
    std::fs::read_to_string(root.join("vmd/log/vorvmd_root.log")).unwrap_or_default()
}

/// Adds the committed test CA `ca_name` to `manager` as an external CA trusted for the web
/// interface (as an administrator does), returning a registration token bound to it and the CA
/// itself, to issue sets with.
pub fn trust_test_ca(manager: &Manager, ca_name: &str) -> (String, test_pki::CertificateAuthority) {
    let token = manager
        .setup_external_ca(&test_support::test_ca_pem(ca_name).unwrap(), "ext")
        .unwrap();
    (token, test_support::test_ca(ca_name).unwrap())
}
