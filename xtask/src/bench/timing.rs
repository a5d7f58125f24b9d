//! Timing: comparisons by hyperfine, whole-process wall times and medians.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::markdown::{Row, verdict};

// ---- Timing ---------------------------------------------------------------------------------

pub(super) struct Comparison {
    pub(super) ours: Duration,
    pub(super) reference: Duration,
    pub(super) runs: usize,
}

impl Comparison {
    pub(super) fn row(
        &self,
        number: &'static str,
        what: &str,
        reference: &str,
        target: f64,
    ) -> Row {
        let ratio = self.ours.as_secs_f64() / self.reference.as_secs_f64();
        Row {
            number,
            what: what.to_string(),
            ours: milliseconds(self.ours),
            reference: format!("{} ({reference})", milliseconds(self.reference)),
            ratio: format!("{ratio:.2}"),
            target: format!("≤ {target:.1}"),
            verdict: verdict(ratio <= target),
        }
    }
}

/// One side of a comparison as hyperfine runs it: a shell command, and an untimed one run
/// before each of its runs (the warm-up included).
pub(super) struct Timed {
    pub(super) command: String,
    pub(super) prepare: Option<String>,
}

impl Timed {
    pub(super) fn new(command: String) -> Self {
        Timed {
            command,
            prepare: None,
        }
    }

    pub(super) fn prepared_by(mut self, prepare: String) -> Self {
        self.prepare = Some(prepare);
        self
    }
}

/// A shell command line from words, each quoted as the shell needs.
pub(super) fn shell<S: AsRef<str>>(words: &[S]) -> Result<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|word| {
            shlex::try_quote(word.as_ref())
                .map(|quoted| quoted.into_owned())
                .map_err(|error| anyhow::anyhow!("cannot quote {:?}: {error}", word.as_ref()))
        })
        .collect::<Result<_>>()?;
    Ok(quoted.join(" "))
}

/// Times `ours` and `reference` with hyperfine: one warm-up run of each, then `runs` of each;
/// the medians of its `--export-json`. hyperfine runs each command's runs in a block (it does
/// not alternate them) and subtracts the shell's start-up time it measured.
pub(super) fn compare(runs: usize, ours: Timed, reference: Timed) -> Result<Comparison> {
    let export = tempfile::Builder::new()
        .prefix("hyperfine-")
        .suffix(".json")
        .tempfile()?;
    let mut hyperfine = Command::new("hyperfine");
    hyperfine
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT")
        .stdin(Stdio::null())
        .args(["--style", "basic", "--warmup", "1", "--runs"])
        .arg(runs.to_string())
        .arg("--export-json")
        .arg(export.path());
    if ours.prepare.is_some() || reference.prepare.is_some() {
        // Given once per command, hyperfine pairs them in order.
        for side in [&ours, &reference] {
            hyperfine.args(["--prepare", side.prepare.as_deref().unwrap_or("true")]);
        }
    }
    hyperfine.arg(&ours.command).arg(&reference.command);
    let output = hyperfine.output().context("running hyperfine")?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        bail!(
            "hyperfine failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(export.path())?)?;
    let median = |index: usize| -> Result<Duration> {
        let seconds = results["results"][index]["median"]
            .as_f64()
            .with_context(|| format!("hyperfine's JSON has no median for command {index}"))?;
        Ok(Duration::from_secs_f64(seconds.max(0.0)))
    };
    let comparison = Comparison {
        ours: median(0)?,
        reference: median(1)?,
        runs,
    };
    eprintln!(
        "   ours {} vs reference {} (hyperfine medians of {})",
        milliseconds(comparison.ours),
        milliseconds(comparison.reference),
        comparison.runs
    );
    Ok(comparison)
}

/// Runs a command to completion and returns its wall time; fails unless it exits 0.
pub(super) fn time_command(command: &mut Command) -> Result<(Duration, Output)> {
    command
        .env_remove("EXTERNAL_CERT_DIR")
        .env_remove("CTE_AGENT_ROOT")
        .stdin(Stdio::null());
    let program = command.get_program().to_string_lossy().to_string();
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {program}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "{program} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((elapsed, output))
}

pub(super) fn median_of(values: &[usize]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match sorted.len() {
        0 => 0.0,
        length if length % 2 == 1 => sorted[length / 2] as f64,
        length => (sorted[length / 2 - 1] + sorted[length / 2]) as f64 / 2.0,
    }
}

pub(super) fn milliseconds(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median_of(&[5, 1, 3]), 3.0);
        assert_eq!(median_of(&[1, 2]), 1.5);
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(
            shell(&["openssl", "x509", "-in", "/tmp/a b/c'd.pem"]).unwrap(),
            r#"openssl x509 -in "/tmp/a b/c'd.pem""#
        );
    }
}
