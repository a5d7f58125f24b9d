//! The decision itself: [`next_step`] and the steps it is made of.

use std::time::SystemTime;

use super::{
    Answer, Event, Exchange, ExitClass, FolderView, GenerationView, JournalPhase, Outcome, Report,
    Situation, Step, StoreView, Trigger,
};
use crate::timeline::{
    CandidateCertificate, CandidateProblem, CurrentCertificate, Schedule, check_candidate,
    is_overdue, renewal_severity, schedule,
};
use crate::{Fingerprint, GenerationId, Policy, Severity};

/// How the folder's set relates to the store.
enum SetClass<'a> {
    /// Nothing that matters: absent, the same, or older than the current certificate.
    Nothing(CandidateProblem),
    /// The same as the current certificate.
    Same,
    /// Newer and usable now.
    Usable(&'a CandidateCertificate),
    /// Newer (or unknown) but unusable.
    Unusable(CandidateProblem, Option<&'a CandidateCertificate>),
}

fn classify<'a>(situation: &Situation<'a>) -> SetClass<'a> {
    let store = situation.store;
    match situation.folder {
        FolderView::NotLooked | FolderView::NotConfigured | FolderView::Missing => {
            SetClass::Nothing(CandidateProblem::DirectoryMissing)
        }
        FolderView::Empty => SetClass::Nothing(CandidateProblem::NoNewSet),
        FolderView::Invalid { reason } => SetClass::Unusable(
            CandidateProblem::Invalid {
                reason: reason.clone(),
            },
            None,
        ),
        FolderView::Set(candidate) => {
            let current = store.current_certificate();
            if candidate.fingerprint == current.fingerprint {
                return SetClass::Same;
            }
            let is_previous = store
                .previous
                .is_some_and(|previous| previous.fingerprint == candidate.fingerprint);
            // For the automatic checks a set that does not expire later than the one in use is
            // an older (or unrelated) set, whatever else is wrong with it: nothing to act on. A
            // manual update reports the set's first problem in the usual order (and lets the
            // manager judge a changed common name).
            if candidate.not_after <= current.not_after
                && !is_previous
                && situation.trigger != Trigger::Manual
            {
                return SetClass::Nothing(CandidateProblem::NotLater {
                    current_not_after: current.not_after,
                    candidate_not_after: candidate.not_after,
                });
            }
            match check_candidate(&current, candidate, situation.now) {
                Ok(()) => SetClass::Usable(candidate),
                Err(problem) if is_previous => SetClass::Nothing(problem),
                Err(
                    problem
                    @ (CandidateProblem::NotLater { .. } | CandidateProblem::Expired { .. }),
                ) => SetClass::Nothing(problem),
                Err(problem) => SetClass::Unusable(problem, Some(candidate)),
            }
        }
    }
}

/// The newest answer to `exchange` in this check. A login answer given before a renewal of the
/// same certificate no longer says anything (the manager's record changed since), so it is not
/// returned.
fn answer_to(events: &[Event], exchange: Exchange) -> Option<&Answer> {
    for event in events.iter().rev() {
        match (event, exchange) {
            (Event::Answered(seen, answer), _) if *seen == exchange => return Some(answer),
            (
                Event::Answered(
                    Exchange::Renew {
                        certificate: pushed,
                    },
                    _,
                ),
                Exchange::Login { certificate },
            ) if *pushed == certificate => return None,
            (
                Event::Answered(..)
                | Event::Discarded { .. }
                | Event::Activated { .. }
                | Event::ManagerAsksToWait { .. },
                _,
            ) => {}
        }
    }
    None
}

fn login_answer(events: &[Event], certificate: Fingerprint) -> Option<&Answer> {
    answer_to(events, Exchange::Login { certificate })
}

