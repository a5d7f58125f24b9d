//! One generation: its identifier, its metadata, and how its private key is sealed and opened.
//!
//! A generation folder holds `chain.pem` (the certificate chain, leaf first), `key.enc` (the
//! 12-byte AES-GCM nonce followed by the encrypted PKCS#8 key and the 16-byte tag) and
//! `metadata.json`. The associated data of the encryption binds the key to the certificate's
//! fingerprint and to every byte of `metadata.json`, which in turn records the SHA-256 of
//! `chain.pem`: a change to any byte of any of the three files, or to the random key, makes
//! opening fail.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use cert_loading::{CertificateDer, Fingerprint, Identity, SecretKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{DataKey, Error};

/// File names inside a generation folder.
pub(crate) const CHAIN_FILE: &str = "chain.pem";
pub(crate) const ENCRYPTED_KEY_FILE: &str = "key.enc";
pub(crate) const METADATA_FILE: &str = "metadata.json";

/// The store format version written in `metadata.json` and the pointer file.
pub(crate) const FORMAT_VERSION: u32 = 1;

const NONCE_LENGTH: usize = 12;
const TAG_LENGTH: usize = 16;
const CIPHER_NAME: &str = "AES-256-GCM";
/// Domain separation for the associated data, so these ciphertexts mean nothing elsewhere.
const ASSOCIATED_DATA_LABEL: &[u8] = b"cte-agent pem store v1 private key\0";

/// Identifies a generation of the store: the one type the whole agent uses
/// ([`cert_vocabulary::GenerationId`]).
pub use cert_vocabulary::GenerationId;

/// The name of a generation's folder and key file: the number with at least six digits.
pub fn file_name(id: GenerationId) -> String {
    format!("{:06}", id.number())
}

/// Reads a folder or key file name; `None` for anything else (temporary files included).
pub(crate) fn id_from_file_name(name: &str) -> Option<GenerationId> {
    if name.is_empty() || !name.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().map(GenerationId::new)
}

/// What the store records about a generation, readable without decrypting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationInfo {
    /// The generation.
    pub id: GenerationId,
    /// SHA-256 fingerprint of the leaf certificate.
    pub fingerprint: Fingerprint,
    /// The leaf certificate's common name.
    pub common_name: String,
    /// Start of the leaf certificate's validity.
    pub not_before: SystemTime,
    /// End of the leaf certificate's validity.
    pub not_after: SystemTime,
    /// When the generation was staged, as given by the caller of [`crate::Keystore::stage`].
    pub created_at: SystemTime,
}

/// The JSON form of `metadata.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    format: u32,
    generation: u64,
    fingerprint_sha256: String,
    common_name: String,
    not_before_unix: i64,
    not_after_unix: i64,
    /// The same instant as `not_after_unix`, readable (RFC 3339).
    not_after: String,
    created_unix: i64,
    chain_pem_sha256: String,
    cipher: String,
}

/// The three files of a generation, ready to be written.
pub(crate) struct SealedGeneration {
    pub(crate) chain_pem: Vec<u8>,
    pub(crate) encrypted_key: Vec<u8>,
    pub(crate) metadata_json: Vec<u8>,
}

/// Encrypts `identity`'s key under `data_key` and builds the generation's files.
pub(crate) fn seal(
    id: GenerationId,
    identity: &Identity,
    created_at: SystemTime,
    data_key: &DataKey,
) -> Result<SealedGeneration, Error> {
    let summary = identity.certificate();
    let chain_pem = identity.chain_pem().into_bytes();
    let metadata = MetadataFile {
        format: FORMAT_VERSION,
        generation: id.number(),
        fingerprint_sha256: summary.fingerprint.to_string(),
        common_name: summary.common_name.clone(),
        not_before_unix: to_unix_seconds(summary.not_before),
        not_after_unix: to_unix_seconds(summary.not_after),
        not_after: cert_loading::format_rfc3339(summary.not_after),
        created_unix: to_unix_seconds(created_at),
        chain_pem_sha256: hex(&Sha256::digest(&chain_pem)),
        cipher: CIPHER_NAME.to_owned(),
    };
    let mut metadata_json = serde_json::to_vec_pretty(&metadata)
        .expect("serialising a struct of strings and integers cannot fail");
    metadata_json.push(b'\n');

    let mut nonce = [0u8; NONCE_LENGTH];
    getrandom::fill(&mut nonce).map_err(|source| Error::Random { source })?;
    let cipher = Aes256Gcm::new_from_slice(data_key.as_bytes())
        .expect("a 32-byte key is the right length for AES-256");
    let associated_data = associated_data(&summary.fingerprint, &metadata_json);
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: identity.key().pkcs8_der(),
                aad: &associated_data,
            },
        )
        .expect("AES-GCM encryption of a short message cannot fail");
    let mut encrypted_key = Vec::with_capacity(NONCE_LENGTH + ciphertext.len());
    encrypted_key.extend_from_slice(&nonce);
    encrypted_key.extend_from_slice(&ciphertext);
    Ok(SealedGeneration {
        chain_pem,
        encrypted_key,
        metadata_json,
    })
}

