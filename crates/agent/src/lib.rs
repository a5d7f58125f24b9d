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
//! - [`metrics::render`]: the Prometheus textfile (`METRICS_FILE`).
//!
//! # Example
//! Check a certificate folder as `vmutil -a vmd -d DIR checkcerts` does, with "now" chosen by the
//! caller (here 2026-06-01, when the committed test vectors are all valid):
//! ```
//! use std::time::{Duration, SystemTime};
//! # let testdata = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors");
//! let folder = testdata.join("good/p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256");
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000);
//! let report = agent::checkcerts::check_directory(&folder, now)?;
//! println!("{} expires {} ({} days left)", report.common_name, report.not_after, report.days_left);
//!
//! // A refusal maps to the exit code every binary uses (3: local input invalid).
//! let error = agent::checkcerts::check_directory(&testdata.join("missing"), now).unwrap_err();
//! assert_eq!(error.exit_status().code(), 3);
//! # Ok::<(), agent::AgentError>(())
//! ```
//!
//! # What this crate does not do
//! It does not parse command lines, and it never reads the clock for decisions: every operation
//! that judges expiry takes `now`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod checkcerts;
pub mod daemon;
mod error;
#[doc(hidden)]
pub mod fault;
mod fsutil;
pub mod hardening;
pub mod lock;
pub mod logging;
pub mod manager;
pub mod messages;
pub mod metrics;
pub mod paths;
mod protection;
pub use protection::protection_summary;
pub mod register;
pub mod rekey;
pub mod renewal;
pub mod secrets;
pub mod settings;
pub mod status;
pub mod terminal;

pub use agent_config::{DEFAULT_TPM_TCTI, KeyProtection, ProtectorChoice, parse_pcrs};
pub use cert_loading::Fingerprint;
pub use error::{AgentError, ExitStatus};
