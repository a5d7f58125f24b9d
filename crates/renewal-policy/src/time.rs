//! Time arithmetic that never panics. (Times are printed by `cert_vocabulary::format_rfc3339`;
//! this crate does no calendar arithmetic of its own.)

use std::time::{Duration, SystemTime};

/// Seconds in one day.
pub(crate) const SECONDS_PER_DAY: u64 = 86_400;

/// Whole seconds since the Unix epoch, rounded towards the past (so negative before 1970).
pub(crate) fn unix_seconds_floor(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::from(after.as_secs()),
        Err(error) => {
            let before = error.duration();
            let whole = i128::from(before.as_secs());
            if before.subsec_nanos() == 0 {
                -whole
            } else {
                -whole - 1
            }
        }
    }
}

/// `time + duration`, but never later than `cap`; `cap` if the sum cannot be represented.
pub(crate) fn add_capped(time: SystemTime, duration: Duration, cap: SystemTime) -> SystemTime {
    time.checked_add(duration).map_or(cap, |sum| sum.min(cap))
}

/// `time - duration`; if that cannot be represented, the earlier of `time` and the Unix epoch.
///
/// Only absurd settings (durations of billions of years) reach the fallback; it keeps such a
/// window "open since long ago" rather than panicking.
pub(crate) fn subtract_saturating(time: SystemTime, duration: Duration) -> SystemTime {
    time.checked_sub(duration)
        .unwrap_or_else(|| time.min(SystemTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> SystemTime {
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
        }
    }

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let cap = at(100);
        assert_eq!(add_capped(at(10), Duration::from_secs(5), cap), at(15));
        assert_eq!(add_capped(at(10), Duration::from_secs(500), cap), cap);
        assert_eq!(add_capped(at(10), Duration::MAX, cap), cap);
        assert_eq!(
            subtract_saturating(at(100), Duration::from_secs(40)),
            at(60)
        );
        assert_eq!(
            subtract_saturating(at(100), Duration::MAX),
            SystemTime::UNIX_EPOCH
        );
    }
}
