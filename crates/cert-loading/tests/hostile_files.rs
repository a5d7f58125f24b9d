//! What a writer of the certificate folder can put there, at library level: symbolic links (to
//! `/dev/zero`, to a FIFO, to another file), FIFOs swapped in while the set is read, and folders
//! writable by others. Each must end promptly with an error naming the file (or the folder), and
//! a set that loads records the identity of each file it read.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use cert_loading::{Error, LoadOptions, Warning, load_directory, load_files};

const FILES: [&str; 3] = ["client_cert.pem", "client_key.pem", "passphrase"];
const RSA: &str = "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256";

/// The "now" of the vectors: 2026-06-01T00:00:00Z (see testdata/README.md).
fn vector_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

fn good(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors/good")
        .join(name)
}

fn copy_of(name: &str) -> tempfile::TempDir {
    let directory = tempfile::tempdir().unwrap();
    for file in FILES {
        std::fs::copy(good(name).join(file), directory.path().join(file)).unwrap();
        std::fs::set_permissions(
            directory.path().join(file),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    directory
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `load` on a thread and fails the test if it does not finish within 20 s (a FIFO that
/// blocked the open would hang here forever otherwise).
fn within_20_s<T: Send + 'static>(load: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(load());
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("loading did not return within 20 s")
}

fn load(directory: &Path) -> Result<cert_loading::LoadedSet, Error> {
    let directory = directory.to_path_buf();
    within_20_s(move || load_directory(&directory, &LoadOptions::default(), vector_now()))
}

#[test]
fn links_to_dev_zero_a_fifo_or_another_file_are_refused_for_each_file() {
    let elsewhere = tempfile::tempdir().unwrap();
    let fifo = elsewhere.path().join("fifo");
    mkfifo(&fifo);
    let regular = elsewhere.path().join("victim");
    std::fs::write(&regular, "root-only content").unwrap();
    for file in FILES {
        for target in [Path::new("/dev/zero"), fifo.as_path(), regular.as_path()] {
            let directory = copy_of(RSA);
            let path = directory.path().join(file);
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(target, &path).unwrap();
            let started = Instant::now();
            let error = load(directory.path()).unwrap_err();
            assert_eq!(
                error.kind(),
                "SymbolicLink",
                "{file} -> {target:?}: {error}"
            );
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{}: ", path.display())),
                "{message}"
            );
            assert!(message.contains("readlink -f"), "{message}");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}

#[test]
fn a_fifo_or_a_device_node_in_place_of_each_file_is_refused_without_blocking() {
    for file in FILES {
        let directory = copy_of(RSA);
        let path = directory.path().join(file);
        std::fs::remove_file(&path).unwrap();
        mkfifo(&path);
        let error = load(directory.path()).unwrap_err();
        assert!(
            matches!(
                error,
                Error::NotAFile {
                    found: "a FIFO",
                    ..
                }
            ),
            "{file}: {error}"
        );
        assert!(error.to_string().contains(file), "{error}");
    }
    // A device through load_files (the path itself, no link): refused on the handle.
    let directory = copy_of(RSA);
    let error = within_20_s(move || {
        load_files(
            Path::new("/dev/zero"),
            &directory.path().join("client_key.pem"),
            &directory.path().join("passphrase"),
            &LoadOptions::default(),
            vector_now(),
        )
    })
    .unwrap_err();
    assert!(
        matches!(
            error,
            Error::NotAFile {
                found: "a device",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().starts_with("/dev/zero: "), "{error}");
}

/// The race of the issue: the passphrase is swapped between a regular file and a FIFO while
/// the set is read again and again. Before, a check of the path followed by a blocking open hung
/// in about one run in ten; now every load returns (loaded, or refused naming the passphrase).
#[test]
fn a_fifo_swapped_in_while_reading_never_hangs() {
    let directory = copy_of(RSA);
    let passphrase = directory.path().join("passphrase");
    let contents = std::fs::read(&passphrase).unwrap();
    let spare = tempfile::tempdir().unwrap();
    let fifo = spare.path().join("fifo");
    let regular = spare.path().join("regular");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, passphrase) = (stop.clone(), passphrase.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u32;
            while !stop.load(Ordering::Relaxed) {
                mkfifo(&fifo);
                std::fs::rename(&fifo, &passphrase).unwrap();
                std::thread::yield_now();
                std::fs::write(&regular, &contents).unwrap();
                std::fs::rename(&regular, &passphrase).unwrap();
                swaps += 1;
            }
            swaps
        })
    };
    let started = Instant::now();
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..200 {
        match load(directory.path()) {
            Ok(_) => loaded += 1,
            Err(error) => {
                assert!(
                    error.to_string().contains("passphrase"),
                    "an error not naming the passphrase: {error}"
                );
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "200 loads in {:?} with {swaps} swaps: {loaded} loaded, {refused} refused",
        started.elapsed()
    );
    assert!(swaps > 0);
}

#[test]
fn a_folder_writable_by_everyone_is_refused_unless_sticky() {
    let directory = copy_of(RSA);
    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = load(directory.path()).unwrap_err();
    assert_eq!(error.kind(), "FolderWritableByOthers", "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}: ", directory.path().display())),
        "{message}"
    );
    assert!(
        message.contains(&format!("chmod 700 {}", directory.path().display())),
        "{message}"
    );

    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let set = load(directory.path()).unwrap();
    assert!(
        set.warnings.iter().any(|warning| matches!(
            warning,
            Warning::FolderWritableByOthers { mode: 0o1777, .. }
        )),
        "{:?}",
        set.warnings
    );

    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let set = load(directory.path()).unwrap();
    let texts: Vec<String> = set.warnings.iter().map(ToString::to_string).collect();
    assert!(
        texts.iter().any(|text| text.contains("chmod 700")),
        "{texts:?}"
    );

    std::fs::set_permissions(directory.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(
        directory.path().join("client_cert.pem"),
        std::fs::Permissions::from_mode(0o666),
    )
    .unwrap();
    let set = load(directory.path()).unwrap();
    assert_eq!(
        set.warnings,
        vec![Warning::WritableByOthers {
            path: directory.path().join("client_cert.pem")
        }]
    );
}

#[test]
fn a_loaded_set_records_the_identity_of_each_file_read() {
    let directory = copy_of(RSA);
    let set = load(directory.path()).unwrap();
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    for (recorded, file) in set.files.iter().zip(FILES) {
        let path = directory.path().join(file);
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(recorded.path, path);
        assert_eq!(
            (recorded.device, recorded.inode, recorded.len),
            (metadata.dev(), metadata.ino(), metadata.len())
        );
        assert!(recorded.is_same_file(&metadata));
    }
    // A file replaced under the same name is no longer the same file.
    let key = directory.path().join("client_key.pem");
    let copy = directory.path().join("copy");
    std::fs::copy(&key, &copy).unwrap();
    std::fs::rename(&copy, &key).unwrap();
    assert!(!set.files[1].is_same_file(&std::fs::symlink_metadata(&key).unwrap()));
}
