//! Reads, decrypts and validates an administrator's external certificate set.
//!
//! An external certificate set is a directory holding `client_cert.pem` (the client
//! certificate, leaf first, optionally followed by intermediates), `client_key.pem` (its private
//! key, encrypted with a passphrase) and `passphrase` (the passphrase as plain text). This crate
//! turns such a directory into a validated [`Identity`], or refuses it with an [`Error`] that names
//! the file, says what is wrong and what to do.
//!
//! # Main types
//! - [`load_directory`] (and [`load_files`]) read a set and return a [`LoadedSet`]: the
//!   [`Identity`] plus how the key was stored ([`KeyFormat`]) and any [`Warning`]s.
//! - [`Identity`] holds the chain, the decrypted key as [`SecretKeyDer`] (zeroized on drop,
//!   `Debug` prints nothing secret), and a [`CertificateSummary`] (common name, validity, SHA-256
//!   [`Fingerprint`], signature algorithm) plus the [`KeyAlgorithm`].
//! - [`read_directory`] does the part that needs no key: it returns a [`ReadSet`] whose
//!   certificate can be looked at, and [`ReadSet::decrypt`] runs the key derivation only when a
//!   caller needs the key ([`load_directory`] is the two in a row).
//! - [`Identity::from_parts`] rebuilds an identity from a stored chain and key (used by the
//!   keystore), checking that they match, without looking at time.
//!
//! # Rules
//! From the product documentation: the certificate is PEM and signed with
//! sha256WithRSAEncryption or ecdsa-with-SHA384; the key is passphrase-encrypted. Added here:
//! RSA keys of at least 2048 bits or EC P-384 keys; the key matches the certificate; the
//! certificate is valid at "now"; the subject has exactly one common name; key usage and extended
//! key usage, when present, allow digitalSignature and clientAuth. Key files may be encrypted
//! PKCS#8 (PBES2 with PBKDF2-HMAC-SHA1/224/256/384/512 or scrypt; AES-128/192/256-CBC, AES-GCM,
//! DES-EDE3-CBC) or OpenSSL's traditional form (AES-128/192/256-CBC, DES-EDE3-CBC). Legacy
//! PBES1/PKCS#12 schemes are refused with the `openssl pkcs8` command that converts them.
//!
//! # What this crate does not do
//! No network I/O, no writing of any file, no logging, and it never reads the clock: "now" is a
//! parameter. Chain verification against CA certificates is optional ([`LoadOptions`]) and done by
//! rustls-webpki.
//!
//! # Example
//! ```no_run
//! use std::time::SystemTime;
//! let set = cert_loading::load_directory(
//!     std::path::Path::new("/root/cert_files"),
//!     &cert_loading::LoadOptions::default(),
//!     SystemTime::now(),
//! )?;
//! println!(
//!     "{} expires {}",
//!     set.identity.certificate().common_name,
//!     cert_loading::format_rfc3339(set.identity.certificate().not_after)
//! );
//! # Ok::<(), cert_loading::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod certificate;
mod error;
mod files;
mod key;
mod pem;
mod traditional;

use std::path::{Path, PathBuf};

use std::time::SystemTime;

pub use cert_vocabulary::{escape_for_terminal, format_rfc3339, is_unsafe_for_terminal};
pub use certificate::{CertificateSummary, Fingerprint, SignatureAlgorithm};
pub use error::Error;
pub use files::{InputFile, MAX_FILE_BYTES};
pub use key::{KeyAlgorithm, KeyFormat, SecretKeyDer};
pub use rustls_pki_types::CertificateDer;

/// The certificate file's name inside an external certificate directory.
pub const CERTIFICATE_FILE: &str = "client_cert.pem";
/// The key file's name inside an external certificate directory.
pub const KEY_FILE: &str = "client_key.pem";
/// The passphrase file's name inside an external certificate directory.
pub const PASSPHRASE_FILE: &str = "passphrase";

/// Options for loading a set.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// When set, the chain must lead to one of these CA certificates (DER).
    pub trusted_cas: Option<Vec<CertificateDer<'static>>>,
    /// Skip the validity-period rule (expired, not yet valid): for a caller that judges time
    /// itself, such as the renewal policy, which waits for a set that is merely early. Every
    /// other rule still applies, and the key is decrypted once.
    pub ignore_validity_period: bool,
}

