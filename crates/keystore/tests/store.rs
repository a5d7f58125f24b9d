//! In-process tests of the store: round trip, tamper detection, no plaintext key on disk,
//! permissions, generations, rollback and pruning.

mod common;

use std::fs;
use std::path::Path;

use common::{CHAIN_RSA3072, P384, RENEWAL_P384, RENEWAL_RSA3072, RSA3072, created_at, identity};
use keystore::{Error, GenerationId, GenerationRole, Keystore};

fn registered_store(root: &Path, vector: &str) -> (Keystore, GenerationId) {
    let store = common::open_or_create(root).unwrap();
    let generation = store.stage(&identity(vector), created_at()).unwrap();
    store.activate(generation).unwrap();
    (store, generation)
}

fn key_file(root: &Path, generation: GenerationId) -> std::path::PathBuf {
    root.join("vmd/keys")
        .join(format!("{:06}.key", generation.number()))
}

#[test]
fn import_then_read_back_gives_the_same_identity() {
    for vector in [P384, RSA3072, CHAIN_RSA3072] {
        let root = tempfile::tempdir().unwrap();
        let original = identity(vector);
        let (_, generation) = registered_store(root.path(), vector);

        let reopened = common::open(root.path()).unwrap();
        assert!(reopened.is_registered().unwrap());
        let current = reopened.current().unwrap();
        assert_eq!(current.key().pkcs8_der(), original.key().pkcs8_der());
        assert_eq!(current.chain(), original.chain());
        assert_eq!(current.certificate(), original.certificate());

        let verification = reopened.verify().unwrap();
        assert_eq!(verification.generation.id, generation);
        assert_eq!(
            verification.generation.fingerprint,
            original.certificate().fingerprint
        );
        assert_eq!(verification.generation.created_at, created_at());
        assert!(!verification.agent_pem_repaired);
        assert_eq!(
            fs::read_to_string(reopened.agent_pem_path()).unwrap(),
            original.chain_pem()
        );
    }
}

#[test]
fn unregistered_store_reports_not_registered() {
    let root = tempfile::tempdir().unwrap();
    let error = common::open(root.path()).unwrap_err();
    assert_eq!(error.kind(), "NotRegistered", "{error}");

    let store = common::open_or_create(root.path()).unwrap();
    assert!(!store.is_registered().unwrap());
    assert_eq!(store.current().unwrap_err().kind(), "NotRegistered");
    assert_eq!(store.verify().unwrap_err().kind(), "NotRegistered");
    assert_eq!(store.rollback().unwrap_err().kind(), "NotRegistered");
    assert!(!store.agent_pem_path().exists());

    // Staging alone does not register the host.
    let generation = store.stage(&identity(P384), created_at()).unwrap();
    assert!(!store.is_registered().unwrap());
    assert!(!store.agent_pem_path().exists());
    let status = store.status().unwrap();
    assert!(status.current().is_none());
    assert_eq!(status.staged().next().unwrap().id, generation);
}

