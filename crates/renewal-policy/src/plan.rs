//! The whole renewal check as one pure state machine: given everything the agent knows (the
//! trigger, the journal of an update in flight, the store's generations, what the folder holds
//! and the manager's answers so far in this check), [`next_step`] says what to do next. The
//! agent executes that one step, records what happened, and asks again, until the answer is
//! [`Step::Finish`] with the report to log. No caller overrides a decision.
//!
//! # Rules
//!
//! * A manager answer is [`Answer::Accepted`], a definite refusal ([`Answer::NotThisClient`] for
//!   a login whose certificate the manager does not take as this client's, [`Answer::Refused`]
//!   otherwise) or [`Answer::Indefinite`] (timeout, connection lost after sending, 5xx). Nothing
//!   is rolled back, discarded or forgotten on an indefinite answer.
//! * The candidate is staged in the store before it is pushed, so whatever the manager decided,
//!   the host holds both identities until the question is settled.
//! * A push whose outcome is unknown is settled by probing: a login with the candidate. Accepted:
//!   it is the identity now (activate, confirm). Not this client's: the push did not take
//!   (discard it; the folder's set is pushed again if it is still usable). Unknown: wait for the
//!   next check, keeping everything.
//! * When the current identity is refused as not this client's, every other generation (staged
//!   and previous) is tried, and the one the manager accepts is adopted. Nothing is rolled back
//!   before the identity it returns to has been shown to log in.
//! * Health: outside the renewal window, sets that are older than, the same as, or unrelated to
//!   the current certificate are INFO; a newer set that cannot be used is a WARNING.

use std::time::SystemTime;

use crate::Policy;
use crate::decision::{
    CandidateCertificate, CandidateProblem, CurrentCertificate, Schedule, Severity,
    check_candidate, days_left, schedule,
};
use crate::stagger::{Fingerprint, HostSeed};

/// Why a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The daemon's schedule: the folder is not looked at before the renewal window.
    Scheduled,
    /// `vmd --once`: a health check now. The identity is checked with the manager; a usable
    /// newer set is used whatever the window says.
    Once,
    /// `vmutil updatecerts`: the administrator placed a set and wants it used now.
    Manual,
    /// The daemon saw its identity refused (a heartbeat): check the identity and recover.
    Recovery,
}

/// One generation of the pem store, as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationView {
    /// The generation number.
    pub number: u64,
    /// SHA-256 of its certificate.
    pub fingerprint: Fingerprint,
    /// Its certificate's last moment of validity.
    pub not_after: SystemTime,
}

/// The pem store's generations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreView {
    /// The current identity.
    pub current: GenerationView,
    /// The current certificate's common name.
    pub common_name: String,
    /// The generation before the last activation.
    pub previous: Option<GenerationView>,
    /// Generations imported but not active, oldest first.
    pub staged: Vec<GenerationView>,
}

impl StoreView {
    /// The current certificate as [`crate::decide`] sees it.
    pub fn current_certificate(&self) -> CurrentCertificate {
        CurrentCertificate {
            common_name: self.common_name.clone(),
            fingerprint: self.current.fingerprint,
            not_after: self.current.not_after,
        }
    }

    fn generation(&self, number: u64) -> Option<&GenerationView> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .chain(self.staged.iter())
            .find(|generation| generation.number == number)
    }

    /// The other generations, most promising first: staged (newest first), then previous.
    fn others(&self) -> impl Iterator<Item = &GenerationView> {
        self.staged.iter().rev().chain(self.previous.iter())
    }
}

/// The journal of an update in flight: its state. Each phase is written before the side effect
/// it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalPhase {
    /// About to stage the candidate with this fingerprint. Nothing was sent.
    Staging {
        /// The candidate.
        candidate: Fingerprint,
    },
    /// The candidate is staged as this generation. Nothing was sent yet.
    Staged {
        /// The staged generation.
        generation: u64,
    },
    /// The renewal of this generation was (or is about to be) sent; until an answer is seen the
    /// outcome is unknown.
    Pushing {
        /// The staged generation.
        generation: u64,
    },
    /// The manager accepts this generation; it is being made current.
    Activating {
        /// The generation.
        generation: u64,
        /// True when it is adopted after the current identity was refused (not a renewal).
        adopted: bool,
    },
    /// This generation is current; a login with it confirms the switch.
    Confirming {
        /// The generation.
        generation: u64,
        /// As in [`JournalPhase::Activating`].
        adopted: bool,
    },
}

