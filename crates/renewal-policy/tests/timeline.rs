//! The whole renewal timeline of one certificate, table-driven, with the default policy.

use std::time::{Duration, SystemTime};

use renewal_policy::{
    AttemptFailure, CandidateCertificate, CandidateProblem, CurrentCertificate, Decision,
    DirectoryContents, Fingerprint, HostSeed, Policy, Schedule, Severity, check_candidate,
    days_left, decide, next_check_after_failure, renewal_window_start, schedule,
};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

const COMMON_NAME: &str = "host-17.example.com";

/// 2027-01-01T00:00:00Z.
fn expiry() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600)
}

fn current() -> CurrentCertificate {
    CurrentCertificate {
        common_name: COMMON_NAME.to_owned(),
        fingerprint: Fingerprint([1; 32]),
        not_after: expiry(),
    }
}

fn host() -> HostSeed {
    HostSeed::from_client_id("host-17")
}

fn window_start() -> SystemTime {
    renewal_window_start(&Policy::default(), &host(), expiry())
}

/// A renewed certificate that passes every check at any time in the last 60 days.
fn renewed() -> CandidateCertificate {
    CandidateCertificate {
        common_name: COMMON_NAME.to_owned(),
        fingerprint: Fingerprint([2; 32]),
        not_before: expiry() - 70 * DAY,
        not_after: expiry() + 365 * DAY,
    }
}

fn with(change: impl FnOnce(&mut CandidateCertificate)) -> DirectoryContents {
    let mut candidate = renewed();
    change(&mut candidate);
    DirectoryContents::Candidate(candidate)
}

fn no_candidate(reason: CandidateProblem, severity: Severity, next_check: SystemTime) -> Decision {
    Decision::NoUsableCandidate {
        reason,
        severity,
        next_check,
    }
}

#[test]
fn host_window_is_staggered_inside_the_first_48_hours() {
    let start = window_start();
    assert!(
        start > expiry() - 60 * DAY,
        "this host's seed has a non-zero offset"
    );
    assert!(start < expiry() - 58 * DAY);
}

