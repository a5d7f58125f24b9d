//! Careful reading of the three input files.
//!
//! Whoever can write the certificate folder must not be able to make the agent (root) read,
//! hang on, or later shred anything but a plain file in that folder. So, on Unix:
//! - the folder is opened once (`O_DIRECTORY`) and checked on its handle: refused when others
//!   may write it without the sticky bit, a warning when group (or, with the sticky bit,
//!   others) may write it;
//! - each file is opened relative to that handle with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`: a
//!   symbolic link is refused (never followed), a FIFO does not block the open, and the type,
//!   size, owner and mode are checked with `fstat` on the opened handle, the one then read (at
//!   most the limit plus one byte, whatever the size said);
//! - the (device, inode, length) of each file read is returned as an [`InputFile`], so that a
//!   later shred can make sure it overwrites the very file that was read.
//!
//! On other platforms (Windows) the counterpart is weaker and documented as such: the path is
//! looked at without following links (a link or junction is refused), opened plainly, and the
//! type and size are checked again on the opened handle; folder and file permissions (ACLs) are
//! not inspected, and [`InputFile::device`]/[`InputFile::inode`] are 0 (identity is then the
//! length and modification time).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::{Error, Warning};

/// No file of a certificate set is anywhere near this large.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The identity of one input file as it was read: enough for a later operation (the shred of
/// `register_host --shred-input`) to check that a path still names the very same file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    /// The path that was opened.
    pub path: PathBuf,
    /// The device holding the file (`st_dev`; 0 where not available).
    pub device: u64,
    /// The file's inode number (`st_ino`; 0 where not available).
    pub inode: u64,
    /// Its length in bytes when it was opened.
    pub len: u64,
    /// Its modification time when it was opened, where the platform gives one.
    pub modified: Option<SystemTime>,
}

impl InputFile {
    /// Whether `metadata` (taken on an open handle or with `symlink_metadata`) describes the same
    /// file: same device and inode on Unix; elsewhere, same length and modification time.
    pub fn is_same_file(&self, metadata: &std::fs::Metadata) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            metadata.dev() == self.device && metadata.ino() == self.inode
        }
        #[cfg(not(unix))]
        {
            metadata.len() == self.len && metadata.modified().ok() == self.modified
        }
    }
}

/// A file read by [`read_input_file`].
pub(crate) struct ReadFile {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) identity: InputFile,
    /// Group or others may read it.
    pub(crate) readable_by_others: bool,
    /// Group or others may write it.
    pub(crate) writable_by_others: bool,
    /// Owned by a user other than root and the one running this process (Unix uid).
    pub(crate) foreign_owner: Option<u32>,
}

/// An opened folder holding input files: on Unix the files are opened relative to its handle, so
/// what was checked is the folder they are read from.
pub(crate) struct Folder {
    #[cfg_attr(unix, allow(dead_code))]
    path: PathBuf,
    #[cfg(unix)]
    handle: File,
}

