//! Which HTTP proxy, if any, carries the connection to the manager.
//!
//! The manager is only spoken to over TLS, so a proxy is used the way curl uses one for an
//! `https://` URL: a `CONNECT host:port` tunnel through an `http://` proxy, then TLS with the
//! manager end to end inside the tunnel. The manager's certificate is verified as without a proxy
//! (CA file or pinned fingerprint); the proxy never sees the plaintext and is never the party
//! whose certificate is checked.
//!
//! [`ProxySetting`] says where the proxy comes from: nowhere ([`ProxySetting::None`]), the
//! environment as curl reads it for `https://` URLs ([`ProxySetting::FromEnvironment`], the
//! default), or an explicit URL ([`ProxySetting::Url`]). The environment is read once, when the
//! transport is built, through [`ProxySetting::resolve`]; ureq's own reading of the proxy
//! variables is always switched off, so the setting decides alone.
//!
//! # The environment (as curl for https URLs)
//! - The proxy: `https_proxy`, `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY`, in that order; the first
//!   one that is set decides (set but empty: no proxy). `http_proxy`/`HTTP_PROXY` are NOT used:
//!   they are for plain `http://` URLs.
//! - The exceptions: `no_proxy`, else `NO_PROXY`, a comma-separated list; see
//!   [`no_proxy_matches`].
//!
//! An explicit [`ProxySetting::Url`] is used as given: `NO_PROXY` does not apply to it (whoever
//! named a proxy for the manager meant the manager).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::{Error, ManagerUrl};

/// The proxy port when the URL gives none, as curl.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The variables that name the proxy for `https://` URLs, in the order they are tried.
pub const PROXY_VARIABLES: [&str; 4] = ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"];

/// The variables that list the hosts reached without the proxy, in the order they are tried.
pub const NO_PROXY_VARIABLES: [&str; 2] = ["no_proxy", "NO_PROXY"];

/// Where the proxy to the manager comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// Connect to the manager directly, whatever the environment says.
    None,
    /// `https_proxy`/`HTTPS_PROXY`/`all_proxy`/`ALL_PROXY` and `no_proxy`/`NO_PROXY`, as curl
    /// reads them for an `https://` URL (the default).
    #[default]
    FromEnvironment,
    /// This proxy, whatever the environment says (`NO_PROXY` included).
    Url(ProxyUrl),
}

impl ProxySetting {
    /// `none` (any case) or a proxy URL (see [`ProxyUrl::parse`]), as written in agent.conf or
    /// after `--proxy`.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for an unusable URL; the message does not repeat the
    /// value (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("none") {
            Ok(Self::None)
        } else {
            ProxyUrl::parse(trimmed).map(Self::Url)
        }
    }

    /// The proxy to use for `manager`, reading the process environment for
    /// [`ProxySetting::FromEnvironment`]. `None`: connect directly.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] when the variable that decides holds an unusable URL.
    pub fn resolve(&self, manager: &ManagerUrl) -> Result<Option<ProxyUrl>, Error> {
        self.resolve_with(manager, |name| std::env::var(name).ok())
    }

    /// Like [`ProxySetting::resolve`], with the environment read through `variable` (tests,
    /// or a caller that keeps its own environment).
    ///
    /// # Errors
    /// As [`ProxySetting::resolve`].
    pub fn resolve_with(
        &self,
        manager: &ManagerUrl,
        variable: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ProxyUrl>, Error> {
        match self {
            Self::None => Ok(None),
            Self::Url(url) => Ok(Some(url.clone())),
            Self::FromEnvironment => {
                let Some((name, value)) = PROXY_VARIABLES
                    .iter()
                    .find_map(|name| variable(name).map(|value| (*name, Zeroizing::new(value))))
                else {
                    return Ok(None);
                };
                if value.trim().is_empty() {
                    return Ok(None);
                }
                let no_proxy = NO_PROXY_VARIABLES.iter().find_map(|name| variable(name));
                let (host, port) = manager.host_and_port();
                if no_proxy.is_some_and(|list| no_proxy_matches(&list, host, port)) {
                    return Ok(None);
                }
                ProxyUrl::parse(&value).map(Some).map_err(|error| {
                    Error::InvalidConfiguration {
                        reason: format!(
                            "the environment variable {name} does not name a usable proxy ({error}); \
                             fix it, or set PROXY=none in agent.conf (or pass --proxy none) to \
                             connect to the manager directly"
                        ),
                    }
                })
            }
        }
    }
}

