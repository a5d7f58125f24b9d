//! The renewal state machine, situation by situation: what `next_step` does next. (The
//! fault-schedule explorer in crates/agent/tests/explorer.rs drives the same function through
//! every single fault and pair of faults; these cases name the rules one at a time.)

use std::time::{Duration, SystemTime};

use renewal_policy::plan::{
    Answer, Event, Exchange, ExitClass, FolderView, GenerationView, Journal, JournalPhase, Outcome,
    OutcomeKind, Situation, Step, StoreView, Trigger, next_step,
};
use renewal_policy::{
    CandidateCertificate, CandidateProblem, Fingerprint, GenerationId, HostSeed, Policy, Severity,
};

const DAY: Duration = Duration::from_secs(86_400);
const NAME: &str = "host1.example";

/// 2027-01-15T08:00:00Z.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn generation(number: u64, byte: u8, days_left: u64) -> GenerationView {
    GenerationView {
        id: GenerationId::new(number),
        fingerprint: Fingerprint([byte; 32]),
        not_after: now() + DAY * u32::try_from(days_left).unwrap(),
    }
}

/// Current generation 2 with `days_left`, previous generation 1.
fn store(days_left: u64) -> StoreView {
    StoreView {
        current: generation(2, 2, days_left),
        common_name: NAME.to_string(),
        previous: Some(generation(1, 1, 5)),
        staged: Vec::new(),
    }
}

fn set(byte: u8, common_name: &str, days_left: u64) -> FolderView {
    FolderView::Set(CandidateCertificate {
        common_name: common_name.to_string(),
        fingerprint: Fingerprint([byte; 32]),
        not_before: now() - DAY,
        not_after: now() + DAY * u32::try_from(days_left).unwrap(),
    })
}

struct Case {
    trigger: Trigger,
    dry_run: bool,
    journal: Option<Journal>,
    store: StoreView,
    folder: FolderView,
    events: Vec<Event>,
    out_of_time: bool,
    consecutive_failures: u32,
}

impl Case {
    fn new(trigger: Trigger, store: StoreView, folder: FolderView) -> Case {
        Case {
            trigger,
            dry_run: false,
            journal: None,
            store,
            folder,
            events: Vec::new(),
            out_of_time: false,
            consecutive_failures: 0,
        }
    }

    fn after_failures(mut self, count: u32) -> Case {
        self.consecutive_failures = count;
        self
    }

    fn out_of_time(mut self) -> Case {
        self.out_of_time = true;
        self
    }

    fn journal(mut self, phase: JournalPhase) -> Case {
        // The candidate's fingerprint matters only for `Staging`: the staged one is byte 3.
        self.journal = Some(Journal {
            phase,
            candidate: Fingerprint([3; 32]),
            previous: Fingerprint([2; 32]),
            directory: "/certs".to_string(),
        });
        self
    }

    fn answered(mut self, exchange: Exchange, answer: Answer) -> Case {
        self.events.push(Event::Answered(exchange, answer));
        self
    }

    fn event(mut self, event: Event) -> Case {
        self.events.push(event);
        self
    }

    fn step(&self) -> Step {
        let policy = Policy::default();
        let host = HostSeed::from_client_id("client-1");
        next_step(&Situation {
            policy: &policy,
            host: &host,
            trigger: self.trigger,
            dry_run: self.dry_run,
            now: now(),
            journal: self.journal.as_ref(),
            store: &self.store,
            folder: &self.folder,
            events: &self.events,
            out_of_time: self.out_of_time,
            consecutive_failures: self.consecutive_failures,
        })
    }
}

/// A login presenting the certificate whose fingerprint is all `byte` (generation `n` of these
/// cases holds certificate `n` unless a case says otherwise).
fn login(byte: u8) -> Exchange {
    Exchange::Login {
        certificate: Fingerprint([byte; 32]),
    }
}

