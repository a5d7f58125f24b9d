//! The words every crate of the agent shares, defined once: a certificate's SHA-256
//! [`Fingerprint`], the pem store's [`GenerationId`], RFC 3339 times ([`format_rfc3339`]) and
//! the product's one level scale
//! ([`Severity`]: what the renewal plan decides, what the log writes, what agent.conf's upload
//! threshold names) and what seals a generation's key ([`KeyProtectorKind`]).
//!
//! A fingerprint is parsed once, at the edge (command line, `agent.conf`, the manager's
//! answers), into a [`Fingerprint`]; everything inside compares and prints that value. No I/O and
//! no clock: a time to print is a parameter.
//!
//! ```
//! use cert_vocabulary::{Fingerprint, format_rfc3339};
//! use std::time::{Duration, SystemTime};
//!
//! let fingerprint = Fingerprint::of(b"certificate DER bytes");
//! let parsed: Fingerprint = fingerprint.to_colon_hex().parse().unwrap();
//! assert_eq!(parsed, fingerprint);
//! let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
//! assert_eq!(format_rfc3339(time), "2027-01-01T00:00:00Z");
//! ```

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// Identifies a generation of the agent's pem store: the store names its folders by it, the
/// renewal plan's steps and journal name it. Generations are numbered upwards from 1 in the
/// order they are staged; the number of a generation that no longer exists (its staging crashed,
/// or it was discarded while it was the newest) may be given to the next one, so what was said
/// about a certificate is keyed by its [`Fingerprint`], never by this number.
///
/// In JSON (the `serde` feature) it is the plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct GenerationId(u64);

impl GenerationId {
    /// The generation with this number.
    pub const fn new(number: u64) -> Self {
        Self(number)
    }

    /// Its number.
    pub const fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GenerationId {
    /// The plain number.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

impl FromStr for GenerationId {
    type Err = std::num::ParseIntError;

    /// Parses the plain number (as printed by `Display`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim().parse().map(Self)
    }
}

/// The SHA-256 of a certificate's DER.
///
/// `Display` gives lower-case hex without separators, as the manager's API shows it;
/// [`Fingerprint::to_colon_hex`] gives OpenSSL's form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The SHA-256 of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses 64 hex digits, with or without `:` separators, in either case, ignoring
    /// surrounding white space; `None` otherwise. See also [`FromStr`].
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    /// Upper-case hex with colons, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn to_colon_hex(&self) -> String {
        let hex = base16ct::upper::encode_string(&self.0);
        let mut text = String::with_capacity(95);
        for (index, digit) in hex.chars().enumerate() {
            if index > 0 && index % 2 == 0 {
                text.push(':');
            }
            text.push(digit);
        }
        text
    }
}

/// How loudly something is said, with the product's level names (`INFO`, `WARNING`, `ERROR`,
/// `CRITICAL`): the renewal plan's severity, the log line's level and the upload threshold.
///
/// Ordered from least to most severe, so `severity >= Severity::Warning` works.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `INFO`: routine progress, nothing to do.
    Info,
    /// `WARNING`: needs attention soon (an administrator should place a new certificate set).
    Warning,
    /// `ERROR`: needs attention now (two weeks or less remain).
    Error,
    /// `CRITICAL`: the host is about to lose (or has lost) its identity.
    Critical,
}

impl Severity {
    /// Every level, from least to most severe.
    pub const ALL: [Self; 4] = [Self::Info, Self::Warning, Self::Error, Self::Critical];

    /// The product's name: `INFO`, `WARNING`, `ERROR`, `CRITICAL`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
            Self::Critical => "CRITICAL",
        }
    }

    /// The letter the product puts at the end of message ids (`CGP3001W`).
    pub fn id_suffix(self) -> char {
        match self {
            Self::Info => 'I',
            Self::Warning => 'W',
            Self::Error => 'E',
            Self::Critical => 'C',
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix.
    pub fn syslog_priority(self) -> u8 {
        match self {
            Self::Info => 6,
            Self::Warning => 4,
            Self::Error => 3,
            Self::Critical => 2,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// What seals a generation's data key in the pem store (issue 23): keystore's protectors, the
/// `KEY_PROTECTOR` values of agent.conf other than `auto`, and what `vmutil status` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyProtectorKind {
    /// A key file (0600) beside the store: anyone who can read the agent's folder has the key.
    File,
    /// The host's TPM 2.0 (Linux): only this TPM unseals it.
    Tpm,
    /// Windows DPAPI in machine scope: only this Windows installation decrypts it.
    Dpapi,
}

impl KeyProtectorKind {
    /// Every protector.
    pub const ALL: [Self; 3] = [Self::File, Self::Tpm, Self::Dpapi];

    /// The name agent.conf, the command line and `vmutil status` use: `file`, `tpm`, `dpapi`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Tpm => "tpm",
            Self::Dpapi => "dpapi",
        }
    }

    /// The protector of that name (case-insensitive), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// The extension of the file that holds a generation's key: `key`, `tpm`, `dpapi`.
    pub fn file_extension(self) -> &'static str {
        match self {
            Self::File => "key",
            Self::Tpm => "tpm",
            Self::Dpapi => "dpapi",
        }
    }
}

impl fmt::Display for KeyProtectorKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for KeyProtectorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why a text is not a SHA-256 fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintSyntaxError;

