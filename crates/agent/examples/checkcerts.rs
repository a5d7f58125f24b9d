//! Checks certificate folders as `vmutil -a vmd -d DIR checkcerts` does, at a "now" chosen by
//! the caller, and shows the exit code each refusal maps to.
//!
//! Run with `cargo run --example checkcerts -p agent`.

use std::path::Path;
use std::time::{Duration, SystemTime};

use agent::checkcerts::{check_directory, check_directory_against};

/// The vectors are valid at 2026-06-01T00:00:00Z (see testdata/README.md).
const VECTOR_NOW: u64 = 1_780_272_000;

fn main() -> Result<(), agent::AgentError> {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(VECTOR_NOW);

    // A good set, also checked against the external CA the manager would trust.
    let folder = testdata.join("vectors/good/rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256");
    let report = check_directory_against(&folder, Some(&testdata.join("pki/ca-rsa/ca.pem")), now)?;
    print!("{}", report.to_text());

    // Refusals: each maps to the exit code every binary uses (3: local input invalid).
    for bad in [
        "expired",
        "key-certificate-mismatch-rsa",
        "missing-passphrase-file",
    ] {
        match check_directory(&testdata.join("vectors/bad").join(bad), now) {
            Ok(_) => panic!("the bad vector {bad} was accepted"),
            Err(error) => println!("{bad}: exit {}: {error}", error.exit_status().code()),
        }
    }
    Ok(())
}
