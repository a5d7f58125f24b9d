//! The manager's address: parsed with the `http` crate's URI syntax, then held to this
//! client's rules.

use std::fmt;

use crate::Error;

/// The manager's base URL, normalised to `https://host[:port]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerUrl {
    /// `https://host[:port]`.
    base: String,
    /// The host, IPv6 literals in brackets.
    host: String,
    /// The port, 443 when the address gives none.
    port: u16,
}

impl ManagerUrl {
    /// Accepts `host`, `host:port`, `[v6]:port` or `https://host[:port][/api]`. The URI syntax
    /// is the `http` crate's; the rules on top are this client's: https only, a host, no
    /// credentials, no path but `/api`, no query or fragment, a port from 1 to 65535.
    ///
    /// # Errors
    /// [`Error::InvalidConfiguration`] for `http://` (the manager is only spoken to over TLS),
    /// other schemes, empty hosts, credentials, paths, query strings and bad ports.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidConfiguration {
            reason: format!("manager address \"{text}\": {reason}"),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid("no host"));
        }
        // A bare `host[:port]` means https.
        let absolute = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let uri: http::Uri = absolute.parse().map_err(|error| {
            if trimmed.matches(':').count() > 1 && !trimmed.contains('[') {
                invalid("write IPv6 addresses in brackets: [::1]:443")
            } else {
                invalid(&format!(
                    "{error}; give the host and optional port, e.g. cm.example.com:443"
                ))
            }
        })?;
        if !uri
            .scheme_str()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"))
        {
            return Err(invalid("only https:// is supported"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the address are not supported (the manager is logged in to with the client certificate)",
            ));
        }
        // (`http::Uri` drops a fragment silently: it is looked for in the text.)
        if uri.query().is_some()
            || trimmed.contains('#')
            || !matches!(uri.path().trim_matches('/'), "" | "api")
        {
            return Err(invalid(
                "give only the host and optional port, e.g. cm.example.com:443",
            ));
        }
        let host = authority.host();
        if host.is_empty() || host == "[]" {
            return Err(invalid("no host"));
        }
        // The `http` crate keeps a port it cannot read as text after the host.
        let port = match authority.as_str()[host.len()..].strip_prefix(':') {
            None | Some("") => None,
            Some(text) => match text.parse::<u16>() {
                Ok(0) => return Err(invalid("port 0")),
                Ok(number) => Some(number),
                Err(_) => return Err(invalid("the port is not a number from 1 to 65535")),
            },
        };
        let base = match port {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("https://{host}"),
        };
        Ok(Self {
            base,
            host: host.to_owned(),
            port: port.unwrap_or(443),
        })
    }

    /// The normalised base, e.g. `https://cm.example.com:8443`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The host (IPv6 literals in brackets) and the port (443 when the URL gives none).
    pub fn host_and_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

impl fmt::Display for ManagerUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_urls_are_normalised() {
        let cases = [
            ("cm.example.com", "https://cm.example.com"),
            ("cm.example.com:8443", "https://cm.example.com:8443"),
            ("https://cm.example.com/", "https://cm.example.com"),
            (
                "https://cm.example.com:8443/api",
                "https://cm.example.com:8443",
            ),
            ("127.0.0.1:8443", "https://127.0.0.1:8443"),
            ("[::1]:8443", "https://[::1]:8443"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ManagerUrl::parse(input).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
        for bad in [
            "http://cm.example.com",
            "",
            "cm:port",
            "cm:0",
            "::1",
            "https://user@cm",
            "cm/path",
            "ftp://cm",
            "https://cm?x=1",
            "https://cm#frag",
            "cm:65536",
            "https://",
            "cm name",
        ] {
            assert!(ManagerUrl::parse(bad).is_err(), "{bad} accepted");
        }
        for (input, host, port) in [
            ("cm.example.com", "cm.example.com", 443),
            ("cm.example.com:8443", "cm.example.com", 8443),
            ("[::1]", "[::1]", 443),
            ("[::1]:8443", "[::1]", 8443),
        ] {
            assert_eq!(
                ManagerUrl::parse(input).unwrap().host_and_port(),
                (host, port),
                "{input}"
            );
        }
    }
}
