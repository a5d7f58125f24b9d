//! The pem store's key protector on this host (issue 23): seals new generations' data keys
//! with the protector agent.conf chooses (`KEY_PROTECTOR`), and opens each stored key with the
//! protector that sealed it, so a store moves to the TPM one generation at a time.
//!
//! - A key sealed by the TPM is `vmd/keys/<generation>.tpm`; a key file is
//!   `vmd/keys/<generation>.key` (keystore's two protectors, same folder).
//! - `auto` decides when a key is sealed, not when the store is opened: reading never touches
//!   the TPM unless a key sealed by it is asked for (at most once per check).
//! - A key sealed by DPAPI is `vmd/keys/<generation>.dpapi` (Windows; the agent root's entropy
//!   is `vmd/keys/dpapi.entropy`).
//! - The TPM support is the `tpm` feature (Linux; tpm2-tss at build time). Without it, `tpm`
//!   is refused with the fix, and `auto` uses the key file. DPAPI is built on Windows, where
//!   `auto` takes it; elsewhere `dpapi` is refused with the fix.

use std::path::{Path, PathBuf};

use agent_config::{KeyProtection, ProtectorChoice};
use keystore::{DataKey, Error, FileKeyProtector, GenerationId, KeyProtector, KeyProtectorKind};

/// The host's key protector: see the module documentation.
#[derive(Debug)]
pub(crate) struct HostKeyProtector {
    pub(crate) folder: PathBuf,
    file: FileKeyProtector,
    protection: KeyProtection,
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    tpm: keystore::TpmKeyProtector,
    #[cfg(windows)]
    dpapi: keystore::DpapiKeyProtector,
}

impl HostKeyProtector {
    pub(crate) fn new(folder: &Path, protection: &KeyProtection) -> Self {
        Self {
            folder: folder.to_owned(),
            file: FileKeyProtector::new(folder),
            protection: protection.clone(),
            #[cfg(all(feature = "tpm", target_os = "linux"))]
            tpm: keystore::TpmKeyProtector::new(folder, protection.tpm_tcti.clone())
                .with_pcrs(&protection.tpm_pcrs),
            #[cfg(windows)]
            dpapi: keystore::DpapiKeyProtector::new(folder),
        }
    }

    pub(crate) fn refusal(&self, generation: GenerationId, reason: &str, fix: &str) -> Error {
        Error::Protector {
            protector: self.protection.choice.as_str(),
            generation,
            path: self.folder.clone(),
            reason: reason.to_owned(),
            fix: fix.to_owned(),
        }
    }

    /// Checks, before anything is sent to the manager, that a key can be sealed as chosen (a
    /// TPM chosen but absent is refused here, not after the manager accepted).
    ///
    /// # Errors
    /// The refusal [`HostKeyProtector::store_key`] would give.
    pub(crate) fn check_sealer(&self) -> Result<(), Error> {
        let first = GenerationId::new(1);
        self.sealer(first)?;
        if self.protection.choice == ProtectorChoice::Only(KeyProtectorKind::Tpm)
            && self.tpm_if_present().is_none()
        {
            return Err(self.refusal(
                first,
                &format!("no TPM answers through {}", self.protection.tpm_tcti),
                "check the TPM (TPM_TCTI, --tpm-tcti), or choose --key-protector file",
            ));
        }
        Ok(())
    }

    /// The protector that seals a new key now.
    pub(crate) fn sealer(&self, generation: GenerationId) -> Result<&dyn KeyProtector, Error> {
        match self.protection.choice {
            ProtectorChoice::Auto => Ok(self
                .tpm_if_present()
                .or_else(|| self.built(KeyProtectorKind::Dpapi))
                .unwrap_or(&self.file)),
            ProtectorChoice::Only(kind) => self.built(kind).ok_or_else(|| {
                let (reason, fix) = missing(kind);
                self.refusal(generation, reason, fix)
            }),
        }
    }

