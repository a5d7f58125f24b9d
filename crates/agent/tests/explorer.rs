//! The fault-schedule explorer: deterministic, exhaustive over single faults and ordered pairs.
//!
//! The agent's real renewal code (`agent::renewal::run_check`) runs in-process against the
//! real emulator's request handling (`cm_emulator::InProcessHandle`, the same code path as over
//! HTTPS), through `cm_client`'s transport seam. A fault-free run of each trigger (a daemon
//! check with the new set in `EXTERNAL_CERT_DIR`; a manual `updatecerts -d NEW`) is traced as a
//! list of *sites*: every crash point of the renewal journal and of the pem store, and every
//! manager exchange (login, renew, confirm login, status, log upload). A schedule arms one fault
//! or an ordered pair of faults at sites, counting on across the runs that follow, from:
//!
//! - at crash sites: a crash (a panic that unwinds out of the check: files stay as a SIGKILL
//!   leaves them, page cache included), or a second concurrent check starting there;
//! - at exchange sites: request lost, reply lost after the manager committed, timeout after
//!   commit, 5xx without commit, definite refusal (429 for logins, which says nothing about the
//!   identity; 403 for a renewal) without commit.
//!
//! The trigger runs (up to three times while armed faults remain ahead), then, faults off, at
//! most two `vmd --once` health checks. Asserted for every schedule and each of the emulator's
//! three retirement modes: (I1) at every site and after every run, the manager's current
//! certificate for the client is a generation of the store; (I2) afterwards the store's current
//! generation is the manager's current certificate and the last check reports healthy, with no
//! journal left; (I3) that last check exits 0 and logs nothing at ERROR or above; (I4) no
//! plaintext key anywhere under the agent root; a concurrent check never runs (it gets `Busy`).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use agent::AgentError;
use agent::logging::Logger;
use agent::paths::AgentRoot;
use agent::renewal::{CheckRequest, Trigger};
use agent::settings::Agent;
use cm_emulator::{InProcessHandle, InProcessRequest, RetireOldCertificate};
use renewal_policy::plan::Outcome;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(86_400);

/// 2027-01-15T08:00:00Z: the agent's and the emulator's "now".
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[derive(Debug)]
struct FixedClock;

impl cm_emulator::Clock for FixedClock {
    fn now(&self) -> SystemTime {
        now()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Crash,
    Concurrent,
    RequestLost,
    ReplyLost,
    TimeoutAfterCommit,
    ServerError,
    Refusal,
    /// The manager asks to come back later: 429 with `Retry-After` (a 503 with it on the
    /// renewal, where a 5xx leaves the outcome unknown).
    Throttled,
}

const CRASH_KINDS: [Kind; 2] = [Kind::Crash, Kind::Concurrent];
const EXCHANGE_KINDS: [Kind; 6] = [
    Kind::RequestLost,
    Kind::ReplyLost,
    Kind::TimeoutAfterCommit,
    Kind::ServerError,
    Kind::Refusal,
    Kind::Throttled,
];

/// The panic payload of a simulated crash.
struct Crash;

#[derive(Default)]
struct Faults {
    /// The manager's current certificate for the client, as last read (cleared whenever a
    /// renewal reaches the manager, the only exchange that changes it).
    manager_fingerprint: Option<String>,
    armed: Vec<(usize, Kind)>,
    next_site: usize,
    trace: Vec<String>,
    violations: Vec<String>,
}

impl Faults {
    fn at_site(&mut self, name: &str) -> Option<Kind> {
        let site = self.next_site;
        self.next_site += 1;
        self.trace.push(name.to_string());
        self.armed
            .iter()
            .find(|(armed, _)| *armed == site)
            .map(|(_, kind)| *kind)
    }

