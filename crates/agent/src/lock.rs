//! One renewal at a time per agent root, and one daemon.
//!
//! `RenewalLock` is an exclusive advisory lock on `vmd/run/renewal.lock`, held for a whole
//! renewal check by the daemon's checks, `vmd --once` and `vmutil updatecerts` (a dry run takes
//! none: it changes nothing). A second caller waits up to its bound, then fails with
//! [`AgentError::Busy`] naming the holder's pid (written into the file under the lock). The
//! daemon holds `DaemonLock` on its pid file for its whole life, so a second daemon refuses to
//! start instead of overwriting the pid file.
//!
//! The locks are `std::fs::File::try_lock`: `flock(2)` on Unix, `LockFileEx` on Windows; both
//! are released by the operating system when the process dies, so a crash never leaves a stale
//! lock (the pid inside the file may be stale and is only shown, never trusted).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::AgentError;
use crate::fsutil;
use crate::paths::AgentRoot;

/// How long a renewal check waits for another one by default.
pub(crate) const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The renewal lock; released on drop.
#[derive(Debug)]
pub(crate) struct RenewalLock {
    _file: File,
}

impl RenewalLock {
    /// Takes the lock, waiting at most `wait` (checked every 100 ms).
    ///
    /// # Errors
    /// [`AgentError::Busy`] when another process (or thread) holds it after `wait`;
    /// [`AgentError::Io`] when the file cannot be opened.
    pub(crate) fn acquire(root: &AgentRoot, wait: Duration) -> Result<Self, AgentError> {
        let path = root.renewal_lock();
        let file = lock_file(&path, wait, "a renewal check")?;
        Ok(Self { _file: file })
    }
}

/// The daemon's pid-file lock; the pid file is removed and the lock released on drop.
#[derive(Debug)]
pub(crate) struct DaemonLock {
    file: Option<File>,
    path: PathBuf,
}

impl DaemonLock {
    /// Locks `vmd/run/vmd.pid` without waiting and writes this process's pid into it.
    ///
    /// # Errors
    /// [`AgentError::Busy`] when another vmd holds it.
    pub(crate) fn acquire(root: &AgentRoot) -> Result<Self, AgentError> {
        let path = root.pid_file();
        let file = lock_file(&path, Duration::ZERO, "the vmd daemon")?;
        Ok(Self {
            file: Some(file),
            path,
        })
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        // Remove the file while still holding the lock, so a new daemon never finds ours.
        let _ = fsutil::remove_if_present(&self.path);
        self.file.take();
    }
}

fn lock_file(path: &Path, wait: Duration, what: &'static str) -> Result<File, AgentError> {
    // Through the run folder's checked handle: never a link, a FIFO or another user's file.
    let (folder, name) = fsutil::split(path)?;
    let mut file = fsutil::own_folder(folder)?
        .open_lock(name)
        .map_err(|error| fsutil::fs_error(error, "opening the lock file"))?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100).min(wait));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(AgentError::Busy {
                    what,
                    path: path.to_path_buf(),
                    holder: text.trim().parse().ok(),
                    waited: wait,
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(AgentError::io(path, "locking", error));
            }
        }
    }
    let pid = format!("{}\n", std::process::id());
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(pid.as_bytes()))
        .and_then(|()| file.sync_data());
    written.map_err(|error| AgentError::io(path, "writing the pid into", error))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let folder = tempfile::tempdir().unwrap();
        let root = AgentRoot::new(folder.path());
        let first = RenewalLock::acquire(&root, Duration::ZERO).unwrap();
        let error = RenewalLock::acquire(&root, Duration::from_millis(250)).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert_eq!(error.exit_status(), crate::ExitStatus::Busy);
        drop(first);
        RenewalLock::acquire(&root, Duration::ZERO).unwrap();
        let daemon = DaemonLock::acquire(&root).unwrap();
        assert!(DaemonLock::acquire(&root).is_err());
        drop(daemon);
        assert!(!root.pid_file().exists());
    }
}
