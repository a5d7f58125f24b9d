//! The one error type of this crate.

use std::path::PathBuf;

use crate::GenerationId;

/// Why a keystore operation failed.
///
/// Every variant that concerns a file names it; the `Display` text is meant to be shown to an
/// administrator as it is. [`Error::kind`] gives a stable one-word name per variant for scripts
/// and tests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// There is no store at this agent root, or it holds no active generation: the host is not
    /// registered.
    #[error("{path}: no registered identity; register the host first")]
    NotRegistered {
        /// The store folder or pointer file that was looked for.
        path: PathBuf,
    },
    /// Another process (or thread) holds the store's writer lock, and the caller chose not to
    /// wait or the wait ran out.
    #[error(
        "{path}: the pem store is locked by another process (vmd, vmutil or register_host); \
         try again when it has finished"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A stored file does not hold what the store wrote: the certificate, the metadata, the
    /// encrypted key or the random key file was altered or damaged (this includes an AES-GCM
    /// authentication failure). The generation must not be used.
    #[error(
        "{path}: stored data was altered or damaged ({reason}); do not use this generation: \
         roll back or register again"
    )]
    Tampered {
        /// The file in which the problem was found (for an authentication failure, the
        /// encrypted key file; the cause may be any file of the generation or its key file).
        path: PathBuf,
        /// What did not check out.
        reason: String,
    },
    /// The random key file of a generation does not exist (for example, the pem folder was
    /// copied to another host without `vmd/keys/`).
    #[error(
        "{path}: the generation's key file is missing; the pem folder alone cannot be decrypted, \
         register the host again"
    )]
    KeyFileMissing {
        /// The expected key file.
        path: PathBuf,
    },
    /// The key protector holding a generation's key could not give it back (a TPM that is gone,
    /// locked out or another host's). Nothing was changed; the message says what to do.
    #[error(
        "{path}: the {protector} key protector cannot open generation {generation}: {reason}; {fix}"
    )]
    Protector {
        /// The protector (`tpm`, `dpapi`, `file`).
        protector: &'static str,
        /// The generation whose key was asked for.
        generation: GenerationId,
        /// The protector's file for that generation.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// The random key file can be read or written by group or others (Unix), so it is not used.
    #[error(
        "{path}: key file has mode {mode:03o}, readable by others; restrict it with: chmod 600 {path}"
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The stored private key does not match the stored certificate.
    #[error("{path}: the stored private key does not match the stored certificate")]
    KeyCertificateMismatch {
        /// The generation folder.
        path: PathBuf,
    },
    /// A stored certificate chain is not an acceptable certificate (other than a key mismatch).
    #[error("{path}: stored certificate refused: {source}")]
    Certificate {
        /// The generation folder or file.
        path: PathBuf,
        /// What `cert-loading` found.
        #[source]
        source: cert_loading::Error,
    },
    /// The requested generation does not exist (never staged, discarded or pruned).
    #[error("generation {id} does not exist in the pem store")]
    GenerationNotFound {
        /// The generation asked for.
        id: GenerationId,
    },
    /// The generation is the current or previous one and cannot be discarded.
    #[error("generation {id} is in use (current or previous) and cannot be discarded")]
    GenerationInUse {
        /// The generation asked for.
        id: GenerationId,
    },
    /// `rollback` was asked for, but there is no previous generation to return to.
    #[error("{path}: there is no previous generation to roll back to")]
    NoPreviousGeneration {
        /// The pointer file.
        path: PathBuf,
    },
    /// A stored file was written by a newer, unknown version of the store format.
    #[error("{path}: unsupported store format version {version}; use a newer agent")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {source}")]
    Random {
        /// The underlying error.
        #[source]
        source: getrandom::Error,
    },
    /// An operating-system call on a path failed.
    #[error("{path}: cannot {operation}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("read", "create", "rename into place", ...).
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A stable one-word name for the variant, for scripts and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotRegistered { .. } => "NotRegistered",
            Error::Locked { .. } => "Locked",
            Error::Tampered { .. } => "Tampered",
            Error::KeyFileMissing { .. } => "KeyFileMissing",
            Error::KeyFilePermissions { .. } => "KeyFilePermissions",
            Error::Protector { .. } => "Protector",
            Error::KeyCertificateMismatch { .. } => "KeyCertificateMismatch",
            Error::Certificate { .. } => "Certificate",
            Error::GenerationNotFound { .. } => "GenerationNotFound",
            Error::GenerationInUse { .. } => "GenerationInUse",
            Error::NoPreviousGeneration { .. } => "NoPreviousGeneration",
            Error::UnsupportedFormat { .. } => "UnsupportedFormat",
            Error::Random { .. } => "Random",
            Error::Io { .. } => "Io",
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        operation: &'static str,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: path.into(),
            operation,
            source,
        }
    }

    pub(crate) fn tampered(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Tampered {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
