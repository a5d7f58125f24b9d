//! The real `vmd` (and `vmutil`) binaries renewing against the real emulator over TLS.
//!
//! Certificates are issued at test time by the committed test CAs (testdata/pki) with short
//! lifetimes, so the real clock is inside the 60-day renewal window without sleeping.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{DAY, sibling_binary, text};
use test_pki::KeyType;
use test_support::{Manager, snapshot_tree};

struct Host {
    manager: Manager,
    root: tempfile::TempDir,
    cert_dir: tempfile::TempDir,
    ca: test_pki::CertificateAuthority,
    key_type: KeyType,
}

impl Host {
    /// A host registered with a certificate that expires in `days_left` days.
    fn registered(ca_name: &str, key_type: KeyType, days_left: u64) -> Host {
        let manager = Manager::start().unwrap();
        let (token, ca) = crate::common::trust_test_ca(&manager, ca_name);
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        issue(
            &ca,
            key_type,
            "host1.example",
            now - DAY,
            now + DAY * days_left as u32,
            cert_dir.path(),
        );
        let root = tempfile::tempdir().unwrap();
        common::register(&manager, &token, "host1", cert_dir.path(), root.path());
        Host {
            manager,
            root,
            cert_dir,
            ca,
            key_type,
        }
    }

    /// Replaces the set in the certificate folder.
    fn place(&self, common_name: &str, not_after: SystemTime) -> String {
        let now = SystemTime::now();
        issue(
            &self.ca,
            self.key_type,
            common_name,
            now - DAY,
            not_after,
            self.cert_dir.path(),
        )
    }

