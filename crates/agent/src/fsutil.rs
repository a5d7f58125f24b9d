//! The agent's files, touched one way: every file the agent creates, replaces or reads outside the
//! certificate folder goes through a checked [`durable_fs::Folder`] (opened without following a
//! link, judged on its handle, files opened relative to it with `O_NOFOLLOW | O_NONBLOCK`, modes
//! set on the handle, reads bounded). The agent's own folders (`vmd/*`, the product's log folder)
//! are [`Trust::Own`]: created 0700, their mode repaired, refused when a link or another user's.
//! Folders others provide (the metrics folder, a custom `LOG_DIR`) are [`Trust::Shared`]: refused
//! when anyone but root can replace entries in them. Also the shred of input files.

use std::fs;
use std::io::Write;
use std::path::Path;

use durable_fs::{Folder, Trust};

use crate::AgentError;

/// The largest state file the agent reads back (agent.conf, status, journal, metrics state, pid
/// and lock files are a few kilobytes).
pub(crate) const MAX_STATE_FILE_BYTES: u64 = 1024 * 1024;

/// An error of [`durable_fs`] as the agent reports it: a refusal of what was found (a link, a
/// FIFO, a folder others can write) is [`AgentError::UnsafeFile`]; anything else is the system's
/// failure ([`AgentError::Io`]: disk full, read-only, permission).
pub(crate) fn fs_error(error: durable_fs::Error, action: &'static str) -> AgentError {
    if error.is_refusal() {
        let (path, _, source) = error.into_parts();
        AgentError::UnsafeFile {
            path,
            problem: source.to_string(),
        }
    } else {
        let (path, _, source) = error.into_parts();
        AgentError::io(path, action, source)
    }
}

/// Opens one of the agent's own folders ([`Trust::Own`]): created 0700 when missing, its mode
/// repaired when wider ([`Folder::repaired`] says so), refused when it is a link or belongs to
/// another user.
///
/// # Errors
/// [`AgentError::UnsafeFile`] for a refusal, [`AgentError::Io`] otherwise.
pub(crate) fn own_folder(path: &Path) -> Result<Folder, AgentError> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        create_private_dir(parent)?;
    }
    Folder::open(path, Trust::Own).map_err(|error| fs_error(error, "opening the folder"))
}

/// Creates `path` and its missing parents; folders this creates get mode 0700 on Unix.
pub fn create_private_dir(path: &Path) -> Result<(), AgentError> {
    durable_fs::create_private_dir_all(path)
        .map_err(|error| AgentError::io(path, "creating the folder", error.into_io_error()))
}

/// The folder and the file name of one of the agent's files ([`durable_fs::split_path`]).
pub(crate) fn split(path: &Path) -> Result<(&Path, &str), AgentError> {
    durable_fs::split_path(path).map_err(|error| fs_error(error, "naming"))
}

/// Replaces one of the agent's files with `contents` through its own folder ([`own_folder`],
/// [`Folder::replace`]): a unique temporary file (mode 0600, `O_EXCL`) in the same folder,
/// fsync, rename over the target, fsync the folder. Readers see the old or the new file, never
/// a mix; several agent processes may write the same file.
///
/// # Errors
/// As [`own_folder`], and the failed write.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), AgentError> {
    let (folder, name) = split(path)?;
    own_folder(folder)?
        .replace(name, contents, 0o600, &mut |_| {})
        .map_err(|error| fs_error(error, "writing"))
}

/// Reads one of the agent's files if it exists, through its own folder: never through a link,
/// only a regular file, at most [`MAX_STATE_FILE_BYTES`], without blocking on a FIFO. A missing
/// folder is a missing file (nothing is created: this works on a read-only agent root).
///
/// # Errors
/// As [`own_folder`], and the failed read.
pub(crate) fn read_own(path: &Path) -> Result<Option<Vec<u8>>, AgentError> {
    let (folder, name) = split(path)?;
    match fs::symlink_metadata(folder) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    Folder::open(folder, Trust::Own)
        .and_then(|folder| folder.read(name, MAX_STATE_FILE_BYTES))
        .map_err(|error| fs_error(error, "reading"))
}

/// [`read_own`] as UTF-8 text.
///
/// # Errors
/// As [`read_own`]; text that is not UTF-8 is [`AgentError::InvalidFile`].
pub(crate) fn read_own_text(path: &Path) -> Result<Option<String>, AgentError> {
    read_own(path)?
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| AgentError::InvalidFile {
                path: path.to_path_buf(),
                problem: "it is not UTF-8 text".to_string(),
            })
        })
        .transpose()
}

