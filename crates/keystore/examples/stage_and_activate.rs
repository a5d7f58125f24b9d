//! Registers an identity in a fresh pem store under a temporary agent root, renews it, reads the
//! current identity back at "the next start", and rolls back.
//!
//! Run with `cargo run --example stage_and_activate -p keystore`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cert_loading::{LoadOptions, format_rfc3339, load_directory};
use keystore::{FileKeyProtector, Keystore};

/// The vectors are valid at 2026-06-01T00:00:00Z (see testdata/README.md).
const VECTOR_NOW: u64 = 1_780_272_000;

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors/good")
        .join(name)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(VECTOR_NOW);
    let load = |name: &str| load_directory(&vector(name), &LoadOptions::default(), now);
    let first = load("p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256")?.identity;
    let renewed = load("renewal-same-cn-later-p384-pkcs8-pbes2-aes256-pbkdf2-sha256")?.identity;

    // The store folder and the key protector are the caller's choice (here the agent's layout).
    let agent_root = tempfile::tempdir()?;
    let pem_folder = agent_root.path().join("vmd").join("pem");
    let key_files = || {
        Box::new(FileKeyProtector::new(
            agent_root.path().join("vmd").join("keys"),
        ))
    };
    let store = Keystore::open_or_create(&pem_folder, key_files())?;
    println!("registered before: {}", store.is_registered()?);

    // Registration: stage the identity as generation 1, then switch to it.
    let generation = store.stage(&first, now)?;
    let info = store.activate(generation)?;
    println!(
        "activated generation {} ({}, valid until {})",
        info.id,
        info.common_name,
        format_rfc3339(info.not_after)
    );

    // Renewal: stage the new identity beside the current one, then switch.
    let generation = store.stage(&renewed, now)?;
    let info = store.activate(generation)?;
    println!(
        "renewed to generation {} (valid until {})",
        info.id,
        format_rfc3339(info.not_after)
    );

    // The next start: no passphrase needed, the key is decrypted from the store.
    let reopened = Keystore::open(&pem_folder, key_files())?;
    let current = reopened.current()?;
    assert_eq!(current.key().pkcs8_der(), renewed.key().pkcs8_der());
    println!(
        "current identity: {} {}",
        current.certificate().common_name,
        current.certificate().fingerprint.to_colon_hex()
    );
    for generation in reopened.status()?.generations {
        println!("  generation {}: {:?}", generation.id, generation.role);
    }

    // Back to the previous identity.
    let info = reopened.rollback()?;
    println!("rolled back to generation {}", info.id);
    let verification = reopened.verify()?;
    println!(
        "verified generation {}; agent.pem repaired: {}",
        verification.generation.id, verification.agent_pem_repaired
    );
    Ok(())
}
