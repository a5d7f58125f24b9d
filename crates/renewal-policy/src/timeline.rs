//! The timeline primitives: where a certificate stands (window, escalation, expiry), when to
//! look again, and whether a candidate can replace it. [`crate::plan::next_step`], the one
//! decider, is built on them.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::Policy;
use crate::format_rfc3339;
use crate::stagger::{HostSeed, renewal_window_start};
use crate::time::{SECONDS_PER_DAY, add_capped, subtract_saturating};
use crate::{Fingerprint, Severity};

/// No check interval is ever shorter than this, whatever the policy says, so that a zero in
/// the settings cannot make the agent spin.
const SHORTEST_INTERVAL: Duration = Duration::from_secs(1);

/// The certificate the agent uses now (the one in the agent's own store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentCertificate {
    /// The subject's common name, compared byte for byte with a candidate's.
    pub common_name: String,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
    /// The last moment of validity. From this moment on the certificate counts as expired.
    pub not_after: SystemTime,
}

/// The certificate of a set found in the external certificate directory, which `cert-loading`
/// accepted (PEM, accepted signature algorithm, the certificate rules). The set's key is checked
/// when the set is staged, and a key that fails makes the folder's set invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateCertificate {
    /// The subject's common name.
    pub common_name: String,
    /// SHA-256 of the certificate's DER.
    pub fingerprint: Fingerprint,
    /// The first moment of validity.
    pub not_before: SystemTime,
    /// The last moment of validity (inclusive, as in RFC 5280).
    pub not_after: SystemTime,
}

/// Why the directory's contents cannot be sent to the manager. Each message says what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CandidateProblem {
    /// The external certificate directory does not exist.
    DirectoryMissing,
    /// The directory holds no certificate set.
    NoNewSet,
    /// The directory holds the certificate already in use.
    SameAsCurrent {
        /// The shared fingerprint.
        fingerprint: Fingerprint,
    },
    /// The new certificate's common name differs; the manager would reject it.
    CommonNameChanged {
        /// The current certificate's common name.
        current: String,
        /// The new certificate's common name.
        candidate: String,
    },
    /// The new certificate has already expired.
    Expired {
        /// The new certificate's `not_after`.
        not_after: SystemTime,
    },
    /// The new certificate does not expire later than the current one; the manager would
    /// reject it.
    NotLater {
        /// The current certificate's `not_after`.
        current_not_after: SystemTime,
        /// The new certificate's `not_after`.
        candidate_not_after: SystemTime,
    },
    /// The new certificate is not valid yet. It becomes usable on its own at `not_before`.
    NotYetValid {
        /// The new certificate's `not_before`.
        not_before: SystemTime,
    },
    /// `cert-loading` refused the set.
    Invalid {
        /// `cert-loading`'s error message.
        reason: String,
    },
}

const PLACE_A_NEW_SET: &str = "place a renewed client_cert.pem, client_key.pem and passphrase \
                               in the external certificate directory";

impl fmt::Display for CandidateProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DirectoryMissing => write!(
                formatter,
                "the external certificate directory does not exist; create it (or correct the \
                 path recorded in agent.conf) and {PLACE_A_NEW_SET}"
            ),
            Self::NoNewSet => write!(
                formatter,
                "no new certificate set in the external certificate directory; {PLACE_A_NEW_SET}"
            ),
            Self::SameAsCurrent { fingerprint } => write!(
                formatter,
                "the external certificate directory holds the certificate already in use \
                 (SHA-256 {fingerprint}); {PLACE_A_NEW_SET}"
            ),
            // Debug formatting quotes the names and escapes invisible characters, so a
            // trailing space or a look-alike difference shows in the message.
            Self::CommonNameChanged { current, candidate } => write!(
                formatter,
                "the new certificate's common name {candidate:?} differs from the current \
                 certificate's {current:?}; the CipherTrust Manager rejects a renewal that \
                 changes the common name, so issue the new certificate with exactly {current:?}"
            ),
            Self::Expired { not_after } => write!(
                formatter,
                "the new certificate expired at {}; issue a new one and {PLACE_A_NEW_SET}",
                format_rfc3339(*not_after)
            ),
            Self::NotLater {
                current_not_after,
                candidate_not_after,
            } => write!(
                formatter,
                "the new certificate expires at {}, which is not later than the current \
                 certificate's {}; the CipherTrust Manager would reject it, so issue one that \
                 expires later",
                format_rfc3339(*candidate_not_after),
                format_rfc3339(*current_not_after)
            ),
            Self::NotYetValid { not_before } => write!(
                formatter,
                "the new certificate is not valid until {}; it will be used after that time \
                 (if that is unexpected, check the issuing CA's clock and this host's)",
                format_rfc3339(*not_before)
            ),
            Self::Invalid { reason } => write!(
                formatter,
                "the new certificate set in the external certificate directory cannot be used: \
                 {reason}"
            ),
        }
    }
}

