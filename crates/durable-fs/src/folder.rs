//! The one way the agent touches files as root: through a [`Folder`] handle that was checked
//! once, by single-component names, never following a link, with modes set on the open handle.
//!
//! On Unix (through `rustix`, no `unsafe`):
//! - the folder is opened `O_DIRECTORY | O_NOFOLLOW` and judged on the handle (`fstat`): a folder
//!   the agent owns ([`Trust::Own`]) must belong to the agent's user and gets its mode repaired
//!   to 0700 on the handle (`fchmod`), reported in [`Folder::repaired`]; a folder someone else
//!   provides ([`Trust::Shared`]: a metrics folder, a custom log folder) is refused when anyone
//!   but root or the agent's user can replace entries in it;
//! - every file is opened with `openat` relative to that handle with `O_NOFOLLOW | O_NONBLOCK |
//!   O_NOCTTY | O_CLOEXEC`, checked on the handle (`fstat`: a regular file, one link, the
//!   agent's own for the files it writes), read with a bound;
//! - new files are created `O_EXCL` with mode 0600; a wider mode ([`Folder::replace`] with 0644
//!   for a metrics file) is set by `fchmod` on the handle before the rename, never by path;
//! - renames, removals and the folder's fsync go through the same handle (`renameat`,
//!   `unlinkat`, `fsync`).
//!
//! So a user who can write a folder the agent writes in cannot make root chmod, append to,
//! truncate or read another file through a link or a FIFO swapped in between two calls.
//!
//! Windows counterpart: there is no `O_NOFOLLOW` or file mode. The folder and each file are
//! looked at without following links (`symlink_metadata`) and refused when they are a reparse
//! point (creating one needs a privilege); access is the folder's ACL, which is the installer's
//! job. Operations are by path under the checked folder.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Step, TEMPORARY_SUFFIX};

/// How far a folder is trusted, which decides what [`Folder::open`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trust {
    /// A folder the agent owns (`vmd/etc`, `vmd/run`, `vmd/log`, `/var/log/vormetric`): created
    /// with mode 0700 when missing, its mode repaired to 0700 when wider (reported), refused when
    /// it is a link or belongs to another user.
    Own,
    /// A folder someone else provides (the node_exporter textfile folder, a custom `LOG_DIR`):
    /// never created or changed; refused when it is a link, belongs to anyone but root or the
    /// agent's user, or is writable by group or others.
    Shared,
    /// A folder the caller already made private and holds a lock on (the pem store's own
    /// folders): opened without following a link, not judged further.
    Private,
}

/// A repair [`Folder::open`] made to a folder the agent owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The folder.
    pub path: PathBuf,
    /// Its mode before (permission bits).
    pub old_mode: u32,
    /// Its mode now.
    pub new_mode: u32,
}

impl std::fmt::Display for Repair {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}: the agent's folder had mode {:04o}; it was set to {:04o} (nobody else may read or replace what the agent keeps there)",
            self.path.display(),
            self.old_mode,
            self.new_mode
        )
    }
}

/// A checked folder; every file operation of the agent goes through one.
#[derive(Debug)]
pub struct Folder {
    path: PathBuf,
    #[cfg(unix)]
    handle: std::os::fd::OwnedFd,
    repaired: Option<Repair>,
}

/// What a file found by [`Folder::read`] turned out to be, when it is not a readable file.
fn refusal(path: &Path, operation: &'static str, problem: String) -> Error {
    Error::refused(path, operation, problem)
}

