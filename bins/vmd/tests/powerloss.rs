//! Power loss, not only SIGKILL (issue 24): every crash state a file system may leave of the
//! real binaries' file operations, recovered as the product would after a reboot.
//!
//! - **Recorder.** The binary runs under `strace -f` (see `powerloss::trace` for why strace and
//!   not an LD_PRELOAD shim); the trace gives every operation on the agent root, with the bytes
//!   written and the time each call returned. The agent root before the run is read as the
//!   durable starting state. The log folder (`vmd/log`) is left out: the log is appended without
//!   fsync by design, and a lost log line is not a broken identity.
//! - **Self-check.** Replaying the trace from the starting state must give exactly the tree the
//!   run left: otherwise the recorder missed an operation, and the test fails saying so.
//! - **Models.** `powerloss::model`: ext4 `data=ordered` and the weakest POSIX allows.
//! - **The manager's side.** The emulator writes a change log (`EmulatorConfig::change_log`): the
//!   time of every durable change of its state. A crash between two operations of the binary
//!   is tried with the manager's state as of the earlier operation's return and as of the later
//!   one's (a request in flight may or may not have been committed).
//! - **Recovery**, as after a reboot, on each state: the state is written at the agent root's
//!   own path, the emulator restarted on its state at the same address, `vmutil -a vmd status`
//!   run, then `vmd --once` (twice at most: the first may settle a journal). A registration that
//!   did not finish is run again (`register_host`, as the operator would) and must then succeed.
//! - **Invariants:** the host ends with an identity the manager accepts (`vmd --once` exits 0);
//!   no file or folder under the agent root is open to group or others; `agent.conf`, when
//!   present, parses; no renewal journal is left (nor set aside as unreadable).
//!
//! A violation prints the model, the operations up to the crash, what was lost, the invariant
//! and the binaries' output, so it can be reproduced by hand.
//!
//! Scenarios: `register_host`; a renewal by `vmd --once`; `vmutil updatecerts`; a `vmd --once`
//! that only sends its heartbeat; the daemon from its start to its first heartbeat (then
//! SIGTERM). No `rekey`: the sealed-keys issue (23) has not landed.
//!
//! The CI subset (`the_weakest_model_on_register_and_one_renewal`) runs the weakest model on a
//! registration and a renewal; `cargo xtask powerloss` runs every scenario under both models
//! (`every_binary_under_both_models`, ignored otherwise) and prints the table. Both say SKIPPED
//! without strace.

#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use common::{issue_for_days, register, sibling_binary, text, trust_test_ca};
use powerloss::model::{Model, Node, Replay, Tree, read_tree, write_tree};
use powerloss::trace::{Op, Timed, op_paths, parse, strace_arguments};
use test_support::Manager;

const ADMIN_PASSWORD: &str = "powerloss admin password";

fn strace() -> Option<PathBuf> {
    ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// What a scenario runs, and how a state is recovered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Register,
    Renewal,
    UpdateCerts,
    Heartbeat,
    /// The daemon (`vmd` without `--once`) from its start to its first heartbeat, then SIGTERM.
    Daemon,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Register => "register_host",
            Scenario::Renewal => "vmd --once (renewal)",
            Scenario::UpdateCerts => "vmutil updatecerts",
            Scenario::Heartbeat => "vmd --once (heartbeat)",
            Scenario::Daemon => "vmd daemon (first heartbeat)",
        }
    }
}

