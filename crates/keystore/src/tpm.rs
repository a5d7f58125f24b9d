//! [`TpmKeyProtector`]: each generation's data key sealed by the host's TPM 2.0 (Linux, feature
//! `tpm`, through `tss-esapi` over the system's tpm2-tss).
//!
//! - **Sealing.** The data key becomes the sensitive part of a keyed-hash object (a "sealed data
//!   object": `KeyedHash` with a null scheme; `fixedTPM`, `fixedParent`, `userWithAuth`,
//!   `noDA`; not `stClear`, so it survives reboots) created under a storage primary key. The
//!   primary is re-derived at each use from a fixed template under the owner hierarchy (an
//!   AES-128-CFB storage key), so nothing is written to the TPM's non-volatile memory. Only this
//!   TPM can load the object: on another TPM (a copied disk) the load fails its integrity check,
//!   which is reported as "sealed on another host".
//! - **Storage.** `<folder>/<generation>.tpm` holds the object's public and private blobs (the
//!   private blob is encrypted by the TPM under the primary): written like the file protector's
//!   key files (temporary, fsync, rename, folder fsync), 0600 in a 0700 folder. A copy of the
//!   blobs is useless without this TPM.
//! - **The TPM** is reached through a TCTI: `device:/dev/tpmrm0` (the kernel's resource
//!   manager) by default, or what agent.conf names (`TPM_TCTI`), for example
//!   `swtpm:host=127.0.0.1,port=2321` in the tests.
//! - **A busy TPM** (`TPM_RC_RETRY`, `TPM_RC_YIELDED`, `TPM_RC_TESTING`, `TPM_RC_NV_RATE`) is
//!   asked again after 50, 100, 200 and 400 ms (750 ms in all, well inside a check's deadline),
//!   then reported. Dictionary-attack lockout does not stop it: both objects are `noDA`.
//! - **Not done:** binding to PCR values (an opt-in policy in issue 23).
//!
//! What it defends against and what not: docs/security.md.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use cert_vocabulary::KeyProtectorKind;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{
    Digest, KeyedHashScheme, Private, Public, PublicBuilder, PublicKeyedHashParameters,
    SensitiveData, SymmetricCipherParameters, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use crate::protector::{DATA_KEY_LENGTH, DataKey, KeyProtector};
use crate::{Error, GenerationId, files};

/// The TCTI used when none is configured: the kernel's TPM resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// The waits before asking a busy TPM again (750 ms in all).
const BUSY_WAITS: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// Whether the TPM answered "busy, ask again" rather than refusing.
fn busy(error: &tss_esapi::Error) -> bool {
    match error {
        tss_esapi::Error::Tss2Error(code) => matches!(
            code.kind(),
            Some(
                Tss2ResponseCodeKind::Retry
                    | Tss2ResponseCodeKind::Yielded
                    | Tss2ResponseCodeKind::Testing
                    | Tss2ResponseCodeKind::NvRate
            )
        ),
        _ => false,
    }
}

/// The first line of a sealed-key file.
const MAGIC: &[u8] = b"CTE-TPM-SEALED-KEY 1\n";

/// Seals each generation's data key with the TPM; the blobs live in `folder`.
#[derive(Clone, Debug)]
pub struct TpmKeyProtector {
    folder: PathBuf,
    tcti: String,
}

impl TpmKeyProtector {
    /// Keeps sealed keys in `folder` (created 0700 with the first key), reaching the TPM through
    /// `tcti` (for example [`DEFAULT_TCTI`]).
    pub fn new(folder: impl Into<PathBuf>, tcti: impl Into<String>) -> Self {
        Self {
            folder: folder.into(),
            tcti: tcti.into(),
        }
    }

    /// The sealed-key file of `generation`.
    pub fn sealed_path(&self, generation: GenerationId) -> PathBuf {
        crate::protector::key_path_in(&self.folder, KeyProtectorKind::Tpm, generation)
    }

    /// Whether a TPM answers through this protector's TCTI (opens a context and asks for a
    /// random byte).
    pub fn available(&self) -> bool {
        self.context(GenerationId::new(0), &self.folder)
            .and_then(|mut context| {
                context
                    .get_random(1)
                    .map(|_| ())
                    .map_err(|error| self.failure(GenerationId::new(0), &self.folder, error))
            })
            .is_ok()
    }