impl FromStr for ProxySetting {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

/// An `http://` proxy: host, port and optional credentials (sent as `Proxy-Authorization:
/// Basic`). `Display` and `Debug` show the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    /// The host, IPv6 literals in brackets.
    host: String,
    port: u16,
    username: Option<Zeroizing<String>>,
    password: Option<Zeroizing<String>>,
}

impl ProxyUrl {
    /// Accepts `[http://][user[:password]@]host[:port][/]`: a host name, an IPv4 address or an
    /// IPv6 address in brackets; the port defaults to 1080 (as curl). User and password are
    /// percent-decoded (write `%40` for `@`, `%3A` for `:`, `%25` for `%`).
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for other schemes (`https://` and SOCKS proxies are not
    /// supported), paths, queries, empty hosts and bad ports. The message does not repeat the
    /// text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidConfiguration {
            reason: format!("proxy URL: {reason}"),
        };
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) => {
                if !scheme.eq_ignore_ascii_case("http") {
                    return Err(invalid(
                        "only http:// proxies are supported (CONNECT tunnel); https:// and \
                         SOCKS proxies are not",
                    ));
                }
                rest
            }
            None => text,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', ' ']) || rest.contains(char::is_control) {
            return Err(invalid(
                "give only http://[user:password@]host[:port], e.g. http://proxy.example.com:3128",
            ));
        }
        let (userinfo, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => (Some(userinfo), authority),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let decode = |part: &str| {
                    percent_decode(part).ok_or_else(|| {
                        invalid("the user or password has a bad %-escape or is not UTF-8")
                    })
                };
                (Some(decode(user)?), password.map(decode).transpose()?)
            }
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (address, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            address
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| invalid("not an IPv6 address in brackets"))?;
            (format!("[{address}]"), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port)),
                Some(_) => return Err(invalid("write IPv6 addresses in brackets: [::1]:3128")),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if !host.starts_with('[')
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err(invalid("the host is not a host name or an IP address"));
        }
        let port = match port {
            None => DEFAULT_PROXY_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("the port is not a number from 1 to 65535")),
                Ok(port) => port,
            },
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            username: username.map(Zeroizing::new),
            password: password.map(Zeroizing::new),
        })
    }

    /// The proxy's host (IPv6 literals in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL carries a user (and password) for `Proxy-Authorization`.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some()
    }

    /// The ureq proxy: CONNECT, the proxy resolves the manager's name, no `NO_PROXY` (decided
    /// already).
    pub(crate) fn to_ureq(&self) -> Result<ureq::Proxy, Error> {
        let mut builder = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
            .host(&self.host)
            .port(self.port);
        if let Some(username) = &self.username {
            builder = builder.username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.password(password);
        }
        builder
            .build()
            .map_err(|error| Error::InvalidConfiguration {
                reason: format!("proxy {self}: {error}"),
            })
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("http://")?;
        if let Some(username) = &self.username {
            // The user is shown (it helps with a 407); the password never is.
            let shown: String = username
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            write!(formatter, "{shown}:***@")?;
        }
        write!(formatter, "{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ProxyUrl({self})")
    }
}

impl FromStr for ProxyUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether the `NO_PROXY` list `list` exempts `host` (port `port`) from the proxy, as curl reads
/// it:
/// - entries are separated by commas (whitespace around them is ignored) and compared without
///   regard to case; `*` alone exempts every host;
/// - a name entry matches that name and every name under it: `example.com`, `.example.com` and
///   `*.example.com` all match `example.com` and `cm.example.com` (a trailing dot is ignored);
/// - an IP entry (IPv4, or IPv6 with or without brackets) matches that address only, or a range
///   with `/bits` (`10.0.0.0/8`); IP entries never match host names and name entries never
///   match IP addresses;
/// - an entry may name a port (`cm.example.com:8443`, `[::1]:8443`): it then matches that port
///   only; entries without a port match every port.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry_matches(entry, &host, host_ip, port))
}

