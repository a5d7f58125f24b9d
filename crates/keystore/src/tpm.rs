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
//! - **PCR binding** (opt-in, off by default): with PCRs configured (`TPM_PCRS`, SHA-256
//!   bank), the sealed object gets a `TPM2_PolicyPCR` authorization policy over their values at
//!   sealing time (computed in a trial session) and no `userWithAuth`, so the TPM unseals only in
//!   a policy session where those PCRs still hold the same values. A firmware, boot loader,
//!   kernel or Secure Boot change that moves them locks the key out ("the PCR values ... changed").
//!   The PCR list is stored in the sealed file (format 2), so opening never depends on what
//!   agent.conf says now; [`KeyProtector::sealed_as_configured`] tells `rekey` when to seal
//!   again.
//!
//! What it defends against and what not: docs/security.md.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use cert_vocabulary::KeyProtectorKind;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::handles::SessionHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, KeyedHashScheme, PcrSelectionListBuilder, PcrSlot, Private, Public, PublicBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricCipherParameters, SymmetricDefinition,
    SymmetricDefinitionObject,
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

/// The first line of a sealed-key file without a PCR policy (public and private blobs follow).
const MAGIC: &[u8] = b"CTE-TPM-SEALED-KEY 1\n";
/// The first line of a sealed-key file bound to PCRs (public, private and PCR-list blobs).
const MAGIC_PCRS: &[u8] = b"CTE-TPM-SEALED-KEY 2\n";

/// Seals each generation's data key with the TPM; the blobs live in `folder`.
#[derive(Clone, Debug)]
pub struct TpmKeyProtector {
    folder: PathBuf,
    tcti: String,
    pcrs: Vec<u8>,
}

impl TpmKeyProtector {
    /// Keeps sealed keys in `folder` (created 0700 with the first key), reaching the TPM through
    /// `tcti` (for example [`DEFAULT_TCTI`]).
    pub fn new(folder: impl Into<PathBuf>, tcti: impl Into<String>) -> Self {
        Self {
            folder: folder.into(),
            tcti: tcti.into(),
            pcrs: Vec::new(),
        }
    }

    /// Binds keys sealed from now on to these PCRs of the SHA-256 bank (0 to 23; empty: no
    /// binding, the default). Keys already sealed keep the binding they were sealed with.
    #[must_use]
    pub fn with_pcrs(mut self, pcrs: &[u8]) -> Self {
        self.pcrs = pcrs.to_vec();
        self.pcrs.sort_unstable();
        self.pcrs.dedup();
        self
    }

    /// The sealed-key file of `generation`.
    pub fn sealed_path(&self, generation: GenerationId) -> PathBuf {
        crate::protector::key_path_in(&self.folder, KeyProtectorKind::Tpm, generation)
    }

    /// The bytes of `generation`'s sealed-key file (a regular file, never through a link).
    fn read_sealed(&self, generation: GenerationId) -> Result<Vec<u8>, Error> {
        let path = self.sealed_path(generation);
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() => files::read(&path),
            Ok(_) => Err(Error::tampered(
                &path,
                "the sealed key is not a regular file",
            )),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::KeyFileMissing { path })
            }
            Err(source) => Err(Error::io(path, "read", source)),
        }
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
        refusal(generation, path, describe(&error, &self.tcti))
    }

    fn context(&self, generation: GenerationId, path: &Path) -> Result<Context, Error> {
        let tcti = TctiNameConf::from_str(&self.tcti).map_err(|error| {
            let reason = format!("the TCTI {:?} is not valid: {error}", self.tcti);
            let fix = "set TPM_TCTI in agent.conf to device:/dev/tpmrm0 or another TCTI";
            refusal(generation, path, (reason, fix.to_owned()))
        })?;
        // Creating a context only loads and connects the TCTI: any failure here is a TPM that
        // does not answer (gone, or never there), whatever code tpm2-tss gives it.
        Context::new(tcti).map_err(|error| {
            refusal(
                generation,
                path,
                unreachable(&self.tcti, &error.to_string()),
            )
        })
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

/// A sealed data object's template (no `stClear`: it must load again after a reboot). With a
/// policy, only a policy session satisfying it unseals (no `userWithAuth`).
fn sealed_template(policy: Option<Digest>) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(policy.is_none())
        .with_no_da(true)
        .build()?;
    let builder = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default());
    match policy {
        Some(policy) => builder.with_auth_policy(policy).build(),
        None => builder.build(),
    }
}