/// A finished check as the timeline judges it; [`complete`] adds what depends on the trigger.
/// The report names the certificate in use and the time of the check, so that the agent's
/// message for it needs nothing but the folder's name.
fn finish(
    context: &Context<'_, '_>,
    outcome: Outcome,
    severity: Severity,
    next_check: Option<SystemTime>,
    healthy: bool,
) -> Step {
    Step::Finish(Report {
        exit: ExitClass::of(&outcome, Trigger::Scheduled, healthy),
        outcome,
        severity,
        next_check,
        healthy,
        current: context.current_certificate.clone(),
        at: context.now,
    })
}

/// The report as the trigger makes it: the exit class, and for an administrator's request
/// (`updatecerts`) that did not do what was asked, at least ERROR.
fn complete(mut report: Report, trigger: Trigger) -> Report {
    report.exit = ExitClass::of(&report.outcome, trigger, report.healthy);
    if trigger == Trigger::Manual && !report.outcome.kind().does_what_was_asked() {
        report.severity = report.severity.max(Severity::Error);
    }
    report
}

/// An unknown outcome is never healthy: health means the check ended with the host's identity
/// settled and accepted, and after a lost answer it is not settled yet (both identities are
/// kept and the next check, soon, settles it). So `vmd --once` exits 5 and
/// `cte_agent_healthy` is 0 until then (README, "Exit codes").
const UNSETTLED: bool = false;

/// What every step of the decision looks at, computed once.
struct Context<'s, 'a> {
    situation: &'s Situation<'a>,
    events: &'a [Event],
    store: &'a StoreView,
    current: GenerationView,
    policy: &'a Policy,
    now: SystemTime,
    current_certificate: CurrentCertificate,
    /// Renewal is overdue (past the ERROR threshold): a refusal is then unhealthy.
    overdue: bool,
}

impl Context<'_, '_> {
    /// The next check after an indefinite answer: the short unreachable retry, backing off
    /// with the checks that already failed so.
    fn soon(&self) -> Option<SystemTime> {
        let consecutive_failures = self.situation.consecutive_failures.saturating_add(1);
        Some(match self.manager_wait() {
            Some(until) => crate::next_check_after_back_pressure(
                self.policy,
                self.situation.host,
                &self.current_certificate,
                self.now,
                until,
                consecutive_failures,
            ),
            None => crate::next_check_after_failure(
                self.policy,
                &self.current_certificate,
                self.now,
                crate::AttemptFailure::Unreachable {
                    consecutive_failures,
                },
            ),
        })
    }

    /// Whether the manager asked, in this check, to come back later: `Some(until)` (the latest
    /// time it named, if any).
    fn manager_wait(&self) -> Option<Option<SystemTime>> {
        self.events
            .iter()
            .filter_map(|event| match event {
                Event::ManagerAsksToWait { until } => Some(*until),
                Event::Answered(..) | Event::Activated { .. } | Event::Discarded { .. } => None,
            })
            .reduce(|latest, until| latest.max(until))
    }
}

/// The next step of the check. Pure: the same situation always gives the same step.
///
/// In order: settle an update in flight (`settle_journal`); answer the identity question
/// when the current certificate was refused (`identity_question`); report what this check
/// did (`what_this_check_did`); then the timeline and the folder (`timeline_and_folder`).
pub fn next_step(situation: &Situation<'_>) -> Step {
    let store = situation.store;
    let current_certificate = store.current_certificate();
    let context = Context {
        situation,
        events: situation.events,
        store,
        current: store.current,
        policy: situation.policy,
        now: situation.now,
        overdue: is_overdue(situation.policy, &current_certificate, situation.now),
        current_certificate,
    };
    let step = settle_journal(&context)
        .or_else(|| identity_question(&context))
        .or_else(|| what_this_check_did(&context))
        .unwrap_or_else(|| timeline_and_folder(&context));
    let step = match step {
        Step::Login { .. } | Step::Push { .. } if situation.out_of_time => finish(
            &context,
            Outcome::Unreachable {
                reason: OUT_OF_TIME.to_string(),
            },
            Severity::Warning,
            context.soon(),
            false,
        ),
        step => step,
    };
    match step {
        Step::Finish(report) => Step::Finish(complete(report, situation.trigger)),
        step => step,
    }
}

