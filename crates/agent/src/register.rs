//! `register_host`: register this host with its external certificate set.
//!
//! Order matters for "failure leaves nothing behind": everything that can be checked locally is
//! checked first, then the manager is asked, and only after it accepted is anything written under
//! the agent root. If a local step fails after that, what was written is undone and the error
//! says the manager accepted, with the client id.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use zeroize::Zeroizing;

use crate::fsutil::{self, FileSnapshot};
pub use crate::fsutil::{NotShredded, ShredReport};
use crate::paths::AgentRoot;
use crate::{AgentError, manager};

/// How the manager's TLS certificate is verified: agent.conf's own type (a CA file is copied
/// to `vmd/etc/cm-ca.pem` at registration).
pub use agent_config::ManagerTrust;

/// What `register_host` was asked to do.
#[derive(Clone)]
pub struct RegistrationOptions {
    /// The manager, `host[:port]` or `https://...`.
    pub manager: String,
    /// The registration token. Secret.
    pub token: Zeroizing<String>,
    /// The host name to register under (default: the system's host name).
    pub agent_name: Option<String>,
    /// Free text shown on the manager.
    pub description: String,
    /// The external certificate directory.
    pub external_cert_dir: PathBuf,
    /// How to verify the manager.
    pub trust: ManagerTrust,
    /// Overwrite and remove the three input files after success.
    pub shred_input: bool,
    /// Replace an existing registration.
    pub force: bool,
    /// The command line's `--proxy`, if given (it wins over agent.conf's `PROXY` and the
    /// environment).
    pub proxy: Option<manager::ProxySetting>,
    /// The command line's `--key-protector` and `--tpm-tcti`, if given (written to agent.conf);
    /// `None`: agent.conf's, else `auto`.
    pub key_protection: Option<agent_config::KeyProtection>,
}

impl std::fmt::Debug for RegistrationOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegistrationOptions")
            .field("manager", &self.manager)
            .field("token", &"..")
            .field("agent_name", &self.agent_name)
            .field("external_cert_dir", &self.external_cert_dir)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

