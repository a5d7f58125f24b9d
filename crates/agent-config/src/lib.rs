//! `agent.conf` and the silent-registration file: parsing, typed settings, faithful rewriting.
//!
//! Both files are `KEY=VALUE` lines with `#` comments. [`ConfigFile`] keeps every line as it was
//! (comments, blank lines, unknown keys, their order) so that rewriting one value leaves the rest of
//! an administrator's file untouched. [`AgentSettings`] is the typed view the agent uses;
//! [`SilentFile`] is the typed view of a `register_host silent FILE` input.
//!
//! The key names of `agent.conf` are this project's own (the product's are not public); they are
//! listed in [`keys`] and documented in `docs/protocol.md`. The silent-file keys are the product's
//! public ones (`SERVER_HOSTNAME`, `REG_TOKEN`, ...).
//!
//! # What this crate does not do
//! No network, no secrets handling beyond not echoing values in errors, and no file writing: the
//! caller writes [`ConfigFile::render`] atomically.
//!
//! # Example
//! ```
//! let mut file = agent_config::ConfigFile::parse("# my notes\nURL=https://cm:8443\n").unwrap();
//! file.set(agent_config::keys::EXTERNAL_CERT_DIR, "/root/cert_files");
//! assert_eq!(file.render(), "# my notes\nURL=https://cm:8443\nEXTERNAL_CERT_DIR=/root/cert_files\n");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;

pub use cert_vocabulary::{Fingerprint, Severity};
pub use protection::{DEFAULT_TPM_TCTI, KeyProtection, ProtectorChoice, format_pcrs, parse_pcrs};

mod protection;

/// The keys of `agent.conf`.
pub mod keys {
    /// The manager's base URL (`https://host:port`).
    pub const URL: &str = "URL";
    /// The client id the manager gave at registration.
    pub const CLIENT_ID: &str = "CLIENT_ID";
    /// The name the host registered under.
    pub const CLIENT_NAME: &str = "CLIENT_NAME";
    /// Where renewed external certificate sets are looked for.
    pub const EXTERNAL_CERT_DIR: &str = "EXTERNAL_CERT_DIR";
    /// A PEM file of CA certificates that the manager's web certificate must chain to.
    pub const CM_CA_FILE: &str = "CM_CA_FILE";
    /// The SHA-256 fingerprint of the manager's web certificate (pinning).
    pub const CM_FINGERPRINT: &str = "CM_FINGERPRINT";
    /// Days before expiry at which renewal starts (default 60).
    pub const RENEW_DAYS_BEFORE_EXPIRY: &str = "RENEW_DAYS_BEFORE_EXPIRY";
    /// Hours between checks when no new set is present (default 24).
    pub const RENEW_RETRY_HOURS: &str = "RENEW_RETRY_HOURS";
    /// Largest per-host delay of the renewal start, in hours (default 48).
    pub const RENEW_STAGGER_HOURS: &str = "RENEW_STAGGER_HOURS";
    /// Lowest level uploaded to the manager as a log record: `INFO`, `WARNING`, `ERROR`,
    /// `CRITICAL` or `NONE` (default `WARNING`).
    pub const LOG_UPLOAD_LEVEL: &str = "LOG_UPLOAD_LEVEL";
    /// Minutes between heartbeats (login and status call) of `vmd` (default 60).
    pub const STATUS_INTERVAL_MINUTES: &str = "STATUS_INTERVAL_MINUTES";
    /// The HTTP proxy to the manager: `http://[user:password@]host[:port]`, or `none` to connect
    /// directly; absent or empty: the environment (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, as
    /// curl reads them). A `--proxy` flag wins over it.
    pub const PROXY: &str = "PROXY";
    /// Where `vmd` writes its Prometheus metrics after every check and heartbeat (node_exporter's
    /// textfile collector format, for example
    /// `/var/lib/prometheus/node-exporter/cte-agent.prom`); absent or empty: no metrics file.
    pub const METRICS_FILE: &str = "METRICS_FILE";
    /// The folder of the log file `vorvmd_root.log`; absent or empty: `/var/log/vormetric` for
    /// the product's agent root, `<agent root>/vmd/log` for any other. A `--log-dir` flag wins.
    pub const LOG_DIR: &str = "LOG_DIR";
    /// Which key protector seals new generations' data keys: `auto` (the default: the TPM or
    /// DPAPI when the host has one, else a key file), `tpm`, `dpapi` or `file`.
    pub const KEY_PROTECTOR: &str = "KEY_PROTECTOR";
    /// How the TPM is reached (a tpm2-tss TCTI); absent: `device:/dev/tpmrm0`.
    pub const TPM_TCTI: &str = "TPM_TCTI";
    /// The PCRs (SHA-256 bank) a TPM-sealed key is bound to, for example `7`; empty: none.
    pub const TPM_PCRS: &str = "TPM_PCRS";
}

