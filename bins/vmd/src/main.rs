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
    if let Some(proxy) = &cli.proxy {
        if let Some(note) = agent::manager::proxy_flag_note(proxy) {
            agent::say_err!("vmd: {note}");
        }
        match agent::manager::ProxySetting::parse(proxy) {
            Ok(setting) => agent::manager::set_proxy_override(setting),
            Err(error) => {
                agent::say_err!("vmd: error: --proxy: {error}");
                return ExitCode::from(ExitStatus::Usage.code());
            }
        }
    }
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    let log_file = agent::logging::log_file(&root, cli.log_dir.as_deref());
    let logger = agent::logging::Logger::new("VMD", Some(log_file), true);
    let result = if cli.once {
        once(&root, &logger)
    } else {
        agent::daemon::run(&root, &logger).map(|()| ExitStatus::Ok)
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
    root: &agent::paths::AgentRoot,
    logger: &agent::logging::Logger,
) -> Result<ExitStatus, agent::AgentError> {
    // The check itself logs in and reads the client's record (the heartbeat), so its exit
    // status says whether the manager accepts this host's identity.
    let request = agent::renewal::CheckRequest::new(agent::renewal::Trigger::Once);
    let outcome = agent::renewal::run_check(root, logger, &request, SystemTime::now())?;
    Ok(outcome.exit_status())
}
