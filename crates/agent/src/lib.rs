//! The agent's operations, combining the focused crates: what `register_host`, `vmd` and
//! `vmutil` run.
//!
//! This is the one library allowed to combine `cert-loading`, `keystore`, `cm-client`,
//! `renewal-policy` and `agent-config` (see docs/ARCHITECTURE.md); the binaries stay thin and
//! only parse arguments, call one function here and map [`AgentError`] to an [`ExitStatus`].
//!
//! # Main entry points
//! - [`checkcerts::check_directory`]: validate an external certificate directory locally.
//! - [`paths::AgentRoot`]: where everything lives under the agent root.
//! - [`logging::Logger`]: product-shaped log lines and records to upload.
//!
//! # What this crate does not do
//! It does not parse command lines, and it never reads the clock for decisions: every operation
//! that judges expiry takes `now`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checkcerts;
pub mod daemon;
mod error;
pub mod fault;
pub mod fsutil;
pub mod hardening;
pub mod logging;
pub mod manager;
pub mod paths;
pub mod register;
pub mod renewal;
pub mod status;

pub use error::{AgentError, ExitStatus};
