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

/// `2027-01-01T00:00:00Z` for Unix seconds (UTC, second precision), by `der::DateTime`.
/// Times before 1970 show as the epoch and times after 9999 as its last second (neither occurs
/// in certificates the emulator accepts).
pub(crate) fn rfc3339(seconds: i64) -> String {
    let since_epoch = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    der::DateTime::from_unix_duration(since_epoch).map_or_else(
        |_| "9999-12-31T23:59:59Z".to_owned(),
        |time| time.to_string(),
    )
}

/// As CM writes `createdAt`/`updatedAt`: RFC 3339 with microseconds
/// (`2023-05-04T12:34:56.000000Z`; the emulator keeps whole seconds).
pub(crate) fn rfc3339_micros(seconds: i64) -> String {
    let text = rfc3339(seconds);
    format!("{}.000000Z", text.trim_end_matches('Z'))
}

/// Unix seconds for an RFC 3339 time `YYYY-MM-DDTHH:MM:SSZ` (by `der::DateTime`).
#[cfg(test)]
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let time: der::DateTime = text.parse().ok()?;
    i64::try_from(time.unix_duration().as_secs()).ok()
}

/// Upper-case hex of `bytes`, as CM shows certificate fingerprints.
pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    base16ct::upper::encode_string(bytes)
}

/// The decimal text of a big-endian unsigned integer (a certificate serial number), by long
/// division in base 10^9.
pub(crate) fn decimal_from_be_bytes(bytes: &[u8]) -> String {
    let mut number: Vec<u8> = bytes
        .iter()
        .copied()
        .skip_while(|byte| *byte == 0)
        .collect();
    if number.is_empty() {
        return "0".to_owned();
    }
    let mut chunks: Vec<u32> = Vec::new();
    while !number.is_empty() {
        let mut remainder: u64 = 0;
        let mut quotient = Vec::with_capacity(number.len());
        for byte in &number {
            let value = (remainder << 8) | u64::from(*byte);
            let digit = value / 1_000_000_000;
            remainder = value % 1_000_000_000;
            if !(quotient.is_empty() && digit == 0) {
                quotient.push(u8::try_from(digit).unwrap_or(u8::MAX));
            }
        }
        chunks.push(u32::try_from(remainder).unwrap_or_default());
        number = quotient;
    }
    let mut text = chunks
        .pop()
        .map(|chunk| chunk.to_string())
        .unwrap_or_default();
    for chunk in chunks.iter().rev() {
        text.push_str(&format!("{chunk:09}"));
    }
    text
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
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(parse_rfc3339("2027-01-01T00:00:00Z"), Some(1_798_761_600));
        assert_eq!(rfc3339(1_798_761_600), "2027-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn serial_numbers_in_decimal() {
        assert_eq!(decimal_from_be_bytes(&[]), "0");
        assert_eq!(decimal_from_be_bytes(&[0]), "0");
        assert_eq!(decimal_from_be_bytes(&[0x01, 0x00]), "256");
        assert_eq!(decimal_from_be_bytes(&[0xff; 8]), u64::MAX.to_string());
        // 2^128 - 1
        assert_eq!(
            decimal_from_be_bytes(&[0xff; 16]),
            "340282366920938463463374607431768211455"
        );
        assert_eq!(
            decimal_from_be_bytes(&[0x3b, 0x9a, 0xca, 0x00]),
            "1000000000"
        );
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