/// Why a check that ran out of time stopped.
pub const OUT_OF_TIME: &str = "this check reached its deadline before its next call to the manager; nothing more was sent, everything is kept, and the next check carries on";

/// 1. An update in flight is settled first; `None` when there is none. One function per phase.
fn settle_journal(context: &Context<'_, '_>) -> Option<Step> {
    let situation = context.situation;
    if situation.dry_run {
        return None;
    }
    let journal = situation.journal?;
    Some(match journal.phase {
        JournalPhase::Staging => settle_staging(context, journal.candidate),
        JournalPhase::Staged { generation } => settle_staged(context, generation),
        JournalPhase::Pushing { generation } => settle_pushing(context, generation),
        JournalPhase::Activating {
            generation,
            adopted,
        } => match context.store.generation(generation) {
            None => Step::ClearJournal,
            Some(_) => Step::Activate {
                generation,
                adopted,
            },
        },
        JournalPhase::Confirming { generation, .. } => settle_confirming(context, generation),
    })
}

/// Staging: nothing was sent, whatever was staged of the candidate goes.
fn settle_staging(context: &Context<'_, '_>, candidate: Fingerprint) -> Step {
    match context
        .store
        .staged
        .iter()
        .find(|generation| generation.fingerprint == candidate)
    {
        Some(generation) => Step::Discard {
            generation: generation.id,
        },
        None => Step::ClearJournal,
    }
}

/// Staged, nothing sent yet: push it once the current identity's login is accepted.
fn settle_staged(context: &Context<'_, '_>, generation: GenerationId) -> Step {
    let current = context.current;
    if context.store.generation(generation).is_none() || generation == current.id {
        return Step::ClearJournal;
    }
    match login_answer(context.events, current.fingerprint) {
        None => Step::Login {
            generation: current.id,
            with_status: false,
        },
        Some(Answer::Accepted) => Step::Push { generation },
        // Nothing was sent for the candidate: drop it; the identity question (or the
        // unreachable manager) is dealt with next.
        Some(Answer::Refused { .. } | Answer::NotThisClient { .. } | Answer::Indefinite { .. }) => {
            Step::Discard { generation }
        }
    }
}

/// Pushing: the renewal was (or may have been) sent. Its answer in this check decides; from an
/// earlier check, a login with the candidate probes whether the manager took it.
fn settle_pushing(context: &Context<'_, '_>, generation: GenerationId) -> Step {
    if generation == context.current.id {
        return Step::Activate {
            generation,
            adopted: false,
        };
    }
    let Some(pushed) = context.store.generation(generation) else {
        return Step::ClearJournal;
    };
    let certificate = pushed.fingerprint;
    let unknown = |reason: &String| {
        finish(
            context,
            Outcome::OutcomeUnknown {
                reason: reason.clone(),
                certificate,
            },
            Severity::Warning,
            context.soon(),
            UNSETTLED,
        )
    };
    match answer_to(context.events, Exchange::Renew { certificate }) {
        Some(Answer::Accepted) => Step::Activate {
            generation,
            adopted: false,
        },
        Some(Answer::Refused { .. } | Answer::NotThisClient { .. }) => Step::Discard { generation },
        Some(Answer::Indefinite { reason }) => unknown(reason),
        // An earlier check's push: probe with the candidate.
        None => match login_answer(context.events, certificate) {
            None => Step::Login {
                generation,
                with_status: false,
            },
            Some(Answer::Accepted) => Step::Activate {
                generation,
                adopted: false,
            },
            // The push did not take; the folder's set is pushed again if usable.
            Some(Answer::NotThisClient { .. }) => Step::Discard { generation },
            // Any other refusal (a rate limit, ...) says nothing about the push.
            Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => unknown(reason),
        },
    }
}

