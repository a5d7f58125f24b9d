//! `vmutil`'s command line: the clap definition, which `cargo xtask man` also turns into the man
//! page and the shell completions. The program itself is `src/main.rs`.

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The exit codes (the man pages list them from here).
pub use agent::ExitStatus;
use clap::{CommandFactory, Parser, ValueEnum};

/// The command line (see `--help`).
#[derive(Parser, Debug)]
#[command(
    name = "vmutil",
    about = "Agent utility: check an external certificate directory, show status, update certificates.",
    after_help = ExitStatus::HELP
)]
pub struct Cli {
    /// The agent to act on; only `vmd` is supported.
    #[arg(short = 'a', value_name = "AGENT")]
    pub agent: String,
    /// The external certificate directory (for checkcerts and updatecerts).
    #[arg(short = 'd', value_name = "DIR")]
    pub directory: Option<PathBuf>,
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR", global = true)]
    pub agent_root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// With status: print the metrics in the Prometheus text format (what METRICS_FILE holds),
    /// for cron-based collectors.
    #[arg(long, global = true)]
    pub prometheus: bool,
    /// With updatecerts: validate locally and stop before contacting the manager.
    #[arg(long, global = true)]
    pub dry_run: bool,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The HTTP proxy to the manager for this run: http://[user:password@]host[:port], or `none`
    /// to connect directly. Default: agent.conf's PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY.
    #[arg(long, value_name = "URL|none", global = true)]
    pub proxy: Option<String>,
    /// With checkcerts: the external CA added on the manager (PEM); the chain must lead to it,
    /// as the manager checks at registration.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// What to do.
    pub command: Command,
}

/// What `vmutil` does.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Command {
    /// Validate the directory given with -d, without contacting anything.
    Checkcerts,
    /// Show registration, current certificate and renewal state.
    Status,
    /// Print the days left before the current certificate expires.
    Certexpiry,
    /// Run the certificate update now with the directory given with -d.
    Updatecerts,
    /// Move the current identity's key to the key protector agent.conf chooses
    /// (KEY_PROTECTOR), now instead of at the next renewal; crash-safe.
    Rekey,
}

/// The clap command, for the man page and the shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}
