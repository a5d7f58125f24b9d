//! Prints the renewal timeline of one certificate: the agent calls `decide` at each check and
//! waits until the `next_check` it returns. Checks with the same outcome are folded into one
//! line. At the end, a renewed set appears in the directory and is sent.
//!
//! Run with `cargo run --example timeline -p renewal-policy`.

use std::time::{Duration, SystemTime};

use renewal_policy::{
    CandidateCertificate, CurrentCertificate, Decision, DirectoryContents, Fingerprint, HostSeed,
    Policy, decide, format_rfc3339, renewal_window_start,
};

const DAY: Duration = Duration::from_secs(86_400);

fn main() {
    // The test vectors' leaf certificates expire at 2036-01-01T00:00:00Z.
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(2_082_758_400);
    let current = CurrentCertificate {
        common_name: "host1.example".to_owned(),
        fingerprint: Fingerprint([1; 32]),
        not_after,
    };
    let policy = Policy::default();
    let host = HostSeed::from_client_id("host1");
    println!(
        "certificate expires {}; this host's window opens {}",
        format_rfc3339(not_after),
        format_rfc3339(renewal_window_start(&policy, &host, not_after))
    );

    // Nothing is ever placed in the directory: follow the checks until the certificate expires.
    let mut now = not_after - 90 * DAY;
    let mut run: Option<(String, SystemTime, usize)> = None;
    loop {
        let decision = decide(&policy, &host, &current, DirectoryContents::Empty, now);
        let (label, next) = match &decision {
            Decision::NotDue { next_check } => ("not due".to_owned(), Some(*next_check)),
            Decision::NoUsableCandidate {
                reason, next_check, ..
            } => (format!("no usable candidate: {reason}"), Some(*next_check)),
            Decision::Renew { .. } => unreachable!("the directory is empty"),
            Decision::Expired { .. } => ("expired: register again".to_owned(), None),
        };
        let label = format!("{:<8} {label}", decision.severity());
        match &mut run {
            Some((previous, _, count)) if *previous == label => *count += 1,
            _ => {
                print_run(run.take());
                run = Some((label, now, 1));
            }
        }
        match next {
            Some(next) => now = next,
            None => break,
        }
    }
    print_run(run);

    // Ten days before expiry an administrator places a renewed set: it is sent.
    let now = not_after - 10 * DAY;
    let renewed = CandidateCertificate {
        common_name: "host1.example".to_owned(),
        fingerprint: Fingerprint([2; 32]),
        not_before: now - DAY,
        not_after: not_after + 365 * DAY,
    };
    let decision = decide(
        &policy,
        &host,
        &current,
        DirectoryContents::Candidate(renewed),
        now,
    );
    if let Decision::Renew {
        severity,
        next_check_if_failed,
        ..
    } = decision
    {
        println!(
            "{}  {severity:<8} renew with the new set (if refused, check again {})",
            format_rfc3339(now),
            format_rfc3339(next_check_if_failed)
        );
    } else {
        panic!("expected Renew, got {decision:?}");
    }
}

fn print_run(run: Option<(String, SystemTime, usize)>) {
    if let Some((label, first, count)) = run {
        println!("{}  {label} ({count} check(s))", format_rfc3339(first));
    }
}