/// Removes one of the agent's files if it exists, relative to its own folder.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), AgentError> {
    let (folder, name) = split(path)?;
    match fs::symlink_metadata(folder) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    Folder::open(folder, Trust::Own)
        .and_then(|folder| folder.remove(name))
        .map_err(|error| fs_error(error, "removing"))
}

/// What `register_host --shred-input` did to the three input files.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShredReport {
    /// Overwritten with zeros, fsynced and removed.
    pub shredded: Vec<std::path::PathBuf>,
    /// Left as they are (or overwritten but not removed), each with the reason and state.
    pub not_shredded: Vec<NotShredded>,
}

/// One input file that was not shredded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NotShredded {
    /// The path.
    pub path: std::path::PathBuf,
    /// Why, and the state it was left in.
    pub reason: String,
}

/// Shreds the very files a set was read from ([`cert_loading::LoadedSet::files`]); a file that
/// is no longer the one read is left alone and reported.
pub(crate) fn shred_loaded(set: &cert_loading::LoadedSet) -> ShredReport {
    let mut report = ShredReport::default();
    for file in &set.files {
        match shred_input_file(file) {
            Ok(()) => report.shredded.push(file.path.clone()),
            Err(reason) => report.not_shredded.push(NotShredded {
                path: file.path.clone(),
                reason,
            }),
        }
    }
    report
}

/// Overwrites with zeros (fsynced) and removes the file that was read as `file`, only if its path
/// still names that very file.
///
/// On Unix: the folder is opened, the name is looked at without following links and must be a
/// regular file with the recorded device and inode and a single link (so no other name shares the
/// data); it is then opened `O_WRONLY | O_NOFOLLOW | O_NONBLOCK`, checked again with `fstat` on
/// the handle, overwritten and fsynced through that handle; the name is looked at once more right
/// before `unlinkat`, and removed only if it still names that inode. On Windows: the same checks
/// with `symlink_metadata` and the opened handle's metadata (length and modification time stand
/// for the identity), then a plain overwrite and removal.
///
/// On SSDs, copy-on-write and journaling file systems an overwrite does not reach every physical
/// copy; the documentation says so and advises full-disk encryption.
///
/// # Errors
/// The reason the file was not shredded and the state it is in, as text for the administrator:
/// nothing was written to a file that is not the one read.
pub(crate) fn shred_input_file(file: &cert_loading::InputFile) -> Result<(), String> {
    imp::shred_input_file(file)
}

fn overwrite_with_zeros(handle: &mut fs::File, length: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 64 * 1024];
    let mut remaining = length;
    while remaining > 0 {
        let chunk = remaining.min(zeros.len() as u64) as usize;
        handle.write_all(&zeros[..chunk])?;
        remaining -= chunk as u64;
    }
    handle.sync_all()
}

#[cfg(unix)]
mod imp {
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    use cert_loading::InputFile;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

    const UNTOUCHED: &str = "it was left untouched";

    #[allow(clippy::unnecessary_cast)] // st_dev and st_ino are not u64 on every Unix.
    fn is_same(stat: &Stat, file: &InputFile) -> bool {
        stat.st_dev as u64 == file.device && stat.st_ino as u64 == file.inode
    }

