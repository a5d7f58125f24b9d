//! The `vmd` daemon: schedule, heartbeat, signals and the pid file.
//!
//! The loop sleeps until the next deadline (the renewal check or the heartbeat, whichever comes
//! first) on a channel that the signal thread writes to, so it wakes only for work or a signal:
//! no polling. SIGHUP rereads agent.conf and checks again now (so a changed `EXTERNAL_CERT_DIR`
//! takes effect); SIGTERM and SIGINT stop it cleanly. The identity is read from the pem store for
//! every connection, so a renewal (by this daemon or by `vmutil ... updatecerts`) takes effect
//! from the next connection on: this is the "VMD restarted" step of the product document, done
//! in-process. Signals are Unix-only; on Windows the daemon runs the same loop and stops with the
//! service (documented in docs/operations.md). After every check and heartbeat the metrics file
//! (`METRICS_FILE`) is rewritten ([`crate::metrics`]).
//!
//! Deadlines are kept on the monotonic clock (`Deadline`): a wall clock stepped back (NTP
//! correcting a clock that was ahead) never stretches a wait, and no wait is longer than the
//! heartbeat interval. The wall clock is read afresh at each wake and given to the check as
//! "now"; a renewal check also runs when the wall clock has passed the time the policy named
//! (a clock stepped forward).

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::AgentError;
use crate::lock::DaemonLock;
use crate::logging::{Logger, Severity};
use crate::manager::Connector;
use crate::messages::Message;
use crate::paths::AgentRoot;
use crate::renewal::{self, CheckRequest, Trigger};
use crate::settings::Agent;
use renewal_policy::plan::{CheckEnd, HeartbeatEnd, Wait, after_check, after_heartbeat};

/// What woke the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// Windows has no SIGHUP or SIGTERM: nothing sends these there (the service manager stops the
// process), so the variants are only constructed on Unix.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) enum Wake {
    /// SIGHUP: reread agent.conf, check now.
    Reload,
    /// SIGTERM or SIGINT: stop.
    Stop,
}

