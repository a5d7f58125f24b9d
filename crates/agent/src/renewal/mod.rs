//! One renewal check: what `vmd` runs on its schedule, `vmd --once` runs now, and
//! `vmutil -a vmd -d DIR updatecerts` runs now with another folder.
//!
//! A pipeline, `inspect → decide → execute → record`, repeated until the decision is to finish:
//! the whole decision is `renewal_policy::plan::next_step` (pure; no caller overrides it), and
//! this module only carries out the one step it names and records what happened. The state of an
//! update in flight is the journal (`vmd/run/renewal-journal.json`, the plan's own [`Journal`]),
//! written before each side effect:
//!
//! ```text
//!   (none) ─Stage─▶ staging ─▶ staged ─login(current) ok─▶ pushing ─renew accepted─▶ activating
//!      ▲               │          │                          │  │                       │
//!      │  discard ◀────┘          └─login failed: discard    │  └─renew refused: discard │
//!      │                                                     │                           ▼
//!      │                 outcome unknown: kept; next check probes with the candidate  confirming
//!      │                 (accepted → activating; not this client's → discard, push again) │
//!      └──────────────────────────────── login(new) accepted: journal removed ◀────────────┘
//! ```
//!
//! Nothing is rolled back, discarded or forgotten on an indefinite manager outcome (timeout,
//! connection lost after sending, 5xx). When the current identity is refused as not this
//! client's, the other generations are tried and the accepted one is adopted. One check runs at
//! a time per agent root (`crate::lock::RenewalLock`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use keystore::GenerationId;
use renewal_policy::plan::{
    Answer, Event, Exchange, FolderView, Outcome, Report, Situation, Step, StoreView,
};
use serde::{Deserialize, Serialize};

pub use renewal_policy::plan::Trigger;

use crate::AgentError;
use crate::fault::crash_point;
use crate::fsutil;
use crate::lock::RenewalLock;
use crate::logging::{Logger, Severity};
use crate::manager::Connector;
use crate::messages::Message;
use crate::paths::{JOURNAL_ASIDE_NAME, JOURNAL_NAME};
use crate::settings::Agent;

mod inspect;
mod journal;

use inspect::{FolderSet, inspect_directory, store_view};
pub use journal::{Journal, JournalPhase};

/// The most steps one check takes (a renewal with a probe and one retry takes about a dozen);
/// a guard against a decision loop, never reached in the explored schedules.
const MAX_STEPS: usize = 64;

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckRequest {
    /// Why.
    pub trigger: Trigger,
    /// A folder to use instead of agent.conf's `EXTERNAL_CERT_DIR` (updatecerts `-d`); the
    /// saved path is not changed.
    pub directory_override: Option<PathBuf>,
    /// Validate locally and stop before contacting the manager; changes nothing.
    pub dry_run: bool,
    /// Checks in a row before this one that ended with the manager unreachable (the plan's
    /// retry backs off with it).
    pub consecutive_failures: u32,
    /// How long to wait for another check holding the lock.
    pub lock_wait: Duration,
    /// How long the check may run once it holds the lock: no manager call starts after that,
    /// so the lock is held at most this long plus one call's timeout (and the bounded local
    /// steps). See `DEFAULT_CHECK_DEADLINE`.
    pub deadline: Duration,
}

/// A check's default deadline: a renewal takes about five manager calls, each bounded by
/// cm-client's request timeout (20 s) and its retries; five minutes leave room for a slow
/// manager and still free the lock for the next check.
pub(crate) const DEFAULT_CHECK_DEADLINE: Duration = Duration::from_secs(300);

impl CheckRequest {
    /// A request for `trigger` with the defaults: agent.conf's folder, not a dry run, the
    /// default lock wait.
    pub fn new(trigger: Trigger) -> Self {
        Self {
            trigger,
            directory_override: None,
            dry_run: false,
            consecutive_failures: 0,
            lock_wait: crate::lock::DEFAULT_WAIT,
            deadline: DEFAULT_CHECK_DEADLINE,
        }
    }
}

