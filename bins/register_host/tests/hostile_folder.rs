//! A writer of the certificate folder against the real `register_host` binary: a symbolic link
//! swapped in during `--shred-input` (while a relay holds the manager's answer back), links to
//! `/dev/zero` and to FIFOs, and folders writable by everyone.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_support::relay::{Fault, FaultRelay, Rule};
use test_support::{Manager, copy_vector, snapshot_tree, test_ca_pem};

const RSA_PKCS8: &str = "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256";
const FILES: [&str; 3] = ["client_cert.pem", "client_key.pem", "passphrase"];
const REGISTER: &str = "/api/v1/client-management/clients/";

fn register_host(root: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_register_host"));
    command
        .arg("--agent-root")
        .arg(root)
        .args(arguments)
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT");
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The attack, made deterministic: the relay holds the manager's answer to the
/// registration for 3 s; as soon as the manager has committed it, the test (a writer of the
/// folder) moves the real key aside and puts a symbolic link to a victim file in its place. The
/// victim must stay untouched, the real key must be reported as not shredded (and is indeed
/// still there, unchanged), the two other files are shredded, and the exit code is 0 since the
/// registration itself is done.
#[test]
fn a_key_swapped_for_a_link_during_shred_input_is_not_shredded_and_the_victim_is_untouched() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let relay = FaultRelay::in_front_of(&manager).unwrap();
    let set = copy_vector("good", RSA_PKCS8).unwrap();
    relay.add_identity_dir(set.path()).unwrap();
    relay.push_rule(
        Rule::new(REGISTER, Fault::DelayReply(Duration::from_secs(3))).with_method("POST"),
    );
    let key = set.path().join("client_key.pem");
    let key_bytes = std::fs::read(&key).unwrap();
    let aside = set.path().join(".client_key.pem.moved");
    // Stands for a root-owned file elsewhere (/etc/shadow in the issue).
    let victim_folder = tempfile::tempdir().unwrap();
    let victim = victim_folder.path().join("victim");
    let victim_bytes = b"root:$6$precious-hash:19000:0:99999:7:::\n".repeat(50);
    std::fs::write(&victim, &victim_bytes).unwrap();

    let root = tempfile::tempdir().unwrap();
    let command = register_host(
        root.path(),
        &[
            "--json",
            "--shred-input",
            "--token",
            &token,
            "--agent",
            "host1",
            "--extcertdir",
            set.path().to_str().unwrap(),
            "--cm-ca",
            relay.ca_path().to_str().unwrap(),
            relay.url(),
        ],
    );
    let child =
        std::thread::spawn(move || test_support::run_within(command, Duration::from_secs(60)));
    // Wait until the manager committed the registration (logged before the delayed answer).
    let started = Instant::now();
    while !relay
        .exchanges()
        .iter()
        .any(|exchange| exchange.method == "POST" && exchange.path.contains(REGISTER))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the registration never reached the relay"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::rename(&key, &aside).unwrap();
    std::os::unix::fs::symlink(&victim, &key).unwrap();
    let output = child.join().unwrap();
    let all = text(&output);

    assert_eq!(output.status.code(), Some(0), "{all}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        victim_bytes,
        "the victim was written"
    );
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        key_bytes,
        "the real key was changed"
    );
    assert!(
        std::fs::symlink_metadata(&key)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was removed"
    );
    for file in ["client_cert.pem", "passphrase"] {
        assert!(!set.path().join(file).exists(), "{file} was not removed");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("WARNING: {} was NOT shredded", key.display())),
        "{all}"
    );
    assert!(stderr.contains("symbolic link"), "{all}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["input_shredded"], false, "{report}");
    let not_shredded = report["shred"]["not_shredded"].as_array().unwrap();
    assert_eq!(not_shredded.len(), 1, "{report}");
    assert_eq!(not_shredded[0]["path"], key.to_str().unwrap());
    let shredded: Vec<&str> = report["shred"]["shredded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| path.as_str().unwrap())
        .collect();
    assert_eq!(
        shredded,
        [
            set.path().join("client_cert.pem").to_str().unwrap(),
            set.path().join("passphrase").to_str().unwrap()
        ]
    );
    assert_eq!(manager.clients().unwrap().len(), 1);
}

/// Links to `/dev/zero` and to a FIFO (and a FIFO itself) in place of each input file: refused
/// promptly, naming the file, exit 3, the agent root byte-identical, nothing sent.
#[test]
fn links_to_dev_zero_and_fifos_for_each_input_file_end_promptly() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("vmd/etc")).unwrap();
    std::fs::write(root.path().join("vmd/etc/agent.conf"), "# prepared\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let fifo = elsewhere.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for file in FILES {
        for (target, needle) in [
            (Some(PathBuf::from("/dev/zero")), "symbolic link"),
            (Some(fifo.clone()), "symbolic link"),
            (None, "a FIFO"),
        ] {
            let set = copy_vector("good", RSA_PKCS8).unwrap();
            let path = set.path().join(file);
            std::fs::remove_file(&path).unwrap();
            match &target {
                Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
                None => assert!(
                    Command::new("mkfifo")
                        .arg(&path)
                        .status()
                        .unwrap()
                        .success()
                ),
            }
            let before = snapshot_tree(root.path());
            let output = test_support::run_within(
                register_host(
                    root.path(),
                    &[
                        "--token",
                        "test-only-token",
                        "--extcertdir",
                        set.path().to_str().unwrap(),
                        "--cm-fingerprint",
                        &"00".repeat(32),
                        // Never contacted: the folder is refused first.
                        "127.0.0.1:9",
                    ],
                ),
                Duration::from_secs(20),
            );
            let all = text(&output);
            assert_eq!(output.status.code(), Some(3), "{file} {target:?}: {all}");
            assert!(
                all.contains(&format!("{}: ", path.display())) && all.contains(needle),
                "{file} {target:?}: {all}"
            );
            assert_eq!(snapshot_tree(root.path()), before, "the agent root changed");
        }
    }
}

#[test]
fn a_folder_writable_by_everyone_is_refused_with_the_chmod_fix_unless_sticky() {
    let manager = Manager::start().unwrap();
    let token = manager
        .setup_external_ca(&test_ca_pem("ca-rsa").unwrap(), "ext-rsa")
        .unwrap();
    let set = copy_vector("good", RSA_PKCS8).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (web_ca, host_port) = (manager.web_ca_path(), manager.host_port());
    let arguments = [
        "--token",
        &token,
        "--agent",
        "host1",
        "--extcertdir",
        set.path().to_str().unwrap(),
        "--cm-ca",
        web_ca.to_str().unwrap(),
        &host_port,
    ];
    std::fs::set_permissions(set.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = snapshot_tree(root.path());
    let output = test_support::run_within(
        register_host(root.path(), &arguments),
        Duration::from_secs(20),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(3), "{all}");
    assert!(
        all.contains(&format!("chmod 700 {}", set.path().display())),
        "{all}"
    );
    assert!(all.contains("writable by every user"), "{all}");
    assert_eq!(snapshot_tree(root.path()), before);
    assert!(manager.clients().unwrap().is_empty());

    std::fs::set_permissions(set.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let output = test_support::run_within(
        register_host(root.path(), &arguments),
        Duration::from_secs(60),
    );
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(
        all.contains("writable by group or others (mode 1777)"),
        "{all}"
    );
    assert_eq!(manager.clients().unwrap().len(), 1);
}