    /// The protector of that kind, if this build and system have it.
    pub(crate) fn built(&self, kind: KeyProtectorKind) -> Option<&dyn KeyProtector> {
        match kind {
            KeyProtectorKind::File => Some(&self.file),
            #[cfg(all(feature = "tpm", target_os = "linux"))]
            KeyProtectorKind::Tpm => Some(&self.tpm),
            #[cfg(windows)]
            KeyProtectorKind::Dpapi => Some(&self.dpapi),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The TPM protector when built and a TPM answers. The default device TCTI is tried only
    /// when its device exists, so a host without a TPM pays nothing and logs nothing.
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    fn tpm_if_present(&self) -> Option<&dyn KeyProtector> {
        let tcti = &self.protection.tpm_tcti;
        if let Some(device) = tcti.strip_prefix("device:")
            && !Path::new(device).exists()
        {
            return None;
        }
        self.tpm
            .available()
            .then_some(&self.tpm as &dyn KeyProtector)
    }

    #[cfg(not(all(feature = "tpm", target_os = "linux")))]
    fn tpm_if_present(&self) -> Option<&dyn KeyProtector> {
        None
    }

    /// The protector that sealed `generation`'s key.
    pub(crate) fn holder(&self, generation: GenerationId) -> KeyProtectorKind {
        keystore::sealed_by(&self.folder, generation)
    }

    /// What `auto` or the chosen protector names, without asking the TPM whether it answers.
    fn preferred(&self) -> &dyn KeyProtector {
        let kinds: &[KeyProtectorKind] = match &self.protection.choice {
            ProtectorChoice::Auto => &[KeyProtectorKind::Tpm, KeyProtectorKind::Dpapi],
            ProtectorChoice::Only(kind) => std::slice::from_ref(kind),
        };
        kinds
            .iter()
            .find_map(|kind| self.built(*kind))
            .unwrap_or(&self.file)
    }
}

/// Where a generation's data key is, for `vmutil status` ("AES-256-GCM under a random key …").
pub(crate) fn where_the_key_is(kind: KeyProtectorKind) -> &'static str {
    match kind {
        KeyProtectorKind::File => "in a key file",
        KeyProtectorKind::Tpm => "sealed by the TPM",
        KeyProtectorKind::Dpapi => "sealed by Windows DPAPI",
    }
}

/// What register_host's summary says about the new identity's key, and what that means.
pub fn protection_summary(kind: KeyProtectorKind) -> &'static str {
    match kind {
        KeyProtectorKind::File => {
            "in a key file under vmd/keys (no TPM or DPAPI used: a copy of the agent root, keys included, is this identity)"
        }
        KeyProtectorKind::Tpm => {
            "sealed by this host's TPM (a copy of the agent root cannot be used elsewhere)"
        }
        KeyProtectorKind::Dpapi => {
            "sealed by Windows DPAPI, machine scope (a copy of the agent root cannot be used on another Windows installation)"
        }
    }
}

/// Why a chosen protector cannot seal here, and what to do.
fn missing(kind: KeyProtectorKind) -> (&'static str, &'static str) {
    match kind {
        KeyProtectorKind::Tpm => (
            "this build of the agent has no TPM support",
            "install the package built with it, or set KEY_PROTECTOR=file in agent.conf",
        ),
        KeyProtectorKind::Dpapi => (
            "DPAPI exists only on Windows",
            "set KEY_PROTECTOR=auto or file in agent.conf",
        ),
        KeyProtectorKind::File => ("", ""),
    }
}

impl KeyProtector for HostKeyProtector {
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error> {
        self.sealer(generation)?.store_key(generation, key)
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        let kind = self.holder(generation);
        match self.built(kind) {
            Some(protector) => protector.load_key(generation),
            None => Err(self.refusal(
                generation,
                &format!("its key was sealed by {kind} and {}", missing(kind).0),
                "open it with the agent build (and system) that sealed it, or register the host again",
            )),
        }
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        for kind in KeyProtectorKind::ALL {
            if let Some(protector) = self.built(kind) {
                protector.remove_key(generation)?;
            }
        }
        Ok(())
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        let mut generations = Vec::new();
        for kind in KeyProtectorKind::ALL {
            if let Some(protector) = self.built(kind) {
                generations.extend(protector.stored_keys()?);
            }
        }
        generations.sort_unstable();
        generations.dedup();
        Ok(generations)
    }

    fn remove_leftovers(&self) -> Result<(), Error> {
        // All protectors share the folder and its temporary names.
        self.file.remove_leftovers()
    }

    fn describe(&self) -> String {
        self.preferred().describe()
    }

    fn kind(&self) -> KeyProtectorKind {
        self.preferred().kind()
    }
}
