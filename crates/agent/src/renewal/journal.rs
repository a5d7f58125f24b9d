//! The journal of an update in flight: its serde-tagged [`Phase`] and the policy's view of it.

use renewal_policy::plan::JournalPhase;
use serde::{Deserialize, Serialize};

/// The state of an update in flight, as journaled. See the module documentation.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// About to stage the candidate. Nothing was sent.
    Staging,
    /// The candidate is staged; nothing was sent.
    Staged {
        /// The staged generation.
        generation: u64,
    },
    /// The renewal was (or is about to be) sent; outcome unknown until answered or probed.
    Pushing {
        /// The staged generation.
        generation: u64,
    },
    /// The manager accepts the generation; it is being made current.
    Activating {
        /// The generation.
        generation: u64,
        /// Adopted after a refusal of the current identity.
        adopted: bool,
    },
    /// The generation is current; a login with it confirms.
    Confirming {
        /// The generation.
        generation: u64,
        /// As above.
        adopted: bool,
    },
}

impl std::fmt::Display for Phase {
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

/// The journal of an update in flight.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    /// The state.
    #[serde(flatten)]
    pub phase: Phase,
    /// The candidate's fingerprint (the generation being pushed or adopted).
    pub candidate_fingerprint: String,
    /// The fingerprint current when the update started.
    pub previous_fingerprint: String,
    /// The folder the candidate came from (empty for an adoption).
    pub directory: String,
}

impl Journal {
    pub(crate) fn policy_phase(&self) -> Option<JournalPhase> {
        Some(match self.phase {
            Phase::Staging => JournalPhase::Staging {
                candidate: self.candidate_fingerprint.parse().ok()?,
            },
            Phase::Staged { generation } => JournalPhase::Staged { generation },
            Phase::Pushing { generation } => JournalPhase::Pushing { generation },
            Phase::Activating {
                generation,
                adopted,
            } => JournalPhase::Activating {
                generation,
                adopted,
            },
            Phase::Confirming {
                generation,
                adopted,
            } => JournalPhase::Confirming {
                generation,
                adopted,
            },
        })
    }
}