/// The outcome of one check, also written to `vmd/run/status.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckStatus {
    /// When the check ran, RFC 3339.
    pub last_check: String,
    /// The result kind (`not_due`, `healthy`, `renewed`, `no_candidate`, ...).
    pub result: String,
    /// The message logged for it.
    pub message: String,
    /// The level it was logged at.
    pub level: String,
    /// When the next check is due, RFC 3339 (empty when none: expired).
    pub next_check: String,
    /// The folder that was looked at.
    pub directory: String,
    /// Whether the manager answered during the check.
    pub manager_reached: bool,
    /// Whether the host is healthy (an accepted identity, renewal not overdue).
    #[serde(default)]
    pub healthy: bool,
    /// Log lines the process that ran the check could not write to the log file since it
    /// started (for the daemon, across its checks and heartbeats); each was still on stderr,
    /// and CGP3014E said why. Zero when the log is fine.
    #[serde(default)]
    pub log_write_failures: u64,
}

/// A check's outcome with its schedule.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// What the decision reported.
    pub report: Report,
    /// When to check again (`None`: never, re-registration required).
    pub next_check: Option<SystemTime>,
    /// What was written to status.json.
    pub status: CheckStatus,
}

impl CheckOutcome {
    /// The process exit status for `vmd --once` / `updatecerts`: the plan's exit class (health
    /// for the automatic triggers, the request's success for a manual update).
    pub fn exit_status(&self) -> crate::ExitStatus {
        crate::ExitStatus::from(self.report.exit)
    }

    /// Whether the identity changed in this check (renewed or adopted): a running daemon should
    /// be told.
    pub fn identity_changed(&self) -> bool {
        matches!(
            self.report.outcome,
            Outcome::Renewed { .. } | Outcome::Adopted { .. }
        )
    }
}

/// Runs one check against the manager of agent.conf, reached through `connector` (the binary's
/// [`crate::manager::TlsConnector`]; a simulation passes an in-process manager). `now` decides
/// everything about time.
///
/// # Errors
/// Only for problems with the agent itself (not registered, agent.conf or pem store unusable,
/// another check holding the lock: [`AgentError::Busy`]); every outcome of the check, refusals
/// included, is a [`CheckOutcome`].
pub fn run_check(
    agent: &Agent,
    logger: &Logger,
    request: &CheckRequest,
    now: SystemTime,
    connector: &dyn Connector,
) -> Result<CheckOutcome, AgentError> {
    let root = &agent.root;
    let settings = &agent.settings;
    logger.set_upload_threshold(settings.log_upload_level);
    // A bad agent.conf is refused before anything under the agent root is locked or written.
    if !request.dry_run {
        connector.validate(settings)?;
    }
    // On a read-only root nothing can be written, by this check or any other: it takes no lock
    // and records nothing, so the health check still works; a step that must write fails
    // (exit 7) with the file system's own error.
    let mut read_only = false;
    let _lock = if request.dry_run {
        None
    } else {
        match RenewalLock::acquire(root, request.lock_wait) {
            Ok(lock) => Some(lock),
            Err(error) if error.is_read_only_file_system() => {
                read_only = true;
                None
            }
            Err(error) => return Err(error),
        }
    };
    // Measured on the monotonic clock from when the lock is held (the wall clock can jump).
    let deadline = std::time::Instant::now() + request.deadline;
    if !request.dry_run && !read_only {
        crate::logging::check_own_folders(root, logger);
    }
    let store = &agent.store;
    let directory = request
        .directory_override
        .clone()
        .or(settings.external_cert_dir.clone());
    let mut check = Check {
        agent,
        logger,
        connector,
        request,
        now,
        directory,
        journal: None,
        folder: FolderView::NotLooked,
        loaded: None,
        events: Vec::new(),
        sessions: HashMap::new(),
        clients: HashMap::new(),
        manager_reached: false,
        read_only,
    };
    if !request.dry_run {
        check.journal = check.read_journal()?;
    }
    if check.directory.is_none() {
        check.folder = FolderView::NotConfigured;
    }
    for _ in 0..MAX_STEPS {
        let view = store_view(store)?;
        let situation = Situation {
            policy: &agent.policy,
            host: &agent.host,
            trigger: request.trigger,
            dry_run: request.dry_run,
            now,
            journal: check.journal.as_ref(),
            store: &view,
            folder: &check.folder,
            events: &check.events,
            out_of_time: std::time::Instant::now() >= deadline,
            consecutive_failures: request.consecutive_failures,
        };
        let step = renewal_policy::plan::next_step(&situation);
        if let Step::Finish(report) = step {
            return check.finish(report, &view);
        }
        check.execute(step, &view)?;
    }
    Err(AgentError::Bug(
        "the renewal check did not settle; report it with vmd/run/renewal-journal.json".to_string(),
    ))
}