/// What the external certificate folder holds, once looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FolderView {
    /// Not looked at yet (the decision asks with [`Step::LookInFolder`] when it needs it).
    NotLooked,
    /// No folder is configured (no `EXTERNAL_CERT_DIR` and no `-d`).
    NotConfigured,
    /// The folder does not exist.
    Missing,
    /// The folder holds none of the three files.
    Empty,
    /// A set is there but `cert-loading` refused it.
    Invalid {
        /// Why.
        reason: String,
    },
    /// A set `cert-loading` accepted (time rules aside: the decision judges those).
    Set(CandidateCertificate),
}

/// One exchange with the manager, by the generation whose identity it presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// A client-certificate login (and, for the health check, the status call after it).
    Login {
        /// The generation presented.
        generation: u64,
    },
    /// The renewal to this generation's certificate.
    Renew {
        /// The generation pushed.
        generation: u64,
    },
}

/// How an exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The manager accepted.
    Accepted,
    /// A login refused because the certificate is not this client's (HTTP 401).
    NotThisClient {
        /// The manager's words.
        reason: String,
    },
    /// Any other definite refusal (a 4xx).
    Refused {
        /// The manager's words.
        reason: String,
    },
    /// Unknown: timeout, connection lost, TLS failure mid-request, 5xx.
    Indefinite {
        /// What happened.
        reason: String,
    },
}

/// Something the agent did in this check, as recorded for the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An exchange with the manager and its answer.
    Answered(Exchange, Answer),
    /// A generation was made current.
    Activated {
        /// The generation now current.
        generation: u64,
        /// The generation it replaced.
        replaced: GenerationView,
        /// Adopted after a refusal, rather than renewed.
        adopted: bool,
    },
    /// A staged generation was removed.
    Discarded {
        /// The generation.
        generation: u64,
    },
}

/// Everything [`next_step`] looks at.
#[derive(Clone, Debug)]
pub struct Situation<'a> {
    /// The settings.
    pub policy: &'a Policy,
    /// The host's stagger seed.
    pub host: &'a HostSeed,
    /// Why the check runs.
    pub trigger: Trigger,
    /// Check locally only: never stage, send or change anything.
    pub dry_run: bool,
    /// Now.
    pub now: SystemTime,
    /// The journal of an update in flight (ignored in a dry run).
    pub journal: Option<JournalPhase>,
    /// The store.
    pub store: &'a StoreView,
    /// The folder.
    pub folder: &'a FolderView,
    /// What happened so far in this check, in order.
    pub events: &'a [Event],
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Inspect the folder (load and validate the set once), then ask again.
    LookInFolder,
    /// Log in presenting this generation; record [`Exchange::Login`].
    Login {
        /// The generation to present.
        generation: u64,
        /// Also read the client's own record (the heartbeat), for health checks.
        with_status: bool,
    },
    /// Journal [`JournalPhase::Staging`], stage the folder's set, journal
    /// [`JournalPhase::Staged`].
    Stage,
    /// Journal [`JournalPhase::Pushing`], then send the renewal to this generation with the
    /// session of the accepted login of the current generation; record [`Exchange::Renew`].
    Push {
        /// The staged generation.
        generation: u64,
    },
    /// Journal [`JournalPhase::Activating`], make this generation current, journal
    /// [`JournalPhase::Confirming`]; record [`Event::Activated`].
    Activate {
        /// The generation.
        generation: u64,
        /// Adopted after a refusal.
        adopted: bool,
    },
    /// Remove this staged generation (if it is still staged), then remove the journal; record
    /// [`Event::Discarded`].
    Discard {
        /// The generation.
        generation: u64,
    },
    /// Remove the journal: the update in flight is settled.
    ClearJournal,
    /// Stop and report.
    Finish(Report),
}

/// How the check ended, for the log, `status.json` and the exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What happened.
    pub outcome: Outcome,
    /// How loudly to log it.
    pub severity: Severity,
    /// When to check again (`None`: never; re-registration is required).
    pub next_check: Option<SystemTime>,
    /// Whether the host is healthy: it holds an identity the manager accepts (or was not asked
    /// and has no reason to doubt it) and renewal is not overdue.
    pub healthy: bool,
}

