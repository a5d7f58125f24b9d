//! The one error type of the client, and the one classification of failures ([`Certainty`]).

use std::fmt;

/// The error underneath an [`Error::Connect`] or [`Error::Tls`]: downcast it
/// (`std::error::Error::downcast_ref`) to `std::io::Error` or `rustls::Error` to match on causes.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call to the manager failed. [`Error::certainty`] is the one classification a caller
/// needs: refused (definite), indefinite, or local.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manager URL, trust settings or client identity cannot be used.
    #[error("{reason}")]
    InvalidConfiguration {
        /// What is wrong.
        reason: String,
    },
    /// No TCP connection to the manager (refused, unreachable, name not found), or the
    /// connection broke.
    #[error("cannot connect to the manager at {url}: {reason}")]
    Connect {
        /// The manager URL.
        url: String,
        /// The system's reason.
        reason: String,
        /// The underlying error (a `std::io::Error`, or the HTTP library's), to match on.
        #[source]
        source: Option<Cause>,
    },
    /// The TLS handshake failed, for example because the manager's certificate is not trusted
    /// or does not match the pinned fingerprint, or the manager refused our client certificate.
    #[error("TLS with the manager at {url} failed: {reason}")]
    Tls {
        /// The manager URL.
        url: String,
        /// The verification or handshake reason.
        reason: String,
        /// The underlying error (usually a `rustls::Error`, or a `std::io::Error` wrapping
        /// one), to match on.
        #[source]
        source: Option<Cause>,
    },
    /// The HTTP proxy on the way to the manager failed: it cannot be reached, did not answer in
    /// time, or refused the tunnel (`CONNECT`) to the manager. Nothing reached the manager.
    #[error("cannot reach the manager at {url} through the proxy {proxy}: {reason}")]
    Proxy {
        /// The manager URL.
        url: String,
        /// The proxy, its password shown as `***`.
        proxy: String,
        /// The status of the proxy's answer to `CONNECT` (e.g. 403, 407), when it answered.
        status: Option<u16>,
        /// What went wrong.
        reason: String,
    },
    /// The manager did not answer in time.
    #[error("the manager at {url} did not answer within {seconds} s")]
    Timeout {
        /// The manager URL.
        url: String,
        /// The timeout that expired.
        seconds: u64,
    },
    /// The manager refused the request: a 4xx answer with an error in its documented shape.
    /// (A 5xx is the manager failing, reported as [`Error::Unexpected`].)
    #[error("the manager refused: {message} (HTTP {status}, {code_desc})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The manager's `codeDesc`, e.g. `NCERRCommonNameMismatch`.
        code_desc: String,
        /// The manager's message.
        message: String,
        /// The manager's request id, for its logs.
        request_id: String,
    },
    /// An attempt whose outcome is unknown (a lost reply, a timeout, a 5xx) was retried and the
    /// retry was refused. The refusal does not show that the first attempt was not carried out,
    /// so the outcome stays unknown ([`Certainty::Indefinite`]).
    #[error(
        "an earlier attempt may have been carried out ({first}); the retry was refused: {refusal}"
    )]
    RefusedAfterUncertainAttempt {
        /// What happened to the earlier attempt.
        first: Box<Error>,
        /// The retry's refusal.
        refusal: Box<Error>,
    },
    /// The manager asked this client to come back later: a 429 (too many requests: it did not
    /// act, [`Certainty::Definite`]) or a 503 with `Retry-After` (unavailable: a 5xx, so
    /// [`Certainty::Indefinite`], as every 5xx). Not retried inside this client: the caller
    /// schedules the next attempt no earlier than `retry_after` says.
    #[error("the manager asks to come back later (HTTP {status}{}): {message}", retry_after.map(|after| format!(", {after}")).unwrap_or_default())]
    Throttled {
        /// 429 or 503.
        status: u16,
        /// When it said to come back, if it did.
        retry_after: Option<RetryAfter>,
        /// The manager's message, or an excerpt of its body.
        message: String,
    },
    /// The manager answered something this client does not understand.
    #[error("unexpected answer from the manager (HTTP {status}): {body_excerpt}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// At most 200 characters of the body.
        body_excerpt: String,
    },
}

impl Error {
    /// Whether this answer to a client-certificate login (or a call made with its session)
    /// means the manager does not take the presented certificate as this client's: its 401.
    /// The one place that says what a 401 means; any other refusal (a rate limit, a bad
    /// request) says nothing about the identity.
    pub fn is_identity_refused(&self) -> bool {
        matches!(self, Error::Refused { status: 401, .. })
    }