impl fmt::Display for FingerprintSyntaxError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .write_str("not a SHA-256 fingerprint: expected 64 hex digits, with or without colons")
    }
}

impl std::error::Error for FingerprintSyntaxError {}

impl FromStr for Fingerprint {
    type Err = FingerprintSyntaxError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
        let mut bytes = [0u8; 32];
        match base16ct::mixed::decode(digits.as_bytes(), &mut bytes) {
            Ok(decoded) if decoded.len() == 32 => Ok(Self(bytes)),
            _ => Err(FingerprintSyntaxError),
        }
    }
}

impl fmt::Display for Fingerprint {
    /// Lower-case hex without separators.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&base16ct::lower::encode_string(&self.0))
    }
}

/// With the `serde` feature, a fingerprint is its hex text (lower case, no separators); any
/// form [`FromStr`] reads is accepted back.
#[cfg(feature = "serde")]
impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Fingerprint({self})")
    }
}

/// Formats `time` as RFC 3339 in UTC with whole seconds, for example `2027-01-01T00:00:00Z`.
///
/// Fractions of a second are dropped (rounded towards the past), so a certificate's
/// `not_after` prints exactly as X.509 stores it. The calendar is `der::DateTime`'s, whose range
/// is the certificates' own (1970 to 9999); a time outside it prints as
/// `before 1970-01-01T00:00:00Z` or `after 9999-12-31T23:59:59Z`, never as a debug dump.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
/// assert_eq!(cert_vocabulary::format_rfc3339(time), "2027-01-01T00:00:00Z");
/// ```
pub fn format_rfc3339(time: SystemTime) -> String {
    let Ok(since_epoch) = time.duration_since(SystemTime::UNIX_EPOCH) else {
        return "before 1970-01-01T00:00:00Z".to_owned();
    };
    match der::DateTime::from_unix_duration(Duration::from_secs(since_epoch.as_secs())) {
        Ok(date_time) => date_time.to_string(),
        Err(_) => format!("after {}", der::DateTime::INFINITY),
    }
}

/// Whether `character` may not reach a terminal or a log line as it is: a control character
/// (C0, DEL, C1: line breaks, escape sequences, BEL) or an invisible formatting character that
/// reorders or hides text: the bidi embeddings and overrides U+202A–U+202E, the isolates
/// U+2066–U+2069, the marks U+200E, U+200F and U+061C, and the line and paragraph separators
/// U+2028 and U+2029.
pub fn is_unsafe_for_terminal(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every character [`is_unsafe_for_terminal`] written as a Rust escape (`\n`,
/// `\u{1b}`, `\u{202e}`): the one escaping of strings others chose (a certificate's names, a
/// file name, the manager's messages) before they reach a terminal or the log.
pub fn escape_for_terminal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if is_unsafe_for_terminal(character) {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

#[cfg(test)]
mod escaping_tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escape_for_terminal("a\nb\u{1b}[2J\u{7}c\u{202e}d\u{2066}é"),
            "a\\nb\\u{1b}[2J\\u{7}c\\u{202e}d\\u{2066}é"
        );
        for character in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{9b}', '\u{7f}',
        ] {
            assert!(is_unsafe_for_terminal(character), "{character:?}");
        }
        assert!(!is_unsafe_for_terminal('é'));
        assert!(!is_unsafe_for_terminal(' '));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn fingerprints_parse_in_every_written_form_and_print_two_ways() {
        let fingerprint = Fingerprint::of(b"abc");
        let lower = fingerprint.to_string();
        assert_eq!(
            lower,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let colons = fingerprint.to_colon_hex();
        assert!(colons.starts_with("BA:78:16:BF:"), "{colons}");
        assert_eq!(colons.len(), 95);
        for text in [
            lower.clone(),
            lower.to_uppercase(),
            colons.clone(),
            colons.to_lowercase(),
            format!("  {colons}\n"),
        ] {
            assert_eq!(text.parse::<Fingerprint>(), Ok(fingerprint), "{text:?}");
        }
        for bad in [
            "",
            "ab",
            &lower[..62],
            &format!("{lower}00"),
            &lower.replace('a', "g"),
        ] {
            assert_eq!(
                bad.parse::<Fingerprint>(),
                Err(FingerprintSyntaxError),
                "{bad:?}"
            );
        }
        assert_eq!(format!("{fingerprint:?}"), format!("Fingerprint({lower})"));
    }

    #[test]
    fn known_dates_format_as_rfc3339() {
        for (seconds, expected) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (2_147_483_647, "2038-01-19T03:14:07Z"),
            (1_798_761_600, "2027-01-01T00:00:00Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            assert_eq!(format_rfc3339(at(seconds)), expected, "{seconds}");
        }
    }

    #[test]
    fn fractions_round_towards_the_past_and_the_range_is_named() {
        let just_before_2027 = at(1_798_761_600) - Duration::from_millis(1);
        assert_eq!(format_rfc3339(just_before_2027), "2026-12-31T23:59:59Z");
        assert_eq!(
            format_rfc3339(SystemTime::UNIX_EPOCH - Duration::from_millis(1)),
            "before 1970-01-01T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(at(300_000_000_000)),
            "after 9999-12-31T23:59:59Z"
        );
    }
}
