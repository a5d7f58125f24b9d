//! `cargo xtask fuzz [--seconds N] [--sanitizer none|address] [TARGET...]`: runs each
//! cargo-fuzz target of `fuzz/` (libFuzzer) for N seconds (default 60) and prints how long each
//! ran, how many inputs it executed and what it found.
//!
//! libFuzzer needs nightly compiler flags. On a stable toolchain the task sets
//! `RUSTC_BOOTSTRAP=1`, which lets stable rustc accept them (the project does not need nightly
//! for anything else). Without cargo-fuzz it says how to install it and runs the stable smoke
//! variant instead (`cargo test -p agent --test fuzz_smoke`, what CI runs). A target that finds
//! a failing input leaves it in `fuzz/artifacts/<target>/`; once fixed, copy it to
//! `fuzz/regressions/<target>/`, where the smoke test replays it on every CI run.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::project_root;

const TARGETS: [&str; 4] = [
    "certificate_loading",
    "agent_conf",
    "silent_file",
    "manager_response",
];

struct Finding {
    target: String,
    seconds: f64,
    executions: u64,
    new_units: u64,
    result: String,
}

pub(crate) fn run(arguments: &[String]) -> Result<()> {
    let mut seconds: u64 = 60;
    let mut sanitizer = "none".to_string();
    let mut targets = Vec::new();
    let mut arguments = arguments.iter();
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--seconds" => {
                seconds = arguments
                    .next()
                    .context("--seconds needs a number")?
                    .parse()
                    .context("--seconds needs a whole number")?;
            }
            "--sanitizer" => {
                sanitizer = arguments
                    .next()
                    .context("--sanitizer needs a value")?
                    .clone();
            }
            target if TARGETS.contains(&target) => targets.push(target.to_string()),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask fuzz [--seconds N] [--sanitizer none|address] [{}]",
                TARGETS.join("|")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|target| target.to_string()).collect();
    }
    let fuzz_folder = project_root().join("fuzz");
    let has_cargo_fuzz = Command::new(env!("CARGO"))
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !has_cargo_fuzz {
        eprintln!(
            "cargo-fuzz is not installed (install it with: cargo install cargo-fuzz --locked).\nRunning the stable smoke variant instead: the same harnesses over the seed corpora and deterministic mutations."
        );
        return crate::cargo(&[
            "test",
            "--package",
            "agent",
            "--test",
            "fuzz_smoke",
            "--",
            "--nocapture",
        ]);
    }
    let nightly = Command::new("rustc")
        .arg("--version")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("nightly"));
    let mut findings = Vec::new();
    for target in &targets {
        let corpus = fuzz_folder.join("corpus").join(target);
        eprintln!("$ cargo fuzz run -s {sanitizer} -O {target} (for {seconds} s)");
        let started = Instant::now();
        let mut command = Command::new(env!("CARGO"));
        command
            .current_dir(&fuzz_folder)
            .args(["fuzz", "run", "-s", &sanitizer, "-O", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=60",
                // scrypt parameters are bounded at 1 GiB of memory (cert-loading).
                "-rss_limit_mb=2560",
                "-print_final_stats=1",
            ]);
        if !nightly {
            command.env("RUSTC_BOOTSTRAP", "1");
        }
        let output = command
            .output()
            .with_context(|| format!("running cargo fuzz for {target}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let stat = |name: &str| {
            log.lines()
                .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let result = if output.status.success() {
            "no failure".to_string()
        } else {
            let artifact = log
                .lines()
                .find_map(|line| line.split("Test unit written to ").nth(1))
                .unwrap_or("no artifact (build failure? see the output above)");
            let panic = log
                .lines()
                .find(|line| line.contains("panicked at") || line.contains("ERROR: libFuzzer"))
                .unwrap_or_default();
            if !log.contains("Test unit written to") {
                eprintln!("{log}");
            }
            format!("FAILED: {panic} -> {artifact}")
        };
        findings.push(Finding {
            target: target.clone(),
            seconds: started.elapsed().as_secs_f64(),
            executions: stat("number_of_executed_units"),
            new_units: stat("new_units_added"),
            result,
        });
    }
    eprintln!(
        "\n{:<20} {:>8} {:>12} {:>10} {:>10}  result",
        "target", "seconds", "executions", "exec/s", "new units"
    );
    for finding in &findings {
        eprintln!(
            "{:<20} {:>8.0} {:>12} {:>10.0} {:>10}  {}",
            finding.target,
            finding.seconds,
            finding.executions,
            finding.executions as f64 / finding.seconds.max(1.0),
            finding.new_units,
            finding.result
        );
    }
    let failed = findings
        .iter()
        .filter(|finding| finding.result != "no failure")
        .count();
    if failed > 0 {
        bail!("{failed} fuzz target(s) found a failing input");
    }
    Ok(())
}