/// Runs the daemon until a stop signal. Reads the clock for its schedule (the one place that
/// does: the policy decides with the `now` passed to it).
///
/// # Errors
/// When the agent is not registered or its files are unusable at start.
pub fn run(root: &AgentRoot, logger: &Logger, connector: &dyn Connector) -> Result<(), AgentError> {
    let settings = crate::settings::load_settings(root)?;
    // One daemon per agent root: the pid file is written under its lock, held until we stop.
    let _daemon_lock = DaemonLock::acquire(root)?;
    root.open_store_protected(&settings.key_protection)?
        .verify()?;
    let (sender, receiver) = mpsc::channel();
    install_signals(sender)?;
    logger.message(
        Severity::Info,
        &Message::DaemonStarted {
            client_id: settings.client_id.clone(),
            url: settings.url.clone(),
        },
    );
    crate::logging::check_own_folders(root, logger);
    let mut next_check = Deadline::now();
    let mut next_heartbeat = Deadline::now();
    let mut consecutive_failures = 0;
    let mut heartbeat_interval =
        Duration::from_secs(u64::from(agent_config::DEFAULT_STATUS_MINUTES) * 60);
    let mut trigger = Trigger::Scheduled;
    // Every wait below is the policy's: the daemon holds no schedule of its own.
    let policy = crate::settings::policy_from(&settings);
    loop {
        let now = SystemTime::now();
        if next_check.reached(now) {
            let request = CheckRequest {
                consecutive_failures,
                ..CheckRequest::new(trigger)
            };
            trigger = Trigger::Scheduled;
            // One context per check: agent.conf parsed once (a SIGHUP's change is read here).
            let checked = Agent::load(root)
                .and_then(|agent| renewal::run_check(&agent, logger, &request, now, connector));
            let end = match &checked {
                Ok(outcome) => CheckEnd::Reported(&outcome.report),
                // `vmutil updatecerts` (or `vmd --once`) is checking: look again shortly.
                Err(AgentError::Busy { .. }) => CheckEnd::Busy,
                Err(error) => {
                    renewal::record_local_failure(root, logger, error, now);
                    CheckEnd::LocalFailure
                }
            };
            let after = after_check(&policy, consecutive_failures, end);
            consecutive_failures = after.consecutive_failures;
            next_check = match after.next_check {
                Wait::Until(wall) => Deadline::at(now, wall),
                Wait::For(pause) => Deadline::after(pause),
            };
        }
        if next_heartbeat.reached(now) {
            // One context per heartbeat: agent.conf parsed once, the key decrypted once (the
            // waiting log records go up in the heartbeat's own session).
            let mut interval = u64::from(agent_config::DEFAULT_STATUS_MINUTES) * 60;
            let beat = Agent::load(root).and_then(|agent| {
                interval = u64::from(agent.settings.status_interval_minutes) * 60;
                let beat = renewal::heartbeat(&agent, logger, connector);
                crate::metrics::after_heartbeat(&agent, logger, &beat, now);
                beat
            });
            heartbeat_interval = Duration::from_secs(interval);
            let end = match &beat {
                Ok(_) => HeartbeatEnd::Accepted,
                Err(error) => {
                    logger.message(
                        Severity::Warning,
                        &Message::HeartbeatFailed {
                            error: error.to_string(),
                        },
                    );
                    match error {
                        AgentError::Manager(refused) if refused.is_identity_refused() => {
                            HeartbeatEnd::IdentityRefused
                        }
                        AgentError::Manager(cm_client::Error::Throttled {
                            retry_after: Some(after),
                            ..
                        }) => HeartbeatEnd::Failed {
                            retry_after: Some(
                                after.after(now).duration_since(now).unwrap_or_default(),
                            ),
                        },
                        _ => HeartbeatEnd::Failed { retry_after: None },
                    }
                }
            };
            let after = after_heartbeat(&policy, heartbeat_interval, end);
            next_heartbeat = Deadline::after(after.next_heartbeat);
            if let Some(now_trigger) = after.check_now {
                trigger = now_trigger;
                next_check = Deadline::now();
            }
        }
        // Monotonic: the earlier deadline, and never past the heartbeat interval.
        let wait = next_check
            .remaining()
            .min(next_heartbeat.remaining())
            .min(heartbeat_interval);
        match receiver.recv_timeout(wait) {
            Ok(Wake::Reload) => {
                logger.message(Severity::Info, &Message::Reload);
                next_check = Deadline::now();
            }
            Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    logger.message(Severity::Info, &Message::DaemonStopping);
    Ok(())
}

#[cfg(unix)]
fn install_signals(sender: mpsc::Sender<Wake>) -> Result<(), AgentError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .map_err(|error| AgentError::io("signal handlers", "installing", error))?;
    std::thread::spawn(move || {
        for signal in signals.forever() {
            let wake = if signal == SIGHUP {
                Wake::Reload
            } else {
                Wake::Stop
            };
            if sender.send(wake).is_err() || wake == Wake::Stop {
                break;
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn install_signals(sender: mpsc::Sender<Wake>) -> Result<(), AgentError> {
    // No SIGHUP on Windows: the service manager stops the process. Keep the sender alive so
    // the loop only ends by that.
    std::mem::forget(sender);
    Ok(())
}

/// When the next piece of work is due: a point on the monotonic clock, plus the wall-clock time
/// the policy named (if any), so that a clock stepped back never delays the work and a clock
/// stepped forward past that time brings it forward.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    monotonic: Instant,
    wall: Option<SystemTime>,
}

impl Deadline {
    /// Due now.
    fn now() -> Self {
        Self {
            monotonic: Instant::now(),
            wall: None,
        }
    }

    /// `wait` from now, on the monotonic clock.
    fn after(wait: Duration) -> Self {
        Self {
            monotonic: Instant::now() + wait,
            wall: None,
        }
    }

    /// At the wall-clock time `wall`, measured from `now` and kept on the monotonic clock.
    fn at(now: SystemTime, wall: SystemTime) -> Self {
        let wait = wall.duration_since(now).unwrap_or(Duration::ZERO);
        Self {
            monotonic: Instant::now() + wait,
            wall: Some(wall),
        }
    }

    /// Whether it is due: the monotonic point has passed, or the wall clock (`now`) has reached
    /// the time the policy named.
    fn reached(&self, now: SystemTime) -> bool {
        Instant::now() >= self.monotonic || self.wall.is_some_and(|wall| now >= wall)
    }

    /// How long until the monotonic point.
    fn remaining(&self) -> Duration {
        self.monotonic.saturating_duration_since(Instant::now())
    }
}

/// Tells a running vmd to reload (SIGHUP via the pid file). Returns its pid when one was told.
///
/// # Errors
/// When the pid file names a live process that cannot be signalled.
pub fn notify_reload(root: &AgentRoot) -> Result<Option<u32>, AgentError> {
    let Ok(Some(text)) = crate::fsutil::read_own_text(&root.pid_file()) else {
        return Ok(None);
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(None);
    };
    notify_pid(pid)
}

#[cfg(unix)]
fn notify_pid(pid: u32) -> Result<Option<u32>, AgentError> {
    // Only signal a process that is really vmd (a stale pid file may name anything).
    #[cfg(target_os = "linux")]
    {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if name.trim() != "vmd" {
            return Ok(None);
        }
    }
    let Some(target) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Ok(None);
    };
    match rustix::process::kill_process(target, rustix::process::Signal::HUP) {
        Ok(()) => Ok(Some(pid)),
        // Gone since the pid file was read: nobody to tell.
        Err(rustix::io::Errno::SRCH) => Ok(None),
        Err(error) => Err(AgentError::io(
            format!("pid {pid}"),
            "sending SIGHUP to vmd",
            error.into(),
        )),
    }
}

#[cfg(not(unix))]
fn notify_pid(_pid: u32) -> Result<Option<u32>, AgentError> {
    // Windows: restart the service to pick up a new identity (docs/operations.md); vmd also
    // reads the store for every connection.
    Ok(None)
}
