//! The whole renewal timeline of one certificate, table-driven, with the default policy: what a
//! scheduled check reports by `plan::next_step` (the crate documentation's table), and the
//! timeline primitives it is built on.

use std::time::{Duration, SystemTime};

use renewal_policy::plan::{
    Answer, Event, Exchange, ExitClass, FolderView, GenerationView, Journal, JournalPhase, Outcome,
    Report, Situation, Step, StoreView, Trigger, next_step,
};
use renewal_policy::{
    AttemptFailure, CandidateCertificate, CandidateProblem, CurrentCertificate, Fingerprint,
    GenerationId, HostSeed, Policy, Severity, check_candidate, days_left, next_check_after_failure,
    renewal_window_start,
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

fn with(change: impl FnOnce(&mut CandidateCertificate)) -> FolderView {
    let mut candidate = renewed();
    change(&mut candidate);
    FolderView::Set(candidate)
}

fn generation(number: u64, fingerprint: Fingerprint, not_after: SystemTime) -> GenerationView {
    GenerationView {
        id: GenerationId::new(number),
        fingerprint,
        not_after,
    }
}

/// What one check reports, run as the agent runs it: every step `next_step` names is carried
/// out on a simulated store, folder and manager (which answers every login with `login`, every
/// renewal with "accepted"). Also says whether the folder was looked at.
fn check_with(
    policy: &Policy,
    host: &HostSeed,
    trigger: Trigger,
    now: SystemTime,
    folder: &FolderView,
    login: &Answer,
) -> (Report, bool) {
    let mut store = StoreView {
        current: generation(1, Fingerprint([1; 32]), expiry()),
        common_name: COMMON_NAME.to_owned(),
        previous: None,
        staged: Vec::new(),
    };
    let mut seen = FolderView::NotLooked;
    let mut journal = None;
    let mut events = Vec::new();
    for _ in 0..32 {
        let step = next_step(&Situation {
            policy,
            host,
            trigger,
            dry_run: false,
            now,
            journal: journal.as_ref(),
            store: &store,
            folder: &seen,
            events: &events,
            out_of_time: false,
            consecutive_failures: 0,
        });
        match step {
            Step::Finish(report) => return (report, seen != FolderView::NotLooked),
            Step::LookInFolder => seen = folder.clone(),
            Step::Login { generation, .. } => {
                let certificate = store.generation(generation).unwrap().fingerprint;
                events.push(Event::Answered(
                    Exchange::Login { certificate },
                    login.clone(),
                ));
            }
            Step::Stage => {
                let FolderView::Set(candidate) = &seen else {
                    panic!("staged without a set")
                };
                store
                    .staged
                    .push(generation(2, candidate.fingerprint, candidate.not_after));
                journal = Some(journal_at(JournalPhase::Staged {
                    generation: GenerationId::new(2),
                }));
            }
            Step::Push { generation } => {
                journal = Some(journal_at(JournalPhase::Pushing { generation }));
                let certificate = store.generation(generation).unwrap().fingerprint;
                events.push(Event::Answered(
                    Exchange::Renew { certificate },
                    Answer::Accepted,
                ));
            }
            Step::Activate {
                generation,
                adopted,
            } => {
                let replaced = store.current;
                let position = store
                    .staged
                    .iter()
                    .position(|staged| staged.id == generation)
                    .expect("activating a staged generation");
                store.current = store.staged.remove(position);
                store.previous = Some(replaced);
                journal = Some(journal_at(JournalPhase::Confirming {
                    generation,
                    adopted,
                }));
                events.push(Event::Activated {
                    generation,
                    replaced,
                    adopted,
                });
            }
            Step::ClearJournal => journal = None,
            Step::Discard { .. } => panic!("nothing is refused here: {step:?}"),
        }
    }
    panic!("the check did not finish")
}

fn journal_at(phase: JournalPhase) -> Journal {
    Journal {
        phase,
        candidate: renewed().fingerprint,
        previous: Fingerprint([1; 32]),
        directory: "/certs".to_owned(),
    }
}

/// A scheduled check with the default policy; the manager accepts the current certificate, and
/// refuses it once it has expired.
fn scheduled(now: SystemTime, folder: &FolderView) -> (Report, bool) {
    let login = if now >= expiry() {
        Answer::Refused {
            reason: "certificate expired".to_owned(),
        }
    } else {
        Answer::Accepted
    };
    check_with(
        &Policy::default(),
        &host(),
        Trigger::Scheduled,
        now,
        folder,
        &login,
    )
}

fn no_candidate(problem: CandidateProblem, refused_locally: bool) -> Outcome {
    Outcome::NoUsableCandidate {
        problem,
        refused_locally,
    }
}

fn renewal() -> Outcome {
    Outcome::Renewed {
        old: generation(1, Fingerprint([1; 32]), expiry()),
        new: generation(2, renewed().fingerprint, renewed().not_after),
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

/// A row of the table: what, now, folder, outcome, level, next check.
type Row = (
    &'static str,
    SystemTime,
    FolderView,
    Outcome,
    Severity,
    Option<SystemTime>,
);

/// The crate documentation's table, row by row, as `next_step` reports it for a scheduled
/// check: outcome, level, next check, and whether the folder was looked at.
#[test]
fn the_documented_table_is_what_next_step_reports() {
    let window = window_start();
    let expiry = expiry();
    let in_window = expiry - 40 * DAY;
    let renewed_window = renewal_window_start(&Policy::default(), &host(), renewed().not_after);
    let empty = FolderView::Empty;

    // (what, now, folder, outcome, level, next check)
    let table: Vec<Row> = vec![
        (
            "90 days before expiry",
            expiry - 90 * DAY,
            empty.clone(),
            Outcome::NotDue,
            Severity::Info,
            Some(window),
        ),
        (
            "a valid candidate before the window is not looked at",
            expiry - 90 * DAY,
            FolderView::Set(renewed()),
            Outcome::NotDue,
            Severity::Info,
            Some(window),
        ),
        (
            "60 days before expiry, before this host's staggered start",
            expiry - 60 * DAY,
            empty.clone(),
            Outcome::NotDue,
            Severity::Info,
            Some(window),
        ),
        (
            "one second before the window",
            window - SECOND,
            empty.clone(),
            Outcome::NotDue,
            Severity::Info,
            Some(window),
        ),
        (
            "window start, empty directory",
            window,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Warning,
            Some(window + DAY),
        ),
        (
            "window start, renewed set: renewed at INFO",
            window,
            FolderView::Set(renewed()),
            renewal(),
            Severity::Info,
            Some(renewed_window),
        ),
        (
            "in window, directory missing",
            in_window,
            FolderView::Missing,
            no_candidate(CandidateProblem::DirectoryMissing, false),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, cert-loading refused the set",
            in_window,
            FolderView::Invalid {
                reason: "key does not match certificate".to_owned(),
            },
            no_candidate(
                CandidateProblem::Invalid {
                    reason: "key does not match certificate".to_owned(),
                },
                true,
            ),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, the directory holds the current certificate",
            in_window,
            with(|candidate| candidate.fingerprint = Fingerprint([1; 32])),
            no_candidate(
                CandidateProblem::SameAsCurrent {
                    fingerprint: Fingerprint([1; 32]),
                },
                false,
            ),
            Severity::Warning,
            Some(in_window + DAY),
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
                true,
            ),
            Severity::Warning,
            Some(in_window + DAY),
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
                true,
            ),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, candidate expires earlier: an older set, nothing to act on",
            in_window,
            with(|candidate| candidate.not_after = expiry - DAY),
            no_candidate(
                CandidateProblem::NotLater {
                    current_not_after: expiry,
                    candidate_not_after: expiry - DAY,
                },
                false,
            ),
            Severity::Warning,
            Some(in_window + DAY),
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
                false,
            ),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, candidate already expired (so also older)",
            in_window,
            with(|candidate| {
                candidate.not_before = in_window - 400 * DAY;
                candidate.not_after = in_window - SECOND;
            }),
            no_candidate(
                CandidateProblem::NotLater {
                    current_not_after: expiry,
                    candidate_not_after: in_window - SECOND,
                },
                false,
            ),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, candidate valid from in two days: regular check first",
            in_window,
            with(|candidate| candidate.not_before = in_window + 2 * DAY),
            no_candidate(
                CandidateProblem::NotYetValid {
                    not_before: in_window + 2 * DAY,
                },
                true,
            ),
            Severity::Warning,
            Some(in_window + DAY),
        ),
        (
            "in window, candidate valid from in two hours: check again then",
            in_window,
            with(|candidate| candidate.not_before = in_window + 2 * HOUR),
            no_candidate(
                CandidateProblem::NotYetValid {
                    not_before: in_window + 2 * HOUR,
                },
                true,
            ),
            Severity::Warning,
            Some(in_window + 2 * HOUR),
        ),
        (
            "in window, candidate valid from exactly now",
            in_window,
            with(|candidate| candidate.not_before = in_window),
            renewal(),
            Severity::Info,
            Some(renewed_window),
        ),
        (
            "15 days before expiry: still WARNING, next check lands on the 14-day mark",
            expiry - 15 * DAY,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Warning,
            Some(expiry - 14 * DAY),
        ),
        (
            "one second before the 14-day mark",
            expiry - 14 * DAY - SECOND,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Warning,
            Some(expiry - 13 * DAY - SECOND),
        ),
        (
            "14 days before expiry: ERROR, every 6 hours",
            expiry - 14 * DAY,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Error,
            Some(expiry - 14 * DAY + 6 * HOUR),
        ),
        (
            "14 days before expiry, renewed set: renewed, logged at WARNING (it came late)",
            expiry - 14 * DAY,
            FolderView::Set(renewed()),
            renewal(),
            Severity::Warning,
            Some(renewed_window),
        ),
        (
            "one second before the 3-day mark",
            expiry - 3 * DAY - SECOND,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Error,
            Some(expiry - 3 * DAY - SECOND + 6 * HOUR),
        ),
        (
            "3 days before expiry: CRITICAL, every hour",
            expiry - 3 * DAY,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Critical,
            Some(expiry - 3 * DAY + HOUR),
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
                true,
            ),
            Severity::Critical,
            Some(expiry - 3 * DAY + HOUR),
        ),
        (
            "one hour before expiry: next check is expiry itself",
            expiry - HOUR,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Critical,
            Some(expiry),
        ),
        (
            "20 minutes before expiry: next check capped at expiry",
            expiry - 20 * MINUTE,
            empty.clone(),
            no_candidate(CandidateProblem::NoNewSet, false),
            Severity::Critical,
            Some(expiry),
        ),
        (
            "one second before expiry, renewed set: still renewed",
            expiry - SECOND,
            FolderView::Set(renewed()),
            renewal(),
            Severity::Warning,
            Some(renewed_window),
        ),
        (
            "exactly at expiry, refused by the manager: register again",
            expiry,
            empty.clone(),
            Outcome::Expired,
            Severity::Critical,
            None,
        ),
        (
            "exactly at expiry, renewed set: no attempt, re-register",
            expiry,
            FolderView::Set(renewed()),
            Outcome::Expired,
            Severity::Critical,
            None,
        ),
        (
            "a day after expiry",
            expiry + DAY,
            FolderView::Set(renewed()),
            Outcome::Expired,
            Severity::Critical,
            None,
        ),
    ];

    for (what, now, folder, outcome, severity, next_check) in table {
        let (report, looked) = scheduled(now, &folder);
        assert_eq!(report.outcome, outcome, "{what}");
        assert_eq!(report.severity, severity, "{what}");
        assert_eq!(report.next_check, next_check, "{what}");
        // The folder is looked at only once the window is open and the identity holds.
        let due = now >= window && now < expiry;
        assert_eq!(looked, due, "{what}: folder looked at");
        // Healthy while renewal is not overdue and nothing was refused; the exit class follows.
        let healthy = severity <= Severity::Warning && outcome != Outcome::Expired;
        assert_eq!(report.healthy, healthy, "{what}: health");
        let exit = match (&outcome, healthy) {
            (_, true) => ExitClass::Ok,
            (Outcome::Expired | Outcome::NoUsableCandidate { .. }, false) => ExitClass::LocalInput,
            (other, false) => panic!("{what}: unexpected unhealthy {other:?}"),
        };
        assert_eq!(report.exit, exit, "{what}: exit class");
    }
}

