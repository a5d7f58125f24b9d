//! The real binaries (`register_host`, `vmutil`, `vmd`) talking to the real emulator through the
//! fault-injecting TLS relay (`test_support::relay::FaultRelay`), for each of the emulator's
//! three ways of retiring a renewed client's old certificate: replies to the new certificate's
//! logins lost (case 1), the renewal's reply lost (case 2) or its request lost (case 2b),
//! `updatecerts` killed with SIGKILL at seeded random moments (case 3), and five concurrent
//! `updatecerts` while the daemon runs (case 4).
//!
//! Every case ends the same way: `vmd --once` (run at most three times to let an update in
//! flight settle; the count is printed) exits 0, the journal is gone, and the host's current
//! certificate is the one the manager holds for the client. Summaries are printed
//! (`cargo test -p vmd --test relay_faults -- --nocapture`).
//!
//! Note: cm-client retries login, status and renew twice after connection errors and 502-504, so
//! a fault applied once is usually absorbed within one run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cm_emulator::RetireOldCertificate;
use common::{DAY, sibling_binary, text};
use test_pki::KeyType;
use test_support::relay::{Fault, FaultRelay, Rule, leaf_sha256};
use test_support::{Manager, test_ca, test_ca_pem};

const COMMON_NAME: &str = "host1.example";
const LOGIN: &str = "/auth/tokens";
const RENEW: &str = "/self/client/renew";
/// At most this many `vmd --once` runs to settle.
const SETTLE_RUNS: usize = 3;

/// A certificate set written to a folder of its own.
struct Set {
    folder: tempfile::TempDir,
    /// The agent's fingerprint (SHA-256 of the certificate).
    fingerprint: String,
    /// What the relay matches rules on (SHA-256 of the leaf's DER).
    leaf_sha256: String,
}

/// A host registered through a relay in front of an emulator with a retirement mode.
struct Host {
    manager: Manager,
    relay: FaultRelay,
    ca: test_pki::CertificateAuthority,
    root: tempfile::TempDir,
    /// EXTERNAL_CERT_DIR, holding the registered set.
    cert_dir: tempfile::TempDir,
    registered: String,
}