fn entry_matches(entry: &str, host: &str, host_ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let (pattern, entry_port) = split_entry_port(entry);
    if entry_port.is_some_and(|entry_port| entry_port != port) {
        return false;
    }
    // An IP literal or range.
    let (address, bits) = match pattern.split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (pattern, None),
    };
    if let Ok(network) = address.parse::<IpAddr>() {
        let Some(ip) = host_ip else {
            return false;
        };
        return match bits {
            None => ip == network,
            Some(bits) => bits
                .parse::<u32>()
                .is_ok_and(|bits| in_network(ip, network, bits)),
        };
    }
    if host_ip.is_some() || bits.is_some() {
        return false;
    }
    let pattern = pattern.strip_prefix('*').unwrap_or(pattern);
    let pattern = pattern.trim_start_matches('.');
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    if pattern.is_empty() {
        return false;
    }
    let pattern = pattern.to_ascii_lowercase();
    host == pattern
        || host
            .strip_suffix(pattern.as_str())
            .is_some_and(|before| before.ends_with('.'))
}

/// Splits `name:port`, `[v6]:port`, `[v6]`; a bare IPv6 address has no port.
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(v6) = entry.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((address, after)) => (
                address,
                after.strip_prefix(':').and_then(|port| port.parse().ok()),
            ),
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse::<u16>() {
            Ok(port) => (name, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u32) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(network)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(ip) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// Why the proxy failed, carried from the connector to the transport's error mapping inside an
/// `io::Error` (the only ureq error that carries a value of ours).
#[derive(Debug)]
pub(crate) struct ProxyFailure {
    /// The status of the proxy's answer to CONNECT, when it answered one.
    pub(crate) status: Option<u16>,
    /// The time allowed ran out.
    pub(crate) timed_out: bool,
    /// What happened, for people.
    pub(crate) reason: String,
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.reason)
    }
}

impl std::error::Error for ProxyFailure {}

impl ProxyFailure {
    /// Explains a failure of ureq's CONNECT step (reaching the proxy, or its answer).
    pub(crate) fn from_ureq(error: ureq::Error, target: &str) -> Self {
        let plain = |reason: String| Self {
            status: None,
            timed_out: false,
            reason,
        };
        match error {
            ureq::Error::ConnectProxyFailed(text) => {
                // ureq 3.5 says "proxy server responded {code}/{code}"; it keeps no reason phrase.
                let status = text
                    .strip_prefix("proxy server responded ")
                    .and_then(|rest| rest.get(..3))
                    .and_then(|code| code.parse::<u16>().ok());
                match status {
                    Some(status) => Self {
                        status: Some(status),
                        timed_out: false,
                        reason: format!(
                            "the proxy refused the tunnel (CONNECT {target}) with HTTP {status}{}",
                            status_hint(status)
                        ),
                    },
                    None if text.contains("did not respond") => plain(format!(
                        "the proxy closed the connection without answering CONNECT {target}"
                    )),
                    None => plain(format!("CONNECT {target} failed: {text}")),
                }
            }
            ureq::Error::Timeout(_) => Self {
                status: None,
                timed_out: true,
                reason: "the proxy did not answer in time".to_string(),
            },
            ureq::Error::HostNotFound => plain("the proxy's host name was not found".to_string()),
            ureq::Error::ConnectionFailed => plain("cannot connect to the proxy".to_string()),
            ureq::Error::Io(io) => plain(format!("cannot connect to the proxy: {io}")),
            ureq::Error::Protocol(error) => plain(format!(
                "the proxy's answer to CONNECT {target} is not HTTP/1.1: {error}"
            )),
            other => plain(format!("CONNECT {target} failed: {other}")),
        }
    }
}