impl StdError for CandidateProblem {}

/// Where the host stands in the renewal timeline, without looking at the directory.
///
/// [`crate::plan::next_step`] uses it to skip the folder when renewal is not due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// The host's renewal window has not opened.
    NotDue {
        /// When the window opens (or the next escalation, whichever is sooner).
        next_check: SystemTime,
    },
    /// Look in the directory now.
    Due {
        /// The severity of finding no usable candidate now.
        severity: Severity,
        /// When to look again if nothing usable is found.
        next_check: SystemTime,
    },
    /// The current certificate has expired.
    Expired {
        /// The current certificate's `not_after`.
        since: SystemTime,
    },
}

/// What went wrong when the agent last sent a candidate to the manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptFailure {
    /// The manager could not be reached (connection refused, timeout, 5xx). Retried with
    /// exponential backoff.
    Unreachable {
        /// How many attempts in a row have failed this way, counting this one (0 counts as 1).
        consecutive_failures: u32,
    },
    /// The manager answered and refused the certificate. Retried after the check interval,
    /// since only an administrator can fix it.
    Refused,
}

/// The stages of the timeline once the window is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Window,
    LastWeeks,
    LastDays,
}

impl Stage {
    /// The stage at `time_left`, or `None` if the escalation thresholds are not reached.
    fn by_time_left(policy: &Policy, time_left: Duration) -> Option<Self> {
        if time_left <= policy.critical_threshold {
            Some(Self::LastDays)
        } else if time_left <= policy.error_threshold {
            Some(Self::LastWeeks)
        } else {
            None
        }
    }

    /// How often to look. Never less often than an earlier stage, whatever the policy says.
    fn check_interval(self, policy: &Policy) -> Duration {
        let interval = match self {
            Self::Window => policy.retry_interval,
            Self::LastWeeks => policy.retry_interval.min(policy.error_check_interval),
            Self::LastDays => policy
                .retry_interval
                .min(policy.error_check_interval)
                .min(policy.critical_check_interval),
        };
        interval.max(SHORTEST_INTERVAL)
    }

    fn severity_without_candidate(self) -> Severity {
        match self {
            Self::Window => Severity::Warning,
            Self::LastWeeks => Severity::Error,
            Self::LastDays => Severity::Critical,
        }
    }
}

/// The time left before `not_after`, or `None` once it has been reached.
fn time_left(current: &CurrentCertificate, now: SystemTime) -> Option<Duration> {
    match current.not_after.duration_since(now) {
        Ok(left) if !left.is_zero() => Some(left),
        _ => None,
    }
}

/// Where we are: `Err(since)` if expired, `Ok(None)` before the window, else the stage.
fn stage(
    policy: &Policy,
    host: &HostSeed,
    current: &CurrentCertificate,
    now: SystemTime,
) -> Result<Option<Stage>, SystemTime> {
    let left = time_left(current, now).ok_or(current.not_after)?;
    if let Some(stage) = Stage::by_time_left(policy, left) {
        return Ok(Some(stage));
    }
    if now >= renewal_window_start(policy, host, current.not_after) {
        Ok(Some(Stage::Window))
    } else {
        Ok(None)
    }
}

/// When a host that is not yet due should look again: when its window opens. With thresholds
/// longer than `renew_before` (an invalid policy) the ERROR threshold may come first, so take
/// the sooner. Both are after `now` whenever [`stage`] says `Ok(None)`.
fn window_opens(policy: &Policy, host: &HostSeed, current: &CurrentCertificate) -> SystemTime {
    renewal_window_start(policy, host, current.not_after).min(subtract_saturating(
        current.not_after,
        policy.error_threshold,
    ))
}

