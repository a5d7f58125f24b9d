//! Test-only crash points for the renewal journal tests.
//!
//! Compiled in only with the `fault-injection` feature, which only the integration tests of the
//! binaries enable (through a dev-dependency); release builds of the binaries never have it, and
//! [`crash_point`] is then an empty function.

/// The environment variable naming the crash point to die at.
pub const CRASH_AT_VARIABLE: &str = "CTE_FAULT_CRASH_AT";

/// With the `fault-injection` feature: if `CTE_FAULT_CRASH_AT` names `point`, the process kills
/// itself with SIGKILL (no destructors, no flush), as a power loss or `kill -9` would.
#[cfg(feature = "fault-injection")]
pub fn crash_point(point: &str) {
    if std::env::var(CRASH_AT_VARIABLE).as_deref() == Ok(point) {
        #[cfg(unix)]
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
        std::process::abort();
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_point: &str) {}
