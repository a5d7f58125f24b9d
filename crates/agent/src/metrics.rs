//! Prometheus metrics in node_exporter's textfile-collector format.
//!
//! After every renewal check (daemon, `vmd --once`, `vmutil updatecerts`; not a dry run) and
//! every daemon heartbeat, the agent rewrites `METRICS_FILE` of agent.conf (off when absent or
//! empty) atomically through `durable-fs`, mode 0644 so node_exporter can read it, in the
//! Prometheus text format 0.0.4 encoded by the `prometheus-client` crate.
//! `vmutil -a vmd status --prometheus` prints the same text for cron-based collectors.
//!
//! What the file shows comes from three places: the pem store's current certificate, agent.conf
//! (client id, renewal window), and two small state files under `vmd/run/` (0600):
//! `metrics-state.json` (the last check and the counters, kept across restarts, updated under
//! the renewal lock by the check itself) and `heartbeat.json` (the daemon's last heartbeat; one
//! daemon per agent root). Nothing secret is shown: fingerprints, names and times only.
//!
//! The series (docs/operations.md, "Prometheus metrics", has the table):
//! `cte_agent_certificate_not_{before,after}_seconds`, `cte_agent_renewal_window_start_seconds`,
//! `cte_agent_last_check_timestamp_seconds`, `cte_agent_last_check_result{result}` (1 for the
//! last result, 0 for every other kind), `cte_agent_next_check_timestamp_seconds`,
//! `cte_agent_healthy`, `cte_agent_manager_reachable`,
//! `cte_agent_last_heartbeat_timestamp_seconds`, `cte_agent_renewal_failing_since_seconds`,
//! `cte_agent_{checks,renewals,renewal_failures}_total`, `cte_agent_metrics_updated_seconds`,
//! `cte_agent_info{client_id,client_name,common_name,fingerprint,version}`,
//! `cte_agent_key_protector{generation,protector}` (1 for the protector of each generation's
//! key), and the
//! x509-certificate-exporter names `x509_cert_not_{before,after}` and `x509_cert_expired` for the
//! current certificate, so existing expiry alerts work unchanged.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::fsutil;
use crate::logging::{Logger, Severity};
use crate::messages::Message;
use crate::paths::AgentRoot;
use crate::settings::Agent;
use renewal_policy::plan::{OutcomeKind, Report};

/// The file name node_exporter's packages suggest for this agent in their textfile folder.
pub(crate) const DEFAULT_FILE_NAME: &str = "cte-agent.prom";

/// Debian's `prometheus-node-exporter` textfile folder, the packages' default `METRICS_FILE`
/// folder.
pub(crate) const NODE_EXPORTER_TEXTFILE_DIR: &str = "/var/lib/prometheus/node-exporter";

/// What a check ended with, for the metrics: the plan's report, or a local problem that
/// stopped it before it could report (the daemon's CGP3007E).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckResult {
    /// The check reported this kind of outcome.
    Finished(OutcomeKind),
    /// A local problem stopped the check.
    Failed,
}

/// The `result` label of a check a local problem stopped.
const CHECK_FAILED: &str = "check_failed";
/// The `result` label of a kind this version does not know (a state file written by another).
const OTHER: &str = "other";

impl CheckResult {
    /// The `result` label (`cte_agent_last_check_result{result}`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Finished(kind) => kind.label(),
            Self::Failed => CHECK_FAILED,
        }
    }

    /// Counts in `cte_agent_renewal_failures_total`.
    fn is_failure(self) -> bool {
        match self {
            Self::Finished(kind) => kind.is_failure(),
            Self::Failed => true,
        }
    }

    /// Every label a check can end with, in the order the metrics list them.
    fn labels() -> impl Iterator<Item = &'static str> {
        OutcomeKind::ALL
            .into_iter()
            .map(OutcomeKind::label)
            .chain([CHECK_FAILED, OTHER])
    }
}

