//! The catalogue of the agent's log messages: each variant has one id (`CGPnnnn` plus the level
//! letter), one default level and one text. docs/operations.md lists them; a test checks that
//! every id is used by exactly one variant.

use std::time::SystemTime;

use renewal_policy::plan::{Outcome, Report};

/// One log message with its data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// The daemon started.
    DaemonStarted {
        /// The client id.
        client_id: String,
        /// The manager URL.
        url: String,
    },
    /// Renewal not due; nothing in the folder that matters.
    NotDue {
        /// The current certificate's common name.
        common_name: String,
        /// Its end of validity.
        not_after: SystemTime,
        /// Whole days left.
        days_left: i64,
        /// The next check.
        next_check: Option<SystemTime>,
    },
    /// A renewal completed and was confirmed.
    Renewed {
        /// The common name.
        common_name: String,
        /// The new fingerprint.
        new_fingerprint: String,
        /// The old fingerprint.
        old_fingerprint: String,
        /// The new end of validity.
        not_after: SystemTime,
    },
    /// The manager accepts the current identity and renewal is not due.
    Healthy {
        /// The common name.
        common_name: String,
        /// Its end of validity.
        not_after: SystemTime,
        /// Whole days left.
        days_left: i64,
    },
    /// Dry run: the folder's set would be pushed.
    CandidateReady {
        /// The folder.
        directory: String,
        /// The candidate's common name.
        common_name: String,
        /// Its end of validity.
        not_after: SystemTime,
        /// Its fingerprint.
        fingerprint: String,
    },
    /// SIGHUP.
    Reload,
    /// The daemon stops.
    DaemonStopping,
    /// `updatecerts` with the set already in use.
    AlreadyInUse {
        /// The folder.
        directory: String,
        /// The fingerprint.
        fingerprint: String,
    },
    /// A staged certificate that the manager does not hold was removed.
    StagedDiscarded {
        /// Its fingerprint.
        fingerprint: String,
        /// Why.
        why: &'static str,
    },
    /// Renewal due (or asked for) and nothing usable in the folder.
    NoUsableCandidate {
        /// The common name.
        common_name: String,
        /// Its end of validity.
        not_after: SystemTime,
        /// Whole days left.
        days_left: i64,
        /// The folder.
        directory: String,
        /// What is wrong and what to do.
        problem: String,
        /// The next check.
        next_check: Option<SystemTime>,
    },
    /// A set in the folder was refused locally; nothing was sent.
    CandidateRefused {
        /// The common name.
        common_name: String,
        /// Whole days left.
        days_left: i64,
        /// The folder.
        directory: String,
        /// What is wrong.
        problem: String,
    },
    /// The manager refused the renewal.
    RefusedByManager {
        /// The folder.
        directory: String,
        /// The manager's words.
        reason: String,
        /// The current certificate's end of validity.
        not_after: SystemTime,
    },
    /// The manager could not be reached before anything that could change its state was sent.
    Unreachable {
        /// What happened.
        reason: String,
    },
    /// The current certificate has expired.
    Expired {
        /// The common name.
        common_name: String,
        /// Its end of validity.
        not_after: SystemTime,
    },
    /// The current identity was refused and another generation was adopted.
    Adopted {
        /// The refused fingerprint.
        refused: String,
        /// The adopted fingerprint.
        adopted: String,
    },
    /// A daemon check failed on a local problem.
    CheckFailed {
        /// The error.
        error: String,
    },
    /// A heartbeat failed.
    HeartbeatFailed {
        /// The error.
        error: String,
    },
    /// A renewal's outcome is unknown; both identities are kept.
    OutcomeUnknown {
        /// The candidate's fingerprint.
        fingerprint: String,
        /// What happened.
        reason: String,
    },
    /// The manager accepts none of this host's certificates.
    NoIdentityAccepted {
        /// The manager's words.
        reason: String,
    },
    /// A newer set lies in the folder but cannot be used.
    UnusableSet {
        /// The folder.
        directory: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The journal could not be read; it was set aside.
    JournalUnreadable {
        /// Where it was moved.
        moved_to: String,
    },
    /// The metrics file (or the state behind it) could not be written.
    MetricsNotWritten {
        /// The file.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// A line could not be written to the log file (written to stderr instead, by the logger).
    LogNotWritten {
        /// The log file.
        path: String,
        /// How many lines failed since the process started.
        failures: u64,
        /// What went wrong.
        error: String,
    },
    /// One of the agent's own folders had a wider mode than 0700 and was repaired.
    FolderRepaired {
        /// The repair, as text (folder, old and new mode).
        repair: String,
    },
    /// The local clock says the certificate has expired, but the manager still accepts it: the
    /// clock is wrong (or the manager's is).
    ClockSkew {
        /// The local time.
        local: SystemTime,
        /// The certificate's end of validity.
        not_after: SystemTime,
        /// The manager's time, from its answer's `Date` header, when it sent one.
        manager: Option<SystemTime>,
    },
    /// The agent root is on a read-only file system: the check ran (the manager was asked),
    /// but its result was not recorded.
    RootReadOnly {
        /// The folder that could not be written.
        path: String,
    },
}

fn time(time: &SystemTime) -> String {
    cert_loading::format_rfc3339(*time)
}

fn next(next_check: &Option<SystemTime>) -> String {
    next_check
        .as_ref()
        .map(time)
        .unwrap_or_else(|| "never".to_string())
}

impl Message {
    /// The catalogue message for a finished check: its outcome, the certificate in use and the
    /// check's time all come from the report; `directory` is the folder's name as the operator
    /// should read it.
    pub(crate) fn of_report(report: &Report, directory: String) -> Self {
        let current = &report.current;
        let days_left = report.days_left();
        let common_name = current.common_name.clone();
        let not_after = current.not_after;
        match &report.outcome {
            Outcome::NotDue => Self::NotDue {
                common_name,
                not_after,
                days_left,
                next_check: report.next_check,
            },
            Outcome::Healthy => Self::Healthy {
                common_name,
                not_after,
                days_left,
            },
            Outcome::AlreadyInUse => Self::AlreadyInUse {
                directory,
                fingerprint: current.fingerprint.to_string(),
            },
            Outcome::CandidateReady { candidate } => Self::CandidateReady {
                directory,
                common_name: candidate.common_name.clone(),
                not_after: candidate.not_after,
                fingerprint: candidate.fingerprint.to_string(),
            },
            Outcome::Renewed { old, new } => Self::Renewed {
                common_name,
                new_fingerprint: new.fingerprint.to_string(),
                old_fingerprint: old.fingerprint.to_string(),
                not_after: new.not_after,
            },
            Outcome::Adopted { refused, adopted } => Self::Adopted {
                refused: refused.fingerprint.to_string(),
                adopted: adopted.fingerprint.to_string(),
            },
            Outcome::UnusableSet { problem } => Self::UnusableSet {
                directory,
                problem: problem.to_string(),
            },
            Outcome::NoUsableCandidate {
                problem,
                refused_locally: true,
            } => Self::CandidateRefused {
                common_name,
                days_left,
                directory,
                problem: problem.to_string(),
            },
            Outcome::NoUsableCandidate { problem, .. } => Self::NoUsableCandidate {
                common_name,
                not_after,
                days_left,
                directory,
                problem: problem.to_string(),
                next_check: report.next_check,
            },
            Outcome::RefusedByManager { reason } => Self::RefusedByManager {
                directory,
                reason: reason.clone(),
                not_after,
            },
            Outcome::Unreachable { reason } => Self::Unreachable {
                reason: reason.clone(),
            },
            Outcome::OutcomeUnknown {
                reason,
                certificate,
            } => Self::OutcomeUnknown {
                fingerprint: certificate.to_string(),
                reason: reason.clone(),
            },
            Outcome::NoIdentityAccepted { reason } => Self::NoIdentityAccepted {
                reason: reason.clone(),
            },
            Outcome::Expired => Self::Expired {
                common_name,
                not_after,
            },
            Outcome::ClockSkew { not_after } => Self::ClockSkew {
                local: report.at,
                not_after: *not_after,
                manager: None,
            },
        }
    }

    /// The number in the message id (`CGP3001W` has 3001). Unique per variant.
    pub fn id(&self) -> u32 {
        match self {
            Self::DaemonStarted { .. } => 2001,
            Self::NotDue { .. } => 2002,
            Self::Renewed { .. } => 2003,
            Self::Healthy { .. } => 2005,
            Self::CandidateReady { .. } => 2006,
            Self::Reload => 2007,
            Self::DaemonStopping => 2008,
            Self::AlreadyInUse { .. } => 2009,
            Self::StagedDiscarded { .. } => 2010,
            Self::NoUsableCandidate { .. } => 3001,
            Self::CandidateRefused { .. } => 3002,
            Self::RefusedByManager { .. } => 3003,
            Self::Unreachable { .. } => 3004,
            Self::Expired { .. } => 3005,
            Self::Adopted { .. } => 3006,
            Self::CheckFailed { .. } => 3007,
            Self::HeartbeatFailed { .. } => 3008,
            Self::OutcomeUnknown { .. } => 3009,
            Self::NoIdentityAccepted { .. } => 3010,
            Self::UnusableSet { .. } => 3011,
            Self::JournalUnreadable { .. } => 3012,
            Self::MetricsNotWritten { .. } => 3013,
            Self::LogNotWritten { .. } => 3014,
            Self::FolderRepaired { .. } => 3015,
            Self::ClockSkew { .. } => 3016,
            Self::RootReadOnly { .. } => 3017,
        }
    }

    /// The text.
    pub fn text(&self) -> String {
        match self {
            Self::DaemonStarted { client_id, url } => {
                format!("vmd started for client {client_id} at {url}")
            }
            Self::NotDue {
                common_name,
                not_after,
                days_left,
                next_check,
            } => format!(
                "certificate {common_name} expires {} ({days_left} days); renewal is not due yet, next check {}",
                time(not_after),
                next(next_check)
            ),
            Self::Renewed {
                common_name,
                new_fingerprint,
                old_fingerprint,
                not_after,
            } => format!(
                "certificate renewed: {common_name} now uses fingerprint {new_fingerprint} (was {old_fingerprint}), expires {}",
                time(not_after)
            ),
            Self::Healthy {
                common_name,
                not_after,
                days_left,
            } => format!(
                "the manager accepts certificate {common_name}; it expires {} ({days_left} days); renewal is not due yet",
                time(not_after)
            ),
            Self::CandidateReady {
                directory,
                common_name,
                not_after,
                fingerprint,
            } => format!(
                "dry run: the set in {directory} is valid for renewal (common name {common_name}, expires {}, fingerprint {fingerprint}); nothing was sent",
                time(not_after)
            ),
            Self::Reload => "SIGHUP: rereading agent.conf and checking now".to_string(),
            Self::DaemonStopping => "vmd stopping".to_string(),
            Self::AlreadyInUse {
                directory,
                fingerprint,
            } => format!(
                "the set in {directory} is the certificate already in use (fingerprint {fingerprint}); nothing to do"
            ),
            Self::StagedDiscarded { fingerprint, why } => {
                format!("the staged certificate {fingerprint} was removed: {why}")
            }
            Self::NoUsableCandidate {
                common_name,
                not_after,
                days_left,
                directory,
                problem,
                next_check,
            } => format!(
                "certificate {common_name} expires {} ({days_left} days left); no usable new certificate set in {directory}: {problem}; checking again at {}",
                time(not_after),
                next(next_check)
            ),
            Self::CandidateRefused {
                common_name,
                days_left,
                directory,
                problem,
            } => format!(
                "certificate {common_name} ({days_left} days left): the set in {directory} cannot be used and nothing was sent: {problem}"
            ),
            Self::RefusedByManager {
                directory,
                reason,
                not_after,
            } => format!(
                "the manager refused the new certificate from {directory}: {reason}; keeping the current certificate (expires {})",
                time(not_after)
            ),
            Self::Unreachable { reason } => format!(
                "the manager could not be reached and nothing was changed on it: {reason}; keeping the current certificate"
            ),
            Self::Expired {
                common_name,
                not_after,
            } => format!(
                "the current certificate {common_name} expired on {}; communication with the manager may be blocked and re-registration is required (register_host --force with a new set); no renewal is attempted",
                time(not_after)
            ),
            Self::Adopted { refused, adopted } => format!(
                "the manager no longer accepts certificate {refused} as this client's; it accepts {adopted}, which this host already held and now uses"
            ),
            Self::CheckFailed { error } => format!("renewal check failed: {error}"),
            Self::HeartbeatFailed { error } => format!("heartbeat failed: {error}"),
            Self::OutcomeUnknown {
                fingerprint,
                reason,
            } => format!(
                "the outcome of the renewal to certificate {fingerprint} is unknown ({reason}); both certificates are kept and it will settle at the next check"
            ),
            Self::NoIdentityAccepted { reason } => format!(
                "the manager accepts none of this host's certificates ({reason}); register the host again (register_host --force with a new set and token)"
            ),
            Self::UnusableSet { directory, problem } => format!(
                "the set in {directory} is not used: {problem}; the current certificate stays in use"
            ),
            Self::JournalUnreadable { moved_to } => format!(
                "the renewal journal could not be read and was moved to {moved_to}; the identity is checked with the manager"
            ),
            Self::MetricsNotWritten { path, error } => format!(
                "the metrics were not written to {path}: {error}; check METRICS_FILE in agent.conf (its folder must exist, be writable by the agent and by nobody but root)"
            ),
            Self::LogNotWritten {
                path,
                failures,
                error,
            } => format!(
                "the log file {path} cannot be written ({failures} lines so far): {error}; lines go to stderr (the journal) only until it can"
            ),
            Self::FolderRepaired { repair } => repair.clone(),
            Self::ClockSkew {
                local,
                not_after,
                manager,
            } => format!(
                "the local clock ({}) is past the certificate's end of validity ({}), yet the manager accepts it{}: fix the clock (NTP); renewal goes on as normal",
                time(local),
                time(not_after),
                manager
                    .as_ref()
                    .map(|manager| format!(" (the manager's clock says {})", time(manager)))
                    .unwrap_or_default()
            ),
            Self::RootReadOnly { path } => format!(
                "{path} is on a read-only file system: this check took no lock and recorded nothing (status, metrics, log file); a renewal needs it writable (remount it read-write)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each variant (the match in `id` forces every variant to have an id; this list is
    /// checked against the catalogue size so a new variant must be added here too).
    fn every_message() -> Vec<Message> {
        let now = SystemTime::UNIX_EPOCH;
        let s = String::new;
        vec![
            Message::DaemonStarted {
                client_id: s(),
                url: s(),
            },
            Message::NotDue {
                common_name: s(),
                not_after: now,
                days_left: 0,
                next_check: None,
            },
            Message::Renewed {
                common_name: s(),
                new_fingerprint: s(),
                old_fingerprint: s(),
                not_after: now,
            },
            Message::Healthy {
                common_name: s(),
                not_after: now,
                days_left: 0,
            },
            Message::CandidateReady {
                directory: s(),
                common_name: s(),
                not_after: now,
                fingerprint: s(),
            },
            Message::Reload,
            Message::DaemonStopping,
            Message::AlreadyInUse {
                directory: s(),
                fingerprint: s(),
            },
            Message::StagedDiscarded {
                fingerprint: s(),
                why: "",
            },
            Message::NoUsableCandidate {
                common_name: s(),
                not_after: now,
                days_left: 0,
                directory: s(),
                problem: s(),
                next_check: None,
            },
            Message::CandidateRefused {
                common_name: s(),
                days_left: 0,
                directory: s(),
                problem: s(),
            },
            Message::RefusedByManager {
                directory: s(),
                reason: s(),
                not_after: now,
            },
            Message::Unreachable { reason: s() },
            Message::Expired {
                common_name: s(),
                not_after: now,
            },
            Message::Adopted {
                refused: s(),
                adopted: s(),
            },
            Message::CheckFailed { error: s() },
            Message::HeartbeatFailed { error: s() },
            Message::OutcomeUnknown {
                fingerprint: s(),
                reason: s(),
            },
            Message::NoIdentityAccepted { reason: s() },
            Message::UnusableSet {
                directory: s(),
                problem: s(),
            },
            Message::JournalUnreadable { moved_to: s() },
            Message::MetricsNotWritten {
                path: s(),
                error: s(),
            },
            Message::LogNotWritten {
                path: s(),
                failures: 1,
                error: s(),
            },
            Message::FolderRepaired {
                repair: "a repair".to_string(),
            },
            Message::ClockSkew {
                local: SystemTime::UNIX_EPOCH,
                not_after: SystemTime::UNIX_EPOCH,
                manager: None,
            },
            Message::RootReadOnly { path: s() },
        ]
    }

    #[test]
    fn every_id_is_used_once_and_documented() {
        let messages = every_message();
        let mut ids: Vec<u32> = messages.iter().map(Message::id).collect();
        ids.sort_unstable();
        let count = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), count, "an id is used twice: {ids:?}");
        let operations = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md"),
        )
        .unwrap();
        for message in &messages {
            let id = format!("CGP{}", message.id());
            assert!(
                operations.contains(&id),
                "{id} is not in docs/operations.md"
            );
            assert!(!message.text().is_empty());
        }
    }
}