    /// Whether the manager may have processed the request. A refusal (a 4xx answer) is
    /// [`Certainty::Definite`]: the manager answered and did not act. A timeout, a connection lost
    /// after the request may have been sent, a TLS failure mid-request or a 5xx are
    /// [`Certainty::Indefinite`]: the request may or may not have been carried out, and a caller
    /// must never act on it as if it were a refusal. A local configuration problem is
    /// [`Certainty::Local`]: nothing was sent.
    pub fn certainty(&self) -> Certainty {
        match self {
            Error::InvalidConfiguration { .. } => Certainty::Local,
            Error::Refused { .. } => Certainty::Definite,
            Error::Throttled { status, .. } if *status < 500 => Certainty::Definite,
            // The manager's TLS stack said our certificate has expired: it answered, and
            // nothing was carried out.
            Error::Tls { source, .. }
                if alert_received(source.as_deref())
                    == Some(rustls::AlertDescription::CertificateExpired) =>
            {
                Certainty::Definite
            }
            Error::Connect { .. }
            | Error::Proxy { .. }
            | Error::Tls { .. }
            | Error::Timeout { .. }
            | Error::Unexpected { .. }
            | Error::Throttled { .. }
            | Error::RefusedAfterUncertainAttempt { .. } => Certainty::Indefinite,
        }
    }

    /// The manager's `codeDesc` when it refused.
    pub fn code_desc(&self) -> Option<&str> {
        match self {
            Error::Refused { code_desc, .. } => Some(code_desc),
            _ => None,
        }
    }
}

/// The TLS alert the manager sent, when `cause` is (or wraps) `rustls::Error::AlertReceived`.
fn alert_received(
    cause: Option<&(dyn std::error::Error + Send + Sync + 'static)>,
) -> Option<rustls::AlertDescription> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = match cause {
        Some(cause) => Some(cause),
        None => None,
    };
    while let Some(error) = current {
        if let Some(rustls::Error::AlertReceived(alert)) = error.downcast_ref::<rustls::Error>() {
            return Some(*alert);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(rustls::Error::AlertReceived(alert)) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(*alert);
        }
        current = error.source();
    }
    None
}

/// A manager's `Retry-After` (RFC 9110 §10.2.3): a number of seconds, or an HTTP date. Read
/// from the answer as sent; the caller turns it into a time with its own "now" (this crate never
/// reads the clock for a decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// Come back after this many seconds.
    Seconds(u64),
    /// Come back at this time.
    At(std::time::SystemTime),
}

impl RetryAfter {
    /// Parses a `Retry-After` header value; `None` when it is neither form.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Self::Seconds(seconds));
        }
        httpdate::parse_http_date(value).ok().map(Self::At)
    }

    /// The time it names, seen from `now`.
    pub fn after(self, now: std::time::SystemTime) -> std::time::SystemTime {
        match self {
            Self::Seconds(seconds) => now
                .checked_add(std::time::Duration::from_secs(seconds))
                .unwrap_or(now),
            Self::At(at) => at,
        }
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seconds(seconds) => write!(formatter, "retry after {seconds} s"),
            Self::At(at) => write!(formatter, "retry after {}", httpdate::fmt_http_date(*at)),
        }
    }
}

/// What a failed call says about the manager's side. See [`Error::certainty`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Certainty {
    /// The manager answered: it refused, and did not carry the request out.
    Definite,
    /// The request may or may not have been carried out.
    Indefinite,
    /// Nothing was sent: the local settings are unusable.
    Local,
}

#[cfg(test)]
mod retry_after_tests {
    use std::time::{Duration, SystemTime};

    use super::{Certainty, Error, RetryAfter};

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_nothing_else() {
        assert_eq!(RetryAfter::parse("120"), Some(RetryAfter::Seconds(120)));
        assert_eq!(RetryAfter::parse(" 0 "), Some(RetryAfter::Seconds(0)));
        let date = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        // RFC 9110's example, and its two obsolete forms.
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                RetryAfter::parse(text),
                Some(RetryAfter::At(date)),
                "{text}"
            );
        }
        for garbage in ["", "-5", "soon", "1.5", "Sun, 99 Nov 1994 08:49:37 GMT"] {
            assert_eq!(RetryAfter::parse(garbage), None, "{garbage:?}");
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            RetryAfter::Seconds(30).after(now),
            now + Duration::from_secs(30)
        );
        assert_eq!(RetryAfter::At(date).after(now), date);
    }

    #[test]
    fn a_429_is_definite_and_a_503_indefinite() {
        let throttled = |status| Error::Throttled {
            status,
            retry_after: Some(RetryAfter::Seconds(60)),
            message: "slow down".to_string(),
        };
        assert_eq!(throttled(429).certainty(), Certainty::Definite);
        assert_eq!(throttled(503).certainty(), Certainty::Indefinite);
        assert!(throttled(429).to_string().contains("retry after 60 s"));
        assert!(!throttled(429).is_identity_refused());
    }
}
