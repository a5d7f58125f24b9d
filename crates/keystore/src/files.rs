//! File-system primitives: private folders and files, durable atomic replacement, the writer
//! lock.
//!
//! The writes themselves are the workspace's one implementation in the `durable-fs` crate
//! (crash-tested there); this module maps its errors to [`Error::Io`] and its steps to this
//! crate's named crash points. Every file is created with mode 0600 and every folder with mode
//! 0700 from the start (Unix), so there is no moment at which they are more widely readable. On
//! Windows the folder's ACL is the installer's job.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Error, fault};

/// A `durable-fs` error as this crate's [`Error::Io`] (same path and operation).
fn io_error(error: durable_fs::Error) -> Error {
    let refusal = error.is_refusal();
    let (path, operation, source) = error.into_parts();
    if refusal {
        // A link, FIFO or oversized file where a store file belongs.
        Error::tampered(path, source.to_string())
    } else {
        Error::io(path, operation, source)
    }
}

/// The largest file of the store read back (chains, metadata and keys are a few kilobytes).
const MAX_STORE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Creates `path` and any missing parents with mode 0700. Existing folders are left as they are.
pub(crate) fn create_private_dir_all(path: &Path) -> Result<(), Error> {
    durable_fs::create_private_dir_all(path).map_err(io_error)
}

/// Creates one new folder with mode 0700; fails if it exists.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), Error> {
    durable_fs::create_private_dir(path).map_err(io_error)
}

/// Writes a new file (mode 0600) and flushes it to disk. A stale file of that name (left by a
/// crashed writer) is removed first, so the mode is always the one given here.
///
/// With the `fault-injection` feature, `scope` names crash points after half of the bytes
/// (`<scope>.partially-written`) and after the flush (`<scope>.synced`).
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], scope: &str) -> Result<(), Error> {
    durable_fs::write_new_file(path, bytes, &mut |step| fault::point(scope, step.name()))
        .map_err(io_error)
}

/// Replaces `path` with `bytes` so that a reader, or the file system after a crash, sees either
/// the whole old content or the whole new one: [`durable_fs::replace_file`] through
/// [`temporary_sibling`] (write a temporary file in the same folder, flush it, rename it over
/// `path`, flush the folder).
///
/// With the `fault-injection` feature the crash points are `<scope>.temporary.partially-written`,
/// `<scope>.temporary.synced`, `<scope>.renamed` and `<scope>.folder-synced`.
pub(crate) fn replace_file_atomically(path: &Path, bytes: &[u8], scope: &str) -> Result<(), Error> {
    let temporary_scope = format!("{scope}.temporary");
    durable_fs::replace_file(path, bytes, &temporary_sibling(path), &mut |step| {
        let scope = match step {
            durable_fs::Step::PartiallyWritten | durable_fs::Step::FileSynced => &temporary_scope,
            _ => scope,
        };
        fault::point(scope, step.name());
    })
    .map_err(io_error)
}

/// `<folder>/.<name>.tmp`: the temporary file used to replace `<folder>/<name>`. Only the lock
/// holder writes it, so one name is enough; leftovers of a crash are removed by the next writer.
pub(crate) fn temporary_sibling(path: &Path) -> PathBuf {
    durable_fs::temporary_sibling(path)
}

/// The suffix of temporary files and folders.
pub(crate) const TEMPORARY_SUFFIX: &str = durable_fs::TEMPORARY_SUFFIX;

/// Flushes a folder's entries (new names, renames, removals) to disk (a no-op on Windows, where
/// NTFS journals renames itself).
pub(crate) fn sync_dir(path: &Path) -> Result<(), Error> {
    durable_fs::sync_dir(path).map_err(io_error)
}

/// Removes a file; a file that is already gone is fine.
pub(crate) fn remove_file_if_present(path: &Path) -> Result<(), Error> {
    durable_fs::remove_file_if_present(path).map_err(io_error)
}

/// Reads a whole file; `Ok(None)` if it does not exist.
/// Never through a link, only a regular file, bounded, without blocking on a FIFO
/// ([`durable_fs::read_file`]).
pub(crate) fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    durable_fs::read_file(path, MAX_STORE_FILE_BYTES).map_err(io_error)
}

/// Reads a whole file that must exist (as [`read_if_present`]).
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    read_if_present(path)?.ok_or_else(|| Error::io(path, "read", io::ErrorKind::NotFound.into()))
}

/// How a writer waits for the store's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`Error::Locked`] if another writer holds the lock.
    FailFast,
    /// Wait up to this long for the lock, then fail with [`Error::Locked`].
    UpTo(Duration),
}

impl Default for LockWait {
    /// Wait up to 30 seconds: long enough for any other writer's import or activation.
    fn default() -> Self {
        LockWait::UpTo(Duration::from_secs(30))
    }
}

/// The exclusive writer lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

/// Takes the exclusive lock on `path` (created with mode 0600 if missing).
pub(crate) fn lock(path: &Path, wait: LockWait) -> Result<WriterLock, Error> {
    // Relative to the store folder's handle, never through a link or a FIFO.
    let file = durable_fs::split_path(path)
        .and_then(|(folder, name)| {
            durable_fs::Folder::open(folder, durable_fs::Trust::Private)?.open_lock(name)
        })
        .map_err(io_error)?;
    let deadline = match wait {
        LockWait::FailFast => None,
        LockWait::UpTo(duration) => Some(Instant::now() + duration),
    };
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(WriterLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(source)) => {
                return Err(Error::io(path, "lock", source));
            }
        }
        match deadline {
            Some(deadline) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
        }
    }
}
