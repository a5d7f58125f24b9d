//! Process supervision and what the bench reads about processes: `/proc/<pid>/status` fields,
//! context switches, `strace -c` summaries, log files it waits on.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Memory {
    pub(super) rss_kib: u64,
    pub(super) peak_kib: u64,
    pub(super) threads: u64,
    /// The anonymous part of the RSS: heap, stacks, data written to (`RssAnon`).
    pub(super) anonymous_kib: u64,
    /// The part that maps files: the binary's and libraries' pages in use (`RssFile`).
    pub(super) file_kib: u64,
}

impl Memory {
    pub(super) fn read(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(Self {
            rss_kib: proc_field(&status, "VmRSS:"),
            peak_kib: proc_field(&status, "VmHWM:"),
            threads: proc_field(&status, "Threads:"),
            anonymous_kib: proc_field(&status, "RssAnon:"),
            file_kib: proc_field(&status, "RssFile:"),
        })
    }

    pub(super) fn text(&self) -> String {
        format!(
            "{:.1} MiB ({:.1} MiB anonymous, {:.1} MiB file pages; peak {:.1} MiB, {} threads)",
            self.rss_kib as f64 / 1024.0,
            self.anonymous_kib as f64 / 1024.0,
            self.file_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0,
            self.threads
        )
    }
}

pub(super) use test_support::proc_status_field as proc_field;

/// Context switches of every thread of `pid`, voluntary and not.
pub(super) fn context_switches(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        total += proc_field(&status, "voluntary_ctxt_switches:")
            + proc_field(&status, "nonvoluntary_ctxt_switches:");
    }
    Ok(total)
}

/// How many threads of `pid` `tracer` traces, and how many threads `pid` has.
pub(super) fn traced_threads(pid: u32, tracer: u32) -> Result<(usize, usize)> {
    let mut traced = 0;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        threads += 1;
        if proc_field(&status, "TracerPid:") == u64::from(tracer) {
            traced += 1;
        }
    }
    Ok((traced, threads))
}

/// Waits until the process has had no context switch for a whole second (at most 20 s).
pub(super) fn settle(pid: u32) -> Result<()> {
    for _ in 0..20 {
        let before = context_switches(pid)?;
        std::thread::sleep(Duration::from_secs(1));
        if context_switches(pid)? == before {
            return Ok(());
        }
    }
    Ok(())
}

/// A process this task started; stopped with SIGTERM when dropped.
pub(super) struct Started {
    pub(super) child: Child,
    pub(super) name: &'static str,
}

impl Started {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .context("running kill")?;
        ensure!(status.success(), "kill {signal} {} failed", self.pid());
        Ok(())
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.signal("-TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                eprintln!("{} did not stop on SIGTERM; killing it", self.name);
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The per-system-call counts of an `strace -c` summary (without the total line).
pub(super) fn parse_strace(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
                return None;
            }
            let name = (*fields.last()?).to_string();
            let calls = fields[3].parse().ok()?;
            (name != "total").then_some((name, calls))
        })
        .collect()
}

pub(super) fn count_in_file(path: &Path, needle: &str) -> Result<usize> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.matches(needle).count()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

pub(super) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "last lines of {}:\n{}",
        path.display(),
        lines[lines.len().saturating_sub(8)..].join("\n")
    )
}

pub(super) fn wait_for(
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !done()? {
        ensure!(
            Instant::now() < deadline,
            "waited {} s for {what}",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_summaries_parse_into_calls_per_system_call() {
        let summary = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000006           3         2           futex
 40.00    0.000004           4         1         1 restart_syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000010           3         3         1 total
";
        assert_eq!(
            parse_strace(summary),
            vec![("futex".to_string(), 2), ("restart_syscall".to_string(), 1)]
        );
        assert!(parse_strace("").is_empty());
    }
}