/// Starts a policy (or trial) session and runs `TPM2_PolicyPCR` over the current values of
/// `pcrs` (SHA-256 bank) in it.
fn pcr_policy_session(
    context: &mut Context,
    pcrs: &[u8],
    session_type: SessionType,
) -> tss_esapi::Result<PolicySession> {
    let slots = pcrs
        .iter()
        .map(|pcr| PcrSlot::try_from(1_u32 << pcr))
        .collect::<tss_esapi::Result<Vec<_>>>()?;
    let selection = PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()?;
    context.execute_without_session(|context| {
        let session = context
            .start_auth_session(
                None,
                None,
                None,
                session_type,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )?
            .ok_or(tss_esapi::Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongValueFromTpm,
            ))?;
        let session = PolicySession::try_from(session)?;
        if let Err(error) = context.policy_pcr(session, Digest::default(), selection) {
            let _ = context.flush_context(SessionHandle::from(session).into());
            return Err(error);
        }
        Ok(session)
    })
}

/// The policy digest that binds an object to the current values of `pcrs` (a trial session).
fn pcr_policy_digest(context: &mut Context, pcrs: &[u8]) -> tss_esapi::Result<Digest> {
    let trial = pcr_policy_session(context, pcrs, SessionType::Trial)?;
    let digest = context.execute_without_session(|context| context.policy_get_digest(trial));
    let _ = context.flush_context(SessionHandle::from(trial).into());
    digest
}

/// Unseals `object`: directly, or in a policy session over `pcrs` when it is bound to them.
fn unseal(
    context: &mut Context,
    object: tss_esapi::handles::ObjectHandle,
    pcrs: &[u8],
) -> tss_esapi::Result<SensitiveData> {
    if pcrs.is_empty() {
        return context.unseal(object);
    }
    let session = pcr_policy_session(context, pcrs, SessionType::Policy)?;
    let unsealed = context
        .execute_with_session(Some(AuthSession::PolicySession(session)), |context| {
            context.unseal(object)
        });
    // The TPM ends a session used without continueSession; flushing again is harmless.
    let _ = context.flush_context(SessionHandle::from(session).into());
    unsealed
}

/// The TPM protector's refusal of `generation` (its file `path`) with a reason and a fix.
fn refusal(generation: GenerationId, path: &Path, (reason, fix): (String, String)) -> Error {
    Error::Protector {
        protector: KeyProtectorKind::Tpm.as_str(),
        generation,
        path: path.to_owned(),
        reason,
        fix,
    }
}

/// A TPM that does not answer through `tcti`, and what to do.
fn unreachable(tcti: &str, detail: &str) -> (String, String) {
    (
        format!("no TPM answers through {tcti} ({detail})"),
        "restore the TPM (or the VM's virtual TPM), or register the host again with another key protector (register_host --force --key-protector file)".to_owned(),
    )
}

