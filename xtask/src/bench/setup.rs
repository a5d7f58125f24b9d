//! Getting ready to measure: the release build (and the release re-run of this task), the tools
//! the comparisons need, and paths and permissions of what the bench makes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};

use crate::cargo;

/// Set when the debug xtask has built everything and re-runs itself in release.
const ALREADY_BUILT: &str = "XTASK_BENCH_ALREADY_BUILT";

// ---- Helpers ----------------------------------------------------------------------------------

pub(super) fn release_binary(name: &str) -> PathBuf {
    crate::target_dir()
        .join("release")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The folder and files an administrator would make: 0700 and 0600.
pub(super) fn make_private(folder: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(folder)? {
            std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Makes sure `openssl`, `curl`, `hyperfine` (which times items 1–3) and `strace` are there,
/// installing them with apt when not.
pub(super) fn ensure_tools() -> Result<()> {
    let missing: Vec<&str> = [
        ("openssl", "version"),
        ("curl", "--version"),
        ("hyperfine", "--version"),
        ("strace", "-V"),
    ]
    .into_iter()
    .filter(|(program, argument)| {
        Command::new(program)
            .arg(argument)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| !status.success())
            .unwrap_or(true)
    })
    .map(|(program, _)| program)
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("$ apt-get install -y {}", missing.join(" "));
    let installed = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    if !installed {
        let updated = Command::new("apt-get")
            .arg("update")
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        let installed = updated
            && Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .status()
                .map(|status| status.success())
                .unwrap_or(false);
        ensure!(
            installed || missing == ["strace"],
            "the bench needs {} (apt-get install failed; install them and run again)",
            missing.join(", ")
        );
    }
    Ok(())
}
/// Builds the binaries (and this task) in release. From a debug xtask, then re-runs the task as
/// the release xtask and returns true: the load generator (item 5) and the fleet simulation
/// (item 6) run in this process, so they are measured as release code, like the binaries.
pub(super) fn build_and_rerun_in_release(arguments: &[String]) -> Result<bool> {
    if std::env::var_os(ALREADY_BUILT).is_some() {
        return Ok(false);
    }
    // The bench itself is one of the emulator tasks (see xtask/Cargo.toml); the agent's
    // binaries have the TPM key protector where tpm2-tss can be had, as the packages do (item 7).
    let features = if crate::tpm::available() {
        "xtask/emulator,register_host/tpm,vmd/tpm,vmutil/tpm"
    } else {
        "xtask/emulator"
    };
    cargo(&[
        "build",
        "--quiet",
        "--release",
        "-p",
        "register_host",
        "-p",
        "vmd",
        "-p",
        "vmutil",
        "-p",
        "cm-emulator-bin",
        "-p",
        "xtask",
        "--features",
        features,
    ])?;
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    let release = release_binary("xtask");
    let status = Command::new(&release)
        .arg("bench")
        .args(arguments)
        .env(ALREADY_BUILT, "1")
        .status()
        .with_context(|| format!("running {}", release.display()))?;
    ensure!(status.success(), "the release bench failed ({status})");
    Ok(true)
}
