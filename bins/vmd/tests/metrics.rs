//! The Prometheus textfile (`METRICS_FILE`) after the real `vmd --once` against the real emulator
//! over TLS, in each state a host can be in: not due, renewed, refused, unreachable, expired.
//! The file is read back with an independent parser of the exposition format
//! (`prometheus-parse`) and asserted by value; the alerting rules and the dashboard are checked
//! against the series the agent really writes.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use agent::paths::AgentRoot;
use common::{DAY, PASSPHRASE, register, text};
use prometheus_parse::{Scrape, Value};
use test_pki::KeyType;
use test_support::{Manager, test_ca, test_ca_pem};

struct Host {
    manager: Manager,
    _state: Option<tempfile::TempDir>,
    token: String,
    root: tempfile::TempDir,
    cert_dir: tempfile::TempDir,
    metrics_dir: tempfile::TempDir,
}

impl Host {
    /// A host registered with a certificate valid until `not_after`, writing its metrics.
    fn registered(not_after: SystemTime) -> Host {
        Host::registered_with(Manager::start().unwrap(), None, not_after)
    }

    /// The same against a manager that holds one certificate for at most one client (the real
    /// manager's rule, the emulator's default; test-support's `Manager::start` turns it off).
    fn registered_one_client_per_certificate(not_after: SystemTime) -> Host {
        let state = tempfile::tempdir().unwrap();
        let manager = Manager::start_with(cm_emulator::EmulatorConfig {
            one_client_per_certificate: true,
            ..cm_emulator::EmulatorConfig::new(state.path())
        })
        .unwrap();
        Host::registered_with(manager, Some(state), not_after)
    }

    fn registered_with(
        manager: Manager,
        state: Option<tempfile::TempDir>,
        not_after: SystemTime,
    ) -> Host {
        let token = manager
            .setup_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext")
            .unwrap();
        let cert_dir = tempfile::tempdir().unwrap();
        issue("ca-p384", "host1.example", not_after, cert_dir.path());
        let root = tempfile::tempdir().unwrap();
        register(&manager, &token, "host1", cert_dir.path(), root.path());
        let host = Host {
            manager,
            _state: state,
            token,
            root,
            cert_dir,
            metrics_dir: tempfile::tempdir().unwrap(),
        };
        let file = host.metrics_file().display().to_string();
        host.set_conf("METRICS_FILE", &file);
        host
    }

    fn conf_path(&self) -> PathBuf {
        self.root.path().join("vmd/etc/agent.conf")
    }