/// What the checks left behind: `vmd/run/metrics-state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CheckState {
    /// Checks recorded since the state file was created.
    pub checks: u64,
    /// Checks that renewed the certificate.
    pub renewals: u64,
    /// Checks that failed ([`OutcomeKind::is_failure`], or unhealthy).
    pub renewal_failures: u64,
    /// The first of the current run of failed checks (Unix seconds); `None` after a success.
    pub failing_since: Option<i64>,
    /// The last check (Unix seconds).
    pub last_check: Option<i64>,
    /// Its result kind.
    pub last_result: Option<String>,
    /// Whether it left the host healthy.
    pub healthy: Option<bool>,
    /// The next check it scheduled (Unix seconds; `None`: none, or unknown).
    pub next_check: Option<i64>,
    /// What the last check learned about the manager: answered, could not be reached, or
    /// (`None`) it was not contacted.
    pub manager_reachable: Option<bool>,
}

/// The daemon's last heartbeat: `vmd/run/heartbeat.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct HeartbeatState {
    /// When (Unix seconds).
    pub at: Option<i64>,
    /// The manager answered (even with a refusal); `None`: a local problem, nothing learned.
    pub manager_reachable: Option<bool>,
}

/// `vmd/run/metrics-state.json`.
pub(crate) fn check_state_file(root: &AgentRoot) -> PathBuf {
    root.run_dir().join("metrics-state.json")
}

/// `vmd/run/heartbeat.json`.
pub(crate) fn heartbeat_state_file(root: &AgentRoot) -> PathBuf {
    root.run_dir().join("heartbeat.json")
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> T {
    // An unreadable state file starts again from zero rather than stopping the agent.
    // Never through a link, never blocking on a FIFO, bounded (fsutil::read_own).
    fsutil::read_own(path)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), AgentError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    fsutil::write_atomically(path, text.as_bytes())
}

impl CheckState {
    /// The state after a check that ended with `result` at `now`.
    pub(crate) fn after_check(
        mut self,
        result: CheckResult,
        healthy: bool,
        manager_reached: bool,
        next_check: Option<SystemTime>,
        now: SystemTime,
    ) -> Self {
        let now = unix_seconds(now);
        self.checks += 1;
        if result == CheckResult::Finished(OutcomeKind::Renewed) {
            self.renewals += 1;
        }
        if result.is_failure() || !healthy {
            self.renewal_failures += 1;
            self.failing_since.get_or_insert(now);
        } else {
            self.failing_since = None;
        }
        self.last_check = Some(now);
        self.last_result = Some(result.label().to_string());
        self.healthy = Some(healthy);
        self.next_check = next_check.map(unix_seconds);
        self.manager_reachable = match result {
            CheckResult::Finished(kind) if kind.is_manager_unreachable() => Some(false),
            _ if manager_reached => Some(true),
            _ => None,
        };
        self
    }
}

/// Records a finished check (called by the check itself, under the renewal lock) and rewrites
/// the metrics file. Never fails the check: a problem is logged (CGP3013W).
pub(crate) fn after_check(
    agent: &Agent,
    logger: &Logger,
    report: &Report,
    manager_reached: bool,
    now: SystemTime,
) {
    let path = check_state_file(&agent.root);
    let state = read_json::<CheckState>(&path).after_check(
        CheckResult::Finished(report.outcome.kind()),
        report.healthy,
        manager_reached,
        report.next_check,
        now,
    );
    if let Err(error) = write_json(&path, &state) {
        report_problem(logger, &path, &error);
    }
    publish(agent, logger, now);
}

/// Records a check that a local problem stopped (the daemon's CGP3007E) and rewrites the
/// metrics file. Takes the renewal lock briefly so it does not race a running check; when
/// another check holds it, that check records itself.
pub(crate) fn after_failed_check(root: &AgentRoot, logger: &Logger, now: SystemTime) {
    if let Ok(_lock) = crate::lock::RenewalLock::acquire(root, std::time::Duration::ZERO) {
        let path = check_state_file(root);
        let state = read_json::<CheckState>(&path).after_check(
            CheckResult::Failed,
            false,
            false,
            None,
            now,
        );
        if let Err(error) = write_json(&path, &state) {
            report_problem(logger, &path, &error);
        }
    }
    // The metrics show the store and agent.conf; a check that failed may have failed on them.
    if let Ok(agent) = Agent::load(root) {
        publish(&agent, logger, now);
    }
}