/// Follows the chain of next checks a daemon would make with an empty directory from 90 days
/// out, and checks the whole run: it reaches expiry exactly, every step moves forward, no step
/// passes expiry, and severity only ever rises.
#[test]
fn following_next_checks_walks_the_schedule_to_expiry() {
    let mut now = expiry() - 90 * DAY;
    let mut previous_severity = Severity::Info;
    let mut checks_per_severity = [0_u32; 4];
    loop {
        let (report, _) = scheduled(now, &FolderView::Empty);
        let Some(next_check) = report.next_check else {
            assert_eq!(report.outcome, Outcome::Expired);
            assert_eq!(now, expiry(), "the last check lands exactly on expiry");
            break;
        };
        let severity = report.severity;
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
    let folders = [
        FolderView::Empty,
        FolderView::Missing,
        with(|candidate| candidate.not_before = expiry() + DAY),
        with(|candidate| candidate.common_name = "other".to_owned()),
        FolderView::Set(renewed()),
    ];
    for seed in 0..20 {
        let host = HostSeed::from_client_id(&format!("host-{seed}"));
        // Every 7 hours 13 minutes from 100 days out, so the samples fall at varied offsets.
        let mut now = expiry() - 100 * DAY;
        while now < expiry() {
            for folder in &folders {
                for trigger in [Trigger::Scheduled, Trigger::Once] {
                    let (report, _) =
                        check_with(&policy, &host, trigger, now, folder, &Answer::Accepted);
                    let next = report.next_check.expect("expired early");
                    // A renewal schedules the new certificate's window; every other check
                    // stays within the current certificate's life.
                    let end = match report.outcome {
                        Outcome::Renewed { new, .. } => new.not_after,
                        _ => expiry(),
                    };
                    assert!(next > now && next <= end, "{report:?} at {now:?}");
                }
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
fn failures_after_expiry_defer_to_the_next_check() {
    let policy = Policy::default();
    let now = expiry() + HOUR;
    assert_eq!(
        next_check_after_failure(&policy, &current(), now, AttemptFailure::Refused),
        now
    );
    let (report, _) = scheduled(now, &FolderView::Empty);
    assert_eq!(report.outcome, Outcome::Expired);
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