    fn set_conf(&self, key: &str, value: &str) {
        let mut conf = agent_config::ConfigFile::read(&self.conf_path()).unwrap();
        conf.set(key, value);
        std::fs::write(self.conf_path(), conf.render()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.conf_path(), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
    }

    fn metrics_file(&self) -> PathBuf {
        self.metrics_dir.path().join("cte-agent.prom")
    }

    fn vmd_once(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmd"))
            .arg("--agent-root")
            .arg(self.root.path())
            .arg("--once")
            .output()
            .unwrap()
    }

    fn current(&self) -> cert_loading::CertificateSummary {
        AgentRoot::new(self.root.path())
            .open_store()
            .unwrap()
            .current()
            .unwrap()
            .certificate()
            .clone()
    }

    fn client_id(&self) -> String {
        agent_config::ConfigFile::read(&self.conf_path())
            .unwrap()
            .get("CLIENT_ID")
            .unwrap()
            .to_string()
    }

    /// Runs `vmd --once`, expects `code`, and reads the metrics file back.
    fn once_and_scrape(&self, code: i32) -> (Metrics, i64, i64) {
        let before = unix(SystemTime::now());
        let output = self.vmd_once();
        let after = unix(SystemTime::now());
        assert_eq!(output.status.code(), Some(code), "{}", text(&output));
        let metrics = Metrics::read(&self.metrics_file());
        self.assert_common(&metrics, before, after);
        (metrics, before, after)
    }

    /// What holds in every state: the certificate's times, the identity, one current result.
    fn assert_common(&self, metrics: &Metrics, before: i64, after: i64) {
        let current = self.current();
        let not_after = unix(current.not_after);
        assert_eq!(
            metrics.value("cte_agent_certificate_not_after_seconds", &[]),
            not_after as f64
        );
        assert_eq!(
            metrics.value("cte_agent_certificate_not_before_seconds", &[]),
            unix(current.not_before) as f64
        );
        // The window opens 60 days before expiry plus this host's stagger (at most 48 hours).
        let window = metrics.value("cte_agent_renewal_window_start_seconds", &[]) as i64;
        let opens = not_after - 60 * 86_400;
        assert!(window >= opens && window <= opens + 48 * 3600, "{window}");
        let info = metrics.labels("cte_agent_info");
        assert_eq!(info.get("client_id"), Some(&self.client_id()));
        assert_eq!(info.get("client_name").map(String::as_str), Some("host1"));
        assert_eq!(info.get("common_name"), Some(&current.common_name));
        assert_eq!(
            info.get("fingerprint"),
            Some(&current.fingerprint.to_string())
        );
        assert_eq!(metrics.value("cte_agent_info", &[]), 1.0);
        let checked = metrics.value("cte_agent_last_check_timestamp_seconds", &[]) as i64;
        assert!(
            (before..=after).contains(&checked),
            "{before} {checked} {after}"
        );
        let results: Vec<(String, f64)> = metrics
            .samples("cte_agent_last_check_result")
            .map(|sample| {
                (
                    sample.labels.get("result").unwrap().to_string(),
                    gauge(&sample.value),
                )
            })
            .collect();
        // Every outcome kind of the plan, plus `check_failed` and `other`.
        assert_eq!(
            results.len(),
            renewal_policy::plan::OutcomeKind::ALL.len() + 2
        );
        for kind in renewal_policy::plan::OutcomeKind::ALL {
            assert!(
                results.iter().any(|(label, _)| label == kind.label()),
                "{kind} missing"
            );
        }
        assert_eq!(results.iter().map(|(_, value)| value).sum::<f64>(), 1.0);
        // The x509-certificate-exporter names show the same certificate.
        let serial = [("serial_number", current.serial_hex.as_str())];
        assert_eq!(
            metrics.value("x509_cert_not_after", &serial),
            not_after as f64
        );
        assert_eq!(
            metrics.labels("x509_cert_not_after").get("subject_CN"),
            Some(&current.common_name)
        );
        // Nothing secret: no passphrase, no key material.
        assert!(!metrics.text.contains(PASSPHRASE) && !metrics.text.contains("PRIVATE"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(self.metrics_file())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o644, "{mode:o}");
            let state = self.root.path().join("vmd/run/metrics-state.json");
            let mode = std::fs::metadata(state).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // No temporary file is left beside it for node_exporter to trip over.
        let names: Vec<_> = std::fs::read_dir(self.metrics_dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cte-agent.prom")]);
    }
}

/// A parsed metrics file, with its text.
struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).unwrap();
        // The parser skips lines it cannot read: every sample line must have become a sample.
        let sample_lines = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .count();
        assert_eq!(scrape.samples.len(), sample_lines, "{text}");
        // Each series has its HELP and TYPE, and counters are typed as counters.
        for sample in &scrape.samples {
            assert!(
                scrape.docs.contains_key(&sample.metric),
                "{}",
                sample.metric
            );
            assert!(
                text.contains(&format!("# TYPE {} ", sample.metric)),
                "{}",
                sample.metric
            );
            if sample.metric.ends_with("_total") {
                assert!(
                    matches!(sample.value, Value::Counter(_)),
                    "{}",
                    sample.metric
                );
            } else {
                assert!(matches!(sample.value, Value::Gauge(_)), "{}", sample.metric);
            }
        }
        Metrics {
            text: text.to_string(),
            scrape,
        }
    }

    fn read(path: &Path) -> Metrics {
        Metrics::parse(&std::fs::read_to_string(path).unwrap())
    }

