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
use crate::Severity;
use crate::stagger::HostSeed;
use crate::timeline::{CandidateCertificate, CandidateProblem, CurrentCertificate};
use crate::{Fingerprint, GenerationId};

mod daemon;
mod decide;

pub use daemon::{
    AfterCheck, AfterHeartbeat, CheckEnd, HeartbeatEnd, Setback, Wait, after_check,
    after_heartbeat, pause_after,
};
pub use decide::{OUT_OF_TIME, next_step};

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
    /// The generation.
    pub id: GenerationId,
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
    /// The current certificate as the timeline primitives see it.
    pub fn current_certificate(&self) -> CurrentCertificate {
        CurrentCertificate {
            common_name: self.common_name.clone(),
            fingerprint: self.current.fingerprint,
            not_after: self.current.not_after,
        }
    }

    /// The generation `id`, if the store holds it.
    pub fn generation(&self, id: GenerationId) -> Option<&GenerationView> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .chain(self.staged.iter())
            .find(|generation| generation.id == id)
    }

    /// The other generations, most promising first: staged (newest first), then previous.
    fn others(&self) -> impl Iterator<Item = &GenerationView> {
        self.staged.iter().rev().chain(self.previous.iter())
    }
}

/// The journal of an update in flight (`vmd/run/renewal-journal.json`): its phase, written
/// before the side effect it names, and the certificates concerned. The agent stores this very
/// type; its JSON is `{"phase": "pushing", "generation": 3, "candidate_fingerprint": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    /// The phase.
    #[serde(flatten)]
    pub phase: JournalPhase,
    /// The candidate's fingerprint (the generation being staged, pushed or adopted).
    #[serde(rename = "candidate_fingerprint")]
    pub candidate: Fingerprint,
    /// The fingerprint that was current when the update started.
    #[serde(rename = "previous_fingerprint")]
    pub previous: Fingerprint,
    /// The folder the candidate came from (empty for an adoption); for people reading it.
    pub directory: String,
}

/// The state of an update in flight. Each phase is written before the side effect it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum JournalPhase {
    /// About to stage the candidate ([`Journal::candidate`]). Nothing was sent.
    Staging,
    /// The candidate is staged as this generation. Nothing was sent yet.
    Staged {
        /// The staged generation.
        generation: GenerationId,
    },
    /// The renewal of this generation was (or is about to be) sent; until an answer is seen the
    /// outcome is unknown.
    Pushing {
        /// The staged generation.
        generation: GenerationId,
    },
    /// The manager accepts this generation; it is being made current.
    Activating {
        /// The generation.
        generation: GenerationId,
        /// True when it is adopted after the current identity was refused (not a renewal).
        adopted: bool,
    },
    /// This generation is current; a login with it confirms the switch.
    Confirming {
        /// The generation.
        generation: GenerationId,
        /// As in [`JournalPhase::Activating`].
        adopted: bool,
    },
}

impl std::fmt::Display for JournalPhase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Staging => formatter.write_str("staging"),
            Self::Staged { generation } => write!(formatter, "staged as generation {generation}"),
            Self::Pushing { generation } => {
                write!(formatter, "sent to the manager (generation {generation})")
            }
            Self::Activating { generation, .. } => {
                write!(formatter, "activating generation {generation}")
            }
            Self::Confirming { generation, .. } => {
                write!(formatter, "confirming generation {generation}")
            }
        }
    }
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

/// One exchange with the manager, by the certificate it concerns. Keyed by fingerprint, not by
/// generation: a generation's number can be given again after a discard, a certificate's
/// fingerprint names that certificate only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// A client-certificate login (and, for the health check, the status call after it).
    Login {
        /// The certificate presented.
        certificate: Fingerprint,
    },
    /// The renewal to this certificate.
    Renew {
        /// The certificate pushed.
        certificate: Fingerprint,
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
        generation: GenerationId,
        /// The generation it replaced.
        replaced: GenerationView,
        /// Adopted after a refusal, rather than renewed.
        adopted: bool,
    },
    /// A staged generation was removed.
    Discarded {
        /// The generation.
        generation: GenerationId,
    },
    /// The manager asked to come back later (a 429, or a 503 with `Retry-After`): the check's
    /// next attempt honours it ([`crate::next_check_after_back_pressure`]), and a renewal it
    /// turned away is not a refusal of the certificate.
    ManagerAsksToWait {
        /// When it said to come back (its `Retry-After`), if it did.
        until: Option<SystemTime>,
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
    pub journal: Option<&'a Journal>,
    /// The store.
    pub store: &'a StoreView,
    /// The folder.
    pub folder: &'a FolderView,
    /// What happened so far in this check, in order.
    pub events: &'a [Event],
    /// The check's own deadline has passed: no further manager call is made. The check ends
    /// as unreachable with everything kept (journal, staged generations); the next check, soon,
    /// carries on from there. So a check holds the renewal lock for a bounded time.
    pub out_of_time: bool,
    /// How many checks in a row before this one ended with the manager unreachable or an
    /// outcome unknown ([`OutcomeKind::is_manager_unreachable`]): the retry backs off with it.
    pub consecutive_failures: u32,
}