/// Records a daemon heartbeat's result and rewrites the metrics file.
pub(crate) fn after_heartbeat<T>(
    agent: &Agent,
    logger: &Logger,
    result: &Result<T, AgentError>,
    now: SystemTime,
) {
    let manager_reachable = match result {
        Ok(_) => Some(true),
        Err(AgentError::Manager(error)) => match error.certainty() {
            cm_client::Certainty::Definite => Some(true),
            cm_client::Certainty::Indefinite => Some(false),
            cm_client::Certainty::Local => None,
        },
        Err(_) => None,
    };
    let state = HeartbeatState {
        at: Some(unix_seconds(now)),
        manager_reachable,
    };
    let path = heartbeat_state_file(&agent.root);
    if let Err(error) = write_json(&path, &state) {
        report_problem(logger, &path, &error);
    }
    publish(agent, logger, now);
}

fn report_problem(logger: &Logger, path: &Path, error: &AgentError) {
    logger.message(
        Severity::Warning,
        &Message::MetricsNotWritten {
            path: path.display().to_string(),
            error: error.to_string(),
        },
    );
}

/// Rewrites `METRICS_FILE` when agent.conf sets it; logs CGP3013W when it cannot.
pub(crate) fn publish(agent: &Agent, logger: &Logger, now: SystemTime) {
    let Some(path) = agent.settings.metrics_file.clone() else {
        return;
    };
    let written = render(agent, now).and_then(|text| write_public(&path, text.as_bytes()));
    if let Err(error) = written {
        report_problem(logger, &path, &error);
    }
}

/// Replaces `path` atomically, readable by all (0644 on Unix: the exporter usually runs as
/// another account), through the folder's checked handle: the folder is the exporter's
/// ([`durable_fs::Trust::Shared`]: refused when anyone but root can replace entries in it), the
/// temporary file is created `O_EXCL` and its mode set with `fchmod` on its handle before the
/// rename, so no one can make root change the mode of another file. On Windows the file inherits
/// the folder's ACL.
fn write_public(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let (folder, name) = fsutil::split(path)?;
    durable_fs::Folder::open(folder, durable_fs::Trust::Shared)
        .and_then(|folder| folder.replace(name, bytes, 0o644, &mut |_| {}))
        .map_err(|error| fsutil::fs_error(error, "writing"))
}