/// One check in progress: what it has seen and done.
struct Check<'a> {
    agent: &'a Agent,
    logger: &'a Logger,
    connector: &'a dyn Connector,
    request: &'a CheckRequest,
    now: SystemTime,
    directory: Option<PathBuf>,
    journal: Option<Journal>,
    folder: FolderView,
    loaded: Option<FolderSet>,
    events: Vec<Event>,
    sessions: HashMap<GenerationId, cm_client::Session>,
    clients: HashMap<GenerationId, (cert_loading::Identity, cm_client::ManagerClient)>,
    manager_reached: bool,
    /// The agent root is on a read-only file system: nothing is recorded.
    read_only: bool,
}

impl Check<'_> {
    fn directory_text(&self) -> String {
        self.directory
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|| "(no EXTERNAL_CERT_DIR in agent.conf)".to_string())
    }

    fn read_journal(&self) -> Result<Option<Journal>, AgentError> {
        let path = self.agent.root.journal_file();
        let Some(bytes) = fsutil::read_own(&path)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<Journal>(&bytes) {
            Ok(journal) => Ok(Some(journal)),
            Err(_) => {
                // Keep it for a person to read; the staged generations stay in the store and
                // the identity question is settled by logins (adoption), not by guessing.
                let aside = path.with_extension("json.unreadable");
                fsutil::own_folder(&self.agent.root.run_dir())?
                    .rename(JOURNAL_NAME, JOURNAL_ASIDE_NAME)
                    .map_err(|error| fsutil::fs_error(error, "moving aside"))?;
                self.logger.message(
                    Severity::Warning,
                    &Message::JournalUnreadable {
                        moved_to: aside.display().to_string(),
                    },
                );
                Ok(None)
            }
        }
    }

    fn write_journal(
        &mut self,
        phase: JournalPhase,
        candidate: cert_loading::Fingerprint,
    ) -> Result<(), AgentError> {
        let previous = match &self.journal {
            Some(journal) => journal.previous,
            None => store_view(&self.agent.store)?.current.fingerprint,
        };
        let journal = Journal {
            phase,
            candidate,
            previous,
            directory: self
                .directory
                .as_ref()
                .map(|path| path.display().to_string())
                .unwrap_or_default(),
        };
        fsutil::write_atomically(
            &self.agent.root.journal_file(),
            serde_json::to_string_pretty(&journal)
                .unwrap_or_default()
                .as_bytes(),
        )?;
        self.journal = Some(journal);
        Ok(())
    }

    fn clear_journal(&mut self) -> Result<(), AgentError> {
        fsutil::remove_if_present(&self.agent.root.journal_file())?;
        self.journal = None;
        Ok(())
    }

    fn identity(&self, generation: GenerationId) -> Result<cert_loading::Identity, AgentError> {
        Ok(self.agent.store.identity(generation)?.0)
    }

    /// The identity of `generation` and a client presenting it, made once per check: the key is
    /// decrypted and rustls's signing key built once, not for every exchange. A discarded
    /// generation's entry goes with it (its number can be given again).
    fn ensure_client(&mut self, generation: GenerationId) -> Result<(), AgentError> {
        if !self.clients.contains_key(&generation) {
            let identity = self.identity(generation)?;
            let client = self.connector.client_for(&self.agent.settings, &identity)?;
            self.clients.insert(generation, (identity, client));
        }
        Ok(())
    }

    /// A login (with the status call for health checks) presenting `generation`.
    fn login(&mut self, generation: GenerationId, with_status: bool) -> Result<Answer, AgentError> {
        self.ensure_client(generation)?;
        let (_, client) = &self.clients[&generation];
        let result = client
            .login(&self.agent.settings.client_id)
            .and_then(|session| {
                if with_status {
                    client.status(&session)?;
                }
                Ok(session)
            });
        Ok(match result {
            Ok(session) => {
                self.manager_reached = true;
                self.sessions.insert(generation, session);
                Answer::Accepted
            }
            Err(error) => self.answer_of(error, true)?,
        })
    }

    fn answer_of(&mut self, error: cm_client::Error, login: bool) -> Result<Answer, AgentError> {
        let reason = error.to_string();
        // Back-pressure: the plan schedules the next attempt no earlier than the manager said.
        if let cm_client::Error::Throttled { retry_after, .. } = &error {
            self.events.push(Event::ManagerAsksToWait {
                until: retry_after.map(|after| after.after(self.now)),
            });
        }
        Ok(match error.certainty() {
            cm_client::Certainty::Local => return Err(error.into()),
            cm_client::Certainty::Indefinite => Answer::Indefinite { reason },
            cm_client::Certainty::Definite => {
                self.manager_reached = true;
                if login && error.is_identity_refused() {
                    Answer::NotThisClient { reason }
                } else {
                    Answer::Refused { reason }
                }
            }
        })
    }

    /// Carries out one step of the plan and records what happened. One method per step.
    fn execute(&mut self, step: Step, view: &StoreView) -> Result<(), AgentError> {
        match step {
            Step::LookInFolder => {
                let (folder, loaded) = match &self.directory {
                    Some(directory) => inspect_directory(directory, self.request.dry_run),
                    None => (FolderView::NotConfigured, None),
                };
                self.folder = folder;
                self.loaded = loaded;
            }
            Step::Login {
                generation,
                with_status,
            } => {
                let answer = self.login(generation, with_status)?;
                // Keyed by the certificate presented, not by the generation's number.
                let certificate = self.clients[&generation].0.certificate().fingerprint;
                self.events
                    .push(Event::Answered(Exchange::Login { certificate }, answer));
            }
            Step::Stage => self.stage()?,
            Step::Push { generation } => self.push(generation, view)?,
            Step::Activate {
                generation,
                adopted,
            } => self.activate(generation, adopted, view)?,
            Step::Discard { generation } => self.discard(generation, view)?,
            Step::ClearJournal => {
                self.clear_journal()?;
                crash_point("confirmed");
            }
            Step::Finish(_) => {}
        }
        Ok(())
    }

    /// Journals "staging", stages the folder's set (decrypting its key only now), journals
    /// "staged".
    fn stage(&mut self) -> Result<(), AgentError> {
        let Some(set) = self.loaded.take() else {
            return Err(AgentError::Bug(
                "the renewal decision asked to stage a set that was not loaded".to_string(),
            ));
        };
        // The key is decrypted here, when the decision needs it; a key that does not decrypt
        // makes the folder's set invalid, and the decision is taken again.
        let set = match set.decrypted() {
            Ok(set) => set,
            Err(reason) => {
                self.folder = FolderView::Invalid { reason };
                return Ok(());
            }
        };
        let fingerprint = set.identity.certificate().fingerprint;
        self.write_journal(JournalPhase::Staging, fingerprint)?;
        crash_point("journal-staging");
        let generation = self.agent.store.stage(&set.identity, self.now)?;
        crash_point("staged");
        self.write_journal(JournalPhase::Staged { generation }, fingerprint)?;
        self.loaded = Some(FolderSet::Decrypted(set));
        Ok(())
    }

    /// Journals "pushing", then sends the renewal to `generation`'s certificate in the session
    /// of the current certificate's accepted login.
    fn push(&mut self, generation: GenerationId, view: &StoreView) -> Result<(), AgentError> {
        // Build the client first: a local problem must not leave "pushing" behind. The plan
        // pushes only after the current certificate's login was accepted.
        if !self.sessions.contains_key(&view.current.id) {
            return Err(AgentError::Bug(
                "the renewal decision asked to push without a session of the current certificate"
                    .to_string(),
            ));
        }
        self.ensure_client(generation)?;
        let (identity, _) = &self.clients[&generation];
        let fingerprint = identity.certificate().fingerprint;
        let chain_pem = identity.chain_pem();
        self.write_journal(JournalPhase::Pushing { generation }, fingerprint)?;
        crash_point("journal-pushing");
        let (_, client) = &self.clients[&generation];
        let session = &self.sessions[&view.current.id];
        let answer = match client.renew(session, &chain_pem) {
            Ok(_) => {
                self.manager_reached = true;
                Answer::Accepted
            }
            Err(error) => self.answer_of(error, false)?,
        };
        crash_point("pushed");
        self.events.push(Event::Answered(
            Exchange::Renew {
                certificate: fingerprint,
            },
            answer,
        ));
        Ok(())
    }

    /// Journals "activating", makes `generation` current (checked against the identity this
    /// check read), journals "confirming".
    fn activate(
        &mut self,
        generation: GenerationId,
        adopted: bool,
        view: &StoreView,
    ) -> Result<(), AgentError> {
        self.ensure_client(generation)?;
        let fingerprint = self.clients[&generation].0.certificate().fingerprint;
        self.write_journal(
            JournalPhase::Activating {
                generation,
                adopted,
            },
            fingerprint,
        )?;
        crash_point("journal-activating");
        let replaced = view.current;
        // The identity this check read (and checked) is what the generation must hold: compared
        // byte for byte, its public key not derived again.
        self.agent
            .store
            .activate_holding(generation, Some(&self.clients[&generation].0))?;
        crash_point("activated");
        self.write_journal(
            JournalPhase::Confirming {
                generation,
                adopted,
            },
            fingerprint,
        )?;
        if replaced.id != generation {
            self.events.push(Event::Activated {
                generation,
                replaced,
                adopted,
            });
        }
        Ok(())
    }

    /// Removes `generation` if it is still staged, then the journal.
    fn discard(&mut self, generation: GenerationId, view: &StoreView) -> Result<(), AgentError> {
        let staged = view.staged.iter().find(|staged| staged.id == generation);
        self.clients.remove(&generation);
        self.sessions.remove(&generation);
        if let Some(staged) = staged {
            self.agent.store.discard_staged(generation)?;
            self.logger.message(
                Severity::Info,
                &Message::StagedDiscarded {
                    fingerprint: staged.fingerprint.to_string(),
                    why: "the manager does not hold it (nothing was sent, it refused it, or the renewal did not take)",
                },
            );
        }
        crash_point("discarded");
        self.clear_journal()?;
        self.events.push(Event::Discarded { generation });
        Ok(())
    }

    fn finish(self, report: Report, view: &StoreView) -> Result<CheckOutcome, AgentError> {
        let message = Message::of_report(&report, self.directory_text());
        let level = report.severity;
        self.logger.message(level, &message);
        let next_check = report.next_check;
        let status = CheckStatus {
            last_check: cert_loading::format_rfc3339(self.now),
            result: report.outcome.kind().label().to_string(),
            message: message.text(),
            level: level.to_string(),
            next_check: next_check
                .map(cert_loading::format_rfc3339)
                .unwrap_or_default(),
            directory: self.directory_text(),
            manager_reached: self.manager_reached,
            healthy: report.healthy,
            log_write_failures: self.logger.write_failures(),
        };
        if self.read_only {
            self.logger.message(
                Severity::Warning,
                &Message::RootReadOnly {
                    path: self.agent.root.run_dir().display().to_string(),
                },
            );
        } else if !self.request.dry_run {
            fsutil::write_atomically(
                &self.agent.root.status_file(),
                serde_json::to_string_pretty(&status)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
            crate::metrics::after_check(
                self.agent,
                self.logger,
                &report,
                self.manager_reached,
                self.now,
            );
        }
        if !self.request.dry_run && (level >= Severity::Warning || self.manager_reached) {
            // With the client (and session) of the current identity this check already has:
            // its key is not decrypted a second time.
            let current = view.current.id;
            match (self.clients.get(&current), self.sessions.get(&current)) {
                (Some((_, client)), Some(session)) => {
                    upload_records(self.logger, client, session);
                }
                _ => upload_pending(self.agent, self.logger, self.connector),
            }
        }
        Ok(CheckOutcome {
            report,
            next_check,
            status,
        })
    }
}