/// The renewal to the certificate whose fingerprint is all `byte`.
fn renew(byte: u8) -> Exchange {
    Exchange::Renew {
        certificate: Fingerprint([byte; 32]),
    }
}

/// Generation `number`.
fn id(number: u64) -> GenerationId {
    GenerationId::new(number)
}

fn not_this_client() -> Answer {
    Answer::NotThisClient {
        reason: "401 Invalid Client".to_string(),
    }
}

fn indefinite() -> Answer {
    Answer::Indefinite {
        reason: "timeout".to_string(),
    }
}

fn finished(step: Step) -> (Outcome, Severity, bool) {
    match step {
        Step::Finish(report) => (report.outcome, report.severity, report.healthy),
        other => panic!("expected Finish, got {other:?}"),
    }
}

#[test]
fn scheduled_checks_before_the_window_neither_look_nor_call() {
    let case = Case::new(Trigger::Scheduled, store(300), FolderView::NotLooked);
    assert_eq!(
        finished(case.step()),
        (Outcome::NotDue, Severity::Info, true)
    );
}

#[test]
fn once_checks_the_identity_then_the_folder_and_stays_quiet_with_older_or_same_sets() {
    let case = Case::new(Trigger::Once, store(300), FolderView::NotLooked);
    assert_eq!(
        case.step(),
        Step::Login {
            generation: id(2),
            with_status: true
        }
    );
    let case = case.answered(login(2), Answer::Accepted);
    assert_eq!(case.step(), Step::LookInFolder);
    for folder in [
        set(2, NAME, 300),          // the set in use
        set(1, NAME, 5),            // the previous one
        set(9, "other.example", 1), // unrelated and older
        FolderView::Empty,
        FolderView::Missing,
    ] {
        let case = Case {
            folder,
            ..Case::new(Trigger::Once, store(300), FolderView::NotLooked)
        }
        .answered(login(2), Answer::Accepted);
        assert_eq!(
            finished(case.step()),
            (Outcome::Healthy, Severity::Info, true)
        );
    }
}

#[test]
fn a_newer_unusable_set_outside_the_window_is_a_healthy_warning() {
    let case = Case::new(Trigger::Once, store(300), set(9, "host2.example", 700))
        .answered(login(2), Answer::Accepted);
    let (outcome, severity, healthy) = finished(case.step());
    assert!(matches!(
        outcome,
        Outcome::UnusableSet {
            problem: CandidateProblem::CommonNameChanged { .. }
        }
    ));
    assert_eq!((severity, healthy), (Severity::Warning, true));
}

#[test]
fn in_the_window_nothing_usable_warns_then_is_unhealthy_once_overdue() {
    let case = Case::new(Trigger::Scheduled, store(20), FolderView::Empty);
    let (outcome, severity, healthy) = finished(case.step());
    assert!(matches!(outcome, Outcome::NoUsableCandidate { .. }));
    assert_eq!((severity, healthy), (Severity::Warning, true));
    let case = Case::new(Trigger::Scheduled, store(10), FolderView::Empty);
    let (_, severity, healthy) = finished(case.step());
    assert_eq!((severity, healthy), (Severity::Error, false));
}

#[test]
fn a_usable_set_is_staged_before_anything_is_sent_and_pushed_after_a_login() {
    let case = Case::new(Trigger::Scheduled, store(20), set(3, NAME, 400));
    assert_eq!(case.step(), Step::Stage);
    let mut staged = store(20);
    staged.staged.push(generation(3, 3, 400));
    let case = Case::new(Trigger::Scheduled, staged.clone(), set(3, NAME, 400))
        .journal(JournalPhase::Staged { generation: id(3) });
    assert_eq!(
        case.step(),
        Step::Login {
            generation: id(2),
            with_status: false
        }
    );
    let case = case.answered(login(2), Answer::Accepted);
    assert_eq!(case.step(), Step::Push { generation: id(3) });
    // Nothing was sent for the candidate when the login fails: it goes.
    let case = Case::new(Trigger::Scheduled, staged, set(3, NAME, 400))
        .journal(JournalPhase::Staged { generation: id(3) })
        .answered(login(2), indefinite());
    assert_eq!(case.step(), Step::Discard { generation: id(3) });
}

