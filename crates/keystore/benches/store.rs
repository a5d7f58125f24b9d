//! The pem store's hot paths (criterion): what every `vmd` start, `vmutil status` and renewal pay.
//!
//! `cargo bench -p keystore`. The identities are committed OpenSSL-made vectors; the store lives
//! in a temporary folder on the same disk as `target/`, so `stage_and_activate` includes real
//! fsyncs and says as much about the disk as about the code.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use keystore::{FileKeyProtector, Keystore};

const VECTORS: [&str; 2] = [
    "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256",
    "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
];

fn identity(name: &str) -> cert_loading::Identity {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000);
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/vectors/good")
        .join(name);
    cert_loading::load_directory(&directory, &cert_loading::LoadOptions::default(), now)
        .expect("vector loads")
        .identity
}

fn open_and_current(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("keystore");
    group.sample_size(30);
    for name in VECTORS {
        let identity = identity(name);
        let root = tempfile::tempdir().expect("temporary folder");
        let pem_folder = root.path().join("pem");
        let key_files = || Box::new(FileKeyProtector::new(root.path().join("keys")));
        let store = Keystore::open_or_create(&pem_folder, key_files()).expect("store");
        let generation = store
            .stage(&identity, SystemTime::UNIX_EPOCH)
            .expect("stage");
        store.activate(generation).expect("activate");
        let short = name.split('-').next().unwrap_or(name);

        // Open the store and decrypt the current identity: what `vmd` does at start.
        group.bench_function(format!("open_and_current/{short}"), |bencher| {
            bencher.iter(|| {
                Keystore::open(&pem_folder, key_files())
                    .expect("open")
                    .current()
                    .expect("current identity")
            })
        });
        // Status without decrypting: what `vmutil status` reads.
        group.bench_function(format!("status/{short}"), |bencher| {
            bencher.iter(|| store.status().expect("status"))
        });
        // A complete import and switch (fresh random key, AES-256-GCM, fsyncs, rename, prune).
        group.bench_function(format!("stage_and_activate/{short}"), |bencher| {
            bencher.iter(|| {
                let generation = store
                    .stage(&identity, SystemTime::UNIX_EPOCH)
                    .expect("stage");
                store.activate(generation).expect("activate")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, open_and_current);
criterion_main!(benches);
