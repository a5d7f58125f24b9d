//! `vmutil -a vmd rekey` killed with SIGKILL at each of its steps (issue 23), with the real
//! binaries, the real emulator over TLS and a real TPM 2.0 (swtpm on loopback). After each kill
//! the identity still opens (`vmd --once` succeeds: one protector or the other holds the key),
//! and running `rekey` again finishes the move to the TPM with nothing left behind.
//!
//! The vmutil under test is the one cargo built for these tests, with the agent's crash points
//! (the `fault-injection` dev-dependency); a point that is never reached fails the test. SKIPPED
//! without swtpm; compiled only with the `tpm` feature, which `cargo xtask ci` turns on.

#![cfg(all(feature = "tpm", target_os = "linux"))]

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use test_support::swtpm::Swtpm;
use test_support::{Manager, key_files};

/// Each step of a rekey from the key file to the TPM, in order: the agent's points (the key
/// loaded; the sealed copy written and read back; the key file removed) and the pem store's
/// within them (the sealed file's temporary flushed, renamed into place; the key file unlinked).
const KILL_POINTS: [(&str, &str); 6] = [
    (agent::fault::CRASH_AT_VARIABLE, "rekey-loaded"),
    ("KEYSTORE_CRASH_AT", "stage.key.temporary.synced"),
    ("KEYSTORE_CRASH_AT", "stage.key.renamed"),
    (agent::fault::CRASH_AT_VARIABLE, "rekey-sealed"),
    ("KEYSTORE_CRASH_AT", "prune.key.removed"),
    (agent::fault::CRASH_AT_VARIABLE, "rekey-removed"),
];

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn sibling(name: &str) -> std::path::PathBuf {
    test_support::sibling_binary(Path::new(env!("CARGO_BIN_EXE_vmutil")), name)
}

fn run(binary: &Path, root: &Path, arguments: &[&str], crash: Option<(&str, &str)>) -> Output {
    let mut command = Command::new(binary);
    command
        .arg("--agent-root")
        .arg(root)
        .args(arguments)
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove(agent::fault::CRASH_AT_VARIABLE)
        .env_remove("KEYSTORE_CRASH_AT");
    if let Some((variable, point)) = crash {
        command.env(variable, point);
    }
    command.output().unwrap()
}

/// Registers a new agent root with a key file, then points its agent.conf at the TPM.
fn registered_with_a_key_file(
    manager: &Manager,
    token: &str,
    ca: &test_pki::CertificateAuthority,
    name: &str,
    tcti: &str,
) -> tempfile::TempDir {
    let set = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    test_support::issue_set(
        ca,
        test_pki::KeyType::P384,
        "host1.example",
        (now - day, now + 30 * day),
        set.path(),
        "Secret-Passphrase-1",
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let registered = Command::new(sibling("register_host"))
        .arg("--agent-root")
        .arg(root.path())
        .args(["--token", token, "--agent", name, "--key-protector", "file"])
        .arg("--extcertdir")
        .arg(set.path())
        .arg("--cm-ca")
        .arg(manager.web_ca_path())
        .arg(manager.host_port())
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .output()
        .unwrap();
    assert!(registered.status.success(), "{}", text(&registered));
    assert_eq!(key_files(root.path()), ["000001.key"]);
    let conf_path = root.path().join("vmd/etc/agent.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let conf = conf
        .lines()
        .filter(|line| !line.starts_with("KEY_PROTECTOR=") && !line.starts_with("TPM_TCTI="))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        + &format!("KEY_PROTECTOR=tpm\nTPM_TCTI={tcti}\n");
    std::fs::write(&conf_path, conf).unwrap();
    root
}

#[test]
fn a_rekey_killed_at_each_step_leaves_a_usable_identity_and_a_second_rekey_finishes() {
    let state = tempfile::tempdir().unwrap();
    let Some(tpm) = Swtpm::start(state.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_support::test_ca_pem("ca-p384").unwrap(), "ext")
        .unwrap();
    let ca = test_support::test_ca("ca-p384").unwrap();
    let vmutil = Path::new(env!("CARGO_BIN_EXE_vmutil"));
    let vmd = sibling("vmd");
    for (index, (variable, point)) in KILL_POINTS.into_iter().enumerate() {
        let root = registered_with_a_key_file(
            &manager,
            &token,
            &ca,
            &format!("rekey-killed-{index}"),
            &tpm.tcti(),
        );
        let root = root.path();

        let killed = run(
            vmutil,
            root,
            &["-a", "vmd", "rekey"],
            Some((variable, point)),
        );
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "vmutil rekey was not killed at {point} (is the point reached?): {:?}\n{}",
            killed.status,
            text(&killed)
        );
        let after_kill = key_files(root);
        let usable = run(&vmd, root, &["--once"], None);
        assert!(
            usable.status.success(),
            "killed at {point}, keys {after_kill:?}: vmd --once failed\n{}",
            text(&usable)
        );

        let finished = run(vmutil, root, &["-a", "vmd", "rekey"], None);
        assert!(
            finished.status.success(),
            "rekey after a kill at {point}: {}",
            text(&finished)
        );
        assert_eq!(
            key_files(root),
            ["000001.tpm"],
            "after a kill at {point} (keys were {after_kill:?}) and a second rekey: {}",
            text(&finished)
        );
        let usable = run(&vmd, root, &["--once"], None);
        assert!(
            usable.status.success(),
            "after a kill at {point} and a second rekey: {}",
            text(&usable)
        );
    }
}
