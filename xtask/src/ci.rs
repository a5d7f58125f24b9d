//! `cargo xtask ci`: what CI runs, and what the README gives as the test command.

use anyhow::Result;

use crate::cargo;

pub(crate) fn run() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked"])?;
    Ok(())
}
