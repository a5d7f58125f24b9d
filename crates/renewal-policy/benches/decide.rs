//! The renewal decision (criterion). It runs at every scheduled check, so it only has to be cheap
//! compared with the file and network work around it; the bench keeps that visible.
//!
//! `cargo bench -p renewal-policy`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use renewal_policy::{
    CandidateCertificate, CurrentCertificate, DirectoryContents, Fingerprint, HostSeed, Policy,
    decide,
};

const DAY: u64 = 86_400;

fn decisions(criterion: &mut Criterion) {
    let policy = Policy::default();
    let host = HostSeed::from_client_id("3f1c9a52-7d0e-4e7b-9a51-0c2f6d8e4b11");
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
    let current = CurrentCertificate {
        common_name: "host-01.example.com".to_string(),
        fingerprint: Fingerprint([1; 32]),
        not_after,
    };
    let candidate = CandidateCertificate {
        common_name: "host-01.example.com".to_string(),
        fingerprint: Fingerprint([2; 32]),
        not_before: not_after - Duration::from_secs(90 * DAY),
        not_after: not_after + Duration::from_secs(365 * DAY),
    };
    let mut group = criterion.benchmark_group("decide");
    let cases = [
        ("not_due", 200, DirectoryContents::Empty),
        ("no_candidate", 30, DirectoryContents::Empty),
        ("renew", 30, DirectoryContents::Candidate(candidate)),
        ("expired", 0, DirectoryContents::Empty),
    ];
    for (name, days_before_expiry, directory) in cases {
        let now = if days_before_expiry == 0 {
            not_after + Duration::from_secs(DAY)
        } else {
            not_after - Duration::from_secs(days_before_expiry * DAY)
        };
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                decide(
                    black_box(&policy),
                    black_box(&host),
                    black_box(&current),
                    black_box(directory.clone()),
                    black_box(now),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