/// One host: the emulator (with its change log), the agent root, the certificate folders.
struct Host {
    manager: Option<Manager>,
    /// The manager's web CA file and address (kept when the first emulator stops).
    web_ca: PathBuf,
    host_port: String,
    address: std::net::SocketAddr,
    state: tempfile::TempDir,
    change_log: PathBuf,
    token: String,
    ca: test_pki::CertificateAuthority,
    root: tempfile::TempDir,
    cert_dir: tempfile::TempDir,
    new_dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let state = tempfile::tempdir().unwrap();
        let change_log = state.path().join("change-log.jsonl");
        let manager = start_manager(&state.path().join("manager"), &change_log, None);
        let (token, ca) = trust_test_ca(&manager, "ca-p384");
        let cert_dir = tempfile::tempdir().unwrap();
        issue_for_days(&ca, "host1.example", 30, cert_dir.path());
        let new_dir = tempfile::tempdir().unwrap();
        issue_for_days(&ca, "host1.example", 400, new_dir.path());
        Host {
            web_ca: manager.web_ca_path(),
            host_port: manager.host_port(),
            address: manager.details().local_addr(),
            manager: Some(manager),
            state,
            change_log,
            token,
            ca,
            root: tempfile::tempdir().unwrap(),
            cert_dir,
            new_dir,
        }
    }

    fn manager(&self) -> &Manager {
        self.manager.as_ref().unwrap()
    }

    fn manager_dir(&self) -> PathBuf {
        self.state.path().join("manager")
    }

    fn register_command(&self) -> Command {
        let mut command = Command::new(sibling_binary("register_host"));
        command
            .arg("--agent-root")
            .arg(self.root.path())
            .args(["--token", &self.token, "--agent", "host1", "--extcertdir"])
            .arg(self.cert_dir.path())
            .arg("--cm-ca")
            .arg(&self.web_ca)
            .arg(&self.host_port);
        clean(&mut command);
        command
    }

    /// The scenario's command, after putting the host in the state it starts from.
    fn prepare(&self, scenario: Scenario) -> Command {
        if scenario != Scenario::Register {
            register(
                self.manager(),
                &self.token,
                "host1",
                self.cert_dir.path(),
                self.root.path(),
            );
        }
        match scenario {
            Scenario::Register => self.register_command(),
            Scenario::Renewal => {
                // The renewal looks in the registered folder: the new set replaces the old.
                for name in ["client_cert.pem", "client_key.pem", "passphrase"] {
                    std::fs::copy(
                        self.new_dir.path().join(name),
                        self.cert_dir.path().join(name),
                    )
                    .unwrap();
                }
                vmd_once(self.root.path())
            }
            Scenario::UpdateCerts => {
                let mut command = Command::new(sibling_binary("vmutil"));
                command
                    .arg("--agent-root")
                    .arg(self.root.path())
                    .args(["-a", "vmd", "-d"])
                    .arg(self.new_dir.path())
                    .arg("updatecerts");
                clean(&mut command);
                command
            }
            Scenario::Heartbeat | Scenario::Daemon => {
                // A certificate far from expiry: the check only sends its heartbeat.
                let far = tempfile::tempdir().unwrap();
                issue_for_days(&self.ca, "host1.example", 400, far.path());
                let mut command = Command::new(sibling_binary("vmutil"));
                command
                    .arg("--agent-root")
                    .arg(self.root.path())
                    .args(["-a", "vmd", "-d"])
                    .arg(far.path())
                    .arg("updatecerts");
                clean(&mut command);
                let output = command.output().unwrap();
                assert!(output.status.success(), "{}", text(&output));
                let mut vmd = vmd_once(self.root.path());
                if scenario == Scenario::Daemon {
                    vmd = Command::new(env!("CARGO_BIN_EXE_vmd"));
                    vmd.arg("--agent-root").arg(self.root.path());
                    clean(&mut vmd);
                }
                vmd
            }
        }
    }
}

fn clean(command: &mut Command) {
    command
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT")
        .stdin(Stdio::null());
}

fn vmd_once(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmd"));
    command.arg("--agent-root").arg(root).arg("--once");
    clean(&mut command);
    command
}

fn start_manager(
    state_dir: &Path,
    change_log: &Path,
    listen: Option<std::net::SocketAddr>,
) -> Manager {
    let mut config = cm_emulator::EmulatorConfig::new(state_dir);
    config.admin_password = Some(ADMIN_PASSWORD.to_owned());
    config.change_log = Some(change_log.to_owned());
    if let Some(listen) = listen {
        config.listen = listen;
    }
    Manager::start_with(config).unwrap()
}

/// A durable change of the manager's state, from its change log.
struct Change {
    at: f64,
    path: PathBuf,
    content: Option<Vec<u8>>,
}

fn read_changes(log: &Path, skip: usize) -> Vec<Change> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(skip)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            Change {
                at: value["at"].as_f64().unwrap(),
                path: PathBuf::from(value["path"].as_str().unwrap()),
                content: value["content"]
                    .as_str()
                    .map(|text| text.as_bytes().to_vec()),
            }
        })
        .collect()
}

