//! `vmd`: the agent daemon. Keeps the host's identity with the manager alive and renews the
//! external certificate before it expires.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use agent::ExitStatus;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "vmd",
    about = "Agent daemon: heartbeat with the manager and external-certificate renewal.",
    after_help = "With --once: exit 0 when the host ends with a healthy identity (renewed, nothing due, or no new set yet with its WARNING); 3 local problem (also: certificate expired, re-registration required); 4 refused by the manager; 5 manager unreachable.\nSignals: SIGHUP rereads agent.conf and checks now; SIGTERM stops."
)]
struct Cli {
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR")]
    agent_root: Option<PathBuf>,
    /// Run one renewal check and a heartbeat now, then exit.
    #[arg(long)]
    once: bool,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The HTTP proxy to the manager for this run: http://[user:password@]host[:port], or `none`
    /// to connect directly. Default: agent.conf's PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY.
    #[arg(long, value_name = "URL|none")]
    proxy: Option<String>,
}

fn main() -> ExitCode {
    // No core dumps or same-user ptrace of a process that holds keys (docs/security.md).
    let _ = agent::hardening::restrict_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code()
            } else {
                0
            });
        }
    };
    if let Some(proxy) = &cli.proxy
        && let Err(error) = agent::manager::set_proxy_override(proxy)
    {
        eprintln!("vmd: error: {error}");
        return ExitCode::from(error.exit_status().code());
    }
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    let logger = agent::logging::Logger::new("VMD", Some(root.vmd_log()), true);
    let result = if cli.once {
        once(&root, &logger)
    } else {
        agent::daemon::run(&root, &logger).map(|()| ExitStatus::Ok)
    };
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            eprintln!("vmd: error: {error}");
            ExitCode::from(error.exit_status().code())
        }
    }
}

fn once(
    root: &agent::paths::AgentRoot,
    logger: &agent::logging::Logger,
) -> Result<ExitStatus, agent::AgentError> {
    // The check itself logs in and reads the client's record (the heartbeat), so its exit
    // status says whether the manager accepts this host's identity.
    let request = agent::renewal::CheckRequest::new(agent::renewal::Trigger::Once);
    let outcome = agent::renewal::run_check(root, logger, &request, SystemTime::now())?;
    Ok(outcome.exit_status(agent::renewal::Trigger::Once))
}