/// The next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
// One step is returned per decision and consumed at once: boxing the report would allocate for
// nothing.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Inspect the folder (load and validate the set once), then ask again.
    LookInFolder,
    /// Log in presenting this generation; record [`Exchange::Login`].
    Login {
        /// The generation to present.
        generation: GenerationId,
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
        generation: GenerationId,
    },
    /// Journal [`JournalPhase::Activating`], make this generation current, journal
    /// [`JournalPhase::Confirming`]; record [`Event::Activated`].
    Activate {
        /// The generation.
        generation: GenerationId,
        /// Adopted after a refusal.
        adopted: bool,
    },
    /// Remove this staged generation (if it is still staged), then remove the journal; record
    /// [`Event::Discarded`].
    Discard {
        /// The generation.
        generation: GenerationId,
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
    /// How the process that ran the check exits (`vmd --once`, `updatecerts`).
    pub exit: ExitClass,
    /// The certificate in use when the check ended (the new one after a renewal).
    pub current: CurrentCertificate,
    /// When the check ran (its `now`).
    pub at: SystemTime,
}

impl Report {
    /// Whole days left on the certificate in use (negative once expired), at the check's time.
    pub fn days_left(&self) -> i64 {
        crate::days_left(&self.current, self.at)
    }
}

/// How a finished check ends the process that ran it: the automatic triggers answer with the
/// host's health, `updatecerts` with whether the administrator's request was done. The agent
/// maps each class to its exit code (README, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitClass {
    /// Healthy (automatic triggers) or done (a manual update).
    Ok,
    /// The local input is the problem: the folder's set, or an expired certificate that only
    /// re-registration fixes.
    LocalInput,
    /// The manager refused.
    Refused,
    /// The manager could not be reached, or a renewal's outcome is unknown.
    Unreachable,
    /// The host itself is wrong (its clock).
    LocalSystem,
}

impl ExitClass {
    /// The class of a finished check: for the automatic triggers a healthy host is
    /// [`ExitClass::Ok`] whatever the outcome; a manual update is judged by its outcome only.
    pub fn of(outcome: &Outcome, trigger: Trigger, healthy: bool) -> Self {
        Self::of_kind(outcome.kind(), trigger, healthy)
    }

    /// [`ExitClass::of`] for an outcome of this kind.
    pub fn of_kind(kind: OutcomeKind, trigger: Trigger, healthy: bool) -> Self {
        let by_outcome = match kind {
            OutcomeKind::Expired
            | OutcomeKind::NoCandidate
            | OutcomeKind::CandidateRefused
            | OutcomeKind::UnusableSet => Self::LocalInput,
            OutcomeKind::RefusedByManager | OutcomeKind::NoIdentityAccepted => Self::Refused,
            OutcomeKind::Unreachable | OutcomeKind::OutcomeUnknown => Self::Unreachable,
            // The clock is wrong: a local system failure, though the manager accepts the host.
            OutcomeKind::ClockSkew => Self::LocalSystem,
            OutcomeKind::NotDue
            | OutcomeKind::Healthy
            | OutcomeKind::AlreadyInUse
            | OutcomeKind::CandidateReady
            | OutcomeKind::Renewed
            | OutcomeKind::Adopted => Self::Ok,
        };
        match trigger {
            Trigger::Manual => by_outcome,
            Trigger::Scheduled | Trigger::Once | Trigger::Recovery if healthy => Self::Ok,
            Trigger::Scheduled | Trigger::Once | Trigger::Recovery => by_outcome,
        }
    }
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
        /// The certificate whose fate is unknown.
        certificate: Fingerprint,
    },
    /// The manager accepts none of this host's certificates.
    NoIdentityAccepted {
        /// The manager's words for the current certificate.
        reason: String,
    },
    /// The current certificate has expired: re-registration is required. Only after the
    /// manager did not accept it (the local clock alone never decides this).
    Expired,
    /// The local clock says the current certificate has expired, yet the manager accepts it:
    /// the clock is wrong. Nothing usable to renew with was in the folder; renewal goes on as
    /// normal at the next check.
    ClockSkew {
        /// The certificate's end of validity, which the local clock is past.
        not_after: SystemTime,
    },
}

impl Outcome {
    /// Its kind: the label in `status.json` and the metrics, and the class of the outcome.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::NotDue => OutcomeKind::NotDue,
            Self::Healthy => OutcomeKind::Healthy,
            Self::AlreadyInUse => OutcomeKind::AlreadyInUse,
            Self::CandidateReady { .. } => OutcomeKind::CandidateReady,
            Self::Renewed { .. } => OutcomeKind::Renewed,
            Self::Adopted { .. } => OutcomeKind::Adopted,
            Self::UnusableSet { .. } => OutcomeKind::UnusableSet,
            Self::NoUsableCandidate {
                refused_locally: true,
                ..
            } => OutcomeKind::CandidateRefused,
            Self::NoUsableCandidate { .. } => OutcomeKind::NoCandidate,
            Self::RefusedByManager { .. } => OutcomeKind::RefusedByManager,
            Self::Unreachable { .. } => OutcomeKind::Unreachable,
            Self::OutcomeUnknown { .. } => OutcomeKind::OutcomeUnknown,
            Self::NoIdentityAccepted { .. } => OutcomeKind::NoIdentityAccepted,
            Self::Expired => OutcomeKind::Expired,
            Self::ClockSkew { .. } => OutcomeKind::ClockSkew,
        }
    }
}