/// Something worth telling the administrator that does not make the set unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A secret file can be read by group or others (Unix permissions).
    ReadableByOthers {
        /// The file.
        path: PathBuf,
    },
    /// An input file can be written by group or others (Unix permissions), who could replace
    /// the identity the agent uses.
    WritableByOthers {
        /// The file.
        path: PathBuf,
    },
    /// The certificate folder can be written by group, or by others with the sticky bit set
    /// (a folder writable by others without it is refused: [`Error::FolderWritableByOthers`]).
    FolderWritableByOthers {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file or the folder belongs to a user other than root and the one running the agent:
    /// that user can change it whatever its mode says.
    OwnedByAnotherUser {
        /// The file or folder.
        path: PathBuf,
        /// The owner's uid.
        uid: u32,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::ReadableByOthers { path } => write!(
                formatter,
                "{}: readable by group or others; restrict it with: chmod 600 {}",
                path.display(),
                path.display()
            ),
            Warning::WritableByOthers { path } => write!(
                formatter,
                "{}: writable by group or others, who could replace it; restrict it with: chmod go-w {}",
                path.display(),
                path.display()
            ),
            Warning::FolderWritableByOthers { path, mode } => write!(
                formatter,
                "{}: the certificate folder is writable by group or others (mode {mode:o}), who could add or replace files in it; restrict it with: chmod 700 {}",
                path.display(),
                path.display()
            ),
            Warning::OwnedByAnotherUser { path, uid } => write!(
                formatter,
                "{}: owned by uid {uid}, who can change it whatever its mode; give it to the user the agent runs as (normally root): chown root {}",
                path.display(),
                path.display()
            ),
        }
    }
}

/// A validated client identity: certificate chain and decrypted private key.
#[derive(Clone, Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: SecretKeyDer,
    certificate: CertificateSummary,
    key_algorithm: KeyAlgorithm,
}

impl Identity {
    /// Rebuilds an identity from a chain (leaf first) and an unencrypted PKCS#8 key, checking
    /// that the certificate follows the time-independent rules and that the key matches it.
    /// `source` names where the parts came from, for error messages.
    ///
    /// # Errors
    /// The certificate and key errors of [`load_files`], except the time checks.
    pub fn from_parts(
        source: &Path,
        chain: Vec<CertificateDer<'static>>,
        key: SecretKeyDer,
    ) -> Result<Self, Error> {
        let leaf = certificate::decode_chain(source, &chain)?;
        let certificate = certificate::summarize(source, &leaf, &chain[0])?;
        let inspected = key::inspect_pkcs8(source, &key)?;
        if inspected.public_key_info_der != certificate::public_key_info_der(&leaf) {
            return Err(Error::KeyCertificateMismatch {
                key_path: source.to_path_buf(),
                cert_path: source.to_path_buf(),
            });
        }
        Ok(Self {
            chain,
            key: inspected.secret,
            certificate,
            key_algorithm: inspected.algorithm,
        })
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The decrypted private key.
    pub fn key(&self) -> &SecretKeyDer {
        &self.key
    }

    /// The leaf certificate's summary.
    pub fn certificate(&self) -> &CertificateSummary {
        &self.certificate
    }

    /// The key's type and size.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.key_algorithm
    }

    /// The chain as PEM text, leaf first.
    pub fn chain_pem(&self) -> String {
        chain_to_pem(&self.chain)
    }

    /// Whether the certificate is valid at `now`.
    ///
    /// # Errors
    /// [`Error::Expired`] or [`Error::NotYetValid`], naming `source`.
    pub fn check_validity(&self, source: &Path, now: SystemTime) -> Result<(), Error> {
        certificate::check_validity(source, &self.certificate, now)
    }
}

/// Encodes DER certificates as PEM, one block each (RFC 7468, `der::pem`).
pub fn chain_to_pem(chain: &[CertificateDer<'_>]) -> String {
    chain
        .iter()
        .map(|certificate| {
            // Fails only when the encoded length overflows `usize`, which a certificate in
            // memory cannot reach.
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, certificate)
                .expect("the PEM length of a certificate held in memory fits in usize")
        })
        .collect()
}

/// Parses PEM text holding certificates only (leaf first) into DER, decoding each one.
///
/// # Errors
/// [`Error::InvalidPem`], [`Error::NotACertificate`] or [`Error::InvalidCertificate`], naming
/// `source`.
pub fn parse_certificate_pem(
    source: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = certificate::parse_chain(source, pem)?;
    certificate::decode_chain(source, &chain)?;
    Ok(chain)
}