/// The largest `agent.conf` read (it is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A problem in a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A line is neither a comment, blank, nor `KEY=VALUE`.
    #[error("{file} line {line}: expected KEY=VALUE or a # comment")]
    Syntax {
        /// Which file ("agent.conf" or its path).
        file: String,
        /// Line number, from 1.
        line: usize,
    },
    /// A required key is missing.
    #[error("{file}: {key} is missing; {hint}")]
    Missing {
        /// Which file.
        file: String,
        /// The key.
        key: &'static str,
        /// What to do.
        hint: &'static str,
    },
    /// A value is out of range or malformed. The value itself is not echoed (it may be secret).
    #[error("{file}: {key} is invalid: {reason}")]
    Invalid {
        /// Which file.
        file: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// Which file (the message of `source` says what failed and, for a refusal, the fix).
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    Verbatim(String),
    Entry { key: String, value: String },
}

/// A `KEY=VALUE` file kept line by line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    lines: Vec<Line>,
}

impl ConfigFile {
    /// Parses text. Keys are case-sensitive; surrounding whitespace is trimmed; a value in double
    /// quotes has them removed. A key given twice: the last one wins (as in shell files).
    ///
    /// # Errors
    /// [`Error::Syntax`] with the line number.
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::parse_named(text, "agent.conf")
    }

    /// Like [`ConfigFile::parse`], naming the file in errors.
    ///
    /// # Errors
    /// [`Error::Syntax`] with the line number.
    pub fn parse_named(text: &str, file: &str) -> Result<Self, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                lines.push(Line::Verbatim(raw.trim_end_matches('\r').to_string()));
                continue;
            }
            let (key, value) = trimmed.split_once('=').ok_or_else(|| Error::Syntax {
                file: file.to_string(),
                line: index + 1,
            })?;
            let key = key.trim();
            // A byte-order mark inside a key (two concatenated files) would vanish on rewrite.
            if key.is_empty()
                || key.contains(|c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}')
            {
                return Err(Error::Syntax {
                    file: file.to_string(),
                    line: index + 1,
                });
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value);
            lines.push(Line::Entry {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        Ok(Self { lines })
    }

    /// Reads and parses a file: never through a link, only a regular file, at most
    /// [`MAX_CONFIG_BYTES`], without blocking on a FIFO ([`durable_fs::read_file`]).
    ///
    /// # Errors
    /// [`Error::Io`] (kind `NotFound` when it is missing) or [`Error::Syntax`].
    pub fn read(path: &std::path::Path) -> Result<Self, Error> {
        let file = path.display().to_string();
        let io = |source: std::io::Error| Error::Io {
            file: file.clone(),
            source,
        };
        let bytes = durable_fs::read_file(path, MAX_CONFIG_BYTES)
            .map_err(|error| io(error.into()))?
            .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "it is not UTF-8 text",
            ))
        })?;
        Self::parse_named(&text, &file)
    }

    /// The value of `key` (the last occurrence).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|line| match line {
            Line::Entry { key: found, value } if found == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// Sets `key`, in place where it already is (every earlier duplicate is removed), or at the
    /// end.
    pub fn set(&mut self, key: &str, value: &str) {
        let last = self
            .lines
            .iter()
            .rposition(|line| matches!(line, Line::Entry { key: found, .. } if found == key));
        match last {
            Some(position) => {
                self.lines[position] = Line::Entry {
                    key: key.to_string(),
                    value: value.to_string(),
                };
                let mut index = 0;
                self.lines.retain(|line| {
                    let keep = index >= position
                        || !matches!(line, Line::Entry { key: found, .. } if found == key);
                    index += 1;
                    keep
                });
            }
            None => self.lines.push(Line::Entry {
                key: key.to_string(),
                value: value.to_string(),
            }),
        }
    }

    /// Sets `key` only if it is absent.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if self.get(key).is_none() {
            self.set(key, value);
        }
    }

    /// Removes every occurrence of `key`.
    pub fn remove(&mut self, key: &str) {
        self.lines
            .retain(|line| !matches!(line, Line::Entry { key: found, .. } if found == key));
    }

    /// Adds a comment line at the end.
    pub fn push_comment(&mut self, text: &str) {
        self.lines.push(Line::Verbatim(format!("# {text}")));
    }

    /// All keys present, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            Line::Entry { key, .. } => Some(key.as_str()),
            Line::Verbatim(_) => None,
        })
    }

    /// The text, one line each, ending with a newline.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Verbatim(verbatim) => text.push_str(verbatim),
                Line::Entry { key, value } => {
                    text.push_str(key);
                    text.push('=');
                    // Parsing trims whitespace and removes one pair of surrounding quotes: a
                    // value that would lose either is written in quotes, so it reads back as is.
                    let needs_quotes = value.trim() != value
                        || (value.len() >= 2 && value.starts_with('"') && value.ends_with('"'));
                    if needs_quotes {
                        text.push('"');
                        text.push_str(value);
                        text.push('"');
                    } else {
                        text.push_str(value);
                    }
                }
            }
            text.push('\n');
        }
        text
    }
}