/// What a successful registration did.
#[derive(Clone, Debug, Serialize)]
pub struct RegistrationReport {
    /// The client id on the manager.
    pub client_id: String,
    /// The name registered.
    pub client_name: String,
    /// The manager URL.
    pub manager_url: String,
    /// The certificate's common name.
    pub common_name: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// SHA-256 fingerprint.
    pub sha256_fingerprint: String,
    /// Where the current certificate chain is.
    pub agent_pem: PathBuf,
    /// Where the configuration was written.
    pub agent_conf: PathBuf,
    /// The protector that sealed the new identity's data key.
    pub key_protector: keystore::KeyProtectorKind,
    /// Whether all three input files were shredded (overwritten, fsynced and removed).
    pub input_shredded: bool,
    /// With `--shred-input`: which files were shredded and which were not, with why and the state
    /// each was left in (a file that is no longer the one read is never touched).
    pub shred: Option<ShredReport>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// Registers the host. `now` judges the certificate's validity.
///
/// # Errors
/// [`AgentError`]; its [`AgentError::exit_status`] gives the exit code (3 local input, 4 refused,
/// 5 unreachable). On every error before the manager accepted, nothing under the agent root was
/// changed; after it, what was written is undone and [`AgentError::AcceptedButLocalFailure`]
/// names the client id.
pub fn register(
    root: &AgentRoot,
    options: &RegistrationOptions,
    now: SystemTime,
) -> Result<RegistrationReport, AgentError> {
    let agent_conf_path = root.agent_conf();
    check_preconditions(options, &agent_conf_path)?;

    // 1. Everything local, read-only.
    let set = cert_loading::load_directory(
        &options.external_cert_dir,
        &cert_loading::LoadOptions::default(),
        now,
    )?;
    let url = cm_client::ManagerUrl::parse(&options.manager)?;
    let (trust, ca_pem) = manager::trust_from_choice(&options.trust)?;
    let (client_name, cert_dir_text) = names_for_agent_conf(options, &set)?;
    let (existing_conf, protection) = existing_configuration(root, options, &agent_conf_path)?;

    // 2. The manager.
    let client = cm_client::ManagerClient::new(
        url.clone(),
        trust.clone(),
        Some(&manager::client_identity(&set.identity)),
        manager::registration_options(options.proxy.as_ref(), existing_conf.as_ref())?,
    )?;
    let record = client.register(&cm_client::RegisterRequest {
        reg_token: options.token.to_string(),
        cert: set.identity.chain_pem(),
        client_type: "CTE".to_string(),
        name: client_name.clone(),
        description: options.description.clone(),
        // Host facts, as the manager shows them for an agent.
        os_type: cm_client::os_type().to_string(),
        client_version: env!("CARGO_PKG_VERSION").to_string(),
    })?;

    // 3. Local writes, undone on failure.
    let snapshots = [
        FileSnapshot::take(&agent_conf_path)?,
        FileSnapshot::take(&root.manager_ca_copy())?,
    ];
    let store_existed = root.pem_folder().exists();
    let keys_existed = root.keys_folder().exists();
    // After the import: agent.conf, the CA copy, and a login with what was stored.
    let finish = |store: &keystore::Keystore,
                  stored: &keystore::GenerationInfo|
     -> Result<PathBuf, AgentError> {
        if let Some(pem) = &ca_pem {
            fsutil::write_atomically(&root.manager_ca_copy(), pem)?;
        }
        let conf = new_configuration(
            existing_conf.as_ref(),
            root,
            &[
                (agent_config::keys::URL, url.as_str()),
                (agent_config::keys::CLIENT_ID, &record.id),
                (agent_config::keys::CLIENT_NAME, &client_name),
                (agent_config::keys::EXTERNAL_CERT_DIR, &cert_dir_text),
            ],
            &options.trust,
            options.key_protection.as_ref(),
        );
        fsutil::write_atomically(&agent_conf_path, conf.render().as_bytes())?;

        // Confirm what was stored: activation read the new generation back (decrypted with its
        // random key, the key checked against the certificate), and it holds the very
        // certificate presented to the manager; and the manager lets that identity log in as
        // the new client. The login goes over the registration's own connection (kept alive by
        // the client's pool), so it costs a request, not a second TLS handshake
        // (docs/performance.md, item 3).
        if stored.fingerprint != set.identity.certificate().fingerprint {
            return Err(AgentError::InvalidFile {
                path: store.pem_folder().to_path_buf(),
                problem:
                    "the identity read back from the pem store differs from the one registered"
                        .to_string(),
            });
        }
        client.login(&record.id)?;
        Ok(store.agent_pem_path())
    };
    let mut sealed_generation = None;
    let result = match root.open_or_create_store_protected(&protection) {
        Err(error) => Err((AgentError::from(error), Vec::new())),
        Ok(store) => match store.import(&set.identity, now) {
            Err(error) => Err((AgentError::from(error), Vec::new())),
            Ok(import) => match finish(&store, import.info()) {
                Ok(agent_pem) => {
                    sealed_generation = Some(import.generation());
                    import.keep();
                    Ok(agent_pem)
                }
                Err(error) => {
                    let generation = import.generation();
                    let left = match import.undo() {
                        Ok(()) => Vec::new(),
                        Err(undo_error) => vec![format!(
                            "{}: the new identity (generation {generation}) could not be taken back ({undo_error})",
                            root.pem_folder().display()
                        )],
                    };
                    Err((error, left))
                }
            },
        },
    };

    let agent_pem = match result {
        Ok(path) => path,
        Err((error, mut left)) => {
            left.extend(undo_local_writes(
                root,
                &snapshots,
                store_existed,
                keys_existed,
            ));
            return Err(accepted_but_failed(&record.id, &error, &left));
        }
    };

    // The registration is done: a file that cannot be shredded (it is no longer the file that
    // was read, or the overwrite failed) is reported, not an error (exit 0, a WARNING per file,
    // `input_shredded: false` and the list in `shred.not_shredded`).
    let shred = options.shred_input.then(|| fsutil::shred_loaded(&set));
    let input_shredded = shred
        .as_ref()
        .is_some_and(|report| report.not_shredded.is_empty());
    let certificate = set.identity.certificate();
    Ok(RegistrationReport {
        client_id: record.id,
        client_name,
        manager_url: url.to_string(),
        common_name: certificate.common_name.clone(),
        not_after: cert_loading::format_rfc3339(certificate.not_after),
        sha256_fingerprint: certificate.fingerprint.to_string(),
        agent_pem,
        agent_conf: agent_conf_path,
        key_protector: sealed_generation.map_or(keystore::KeyProtectorKind::File, |generation| {
            keystore::sealed_by(&root.keys_folder(), generation)
        }),
        input_shredded,
        shred,
        warnings: set.warnings.iter().map(ToString::to_string).collect(),
    })
}

/// agent.conf as it is (if any), and where the new key will be sealed: the flags, else
/// agent.conf's `KEY_PROTECTOR`, else `auto`. A protector that cannot seal here is refused now,
/// before the manager is asked.
fn existing_configuration(
    root: &AgentRoot,
    options: &RegistrationOptions,
    agent_conf_path: &Path,
) -> Result<
    (
        Option<agent_config::ConfigFile>,
        agent_config::KeyProtection,
    ),
    AgentError,
> {
    let existing = match agent_config::ConfigFile::read(agent_conf_path) {
        Ok(file) => Some(file),
        Err(agent_config::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        Err(error) => return Err(error.into()),
    };
    let protection = match (&options.key_protection, &existing) {
        (Some(given), _) => given.clone(),
        (None, Some(conf)) => agent_config::KeyProtection::from_file(conf, "agent.conf")?,
        (None, None) => agent_config::KeyProtection::default(),
    };
    crate::protection::HostKeyProtector::new(&root.keys_folder(), &protection).check_sealer()?;
    Ok((existing, protection))
}

/// The refusals before anything is read: an empty token, or a host registered already when
/// replacing it was not asked for.
fn check_preconditions(
    options: &RegistrationOptions,
    agent_conf_path: &Path,
) -> Result<(), AgentError> {
    if options.token.trim().is_empty() {
        return Err(AgentError::Usage(
            "the registration token is empty; give the token created on the manager".to_string(),
        ));
    }
    if !options.force
        && let Ok(existing) = agent_config::ConfigFile::read(agent_conf_path)
        && let Some(client_id) = existing.get(agent_config::keys::CLIENT_ID)
        && !client_id.is_empty()
    {
        return Err(AgentError::AlreadyRegistered {
            client_id: client_id.to_string(),
            path: agent_conf_path.to_path_buf(),
        });
    }
    Ok(())
}

/// The client name (the option, else the host name, else the certificate's common name) and the
/// absolute certificate folder, both checked for what agent.conf cannot hold.
fn names_for_agent_conf(
    options: &RegistrationOptions,
    set: &cert_loading::LoadedSet,
) -> Result<(String, String), AgentError> {
    let client_name = options
        .agent_name
        .clone()
        .filter(|name| !name.trim().is_empty())
        .or_else(system_host_name)
        .unwrap_or_else(|| set.identity.certificate().common_name.clone());
    // Both are written to agent.conf as KEY=VALUE lines: a line break would add settings.
    let cert_dir_text = absolute(&options.external_cert_dir).display().to_string();
    for (what, value) in [
        ("the agent name", client_name.as_str()),
        ("the certificate folder path", cert_dir_text.as_str()),
    ] {
        if value.contains(char::is_control) {
            return Err(AgentError::Usage(format!(
                "{what} contains a line break or another control character; give a plain name"
            )));
        }
    }
    Ok((client_name, cert_dir_text))
}

/// The error for a registration the manager accepted whose local part failed: what failed and,
/// in `left`, what could not be undone.
fn accepted_but_failed(client_id: &str, error: &AgentError, left: &[String]) -> AgentError {
    if left.is_empty() {
        return AgentError::AcceptedButLocalFailure {
            what: "the registration",
            client_id: client_id.to_string(),
            cause: format!("{error:#}"),
            advice: "Nothing was changed on this host. Delete the client on the manager (or keep it) and run register_host again once the cause is fixed.",
        };
    }
    AgentError::AcceptedButLocalFailure {
        what: "the registration",
        client_id: client_id.to_string(),
        cause: format!(
            "{error:#}; undoing the local writes then failed too, so this host was left changed: {}",
            left.join("; ")
        ),
        advice: "Put the files listed back by hand (or remove what this run created), then delete the client on the manager (or keep it) and run register_host again once the cause is fixed.",
    }
}

/// agent.conf after a registration: the existing file (comments and other keys kept) with the
/// new client's `identity` settings, the manager trust (the CA copy under `root`, or the
/// fingerprint) and the defaults of the renewal settings that are not set yet.
fn new_configuration(
    existing: Option<&agent_config::ConfigFile>,
    root: &AgentRoot,
    identity: &[(&str, &str)],
    trust: &ManagerTrust,
    key_protection: Option<&agent_config::KeyProtection>,
) -> agent_config::ConfigFile {
    let mut conf = existing.cloned().unwrap_or_default();
    if existing.is_none() {
        conf.push_comment("CTE agent configuration, written by register_host.");
        conf.push_comment("Keys are documented in docs/protocol.md (agent.conf section).");
    }
    for (key, value) in identity {
        conf.set(key, value);
    }
    match trust {
        ManagerTrust::CaFile(_) => {
            conf.set(
                agent_config::keys::CM_CA_FILE,
                &root.manager_ca_copy().display().to_string(),
            );
            conf.remove(agent_config::keys::CM_FINGERPRINT);
        }
        ManagerTrust::Fingerprint(fingerprint) => {
            conf.set(
                agent_config::keys::CM_FINGERPRINT,
                &fingerprint.to_colon_hex(),
            );
            conf.remove(agent_config::keys::CM_CA_FILE);
        }
    }
    for (key, value) in [
        (
            agent_config::keys::RENEW_DAYS_BEFORE_EXPIRY,
            agent_config::DEFAULT_RENEW_DAYS,
        ),
        (
            agent_config::keys::RENEW_RETRY_HOURS,
            agent_config::DEFAULT_RETRY_HOURS,
        ),
        (
            agent_config::keys::RENEW_STAGGER_HOURS,
            agent_config::DEFAULT_STAGGER_HOURS,
        ),
        (
            agent_config::keys::STATUS_INTERVAL_MINUTES,
            agent_config::DEFAULT_STATUS_MINUTES,
        ),
    ] {
        conf.set_default(key, &value.to_string());
    }
    conf.set_default(agent_config::keys::LOG_UPLOAD_LEVEL, "WARNING");
    match key_protection {
        Some(protection) => {
            conf.set(
                agent_config::keys::KEY_PROTECTOR,
                protection.choice.as_str(),
            );
            if protection.tpm_tcti == agent_config::DEFAULT_TPM_TCTI {
                conf.remove(agent_config::keys::TPM_TCTI);
            } else {
                conf.set(agent_config::keys::TPM_TCTI, &protection.tpm_tcti);
            }
            if protection.tpm_pcrs.is_empty() {
                conf.remove(agent_config::keys::TPM_PCRS);
            } else {
                conf.set(
                    agent_config::keys::TPM_PCRS,
                    &agent_config::format_pcrs(&protection.tpm_pcrs),
                );
            }
        }
        None => conf.set_default(agent_config::keys::KEY_PROTECTOR, "auto"),
    }
    // The packages' default: metrics for node_exporter, when this is the product's install root
    // and node_exporter's textfile folder is there (no folder, no file: a host without
    // node_exporter stays quiet instead of warning at every check).
    let textfile_folder = Path::new(crate::metrics::NODE_EXPORTER_TEXTFILE_DIR);
    if root.path() == Path::new(crate::paths::DEFAULT_AGENT_ROOT) && textfile_folder.is_dir() {
        conf.set_default(
            agent_config::keys::METRICS_FILE,
            &textfile_folder
                .join(crate::metrics::DEFAULT_FILE_NAME)
                .display()
                .to_string(),
        );
    }
    conf
}

/// Puts back the files the registration wrote beside the pem store (which [`keystore::Import`]
/// puts back itself), and removes the folders it created if they are empty. Returns what could
/// not be undone, one entry per failure naming the file or folder, the state it was left in and
/// the error: empty when the agent root is as it was.
fn undo_local_writes(
    root: &AgentRoot,
    snapshots: &[FileSnapshot],
    store_existed: bool,
    keys_existed: bool,
) -> Vec<String> {
    let mut left = Vec::new();
    for snapshot in snapshots {
        if let Err(error) = snapshot.restore() {
            let state = if snapshot.contents().is_some() {
                "could not be restored to its content before this run and may hold this run's version"
            } else {
                "did not exist before this run and could not be removed"
            };
            left.push(format!("{} {state} ({error})", snapshot.path().display()));
        }
    }
    // Folders this run created on the way, when now empty (one that still holds something was
    // not created by this run alone, or holds what could not be undone, and stays).
    let mut created = Vec::new();
    if !keys_existed {
        created.push(root.keys_folder());
    }
    if !store_existed {
        created.push(root.pem_folder());
    }
    if !store_existed && !keys_existed {
        created.extend([root.etc_dir(), root.path().join("vmd")]);
    }
    for folder in created {
        let _ = std::fs::remove_dir(folder);
    }
    left
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The system's host name, where it can be read without extra crates.
pub(crate) fn system_host_name() -> Option<String> {
    let candidates = [
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
        std::env::var("COMPUTERNAME").ok(),
        std::env::var("HOSTNAME").ok(),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The undo reports each file it could not put back, with the state left, instead of
    /// ignoring it: here the folder of agent.conf became a plain file after the run wrote there.
    #[test]
    fn a_failed_restore_is_reported_with_the_state_left() {
        let folder = tempfile::tempdir().unwrap();
        let root = AgentRoot::new(folder.path());
        std::fs::create_dir_all(root.etc_dir()).unwrap();
        std::fs::write(root.agent_conf(), "# the administrator's\n").unwrap();
        let snapshots = [
            FileSnapshot::take(&root.agent_conf()).unwrap(),
            FileSnapshot::take(&root.manager_ca_copy()).unwrap(),
        ];
        // Nothing to undo but the two files: a clean undo reports nothing.
        assert!(undo_local_writes(&root, &snapshots, true, true).is_empty());

        std::fs::remove_dir_all(root.etc_dir()).unwrap();
        std::fs::write(root.etc_dir(), "not a folder").unwrap();
        let left = undo_local_writes(&root, &snapshots, true, true);
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(
            left[0].starts_with(&format!(
                "{} could not be restored to its content before this run",
                root.agent_conf().display()
            )),
            "{left:?}"
        );
        assert!(
            left[1].starts_with(&format!(
                "{} did not exist before this run and could not be removed",
                root.manager_ca_copy().display()
            )),
            "{left:?}"
        );
    }
}