    fn pending(&self) -> bool {
        self.armed.iter().any(|(site, _)| *site >= self.next_site)
    }
}

type SharedFaults = Arc<Mutex<Faults>>;

fn lock(faults: &SharedFaults) -> std::sync::MutexGuard<'_, Faults> {
    faults
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The emulator transport with faults injected at exchange sites.
struct FaultyTransport {
    inner: test_support::in_process::EmulatorTransport,
    faults: Option<SharedFaults>,
}

fn exchange_name(path: &str) -> &'static str {
    if path.contains("/auth/tokens") {
        "login"
    } else if path.ends_with("/renew") {
        "renew"
    } else if path.contains("/self/client") {
        "status"
    } else if path.contains("client-records") {
        "upload"
    } else {
        "other"
    }
}

impl cm_client::Transport for FaultyTransport {
    fn send(
        &self,
        request: &cm_client::Request<'_>,
    ) -> Result<cm_client::Response, cm_client::Error> {
        let name = exchange_name(request.path);
        let kind = self.faults.as_ref().and_then(|faults| {
            let mut faults = lock(faults);
            if name == "renew" {
                faults.manager_fingerprint = None;
            }
            faults.at_site(&format!("exchange:{name}"))
        });
        let url = "https://manager.sim".to_string();
        let timeout = || cm_client::Error::Timeout {
            url: url.clone(),
            seconds: 20,
        };
        match kind {
            None | Some(Kind::Crash | Kind::Concurrent) => self.inner.send(request),
            Some(Kind::RequestLost) => Err(timeout()),
            Some(Kind::ReplyLost) => {
                let _ = self.inner.send(request);
                Err(cm_client::Error::Connect {
                    url: url.clone(),
                    reason: "connection reset by peer after the request was sent".to_string(),
                    source: None,
                })
            }
            Some(Kind::TimeoutAfterCommit) => {
                let _ = self.inner.send(request);
                Err(timeout())
            }
            Some(Kind::ServerError) => Ok(cm_client::Response {
                status: 503,
                body: br#"{"code":503,"codeDesc":"NCERRServiceUnavailable","message":"try later"}"#
                    .to_vec(),
                retry_after: None,
            }),
            Some(Kind::Throttled) => Ok(cm_client::Response {
                status: if name == "renew" { 503 } else { 429 },
                body: br#"{"code":429,"codeDesc":"NCERRTooManyRequests","message":"slow down (simulated)"}"#
                    .to_vec(),
                retry_after: Some(cm_client::RetryAfter::Seconds(600)),
            }),
            Some(Kind::Refusal) => {
                let (status, body) = if name == "renew" {
                    (
                        403,
                        r#"{"code":403,"codeDesc":"NCERRForbidden","message":"renewal refused (simulated)"}"#,
                    )
                } else {
                    (
                        429,
                        r#"{"code":429,"codeDesc":"NCERRTooManyRequests","message":"slow down (simulated)"}"#,
                    )
                };
                Ok(cm_client::Response {
                    status,
                    body: body.as_bytes().to_vec(),
                    retry_after: None,
                })
            }
        }
    }
}

/// Manager clients over the in-process emulator, with or without faults.
struct SimConnector {
    handle: InProcessHandle,
    faults: Option<SharedFaults>,
}

impl agent::manager::Connector for SimConnector {
    fn client_for(
        &self,
        settings: &agent_config::AgentSettings,
        identity: &cert_loading::Identity,
    ) -> Result<cm_client::ManagerClient, AgentError> {
        let transport = FaultyTransport {
            inner: test_support::in_process::EmulatorTransport::new(
                self.handle.clone(),
                Some(identity.chain().to_vec()),
            ),
            faults: self.faults.clone(),
        };
        Ok(cm_client::ManagerClient::with_transport(
            cm_client::ManagerUrl::parse(&settings.url)?,
            Box::new(transport),
            cm_client::Options {
                initial_backoff: Duration::ZERO,
                ..cm_client::Options::default()
            },
        ))
    }
}

/// One emulator (one retirement mode) and the two certificate sets, made once.
struct World {
    _manager: test_support::Manager,
    _state: tempfile::TempDir,
    handle: InProcessHandle,
    admin: String,
    token: String,
    old_dir: tempfile::TempDir,
    new_dir: tempfile::TempDir,
    old_identity: cert_loading::Identity,
    keys: Vec<Vec<u8>>,
    scratch: PathBuf,
    client_id: Mutex<Option<String>>,
}