#[test]
fn an_unknown_push_keeps_everything_and_is_settled_by_a_probe() {
    let mut staged = store(20);
    staged.staged.push(generation(3, 3, 400));
    let pushing = || {
        Case::new(Trigger::Scheduled, staged.clone(), set(3, NAME, 400))
            .journal(JournalPhase::Pushing { generation: id(3) })
    };
    // In the same check: the renewal's answer was lost.
    let (outcome, severity, healthy) = finished(pushing().answered(renew(3), indefinite()).step());
    assert!(matches!(
        outcome,
        Outcome::OutcomeUnknown { certificate, .. } if certificate == Fingerprint([3; 32])
    ));
    // Unsettled: a WARNING, and not healthy until the next check settles it (exit 5).
    assert_eq!((severity, healthy), (Severity::Warning, false));
    // At the next check: probe with the candidate.
    assert_eq!(
        pushing().step(),
        Step::Login {
            generation: id(3),
            with_status: false
        }
    );
    assert_eq!(
        pushing().answered(login(3), Answer::Accepted).step(),
        Step::Activate {
            generation: id(3),
            adopted: false
        }
    );
    assert_eq!(
        pushing().answered(login(3), not_this_client()).step(),
        Step::Discard { generation: id(3) }
    );
    // A refusal that says nothing about the identity (a rate limit) keeps everything.
    let (outcome, _, _) = finished(
        pushing()
            .answered(
                login(3),
                Answer::Refused {
                    reason: "429".to_string(),
                },
            )
            .step(),
    );
    assert!(matches!(outcome, Outcome::OutcomeUnknown { .. }));
    let (outcome, _, _) = finished(pushing().answered(login(3), indefinite()).step());
    assert!(matches!(outcome, Outcome::OutcomeUnknown { .. }));
}

#[test]
fn answers_are_about_certificates_not_about_a_generation_number_given_again() {
    // The probe of generation 3 (certificate 3) said "not this client's"; it was discarded and
    // the folder's set (certificate 4) staged as a new generation 3 and pushed: the answer
    // about certificate 3 says nothing about certificate 4.
    let mut current_is_new = store(400);
    current_is_new.current = generation(3, 4, 400);
    current_is_new.previous = Some(generation(2, 2, 20));
    let case = Case::new(Trigger::Scheduled, current_is_new, set(4, NAME, 400))
        .journal(JournalPhase::Confirming {
            generation: id(3),
            adopted: false,
        })
        .answered(login(3), not_this_client())
        .event(Event::Discarded { generation: id(3) })
        .answered(login(2), Answer::Accepted)
        .answered(renew(4), Answer::Accepted);
    assert_eq!(
        case.step(),
        Step::Login {
            generation: id(3),
            with_status: false
        }
    );
}

#[test]
fn a_login_answer_from_before_a_renewal_of_the_same_certificate_is_not_used() {
    // An earlier push of certificate 3 did not take (its probe said "not this client's"); the
    // same set was staged and pushed again, accepted, and made current: the old refusal of
    // certificate 3 predates the manager's new record, so the switch is confirmed by a new login.
    let mut renewed = store(400);
    renewed.current = generation(3, 3, 400);
    renewed.previous = Some(generation(2, 2, 20));
    let case = Case::new(Trigger::Scheduled, renewed, set(3, NAME, 400))
        .journal(JournalPhase::Confirming {
            generation: id(3),
            adopted: false,
        })
        .answered(login(3), not_this_client())
        .event(Event::Discarded { generation: id(3) })
        .answered(login(2), Answer::Accepted)
        .answered(renew(3), Answer::Accepted);
    assert_eq!(
        case.step(),
        Step::Login {
            generation: id(3),
            with_status: false
        }
    );
    // Once confirmed, the journal goes.
    assert_eq!(
        case.answered(login(3), Answer::Accepted).step(),
        Step::ClearJournal
    );
}

