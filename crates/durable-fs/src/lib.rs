//! The workspace's one durable atomic file write, and private folders.
//!
//! [`replace_file`] replaces a file so that a reader, or the file system after a crash, sees
//! either the whole old content or the whole new one: write a temporary file in the same folder
//! (mode 0600 from creation on Unix), fsync it, rename it over the target, fsync the folder.
//! The agent (`agent.conf`, status and journal files), the pem store (`keystore`: pointer,
//! `agent.pem`, key files) and the manager emulator (its state files) all write through it.
//!
//! Every file is created with mode 0600 and every folder with mode 0700 from the start (Unix),
//! so there is no moment at which they are more widely readable. On Windows folders cannot be
//! opened as files, so the folder fsync is a no-op (NTFS journals renames itself), and the
//! folder's ACL is the installer's job.
//!
//! Each step of a write is reported to an observer ([`Step`]); the keystore turns the steps
//! into its named crash points, and this crate's `tests/crash.rs` kills a child process with
//! SIGKILL at each of them.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

mod folder;

pub use folder::{Folder, Repair, Trust, unique_temporary_name};

/// A step of [`write_new_file`] or [`replace_file`], reported to the observer once reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The new file exists and holds the first half of the bytes.
    PartiallyWritten,
    /// The new file holds all the bytes and is flushed to disk.
    FileSynced,
    /// The temporary file has been renamed over the target ([`replace_file`] only).
    Renamed,
    /// The target's folder has been flushed ([`replace_file`] only).
    FolderSynced,
}

impl Step {
    /// Every step of [`replace_file`], in order.
    pub const ALL: [Step; 4] = [
        Step::PartiallyWritten,
        Step::FileSynced,
        Step::Renamed,
        Step::FolderSynced,
    ];

    /// A short name: `partially-written`, `synced`, `renamed`, `folder-synced` (the keystore's
    /// crash-point step names).
    pub fn name(self) -> &'static str {
        match self {
            Step::PartiallyWritten => "partially-written",
            Step::FileSynced => "synced",
            Step::Renamed => "renamed",
            Step::FolderSynced => "folder-synced",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A failed file-system operation: which path, which operation, and the system's error.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    operation: &'static str,
    source: io::Error,
    refusal: bool,
}

impl Error {
    fn new(path: &Path, operation: &'static str, source: io::Error) -> Self {
        Error {
            path: path.to_path_buf(),
            operation,
            source,
            refusal: false,
        }
    }

    /// A refusal: the path is not what the agent may touch (a link, a FIFO, a folder others can
    /// write, too large); `problem` says what is wrong and what to do.
    fn refused(path: &Path, operation: &'static str, problem: String) -> Self {
        Error {
            path: path.to_path_buf(),
            operation,
            source: io::Error::new(io::ErrorKind::PermissionDenied, problem),
            refusal: true,
        }
    }

    /// Whether this is a refusal of what was found at the path (a link, a FIFO, a wrong owner or
    /// mode, a size over the bound) rather than a failure of the system (disk full, read-only).
    pub fn is_refusal(&self) -> bool {
        self.refusal
    }

    /// The path the operation was applied to (the temporary file, the target or the folder).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The operation: `create folder`, `create`, `write`, `rename into place`, `flush folder`
    /// or `remove`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The system's error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }

    /// Path, operation and the system's error, for callers with their own error type.
    pub fn into_parts(self) -> (PathBuf, &'static str, io::Error) {
        (self.path, self.operation, self.source)
    }

