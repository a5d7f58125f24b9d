//! The TPM key protector end to end (issue 23), with the real binaries, the real emulator and a
//! real TPM 2.0 implementation (swtpm, started on loopback; SKIPPED without it or without the
//! `tpm` feature, which `cargo xtask ci` turns on).

#![cfg(all(feature = "tpm", target_os = "linux"))]

mod common;

use std::path::Path;
use std::process::Command;

use common::{issue_for_days, register_host_command, sibling_binary, text, trust_test_ca};
use test_support::swtpm::Swtpm;
use test_support::{Manager, key_files};

fn vmd_once(root: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root)
        .arg("--once")
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .output()
        .unwrap()
}

/// A host with a TPM (swtpm), the emulator with the test CA trusted, a token, a certificate set
/// valid for a number of days, and an empty agent root. `None` (SKIPPED) without swtpm.
struct TpmHost {
    tpm: Swtpm,
    manager: Manager,
    token: String,
    ca: test_pki::CertificateAuthority,
    set: tempfile::TempDir,
    root: tempfile::TempDir,
    _state: tempfile::TempDir,
}

impl TpmHost {
    fn start(days: u32) -> Option<TpmHost> {
        let state = tempfile::tempdir().unwrap();
        let Some(tpm) = Swtpm::start(state.path()) else {
            eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
            return None;
        };
        let manager = Manager::start().unwrap();
        let (token, ca) = trust_test_ca(&manager, "ca-p384");
        let set = tempfile::tempdir().unwrap();
        issue_for_days(&ca, "host1.example", days, set.path());
        Some(TpmHost {
            tpm,
            manager,
            token,
            ca,
            set,
            root: tempfile::tempdir().unwrap(),
            _state: state,
        })
    }

    /// `register_host` with `--key-protector protector` (and this TPM's TCTI for `tpm`); it
    /// must succeed.
    fn register(&self, protector: &str) -> std::process::Output {
        self.register_with(protector, &[])
    }

    /// As [`TpmHost::register`], with more arguments.
    fn register_with(&self, protector: &str, more: &[&str]) -> std::process::Output {
        let tcti = self.tpm.tcti();
        let mut extra = vec!["--key-protector", protector];
        if protector == "tpm" {
            extra.extend(["--tpm-tcti", &tcti]);
        }
        extra.extend(more);
        let output = register_host_command(
            &self.manager,
            &self.token,
            "host1",
            self.set.path(),
            self.root.path(),
            &extra,
        )
        .output()
        .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        output
    }
}

#[test]
fn register_and_renew_with_the_tpm_and_a_copied_root_cannot_log_in_elsewhere() {
    let Some(host) = TpmHost::start(30) else {
        return;
    };
    let (tpm, ca, set, root) = (&host.tpm, &host.ca, &host.set, &host.root);
    let registered = host.register("tpm");
    assert!(
        text(&registered).contains("sealed by this host's TPM"),
        "{}",
        text(&registered)
    );
    assert_eq!(key_files(root.path()), ["000001.tpm"]);
    let conf = std::fs::read_to_string(root.path().join("vmd/etc/agent.conf")).unwrap();
    assert!(conf.contains("KEY_PROTECTOR=tpm"), "{conf}");

    // A renewal seals the new generation with the TPM too.
    issue_for_days(ca, "host1.example", 400, set.path());
    let renewed = vmd_once(root.path());
    assert!(renewed.status.success(), "{}", text(&renewed));
    assert!(
        key_files(root.path()).contains(&"000002.tpm".to_owned()),
        "{:?}",
        key_files(root.path())
    );
    assert!(
        !key_files(root.path())
            .iter()
            .any(|name| name.ends_with(".key"))
    );

    // The whole agent root on another host (another TPM): refused as sealed elsewhere, with
    // the fix; nothing deleted.
    let other_host = tempfile::tempdir().unwrap();
    let other_tpm = Swtpm::start(other_host.path()).unwrap();
    let copy = tempfile::tempdir().unwrap();
    copy_tree(root.path(), copy.path());
    let conf_path = copy.path().join("vmd/etc/agent.conf");
    let conf = std::fs::read_to_string(&conf_path)
        .unwrap()
        .replace(&tpm.tcti(), &other_tpm.tcti());
    std::fs::write(&conf_path, conf).unwrap();
    let before = key_files(copy.path());
    let refused = vmd_once(copy.path());
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        text(&refused).contains("sealed on another host"),
        "{}",
        text(&refused)
    );
    assert_eq!(key_files(copy.path()), before);
    // The original host still works.
    let again = vmd_once(root.path());
    assert!(again.status.success(), "{}", text(&again));
}

