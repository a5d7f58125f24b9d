//! What the daemon does between checks: when to check again and when to send the next
//! heartbeat, after a check's report, a check that could not run, or a heartbeat's answer. The
//! daemon only carries these out; every wait and every "check now" is decided here, from the
//! [`Policy`].

use std::time::{Duration, SystemTime};

use super::{Report, Trigger};
use crate::Policy;

/// What kept the daemon from a check's report or a heartbeat's answer: the pauses of
/// [`after_check`] and [`after_heartbeat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setback {
    /// The check reported [`super::Outcome::Expired`] (no next check of its own).
    Expired,
    /// Another check held the renewal lock.
    Busy,
    /// A local problem stopped the check before it could report.
    LocalFailure,
    /// The heartbeat failed; `heartbeat_interval` is the configured one.
    HeartbeatFailed {
        /// agent.conf's `STATUS_INTERVAL`.
        heartbeat_interval: std::time::Duration,
        /// How long the manager asked to wait (its `Retry-After`, seen from now), if it did.
        retry_after: Option<std::time::Duration>,
    },
}

/// How long the daemon waits after `setback` before trying again: the policy's pauses, so the
/// daemon holds no schedule of its own.
pub fn pause_after(policy: &Policy, setback: Setback) -> std::time::Duration {
    match setback {
        Setback::Expired => policy.expired_recheck,
        Setback::Busy => policy.busy_retry,
        Setback::LocalFailure => policy.local_failure_retry,
        // The short retry, or later when the manager asked for it, but never past the
        // heartbeat interval.
        Setback::HeartbeatFailed {
            heartbeat_interval,
            retry_after,
        } => heartbeat_interval
            .min(policy.heartbeat_failure_retry)
            .max(retry_after.unwrap_or_default())
            .min(heartbeat_interval),
    }
}

/// How a check attempt ended, as the daemon saw it.
#[derive(Clone, Copy, Debug)]
pub enum CheckEnd<'a> {
    /// The check ran and reported.
    Reported(&'a Report),
    /// Another check held the renewal lock (`vmutil updatecerts`, `vmd --once`).
    Busy,
    /// A local problem stopped the check before it could report (logged by the agent).
    LocalFailure,
}

/// When to wake for the next check: at a wall-clock time the plan gave, or after a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// At this wall-clock time (the daemon converts it to a monotonic deadline once).
    Until(SystemTime),
    /// After this long.
    For(Duration),
}

/// What the daemon does after a check attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterCheck {
    /// When to check again.
    pub next_check: Wait,
    /// The count to give the next check ([`super::Situation::consecutive_failures`]): checks in a
    /// row that ended with the manager unreachable or an outcome unknown.
    pub consecutive_failures: u32,
}

/// After a check attempt: the report's next check (or the policy's pause when there is none,
/// or when the check could not run), and the failure count for the next one's backoff.
pub fn after_check(policy: &Policy, consecutive_failures: u32, end: CheckEnd<'_>) -> AfterCheck {
    match end {
        CheckEnd::Reported(report) => AfterCheck {
            next_check: match report.next_check {
                Some(wall) => Wait::Until(wall),
                None => Wait::For(pause_after(policy, Setback::Expired)),
            },
            consecutive_failures: if report.outcome.kind().is_manager_unreachable() {
                consecutive_failures.saturating_add(1)
            } else {
                0
            },
        },
        // Neither says anything about the manager: the count stays.
        CheckEnd::Busy => AfterCheck {
            next_check: Wait::For(pause_after(policy, Setback::Busy)),
            consecutive_failures,
        },
        CheckEnd::LocalFailure => AfterCheck {
            next_check: Wait::For(pause_after(policy, Setback::LocalFailure)),
            consecutive_failures,
        },
    }
}

/// How a heartbeat ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatEnd {
    /// The manager accepted the identity and took the status.
    Accepted,
    /// The manager refused the current identity as not this client's (HTTP 401).
    IdentityRefused,
    /// Anything else: unreachable, another refusal, a local problem.
    Failed {
        /// How long the manager asked to wait (its `Retry-After`, seen from now), if it did.
        retry_after: Option<Duration>,
    },
}

/// What the daemon does after a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterHeartbeat {
    /// How long until the next heartbeat.
    pub next_heartbeat: Duration,
    /// Run a check now, with this trigger, instead of waiting for the next one.
    pub check_now: Option<Trigger>,
}

/// After a heartbeat: the next one after the configured interval when it was accepted, sooner
/// when it failed (the manager's `Retry-After` honoured within the interval); a refused identity
/// is settled at once by a [`Trigger::Recovery`] check (which adopts another generation the
/// manager accepts, or reports that none is).
pub fn after_heartbeat(
    policy: &Policy,
    heartbeat_interval: Duration,
    end: HeartbeatEnd,
) -> AfterHeartbeat {
    let failed = |retry_after| {
        pause_after(
            policy,
            Setback::HeartbeatFailed {
                heartbeat_interval,
                retry_after,
            },
        )
    };
    match end {
        HeartbeatEnd::Accepted => AfterHeartbeat {
            next_heartbeat: heartbeat_interval,
            check_now: None,
        },
        HeartbeatEnd::IdentityRefused => AfterHeartbeat {
            next_heartbeat: failed(None),
            check_now: Some(Trigger::Recovery),
        },
        HeartbeatEnd::Failed { retry_after } => AfterHeartbeat {
            next_heartbeat: failed(retry_after),
            check_now: None,
        },
    }
}