fn call(
    handle: &InProcessHandle,
    bearer: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let response = handle.handle(InProcessRequest {
        method: method.to_string(),
        path_and_query: path.to_string(),
        authorization: bearer.map(|bearer| format!("Bearer {bearer}")),
        body: body
            .map(|body| body.to_string().into_bytes())
            .unwrap_or_default(),
        peer_certificates: None,
    });
    let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, value)
}

fn scratch_folder() -> PathBuf {
    // tmpfs where there is one: the store fsyncs every step, which is what is being exercised,
    // not the disk.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl World {
    fn new(retire: RetireOldCertificate) -> World {
        let scratch = scratch_folder();
        let state = tempfile::tempdir_in(&scratch).unwrap();
        let manager = test_support::Manager::start_with(cm_emulator::EmulatorConfig {
            retire_old_certificate: retire,
            clock: Arc::new(FixedClock),
            ..cm_emulator::EmulatorConfig::new(state.path())
        })
        .unwrap();
        let handle = manager.in_process();
        let password = manager.details().admin_password().to_string();
        let (status, login) = call(
            &handle,
            None,
            "POST",
            "/api/v1/auth/tokens/",
            Some(json!({"grant_type": "password", "username": "admin", "password": password})),
        );
        assert_eq!(status, 200, "{login}");
        let admin = login["jwt"].as_str().unwrap().to_string();
        let ca_pem = test_support::test_ca_pem("ca-rsa").unwrap();
        let (status, ca) = call(
            &handle,
            Some(&admin),
            "POST",
            "/api/v1/ca/external-cas/",
            Some(json!({"name": "explorer-ca", "cert": ca_pem})),
        );
        assert_eq!(status, 201, "{ca}");
        let (status, token) = call(
            &handle,
            Some(&admin),
            "POST",
            "/api/v1/client-management/regtokens/",
            Some(json!({"ca_id": ca["id"], "name_prefix": "explorer", "lifetime": "24h"})),
        );
        assert_eq!(status, 201, "{token}");
        let ca = test_support::test_ca("ca-rsa").unwrap();
        let key_type = test_pki::KeyType::Rsa { bits: 2048 };
        let old_dir = tempfile::tempdir_in(&scratch).unwrap();
        let new_dir = tempfile::tempdir_in(&scratch).unwrap();
        let old = test_support::issue_set(
            &ca,
            key_type,
            "host1.explorer.example",
            (now() - 345 * DAY, now() + 20 * DAY),
            old_dir.path(),
            "old passphrase",
        )
        .unwrap();
        let new = test_support::issue_set(
            &ca,
            key_type,
            "host1.explorer.example",
            (now() - DAY, now() + 400 * DAY),
            new_dir.path(),
            "new passphrase",
        )
        .unwrap();
        let old_identity = cert_loading::load_directory(
            old_dir.path(),
            &cert_loading::LoadOptions::default(),
            now(),
        )
        .unwrap()
        .identity;
        World {
            _manager: manager,
            _state: state,
            handle,
            admin,
            token: token["token"].as_str().unwrap().to_string(),
            old_dir,
            new_dir,
            old_identity,
            keys: vec![old.key_pkcs8_der().to_vec(), new.key_pkcs8_der().to_vec()],
            scratch,
            client_id: Mutex::new(None),
        }
    }

    /// A freshly registered host with the old set (the previous schedule's client deleted).
    fn register(&self) -> (tempfile::TempDir, String) {
        if let Some(previous) = self.client_id.lock().unwrap().take() {
            let (status, body) = call(
                &self.handle,
                Some(&self.admin),
                "DELETE",
                &format!("/api/v1/client-management/clients/{previous}"),
                None,
            );
            assert!(status == 204 || status == 200, "{status} {body}");
        }
        let client = cm_client::ManagerClient::with_transport(
            cm_client::ManagerUrl::parse("https://manager.sim").unwrap(),
            Box::new(test_support::in_process::EmulatorTransport::new(
                self.handle.clone(),
                Some(self.old_identity.chain().to_vec()),
            )),
            cm_client::Options::default(),
        );
        let record = client
            .register(&cm_client::RegisterRequest {
                reg_token: self.token.clone(),
                cert: self.old_identity.chain_pem(),
                client_type: "CTE".to_string(),
                name: "host1".to_string(),
                description: String::new(),
                os_type: String::new(),
                client_version: String::new(),
            })
            .unwrap();
        *self.client_id.lock().unwrap() = Some(record.id.clone());
        let root = tempfile::tempdir_in(&self.scratch).unwrap();
        let store = agent::paths::AgentRoot::new(root.path())
            .open_or_create_store()
            .unwrap();
        let generation = store.stage(&self.old_identity, now()).unwrap();
        store.activate(generation).unwrap();
        (root, record.id)
    }

    fn write_conf(&self, root: &Path, client_id: &str, directory: &Path) {
        let mut conf = agent_config::ConfigFile::default();
        conf.set(agent_config::keys::URL, "https://manager.sim");
        conf.set(agent_config::keys::CLIENT_ID, client_id);
        conf.set(agent_config::keys::CLIENT_NAME, "host1");
        conf.set(
            agent_config::keys::EXTERNAL_CERT_DIR,
            &directory.display().to_string(),
        );
        conf.set(agent_config::keys::CM_FINGERPRINT, &"ab".repeat(32));
        conf.set(agent_config::keys::LOG_UPLOAD_LEVEL, "WARNING");
        let path = AgentRoot::new(root).agent_conf();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, conf.render()).unwrap();
    }

    fn manager_fingerprint(&self, client_id: &str) -> String {
        let (status, body) = call(
            &self.handle,
            Some(&self.admin),
            "GET",
            &format!("/api/v1/client-management/clients/{client_id}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["cert_fingerprint"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
            .replace(':', "")
    }
}

fn store_fingerprints(root: &Path) -> Vec<String> {
    let Ok(store) = agent::paths::AgentRoot::new(root).open_store() else {
        return Vec::new();
    };
    let Ok(status) = store.status() else {
        return Vec::new();
    };
    status
        .generations
        .iter()
        .filter_map(|generation| generation.info.as_ref().ok())
        .map(|info| info.fingerprint.to_string())
        .collect()
}

fn current_fingerprint(root: &Path) -> String {
    agent::paths::AgentRoot::new(root)
        .open_store()
        .and_then(|store| store.current())
        .map(|identity| identity.certificate().fingerprint.to_string())
        .unwrap_or_else(|error| format!("(no current identity: {error})"))
}

/// I1: the manager's current certificate is held by the store.
fn check_held(world: &World, root: &Path, client_id: &str, at: &str, faults: &SharedFaults) {
    let cached = lock(faults).manager_fingerprint.clone();
    let manager = match cached {
        Some(fingerprint) => fingerprint,
        None => {
            let fingerprint = world.manager_fingerprint(client_id);
            lock(faults).manager_fingerprint = Some(fingerprint.clone());
            fingerprint
        }
    };
    if !store_fingerprints(root).contains(&manager) {
        lock(faults).violations.push(format!(
            "I1 at {at}: the manager's certificate {manager} is not in the store"
        ));
    }
}

struct ScheduleResult {
    sites: Vec<String>,
    violations: Vec<String>,
    /// The outcome kinds of the armed runs, for the summary.
    outcomes: Vec<String>,
}

/// One check as the binaries run it: the agent's context read once, then the check.
fn check(
    root: &AgentRoot,
    logger: &Logger,
    request: &CheckRequest,
    now: SystemTime,
    connector: &dyn agent::manager::Connector,
) -> Result<agent::renewal::CheckOutcome, AgentError> {
    Agent::load(root)
        .and_then(|agent| agent::renewal::run_check(&agent, logger, request, now, connector))
}

fn request(trigger: Trigger, world: &World) -> CheckRequest {
    CheckRequest {
        directory_override: (trigger == Trigger::Manual)
            .then(|| world.new_dir.path().to_path_buf()),
        ..CheckRequest::new(trigger)
    }
}

fn run_schedule(world: &Arc<World>, trigger: Trigger, armed: Vec<(usize, Kind)>) -> ScheduleResult {
    let (root_dir, client_id) = world.register();
    let root_path = root_dir.path().to_path_buf();
    // The daemon finds the new set in the saved folder; updatecerts is given it with -d and the
    // saved folder keeps the set in use (the source document's flow).
    let saved = match trigger {
        Trigger::Manual => world.old_dir.path(),
        _ => world.new_dir.path(),
    };
    world.write_conf(&root_path, &client_id, saved);
    let root = AgentRoot::new(&root_path);
    let logger = Logger::new("VMD", Some(root.vmd_log().into()), false);
    let faults: SharedFaults = Arc::new(Mutex::new(Faults {
        armed,
        ..Faults::default()
    }));
    let faulty = SimConnector {
        handle: world.handle.clone(),
        faults: Some(faults.clone()),
    };
    let clean = SimConnector {
        handle: world.handle.clone(),
        faults: None,
    };
    let crashing = Arc::new(AtomicBool::new(false));
    {
        let faults = faults.clone();
        let root_path = root_path.clone();
        let client_id = client_id.clone();
        let handle = world.handle.clone();
        let crashing = crashing.clone();
        // The hook runs on this thread only; it checks I1 and fires the armed fault.
        let world_ptr = world.clone();
        agent::fault::set_thread_hook(move |name| {
            if crashing.load(Ordering::SeqCst) {
                return;
            }
            check_held(&world_ptr, &root_path, &client_id, name, &faults);
            let kind = lock(&faults).at_site(&format!("step:{name}"));
            match kind {
                Some(Kind::Crash) => {
                    crashing.store(true, Ordering::SeqCst);
                    std::panic::panic_any(Crash);
                }
                Some(Kind::Concurrent) => {
                    let second = SimConnector {
                        handle: handle.clone(),
                        faults: None,
                    };
                    let root = AgentRoot::new(&root_path);
                    let result = std::thread::scope(|scope| {
                        scope
                            .spawn(|| {
                                let logger = Logger::new("VMD", None, false);
                                let request = CheckRequest {
                                    lock_wait: Duration::ZERO,
                                    ..CheckRequest::new(Trigger::Once)
                                };
                                check(&root, &logger, &request, now(), &second)
                            })
                            .join()
                    });
                    match result {
                        Ok(Err(AgentError::Busy { .. })) => {}
                        Ok(other) => lock(&faults).violations.push(format!(
                            "a second check started at {name} was not refused as busy: {:?}",
                            other.map(|outcome| outcome.status.result)
                        )),
                        Err(_) => lock(&faults)
                            .violations
                            .push(format!("a second check started at {name} panicked")),
                    }
                }
                _ => {}
            }
        });
    }
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        crashing.store(false, Ordering::SeqCst);
        let result = catch_unwind(AssertUnwindSafe(|| {
            check(&root, &logger, &request(trigger, world), now(), &faulty)
        }));
        match result {
            Ok(Ok(outcome)) => outcomes.push(outcome.status.result.clone()),
            Ok(Err(error)) => outcomes.push(format!("error: {error}")),
            Err(payload) if payload.is::<Crash>() => outcomes.push("crash".to_string()),
            Err(payload) => std::panic::resume_unwind(payload),
        }
        lock(&faults).manager_fingerprint = None;
        check_held(world, &root_path, &client_id, "after a run", &faults);
        if !lock(&faults).pending() {
            break;
        }
    }
    agent::fault::clear_thread_hook();

    // Faults off: at most two health checks.
    let mut last = None;
    for _ in 0..2 {
        let log_before = std::fs::read_to_string(root.vmd_log())
            .unwrap_or_default()
            .len();
        let outcome = check(
            &root,
            &logger,
            &CheckRequest::new(Trigger::Once),
            now(),
            &clean,
        );
        lock(&faults).manager_fingerprint = None;
        check_held(
            world,
            &root_path,
            &client_id,
            "after a health check",
            &faults,
        );
        let settled = match &outcome {
            Ok(outcome) => {
                outcome.report.healthy
                    && current_fingerprint(&root_path) == world.manager_fingerprint(&client_id)
            }
            Err(_) => false,
        };
        let log = std::fs::read_to_string(root.vmd_log()).unwrap_or_default();
        last = Some((outcome, log[log_before..].to_string()));
        if settled {
            break;
        }
    }
    let mut violations = std::mem::take(&mut lock(&faults).violations);
    match last {
        Some((Ok(outcome), log)) => {
            // I2.
            let host = current_fingerprint(&root_path);
            let manager = world.manager_fingerprint(&client_id);
            if host != manager {
                violations.push(format!("I2: host {host} != manager {manager}"));
            }
            if !outcome.report.healthy {
                violations.push(format!(
                    "I2: last check not healthy: {}",
                    outcome.status.message
                ));
            }
            if root.journal_file().exists() {
                violations.push("I2: a journal is left".to_string());
            }
            // I3.
            let exit = outcome.exit_status();
            if exit != agent::ExitStatus::Ok {
                violations.push(format!("I3: exit {exit:?}: {}", outcome.status.message));
            }
            if log.contains("[ERROR]") || log.contains("[CRITICAL]") {
                violations.push(format!("I3: the last check logged {log}"));
            }
            if matches!(outcome.report.outcome, Outcome::NoIdentityAccepted { .. }) {
                violations.push("I3: no identity accepted".to_string());
            }
        }
        Some((Err(error), _)) => violations.push(format!("I2: the last check failed: {error}")),
        None => violations.push("no health check ran".to_string()),
    }
    // I4.
    for key in &world.keys {
        let found = test_support::files_containing(&root_path, key);
        if !found.is_empty() {
            violations.push(format!("I4: plaintext key in {found:?}"));
        }
    }
    for marker in [&b"BEGIN PRIVATE KEY"[..], b"BEGIN RSA PRIVATE KEY"] {
        let found = test_support::files_containing(&root_path, marker);
        if !found.is_empty() {
            violations.push(format!("I4: unencrypted PEM key in {found:?}"));
        }
    }
    let sites = std::mem::take(&mut lock(&faults).trace);
    ScheduleResult {
        sites,
        violations,
        outcomes,
    }
}

