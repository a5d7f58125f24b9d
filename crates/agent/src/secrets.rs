//! Reading small secret files an operator controls (a registration token file, a silent
//! registration file): never through a link, only a regular file, bounded, read from the handle
//! that was checked, with a warning when others can read it. The text is zeroized on drop.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::AgentError;

/// The largest secret file read (a token or a silent file is a few hundred bytes).
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret file's text and what is worth telling about it.
#[derive(Debug)]
pub struct SecretText {
    /// The text (zeroized on drop).
    pub text: Zeroizing<String>,
    /// Warnings, each naming the file and the fix (for example group- or world-readable).
    pub warnings: Vec<String>,
}

/// Reads `path`, described as `what` in errors ("the registration token file"); `reading` names
/// the action for an I/O error ("reading the registration token file").
///
/// # Errors
/// [`AgentError::InvalidFile`] when it is a link, not a regular file, larger than
/// `MAX_SECRET_FILE_BYTES`, not UTF-8 or cannot be opened (the operator's input: exit 3).
pub fn read_secret_file(
    path: &Path,
    what: &'static str,
    reading: &'static str,
) -> Result<SecretText, AgentError> {
    let (bytes, warnings) = read_operator_file(path, what, reading)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| AgentError::InvalidFile {
        path: path.to_path_buf(),
        problem: format!("{what} is not UTF-8 text"),
    })?;
    Ok(SecretText {
        text: Zeroizing::new(text.to_string()),
        warnings,
    })
}

/// The bytes of a small file an operator controls, read as [`read_secret_file`] does (no links,
/// a regular file, bounded, from the handle that was checked), with its permission warnings.
///
/// # Errors
/// As [`read_secret_file`], without the UTF-8 rule.
pub(crate) fn read_operator_file(
    path: &Path,
    what: &'static str,
    reading: &'static str,
) -> Result<(Zeroizing<Vec<u8>>, Vec<String>), AgentError> {
    let invalid = |problem: String| AgentError::InvalidFile {
        path: path.to_path_buf(),
        problem,
    };
    // Through the folder's handle (durable_fs::Folder): never through a link, never blocking
    // on a FIFO swapped in. The operator's input, not the agent's own file: every failure is
    // exit 3 ("local input").
    let opened = durable_fs::split_path(path).and_then(|(folder, name)| {
        durable_fs::Folder::open(folder, durable_fs::Trust::Private)?.open_read(name)
    });
    let file = match opened {
        Ok(Some(file)) => file,
        Ok(None) => {
            return Err(invalid(format!(
                "{reading} failed: the file does not exist"
            )));
        }
        Err(_)
            if path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            return Err(invalid(format!(
                "{what} is a symbolic link; give the file itself (links are not followed)"
            )));
        }
        Err(error) if error.is_refusal() => {
            return Err(invalid(format!("{what} is not a regular file")));
        }
        Err(error) => return Err(invalid(format!("{reading} failed: {}", error.io_error()))),
    };
    let metadata = file
        .metadata()
        .map_err(|error| invalid(format!("examining it failed: {error}")))?;
    if !metadata.is_file() {
        return Err(invalid(format!("{what} is not a regular file")));
    }
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(invalid(format!(
            "{what} is {} bytes, more than the {MAX_SECRET_FILE_BYTES} a file of this kind may have",
            metadata.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| invalid(format!("{reading} failed: {error}")))?;
    let warnings = permission_warnings(&metadata, path, what);
    Ok((bytes, warnings))
}

/// A warning when group or others may read or write the file (Unix modes).
#[cfg(unix)]
fn permission_warnings(metadata: &std::fs::Metadata, path: &Path, what: &str) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    if metadata.permissions().mode() & 0o077 == 0 {
        return Vec::new();
    }
    vec![format!(
        "{}: {what} can be read or written by group or others; restrict it with: chmod 600 {}",
        path.display(),
        path.display()
    )]
}

/// On Windows the file's ACL decides; the installer restricts the agent's folders
/// (docs/operations.md). Nothing is checked here.
#[cfg(not(unix))]
fn permission_warnings(_metadata: &std::fs::Metadata, _path: &Path, _what: &str) -> Vec<String> {
    Vec::new()
}

/// The first line of `text` without its line ending, or `None` when it is empty.
pub fn first_line(text: &str) -> Option<Zeroizing<String>> {
    let line = text.lines().next().unwrap_or_default().trim();
    (!line.is_empty()).then(|| Zeroizing::new(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_big_files_are_refused_and_others_readable_warns() {
        let folder = tempfile::tempdir().unwrap();
        let token = folder.path().join("token");
        std::fs::write(&token, "tok-123\n").unwrap();
        let read = read_secret_file(&token, "the token file", "reading").unwrap();
        assert_eq!(
            first_line(&read.text).as_deref().map(String::as_str),
            Some("tok-123")
        );
        let big = folder.path().join("big");
        std::fs::write(&big, vec![b'a'; 70_000]).unwrap();
        assert!(read_secret_file(&big, "the token file", "reading").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
            let read = read_secret_file(&token, "the token file", "reading").unwrap();
            assert!(
                read.warnings[0].contains("chmod 600"),
                "{:?}",
                read.warnings
            );
            let link = folder.path().join("link");
            std::os::unix::fs::symlink(&token, &link).unwrap();
            let error = read_secret_file(&link, "the token file", "reading").unwrap_err();
            assert!(error.to_string().contains("symbolic link"), "{error}");
            let error =
                read_secret_file(Path::new("/dev/zero"), "the token file", "reading").unwrap_err();
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
    }
}
