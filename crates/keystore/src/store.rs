//! The store itself: generations on disk, the `current` pointer, `agent.pem`, the writer lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cert_loading::{Fingerprint, Identity};
use serde::{Deserialize, Serialize};

use crate::files::{self, LockWait, WriterLock};
use crate::generation::{self, FORMAT_VERSION, GenerationId, GenerationInfo, GenerationRole};
#[cfg(doc)]
use crate::protector::FileKeyProtector;
use crate::protector::{DataKey, KeyProtector};
use crate::{Error, fault};

/// The current certificate chain, inside the store folder.
pub const AGENT_PEM_FILE: &str = "agent.pem";
/// The pointer to the current and previous generations, inside the store folder.
pub const POINTER_FILE: &str = "current";
/// The writer lock file, inside the store folder.
pub const LOCK_FILE: &str = ".lock";
/// The folder of generation folders, inside the store folder.
pub const GENERATIONS_FOLDER: &str = "generations";

/// How many times a reader retries when a writer switched generations under it.
pub(crate) const READ_ATTEMPTS: usize = 3;

/// The agent's pem store under one agent root. See the crate documentation.
///
/// A `Keystore` holds no open files and no lock between calls: every writing method takes the
/// store's exclusive lock for its duration, and every reading method works from what the
/// `current` pointer names at that moment.
#[derive(Debug)]
pub struct Keystore {
    pem_folder: PathBuf,
    generations_folder: PathBuf,
    protector: Box<dyn KeyProtector>,
    lock_wait: LockWait,
    /// Whether [`Keystore::open_or_create`] created the store folder (so that undoing the first
    /// import can remove it again).
    created_here: bool,
}

/// One generation in a [`StoreStatus`].
#[derive(Debug)]
pub struct GenerationStatus {
    /// The generation.
    pub id: GenerationId,
    /// Its role.
    pub role: GenerationRole,
    /// What its metadata says, or why it could not be read (this does not decrypt anything; use
    /// [`Keystore::verify`] for that).
    pub info: Result<GenerationInfo, Error>,
}

/// What the store holds, from [`Keystore::status`].
#[derive(Debug)]
pub struct StoreStatus {
    /// Every generation, oldest first.
    pub generations: Vec<GenerationStatus>,
    /// Whether `agent.pem` exists.
    pub agent_pem_present: bool,
}

impl StoreStatus {
    /// The current generation, if the host is registered.
    pub fn current(&self) -> Option<&GenerationStatus> {
        self.with_role(GenerationRole::Current)
    }

    /// The previous generation, if there is one.
    pub fn previous(&self) -> Option<&GenerationStatus> {
        self.with_role(GenerationRole::Previous)
    }

    /// The staged generations, oldest first.
    pub fn staged(&self) -> impl Iterator<Item = &GenerationStatus> {
        self.generations
            .iter()
            .filter(|generation| generation.role == GenerationRole::Staged)
    }

    fn with_role(&self, role: GenerationRole) -> Option<&GenerationStatus> {
        self.generations
            .iter()
            .find(|generation| generation.role == role)
    }
}

/// The result of a successful [`Keystore::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The current generation, which decrypted and matched its certificate.
    pub generation: GenerationInfo,
    /// Whether `agent.pem` differed from the current chain and was rewritten.
    pub agent_pem_repaired: bool,
}

/// The JSON form of the pointer file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointerFile {
    format: u32,
    current: PointerEntry,
    previous: Option<PointerEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointerEntry {
    generation: u64,
    fingerprint_sha256: String,
}

/// The parsed pointer file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// The current generation and its certificate's fingerprint.
    pub(crate) current: (GenerationId, Fingerprint),
    previous: Option<(GenerationId, Fingerprint)>,
}