#[test]
fn a_refused_current_identity_adopts_a_generation_the_manager_accepts() {
    let case = Case::new(Trigger::Recovery, store(300), FolderView::NotLooked)
        .answered(login(2), not_this_client());
    assert_eq!(
        case.step(),
        Step::Login {
            generation: id(1),
            with_status: false
        }
    );
    let adopted = case.answered(login(1), Answer::Accepted);
    assert_eq!(
        adopted.step(),
        Step::Activate {
            generation: id(1),
            adopted: true
        }
    );
    let none = Case::new(Trigger::Recovery, store(300), FolderView::NotLooked)
        .answered(login(2), not_this_client())
        .answered(login(1), not_this_client());
    let (outcome, severity, healthy) = finished(none.step());
    assert!(matches!(outcome, Outcome::NoIdentityAccepted { .. }));
    assert_eq!((severity, healthy), (Severity::Critical, false));
}

#[test]
fn an_expired_certificate_is_decided_with_the_manager_not_by_the_local_clock_alone() {
    let mut expired = store(0);
    expired.current.not_after = now() - DAY;
    let current = expired.current.id;
    // By the local clock it has expired: log in first (issue 20, finding 4).
    let case = || Case::new(Trigger::Once, expired.clone(), FolderView::NotLooked);
    assert_eq!(
        case().step(),
        Step::Login {
            generation: current,
            with_status: false
        }
    );
    // Not accepted: re-registration is required. (Refused as another client's, the identity
    // question tries the other generations first, as for any certificate.)
    for answer in [
        Answer::Refused {
            reason: "TLS alert: certificate expired".to_string(),
        },
        indefinite(),
    ] {
        let (outcome, severity, healthy) = finished(case().answered(login(2), answer).step());
        assert_eq!(
            (outcome, severity, healthy),
            (Outcome::Expired, Severity::Critical, false)
        );
    }
    // Accepted: the clock is wrong. Look in the folder; renew with a usable set as normal...
    let accepted = || case().answered(login(2), Answer::Accepted);
    assert_eq!(accepted().step(), Step::LookInFolder);
    let with_set = Case {
        folder: set(3, NAME, 400),
        ..accepted()
    };
    assert_eq!(with_set.step(), Step::Stage);
    // ... else report the skew (WARNING, unhealthy, checked again soon), never "expired".
    let nothing = Case {
        folder: set(2, NAME, 0),
        ..accepted()
    };
    let (outcome, severity, healthy) = finished(nothing.step());
    assert!(matches!(outcome, Outcome::ClockSkew { .. }), "{outcome:?}");
    assert_eq!((severity, healthy), (Severity::Warning, false));
    // A dry run sends nothing: the local clock's verdict stands.
    let dry = Case {
        dry_run: true,
        ..case()
    };
    assert_eq!(finished(dry.step()).0, Outcome::Expired);
}

#[test]
fn manual_updates_say_already_in_use_and_dry_runs_send_nothing() {
    let case = Case::new(Trigger::Manual, store(300), set(2, NAME, 300));
    assert_eq!(finished(case.step()).0, Outcome::AlreadyInUse);
    let dry = Case {
        dry_run: true,
        ..Case::new(Trigger::Manual, store(300), set(3, NAME, 400))
    };
    assert!(matches!(
        finished(dry.step()).0,
        Outcome::CandidateReady { .. }
    ));
    // A changed common name is the manager's call on a manual update.
    let changed = Case::new(Trigger::Manual, store(300), set(3, "host2.example", 400));
    assert_eq!(changed.step(), Step::Stage);
    // Nothing usable is an error for the administrator who asked.
    let (outcome, severity, healthy) =
        finished(Case::new(Trigger::Manual, store(300), FolderView::Empty).step());
    assert!(matches!(outcome, Outcome::NoUsableCandidate { .. }));
    assert_eq!((severity, healthy), (Severity::Error, false));
}