/// The manager's state folder with the first `count` changes applied.
fn manager_tree(pre: &Tree, changes: &[Change], count: usize) -> Tree {
    let mut tree = pre.clone();
    for change in &changes[..count] {
        let path = Path::new("objects").join(&change.path);
        match &change.content {
            Some(data) => {
                tree.insert(
                    path,
                    Node::File {
                        data: data.clone(),
                        mode: 0o600,
                    },
                );
            }
            None => {
                tree.remove(&path);
            }
        }
    }
    tree
}

fn without_log(tree: Tree) -> Tree {
    tree.into_iter()
        .filter(|(path, _)| !path.starts_with("vmd/log"))
        .collect()
}

/// What one scenario under one model gave.
struct Outcome {
    scenario: Scenario,
    model: Model,
    operations: usize,
    states: usize,
    recoveries: std::collections::BTreeMap<Recovery, usize>,
    violations: Vec<String>,
    seconds: f64,
}

fn explore(strace: &Path, scenario: Scenario, models: &[Model]) -> Vec<Outcome> {
    let mut host = Host::new();
    let command = host.prepare(scenario);
    let root = host.root.path().to_owned();
    let pre_agent = without_log(read_tree(&root).unwrap());
    let manager_pre = read_tree(&host.manager_dir()).unwrap();
    let logged_before = read_changes(&host.change_log, 0).len();

    // Record.
    let trace_path = host.state.path().join("trace.txt");
    let mut traced = Command::new(strace);
    traced
        .args(strace_arguments(&trace_path))
        .arg(command.get_program())
        .args(command.get_args());
    clean(&mut traced);
    if scenario == Scenario::Daemon {
        run_daemon_until_heartbeat(traced, &root);
    } else {
        let output = traced.output().unwrap();
        assert!(
            output.status.success(),
            "{}: the run itself failed: {}",
            scenario.name(),
            text(&output)
        );
    }
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    // Kept for reading by hand (a violation's report names it).
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("powerloss-{scenario:?}.trace"));
    std::fs::write(&kept, &trace).unwrap();
    let log_folder = root.join("vmd/log");
    let ops: Vec<Timed> = parse(&trace, &root)
        .unwrap()
        .into_iter()
        .filter(|timed| !touches(&timed.op, &log_folder))
        .collect();
    let changes = read_changes(&host.change_log, logged_before);

    // Self-check: the replay ends where the run ended.
    let mut replay = Replay::new(&root, &pre_agent);
    for timed in &ops {
        replay.apply(&timed.op).unwrap();
    }
    let post_agent = without_log(read_tree(&root).unwrap());
    assert!(
        replay.current() == post_agent,
        "{}: the recorder missed something: the replayed tree differs from the real one\nreplayed: {:?}\nreal: {:?}",
        scenario.name(),
        replay.current().keys().collect::<Vec<_>>(),
        post_agent.keys().collect::<Vec<_>>()
    );

    let address = host.address;
    host.manager = None;
    let mut outcomes = Vec::new();
    for &model in models {
        let started = Instant::now();
        let mut replay = Replay::new(&root, &pre_agent);
        let mut seen = BTreeSet::new();
        let mut violations = Vec::new();
        let mut recoveries = std::collections::BTreeMap::new();
        for crash in 0..=ops.len() {
            if crash > 0 {
                replay.apply(&ops[crash - 1].op).unwrap();
            }
            let before = if crash == 0 {
                f64::NEG_INFINITY
            } else {
                ops[crash - 1].at
            };
            let after = ops.get(crash).map_or(f64::INFINITY, |timed| timed.at);
            let committed = |time: f64| {
                changes
                    .iter()
                    .take_while(|change| change.at <= time)
                    .count()
            };
            let manager_states: BTreeSet<usize> = [committed(before), committed(after)].into();
            for (lost, tree) in replay.crash_states(model) {
                for &count in &manager_states {
                    if !seen.insert((tree.clone(), count)) {
                        continue;
                    }
                    let recovered = recover(
                        &host,
                        scenario,
                        &tree,
                        &manager_tree(&manager_pre, &changes, count),
                        address,
                    );
                    if let Ok(how) = recovered {
                        *recoveries.entry(how).or_insert(0) += 1;
                    }
                    if let Err(why) = recovered {
                        let done: Vec<String> = ops[..crash]
                            .iter()
                            .map(|timed| format!("{:?}", timed.op))
                            .collect();
                        violations.push(format!(
                            "{} under {}: crash after operation {crash} of {} ({lost}; manager has {count} of {} changes)\n  operations up to the crash:\n    {}\n  {why}",
                            scenario.name(),
                            model.name(),
                            ops.len(),
                            changes.len(),
                            short(&done).join("\n    "),
                        ));
                    }
                }
            }
        }
        outcomes.push(Outcome {
            scenario,
            model,
            operations: ops.len(),
            states: seen.len(),
            recoveries,
            violations,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    outcomes
}

/// Runs the traced daemon until it has written its first heartbeat (at most 60 s), then stops
/// it with SIGTERM (to vmd itself, through its pid file: strace holds fatal signals for the
/// program it runs) and waits for it.
fn run_daemon_until_heartbeat(mut traced: Command, root: &Path) {
    let heartbeat = root.join("vmd/run/heartbeat.json");
    let before = std::fs::metadata(&heartbeat)
        .and_then(|meta| meta.modified())
        .ok();
    let mut child = traced
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let now = std::fs::metadata(&heartbeat)
            .and_then(|meta| meta.modified())
            .ok();
        if now.is_some() && now != before {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the daemon wrote no heartbeat in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = std::fs::read_to_string(root.join("vmd/run/vmd.pid")).unwrap_or_default();
    let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed().as_secs() > 30 {
            let _ = child.kill();
            let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
            panic!("the traced daemon did not stop on SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Operations shown in a report: long writes cut.
fn short(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            if line.len() > 200 {
                format!("{}...", &line[..200])
            } else {
                line.clone()
            }
        })
        .collect()
}

fn touches(op: &Op, folder: &Path) -> bool {
    op_paths(op).iter().any(|path| path.starts_with(folder))
}

/// Puts the agent root and the manager in a crash state and recovers as after a reboot; `Err`
/// says which invariant failed.
fn recover(
    host: &Host,
    scenario: Scenario,
    agent: &Tree,
    manager: &Tree,
    address: std::net::SocketAddr,
) -> Result<Recovery, String> {
    let root = host.root.path();
    clear(root);
    write_tree(root, agent).unwrap();
    let manager_dir = tempfile::tempdir().unwrap();
    write_tree(manager_dir.path(), manager).unwrap();
    let log = manager_dir.path().join("ignored-change-log");
    let emulator = start_manager(manager_dir.path(), &log, Some(address));

    // No file or folder others can read, before recovery and after.
    open_to_others(root)?;
    let conf = root.join("vmd/etc/agent.conf");
    if conf.exists() {
        agent_config::ConfigFile::read(&conf)
            .map_err(|error| format!("agent.conf does not parse: {error}"))?;
    }
    let mut status = Command::new(sibling_binary("vmutil"));
    status
        .arg("--agent-root")
        .arg(root)
        .args(["-a", "vmd", "status"]);
    clean(&mut status);
    let shown = status.output().unwrap();
    if shown.status.code() == Some(1) || shown.status.code().is_none() {
        return Err(format!("vmutil status failed: {}", text(&shown)));
    }
    let mut outputs: Vec<Output> = Vec::new();
    let mut healthy = false;
    let mut recovery = Recovery::FirstCheck;
    for check in [Recovery::FirstCheck, Recovery::SecondCheck] {
        let output = vmd_once(root).output().unwrap();
        healthy = output.status.success();
        outputs.push(output);
        recovery = check;
        if healthy {
            break;
        }
    }
    if !healthy && scenario == Scenario::Register {
        // The registration did not finish: the operator runs it again, with `--force` when it
        // says the host is already registered (README, "Troubleshooting").
        let mut registered = false;
        for force in [false, true] {
            let mut again = host.register_command();
            if force {
                again.arg("--force");
            }
            let output = again.output().unwrap();
            registered = output.status.success();
            outputs.push(output);
            if registered {
                recovery = if force {
                    Recovery::RegisteredAgainWithForce
                } else {
                    Recovery::RegisteredAgain
                };
                break;
            }
            if !force {
                // Not a violation yet: `--force` may finish it; see below.
                continue;
            }
        }
        if registered {
            let output = vmd_once(root).output().unwrap();
            healthy = output.status.success();
            outputs.push(output);
        }
    }
    drop(emulator);
    if recovery == Recovery::RegisteredAgainWithForce {
        // An interrupted registration must be finished by running it again, as the README
        // says; "already registered, use --force" on a host with no working identity sends
        // the operator the wrong way.
        let said: Vec<String> = outputs.iter().map(text).collect();
        return Err(format!(
            "register_host run again refused the host as already registered, though it has no working identity:\n{}",
            said.join("\n---\n")
        ));
    }
    if !healthy {
        let said: Vec<String> = outputs.iter().map(text).collect();
        return Err(format!(
            "no identity the manager accepts after recovery:\n{}",
            said.join("\n---\n")
        ));
    }
    open_to_others(root)?;
    for name in ["renewal-journal.json", "renewal-journal.json.unreadable"] {
        if root.join("vmd/run").join(name).exists() {
            return Err(format!("vmd/run/{name} is left after recovery"));
        }
    }
    Ok(recovery)
}

/// How a crash state came back to an identity the manager accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Recovery {
    /// The first `vmd --once` after the reboot.
    FirstCheck,
    /// The second (the first settled what the crash left).
    SecondCheck,
    /// `register_host` run again, as the operator does after an interrupted registration.
    RegisteredAgain,
    /// The same, but it said the host was already registered and needed `--force`.
    RegisteredAgainWithForce,
}

fn clear(root: &Path) {
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700));
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

fn open_to_others(root: &Path) -> Result<(), String> {
    for (path, node) in read_tree(root).map_err(|error| error.to_string())? {
        let mode = match node {
            Node::File { mode, .. } | Node::Folder { mode } => mode,
        };
        if mode & 0o077 != 0 && !path.starts_with("vmd/log") {
            return Err(format!(
                "{} has mode {mode:o}: open to group or others",
                path.display()
            ));
        }
    }
    Ok(())
}

fn table(outcomes: &[Outcome]) -> String {
    let mut table = String::from(
        "| binary | model | operations | states | violations | recovered by | time |\n|---|---|---|---|---|---|---|\n",
    );
    for outcome in outcomes {
        let recovered: Vec<String> = outcome
            .recoveries
            .iter()
            .map(|(how, count)| {
                let how = match how {
                    Recovery::FirstCheck => "first check",
                    Recovery::SecondCheck => "second check",
                    Recovery::RegisteredAgain => "register_host again",
                    Recovery::RegisteredAgainWithForce => "register_host --force",
                };
                format!("{count} {how}")
            })
            .collect();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            outcome.scenario.name(),
            outcome.model.name(),
            outcome.operations,
            outcome.states,
            outcome.violations.len(),
            recovered.join(", "),
            outcome.seconds
        ));
    }
    table
}

