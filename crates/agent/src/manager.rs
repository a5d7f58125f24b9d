//! Building manager clients from what the agent has: identities, trust settings, agent.conf.
//!
//! # The proxy
//! Which HTTP proxy carries the connection to the manager is decided by, first to last:
//! 1. `--proxy URL|none` on the command line, carried by the connector the binary builds
//!    ([`TlsConnector::with_proxy`]; no process-global state),
//! 2. `PROXY=URL|none` in agent.conf,
//! 3. the environment (`https_proxy`, `HTTPS_PROXY`, `all_proxy`, `ALL_PROXY`, with
//!    `no_proxy`/`NO_PROXY`, as curl reads them for an https URL; see `cm_client::proxy`).

use crate::AgentError;
use agent_config::ManagerTrust;

/// A `--proxy` flag's value, parsed.
pub use cm_client::ProxySetting;

/// The note for a `--proxy` value with a password in it (`http://user:password@proxy:3128`):
/// like a token, it is visible to other local users while the command runs.
pub fn proxy_flag_note(value: &str) -> Option<&'static str> {
    let authority = value.split_once("://").map_or(value, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.contains(':').then_some(
        "note: a proxy password on the command line is visible to other local users while this runs; prefer PROXY= in agent.conf (0600) or the HTTPS_PROXY environment variable",
    )
}

/// The proxy setting with the precedence of this module: `flag` > agent.conf > environment.
///
/// # Errors
/// [`AgentError::Config`] naming `PROXY` when agent.conf's value is unusable.
pub(crate) fn choose_proxy(
    flag: Option<&cm_client::ProxySetting>,
    conf: &agent_config::ProxyConfig,
) -> Result<cm_client::ProxySetting, AgentError> {
    if let Some(flag) = flag {
        return Ok(flag.clone());
    }
    match conf {
        agent_config::ProxyConfig::Environment => Ok(cm_client::ProxySetting::FromEnvironment),
        agent_config::ProxyConfig::None => Ok(cm_client::ProxySetting::None),
        agent_config::ProxyConfig::Url(text) => {
            cm_client::ProxySetting::parse(text).map_err(|error| {
                AgentError::Config(agent_config::Error::Invalid {
                    file: "agent.conf".to_string(),
                    key: agent_config::keys::PROXY.to_string(),
                    reason: format!("{error}; or write PROXY=none to connect directly"),
                })
            })
        }
    }
}

/// The client options for a manager call, with the proxy chosen from the command line's
/// `--proxy` (`flag`), then `conf` (agent.conf's `PROXY`), then the environment.
///
/// # Errors
/// As [`choose_proxy`].
pub(crate) fn client_options(
    flag: Option<&ProxySetting>,
    conf: &agent_config::ProxyConfig,
) -> Result<cm_client::Options, AgentError> {
    Ok(cm_client::Options {
        proxy: choose_proxy(flag, conf)?,
        ..cm_client::Options::default()
    })
}

/// The client options at registration, when agent.conf may not exist yet (`existing`: the file
/// if it does; an administrator may have put `PROXY` in it beforehand).
///
/// # Errors
/// As [`choose_proxy`].
pub(crate) fn registration_options(
    flag: Option<&ProxySetting>,
    existing: Option<&agent_config::ConfigFile>,
) -> Result<cm_client::Options, AgentError> {
    client_options(
        flag,
        &existing
            .map(agent_config::ProxyConfig::from_file)
            .unwrap_or_default(),
    )
}

/// The cm-client view of a cert-loading identity (chain and key bytes, in memory).
pub(crate) fn client_identity(identity: &cert_loading::Identity) -> cm_client::ClientIdentity {
    cm_client::ClientIdentity {
        chain: identity.chain().to_vec(),
        key_pkcs8_der: zeroize::Zeroizing::new(identity.key().pkcs8_der().to_vec()),
    }
}

/// Turns a trust choice into cm-client trust, returning the CA file's PEM when there is one.
///
/// # Errors
/// [`AgentError::Io`] when the CA file cannot be read, [`AgentError::InvalidFile`] for a CA file
/// without certificates. (A fingerprint was parsed where it was written.)
pub(crate) fn trust_from_choice(
    choice: &ManagerTrust,
) -> Result<(cm_client::ServerTrust, Option<Vec<u8>>), AgentError> {
    match choice {
        ManagerTrust::CaFile(path) => {
            // Operator-controlled: no links, a regular file, bounded (not secret: no mode warning).
            let (pem, _) = crate::secrets::read_operator_file(
                path,
                "the manager CA file",
                "reading the manager CA file",
            )?;
            let pem = pem.to_vec();
            let trust = cm_client::ServerTrust::from_pem(&pem).map_err(|error| {
                AgentError::InvalidFile {
                    path: path.clone(),
                    problem: format!(
                        "{error}; give the manager's web CA certificate in PEM (BEGIN CERTIFICATE)"
                    ),
                }
            })?;
            Ok((trust, Some(pem)))
        }
        ManagerTrust::Fingerprint(fingerprint) => Ok((
            cm_client::ServerTrust::Sha256Fingerprint(*fingerprint),
            None,
        )),
    }
}

