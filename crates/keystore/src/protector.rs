//! Where each generation's random key is kept: the [`KeyProtector`] seam and its default,
//! [`FileKeyProtector`].

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use cert_vocabulary::KeyProtectorKind;

use crate::{Error, GenerationId, fault, files};

/// Length of a data key in bytes (AES-256).
pub const DATA_KEY_LENGTH: usize = 32;

/// A generation's random 256-bit AES key. Zeroized on drop; `Debug` prints only the type name.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LENGTH]>);

impl DataKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Errors
    /// [`Error::Random`] if the generator fails.
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; DATA_KEY_LENGTH]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|source| Error::Random { source })?;
        Ok(Self(bytes))
    }

    /// Wraps key bytes read back from a protector's storage.
    pub fn from_bytes(bytes: Zeroizing<[u8; DATA_KEY_LENGTH]>) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_LENGTH] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("DataKey(..)")
    }
}

/// Keeps the random key of each generation somewhere other than the pem folder.
///
/// The store calls these methods only while it holds its writer lock (except `load_key`, which
/// readers call too). The default, [`FileKeyProtector`], keeps one file per generation; a TPM or
/// OS-keyring implementation would seal the key there instead.
pub trait KeyProtector: fmt::Debug + Send + Sync {
    /// Stores `key` for `generation` durably (it must survive a power cut once this returns),
    /// replacing any key stored before under that generation.
    ///
    /// # Errors
    /// Whatever the backing storage reports, typically [`Error::Io`].
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error>;

    /// Loads the key of `generation`.
    ///
    /// # Errors
    /// [`Error::KeyFileMissing`] if there is none, [`Error::KeyFilePermissions`] if it is
    /// exposed, [`Error::Tampered`] if it is not a key, or the storage's error.
    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error>;

    /// Removes the key of `generation`; a key that is already gone is fine.
    ///
    /// # Errors
    /// Whatever the backing storage reports.
    fn remove_key(&self, generation: GenerationId) -> Result<(), Error>;

    /// The generations that have a stored key (used to remove keys left by a crashed writer).
    ///
    /// # Errors
    /// Whatever the backing storage reports.
    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error>;

    /// Removes what a crashed writer may have left half-done (temporary files). Called under
    /// the writer lock. The default does nothing.
    ///
    /// # Errors
    /// Whatever the backing storage reports.
    fn remove_leftovers(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Where keys are kept, for messages and documentation (for example a folder).
    fn describe(&self) -> String;

    /// Which protector this is (agent.conf and `vmutil status` print its name).
    fn kind(&self) -> KeyProtectorKind;

    /// Whether `generation`'s stored key is sealed as this protector is configured now (for
    /// the TPM: bound to the same PCRs); `rekey` seals it again when not. The default: yes.
    ///
    /// # Errors
    /// Reading the stored key's file.
    fn sealed_as_configured(&self, generation: GenerationId) -> Result<bool, Error> {
        let _ = generation;
        Ok(true)
    }
}

/// Where a protector of `kind` keeps `generation`'s key in the keys `folder`:
/// `<folder>/<generation>.<kind's extension>` (`.key`, `.tpm`, `.dpapi`).
pub fn key_path_in(folder: &Path, kind: KeyProtectorKind, generation: GenerationId) -> PathBuf {
    folder.join(format!(
        "{}.{}",
        crate::generation::file_name(generation),
        kind.file_extension()
    ))
}

/// The protector that sealed `generation`'s key in the keys `folder`, by the file it left: a
/// sealed file (`.tpm`, `.dpapi`) wins over a key file, which is also the answer when there is
/// none (the file protector then reports the key missing).
pub fn sealed_by(folder: &Path, generation: GenerationId) -> KeyProtectorKind {
    [KeyProtectorKind::Tpm, KeyProtectorKind::Dpapi]
        .into_iter()
        .find(|kind| key_path_in(folder, *kind, generation).exists())
        .unwrap_or(KeyProtectorKind::File)
}

/// The generations that have a file of `kind` (`<generation>.<extension>`) in `folder` (none
/// when the folder does not exist).
pub(crate) fn generations_in(
    folder: &Path,
    kind: KeyProtectorKind,
) -> Result<Vec<GenerationId>, Error> {
    let extension = kind.file_extension();
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::io(folder, "list", source)),
    };
    let mut generations = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(folder, "list", source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(&format!(".{extension}"))
            && let Some(generation) = crate::generation::id_from_file_name(stem)
        {
            generations.push(generation);
        }
    }
    Ok(generations)
}

/// Removes the file of `kind` holding `generation`'s key from `folder` (gone already is fine),
/// then flushes the folder; the crash point `prune.key.removed` sits in between.
pub(crate) fn remove_stored(
    folder: &Path,
    kind: KeyProtectorKind,
    generation: GenerationId,
) -> Result<(), Error> {
    files::remove_file_if_present(&key_path_in(folder, kind, generation))?;
    fault::point("prune.key", "removed");
    files::sync_dir(folder)
}

/// Removes the temporary files a crashed writer left in `folder`.
pub(crate) fn remove_temporaries(folder: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::io(folder, "list", source)),
    };
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(folder, "list", source))?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(files::TEMPORARY_SUFFIX)
        {
            files::remove_file_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// The default [`KeyProtector`]: one file per generation, `<folder>/<generation>.key`, holding
/// the 32 raw key bytes, mode 0600 in a 0700 folder (by default `<agent root>/vmd/keys/`, outside
/// the pem folder). A key file that group or others can access is refused.
#[derive(Clone, Debug)]
pub struct FileKeyProtector {
    folder: PathBuf,
}

impl FileKeyProtector {
    /// Keeps key files in `folder`, which is created (mode 0700) when the first key is stored.
    pub fn new(folder: impl Into<PathBuf>) -> Self {
        Self {
            folder: folder.into(),
        }
    }

    /// The folder holding the key files.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The key file of `generation`.
    pub fn key_path(&self, generation: GenerationId) -> PathBuf {
        key_path_in(&self.folder, KeyProtectorKind::File, generation)
    }
}

impl KeyProtector for FileKeyProtector {
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error> {
        files::create_private_dir_all(&self.folder)?;
        files::replace_file_atomically(&self.key_path(generation), key.as_bytes(), "stage.key")
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        let path = self.key_path(generation);
        // `symlink_metadata`: a key file must be a regular file, not a link to one elsewhere.
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyFileMissing { path });
            }
            Err(source) => return Err(Error::io(path, "read", source)),
        };
        if !metadata.is_file() {
            return Err(Error::tampered(path, "the key file is not a regular file"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyFilePermissions { path, mode });
            }
        }
        let bytes = Zeroizing::new(files::read(&path)?);
        let key: [u8; DATA_KEY_LENGTH] = bytes.as_slice().try_into().map_err(|_| {
            Error::tampered(
                &path,
                format!(
                    "the key file holds {} bytes instead of {DATA_KEY_LENGTH}",
                    bytes.len()
                ),
            )
        })?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        remove_stored(&self.folder, KeyProtectorKind::File, generation)
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        generations_in(&self.folder, KeyProtectorKind::File)
    }

    fn remove_leftovers(&self) -> Result<(), Error> {
        remove_temporaries(&self.folder)
    }

    fn describe(&self) -> String {
        format!("key files in {}", self.folder.display())
    }

    fn kind(&self) -> KeyProtectorKind {
        KeyProtectorKind::File
    }
}