#[test]
fn every_point_of_the_timeline_decides_as_documented() {
    let policy = Policy::default();
    let window = window_start();
    let expiry = expiry();
    let in_window = expiry - 40 * DAY;

    // (what, now, directory contents, expected decision)
    let table: Vec<(&str, SystemTime, DirectoryContents, Decision)> = vec![
        (
            "90 days before expiry",
            expiry - 90 * DAY,
            DirectoryContents::Empty,
            Decision::NotDue { next_check: window },
        ),
        (
            "a valid candidate before the window is not looked at",
            expiry - 90 * DAY,
            DirectoryContents::Candidate(renewed()),
            Decision::NotDue { next_check: window },
        ),
        (
            "60 days before expiry, before this host's staggered start",
            expiry - 60 * DAY,
            DirectoryContents::Empty,
            Decision::NotDue { next_check: window },
        ),
        (
            "one second before the window",
            window - SECOND,
            DirectoryContents::Empty,
            Decision::NotDue { next_check: window },
        ),
        (
            "window start, empty directory",
            window,
            DirectoryContents::Empty,
            no_candidate(CandidateProblem::NoNewSet, Severity::Warning, window + DAY),
        ),
        (
            "window start, renewed set",
            window,
            DirectoryContents::Candidate(renewed()),
            Decision::Renew {
                candidate: renewed(),
                severity: Severity::Info,
                next_check_if_failed: window + DAY,
            },
        ),
        (
            "in window, directory missing",
            in_window,
            DirectoryContents::Missing,
            no_candidate(
                CandidateProblem::DirectoryMissing,
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, cert-loading refused the set",
            in_window,
            DirectoryContents::Invalid {
                reason: "key does not match certificate".to_owned(),
            },
            no_candidate(
                CandidateProblem::Invalid {
                    reason: "key does not match certificate".to_owned(),
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, the directory holds the current certificate",
            in_window,
            with(|candidate| candidate.fingerprint = Fingerprint([1; 32])),
            no_candidate(
                CandidateProblem::SameAsCurrent {
                    fingerprint: Fingerprint([1; 32]),
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, common name changed",
            in_window,
            with(|candidate| candidate.common_name = "host-17.example.org".to_owned()),
            no_candidate(
                CandidateProblem::CommonNameChanged {
                    current: COMMON_NAME.to_owned(),
                    candidate: "host-17.example.org".to_owned(),
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, common name differs only in case",
            in_window,
            with(|candidate| candidate.common_name = "HOST-17.example.com".to_owned()),
            no_candidate(
                CandidateProblem::CommonNameChanged {
                    current: COMMON_NAME.to_owned(),
                    candidate: "HOST-17.example.com".to_owned(),
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, candidate expires earlier",
            in_window,
            with(|candidate| candidate.not_after = expiry - DAY),
            no_candidate(
                CandidateProblem::NotLater {
                    current_not_after: expiry,
                    candidate_not_after: expiry - DAY,
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, candidate expires at the same moment",
            in_window,
            with(|candidate| candidate.not_after = expiry),
            no_candidate(
                CandidateProblem::NotLater {
                    current_not_after: expiry,
                    candidate_not_after: expiry,
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, candidate already expired",
            in_window,
            with(|candidate| {
                candidate.not_before = in_window - 400 * DAY;
                candidate.not_after = in_window - SECOND;
            }),
            no_candidate(
                CandidateProblem::Expired {
                    not_after: in_window - SECOND,
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, candidate valid from in two days: regular check first",
            in_window,
            with(|candidate| candidate.not_before = in_window + 2 * DAY),
            no_candidate(
                CandidateProblem::NotYetValid {
                    not_before: in_window + 2 * DAY,
                },
                Severity::Warning,
                in_window + DAY,
            ),
        ),
        (
            "in window, candidate valid from in two hours: check again then",
            in_window,
            with(|candidate| candidate.not_before = in_window + 2 * HOUR),
            no_candidate(
                CandidateProblem::NotYetValid {
                    not_before: in_window + 2 * HOUR,
                },
                Severity::Warning,
                in_window + 2 * HOUR,
            ),
        ),
        (
            "in window, candidate valid from exactly now",
            in_window,
            with(|candidate| candidate.not_before = in_window),
            Decision::Renew {
                candidate: CandidateCertificate {
                    not_before: in_window,
                    ..renewed()
                },
                severity: Severity::Info,
                next_check_if_failed: in_window + DAY,
            },
        ),
        (
            "15 days before expiry: still WARNING, next check lands on the 14-day mark",
            expiry - 15 * DAY,
            DirectoryContents::Empty,
            no_candidate(
                CandidateProblem::NoNewSet,
                Severity::Warning,
                expiry - 14 * DAY,
            ),
        ),
        (
            "one second before the 14-day mark",
            expiry - 14 * DAY - SECOND,
            DirectoryContents::Empty,
            no_candidate(
                CandidateProblem::NoNewSet,
                Severity::Warning,
                expiry - 13 * DAY - SECOND,
            ),
        ),
        (
            "14 days before expiry: ERROR, every 6 hours",
            expiry - 14 * DAY,
            DirectoryContents::Empty,
            no_candidate(
                CandidateProblem::NoNewSet,
                Severity::Error,
                expiry - 14 * DAY + 6 * HOUR,
            ),
        ),
        (
            "14 days before expiry, renewed set: renewal logged at WARNING",
            expiry - 14 * DAY,
            DirectoryContents::Candidate(renewed()),
            Decision::Renew {
                candidate: renewed(),
                severity: Severity::Warning,
                next_check_if_failed: expiry - 14 * DAY + 6 * HOUR,
            },
        ),
        (
            "one second before the 3-day mark",
            expiry - 3 * DAY - SECOND,
            DirectoryContents::Empty,
            no_candidate(
                CandidateProblem::NoNewSet,
                Severity::Error,
                expiry - 3 * DAY - SECOND + 6 * HOUR,
            ),
        ),
        (
            "3 days before expiry: CRITICAL, every hour",
            expiry - 3 * DAY,
            DirectoryContents::Empty,
            no_candidate(
                CandidateProblem::NoNewSet,
                Severity::Critical,
                expiry - 3 * DAY + HOUR,
            ),
        ),
        (
            "3 days before expiry, common name changed: CRITICAL too",
            expiry - 3 * DAY,
            with(|candidate| candidate.common_name = "other".to_owned()),
            no_candidate(
                CandidateProblem::CommonNameChanged {
                    current: COMMON_NAME.to_owned(),
                    candidate: "other".to_owned(),
                },
                Severity::Critical,
                expiry - 3 * DAY + HOUR,
            ),
        ),
        (
            "one hour before expiry: next check is expiry itself",
            expiry - HOUR,
            DirectoryContents::Empty,
            no_candidate(CandidateProblem::NoNewSet, Severity::Critical, expiry),
        ),
        (
            "20 minutes before expiry: next check capped at expiry",
            expiry - 20 * MINUTE,
            DirectoryContents::Empty,
            no_candidate(CandidateProblem::NoNewSet, Severity::Critical, expiry),
        ),
        (
            "one second before expiry, renewed set: still attempted",
            expiry - SECOND,
            DirectoryContents::Candidate(renewed()),
            Decision::Renew {
                candidate: renewed(),
                severity: Severity::Warning,
                next_check_if_failed: expiry,
            },
        ),
        (
            "exactly at expiry",
            expiry,
            DirectoryContents::Empty,
            Decision::Expired { since: expiry },
        ),
        (
            "exactly at expiry, renewed set: no attempt, re-register",
            expiry,
            DirectoryContents::Candidate(renewed()),
            Decision::Expired { since: expiry },
        ),
        (
            "a day after expiry",
            expiry + DAY,
            DirectoryContents::Candidate(renewed()),
            Decision::Expired { since: expiry },
        ),
    ];

    for (what, now, contents, expected) in table {
        let decision = decide(&policy, &host(), &current(), contents, now);
        assert_eq!(decision, expected, "{what}");
        // `schedule` agrees with `decide` on everything that does not need the directory.
        let schedule = schedule(&policy, &host(), &current(), now);
        match (&decision, &schedule) {
            (
                Decision::NotDue { next_check },
                Schedule::NotDue {
                    next_check: scheduled,
                },
            ) => {
                assert_eq!(next_check, scheduled, "{what}")
            }
            (
                Decision::NoUsableCandidate { severity, .. },
                Schedule::Due {
                    severity: scheduled,
                    ..
                },
            ) => assert_eq!(severity, scheduled, "{what}"),
            (Decision::Renew { .. }, Schedule::Due { .. }) => {}
            (Decision::Expired { since }, Schedule::Expired { since: scheduled }) => {
                assert_eq!(since, scheduled, "{what}")
            }
            _ => panic!("{what}: decide said {decision:?} but schedule said {schedule:?}"),
        }
    }
}

#[test]
fn decision_severity_summarises_each_kind() {
    let policy = Policy::default();
    let at = |now, contents| decide(&policy, &host(), &current(), contents, now).severity();
    assert_eq!(
        at(expiry() - 90 * DAY, DirectoryContents::Empty),
        Severity::Info
    );
    assert_eq!(
        at(expiry() - 40 * DAY, DirectoryContents::Empty),
        Severity::Warning
    );
    assert_eq!(
        at(expiry() - 10 * DAY, DirectoryContents::Empty),
        Severity::Error
    );
    assert_eq!(
        at(expiry() - DAY, DirectoryContents::Empty),
        Severity::Critical
    );
    assert_eq!(at(expiry(), DirectoryContents::Empty), Severity::Critical);
}

/// Follows the chain of next checks an agent would make with an empty directory from 90 days
/// out, and checks the whole run: it reaches expiry exactly, every step moves forward, no step
/// passes expiry, and severity only ever rises.
#[test]
fn following_next_checks_walks_the_schedule_to_expiry() {
    let policy = Policy::default();
    let mut now = expiry() - 90 * DAY;
    let mut previous_severity = Severity::Info;
    let mut checks_per_severity = [0_u32; 4];
    loop {
        let decision = decide(&policy, &host(), &current(), DirectoryContents::Empty, now);
        let next_check = match decision {
            Decision::NotDue { next_check } => next_check,
            Decision::NoUsableCandidate { next_check, .. } => next_check,
            Decision::Expired { since } => {
                assert_eq!(since, expiry());
                assert_eq!(now, expiry(), "the last check lands exactly on expiry");
                break;
            }
            Decision::Renew { .. } => panic!("nothing to renew with"),
        };
        let severity = decision.severity();
        assert!(severity >= previous_severity, "severity fell at {now:?}");
        previous_severity = severity;
        checks_per_severity[severity as usize] += 1;
        assert!(next_check > now, "no progress at {now:?}");
        assert!(next_check <= expiry(), "next check after expiry at {now:?}");
        now = next_check;
    }
    // One NotDue, then daily WARNINGs from the window (about 58 days out) to the 14-day mark,
    // ERRORs every 6 hours for 11 days, CRITICALs hourly for the last 3 days.
    let [info, warning, error, critical] = checks_per_severity;
    assert_eq!(info, 1);
    assert!((45..=46).contains(&warning), "{warning} warnings");
    assert!((41..=44).contains(&error), "{error} errors");
    assert!((67..=72).contains(&critical), "{critical} criticals");
}

#[test]
fn next_check_is_never_after_expiry_while_valid() {
    let policy = Policy::default();
    let contents = [
        DirectoryContents::Empty,
        DirectoryContents::Missing,
        with(|candidate| candidate.not_before = expiry() + DAY),
        with(|candidate| candidate.common_name = "other".to_owned()),
        DirectoryContents::Candidate(renewed()),
    ];
    for seed in 0..20 {
        let host = HostSeed::from_client_id(&format!("host-{seed}"));
        // Every 7 hours 13 minutes from 100 days out, so the samples fall at varied offsets.
        let mut now = expiry() - 100 * DAY;
        while now < expiry() {
            for directory in &contents {
                let decision = decide(&policy, &host, &current(), directory.clone(), now);
                let next = match decision {
                    Decision::NotDue { next_check } => next_check,
                    Decision::NoUsableCandidate { next_check, .. } => next_check,
                    Decision::Renew {
                        next_check_if_failed,
                        ..
                    } => next_check_if_failed,
                    Decision::Expired { .. } => panic!("expired early at {now:?}"),
                };
                assert!(next > now && next <= expiry(), "{decision:?} at {now:?}");
                for failure in [
                    AttemptFailure::Refused,
                    AttemptFailure::Unreachable {
                        consecutive_failures: 3,
                    },
                ] {
                    let retry = next_check_after_failure(&policy, &current(), now, failure);
                    assert!(retry > now && retry <= expiry(), "{failure:?} at {now:?}");
                }
            }
            now += 7 * HOUR + 13 * MINUTE;
        }
    }
}

#[test]
fn refusals_wait_the_stage_interval() {
    let policy = Policy::default();
    let refused = |now| next_check_after_failure(&policy, &current(), now, AttemptFailure::Refused);
    let now = expiry() - 40 * DAY;
    assert_eq!(refused(now), now + DAY);
    let now = expiry() - 10 * DAY;
    assert_eq!(refused(now), now + 6 * HOUR);
    let now = expiry() - 2 * DAY;
    assert_eq!(refused(now), now + HOUR);
    let now = expiry() - 10 * MINUTE;
    assert_eq!(refused(now), expiry());
}

#[test]
fn unreachable_manager_backs_off_exponentially_up_to_the_stage_interval() {
    let policy = Policy::default();
    let unreachable = |now, consecutive_failures| {
        next_check_after_failure(
            &policy,
            &current(),
            now,
            AttemptFailure::Unreachable {
                consecutive_failures,
            },
        )
    };
    let now = expiry() - 40 * DAY;
    let delays: Vec<Duration> = (0..=11)
        .map(|failures| unreachable(now, failures).duration_since(now).unwrap())
        .collect();
    let minutes = |count: u32| count * MINUTE;
    assert_eq!(
        delays,
        [
            minutes(5),
            minutes(5),
            minutes(10),
            minutes(20),
            minutes(40),
            minutes(80),
            minutes(160),
            minutes(320),
            minutes(640),
            minutes(1280),
            DAY,
            DAY
        ]
    );
    assert_eq!(unreachable(now, u32::MAX), now + DAY);
    let late = expiry() - 2 * DAY;
    assert_eq!(unreachable(late, 4), late + 40 * MINUTE);
    assert_eq!(unreachable(late, 5), late + HOUR);
    let last_minutes = expiry() - 3 * MINUTE;
    assert_eq!(unreachable(last_minutes, 1), expiry());
}

#[test]
fn failures_after_expiry_defer_to_decide() {
    let policy = Policy::default();
    let now = expiry() + HOUR;
    assert_eq!(
        next_check_after_failure(&policy, &current(), now, AttemptFailure::Refused),
        now
    );
    assert!(matches!(
        decide(&policy, &host(), &current(), DirectoryContents::Empty, now),
        Decision::Expired { .. }
    ));
}

#[test]
fn days_left_rounds_towards_the_past() {
    let days = |now| days_left(&current(), now);
    assert_eq!(days(expiry() - 60 * DAY), 60);
    assert_eq!(days(expiry() - 60 * DAY + SECOND), 59);
    assert_eq!(days(expiry() - DAY), 1);
    assert_eq!(days(expiry() - SECOND), 0);
    assert_eq!(days(expiry()), 0);
    assert_eq!(days(expiry() + SECOND), -1);
    assert_eq!(days(expiry() + DAY), -1);
    assert_eq!(days(expiry() + DAY + SECOND), -2);
}

#[test]
fn candidate_checks_report_the_first_problem_an_administrator_must_fix() {
    let now = expiry() - 40 * DAY;
    // Changed name, too early and not later at once: the name is reported, because waiting
    // would not fix it.
    let candidate = CandidateCertificate {
        common_name: "other".to_owned(),
        not_before: now + DAY,
        not_after: expiry() - DAY,
        ..renewed()
    };
    assert!(matches!(
        check_candidate(&current(), &candidate, now),
        Err(CandidateProblem::CommonNameChanged { .. })
    ));
    // Not later and too early: "not later" is reported.
    let candidate = CandidateCertificate {
        common_name: COMMON_NAME.to_owned(),
        ..candidate
    };
    assert!(matches!(
        check_candidate(&current(), &candidate, now),
        Err(CandidateProblem::NotLater { .. })
    ));
    // Valid at the exact last second of its own validity (RFC 5280 inclusive), if later.
    let candidate = CandidateCertificate {
        not_after: expiry() + DAY,
        not_before: now - DAY,
        ..renewed()
    };
    assert_eq!(
        check_candidate(&current(), &candidate, expiry() + DAY),
        Ok(())
    );
}

#[test]
fn problems_tell_the_administrator_what_to_do() {
    let messages = [
        (
            CandidateProblem::CommonNameChanged {
                current: COMMON_NAME.to_owned(),
                candidate: "host-17.example.com ".to_owned(),
            },
            "the new certificate's common name \"host-17.example.com \" differs from the \
             current certificate's \"host-17.example.com\"; the CipherTrust Manager rejects a \
             renewal that changes the common name, so issue the new certificate with exactly \
             \"host-17.example.com\"",
        ),
        (
            CandidateProblem::NotLater {
                current_not_after: expiry(),
                candidate_not_after: expiry() - DAY,
            },
            "the new certificate expires at 2026-12-31T00:00:00Z, which is not later than the \
             current certificate's 2027-01-01T00:00:00Z; the CipherTrust Manager would reject \
             it, so issue one that expires later",
        ),
        (
            CandidateProblem::NotYetValid {
                not_before: expiry() - 10 * DAY + 90 * MINUTE,
            },
            "the new certificate is not valid until 2026-12-22T01:30:00Z; it will be used after \
             that time (if that is unexpected, check the issuing CA's clock and this host's)",
        ),
        (
            CandidateProblem::Expired {
                not_after: expiry() - 400 * DAY,
            },
            "the new certificate expired at 2025-11-27T00:00:00Z; issue a new one and place a \
             renewed client_cert.pem, client_key.pem and passphrase in the external certificate \
             directory",
        ),
        (
            CandidateProblem::NoNewSet,
            "no new certificate set in the external certificate directory; place a renewed \
             client_cert.pem, client_key.pem and passphrase in the external certificate directory",
        ),
        (
            CandidateProblem::DirectoryMissing,
            "the external certificate directory does not exist; create it (or correct the path \
             recorded in agent.conf) and place a renewed client_cert.pem, client_key.pem and \
             passphrase in the external certificate directory",
        ),
        (
            CandidateProblem::Invalid {
                reason: "client_key.pem: wrong passphrase".to_owned(),
            },
            "the new certificate set in the external certificate directory cannot be used: \
             client_key.pem: wrong passphrase",
        ),
    ];
    for (problem, expected) in messages {
        assert_eq!(problem.to_string(), expected);
    }
    let same = CandidateProblem::SameAsCurrent {
        fingerprint: Fingerprint([0xab; 32]),
    }
    .to_string();
    assert!(same.contains(&"ab".repeat(32)), "{same}");
    assert!(same.starts_with("the external certificate directory holds the certificate already"));
}

#[test]
fn short_renew_window_gets_no_stagger_and_long_one_keeps_thirty_days() {
    for days in [20_u32, 30, 31, 45, 60, 90] {
        let policy = Policy {
            renew_before: days * DAY,
            ..Policy::default()
        };
        for seed in 0..500 {
            let host = HostSeed::from_client_id(&format!("host-{seed}"));
            let start = renewal_window_start(&policy, &host, expiry());
            let unstaggered = expiry() - days * DAY;
            assert!(start >= unstaggered);
            assert!(start < unstaggered + 48 * HOUR || start == unstaggered);
            if days >= 30 {
                assert!(start <= expiry() - 30 * DAY, "{days} days, seed {seed}");
            } else {
                assert_eq!(start, unstaggered);
            }
        }
    }
}