/// Copies a folder tree with its modes.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
        std::fs::set_permissions(&target, entry.metadata().unwrap().permissions()).unwrap();
    }
}

fn vmutil_status(root: &Path, extra: &[&str]) -> String {
    let output = Command::new(sibling_binary("vmutil"))
        .arg("--agent-root")
        .arg(root)
        .args(["-a", "vmd", "status"])
        .args(extra)
        .env_remove("CTE_AGENT_ROOT")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8(output.stdout).unwrap()
}

/// A host registered with key files moves to the TPM at its next renewal: the new generation
/// is sealed, the previous one keeps its key file until it is discarded; `vmutil status` (text,
/// JSON, Prometheus) says which protector holds each.
#[test]
fn a_file_protected_host_moves_to_the_tpm_at_its_next_renewal_and_status_shows_each_protector() {
    let Some(host) = TpmHost::start(30) else {
        return;
    };
    let (tpm, ca, set, root) = (&host.tpm, &host.ca, &host.set, &host.root);
    let registered = host.register("file");
    assert!(
        text(&registered).contains("in a key file"),
        "{}",
        text(&registered)
    );
    assert_eq!(key_files(root.path()), ["000001.key"]);
    assert!(
        vmutil_status(root.path(), &["--prometheus"])
            .contains("cte_agent_key_protector{generation=\"current\",protector=\"file\"} 1")
    );

    // The administrator chooses the TPM; the next renewal seals the new generation with it.
    let conf_path = root.path().join("vmd/etc/agent.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap().replace(
        "KEY_PROTECTOR=file",
        &format!("KEY_PROTECTOR=tpm\nTPM_TCTI={}", tpm.tcti()),
    );
    std::fs::write(&conf_path, conf).unwrap();
    issue_for_days(ca, "host1.example", 400, set.path());
    let renewed = vmd_once(root.path());
    assert!(renewed.status.success(), "{}", text(&renewed));
    assert_eq!(key_files(root.path()), ["000001.key", "000002.tpm"]);

    let shown = vmutil_status(root.path(), &[]);
    assert!(
        shown.contains("current") && shown.contains("(key: tpm)"),
        "{shown}"
    );
    assert!(
        shown.contains("previous") && shown.contains("(key: file)"),
        "{shown}"
    );
    assert!(shown.contains("sealed by the TPM"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&vmutil_status(root.path(), &["--json"])).unwrap();
    let protectors: Vec<(String, String)> = json["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|generation| {
            (
                generation["role"].as_str().unwrap().to_owned(),
                generation["key_protector"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        protectors.contains(&("current".to_owned(), "tpm".to_owned())),
        "{protectors:?}"
    );
    assert!(
        protectors.contains(&("previous".to_owned(), "file".to_owned())),
        "{protectors:?}"
    );
    let prometheus = vmutil_status(root.path(), &["--prometheus"]);
    for series in [
        "cte_agent_key_protector{generation=\"current\",protector=\"tpm\"} 1",
        "cte_agent_key_protector{generation=\"current\",protector=\"file\"} 0",
        "cte_agent_key_protector{generation=\"previous\",protector=\"file\"} 1",
        "cte_agent_key_protector{generation=\"previous\",protector=\"tpm\"} 0",
    ] {
        assert!(prometheus.contains(series), "{series} in\n{prometheus}");
    }
    // Still healthy on the next check.
    let again = vmd_once(root.path());
    assert!(again.status.success(), "{}", text(&again));
}

/// `vmutil -a vmd rekey` moves the current generation to the TPM at once; a crash at each of its
/// steps (simulated in process: the step panics, as a kill would stop it there) leaves a key that
/// opens, and running it again finishes the move.
#[test]
fn rekey_moves_the_current_key_to_the_tpm_and_a_crash_at_each_step_leaves_a_usable_identity() {
    let Some(host) = TpmHost::start(30) else {
        return;
    };
    let (tpm, manager, token, ca) = (&host.tpm, &host.manager, &host.token, &host.ca);
    for crash_at in [
        None,
        Some("rekey-loaded"),
        Some("rekey-sealed"),
        Some("rekey-removed"),
    ] {
        let set = tempfile::tempdir().unwrap();
        issue_for_days(ca, "host1.example", 30, set.path());
        let root = tempfile::tempdir().unwrap();
        let name = format!("rekey-{}", crash_at.unwrap_or("none"));
        common::register(manager, token, &name, set.path(), root.path());
        assert_eq!(key_files(root.path()), ["000001.key"]);
        let conf_path = root.path().join("vmd/etc/agent.conf");
        let conf = std::fs::read_to_string(&conf_path).unwrap().replace(
            "KEY_PROTECTOR=auto",
            &format!("KEY_PROTECTOR=tpm\nTPM_TCTI={}", tpm.tcti()),
        );
        std::fs::write(&conf_path, conf).unwrap();
        let agent_root = agent::paths::AgentRoot::new(root.path());
        if let Some(point) = crash_at {
            agent::fault::set_thread_hook(move |reached| {
                if reached == point {
                    panic!("crash at {point}");
                }
            });
            let crashed = std::panic::catch_unwind(|| agent::rekey::rekey(&agent_root));
            agent::fault::clear_thread_hook();
            assert!(crashed.is_err(), "{point} was not reached");
            // The identity opens, whichever copies the crash left.
            let healthy = vmd_once(root.path());
            assert!(
                healthy.status.success(),
                "after a crash at {point}: {}",
                text(&healthy)
            );
        }
        let output = Command::new(sibling_binary("vmutil"))
            .arg("--agent-root")
            .arg(root.path())
            .args(["-a", "vmd", "rekey"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        assert_eq!(
            key_files(root.path()),
            ["000001.tpm"],
            "after {crash_at:?}: {}",
            text(&output)
        );
        let healthy = vmd_once(root.path());
        assert!(healthy.status.success(), "{}", text(&healthy));
        let again = Command::new(sibling_binary("vmutil"))
            .arg("--agent-root")
            .arg(root.path())
            .args(["-a", "vmd", "rekey"])
            .output()
            .unwrap();
        assert!(text(&again).contains("nothing to do"), "{}", text(&again));
    }
}

/// The daemon opens the key with agent.conf's TPM settings (`TPM_TCTI`) from its start: it
/// starts, sends its first heartbeat, and stops on SIGTERM.
#[test]
fn the_daemon_starts_with_a_key_sealed_by_a_tpm_reached_through_tpm_tcti() {
    let Some(host) = TpmHost::start(300) else {
        return;
    };
    let root = &host.root;
    host.register("tpm");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root.path())
        .env_remove("CTE_AGENT_ROOT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let heartbeat = root.path().join("vmd/run/heartbeat.json");
    let started = std::time::Instant::now();
    while !heartbeat.exists() {
        if let Some(status) = daemon.try_wait().unwrap() {
            let output = daemon.wait_with_output().unwrap();
            panic!("the daemon stopped ({status}): {}", text(&output));
        }
        assert!(started.elapsed().as_secs() < 30, "no heartbeat in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    let output = daemon.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

/// `--tpm-pcrs` binds the key at registration (agent.conf records it); with the binding
/// removed from agent.conf, `rekey` seals the key again without it, once. A PCR list that is not
/// one is refused naming the flag or the key.
#[test]
fn a_pcr_binding_is_chosen_at_registration_and_rekey_seals_again_when_it_changes() {
    let Some(host) = TpmHost::start(30) else {
        return;
    };
    let root = host.root.path();
    let refused = register_host_command(
        &host.manager,
        &host.token,
        "host1",
        host.set.path(),
        root,
        &["--key-protector", "tpm", "--tpm-pcrs", "7,24"],
    )
    .output()
    .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--tpm-pcrs"), "{}", text(&refused));
    assert!(
        text(&refused).contains("from 0 to 23"),
        "{}",
        text(&refused)
    );

    host.register_with("tpm", &["--tpm-pcrs", "16"]);
    let conf_path = root.join("vmd/etc/agent.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert!(conf.lines().any(|line| line == "TPM_PCRS=16"), "{conf}");
    let sealed = || std::fs::read(root.join("vmd/keys/000001.tpm")).unwrap();
    assert!(sealed().starts_with(b"CTE-TPM-SEALED-KEY 2\n"));
    let healthy = vmd_once(root);
    assert!(healthy.status.success(), "{}", text(&healthy));

    let rekey = || {
        Command::new(sibling_binary("vmutil"))
            .arg("--agent-root")
            .arg(root)
            .args(["-a", "vmd", "rekey"])
            .output()
            .unwrap()
    };
    let unchanged = rekey();
    assert!(
        text(&unchanged).contains("nothing to do"),
        "{}",
        text(&unchanged)
    );

    let unbound: String = conf
        .lines()
        .filter(|line| !line.starts_with("TPM_PCRS="))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&conf_path, &unbound).unwrap();
    let resealed = rekey();
    assert!(resealed.status.success(), "{}", text(&resealed));
    assert!(
        text(&resealed).contains("key sealed again by the tpm protector"),
        "{}",
        text(&resealed)
    );
    assert!(sealed().starts_with(b"CTE-TPM-SEALED-KEY 1\n"));
    assert_eq!(key_files(root), ["000001.tpm"]);
    assert!(text(&rekey()).contains("nothing to do"));
    let healthy = vmd_once(root);
    assert!(healthy.status.success(), "{}", text(&healthy));

    std::fs::write(&conf_path, format!("{unbound}TPM_PCRS=seven\n")).unwrap();
    let misconfigured = vmd_once(root);
    assert!(!misconfigured.status.success());
    assert!(
        text(&misconfigured).contains("TPM_PCRS"),
        "{}",
        text(&misconfigured)
    );
}

/// The TPM gone after registration (a VM moved to a host without one): the check fails naming
/// the protector, the generation and the fix, the agent reports itself unhealthy, and nothing
/// is deleted; with the TPM back (its state kept), the same identity works again.
#[test]
fn a_tpm_gone_after_registration_is_reported_unhealthy_and_its_return_restores_the_identity() {
    let Some(host) = TpmHost::start(300) else {
        return;
    };
    host.register("tpm");
    let TpmHost {
        tpm,
        manager: _manager,
        root,
        _state: state,
        ..
    } = host;
    let old_tcti = tpm.tcti();
    let before = test_support::snapshot_tree(&root.path().join("vmd/keys"));
    tpm.stop();

    let refused = vmd_once(root.path());
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    for words in [
        "[CGP3007E] renewal check failed:",
        "the tpm key protector cannot open generation 1",
        "no TPM answers through",
        "register the host again",
    ] {
        assert!(
            text(&refused).contains(words),
            "{words}: {}",
            text(&refused)
        );
    }
    let prometheus = vmutil_status(root.path(), &["--prometheus"]);
    assert!(
        prometheus.contains("cte_agent_healthy 0"),
        "expected unhealthy:\n{prometheus}"
    );
    assert_eq!(
        test_support::snapshot_tree(&root.path().join("vmd/keys")),
        before
    );

    let tpm = Swtpm::start(state.path()).unwrap();
    let conf_path = root.path().join("vmd/etc/agent.conf");
    let conf = std::fs::read_to_string(&conf_path)
        .unwrap()
        .replace(&old_tcti, &tpm.tcti());
    std::fs::write(&conf_path, conf).unwrap();
    let restored = vmd_once(root.path());
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(vmutil_status(root.path(), &["--prometheus"]).contains("cte_agent_healthy 1"));
}
