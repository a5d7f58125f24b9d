//! The settings: when renewal starts, how often to look again, how warnings escalate.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// The renewal settings. Plain data: build one with [`Policy::default`] and change fields.
///
/// The defaults follow the product document (look for a new set about 60 days before expiry,
/// look again after 24 hours) and add the escalation described in the crate documentation.
///
/// ```
/// use std::time::Duration;
/// let policy = renewal_policy::Policy {
///     renew_before: Duration::from_secs(45 * 86_400),
///     ..renewal_policy::Policy::default()
/// };
/// assert!(policy.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long before the current certificate's `not_after` the renewal window opens, before
    /// the per-host stagger is added. Default: 60 days.
    pub renew_before: Duration,
    /// How long to wait between looks at the directory in the renewal window, and after the
    /// manager refused a renewal. Default: 24 hours.
    pub retry_interval: Duration,
    /// The per-host stagger is drawn from `[0, max_stagger)`. Default: 48 hours.
    pub max_stagger: Duration,
    /// The stagger never opens a host's window later than this long before expiry: the
    /// stagger range shrinks to `renew_before - minimum_time_left_at_window_start` when that
    /// is smaller than `max_stagger` (and to nothing when `renew_before` is shorter still).
    /// Default: 30 days.
    pub minimum_time_left_at_window_start: Duration,
    /// With this little time left, a missing candidate is an ERROR. Default: 14 days.
    pub error_threshold: Duration,
    /// How often to look in the last `error_threshold`. Default: 6 hours.
    pub error_check_interval: Duration,
    /// With this little time left, a missing candidate is CRITICAL. Default: 3 days.
    pub critical_threshold: Duration,
    /// How often to look in the last `critical_threshold`. Default: 1 hour.
    pub critical_check_interval: Duration,
    /// The first retry after the manager was unreachable; it doubles with each further
    /// consecutive failure up to the current check interval. Default: 5 minutes.
    pub first_unreachable_retry: Duration,
    /// The daemon, once the certificate has expired and the manager refused it: how often to
    /// look again, in case an administrator registered the host again. Default: 24 hours.
    pub expired_recheck: Duration,
    /// The daemon, when another check held the renewal lock: how soon to try again.
    /// Default: 1 minute.
    pub busy_retry: Duration,
    /// The daemon, when a local problem stopped a check (agent.conf, the store, a file): how
    /// soon to try again. Default: 1 hour.
    pub local_failure_retry: Duration,
    /// The daemon, after a failed heartbeat: the next heartbeat comes no later than this (or
    /// the heartbeat interval, if shorter). Default: 5 minutes.
    pub heartbeat_failure_retry: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            renew_before: 60 * DAY,
            retry_interval: 24 * HOUR,
            max_stagger: 48 * HOUR,
            minimum_time_left_at_window_start: 30 * DAY,
            error_threshold: 14 * DAY,
            error_check_interval: 6 * HOUR,
            critical_threshold: 3 * DAY,
            critical_check_interval: HOUR,
            first_unreachable_retry: Duration::from_secs(5 * 60),
            expired_recheck: 24 * HOUR,
            busy_retry: Duration::from_secs(60),
            local_failure_retry: HOUR,
            heartbeat_failure_retry: Duration::from_secs(5 * 60),
        }
    }
}