    /// The name as it is now, if it is still the file that was read; otherwise why not.
    fn still_the_file(folder: &File, name: &Path, file: &InputFile) -> Result<(), String> {
        match rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => {
                let file_type = FileType::from_raw_mode(stat.st_mode);
                if file_type == FileType::Symlink {
                    Err("it is now a symbolic link, not the file that was read (the link was not followed)".to_string())
                } else if file_type != FileType::RegularFile || !is_same(&stat, file) {
                    Err("it was replaced by another file after it was read".to_string())
                } else {
                    Ok(())
                }
            }
            Err(rustix::io::Errno::NOENT) => {
                Err("it was removed or renamed after it was read".to_string())
            }
            Err(error) => Err(format!("it cannot be looked at: {error}")),
        }
    }

    pub(super) fn shred_input_file(file: &InputFile) -> Result<(), String> {
        let path = file.path.as_path();
        let folder_path = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = path.file_name().map_or(path, Path::new);
        let folder = rustix::fs::openat(
            rustix::fs::CWD,
            folder_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|error| format!("its folder cannot be opened ({error}); {UNTOUCHED}"))?;
        // Look before opening, so that nothing but the file read is ever opened for writing.
        still_the_file(&folder, name, file).map_err(|reason| format!("{reason}; {UNTOUCHED}"))?;
        let mut handle = rustix::fs::openat(
            &folder,
            name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|error| format!("it cannot be opened for writing ({error}); {UNTOUCHED}"))?;
        // And judge the handle itself: the name may have been swapped since the look.
        let metadata = handle
            .metadata()
            .map_err(|error| format!("it cannot be examined ({error}); {UNTOUCHED}"))?;
        if !metadata.is_file() || metadata.dev() != file.device || metadata.ino() != file.inode {
            return Err(format!(
                "it was replaced by another file after it was read; {UNTOUCHED}"
            ));
        }
        if metadata.nlink() > 1 {
            return Err(format!(
                "it has {} hard links, so overwriting it would change the file under its other names; {UNTOUCHED}",
                metadata.nlink()
            ));
        }
        super::overwrite_with_zeros(&mut handle, metadata.len()).map_err(|error| {
            format!(
                "overwriting it failed ({error}); it may be partly overwritten and was not removed"
            )
        })?;
        drop(handle);
        // Remove the name only if it still names the inode just overwritten.
        still_the_file(&folder, name, file)
            .map_err(|reason| format!("it was overwritten with zeros but not removed: {reason}"))?;
        rustix::fs::unlinkat(&folder, name, AtFlags::empty()).map_err(|error| {
            format!("it was overwritten with zeros but could not be removed: {error}")
        })?;
        let _ = folder.sync_all();
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs;

    use cert_loading::InputFile;

    const UNTOUCHED: &str = "it was left untouched";

    fn still_the_file(file: &InputFile) -> Result<(), String> {
        match fs::symlink_metadata(&file.path) {
            Ok(metadata) if metadata.file_type().is_symlink() => Err(
                "it is now a symbolic link, not the file that was read (the link was not followed)"
                    .to_string(),
            ),
            Ok(metadata) if metadata.is_file() && file.is_same_file(&metadata) => Ok(()),
            Ok(_) => Err("it was replaced by another file after it was read".to_string()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err("it was removed or renamed after it was read".to_string())
            }
            Err(error) => Err(format!("it cannot be looked at: {error}")),
        }
    }

    /// Windows counterpart: no O_NOFOLLOW or inode numbers; the name is looked at without
    /// following links, and the opened handle must have the length and modification time read.
    pub(super) fn shred_input_file(file: &InputFile) -> Result<(), String> {
        still_the_file(file).map_err(|reason| format!("{reason}; {UNTOUCHED}"))?;
        let mut handle = fs::OpenOptions::new()
            .write(true)
            .open(&file.path)
            .map_err(|error| format!("it cannot be opened for writing ({error}); {UNTOUCHED}"))?;
        let metadata = handle
            .metadata()
            .map_err(|error| format!("it cannot be examined ({error}); {UNTOUCHED}"))?;
        if !metadata.is_file() || !file.is_same_file(&metadata) {
            return Err(format!(
                "it was replaced by another file after it was read; {UNTOUCHED}"
            ));
        }
        super::overwrite_with_zeros(&mut handle, metadata.len()).map_err(|error| {
            format!(
                "overwriting it failed ({error}); it may be partly overwritten and was not removed"
            )
        })?;
        drop(handle);
        still_the_file(file)
            .map_err(|reason| format!("it was overwritten with zeros but not removed: {reason}"))?;
        fs::remove_file(&file.path).map_err(|error| {
            format!("it was overwritten with zeros but could not be removed: {error}")
        })
    }
}

/// A snapshot of a file's bytes (or its absence), to put it back exactly after a failure.
#[derive(Clone, Debug)]
pub(crate) struct FileSnapshot {
    path: std::path::PathBuf,
    contents: Option<Vec<u8>>,
}

impl FileSnapshot {
    /// Reads the file now.
    pub fn take(path: &Path) -> Result<Self, AgentError> {
        let contents = read_own(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            contents,
        })
    }

    /// Writes the snapshot back (or removes the file if it did not exist).
    pub(crate) fn restore(&self) -> Result<(), AgentError> {
        match &self.contents {
            Some(contents) => write_atomically(&self.path, contents),
            None => remove_if_present(&self.path),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes, if the file existed.
    pub fn contents(&self) -> Option<&[u8]> {
        self.contents.as_deref()
    }
}