/// A check past its own deadline makes no further manager call: it ends as unreachable (soon,
/// not healthy) with the journal and the staged generation kept, so the next check carries on.
/// Local steps (look in the folder, stage, activate, discard) still run: they are bounded.
#[test]
fn a_check_out_of_time_sends_nothing_more_and_keeps_everything() {
    let mut staged = store(20);
    staged.staged.push(generation(3, 3, 400));
    let staged_case = || {
        Case::new(Trigger::Scheduled, staged.clone(), set(3, NAME, 400))
            .journal(JournalPhase::Staged { generation: id(3) })
    };
    assert_eq!(
        staged_case().answered(login(2), Answer::Accepted).step(),
        Step::Push { generation: id(3) }
    );
    for case in [
        staged_case().answered(login(2), Answer::Accepted),
        staged_case(),
        Case::new(Trigger::Once, store(300), set(2, NAME, 300)),
    ] {
        let (outcome, severity, healthy) = finished(case.out_of_time().step());
        assert_eq!(
            outcome,
            Outcome::Unreachable {
                reason: renewal_policy::plan::OUT_OF_TIME.to_string()
            }
        );
        assert_eq!((severity, healthy), (Severity::Warning, false));
    }
    // A local step is still taken (activating a generation the manager accepted).
    let case = staged_case()
        .journal(JournalPhase::Pushing { generation: id(3) })
        .answered(renew(3), Answer::Accepted)
        .out_of_time();
    assert_eq!(
        case.step(),
        Step::Activate {
            generation: id(3),
            adopted: false
        }
    );
}

/// The plan decides everything the caller used to adjust: the retry after an unreachable
/// manager backs off with the checks that already failed so, an administrator's request that
/// did not do what was asked is at least an ERROR, and the exit class is in the report.
#[test]
fn the_report_is_complete_backoff_level_and_exit_class() {
    let minute = Duration::from_secs(60);
    let unreachable = |failures| {
        let Step::Finish(report) = Case::new(Trigger::Once, store(300), FolderView::NotLooked)
            .answered(login(2), indefinite())
            .after_failures(failures)
            .step()
        else {
            panic!("not finished")
        };
        report
    };
    assert_eq!(unreachable(0).next_check, Some(now() + 5 * minute));
    assert_eq!(unreachable(3).next_check, Some(now() + 40 * minute));
    assert_eq!(unreachable(0).exit, ExitClass::Unreachable);
    assert_eq!(unreachable(0).severity, Severity::Warning);
    // The same answer to an administrator's update: an ERROR for them.
    let Step::Finish(report) = Case::new(Trigger::Manual, store(300), set(3, NAME, 400))
        .answered(login(2), indefinite())
        .step()
    else {
        panic!("not finished")
    };
    assert_eq!(report.severity, Severity::Error);
    assert_eq!(report.exit, ExitClass::Unreachable);
    // A healthy automatic check exits 0 whatever it found; a manual one by its outcome.
    let (outcome, severity, healthy) = finished(
        Case::new(Trigger::Once, store(300), FolderView::Empty)
            .answered(login(2), Answer::Accepted)
            .step(),
    );
    assert_eq!(
        (outcome, severity, healthy),
        (Outcome::Healthy, Severity::Info, true)
    );
    let Step::Finish(report) = Case::new(Trigger::Manual, store(300), FolderView::Empty).step()
    else {
        panic!("not finished")
    };
    assert_eq!(report.exit, ExitClass::LocalInput);
    assert_eq!(report.severity, Severity::Error);
}

/// Every outcome kind has a distinct label that reads back, and is listed once in `ALL`.
#[test]
fn outcome_kinds_are_one_vocabulary() {
    let mut labels: Vec<&str> = OutcomeKind::ALL.iter().map(|kind| kind.label()).collect();
    for kind in OutcomeKind::ALL {
        assert_eq!(OutcomeKind::from_label(kind.label()), Some(kind));
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), OutcomeKind::ALL.len());
}

