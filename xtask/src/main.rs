//! Project tasks: `cargo xtask ci`, `cargo xtask demo`, `cargo xtask fixtures`, `cargo xtask bench`, `cargo xtask fuzz`,
//! `cargo xtask windows`, `cargo xtask man`, `cargo xtask package`, `cargo xtask powerloss`.
//!
//! Two builds of one binary. The `cargo xtask` alias builds it without features: `--help`, `ci`'s
//! own steps (fmt, clippy, tests, cargo-deny), `fuzz` and `fixtures` need nothing of the emulator's
//! server stack. The tasks that start the emulator (`demo`, `bench`, `windows`) live behind the
//! `emulator` feature; the light build hands them to `cargo run -p xtask --features emulator`
//! (see [`emulator_task`]), which compiles that stack the first time it is needed. `man` (the man
//! pages and completions from the binaries' clap definitions, which come with the agent) is the
//! same with the `docs` feature.

mod bench;
mod ci;
mod demo;
mod fuzz;
#[cfg(any(test, feature = "docs"))]
mod manpages;
mod package;
mod powerloss;
mod tidy;
mod tpm;
mod windows;

use anyhow::{Context, Result, bail};

fn main() {
    if let Err(error) = run() {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut arguments = std::env::args().skip(1);
    let task = arguments.next().unwrap_or_default();
    let rest: Vec<String> = arguments.collect();
    match task.as_str() {
        "ci" => ci::run(),
        "fuzz" => fuzz::run(&rest),
        "powerloss" => powerloss::run(&rest),
        "demo" | "bench" | "windows" => run_emulator_task(&task, &rest),
        "man" => run_docs_task(&rest),
        "package" => package::run(&rest),
        "package-installed" => run_emulator_task(&task, &rest),
        "fixtures" => {
            let script = project_root().join("testdata/regenerate.sh");
            let status = std::process::Command::new("bash")
                .arg(&script)
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !status.success() {
                bail!("{} failed", script.display());
            }
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n  ci        format check, clippy (-D warnings), all tests, the packages and their checks, cargo-deny\n  demo      the whole feature against the embedded manager emulator [--keep]\n  fixtures  regenerate the OpenSSL test vectors in testdata/\n  fuzz      run each cargo-fuzz target of fuzz/ [--seconds N] [--sanitizer none|address] [TARGET...]\n  bench     whole-process measurements vs openssl and curl, vmd idle cost, emulator throughput, fleet peak [--runs N] [--quick] [--write-docs]\n  windows   the Windows builds of register_host, vmutil and vmd under Wine against the emulator\n  man       regenerate the man pages (contrib/man) and shell completions (contrib/completions) from the clap definitions\n  package   the .deb and .rpm of the agent (cte-agent) and of the emulator, in target/debian and target/generate-rpm [--check: and ci's package checks]\n  powerloss every binary's power-loss crash states under ext4 data=ordered and the weakest POSIX model, recovered and checked; prints the table"
            );
            if task.is_empty() || task == "help" || task == "--help" {
                Ok(())
            } else {
                bail!("unknown task {task:?}")
            }
        }
    }
}

/// The tasks that start the emulator, in the build that has them.
#[cfg(feature = "emulator")]
fn run_emulator_task(task: &str, rest: &[String]) -> Result<()> {
    match task {
        "demo" => demo::run(rest),
        "bench" => bench::run(rest),
        "windows" => windows::run(),
        "package-installed" => package::run_installed(rest),
        _ => bail!("{task:?} is not an emulator task"),
    }
}

/// The tasks that start the emulator, from the light build: the emulator build runs them, and
/// its exit code is this process's (it has printed its own error).
#[cfg(not(feature = "emulator"))]
fn run_emulator_task(task: &str, rest: &[String]) -> Result<()> {
    // Refuse a bad command line before building anything.
    match task {
        "demo" => {
            demo::Options::parse(rest)?;
        }
        "bench" => {
            bench::Settings::parse(rest)?;
        }
        _ => {}
    }
    let status = emulator_task(task, rest)?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// `cargo xtask man`, in the build that has the clap definitions.
#[cfg(feature = "docs")]
fn run_docs_task(rest: &[String]) -> Result<()> {
    manpages::run(rest)
}

/// `cargo xtask man` from a build without the `docs` feature: that build runs it.
#[cfg(not(feature = "docs"))]
fn run_docs_task(rest: &[String]) -> Result<()> {
    let status = feature_task("docs", "man", rest)?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// Runs `cargo xtask TASK ARGUMENTS...` as the build with the `emulator` feature (built first if
/// needed; as quiet as the `cargo xtask` alias). Used for `demo`, `bench` and `windows`.
pub(crate) fn emulator_task(task: &str, arguments: &[String]) -> Result<std::process::ExitStatus> {
    feature_task("emulator", task, arguments)
}

/// Runs `cargo xtask TASK ARGUMENTS...` as the build with `feature`.
pub(crate) fn feature_task(
    feature: &str,
    task: &str,
    arguments: &[String],
) -> Result<std::process::ExitStatus> {
    std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--features",
            feature,
            "--",
            task,
        ])
        .args(arguments)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("running cargo run -p xtask --features {feature} -- {task}"))
}

/// Cargo's target folder (`CARGO_TARGET_DIR` when set, else `target/` in the workspace).
pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// The workspace root.
pub(crate) fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command in the workspace root, failing on a non-zero exit.
pub(crate) fn cargo(arguments: &[&str]) -> Result<()> {
    eprintln!("$ cargo {}", arguments.join(" "));
    let status = std::process::Command::new(env!("CARGO"))
        .args(arguments)
        .current_dir(project_root())
        .status()
        .with_context(|| format!("running cargo {}", arguments.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", arguments.join(" "));
    }
    Ok(())
}
