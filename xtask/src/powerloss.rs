//! `cargo xtask powerloss`: every binary's crash states under both persistence models (issue
//! 24), as a table: binary, model, operations recorded, crash states tried, violations, time.
//!
//! The explorer is `bins/vmd/tests/powerloss.rs` (its ignored test
//! `every_binary_under_both_models`; CI runs the fast subset in the same file). This task makes
//! sure strace is there (installing it with apt-get when it can), then runs that test and
//! passes on its table and exit code.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::project_root;

pub(crate) fn run(arguments: &[String]) -> Result<()> {
    if let Some(argument) = arguments.first() {
        bail!("unknown argument {argument:?}; usage: cargo xtask powerloss");
    }
    let has_strace = || {
        Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if !has_strace() {
        eprintln!("$ apt-get install -y strace");
        let _ = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "strace"])
            .status();
        if !has_strace() {
            bail!(
                "the power-loss explorer records with strace: install it (apt-get install strace) and run again"
            );
        }
    }
    let status = Command::new(env!("CARGO"))
        .current_dir(project_root())
        .args([
            "test",
            "-p",
            "vmd",
            "--test",
            "powerloss",
            "--",
            "--ignored",
            "--nocapture",
            "--exact",
            "every_binary_under_both_models",
        ])
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("the power-loss explorer found violations or failed (its output above)");
    }
    Ok(())
}