    /// The system's error alone.
    pub fn into_io_error(self) -> io::Error {
        self.source
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {}: {}",
            self.operation,
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for io::Error {
    /// Keeps the kind; the message names the operation and path.
    fn from(error: Error) -> Self {
        io::Error::new(error.source.kind(), error)
    }
}

/// Creates `path` and any missing parents with mode 0700 (Unix), each one flushed into its
/// parent folder (see [`create_private_dir`]). Existing folders are left as they are.
pub fn create_private_dir_all(path: &Path) -> Result<(), Error> {
    let mut missing = Vec::new();
    let mut level = path;
    while !level.as_os_str().is_empty() && fs::symlink_metadata(level).is_err() {
        missing.push(level);
        match level.parent() {
            Some(parent) => level = parent,
            None => break,
        }
    }
    for folder in missing.into_iter().rev() {
        match create_private_dir(folder) {
            Ok(()) => {}
            // Made meanwhile by another process: what matters is that it is there.
            Err(error) if error.io_error().kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Creates one new folder with mode 0700 (Unix); fails if it exists. The folder holding it is
/// flushed, so that the new name survives a power loss: without that, a file later written,
/// flushed and renamed into the new folder could vanish with it (`cargo xtask powerloss` found a
/// finished registration whose `vmd/keys` could be lost while `vmd/etc/agent.conf` stayed).
pub fn create_private_dir(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    let builder = {
        let mut builder = fs::DirBuilder::new();
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
    };
    #[cfg(not(unix))]
    let builder = fs::DirBuilder::new();
    builder
        .create(path)
        .map_err(|source| Error::new(path, "create folder", source))?;
    sync_parent_of_new_folder(path)
}

/// Flushes the folder that holds a folder just made. The parent is opened without following a
/// link, like every folder the agent flushes; when the parent itself is a link (an agent root
/// configured as a link to another disk), it is the folder the administrator chose, so it is
/// opened through the link for this read-only flush.
fn sync_parent_of_new_folder(path: &Path) -> Result<(), Error> {
    let parent = match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => return Ok(()),
    };
    match sync_dir(parent) {
        Ok(()) => Ok(()),
        #[cfg(unix)]
        Err(error)
            if fs::symlink_metadata(parent).is_ok_and(|meta| meta.file_type().is_symlink()) =>
        {
            let _ = error;
            fs::File::open(parent)
                .and_then(|folder| folder.sync_all())
                .map_err(|source| Error::new(parent, "flush folder", source))
        }
        Err(error) => Err(error),
    }
}

/// Writes a new file (mode 0600 from creation on Unix) and flushes it to disk. A stale file of
/// that name (left by a crashed writer) is removed first, so the mode is always the one given
/// here. `observe` sees [`Step::PartiallyWritten`] (after half of the bytes) and
/// [`Step::FileSynced`]. The folder is opened without following a link ([`Trust::Private`]) and
/// the file created relative to it, `O_EXCL`.
pub fn write_new_file(
    path: &Path,
    bytes: &[u8],
    observe: &mut dyn FnMut(Step),
) -> Result<(), Error> {
    let (folder, name) = split_path(path)?;
    Folder::open(folder, Trust::Private)?.write_new(name, bytes, 0o600, observe)
}

/// Replaces `path` with `bytes` so that a reader, or the file system after a crash, sees either
/// the whole old content or the whole new one: [`write_new_file`] to `temporary` (which must be
/// in the same folder as `path`; see [`temporary_sibling`] and [`unique_temporary_sibling`]),
/// rename it over `path`, flush the folder. `observe` sees every [`Step`] in order. Everything
/// happens relative to the folder's handle ([`Folder::replace_through`]).
///
/// The folder must exist. If a step fails the temporary file is removed (best effort); a crash
/// can leave it behind, which readers must ignore and the next writer may remove.
pub fn replace_file(
    path: &Path,
    bytes: &[u8],
    temporary: &Path,
    observe: &mut dyn FnMut(Step),
) -> Result<(), Error> {
    let (folder, name) = split_path(path)?;
    let (temporary_folder, temporary_name) = split_path(temporary)?;
    if temporary_folder != folder {
        return Err(Error::refused(
            temporary,
            "create",
            format!(
                "the temporary file must be in the folder of {}",
                path.display()
            ),
        ));
    }
    Folder::open(folder, Trust::Private)?.replace_through(
        name,
        temporary_name,
        bytes,
        0o600,
        observe,
    )
}

/// Reads a small file of the agent's own at `path` if it exists: its folder opened without
/// following a link, the file never through a link, only a regular file, at most `limit` bytes
/// ([`Folder::read`]).
///
/// # Errors
/// As [`Folder::read`]; a missing folder is a missing file.
pub fn read_file(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    let (folder, name) = split_path(path)?;
    match Folder::open(folder, Trust::Private) {
        Ok(folder) => folder.read(name, limit),
        Err(error) if error.io_error().kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The folder (`.` for a bare name) and the file name of `path`, as [`Folder::open`] and its
/// single-component operations take them.
///
/// # Errors
/// A refusal when `path` has no file name in UTF-8.
pub fn split_path(path: &Path) -> Result<(&Path, &str), Error> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| Error::refused(path, "open", "it has no file name in UTF-8".to_string()))?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok((folder, name))
}

/// The suffix of temporary files.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// `<folder>/.<name>.tmp`: the one temporary file for `<folder>/<name>`, for a writer that holds
/// a lock (a crashed writer's leftover is replaced by the next one).
pub fn temporary_sibling(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}{TEMPORARY_SUFFIX}", file_name(path)))
}

/// `<folder>/.<name>.<pid>-<n>.tmp`: a temporary file no other writer (thread or process) uses
/// at the same time, for writers that may race.
pub fn unique_temporary_sibling(path: &Path) -> PathBuf {
    path.with_file_name(unique_temporary_name(&file_name(path)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Flushes a folder's entries (new names, renames, removals) to disk.
pub fn sync_dir(path: &Path) -> Result<(), Error> {
    // Windows cannot open a folder as a file; NTFS journals renames itself (Folder::sync).
    Folder::open(path, Trust::Private)?.sync()
}

/// Flushes the folder that holds `path` (the current folder for a bare name).
pub fn sync_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() => sync_dir(Path::new(".")),
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Removes a file; a file that is already gone is fine.
pub fn remove_file_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::new(path, "remove", source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_private_modes_and_reports_every_step() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("a/b");
        create_private_dir_all(&folder).unwrap();
        let target = folder.join("file");
        fs::write(temporary_sibling(&target), b"stale leftover").unwrap();
        let mut steps = Vec::new();
        replace_file(&target, b"new", &temporary_sibling(&target), &mut |step| {
            steps.push(step)
        })
        .unwrap();
        assert_eq!(steps, Step::ALL);
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(!temporary_sibling(&target).exists());
        let unique = unique_temporary_sibling(&target);
        assert_ne!(unique, unique_temporary_sibling(&target));
        assert!(
            unique
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(".tmp")
        );
        replace_file(&target, b"newer", &unique, &mut |_| {}).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"newer");
        let names: Vec<_> = fs::read_dir(&folder).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&target), 0o600);
            assert_eq!(mode(&folder), 0o700);
            assert_eq!(mode(&dir.path().join("a")), 0o700);
        }
    }

    #[test]
    fn a_failed_write_removes_the_temporary_and_names_the_operation() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty folder: the rename fails.
        let target = dir.path().join("folder");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let temporary = temporary_sibling(&target);
        let error = replace_file(&target, b"new", &temporary, &mut |_| {}).unwrap_err();
        assert_eq!(error.operation(), "rename into place");
        assert_eq!(error.path(), target);
        assert!(!temporary.exists());
        assert!(create_private_dir(&target).is_err(), "exists already");
        let io_error: io::Error = error.into();
        assert!(io_error.to_string().contains("rename into place"));
    }
}
