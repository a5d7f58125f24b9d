//! Item 4 of the bench: the daemon's resident memory and idle wakeups, after start and after
//! renewals it did itself.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use test_pki::{CertificateAuthority, ClientCertificateRequest, IssuedCertificate, KeyType};

use super::emulator::EmulatorProcess;
use super::markdown::{Row, verdict};
use super::process::{
    Memory, Started, context_switches, count_in_file, log_tail, parse_strace, settle,
    traced_threads, wait_for,
};
use super::ratios::register_host;
use super::setup::{make_private, release_binary};
use super::{DAY, Settings};

/// Test-only passphrase for the certificate sets this task makes.
const PASSPHRASE: &str = "bench-only-passphrase";
const HOUR: Duration = Duration::from_secs(3_600);

// ---- Item 4 ---------------------------------------------------------------------------------

pub(super) struct VmdNumbers {
    pub(super) after_start: Memory,
    pub(super) after_renewals: Memory,
    pub(super) renewals: usize,
    pub(super) renewal_seconds: f64,
    pub(super) idle_switches_after_start: u64,
    pub(super) idle_switches_after_renewals: u64,
    /// What `strace -c` counted in the second idle window, or why it could not.
    pub(super) strace: Result<StraceCounts, String>,
}

#[derive(Debug)]
pub(super) struct StraceCounts {
    pub(super) attached_threads: usize,
    pub(super) threads: usize,
    pub(super) calls: Vec<(String, u64)>,
}

