//! One renewal check: what `vmd` runs on its schedule, `vmd --once` runs now, and
//! `vmutil -a vmd -d DIR updatecerts` runs now with another folder.
//!
//! The switch to a new identity is made crash-safe by a journal (`vmd/run/renewal-journal.json`)
//! written before each step: `pushing` (about to ask the manager), `accepted` (the manager took
//! the new certificate), `staged` (the new generation is in the store, not current), `activated`
//! (it is current, not yet confirmed by a login). The next check after a crash finishes or cleanly
//! abandons the update ([`recover_interrupted`]): a staged generation is discarded and the push is
//! repeated (the manager accepts the same renewal again), an activated one is confirmed by a
//! login, or rolled back if the manager refuses it. The manager accepts both the old and the new
//! certificate until the new one first logs in, so the host is never locked out in between.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use renewal_policy::{
    AttemptFailure, CandidateCertificate, CurrentCertificate, Decision, DirectoryContents,
    HostSeed, Policy, Severity,
};
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::fault::crash_point;
use crate::fsutil;
use crate::logging::{Level, Logger};
use crate::manager;
use crate::paths::AgentRoot;

/// Why a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon's schedule: nothing happens before the renewal window.
    Scheduled,
    /// `vmd --once`: check now whatever the schedule says; no candidate outside the window is
    /// fine.
    Once,
    /// `updatecerts`: the administrator placed a set and wants it used now; no usable candidate
    /// is an error.
    Manual,
}

/// What to check.
#[derive(Clone, Debug)]
pub struct CheckRequest {
    /// Why.
    pub trigger: Trigger,
    /// A folder to use instead of agent.conf's `EXTERNAL_CERT_DIR` (updatecerts `-d`); the
    /// saved path is not changed.
    pub directory_override: Option<PathBuf>,
    /// Validate locally and stop before contacting the manager.
    pub dry_run: bool,
    /// Consecutive earlier failures to reach the manager (for the retry backoff).
    pub consecutive_unreachable: u32,
}

/// How a check ended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CheckResult {
    /// Not in the renewal window yet.
    NotDue,
    /// Renewed and switched.
    Renewed {
        /// The old fingerprint.
        old_fingerprint: String,
        /// The new fingerprint.
        new_fingerprint: String,
        /// The new end of validity.
        not_after: String,
    },
    /// A valid candidate passed every local check (dry run).
    CandidateReady {
        /// The candidate's fingerprint.
        fingerprint: String,
    },
    /// Nothing usable in the folder.
    NoCandidate {
        /// Why.
        reason: String,
    },
    /// A set is there but was refused locally; nothing was sent.
    CandidateRefused {
        /// Why.
        reason: String,
    },
    /// The manager refused the renewal.
    RefusedByManager {
        /// The manager's reason.
        reason: String,
    },
    /// The manager could not be reached.
    Unreachable {
        /// Why.
        reason: String,
    },
    /// The current certificate has expired.
    Expired,
}

/// The outcome of one check, also written to `vmd/run/status.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckStatus {
    /// When the check ran, RFC 3339.
    pub last_check: String,
    /// The result kind (`not_due`, `renewed`, `no_candidate`, ...).
    pub result: String,
    /// The message logged for it.
    pub message: String,
    /// The level it was logged at.
    pub level: String,
    /// When the next check is due, RFC 3339 (empty when none: expired).
    pub next_check: String,
    /// The folder that was looked at.
    pub directory: String,
    /// Whether the manager was reached during the check.
    pub manager_reached: bool,
}

/// A check's outcome with its schedule.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The result.
    pub result: CheckResult,
    /// When to check again (`None`: never, re-registration required).
    pub next_check: Option<SystemTime>,
    /// What was written to status.json.
    pub status: CheckStatus,
}

