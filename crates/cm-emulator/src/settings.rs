//! The emulator's invented or version-dependent behaviours, chosen by the user.

use std::fmt;
use std::str::FromStr;

/// When a client's previous certificate stops logging in after a self renewal.
///
/// Whether the real manager retires the old certificate at the renewal, at the new
/// certificate's first login, or only when the old certificate expires is not public: this is
/// an invented setting that lets agents be tested against each of the three plausible
/// behaviours. Only the immediately previous certificate is remembered: a second renewal
/// retires the certificate before it in every mode.
///
/// In every mode, a repeated renewal request (the new certificate is already current) still
/// answers 200, and bearers keep working until they expire whichever certificate obtained
/// them; the setting only decides which certificates a client-credential login accepts (and,
/// for a further renewal, whether the bearer's certificate still counts as the client's).
///
/// The spellings of [`FromStr`] and [`fmt::Display`] are `on-renew`, `on-first-login` and
/// `at-expiry` (the `cm-emulator` binary's `--retire-old-certificate` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetireOldCertificate {
    /// `on-renew`: the previous certificate no longer logs in once the renewal is accepted.
    OnRenew,
    /// `on-first-login` (the default): the previous certificate keeps logging in until the new
    /// one first logs in, so a host that crashed mid-switch is never locked out.
    #[default]
    OnFirstLogin,
    /// `at-expiry`: the previous certificate keeps logging in until its own `notAfter` (by
    /// the emulator's [`Clock`](crate::Clock)), also after the new one has logged in. A client renewed by
    /// an emulator version that did not record that date falls back to `on-first-login`.
    AtExpiry,
}

impl RetireOldCertificate {
    /// Every value, in the order of the command line help.
    pub const ALL: [RetireOldCertificate; 3] = [
        RetireOldCertificate::OnRenew,
        RetireOldCertificate::OnFirstLogin,
        RetireOldCertificate::AtExpiry,
    ];

    /// The spelling used by [`FromStr`] and [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            RetireOldCertificate::OnRenew => "on-renew",
            RetireOldCertificate::OnFirstLogin => "on-first-login",
            RetireOldCertificate::AtExpiry => "at-expiry",
        }
    }
}

impl fmt::Display for RetireOldCertificate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for RetireOldCertificate {
    type Err = ParseRetireOldCertificateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RetireOldCertificate::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| ParseRetireOldCertificateError {
                value: text.to_owned(),
            })
    }
}

/// A string that is not `on-renew`, `on-first-login` or `at-expiry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRetireOldCertificateError {
    value: String,
}

impl fmt::Display for ParseRetireOldCertificateError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{:?} is not one of on-renew, on-first-login, at-expiry",
            self.value
        )
    }
}

impl std::error::Error for ParseRetireOldCertificateError {}

/// When a change of the web interface's trusted CAs takes effect.
///
/// CM's administration guide lists "trusted CAs" among the interface changes that "are applied
/// immediately and trigger an automatic services restart" in every version it was read for (2.7,
/// 2.10, 2.13, 2.18; docs/protocol.md cites the pages), so that is the default; CM 2.18 and
/// later also offer `/api/v1/trusted-cas`. `at-web-restart` instead applies a change at the next
/// web restart (`POST /api/v1/system/services/restart`), the step the source document's
/// procedure includes: an invented setting, to test a client against a manager whose change is
/// not yet in force. The spellings of [`FromStr`] and [`fmt::Display`] are `immediately` and
/// `at-web-restart` (the `cm-emulator` binary's `--trusted-ca-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrustedCaChanges {
    /// `immediately` (the default), as CM: a `PATCH` of the web interface's `trusted_cas` (or
    /// of `/api/v1/trusted-cas`) applies to new connections at once.
    #[default]
    Immediately,
    /// `at-web-restart`: a change applies at the next web restart; `/api/v1/trusted-cas` does
    /// not exist (as before CM 2.18).
    AtWebRestart,
}

impl TrustedCaChanges {
    /// The spelling used by [`FromStr`] and [`fmt::Display`].
    pub fn as_str(self) -> &'static str {
        match self {
            TrustedCaChanges::AtWebRestart => "at-web-restart",
            TrustedCaChanges::Immediately => "immediately",
        }
    }
}

impl fmt::Display for TrustedCaChanges {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for TrustedCaChanges {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [
            TrustedCaChanges::AtWebRestart,
            TrustedCaChanges::Immediately,
        ]
        .into_iter()
        .find(|mode| mode.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not one of at-web-restart, immediately"))
    }
}

/// Back-pressure to agents: the emulator answers one of every `every` agent requests (a request
/// that presents a client certificate to the agent endpoints: login, the client's own record,
/// its renewal, its log upload) with `status` (429 or 503) and, when `retry_after` is set, a
/// `Retry-After` header of that many seconds. Counted over the emulator's life, so the share is
/// exact and reproducible. An invented test knob; a real manager throttles by its own rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// 429 (Too Many Requests) or 503 (Service Unavailable).
    pub status: u16,
    /// One request in this many is answered so (1: every one).
    pub every: u32,
    /// The `Retry-After` seconds sent with it, if any.
    pub retry_after: Option<u64>,
}

impl Throttle {
    /// Parses `STATUS:EVERY[:SECONDS]`, e.g. `429:3:120` (one agent request in three gets 429
    /// with `Retry-After: 120`).
    ///
    /// # Errors
    /// The text says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let status = match parts.next().map(str::trim) {
            Some("429") => 429,
            Some("503") => 503,
            other => {
                return Err(format!(
                    "throttle status must be 429 or 503, not {:?}",
                    other.unwrap_or_default()
                ));
            }
        };
        let every = parts
            .next()
            .and_then(|every| every.trim().parse::<u32>().ok())
            .filter(|every| *every >= 1)
            .ok_or("throttle share must be a whole number of requests, at least 1 (STATUS:EVERY[:SECONDS])")?;
        let retry_after =
            match parts.next() {
                None => None,
                Some(seconds) => Some(seconds.trim().parse::<u64>().map_err(|_| {
                    format!("throttle Retry-After must be seconds, not {seconds:?}")
                })?),
            };
        if parts.next().is_some() {
            return Err("throttle is STATUS:EVERY[:SECONDS]".to_string());
        }
        Ok(Self {
            status,
            every,
            retry_after,
        })
    }
}
