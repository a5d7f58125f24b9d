//! Timing: alternating comparisons, whole-process wall times and medians.

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

/// Alternates `ours` and `reference` (one warm-up each, then `runs` each) and takes medians.
/// Both closures get the run index (0 is the warm-up) and return the time they measured.
pub(super) fn compare(
    runs: usize,
    mut ours: impl FnMut(usize) -> Result<Duration>,
    mut reference: impl FnMut(usize) -> Result<Duration>,
) -> Result<Comparison> {
    let mut our_times = Vec::with_capacity(runs);
    let mut reference_times = Vec::with_capacity(runs);
    for index in 0..=runs {
        let our_time = ours(index)?;
        let reference_time = reference(index)?;
        if index > 0 {
            our_times.push(our_time);
            reference_times.push(reference_time);
        }
    }
    let comparison = Comparison {
        ours: median_duration(our_times),
        reference: median_duration(reference_times),
        runs,
    };
    eprintln!(
        "   ours {} vs reference {} (medians of {})",
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

pub(super) fn median_duration(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    match times.len() {
        0 => Duration::ZERO,
        length if length % 2 == 1 => times[length / 2],
        length => (times[length / 2 - 1] + times[length / 2]) / 2,
    }
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
        let ms = Duration::from_millis;
        assert_eq!(median_duration(vec![ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(
            median_duration(vec![ms(4), ms(1), ms(2), ms(3)]),
            ms(2) + ms(1) / 2
        );
        assert_eq!(median_of(&[5, 1, 3]), 3.0);
        assert_eq!(median_of(&[1, 2]), 1.5);
    }
}