/// Confirming: the generation is current; a login with it confirms the switch.
fn settle_confirming(context: &Context<'_, '_>, generation: GenerationId) -> Step {
    let current = context.current;
    if generation != current.id {
        return Step::ClearJournal;
    }
    match login_answer(context.events, current.fingerprint) {
        None => Step::Login {
            generation,
            with_status: false,
        },
        Some(Answer::Accepted) => Step::ClearJournal,
        // Refused as not this client's: the identity question adopts another generation.
        Some(Answer::NotThisClient { .. }) => Step::ClearJournal,
        Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => finish(
            context,
            Outcome::OutcomeUnknown {
                reason: reason.clone(),
                certificate: current.fingerprint,
            },
            Severity::Warning,
            context.soon(),
            UNSETTLED,
        ),
    }
}

/// 2. When the current certificate is refused as not this client's, adopt another.
fn identity_question(context: &Context<'_, '_>) -> Option<Step> {
    let Context {
        events,
        store,
        current,
        ..
    } = *context;
    let soon = || context.soon();

    // 2. The identity: when the current one is refused as not this client's, adopt another.
    match login_answer(events, current.fingerprint) {
        Some(Answer::NotThisClient { reason }) => {
            let mut unknown = None;
            for other in store.others() {
                match login_answer(events, other.fingerprint) {
                    None => {
                        return Some(Step::Login {
                            generation: other.id,
                            with_status: false,
                        });
                    }
                    Some(Answer::Accepted) => {
                        return Some(Step::Activate {
                            generation: other.id,
                            adopted: true,
                        });
                    }
                    Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => {
                        unknown = Some(reason.clone());
                    }
                    Some(Answer::NotThisClient { .. }) => {}
                }
            }
            return Some(match unknown {
                Some(reason) => finish(
                    context,
                    Outcome::Unreachable { reason },
                    Severity::Error,
                    soon(),
                    false,
                ),
                None => finish(
                    context,
                    Outcome::NoIdentityAccepted {
                        reason: reason.clone(),
                    },
                    Severity::Critical,
                    soon(),
                    false,
                ),
            });
        }
        // A refusal other than "not this client's" (a rate limit, ...) or no answer: nothing
        // that could change the manager's state was sent. (For a certificate the local clock
        // calls expired, the timeline decides: re-registration required.)
        Some(Answer::Refused { reason } | Answer::Indefinite { reason })
            if context.now < context.current_certificate.not_after =>
        {
            // Nothing that could change the manager's state was sent (a manual update makes it
            // an ERROR in `complete`).
            return Some(finish(
                context,
                Outcome::Unreachable {
                    reason: reason.clone(),
                },
                Severity::Warning,
                soon(),
                false,
            ));
        }
        Some(Answer::Accepted | Answer::Refused { .. } | Answer::Indefinite { .. }) | None => {}
    }

    None
}

/// 3. What this check did, once settled.
fn what_this_check_did(context: &Context<'_, '_>) -> Option<Step> {
    let Context {
        situation,
        events,
        current,
        policy,
        now,
        ref current_certificate,
        overdue,
        ..
    } = *context;

    // 3. What this check did, once settled.
    for event in events.iter().rev() {
        match event {
            Event::Activated {
                generation,
                replaced,
                adopted,
            } if *generation == current.id => {
                let outcome = if *adopted {
                    Outcome::Adopted {
                        refused: *replaced,
                        adopted: current,
                    }
                } else {
                    Outcome::Renewed {
                        old: *replaced,
                        new: current,
                    }
                };
                let severity = if *adopted {
                    Severity::Warning
                } else {
                    renewal_severity(policy, replaced.not_after, now)
                };
                let next = match schedule(policy, situation.host, current_certificate, now) {
                    Schedule::NotDue { next_check } | Schedule::Due { next_check, .. } => {
                        Some(next_check)
                    }
                    Schedule::Expired { .. } => None,
                };
                // An adoption is followed by the rest of the check only when nothing more is
                // needed; report it now (the next check continues normally).
                return Some(finish(context, outcome, severity, next, true));
            }
            // Turned away for load (a 429): not a refusal of the certificate; come back when
            // the manager said.
            Event::Answered(Exchange::Renew { .. }, Answer::Refused { reason })
                if context.manager_wait().is_some() =>
            {
                return Some(finish(
                    context,
                    Outcome::Unreachable {
                        reason: reason.clone(),
                    },
                    Severity::Warning,
                    context.soon(),
                    false,
                ));
            }
            Event::Answered(Exchange::Renew { .. }, Answer::Refused { reason })
            | Event::Answered(Exchange::Renew { .. }, Answer::NotThisClient { reason }) => {
                let next = crate::next_check_after_failure(
                    policy,
                    current_certificate,
                    now,
                    crate::AttemptFailure::Refused,
                );
                return Some(finish(
                    context,
                    Outcome::RefusedByManager {
                        reason: reason.clone(),
                    },
                    Severity::Error,
                    Some(next),
                    !overdue && situation.trigger != Trigger::Manual,
                ));
            }
            // Logins, a renewal accepted or unknown, another generation made current, discards
            // and waits say nothing about how this check ended.
            Event::Answered(Exchange::Login { .. }, _)
            | Event::Answered(
                Exchange::Renew { .. },
                Answer::Accepted | Answer::Indefinite { .. },
            )
            | Event::Activated { .. }
            | Event::Discarded { .. }
            | Event::ManagerAsksToWait { .. } => {}
        }
    }

    None
}

