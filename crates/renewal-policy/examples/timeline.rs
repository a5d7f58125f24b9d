//! Prints the renewal timeline of one certificate: the daemon runs a scheduled check, asks
//! `plan::next_step` what to do, and waits until the report's `next_check`. Checks with the
//! same outcome are folded into one line. At the end, a renewed set appears in the directory
//! and the plan says to stage it.
//!
//! Run with `cargo run --example timeline -p renewal-policy`.

use std::time::{Duration, SystemTime};

use renewal_policy::plan::{
    Answer, Event, Exchange, FolderView, GenerationView, Situation, Step, StoreView, Trigger,
    next_step,
};
use renewal_policy::{
    CandidateCertificate, Fingerprint, GenerationId, HostSeed, Policy, format_rfc3339,
    renewal_window_start,
};

const DAY: Duration = Duration::from_secs(86_400);

fn main() {
    // The test vectors' leaf certificates expire at 2036-01-01T00:00:00Z.
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(2_082_758_400);
    let store = StoreView {
        current: GenerationView {
            id: GenerationId::new(1),
            fingerprint: Fingerprint([1; 32]),
            not_after,
        },
        common_name: "host1.example".to_owned(),
        previous: None,
        staged: Vec::new(),
    };
    let policy = Policy::default();
    let host = HostSeed::from_client_id("host1");
    println!(
        "certificate expires {}; this host's window opens {}",
        format_rfc3339(not_after),
        format_rfc3339(renewal_window_start(&policy, &host, not_after))
    );
    // One scheduled check at `now` with `folder` in the directory; the manager refuses the
    // expired certificate.
    let check = |now: SystemTime, folder: &FolderView| -> Step {
        let mut seen = FolderView::NotLooked;
        let mut events = Vec::new();
        loop {
            let step = next_step(&Situation {
                policy: &policy,
                host: &host,
                trigger: Trigger::Scheduled,
                dry_run: false,
                now,
                journal: None,
                store: &store,
                folder: &seen,
                events: &events,
                out_of_time: false,
                consecutive_failures: 0,
            });
            match step {
                Step::LookInFolder => seen = folder.clone(),
                Step::Login { generation, .. } => events.push(Event::Answered(
                    Exchange::Login {
                        certificate: store.generation(generation).unwrap().fingerprint,
                    },
                    Answer::Refused {
                        reason: "certificate expired".to_owned(),
                    },
                )),
                step => return step,
            }
        }
    };

    // Nothing is ever placed in the directory: follow the checks until the certificate expires.
    let mut now = not_after - 90 * DAY;
    let mut run: Option<(String, SystemTime, usize)> = None;
    loop {
        let Step::Finish(report) = check(now, &FolderView::Empty) else {
            unreachable!("the directory is empty")
        };
        let label = format!("{:<8} {:?}", report.severity, report.outcome);
        match &mut run {
            Some((previous, _, count)) if *previous == label => *count += 1,
            _ => {
                print_run(run.take());
                run = Some((label, now, 1));
            }
        }
        match report.next_check {
            Some(next) => now = next,
            None => break,
        }
    }
    print_run(run);

    // Ten days before expiry an administrator places a renewed set: it is staged, then sent.
    let now = not_after - 10 * DAY;
    let renewed = CandidateCertificate {
        common_name: "host1.example".to_owned(),
        fingerprint: Fingerprint([2; 32]),
        not_before: now - DAY,
        not_after: not_after + 365 * DAY,
    };
    let step = check(now, &FolderView::Set(renewed));
    assert_eq!(step, Step::Stage);
    println!("{}  stage the new set, then send it", format_rfc3339(now));
}

fn print_run(run: Option<(String, SystemTime, usize)>) {
    if let Some((label, first, count)) = run {
        println!("{}  {label} ({count} check(s))", format_rfc3339(first));
    }
}