/// Back-pressure (issue 21): a manager that asks to come back later (429, or 503 with
/// `Retry-After`) is honoured: the next check is no earlier than it said, within the policy's
/// bounds (the stage interval; never past the point where renewal would be overdue); without
/// a time, the backoff gets this host's jitter. A renewal turned away for load is not a refusal
/// of the certificate.
#[test]
fn the_managers_back_pressure_is_honoured_within_the_policys_bounds() {
    let hour = Duration::from_secs(3600);
    let minute = Duration::from_secs(60);
    let wait = |days_left: u64, until: Option<SystemTime>| {
        let Step::Finish(report) =
            Case::new(Trigger::Once, store(days_left), FolderView::NotLooked)
                .event(Event::ManagerAsksToWait { until })
                .answered(
                    login(2),
                    Answer::Refused {
                        reason: "429 slow down".to_string(),
                    },
                )
                .step()
        else {
            panic!("not finished")
        };
        assert_eq!(report.outcome.kind(), OutcomeKind::Unreachable);
        report.next_check.unwrap()
    };
    // Two hours, in the window (30 days left, the 24-hour interval): exactly then.
    assert_eq!(wait(30, Some(now() + 2 * hour)), now() + 2 * hour);
    // Sooner than the backoff (5 minutes): the backoff.
    assert_eq!(wait(30, Some(now() + minute)), now() + 5 * minute);
    // Two days, past the 24-hour interval: the interval bounds it.
    assert_eq!(wait(30, Some(now() + 48 * hour)), now() + 24 * hour);
    // 14 days and 12 hours left: never past the moment renewal would be overdue (14 days
    // before expiry), though the 24-hour interval would allow more.
    let mut near = store(15);
    near.current.not_after = now() + DAY * 14 + 12 * hour;
    let Step::Finish(report) = Case::new(Trigger::Once, near, FolderView::NotLooked)
        .event(Event::ManagerAsksToWait {
            until: Some(now() + 20 * hour),
        })
        .answered(
            login(2),
            Answer::Refused {
                reason: "429".to_string(),
            },
        )
        .step()
    else {
        panic!("not finished")
    };
    assert_eq!(report.next_check, Some(now() + 12 * hour));
    // No time given: the backoff and up to as much again of this host's jitter.
    let jittered = wait(30, None);
    assert!(
        jittered >= now() + 5 * minute && jittered < now() + 10 * minute,
        "{:?}",
        jittered.duration_since(now())
    );
    // A renewal turned away for load: not "refused by the manager".
    let mut staged = store(20);
    staged.staged.push(generation(3, 3, 400));
    let (outcome, severity, healthy) = finished(
        Case::new(Trigger::Scheduled, staged, set(3, NAME, 400))
            .answered(login(2), Answer::Accepted)
            .event(Event::ManagerAsksToWait {
                until: Some(now() + 3 * hour),
            })
            .answered(
                renew(3),
                Answer::Refused {
                    reason: "429".to_string(),
                },
            )
            .event(Event::Discarded { generation: id(3) })
            .step(),
    );
    assert_eq!(outcome.kind(), OutcomeKind::Unreachable);
    assert_eq!((severity, healthy), (Severity::Warning, false));
}

/// The daemon's waits are the policy's (`pause_after`): none of them is a constant of the
/// daemon, and a failed heartbeat honours the manager's `Retry-After` within the heartbeat
/// interval.
#[test]
fn the_daemons_pauses_come_from_the_policy() {
    use renewal_policy::plan::{Setback, pause_after};
    let policy = Policy::default();
    let minute = Duration::from_secs(60);
    let hour = 60 * minute;
    assert_eq!(pause_after(&policy, Setback::Expired), 24 * hour);
    assert_eq!(pause_after(&policy, Setback::Busy), minute);
    assert_eq!(pause_after(&policy, Setback::LocalFailure), hour);
    let heartbeat = |interval, retry_after| {
        pause_after(
            &policy,
            Setback::HeartbeatFailed {
                heartbeat_interval: interval,
                retry_after,
            },
        )
    };
    assert_eq!(heartbeat(hour, None), 5 * minute);
    assert_eq!(heartbeat(2 * minute, None), 2 * minute);
    assert_eq!(heartbeat(hour, Some(20 * minute)), 20 * minute);
    assert_eq!(heartbeat(hour, Some(3 * hour)), hour);
    assert_eq!(heartbeat(hour, Some(minute)), 5 * minute);
}

