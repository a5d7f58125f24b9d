//! A fleet of hosts whose certificates share one expiry date: the stagger must spread their
//! renewal starts evenly. Criterion-free, so it runs with `cargo test`.

use std::time::{Duration, SystemTime};

use renewal_policy::{HostSeed, Policy, peak_per_clock_hour, renewal_window_start};

const DAY: Duration = Duration::from_secs(86_400);
const HOSTS: usize = 10_000;

/// 2027-01-01T00:00:00Z: on an hour boundary, so clock hours line up with the stagger's hours.
fn shared_expiry() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600)
}

fn fleet_starts(policy: &Policy) -> Vec<SystemTime> {
    (0..HOSTS)
        .map(|index| HostSeed::from_client_id(&format!("host-{index:05}")))
        .map(|seed| renewal_window_start(policy, &seed, shared_expiry()))
        .collect()
}

#[test]
fn fleet_of_ten_thousand_spreads_evenly() {
    let policy = Policy::default();
    let starts = fleet_starts(&policy);
    let earliest_possible = shared_expiry() - policy.renew_before;
    let stagger_hours = policy.max_stagger.as_secs() / 3600;

    // Every start lies in the stagger period [not_after - 60 days, + 48 hours).
    for start in &starts {
        assert!(*start >= earliest_possible);
        assert!(*start < earliest_possible + policy.max_stagger);
    }

    // Hourly counts over the 48 hours of the stagger period.
    let mut per_hour = vec![0_usize; stagger_hours as usize];
    for start in &starts {
        let hour = start.duration_since(earliest_possible).unwrap().as_secs() / 3600;
        per_hour[hour as usize] += 1;
    }
    let even = HOSTS as f64 / stagger_hours as f64;
    let peak = peak_per_clock_hour(&starts);
    let quietest = *per_hour.iter().min().unwrap();
    assert_eq!(peak, *per_hour.iter().max().unwrap());
    println!(
        "{HOSTS} hosts over {stagger_hours} h: even spread {even:.1}/h, peak {peak}/h \
         ({:.3}x), quietest {quietest}/h ({:.3}x)",
        peak as f64 / even,
        quietest as f64 / even
    );
    assert!(
        peak as f64 <= 1.2 * even,
        "peak hour {peak} is more than 1.2 x the even spread {even:.1}"
    );
    // And no hour is left nearly idle, which would mean the load bunched up elsewhere.
    assert!(quietest as f64 >= 0.8 * even, "quietest hour {quietest}");
}

#[test]
fn fleet_starts_are_deterministic() {
    let policy = Policy::default();
    assert_eq!(fleet_starts(&policy), fleet_starts(&policy));
}

#[test]
fn without_stagger_the_whole_fleet_starts_in_one_hour() {
    // The counterfactual the stagger exists to prevent.
    let policy = Policy {
        max_stagger: Duration::ZERO,
        ..Policy::default()
    };
    assert_eq!(peak_per_clock_hour(&fleet_starts(&policy)), HOSTS);
}

#[test]
fn clamped_stagger_still_spreads_evenly_over_the_shorter_range() {
    // renew_before 31 days leaves one day of stagger: 10,000 over 24 hours is about 417/h.
    let policy = Policy {
        renew_before: 31 * DAY,
        ..Policy::default()
    };
    let starts = fleet_starts(&policy);
    assert!(
        starts
            .iter()
            .all(|start| *start <= shared_expiry() - 30 * DAY)
    );
    let even = HOSTS as f64 / 24.0;
    let peak = peak_per_clock_hour(&starts);
    assert!(peak as f64 <= 1.2 * even, "peak {peak}");
}