/// How the manager's web certificate is verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagerTrust {
    /// A PEM file of CA certificates.
    CaFile(PathBuf),
    /// The SHA-256 of the web certificate (parsed when the file is read).
    Fingerprint(Fingerprint),
}

/// The `PROXY` setting of agent.conf, as written (the URL is checked by the agent, which knows
/// the proxy syntax). `Debug` hides a password in the URL.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ProxyConfig {
    /// Absent or empty: the environment decides.
    #[default]
    Environment,
    /// `none` (any case): connect directly, whatever the environment says.
    None,
    /// A proxy URL.
    Url(String),
}

impl ProxyConfig {
    /// Reads a `PROXY` value (`None`: the key is absent).
    pub fn from_value(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("") => Self::Environment,
            Some(text) if text.eq_ignore_ascii_case("none") => Self::None,
            Some(text) => Self::Url(text.to_string()),
        }
    }

    /// The `PROXY` setting of a parsed file.
    pub fn from_file(file: &ConfigFile) -> Self {
        Self::from_value(file.get(keys::PROXY))
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment => formatter.write_str("Environment"),
            Self::None => formatter.write_str("None"),
            Self::Url(url) => {
                // Everything before the last '@' is user information: not shown.
                let shown = match url.rsplit_once('@') {
                    Some((before, host)) => {
                        let scheme = before.split_once("://").map_or("", |(scheme, _)| scheme);
                        if scheme.is_empty() {
                            format!("***@{host}")
                        } else {
                            format!("{scheme}://***@{host}")
                        }
                    }
                    None => url.clone(),
                };
                formatter.debug_tuple("Url").field(&shown).finish()
            }
        }
    }
}

