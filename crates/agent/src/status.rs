//! `vmutil -a vmd status` and `certexpiry`: what the agent knows about itself, without the network.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use crate::AgentError;
use crate::checkcerts::{CertificateReport, days_between};
use crate::paths::AgentRoot;
use crate::renewal::{CheckStatus, Journal};

/// One generation of the pem store.
#[derive(Clone, Debug, Serialize)]
pub struct GenerationLine {
    /// The generation (a number in JSON).
    pub id: keystore::GenerationId,
    /// `current`, `previous` or `staged`.
    pub role: String,
    /// SHA-256 fingerprint (or the error reading it).
    pub fingerprint: String,
    /// End of validity.
    pub not_after: String,
    /// The key protector that sealed its data key (`file`, `tpm`, `dpapi` in JSON).
    pub key_protector: keystore::KeyProtectorKind,
}

/// The agent's state.
#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    /// The agent root.
    pub agent_root: PathBuf,
    /// Whether `vmd/pem/agent.pem` and agent.conf exist.
    pub registered: bool,
    /// The client id.
    pub client_id: String,
    /// The manager.
    pub manager_url: String,
    /// The saved external certificate directory.
    pub external_cert_dir: String,
    /// The current certificate.
    pub certificate: Option<CertificateReport>,
    /// When this host's renewal window opens (stagger included).
    pub renewal_window_start: String,
    /// The last check, from status.json.
    pub last_check: Option<CheckStatus>,
    /// A renewal interrupted and not yet finished, if any.
    pub pending_update: Option<Journal>,
    /// The store's generations.
    pub generations: Vec<GenerationLine>,
}

/// Reads the status at `now`.
///
/// # Errors
/// [`AgentError::NotRegistered`] and the errors of reading agent.conf and the store.
pub fn status(root: &AgentRoot, now: SystemTime) -> Result<AgentStatus, AgentError> {
    let agent = crate::settings::Agent::load(root)?;
    let (settings, store) = (&agent.settings, &agent.store);
    // The certificate only: status never decrypts the key.
    let (chain, _) = store.current_certificate()?;
    let source = store.agent_pem_path();
    let certificate = cert_loading::summarize_certificate(&source, &chain)?;
    let key = cert_loading::public_key_algorithm(&source, &chain)?;
    let window =
        renewal_policy::renewal_window_start(&agent.policy, &agent.host, certificate.not_after);
    let last_check = crate::fsutil::read_own(&root.status_file())?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let pending_update = crate::fsutil::read_own(&root.journal_file())?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let generations = store
        .status()?
        .generations
        .iter()
        .map(|generation| GenerationLine {
            id: generation.id,
            role: generation.role.as_str().to_owned(),
            fingerprint: match &generation.info {
                Ok(info) => info.fingerprint.to_string(),
                Err(error) => format!("unreadable: {error}"),
            },
            not_after: match &generation.info {
                Ok(info) => cert_loading::format_rfc3339(info.not_after),
                Err(_) => String::new(),
            },
            key_protector: keystore::sealed_by(&root.keys_folder(), generation.id),
        })
        .collect::<Vec<_>>();
    let current_protector = generations
        .iter()
        .find(|generation| generation.role == "current")
        .map_or(keystore::KeyProtectorKind::File, |generation| {
            generation.key_protector
        });
    Ok(AgentStatus {
        agent_root: root.path().to_path_buf(),
        registered: store.agent_pem_path().exists(),
        client_id: settings.client_id.clone(),
        manager_url: settings.url.clone(),
        external_cert_dir: settings
            .external_cert_dir
            .as_ref()
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        certificate: Some(CertificateReport::of_certificate(
            &certificate,
            key,
            chain.len(),
            format!(
                "pem store (AES-256-GCM under a random key {})",
                crate::protection::where_the_key_is(current_protector)
            ),
            Vec::new(),
            now,
        )),
        renewal_window_start: cert_loading::format_rfc3339(window),
        last_check,
        pending_update,
        generations,
    })
}

impl AgentStatus {
    /// Human-readable text.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "agent root:          {}\nregistered:          {}\nclient id:           {}\nmanager:             {}\nexternal cert dir:   {}\n",
            self.agent_root.display(),
            if self.registered { "yes" } else { "no" },
            self.client_id,
            self.manager_url,
            if self.external_cert_dir.is_empty() {
                "(none)"
            } else {
                &self.external_cert_dir
            }
        );
        if let Some(certificate) = &self.certificate {
            text.push_str(&certificate.to_text());
        }
        text.push_str(&format!(
            "renewal window from: {}\n",
            self.renewal_window_start
        ));
        match &self.last_check {
            Some(check) => text.push_str(&format!(
                "last check:          {} [{}] {}: {}\nnext check:          {}\n",
                check.last_check,
                check.level,
                check.result,
                check.message,
                if check.next_check.is_empty() {
                    "none (re-registration required)"
                } else {
                    &check.next_check
                }
            )),
            None => text.push_str("last check:          none yet\n"),
        }
        if let Some(check) = self
            .last_check
            .as_ref()
            .filter(|check| check.log_write_failures > 0)
        {
            text.push_str(&format!(
                "log write failures:  {} lines at the last check were not written to the log file (message CGP3014E on stderr or in the journal says why)\n",
                check.log_write_failures
            ));
        }
        if let Some(journal) = &self.pending_update {
            text.push_str(&format!(
                "pending update:      {} (new fingerprint {}) from {}\n",
                journal.phase, journal.candidate, journal.directory
            ));
        }
        for generation in &self.generations {
            text.push_str(&format!(
                "generation {:>3}:      {:<8} {} expires {} (key: {})\n",
                generation.id,
                generation.role,
                generation.fingerprint,
                generation.not_after,
                generation.key_protector
            ));
        }
        text
    }
}

/// Days left before the current certificate expires (negative once expired).
///
/// # Errors
/// As [`status`].
pub fn days_left(root: &AgentRoot, now: SystemTime) -> Result<i64, AgentError> {
    let store = root.open_store()?;
    let (_, info) = store.current_certificate()?;
    Ok(days_between(now, info.not_after))
}
