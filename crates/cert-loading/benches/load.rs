//! Loading an external certificate set, per key format (criterion).
//!
//! `cargo bench -p cert-loading`. Each case is a committed OpenSSL-made vector; the KDF
//! parameters are OpenSSL's defaults (PBKDF2 2048 iterations, scrypt N=2^14 r=8 p=1).

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};

fn load_each_format(criterion: &mut Criterion) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/good");
    let mut group = criterion.benchmark_group("load_directory");
    group.sample_size(20);
    for name in [
        "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
        "rsa3072-sha256-pkcs8-pbes2-aes256-scrypt",
        "rsa3072-sha256-traditional-aes256",
        "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256",
        "p384-ecdsa-sha384-pkcs8-pbes2-aes256-scrypt",
        "p384-ecdsa-sha384-traditional-aes256",
    ] {
        let directory = vectors.join(name);
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                cert_loading::load_directory(&directory, &cert_loading::LoadOptions::default(), now)
                    .expect("vector loads")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load_each_format);
criterion_main!(benches);
