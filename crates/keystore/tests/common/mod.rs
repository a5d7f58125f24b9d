//! Shared helpers for the keystore tests: test-only identities from the committed vectors, and
//! small file utilities.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cert_loading::Identity;

/// The fixed "now" of the test vectors (2026-06-01T00:00:00Z).
pub fn vectors_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// A fixed creation time for staged generations (2026-06-02T00:00:00Z).
pub fn created_at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_358_400)
}

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors/good/");

/// The test vectors used here, by short name.
pub const P384: &str = "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256";
pub const RSA3072: &str = "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256";
pub const RENEWAL_P384: &str = "renewal-same-cn-later-p384-pkcs8-pbes2-aes256-pbkdf2-sha256";
pub const RENEWAL_RSA3072: &str = "renewal-same-cn-later-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256";
pub const CHAIN_RSA3072: &str =
    "rsa3072-sha256-chain-intermediate-pkcs8-pbes2-aes256-pbkdf2-sha256";

/// Loads a test-only identity (cached per process).
pub fn identity(name: &str) -> Identity {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(String, Identity)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    if let Some((_, identity)) = cache.iter().find(|(cached, _)| cached == name) {
        return identity.clone();
    }
    let directory = PathBuf::from(VECTORS).join(name);
    let identity = cert_loading::load_directory(
        &directory,
        &cert_loading::LoadOptions::default(),
        vectors_now(),
    )
    .unwrap_or_else(|error| panic!("test vector {name}: {error}"))
    .identity;
    cache.push((name.to_owned(), identity.clone()));
    identity
}

/// Every regular file under `root`, recursively.
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every folder under `root` (not `root` itself), recursively.
pub fn all_folders(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.push(path.clone());
                pending.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The chain as the store writes it into agent.pem.
pub fn chain_pem(identity: &Identity) -> String {
    identity.chain_pem()
}

/// The store as the agent lays it out under an agent root: `vmd/pem`, keys in `vmd/keys`.
pub fn open(agent_root: &Path) -> Result<keystore::Keystore, keystore::Error> {
    keystore::Keystore::open(agent_root.join("vmd").join("pem"), key_files(agent_root))
}

/// [`open`], creating the store folder first.
pub fn open_or_create(agent_root: &Path) -> Result<keystore::Keystore, keystore::Error> {
    keystore::Keystore::open_or_create(agent_root.join("vmd").join("pem"), key_files(agent_root))
}

/// Set (to a TPM's TCTI) by a test that runs the store with the TPM key protector; its child
/// processes get it as [`TPM_TCTI_VARIABLE`].
#[allow(dead_code)] // Not every test file uses it.
pub const TPM_TCTI_VARIABLE: &str = "KEYSTORE_TEST_TPM_TCTI";

thread_local! {
    static TPM_TCTI: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Makes this thread's stores use the TPM reached through `tcti` (`None`: key files again).
#[allow(dead_code)]
pub fn use_tpm(tcti: Option<String>) {
    TPM_TCTI.with(|slot| *slot.borrow_mut() = tcti);
}

/// The TPM this thread's (or, in a child, this process's) stores use, if any.
#[allow(dead_code)]
pub fn tpm_tcti() -> Option<String> {
    TPM_TCTI
        .with(|slot| slot.borrow().clone())
        .or_else(|| std::env::var(TPM_TCTI_VARIABLE).ok())
}

fn key_files(agent_root: &Path) -> Box<dyn keystore::KeyProtector> {
    let folder = agent_root.join("vmd").join("keys");
    #[cfg(all(feature = "tpm", target_os = "linux"))]
    if let Some(tcti) = tpm_tcti() {
        return Box::new(keystore::TpmKeyProtector::new(folder, tcti));
    }
    Box::new(keystore::FileKeyProtector::new(folder))
}