/// 4–6. The timeline, the health check and the folder.
fn timeline_and_folder(context: &Context<'_, '_>) -> Step {
    let Context {
        situation,
        events,
        current,
        policy,
        now,
        ref current_certificate,
        ..
    } = *context;

    // 4. Expired by the local clock: the manager decides. A login with the current identity
    //    first; only when it is not accepted is re-registration required. When it is accepted
    //    the clock is wrong: renew with a usable set as normal, else report the skew.
    let (due, next_check) = match schedule(policy, situation.host, current_certificate, now) {
        Schedule::Expired { .. } => {
            if situation.dry_run {
                return finish(context, Outcome::Expired, Severity::Critical, None, false);
            }
            return match login_answer(events, current.fingerprint) {
                None => Step::Login {
                    generation: current.id,
                    with_status: false,
                },
                Some(Answer::Accepted) => clock_skew(context),
                Some(
                    Answer::Refused { .. }
                    | Answer::NotThisClient { .. }
                    | Answer::Indefinite { .. },
                ) => finish(context, Outcome::Expired, Severity::Critical, None, false),
            };
        }
        Schedule::NotDue { next_check } => (None, next_check),
        Schedule::Due {
            severity,
            next_check,
        } => (Some(severity), next_check),
    };

    // 5. Health checks ask the manager whether it accepts the current identity.
    if matches!(situation.trigger, Trigger::Once | Trigger::Recovery)
        && !situation.dry_run
        && login_answer(events, current.fingerprint).is_none()
    {
        return Step::Login {
            generation: current.id,
            with_status: true,
        };
    }

    // 6. The folder.
    if situation.trigger == Trigger::Scheduled && due.is_none() {
        return finish(
            context,
            Outcome::NotDue,
            Severity::Info,
            Some(next_check),
            true,
        );
    }
    if *situation.folder == FolderView::NotLooked {
        return Step::LookInFolder;
    }
    let class = classify(situation);
    let renew = |candidate: &CandidateCertificate| renew_step(context, candidate, next_check);
    if situation.trigger == Trigger::Manual {
        return manual_decision(context, class, next_check);
    }
    let (problem, refused_locally, candidate) = match class {
        SetClass::Usable(candidate) => return renew(candidate),
        SetClass::Same => (
            CandidateProblem::SameAsCurrent {
                fingerprint: current.fingerprint,
            },
            false,
            None,
        ),
        SetClass::Nothing(problem) => (problem, false, None),
        SetClass::Unusable(problem, candidate) => (problem, true, candidate),
    };
    let next_check = not_yet_valid_retry(&problem, candidate, next_check);
    let Some(severity) = due else {
        // Outside the window: only a newer set that cannot be used is worth a WARNING.
        if refused_locally {
            return finish(
                context,
                Outcome::UnusableSet { problem },
                Severity::Warning,
                Some(next_check),
                true,
            );
        }
        let outcome = if login_answer(events, current.fingerprint).is_some() {
            Outcome::Healthy
        } else {
            Outcome::NotDue
        };
        return finish(context, outcome, Severity::Info, Some(next_check), true);
    };
    let problem = match situation.folder {
        FolderView::NotConfigured => CandidateProblem::DirectoryMissing,
        _ => problem,
    };
    finish(
        context,
        Outcome::NoUsableCandidate {
            problem,
            refused_locally,
        },
        severity,
        Some(next_check),
        severity <= Severity::Warning,
    )
}