/// Summarises a certificate chain's leaf, applying the time-independent certificate rules.
///
/// # Errors
/// The certificate errors of [`load_files`], except the time checks.
pub fn summarize_certificate(
    source: &Path,
    chain: &[CertificateDer<'_>],
) -> Result<CertificateSummary, Error> {
    let leaf = certificate::decode_chain(source, chain)?;
    certificate::summarize(source, &leaf, &chain[0])
}

/// The type of a chain's leaf public key (RSA and its size, or EC P-384), read from the
/// certificate alone: what a status display shows without decrypting the private key.
///
/// # Errors
/// The certificate errors of [`summarize_certificate`]; `Ok(None)` for a key type this crate
/// refuses.
pub fn public_key_algorithm(
    source: &Path,
    chain: &[CertificateDer<'_>],
) -> Result<Option<KeyAlgorithm>, Error> {
    let leaf = certificate::decode_chain(source, chain)?;
    Ok(certificate::public_key_algorithm(&leaf))
}

/// A loaded and validated external certificate set.
#[derive(Debug)]
pub struct LoadedSet {
    /// The identity.
    pub identity: Identity,
    /// How the key file was encrypted.
    pub key_format: KeyFormat,
    /// Non-fatal findings.
    pub warnings: Vec<Warning>,
    /// The certificate file that was read.
    pub certificate_path: PathBuf,
    /// The key file that was read.
    pub key_path: PathBuf,
    /// The passphrase file that was read.
    pub passphrase_path: PathBuf,
    /// The three files exactly as they were read (certificate, key, passphrase): device, inode
    /// and length of the handle that was read, so a later shred can check it overwrites the very
    /// same files (see [`InputFile::is_same_file`]).
    pub files: [InputFile; 3],
}

/// Loads `client_cert.pem`, `client_key.pem` and `passphrase` from `directory`.
///
/// On Unix the folder is opened once and the three files are opened relative to it, never
/// through a symbolic link; see [`load_files`] for the checks on each file.
///
/// # Errors
/// See [`load_files`]; before any file, [`Error::DirectoryMissing`] when `directory` does not
/// exist, [`Error::NotADirectory`] when it is a file or anything but a folder, and
/// [`Error::FolderWritableByOthers`] when every user may write it and it has no sticky bit.
pub fn load_directory(
    directory: &Path,
    options: &LoadOptions,
    now: SystemTime,
) -> Result<LoadedSet, Error> {
    read_directory(directory)?.decrypt(options, now)
}

/// Reads the three files of `directory` and checks everything that does not need the key
/// decrypted: the files, the certificate's rules (not its validity period) and a passphrase being
/// present. [`ReadSet::decrypt`] does the rest, so a caller that only needs to know which
/// certificate is there (is it the one in use? older?) does not pay for the key derivation.
///
/// # Errors
/// As [`load_directory`], up to and including [`Error::EmptyPassphrase`].
pub fn read_directory(directory: &Path) -> Result<ReadSet, Error> {
    let mut warnings = Vec::new();
    let folder = files::Folder::open(
        directory,
        &mut warnings,
        || Error::DirectoryMissing {
            path: directory.to_path_buf(),
        },
        || Error::NotADirectory {
            path: directory.to_path_buf(),
        },
    )?;
    let read = |name: &str, what| {
        files::read_input_file(&folder, Path::new(name), &directory.join(name), what)
    };
    let certificate = read(CERTIFICATE_FILE, CERTIFICATE_WHAT)?;
    let key = read(KEY_FILE, KEY_WHAT)?;
    let passphrase = read(PASSPHRASE_FILE, PASSPHRASE_WHAT)?;
    ReadSet::check(certificate, key, passphrase, warnings)
}

const CERTIFICATE_WHAT: &str = "client certificate";
const KEY_WHAT: &str = "encrypted private key";
const PASSPHRASE_WHAT: &str = "key passphrase";

/// Loads a set from three explicit paths and applies every rule at `now`.
///
/// Each file is opened without following a symbolic link and without blocking (a FIFO is
/// refused, not waited on), and judged on the opened handle: a regular file of at most
/// [`MAX_FILE_BYTES`] (and no more is read). Each file's folder is checked as in
/// [`load_directory`]. Checks run in an order that reports the most fundamental problem first:
/// files readable and sane, certificate parses and follows the rules, passphrase present, key
/// decrypts, key type and size, key matches certificate, validity at `now`, then (optionally)
/// chain trust.
///
/// # Errors
/// One [`Error`] variant per refusal; every one names the file concerned.
pub fn load_files(
    certificate_path: &Path,
    key_path: &Path,
    passphrase_path: &Path,
    options: &LoadOptions,
    now: SystemTime,
) -> Result<LoadedSet, Error> {
    let mut warnings = Vec::new();
    let mut read = |path: &Path, what: &'static str| {
        let folder_path = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().map_or(path, Path::new);
        let missing = || Error::MissingFile {
            path: path.to_path_buf(),
            what,
        };
        let folder = files::Folder::open(&folder_path, &mut warnings, missing, missing)?;
        files::read_input_file(&folder, name, path, what)
    };
    let certificate = read(certificate_path, CERTIFICATE_WHAT)?;
    let key = read(key_path, KEY_WHAT)?;
    let passphrase = read(passphrase_path, PASSPHRASE_WHAT)?;
    ReadSet::check(certificate, key, passphrase, warnings)?.decrypt(options, now)
}

/// A set whose files were read and whose certificate follows the rules; its key is still
/// encrypted ([`read_directory`]). The bytes are those read once: [`ReadSet::decrypt`] judges
/// the very files whose certificate was looked at, whatever happened in the folder since.
pub struct ReadSet {
    certificate_file: files::ReadFile,
    key_file: files::ReadFile,
    passphrase: zeroize::Zeroizing<Vec<u8>>,
    passphrase_identity: InputFile,
    warnings: Vec<Warning>,
    chain: Vec<CertificateDer<'static>>,
    summary: CertificateSummary,
}

impl std::fmt::Debug for ReadSet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ReadSet")
            .field("certificate", &self.summary)
            .field("key_path", &self.key_file.identity.path)
            .finish_non_exhaustive()
    }
}

