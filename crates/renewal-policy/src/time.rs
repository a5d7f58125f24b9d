//! Time arithmetic that never panics, and an RFC 3339 formatter for messages.
//!
//! The crate may not use a date crate, so the formatter converts seconds since the Unix epoch to
//! a civil date with Howard Hinnant's `civil_from_days` algorithm
//! (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>).

use std::time::{Duration, SystemTime};

/// Seconds in one day.
pub(crate) const SECONDS_PER_DAY: u64 = 86_400;

/// Formats `time` as RFC 3339 in UTC with whole seconds, for example `2027-01-01T00:00:00Z`.
///
/// Fractions of a second are dropped (rounded towards the past), so a certificate's
/// `not_after` prints exactly as X.509 stores it. Times before 1970 are supported.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
/// assert_eq!(renewal_policy::format_rfc3339(time), "2027-01-01T00:00:00Z");
/// ```
pub fn format_rfc3339(time: SystemTime) -> String {
    let seconds = unix_seconds_floor(time);
    let days = seconds.div_euclid(SECONDS_PER_DAY as i128);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY as i128);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

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

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days_since_epoch: i128) -> (i128, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of each year.
    let days = days_since_epoch + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    }; // [1, 12]
    let year = year_of_era + era * 400 + i128::from(month <= 2);
    // Both values are small and positive by construction.
    (year, month as u32, day as u32)
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
    fn known_dates_format_as_rfc3339() {
        // Expected values cross-checked with `date -u -d @SECONDS +%Y-%m-%dT%H:%M:%SZ`.
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (2_147_483_647, "2038-01-19T03:14:07Z"),
            (1_798_761_600, "2027-01-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
            (-2_208_988_800, "1900-01-01T00:00:00Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(format_rfc3339(at(seconds)), expected, "{seconds}");
        }
    }

    #[test]
    fn fractions_of_a_second_round_towards_the_past() {
        let just_before_epoch = SystemTime::UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(format_rfc3339(just_before_epoch), "1969-12-31T23:59:59Z");
        let just_after = SystemTime::UNIX_EPOCH + Duration::from_millis(999);
        assert_eq!(format_rfc3339(just_after), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn every_day_from_1900_to_2200_matches_a_naive_calendar() {
        // An independent day-by-day walk through the Gregorian calendar.
        fn is_leap(year: i128) -> bool {
            (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        }
        fn days_in_month(year: i128, month: u32) -> u32 {
            match month {
                2 if is_leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        let (mut year, mut month, mut day) = (1900_i128, 1_u32, 1_u32);
        for days in -25_567..84_006 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            day += 1;
            if day > days_in_month(year, month) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
        assert_eq!((year, month, day), (2200, 1, 1));
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