/// The typed settings of a registered agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// The manager's base URL.
    pub url: String,
    /// The client id.
    pub client_id: String,
    /// The registered name.
    pub client_name: String,
    /// Where renewed sets are looked for; `None` when the host did not register with an
    /// external certificate directory.
    pub external_cert_dir: Option<PathBuf>,
    /// How to verify the manager.
    pub manager_trust: ManagerTrust,
    /// Renewal window in days.
    pub renew_days_before_expiry: u32,
    /// Retry interval in hours.
    pub renew_retry_hours: u32,
    /// Largest stagger in hours.
    pub renew_stagger_hours: u32,
    /// The lowest level uploaded to the manager (`LOG_UPLOAD_LEVEL`); `None`: upload nothing.
    pub log_upload_level: Option<Severity>,
    /// Heartbeat interval in minutes.
    pub status_interval_minutes: u32,
    /// The proxy to the manager (`PROXY`).
    pub proxy: ProxyConfig,
    /// The Prometheus textfile to write (`METRICS_FILE`); `None`: none.
    pub metrics_file: Option<PathBuf>,
    /// The log folder (`LOG_DIR`); `None`: the default for the agent root.
    pub log_dir: Option<PathBuf>,
    /// Where new generations' data keys are sealed (`KEY_PROTECTOR`, `TPM_TCTI`, `TPM_PCRS`).
    pub key_protection: KeyProtection,
}

/// Default renewal window (days), from the product documentation.
pub const DEFAULT_RENEW_DAYS: u32 = 60;
/// Default retry interval (hours), from the product documentation.
pub const DEFAULT_RETRY_HOURS: u32 = 24;
/// Default stagger (hours), as the product staggers its own renewals.
pub const DEFAULT_STAGGER_HOURS: u32 = 48;
/// Default heartbeat interval (minutes).
pub const DEFAULT_STATUS_MINUTES: u32 = 60;

impl AgentSettings {
    /// Reads the typed settings out of a parsed file.
    ///
    /// # Errors
    /// [`Error::Missing`] or [`Error::Invalid`] naming the key.
    pub fn from_file(file: &ConfigFile, name: &str) -> Result<Self, Error> {
        let missing = |key: &'static str, hint: &'static str| Error::Missing {
            file: name.to_string(),
            key,
            hint,
        };
        let invalid = |key: &str, reason: String| Error::Invalid {
            file: name.to_string(),
            key: key.to_string(),
            reason,
        };
        let url = file
            .get(keys::URL)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| missing(keys::URL, "register the host with register_host"))?
            .to_string();
        let client_id = file
            .get(keys::CLIENT_ID)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| missing(keys::CLIENT_ID, "register the host with register_host"))?
            .to_string();
        let client_name = file.get(keys::CLIENT_NAME).unwrap_or_default().to_string();
        let external_cert_dir = file
            .get(keys::EXTERNAL_CERT_DIR)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from);
        let manager_trust = match (file.get(keys::CM_CA_FILE), file.get(keys::CM_FINGERPRINT)) {
            (Some(ca), _) if !ca.is_empty() => ManagerTrust::CaFile(PathBuf::from(ca)),
            (_, Some(text)) if !text.is_empty() => match text.parse::<Fingerprint>() {
                Ok(fingerprint) => ManagerTrust::Fingerprint(fingerprint),
                Err(error) => return Err(invalid(keys::CM_FINGERPRINT, error.to_string())),
            },
            _ => {
                return Err(missing(
                    keys::CM_CA_FILE,
                    "set CM_CA_FILE or CM_FINGERPRINT so the manager can be verified",
                ));
            }
        };
        let number =
            |key: &str, default: u32, range: std::ops::RangeInclusive<u32>| match file.get(key) {
                None | Some("") => Ok(default),
                Some(text) => match text.parse::<u32>() {
                    Ok(value) if range.contains(&value) => Ok(value),
                    _ => Err(invalid(
                        key,
                        format!(
                            "expected a whole number from {} to {}",
                            range.start(),
                            range.end()
                        ),
                    )),
                },
            };
        let log_upload_level = match file
            .get(keys::LOG_UPLOAD_LEVEL)
            .map(|value| value.to_ascii_uppercase())
            .as_deref()
        {
            None | Some("") | Some("WARNING") | Some("WARN") => Some(Severity::Warning),
            Some("INFO") => Some(Severity::Info),
            Some("ERROR") => Some(Severity::Error),
            Some("CRITICAL") => Some(Severity::Critical),
            Some("NONE") | Some("OFF") => None,
            Some(_) => {
                return Err(invalid(
                    keys::LOG_UPLOAD_LEVEL,
                    "expected INFO, WARNING, ERROR, CRITICAL or NONE".to_string(),
                ));
            }
        };
        Ok(Self {
            url,
            client_id,
            client_name,
            external_cert_dir,
            manager_trust,
            renew_days_before_expiry: number(
                keys::RENEW_DAYS_BEFORE_EXPIRY,
                DEFAULT_RENEW_DAYS,
                1..=3650,
            )?,
            renew_retry_hours: number(keys::RENEW_RETRY_HOURS, DEFAULT_RETRY_HOURS, 1..=24 * 30)?,
            renew_stagger_hours: number(
                keys::RENEW_STAGGER_HOURS,
                DEFAULT_STAGGER_HOURS,
                0..=24 * 14,
            )?,
            log_upload_level,
            status_interval_minutes: number(
                keys::STATUS_INTERVAL_MINUTES,
                DEFAULT_STATUS_MINUTES,
                1..=24 * 60,
            )?,
            proxy: ProxyConfig::from_file(file),
            metrics_file: path_setting(file, keys::METRICS_FILE),
            log_dir: path_setting(file, keys::LOG_DIR),
            key_protection: KeyProtection::from_file(file, name)?,
        })
    }
}