fn kinds_for(site: &str) -> &'static [Kind] {
    if site.starts_with("exchange:") {
        &EXCHANGE_KINDS
    } else {
        &CRASH_KINDS
    }
}

/// Schedules explored, failures by schedule, summary lines.
type Explored = (usize, BTreeMap<String, Vec<String>>, Vec<String>);

/// Explores every schedule of one retirement mode: (schedules explored, failures, summary).
fn explore(retire: RetireOldCertificate) -> Explored {
    let mut explored = 0usize;
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut summary = Vec::new();
    {
        let world = Arc::new(World::new(retire));
        for trigger in [Trigger::Scheduled, Trigger::Manual] {
            // The fault-free trace gives the sites of the first run.
            let baseline = run_schedule(&world, trigger, Vec::new());
            assert!(
                baseline.violations.is_empty(),
                "{retire} {trigger:?} without faults: {:?}",
                baseline.violations
            );
            assert!(
                baseline
                    .outcomes
                    .first()
                    .is_some_and(|outcome| outcome == "renewed"),
                "{retire} {trigger:?} without faults: {:?}",
                baseline.outcomes
            );
            let sites = baseline.sites.clone();
            let singles: Vec<(usize, Kind)> = sites
                .iter()
                .enumerate()
                .flat_map(|(site, name)| kinds_for(name).iter().map(move |kind| (site, *kind)))
                .collect();
            let mut schedules: Vec<Vec<(usize, Kind)>> =
                singles.iter().map(|single| vec![*single]).collect();
            // Ordered pairs: the second fault at a later site of the same execution, which is
            // only known once the first fault is armed: trace each single schedule and pair it
            // with every fault at every later site of that trace.
            let mut pairs = Vec::new();
            for first in &singles {
                let traced = run_schedule(&world, trigger, vec![*first]);
                explored += 1;
                if !traced.violations.is_empty() {
                    failures
                        .entry(format!("{retire} {trigger:?} {first:?}"))
                        .or_default()
                        .extend(traced.violations);
                }
                for (site, name) in traced.sites.iter().enumerate().skip(first.0 + 1) {
                    for kind in kinds_for(name) {
                        pairs.push(vec![*first, (site, *kind)]);
                    }
                }
            }
            schedules.clear();
            schedules.extend(pairs);
            for schedule in &schedules {
                let result = run_schedule(&world, trigger, schedule.clone());
                explored += 1;
                if !result.violations.is_empty() {
                    failures
                        .entry(format!("{retire} {trigger:?} {schedule:?}"))
                        .or_default()
                        .extend(result.violations);
                }
            }
            summary.push(format!(
                "{retire} {trigger:?}: {} sites in the fault-free run, {} single faults, {} pairs",
                sites.len(),
                singles.len(),
                schedules.len()
            ));
        }
    }
    (explored, failures, summary)
}

