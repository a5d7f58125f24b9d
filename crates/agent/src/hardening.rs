//! Process hardening applied by every binary at start: no core dumps, no same-user ptrace.
//!
//! The agent holds a decrypted private key, a passphrase and a registration token in memory.
//! On Linux, [`restrict_process`] calls `prctl(PR_SET_DUMPABLE, 0)` (through `rustix`'s safe
//! wrapper, so the crates keep `#![forbid(unsafe_code)]`): the kernel then writes no core dump of
//! the process (with the default `fs.suid_dumpable = 0`), other processes of the same user cannot
//! `ptrace` it, and its `/proc/<pid>/mem` and `environ` become owned by root. It also sets the
//! core-file size limit to zero, which covers `fs.suid_dumpable = 2`. Elsewhere it does nothing:
//! on other Unix systems use the service manager's limits (`LimitCORE=0` in
//! `contrib/vmd.service`), on Windows the service account's ACLs apply.

/// Makes the process non-dumpable and its core-file limit zero. Best effort: a failure is
/// returned for the caller to ignore or report, and never stops the agent.
///
/// # Errors
/// The OS error of `prctl` or `setrlimit`.
#[cfg(target_os = "linux")]
pub fn restrict_process() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    Ok(())
}

/// Does nothing on this platform (see the module documentation).
///
/// # Errors
/// Never.
#[cfg(not(target_os = "linux"))]
pub fn restrict_process() -> std::io::Result<()> {
    Ok(())
}

/// Whether the process is currently non-dumpable (always `false` off Linux).
pub fn is_restricted() -> bool {
    #[cfg(target_os = "linux")]
    {
        matches!(
            rustix::process::dumpable_behavior(),
            Ok(rustix::process::DumpableBehavior::NotDumpable)
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