/// Uploads log records waiting in the logger, with the current identity, through `connector`.
/// Failures put them back.
pub(crate) fn upload_pending(agent: &Agent, logger: &Logger, connector: &dyn Connector) {
    if logger.has_no_uploads() {
        return;
    }
    let connected = (|| -> Result<_, AgentError> {
        let identity = agent.store.current()?;
        let client = connector.client_for(&agent.settings, &identity)?;
        let session = client.login(&agent.settings.client_id)?;
        Ok((client, session))
    })();
    // Without a session the records are kept for the next contact.
    if let Ok((client, session)) = connected {
        upload_records(logger, &client, &session);
    }
}

/// Uploads the records waiting in the logger with an established session; failures put them
/// back.
fn upload_records(
    logger: &Logger,
    client: &cm_client::ManagerClient,
    session: &cm_client::Session,
) {
    let records = logger.take_uploads();
    if records.is_empty() {
        return;
    }
    if client.upload_records(session, &records).is_err() {
        logger.requeue_uploads(records);
    }
}

/// `vmd --once`: one check ([`run_check`]), and its exit status. When the host's identity
/// cannot be opened (a pem-store error: a key protector that fails, such as the TPM gone or a
/// copied root, or a damaged store), the failure is logged (CGP3007E) and recorded as a failed
/// check, as the daemon records it ([`record_local_failure`]), so monitoring sees it. Other
/// errors (agent.conf, not registered, busy) are returned and change nothing under the root.
///
/// # Errors
/// [`run_check`]'s errors other than the pem store's.
pub fn run_once(
    agent: &Agent,
    logger: &Logger,
    now: SystemTime,
    connector: &dyn Connector,
) -> Result<crate::ExitStatus, AgentError> {
    let request = CheckRequest::new(Trigger::Once);
    match run_check(agent, logger, &request, now, connector) {
        Ok(outcome) => Ok(outcome.exit_status()),
        Err(error @ AgentError::Store(_)) => {
            record_local_failure(&agent.root, logger, &error, now);
            Ok(error.exit_status())
        }
        Err(error) => Err(error),
    }
}