impl Host {
    /// Registered with `register_host` through the relay, the certificate expiring in
    /// `days_left` days.
    fn registered(mode: RetireOldCertificate, days_left: u32) -> Host {
        let manager = Manager::start_retiring(mode).unwrap();
        let token = manager
            .setup_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext")
            .unwrap();
        let relay = FaultRelay::in_front_of(&manager).unwrap();
        let ca = test_ca("ca-p384").unwrap();
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let registered = issue(&ca, now + DAY * days_left, cert_dir.path());
        relay.add_identity_dir(cert_dir.path()).unwrap();
        let root = tempfile::tempdir().unwrap();
        let output = Command::new(sibling_binary("register_host"))
            .arg("--agent-root")
            .arg(root.path())
            .args(["--token", &token, "--agent", "host1", "--extcertdir"])
            .arg(cert_dir.path())
            .arg("--cm-ca")
            .arg(relay.ca_path())
            .arg(relay.url())
            .env_remove("EXTERNAL_CERT_DIR")
            .env_remove("CTE_AGENT_ROOT")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{mode}: register_host: {}",
            text(&output)
        );
        let host = Host {
            manager,
            relay,
            ca,
            root,
            cert_dir,
            registered: registered.0,
        };
        assert_eq!(host.current_fingerprint(), host.registered);
        assert_eq!(host.manager_fingerprint(), host.registered);
        host
    }

    /// A new set expiring at `not_after` in a folder of its own, known to the relay.
    fn new_set(&self, not_after: SystemTime) -> Set {
        let folder = tempfile::tempdir().unwrap();
        let (fingerprint, leaf_sha256) = issue(&self.ca, not_after, folder.path());
        self.relay.add_identity_dir(folder.path()).unwrap();
        Set {
            folder,
            fingerprint,
            leaf_sha256,
        }
    }

    /// Replaces the set in EXTERNAL_CERT_DIR with a new one, known to the relay; returns its
    /// fingerprint.
    fn place(&self, not_after: SystemTime) -> String {
        let (fingerprint, _) = issue(&self.ca, not_after, self.cert_dir.path());
        self.relay.add_identity_dir(self.cert_dir.path()).unwrap();
        fingerprint
    }

    fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--agent-root")
            .arg(self.root.path())
            .env_remove("CTE_AGENT_ROOT")
            .env_remove(agent::fault::CRASH_AT_VARIABLE);
        command
    }

    fn updatecerts(&self, folder: &Path) -> Command {
        let mut command = self.command(&sibling_binary("vmutil"));
        command
            .args(["-a", "vmd", "-d"])
            .arg(folder)
            .arg("updatecerts");
        command
    }

    fn vmd(&self, arguments: &[&str]) -> Command {
        let mut command = self.command(Path::new(env!("CARGO_BIN_EXE_vmd")));
        command.args(arguments);
        command
    }

    fn journal(&self) -> PathBuf {
        self.root.path().join("vmd/run/renewal-journal.json")
    }

    /// The journal's phase, or "none".
    fn journal_phase(&self) -> String {
        std::fs::read_to_string(self.journal())
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|value| value["phase"].as_str().map(str::to_string))
            .unwrap_or_else(|| "none".to_string())
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

    /// How many requests the relay applied `fault` to so far.
    fn faults(&self, fault: Fault) -> usize {
        self.relay
            .exchanges()
            .iter()
            .filter(|exchange| exchange.fault == Some(fault))
            .count()
    }

    /// Runs `vmd --once` until it exits 0 with no journal left, at most [`SETTLE_RUNS`] times;
    /// then checks that the host and the manager agree. Returns how many runs it took, with
    /// each run's exit code and the journal phase after it (`"2 (0/confirming, 0/none)"`).
    fn settle(&self, scenario: &str) -> String {
        let mut runs = Vec::new();
        let mut trail = Vec::new();
        for run in 1..=SETTLE_RUNS {
            let output = self.vmd(&["--once"]).output().unwrap();
            let phase = self.journal_phase();
            runs.push(format!(
                "--once run {run}: exit {:?}, journal {phase}: {}",
                output.status.code(),
                text(&output).trim()
            ));
            trail.push(format!("{}/{phase}", code(&output)));
            if output.status.code() == Some(0) && !self.journal().exists() {
                self.assert_agrees(scenario, &runs);
                return format!("{run} ({})", trail.join(", "));
            }
        }
        panic!(
            "{scenario}: vmd --once did not settle in {SETTLE_RUNS} runs:\n{}\nlog:\n{}",
            runs.join("\n"),
            self.log()
        );
    }

    fn assert_agrees(&self, scenario: &str, runs: &[String]) {
        let host = self.current_fingerprint();
        let manager = self.manager_fingerprint();
        assert_eq!(
            host,
            manager,
            "{scenario}: the host uses {host}, the manager holds {manager}\n{}\nlog:\n{}",
            runs.join("\n"),
            self.log()
        );
        assert!(!self.journal().exists(), "{scenario}: journal left");
    }
}

/// Issues a P-384 certificate for [`COMMON_NAME`] valid from a day ago to `not_after` into
/// `folder`; returns its fingerprint and the relay's leaf hash.
fn issue(
    ca: &test_pki::CertificateAuthority,
    not_after: SystemTime,
    folder: &Path,
) -> (String, String) {
    let issued = common::issue(
        ca,
        KeyType::P384,
        COMMON_NAME,
        SystemTime::now() - DAY,
        not_after,
        folder,
    );
    (
        common::fingerprint(&issued),
        leaf_sha256(issued.certificate_der()),
    )
}

fn code(output: &Output) -> String {
    match output.status.code() {
        Some(code) => code.to_string(),
        None => "signal".to_string(),
    }
}