#[test]
fn every_single_fault_and_every_ordered_pair_of_faults_leaves_the_host_with_a_working_identity() {
    let started = Instant::now();
    std::panic::set_hook({
        let default = std::panic::take_hook();
        Box::new(move |info| {
            if !info.payload().is::<Crash>() {
                default(info);
            }
        })
    });
    // One thread per retirement mode (each with its own emulator); 2 cores share them.
    let results: Vec<Explored> = std::thread::scope(|scope| {
        let threads: Vec<_> = RetireOldCertificate::ALL
            .into_iter()
            .map(|retire| scope.spawn(move || explore(retire)))
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("explorer thread"))
            .collect()
    });
    let mut explored = 0;
    let mut failures = BTreeMap::new();
    let mut summary = Vec::new();
    for (count, failed, lines) in results {
        explored += count;
        failures.extend(failed);
        summary.extend(lines);
    }
    eprintln!("fault-schedule explorer:");
    for line in &summary {
        eprintln!("  {line}");
    }
    eprintln!(
        "  {explored} schedules explored in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    let shown: Vec<String> = failures
        .iter()
        .take(20)
        .map(|(schedule, violations)| format!("{schedule}: {violations:?}"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} schedules broke an invariant:\n{}",
        failures.len(),
        shown.join("\n")
    );
}