impl Policy {
    /// Checks that the settings make sense together.
    ///
    /// [`next_step`](crate::plan::next_step) never panics on any policy, but a policy that
    /// fails this check behaves in ways nobody would choose (for example, looking every second).
    ///
    /// # Errors
    ///
    /// [`PolicyError::ZeroInterval`] if `retry_interval`, `error_check_interval`,
    /// `critical_check_interval`, `first_unreachable_retry` or one of the daemon's pauses is
    /// zero;
    /// [`PolicyError::ThresholdsOutOfOrder`] unless
    /// `critical_threshold <= error_threshold <= renew_before`.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let intervals = [
            ("retry_interval", self.retry_interval),
            ("error_check_interval", self.error_check_interval),
            ("critical_check_interval", self.critical_check_interval),
            ("first_unreachable_retry", self.first_unreachable_retry),
            ("expired_recheck", self.expired_recheck),
            ("busy_retry", self.busy_retry),
            ("local_failure_retry", self.local_failure_retry),
            ("heartbeat_failure_retry", self.heartbeat_failure_retry),
        ];
        if let Some((setting, _)) = intervals.iter().find(|(_, value)| value.is_zero()) {
            return Err(PolicyError::ZeroInterval { setting });
        }
        if !(self.critical_threshold <= self.error_threshold
            && self.error_threshold <= self.renew_before)
        {
            return Err(PolicyError::ThresholdsOutOfOrder {
                critical_threshold: self.critical_threshold,
                error_threshold: self.error_threshold,
                renew_before: self.renew_before,
            });
        }
        Ok(())
    }

    /// The stagger range actually used: `max_stagger`, shrunk so that no host's window opens
    /// with less than `minimum_time_left_at_window_start` to go.
    pub fn effective_max_stagger(&self) -> Duration {
        self.max_stagger.min(
            self.renew_before
                .saturating_sub(self.minimum_time_left_at_window_start),
        )
    }
}

/// A [`Policy`] whose settings do not fit together.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// An interval is zero, which would make the agent look again immediately, forever.
    ZeroInterval {
        /// The field's name, as in [`Policy`].
        setting: &'static str,
    },
    /// Escalation must go window, then ERROR, then CRITICAL as expiry nears.
    ThresholdsOutOfOrder {
        /// [`Policy::critical_threshold`].
        critical_threshold: Duration,
        /// [`Policy::error_threshold`].
        error_threshold: Duration,
        /// [`Policy::renew_before`].
        renew_before: Duration,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroInterval { setting } => {
                write!(
                    formatter,
                    "renewal setting {setting} must be longer than zero"
                )
            }
            Self::ThresholdsOutOfOrder {
                critical_threshold,
                error_threshold,
                renew_before,
            } => write!(
                formatter,
                "renewal settings must satisfy critical_threshold <= error_threshold <= \
                 renew_before, but they are {} <= {} <= {}",
                describe(*critical_threshold),
                describe(*error_threshold),
                describe(*renew_before)
            ),
        }
    }
}

impl StdError for PolicyError {}

/// A duration in the largest whole unit that fits, for messages ("14 days", "90 minutes").
pub(crate) fn describe(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = if seconds != 0 && seconds.is_multiple_of(86_400) {
        (seconds / 86_400, "day")
    } else if seconds != 0 && seconds.is_multiple_of(3600) {
        (seconds / 3600, "hour")
    } else if seconds != 0 && seconds.is_multiple_of(60) {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_leave_the_stagger_alone() {
        let policy = Policy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(policy.effective_max_stagger(), 48 * HOUR);
    }

    #[test]
    fn stagger_range_shrinks_to_keep_thirty_days() {
        let policy = Policy {
            renew_before: 31 * DAY,
            ..Policy::default()
        };
        assert_eq!(policy.effective_max_stagger(), DAY);
        let policy = Policy {
            renew_before: 20 * DAY,
            ..Policy::default()
        };
        assert_eq!(policy.effective_max_stagger(), Duration::ZERO);
    }

    #[test]
    fn nonsense_settings_are_named() {
        let zero = Policy {
            error_check_interval: Duration::ZERO,
            ..Policy::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "renewal setting error_check_interval must be longer than zero"
        );
        let disorder = Policy {
            renew_before: 10 * DAY,
            ..Policy::default()
        };
        assert_eq!(
            disorder.validate().unwrap_err().to_string(),
            "renewal settings must satisfy critical_threshold <= error_threshold <= \
             renew_before, but they are 3 days <= 14 days <= 10 days"
        );
    }

    #[test]
    fn durations_are_described_in_whole_units() {
        assert_eq!(describe(DAY), "1 day");
        assert_eq!(describe(14 * DAY), "14 days");
        assert_eq!(describe(6 * HOUR), "6 hours");
        assert_eq!(describe(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(describe(Duration::from_secs(61)), "61 seconds");
        assert_eq!(describe(Duration::ZERO), "0 seconds");
    }
}
