//! Building manager clients from what the agent has: identities, trust settings, agent.conf.

use crate::AgentError;
use crate::register::TrustChoice;

/// The cm-client view of a cert-loading identity (chain and key bytes, in memory).
pub fn client_identity(identity: &cert_loading::Identity) -> cm_client::ClientIdentity {
    cm_client::ClientIdentity {
        chain: identity.chain().to_vec(),
        key_pkcs8_der: zeroize::Zeroizing::new(identity.key().pkcs8_der().to_vec()),
    }
}

/// Turns a trust choice into cm-client trust, returning the CA file's PEM when there is one.
///
/// # Errors
/// [`AgentError::Io`] when the CA file cannot be read, [`AgentError::Usage`] for a malformed
/// fingerprint, [`AgentError::InvalidFile`] for a CA file without certificates.
pub fn trust_from_choice(
    choice: &TrustChoice,
) -> Result<(cm_client::ServerTrust, Option<Vec<u8>>), AgentError> {
    match choice {
        TrustChoice::CaFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|error| AgentError::io(path, "reading the manager CA file", error))?;
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
        TrustChoice::Fingerprint(text) => {
            let fingerprint = cert_loading::Fingerprint::parse(text).ok_or_else(|| {
                AgentError::Usage(format!(
                    "--cm-fingerprint \"{text}\" is not a SHA-256 fingerprint: give 64 hex digits, with or without colons"
                ))
            })?;
            Ok((
                cm_client::ServerTrust::Sha256Fingerprint(fingerprint.0),
                None,
            ))
        }
    }
}

/// The trust recorded in agent.conf.
///
/// # Errors
/// As [`trust_from_choice`].
pub fn trust_from_settings(
    settings: &agent_config::AgentSettings,
) -> Result<cm_client::ServerTrust, AgentError> {
    let (choice, key) = match &settings.manager_trust {
        agent_config::ManagerTrust::CaFile(path) => (
            TrustChoice::CaFile(path.clone()),
            agent_config::keys::CM_CA_FILE,
        ),
        agent_config::ManagerTrust::Fingerprint(text) => (
            TrustChoice::Fingerprint(text.clone()),
            agent_config::keys::CM_FINGERPRINT,
        ),
    };
    // A bad value here is a bad agent.conf (exit 3), not a command-line mistake (exit 2).
    match trust_from_choice(&choice) {
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

/// A client for the manager in agent.conf, presenting `identity`.
///
/// # Errors
/// As [`trust_from_choice`], and [`AgentError::Manager`] when the identity is unusable for TLS.
pub fn client_for(
    settings: &agent_config::AgentSettings,
    identity: &cert_loading::Identity,
) -> Result<cm_client::ManagerClient, AgentError> {
    Ok(cm_client::ManagerClient::new(
        cm_client::ManagerUrl::parse(&settings.url)?,
        trust_from_settings(settings)?,
        Some(&client_identity(identity)),
        cm_client::Options::default(),
    )?)
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

/// HTTPS to the manager of agent.conf, verified as agent.conf says ([`client_for`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TlsConnector;

impl Connector for TlsConnector {
    fn client_for(
        &self,
        settings: &agent_config::AgentSettings,
        identity: &cert_loading::Identity,
    ) -> Result<cm_client::ManagerClient, AgentError> {
        client_for(settings, identity)
    }

    fn validate(&self, settings: &agent_config::AgentSettings) -> Result<(), AgentError> {
        cm_client::ManagerUrl::parse(&settings.url).map_err(|error| {
            AgentError::Config(agent_config::Error::Invalid {
                file: "agent.conf".to_string(),
                key: agent_config::keys::URL.to_string(),
                reason: error.to_string(),
            })
        })?;
        trust_from_settings(settings).map(drop)
    }
}