/// The kinds of [`Outcome`], without their details: one vocabulary for `status.json`'s
/// `result`, the metrics' `result` label, failure counting and the exit class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// [`Outcome::NotDue`].
    NotDue,
    /// [`Outcome::Healthy`].
    Healthy,
    /// [`Outcome::AlreadyInUse`].
    AlreadyInUse,
    /// [`Outcome::CandidateReady`].
    CandidateReady,
    /// [`Outcome::Renewed`].
    Renewed,
    /// [`Outcome::Adopted`].
    Adopted,
    /// [`Outcome::UnusableSet`].
    UnusableSet,
    /// [`Outcome::NoUsableCandidate`] with a set refused locally.
    CandidateRefused,
    /// [`Outcome::NoUsableCandidate`] with no set.
    NoCandidate,
    /// [`Outcome::RefusedByManager`].
    RefusedByManager,
    /// [`Outcome::Unreachable`].
    Unreachable,
    /// [`Outcome::OutcomeUnknown`].
    OutcomeUnknown,
    /// [`Outcome::NoIdentityAccepted`].
    NoIdentityAccepted,
    /// [`Outcome::Expired`].
    Expired,
    /// [`Outcome::ClockSkew`].
    ClockSkew,
}

impl OutcomeKind {
    /// Every kind, in the order the metrics list them.
    pub const ALL: [Self; 15] = [
        Self::NotDue,
        Self::Healthy,
        Self::AlreadyInUse,
        Self::CandidateReady,
        Self::Renewed,
        Self::Adopted,
        Self::UnusableSet,
        Self::CandidateRefused,
        Self::NoCandidate,
        Self::RefusedByManager,
        Self::Unreachable,
        Self::OutcomeUnknown,
        Self::NoIdentityAccepted,
        Self::Expired,
        Self::ClockSkew,
    ];

    /// A short stable name (`status.json`'s `result`, the metrics' `result` label).
    pub fn label(self) -> &'static str {
        match self {
            Self::NotDue => "not_due",
            Self::Healthy => "healthy",
            Self::AlreadyInUse => "already_in_use",
            Self::CandidateReady => "candidate_ready",
            Self::Renewed => "renewed",
            Self::Adopted => "adopted",
            Self::UnusableSet => "unusable_set",
            Self::CandidateRefused => "candidate_refused",
            Self::NoCandidate => "no_candidate",
            Self::RefusedByManager => "refused_by_manager",
            Self::Unreachable => "unreachable",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::NoIdentityAccepted => "no_identity_accepted",
            Self::Expired => "expired",
            Self::ClockSkew => "clock_skew",
        }
    }

    /// The kind with this label.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.label() == label)
    }

    /// Whether a check that ended so counts as a failed renewal check (the metrics'
    /// `cte_agent_renewal_failures_total`; a check that leaves the host unhealthy counts too).
    pub fn is_failure(self) -> bool {
        match self {
            Self::CandidateRefused
            | Self::RefusedByManager
            | Self::Unreachable
            | Self::OutcomeUnknown
            | Self::NoIdentityAccepted
            | Self::Expired
            | Self::ClockSkew => true,
            Self::NotDue
            | Self::Healthy
            | Self::AlreadyInUse
            | Self::CandidateReady
            | Self::Renewed
            | Self::Adopted
            | Self::UnusableSet
            | Self::NoCandidate => false,
        }
    }

    /// Whether the manager could not be reached (or did not say how a renewal ended): the
    /// retry backs off ([`Situation::consecutive_failures`]) and `cte_agent_manager_reachable`
    /// is 0.
    pub fn is_manager_unreachable(self) -> bool {
        match self {
            Self::Unreachable | Self::OutcomeUnknown => true,
            Self::NotDue
            | Self::Healthy
            | Self::AlreadyInUse
            | Self::CandidateReady
            | Self::Renewed
            | Self::Adopted
            | Self::UnusableSet
            | Self::CandidateRefused
            | Self::NoCandidate
            | Self::RefusedByManager
            | Self::NoIdentityAccepted
            | Self::Expired
            | Self::ClockSkew => false,
        }
    }

    /// Whether an administrator who asked for an update (`updatecerts`) got what was asked:
    /// any other outcome is an ERROR for them.
    pub fn does_what_was_asked(self) -> bool {
        match self {
            Self::Renewed | Self::AlreadyInUse | Self::CandidateReady | Self::Adopted => true,
            Self::NotDue
            | Self::Healthy
            | Self::UnusableSet
            | Self::CandidateRefused
            | Self::NoCandidate
            | Self::RefusedByManager
            | Self::Unreachable
            | Self::OutcomeUnknown
            | Self::NoIdentityAccepted
            | Self::Expired
            | Self::ClockSkew => false,
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.label())
    }
}
