//! Where the agent keeps its files under the agent root.

use std::path::{Path, PathBuf};

/// The log file's name, as the product names it.
pub(crate) const LOG_FILE_NAME: &str = "vorvmd_root.log";

/// The product's log folder, used for the product's agent root.
pub(crate) const DEFAULT_LOG_DIR: &str = "/var/log/vormetric";

/// The product's install root on Linux.
pub(crate) const DEFAULT_AGENT_ROOT: &str = "/opt/vormetric/DataSecurityExpert/agent";

/// The environment variable that overrides the agent root.
pub(crate) const AGENT_ROOT_VARIABLE: &str = "CTE_AGENT_ROOT";

/// The journal's file name in [`AgentRoot::run_dir`].
pub(crate) const JOURNAL_NAME: &str = "renewal-journal.json";

/// Where an unreadable journal is moved, for a person to read.
pub(crate) const JOURNAL_ASIDE_NAME: &str = "renewal-journal.json.unreadable";

/// The agent root and the files under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRoot {
    root: PathBuf,
}

impl AgentRoot {
    /// Uses `root` as the agent root.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `--agent-root` if given, else `CTE_AGENT_ROOT`, else the product default.
    pub fn resolve(flag: Option<&Path>) -> Self {
        if let Some(flag) = flag {
            return Self::new(flag);
        }
        match std::env::var_os(AGENT_ROOT_VARIABLE) {
            Some(value) if !value.is_empty() => Self::new(PathBuf::from(value)),
            _ => Self::new(DEFAULT_AGENT_ROOT),
        }
    }

    /// The root itself.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `vmd/etc`: configuration.
    pub(crate) fn etc_dir(&self) -> PathBuf {
        self.root.join("vmd").join("etc")
    }

    /// `vmd/etc/agent.conf`.
    pub fn agent_conf(&self) -> PathBuf {
        self.etc_dir().join("agent.conf")
    }

    /// `vmd/etc/cm-ca.pem`: the copy of the manager CA given at registration.
    pub(crate) fn manager_ca_copy(&self) -> PathBuf {
        self.etc_dir().join("cm-ca.pem")
    }

    /// `vmd/log`: the log folder for an agent root other than the product's.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("vmd").join("log")
    }

    /// `vmd/log/vorvmd_root.log`: the log file when agent.conf has no `LOG_DIR` and the root
    /// is not the product's (see `logging::log_file`).
    pub fn vmd_log(&self) -> PathBuf {
        self.log_dir().join(LOG_FILE_NAME)
    }

    /// `vmd/run`: status, journal and pid files.
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.root.join("vmd").join("run")
    }

    /// `vmd/run/status.json`: the last renewal check.
    pub(crate) fn status_file(&self) -> PathBuf {
        self.run_dir().join("status.json")
    }

    /// `vmd/run/renewal-journal.json`: the in-flight renewal, if any.
    pub fn journal_file(&self) -> PathBuf {
        self.run_dir().join(JOURNAL_NAME)
    }

    /// `vmd/run/vmd.pid`: the daemon's pid, locked while it runs.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir().join("vmd.pid")
    }

    /// `vmd/run/renewal.lock`: held for a whole renewal check; holds the holder's pid.
    pub(crate) fn renewal_lock(&self) -> PathBuf {
        self.run_dir().join("renewal.lock")
    }

    /// `vmd/pem`: the pem store folder.
    pub(crate) fn pem_folder(&self) -> PathBuf {
        self.root.join("vmd").join("pem")
    }

    /// `vmd/keys`: the folder of the pem store's random keys (outside the store folder, so a
    /// copy of `vmd/pem` alone does not decrypt).
    pub(crate) fn keys_folder(&self) -> PathBuf {
        self.root.join("vmd").join("keys")
    }

    /// Opens the pem store with the agent's layout: `AgentRoot::pem_folder`, random keys in
    /// files under `AgentRoot::keys_folder`.
    ///
    /// # Errors
    /// As [`keystore::Keystore::open`].
    pub fn open_store(&self) -> Result<keystore::Keystore, keystore::Error> {
        self.open_store_protected(&agent_config::KeyProtection::default())
    }

    /// [`AgentRoot::open_store`], sealing new keys as `protection` says (agent.conf's
    /// `KEY_PROTECTOR`); stored keys open with the protector that sealed them either way.
    ///
    /// # Errors
    /// As [`keystore::Keystore::open`].
    pub fn open_store_protected(
        &self,
        protection: &agent_config::KeyProtection,
    ) -> Result<keystore::Keystore, keystore::Error> {
        keystore::Keystore::open(self.pem_folder(), self.key_protector(protection))
    }

    /// [`AgentRoot::open_or_create_store`] with the key protection of agent.conf or the
    /// registration's flags.
    ///
    /// # Errors
    /// As [`keystore::Keystore::open_or_create`].
    pub fn open_or_create_store_protected(
        &self,
        protection: &agent_config::KeyProtection,
    ) -> Result<keystore::Keystore, keystore::Error> {
        keystore::Keystore::open_or_create(self.pem_folder(), self.key_protector(protection))
    }

    /// [`AgentRoot::open_store`], creating the store folder first if missing.
    ///
    /// # Errors
    /// As [`keystore::Keystore::open_or_create`].
    pub fn open_or_create_store(&self) -> Result<keystore::Keystore, keystore::Error> {
        self.open_or_create_store_protected(&agent_config::KeyProtection::default())
    }

    fn key_protector(
        &self,
        protection: &agent_config::KeyProtection,
    ) -> Box<crate::protection::HostKeyProtector> {
        Box::new(crate::protection::HostKeyProtector::new(
            &self.keys_folder(),
            protection,
        ))
    }
}