fn status_hint(status: u16) -> &'static str {
    match status {
        407 => {
            " (Proxy Authentication Required): give user:password in the proxy URL, \
             e.g. http://user:password@proxy:3128, or check them"
        }
        403 => {
            " (Forbidden): the proxy does not allow tunnels to this host and port; ask its \
             administrators to allow CONNECT to the manager's port"
        }
        405 => " (Method Not Allowed): the proxy does not allow CONNECT",
        502..=504 => ": the proxy could not reach the manager",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn manager(text: &str) -> ManagerUrl {
        ManagerUrl::parse(text).unwrap()
    }

    fn resolved(setting: &ProxySetting, url: &str, pairs: &[(&str, &str)]) -> Option<String> {
        setting
            .resolve_with(&manager(url), env(pairs))
            .unwrap()
            .map(|proxy| proxy.to_string())
    }

    #[test]
    fn proxy_urls_are_parsed_with_curl_defaults() {
        let cases = [
            ("http://proxy:3128", "http://proxy:3128"),
            ("proxy:3128", "http://proxy:3128"),
            ("HTTP://Proxy.Example.COM/", "http://proxy.example.com:1080"),
            ("http://10.0.0.1", "http://10.0.0.1:1080"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            (
                "http://alice:s3cret@proxy:3128",
                "http://alice:***@proxy:3128",
            ),
            ("http://bob@proxy:3128", "http://bob:***@proxy:3128"),
        ];
        for (input, shown) in cases {
            assert_eq!(
                ProxyUrl::parse(input).unwrap().to_string(),
                shown,
                "{input}"
            );
        }
        for bad in [
            "",
            "https://proxy:3128",
            "socks5://proxy:1080",
            "http://proxy:0",
            "http://proxy:99999",
            "http://proxy:port",
            "http://proxy:3128/path",
            "http://proxy?x=1",
            "http://::1:3128",
            "http://[::1",
            "http://user:pa%zzss@proxy",
            "http://pro xy",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let proxy = ProxyUrl::parse("http://al%40ice:p%3Ass%25word@proxy:3128").unwrap();
        assert_eq!(
            proxy.username.as_deref().map(String::as_str),
            Some("al@ice")
        );
        assert_eq!(
            proxy.password.as_deref().map(String::as_str),
            Some("p:ss%word")
        );
        assert!(proxy.has_credentials());
        let setting = ProxySetting::Url(proxy.clone());
        for shown in [
            proxy.to_string(),
            format!("{proxy:?}"),
            format!("{setting:?}"),
        ] {
            assert!(
                !shown.contains("p:ss") && !shown.contains("p%3Ass"),
                "{shown}"
            );
        }
        let ureq = proxy.to_ureq().unwrap();
        assert_eq!(ureq.username(), Some("al@ice"));
        assert_eq!(ureq.password(), Some("p:ss%word"));
        assert!(!ureq.is_from_env());
        // A bad URL's error does not repeat the text (it may hold a password).
        let error = ProxySetting::parse("https://user:topsecret@proxy").unwrap_err();
        assert!(!error.to_string().contains("topsecret"), "{error}");
    }

    #[test]
    fn none_and_urls_parse_as_settings() {
        assert_eq!(ProxySetting::parse("none").unwrap(), ProxySetting::None);
        assert_eq!(ProxySetting::parse(" NONE ").unwrap(), ProxySetting::None);
        assert!(matches!(
            "http://proxy:3128".parse::<ProxySetting>().unwrap(),
            ProxySetting::Url(_)
        ));
        assert_eq!(ProxySetting::default(), ProxySetting::FromEnvironment);
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it_for_https() {
        let from_env = ProxySetting::FromEnvironment;
        let url = "https://cm.example.com:8443";
        assert_eq!(resolved(&from_env, url, &[]), None);
        // http_proxy is for http:// URLs only.
        assert_eq!(
            resolved(
                &from_env,
                url,
                &[("http_proxy", "http://p1:1"), ("HTTP_PROXY", "http://p1:1")]
            ),
            None
        );
        for name in PROXY_VARIABLES {
            assert_eq!(
                resolved(&from_env, url, &[(name, "http://p2:2")]).as_deref(),
                Some("http://p2:2"),
                "{name}"
            );
        }
        // Order: https_proxy, HTTPS_PROXY, all_proxy, ALL_PROXY.
        let all = [
            ("ALL_PROXY", "http://p4:4"),
            ("all_proxy", "http://p3:3"),
            ("HTTPS_PROXY", "http://p2:2"),
            ("https_proxy", "http://p1:1"),
        ];
        for present in 1..=4 {
            let winner = 5 - present;
            assert_eq!(
                resolved(&from_env, url, &all[..present]).as_deref(),
                Some(format!("http://p{winner}:{winner}").as_str())
            );
        }
        // Set but empty: no proxy (the first variable set decides).
        assert_eq!(
            resolved(
                &from_env,
                url,
                &[("https_proxy", ""), ("ALL_PROXY", "http://p:1")]
            ),
            None
        );
        // NO_PROXY, lower case first.
        let proxied = [("HTTPS_PROXY", "http://p:1")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = proxied.to_vec();
            pairs.extend_from_slice(extra);
            resolved(&from_env, url, &pairs)
        };
        assert_eq!(with(&[("NO_PROXY", "example.com")]), None);
        assert_eq!(with(&[("no_proxy", ".example.com")]), None);
        assert!(with(&[("no_proxy", "other.com"), ("NO_PROXY", "example.com")]).is_some());
        assert!(with(&[("NO_PROXY", "cm.example.org")]).is_some());
        // A bad variable is an error naming the variable, not its value.
        let error = from_env
            .resolve_with(
                &manager(url),
                env(&[("HTTPS_PROXY", "socks5://u:hidden@p")]),
            )
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("HTTPS_PROXY") && !text.contains("hidden"),
            "{text}"
        );
        // ... unless NO_PROXY exempts the manager anyway.
        assert!(
            from_env
                .resolve_with(
                    &manager(url),
                    env(&[("HTTPS_PROXY", "socks5://p"), ("NO_PROXY", "*")])
                )
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn explicit_settings_ignore_the_environment() {
        let url = "https://cm.example.com";
        let pairs = [("HTTPS_PROXY", "http://env:1"), ("NO_PROXY", "*")];
        assert_eq!(
            resolved(&ProxySetting::None, url, &[("HTTPS_PROXY", "http://env:1")]),
            None
        );
        let explicit = ProxySetting::parse("http://explicit:3128").unwrap();
        assert_eq!(
            resolved(&explicit, url, &pairs).as_deref(),
            Some("http://explicit:3128")
        );
    }

    #[test]
    fn no_proxy_lists_match_as_curl() {
        let yes = [
            ("*", "cm.example.com", 443),
            ("example.com", "example.com", 443),
            ("example.com", "cm.example.com", 443),
            ("EXAMPLE.com", "Cm.Example.COM", 443),
            (".example.com", "example.com", 443),
            (".example.com", "a.b.example.com", 443),
            ("*.example.com", "cm.example.com", 443),
            ("example.com.", "cm.example.com.", 443),
            ("other, example.com ,x", "cm.example.com", 443),
            ("localhost,127.0.0.1", "127.0.0.1", 8443),
            ("10.0.0.0/8", "10.1.2.3", 443),
            ("::1", "[::1]", 443),
            ("[::1]", "[::1]", 443),
            ("fd00::/8", "[fd12::1]", 443),
            ("cm.example.com:8443", "cm.example.com", 8443),
            ("[::1]:8443", "[::1]", 8443),
            ("127.0.0.1:8443", "127.0.0.1", 8443),
        ];
        for (list, host, port) in yes {
            assert!(
                no_proxy_matches(list, host, port),
                "{list} should match {host}:{port}"
            );
        }
        let no = [
            ("", "cm.example.com", 443),
            ("example.com", "badexample.com", 443),
            ("example.com", "example.com.evil.net", 443),
            ("cm.example.com", "example.com", 443),
            ("127.0.0.1", "127.0.0.2", 443),
            ("127.0.0.1", "localhost", 443),
            ("localhost", "127.0.0.1", 443),
            ("10.0.0.0/8", "11.0.0.1", 443),
            ("10.0.0.0/8", "ten.example.com", 443),
            ("0.0.0.1", "[::1]", 443),
            ("cm.example.com:8443", "cm.example.com", 443),
            ("127.0.0.1:8443", "127.0.0.1", 9443),
            (".", "cm.example.com", 443),
            ("*.", "cm.example.com", 443),
        ];
        for (list, host, port) in no {
            assert!(
                !no_proxy_matches(list, host, port),
                "{list} should not match {host}:{port}"
            );
        }
    }

    #[test]
    fn connect_refusals_name_the_status() {
        for (status, words) in [(403, "Forbidden"), (407, "Proxy Authentication Required")] {
            let failure = ProxyFailure::from_ureq(
                ureq::Error::ConnectProxyFailed(format!(
                    "proxy server responded {status}/{status}"
                )),
                "cm:443",
            );
            assert_eq!(failure.status, Some(status));
            assert!(
                failure.reason.contains(&format!("HTTP {status}")),
                "{}",
                failure.reason
            );
            assert!(failure.reason.contains(words), "{}", failure.reason);
        }
        let closed = ProxyFailure::from_ureq(
            ureq::Error::ConnectProxyFailed("proxy server did not respond".to_string()),
            "cm:443",
        );
        assert_eq!(closed.status, None);
        assert!(
            closed.reason.contains("without answering"),
            "{}",
            closed.reason
        );
    }
}