    fn failure(&self, generation: GenerationId, path: &Path, error: tss_esapi::Error) -> Error {
        let (reason, fix) = describe(&error, &self.tcti);
        Error::Protector {
            protector: "tpm",
            generation,
            path: path.to_owned(),
            reason,
            fix,
        }
    }

    fn context(&self, generation: GenerationId, path: &Path) -> Result<Context, Error> {
        let tcti = TctiNameConf::from_str(&self.tcti).map_err(|error| Error::Protector {
            protector: "tpm",
            generation,
            path: path.to_owned(),
            reason: format!("the TCTI {:?} is not valid: {error}", self.tcti),
            fix: "set TPM_TCTI in agent.conf to device:/dev/tpmrm0 or another TCTI".to_owned(),
        })?;
        Context::new(tcti).map_err(|error| self.failure(generation, path, error))
    }

    /// Runs `work` with a context and the storage primary key, flushing the primary after. A
    /// busy TPM is asked again after each of [`BUSY_WAITS`], then reported.
    fn with_primary<T>(
        &self,
        generation: GenerationId,
        path: &Path,
        work: impl Fn(&mut Context, tss_esapi::handles::KeyHandle) -> tss_esapi::Result<T>,
    ) -> Result<T, Error> {
        let mut context = self.context(generation, path)?;
        let mut waits = BUSY_WAITS.iter();
        loop {
            let result = context.execute_with_nullauth_session(|context| {
                let primary = context.create_primary(
                    Hierarchy::Owner,
                    primary_template()?,
                    None,
                    None,
                    None,
                    None,
                )?;
                let result = work(context, primary.key_handle);
                let _ = context.flush_context(primary.key_handle.into());
                result
            });
            match (result, waits.next()) {
                (Err(error), Some(wait)) if busy(&error) => std::thread::sleep(*wait),
                (result, _) => {
                    return result.map_err(|error| self.failure(generation, path, error));
                }
            }
        }
    }
}

/// The storage primary's template: fixed, so every use re-derives the same key from the owner
/// hierarchy's seed (an AES-128-CFB restricted decryption key, as TCG's storage key profile).
fn primary_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_restricted(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::SymCipher)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_symmetric_cipher_parameters(SymmetricCipherParameters::new(
            SymmetricDefinitionObject::AES_128_CFB,
        ))
        .with_symmetric_cipher_unique_identifier(Digest::default())
        .build()
}

/// A sealed data object's template (no `stClear`: it must load again after a reboot).
fn sealed_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// What went wrong, and what to do, for an operator.
fn describe(error: &tss_esapi::Error, tcti: &str) -> (String, String) {
    if let tss_esapi::Error::Tss2Error(code) = error {
        match code.kind() {
            Some(Tss2ResponseCodeKind::Integrity) => {
                return (
                    "the key was sealed on another host (another TPM): this disk or folder was copied".to_owned(),
                    "register this host with its own certificate set (register_host --force)".to_owned(),
                );
            }
            Some(Tss2ResponseCodeKind::Lockout) => {
                return (
                    "the TPM is in dictionary-attack lockout".to_owned(),
                    "wait for the lockout to end or clear it (tpm2_dictionarylockout -c), then run the check again".to_owned(),
                );
            }
            _ => {}
        }
    }
    let text = error.to_string();
    if text.to_lowercase().contains("tcti") || text.to_lowercase().contains("connection") {
        return (
            format!("no TPM answers through {tcti} ({text})"),
            "restore the TPM (or the VM's virtual TPM), or register the host again with another key protector (register_host --force --key-protector file)".to_owned(),
        );
    }
    (
        format!("the TPM refused: {text}"),
        "check the TPM (tpm2_getcap properties-variable), or register the host again".to_owned(),
    )
}