impl CheckOutcome {
    /// The process exit status for `vmd --once` / `updatecerts`.
    pub fn exit_status(&self, trigger: Trigger) -> crate::ExitStatus {
        use crate::ExitStatus;
        match &self.result {
            CheckResult::NotDue
            | CheckResult::Renewed { .. }
            | CheckResult::CandidateReady { .. } => ExitStatus::Ok,
            CheckResult::NoCandidate { .. } => match trigger {
                Trigger::Manual => ExitStatus::LocalInput,
                _ => ExitStatus::Ok,
            },
            CheckResult::CandidateRefused { .. } | CheckResult::Expired => ExitStatus::LocalInput,
            CheckResult::RefusedByManager { .. } => ExitStatus::Refused,
            CheckResult::Unreachable { .. } => ExitStatus::Unreachable,
        }
    }
}

/// The journal of an in-flight renewal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    /// `pushing`, `accepted`, `staged` or `activated`.
    pub phase: String,
    /// The candidate's fingerprint.
    pub candidate_fingerprint: String,
    /// The fingerprint it replaces.
    pub previous_fingerprint: String,
    /// The staged generation, once there is one.
    pub generation: Option<u64>,
    /// The folder the candidate came from.
    pub directory: String,
}

/// Reads the settings of a registered agent.
///
/// # Errors
/// [`AgentError::NotRegistered`] when agent.conf is missing, [`AgentError::Config`] when it is
/// wrong.
pub fn load_settings(root: &AgentRoot) -> Result<agent_config::AgentSettings, AgentError> {
    let path = root.agent_conf();
    if !path.exists() {
        return Err(AgentError::NotRegistered { path });
    }
    let file = agent_config::ConfigFile::read(&path)?;
    Ok(agent_config::AgentSettings::from_file(
        &file,
        &path.display().to_string(),
    )?)
}

/// The renewal policy configured in agent.conf.
pub fn policy_from(settings: &agent_config::AgentSettings) -> Policy {
    const HOUR: u64 = 3600;
    Policy {
        renew_before: Duration::from_secs(u64::from(settings.renew_days_before_expiry) * 24 * HOUR),
        retry_interval: Duration::from_secs(u64::from(settings.renew_retry_hours) * HOUR),
        max_stagger: Duration::from_secs(u64::from(settings.renew_stagger_hours) * HOUR),
        ..Policy::default()
    }
}

/// The policy's view of a certificate.
pub fn current_certificate(identity: &cert_loading::Identity) -> CurrentCertificate {
    let certificate = identity.certificate();
    CurrentCertificate {
        common_name: certificate.common_name.clone(),
        fingerprint: renewal_policy::Fingerprint(certificate.fingerprint.0),
        not_after: certificate.not_after,
    }
}

/// Looks at a folder: missing, empty, refused by cert-loading, or a candidate.
pub fn inspect_directory(
    directory: &Path,
    now: SystemTime,
) -> (DirectoryContents, Option<cert_loading::LoadedSet>) {
    if !directory.is_dir() {
        return (DirectoryContents::Missing, None);
    }
    let present = [
        cert_loading::CERTIFICATE_FILE,
        cert_loading::KEY_FILE,
        cert_loading::PASSPHRASE_FILE,
    ]
    .iter()
    .any(|file| directory.join(file).exists());
    if !present {
        return (DirectoryContents::Empty, None);
    }
    // Validity is judged by the policy (a not-yet-valid candidate is waited for), so load at the
    // candidate's own time window: first without the time rules.
    match cert_loading::load_directory(directory, &cert_loading::LoadOptions::default(), now) {
        Ok(set) => {
            let certificate = set.identity.certificate();
            let candidate = CandidateCertificate {
                common_name: certificate.common_name.clone(),
                fingerprint: renewal_policy::Fingerprint(certificate.fingerprint.0),
                not_before: certificate.not_before,
                not_after: certificate.not_after,
            };
            (DirectoryContents::Candidate(candidate), Some(set))
        }
        Err(
            error @ (cert_loading::Error::Expired { .. } | cert_loading::Error::NotYetValid { .. }),
        ) => {
            // Let the policy word these (it compares with the current certificate).
            match load_ignoring_time(directory) {
                Some(set) => {
                    let certificate = set.identity.certificate();
                    (
                        DirectoryContents::Candidate(CandidateCertificate {
                            common_name: certificate.common_name.clone(),
                            fingerprint: renewal_policy::Fingerprint(certificate.fingerprint.0),
                            not_before: certificate.not_before,
                            not_after: certificate.not_after,
                        }),
                        None,
                    )
                }
                None => (
                    DirectoryContents::Invalid {
                        reason: error.to_string(),
                    },
                    None,
                ),
            }
        }
        Err(error) => (
            DirectoryContents::Invalid {
                reason: error.to_string(),
            },
            None,
        ),
    }
}

