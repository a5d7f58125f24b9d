//! agent.conf read once into typed settings, and the renewal policy they configure.

use std::time::Duration;

use renewal_policy::Policy;

use crate::AgentError;
use crate::paths::AgentRoot;

/// Reads the settings of a registered agent.
///
/// # Errors
/// [`AgentError::NotRegistered`] when agent.conf is missing, [`AgentError::Config`] when it is
/// wrong.
pub(crate) fn load_settings(root: &AgentRoot) -> Result<agent_config::AgentSettings, AgentError> {
    let path = root.agent_conf();
    if !path.exists() {
        return Err(AgentError::NotRegistered { path });
    }
    let file = agent_config::ConfigFile::read(&path)?;
    Ok(agent_config::AgentSettings::from_file(
        &file,
        &path.display().to_string(),
    )?)
}

/// The renewal policy configured in agent.conf.
pub(crate) fn policy_from(settings: &agent_config::AgentSettings) -> Policy {
    const HOUR: u64 = 3600;
    Policy {
        renew_before: Duration::from_secs(u64::from(settings.renew_days_before_expiry) * 24 * HOUR),
        retry_interval: Duration::from_secs(u64::from(settings.renew_retry_hours) * HOUR),
        max_stagger: Duration::from_secs(u64::from(settings.renew_stagger_hours) * HOUR),
        ..Policy::default()
    }
}

/// What one check or one heartbeat works with, built once for it: agent.conf parsed once, the
/// pem store opened once, the renewal policy and the host's stagger seed derived once. The daemon
/// builds a new one for each check and each heartbeat, so a changed agent.conf (SIGHUP) takes
/// effect at the next one.
pub struct Agent {
    /// The agent root.
    pub root: AgentRoot,
    /// agent.conf, parsed.
    pub settings: agent_config::AgentSettings,
    /// The pem store.
    pub store: keystore::Keystore,
    /// The renewal policy agent.conf configures.
    pub policy: Policy,
    /// This host's stagger seed (from its client id).
    pub host: renewal_policy::HostSeed,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Agent")
            .field("root", &self.root)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Reads agent.conf and opens the store of a registered agent.
    ///
    /// # Errors
    /// As `load_settings`, and the store's error when it cannot be opened.
    pub fn load(root: &AgentRoot) -> Result<Self, AgentError> {
        let settings = load_settings(root)?;
        let store = root.open_store_protected(&settings.key_protection)?;
        let policy = policy_from(&settings);
        let host = renewal_policy::HostSeed::from_client_id(&settings.client_id);
        Ok(Self {
            root: root.clone(),
            settings,
            store,
            policy,
            host,
        })
    }
}
