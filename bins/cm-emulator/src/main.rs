//! `cm-emulator`: runs the CipherTrust Manager emulator until SIGTERM or SIGINT.
//!
//! ```text
//! cm-emulator --listen 127.0.0.1:8443 --state-dir DIR [--admin-password P] [--hostname NAME]...
//!             [--retire-old-certificate on-renew|on-first-login|at-expiry]
//!             [--trusted-ca-changes immediately|at-web-restart]
//! ```
//! Prints exactly one line, `listening on https://HOST:PORT`, once connections are accepted.
//! Exit codes: 0 after a clean stop, 1 when the emulator cannot start (2 for usage errors).
//!
//! `--retire-old-certificate` chooses when a client's previous certificate stops logging in
//! after a self renewal. The real manager's behaviour here is not public, so this is an
//! invented setting (see `docs/protocol.md`): `on-renew` at once, `on-first-login` (default)
//! once the new certificate has logged in, `at-expiry` at the previous certificate's own
//! `notAfter`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cm_emulator::{Emulator, EmulatorConfig};
use cm_emulator_bin::Arguments;

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    match run(arguments) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cm-emulator: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(arguments: Arguments) -> anyhow::Result<()> {
    let config = EmulatorConfig {
        listen: arguments.listen,
        admin_password: arguments.admin_password,
        extra_hostnames: arguments.hostnames,
        retire_old_certificate: arguments.retire_old_certificate,
        trusted_ca_changes: arguments.trusted_ca_changes,
        throttle: arguments.throttle_agents,
        reported_web_port: arguments.reported_web_port,
        ..EmulatorConfig::new(arguments.state_dir)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async {
        let emulator = Emulator::bind(config).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", emulator.url())?;
        stdout.flush()?;
        drop(stdout);
        let signal = shutdown_signal()?;
        emulator.run_until(signal).await;
        anyhow::Ok(())
    })
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}
