//! The journal of an update in flight is the plan's own type, stored as JSON:
//! [`renewal_policy::plan::Journal`] with its [`renewal_policy::plan::JournalPhase`].

pub use renewal_policy::plan::{Journal, JournalPhase};