/// A check that reaches its own deadline (issue 20, "no check holds the renewal lock across an
/// unbounded wait") starts no further manager call: here the deadline is zero, so the set is
/// staged (local, bounded) but nothing is sent. The check ends unreachable with everything
/// kept, the lock is free at once, and the next check carries on and renews.
#[test]
fn a_check_out_of_time_sends_nothing_and_the_next_check_carries_on() {
    let world = World::new(RetireOldCertificate::default());
    let (root_dir, client_id) = world.register();
    world.write_conf(root_dir.path(), &client_id, world.new_dir.path());
    let root = AgentRoot::new(root_dir.path());
    let logger = Logger::new("VMD", None, false);
    let connector = SimConnector {
        handle: world.handle.clone(),
        faults: None,
    };
    let before = world.manager_fingerprint(&client_id);
    let out_of_time = CheckRequest {
        deadline: Duration::ZERO,
        ..request(Trigger::Scheduled, &world)
    };
    let outcome = check(&root, &logger, &out_of_time, now(), &connector).unwrap();
    assert_eq!(
        outcome.report.outcome,
        Outcome::Unreachable {
            reason: renewal_policy::plan::OUT_OF_TIME.to_string()
        }
    );
    assert!(!outcome.report.healthy);
    assert!(!outcome.status.manager_reached);
    assert_eq!(world.manager_fingerprint(&client_id), before);
    assert!(root.journal_file().exists(), "the staged update is kept");
    let next = CheckRequest {
        lock_wait: Duration::ZERO,
        ..request(Trigger::Scheduled, &world)
    };
    let outcome = check(&root, &logger, &next, now(), &connector).unwrap();
    assert!(
        matches!(outcome.report.outcome, Outcome::Renewed { .. }),
        "{:?}",
        outcome.report
    );
    assert_ne!(world.manager_fingerprint(&client_id), before);
    assert_eq!(
        world.manager_fingerprint(&client_id),
        current_fingerprint(root_dir.path())
    );
}
