//! Root touches files one way (issue 20), checked on the real binaries.
//!
//! - The strace guard runs `register_host`, `vmd --once` with a renewal, `vmutil updatecerts`,
//!   `vmutil status --prometheus`, `vmutil checkcerts` and a daemon heartbeat under `strace -f`
//!   against the real emulator, and asserts from the trace: no path-based `chmod`, `chown` or
//!   `utime` family call; every `open` with `O_CREAT`, and every open of a file under the agent
//!   root or the metrics folder (the certificate folder aside), has `O_NOFOLLOW`. It says
//!   SKIPPED without strace (`.ci/run` installs it).
//! - The hostile-state tests put a FIFO, a link and `/dev/zero` at each state file, and make the
//!   metrics folder and the log folder writable by others: `vmd --once` must finish (bounded),
//!   never touch the link's target, and say what is wrong.

#![cfg(unix)]

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{DAY, issue, register, sibling_binary, text, trust_test_ca};
use test_pki::KeyType;
use test_support::Manager;

fn vmd(root: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmd"));
    command
        .arg("--agent-root")
        .arg(root)
        .args(arguments)
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end, but at most `limit`: a hang is a failure, not a stuck test.
fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{command:?} did not finish within {limit:?}: {}",
                text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set_conf(root: &Path, key: &str, value: &str) {
    let path = root.join("vmd/etc/agent.conf");
    let mut conf = agent_config::ConfigFile::read(&path).unwrap();
    conf.set(key, value);
    std::fs::write(&path, conf.render()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn victim(folder: &Path) -> PathBuf {
    let victim = folder.join("shadow");
    std::fs::write(&victim, b"root:secret-hash\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    victim
}

fn assert_untouched(victim: &Path) {
    assert_eq!(std::fs::read(victim).unwrap(), b"root:secret-hash\n");
    assert_eq!(
        std::fs::symlink_metadata(victim)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o600,
        "the victim's mode changed"
    );
}

/// A host registered in-process with a certificate in its renewal window, writing metrics.
struct Host {
    manager: Manager,
    ca: test_pki::CertificateAuthority,
    token: String,
    root: tempfile::TempDir,
    cert_dir: tempfile::TempDir,
    metrics_dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let manager = Manager::start().unwrap();
        let (token, ca) = trust_test_ca(&manager, "ca-p384");
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        issue(
            &ca,
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + 30 * DAY,
            cert_dir.path(),
        );
        Host {
            manager,
            ca,
            token,
            root: tempfile::tempdir().unwrap(),
            cert_dir,
            metrics_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn registered() -> Host {
        let host = Host::new();
        register(
            &host.manager,
            &host.token,
            "host1",
            host.cert_dir.path(),
            host.root.path(),
        );
        host.enable_metrics();
        host
    }

    fn enable_metrics(&self) {
        set_conf(
            self.root.path(),
            "METRICS_FILE",
            self.metrics_dir
                .path()
                .join("cte_agent.prom")
                .to_str()
                .unwrap(),
        );
    }

    /// A newer set with the same common name in `directory`, valid for `days` more days.
    fn new_set(&self, directory: &Path, days: u32) {
        let now = SystemTime::now();
        issue(
            &self.ca,
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + days * DAY,
            directory,
        );
    }
}

// ---- the strace guard -------------------------------------------------------------------------

/// strace's path, if installed.
fn strace() -> Option<PathBuf> {
    ["/usr/bin/strace", "/bin/strace"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

const TRACED: &str = "trace=open,openat,openat2,creat,chmod,fchmodat,chown,lchown,fchownat,utime,utimes,utimensat,futimesat";

/// Runs `command` under `strace -f -y`, appending the trace to `trace`.
fn traced(strace: &Path, trace: &Path, command: &Command, limit: Duration) -> Output {
    let mut wrapped = Command::new(strace);
    wrapped
        .args(["-f", "-qq", "-y", "-e", TRACED, "-A", "-o"])
        .arg(trace)
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    run_bounded(wrapped, limit)
}

/// Runs the `vmd` daemon under `strace -f -y` (appending to `trace`) until `ready` (at most
/// 60 s), then stops it with SIGTERM and waits for it (at most 30 s).
fn traced_daemon_until(strace: &Path, trace: &Path, root: &Path, ready: impl Fn() -> bool) {
    let mut daemon = Command::new(strace);
    daemon
        .args(["-f", "-qq", "-y", "-e", TRACED, "-A", "-o"])
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root)
        .env_remove("CTE_AGENT_ROOT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = daemon.spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) && !ready() {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SIGTERM to vmd itself (its pid file): strace blocks fatal signals when it runs a program
    // with -o (its -I3 default), and exits when vmd does.
    let pid = std::fs::read_to_string(root.join("vmd/run/vmd.pid")).unwrap_or_default();
    let _ = Command::new("kill").arg("-TERM").arg(pid.trim()).status();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = Command::new("kill").arg("-KILL").arg(pid.trim()).status();
            panic!("the traced daemon did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One traced system call: its name and its arguments and result as text.
struct Call<'a> {
    name: &'a str,
    line: &'a str,
}

fn calls(trace: &str) -> Vec<Call<'_>> {
    trace
        .lines()
        .filter_map(|line| {
            // `PID name(args) = result` (with -f, a pid first).
            let rest = line
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            let name = rest.split('(').next()?;
            if name.is_empty() || name.contains(' ') {
                return None;
            }
            Some(Call { name, line: rest })
        })
        .collect()
}

/// The path a traced `open*` call reached: the result's `<path>` annotation when it succeeded,
/// else the path argument (absolute, or joined to the folder annotation of its dirfd).
fn opened_path(call: &Call<'_>) -> Option<String> {
    if let Some((_, result)) = call.line.rsplit_once(" = ")
        && let Some(start) = result.find('<')
        && let Some(end) = result.rfind('>')
    {
        return Some(result[start + 1..end].to_string());
    }
    let arguments = call.line.split_once('(')?.1;
    let quoted_start = arguments.find('"')?;
    let quoted = &arguments[quoted_start + 1..];
    let name = &quoted[..quoted.find('"')?];
    if name.starts_with('/') || call.name == "open" || call.name == "creat" {
        return Some(name.to_string());
    }
    let folder = arguments[..quoted_start]
        .split_once('<')
        .map(|(_, rest)| rest.trim_end_matches([',', ' ', '>']))
        .unwrap_or(".");
    Some(format!("{folder}/{name}"))
}

/// The problems found, and how many opens of watched files were seen (so a trace the parser
/// cannot read fails instead of passing empty).
fn check_trace(trace: &str, watched: &[&Path], exempt: &Path) -> (Vec<String>, usize) {
    let mut problems = Vec::new();
    let mut seen = 0;
    let watched: Vec<String> = watched.iter().map(|p| p.display().to_string()).collect();
    let exempt = exempt.display().to_string();
    for call in calls(trace) {
        match call.name {
            "chmod" | "fchmodat" | "fchmodat2" | "chown" | "lchown" | "fchownat" | "utime"
            | "utimes" | "futimesat" => {
                problems.push(format!("path-based call: {}", call.line));
            }
            // utimensat(fd, NULL, ...) is futimens: on the handle.
            "utimensat" if !call.line.contains(", NULL,") => {
                problems.push(format!("path-based call: {}", call.line));
            }
            "open" | "openat" | "openat2" | "creat" => {
                let flags = call.line;
                let nofollow = flags.contains("O_NOFOLLOW");
                if (flags.contains("O_CREAT") || call.name == "creat") && !nofollow {
                    problems.push(format!("O_CREAT without O_NOFOLLOW: {}", call.line));
                    continue;
                }
                if flags.contains("O_DIRECTORY") {
                    continue;
                }
                let Some(path) = opened_path(&call) else {
                    continue;
                };
                if path.starts_with(&exempt)
                    || !watched
                        .iter()
                        .any(|folder| path.starts_with(folder.as_str()))
                {
                    continue;
                }
                seen += 1;
                if !nofollow {
                    problems.push(format!("opened without O_NOFOLLOW: {}", call.line));
                }
            }
            _ => {}
        }
    }
    (problems, seen)
}

#[test]
fn every_agent_file_is_opened_without_following_links_and_no_mode_is_set_by_path() {
    let Some(strace) = strace() else {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
        return;
    };
    let host = Host::new();
    let work = tempfile::tempdir().unwrap();
    let trace = work.path().join("trace.txt");
    let root = host.root.path();
    // The metrics file is on from the start, as register_host turns it on for node_exporter.
    let mut register = Command::new(sibling_binary("register_host"));
    register
        .arg("--agent-root")
        .arg(root)
        .args(["--token", &host.token, "--agent", "host1", "--extcertdir"])
        .arg(host.cert_dir.path())
        .arg("--cm-ca")
        .arg(host.manager.web_ca_path())
        .arg(host.manager.host_port())
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("REG_TOKEN");
    let output = traced(&strace, &trace, &register, Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    host.enable_metrics();
    // A renewal by vmd --once.
    host.new_set(host.cert_dir.path(), 400);
    let output = traced(
        &strace,
        &trace,
        &vmd(root, &["--once"]),
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        common::log(root).contains("CGP2003I"),
        "{}",
        common::log(root)
    );
    // updatecerts with another set.
    let second = tempfile::tempdir().unwrap();
    host.new_set(second.path(), 430);
    let mut vmutil = Command::new(sibling_binary("vmutil"));
    vmutil
        .arg("--agent-root")
        .arg(root)
        .args(["-a", "vmd", "-d"])
        .arg(second.path())
        .arg("updatecerts")
        .env_remove("CTE_AGENT_ROOT");
    let output = traced(&strace, &trace, &vmutil, Duration::from_secs(120));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for arguments in [
        vec!["-a", "vmd", "status", "--prometheus"],
        vec![
            "-a",
            "vmd",
            "-d",
            second.path().to_str().unwrap(),
            "checkcerts",
        ],
    ] {
        let mut vmutil = Command::new(sibling_binary("vmutil"));
        vmutil
            .arg("--agent-root")
            .arg(root)
            .args(&arguments)
            .env_remove("CTE_AGENT_ROOT");
        let output = traced(&strace, &trace, &vmutil, Duration::from_secs(60));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{arguments:?}: {}",
            text(&output)
        );
    }
    // The daemon: a heartbeat at start, then SIGTERM.
    let metrics = host.metrics_dir.path().join("cte_agent.prom");
    let before = std::fs::metadata(&metrics).and_then(|m| m.modified()).ok();
    traced_daemon_until(&strace, &trace, root, || {
        let now = std::fs::metadata(&metrics).and_then(|m| m.modified()).ok();
        now != before && common::log(root).contains("CGP2001I")
    });
    let trace_text = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace_text.contains("heartbeat.json"),
        "the daemon's heartbeat is in the trace"
    );
    let (problems, seen) = check_trace(
        &trace_text,
        &[root, host.metrics_dir.path()],
        host.cert_dir.path(),
    );
    eprintln!("strace guard: {seen} opens of the agent's files checked");
    assert!(
        seen >= 30,
        "only {seen} opens of the agent's files in the trace"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_trace_checker_finds_what_it_looks_for() {
    // The checker itself, on lines in strace's own format: it must not pass everything.
    let root = Path::new("/tmp/root");
    let cert = Path::new("/tmp/certs");
    let trace = r#"123 chmod("/tmp/root/x", 0644) = 0
123 fchmodat(AT_FDCWD</tmp>, "/tmp/m/.x.tmp", 0644) = 0
124 openat(AT_FDCWD</tmp>, "/tmp/root/vmd/run/status.json", O_RDONLY|O_CLOEXEC) = 3</tmp/root/vmd/run/status.json>
124 openat(5</tmp/root/vmd/run>, "journal.json", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 6</tmp/root/vmd/run/journal.json>
124 openat(5</tmp/root/vmd/run>, "ok.json", O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC) = 6</tmp/root/vmd/run/ok.json>
124 openat(AT_FDCWD</tmp>, "/tmp/certs/client_key.pem", O_RDONLY|O_CLOEXEC) = 3</tmp/certs/client_key.pem>
124 openat(AT_FDCWD</tmp>, "/etc/hostname", O_RDONLY|O_CLOEXEC) = 3</etc/hostname>
124 utimensat(3</tmp/root/x>, NULL, [UTIME_NOW, UTIME_NOW], 0) = 0
"#;
    let (problems, seen) = check_trace(trace, &[root], cert);
    assert_eq!(
        seen, 2,
        "status.json and ok.json (the created journal is a problem of its own)"
    );
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].starts_with("path-based call: chmod"));
    assert!(problems[1].starts_with("path-based call: fchmodat"));
    assert!(problems[2].contains("status.json"));
    assert!(problems[3].starts_with("O_CREAT without O_NOFOLLOW"));
}

// ---- hostile state files and folders ----------------------------------------------------------

#[test]
fn a_fifo_a_link_or_a_device_at_any_state_file_never_hangs_or_touches_another_file() {
    let host = Host::registered();
    let root = host.root.path();
    let outside = tempfile::tempdir().unwrap();
    let victim = victim(outside.path());
    let run = root.join("vmd/run");
    std::fs::create_dir_all(&run).unwrap();
    let names = [
        "metrics-state.json",
        "heartbeat.json",
        "status.json",
        "renewal-journal.json",
    ];
    for name in names {
        for kind in ["fifo", "link", "zero"] {
            let path = run.join(name);
            let _ = std::fs::remove_file(&path);
            match kind {
                "fifo" => rustix::fs::mkfifoat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::Mode::from_raw_mode(0o666),
                )
                .unwrap(),
                "link" => symlink(&victim, &path).unwrap(),
                _ => symlink("/dev/zero", &path).unwrap(),
            }
            let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
            let all = text(&output);
            assert_untouched(&victim);
            // Never a hang (run_bounded) and never a crash; a refusal names the file.
            assert!(
                matches!(output.status.code(), Some(0 | 3 | 7)),
                "{name} as {kind}: {all}"
            );
            if output.status.code() != Some(0) {
                assert!(all.contains(name), "{name} as {kind}: {all}");
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    // Cleaned up, the host is healthy again.
    let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

#[test]
fn a_metrics_folder_others_can_write_is_refused_with_the_fix_and_the_check_goes_on() {
    let host = Host::registered();
    let root = host.root.path();
    std::fs::set_permissions(
        host.metrics_dir.path(),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("CGP3013W"), "{all}");
    assert!(all.contains("chmod go-w"), "{all}");
    assert!(!host.metrics_dir.path().join("cte_agent.prom").exists());
    // Fixed as the message says, the file appears, 0644, written by fchmod on the handle.
    std::fs::set_permissions(
        host.metrics_dir.path(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let metrics = host.metrics_dir.path().join("cte_agent.prom");
    assert_eq!(
        std::fs::metadata(&metrics).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn a_log_folder_others_can_write_or_a_link_at_the_log_is_refused_and_lines_go_to_stderr() {
    let host = Host::registered();
    let root = host.root.path();
    let outside = tempfile::tempdir().unwrap();
    let victim = victim(outside.path());
    // A custom LOG_DIR writable by all.
    let logs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(logs.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    set_conf(root, "LOG_DIR", logs.path().to_str().unwrap());
    let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("CGP3014E"), "{all}");
    assert!(all.contains("chmod go-w"), "{all}");
    assert!(!logs.path().join("vorvmd_root.log").exists());
    // The lost lines are counted in the status, for `vmutil status` (and its --json).
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("vmd/run/status.json")).unwrap()).unwrap();
    assert!(
        status["log_write_failures"].as_u64().unwrap() > 0,
        "{status}"
    );
    let shown = Command::new(sibling_binary("vmutil"))
        .arg("--agent-root")
        .arg(root)
        .args(["-a", "vmd", "status"])
        .output()
        .unwrap();
    assert!(
        text(&shown).contains("log write failures:"),
        "{}",
        text(&shown)
    );
    // The agent's own log folder, with the log file a link to a root-only file.
    let mut conf = agent_config::ConfigFile::read(&root.join("vmd/etc/agent.conf")).unwrap();
    conf.set("LOG_DIR", "");
    std::fs::write(root.join("vmd/etc/agent.conf"), conf.render()).unwrap();
    let own_logs = root.join("vmd/log");
    std::fs::create_dir_all(&own_logs).unwrap();
    let _ = std::fs::remove_file(own_logs.join("vorvmd_root.log"));
    symlink(&victim, own_logs.join("vorvmd_root.log")).unwrap();
    // And the agent's own folder made wide: repaired, with a message.
    std::fs::set_permissions(root.join("vmd/run"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert_untouched(&victim);
    assert!(all.contains("CGP3014E"), "{all}");
    assert!(all.contains("symbolic link"), "{all}");
    assert!(all.contains("CGP3015W"), "{all}");
    assert_eq!(
        std::fs::metadata(root.join("vmd/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
}

// ---- the work of one check and one heartbeat, counted ---------------------------------------------

/// How many times a trace opens agent.conf and a pem store key (each key open is one decryption
/// of a generation's private key).
fn count_conf_and_key_opens(trace: &str) -> (usize, usize) {
    let opens = calls(trace)
        .into_iter()
        .filter(|call| call.name.starts_with("open") && !call.line.contains("= -1"))
        .collect::<Vec<_>>();
    let conf = opens
        .iter()
        .filter(|call| call.line.contains("agent.conf\""))
        .count();
    let keys = opens
        .iter()
        .filter(|call| call.line.contains("vmd/keys/") && call.line.contains(".key\""))
        .count();
    (conf, keys)
}

/// Issue 21, "one context per check": agent.conf is parsed once per check and once per
/// heartbeat, and the current key is decrypted at most once for each, counted with strace on the
/// real binaries. Before: `vmd --once` opened agent.conf 4 times and a key twice; a daemon's
/// start, first check and first heartbeat opened agent.conf 10 times and a key 3 times.
#[test]
fn a_check_and_a_heartbeat_read_agent_conf_and_the_key_once_each() {
    let Some(strace) = strace() else {
        eprintln!("SKIPPED: strace is not installed (apt-get install strace)");
        return;
    };
    let host = Host::registered();
    let root = host.root.path();
    let work = tempfile::tempdir().unwrap();
    // vmd --once: one check (a health check: a login with the current identity).
    let trace = work.path().join("once.txt");
    let output = traced(
        &strace,
        &trace,
        &vmd(root, &["--once"]),
        Duration::from_secs(120),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let (conf, keys) = count_conf_and_key_opens(&std::fs::read_to_string(&trace).unwrap());
    eprintln!("vmd --once: agent.conf opened {conf} times, a key {keys} times");
    assert_eq!((conf, keys), (1, 1), "vmd --once: agent.conf and key opens");
    // The daemon: its first check and heartbeat, then SIGTERM.
    let trace = work.path().join("daemon.txt");
    traced_daemon_until(&strace, &trace, root, || {
        root.join("vmd/run/heartbeat.json").exists()
    });
    let (daemon_conf, daemon_keys) =
        count_conf_and_key_opens(&std::fs::read_to_string(&trace).unwrap());
    eprintln!(
        "vmd daemon (start, first check, first heartbeat): agent.conf opened {daemon_conf} times, a key {daemon_keys} times"
    );
    // At start: the log file's LOG_DIR and the daemon's own settings (2), the store verified
    // (one key); then one of each per check and per heartbeat.
    assert!(
        daemon_conf <= 4 && daemon_keys <= 3,
        "daemon: agent.conf opened {daemon_conf} times, a key {daemon_keys} times"
    );
}

// ---- races run by a real unprivileged user ------------------------------------------------------

/// A user made with `useradd` for one test, removed (with its loops stopped) on drop.
struct Attacker {
    name: String,
    uid: u32,
    gid: u32,
    loops: Vec<std::process::Child>,
}

impl Attacker {
    /// `None` when this is not root or `useradd` is missing (the caller says SKIPPED).
    fn create() -> Option<Attacker> {
        if !rustix::process::geteuid().is_root() {
            return None;
        }
        let name = format!("cterace{}", std::process::id());
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(&name)
            .output()
            .ok()?;
        if !made.status.success() {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let output = Command::new("id").args([flag, &name]).output().ok()?;
            String::from_utf8_lossy(&output.stdout).trim().parse().ok()
        };
        let (uid, gid) = (id("-u")?, id("-g")?);
        Some(Attacker {
            name,
            uid,
            gid,
            loops: Vec::new(),
        })
    }

    /// Runs, as this user, a loop that replaces every entry of `folder` with a symbolic link to
    /// `victim` and keeps links to it at each name in `planted`: the inotify-free version of the
    /// race (it simply never stops), aimed at every temporary and final name the agent uses.
    fn swap_links(&mut self, folder: &Path, victim: &Path, planted: &[&str]) {
        let script = r#"while :; do
  for f in "$0"/* "$0"/.[!.]*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ -L "$f" ] || { rm -f "$f"; ln -s "$1" "$f"; } 2>/dev/null
  done
  for n in $2; do ln -sfn "$1" "$0/$n" 2>/dev/null; done
done"#;
        let child = Command::new("setpriv")
            .args(["--reuid", &self.uid.to_string()])
            .args(["--regid", &self.gid.to_string()])
            .args(["--clear-groups", "--", "sh", "-c", script])
            .arg(folder)
            .arg(victim)
            .arg(planted.join(" "))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv runs");
        self.loops.push(child);
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        for child in &mut self.loops {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Issue 20, findings 1 and 2, with a real unprivileged user (made with `useradd`) racing the
/// agent: it owns the metrics folder and a custom `LOG_DIR`, and replaces every entry in them
/// with a link to a root-only file, without pause, while `vmd --once` runs again and again; then
/// it is given the agent's own run folder made writable by all (0777) and does the same there.
/// The root-only file stays byte- and mode-identical, no run hangs, the folders the user controls
/// are refused with the fix (the checks go on, exit 0), and the run folder is repaired to 0700.
#[test]
fn a_real_unprivileged_user_racing_links_changes_nothing_of_roots() {
    let Some(mut attacker) = Attacker::create() else {
        eprintln!("SKIPPED: races as an unprivileged user: needs root and useradd");
        return;
    };
    let host = Host::registered();
    let root = host.root.path();
    let outside = tempfile::tempdir().unwrap();
    let victim = victim(outside.path());
    let logs = tempfile::tempdir().unwrap();
    for folder in [host.metrics_dir.path(), logs.path()] {
        std::os::unix::fs::chown(folder, Some(attacker.uid), Some(attacker.gid)).unwrap();
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    set_conf(root, "LOG_DIR", logs.path().to_str().unwrap());
    attacker.swap_links(host.metrics_dir.path(), &victim, &["cte_agent.prom"]);
    attacker.swap_links(
        logs.path(),
        &victim,
        &[
            "vorvmd_root.log",
            "vorvmd_root.log.1",
            ".vorvmd_root.log.lock",
        ],
    );
    // The user's loop is live: its links are in place before the agent runs.
    let planted = host.metrics_dir.path().join("cte_agent.prom");
    let started = Instant::now();
    while std::fs::symlink_metadata(&planted).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the race loop did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    for _ in 0..5 {
        let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
        let all = text(&output);
        assert_eq!(output.status.code(), Some(0), "{all}");
        assert!(all.contains("CGP3013W"), "{all}");
        assert!(all.contains("CGP3014E"), "{all}");
        assert_untouched(&victim);
    }
    // The agent's own run folder, writable by all: the user can reach it and races there too.
    for folder in [root, &root.join("vmd")] {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(root.join("vmd/run"), std::fs::Permissions::from_mode(0o777)).unwrap();
    attacker.swap_links(
        &root.join("vmd/run"),
        &victim,
        &[
            "status.json",
            "metrics-state.json",
            "renewal.lock",
            "renewal-journal.json",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let output = run_bounded(vmd(root, &["--once"]), Duration::from_secs(60));
        let all = text(&output);
        // Refused (a link where the lock or a state file belongs: exit 7, the path named) or,
        // once the folder is repaired and nothing is planted, a normal check.
        assert!(matches!(output.status.code(), Some(0 | 7)), "{all}");
        assert_untouched(&victim);
    }
    assert_eq!(
        std::fs::metadata(root.join("vmd/run"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700,
        "the run folder was repaired"
    );
    drop(attacker);
    assert_untouched(&victim);
}

// ---- a read-only agent root ---------------------------------------------------------------------

/// `vmd ARGS` with the agent root bind-mounted read-only in a private mount namespace
/// (`unshare -m`, as root); `None` when this machine cannot do that (not root, no unshare).
fn vmd_on_read_only_root(root: &Path, arguments: &[&str]) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["-m", "--", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\"")
        .arg(root)
        .output()
        .ok()?;
    if !probe.status.success() {
        return None;
    }
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--", "sh", "-c"])
        .arg("mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\"")
        .arg(root)
        .arg(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root)
        .args(arguments)
        .env_remove("CTE_AGENT_ROOT")
        .env_remove("EXTERNAL_CERT_DIR")
        .stdin(Stdio::null());
    Some(run_bounded(command, Duration::from_secs(60)))
}

/// Issue 20, finding 7: on a read-only agent root the health check (`vmd --once`) failed with
/// exit 3 although the manager accepted the host. Now it asks the manager, says what it could
/// not record (CGP3017W) and exits by the host's health; a renewal, which must write, fails as
/// a local system problem (exit 7) naming the file system's error, with nothing sent.
#[test]
fn on_a_read_only_agent_root_the_health_check_works_and_a_renewal_is_a_local_system_failure() {
    let host = Host::registered();
    let root = host.root.path();
    let Some(output) = vmd_on_read_only_root(root, &["--once"]) else {
        eprintln!(
            "SKIPPED: read-only agent root: cannot bind-mount read-only here (needs root and unshare)"
        );
        return;
    };
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("CGP3017W"), "{all}");
    assert!(all.contains("read-only"), "{all}");
    let before = host.manager.clients().unwrap()[0]["cert_fingerprint"].clone();
    let now = SystemTime::now();
    issue(
        &host.ca,
        KeyType::P384,
        "host1.example",
        now - DAY,
        now + 300 * DAY,
        host.cert_dir.path(),
    );
    let output = vmd_on_read_only_root(root, &["--once"]).unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(7), "{all}");
    assert!(all.contains("Read-only file system"), "{all}");
    assert_eq!(
        host.manager.clients().unwrap()[0]["cert_fingerprint"],
        before
    );
}

// ---- the clock ---------------------------------------------------------------------------------

/// libfaketime (Debian `faketime`), if installed.
fn libfaketime() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

/// `command` with its wall clock read from `file` (`@YYYY-MM-DD hh:mm:ss` or `+Nd`, re-read at
/// every call) and its monotonic clock left real, as an NTP step leaves it.
fn with_fake_clock(command: &mut Command, library: &Path, file: &Path) {
    command
        .env("LD_PRELOAD", library)
        .env("FAKETIME_TIMESTAMP_FILE", file)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("DONT_FAKE_MONOTONIC", "1");
}

#[test]
fn a_clock_ahead_past_not_after_asks_the_manager_and_reports_the_skew() {
    let Some(library) = libfaketime() else {
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let host = Host::registered();
    let root = host.root.path();
    let clock = host.root.path().join("fake-clock");
    // 40 days ahead: the certificate (30 days left) has expired by this clock.
    std::fs::write(&clock, "+40d\n").unwrap();
    let mut once = vmd(root, &["--once"]);
    with_fake_clock(&mut once, &library, &clock);
    let output = run_bounded(once, Duration::from_secs(60));
    let all = text(&output);
    assert!(all.contains("CGP3016W"), "{all}");
    assert!(
        !all.contains("CGP3005C"),
        "re-registration was asked for: {all}"
    );
    assert_eq!(output.status.code(), Some(7), "{all}");
    // With a usable newer set in the folder, it renews as normal despite the clock (logged
    // at WARNING, as every renewal past the ERROR threshold is: by this clock it came late).
    host.new_set(host.cert_dir.path(), 400);
    let mut once = vmd(root, &["--once"]);
    with_fake_clock(&mut once, &library, &clock);
    let output = run_bounded(once, Duration::from_secs(60));
    let all = text(&output);
    assert!(all.contains("CGP2003W"), "{all}");
    assert_eq!(output.status.code(), Some(0), "{all}");
}

#[test]
fn the_daemon_keeps_its_heartbeat_when_the_wall_clock_steps_back_or_forward() {
    let Some(library) = libfaketime() else {
        eprintln!("SKIPPED: libfaketime is not installed (apt-get install faketime)");
        return;
    };
    let host = Host::registered();
    let root = host.root.path();
    set_conf(root, "STATUS_INTERVAL_MINUTES", "1");
    let clock = host.root.path().join("fake-clock");
    std::fs::write(&clock, "+0d\n").unwrap();
    let mut daemon = vmd(root, &[]);
    with_fake_clock(&mut daemon, &library, &clock);
    let mut child = daemon
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Each heartbeat rewrites heartbeat.json with its (wall-clock) time, so the bytes change.
    let state = root.join("vmd/run/heartbeat.json");
    let inode = || std::fs::read(&state).ok();
    let wait_for_beat = |after: Option<Vec<u8>>, limit: Duration| -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let now = inode();
            if now.is_some() && now != after.clone() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    };
    let result = (|| {
        wait_for_beat(None, Duration::from_secs(30)).ok_or("no first heartbeat")?;
        // NTP steps the clock 320 days back: the next heartbeat still comes within the interval.
        std::fs::write(&clock, "-320d\n").unwrap();
        let first = inode();
        let waited = wait_for_beat(first, Duration::from_secs(90))
            .ok_or("no heartbeat within 90 s after the clock stepped back 320 days")?;
        eprintln!("heartbeat {waited:?} after the step back");
        // And 200 days forward.
        std::fs::write(&clock, "+200d\n").unwrap();
        let second = inode();
        let waited = wait_for_beat(second, Duration::from_secs(90))
            .ok_or("no heartbeat within 90 s after the clock stepped forward 200 days")?;
        eprintln!("heartbeat {waited:?} after the step forward");
        Ok::<(), &str>(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    if let Err(problem) = result {
        panic!("{problem}; log:\n{}", common::log(root));
    }
}
