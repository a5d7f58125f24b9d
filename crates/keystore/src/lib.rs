//! The agent's pem store: its certificate chain and private key, kept so that the agent can use
//! them at every start without the administrator's passphrase, while a copy of the store folder
//! alone does not give away the key, and renewal can replace both without a crash ever leaving
//! a broken identity.
//!
//! The store folder, chosen by the caller (the agent's is `<agent root>/vmd/pem/`), holds
//! numbered *generations*, each a complete identity: the certificate chain, the private key
//! encrypted with AES-256-GCM under a fresh random 256-bit key, and metadata. The random key is
//! kept elsewhere, by the [`KeyProtector`] the caller opens the store with (the agent's is a
//! [`FileKeyProtector`] writing `<agent root>/vmd/keys/<generation>.key`, mode 0600). A pointer
//! file, `current`, names the current and previous generation; switching is one atomic rename
//! of that file. `agent.pem` is a copy of the current chain for scripts that test whether a host
//! is registered. See `docs/ARCHITECTURE.md` (pem store layout) for the files and
//! `docs/security.md` for what this does and does not protect against.
//!
//! # Main types
//! - [`Keystore`]: one store under one agent root. [`Keystore::stage`] writes an [`Identity`]
//!   as a new generation without touching the current one and returns its [`GenerationId`];
//!   [`Keystore::activate`] switches to it; [`Keystore::rollback`] returns to the previous one;
//!   [`Keystore::current`] decrypts and checks the current identity; [`Keystore::status`] lists
//!   generations ([`StoreStatus`], [`GenerationStatus`], [`GenerationInfo`]);
//!   [`Keystore::verify`] checks the current generation and repairs `agent.pem`.
//! - [`Keystore::import`]: stage and activate in one step, returning an [`Import`] that the
//!   caller keeps, or undoes when a later step of its own fails (rollback, or back to an
//!   unregistered store).
//! - [`KeyProtector`]: where the random keys ([`DataKey`]) live, chosen at [`Keystore::open`].
//!   [`FileKeyProtector`] keeps files; a TPM or OS-keyring implementation can replace it.
//! - [`LockWait`]: whether a writer waits for another one ([`Keystore::with_lock_wait`]).
//! - [`Error`]: the one error type; every variant names what a caller can act on.
//!
//! Every write goes through a temporary file or folder, `fsync`, `rename` and an `fsync` of the
//! folder. Writers (`stage`, `activate`, `rollback`, `discard_staged`, `verify`) hold an
//! exclusive lock on `vmd/pem/.lock` for their duration; readers (`current`, `status`) take no
//! lock and never see a half-written state.
//!
//! # What this crate does not do
//! - It does not decide *when* to renew or whether a certificate is still valid: it never reads
//!   the clock (the creation time recorded in metadata is a parameter) and applies no validity
//!   checks; that is `renewal-policy`'s and `cert-loading`'s job.
//! - It does not read external certificate sets or passphrases (`cert-loading` does), talk to
//!   the key manager, or log.
//! - It does not protect the key from root (or the agent's user) on the running host, who can
//!   read the random key file: see `docs/security.md`.
//! - On Windows it does not set ACLs: the installer must restrict the agent root.
//!
//! # Example
//! ```
//! use std::path::Path;
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//!
//! // A test-only identity from the committed test vectors, loaded at the vectors' fixed "now".
//! let now = UNIX_EPOCH + Duration::from_secs(1_780_272_000);
//! let vector = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../testdata/vectors/good/p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256"
//! ));
//! let identity =
//!     cert_loading::load_directory(vector, &cert_loading::LoadOptions::default(), now)?.identity;
//!
//! let agent_root = tempfile::tempdir()?;
//! let pem_folder = agent_root.path().join("vmd/pem");
//! let keys = || Box::new(keystore::FileKeyProtector::new(agent_root.path().join("vmd/keys")));
//! let store = keystore::Keystore::open_or_create(&pem_folder, keys())?;
//! assert!(!store.is_registered()?);
//!
//! let generation = store.stage(&identity, SystemTime::now())?;
//! store.activate(generation)?;
//! assert!(store.agent_pem_path().exists());
//!
//! // At the next start: no passphrase needed.
//! let reopened = keystore::Keystore::open(&pem_folder, keys())?;
//! let current = reopened.current()?;
//! assert_eq!(current.key().pkcs8_der(), identity.key().pkcs8_der());
//! assert_eq!(reopened.verify()?.generation.id, generation);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(windows)]
mod dpapi;
mod error;
#[doc(hidden)]
pub mod fault;
mod files;
mod generation;
mod import;
mod protector;
mod public;
mod store;
#[cfg(all(feature = "tpm", target_os = "linux"))]
mod tpm;

pub use cert_loading::{Fingerprint, Identity};
pub use cert_vocabulary::KeyProtectorKind;
#[cfg(windows)]
pub use dpapi::{DpapiKeyProtector, ENTROPY_FILE as DPAPI_ENTROPY_FILE};
pub use error::Error;
pub use files::LockWait;
pub use generation::{GenerationId, GenerationInfo, GenerationRole};
pub use import::Import;
pub use protector::{
    DATA_KEY_LENGTH, DataKey, FileKeyProtector, KeyProtector, key_path_in, sealed_by,
};
pub use store::{
    AGENT_PEM_FILE, GENERATIONS_FOLDER, GenerationStatus, Keystore, LOCK_FILE, POINTER_FILE,
    StoreStatus, Verification,
};
#[cfg(all(feature = "tpm", target_os = "linux"))]
pub use tpm::{DEFAULT_TCTI, TpmKeyProtector};
