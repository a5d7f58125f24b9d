//! `cargo xtask ci`: what CI runs, and what the README gives as the test command.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

use crate::{cargo, project_root};

pub(crate) fn run() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    // `xtask/emulator`: lint and test the emulator tasks of xtask too (demo, bench, windows);
    // the TPM key protector wherever tpm2-tss can be had (its tests then run against swtpm).
    let features = if crate::tpm::available() {
        format!("xtask/emulator,{}", crate::tpm::FEATURES)
    } else {
        "xtask/emulator".to_owned()
    };
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--features",
        &features,
        "--",
        "-D",
        "warnings",
    ])?;
    cargo(&["test", "--workspace", "--locked", "--features", &features])?;
    examples_and_docs()?;
    prometheus_rules_check()?;
    windows_check()?;
    crate::package::check()?;
    supply_chain()?;
    Ok(())
}

/// The packages that ship on Windows hosts (libraries and the three agent binaries; the emulator
/// too, as users may run it there).
const WINDOWS_PACKAGES: [&str; 11] = [
    "cert-vocabulary",
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
    let status = crate::emulator_task("windows", &[])?;
    if !status.success() {
        bail!("cargo xtask windows failed ({status})");
    }
    Ok(())
}

/// The alerting rules in `contrib/prometheus` through `promtool` (Debian package `prometheus`):
/// `check rules` (syntax, PromQL, templates) and `test rules` (the unit test file: each alert
/// fires when it should and not before). Without promtool it says SKIPPED; the rules' shape and
/// the series they use are still checked by `bins/vmd/tests/metrics.rs`.
fn prometheus_rules_check() -> Result<()> {
    if Command::new("promtool").arg("--version").output().is_err() {
        eprintln!("SKIPPED: promtool not installed; contrib/prometheus rules were not checked");
        return Ok(());
    }
    let folder = project_root().join("contrib/prometheus");
    for arguments in [
        ["check", "rules", "cte-agent.rules.yml"],
        ["test", "rules", "cte-agent.rules.test.yml"],
    ] {
        eprintln!(
            "$ (cd contrib/prometheus && promtool {})",
            arguments.join(" ")
        );
        let status = Command::new("promtool")
            .args(arguments)
            .current_dir(&folder)
            .status()
            .context("running promtool")?;
        if !status.success() {
            bail!("promtool {} failed ({status})", arguments.join(" "));
        }
    }
    Ok(())
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
    midnight_utc(date).with_context(|| format!("SNAPSHOT.txt: bad date {date:?}"))
}

/// `YYYY-MM-DD` (1970 or later) as midnight UTC. By hand rather than with `der::DateTime`, so
/// that the light xtask build needs no date crate (and no proc-macro stack).
fn midnight_utc(date: &str) -> Result<SystemTime> {
    let bytes = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<u64> {
        let part = &date[range];
        if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
            bail!("not a number: {part:?}");
        }
        Ok(part.parse()?)
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        bail!("not YYYY-MM-DD");
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_lengths = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970 || !(1..=12).contains(&month) || day == 0 {
        bail!("out of range");
    }
    if day > month_lengths[(month - 1) as usize] {
        bail!("no such day in that month");
    }
    let leap_years_before = |year: u64| (year - 1) / 4 - (year - 1) / 100 + (year - 1) / 400;
    let days = (year - 1970) * 365 + leap_years_before(year) - leap_years_before(1970)
        + month_lengths[..(month - 1) as usize].iter().sum::<u64>()
        + (day - 1);
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400))
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

/// Each library crate's example program (they use committed test data, temporary folders and at
/// most 127.0.0.1, and finish in seconds), then the API docs with rustdoc warnings as errors.
const EXAMPLES: [(&str, &str); 8] = [
    ("cert-vocabulary", "vocabulary"),
    ("cert-loading", "load_vector"),
    ("keystore", "stage_and_activate"),
    ("renewal-policy", "timeline"),
    ("agent-config", "parse_agent_conf"),
    ("cm-client", "talk_to_emulator"),
    ("agent", "checkcerts"),
    ("cm-emulator", "admin_and_client"),
];

fn examples_and_docs() -> Result<()> {
    for (package, example) in EXAMPLES {
        cargo(&["run", "--locked", "--example", example, "-p", package])?;
    }
    let arguments = ["doc", "--no-deps", "--workspace", "--locked"];
    eprintln!(
        "$ RUSTDOCFLAGS=\"-D warnings\" cargo {}",
        arguments.join(" ")
    );
    let status = Command::new(env!("CARGO"))
        .args(arguments)
        .env("RUSTDOCFLAGS", "-D warnings")
        .current_dir(project_root())
        .status()
        .context("running cargo doc")?;
    if !status.success() {
        bail!("cargo doc failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_dates_are_midnight_utc() {
        let seconds = |date| {
            midnight_utc(date)
                .expect(date)
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs()
        };
        assert_eq!(seconds("1970-01-01"), 0);
        assert_eq!(seconds("2000-02-29"), 951_782_400);
        assert_eq!(seconds("2024-12-31"), 1_735_603_200);
        assert_eq!(seconds("2026-08-21"), 1_787_270_400);
        for bad in [
            "2026-8-21",
            "2026-02-29",
            "2026-13-01",
            "1969-12-31",
            "2026-08-2x",
            "taken",
        ] {
            assert!(midnight_utc(bad).is_err(), "{bad}");
        }
    }
}
