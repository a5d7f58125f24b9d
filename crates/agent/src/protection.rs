//! The pem store's key protector on this host (issue 23): seals new generations' data keys
//! with the protector agent.conf chooses (`KEY_PROTECTOR`), and opens each stored key with the
//! protector that sealed it, so a store moves to the TPM one generation at a time.
//!
//! - A key sealed by the TPM is `vmd/keys/<generation>.tpm`; a key file is
//!   `vmd/keys/<generation>.key` (keystore's two protectors, same folder).
//! - `auto` decides when a key is sealed, not when the store is opened: reading never touches
//!   the TPM unless a key sealed by it is asked for (at most once per check).
//! - The TPM support is the `tpm` feature (Linux; tpm2-tss at build time). Without it, `tpm`
//!   is refused with the fix, and `auto` uses the key file. DPAPI (Windows) is not built yet:
//!   `dpapi` is refused with the fix.

use std::path::{Path, PathBuf};

use agent_config::{KeyProtection, ProtectorChoice};
use keystore::{DataKey, Error, FileKeyProtector, GenerationId, KeyProtector};

/// The host's key protector: see the module documentation.
#[derive(Debug)]
pub(crate) struct HostKeyProtector {
    pub(crate) folder: PathBuf,
    file: FileKeyProtector,
    protection: KeyProtection,
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    tpm: keystore::TpmKeyProtector,
}

impl HostKeyProtector {
    pub(crate) fn new(folder: &Path, protection: &KeyProtection) -> Self {
        Self {
            folder: folder.to_owned(),
            file: FileKeyProtector::new(folder),
            protection: protection.clone(),
            #[cfg(all(feature = "tpm", target_os = "linux"))]
            tpm: keystore::TpmKeyProtector::new(folder, protection.tpm_tcti.clone()),
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
        let sealer = self.sealer(first)?;
        if self.protection.choice == ProtectorChoice::Tpm && self.tpm_if_present().is_none() {
            return Err(self.refusal(
                first,
                &format!("no TPM answers through {}", self.protection.tpm_tcti),
                "check the TPM (TPM_TCTI, --tpm-tcti), or choose --key-protector file",
            ));
        }
        let _ = sealer;
        Ok(())
    }

    /// The protector that seals a new key now.
    pub(crate) fn sealer(&self, generation: GenerationId) -> Result<&dyn KeyProtector, Error> {
        match self.protection.choice {
            ProtectorChoice::File => Ok(&self.file),
            ProtectorChoice::Auto => Ok(self.tpm_if_present().unwrap_or(&self.file)),
            ProtectorChoice::Tpm => self.tpm_if_built().ok_or_else(|| {
                self.refusal(
                    generation,
                    "this build of the agent has no TPM support",
                    "install the package built with it, or set KEY_PROTECTOR=file in agent.conf",
                )
            }),
            ProtectorChoice::Dpapi => Err(self.refusal(
                generation,
                "the DPAPI key protector is not built yet (and exists only on Windows)",
                "set KEY_PROTECTOR=auto or file in agent.conf",
            )),
        }
    }

    #[cfg(all(feature = "tpm", target_os = "linux"))]
    fn tpm_if_built(&self) -> Option<&dyn KeyProtector> {
        Some(&self.tpm)
    }

    #[cfg(not(all(feature = "tpm", target_os = "linux")))]
    fn tpm_if_built(&self) -> Option<&dyn KeyProtector> {
        None
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

    pub(crate) fn holder(&self, generation: GenerationId) -> &'static str {
        holder(&self.folder, generation)
    }

    /// The protector of that name (`file`, `tpm`), if built.
    pub(crate) fn named(&self, name: &str) -> Option<&dyn KeyProtector> {
        match name {
            "file" => Some(&self.file),
            "tpm" => self.tpm_if_built(),
            _ => None,
        }
    }
}

/// The protector that sealed `generation`'s key in the keys `folder`, by the file it left:
/// `tpm` (`<generation>.tpm`) or `file`.
pub(crate) fn holder(folder: &Path, generation: GenerationId) -> &'static str {
    let name = keystore::key_file_stem(generation);
    if folder.join(format!("{name}.tpm")).exists() {
        "tpm"
    } else {
        "file"
    }
}

impl KeyProtector for HostKeyProtector {
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error> {
        self.sealer(generation)?.store_key(generation, key)
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        if self.holder(generation) == "tpm" {
            return match self.tpm_if_built() {
                Some(tpm) => tpm.load_key(generation),
                None => Err(self.refusal(
                    generation,
                    "its key was sealed by the TPM and this build of the agent has no TPM support",
                    "install the package built with it",
                )),
            };
        }
        self.file.load_key(generation)
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        if let Some(tpm) = self.tpm_if_built() {
            tpm.remove_key(generation)?;
        }
        self.file.remove_key(generation)
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        let mut generations = self.file.stored_keys()?;
        if let Some(tpm) = self.tpm_if_built() {
            generations.extend(tpm.stored_keys()?);
        }
        generations.sort_unstable();
        generations.dedup();
        Ok(generations)
    }

    fn remove_leftovers(&self) -> Result<(), Error> {
        self.file.remove_leftovers()
    }

    fn describe(&self) -> String {
        match self.tpm_if_built() {
            Some(tpm) if self.protection.choice != ProtectorChoice::File => tpm.describe(),
            _ => self.file.describe(),
        }
    }

    fn name(&self) -> &'static str {
        self.protection.choice.as_str()
    }
}
