//! `cargo xtask bench [--runs N] [--quick] [--write-docs]`: whole-process measurements side by
//! side with the tools users compare the agent to (the `openssl` and `curl` command lines), the
//! daemon's idle cost, the emulator's throughput and the fleet arithmetic of the stagger.
//!
//! Everything is measured in one run on this machine: the task builds the binaries in release,
//! re-runs itself as a release build (so the load generator and the fleet simulation are not
//! debug code), prepares its inputs in a temporary folder, and prints one table. hyperfine times
//! the side-by-side comparisons (one warm-up run of each command, then medians); xtask prepares
//! their inputs and writes the table. `--write-docs` rewrites the generated section of
//! `docs/performance.md`; without it nothing in the repository is written.
//!
//! One file per job: `setup.rs` (release build, tools), `ratios.rs` (items 1–3, side by side with
//! `openssl` and `curl`), `vmd.rs` (item 4), `process.rs` (process supervision, `/proc` and
//! `strace` parsing), `emulator.rs` (the emulator process and its admin API), `load.rs` (item 5,
//! the load generator), `fleet.rs` (item 6), `timing.rs` (comparisons through hyperfine, medians) and
//! `markdown.rs` (the table and `docs/performance.md`).

#[cfg(feature = "emulator")]
mod emulator;
#[cfg(feature = "emulator")]
mod fleet;
#[cfg(feature = "emulator")]
mod load;
#[cfg(feature = "emulator")]
mod markdown;
#[cfg(feature = "emulator")]
mod process;
#[cfg(feature = "emulator")]
mod ratios;
#[cfg(feature = "emulator")]
mod setup;
#[cfg(feature = "emulator")]
mod timing;
#[cfg(feature = "emulator")]
mod vmd;

use std::time::Duration;
#[cfg(feature = "emulator")]
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

#[cfg(feature = "emulator")]
use fleet::FLEET_HOSTS_TEXT;
#[cfg(feature = "emulator")]
use load::CONCURRENT_CLIENTS;

#[cfg(feature = "emulator")]
const DAY: Duration = Duration::from_secs(86_400);

/// How much to measure.
///
/// Parsed by the light xtask too (see `emulator_task` in main.rs), which only checks the command
/// line: hence the `dead_code` allowance without the `emulator` feature.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) struct Settings {
    runs: usize,
    quick: bool,
    write_docs: bool,
    idle: Duration,
    renewals: usize,
    load_clients_per_key_type: usize,
    load_rounds: usize,
    fleets: usize,
}

impl Settings {
    pub(crate) fn parse(arguments: &[String]) -> Result<Self> {
        let mut runs = None;
        let mut quick = false;
        let mut write_docs = false;
        let mut iterator = arguments.iter();
        while let Some(argument) = iterator.next() {
            match argument.as_str() {
                "--quick" => quick = true,
                "--write-docs" => write_docs = true,
                "--runs" => {
                    let value = iterator.next().context("--runs takes a number")?;
                    runs = Some(
                        value
                            .parse::<usize>()
                            .with_context(|| format!("--runs takes a number, not {value:?}"))?,
                    );
                }
                other => {
                    bail!("unknown bench option {other:?} (use --runs N, --quick, --write-docs)")
                }
            }
        }
        ensure!(
            !(quick && write_docs),
            "--write-docs needs a full run (drop --quick)"
        );
        let runs = runs.unwrap_or(if quick { 5 } else { 15 });
        ensure!(runs >= 1, "--runs must be at least 1");
        ensure!(
            quick || runs >= 10,
            "a full run quotes medians over at least 10 runs (use --quick for a smoke test)"
        );
        Ok(if quick {
            Self {
                runs,
                quick,
                write_docs,
                idle: Duration::from_secs(10),
                renewals: 10,
                load_clients_per_key_type: 64,
                load_rounds: 1,
                fleets: 5,
            }
        } else {
            Self {
                runs,
                quick,
                write_docs,
                idle: Duration::from_secs(60),
                renewals: 100,
                load_clients_per_key_type: 320,
                load_rounds: 3,
                fleets: 25,
            }
        })
    }
}

#[cfg(feature = "emulator")]
pub(crate) fn run(arguments: &[String]) -> Result<()> {
    let settings = Settings::parse(arguments)?;
    if setup::build_and_rerun_in_release(arguments)? {
        return Ok(());
    }
    setup::ensure_tools()?;
    let started = Instant::now();
    let machine = markdown::Machine::describe();
    let work = tempfile::Builder::new().prefix("cte-bench-").tempdir()?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!("== 1. checkcerts vs openssl pkey + openssl x509");
    for (label, vector) in ratios::CHECKCERTS_VECTORS {
        rows.push(ratios::checkcerts_row(
            &settings,
            work.path(),
            label,
            vector,
        )?);
    }

    let emulator = emulator::EmulatorProcess::start(&work.path().join("manager-state"))?;
    emulator.setup_test_cas()?;

    eprintln!("== 2. vmutil status vs openssl x509 -enddate");
    rows.push(ratios::status_row(&settings, work.path(), &emulator)?);

    eprintln!("== 3. register_host vs curl");
    for (label, vector, ca) in [
        (
            "RSA-3072",
            "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
            "ca-rsa",
        ),
        (
            "P-384",
            "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256",
            "ca-p384",
        ),
    ] {
        rows.push(ratios::register_row(
            &settings,
            work.path(),
            &emulator,
            label,
            vector,
            ca,
        )?);
    }

    eprintln!("== 7. the TPM key protector (swtpm) against the key file");
    match ratios::tpm_rows(&settings, work.path(), &emulator)? {
        Some(tpm_rows) => rows.extend(tpm_rows),
        None => notes.push(
            "Item 7 (the TPM key protector): SKIPPED, swtpm is not installed or the binaries have no TPM support."
                .to_owned(),
        ),
    }

    eprintln!(
        "== 4. vmd idle ({} s windows, {} renewals)",
        settings.idle.as_secs(),
        settings.renewals
    );
    let vmd = vmd::measure_vmd(&settings, work.path(), &emulator)?;
    rows.extend(vmd.rows(&settings));
    notes.extend(vmd.notes(&settings));
    emulator.stop();

    eprintln!(
        "== 5. emulator throughput, {CONCURRENT_CLIENTS} concurrent mTLS clients ({} clients per key type)",
        settings.load_clients_per_key_type
    );
    let load = load::measure_emulator_load(&settings, work.path())?;
    rows.extend(load.rows(&settings));
    notes.extend(load.notes());

    eprintln!(
        "== 6. fleet arithmetic ({} fleets of {FLEET_HOSTS_TEXT} hosts)",
        settings.fleets
    );
    let fleet = fleet::fleet_arithmetic(settings.fleets)?;
    rows.extend(fleet.rows());
    notes.extend(fleet.notes());

    let elapsed = started.elapsed();
    let section = markdown::render_section(&settings, &machine, &rows, &notes, elapsed);
    println!("{section}");
    if settings.write_docs {
        markdown::write_docs(&section)?;
        eprintln!("rewrote the results section of docs/performance.md");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_runs_cannot_rewrite_the_documentation() {
        let arguments = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(Settings::parse(&arguments(&["--quick", "--write-docs"])).is_err());
        assert!(Settings::parse(&arguments(&["--runs", "5"])).is_err());
        let full = Settings::parse(&arguments(&[])).expect("defaults");
        assert_eq!((full.runs, full.renewals), (15, 100));
        assert_eq!(full.idle, Duration::from_secs(60));
    }
}