/// Where the host stands, without the directory: see [`Schedule`].
pub fn schedule(
    policy: &Policy,
    host: &HostSeed,
    current: &CurrentCertificate,
    now: SystemTime,
) -> Schedule {
    match stage(policy, host, current, now) {
        Err(since) => Schedule::Expired { since },
        Ok(None) => Schedule::NotDue {
            next_check: window_opens(policy, host, current),
        },
        Ok(Some(stage)) => Schedule::Due {
            severity: stage.severity_without_candidate(),
            next_check: add_capped(now, stage.check_interval(policy), current.not_after),
        },
    }
}

/// Whether renewal is overdue at `now`: the ERROR threshold has passed (or the certificate has
/// expired). A refusal is then unhealthy.
pub fn is_overdue(policy: &Policy, current: &CurrentCertificate, now: SystemTime) -> bool {
    time_left(current, now).is_none_or(|left| Stage::by_time_left(policy, left).is_some())
}

/// The level of a renewal that replaced a certificate ending at `replaced_not_after`, at `now`:
/// INFO in the window, WARNING once the ERROR threshold has passed (the renewal came late).
pub fn renewal_severity(
    policy: &Policy,
    replaced_not_after: SystemTime,
    now: SystemTime,
) -> Severity {
    let late = replaced_not_after
        .duration_since(now)
        .map_or(true, |left| Stage::by_time_left(policy, left).is_some());
    if late {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// The checks made before anything is sent to the manager, in this order (the first failure
/// is reported; problems only an administrator can fix come before the one that fixes itself):
///
/// 1. the fingerprint differs from the current certificate's ([`CandidateProblem::SameAsCurrent`]);
/// 2. the common name is byte-for-byte the current one ([`CandidateProblem::CommonNameChanged`]);
/// 3. it has not expired, `now <= not_after` ([`CandidateProblem::Expired`]);
/// 4. it expires later than the current certificate ([`CandidateProblem::NotLater`]);
/// 5. it is valid already, `not_before <= now` ([`CandidateProblem::NotYetValid`]).
///
/// # Errors
///
/// The first failed check, as above.
pub fn check_candidate(
    current: &CurrentCertificate,
    candidate: &CandidateCertificate,
    now: SystemTime,
) -> Result<(), CandidateProblem> {
    if candidate.fingerprint == current.fingerprint {
        return Err(CandidateProblem::SameAsCurrent {
            fingerprint: current.fingerprint,
        });
    }
    if candidate.common_name.as_bytes() != current.common_name.as_bytes() {
        return Err(CandidateProblem::CommonNameChanged {
            current: current.common_name.clone(),
            candidate: candidate.common_name.clone(),
        });
    }
    if now > candidate.not_after {
        return Err(CandidateProblem::Expired {
            not_after: candidate.not_after,
        });
    }
    if candidate.not_after <= current.not_after {
        return Err(CandidateProblem::NotLater {
            current_not_after: current.not_after,
            candidate_not_after: candidate.not_after,
        });
    }
    if now < candidate.not_before {
        return Err(CandidateProblem::NotYetValid {
            not_before: candidate.not_before,
        });
    }
    Ok(())
}

/// When to check again after a renewal attempt at `now` failed.
///
/// * [`AttemptFailure::Refused`]: after the check interval of the current stage (24 hours in
///   the window, 6 hours in the last 14 days, 1 hour in the last 3 days).
/// * [`AttemptFailure::Unreachable`]: `first_unreachable_retry` doubled for each further
///   consecutive failure (5, 10, 20, 40 minutes, ...), capped at that same check interval.
///
/// Never later than the current certificate's `not_after`; `now` itself once it has expired
/// (the next check then settles the expiry with the manager).
pub fn next_check_after_failure(
    policy: &Policy,
    current: &CurrentCertificate,
    now: SystemTime,
    failure: AttemptFailure,
) -> SystemTime {
    let Some(left) = time_left(current, now) else {
        return now;
    };
    // Before the ERROR threshold the window's interval applies; an attempt made before the
    // host's window opened (a manual update) is treated the same way.
    let interval = Stage::by_time_left(policy, left)
        .unwrap_or(Stage::Window)
        .check_interval(policy);
    let delay = match failure {
        AttemptFailure::Refused => interval,
        AttemptFailure::Unreachable {
            consecutive_failures,
        } => {
            // 2^31 times even one second is decades, far beyond any interval.
            let doublings = consecutive_failures.saturating_sub(1).min(31);
            policy
                .first_unreachable_retry
                .max(SHORTEST_INTERVAL)
                .checked_mul(1_u32 << doublings)
                .unwrap_or(interval)
                .min(interval)
        }
    };
    add_capped(now, delay, current.not_after)
}

/// When to check again after the manager asked to come back later (a 429, or a 503 with
/// `Retry-After`) at `now`:
///
/// * with a time (`until`): no earlier than it and no earlier than the unreachable backoff;
/// * without one: the unreachable backoff stretched by this host's jitter (up to twice as
///   long), so a throttled fleet does not come back in step;
/// * within the policy's bounds either way: no later than the current stage's check interval
///   from now, and, while renewal is not yet overdue, never past the moment it would be (the
///   ERROR threshold), nor past `not_after`.
pub fn next_check_after_back_pressure(
    policy: &Policy,
    host: &HostSeed,
    current: &CurrentCertificate,
    now: SystemTime,
    until: Option<SystemTime>,
    consecutive_failures: u32,
) -> SystemTime {
    let backoff = next_check_after_failure(
        policy,
        current,
        now,
        AttemptFailure::Unreachable {
            consecutive_failures,
        },
    );
    let Some(left) = time_left(current, now) else {
        return now;
    };
    let interval = Stage::by_time_left(policy, left)
        .unwrap_or(Stage::Window)
        .check_interval(policy);
    let mut latest = add_capped(now, interval, current.not_after);
    let overdue_at = subtract_saturating(current.not_after, policy.error_threshold);
    if overdue_at > now {
        latest = latest.min(overdue_at);
    }
    let wanted = match until {
        Some(until) => until.max(backoff),
        None => {
            let delay = backoff.duration_since(now).unwrap_or(Duration::ZERO);
            backoff + crate::stagger::jitter(host, consecutive_failures, delay)
        }
    };
    wanted.min(latest)
}

/// Whole days left before the current certificate's `not_after`, rounded towards the past:
/// 59 with 59.9 days left, 0 in the last day, -1 in the first day after expiry.
pub fn days_left(current: &CurrentCertificate, now: SystemTime) -> i64 {
    let day_nanos = u128::from(SECONDS_PER_DAY) * 1_000_000_000;
    match current.not_after.duration_since(now) {
        Ok(left) => i64::try_from(left.as_nanos() / day_nanos).unwrap_or(i64::MAX),
        Err(past) => {
            let days = past.duration().as_nanos().div_ceil(day_nanos);
            i64::try_from(days).map_or(i64::MIN, |days| -days)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);

    fn interval_at(policy: &Policy, time_left: Duration) -> Duration {
        Stage::by_time_left(policy, time_left)
            .unwrap_or(Stage::Window)
            .check_interval(policy)
    }

    #[test]
    fn intervals_shrink_as_expiry_nears() {
        let policy = Policy::default();
        assert_eq!(interval_at(&policy, 30 * DAY), 24 * HOUR);
        assert_eq!(
            interval_at(&policy, 14 * DAY + Duration::from_secs(1)),
            24 * HOUR
        );
        assert_eq!(interval_at(&policy, 14 * DAY), 6 * HOUR);
        assert_eq!(interval_at(&policy, 3 * DAY), HOUR);
    }

    #[test]
    fn zero_intervals_are_raised_to_one_second() {
        let policy = Policy {
            retry_interval: Duration::ZERO,
            ..Policy::default()
        };
        assert_eq!(interval_at(&policy, 30 * DAY), SHORTEST_INTERVAL);
    }

    #[test]
    fn stricter_retry_interval_wins_in_later_stages() {
        let policy = Policy {
            retry_interval: Duration::from_secs(1800),
            ..Policy::default()
        };
        assert_eq!(interval_at(&policy, 10 * DAY), Duration::from_secs(1800));
    }

    #[test]
    fn severity_prints_the_product_level_names() {
        let names: Vec<String> = [
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["INFO", "WARNING", "ERROR", "CRITICAL"]);
        assert!(Severity::Critical > Severity::Error && Severity::Warning > Severity::Info);
    }
}
