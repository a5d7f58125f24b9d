//! `cargo xtask ci`: what CI runs, and what the README gives as the test command.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::{cargo, project_root};

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
    windows_check()?;
    supply_chain()?;
    Ok(())
}

/// The packages that ship on Windows hosts (libraries and the three agent binaries; the emulator
/// too, as users may run it there).
const WINDOWS_PACKAGES: [&str; 10] = [
    "cert-loading",
    "keystore",
    "renewal-policy",
    "agent-config",
    "cm-client",
    "agent",
    "register_host",
    "vmd",
    "vmutil",
    "cm-emulator-bin",
];

/// The product also runs on Windows. First clippy (`-D warnings`) over the shipped packages for
/// `x86_64-pc-windows-gnu`, so that the `cfg(not(unix))` paths compile and lint clean; then, when
/// Wine is there, `cargo xtask windows` runs the Windows binaries against the emulator. `.ci/run`
/// installs what these need when it can; without it each step says SKIPPED and what is missing,
/// and never claims to have passed.
fn windows_check() -> Result<()> {
    let missing = crate::windows::missing_tools(false);
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: Windows cross-check and Wine run: missing {}",
            missing.join(" and ")
        );
        return Ok(());
    }
    let mut arguments = vec!["clippy", "--locked", "--target", crate::windows::TARGET];
    for package in WINDOWS_PACKAGES {
        arguments.extend(["--package", package]);
    }
    arguments.extend(["--", "-D", "warnings"]);
    cargo(&arguments)?;
    let missing = crate::windows::missing_tools(true);
    if !missing.is_empty() {
        eprintln!(
            "SKIPPED: Windows binaries under Wine: missing {}",
            missing.join(" and ")
        );
        return Ok(());
    }
    eprintln!("$ cargo xtask windows");
    crate::windows::run()
}

/// The cargo-deny version CI installs when none is present.
const CARGO_DENY_VERSION: &str = "0.20.2";
/// Installing cargo-deny from source takes 2–4 minutes on 2 cores; give up well before CI's limit.
const INSTALL_BUDGET: Duration = Duration::from_secs(20 * 60);
/// Where cargo-deny 0.20 looks for the default advisory database under `db-path`: the last
/// segment of its URL and a hash of it (src/advisories/helpers/db.rs, `url_to_db_path`).
const DATABASE_FOLDER: &str = "advisory-db-3157b0e258782691";

/// Advisories, licences, bans and sources (deny.toml) with cargo-deny, offline, against the
/// RustSec snapshot in `../shared/advisory-db`.
fn supply_chain() -> Result<()> {
    let root = project_root();
    let snapshot = root.join("../shared/advisory-db");
    if !snapshot.join("crates").is_dir() {
        bail!(
            "supply-chain check: the RustSec snapshot is missing at {} (expected shared/advisory-db beside the repository)",
            snapshot.display()
        );
    }
    ensure_cargo_deny()?;

    // cargo-deny reads a git checkout: copy the snapshot where deny.toml's db-path points and
    // date it by the snapshot's own date, so that its staleness limit applies to the snapshot.
    let database_root = root.join("target/advisory-db");
    let database = database_root.join(DATABASE_FOLDER);
    if database.exists() {
        std::fs::remove_dir_all(&database)
            .with_context(|| format!("removing {}", database.display()))?;
    }
    copy_tree(&snapshot, &database)?;
    std::fs::create_dir_all(database.join(".git"))?;
    let fetch_head = std::fs::File::create(database.join(".git/FETCH_HEAD"))?;
    fetch_head.set_modified(snapshot_date(&snapshot)?)?;

    // The dependency graph, resolved with the network cargo may use (crates.io); cargo-deny
    // itself then runs offline so it never tries to fetch the advisory database.
    let metadata = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--format-version", "1"])
        .current_dir(&root)
        .output()
        .context("running cargo metadata")?;
    if !metadata.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&metadata.stderr)
        );
    }
    let metadata_path = database_root.join("metadata.json");
    std::fs::write(&metadata_path, &metadata.stdout)?;
    let metadata_path = metadata_path.display().to_string();
    cargo(&[
        "deny",
        "--offline",
        "--metadata-path",
        &metadata_path,
        "check",
        "advisories",
        "bans",
        "licenses",
        "sources",
    ])
}

fn ensure_cargo_deny() -> Result<()> {
    let installed = Command::new(env!("CARGO"))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if installed {
        return Ok(());
    }
    eprintln!("$ cargo install cargo-deny --locked --version {CARGO_DENY_VERSION}");
    let mut child = Command::new(env!("CARGO"))
        .args([
            "install",
            "cargo-deny",
            "--locked",
            "--version",
            CARGO_DENY_VERSION,
        ])
        .spawn()
        .context("starting cargo install cargo-deny")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("cargo install cargo-deny failed ({status})");
            }
            return Ok(());
        }
        if started.elapsed() > INSTALL_BUDGET {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "cargo install cargo-deny took over {} minutes; stopped",
                INSTALL_BUDGET.as_secs() / 60
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The date in SNAPSHOT.txt ("... taken 2026-08-21, ..."), as midnight UTC.
fn snapshot_date(snapshot: &Path) -> Result<SystemTime> {
    let text = std::fs::read_to_string(snapshot.join("SNAPSHOT.txt"))
        .context("reading the snapshot's SNAPSHOT.txt")?;
    let date = text
        .split("taken ")
        .nth(1)
        .and_then(|rest| rest.get(..10))
        .context("SNAPSHOT.txt does not say when it was taken (\"taken YYYY-MM-DD\")")?;
    let midnight: der::DateTime = format!("{date}T00:00:00Z")
        .parse()
        .map_err(|error| anyhow::anyhow!("SNAPSHOT.txt: bad date {date:?}: {error}"))?;
    Ok(midnight.to_system_time())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