impl VmdNumbers {
    pub(super) fn rows(&self, settings: &Settings) -> Vec<Row> {
        // Issue 21: at most 6 MiB, after start and after the renewals.
        let limit_kib = 6 * 1024;
        let idle = settings.idle.as_secs();
        let syscalls = self
            .strace
            .as_ref()
            .ok()
            .map(|counts| counts.calls.iter().map(|(_, count)| count).sum::<u64>());
        let syscall_text = match &self.strace {
            Ok(counts) => format!(
                "{} system calls{} (strace attached to {} of {} threads)",
                syscalls.unwrap_or(0),
                if counts.calls.is_empty() {
                    String::new()
                } else {
                    format!(
                        ": {}",
                        counts
                            .calls
                            .iter()
                            .map(|(name, count)| format!("{name} {count}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                counts.attached_threads,
                counts.threads
            ),
            Err(problem) => format!("system calls not measured ({problem})"),
        };
        vec![
            Row {
                number: "4",
                what: "`vmd` resident memory after start (VmRSS; peak VmHWM)".to_string(),
                ours: self.after_start.text(),
                reference: "—".to_string(),
                ratio: "—".to_string(),
                target: "≤ 6 MiB".to_string(),
                verdict: verdict(self.after_start.rss_kib <= limit_kib),
            },
            Row {
                number: "4",
                what: format!("`vmd` resident memory after {} renewals", self.renewals),
                ours: self.after_renewals.text(),
                reference: "—".to_string(),
                ratio: "—".to_string(),
                target: "≤ 6 MiB".to_string(),
                verdict: verdict(self.after_renewals.rss_kib <= limit_kib),
            },
            Row {
                number: "4",
                what: format!(
                    "`vmd` wakeups in {idle} s idle after start (context switches, all threads)"
                ),
                ours: self.idle_switches_after_start.to_string(),
                reference: "—".to_string(),
                ratio: "—".to_string(),
                target: "0".to_string(),
                verdict: verdict(self.idle_switches_after_start == 0),
            },
            Row {
                number: "4",
                what: format!(
                    "`vmd` wakeups in {idle} s idle after the renewals (`strace -c -f -p`; context switches)"
                ),
                ours: format!(
                    "{syscall_text}; {} context switches",
                    self.idle_switches_after_renewals
                ),
                reference: "—".to_string(),
                ratio: "—".to_string(),
                target: "0".to_string(),
                verdict: verdict(
                    self.idle_switches_after_renewals == 0
                        && syscalls.is_none_or(|calls| calls == 0),
                ),
            },
        ]
    }

    pub(super) fn notes(&self, settings: &Settings) -> Vec<String> {
        vec![
            format!(
                "Item 4: `vmd --agent-root` registered with a P-384 certificate valid 300 days: the next \
                 renewal check is months away and the next heartbeat {} minutes away (the default \
                 `STATUS_INTERVAL_MINUTES=60`), so an idle window of {} s should see no wakeup. Wakeups \
                 are the change in `voluntary_ctxt_switches + nonvoluntary_ctxt_switches` summed over \
                 `/proc/<pid>/task/*/status` (the first window has nothing attached); the second window \
                 also runs `strace -c -f -p <pid>`.",
                60,
                settings.idle.as_secs()
            ),
            format!(
                "Item 4: the {} renewals were done by the daemon itself: for each, a new same-CN P-384 \
                 set with a later expiry was written into `EXTERNAL_CERT_DIR` and the daemon sent \
                 SIGHUP; the task waited for `certificate renewed` in `vmd.log` ({:.0} ms per renewal on \
                 average, manager round trips included). To make the daemon's scheduled check due, \
                 `RENEW_DAYS_BEFORE_EXPIRY` was set to 400 in agent.conf during the loop and restored to \
                 60 afterwards (SIGHUP again; the daemon logged that renewal is not due).",
                self.renewals,
                self.renewal_seconds * 1000.0 / self.renewals.max(1) as f64
            ),
        ]
    }
}

/// The release `vmd`, or, with `XTASK_BENCH_VMD_UNDER="valgrind --tool=dhat
/// --dhat-out-file=..."`, the release `vmd` under that heap profiler (the memory rows then
/// describe the profiler, not the daemon).
fn vmd_command() -> Command {
    let under = std::env::var("XTASK_BENCH_VMD_UNDER").unwrap_or_default();
    let mut under = under.split_whitespace();
    match under.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(under).arg(release_binary("vmd"));
            command
        }
        None => Command::new(release_binary("vmd")),
    }
}

pub(super) fn measure_vmd(
    settings: &Settings,
    work: &Path,
    emulator: &EmulatorProcess,
) -> Result<VmdNumbers> {
    let ca = test_support::test_ca("ca-p384")?;
    let common_name = "bench-vmd.example";
    let folder = work.join("vmd-set");
    std::fs::create_dir_all(&folder)?;
    make_private(&folder)?;
    let now = SystemTime::now();
    issue_p384(&ca, common_name, now + 300 * DAY)?.write_directory(&folder, PASSPHRASE)?;
    let root = work.join("vmd-agent");
    let token = emulator.create_token("ca-p384")?;
    register_host(emulator, &root, &folder, &token, "bench-vmd")?;
    let log = root.join("vmd/log/vorvmd_root.log");
    let conf = root.join("vmd/etc/agent.conf");

    let daemon = Started {
        child: vmd_command()
            .arg("--agent-root")
            .arg(&root)
            .env_remove("EXTERNAL_CERT_DIR")
            .env_remove("CTE_AGENT_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting vmd")?,
        name: "vmd",
    };
    let pid = daemon.pid();
    wait_for(Duration::from_secs(30), "vmd's first check", || {
        Ok(count_in_file(&log, "due yet")? >= 1)
    })?;
    settle(pid)?;
    let after_start = Memory::read(pid)?;
    let before = context_switches(pid)?;
    std::thread::sleep(settings.idle);
    let idle_switches_after_start = context_switches(pid)? - before;
    eprintln!(
        "   after start: {}; {idle_switches_after_start} context switches while idle",
        after_start.text()
    );

    let original_conf = std::fs::read_to_string(&conf)?;
    ensure!(
        original_conf.contains("RENEW_DAYS_BEFORE_EXPIRY=60"),
        "agent.conf does not carry RENEW_DAYS_BEFORE_EXPIRY=60"
    );
    std::fs::write(
        &conf,
        original_conf.replace(
            "RENEW_DAYS_BEFORE_EXPIRY=60",
            "RENEW_DAYS_BEFORE_EXPIRY=400",
        ),
    )?;
    let renewals_started = Instant::now();
    for renewal in 1..=settings.renewals {
        let not_after = now + 300 * DAY + HOUR * u32::try_from(renewal)?;
        issue_p384(&ca, common_name, not_after)?.write_directory(&folder, PASSPHRASE)?;
        daemon.signal("-HUP")?;
        wait_for(
            Duration::from_secs(60),
            &format!("renewal {renewal} in vmd.log"),
            || Ok(count_in_file(&log, "certificate renewed")? >= renewal),
        )
        .with_context(|| log_tail(&log))?;
    }
    let renewal_seconds = renewals_started.elapsed().as_secs_f64();
    let not_due_before = count_in_file(&log, "due yet")?;
    std::fs::write(&conf, &original_conf)?;
    daemon.signal("-HUP")?;
    wait_for(
        Duration::from_secs(30),
        "the check after restoring agent.conf",
        || Ok(count_in_file(&log, "due yet")? > not_due_before),
    )
    .with_context(|| log_tail(&log))?;
    settle(pid)?;
    let after_renewals = Memory::read(pid)?;

    let trace_file = work.join("vmd-strace.txt");
    let trace_messages = work.join("vmd-strace-messages.txt");
    let tracer = Command::new("strace")
        .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
        .arg(&trace_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&trace_messages)?)
        .spawn()
        .map(|child| Started {
            child,
            name: "strace",
        });
    // Let strace attach to every thread before counting, then see that it did.
    std::thread::sleep(Duration::from_secs(1));
    let traced = match &tracer {
        Ok(tracer) => traced_threads(pid, tracer.pid())?,
        Err(_) => (0, 0),
    };
    let before = context_switches(pid)?;
    std::thread::sleep(settings.idle);
    let idle_switches_after_renewals = context_switches(pid)? - before;
    let strace = match tracer {
        Ok(mut tracer) => {
            tracer.signal("-INT")?;
            tracer.child.wait()?;
            let messages = std::fs::read_to_string(&trace_messages).unwrap_or_default();
            let (attached, threads) = traced;
            if attached == 0 {
                Err(format!(
                    "strace did not attach: {}",
                    messages.lines().next().unwrap_or("no message")
                ))
            } else {
                Ok(StraceCounts {
                    attached_threads: attached,
                    threads,
                    calls: parse_strace(&std::fs::read_to_string(&trace_file).unwrap_or_default()),
                })
            }
        }
        Err(error) => Err(format!("strace: {error}")),
    };
    eprintln!(
        "   after {} renewals: {}; {idle_switches_after_renewals} context switches while idle; strace: {strace:?}",
        settings.renewals,
        after_renewals.text()
    );
    drop(daemon);
    Ok(VmdNumbers {
        after_start,
        after_renewals,
        renewals: settings.renewals,
        renewal_seconds,
        idle_switches_after_start,
        idle_switches_after_renewals,
        strace,
    })
}

pub(super) fn issue_p384(
    ca: &CertificateAuthority,
    common_name: &str,
    not_after: SystemTime,
) -> Result<IssuedCertificate> {
    Ok(ca.issue(
        &ClientCertificateRequest::new(common_name)
            .key_type(KeyType::P384)
            .validity(SystemTime::now() - DAY, not_after),
    )?)
}
