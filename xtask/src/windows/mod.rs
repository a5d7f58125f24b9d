//! `cargo xtask windows`: the Windows builds of `register_host`, `vmutil` and `vmd`, run for real
//! under Wine against the emulator on 127.0.0.1, with the product's Windows spellings
//! (`register_host.exe HOST -token=T -extcertdir=c:\temp\cert_files`).
//!
//! What this proves: the `cfg(not(unix))` code paths build, start, parse Windows paths, write the
//! pem store and `agent.conf` through the Win32 API, register, renew and refuse as on Linux. What
//! it does not: Wine keeps files on the Linux file system, so NTFS semantics (ACLs, rename over an
//! open file, power loss) are not exercised; that needs a Windows host.
//!
//! Needs the rustup target `x86_64-pc-windows-gnu`, the MinGW-w64 gcc (ring's C parts and the
//! Wine shim below) and `wine`. `cargo xtask ci` runs this task when all three are present and
//! says SKIPPED with what is missing otherwise.
//!
//! Wine 8 (Debian 12) lacks `bcryptprimitives.dll`, from which Rust's standard library takes
//! random numbers on Windows; `xtask/windows/bcryptprimitives.c` is a test-only stand-in placed
//! next to the .exe files, never shipped.

use std::process::Command;

/// The Windows target the product is built for here.
pub(crate) const TARGET: &str = "x86_64-pc-windows-gnu";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

/// What is missing to run this task (empty when it can run).
pub(crate) fn missing_tools(with_wine: bool) -> Vec<String> {
    let mut missing = Vec::new();
    let target_installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(TARGET));
    if !target_installed {
        missing.push(format!("the rustup target {TARGET}"));
    }
    if !runs(MINGW_GCC, "--version") {
        missing.push(format!(
            "{MINGW_GCC} (apt-get install gcc-mingw-w64-x86-64)"
        ));
    }
    if with_wine && !runs("wine", "--version") {
        missing.push("wine (apt-get install wine64)".to_string());
    }
    missing
}

fn runs(program: &str, argument: &str) -> bool {
    Command::new(program)
        .arg(argument)
        .output()
        .is_ok_and(|output| output.status.success())
}

#[cfg(feature = "emulator")]
mod wine;
#[cfg(feature = "emulator")]
pub(crate) use wine::run;
