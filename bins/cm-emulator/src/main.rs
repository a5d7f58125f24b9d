//! `cm-emulator`: runs the CipherTrust Manager emulator until SIGTERM or SIGINT.
//!
//! ```text
//! cm-emulator --listen 127.0.0.1:8443 --state-dir DIR [--admin-password P] [--hostname NAME]...
//!             [--retire-old-certificate on-renew|on-first-login|at-expiry]
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
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use cm_emulator::{Emulator, EmulatorConfig, RetireOldCertificate};

/// Local emulator of the CipherTrust Manager REST API (external-certificate enrollment).
#[derive(Debug, Parser)]
#[command(name = "cm-emulator", version)]
struct Arguments {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// State folder (created if missing): web CA, objects, admin password.
    #[arg(long)]
    state_dir: PathBuf,
    /// Password of the `admin` user; by default read from or generated into
    /// `<state-dir>/admin-password`.
    #[arg(long, env = "CM_EMULATOR_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Extra host name or IP address for the web certificate (repeatable).
    #[arg(long = "hostname")]
    hostnames: Vec<String>,
    /// When a client's previous certificate stops logging in after a self renewal: at once
    /// (on-renew), when the new certificate first logs in (on-first-login), or at the previous
    /// certificate's own expiry (at-expiry). The real manager's behaviour is not public: this
    /// is an invented setting for testing agents against each possibility.
    #[arg(
        long,
        value_name = "WHEN",
        default_value_t = RetireOldCertificate::default(),
        value_parser = PossibleValuesParser::new(RetireOldCertificate::ALL.map(RetireOldCertificate::as_str))
            .try_map(|value| value.parse::<RetireOldCertificate>()),
    )]
    retire_old_certificate: RetireOldCertificate,
}

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