/// What a check found or did. Each variant has exactly one message in the agent's catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Renewal not due; the folder holds nothing newer that matters.
    NotDue,
    /// Renewal not due, the identity was checked with the manager.
    Healthy,
    /// `updatecerts` with the set already in use: nothing to do.
    AlreadyInUse,
    /// Dry run: the folder's set would be pushed.
    CandidateReady {
        /// The candidate.
        candidate: CandidateCertificate,
    },
    /// Renewed: the manager accepted the candidate and it is confirmed as current.
    Renewed {
        /// The certificate replaced.
        old: GenerationView,
        /// The new current generation.
        new: GenerationView,
    },
    /// The current identity was refused as not this client's; another generation that the
    /// manager accepts was adopted.
    Adopted {
        /// The refused generation.
        refused: GenerationView,
        /// The adopted generation.
        adopted: GenerationView,
    },
    /// A newer set lies in the folder but cannot be used (outside the window: a WARNING).
    UnusableSet {
        /// Why.
        problem: CandidateProblem,
    },
    /// Renewal is due (or was asked for) and nothing usable is in the folder.
    NoUsableCandidate {
        /// Why.
        problem: CandidateProblem,
        /// Whether the set was refused locally (as opposed to absent).
        refused_locally: bool,
    },
    /// The manager refused the renewal; the candidate was discarded.
    RefusedByManager {
        /// The manager's words.
        reason: String,
    },
    /// The manager could not be reached before anything was sent that could change its state.
    Unreachable {
        /// What happened.
        reason: String,
    },
    /// A renewal was sent (or confirmed) and its outcome is unknown; it will be settled at the
    /// next check. Both identities are kept.
    OutcomeUnknown {
        /// What happened.
        reason: String,
        /// The generation whose fate is unknown.
        generation: u64,
    },
    /// The manager accepts none of this host's certificates.
    NoIdentityAccepted {
        /// The manager's words for the current certificate.
        reason: String,
    },
    /// The current certificate has expired: re-registration is required.
    Expired,
}

impl Outcome {
    /// A short stable name (`status.json`'s `result`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotDue => "not_due",
            Self::Healthy => "healthy",
            Self::AlreadyInUse => "already_in_use",
            Self::CandidateReady { .. } => "candidate_ready",
            Self::Renewed { .. } => "renewed",
            Self::Adopted { .. } => "adopted",
            Self::UnusableSet { .. } => "unusable_set",
            Self::NoUsableCandidate {
                refused_locally: true,
                ..
            } => "candidate_refused",
            Self::NoUsableCandidate { .. } => "no_candidate",
            Self::RefusedByManager { .. } => "refused_by_manager",
            Self::Unreachable { .. } => "unreachable",
            Self::OutcomeUnknown { .. } => "outcome_unknown",
            Self::NoIdentityAccepted { .. } => "no_identity_accepted",
            Self::Expired => "expired",
        }
    }
}

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

fn answer_to(events: &[Event], exchange: Exchange) -> Option<&Answer> {
    let generation = match exchange {
        Exchange::Login { generation } | Exchange::Renew { generation } => generation,
    };
    for event in events.iter().rev() {
        match event {
            Event::Answered(seen, answer) if *seen == exchange => return Some(answer),
            // A generation number can be given again after a discard (the store numbers from
            // the highest one left): answers from before belong to another certificate.
            Event::Discarded {
                generation: discarded,
            } if *discarded == generation => {
                return None;
            }
            _ => {}
        }
    }
    None
}

fn login_answer(events: &[Event], generation: u64) -> Option<&Answer> {
    answer_to(events, Exchange::Login { generation })
}

fn finish(
    outcome: Outcome,
    severity: Severity,
    next_check: Option<SystemTime>,
    healthy: bool,
) -> Step {
    Step::Finish(Report {
        outcome,
        severity,
        next_check,
        healthy,
    })
}

