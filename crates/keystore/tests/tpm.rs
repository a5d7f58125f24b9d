//! The TPM key protector against a real TPM 2.0 implementation: `swtpm` (Debian `swtpm`), started
//! by each test on loopback ports with its own state folder (one state folder is one "host").
//! Says SKIPPED without swtpm; `.ci/run` installs it and `libtss2-dev`.

#![cfg(all(feature = "tpm", target_os = "linux"))]

mod common;

use std::path::{Path, PathBuf};

use common::{P384, created_at, identity};
use keystore::{Error, Keystore, TpmKeyProtector};
use test_support::swtpm::Swtpm;

fn store(root: &Path, tcti: &str) -> Result<Keystore, Error> {
    Keystore::open_or_create(
        root.join("vmd/pem"),
        Box::new(TpmKeyProtector::new(root.join("vmd/keys"), tcti)),
    )
}

fn files_in(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_key_sealed_by_the_tpm_opens_again_after_a_tpm_restart_and_never_lies_in_a_file() {
    let host = tempfile::tempdir().unwrap();
    let Some(tpm) = Swtpm::start(host.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let original = identity(P384);
    let keystore = store(root.path(), &tpm.tcti()).unwrap();
    let generation = keystore.stage(&original, created_at()).unwrap();
    keystore.activate(generation).unwrap();
    // One sealed blob, no raw key file.
    let keys = files_in(&root.path().join("vmd/keys"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].extension().unwrap(), "tpm");
    // A reboot: the TPM restarts from its saved state; the sealed object loads again.
    tpm.stop();
    let tpm = Swtpm::start(host.path()).unwrap();
    let reopened = store(root.path(), &tpm.tcti()).unwrap();
    let current = reopened.current().unwrap();
    assert_eq!(current.key().pkcs8_der(), original.key().pkcs8_der());
    assert_eq!(current.certificate(), original.certificate());
}

#[test]
fn an_agent_root_copied_to_another_host_cannot_open_its_key() {
    let host = tempfile::tempdir().unwrap();
    let other_host = tempfile::tempdir().unwrap();
    let Some(tpm) = Swtpm::start(host.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let keystore = store(root.path(), &tpm.tcti()).unwrap();
    let generation = keystore.stage(&identity(P384), created_at()).unwrap();
    keystore.activate(generation).unwrap();
    // The whole agent root, as on a copied disk, on a host with another TPM.
    let other_tpm = Swtpm::start(other_host.path()).unwrap();
    let copied = store(root.path(), &other_tpm.tcti()).unwrap();
    let error = copied.current().unwrap_err();
    assert_eq!(error.kind(), "Protector", "{error}");
    let message = error.to_string();
    assert!(message.contains("sealed on another host"), "{message}");
    assert!(message.contains("register_host --force"), "{message}");
    // Nothing was deleted: on the right host the key still opens.
    assert_eq!(files_in(&root.path().join("vmd/keys")).len(), 1);
    store(root.path(), &tpm.tcti()).unwrap().current().unwrap();
}

#[test]
fn a_tpm_that_went_away_is_named_with_the_fix_and_nothing_is_deleted() {
    let host = tempfile::tempdir().unwrap();
    let Some(tpm) = Swtpm::start(host.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let tcti = tpm.tcti();
    let keystore = store(root.path(), &tcti).unwrap();
    let generation = keystore.stage(&identity(P384), created_at()).unwrap();
    keystore.activate(generation).unwrap();
    let before = files_in(&root.path().join("vmd/keys"));
    tpm.stop();
    let error = store(root.path(), &tcti).unwrap().current().unwrap_err();
    assert_eq!(error.kind(), "Protector", "{error}");
    let message = error.to_string();
    assert!(message.contains("tpm key protector"), "{message}");
    assert!(message.contains("generation"), "{message}");
    assert!(message.contains("register the host again"), "{message}");
    assert_eq!(files_in(&root.path().join("vmd/keys")), before);
}