impl Folder {
    /// Opens `path` as the folder of input files and checks who may write it, adding warnings.
    ///
    /// `missing` and `not_a_folder` build the errors for a path that does not exist or is not a
    /// folder (they differ between a named certificate directory and a file's parent).
    pub(crate) fn open(
        path: &Path,
        warnings: &mut Vec<Warning>,
        missing: impl FnOnce() -> Error,
        not_a_folder: impl FnOnce() -> Error,
    ) -> Result<Folder, Error> {
        let io_error = |source: std::io::Error| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use rustix::fs::{Mode, OFlags};
            use std::os::unix::fs::MetadataExt;
            // The folder's own path may be a link (the administrator's choice of where it is);
            // what matters is that every file is then opened relative to this very folder.
            let handle = match rustix::fs::openat(
                rustix::fs::CWD,
                path,
                OFlags::RDONLY
                    | OFlags::DIRECTORY
                    | OFlags::NONBLOCK
                    | OFlags::CLOEXEC
                    | OFlags::NOCTTY,
                Mode::empty(),
            ) {
                Ok(handle) => File::from(handle),
                Err(rustix::io::Errno::NOENT) => return Err(missing()),
                Err(rustix::io::Errno::NOTDIR) => return Err(not_a_folder()),
                Err(error) => return Err(io_error(error.into())),
            };
            let metadata = handle.metadata().map_err(io_error)?;
            let mode = metadata.mode() & 0o7777;
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                return Err(Error::FolderWritableByOthers {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            if mode & 0o022 != 0 {
                warnings.push(Warning::FolderWritableByOthers {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            if let Some(uid) = foreign_owner(metadata.uid()) {
                warnings.push(Warning::OwnedByAnotherUser {
                    path: path.to_path_buf(),
                    uid,
                });
            }
            Ok(Folder {
                path: path.to_path_buf(),
                handle,
            })
        }
        #[cfg(not(unix))]
        {
            // Windows: no folder handle to open files relative to, and ACLs are not inspected
            // (the installer's folder ACLs are documented in operations.md).
            let _ = warnings;
            match std::fs::metadata(path) {
                Ok(metadata) if metadata.is_dir() => Ok(Folder {
                    path: path.to_path_buf(),
                }),
                Ok(_) => Err(not_a_folder()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
                Err(error) => Err(io_error(error)),
            }
        }
    }
}

/// Reads `name` in `folder`: a regular file (never through a symbolic link) of at most
/// [`MAX_FILE_BYTES`], returning its bytes in a zeroizing buffer, its identity and what its
/// permissions say. `path` is how the file is named in messages.
pub(crate) fn read_input_file(
    folder: &Folder,
    name: &Path,
    path: &Path,
    what: &'static str,
) -> Result<ReadFile, Error> {
    let io_error = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = open_no_follow(folder, name, path, what)?;
    // Everything is judged on the opened handle: the path may have been swapped since.
    let metadata = file.metadata().map_err(io_error)?;
    check_regular(path, &metadata, what)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            size: metadata.len(),
            limit: MAX_FILE_BYTES,
            what,
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize));
    // At most limit + 1 bytes, whatever the size said (a file can grow while it is read).
    (&file)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
            what,
        });
    }
    let (readable_by_others, writable_by_others, foreign_owner) = permissions(&metadata);
    Ok(ReadFile {
        bytes,
        identity: identity_of(path, &metadata),
        readable_by_others,
        writable_by_others,
        foreign_owner,
    })
}

/// Opens `name` in `folder` for reading without following a symbolic link and without blocking
/// on a FIFO, naming `path` in errors.
#[cfg(unix)]
fn open_no_follow(
    folder: &Folder,
    name: &Path,
    path: &Path,
    what: &'static str,
) -> Result<File, Error> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let opened = rustix::fs::openat(
        &folder.handle,
        name,
        // O_NONBLOCK: opening a FIFO returns at once (and fstat then refuses it); a regular file
        // ignores the flag, so reads below behave as usual.
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    );
    match opened {
        Ok(handle) => Ok(File::from(handle)),
        Err(rustix::io::Errno::NOENT) => Err(Error::MissingFile {
            path: path.to_path_buf(),
            what,
        }),
        Err(error) => {
            // ELOOP (EMLINK on FreeBSD) for a link, ENXIO for a socket, ...: say what is there.
            match rustix::fs::statat(&folder.handle, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => {
                    let file_type = rustix::fs::FileType::from_raw_mode(stat.st_mode);
                    if file_type == rustix::fs::FileType::Symlink {
                        return Err(Error::SymbolicLink {
                            path: path.to_path_buf(),
                            what,
                        });
                    }
                    if file_type != rustix::fs::FileType::RegularFile {
                        return Err(Error::NotAFile {
                            path: path.to_path_buf(),
                            found: rustix_kind(file_type),
                            what,
                        });
                    }
                    Err(Error::Io {
                        path: path.to_path_buf(),
                        source: error.into(),
                    })
                }
                Err(_) => Err(Error::Io {
                    path: path.to_path_buf(),
                    source: error.into(),
                }),
            }
        }
    }
}

