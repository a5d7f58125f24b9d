//! Careful reading of the three input files.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::Error;

/// No file of a certificate set is anywhere near this large.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a regular file of at most [`MAX_FILE_BYTES`], returning its bytes in a zeroizing buffer
/// and, on Unix, whether group or others may read it.
pub(crate) fn read_input_file(
    path: &Path,
    what: &'static str,
) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
    let io_error = |source: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    // Look before opening, so that a FIFO does not block the open and a directory gets its own
    // message on every platform. Symbolic links are followed, as administrators use them.
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
                what,
            });
        }
        Err(error) => return Err(io_error(error)),
    };
    check_regular(path, &metadata, what)?;
    let file = File::open(path).map_err(io_error)?;
    // Check again on the opened handle: the path may have been swapped in between.
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
    file.take(MAX_FILE_BYTES + 1)
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
    Ok((bytes, readable_by_others(&metadata)))
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
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_file_kind(_file_type: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// On Unix: group or others have read permission. On Windows, access is governed by ACLs that
/// this check does not inspect; the installer's folder ACLs are documented in operations.md.
#[cfg(unix)]
fn readable_by_others(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o044 != 0
}

#[cfg(not(unix))]
fn readable_by_others(_metadata: &std::fs::Metadata) -> bool {
    false
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