/// The metrics text at `now`: what the file holds and `vmutil ... status --prometheus` prints.
///
/// # Errors
/// When agent.conf or the pem store cannot be read.
pub fn render(agent: &Agent, now: SystemTime) -> Result<String, AgentError> {
    let (root, settings, store) = (&agent.root, &agent.settings, &agent.store);
    // The certificate only: the metrics never decrypt the key.
    let (chain, _) = store.current_certificate()?;
    let certificate = &cert_loading::summarize_certificate(&store.agent_pem_path(), &chain)?;
    let window =
        renewal_policy::renewal_window_start(&agent.policy, &agent.host, certificate.not_after);
    let checks = read_json::<CheckState>(&check_state_file(root));
    let heartbeat = read_json::<HeartbeatState>(&heartbeat_state_file(root));

    let mut registry = Registry::default();
    let mut gauge = |name: &str, help: &str, value: i64| {
        let metric = Gauge::<i64>::default();
        metric.set(value);
        registry.register(name, help, metric);
    };
    gauge(
        "cte_agent_certificate_not_before_seconds",
        "Start of validity of the agent's current certificate, Unix seconds",
        unix_seconds(certificate.not_before),
    );
    gauge(
        "cte_agent_certificate_not_after_seconds",
        "End of validity of the agent's current certificate, Unix seconds",
        unix_seconds(certificate.not_after),
    );
    let holders: Vec<(keystore::GenerationRole, keystore::KeyProtectorKind)> = store
        .status()
        .map(|status| {
            status
                .generations
                .iter()
                .map(|generation| {
                    (
                        generation.role,
                        keystore::sealed_by(&root.keys_folder(), generation.id),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    gauge(
        "cte_agent_renewal_window_start_seconds",
        "When this host's renewal window opens (stagger included), Unix seconds",
        unix_seconds(window),
    );
    gauge(
        "cte_agent_metrics_updated_seconds",
        "When these metrics were written, Unix seconds",
        unix_seconds(now),
    );
    if let Some(last_check) = checks.last_check {
        gauge(
            "cte_agent_last_check_timestamp_seconds",
            "When the last renewal check ran, Unix seconds",
            last_check,
        );
        gauge(
            "cte_agent_next_check_timestamp_seconds",
            "When the next renewal check is due, Unix seconds (0: none, re-registration required)",
            checks.next_check.unwrap_or(0),
        );
        gauge(
            "cte_agent_healthy",
            "1 when the last check left an identity the manager accepts and renewal not overdue",
            i64::from(checks.healthy.unwrap_or(false)),
        );
        gauge(
            "cte_agent_renewal_failing_since_seconds",
            "Start of the current run of failed renewal checks, Unix seconds (0: the last check succeeded)",
            checks.failing_since.unwrap_or(0),
        );
    }
    if let Some(at) = heartbeat.at {
        gauge(
            "cte_agent_last_heartbeat_timestamp_seconds",
            "When the daemon's last heartbeat ran, Unix seconds",
            at,
        );
    }
    if let Some(reachable) = manager_reachable(&checks, &heartbeat) {
        gauge(
            "cte_agent_manager_reachable",
            "1 when the manager answered the last contact (check or heartbeat), 0 when it could not be reached",
            i64::from(reachable),
        );
    }
    register_results(&mut registry, checks.last_result.as_deref());
    register_key_protectors(&mut registry, &holders);
    register_counters(&mut registry, &checks);
    registry.register(
        "cte_agent",
        "The agent's identity (value 1)",
        Info::new(vec![
            ("client_id".to_string(), settings.client_id.clone()),
            ("client_name".to_string(), settings.client_name.clone()),
            ("common_name".to_string(), certificate.common_name.clone()),
            (
                "fingerprint".to_string(),
                certificate.fingerprint.to_string(),
            ),
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ]),
    );
    register_x509(&mut registry, &store.agent_pem_path(), certificate, now);
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        .map_err(|_| AgentError::Bug("encoding the metrics failed".to_string()))?;
    Ok(text)
}

/// The newer of the two verdicts about the manager (a check that did not contact it has none).
fn manager_reachable(checks: &CheckState, heartbeat: &HeartbeatState) -> Option<bool> {
    let from_check = checks.last_check.zip(checks.manager_reachable);
    let from_heartbeat = heartbeat.at.zip(heartbeat.manager_reachable);
    match (from_check, from_heartbeat) {
        (Some((check_at, check)), Some((beat_at, beat))) => {
            Some(if beat_at >= check_at { beat } else { check })
        }
        (Some((_, check)), None) => Some(check),
        (None, Some((_, beat))) => Some(beat),
        (None, None) => None,
    }
}

/// `cte_agent_key_protector{generation,protector}`: for each generation in the store (by role:
/// `current`, `previous`, `staged`), 1 for the protector holding its data key and 0 for the
/// others.
fn register_key_protectors(
    registry: &mut Registry,
    holders: &[(keystore::GenerationRole, keystore::KeyProtectorKind)],
) {
    if holders.is_empty() {
        return;
    }
    let family = LabelledGauges(
        holders
            .iter()
            .flat_map(|(role, holder)| {
                keystore::KeyProtectorKind::ALL
                    .into_iter()
                    .map(move |kind| {
                        let labels = vec![
                            ("generation".to_string(), role.as_str().to_string()),
                            ("protector".to_string(), kind.as_str().to_string()),
                        ];
                        (labels, i64::from(kind == *holder))
                    })
            })
            .collect(),
    );
    registry.register(
        "cte_agent_key_protector",
        "Which key protector (file, tpm, dpapi) holds each generation's data key: 1 for it, 0 for the others",
        family,
    );
}

fn register_results(registry: &mut Registry, last: Option<&str>) {
    let Some(last) = last else {
        return;
    };
    let last = if CheckResult::labels().any(|label| label == last) {
        last
    } else {
        OTHER
    };
    let family = LabelledGauges(
        CheckResult::labels()
            .map(|label| {
                let labels = vec![("result".to_string(), label.to_string())];
                (labels, i64::from(label == last))
            })
            .collect(),
    );
    registry.register(
        "cte_agent_last_check_result",
        "The last renewal check's result: 1 for its kind, 0 for the others",
        family,
    );
}

/// Gauges with labels, encoded in the order given (prometheus-client's `Family` is a hash map,
/// whose order would change from one write to the next).
#[derive(Debug)]
struct LabelledGauges(Vec<(Vec<(String, String)>, i64)>);

impl EncodeMetric for LabelledGauges {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

fn register_counters(registry: &mut Registry, checks: &CheckState) {
    for (name, help, value) in [
        (
            "cte_agent_checks",
            "Renewal checks recorded (kept across restarts)",
            checks.checks,
        ),
        (
            "cte_agent_renewals",
            "Certificate renewals completed (kept across restarts)",
            checks.renewals,
        ),
        (
            "cte_agent_renewal_failures",
            "Renewal checks that failed: refused, unreachable, outcome unknown, expired, local error, or unhealthy (kept across restarts)",
            checks.renewal_failures,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
}

fn register_x509(
    registry: &mut Registry,
    agent_pem: &Path,
    certificate: &cert_loading::CertificateSummary,
    now: SystemTime,
) {
    let labels = vec![
        ("filepath".to_string(), agent_pem.display().to_string()),
        ("subject_CN".to_string(), certificate.common_name.clone()),
        ("serial_number".to_string(), certificate.serial_hex.clone()),
    ];
    for (name, help, value) in [
        (
            "x509_cert_not_before",
            "Start of validity of the agent's certificate, Unix seconds (x509-certificate-exporter name)",
            unix_seconds(certificate.not_before),
        ),
        (
            "x509_cert_not_after",
            "End of validity of the agent's certificate, Unix seconds (x509-certificate-exporter name)",
            unix_seconds(certificate.not_after),
        ),
        (
            "x509_cert_expired",
            "1 when the agent's certificate had expired when the metrics were written",
            i64::from(now >= certificate.not_after),
        ),
    ] {
        registry.register(name, help, LabelledGauges(vec![(labels.clone(), value)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn finished(kind: OutcomeKind) -> CheckResult {
        CheckResult::Finished(kind)
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn counters_and_the_failing_streak_follow_the_checks() {
        let state = CheckState::default()
            .after_check(
                finished(OutcomeKind::NotDue),
                true,
                false,
                Some(at(500)),
                at(100),
            )
            .after_check(
                finished(OutcomeKind::Unreachable),
                true,
                false,
                None,
                at(200),
            )
            .after_check(
                finished(OutcomeKind::RefusedByManager),
                false,
                true,
                None,
                at(300),
            );
        assert_eq!(
            (state.checks, state.renewals, state.renewal_failures),
            (3, 0, 2)
        );
        assert_eq!(state.failing_since, Some(200));
        assert_eq!(state.manager_reachable, Some(true));
        let state = state.after_check(
            finished(OutcomeKind::Renewed),
            true,
            true,
            Some(at(900)),
            at(400),
        );
        assert_eq!(
            (state.checks, state.renewals, state.renewal_failures),
            (4, 1, 2)
        );
        assert_eq!(state.failing_since, None);
        assert_eq!(state.next_check, Some(900));
        // No usable set in the last 14 days is not a failure kind but leaves the host unhealthy.
        let state = state.after_check(
            finished(OutcomeKind::NoCandidate),
            false,
            false,
            None,
            at(500),
        );
        assert_eq!(state.renewal_failures, 3);
        assert_eq!(state.manager_reachable, None);
    }

    #[test]
    fn the_newer_verdict_about_the_manager_wins() {
        let checks = CheckState {
            last_check: Some(100),
            manager_reachable: Some(true),
            ..CheckState::default()
        };
        let late_failure = HeartbeatState {
            at: Some(200),
            manager_reachable: Some(false),
        };
        assert_eq!(manager_reachable(&checks, &late_failure), Some(false));
        let early_failure = HeartbeatState {
            at: Some(50),
            ..late_failure
        };
        assert_eq!(manager_reachable(&checks, &early_failure), Some(true));
        let nothing_learned = CheckState {
            manager_reachable: None,
            ..checks
        };
        assert_eq!(
            manager_reachable(&nothing_learned, &HeartbeatState::default()),
            None
        );
    }
}
