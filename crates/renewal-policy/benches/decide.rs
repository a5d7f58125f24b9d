//! The renewal decision (criterion): one `plan::next_step`. It runs several times per check, so
//! it only has to be cheap compared with the file and network work around it; the bench keeps
//! that visible.
//!
//! `cargo bench -p renewal-policy`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use renewal_policy::plan::{FolderView, GenerationView, Situation, StoreView, Trigger, next_step};
use renewal_policy::{CandidateCertificate, Fingerprint, GenerationId, HostSeed, Policy};

const DAY: u64 = 86_400;

fn decisions(criterion: &mut Criterion) {
    let policy = Policy::default();
    let host = HostSeed::from_client_id("3f1c9a52-7d0e-4e7b-9a51-0c2f6d8e4b11");
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600);
    let store = StoreView {
        current: GenerationView {
            id: GenerationId::new(1),
            fingerprint: Fingerprint([1; 32]),
            not_after,
        },
        common_name: "host-01.example.com".to_string(),
        previous: None,
        staged: Vec::new(),
    };
    let candidate = CandidateCertificate {
        common_name: "host-01.example.com".to_string(),
        fingerprint: Fingerprint([2; 32]),
        not_before: not_after - Duration::from_secs(90 * DAY),
        not_after: not_after + Duration::from_secs(365 * DAY),
    };
    let mut group = criterion.benchmark_group("next_step");
    let cases = [
        ("not_due", 200, FolderView::NotLooked),
        ("no_candidate", 30, FolderView::Empty),
        ("renew", 30, FolderView::Set(candidate)),
        ("expired", 0, FolderView::NotLooked),
    ];
    for (name, days_before_expiry, folder) in cases {
        let now = if days_before_expiry == 0 {
            not_after + Duration::from_secs(DAY)
        } else {
            not_after - Duration::from_secs(days_before_expiry * DAY)
        };
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                next_step(black_box(&Situation {
                    policy: &policy,
                    host: &host,
                    trigger: Trigger::Scheduled,
                    dry_run: false,
                    now,
                    journal: None,
                    store: &store,
                    folder: &folder,
                    events: &[],
                    out_of_time: false,
                    consecutive_failures: 0,
                }))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