/// Reads and checks `metadata.json` (without decrypting anything).
pub(crate) fn read_info(folder: &Path, id: GenerationId) -> Result<GenerationInfo, Error> {
    let path = folder.join(METADATA_FILE);
    let bytes = crate::files::read(&path)?;
    parse_metadata(&path, id, &bytes).map(|(info, _)| info)
}

/// Reads, checks and decrypts the generation in `folder`.
pub(crate) fn open(
    folder: &Path,
    id: GenerationId,
    data_key: &DataKey,
) -> Result<(Identity, GenerationInfo), Error> {
    let (chain, key, info) = read_and_decrypt(folder, id, data_key)?;
    let metadata_path = folder.join(METADATA_FILE);
    let identity = Identity::from_parts(folder, chain, key).map_err(|source| match source {
        cert_loading::Error::KeyCertificateMismatch { .. } => Error::KeyCertificateMismatch {
            path: folder.to_path_buf(),
        },
        source => Error::Certificate {
            path: folder.to_path_buf(),
            source,
        },
    })?;
    let summary = identity.certificate();
    if summary.common_name != info.common_name
        || to_unix_seconds(summary.not_after) != to_unix_seconds(info.not_after)
    {
        return Err(Error::tampered(
            &metadata_path,
            "the common name or validity differs from the certificate",
        ));
    }
    Ok((identity, info))
}

/// Reads a generation back and checks that it holds exactly `expected` (the chain and the key
/// bytes, after AES-GCM authenticated them), without deriving the public key again: `expected`
/// was checked against its certificate when it was loaded, so equal bytes match as well. What an
/// import confirms before it switches.
pub(crate) fn verify_holds(
    folder: &Path,
    id: GenerationId,
    data_key: &DataKey,
    expected: &Identity,
) -> Result<GenerationInfo, Error> {
    let (chain, key, info) = read_and_decrypt(folder, id, data_key)?;
    if chain.as_slice() != expected.chain() || key.pkcs8_der() != expected.key().pkcs8_der() {
        return Err(Error::tampered(
            folder,
            "the generation read back differs from the identity that was stored",
        ));
    }
    Ok(info)
}

/// The chain (checked against `metadata.json`), the decrypted key and the metadata.
fn read_and_decrypt(
    folder: &Path,
    id: GenerationId,
    data_key: &DataKey,
) -> Result<(Vec<CertificateDer<'static>>, SecretKeyDer, GenerationInfo), Error> {
    let metadata_path = folder.join(METADATA_FILE);
    let metadata_json = crate::files::read(&metadata_path)?;
    let (info, chain_pem_sha256) = parse_metadata(&metadata_path, id, &metadata_json)?;
    let (chain, _) = read_chain(folder, &info, &chain_pem_sha256)?;

    let key_path = folder.join(ENCRYPTED_KEY_FILE);
    let encrypted_key = crate::files::read(&key_path)?;
    if encrypted_key.len() < NONCE_LENGTH + TAG_LENGTH {
        return Err(Error::tampered(&key_path, "the encrypted key is truncated"));
    }
    let (nonce, ciphertext) = encrypted_key.split_at(NONCE_LENGTH);
    let nonce: [u8; NONCE_LENGTH] = nonce.try_into().expect("split at the nonce length");
    let cipher = Aes256Gcm::new_from_slice(data_key.as_bytes())
        .expect("a 32-byte key is the right length for AES-256");
    let associated_data = associated_data(&info.fingerprint, &metadata_json);
    let plaintext = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: &associated_data,
            },
        )
        .map_err(|_| {
            Error::tampered(
                &key_path,
                "AES-GCM authentication failed: the encrypted key, metadata.json or the \
                 generation's key file was changed",
            )
        })?;
    let key = SecretKeyDer::from_pkcs8_der(Zeroizing::new(plaintext));
    Ok((chain, key, info))
}