/// Loads a set at its own not-before, so that only the time rules are skipped.
fn load_ignoring_time(directory: &Path) -> Option<cert_loading::LoadedSet> {
    let pem = std::fs::read(directory.join(cert_loading::CERTIFICATE_FILE)).ok()?;
    let chain = cert_loading::parse_certificate_pem(directory, &pem).ok()?;
    let summary = cert_loading::summarize_certificate(directory, &chain).ok()?;
    cert_loading::load_directory(
        directory,
        &cert_loading::LoadOptions::default(),
        summary.not_before,
    )
    .ok()
}

/// Runs one check. `now` decides everything about time.
///
/// # Errors
/// Only for problems with the agent itself (not registered, agent.conf or pem store unusable);
/// every outcome of the check, including refusals, is a [`CheckOutcome`].
pub fn run_check(
    root: &AgentRoot,
    logger: &Logger,
    request: &CheckRequest,
    now: SystemTime,
) -> Result<CheckOutcome, AgentError> {
    let settings = load_settings(root)?;
    logger.set_upload_threshold(settings.log_upload_level);
    let store = keystore::Keystore::open(root.path())?;
    recover_interrupted(root, &store, &settings, logger)?;
    let current = store.current()?;
    let policy = policy_from(&settings);
    let host = HostSeed::from_client_id(&settings.client_id);
    let current_view = current_certificate(&current);
    let directory = request
        .directory_override
        .clone()
        .or(settings.external_cert_dir.clone());
    let directory_text = directory
        .as_ref()
        .map(|path| path.display().to_string())
        .unwrap_or_default();
    let not_after = cert_loading::format_time(current_view.not_after);
    let days_left = renewal_policy::days_left(&current_view, now);

    let finish = |result: CheckResult,
                  level: Level,
                  number: u32,
                  message: String,
                  next_check: Option<SystemTime>,
                  manager_reached: bool|
     -> Result<CheckOutcome, AgentError> {
        logger.log(level, number, &message);
        let status = CheckStatus {
            last_check: cert_loading::format_time(now),
            result: serde_json::to_value(&result)
                .ok()
                .and_then(|value| value["result"].as_str().map(str::to_string))
                .unwrap_or_default(),
            message,
            level: level.to_string(),
            next_check: next_check
                .map(cert_loading::format_time)
                .unwrap_or_default(),
            directory: directory_text.clone(),
            manager_reached,
        };
        if !request.dry_run {
            fsutil::write_atomically(
                &root.status_file(),
                serde_json::to_string_pretty(&status)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
        }
        Ok(CheckOutcome {
            result,
            next_check,
            status,
        })
    };

    let Some(directory) = directory else {
        let decision = renewal_policy::decide(
            &policy,
            &host,
            &current_view,
            DirectoryContents::Missing,
            now,
        );
        return match decision {
            Decision::Expired { .. } => expired(&finish, &current_view, &not_after),
            Decision::NotDue { next_check } if request.trigger != Trigger::Manual => finish(
                CheckResult::NotDue,
                Level::Info,
                2002,
                format!(
                    "certificate {} expires {not_after} ({days_left} days); no renewal due yet",
                    current_view.common_name
                ),
                Some(next_check),
                false,
            ),
            other => {
                let next = next_of(&other, now, &policy);
                finish(
                    CheckResult::NoCandidate {
                        reason: "no external certificate directory is configured".to_string(),
                    },
                    severity_level(other.severity()).max(Level::Warning),
                    3001,
                    format!(
                        "certificate {} expires {not_after} ({days_left} days left) and no EXTERNAL_CERT_DIR is set in agent.conf; set it and send SIGHUP to vmd, or run vmutil -a vmd -d <dir> updatecerts",
                        current_view.common_name
                    ),
                    Some(next),
                    false,
                )
            }
        };
    };

    let (contents, loaded) = inspect_directory(&directory, now);
    let mut decision = renewal_policy::decide(&policy, &host, &current_view, contents.clone(), now);
    if let Decision::NotDue { next_check } = decision
        && request.trigger != Trigger::Scheduled
    {
        // Checked on request: a usable set is used now, whatever the window says.
        decision = match &contents {
            DirectoryContents::Candidate(candidate) => {
                match renewal_policy::check_candidate(&current_view, candidate, now) {
                    Ok(()) => Decision::Renew {
                        candidate: candidate.clone(),
                        severity: Severity::Info,
                        next_check_if_failed: next_check,
                    },
                    // The set already in use left in the folder is the normal state between
                    // renewals: for `vmd --once` (cron, monitoring) that is "not due", not a
                    // warning; only `updatecerts`, which asks for an update, reports it.
                    Err(renewal_policy::CandidateProblem::SameAsCurrent { .. })
                        if request.trigger == Trigger::Once =>
                    {
                        decision
                    }
                    Err(reason) => Decision::NoUsableCandidate {
                        reason,
                        severity: Severity::Info,
                        next_check,
                    },
                }
            }
            // A set is there but unusable: say why, on any request (a set placed early is best
            // fixed early); the scheduled checks report it once the window opens.
            DirectoryContents::Invalid { reason } => Decision::NoUsableCandidate {
                reason: renewal_policy::CandidateProblem::Invalid {
                    reason: reason.clone(),
                },
                severity: Severity::Info,
                next_check,
            },
            DirectoryContents::Missing if request.trigger == Trigger::Manual => {
                Decision::NoUsableCandidate {
                    reason: renewal_policy::CandidateProblem::DirectoryMissing,
                    severity: Severity::Info,
                    next_check,
                }
            }
            DirectoryContents::Empty if request.trigger == Trigger::Manual => {
                Decision::NoUsableCandidate {
                    reason: renewal_policy::CandidateProblem::NoNewSet,
                    severity: Severity::Info,
                    next_check,
                }
            }
            _ => decision,
        };
    }

    // On a manual update the manager's own common-name rule is authoritative: its record of this
    // client, not this host's copy, decides, and the administrator sees its answer. The automatic
    // checks refuse a changed common name locally and send nothing.
    if request.trigger == Trigger::Manual
        && let Decision::NoUsableCandidate {
            reason: renewal_policy::CandidateProblem::CommonNameChanged { .. },
            severity,
            next_check,
        } = &decision
        && let DirectoryContents::Candidate(candidate) = &contents
        && loaded.is_some()
    {
        decision = Decision::Renew {
            candidate: candidate.clone(),
            severity: *severity,
            next_check_if_failed: *next_check,
        };
    }

    match decision {
        Decision::Expired { .. } => expired(&finish, &current_view, &not_after),
        Decision::NotDue { next_check } => finish(
            CheckResult::NotDue,
            Level::Info,
            2002,
            format!(
                "certificate {} expires {not_after} ({days_left} days); renewal is not due yet, next check {}",
                current_view.common_name,
                cert_loading::format_time(next_check)
            ),
            Some(next_check),
            false,
        ),
        Decision::NoUsableCandidate {
            reason,
            severity,
            next_check,
        } => {
            let locally_refused = matches!(
                reason,
                renewal_policy::CandidateProblem::Invalid { .. }
                    | renewal_policy::CandidateProblem::CommonNameChanged { .. }
                    | renewal_policy::CandidateProblem::NotLater { .. }
                    | renewal_policy::CandidateProblem::Expired { .. }
            );
            let message = format!(
                "certificate {} expires {not_after} ({days_left} days left); no usable new certificate set in {}: {reason}",
                current_view.common_name,
                directory.display()
            );
            if locally_refused {
                finish(
                    CheckResult::CandidateRefused {
                        reason: reason.to_string(),
                    },
                    severity_level(severity).max(Level::Error),
                    3002,
                    message,
                    Some(next_check),
                    false,
                )
            } else {
                let level = match request.trigger {
                    Trigger::Manual => Level::Error,
                    _ => severity_level(severity).max(Level::Warning),
                };
                let outcome = finish(
                    CheckResult::NoCandidate {
                        reason: reason.to_string(),
                    },
                    level,
                    3001,
                    format!(
                        "{message}; checking again at {}",
                        cert_loading::format_time(next_check)
                    ),
                    Some(next_check),
                    false,
                );
                if !request.dry_run {
                    upload_pending(&settings, &store, logger);
                }
                outcome
            }
        }
        Decision::Renew {
            next_check_if_failed,
            ..
        } => {
            let Some(set) = loaded else {
                return finish(
                    CheckResult::CandidateRefused {
                        reason: "the set could not be reloaded".to_string(),
                    },
                    Level::Error,
                    3002,
                    format!(
                        "the new certificate set in {} could not be loaded again",
                        directory.display()
                    ),
                    Some(next_check_if_failed),
                    false,
                );
            };
            if request.dry_run {
                let fingerprint = set.identity.certificate().fingerprint.to_string();
                return finish(
                    CheckResult::CandidateReady {
                        fingerprint: fingerprint.clone(),
                    },
                    Level::Info,
                    2006,
                    format!(
                        "dry run: the set in {} is valid for renewal (common name {}, expires {}, fingerprint {fingerprint}); nothing was sent",
                        directory.display(),
                        set.identity.certificate().common_name,
                        cert_loading::format_time(set.identity.certificate().not_after)
                    ),
                    Some(next_check_if_failed),
                    false,
                );
            }
            let outcome = match push_and_switch(
                root, &store, &settings, &current, &set, &directory, now,
            ) {
                Ok(info) => {
                    let new_view = CurrentCertificate {
                        common_name: info.common_name.clone(),
                        fingerprint: renewal_policy::Fingerprint(info.fingerprint.0),
                        not_after: info.not_after,
                    };
                    let next = match renewal_policy::schedule(&policy, &host, &new_view, now) {
                        renewal_policy::Schedule::NotDue { next_check }
                        | renewal_policy::Schedule::Due { next_check, .. } => Some(next_check),
                        renewal_policy::Schedule::Expired { .. } => None,
                    };
                    finish(
                        CheckResult::Renewed {
                            old_fingerprint: current_view.fingerprint.to_string(),
                            new_fingerprint: info.fingerprint.to_string(),
                            not_after: cert_loading::format_time(info.not_after),
                        },
                        Level::Info,
                        2003,
                        format!(
                            "certificate renewed: {} now uses fingerprint {} (was {}), expires {}",
                            info.common_name,
                            info.fingerprint,
                            current_view.fingerprint,
                            cert_loading::format_time(info.not_after)
                        ),
                        next,
                        true,
                    )
                }
                Err(SwitchError::Refused(reason)) => finish(
                    CheckResult::RefusedByManager {
                        reason: reason.clone(),
                    },
                    Level::Error,
                    3003,
                    format!(
                        "the manager refused the new certificate from {}: {reason}; keeping the current certificate (expires {not_after})",
                        directory.display()
                    ),
                    Some(renewal_policy::next_check_after_failure(
                        &policy,
                        &current_view,
                        now,
                        AttemptFailure::Refused,
                    )),
                    true,
                ),
                Err(SwitchError::Unreachable(reason)) => finish(
                    CheckResult::Unreachable {
                        reason: reason.clone(),
                    },
                    Level::Error,
                    3004,
                    format!(
                        "renewal not done, the manager could not be reached: {reason}; keeping the current certificate"
                    ),
                    Some(renewal_policy::next_check_after_failure(
                        &policy,
                        &current_view,
                        now,
                        AttemptFailure::Unreachable {
                            consecutive_failures: request.consecutive_unreachable + 1,
                        },
                    )),
                    false,
                ),
                Err(SwitchError::Local(error)) => return Err(error),
            };
            upload_pending(&settings, &store, logger);
            outcome
        }
    }
}

type Finish<'a> = dyn Fn(
        CheckResult,
        Level,
        u32,
        String,
        Option<SystemTime>,
        bool,
    ) -> Result<CheckOutcome, AgentError>
    + 'a;

