//! Loads a committed test vector (an external certificate set) and prints what was found, then
//! shows how a broken set is refused.
//!
//! Run with `cargo run --example load_vector -p cert-loading`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cert_loading::{LoadOptions, format_rfc3339, load_directory};

/// The vectors are valid at 2026-06-01T00:00:00Z (see testdata/README.md).
const VECTOR_NOW: u64 = 1_780_272_000;

fn vector(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors")
        .join(kind)
        .join(name)
}

fn main() -> Result<(), cert_loading::Error> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(VECTOR_NOW);

    let directory = vector("good", "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256");
    let set = load_directory(&directory, &LoadOptions::default(), now)?;
    let certificate = set.identity.certificate();
    println!(
        "loaded {}: {} key ({}), signed with {}, valid until {}, fingerprint {}",
        certificate.common_name,
        set.identity.key_algorithm(),
        set.key_format,
        certificate.signature_algorithm,
        format_rfc3339(certificate.not_after),
        certificate.fingerprint.to_colon_hex(),
    );
    for warning in &set.warnings {
        println!("warning: {warning}");
    }

    // A refused set: the error names the file and says what to do.
    let directory = vector("bad", "wrong-passphrase-pkcs8");
    match load_directory(&directory, &LoadOptions::default(), now) {
        Ok(_) => panic!("the wrong-passphrase vector loaded"),
        Err(error) => println!("refused ({}): {error}", error.kind()),
    }
    Ok(())
}