/// What the daemon does after a check or a heartbeat is the plan's: the report's next check (the
/// policy's pause when there is none or the check could not run), the failure count for the
/// backoff, and a recovery check at once when a heartbeat's identity is refused.
#[test]
fn the_daemon_carries_out_what_the_plan_says_after_a_check_and_a_heartbeat() {
    use renewal_policy::plan::{
        AfterHeartbeat, CheckEnd, HeartbeatEnd, Wait, after_check, after_heartbeat,
    };
    let policy = Policy::default();
    let minute = Duration::from_secs(60);
    let hour = 60 * minute;
    let report = |case: Case| match case.step() {
        Step::Finish(report) => report,
        step => panic!("not finished: {step:?}"),
    };

    let not_due = report(Case::new(
        Trigger::Scheduled,
        store(300),
        FolderView::NotLooked,
    ));
    let after = after_check(&policy, 3, CheckEnd::Reported(&not_due));
    assert_eq!(after.next_check, Wait::Until(not_due.next_check.unwrap()));
    // A check that did not fail to reach the manager ends a run of failures.
    assert_eq!(after.consecutive_failures, 0);

    let unreachable = report(
        Case::new(Trigger::Once, store(300), FolderView::NotLooked)
            .answered(login(2), indefinite())
            .after_failures(3),
    );
    assert_eq!(unreachable.outcome.kind(), OutcomeKind::Unreachable);
    let after = after_check(&policy, 3, CheckEnd::Reported(&unreachable));
    assert_eq!(after.consecutive_failures, 4);
    assert_eq!(
        after.next_check,
        Wait::Until(unreachable.next_check.unwrap())
    );

    let expired_only = report(
        Case::new(
            Trigger::Once,
            {
                let mut view = store(0);
                view.current.not_after = now() - DAY;
                view
            },
            FolderView::NotLooked,
        )
        .answered(
            login(2),
            Answer::Refused {
                reason: "expired".to_string(),
            },
        ),
    );
    assert_eq!(expired_only.outcome, Outcome::Expired);
    assert_eq!(
        after_check(&policy, 0, CheckEnd::Reported(&expired_only)).next_check,
        Wait::For(24 * hour)
    );
    // A check that could not run keeps the count and pauses as the policy says.
    assert_eq!(
        after_check(&policy, 2, CheckEnd::Busy),
        renewal_policy::plan::AfterCheck {
            next_check: Wait::For(minute),
            consecutive_failures: 2
        }
    );
    assert_eq!(
        after_check(&policy, 2, CheckEnd::LocalFailure).next_check,
        Wait::For(hour)
    );

    assert_eq!(
        after_heartbeat(&policy, hour, HeartbeatEnd::Accepted),
        AfterHeartbeat {
            next_heartbeat: hour,
            check_now: None
        }
    );
    assert_eq!(
        after_heartbeat(&policy, hour, HeartbeatEnd::IdentityRefused),
        AfterHeartbeat {
            next_heartbeat: 5 * minute,
            check_now: Some(Trigger::Recovery)
        }
    );
    assert_eq!(
        after_heartbeat(
            &policy,
            hour,
            HeartbeatEnd::Failed {
                retry_after: Some(20 * minute)
            }
        ),
        AfterHeartbeat {
            next_heartbeat: 20 * minute,
            check_now: None
        }
    );
}