impl ReadSet {
    /// The rules that need no key, applied to the three files once read.
    fn check(
        certificate_file: files::ReadFile,
        key_file: files::ReadFile,
        passphrase_file: files::ReadFile,
        folder_warnings: Vec<Warning>,
    ) -> Result<Self, Error> {
        let mut warnings = Vec::new();
        for warning in folder_warnings {
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
        for (file, secret) in [
            (&certificate_file, false),
            (&key_file, true),
            (&passphrase_file, true),
        ] {
            let path = file.identity.path.clone();
            if secret && file.readable_by_others {
                warnings.push(Warning::ReadableByOthers { path: path.clone() });
            }
            if file.writable_by_others {
                warnings.push(Warning::WritableByOthers { path: path.clone() });
            }
            if let Some(uid) = file.foreign_owner {
                warnings.push(Warning::OwnedByAnotherUser { path, uid });
            }
        }
        let certificate_path = certificate_file.identity.path.as_path();
        let chain = certificate::parse_chain(certificate_path, &certificate_file.bytes)?;
        let leaf = certificate::decode_chain(certificate_path, &chain)?;
        let summary = certificate::summarize(certificate_path, &leaf, &chain[0])?;
        let passphrase_identity = passphrase_file.identity;
        let mut passphrase = passphrase_file.bytes;
        files::strip_one_line_ending(&mut passphrase);
        if passphrase.is_empty() {
            return Err(Error::EmptyPassphrase {
                path: passphrase_identity.path,
            });
        }
        Ok(Self {
            certificate_file,
            key_file,
            passphrase,
            passphrase_identity,
            warnings,
            chain,
            summary,
        })
    }

    /// The certificate that was read (checked by the rules, except its validity period).
    pub fn certificate(&self) -> &CertificateSummary {
        &self.summary
    }

    /// Decrypts the key with the passphrase and applies the remaining rules at `now`: key type
    /// and size, key matches certificate, validity (unless ignored), then (optionally) chain
    /// trust.
    ///
    /// # Errors
    /// The key and time errors of [`load_files`], naming the file concerned.
    pub fn decrypt(self, options: &LoadOptions, now: SystemTime) -> Result<LoadedSet, Error> {
        let Self {
            certificate_file,
            key_file,
            passphrase,
            passphrase_identity,
            warnings,
            chain,
            summary,
        } = self;
        let certificate_path = certificate_file.identity.path.as_path();
        let key_path = key_file.identity.path.as_path();
        let leaf = certificate::decode_chain(certificate_path, &chain)?;
        let decrypted = key::decrypt_key_file(key_path, &key_file.bytes, &passphrase)?;
        drop(passphrase);
        if decrypted.public_key_info_der != certificate::public_key_info_der(&leaf) {
            return Err(Error::KeyCertificateMismatch {
                key_path: key_path.to_path_buf(),
                cert_path: certificate_path.to_path_buf(),
            });
        }
        if !options.ignore_validity_period {
            certificate::check_validity(certificate_path, &summary, now)?;
        }
        if let Some(trusted) = &options.trusted_cas {
            // The chain is judged at the leaf's own time when its validity is the caller's call.
            let at = if options.ignore_validity_period {
                summary.not_before
            } else {
                now
            };
            certificate::verify_chain(certificate_path, &chain, trusted, at)?;
        }
        Ok(LoadedSet {
            identity: Identity {
                chain,
                key: decrypted.secret,
                certificate: summary,
                key_algorithm: decrypted.algorithm,
            },
            key_format: decrypted.format,
            warnings,
            certificate_path: certificate_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            passphrase_path: passphrase_identity.path.clone(),
            files: [
                certificate_file.identity.clone(),
                key_file.identity.clone(),
                passphrase_identity.clone(),
            ],
        })
    }
}