fn expired(
    finish: &Finish<'_>,
    current: &CurrentCertificate,
    not_after: &str,
) -> Result<CheckOutcome, AgentError> {
    finish(
        CheckResult::Expired,
        Level::Critical,
        3005,
        format!(
            "the current certificate {} expired on {not_after}; communication with the manager may be blocked and re-registration is required (register_host --force with a new set); no renewal is attempted",
            current.common_name
        ),
        None,
        false,
    )
}

fn next_of(decision: &Decision, now: SystemTime, policy: &Policy) -> SystemTime {
    match decision {
        Decision::NotDue { next_check } | Decision::NoUsableCandidate { next_check, .. } => {
            *next_check
        }
        Decision::Renew {
            next_check_if_failed,
            ..
        } => *next_check_if_failed,
        Decision::Expired { .. } => now + policy.retry_interval,
    }
}

fn severity_level(severity: Severity) -> Level {
    match severity {
        Severity::Info => Level::Info,
        Severity::Warning => Level::Warning,
        Severity::Error => Level::Error,
        Severity::Critical => Level::Critical,
    }
}

enum SwitchError {
    Refused(String),
    Unreachable(String),
    Local(AgentError),
}

impl From<AgentError> for SwitchError {
    fn from(error: AgentError) -> Self {
        SwitchError::Local(error)
    }
}

