//! [`DpapiKeyProtector`]: each generation's data key sealed by Windows DPAPI in machine scope
//! (Windows only; the `dpapi` crate holds the two FFI calls).
//!
//! - **Sealing.** `CryptProtectData` with `CRYPTPROTECT_LOCAL_MACHINE` and, as entropy, a random
//!   32-byte value of this agent root (`<folder>/dpapi.entropy`, written once with the first
//!   sealed key and never removed by the store). Machine scope: the agent runs as a service,
//!   and any process of this installation could open a machine-scope blob; the entropy limits
//!   that to processes that can read the agent's keys folder.
//! - **Storage.** `<folder>/<generation>.dpapi`: a magic line and the blob, written like the
//!   other protectors' files (temporary, flush, rename, folder flush).
//! - **Another installation** (a copied folder or disk image of the agent's files) cannot open
//!   the blob: DPAPI's machine secret stays in the installation's LSA secrets. That is reported
//!   as "sealed by another Windows installation".
//!
//! What it defends against and what not: docs/security.md.

use std::path::{Path, PathBuf};

use cert_vocabulary::KeyProtectorKind;
use zeroize::Zeroizing;

use crate::protector::{DATA_KEY_LENGTH, DataKey, KeyProtector, key_path_in};
use crate::{Error, GenerationId, files};

/// The first line of a DPAPI-sealed key file.
const MAGIC: &[u8] = b"CTE-DPAPI-SEALED-KEY 1\n";

/// The agent root's entropy file, in the keys folder.
pub const ENTROPY_FILE: &str = "dpapi.entropy";

/// Length of the entropy value.
const ENTROPY_LENGTH: usize = 32;

/// Seals each generation's data key with DPAPI (machine scope); blobs live in `folder`.
#[derive(Clone, Debug)]
pub struct DpapiKeyProtector {
    folder: PathBuf,
}

impl DpapiKeyProtector {
    /// Keeps sealed keys and the entropy file in `folder` (created with the first key).
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }

    /// The sealed-key file of `generation`.
    pub fn sealed_path(&self, generation: GenerationId) -> PathBuf {
        key_path_in(&self.folder, KeyProtectorKind::Dpapi, generation)
    }

    fn refusal(&self, generation: GenerationId, path: &Path, reason: String, fix: &str) -> Error {
        Error::Protector {
            protector: KeyProtectorKind::Dpapi.as_str(),
            generation,
            path: path.to_owned(),
            reason,
            fix: fix.to_owned(),
        }
    }

    /// The entropy of this agent root; written first when `create` and absent.
    fn entropy(&self, generation: GenerationId, create: bool) -> Result<Zeroizing<Vec<u8>>, Error> {
        let path = self.folder.join(ENTROPY_FILE);
        if let Some(bytes) = files::read_if_present(&path)? {
            let bytes = Zeroizing::new(bytes);
            if bytes.len() != ENTROPY_LENGTH {
                return Err(Error::tampered(
                    &path,
                    format!(
                        "the entropy file holds {} bytes instead of {ENTROPY_LENGTH}",
                        bytes.len()
                    ),
                ));
            }
            return Ok(bytes);
        }
        if !create {
            return Err(self.refusal(
                generation,
                &path,
                "the agent root's DPAPI entropy file is missing, so no DPAPI-sealed key can be opened".to_owned(),
                "restore it from the backup of this host's agent folder, or register the host again (register_host --force)",
            ));
        }
        let mut bytes = Zeroizing::new(vec![0u8; ENTROPY_LENGTH]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|source| Error::Random { source })?;
        files::create_private_dir_all(&self.folder)?;
        files::replace_file_atomically(&path, &bytes, "stage.key")?;
        Ok(bytes)
    }
}

impl KeyProtector for DpapiKeyProtector {
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error> {
        let path = self.sealed_path(generation);
        let entropy = self.entropy(generation, true)?;
        let blob = ::dpapi::protect_for_machine(key.as_bytes(), &entropy).map_err(|error| {
            self.refusal(
                generation,
                &path,
                format!("DPAPI could not seal the key ({error})"),
                "check the Windows event log (Microsoft-Windows-Crypto-DPAPI), or choose --key-protector file",
            )
        })?;
        let bytes = [MAGIC, blob.as_slice()].concat();
        files::replace_file_atomically(&path, &bytes, "stage.key")
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        let path = self.sealed_path(generation);
        let Some(bytes) = files::read_if_present(&path)? else {
            return Err(Error::KeyFileMissing { path });
        };
        let blob = bytes.strip_prefix(MAGIC).ok_or_else(|| {
            Error::tampered(&path, "the sealed-key file is not one this agent wrote")
        })?;
        let entropy = self.entropy(generation, false)?;
        let opened = ::dpapi::unprotect(blob, &entropy).map_err(|error| {
            if error.is_foreign_or_damaged() {
                self.refusal(
                    generation,
                    &path,
                    format!("the key was sealed by another Windows installation (this folder or disk was copied), or the entropy file changed ({error})"),
                    "register this host with its own certificate set (register_host --force)",
                )
            } else {
                self.refusal(
                    generation,
                    &path,
                    format!("DPAPI could not open the key ({error})"),
                    "check the Windows event log (Microsoft-Windows-Crypto-DPAPI), or register the host again",
                )
            }
        })?;
        let key: [u8; DATA_KEY_LENGTH] = opened.as_slice().try_into().map_err(|_| {
            Error::tampered(
                &path,
                format!("DPAPI opened {} bytes, not a data key", opened.len()),
            )
        })?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        crate::protector::remove_stored(&self.folder, KeyProtectorKind::Dpapi, generation)
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        crate::protector::generations_in(&self.folder, KeyProtectorKind::Dpapi)
    }

    fn remove_leftovers(&self) -> Result<(), Error> {
        crate::protector::remove_temporaries(&self.folder)
    }

    fn describe(&self) -> String {
        format!(
            "Windows DPAPI (machine scope), sealed keys in {}",
            self.folder.display()
        )
    }

    fn kind(&self) -> KeyProtectorKind {
        KeyProtectorKind::Dpapi
    }
}