/// How a refused policy session's reason starts (reworded with the PCRs by the caller).
const POLICY_REFUSED: &str = "the TPM refused the key's authorization policy";

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
            Some(Tss2ResponseCodeKind::PolicyFail) => {
                return (
                    format!("{POLICY_REFUSED} ({error})"),
                    "check the key's PCR binding (TPM_PCRS), or register the host again".to_owned(),
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
        return unreachable(tcti, &text);
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
        let pcrs = &self.pcrs;
        let (public, private) = self.with_primary(generation, &path, |context, primary| {
            let policy = if pcrs.is_empty() {
                None
            } else {
                Some(pcr_policy_digest(context, pcrs)?)
            };
            let created = context.create(
                primary,
                sealed_template(policy)?,
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
        let (magic, blobs): (&[u8], Vec<&[u8]>) = if self.pcrs.is_empty() {
            (MAGIC, vec![public.as_slice(), private.value()])
        } else {
            (
                MAGIC_PCRS,
                vec![public.as_slice(), private.value(), self.pcrs.as_slice()],
            )
        };
        let mut bytes = magic.to_vec();
        for blob in blobs {
            bytes.extend_from_slice(&u32::try_from(blob.len()).unwrap_or(u32::MAX).to_be_bytes());
            bytes.extend_from_slice(blob);
        }
        files::create_private_dir_all(&self.folder)?;
        files::replace_file_atomically(&path, &bytes, "stage.key")
    }

    fn load_key(&self, generation: GenerationId) -> Result<DataKey, Error> {
        let path = self.sealed_path(generation);
        let bytes = self.read_sealed(generation)?;
        let sealed = parse_sealed(&bytes).ok_or_else(|| {
            Error::tampered(&path, "the sealed-key file is not one this agent wrote")
        })?;
        let public = Public::unmarshall(sealed.public).map_err(|_| {
            Error::tampered(&path, "the sealed object's public part does not parse")
        })?;
        let private = Private::try_from(sealed.private.to_vec())
            .map_err(|_| Error::tampered(&path, "the sealed object's private part is too long"))?;
        let pcrs = sealed.pcrs;
        let unsealed = self
            .with_primary(generation, &path, |context, primary| {
                let object = context.load(primary, private.clone(), public.clone())?;
                let unsealed = unseal(context, object.into(), pcrs);
                let _ = context.flush_context(object.into());
                unsealed
            })
            .map_err(|error| with_pcrs_named(error, pcrs))?;
        let unsealed = Zeroizing::new(unsealed.value().to_vec());
        let key: [u8; DATA_KEY_LENGTH] = unsealed.as_slice().try_into().map_err(|_| {
            Error::tampered(
                &path,
                format!("the TPM unsealed {} bytes, not a data key", unsealed.len()),
            )
        })?;
        Ok(DataKey::from_bytes(Zeroizing::new(key)))
    }

    fn sealed_as_configured(&self, generation: GenerationId) -> Result<bool, Error> {
        let bytes = self.read_sealed(generation)?;
        Ok(parse_sealed(&bytes).is_some_and(|sealed| sealed.pcrs == self.pcrs.as_slice()))
    }

    fn remove_key(&self, generation: GenerationId) -> Result<(), Error> {
        crate::protector::remove_stored(&self.folder, KeyProtectorKind::Tpm, generation)
    }

    fn stored_keys(&self) -> Result<Vec<GenerationId>, Error> {
        crate::protector::generations_in(&self.folder, KeyProtectorKind::Tpm)
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

/// A sealed-key file's parts: the object's public and private blobs, and the PCRs (SHA-256
/// bank) its policy binds it to (none in format 1).
#[derive(Debug, PartialEq, Eq)]
struct Sealed<'a> {
    public: &'a [u8],
    private: &'a [u8],
    pcrs: &'a [u8],
}

/// The parts of a sealed-key file of format 1 or 2; `None` for anything else.
fn parse_sealed(bytes: &[u8]) -> Option<Sealed<'_>> {
    let (mut rest, with_pcrs) = match bytes.strip_prefix(MAGIC) {
        Some(rest) => (rest, false),
        None => (bytes.strip_prefix(MAGIC_PCRS)?, true),
    };
    let mut blob = || {
        let length = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4 + length)?;
        rest = &rest[4 + length..];
        Some(value)
    };
    let public = blob()?;
    let private = blob()?;
    let pcrs = if with_pcrs { blob()? } else { &[] };
    let valid_pcrs = pcrs.iter().all(|pcr| *pcr <= 23) && (!with_pcrs || !pcrs.is_empty());
    (rest.is_empty() && valid_pcrs).then_some(Sealed {
        public,
        private,
        pcrs,
    })
}

/// A refusal of the PCR policy, reworded to name the PCRs and what moves them.
fn with_pcrs_named(error: Error, pcrs: &[u8]) -> Error {
    match error {
        Error::Protector {
            protector,
            generation,
            path,
            reason,
            ..
        } if !pcrs.is_empty() && reason.starts_with(POLICY_REFUSED) => Error::Protector {
            protector,
            generation,
            path,
            reason: format!(
                "the values of the PCRs this key is bound to ({}, SHA-256 bank) changed since it was sealed: a firmware, boot loader, kernel or Secure Boot change",
                pcrs.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
            ),
            fix: "boot the previous configuration to use the key again, or register the host again (register_host --force); before a planned update, run vmutil -a vmd rekey with TPM_PCRS emptied, and bind again after it".to_owned(),
        },
        error => error,
    }
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
        assert_eq!(
            parse_sealed(&file),
            Some(Sealed {
                public: b"public",
                private: b"private",
                pcrs: b"",
            })
        );
        let mut bound = MAGIC_PCRS.to_vec();
        for blob in [&b"public"[..], &b"private"[..], &[0, 7][..]] {
            bound.extend_from_slice(&(blob.len() as u32).to_be_bytes());
            bound.extend_from_slice(blob);
        }
        assert_eq!(parse_sealed(&bound).unwrap().pcrs, [0, 7]);
        assert_eq!(parse_sealed(&bound[..bound.len() - 1]), None);
        let out_of_range = [&bound[..bound.len() - 1], &[24][..]].concat();
        assert_eq!(parse_sealed(&out_of_range), None);
        assert_eq!(parse_sealed(&file[..file.len() - 1]), None);
        assert_eq!(parse_sealed(&[file.as_slice(), b"x"].concat()), None);
        assert_eq!(parse_sealed(b"not a sealed key"), None);
    }
}