fn check_name(folder: &Path, name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err(refusal(
            &folder.join(name),
            "open",
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// A temporary name in the same folder that no other writer (thread or process) uses at the
/// same time: `.<name>.<pid>-<n>.tmp`.
pub fn unique_temporary_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.{}-{count}{TEMPORARY_SUFFIX}", std::process::id())
}

impl Folder {
    /// Opens `path` as `trust` says (see [`Trust`]).
    ///
    /// # Errors
    /// A refusal (see [`Error::is_refusal`]) naming the folder, what is wrong and the fix; or the
    /// system's error.
    pub fn open(path: &Path, trust: Trust) -> Result<Folder, Error> {
        if trust == Trust::Own {
            match std::fs::symlink_metadata(path) {
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    crate::create_private_dir_all(path)?;
                }
                _ => {}
            }
        }
        imp::open(path, trust)
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The repair [`Folder::open`] made, if any.
    pub fn repaired(&self) -> Option<&Repair> {
        self.repaired.as_ref()
    }

    /// Reads `name` if it exists: never through a link, only a regular file, at most `limit`
    /// bytes (a FIFO or a device swapped in is refused without blocking).
    ///
    /// # Errors
    /// A refusal when it is a link, not a regular file or larger than `limit`; the system's error.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, Error> {
        let path = self.join(name);
        let Some(file) = self.open_read(name)? else {
            return Ok(None);
        };
        let length = file
            .metadata()
            .map_err(|source| Error::new(&path, "examine", source))?
            .len();
        if length > limit {
            return Err(refusal(
                &path,
                "read",
                format!("it is {length} bytes, more than the {limit} a file of this kind may have"),
            ));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::new(&path, "read", source))?;
        if bytes.len() as u64 > limit {
            return Err(refusal(
                &path,
                "read",
                format!("it grew past the {limit} bytes a file of this kind may have"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Opens `name` for reading if it exists: never through a link, only a regular file, without
    /// blocking on a FIFO. For a caller that needs the handle's metadata before it reads (with
    /// its own bound); [`Folder::read`] is the common case.
    ///
    /// # Errors
    /// A refusal when it is a link or not a regular file; the system's error.
    pub fn open_read(&self, name: &str) -> Result<Option<File>, Error> {
        check_name(&self.path, name)?;
        imp::open_existing(self, name, false)
    }

    /// Opens `name` for appending, creating it with mode 0600: never through a link, only a
    /// regular file of the agent's own with a single link.
    ///
    /// # Errors
    /// A refusal when it is a link, not a regular file, has other links or another owner.
    pub fn open_append(&self, name: &str) -> Result<File, Error> {
        check_name(&self.path, name)?;
        imp::open_writable(self, name, true)
    }

    /// Opens (creating with mode 0600) `name` for reading and writing without truncating it, as
    /// a lock file: the same checks as [`Folder::open_append`].
    ///
    /// # Errors
    /// As [`Folder::open_append`].
    pub fn open_lock(&self, name: &str) -> Result<File, Error> {
        check_name(&self.path, name)?;
        imp::open_writable(self, name, false)
    }

    /// Replaces `name` with `bytes` durably and atomically (a unique temporary file created
    /// `O_EXCL` 0600, written, `mode` set on its handle, fsynced, renamed over `name`, the folder
    /// fsynced). `observe` sees every [`Step`].
    ///
    /// # Errors
    /// The failed operation; the temporary file is removed.
    pub fn replace(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        observe: &mut dyn FnMut(Step),
    ) -> Result<(), Error> {
        self.replace_through(name, &unique_temporary_name(name), bytes, mode, observe)
    }

    /// [`Folder::replace`] through the temporary name given (for a writer that holds a lock: a
    /// stale file of that name is removed first).
    ///
    /// # Errors
    /// As [`Folder::replace`].
    pub fn replace_through(
        &self,
        name: &str,
        temporary: &str,
        bytes: &[u8],
        mode: u32,
        observe: &mut dyn FnMut(Step),
    ) -> Result<(), Error> {
        check_name(&self.path, name)?;
        let result = (|| {
            self.write_new(temporary, bytes, mode, observe)?;
            self.rename(temporary, name)
        })();
        if result.is_err() {
            let _ = self.remove(temporary);
        }
        result?;
        observe(Step::Renamed);
        self.sync()?;
        observe(Step::FolderSynced);
        Ok(())
    }

    /// Writes a new file `name` (a stale one is removed first), mode 0600 from creation and then
    /// `mode` set on the handle, and flushes it. `observe` sees [`Step::PartiallyWritten`] and
    /// [`Step::FileSynced`].
    ///
    /// # Errors
    /// The failed operation.
    pub fn write_new(
        &self,
        name: &str,
        bytes: &[u8],
        mode: u32,
        observe: &mut dyn FnMut(Step),
    ) -> Result<(), Error> {
        check_name(&self.path, name)?;
        self.remove(name)?;
        let path = self.join(name);
        let mut file = imp::create_new(self, name)?;
        let half = bytes.len() / 2;
        file.write_all(&bytes[..half])
            .map_err(|source| Error::new(&path, "write", source))?;
        observe(Step::PartiallyWritten);
        file.write_all(&bytes[half..])
            .map_err(|source| Error::new(&path, "write", source))?;
        imp::set_mode(&file, mode)
            .map_err(|source| Error::new(&path, "set the mode of", source))?;
        file.sync_all()
            .map_err(|source| Error::new(&path, "write", source))?;
        drop(file);
        observe(Step::FileSynced);
        Ok(())
    }

    /// Renames `from` to `to` inside the folder (replacing `to`).
    ///
    /// # Errors
    /// The system's error.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        check_name(&self.path, from)?;
        check_name(&self.path, to)?;
        imp::rename(self, from, to)
            .map_err(|source| Error::new(&self.join(to), "rename into place", source))
    }

    /// Removes `name` (not a folder); a name that is already gone is fine.
    ///
    /// # Errors
    /// The system's error.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        check_name(&self.path, name)?;
        match imp::remove(self, name) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::new(&self.join(name), "remove", source)),
        }
    }

    /// The size of `name` (not following a link), if it exists.
    ///
    /// # Errors
    /// The system's error.
    pub fn size(&self, name: &str) -> Result<Option<u64>, Error> {
        check_name(&self.path, name)?;
        match imp::size(self, name) {
            Ok(size) => Ok(Some(size)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::new(&self.join(name), "examine", source)),
        }
    }

    /// Flushes the folder's entries to disk (a no-op on Windows, where NTFS journals renames).
    ///
    /// # Errors
    /// The system's error.
    pub fn sync(&self) -> Result<(), Error> {
        imp::sync(self).map_err(|source| Error::new(&self.path, "flush folder", source))
    }
}

#[cfg(unix)]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::fd::OwnedFd;
    use std::path::Path;

    use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

    use super::{Folder, Repair, Trust, refusal};
    use crate::Error;

    const FILE_FLAGS: OFlags = OFlags::NOFOLLOW
        .union(OFlags::NONBLOCK)
        .union(OFlags::NOCTTY)
        .union(OFlags::CLOEXEC);

    fn euid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[allow(clippy::useless_conversion)] // st_mode is u16 on some Unix systems.
    fn permission_bits(stat: &Stat) -> u32 {
        u32::from(stat.st_mode) & 0o7777
    }

    /// What the name is when it is not what was asked for (for messages).
    fn describe(path: &Path) -> &'static str {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => "a symbolic link (links are not followed)",
            Ok(meta) if meta.is_dir() => "a folder",
            Ok(_) => "not a regular file",
            Err(_) => "not what was expected",
        }
    }

    pub(super) fn open(path: &Path, trust: Trust) -> Result<Folder, Error> {
        let handle = rustix::fs::openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| match errno {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => refusal(
                path,
                "open folder",
                format!(
                    "it is {}, not a folder; the agent never follows a link here: make it a real folder",
                    describe(path)
                ),
            ),
            other => Error::new(path, "open folder", other.into()),
        })?;
        let stat = rustix::fs::fstat(&handle)
            .map_err(|errno| Error::new(path, "examine folder", errno.into()))?;
        let owner = stat.st_uid;
        let mode = permission_bits(&stat);
        let mut repaired = None;
        match trust {
            Trust::Private => {}
            Trust::Own => {
                if owner != euid() {
                    return Err(refusal(
                        path,
                        "check folder",
                        format!(
                            "the agent's folder belongs to uid {owner}, not to the agent (uid {}); whoever owns it could replace the agent's files: remove it or run chown {} {}",
                            euid(),
                            euid(),
                            path.display()
                        ),
                    ));
                }
                if mode & 0o7077 != 0 {
                    rustix::fs::fchmod(&handle, Mode::from_raw_mode(0o700))
                        .map_err(|errno| Error::new(path, "repair the mode of", errno.into()))?;
                    repaired = Some(Repair {
                        path: path.to_path_buf(),
                        old_mode: mode,
                        new_mode: 0o700,
                    });
                }
            }
            Trust::Shared => {
                if owner != 0 && owner != euid() {
                    return Err(refusal(
                        path,
                        "check folder",
                        format!(
                            "it belongs to uid {owner}, who could replace the files the agent writes there; make root its owner (chown root {}) or choose another folder",
                            path.display()
                        ),
                    ));
                }
                if mode & 0o022 != 0 {
                    return Err(refusal(
                        path,
                        "check folder",
                        format!(
                            "it has mode {mode:04o}: group or others can replace the files the agent writes there; run chmod go-w {} or choose another folder",
                            path.display()
                        ),
                    ));
                }
            }
        }
        Ok(Folder {
            path: path.to_path_buf(),
            handle,
            repaired,
        })
    }

    fn check_file(folder: &Folder, name: &str, file: &File, own: bool) -> Result<(), Error> {
        let path = folder.join(name);
        let stat =
            rustix::fs::fstat(file).map_err(|errno| Error::new(&path, "examine", errno.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(refusal(
                &path,
                "open",
                "it is not a regular file (a FIFO, device or folder is never read or written here)"
                    .to_string(),
            ));
        }
        if own {
            if stat.st_nlink > 1 {
                return Err(refusal(
                    &path,
                    "open",
                    format!(
                        "it has {} hard links, so writing it would change another file: remove it",
                        stat.st_nlink
                    ),
                ));
            }
            if stat.st_uid != euid() {
                return Err(refusal(
                    &path,
                    "open",
                    format!(
                        "it belongs to uid {}, not to the agent: remove it and the agent makes its own",
                        stat.st_uid
                    ),
                ));
            }
        }
        Ok(())
    }

    fn link_refusal(folder: &Folder, name: &str, operation: &'static str) -> Error {
        refusal(
            &folder.join(name),
            operation,
            "it is a symbolic link; the agent never follows a link here: remove it".to_string(),
        )
    }

    pub(super) fn open_existing(
        folder: &Folder,
        name: &str,
        own: bool,
    ) -> Result<Option<File>, Error> {
        let path = folder.join(name);
        match rustix::fs::openat(
            &folder.handle,
            name,
            OFlags::RDONLY | FILE_FLAGS,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let file = File::from(fd);
                check_file(folder, name, &file, own)?;
                Ok(Some(file))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP) => Err(link_refusal(folder, name, "read")),
            Err(errno) => Err(Error::new(&path, "open", errno.into())),
        }
    }

    pub(super) fn open_writable(folder: &Folder, name: &str, append: bool) -> Result<File, Error> {
        let path = folder.join(name);
        let access = if append {
            OFlags::WRONLY | OFlags::APPEND
        } else {
            OFlags::RDWR
        };
        let fd = rustix::fs::openat(
            &folder.handle,
            name,
            access | OFlags::CREATE | FILE_FLAGS,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|errno| match errno {
            rustix::io::Errno::LOOP => link_refusal(folder, name, "open"),
            // A FIFO without a reader, opened without blocking.
            rustix::io::Errno::NXIO => refusal(
                &path,
                "open",
                "it is not a regular file (a FIFO, device or folder is never read or written here)"
                    .to_string(),
            ),
            other => Error::new(&path, "open", other.into()),
        })?;
        let file = File::from(fd);
        check_file(folder, name, &file, true)?;
        Ok(file)
    }

    pub(super) fn create_new(folder: &Folder, name: &str) -> Result<File, Error> {
        let fd = rustix::fs::openat(
            &folder.handle,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | FILE_FLAGS,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|errno| Error::new(&folder.join(name), "create", errno.into()))?;
        Ok(File::from(fd))
    }

    pub(super) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
        if mode == 0o600 {
            return Ok(());
        }
        rustix::fs::fchmod(file, Mode::from_raw_mode(mode)).map_err(io::Error::from)
    }

    pub(super) fn rename(folder: &Folder, from: &str, to: &str) -> io::Result<()> {
        rustix::fs::renameat(&folder.handle, from, &folder.handle, to).map_err(io::Error::from)
    }

    pub(super) fn remove(folder: &Folder, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&folder.handle, name, AtFlags::empty()).map_err(io::Error::from)
    }

    pub(super) fn size(folder: &Folder, name: &str) -> io::Result<u64> {
        let stat = rustix::fs::statat(&folder.handle, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(u64::try_from(stat.st_size).unwrap_or(0))
    }

    pub(super) fn sync(folder: &Folder) -> io::Result<()> {
        rustix::fs::fsync(&folder.handle).map_err(io::Error::from)
    }

    /// The folder's handle, for callers that need one more `*at` call.
    pub(super) fn handle(folder: &Folder) -> &OwnedFd {
        &folder.handle
    }
}