/// Records a check that a problem of the agent itself stopped ([`run_check`]'s error; not
/// [`AgentError::Busy`], which is no failure): logs CGP3007E and records the check as failed
/// and the agent as unhealthy for the metrics and `vmutil status`. The daemon and `vmd --once`
/// both call it, so monitoring sees a host that cannot check whichever runs the check.
pub fn record_local_failure(
    root: &crate::paths::AgentRoot,
    logger: &Logger,
    error: &AgentError,
    now: SystemTime,
) {
    logger.message(
        Severity::Error,
        &Message::CheckFailed {
            error: error.to_string(),
        },
    );
    crate::metrics::after_failed_check(root, logger, now);
}

/// A heartbeat: client-certificate login and status call with the current identity (its key
/// decrypted once), then the upload of the log records waiting, in the same session.
///
/// # Errors
/// [`AgentError::Manager`] when the manager cannot be reached or refuses.
pub fn heartbeat(
    agent: &Agent,
    logger: &Logger,
    connector: &dyn Connector,
) -> Result<cm_client::ClientRecord, AgentError> {
    let identity = agent.store.current()?;
    let client = connector.client_for(&agent.settings, &identity)?;
    let session = client.login(&agent.settings.client_id)?;
    let record = client.status(&session)?;
    upload_records(logger, &client, &session);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use renewal_policy::plan::{ExitClass, OutcomeKind};

    use super::Trigger;
    use crate::ExitStatus;

    /// Walks every result a check can end with and compares its exit code and failure count
    /// with the table in docs/operations.md ("Check results and their exit codes"); a healthy
    /// automatic check exits 0 whatever the result.
    #[test]
    fn every_check_result_is_documented_with_its_exit_code() {
        let operations = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
        )
        .unwrap();
        let table = operations
            .split("### Check results and their exit codes")
            .nth(1)
            .expect("docs/operations.md has the check results table");
        let rows: Vec<Vec<String>> = table
            .lines()
            .skip_while(|line| !line.starts_with("| result"))
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                line.trim_matches('|')
                    .split('|')
                    .map(|cell| cell.trim().trim_matches('`').to_string())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), OutcomeKind::ALL.len(), "one row per result");
        for kind in OutcomeKind::ALL {
            let row = rows
                .iter()
                .find(|row| row[0] == kind.label())
                .unwrap_or_else(|| panic!("{kind} is not in the table"));
            let code = ExitStatus::from(ExitClass::of_kind(kind, Trigger::Manual, false)).code();
            assert_eq!(row[2], code.to_string(), "{kind}: exit code");
            for trigger in [Trigger::Manual, Trigger::Once, Trigger::Scheduled] {
                let unhealthy = ExitStatus::from(ExitClass::of_kind(kind, trigger, false));
                assert_eq!(unhealthy.code(), code, "{kind}: unhealthy {trigger:?}");
            }
            for trigger in [Trigger::Once, Trigger::Scheduled, Trigger::Recovery] {
                let healthy = ExitClass::of_kind(kind, trigger, true);
                assert_eq!(healthy, ExitClass::Ok, "{kind}: healthy {trigger:?}");
            }
            assert_eq!(
                row[3].starts_with("yes"),
                kind.is_failure(),
                "{kind}: counts as a failure"
            );
        }
    }
}
