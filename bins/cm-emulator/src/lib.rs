//! `cm-emulator`'s command line: the clap definition, which `cargo xtask man` also turns into the
//! man page and the shell completions. The program itself is `src/main.rs`.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{CommandFactory, Parser};
use cm_emulator::{RetireOldCertificate, TrustedCaChanges};

/// Local emulator of the CipherTrust Manager REST API (external-certificate enrollment).
#[derive(Debug, Parser)]
#[command(name = "cm-emulator", version)]
pub struct Arguments {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// State folder (created if missing): web CA, objects, admin password.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Password of the `admin` user; by default read from or generated into
    /// `<state-dir>/admin-password`.
    #[arg(long, env = "CM_EMULATOR_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Extra host name or IP address for the web certificate (repeatable).
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
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
    pub retire_old_certificate: RetireOldCertificate,
    /// When a change of the web interface's trusted CAs takes effect: at once (immediately, as
    /// CM's guide says for every version; /api/v1/trusted-cas exists too), or at the next web
    /// restart (at-web-restart: an invented setting to test the restart step).
    #[arg(
        long,
        value_name = "WHEN",
        default_value_t = TrustedCaChanges::default(),
        value_parser = PossibleValuesParser::new(["immediately", "at-web-restart"])
            .try_map(|value| value.parse::<TrustedCaChanges>()),
    )]
    pub trusted_ca_changes: TrustedCaChanges,
    /// Back-pressure to agents, for testing them: `STATUS:EVERY[:SECONDS]` answers one agent
    /// request in EVERY (login, the client's own record, renewal, log upload) with STATUS (429
    /// or 503) and, with SECONDS, a Retry-After header. An invented test setting.
    #[arg(long, value_name = "STATUS:EVERY[:SECONDS]", value_parser = cm_emulator::Throttle::parse)]
    pub throttle_agents: Option<cm_emulator::Throttle>,
    /// The web interface's port as the API shows it (GET /api/v1/configs/interfaces/web): 443,
    /// as on a real manager, whatever --listen says.
    #[arg(long, value_name = "PORT", default_value_t = 443)]
    pub reported_web_port: u16,
}

/// The clap command, for the man page and the shell completions.
pub fn command() -> clap::Command {
    Arguments::command()
}
