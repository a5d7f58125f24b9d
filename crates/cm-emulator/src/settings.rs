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
/// Before CM 2.18 a change applies at the next web restart
/// (`POST /api/v1/system/services/restart`), which the source document's procedure includes;
/// CM 2.18 and later apply it at once (restarting the web service themselves) and offer
/// `/api/v1/trusted-cas`. The spellings of [`FromStr`] and [`fmt::Display`] are
/// `at-web-restart` and `immediately` (the `cm-emulator` binary's `--trusted-ca-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrustedCaChanges {
    /// `at-web-restart` (the default): as before CM 2.18; `/api/v1/trusted-cas` does not exist.
    #[default]
    AtWebRestart,
    /// `immediately`: as CM 2.18 and later; a `PATCH` of the web interface's `trusted_cas`
    /// (or of `/api/v1/trusted-cas`) applies to new connections at once.
    Immediately,
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