    fn samples<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a prometheus_parse::Sample> + 'a {
        self.scrape
            .samples
            .iter()
            .filter(move |sample| sample.metric == name)
    }

    /// The one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self
            .samples(name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}:\n{}", self.text);
        gauge(&found[0].value)
    }

    fn result(&self, kind: &str) -> f64 {
        self.value("cte_agent_last_check_result", &[("result", kind)])
    }

    fn labels(&self, name: &str) -> std::collections::HashMap<String, String> {
        let sample = self.samples(name).next().unwrap();
        sample
            .labels
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    fn names(&self) -> BTreeSet<String> {
        self.scrape
            .samples
            .iter()
            .map(|sample| sample.metric.clone())
            .collect()
    }
}

fn gauge(value: &Value) -> f64 {
    match value {
        Value::Gauge(value) | Value::Counter(value) | Value::Untyped(value) => *value,
        other => panic!("not a plain value: {other:?}"),
    }
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn issue(ca: &str, common_name: &str, not_after: SystemTime, directory: &Path) -> String {
    common::fingerprint(&common::issue(
        &test_ca(ca).unwrap(),
        KeyType::P384,
        common_name,
        SystemTime::now() - DAY,
        not_after,
        directory,
    ))
}

fn vmutil_prometheus(root: &Path) -> Output {
    let vmutil = test_support::sibling_binary(Path::new(env!("CARGO_BIN_EXE_vmd")), "vmutil");
    Command::new(vmutil)
        .arg("--agent-root")
        .arg(root)
        .args(["-a", "vmd", "status", "--prometheus"])
        .output()
        .unwrap()
}

#[test]
fn not_due_a_healthy_host_shows_its_certificate_and_no_failure() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let (metrics, _, _) = host.once_and_scrape(0);
    // `vmd --once` logs in, so its result is "healthy" (the daemon's quiet check is "not_due").
    assert_eq!(metrics.result("healthy"), 1.0);
    assert_eq!(metrics.result("not_due"), 0.0);
    for (name, value) in [
        ("cte_agent_healthy", 1.0),
        ("cte_agent_manager_reachable", 1.0),
        ("cte_agent_checks_total", 1.0),
        ("cte_agent_renewals_total", 0.0),
        ("cte_agent_renewal_failures_total", 0.0),
        ("cte_agent_renewal_failing_since_seconds", 0.0),
        ("x509_cert_expired", 0.0),
    ] {
        assert_eq!(metrics.value(name, &[]), value, "{name}");
    }
    assert!(metrics.value("cte_agent_next_check_timestamp_seconds", &[]) > 0.0);
    // The same text on stdout for cron-based collectors (only the write time may differ).
    let output = vmutil_prometheus(host.root.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let printed = Metrics::parse(&String::from_utf8_lossy(&output.stdout));
    let without_time = |metrics: &Metrics| {
        metrics
            .text
            .lines()
            .filter(|line| !line.starts_with("cte_agent_metrics_updated_seconds "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(without_time(&printed), without_time(&metrics));
    check_rules_and_dashboard(&metrics.names());
    promtool_lints(&metrics.text);
}

/// `promtool check metrics`: Prometheus's own parser and naming lint (`_total` on counters, base
/// units, ...), when promtool is installed (Debian package `prometheus`).
fn promtool_lints(metrics: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED: promtool not installed; the metrics were not linted by promtool");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}",
        text(&output)
    );
}

#[test]
fn renewed_counts_a_renewal_and_shows_the_new_certificate() {
    let host = Host::registered(SystemTime::now() + 20 * DAY);
    let new = issue(
        "ca-p384",
        "host1.example",
        SystemTime::now() + 400 * DAY,
        host.cert_dir.path(),
    );
    let (metrics, _, _) = host.once_and_scrape(0);
    assert_eq!(metrics.result("renewed"), 1.0);
    assert_eq!(
        metrics.labels("cte_agent_info").get("fingerprint"),
        Some(&new)
    );
    assert_eq!(metrics.value("cte_agent_renewals_total", &[]), 1.0);
    assert_eq!(metrics.value("cte_agent_renewal_failures_total", &[]), 0.0);
    assert_eq!(metrics.value("cte_agent_manager_reachable", &[]), 1.0);
    assert_eq!(
        host.manager.clients().unwrap()[0]["cert_fingerprint"].as_str(),
        Some(new.as_str())
    );
    // The counter is kept across runs (processes).
    let (metrics, _, _) = host.once_and_scrape(0);
    assert_eq!(metrics.result("healthy"), 1.0);
    assert_eq!(metrics.value("cte_agent_renewals_total", &[]), 1.0);
    assert_eq!(metrics.value("cte_agent_checks_total", &[]), 2.0);
}

#[test]
fn refused_by_the_manager_counts_a_failure_and_starts_the_failing_streak() {
    let host = Host::registered_one_client_per_certificate(SystemTime::now() + 20 * DAY);
    // Another client of the same manager registered a set with the same common name; that set
    // in this host's folder is valid locally, and only the manager can tell it is taken (409).
    let other_set = tempfile::tempdir().unwrap();
    let other_root = tempfile::tempdir().unwrap();
    issue(
        "ca-p384",
        "host1.example",
        SystemTime::now() + 400 * DAY,
        other_set.path(),
    );
    register(
        &host.manager,
        &host.token,
        "host2",
        other_set.path(),
        other_root.path(),
    );
    for entry in std::fs::read_dir(other_set.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), host.cert_dir.path().join(entry.file_name())).unwrap();
    }
    let (metrics, _, _) = host.once_and_scrape(0);
    assert_eq!(
        metrics.result("refused_by_manager"),
        1.0,
        "{}",
        metrics.text
    );
    assert_eq!(metrics.value("cte_agent_renewal_failures_total", &[]), 1.0);
    assert_eq!(
        metrics.value("cte_agent_renewal_failing_since_seconds", &[]),
        metrics.value("cte_agent_last_check_timestamp_seconds", &[])
    );
    assert_eq!(metrics.value("cte_agent_manager_reachable", &[]), 1.0);
    assert_eq!(metrics.value("cte_agent_renewals_total", &[]), 0.0);
}

#[test]
fn unreachable_shows_the_manager_down_and_the_streak_survives_the_next_run() {
    let host = Host::registered(SystemTime::now() + 20 * DAY);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    host.set_conf("URL", &format!("https://{closed}"));
    let (first, _, _) = host.once_and_scrape(5);
    assert_eq!(first.result("unreachable"), 1.0);
    assert_eq!(first.value("cte_agent_manager_reachable", &[]), 0.0);
    assert_eq!(first.value("cte_agent_renewal_failures_total", &[]), 1.0);
    let since = first.value("cte_agent_renewal_failing_since_seconds", &[]);
    assert!(since > 0.0);
    std::thread::sleep(Duration::from_millis(1100));
    let (second, _, _) = host.once_and_scrape(5);
    assert_eq!(second.value("cte_agent_renewal_failures_total", &[]), 2.0);
    assert_eq!(second.value("cte_agent_checks_total", &[]), 2.0);
    assert_eq!(
        second.value("cte_agent_renewal_failing_since_seconds", &[]),
        since
    );
    assert!(second.value("cte_agent_last_check_timestamp_seconds", &[]) > since);
}

#[test]
fn expired_shows_the_certificate_expired_and_no_next_check() {
    let host = Host::registered(SystemTime::now() + Duration::from_secs(3));
    std::thread::sleep(Duration::from_secs(4));
    let (metrics, _, after) = host.once_and_scrape(3);
    assert_eq!(metrics.result("expired"), 1.0);
    assert_eq!(metrics.value("x509_cert_expired", &[]), 1.0);
    assert_eq!(metrics.value("cte_agent_healthy", &[]), 0.0);
    assert_eq!(
        metrics.value("cte_agent_next_check_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(metrics.value("cte_agent_renewal_failures_total", &[]), 1.0);
    assert!(metrics.value("cte_agent_certificate_not_after_seconds", &[]) < after as f64);
}

#[test]
fn an_unwritable_metrics_file_is_reported_and_does_not_fail_the_check() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let missing = host
        .metrics_dir
        .path()
        .join("no-such-folder/cte-agent.prom");
    host.set_conf("METRICS_FILE", &missing.display().to_string());
    let output = host.vmd_once();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("[CGP3013W]"), "{}", text(&output));
    assert!(!missing.exists());
}

/// The alerting rules and the dashboard only use series the agent writes (or node_exporter's
/// own `node_textfile_mtime_seconds`), and the rules have the shape Prometheus loads.
fn check_rules_and_dashboard(written: &BTreeSet<String>) {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
    let rules_text =
        std::fs::read_to_string(contrib.join("prometheus/cte-agent.rules.yml")).unwrap();
    let rules: serde_norway::Value = serde_norway::from_str(&rules_text).unwrap();
    let mut alerts = BTreeSet::new();
    let mut expressions = Vec::new();
    for group in rules["groups"].as_sequence().unwrap() {
        assert!(group["name"].as_str().is_some());
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            let severity = rule["labels"]["severity"].as_str().unwrap();
            assert!(["warning", "critical"].contains(&severity), "{alert}");
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{alert}");
            if let Some(duration) = rule.get("for") {
                let duration = duration.as_str().unwrap();
                assert!(duration.ends_with(['m', 'h']), "{alert}: {duration}");
            }
            assert!(alerts.insert(alert.to_string()), "{alert} twice");
            expressions.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    for expected in [
        "CteAgentCertificateExpiresIn14Days",
        "CteAgentCertificateExpiresIn3Days",
        "CteAgentRenewalFailing",
        "CteAgentManagerUnreachable",
        "CteAgentMetricsStale",
    ] {
        assert!(alerts.contains(expected), "{expected} missing: {alerts:?}");
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib.join("grafana/cte-agent-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            expressions.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for expression in &expressions {
        for name in series_names(expression) {
            assert!(
                written.contains(&name) || name == "node_textfile_mtime_seconds",
                "{name} (in `{expression}`) is not written by the agent: {written:?}"
            );
        }
    }
}

/// The metric names an expression refers to (the agent's and node_exporter's prefixes).
fn series_names(expression: &str) -> Vec<String> {
    expression
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| {
            ["cte_agent_", "x509_", "node_"]
                .iter()
                .any(|p| word.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// Runs `vmd` on `root` until `seen` returns something (within 60 s, else the test fails
/// naming `what`), then stops it with SIGTERM, which must end it cleanly.
#[cfg(unix)]
fn run_daemon_until<T>(root: &Path, what: &str, mut seen: impl FnMut() -> Option<T>) -> T {
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let found = loop {
        if let Some(found) = seen() {
            break found;
        }
        if std::time::Instant::now() >= deadline {
            let _ = daemon.kill();
            panic!("no {what} within 60 s:\n{}", common::log(root));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(daemon.wait().unwrap().success());
    found
}

/// The daemon rewrites the file after its heartbeat too: the heartbeat's time appears and the
/// manager shows reachable; SIGTERM then stops it.
#[cfg(unix)]
#[test]
fn the_daemon_writes_the_heartbeat_into_the_metrics() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let before = unix(SystemTime::now());
    let metrics = run_daemon_until(host.root.path(), "a heartbeat in the metrics", || {
        let text = std::fs::read_to_string(host.metrics_file()).unwrap_or_default();
        text.contains("cte_agent_last_heartbeat_timestamp_seconds ")
            .then(|| Metrics::parse(&text))
    });
    let beat = metrics.value("cte_agent_last_heartbeat_timestamp_seconds", &[]) as i64;
    assert!(beat >= before, "{beat} {before}");
    assert_eq!(metrics.value("cte_agent_manager_reachable", &[]), 1.0);
    // The daemon's scheduled check outside the window is the quiet "not due".
    assert_eq!(metrics.result("not_due"), 1.0);
    assert_eq!(metrics.value("cte_agent_checks_total", &[]), 1.0);
}

/// Issue 22: a client deleted on the manager the way Terraform's `ciphertrust_cte_client` and
/// the Ansible collection's `cte_client` delete it (`PATCH .../clients/{id}/delete`) is refused
/// at the agent's next check: `vmd --once` reports that no identity is accepted (CGP3010) and
/// exits 4, as docs/operations.md documents.
#[test]
fn a_client_deleted_as_the_public_clients_delete_it_is_refused_at_the_next_check() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let before = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(host.root.path())
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(before.status.code(), Some(0), "{}", text(&before));
    let clients = host.manager.clients().unwrap();
    let id = clients[0]["id"].as_str().unwrap();
    host.manager
        .call(
            "PATCH",
            &format!("/api/v1/transparent-encryption/clients/{id}/delete"),
            Some(serde_json::json!({"del_client": true, "force_del_client": true})),
            200,
        )
        .unwrap();
    let after = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(host.root.path())
        .arg("--once")
        .output()
        .unwrap();
    assert_eq!(after.status.code(), Some(4), "{}", text(&after));
    assert!(
        common::log(host.root.path()).contains("CGP3010C"),
        "{}",
        common::log(host.root.path())
    );
}

/// A heartbeat whose identity the manager refuses starts a recovery check at once (the plan's
/// `after_heartbeat`), not at the next scheduled check months away: with the client deleted on
/// the manager and no other generation to adopt, the daemon reports that no identity is
/// accepted (CGP3010) right after the failed heartbeat (CGP3008).
#[cfg(unix)]
#[test]
fn a_heartbeat_refused_as_not_this_client_starts_a_recovery_check_at_once() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let clients = host.manager.clients().unwrap();
    assert_eq!(clients.len(), 1, "{clients:?}");
    let id = clients[0]["id"].as_str().unwrap();
    host.manager
        .call(
            "DELETE",
            &format!("/api/v1/client-management/clients/{id}"),
            None,
            204,
        )
        .unwrap();
    let log = run_daemon_until(
        host.root.path(),
        "a recovery check after the refused heartbeat",
        || {
            let log = common::log(host.root.path());
            log.contains("CGP3010").then_some(log)
        },
    );
    let heartbeat = log
        .find("CGP3008")
        .expect("the heartbeat failure is logged");
    assert!(heartbeat < log.find("CGP3010").unwrap(), "{log}");
    // The scheduled check before the heartbeat was the quiet "not due"; the recovery check is a
    // second one.
    assert!(log.contains("CGP2002I"), "{log}");
}

/// Issue 21, "one context": `status`, `status --prometheus` and `certexpiry` show the store's
/// public data and never decrypt the key. Proved by taking the random key away: they still
/// answer (the key type is read from the certificate), while a check, which presents the
/// identity, needs it.
#[test]
fn status_metrics_and_expiry_never_decrypt_the_key() {
    let host = Host::registered(SystemTime::now() + 200 * DAY);
    let root = host.root.path();
    let keys = root.join("vmd/keys");
    let moved = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&keys).unwrap() {
        let path = entry.unwrap().path();
        std::fs::rename(&path, moved.path().join(path.file_name().unwrap())).unwrap();
    }
    let vmutil = test_support::sibling_binary(Path::new(env!("CARGO_BIN_EXE_vmd")), "vmutil");
    let run = |arguments: &[&str]| {
        Command::new(&vmutil)
            .arg("--agent-root")
            .arg(root)
            .args(["-a", "vmd"])
            .args(arguments)
            .output()
            .unwrap()
    };
    let status = run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(text(&status).contains("EC P-384"), "{}", text(&status));
    let prometheus = vmutil_prometheus(root);
    assert_eq!(prometheus.status.code(), Some(0), "{}", text(&prometheus));
    assert!(text(&prometheus).contains("cte_agent_certificate_not_after_seconds"));
    let expiry = run(&["certexpiry"]);
    assert_eq!(expiry.status.code(), Some(0), "{}", text(&expiry));
    // Presenting the identity does need the key.
    let once = Command::new(env!("CARGO_BIN_EXE_vmd"))
        .arg("--agent-root")
        .arg(root)
        .arg("--once")
        .output()
        .unwrap();
    assert_ne!(once.status.code(), Some(0), "{}", text(&once));
}
