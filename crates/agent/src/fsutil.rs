//! Private folders and atomic file replacement for agent.conf, status and journal files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::AgentError;

/// Creates `path` and its missing parents; folders this creates get mode 0700 on Unix.
pub fn create_private_dir(path: &Path) -> Result<(), AgentError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|error| AgentError::io(path, "creating the folder", error))
}

/// Replaces `path` with `contents`: write a temporary file (mode 0600) in the same folder, fsync,
/// rename over the target, fsync the folder. Readers see the old or the new file, never a mix.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), AgentError> {
    let folder = path
        .parent()
        .ok_or_else(|| AgentError::Usage(format!("{} has no parent folder", path.display())))?;
    create_private_dir(folder)?;
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, path)?;
        sync_folder(folder)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(|error| AgentError::io(path, "writing", error))
}

/// Fsyncs a folder so a rename in it survives a power loss (a no-op where folders cannot be
/// opened, as on Windows, where NTFS journals the rename).
pub fn sync_folder(folder: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(folder)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        Ok(())
    }
}

/// Removes a file if it exists, reporting other failures.
pub fn remove_if_present(path: &Path) -> Result<(), AgentError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(AgentError::io(path, "removing", error)),
    }
}

/// Overwrites a file with zeros (same length, fsynced) and removes it. On copy-on-write or
/// journaling file systems and SSDs an overwrite does not reach every physical copy; the
/// documentation says so and advises full-disk encryption.
pub fn shred(path: &Path) -> Result<(), AgentError> {
    let length = fs::metadata(path)
        .map_err(|error| AgentError::io(path, "shredding", error))?
        .len();
    let overwrite = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        let zeros = vec![0u8; 64 * 1024];
        let mut remaining = length;
        while remaining > 0 {
            let chunk = remaining.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..chunk])?;
            remaining -= chunk as u64;
        }
        file.sync_all()
    };
    overwrite().map_err(|error| AgentError::io(path, "shredding", error))?;
    fs::remove_file(path).map_err(|error| AgentError::io(path, "removing", error))
}

/// A snapshot of a file's bytes (or its absence), to put it back exactly after a failure.
#[derive(Clone, Debug)]
pub struct FileSnapshot {
    path: std::path::PathBuf,
    contents: Option<Vec<u8>>,
}

impl FileSnapshot {
    /// Reads the file now.
    pub fn take(path: &Path) -> Result<Self, AgentError> {
        let contents = match fs::read(path) {
            Ok(contents) => Some(contents),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(AgentError::io(path, "reading", error)),
        };
        Ok(Self {
            path: path.to_path_buf(),
            contents,
        })
    }

    /// Writes the snapshot back (or removes the file if it did not exist).
    pub fn restore(&self) -> Result<(), AgentError> {
        match &self.contents {
            Some(contents) => write_atomically(&self.path, contents),
            None => remove_if_present(&self.path),
        }
    }

    /// The bytes, if the file existed.
    pub fn contents(&self) -> Option<&[u8]> {
        self.contents.as_deref()
    }
}