fn check(outcomes: &[Outcome]) {
    println!("{}", table(outcomes));
    let violations: Vec<&String> = outcomes
        .iter()
        .flat_map(|outcome| &outcome.violations)
        .collect();
    for violation in violations.iter().take(5) {
        println!("{violation}\n");
    }
    assert!(
        violations.is_empty(),
        "{} crash states violate an invariant (the first ones above)",
        violations.len()
    );
}

#[test]
fn the_weakest_model_on_register_and_one_renewal() {
    let Some(strace) = strace() else {
        eprintln!("SKIPPED: strace is not installed (.ci/run installs it)");
        return;
    };
    let mut outcomes = explore(&strace, Scenario::Register, &[Model::PosixWeak]);
    outcomes.extend(explore(&strace, Scenario::Renewal, &[Model::PosixWeak]));
    check(&outcomes);
}

#[test]
#[ignore = "the full exploration; `cargo xtask powerloss` runs it"]
fn every_binary_under_both_models() {
    let Some(strace) = strace() else {
        eprintln!("SKIPPED: strace is not installed");
        return;
    };
    let mut outcomes = Vec::new();
    for scenario in [
        Scenario::Register,
        Scenario::Renewal,
        Scenario::UpdateCerts,
        Scenario::Heartbeat,
        Scenario::Daemon,
    ] {
        outcomes.extend(explore(
            &strace,
            scenario,
            &[Model::Ext4Ordered, Model::PosixWeak],
        ));
    }
    check(&outcomes);
}