#[cfg(unix)]
fn rustix_kind(file_type: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType;
    match file_type {
        FileType::Directory => "a directory",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        _ => "a special file",
    }
}

/// Windows counterpart: look without following links (a link or junction is refused), then a
/// plain open; the type and size are checked again on the opened handle by the caller.
#[cfg(not(unix))]
fn open_no_follow(
    folder: &Folder,
    name: &Path,
    path: &Path,
    what: &'static str,
) -> Result<File, Error> {
    let full = folder.path.join(name);
    let metadata = match std::fs::symlink_metadata(&full) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                what,
            });
        }
        Err(error) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: error,
            });
        }
    };
    if metadata.file_type().is_symlink() {
        return Err(Error::SymbolicLink {
            path: path.to_path_buf(),
            what,
        });
    }
    check_regular(path, &metadata, what)?;
    File::open(&full).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn identity_of(path: &Path, metadata: &std::fs::Metadata) -> InputFile {
    #[cfg(unix)]
    let (device, inode) = {
        use std::os::unix::fs::MetadataExt;
        (metadata.dev(), metadata.ino())
    };
    #[cfg(not(unix))]
    let (device, inode) = (0, 0);
    InputFile {
        path: path.to_path_buf(),
        device,
        inode,
        len: metadata.len(),
        modified: metadata.modified().ok(),
    }
}

fn check_regular(
    path: &Path,
    metadata: &std::fs::Metadata,
    what: &'static str,
) -> Result<(), Error> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    let found = if file_type.is_dir() {
        "a directory"
    } else {
        special_file_kind(&file_type)
    };
    Err(Error::NotAFile {
        path: path.to_path_buf(),
        found,
        what,
    })
}

#[cfg(unix)]
fn special_file_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_file_type: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// On Unix: (group or others may read, group or others may write, owner if neither root nor the
/// user running this process). On Windows, access is governed by ACLs that this check does not
/// inspect; the installer's folder ACLs are documented in operations.md.
#[cfg(unix)]
fn permissions(metadata: &std::fs::Metadata) -> (bool, bool, Option<u32>) {
    use std::os::unix::fs::MetadataExt;
    let mode = metadata.mode();
    (
        mode & 0o044 != 0,
        mode & 0o022 != 0,
        foreign_owner(metadata.uid()),
    )
}

#[cfg(not(unix))]
fn permissions(_metadata: &std::fs::Metadata) -> (bool, bool, Option<u32>) {
    (false, false, None)
}

/// `uid` when it is neither root nor the user running this process: that user can change the
/// file whatever its mode says.
#[cfg(unix)]
fn foreign_owner(uid: u32) -> Option<u32> {
    let me = rustix::process::geteuid().as_raw();
    (uid != 0 && uid != me).then_some(uid)
}

/// Removes exactly one trailing `\n` or `\r\n`, as `openssl -passin file:` does for `\n` and as
/// Windows editors require for `\r\n`.
pub(crate) fn strip_one_line_ending(bytes: &mut Zeroizing<Vec<u8>>) {
    if bytes.ends_with(b"\r\n") {
        let length = bytes.len() - 2;
        bytes[length..].fill(0);
        bytes.truncate(length);
    } else if bytes.ends_with(b"\n") {
        let length = bytes.len() - 1;
        bytes[length] = 0;
        bytes.truncate(length);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_exactly_one_line_ending() {
        for (input, expected) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\n", b"secret"),
            (b"secret", b"secret"),
            (b"secret\n\n", b"secret\n"),
            (b"secret  \n", b"secret  "),
            (b"\n", b""),
        ] {
            let mut bytes = Zeroizing::new(input.to_vec());
            strip_one_line_ending(&mut bytes);
            assert_eq!(&bytes[..], expected, "input {input:?}");
        }
    }
}
