//! Small helpers: random identifiers, hex, RFC 3339 time stamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// `count` random bytes from the operating system.
///
/// # Panics
/// When the operating system's random source fails, which a server cannot recover from.
pub(crate) fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes).expect("the operating system random source failed");
    bytes
}

/// A random secret token (256 bits, hex).
pub(crate) fn random_token() -> String {
    hex(&random_bytes(32))
}

/// A random (version 4) UUID in its usual text form.
pub(crate) fn uuid_v4() -> String {
    let mut bytes = random_bytes(16);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let text = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &text[0..8],
        &text[8..12],
        &text[12..16],
        &text[16..20],
        &text[20..32]
    )
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `SystemTime` for Unix seconds.
pub(crate) fn from_unix_seconds(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// `2027-01-01T00:00:00Z` for Unix seconds (UTC, second precision).
pub(crate) fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60
    )
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day)
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Parses a registration-token lifetime: `<n>m`, `<n>h` or `<n>d`; empty means no limit.
pub(crate) fn parse_lifetime(text: &str) -> Result<Option<Duration>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (number, unit) = text.split_at(text.len() - 1);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("expected <n>m, <n>h or <n>d, found {text:?}"))?;
    let seconds_per_unit = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("expected <n>m, <n>h or <n>d, found {text:?}")),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(|seconds| Some(Duration::from_secs(seconds)))
        .ok_or_else(|| format!("lifetime {text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn uuid_has_the_usual_shape() {
        let id = uuid_v4();
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lengths, vec![8, 4, 4, 4, 12], "{id}");
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn lifetime_units() {
        assert_eq!(parse_lifetime("").unwrap(), None);
        assert_eq!(
            parse_lifetime("10m").unwrap(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            parse_lifetime("2h").unwrap(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            parse_lifetime("1d").unwrap(),
            Some(Duration::from_secs(86_400))
        );
        assert!(parse_lifetime("5y").is_err());
        assert!(parse_lifetime("d").is_err());
    }
}
