//! The agent's TPM key protector needs tpm2-tss's development files to build (Linux; Debian
//! `libtss2-dev`). CI and the packages build it whenever they can: this finds out, installing
//! the package with apt-get once when it is missing, and says SKIPPED when it cannot.

use std::process::{Command, Stdio};

/// The cargo features that turn the TPM key protector on in every package that has it.
pub(crate) const FEATURES: &str = "keystore/tpm,agent/tpm,register_host/tpm,vmd/tpm,vmutil/tpm";

fn buildable() -> bool {
    cfg!(target_os = "linux")
        && Command::new("pkg-config")
            .args(["--exists", "tss2-esys"])
            .status()
            .is_ok_and(|status| status.success())
}

/// Whether the TPM support can be built here (after trying to install tpm2-tss and swtpm).
pub(crate) fn available() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    if buildable() {
        return true;
    }
    eprintln!("$ apt-get install -y libtss2-dev pkg-config swtpm swtpm-tools");
    let _ = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "libtss2-dev",
            "pkg-config",
            "swtpm",
            "swtpm-tools",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status();
    let built = buildable();
    if !built {
        eprintln!(
            "SKIPPED: the TPM key protector (tpm2-tss's development files are missing: apt-get install libtss2-dev)"
        );
    }
    built
}