/// Case 1: `updatecerts` with the first 1, 3 and 9 replies to the new certificate's logins lost.
/// The manager has the renewal and (each lost login was carried out) the new certificate's
/// logins; the host switched to the new certificate and confirms it at the next check.
#[test]
fn lost_replies_to_the_new_certificates_logins_settle_on_the_new_certificate() {
    let started = Instant::now();
    for mode in RetireOldCertificate::ALL {
        for lost in [1, 3, 9] {
            let scenario = format!("{mode}, {lost} login replies lost");
            let t0 = Instant::now();
            let host = Host::registered(mode, 200);
            let new = host.new_set(SystemTime::now() + 400 * DAY);
            let t1 = Instant::now();
            host.relay.push_rule(Rule {
                method: None,
                path_contains: LOGIN.to_string(),
                presented_leaf_sha256: Some(new.leaf_sha256.clone()),
                times: lost,
                fault: Fault::DropReply,
            });
            let update = host.updatecerts(new.folder.path()).output().unwrap();
            assert!(
                [Some(0), Some(5)].contains(&update.status.code()),
                "{scenario}: updatecerts: {}",
                text(&update)
            );
            let phase = host.journal_phase();
            let t2 = Instant::now();
            let runs = host.settle(&scenario);
            assert_eq!(host.current_fingerprint(), new.fingerprint, "{scenario}");
            eprintln!(
                "case 1 {scenario}: updatecerts exit {}, journal {phase}; {} of {lost} faults \
                 injected; vmd --once runs to settle: {runs}; host = manager = new \
                 (setup {} ms, updatecerts {} ms, settle {} ms)",
                code(&update),
                host.faults(Fault::DropReply),
                (t1 - t0).as_millis(),
                (t2 - t1).as_millis(),
                t2.elapsed().as_millis(),
            );
        }
    }
    eprintln!("case 1: {:.1} s", started.elapsed().as_secs_f64());
}

/// Case 2: the renewal's reply lost once (absorbed by the client's retry, which the manager
/// answers again) and on all three attempts (the outcome is unknown; the journal stays at
/// `pushing` and the next check probes with the candidate, which the manager holds), for
/// `updatecerts` and for `vmd --once` with the new set in EXTERNAL_CERT_DIR, 20 days left.
#[test]
fn lost_renewal_replies_settle_on_the_new_certificate() {
    let started = Instant::now();
    for mode in RetireOldCertificate::ALL {
        for lost in [1, 3] {
            for trigger in ["updatecerts", "vmd --once"] {
                let scenario = format!("{mode}, {trigger}, {lost} renewal replies lost");
                let host = Host::registered(mode, 20);
                let not_after = SystemTime::now() + 400 * DAY;
                host.relay
                    .push_rule(Rule::new(RENEW, Fault::DropReply).with_times(lost));
                let (new, output) = if trigger == "updatecerts" {
                    let set = host.new_set(not_after);
                    let output = host.updatecerts(set.folder.path()).output().unwrap();
                    (set.fingerprint, output)
                } else {
                    let new = host.place(not_after);
                    (new, host.vmd(&["--once"]).output().unwrap())
                };
                // Lost on every attempt: the outcome is unknown for now. updatecerts exits 5.
                // `vmd --once` exits 0 today (the agent counts an unknown outcome as healthy);
                // docs/operations.md says 5 for "a renewal's outcome is unknown": either is
                // accepted here, the settling below is what this case checks.
                let expected: &[i32] = match (lost, trigger) {
                    (1, _) => &[0],
                    (_, "vmd --once") => &[0, 5],
                    _ => &[5],
                };
                assert!(
                    output
                        .status
                        .code()
                        .is_some_and(|code| expected.contains(&code)),
                    "{scenario}: exit {:?}, expected one of {expected:?}: {}",
                    output.status.code(),
                    text(&output)
                );
                let phase = host.journal_phase();
                if lost == 3 {
                    assert_eq!(phase, "pushing", "{scenario}: {}", text(&output));
                    // CGP3009: WARNING, or ERROR for the administrator's updatecerts.
                    assert!(text(&output).contains("[CGP3009"), "{}", text(&output));
                }
                assert_eq!(
                    host.faults(Fault::DropReply),
                    lost as usize,
                    "{scenario}: faults applied"
                );
                // The manager committed the first push already.
                assert_eq!(host.manager_fingerprint(), new, "{scenario}");
                let runs = host.settle(&scenario);
                assert_eq!(host.current_fingerprint(), new, "{scenario}");
                eprintln!(
                    "case 2 {scenario}: first run exit {}, journal {phase}; vmd --once runs to \
                     settle: {runs}; host = manager = new",
                    code(&output)
                );
            }
        }
    }
    eprintln!("case 2: {:.1} s", started.elapsed().as_secs_f64());
}

/// The renewal request lost on all three attempts (the manager never saw it): the outcome is
/// unknown to the host, which keeps the journal at `pushing`; the next check probes with the
/// candidate (refused: not this client's), discards it, stages the folder's set again and
/// pushes it, and must end with the host and the manager on the new certificate.
#[test]
fn lost_renewal_requests_are_pushed_again_and_settle_on_the_new_certificate() {
    let started = Instant::now();
    // Every mode is tried; the failures are listed at the end.
    let mut failed = Vec::new();
    for mode in RetireOldCertificate::ALL {
        if std::panic::catch_unwind(|| lost_renewal_requests(mode)).is_err() {
            failed.push(mode);
        }
    }
    eprintln!("case 2b: {:.1} s", started.elapsed().as_secs_f64());
    assert!(failed.is_empty(), "failed in modes {failed:?}");
}