/// Flips one bit of byte `index` of `path`.
fn flip(path: &Path, index: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[index] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_any_stored_file_is_detected() {
    let root = tempfile::tempdir().unwrap();
    let (store, generation) = registered_store(root.path(), P384);
    let folder = store.generation_folder(generation);
    let targets = [
        folder.join("chain.pem"),
        folder.join("key.enc"),
        folder.join("metadata.json"),
        key_file(root.path(), generation),
    ];
    let mut checked = 0;
    for path in &targets {
        let length = fs::metadata(path).unwrap().len() as usize;
        for index in 0..length {
            flip(path, index);
            let error = store.current().err().unwrap_or_else(|| {
                panic!(
                    "byte {index} of {} flipped but not detected",
                    path.display()
                )
            });
            assert_eq!(error.kind(), "Tampered", "{}: {error}", path.display());
            assert!(store.verify().is_err());
            flip(path, index);
            checked += 1;
        }
    }
    assert!(checked > 500);
    // Back to the original bytes: everything checks out again.
    store.verify().unwrap();
}

#[test]
fn a_flipped_pointer_byte_never_yields_another_identity() {
    let root = tempfile::tempdir().unwrap();
    let store = common::open_or_create(root.path()).unwrap();
    let first = store.stage(&identity(P384), created_at()).unwrap();
    store.activate(first).unwrap();
    let second = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    store.activate(second).unwrap();
    let expected = identity(RENEWAL_P384).certificate().fingerprint;

    let pointer = store.pem_folder().join("current");
    let length = fs::metadata(&pointer).unwrap().len() as usize;
    for index in 0..length {
        flip(&pointer, index);
        if let Ok(current) = store.current() {
            assert_eq!(current.certificate().fingerprint, expected, "byte {index}");
        }
        flip(&pointer, index);
    }
    store.verify().unwrap();
}

#[test]
fn a_damaged_agent_pem_is_repaired_by_verify_and_open() {
    let root = tempfile::tempdir().unwrap();
    let (store, _) = registered_store(root.path(), RSA3072);
    let agent_pem = store.agent_pem_path();
    flip(&agent_pem, 100);
    assert!(store.verify().unwrap().agent_pem_repaired);
    assert_eq!(
        fs::read_to_string(&agent_pem).unwrap(),
        identity(RSA3072).chain_pem()
    );

    fs::remove_file(&agent_pem).unwrap();
    common::open(root.path()).unwrap();
    assert_eq!(
        fs::read_to_string(&agent_pem).unwrap(),
        identity(RSA3072).chain_pem()
    );
}

/// The secret leaves of a DER structure: every INTEGER and OCTET STRING content of at least
/// 16 bytes, recursing into OCTET STRINGs that hold DER themselves.
fn der_leaves(der: &[u8], leaves: &mut Vec<Vec<u8>>) {
    use der::{Decode, Reader, Tagged};
    let Ok(mut reader) = der::SliceReader::new(der) else {
        return;
    };
    while !reader.is_finished() {
        let Ok(any) = der::asn1::AnyRef::decode(&mut reader) else {
            return;
        };
        let value = any.value();
        if any.tag().is_constructed() {
            der_leaves(value, leaves);
        } else {
            if value.len() >= 16 {
                // Integers may carry a leading zero byte; search without it.
                let trimmed = if value[0] == 0 { &value[1..] } else { value };
                leaves.push(trimmed.to_vec());
            }
            if any.tag() == der::Tag::OctetString {
                der_leaves(value, leaves);
            }
        }
    }
}

#[test]
fn no_file_under_the_agent_root_holds_the_private_key_in_plaintext() {
    use base64ct::Encoding;
    for vector in [P384, RSA3072] {
        let root = tempfile::tempdir().unwrap();
        let (store, _) = registered_store(root.path(), vector);
        // A renewal and a rollback leave more generations behind.
        let renewal = store
            .stage(
                &identity(if vector == P384 {
                    RENEWAL_P384
                } else {
                    RENEWAL_RSA3072
                }),
                created_at(),
            )
            .unwrap();
        store.activate(renewal).unwrap();
        store.rollback().unwrap();

        let original = identity(vector);
        let pkcs8 = original.key().pkcs8_der();
        let leaf_certificate: &[u8] = &original.chain()[0];
        let mut needles: Vec<Vec<u8>> = vec![pkcs8.to_vec()];
        let mut leaves = Vec::new();
        der_leaves(pkcs8, &mut leaves);
        // Public parts (modulus, public point) are in the certificate anyway.
        leaves.retain(|leaf| !common::contains(leaf_certificate, leaf));
        assert!(
            leaves.len() >= if vector == P384 { 1 } else { 5 },
            "found the raw private key values"
        );
        needles.extend(leaves);
        let base64 = base64ct::Base64::encode_string(pkcs8);
        needles.push(base64.as_bytes().to_vec());
        needles.push(base64.as_bytes()[..64].to_vec());
        needles.push(original.key().to_pkcs8_pem().as_bytes()[28..28 + 64].to_vec());

        // Control: the search finds the key in the forms an accident would write it.
        let pem = original.key().to_pkcs8_pem();
        for control in [pem.as_bytes(), pkcs8] {
            assert!(
                needles
                    .iter()
                    .any(|needle| common::contains(control, needle))
            );
        }
        for leaf in &needles[1..needles.len() - 3] {
            assert!(common::contains(pkcs8, leaf));
        }

        let files = common::all_files(root.path());
        assert!(files.len() >= 8, "{files:?}");
        for file in files {
            let bytes = fs::read(&file).unwrap();
            for needle in &needles {
                assert!(
                    !common::contains(&bytes, needle),
                    "{} holds private key material ({} bytes)",
                    file.display(),
                    needle.len()
                );
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn the_pem_folder_alone_does_not_decrypt() {
    let root = tempfile::tempdir().unwrap();
    registered_store(root.path(), P384);
    let copy = tempfile::tempdir().unwrap();
    fs::create_dir_all(copy.path().join("vmd")).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(root.path().join("vmd/pem"))
        .arg(copy.path().join("vmd/pem"))
        .status()
        .unwrap();
    assert!(status.success());

    let stolen = common::open(copy.path()).unwrap();
    assert!(stolen.is_registered().unwrap());
    let error = stolen.current().unwrap_err();
    assert_eq!(error.kind(), "KeyFileMissing", "{error}");
    // No data key is in the pem folder either.
    let data_key = fs::read(key_file(root.path(), GenerationId::new(1))).unwrap();
    for file in common::all_files(&copy.path().join("vmd/pem")) {
        assert!(!common::contains(&fs::read(&file).unwrap(), &data_key));
    }
}

#[cfg(unix)]
#[test]
fn every_created_file_is_0600_and_every_folder_0700() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    // The agent root itself does not exist yet: it is created too.
    let agent_root = root.path().join("opt/agent");
    let (store, _) = registered_store(&agent_root, P384);
    let renewal = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    store.activate(renewal).unwrap();
    store.stage(&identity(RSA3072), created_at()).unwrap();
    store.verify().unwrap();

    let files = common::all_files(&agent_root);
    assert!(files.len() >= 12, "{files:?}");
    for file in files {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let folders = common::all_folders(root.path());
    assert!(folders.len() >= 8, "{folders:?}");
    for folder in folders {
        let mode = fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", folder.display());
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_readable_by_others_is_refused_with_the_chmod_command() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let (store, generation) = registered_store(root.path(), P384);
    let path = key_file(root.path(), generation);
    for mode in [0o640, 0o604, 0o660, 0o666] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let error = store.current().unwrap_err();
        assert!(
            matches!(error, Error::KeyFilePermissions { mode: found, .. } if found == mode),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("chmod 600 {}", path.display())),
            "{error}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    store.current().unwrap();
}

#[test]
fn a_missing_key_file_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let (store, generation) = registered_store(root.path(), P384);
    fs::remove_file(key_file(root.path(), generation)).unwrap();
    assert!(matches!(
        store.current().unwrap_err(),
        Error::KeyFileMissing { .. }
    ));
}

#[test]
fn a_key_cannot_be_paired_with_another_certificate() {
    // Move the encrypted key and key file of one generation under another's certificate.
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let second = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    let first_folder = store.generation_folder(first);
    let second_folder = store.generation_folder(second);
    fs::copy(second_folder.join("key.enc"), first_folder.join("key.enc")).unwrap();
    fs::copy(key_file(root.path(), second), key_file(root.path(), first)).unwrap();
    let error = store.current().unwrap_err();
    assert_eq!(error.kind(), "Tampered", "{error}");
}

#[test]
fn activate_rollback_and_pruning_keep_current_and_previous() {
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let second = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    assert_eq!(second.number(), first.number() + 1);
    // Staging did not change the current identity.
    assert_eq!(
        store.current().unwrap().certificate().fingerprint,
        identity(P384).certificate().fingerprint
    );

    let info = store.activate(second).unwrap();
    assert_eq!(
        info.fingerprint,
        identity(RENEWAL_P384).certificate().fingerprint
    );
    assert_eq!(
        info.common_name,
        identity(RENEWAL_P384).certificate().common_name
    );
    assert_eq!(
        info.not_after,
        identity(RENEWAL_P384).certificate().not_after
    );
    let status = store.status().unwrap();
    assert_eq!(status.current().unwrap().id, second);
    assert_eq!(status.previous().unwrap().id, first);
    assert!(status.agent_pem_present);
    assert_eq!(
        fs::read_to_string(store.agent_pem_path()).unwrap(),
        identity(RENEWAL_P384).chain_pem()
    );

    // Rollback returns to the previous generation; the one it leaves becomes staged.
    assert_eq!(store.rollback().unwrap().id, first);
    assert_eq!(
        fs::read_to_string(store.agent_pem_path()).unwrap(),
        identity(P384).chain_pem()
    );
    let status = store.status().unwrap();
    assert_eq!(status.current().unwrap().id, first);
    assert!(status.previous().is_none());
    assert_eq!(status.staged().next().unwrap().id, second);
    assert_eq!(store.rollback().unwrap_err().kind(), "NoPreviousGeneration");
    // It can be activated again, and rolled back from again.
    store.activate(second).unwrap();
    assert_eq!(store.rollback().unwrap().id, first);
    store.activate(second).unwrap();
    assert_eq!(store.rollback().unwrap().id, first);
    store.activate(second).unwrap();
    assert_eq!(store.status().unwrap().previous().unwrap().id, first);
    assert_eq!(store.rollback().unwrap().id, first);

    // A third generation: the one that is neither current nor previous is pruned with its key.
    let third = store.stage(&identity(RSA3072), created_at()).unwrap();
    let fourth = store
        .stage(&identity(RENEWAL_RSA3072), created_at())
        .unwrap();
    store.activate(third).unwrap();
    let status = store.status().unwrap();
    let roles: Vec<(u64, GenerationRole)> = status
        .generations
        .iter()
        .map(|generation| (generation.id.number(), generation.role))
        .collect();
    assert_eq!(
        roles,
        [
            (first.number(), GenerationRole::Previous),
            (third.number(), GenerationRole::Current),
            (fourth.number(), GenerationRole::Staged),
        ]
    );
    assert!(!store.generation_folder(second).exists());
    assert!(!key_file(root.path(), second).exists());
    assert!(key_file(root.path(), fourth).exists());

    // Activating the current generation again changes nothing.
    store.activate(third).unwrap();
    assert_eq!(store.status().unwrap().previous().unwrap().id, first);

    // Activating the newer staged one prunes the old previous one.
    store.activate(fourth).unwrap();
    let status = store.status().unwrap();
    assert_eq!(status.generations.len(), 2);
    assert_eq!(status.current().unwrap().id, fourth);
    assert_eq!(status.previous().unwrap().id, third);
    assert!(!key_file(root.path(), first).exists());
}

#[test]
fn discard_staged_refuses_generations_in_use() {
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let staged = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    assert!(matches!(
        store.discard_staged(first).unwrap_err(),
        Error::GenerationInUse { .. }
    ));
    store.discard_staged(staged).unwrap();
    assert!(!store.generation_folder(staged).exists());
    assert!(!key_file(root.path(), staged).exists());
    assert!(matches!(
        store.discard_staged(staged).unwrap_err(),
        Error::GenerationNotFound { .. }
    ));
    assert!(matches!(
        store.activate(staged).unwrap_err(),
        Error::GenerationNotFound { .. }
    ));
    assert_eq!(store.rollback().unwrap_err().kind(), "NoPreviousGeneration");
}

#[test]
fn a_damaged_staged_generation_is_not_activated() {
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let staged = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    flip(&store.generation_folder(staged).join("key.enc"), 20);
    assert_eq!(store.activate(staged).unwrap_err().kind(), "Tampered");
    assert_eq!(store.status().unwrap().current().unwrap().id, first);
    assert_eq!(
        fs::read_to_string(store.agent_pem_path()).unwrap(),
        identity(P384).chain_pem()
    );
    store.verify().unwrap();
}

#[test]
fn leftovers_of_a_crashed_writer_are_removed_by_the_next_one() {
    let root = tempfile::tempdir().unwrap();
    let (store, _) = registered_store(root.path(), P384);
    let generations = store.pem_folder().join("generations");
    fs::create_dir(generations.join(".000007.tmp")).unwrap();
    fs::write(generations.join(".000007.tmp/chain.pem"), "partial").unwrap();
    fs::create_dir(generations.join(".000003.trash")).unwrap();
    fs::write(store.pem_folder().join(".current.tmp"), "{").unwrap();
    fs::write(root.path().join("vmd/keys/000009.key"), [7u8; 32]).unwrap();
    fs::write(root.path().join("vmd/keys/.000009.key.tmp"), [7u8; 16]).unwrap();

    let staged = store.stage(&identity(RSA3072), created_at()).unwrap();
    assert_eq!(staged.number(), 2);
    let mut names: Vec<String> = common::all_files(root.path())
        .iter()
        .map(|path| {
            path.strip_prefix(root.path())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "vmd/keys/000001.key",
            "vmd/keys/000002.key",
            "vmd/pem/.lock",
            "vmd/pem/agent.pem",
            "vmd/pem/current",
            "vmd/pem/generations/000001/chain.pem",
            "vmd/pem/generations/000001/key.enc",
            "vmd/pem/generations/000001/metadata.json",
            "vmd/pem/generations/000002/chain.pem",
            "vmd/pem/generations/000002/key.enc",
            "vmd/pem/generations/000002/metadata.json",
        ]
    );
}

#[test]
fn generation_ids_print_and_parse_as_plain_numbers() {
    let id: GenerationId = " 42 ".parse().unwrap();
    assert_eq!(id, GenerationId::new(42));
    assert_eq!(id.to_string(), "42");
    assert!("x".parse::<GenerationId>().is_err());
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let key = keystore::DataKey::generate().unwrap();
    assert_eq!(format!("{key:?}"), "DataKey(..)");
    let root = tempfile::tempdir().unwrap();
    let (store, _) = registered_store(root.path(), P384);
    let debug = format!("{:?}", store.current().unwrap());
    assert!(debug.contains("SecretKeyDer(..)"), "{debug}");
}

#[test]
fn rolling_back_then_discarding_undoes_an_activation() {
    // What a failed re-registration does to put the host back as it was.
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let second = store.stage(&identity(RSA3072), created_at()).unwrap();
    store.activate(second).unwrap();
    store.rollback().unwrap();
    store.discard_staged(second).unwrap();
    let status = store.status().unwrap();
    assert_eq!(status.generations.len(), 1);
    assert_eq!(status.current().unwrap().id, first);
    assert_eq!(common::all_files(&root.path().join("vmd/keys")).len(), 1);
    assert_eq!(
        fs::read_to_string(store.agent_pem_path()).unwrap(),
        identity(P384).chain_pem()
    );
    store.verify().unwrap();
}

/// Every file under `root`, with its bytes: the state an undo must restore.
fn tree(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walk(root)
        .into_iter()
        .filter(|path| path.is_file())
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    files
}

fn walk(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(folder) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            }
            found.push(path);
        }
    }
    found
}

#[test]
fn undoing_an_import_into_a_new_store_leaves_no_store_and_no_key() {
    let root = tempfile::tempdir().unwrap();
    let store = common::open_or_create(root.path()).unwrap();
    let import = store.import(&identity(P384), created_at()).unwrap();
    let generation = import.generation();
    assert!(store.is_registered().unwrap());
    assert!(key_file(root.path(), generation).exists());
    import.undo().unwrap();
    assert!(
        !root.path().join("vmd/pem").exists(),
        "the store folder it created is gone"
    );
    assert!(
        !key_file(root.path(), generation).exists(),
        "the key is gone"
    );
    assert!(matches!(
        common::open(root.path()).unwrap_err(),
        Error::NotRegistered { .. }
    ));
}

#[test]
fn undoing_an_import_into_an_existing_empty_store_keeps_the_folder_unregistered() {
    let root = tempfile::tempdir().unwrap();
    drop(common::open_or_create(root.path()).unwrap());
    let store = common::open_or_create(root.path()).unwrap();
    let import = store.import(&identity(P384), created_at()).unwrap();
    let generation = import.generation();
    import.undo().unwrap();
    assert!(
        root.path().join("vmd/pem").is_dir(),
        "not created by this import: kept"
    );
    assert!(!store.is_registered().unwrap());
    assert!(!root.path().join("vmd/pem/agent.pem").exists());
    assert!(!key_file(root.path(), generation).exists());
    assert!(store.status().unwrap().generations.is_empty());
}

#[test]
fn undoing_an_import_over_an_identity_restores_it_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let before = tree(root.path());
    let import = store.import(&identity(RENEWAL_P384), created_at()).unwrap();
    assert_ne!(import.generation(), first);
    assert_eq!(
        store.status().unwrap().current().unwrap().id,
        import.generation()
    );
    import.undo().unwrap();
    assert_eq!(store.status().unwrap().current().unwrap().id, first);
    assert_eq!(
        store.current().unwrap().key().pkcs8_der(),
        identity(P384).key().pkcs8_der()
    );
    // The pointer, agent.pem, the generation and its key: all as they were (the lock file is
    // the writers' and holds no state).
    let without_lock = |files: Vec<(std::path::PathBuf, Vec<u8>)>| -> Vec<_> {
        files
            .into_iter()
            .filter(|(path, _)| !path.ends_with(".lock"))
            .collect()
    };
    assert_eq!(without_lock(tree(root.path())), without_lock(before));
}

#[test]
fn keeping_an_import_keeps_it_current() {
    let root = tempfile::tempdir().unwrap();
    let (store, first) = registered_store(root.path(), P384);
    let kept = store
        .import(&identity(RENEWAL_P384), created_at())
        .unwrap()
        .keep();
    let status = store.status().unwrap();
    assert_eq!(status.current().unwrap().id, kept);
    assert_eq!(status.previous().unwrap().id, first);
}

/// An import confirms what it stored by comparing bytes with the identity it was given (checked
/// when it was loaded) rather than deriving the key's public key a second time (issue 21,
/// "registration does each costly step once"); a generation that holds anything else is
/// refused as tampered and nothing is switched.
#[test]
fn activating_against_an_expected_identity_compares_bytes_and_refuses_another() {
    let root = tempfile::tempdir().unwrap();
    let store = common::open_or_create(root.path()).unwrap();
    let first = identity(P384);
    let import = store.import(&first, created_at()).unwrap();
    let generation = import.keep();
    assert_eq!(
        store.current().unwrap().key().pkcs8_der(),
        first.key().pkcs8_der()
    );
    let staged = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    let error = store.activate_holding(staged, Some(&first)).unwrap_err();
    assert_eq!(error.kind(), "Tampered", "{error}");
    let status = store.status().unwrap();
    assert_eq!(
        status.current().unwrap().id,
        generation,
        "nothing was switched"
    );
    store
        .activate_holding(staged, Some(&identity(RENEWAL_P384)))
        .unwrap();
    assert_eq!(store.status().unwrap().current().unwrap().id, staged);
}