/// Stage the folder's set (or say it is ready, in a dry run). A check pushes at most twice (once
/// more after a probe showed that an earlier push did not take).
/// The manager accepts a certificate the local clock says has expired: renew with a usable set
/// from the folder as normal, else report the skew (WARNING, not healthy, checked again soon).
fn clock_skew(context: &Context<'_, '_>) -> Step {
    let situation = context.situation;
    let soon = context.soon();
    if *situation.folder == FolderView::NotLooked {
        return Step::LookInFolder;
    }
    if let SetClass::Usable(candidate) = classify(situation) {
        return renew_step(context, candidate, soon.unwrap_or(context.now));
    }
    finish(
        context,
        Outcome::ClockSkew {
            not_after: context.current_certificate.not_after,
        },
        Severity::Warning,
        soon,
        false,
    )
}

fn renew_step(
    context: &Context<'_, '_>,
    candidate: &CandidateCertificate,
    next_check: SystemTime,
) -> Step {
    let pushes = context
        .events
        .iter()
        .filter(|event| matches!(event, Event::Answered(Exchange::Renew { .. }, _)))
        .count();
    if context.situation.dry_run {
        finish(
            context,
            Outcome::CandidateReady {
                candidate: candidate.clone(),
            },
            Severity::Info,
            Some(next_check),
            true,
        )
    } else if pushes >= 2 {
        finish(
            context,
            Outcome::Unreachable {
                reason: "the renewal did not take after two attempts".to_string(),
            },
            Severity::Warning,
            context.soon(),
            false,
        )
    } else {
        Step::Stage
    }
}

/// `updatecerts`: the administrator asked for this set; anything else is an error for them.
fn manual_decision(context: &Context<'_, '_>, class: SetClass<'_>, next_check: SystemTime) -> Step {
    let now = context.now;
    match class {
        SetClass::Usable(candidate) => renew_step(context, candidate, next_check),
        SetClass::Same => finish(
            context,
            Outcome::AlreadyInUse,
            Severity::Info,
            Some(next_check),
            true,
        ),
        // The manager's own common-name rule is authoritative on a manual update: its record of
        // this client decides, and the administrator sees its answer.
        SetClass::Unusable(CandidateProblem::CommonNameChanged { .. }, Some(candidate))
            if now >= candidate.not_before && now <= candidate.not_after =>
        {
            renew_step(context, candidate, next_check)
        }
        SetClass::Unusable(problem, _) => finish(
            context,
            Outcome::NoUsableCandidate {
                problem,
                refused_locally: true,
            },
            Severity::Error,
            Some(next_check),
            false,
        ),
        SetClass::Nothing(problem) => {
            let refused_locally = matches!(
                problem,
                CandidateProblem::NotLater { .. } | CandidateProblem::Expired { .. }
            );
            finish(
                context,
                Outcome::NoUsableCandidate {
                    problem,
                    refused_locally,
                },
                Severity::Error,
                Some(next_check),
                false,
            )
        }
    }
}

/// A candidate that is merely early becomes usable by itself: look again right then.
fn not_yet_valid_retry(
    problem: &CandidateProblem,
    _candidate: Option<&CandidateCertificate>,
    next_check: SystemTime,
) -> SystemTime {
    match problem {
        CandidateProblem::NotYetValid { not_before } => next_check.min(*not_before),
        _ => next_check,
    }
}