impl Keystore {
    /// Opens the store in `pem_folder` (the agent's is `<agent root>/vmd/pem`), with the random
    /// keys kept by `protector` (the agent's is a [`FileKeyProtector`] in `<agent root>/vmd/keys`)
    /// and [`LockWait::default`]. The store knows no other location.
    ///
    /// If `agent.pem` lags behind the current generation (a writer was stopped between
    /// switching the pointer and rewriting it) and no writer holds the lock, it is rewritten
    /// here. That repair is best-effort: if it fails, [`Keystore::current`] or
    /// [`Keystore::verify`] report the cause.
    ///
    /// # Errors
    /// [`Error::NotRegistered`] if the store folder does not exist; [`Error::Io`] if it cannot
    /// be examined.
    pub fn open(
        pem_folder: impl Into<PathBuf>,
        protector: Box<dyn KeyProtector>,
    ) -> Result<Self, Error> {
        let store = Self::at(pem_folder.into(), protector);
        match fs::metadata(&store.pem_folder) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                return Err(Error::io(
                    &store.pem_folder,
                    "open the pem store",
                    io::Error::new(io::ErrorKind::NotADirectory, "not a folder"),
                ));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotRegistered {
                    path: store.pem_folder,
                });
            }
            Err(source) => return Err(Error::io(&store.pem_folder, "open the pem store", source)),
        }
        store.repair_agent_pem_if_unlocked();
        Ok(store)
    }

    /// Like [`Keystore::open`], but first creates the store folder and its `generations`
    /// folder (mode 0700, with any missing parents) if missing. Existing folders are not
    /// changed. Nothing is created for the keys: the protector does that when it stores the
    /// first one.
    ///
    /// # Errors
    /// [`Error::Io`] if a folder cannot be created.
    pub fn open_or_create(
        pem_folder: impl Into<PathBuf>,
        protector: Box<dyn KeyProtector>,
    ) -> Result<Self, Error> {
        let pem_folder = pem_folder.into();
        let created_here = matches!(
            fs::symlink_metadata(&pem_folder),
            Err(error) if error.kind() == io::ErrorKind::NotFound
        );
        files::create_private_dir_all(&pem_folder.join(GENERATIONS_FOLDER))?;
        let mut store = Self::open(pem_folder, protector)?;
        store.created_here = created_here;
        Ok(store)
    }

    fn at(pem_folder: PathBuf, protector: Box<dyn KeyProtector>) -> Self {
        Self {
            generations_folder: pem_folder.join(GENERATIONS_FOLDER),
            pem_folder,
            protector,
            lock_wait: LockWait::default(),
            created_here: false,
        }
    }

    /// Sets how writing methods wait for the lock (default: [`LockWait::default`]).
    #[must_use]
    pub fn with_lock_wait(mut self, lock_wait: LockWait) -> Self {
        self.lock_wait = lock_wait;
        self
    }

    /// The store folder.
    pub fn pem_folder(&self) -> &Path {
        &self.pem_folder
    }

    /// `agent.pem` in the store folder: the current certificate chain (leaf first).
    pub fn agent_pem_path(&self) -> PathBuf {
        self.pem_folder.join(AGENT_PEM_FILE)
    }

    /// The folder of a generation.
    pub fn generation_folder(&self, id: GenerationId) -> PathBuf {
        self.generations_folder.join(generation::file_name(id))
    }

    /// The key protector in use.
    pub fn key_protector(&self) -> &dyn KeyProtector {
        self.protector.as_ref()
    }

    /// Whether a generation is active (the `current` pointer exists and can be read).
    ///
    /// # Errors
    /// [`Error::Tampered`] or [`Error::UnsupportedFormat`] if the pointer file is not valid;
    /// [`Error::Io`] if it cannot be read.
    pub fn is_registered(&self) -> Result<bool, Error> {
        Ok(self.read_pointer()?.is_some())
    }

    /// Writes `identity` as a new, inactive generation and returns its identifier; the current
    /// generation is not touched. A fresh random key (OS RNG) is stored through the key
    /// protector first, then the generation folder is written under a temporary name and
    /// renamed into place, so a generation is either absent or complete.
    ///
    /// `created_at` is recorded in the metadata only (this crate never reads the clock); callers
    /// normally pass `SystemTime::now()`.
    ///
    /// # Errors
    /// [`Error::Locked`], [`Error::Random`], [`Error::Io`], or the key protector's error.
    pub fn stage(
        &self,
        identity: &Identity,
        created_at: SystemTime,
    ) -> Result<GenerationId, Error> {
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        let id = self.next_generation_id()?;
        let data_key = DataKey::generate()?;
        let sealed = generation::seal(id, identity, created_at, &data_key)?;

        self.protector.store_key(id, &data_key)?;
        let temporary_folder = self.generations_folder.join(format!(
            ".{}{}",
            generation::file_name(id),
            files::TEMPORARY_SUFFIX
        ));
        let written = self.write_generation_folder(id, &temporary_folder, &sealed);
        if written.is_err() {
            // Best effort: the next writer removes these leftovers anyway.
            let _ = fs::remove_dir_all(&temporary_folder);
            let _ = self.protector.remove_key(id);
        }
        written?;
        Ok(id)
    }

    /// Fills `temporary_folder` with the generation's files, flushes it and renames it to the
    /// generation's folder.
    fn write_generation_folder(
        &self,
        id: GenerationId,
        temporary_folder: &Path,
        sealed: &generation::SealedGeneration,
    ) -> Result<(), Error> {
        let final_folder = self.generation_folder(id);
        files::create_private_dir(temporary_folder)?;
        fault::point("stage.generation", "folder-created");
        files::write_new_file(
            &temporary_folder.join(generation::CHAIN_FILE),
            &sealed.chain_pem,
            "stage.chain",
        )?;
        files::write_new_file(
            &temporary_folder.join(generation::ENCRYPTED_KEY_FILE),
            &sealed.encrypted_key,
            "stage.encrypted-key",
        )?;
        files::write_new_file(
            &temporary_folder.join(generation::METADATA_FILE),
            &sealed.metadata_json,
            "stage.metadata",
        )?;
        files::sync_dir(temporary_folder)?;
        fault::point("stage.generation", "files-synced");
        fs::rename(temporary_folder, &final_folder)
            .map_err(|source| Error::io(&final_folder, "rename into place", source))?;
        fault::point("stage.generation", "renamed");
        files::sync_dir(&self.generations_folder)?;
        fault::point("stage.generation", "folder-synced");
        Ok(())
    }

    /// Makes generation `id` the current one, after checking that it decrypts and matches its
    /// certificate. The old current generation becomes the previous one; generations older than
    /// `id` that are neither current nor previous are removed. The switch is one atomic
    /// replacement of the `current` pointer; `agent.pem` is rewritten right after it. Activating
    /// the current generation changes nothing (except repairing a lagging `agent.pem`).
    ///
    /// # Errors
    /// [`Error::Locked`]; [`Error::GenerationNotFound`]; the errors of [`Keystore::current`]
    /// for the generation to activate (nothing is switched then); [`Error::Io`].
    pub fn activate(&self, id: GenerationId) -> Result<GenerationInfo, Error> {
        self.activate_holding(id, None)
    }

    /// [`Keystore::activate`]; with `expected`, the read-back checks that the generation holds
    /// exactly that identity (byte for byte, after decryption) instead of deriving the key's
    /// public key again (an import, or a renewal that already read the generation: the identity
    /// was checked when it was loaded).
    ///
    /// # Errors
    /// As [`Keystore::activate`]; [`Error::Tampered`] when the generation holds another identity.
    pub fn activate_holding(
        &self,
        id: GenerationId,
        expected: Option<&Identity>,
    ) -> Result<GenerationInfo, Error> {
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        let pointer = self.read_pointer()?;
        if !self.generation_folder(id).is_dir() {
            return Err(Error::GenerationNotFound { id });
        }
        let info = match expected {
            Some(expected) => {
                let folder = self.generation_folder(id);
                generation::read_info(&folder, id)?;
                let data_key = self.protector.load_key(id)?;
                generation::verify_holds(&folder, id, &data_key, expected)?
            }
            None => self.open_generation(id)?.1,
        };
        let new_pointer = match pointer {
            Some(pointer) if pointer.current.0 == id => pointer,
            Some(pointer) => Pointer {
                current: (id, info.fingerprint),
                previous: Some(pointer.current),
            },
            None => Pointer {
                current: (id, info.fingerprint),
                previous: None,
            },
        };
        self.switch(pointer, new_pointer, "activate")?;
        Ok(info)
    }

    /// Makes the previous generation current again, after checking that it decrypts and matches
    /// its certificate. The generation it replaces becomes a staged one (it can be activated
    /// again or removed with [`Keystore::discard_staged`]), and there is no previous generation
    /// until the next activation. Atomic in the same way as [`Keystore::activate`].
    ///
    /// # Errors
    /// [`Error::Locked`]; [`Error::NotRegistered`]; [`Error::NoPreviousGeneration`]; the errors
    /// of [`Keystore::current`] for the previous generation (nothing is switched then);
    /// [`Error::Io`].
    pub fn rollback(&self) -> Result<GenerationInfo, Error> {
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        let pointer = self.read_pointer()?.ok_or_else(|| self.not_registered())?;
        let previous = pointer
            .previous
            .ok_or_else(|| Error::NoPreviousGeneration {
                path: self.pointer_path(),
            })?;
        let (_, info) = self.open_generation(previous.0)?;
        if info.fingerprint != previous.1 {
            return Err(self.pointer_mismatch(previous.0));
        }
        let new_pointer = Pointer {
            current: previous,
            previous: None,
        };
        self.switch(Some(pointer), new_pointer, "rollback")?;
        Ok(info)
    }

    /// Removes a staged generation (and its random key).
    ///
    /// # Errors
    /// [`Error::Locked`]; [`Error::GenerationInUse`] for the current or previous generation;
    /// [`Error::GenerationNotFound`]; [`Error::Io`].
    pub fn discard_staged(&self, id: GenerationId) -> Result<(), Error> {
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        if let Some(pointer) = self.read_pointer()?
            && (pointer.current.0 == id || pointer.previous.map(|previous| previous.0) == Some(id))
        {
            return Err(Error::GenerationInUse { id });
        }
        if !self.generation_folder(id).is_dir() {
            return Err(Error::GenerationNotFound { id });
        }
        self.remove_generation(id)
    }

    /// The current identity, decrypted and checked: the certificate chain and metadata match
    /// what was stored, the key decrypts (AES-256-GCM authenticates it together with the
    /// certificate fingerprint and metadata), and the key matches the certificate. The key is
    /// zeroized when the returned [`Identity`] is dropped. No lock is taken; if a writer
    /// switches generations during the read, the read is retried.
    ///
    /// # Errors
    /// [`Error::NotRegistered`]; [`Error::Tampered`] if any stored file or the random key was
    /// changed; [`Error::KeyFileMissing`]; [`Error::KeyFilePermissions`];
    /// [`Error::KeyCertificateMismatch`]; [`Error::Certificate`]; [`Error::UnsupportedFormat`];
    /// [`Error::Io`]; the key protector's errors.
    pub fn current(&self) -> Result<Identity, Error> {
        self.read_current().map(|(identity, _)| identity)
    }

    /// Any generation's identity (current, previous or staged), decrypted and checked as
    /// [`Keystore::current`] does. The renewal state machine uses it to probe a staged or
    /// previous identity with the manager before adopting it.
    ///
    /// # Errors
    /// [`Error::GenerationNotFound`], and the errors of [`Keystore::current`].
    pub fn identity(&self, id: GenerationId) -> Result<(Identity, GenerationInfo), Error> {
        self.open_generation(id)
    }

    /// Reports every generation with its role and metadata, without decrypting anything.
    ///
    /// # Errors
    /// [`Error::Tampered`] or [`Error::UnsupportedFormat`] if the pointer file is not valid;
    /// [`Error::Io`] if the store cannot be listed. Problems with one generation are reported
    /// in its [`GenerationStatus::info`].
    pub fn status(&self) -> Result<StoreStatus, Error> {
        let pointer = self.read_pointer()?;
        let mut ids = self.list_generations()?;
        if let Some(pointer) = pointer {
            ids.push(pointer.current.0);
            ids.extend(pointer.previous.map(|previous| previous.0));
        }
        ids.sort_unstable();
        ids.dedup();
        let generations = ids
            .into_iter()
            .map(|id| {
                let role = match pointer {
                    Some(pointer) if pointer.current.0 == id => GenerationRole::Current,
                    Some(pointer) if pointer.previous.map(|previous| previous.0) == Some(id) => {
                        GenerationRole::Previous
                    }
                    _ => GenerationRole::Staged,
                };
                let folder = self.generation_folder(id);
                let info = if folder.is_dir() {
                    generation::read_info(&folder, id)
                } else {
                    Err(Error::GenerationNotFound { id })
                };
                GenerationStatus { id, role, info }
            })
            .collect();
        Ok(StoreStatus {
            generations,
            agent_pem_present: self.agent_pem_path().is_file(),
        })
    }

    /// Checks the current generation as [`Keystore::current`] does, under the writer lock (so
    /// no writer is half-way), and rewrites `agent.pem` if it differs from the current chain.
    ///
    /// # Errors
    /// [`Error::Locked`], and the errors of [`Keystore::current`].
    pub fn verify(&self) -> Result<Verification, Error> {
        let _lock = self.lock()?;
        let (_, info) = self.read_current()?;
        let pointer = self.read_pointer()?.ok_or_else(|| self.not_registered())?;
        let agent_pem_repaired = self.sync_agent_pem(&pointer, "verify.agent-pem")?;
        Ok(Verification {
            generation: info,
            agent_pem_repaired,
        })
    }

    fn read_current(&self) -> Result<(Identity, GenerationInfo), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pointer = self.read_pointer()?.ok_or_else(|| self.not_registered())?;
            let result = self
                .open_generation(pointer.current.0)
                .and_then(|(identity, info)| {
                    if info.fingerprint == pointer.current.1 {
                        Ok((identity, info))
                    } else {
                        Err(self.pointer_mismatch(pointer.current.0))
                    }
                });
            match result {
                Ok(found) => return Ok(found),
                // A writer may have switched and pruned between reading the pointer and the
                // generation: read again if the pointer changed.
                Err(error) if attempt < READ_ATTEMPTS && self.read_pointer()? != Some(pointer) => {
                    drop(error);
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn open_generation(&self, id: GenerationId) -> Result<(Identity, GenerationInfo), Error> {
        let folder = self.generation_folder(id);
        if !folder.is_dir() {
            return Err(Error::GenerationNotFound { id });
        }
        // Read the metadata first, so that a missing or damaged generation is reported as such
        // rather than as a missing key.
        generation::read_info(&folder, id)?;
        let data_key = self.protector.load_key(id)?;
        generation::open(&folder, id, &data_key)
    }

    /// Writes the new pointer (if it changed), then `agent.pem`, then prunes.
    fn switch(&self, old: Option<Pointer>, new: Pointer, scope: &str) -> Result<(), Error> {
        if old != Some(new) {
            self.write_pointer(&new, &format!("{scope}.pointer"))?;
        }
        self.sync_agent_pem(&new, &format!("{scope}.agent-pem"))?;
        self.prune(&new)
    }

    /// Makes `agent.pem` equal the current generation's `chain.pem` (checked against its
    /// metadata first). Returns whether it was rewritten.
    fn sync_agent_pem(&self, pointer: &Pointer, scope: &str) -> Result<bool, Error> {
        let id = pointer.current.0;
        let (chain_pem, info) =
            generation::read_checked_chain_pem(&self.generation_folder(id), id)?;
        if info.fingerprint != pointer.current.1 {
            return Err(self.pointer_mismatch(id));
        }
        let agent_pem = self.agent_pem_path();
        if files::read_if_present(&agent_pem)?.as_deref() == Some(chain_pem.as_slice()) {
            return Ok(false);
        }
        files::replace_file_atomically(&agent_pem, &chain_pem, scope)?;
        Ok(true)
    }

    fn repair_agent_pem_if_unlocked(&self) {
        let Ok(_lock) = files::lock(&self.lock_path(), LockWait::FailFast) else {
            return;
        };
        if let Ok(Some(pointer)) = self.read_pointer() {
            let _ = self.sync_agent_pem(&pointer, "open.agent-pem");
        }
    }

    /// Removes generations older than the current one that are neither current nor previous.
    fn prune(&self, pointer: &Pointer) -> Result<(), Error> {
        let keep_previous = pointer.previous.map(|previous| previous.0);
        for id in self.list_generations()? {
            if id < pointer.current.0 && Some(id) != keep_previous {
                self.remove_generation(id)?;
            }
        }
        Ok(())
    }

    /// Removes a generation folder (renamed away first, so it is never seen half-removed), then
    /// its key. A crash in between leaves a key without a folder, removed by the next writer.
    fn remove_generation(&self, id: GenerationId) -> Result<(), Error> {
        let folder = self.generation_folder(id);
        let trash = self
            .generations_folder
            .join(format!(".{}.trash", generation::file_name(id)));
        fs::rename(&folder, &trash).map_err(|source| Error::io(&folder, "move away", source))?;
        fault::point("prune.generation", "moved-away");
        files::sync_dir(&self.generations_folder)?;
        fault::point("prune.generation", "folder-synced");
        fs::remove_dir_all(&trash).map_err(|source| Error::io(&trash, "remove", source))?;
        fault::point("prune.generation", "removed");
        self.protector.remove_key(id)
    }

    /// Removes what a crashed writer left: temporary files and folders, folders being removed,
    /// and random keys whose generation folder does not exist. Called under the lock.
    fn remove_leftovers(&self) -> Result<(), Error> {
        for folder in [&self.pem_folder, &self.generations_folder] {
            let entries = match fs::read_dir(folder) {
                Ok(entries) => entries,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(Error::io(folder, "list", source)),
            };
            for entry in entries {
                let entry = entry.map_err(|source| Error::io(folder, "list", source))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let path = entry.path();
                let is_leftover = name.ends_with(files::TEMPORARY_SUFFIX)
                    || (folder == &self.generations_folder && name.ends_with(".trash"));
                if !is_leftover {
                    continue;
                }
                if path.is_dir() {
                    fs::remove_dir_all(&path)
                        .map_err(|source| Error::io(&path, "remove", source))?;
                } else {
                    files::remove_file_if_present(&path)?;
                }
            }
        }
        self.protector.remove_leftovers()?;
        let pointer = self.read_pointer().ok().flatten();
        for id in self.protector.stored_keys()? {
            let named_by_pointer = pointer.is_some_and(|pointer| {
                pointer.current.0 == id || pointer.previous.map(|previous| previous.0) == Some(id)
            });
            if !named_by_pointer && !self.generation_folder(id).exists() {
                self.protector.remove_key(id)?;
            }
        }
        Ok(())
    }

    fn list_generations(&self) -> Result<Vec<GenerationId>, Error> {
        let entries = match fs::read_dir(&self.generations_folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::io(&self.generations_folder, "list", source)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|source| Error::io(&self.generations_folder, "list", source))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(generation::id_from_file_name)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn next_generation_id(&self) -> Result<GenerationId, Error> {
        let mut highest = self.list_generations()?.into_iter().max();
        highest = highest.max(self.protector.stored_keys()?.into_iter().max());
        if let Some(pointer) = self.read_pointer()? {
            highest = highest.max(Some(pointer.current.0));
        }
        Ok(GenerationId::new(
            highest.map_or(1, |id| id.number().saturating_add(1)),
        ))
    }

    pub(crate) fn read_pointer(&self) -> Result<Option<Pointer>, Error> {
        let path = self.pointer_path();
        let Some(bytes) = files::read_if_present(&path)? else {
            return Ok(None);
        };
        let file: PointerFile = serde_json::from_slice(&bytes).map_err(|error| {
            Error::tampered(&path, format!("the pointer file is not valid: {error}"))
        })?;
        if file.format > FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                path,
                version: file.format,
            });
        }
        if file.format != FORMAT_VERSION {
            return Err(Error::tampered(&path, "unknown format version"));
        }
        let entry = |entry: &PointerEntry| {
            Fingerprint::parse(&entry.fingerprint_sha256)
                .map(|fingerprint| (GenerationId::new(entry.generation), fingerprint))
                .ok_or_else(|| Error::tampered(&path, "a fingerprint is not 64 hex digits"))
        };
        Ok(Some(Pointer {
            current: entry(&file.current)?,
            previous: file.previous.as_ref().map(entry).transpose()?,
        }))
    }

    fn write_pointer(&self, pointer: &Pointer, scope: &str) -> Result<(), Error> {
        let entry = |(id, fingerprint): (GenerationId, Fingerprint)| PointerEntry {
            generation: id.number(),
            fingerprint_sha256: fingerprint.to_string(),
        };
        let file = PointerFile {
            format: FORMAT_VERSION,
            current: entry(pointer.current),
            previous: pointer.previous.map(entry),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .expect("serialising a struct of strings and integers cannot fail");
        bytes.push(b'\n');
        files::replace_file_atomically(&self.pointer_path(), &bytes, scope)
    }

    /// Whether [`Keystore::open_or_create`] created the store folder.
    pub(crate) fn created_here(&self) -> bool {
        self.created_here
    }

    /// The current generation's id, if any.
    pub(crate) fn current_generation(&self) -> Result<Option<GenerationId>, Error> {
        Ok(self.read_pointer()?.map(|pointer| pointer.current.0))
    }

    /// Returns a store whose only generation is `id` to the unregistered state: the pointer
    /// and `agent.pem` are removed (pointer first, so a reader sees "not registered", never a
    /// pointer to nothing), then the generation and its key.
    pub(crate) fn unregister_only_generation(&self, id: GenerationId) -> Result<(), Error> {
        let _lock = self.lock()?;
        self.remove_leftovers()?;
        match self.read_pointer()? {
            Some(pointer) if pointer.current.0 == id && pointer.previous.is_none() => {}
            Some(_) => return Err(Error::GenerationInUse { id }),
            None => {}
        }
        files::remove_file_if_present(&self.pointer_path())?;
        fault::point("undo.pointer", "removed");
        files::remove_file_if_present(&self.agent_pem_path())?;
        files::sync_dir(&self.pem_folder)?;
        if self.generation_folder(id).is_dir() {
            self.remove_generation(id)?;
        } else {
            self.protector.remove_key(id)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<WriterLock, Error> {
        files::lock(&self.lock_path(), self.lock_wait)
    }

    /// Runs `work` holding the store's writer lock, for a change the store does not make itself
    /// (moving a generation's key to another protector). `work` must not call the store's
    /// writing methods (they take the lock too); reading ([`Keystore::identity`]) is fine.
    ///
    /// # Errors
    /// [`Error::Locked`], or `work`'s error.
    pub fn with_writer_lock<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _lock = self.lock()?;
        work(self)
    }

    fn lock_path(&self) -> PathBuf {
        self.pem_folder.join(LOCK_FILE)
    }

    fn pointer_path(&self) -> PathBuf {
        self.pem_folder.join(POINTER_FILE)
    }

    pub(crate) fn not_registered(&self) -> Error {
        Error::NotRegistered {
            path: self.pointer_path(),
        }
    }

    pub(crate) fn pointer_mismatch(&self, id: GenerationId) -> Error {
        Error::tampered(
            self.pointer_path(),
            format!("generation {id} does not hold the certificate the pointer names"),
        )
    }
}