impl From<keystore::Error> for SwitchError {
    fn from(error: keystore::Error) -> Self {
        SwitchError::Local(error.into())
    }
}

fn manager_error(error: cm_client::Error) -> SwitchError {
    match error {
        cm_client::Error::Refused { .. } => SwitchError::Refused(error.to_string()),
        cm_client::Error::InvalidConfiguration { .. } => SwitchError::Local(error.into()),
        other => SwitchError::Unreachable(other.to_string()),
    }
}

fn write_journal(root: &AgentRoot, journal: &Journal) -> Result<(), AgentError> {
    fsutil::write_atomically(
        &root.journal_file(),
        serde_json::to_string_pretty(journal)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Pushes the candidate, stages, activates and confirms, journaling each step.
fn push_and_switch(
    root: &AgentRoot,
    store: &keystore::Keystore,
    settings: &agent_config::AgentSettings,
    current: &cert_loading::Identity,
    set: &cert_loading::LoadedSet,
    directory: &Path,
    now: SystemTime,
) -> Result<keystore::GenerationInfo, SwitchError> {
    let mut journal = Journal {
        phase: "pushing".to_string(),
        candidate_fingerprint: set.identity.certificate().fingerprint.to_string(),
        previous_fingerprint: current.certificate().fingerprint.to_string(),
        generation: None,
        directory: directory.display().to_string(),
    };
    // Build both clients first: a local problem (an unreadable CM_CA_FILE) must not leave a
    // journal behind.
    let old_client = manager::client_for(settings, current)?;
    let new_client = manager::client_for(settings, &set.identity)?;
    write_journal(root, &journal)?;
    crash_point("before-push");
    let session = match old_client.login(&settings.client_id) {
        Ok(session) => session,
        Err(error) => {
            fsutil::remove_if_present(&root.journal_file())?;
            return Err(manager_error(error));
        }
    };
    let pushed = new_client.renew(&session, &set.identity.chain_pem());
    if let Err(error) = pushed {
        fsutil::remove_if_present(&root.journal_file())?;
        return Err(manager_error(error));
    }
    journal.phase = "accepted".to_string();
    write_journal(root, &journal)?;
    crash_point("after-accepted");
    let generation = store.stage(&set.identity, now)?;
    journal.phase = "staged".to_string();
    journal.generation = Some(generation.number());
    write_journal(root, &journal)?;
    crash_point("after-staged");
    let info = store.activate(generation)?;
    journal.phase = "activated".to_string();
    write_journal(root, &journal)?;
    crash_point("after-activated");
    match confirm(store, settings) {
        Ok(()) => {
            fsutil::remove_if_present(&root.journal_file())?;
            Ok(info)
        }
        Err(error) => {
            store.rollback()?;
            fsutil::remove_if_present(&root.journal_file())?;
            Err(match manager_error(error) {
                SwitchError::Refused(reason) => SwitchError::Refused(format!(
                    "the new certificate was accepted but its first login failed ({reason}); rolled back to the previous certificate"
                )),
                other => other,
            })
        }
    }
}

/// A client-certificate login with the identity the store now holds.
fn confirm(
    store: &keystore::Keystore,
    settings: &agent_config::AgentSettings,
) -> Result<(), cm_client::Error> {
    let identity = store
        .current()
        .map_err(|error| cm_client::Error::InvalidConfiguration {
            reason: error.to_string(),
        })?;
    let client = manager::client_for(settings, &identity).map_err(|error| {
        cm_client::Error::InvalidConfiguration {
            reason: error.to_string(),
        }
    })?;
    client.login(&settings.client_id).map(|_| ())
}

/// Finishes or abandons a renewal interrupted by a crash. See the module documentation.
///
/// # Errors
/// When the journal or the store cannot be read or written.
pub fn recover_interrupted(
    root: &AgentRoot,
    store: &keystore::Keystore,
    settings: &agent_config::AgentSettings,
    logger: &Logger,
) -> Result<(), AgentError> {
    let path = root.journal_file();
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let Ok(journal) = serde_json::from_str::<Journal>(&text) else {
        logger.log(
            Level::Warning,
            2004,
            "an unreadable renewal journal was removed",
        );
        return fsutil::remove_if_present(&path);
    };
    let status = store.status()?;
    let current_generation = status.current().map(|current| current.id.number());
    match (journal.phase.as_str(), journal.generation) {
        ("activated", Some(generation)) if current_generation == Some(generation) => {
            match confirm(store, settings) {
                Ok(()) => logger.log(
                    Level::Info,
                    2004,
                    &format!(
                        "an interrupted renewal was completed: the new certificate {} is confirmed",
                        journal.candidate_fingerprint
                    ),
                ),
                Err(error @ cm_client::Error::Refused { .. }) => {
                    store.rollback()?;
                    logger.log(
                        Level::Error,
                        3006,
                        &format!(
                            "an interrupted renewal was rolled back: the manager refused the new certificate ({error}); the previous certificate is current again"
                        ),
                    );
                }
                Err(error) => {
                    // Keep the journal: confirm again when the manager answers.
                    logger.log(
                        Level::Warning,
                        3004,
                        &format!("an interrupted renewal awaits confirmation; the manager could not be reached: {error}"),
                    );
                    return Ok(());
                }
            }
        }
        (_, Some(generation)) => {
            let id = keystore::GenerationId::new(generation);
            if current_generation != Some(generation) {
                let _ = store.discard_staged(id);
            }
            logger.log(
                Level::Info,
                2004,
                &format!(
                    "an interrupted renewal (phase {}) was abandoned; it is repeated now if the set is still in {}",
                    journal.phase, journal.directory
                ),
            );
        }
        _ => logger.log(
            Level::Info,
            2004,
            &format!(
                "an interrupted renewal (phase {}) was abandoned before anything was stored; it is repeated now if the set is still in {}",
                journal.phase, journal.directory
            ),
        ),
    }
    fsutil::remove_if_present(&path)
}

/// Uploads log records waiting in the logger, with the current identity. Failures put them back.
pub fn upload_pending(
    settings: &agent_config::AgentSettings,
    store: &keystore::Keystore,
    logger: &Logger,
) {
    let records = logger.take_uploads();
    if records.is_empty() {
        return;
    }
    let uploaded = (|| -> Result<(), AgentError> {
        let identity = store.current()?;
        let client = manager::client_for(settings, &identity)?;
        let session = client.login(&settings.client_id)?;
        client.upload_records(&session, &records)?;
        Ok(())
    })();
    if uploaded.is_err() {
        logger.requeue_uploads(records);
    }
}

/// A heartbeat: client-certificate login and status call with the current identity.
///
/// # Errors
/// [`AgentError::Manager`] when the manager cannot be reached or refuses.
pub fn heartbeat(root: &AgentRoot) -> Result<cm_client::ClientRecord, AgentError> {
    let settings = load_settings(root)?;
    let store = keystore::Keystore::open(root.path())?;
    let identity = store.current()?;
    let client = manager::client_for(&settings, &identity)?;
    let session = client.login(&settings.client_id)?;
    Ok(client.status(&session)?)
}
