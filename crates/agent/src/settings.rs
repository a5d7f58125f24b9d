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
pub fn load_settings(root: &AgentRoot) -> Result<agent_config::AgentSettings, AgentError> {
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
pub fn policy_from(settings: &agent_config::AgentSettings) -> Policy {
    const HOUR: u64 = 3600;
    Policy {
        renew_before: Duration::from_secs(u64::from(settings.renew_days_before_expiry) * 24 * HOUR),
        retry_interval: Duration::from_secs(u64::from(settings.renew_retry_hours) * HOUR),
        max_stagger: Duration::from_secs(u64::from(settings.renew_stagger_hours) * HOUR),
        ..Policy::default()
    }
}