fn lost_renewal_requests(mode: RetireOldCertificate) {
    let scenario = format!("{mode}, vmd --once, 3 renewal requests lost");
    let host = Host::registered(mode, 20);
    let new = host.place(SystemTime::now() + 400 * DAY);
    host.relay
        .push_rule(Rule::new(RENEW, Fault::DropRequest).with_times(3));
    let output = host.vmd(&["--once"]).output().unwrap();
    // The outcome is unknown: exit 0 today, 5 by docs/operations.md (see case 2).
    assert!(
        matches!(output.status.code(), Some(0 | 5)),
        "{scenario}: {}",
        text(&output)
    );
    assert!(text(&output).contains("[CGP3009W]"), "{}", text(&output));
    let phase = host.journal_phase();
    assert_eq!(phase, "pushing", "{scenario}");
    assert_eq!(host.faults(Fault::DropRequest), 3, "{scenario}");
    assert_eq!(host.manager_fingerprint(), host.registered, "{scenario}");
    let runs = host.settle(&scenario);
    assert_eq!(host.current_fingerprint(), new, "{scenario}");
    eprintln!(
        "case 2b {scenario}: first run exit {}, journal {phase}; vmd --once runs to settle: \
         {runs}; host = manager = new",
        code(&output)
    );
}

/// A small deterministic generator (xorshift64*), so the kill moments are the same every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Case 3: `updatecerts` killed with SIGKILL at seeded random moments, 20 runs cycling through
/// the retirement modes. The moments are spread over 0-400 ms, scaled to this machine: an
/// uninterrupted `updatecerts` is timed first and the range is 0 to 1.2 times its duration when
/// that is shorter, so that most kills land inside the run (the seeded sequence of fractions is
/// the same every time). Whatever the moment, the next checks settle with the host and the
/// manager agreeing (on the old or the new certificate: the new set is only in the folder given
/// to updatecerts, so a renewal that never reached the manager is not retried by `vmd --once`).
#[cfg(unix)]
#[test]
fn updatecerts_killed_at_random_moments_settles_with_the_manager() {
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    let calibration = {
        let host = Host::registered(RetireOldCertificate::ALL[0], 200);
        let new = host.new_set(SystemTime::now() + 400 * DAY);
        // The first call also builds vmutil; time a second, uninterrupted one.
        let _ = sibling_binary("vmutil");
        let spawned = Instant::now();
        let output = host.updatecerts(new.folder.path()).output().unwrap();
        let took = spawned.elapsed();
        assert_eq!(
            output.status.code(),
            Some(0),
            "calibration: {}",
            text(&output)
        );
        host.settle("calibration");
        took
    };
    let span_ms = u64::try_from((calibration * 6 / 5).as_millis())
        .unwrap_or(400)
        .clamp(50, 400);
    eprintln!(
        "case 3: an uninterrupted updatecerts takes {} ms here; kills spread over 0-{span_ms} ms",
        calibration.as_millis()
    );
    let mut random = Seeded(0x5eed_cafe_f00d_0003);
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for run in 0..20 {
        let mode = RetireOldCertificate::ALL[run % 3];
        let delay = Duration::from_millis(random.next() % (span_ms + 1));
        let scenario = format!("run {run}, {mode}, kill after {} ms", delay.as_millis());
        let host = Host::registered(mode, 200);
        let new = host.new_set(SystemTime::now() + 400 * DAY);
        let spawned = Instant::now();
        let mut child = host
            .updatecerts(new.folder.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // Fails when it has exited already.
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        let lived = spawned.elapsed();
        let how = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => {
                assert!(
                    [0, 5].contains(&code),
                    "{scenario}: updatecerts: {}",
                    text(&output)
                );
                format!("exited {code}")
            }
            (None, Some(9)) => "killed".to_string(),
            (None, signal) => panic!("{scenario}: ended by signal {signal:?}"),
        };
        let phase = host.journal_phase();
        let manager_before = if host.manager_fingerprint() == new.fingerprint {
            "new"
        } else {
            "old"
        };
        let runs = host.settle(&scenario);
        let final_identity = if host.current_fingerprint() == new.fingerprint {
            "new"
        } else {
            assert_eq!(host.current_fingerprint(), host.registered, "{scenario}");
            "old"
        };
        eprintln!(
            "case 3 {scenario}: updatecerts {how} after {} ms, journal {phase}, manager had \
             {manager_before}; vmd --once runs to settle: {runs}; host = manager = {final_identity}",
            lived.as_millis()
        );
        *outcomes
            .entry(format!("{how}, journal {phase}"))
            .or_default() += 1;
    }
    eprintln!(
        "case 3: {outcomes:?}; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Case 4: the daemon running and five `updatecerts` at once with five valid sets (same common
/// name, later expiries, in shuffled order). Each exits 0 (renewed), 3 (refused locally: not
/// later than the certificate another one just installed), 4 (refused by the manager), 5 or 6
/// (busy); afterwards `vmd --once` is healthy and the host agrees with the manager.
#[cfg(unix)]
#[test]
fn concurrent_updatecerts_with_the_daemon_running_settle_with_the_manager() {
    let started = Instant::now();
    for mode in RetireOldCertificate::ALL {
        let scenario = format!("{mode}, daemon + 5 concurrent updatecerts");
        let started_mode = Instant::now();
        let host = Host::registered(mode, 200);
        let now = SystemTime::now();
        let sets: Vec<Set> = [430, 410, 450, 400, 440]
            .iter()
            .map(|days| host.new_set(now + DAY * *days))
            .collect();
        let daemon_err = tempfile::NamedTempFile::new().unwrap();
        let mut daemon = host
            .vmd(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::from(daemon_err.reopen().unwrap()))
            .spawn()
            .unwrap();
        let pid_file = host.root.path().join("vmd/run/vmd.pid");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(pid_file.exists() && host.log().contains("[CGP2001I]")) {
            assert!(
                Instant::now() < deadline,
                "{scenario}: the daemon did not start: {}",
                std::fs::read_to_string(daemon_err.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let daemon_up = started_mode.elapsed();
        let children: Vec<_> = sets
            .iter()
            .map(|set| {
                host.updatecerts(set.folder.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect();
        let mut codes = Vec::new();
        for output in &outputs {
            let all = text(output);
            match output.status.code() {
                Some(0 | 4 | 5 | 6) => {}
                // A set no later than the one another updatecerts just installed is refused
                // locally (nothing sent), which the agent reports as exit 3.
                Some(3) if all.contains("not later") => {}
                _ => panic!("{scenario}: updatecerts: {all}"),
            }
            codes.push(code(output));
        }
        assert!(
            codes.iter().any(|code| code == "0"),
            "{scenario}: nothing renewed: {codes:?}"
        );
        let concurrent = started_mode.elapsed();
        let runs = host.settle(&scenario);
        Command::new("kill")
            .args(["-TERM", &daemon.id().to_string()])
            .status()
            .unwrap();
        let status = daemon.wait().unwrap();
        let daemon_stderr = std::fs::read_to_string(daemon_err.path()).unwrap_or_default();
        assert_eq!(
            status.code(),
            Some(0),
            "{scenario}: daemon: {daemon_stderr}"
        );
        assert!(
            !pid_file.exists(),
            "{scenario}: the pid file was left behind"
        );
        let current = host.current_fingerprint();
        let index = sets.iter().position(|set| set.fingerprint == current);
        assert!(
            index.is_some(),
            "{scenario}: the host uses none of the sets"
        );
        host.assert_agrees(&scenario, &[]);
        let log = host.log();
        assert!(
            !log.contains("[CGP3007E]"),
            "{scenario}: a daemon check failed:\n{log}"
        );
        eprintln!(
            "case 4 {scenario}: updatecerts exits {codes:?} (sets expiring in 430/410/450/400/440 \
             days, spawned in that order); host = manager = set {}; vmd --once runs to settle: \
             {runs}; daemon stopped with 0 (daemon up at {} ms, updatecerts done at {} ms, {} ms \
             in all)",
            index.unwrap_or_default(),
            daemon_up.as_millis(),
            concurrent.as_millis(),
            started_mode.elapsed().as_millis()
        );
    }
    eprintln!("case 4: {:.1} s", started.elapsed().as_secs_f64());
}