    fn vmd(&self, arguments: &[&str], environment: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmd"));
        command
            .arg("--agent-root")
            .arg(self.root.path())
            .args(arguments);
        for (key, value) in environment {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn current_fingerprint(&self) -> String {
        common::current_fingerprint(self.root.path())
    }

    fn manager_fingerprint(&self) -> String {
        self.manager.clients().unwrap()[0]["cert_fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn log(&self) -> String {
        common::log(self.root.path())
    }
}

/// Issues a certificate and writes the three files; returns the SHA-256 fingerprint.
fn issue(
    ca: &test_pki::CertificateAuthority,
    key_type: KeyType,
    common_name: &str,
    not_before: SystemTime,
    not_after: SystemTime,
    directory: &Path,
) -> String {
    common::fingerprint(&common::issue(
        ca,
        key_type,
        common_name,
        not_before,
        not_after,
        directory,
    ))
}

fn renewal_is_accepted(ca: &str, key_type: KeyType) {
    let host = Host::registered(ca, key_type, 20);
    let old = host.current_fingerprint();
    let new = host.place("host1.example", SystemTime::now() + 400 * DAY);
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(host.current_fingerprint(), new);
    assert_eq!(host.manager_fingerprint(), new);
    assert_ne!(old, new);
    assert!(
        host.log().contains("[INFO]") && host.log().contains("certificate renewed"),
        "{}",
        host.log()
    );
    let agent_pem = std::fs::read_to_string(host.root.path().join("vmd/pem/agent.pem")).unwrap();
    let chain =
        cert_loading::parse_certificate_pem(Path::new("agent.pem"), agent_pem.as_bytes()).unwrap();
    assert_eq!(cert_loading::Fingerprint::of(&chain[0]).to_string(), new);
    // A second run finds nothing new to do and stays healthy (the new certificate is not due).
    let again = host.vmd(&["--once"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!root_holds_plaintext_key(&host));
}

fn root_holds_plaintext_key(host: &Host) -> bool {
    let identity = agent::paths::AgentRoot::new(host.root.path())
        .open_store()
        .unwrap()
        .current()
        .unwrap();
    !test_support::files_containing(host.root.path(), identity.key().pkcs8_der()).is_empty()
}

#[test]
fn renewal_is_accepted_with_p384() {
    renewal_is_accepted("ca-p384", KeyType::P384);
}

#[test]
fn renewal_is_accepted_with_rsa() {
    renewal_is_accepted("ca-rsa", KeyType::RSA_2048);
}

#[test]
fn no_candidate_logs_a_warning_naming_the_folder_and_uploads_it() {
    let host = Host::registered("ca-p384", KeyType::P384, 20);
    for file in ["client_cert.pem", "client_key.pem", "passphrase"] {
        std::fs::remove_file(host.cert_dir.path().join(file)).unwrap();
    }
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let log = host.log();
    assert!(log.contains("[WARNING]"), "{log}");
    assert!(
        log.contains(&host.cert_dir.path().display().to_string()),
        "{log}"
    );
    assert!(log.contains("days left"), "{log}");
    let records = host.manager.client_records().unwrap();
    assert!(
        records.iter().any(|record| record["level"] == "WARNING"
            && record["message"]
                .as_str()
                .unwrap_or_default()
                .contains("no usable new certificate")),
        "{records:?}"
    );
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.root.path().join("vmd/run/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["result"], "no_candidate");
    assert!(!status["next_check"].as_str().unwrap().is_empty());
}

/// Between renewals the folder normally still holds the set in use: `vmd --once` from cron must
/// stay quiet then (INFO, exit 0, nothing uploaded), not warn every day. `--once` is a health
/// check: it logs in with the current identity, so the result is `healthy` (the manager accepts
/// the identity, renewal not due), not merely `not_due`.
#[test]
fn once_outside_the_window_with_the_current_set_in_the_folder_is_quiet() {
    let host = Host::registered("ca-p384", KeyType::P384, 300);
    let current = host.current_fingerprint();
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let log = host.log();
    assert!(log.contains("[INFO]"), "{log}");
    assert!(log.contains("[CGP2005I]"), "{log}");
    assert!(log.contains("not due"), "{log}");
    assert!(!log.contains("[WARNING]"), "{log}");
    assert!(!log.contains("[ERROR]"), "{log}");
    let records = host.manager.client_records().unwrap();
    assert!(records.is_empty(), "{records:?}");
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.root.path().join("vmd/run/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["result"], "healthy", "{status}");
    assert_eq!(status["healthy"], true, "{status}");
    assert_eq!(status["manager_reached"], true, "{status}");
    assert_eq!(host.current_fingerprint(), current);
    assert_eq!(host.manager_fingerprint(), current);
}

/// The key of the set in the folder is decrypted only when the decision needs it (issue 20,
/// "bounded work"): here the folder still holds the certificate in use, so nothing is to be done
/// with it, and a passphrase that no longer opens its key is never tried. Before the change the
/// key derivation ran at every check and the check reported `unusable_set` (WARNING).
#[test]
fn a_key_the_decision_does_not_need_is_not_decrypted() {
    let host = Host::registered("ca-p384", KeyType::P384, 300);
    std::fs::write(
        host.cert_dir.path().join("passphrase"),
        "not the passphrase of this key\n",
    )
    .unwrap();
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let log = host.log();
    assert!(!log.contains("[WARNING]"), "{log}");
    assert!(!log.contains("passphrase"), "{log}");
    let status: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.root.path().join("vmd/run/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["result"], "healthy", "{status}");
    // A dry run validates the set in full, key included.
    let output = Command::new(sibling_binary("vmutil"))
        .arg("--agent-root")
        .arg(host.root.path())
        .args(["-a", "vmd", "-d"])
        .arg(host.cert_dir.path())
        .args(["updatecerts", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("passphrase does not decrypt"),
        "{}",
        text(&output)
    );
}

/// Before the renewal window, a request (`updatecerts`, `vmd --once`) that finds an unusable set
/// says what is wrong with it (here the passphrase), not "no new certificate set"; nothing is
/// sent and nothing changes. `updatecerts` fails (exit 3); `vmd --once` is a health check and
/// the host is healthy (the identity is accepted, renewal not due), so it exits 0 with a WARNING
/// (CGP3011W) naming the problem.
#[test]
fn requests_before_the_window_name_what_is_wrong_with_the_set() {
    let host = Host::registered("ca-p384", KeyType::P384, 300);
    let current = host.current_fingerprint();
    host.place("host1.example", SystemTime::now() + 700 * DAY);
    std::fs::write(
        host.cert_dir.path().join("passphrase"),
        "not-the-passphrase\n",
    )
    .unwrap();
    let before = snapshot_tree(host.root.path());
    let updatecerts = Command::new(sibling_binary("vmutil"))
        .args([
            "--agent-root",
            host.root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "-d",
            host.cert_dir.path().to_str().unwrap(),
            "updatecerts",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let all = text(&updatecerts);
    assert_eq!(updatecerts.status.code(), Some(3), "{all}");
    assert!(all.contains("passphrase does not decrypt"), "{all}");
    assert!(!all.contains("no new certificate set"), "{all}");
    assert_eq!(
        snapshot_tree(host.root.path()),
        before,
        "dry run changed the agent root"
    );

    let pem_before = snapshot_tree(&host.root.path().join("vmd/pem"));
    let once = host.vmd(&["--once"], &[]);
    let all = text(&once);
    assert_eq!(once.status.code(), Some(0), "{all}");
    assert!(
        all.contains("[WARNING]") && all.contains("[CGP3011W]"),
        "{all}"
    );
    assert!(all.contains("passphrase does not decrypt"), "{all}");
    assert!(
        all.contains(
            &host
                .cert_dir
                .path()
                .join("client_key.pem")
                .display()
                .to_string()
        ),
        "the message does not name the file: {all}"
    );
    assert!(!all.contains("no new certificate set"), "{all}");
    // Nothing was sent: the manager still holds the certificate in use, unchanged.
    assert_eq!(host.manager_fingerprint(), current);
    assert_eq!(host.current_fingerprint(), current);
    assert_eq!(snapshot_tree(&host.root.path().join("vmd/pem")), pem_before);
    assert!(
        !host
            .root
            .path()
            .join("vmd/run/renewal-journal.json")
            .exists()
    );
}

/// Sets refused locally (expiring earlier, wrong passphrase, changed common name) inside the
/// renewal window: nothing is sent, the store stays byte-identical, and the message names the
/// problem. `vmd --once` is a health check: with more than 14 days left the host is still
/// healthy (WARNING, exit 0); with 14 days or less renewal is overdue (ERROR, exit 3).
#[test]
fn candidates_refused_locally_send_nothing_and_change_nothing() {
    for (days_left, code, level) in [(20, 0, "[WARNING]"), (10, 3, "[ERROR]")] {
        let host = Host::registered("ca-p384", KeyType::P384, days_left);
        let before_fingerprint = host.manager_fingerprint();
        let before = snapshot_tree(&host.root.path().join("vmd/pem"));
        let check = |what: &str, needle: &str| {
            let output = host.vmd(&["--once"], &[]);
            let all = text(&output);
            assert_eq!(
                output.status.code(),
                Some(code),
                "{days_left} days, {what}: {all}"
            );
            assert!(all.contains(level), "{days_left} days, {what}: {all}");
            assert!(all.contains(needle), "{days_left} days, {what}: {all}");
            assert!(
                all.contains(&host.cert_dir.path().display().to_string()),
                "{days_left} days, {what}: the folder is not named: {all}"
            );
            assert_eq!(
                snapshot_tree(&host.root.path().join("vmd/pem")),
                before,
                "{days_left} days, {what}: the store changed"
            );
            assert_eq!(
                host.manager_fingerprint(),
                before_fingerprint,
                "{days_left} days, {what}: something was sent"
            );
            assert!(
                !host
                    .root
                    .path()
                    .join("vmd/run/renewal-journal.json")
                    .exists(),
                "{days_left} days, {what}: a journal was left"
            );
            eprintln!(
                "{days_left} days left, {what}: exit {code}, {level}, nothing sent or changed"
            );
        };
        // A candidate expiring earlier than the current certificate.
        host.place(
            "host1.example",
            SystemTime::now() + DAY * (days_left as u32 / 2),
        );
        check("expires earlier", "not later");
        // A candidate whose passphrase file is wrong.
        host.place("host1.example", SystemTime::now() + 400 * DAY);
        std::fs::write(host.cert_dir.path().join("passphrase"), "wrong\n").unwrap();
        check("wrong passphrase", "passphrase does not decrypt");
        // The daemon's own check refuses a changed common name locally too.
        host.place("host2.example", SystemTime::now() + 400 * DAY);
        check("changed common name", "host2.example");
    }
}

#[test]
fn updatecerts_with_a_changed_common_name_shows_the_managers_refusal_and_keeps_the_store() {
    let host = Host::registered("ca-rsa", KeyType::RSA_2048, 20);
    let other = tempfile::tempdir().unwrap();
    issue(
        &host.ca,
        host.key_type,
        "host2.example",
        SystemTime::now() - DAY,
        SystemTime::now() + 400 * DAY,
        other.path(),
    );
    let before = snapshot_tree(&host.root.path().join("vmd/pem"));
    let conf_before = std::fs::read(host.root.path().join("vmd/etc/agent.conf")).unwrap();
    let output = Command::new(sibling_binary("vmutil"))
        .args([
            "--agent-root",
            host.root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "-d",
            other.path().to_str().unwrap(),
            "updatecerts",
        ])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(4), "{all}");
    assert!(
        all.contains("NCERRCommonNameMismatch") && all.contains("host2.example"),
        "{all}"
    );
    assert!(all.contains("[ERROR]"), "{all}");
    assert_eq!(snapshot_tree(&host.root.path().join("vmd/pem")), before);
    assert_eq!(
        std::fs::read(host.root.path().join("vmd/etc/agent.conf")).unwrap(),
        conf_before
    );
}

#[test]
fn updatecerts_renews_from_another_folder_without_changing_the_saved_path_and_dry_run_sends_nothing()
 {
    let host = Host::registered("ca-p384", KeyType::P384, 200);
    let other = tempfile::tempdir().unwrap();
    let new = issue(
        &host.ca,
        host.key_type,
        "host1.example",
        SystemTime::now() - DAY,
        SystemTime::now() + 400 * DAY,
        other.path(),
    );
    let conf_before = std::fs::read(host.root.path().join("vmd/etc/agent.conf")).unwrap();
    let vmutil = |extra: &[&str]| {
        let mut arguments = vec![
            "--agent-root",
            host.root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "-d",
            other.path().to_str().unwrap(),
            "updatecerts",
        ];
        arguments.extend_from_slice(extra);
        Command::new(sibling_binary("vmutil"))
            .args(arguments)
            .output()
            .unwrap()
    };
    let dry = vmutil(&["--dry-run"]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(text(&dry).contains("nothing was sent"), "{}", text(&dry));
    assert_ne!(host.manager_fingerprint(), new);
    // Outside the 60-day window (200 days left), a manual update still renews.
    let output = vmutil(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(host.current_fingerprint(), new);
    assert_eq!(host.manager_fingerprint(), new);
    assert_eq!(
        std::fs::read(host.root.path().join("vmd/etc/agent.conf")).unwrap(),
        conf_before
    );
}

#[test]
fn an_expired_certificate_the_manager_refuses_requires_re_registration_and_no_renewal_is_sent() {
    // Registered with a certificate that expires three seconds later.
    let manager = Manager::start().unwrap();
    let (token, ca) = crate::common::trust_test_ca(&manager, "ca-p384");
    let cert_dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    issue(
        &ca,
        KeyType::P384,
        "host1.example",
        now - DAY,
        now + Duration::from_secs(3),
        cert_dir.path(),
    );
    let root = tempfile::tempdir().unwrap();
    common::register(&manager, &token, "host1", cert_dir.path(), root.path());
    std::thread::sleep(Duration::from_secs(4));
    // Even with a valid renewal set in place, no renewal is sent once expired: the one login
    // (the manager decides, not the local clock) ends in its TLS alert "certificate expired".
    issue(
        &ca,
        KeyType::P384,
        "host1.example",
        now - DAY,
        now + 400 * DAY,
        cert_dir.path(),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .args(["--agent-root", root.path().to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(3), "{all}");
    assert!(
        all.contains("[CRITICAL]") && all.contains("re-registration is required"),
        "{all}"
    );
    let clients = manager.clients().unwrap();
    assert_ne!(clients[0]["cert_not_after"].as_str().unwrap(), "");
    let status = Command::new(sibling_binary("vmutil"))
        .args([
            "--agent-root",
            root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "certexpiry",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "-1");
}

/// Kills `vmd --once` with SIGKILL at each step of the renewal journal, then runs it again:
/// the host always keeps a working identity and the renewal completes.
#[cfg(unix)]
#[test]
fn a_renewal_killed_at_any_journal_step_completes_on_the_next_run() {
    // Every point a successful renewal passes, in order ("discarded" is only reached when a
    // staged candidate is dropped; see the next test).
    let points = [
        "journal-staging",
        "staged",
        "journal-pushing",
        "pushed",
        "journal-activating",
        "activated",
        "confirmed",
    ];
    let known: Vec<&str> = agent::fault::CRASH_POINTS
        .iter()
        .copied()
        .filter(|point| *point != "discarded")
        .collect();
    assert_eq!(points.as_slice(), known, "the agent's crash points changed");
    // Every point is tried; the failures are listed at the end.
    let mut failed = Vec::new();
    for point in points {
        let tried = std::panic::catch_unwind(|| crash_and_recover(point));
        if tried.is_err() {
            failed.push(point);
        }
    }
    assert!(
        failed.is_empty(),
        "crash points not recovered from: {failed:?}"
    );
}

/// Kills `vmd --once` with SIGKILL at `point`, then runs it again: it must renew.
#[cfg(unix)]
fn crash_and_recover(point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let host = Host::registered("ca-p384", KeyType::P384, 20);
    let old = host.current_fingerprint();
    let new = host.place("host1.example", SystemTime::now() + 400 * DAY);
    let killed = host.vmd(&["--once"], &[("CTE_FAULT_CRASH_AT", point)]);
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "{point}: vmd was not killed there (is the fault-injection feature on?): {}",
        text(&killed)
    );
    // Between the crash and the next run the host still has a complete identity.
    let identity = agent::paths::AgentRoot::new(host.root.path())
        .open_store()
        .unwrap()
        .current()
        .unwrap();
    let fingerprint = identity.certificate().fingerprint.to_string();
    assert!(
        fingerprint == old || fingerprint == new,
        "{point}: unknown identity"
    );
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{point}: {}", text(&output));
    assert_eq!(
        host.current_fingerprint(),
        new,
        "{point}: old {old}, new {new}; log:\n{}",
        host.log()
    );
    assert_eq!(host.manager_fingerprint(), new, "{point}");
    assert!(
        !host
            .root
            .path()
            .join("vmd/run/renewal-journal.json")
            .exists(),
        "{point}"
    );
    eprintln!("crash point {point}: killed by SIGKILL, recovered, renewed");
}

/// The one crash point a successful renewal does not pass: "discarded", reached when a staged
/// candidate that the manager does not hold is removed. A run killed after the journal said
/// "pushing" but before anything was sent leaves a candidate the manager never saw; the next
/// run probes with it (refused as not this client's), discards it and is killed there; the run
/// after that clears the stale journal and renews.
#[cfg(unix)]
#[test]
fn a_renewal_killed_while_discarding_a_stale_candidate_completes_on_the_next_run() {
    use std::os::unix::process::ExitStatusExt;
    let host = Host::registered("ca-p384", KeyType::P384, 20);
    let old = host.current_fingerprint();
    let new = host.place("host1.example", SystemTime::now() + 400 * DAY);
    let journal = host.root.path().join("vmd/run/renewal-journal.json");
    for point in ["journal-pushing", "discarded"] {
        let killed = host.vmd(&["--once"], &[("CTE_FAULT_CRASH_AT", point)]);
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: vmd was not killed there: {}",
            text(&killed)
        );
        assert_eq!(host.current_fingerprint(), old, "{point}");
        assert_eq!(
            host.manager_fingerprint(),
            old,
            "{point}: something was sent"
        );
        let phase: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
        assert_eq!(phase["phase"], "pushing", "{point}: {phase}");
    }
    assert!(
        host.log().contains("[CGP2010I]"),
        "the discard was not logged: {}",
        host.log()
    );
    let output = host.vmd(&["--once"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(host.current_fingerprint(), new);
    assert_eq!(host.manager_fingerprint(), new);
    assert!(!journal.exists());
    eprintln!("crash points journal-pushing then discarded: recovered, renewed");
}

/// The daemon: SIGHUP rereads agent.conf (a new EXTERNAL_CERT_DIR takes effect), updatecerts
/// while it runs tells it to reload, and SIGTERM stops it cleanly.
#[cfg(unix)]
#[test]
fn the_daemon_follows_a_changed_folder_after_sighup_and_stops_on_sigterm() {
    let host = Host::registered("ca-p384", KeyType::P384, 20);
    for file in ["client_cert.pem", "client_key.pem", "passphrase"] {
        std::fs::remove_file(host.cert_dir.path().join(file)).unwrap();
    }
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .args(["--agent-root", host.root.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |what: &str, condition: &dyn Fn() -> bool| {
        for _ in 0..200 {
            if condition() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; log:\n{}", host.log());
    };
    wait_for("the first check", &|| {
        host.log().contains("no usable new certificate")
    });
    let pid_file = host.root.path().join("vmd/run/vmd.pid");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        daemon.id().to_string()
    );

    // Point agent.conf at another folder holding a renewal, then SIGHUP.
    let other = tempfile::tempdir().unwrap();
    let new = issue(
        &host.ca,
        host.key_type,
        "host1.example",
        SystemTime::now() - DAY,
        SystemTime::now() + 400 * DAY,
        other.path(),
    );
    let conf_path = host.root.path().join("vmd/etc/agent.conf");
    let mut conf = agent_config::ConfigFile::read(&conf_path).unwrap();
    conf.set("EXTERNAL_CERT_DIR", &other.path().display().to_string());
    std::fs::write(&conf_path, conf.render()).unwrap();
    Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .unwrap();
    wait_for("the renewal after SIGHUP", &|| {
        host.log().contains("certificate renewed")
    });
    assert_eq!(host.current_fingerprint(), new);
    assert_eq!(host.manager_fingerprint(), new);

    // updatecerts while the daemon runs: renews and tells it to reload.
    let third = tempfile::tempdir().unwrap();
    let newest = issue(
        &host.ca,
        host.key_type,
        "host1.example",
        SystemTime::now() - DAY,
        SystemTime::now() + 500 * DAY,
        third.path(),
    );
    let output = Command::new(sibling_binary("vmutil"))
        .args([
            "--agent-root",
            host.root.path().to_str().unwrap(),
            "-a",
            "vmd",
            "-d",
            third.path().to_str().unwrap(),
            "updatecerts",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains("told the running vmd"),
        "{}",
        text(&output)
    );
    wait_for("the reload after updatecerts", &|| {
        host.log().matches("SIGHUP").count() >= 2
    });
    assert_eq!(host.manager_fingerprint(), newest);

    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!pid_file.exists(), "the pid file was left behind");
    assert!(host.log().contains("vmd stopping"));
}

/// The command line's `--proxy` travels in the connector the binary builds (no process-global
/// state): `--proxy none` wins over an environment proxy that does not exist, and a `--proxy`
/// URL wins over a direct connection, for the whole check.
#[test]
fn the_proxy_flag_travels_with_the_check() {
    let host = Host::registered("ca-p384", KeyType::P384, 300);
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = format!("http://127.0.0.1:{closed}");
    let output = host.vmd(
        &["--once", "--proxy", "none"],
        &[("HTTPS_PROXY", &nowhere), ("https_proxy", &nowhere)],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = host.vmd(&["--once", "--proxy", &nowhere], &[]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("127.0.0.1:{closed}")),
        "{}",
        text(&output)
    );
}

/// Back-pressure end to end (issue 21): the real emulator, restarted on the same state with
/// `throttle`, answers every agent request with 429 or 503 and `Retry-After`; the real
/// `vmd --once` reports the manager unreachable (exit 5, nothing changed) and schedules its next
/// check no earlier than the header said (and, for a 503, no earlier than its own backoff).
#[test]
fn a_throttling_managers_retry_after_is_honoured() {
    for (status, seconds) in [(429, 7200), (503, 90)] {
        let state = tempfile::tempdir().unwrap();
        let manager = Manager::start_in(state.path()).unwrap();
        let (token, ca) = crate::common::trust_test_ca(&manager, "ca-p384");
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        issue(
            &ca,
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + DAY * 300,
            cert_dir.path(),
        );
        let root = tempfile::tempdir().unwrap();
        common::register(&manager, &token, "host1", cert_dir.path(), root.path());
        let before = common::current_fingerprint(root.path());
        manager.stop();
        let throttled = Manager::start_with(cm_emulator::EmulatorConfig {
            throttle: Some(cm_emulator::Throttle {
                status,
                every: 1,
                retry_after: Some(seconds),
            }),
            ..cm_emulator::EmulatorConfig::new(state.path())
        })
        .unwrap();
        let conf_path = root.path().join("vmd/etc/agent.conf");
        let mut conf = agent_config::ConfigFile::read(&conf_path).unwrap();
        conf.set(agent_config::keys::URL, &throttled.url());
        std::fs::write(&conf_path, conf.render()).unwrap();
        let started = SystemTime::now();
        let output = Command::new(env!("CARGO_BIN_EXE_vmd"))
            .arg("--agent-root")
            .arg(root.path())
            .arg("--once")
            .output()
            .unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(5), "{status}: {all}");
        assert!(all.contains("come back later"), "{status}: {all}");
        let status_json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.path().join("vmd/run/status.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(status_json["result"], "unreachable", "{status_json}");
        let next = status_json["next_check"].as_str().unwrap().to_string();
        let earliest = cert_loading::format_rfc3339(started + Duration::from_secs(seconds));
        // RFC 3339 in UTC with whole seconds compares as text.
        eprintln!("{status}: next check {next}, earliest {earliest}");
        assert!(
            next >= earliest,
            "{status}: next check {next} before {earliest}"
        );
        let latest = cert_loading::format_rfc3339(
            SystemTime::now() + Duration::from_secs(seconds.max(600)) + Duration::from_secs(5),
        );
        assert!(next <= latest, "{status}: next check {next} after {latest}");
        assert_eq!(common::current_fingerprint(root.path()), before);
    }
}
