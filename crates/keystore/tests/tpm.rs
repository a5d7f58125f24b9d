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
    assert!(
        message.contains(&format!("no TPM answers through {tcti}")),
        "{message}"
    );
    assert_eq!(files_in(&root.path().join("vmd/keys")), before);
}

/// Extends PCR 16 (the debug PCR, which any locality may extend) of the SHA-256 bank, as a
/// changed boot component would extend its PCR.
fn extend_pcr_16(tcti: &str) {
    use std::str::FromStr;
    use tss_esapi::handles::PcrHandle;
    use tss_esapi::interface_types::algorithm::HashingAlgorithm;
    use tss_esapi::structures::{Digest, DigestValues};

    let mut context =
        tss_esapi::Context::new(tss_esapi::TctiNameConf::from_str(tcti).unwrap()).unwrap();
    let mut digests = DigestValues::new();
    digests.set(
        HashingAlgorithm::Sha256,
        Digest::try_from(vec![0x42; 32]).unwrap(),
    );
    context
        .execute_with_nullauth_session(|context| context.pcr_extend(PcrHandle::Pcr16, digests))
        .unwrap();
}

#[test]
fn a_key_bound_to_pcrs_opens_until_they_change_then_the_refusal_names_them() {
    use keystore::{DataKey, GenerationId, KeyProtector};

    let host = tempfile::tempdir().unwrap();
    let Some(tpm) = Swtpm::start(host.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    let tcti = tpm.tcti();
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("vmd/keys");
    let bound = TpmKeyProtector::new(&keys, &tcti).with_pcrs(&[16]);
    let unbound = TpmKeyProtector::new(&keys, &tcti);
    let (first, second) = (GenerationId::new(1), GenerationId::new(2));
    let (bound_key, unbound_key) = (DataKey::generate().unwrap(), DataKey::generate().unwrap());
    bound.store_key(first, &bound_key).unwrap();
    unbound.store_key(second, &unbound_key).unwrap();
    let sealed = std::fs::read(bound.sealed_path(first)).unwrap();
    assert!(sealed.starts_with(b"CTE-TPM-SEALED-KEY 2\n"));

    // Opened with the binding it was sealed with, whatever the protector is configured with now;
    // `rekey` is told which seals differ from the configuration.
    for protector in [&bound, &unbound] {
        assert_eq!(
            protector.load_key(first).unwrap().as_bytes(),
            bound_key.as_bytes()
        );
    }
    assert!(bound.sealed_as_configured(first).unwrap());
    assert!(!unbound.sealed_as_configured(first).unwrap());
    assert!(unbound.sealed_as_configured(second).unwrap());

    extend_pcr_16(&tcti);
    let error = bound.load_key(first).unwrap_err();
    let message = error.to_string();
    assert_eq!(error.kind(), "Protector", "{message}");
    assert!(
        message.contains("the PCRs this key is bound to (16, SHA-256 bank) changed"),
        "{message}"
    );
    assert!(message.contains("register_host --force"), "{message}");
    assert!(message.contains("generation 1"), "{message}");
    // The unbound key is untouched by PCR changes, and nothing was deleted.
    assert_eq!(
        unbound.load_key(second).unwrap().as_bytes(),
        unbound_key.as_bytes()
    );
    assert!(bound.sealed_path(first).exists());
    // A key sealed now binds to the new values, and opens.
    bound.store_key(first, &bound_key).unwrap();
    assert_eq!(
        bound.load_key(first).unwrap().as_bytes(),
        bound_key.as_bytes()
    );
}