impl KeyProtector for TpmKeyProtector {
    fn store_key(&self, generation: GenerationId, key: &DataKey) -> Result<(), Error> {
        let path = self.sealed_path(generation);
        let sensitive = SensitiveData::try_from(key.as_bytes().to_vec())
            .map_err(|error| self.failure(generation, &path, error))?;
        let (public, private) = self.with_primary(generation, &path, |context, primary| {
            let created = context.create(
                primary,
                sealed_template()?,
                None,
                Some(sensitive.clone()),
                None,
                None,
            )?;
            Ok((created.out_public, created.out_private))
        })?;
        let public = public
            .marshall()
            .map_err(|error| self.failure(generation, &path, error))?;
        let mut bytes = MAGIC.to_vec();
        for blob in [public.as_slice(), private.value()] {
            bytes.extend_from_slice(&u32::try_from(blob.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(blob);
        }
        files::create_private_dir_all(&self.folder)?;
        files::replace_file_atomically(&path, &bytes, "stage.key")
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        let path = self.sealed_path(generation);
        let bytes = match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => files::read(&path)?,
            Ok(_) => {
                return Err(Error::tampered(
                    &path,
                    "the sealed key is not a regular file",
                ));
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::KeyFileMissing { path });
            }
            Err(source) => return Err(Error::io(path, "read", source)),
        };
        let (public, private) = parse_sealed(&bytes).ok_or_else(|| {
            Error::tampered(&path, "the sealed-key file is not one this agent wrote")
        })?;
        let public = Public::unmarshall(public).map_err(|_| {
            Error::tampered(&path, "the sealed object's public part does not parse")
        })?;
        let private = Private::try_from(private.to_vec())
            .map_err(|_| Error::tampered(&path, "the sealed object's private part is too long"))?;
        let unsealed = self.with_primary(generation, &path, |context, primary| {
            let object = context.load(primary, private.clone(), public.clone())?;
            let unsealed = context.unseal(object.into());
            let _ = context.flush_context(object.into());
            unsealed
        })?;
        let unsealed = Zeroizing::new(unsealed.value().to_vec());
        let key: [u8; DATA_KEY_LENGTH] = unsealed.as_slice().try_into().map_err(|_| {
            Error::tampered(
                &path,
                format!("the TPM unsealed {} bytes, not a data key", unsealed.len()),
            )
        })?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        files::remove_file_if_present(&self.sealed_path(generation))?;
        crate::fault::point("prune.key", "removed");
        files::sync_dir(&self.folder)
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        crate::protector::generations_in(&self.folder, KeyProtectorKind::Tpm.file_extension())
    }

    fn remove_leftovers(&self) -> Result<(), Error> {
        crate::protector::remove_temporaries(&self.folder)
    }

    fn describe(&self) -> String {
        format!(
            "the TPM ({}), sealed keys in {}",
            self.tcti,
            self.folder.display()
        )
    }

    fn kind(&self) -> KeyProtectorKind {
        KeyProtectorKind::Tpm
    }
}

/// The public and private blobs of a sealed-key file.
fn parse_sealed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut blob = || {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + length)?;
        rest = &rest[4 + length..];
        Some(value)
    };
    let public = blob()?;
    let private = blob()?;
    rest.is_empty().then_some((public, private))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tss_esapi::constants::response_code::Tss2ResponseCode;

    #[test]
    fn busy_answers_are_asked_again_and_refusals_are_not() {
        // TPM 2.0 Part 2, 6.6.3: warnings are 0x900 + number (RETRY 0x22, YIELDED 0x08,
        // TESTING 0x0A, NV_RATE 0x20, LOCKOUT 0x21); INTEGRITY is a format-one error.
        let code = |rc: u32| tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(rc));
        for rc in [0x922, 0x908, 0x90A, 0x920] {
            assert!(busy(&code(rc)), "{rc:#x}");
        }
        for rc in [0x921, 0x1DF, 0x101] {
            assert!(!busy(&code(rc)), "{rc:#x}");
        }
    }

    #[test]
    fn sealed_files_are_read_back_and_anything_else_is_refused() {
        let mut file = MAGIC.to_vec();
        for blob in [&b"public"[..], &b"private"[..]] {
            file.extend_from_slice(&(blob.len() as u32).to_be_bytes());
            file.extend_from_slice(blob);
        }
        assert_eq!(parse_sealed(&file), Some((&b"public"[..], &b"private"[..])));
        assert_eq!(parse_sealed(&file[..file.len() - 1]), None);
        assert_eq!(parse_sealed(&[file.as_slice(), b"x"].concat()), None);
        assert_eq!(parse_sealed(b"not a sealed key"), None);
    }
}