/// The next step of the check. Pure: the same situation always gives the same step.
pub fn next_step(situation: &Situation<'_>) -> Step {
    let events = situation.events;
    let store = situation.store;
    let current = store.current;
    let policy = situation.policy;
    let now = situation.now;
    let current_certificate = store.current_certificate();
    let soon = || {
        Some(crate::next_check_after_failure(
            policy,
            &current_certificate,
            now,
            crate::AttemptFailure::Unreachable {
                consecutive_failures: 1,
            },
        ))
    };

    // An unknown outcome is healthy (the host holds both identities) only while renewal is not
    // overdue.
    let overdue = days_overdue(policy, &current_certificate, now);

    // 1. An update in flight is settled first.
    if !situation.dry_run
        && let Some(phase) = situation.journal
    {
        match phase {
            JournalPhase::Staging { candidate } => {
                // Nothing was sent: whatever was staged goes.
                return match store
                    .staged
                    .iter()
                    .find(|generation| generation.fingerprint == candidate)
                {
                    Some(generation) => Step::Discard {
                        generation: generation.number,
                    },
                    None => Step::ClearJournal,
                };
            }
            JournalPhase::Staged { generation } => {
                if store.generation(generation).is_none() || generation == current.number {
                    return Step::ClearJournal;
                }
                return match login_answer(events, current.number) {
                    None => Step::Login {
                        generation: current.number,
                        with_status: false,
                    },
                    Some(Answer::Accepted) => Step::Push { generation },
                    // Nothing was sent for the candidate: drop it; the identity question (or
                    // the unreachable manager) is dealt with below.
                    Some(_) => Step::Discard { generation },
                };
            }
            JournalPhase::Pushing { generation } => {
                if generation == current.number {
                    return Step::Activate {
                        generation,
                        adopted: false,
                    };
                }
                if store.generation(generation).is_none() {
                    return Step::ClearJournal;
                }
                return match answer_to(events, Exchange::Renew { generation }) {
                    Some(Answer::Accepted) => Step::Activate {
                        generation,
                        adopted: false,
                    },
                    Some(Answer::Refused { .. } | Answer::NotThisClient { .. }) => {
                        Step::Discard { generation }
                    }
                    Some(Answer::Indefinite { reason }) => finish(
                        Outcome::OutcomeUnknown {
                            reason: reason.clone(),
                            generation,
                        },
                        Severity::Warning,
                        soon(),
                        !overdue,
                    ),
                    // An earlier check's push: probe with the candidate.
                    None => match login_answer(events, generation) {
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
                        Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => finish(
                            Outcome::OutcomeUnknown {
                                reason: reason.clone(),
                                generation,
                            },
                            Severity::Warning,
                            soon(),
                            !overdue,
                        ),
                    },
                };
            }
            JournalPhase::Activating {
                generation,
                adopted,
            } => {
                if store.generation(generation).is_none() {
                    return Step::ClearJournal;
                }
                return Step::Activate {
                    generation,
                    adopted,
                };
            }
            JournalPhase::Confirming { generation, .. } => {
                if generation != current.number {
                    return Step::ClearJournal;
                }
                return match login_answer(events, generation) {
                    None => Step::Login {
                        generation,
                        with_status: false,
                    },
                    Some(Answer::Accepted) => Step::ClearJournal,
                    // Refused as not this client's: the identity question below adopts another
                    // generation.
                    Some(Answer::NotThisClient { .. }) => Step::ClearJournal,
                    Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => finish(
                        Outcome::OutcomeUnknown {
                            reason: reason.clone(),
                            generation,
                        },
                        Severity::Warning,
                        soon(),
                        !overdue,
                    ),
                };
            }
        }
    }

    // 2. The identity: when the current one is refused as not this client's, adopt another.
    match login_answer(events, current.number) {
        Some(Answer::NotThisClient { reason }) => {
            let mut unknown = None;
            for other in store.others() {
                match login_answer(events, other.number) {
                    None => {
                        return Step::Login {
                            generation: other.number,
                            with_status: false,
                        };
                    }
                    Some(Answer::Accepted) => {
                        return Step::Activate {
                            generation: other.number,
                            adopted: true,
                        };
                    }
                    Some(Answer::Indefinite { reason } | Answer::Refused { reason }) => {
                        unknown = Some(reason.clone());
                    }
                    Some(Answer::NotThisClient { .. }) => {}
                }
            }
            return match unknown {
                Some(reason) => finish(
                    Outcome::Unreachable { reason },
                    Severity::Error,
                    soon(),
                    false,
                ),
                None => finish(
                    Outcome::NoIdentityAccepted {
                        reason: reason.clone(),
                    },
                    Severity::Critical,
                    soon(),
                    false,
                ),
            };
        }
        // A refusal other than "not this client's" (a rate limit, ...) or no answer: nothing
        // that could change the manager's state was sent.
        Some(Answer::Refused { reason } | Answer::Indefinite { reason }) => {
            // Nothing that could change the manager's state was sent.
            let severity = if situation.trigger == Trigger::Manual {
                Severity::Error
            } else {
                Severity::Warning
            };
            return finish(
                Outcome::Unreachable {
                    reason: reason.clone(),
                },
                severity,
                soon(),
                false,
            );
        }
        Some(Answer::Accepted) | None => {}
    }

    // 3. What this check did, once settled.
    for event in events.iter().rev() {
        match event {
            Event::Activated {
                generation,
                replaced,
                adopted,
            } if *generation == current.number => {
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
                    Severity::Info
                };
                let next = match schedule(policy, situation.host, &current_certificate, now) {
                    Schedule::NotDue { next_check } | Schedule::Due { next_check, .. } => {
                        Some(next_check)
                    }
                    Schedule::Expired { .. } => None,
                };
                // An adoption is followed by the rest of the check only when nothing more is
                // needed; report it now (the next check continues normally).
                return finish(outcome, severity, next, true);
            }
            Event::Answered(Exchange::Renew { .. }, Answer::Refused { reason })
            | Event::Answered(Exchange::Renew { .. }, Answer::NotThisClient { reason }) => {
                let next = crate::next_check_after_failure(
                    policy,
                    &current_certificate,
                    now,
                    crate::AttemptFailure::Refused,
                );
                return finish(
                    Outcome::RefusedByManager {
                        reason: reason.clone(),
                    },
                    Severity::Error,
                    Some(next),
                    !overdue && situation.trigger != Trigger::Manual,
                );
            }
            _ => {}
        }
    }

    // 4. Expired: nothing is attempted.
    let (due, next_check) = match schedule(policy, situation.host, &current_certificate, now) {
        Schedule::Expired { .. } => {
            return finish(Outcome::Expired, Severity::Critical, None, false);
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
        && login_answer(events, current.number).is_none()
    {
        return Step::Login {
            generation: current.number,
            with_status: true,
        };
    }

    // 6. The folder.
    if situation.trigger == Trigger::Scheduled && due.is_none() {
        return finish(Outcome::NotDue, Severity::Info, Some(next_check), true);
    }
    if *situation.folder == FolderView::NotLooked {
        return Step::LookInFolder;
    }
    let class = classify(situation);
    let pushes = events
        .iter()
        .filter(|event| matches!(event, Event::Answered(Exchange::Renew { .. }, _)))
        .count();
    let renew = |candidate: &CandidateCertificate| {
        if situation.dry_run {
            finish(
                Outcome::CandidateReady {
                    candidate: candidate.clone(),
                },
                Severity::Info,
                Some(next_check),
                true,
            )
        } else if pushes >= 2 {
            // Bounded: a check pushes at most twice (once more after a probe showed that an
            // earlier push did not take).
            finish(
                Outcome::Unreachable {
                    reason: "the renewal did not take after two attempts".to_string(),
                },
                Severity::Warning,
                soon(),
                false,
            )
        } else {
            Step::Stage
        }
    };
    if situation.trigger == Trigger::Manual {
        return match class {
            SetClass::Usable(candidate) => renew(candidate),
            SetClass::Same => finish(
                Outcome::AlreadyInUse,
                Severity::Info,
                Some(next_check),
                true,
            ),
            // The manager's own common-name rule is authoritative on a manual update: its
            // record of this client decides, and the administrator sees its answer.
            SetClass::Unusable(CandidateProblem::CommonNameChanged { .. }, Some(candidate))
                if now >= candidate.not_before && now <= candidate.not_after =>
            {
                renew(candidate)
            }
            SetClass::Unusable(problem, _) => finish(
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
                    Outcome::NoUsableCandidate {
                        problem,
                        refused_locally,
                    },
                    Severity::Error,
                    Some(next_check),
                    false,
                )
            }
        };
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
                Outcome::UnusableSet { problem },
                Severity::Warning,
                Some(next_check),
                true,
            );
        }
        let outcome = if login_answer(events, current.number).is_some() {
            Outcome::Healthy
        } else {
            Outcome::NotDue
        };
        return finish(outcome, Severity::Info, Some(next_check), true);
    };
    let problem = match situation.folder {
        FolderView::NotConfigured => CandidateProblem::DirectoryMissing,
        _ => problem,
    };
    finish(
        Outcome::NoUsableCandidate {
            problem,
            refused_locally,
        },
        severity,
        Some(next_check),
        severity <= Severity::Warning,
    )
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

/// Renewal is overdue once the ERROR threshold has passed.
fn days_overdue(policy: &Policy, current: &CurrentCertificate, now: SystemTime) -> bool {
    let threshold_days =
        i64::try_from(policy.error_threshold.as_secs() / crate::time::SECONDS_PER_DAY)
            .unwrap_or(i64::MAX);
    days_left(current, now) < threshold_days
}