/// A path setting: absent or empty (after trimming) is `None`.
pub fn path_setting(file: &ConfigFile, key: &str) -> Option<PathBuf> {
    file.get(key)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// The typed view of a silent-registration file (`register_host silent FILE`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SilentFile {
    /// `SERVER_HOSTNAME` (may carry a port).
    pub server_hostname: Option<String>,
    /// `SERVER_IP`, used when no host name is given.
    pub server_ip: Option<String>,
    /// `REG_TOKEN`. Secret.
    pub reg_token: Option<String>,
    /// `AGENT_HOST_NAME`.
    pub agent_host_name: Option<String>,
    /// `HOST_DESC`.
    pub host_description: Option<String>,
    /// `EXTERNAL_CERT_DIR`.
    pub external_cert_dir: Option<PathBuf>,
    /// `CM_CA_FILE` (this project's addition).
    pub cm_ca_file: Option<PathBuf>,
    /// `CM_FINGERPRINT` (this project's addition), parsed when the file is read.
    pub cm_fingerprint: Option<Fingerprint>,
    /// Keys present in the file that this agent does not use (`AGENT_USEIP`, `HOST_PROFILE`,
    /// typos), so the caller can warn.
    pub ignored_keys: Vec<String>,
}

impl std::fmt::Debug for SilentFile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SilentFile")
            .field("server_hostname", &self.server_hostname)
            .field("reg_token", &self.reg_token.as_ref().map(|_| ".."))
            .field("agent_host_name", &self.agent_host_name)
            .field("external_cert_dir", &self.external_cert_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for SilentFile {
    fn drop(&mut self) {
        if let Some(token) = self.reg_token.as_mut() {
            zeroize::Zeroize::zeroize(token);
        }
    }
}

impl SilentFile {
    /// Parses the text of a silent-registration file.
    ///
    /// # Errors
    /// [`Error::Syntax`] with the line number; [`Error::Invalid`] for a `CM_FINGERPRINT` that
    /// is not 64 hex digits.
    pub fn parse(text: &str, name: &str) -> Result<Self, Error> {
        let file = ConfigFile::parse_named(text, name)?;
        let value = |key: &str| file.get(key).filter(|v| !v.is_empty()).map(str::to_string);
        let cm_fingerprint = match value("CM_FINGERPRINT") {
            None => None,
            Some(text) => Some(
                text.parse::<Fingerprint>()
                    .map_err(|error| Error::Invalid {
                        file: name.to_string(),
                        key: "CM_FINGERPRINT".to_string(),
                        reason: error.to_string(),
                    })?,
            ),
        };
        let mut silent = Self {
            server_hostname: value("SERVER_HOSTNAME"),
            server_ip: value("SERVER_IP"),
            reg_token: value("REG_TOKEN"),
            agent_host_name: value("AGENT_HOST_NAME"),
            host_description: value("HOST_DESC"),
            external_cert_dir: value("EXTERNAL_CERT_DIR").map(PathBuf::from),
            cm_ca_file: value("CM_CA_FILE").map(PathBuf::from),
            cm_fingerprint,
            ignored_keys: Vec::new(),
        };
        const KNOWN: [&str; 8] = [
            "SERVER_HOSTNAME",
            "SERVER_IP",
            "REG_TOKEN",
            "AGENT_HOST_NAME",
            "HOST_DESC",
            "EXTERNAL_CERT_DIR",
            "CM_CA_FILE",
            "CM_FINGERPRINT",
        ];
        silent.ignored_keys = file
            .keys()
            .filter(|key| !KNOWN.contains(key))
            .map(str::to_string)
            .collect();
        Ok(silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Written by an admin\nURL=https://cm:8443\n\nCLIENT_ID=abc\nCUSTOM_KEY = kept value\nCM_CA_FILE=\"/etc/cm ca.pem\"\n";

    #[test]
    fn rewriting_keeps_comments_unknown_keys_and_order() {
        let mut file = ConfigFile::parse(SAMPLE).unwrap();
        file.set(keys::CLIENT_ID, "def");
        file.set(keys::EXTERNAL_CERT_DIR, "/root/cert_files");
        assert_eq!(
            file.render(),
            "# Written by an admin\nURL=https://cm:8443\n\nCLIENT_ID=def\nCUSTOM_KEY=kept value\nCM_CA_FILE=/etc/cm ca.pem\nEXTERNAL_CERT_DIR=/root/cert_files\n"
        );
    }

    #[test]
    fn values_with_quotes_or_padding_survive_a_rewrite() {
        // Found by the agent_conf fuzz target: `A=""x""` read back as `x` after a rewrite.
        let file = ConfigFile::parse("A=\"\"x\"\"\nB=\"  padded \"\nC=\"\nD=plain\n").unwrap();
        let again = ConfigFile::parse(&file.render()).unwrap();
        for key in ["A", "B", "C", "D"] {
            assert_eq!(file.get(key), again.get(key), "{key}");
        }
        assert_eq!(file.get("A"), Some("\"x\""));
        assert_eq!(file.get("B"), Some("  padded "));
    }

    #[test]
    fn duplicates_collapse_to_the_last_on_set() {
        let mut file = ConfigFile::parse("A=1\nB=2\nA=3\n").unwrap();
        assert_eq!(file.get("A"), Some("3"));
        file.set("A", "4");
        assert_eq!(file.render(), "B=2\nA=4\n");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = ConfigFile::parse("URL=x\nthis is not a setting\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "agent.conf line 2: expected KEY=VALUE or a # comment"
        );
    }

    #[test]
    fn settings_have_defaults_and_checked_ranges() {
        let file = ConfigFile::parse(SAMPLE).unwrap();
        let settings = AgentSettings::from_file(&file, "agent.conf").unwrap();
        assert_eq!(settings.renew_days_before_expiry, 60);
        assert_eq!(settings.renew_retry_hours, 24);
        assert_eq!(settings.renew_stagger_hours, 48);
        assert_eq!(settings.log_upload_level, Some(Severity::Warning));
        assert_eq!(
            settings.manager_trust,
            ManagerTrust::CaFile("/etc/cm ca.pem".into())
        );
        let mut bad = file.clone();
        bad.set(keys::RENEW_DAYS_BEFORE_EXPIRY, "-5");
        let error = AgentSettings::from_file(&bad, "agent.conf").unwrap_err();
        assert!(
            error.to_string().contains("RENEW_DAYS_BEFORE_EXPIRY"),
            "{error}"
        );
        let mut bad = file.clone();
        bad.remove(keys::CM_CA_FILE);
        assert!(AgentSettings::from_file(&bad, "agent.conf").is_err());
        bad.set(keys::CM_FINGERPRINT, "zz");
        assert!(AgentSettings::from_file(&bad, "agent.conf").is_err());
        bad.set(
            keys::CM_FINGERPRINT,
            &"AB:".repeat(31).to_string().replace(' ', ""),
        );
        assert!(AgentSettings::from_file(&bad, "agent.conf").is_err());
        bad.set(keys::CM_FINGERPRINT, &"ab".repeat(32));
        assert!(AgentSettings::from_file(&bad, "agent.conf").is_ok());
    }

    #[test]
    fn metrics_file_and_log_dir_are_off_when_empty() {
        let settings = |text: &str| {
            let file = ConfigFile::parse(&format!("{SAMPLE}{text}")).unwrap();
            AgentSettings::from_file(&file, "agent.conf").unwrap()
        };
        let plain = settings("");
        assert_eq!((plain.metrics_file, plain.log_dir), (None, None));
        let empty = settings("METRICS_FILE=\nLOG_DIR=  \n");
        assert_eq!((empty.metrics_file, empty.log_dir), (None, None));
        let set = settings(
            "METRICS_FILE=/var/lib/prometheus/node-exporter/cte-agent.prom\nLOG_DIR=/var/log/vormetric\n",
        );
        assert_eq!(
            set.metrics_file,
            Some(PathBuf::from(
                "/var/lib/prometheus/node-exporter/cte-agent.prom"
            ))
        );
        assert_eq!(set.log_dir, Some(PathBuf::from("/var/log/vormetric")));
    }

    #[test]
    fn proxy_setting_reads_none_urls_and_hides_passwords() {
        let settings = |text: &str| {
            let file = ConfigFile::parse(&format!("{SAMPLE}{text}")).unwrap();
            AgentSettings::from_file(&file, "agent.conf").unwrap().proxy
        };
        assert_eq!(settings(""), ProxyConfig::Environment);
        assert_eq!(settings("PROXY=\n"), ProxyConfig::Environment);
        assert_eq!(settings("PROXY=None\n"), ProxyConfig::None);
        assert_eq!(
            settings("PROXY=http://proxy:3128\n"),
            ProxyConfig::Url("http://proxy:3128".to_string())
        );
        let secret = settings("PROXY=http://agent:s3cret@proxy:3128\n");
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("proxy:3128"),
            "{shown}"
        );
        let file = ConfigFile::parse(&format!("{SAMPLE}PROXY=a:b@proxy:3128\n")).unwrap();
        let settings = AgentSettings::from_file(&file, "agent.conf").unwrap();
        assert!(!format!("{settings:?}").contains("a:b"));
    }

    #[test]
    fn silent_file_reads_public_keys_and_hides_the_token() {
        let silent = SilentFile::parse(
            "SERVER_HOSTNAME=cm.example.com:8443\nREG_TOKEN=secret-token\nAGENT_HOST_NAME=host1\nHOST_DESC=web server\nAGENT_USEIP=no\n",
            "silent.txt",
        )
        .unwrap();
        assert_eq!(
            silent.server_hostname.as_deref(),
            Some("cm.example.com:8443")
        );
        assert_eq!(silent.reg_token.as_deref(), Some("secret-token"));
        assert_eq!(silent.ignored_keys, vec!["AGENT_USEIP".to_string()]);
        assert!(!format!("{silent:?}").contains("secret-token"));
    }
}