/// The trust recorded in agent.conf.
///
/// # Errors
/// As [`trust_from_choice`].
pub(crate) fn trust_from_settings(
    settings: &agent_config::AgentSettings,
) -> Result<cm_client::ServerTrust, AgentError> {
    let key = match &settings.manager_trust {
        ManagerTrust::CaFile(_) => agent_config::keys::CM_CA_FILE,
        ManagerTrust::Fingerprint(_) => agent_config::keys::CM_FINGERPRINT,
    };
    // A bad value here is a bad agent.conf (exit 3), not a command-line mistake (exit 2).
    match trust_from_choice(&settings.manager_trust) {
        Ok((trust, _)) => Ok(trust),
        Err(AgentError::Usage(reason)) => Err(AgentError::Config(agent_config::Error::Invalid {
            file: "agent.conf".to_string(),
            key: key.to_string(),
            reason,
        })),
        Err(AgentError::InvalidFile { path, problem }) => {
            Err(AgentError::Config(agent_config::Error::Invalid {
                file: "agent.conf".to_string(),
                key: key.to_string(),
                reason: format!("{}: {problem}", path.display()),
            }))
        }
        Err(other) => Err(other),
    }
}

/// Makes the manager clients the agent's operations use, one per identity. The production
/// connector ([`TlsConnector`]) speaks HTTPS to the manager named in agent.conf; a simulation
/// supplies one over an in-process manager (see `cm_client::Transport`).
pub trait Connector: Send + Sync {
    /// A client presenting `identity`.
    ///
    /// # Errors
    /// When the settings or the identity cannot be used (nothing is sent then).
    fn client_for(
        &self,
        settings: &agent_config::AgentSettings,
        identity: &cert_loading::Identity,
    ) -> Result<cm_client::ManagerClient, AgentError>;

    /// Checks the settings this connector will use, before anything is locked or written
    /// (a bad agent.conf is refused with the agent root unchanged).
    ///
    /// # Errors
    /// When the settings cannot be used.
    fn validate(&self, _settings: &agent_config::AgentSettings) -> Result<(), AgentError> {
        Ok(())
    }
}

/// HTTPS to the manager of agent.conf, verified as agent.conf says, through the proxy of the
/// command line's `--proxy` if the binary was given one, else agent.conf's, else the
/// environment's.
#[derive(Clone, Debug, Default)]
pub struct TlsConnector {
    proxy: Option<ProxySetting>,
}

impl TlsConnector {
    /// A connector with the command line's `--proxy` (`None`: agent.conf and the environment
    /// decide).
    pub fn with_proxy(proxy: Option<ProxySetting>) -> Self {
        Self { proxy }
    }

    /// The command line's proxy, if any (registration uses it too).
    pub fn proxy(&self) -> Option<&ProxySetting> {
        self.proxy.as_ref()
    }
}

impl Connector for TlsConnector {
    fn client_for(
        &self,
        settings: &agent_config::AgentSettings,
        identity: &cert_loading::Identity,
    ) -> Result<cm_client::ManagerClient, AgentError> {
        Ok(cm_client::ManagerClient::new(
            cm_client::ManagerUrl::parse(&settings.url)?,
            trust_from_settings(settings)?,
            Some(&client_identity(identity)),
            client_options(self.proxy.as_ref(), &settings.proxy)?,
        )?)
    }

    fn validate(&self, settings: &agent_config::AgentSettings) -> Result<(), AgentError> {
        cm_client::ManagerUrl::parse(&settings.url).map_err(|error| {
            AgentError::Config(agent_config::Error::Invalid {
                file: "agent.conf".to_string(),
                key: agent_config::keys::URL.to_string(),
                reason: error.to_string(),
            })
        })?;
        choose_proxy(self.proxy.as_ref(), &settings.proxy)?;
        trust_from_settings(settings).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_agent_conf_which_wins_over_the_environment() {
        let url = |text: &str| cm_client::ProxySetting::parse(text).unwrap();
        let conf_url = agent_config::ProxyConfig::Url("http://conf:3128".to_string());
        let cases = [
            (
                None,
                agent_config::ProxyConfig::Environment,
                cm_client::ProxySetting::FromEnvironment,
            ),
            (
                None,
                agent_config::ProxyConfig::None,
                cm_client::ProxySetting::None,
            ),
            (None, conf_url.clone(), url("http://conf:3128")),
            (
                Some(url("http://flag:1")),
                conf_url.clone(),
                url("http://flag:1"),
            ),
            (
                Some(cm_client::ProxySetting::None),
                conf_url.clone(),
                cm_client::ProxySetting::None,
            ),
            (
                Some(url("http://flag:1")),
                agent_config::ProxyConfig::Environment,
                url("http://flag:1"),
            ),
        ];
        for (flag, conf, expected) in cases {
            assert_eq!(
                choose_proxy(flag.as_ref(), &conf).unwrap(),
                expected,
                "{flag:?} {conf:?}"
            );
        }
        // A bad agent.conf value names the key, not the value; a good flag covers it up.
        let bad = agent_config::ProxyConfig::Url("socks5://user:hidden@p".to_string());
        let error = choose_proxy(None, &bad).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("PROXY") && !text.contains("hidden"), "{text}");
        assert_eq!(error.exit_status(), crate::ExitStatus::LocalInput);
        assert!(choose_proxy(Some(&cm_client::ProxySetting::None), &bad).is_ok());
    }
}
