//! `vmd`: the agent daemon. Keeps the host's identity with the manager alive and renews the
//! external certificate before it expires.

use std::process::ExitCode;
use std::time::SystemTime;

use agent::ExitStatus;
use clap::Parser;
use vmd::Cli;

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
    let mut proxy = None;
    if let Some(flag) = &cli.proxy {
        if let Some(note) = agent::manager::proxy_flag_note(flag) {
            agent::say_err!("vmd: {note}");
        }
        match agent::manager::ProxySetting::parse(flag) {
            Ok(setting) => proxy = Some(setting),
            Err(error) => {
                agent::say_err!("vmd: error: --proxy: {error}");
                return ExitCode::from(ExitStatus::Usage.code());
            }
        }
    }
    // The proxy of the command line travels in the connector: no process-global state.
    let connector = agent::manager::TlsConnector::with_proxy(proxy);
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    // `--once` is one check: agent.conf is read once, for the log file and the check.
    let loaded = cli.once.then(|| agent::settings::Agent::load(&root));
    let log_file = match &loaded {
        Some(Ok(agent)) => agent::logging::log_file_for(agent, cli.log_dir.as_deref()),
        _ => agent::logging::log_file(&root, cli.log_dir.as_deref()),
    };
    let logger = agent::logging::Logger::new("VMD", Some(log_file), true);
    let result = match loaded {
        Some(agent) => agent.and_then(|agent| once(&agent, &logger, &connector)),
        None => agent::daemon::run(&root, &logger, &connector).map(|()| ExitStatus::Ok),
    };
    match result {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            agent::say_err!("vmd: error: {error}");
            ExitCode::from(error.exit_status().code())
        }
    }
}

fn once(
    agent: &agent::settings::Agent,
    logger: &agent::logging::Logger,
    connector: &agent::manager::TlsConnector,
) -> Result<ExitStatus, agent::AgentError> {
    // The check itself logs in and reads the client's record (the heartbeat), so its exit
    // status says whether the manager accepts this host's identity.
    agent::renewal::run_once(agent, logger, SystemTime::now(), connector)
}