/// Reads `chain.pem` and checks it against `metadata.json` (without decrypting anything):
/// returns the file's bytes and the generation's info.
pub(crate) fn read_checked_chain_pem(
    folder: &Path,
    id: GenerationId,
) -> Result<(Vec<u8>, GenerationInfo), Error> {
    let metadata_path = folder.join(METADATA_FILE);
    let metadata_json = crate::files::read(&metadata_path)?;
    let (info, chain_pem_sha256) = parse_metadata(&metadata_path, id, &metadata_json)?;
    let (_, chain_pem) = read_chain(folder, &info, &chain_pem_sha256)?;
    Ok((chain_pem, info))
}

/// Reads `chain.pem` and checks it against `metadata.json` (without decrypting anything):
/// returns the parsed chain and the generation's info.
pub(crate) fn read_checked_chain(
    folder: &Path,
    id: GenerationId,
) -> Result<(Vec<CertificateDer<'static>>, GenerationInfo), Error> {
    let metadata_path = folder.join(METADATA_FILE);
    let metadata_json = crate::files::read(&metadata_path)?;
    let (info, chain_pem_sha256) = parse_metadata(&metadata_path, id, &metadata_json)?;
    let (chain, _) = read_chain(folder, &info, &chain_pem_sha256)?;
    Ok((chain, info))
}

/// Reads `chain.pem`, checks its hash and leaf fingerprint, and parses it.
fn read_chain(
    folder: &Path,
    info: &GenerationInfo,
    chain_pem_sha256: &str,
) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), Error> {
    let chain_path = folder.join(CHAIN_FILE);
    let chain_pem = crate::files::read(&chain_path)?;
    if hex(&Sha256::digest(&chain_pem)) != chain_pem_sha256 {
        return Err(Error::tampered(
            &chain_path,
            "the certificate chain differs from the one recorded in metadata.json",
        ));
    }
    let chain = cert_loading::parse_certificate_pem(&chain_path, &chain_pem).map_err(|source| {
        Error::Certificate {
            path: chain_path.clone(),
            source,
        }
    })?;
    if Fingerprint::of(&chain[0]) != info.fingerprint {
        return Err(Error::tampered(
            &chain_path,
            "the leaf certificate's fingerprint differs from metadata.json",
        ));
    }
    Ok((chain, chain_pem))
}

/// `label ‖ certificate fingerprint ‖ SHA-256(metadata.json)`.
fn associated_data(fingerprint: &Fingerprint, metadata_json: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(ASSOCIATED_DATA_LABEL.len() + 64);
    data.extend_from_slice(ASSOCIATED_DATA_LABEL);
    data.extend_from_slice(&fingerprint.0);
    data.extend_from_slice(&Sha256::digest(metadata_json));
    data
}

/// Parses `metadata.json`, returning the info and the recorded SHA-256 of `chain.pem`.
fn parse_metadata(
    path: &Path,
    id: GenerationId,
    bytes: &[u8],
) -> Result<(GenerationInfo, String), Error> {
    let metadata: MetadataFile = serde_json::from_slice(bytes)
        .map_err(|error| Error::tampered(path, format!("metadata.json is not valid: {error}")))?;
    if metadata.format > FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            version: metadata.format,
        });
    }
    if metadata.format != FORMAT_VERSION {
        return Err(Error::tampered(path, "unknown format version"));
    }
    if metadata.generation != id.number() {
        return Err(Error::tampered(
            path,
            format!(
                "metadata.json belongs to generation {}, found in generation {id}",
                metadata.generation
            ),
        ));
    }
    if metadata.cipher != CIPHER_NAME {
        return Err(Error::tampered(
            path,
            format!("unknown cipher {:?}", metadata.cipher),
        ));
    }
    let fingerprint = Fingerprint::parse(&metadata.fingerprint_sha256)
        .ok_or_else(|| Error::tampered(path, "the fingerprint is not 64 hex digits"))?;
    Ok((
        GenerationInfo {
            id,
            fingerprint,
            common_name: metadata.common_name,
            not_before: from_unix_seconds(metadata.not_before_unix),
            not_after: from_unix_seconds(metadata.not_after_unix),
            created_at: from_unix_seconds(metadata.created_unix),
        },
        metadata.chain_pem_sha256,
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

fn to_unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn from_unix_seconds(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// Which role a generation plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GenerationRole {
    /// The identity the agent uses.
    Current,
    /// The identity before the last activation; `rollback` returns to it.
    Previous,
    /// Imported but not active: a renewal waiting for activation, or a generation that was
    /// rolled back from.
    Staged,
}

impl GenerationRole {
    /// The role as status and metrics print it: `current`, `previous`, `staged`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
            Self::Staged => "staged",
        }
    }
}
