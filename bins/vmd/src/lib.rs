//! `vmd`'s command line: the clap definition, which `cargo xtask man` also turns into the man
//! page and the shell completions. The daemon itself is `src/main.rs`.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// The command line (see `--help`).
#[derive(Parser)]
#[command(
    name = "vmd",
    about = "Agent daemon: heartbeat with the manager and external-certificate renewal.",
    after_help = "With --once: exit 0 when the host ends with a settled, accepted identity (renewed, nothing due, or no new set yet with its WARNING); 3 local input problem (also: certificate expired and not accepted by the manager, re-registration required); 4 refused by the manager; 5 manager unreachable or a renewal's outcome unknown; 6 busy; 7 local system failure (disk, permissions, an unsafe agent file, a clock past the certificate's end that the manager contradicts).\nSignals: SIGHUP rereads agent.conf and checks now; SIGTERM stops."
)]
pub struct Cli {
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR")]
    pub agent_root: Option<PathBuf>,
    /// Run one renewal check and a heartbeat now, then exit.
    #[arg(long)]
    pub once: bool,
    // The text is clap's --help output, not HTML: keep `<agent root>` as it is.
    #[allow(rustdoc::invalid_html_tags)]
    /// The folder of the log file vorvmd_root.log (default: agent.conf's LOG_DIR, else
    /// /var/log/vormetric for the product's agent root, else <agent root>/vmd/log).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The HTTP proxy to the manager for this run: http://[user:password@]host[:port], or `none`
    /// to connect directly. Default: agent.conf's PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY.
    #[arg(long, value_name = "URL|none")]
    pub proxy: Option<String>,
}

/// The clap command, for the man page and the shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}
