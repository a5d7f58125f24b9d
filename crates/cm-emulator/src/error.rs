//! The crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the emulator could not start or stopped abnormally.
///
/// Request-level failures are never returned here: they become JSON error responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder in the state folder could not be created, read or written.
    #[error("state folder: cannot access {path}: {source}")]
    StateIo {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but cannot be understood (for example hand-edited JSON).
    #[error("state folder: {path} is not valid: {message}")]
    StateCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The web CA or web server certificate could not be made or loaded.
    #[error("web certificate: {message}")]
    WebCertificate {
        /// What failed.
        message: String,
    },
    /// The TLS server configuration was refused by rustls.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The background runtime or thread could not be started.
    #[error("cannot start the emulator runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The background thread ended without reporting (it panicked).
    #[error("the emulator thread stopped unexpectedly")]
    ThreadPanicked,
}
