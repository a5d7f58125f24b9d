//! Power-loss crash states of the real binaries (issue 24), for tests.
//!
//! - [`trace`]: the recorder's parser, strace's output into the operations on one folder;
//! - [`model`]: the file system replayed operation by operation, what is durable at each
//!   point, and the crash states of two persistence models (ext4 `data=ordered`, the weakest
//!   POSIX allows), with the folder read and written as a [`model::Tree`].
//!
//! The explorer itself (reconstruct each state, recover as after a reboot, check the
//! invariants) is `bins/vmd/tests/powerloss.rs`. Linux only: the trace comes from strace.

#![cfg(target_os = "linux")]
#![forbid(unsafe_code)]

pub mod model;
pub mod trace;