#[cfg(not(unix))]
mod imp {
    use std::fs::{self, File, OpenOptions};
    use std::io;
    use std::path::Path;

    use super::{Folder, Trust, refusal};
    use crate::Error;

    fn not_a_link(path: &Path, operation: &'static str) -> Result<Option<fs::Metadata>, Error> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(refusal(
                path,
                operation,
                "it is a symbolic link or junction; the agent never follows a link here: remove it"
                    .to_string(),
            )),
            Ok(meta) => Ok(Some(meta)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::new(path, operation, source)),
        }
    }

    /// Windows: the folder must be a real folder (not a link or junction); its ACL is the
    /// installer's job, so `trust` adds no further check.
    pub(super) fn open(path: &Path, _trust: Trust) -> Result<Folder, Error> {
        match not_a_link(path, "open folder")? {
            Some(meta) if meta.is_dir() => Ok(Folder {
                path: path.to_path_buf(),
                repaired: None,
            }),
            Some(_) => Err(refusal(
                path,
                "open folder",
                "it is not a folder".to_string(),
            )),
            None => Err(Error::new(
                path,
                "open folder",
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    fn checked(folder: &Folder, name: &str, file: File) -> Result<File, Error> {
        let path = folder.join(name);
        let meta = file
            .metadata()
            .map_err(|source| Error::new(&path, "examine", source))?;
        if !meta.is_file() {
            return Err(refusal(
                &path,
                "open",
                "it is not a regular file".to_string(),
            ));
        }
        Ok(file)
    }

    pub(super) fn open_existing(
        folder: &Folder,
        name: &str,
        _own: bool,
    ) -> Result<Option<File>, Error> {
        let path = folder.join(name);
        if not_a_link(&path, "read")?.is_none() {
            return Ok(None);
        }
        match File::open(&path) {
            Ok(file) => checked(folder, name, file).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::new(&path, "open", source)),
        }
    }

    pub(super) fn open_writable(folder: &Folder, name: &str, append: bool) -> Result<File, Error> {
        let path = folder.join(name);
        not_a_link(&path, "open")?;
        let mut options = OpenOptions::new();
        options.create(true);
        if append {
            options.append(true);
        } else {
            options.read(true).write(true).truncate(false);
        }
        let file = options
            .open(&path)
            .map_err(|source| Error::new(&path, "open", source))?;
        checked(folder, name, file)
    }

    pub(super) fn create_new(folder: &Folder, name: &str) -> Result<File, Error> {
        let path = folder.join(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::new(&path, "create", source))
    }

    /// Windows has no file modes; the folder's ACL decides.
    pub(super) fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn rename(folder: &Folder, from: &str, to: &str) -> io::Result<()> {
        fs::rename(folder.join(from), folder.join(to))
    }

    pub(super) fn remove(folder: &Folder, name: &str) -> io::Result<()> {
        fs::remove_file(folder.join(name))
    }

    pub(super) fn size(folder: &Folder, name: &str) -> io::Result<u64> {
        fs::symlink_metadata(folder.join(name)).map(|meta| meta.len())
    }

    /// Windows cannot open a folder as a file; NTFS journals renames itself.
    pub(super) fn sync(_folder: &Folder) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Folder {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        imp::handle(self).as_fd()
    }
}
