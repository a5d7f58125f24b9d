//! `vmutil -a vmd ...`: the agent's utility (check a certificate directory, show status, update
//! certificates by hand).

use std::process::ExitCode;
use std::time::SystemTime;

use agent::{AgentError, ExitStatus};
use clap::Parser;
use vmutil::{Cli, Command};

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
    match run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(error) => {
            agent::say_err!("vmutil: error: {error}");
            ExitCode::from(error.exit_status().code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitStatus, AgentError> {
    if cli.agent != "vmd" {
        return Err(AgentError::Usage(format!(
            "unknown agent \"{}\"; this vmutil supports -a vmd",
            cli.agent
        )));
    }
    let mut proxy = None;
    if let Some(flag) = &cli.proxy {
        if let Some(note) = agent::manager::proxy_flag_note(flag) {
            agent::say_err!("vmutil: {note}");
        }
        proxy = Some(
            agent::manager::ProxySetting::parse(flag)
                .map_err(|error| AgentError::Usage(format!("--proxy: {error}")))?,
        );
    }
    // The proxy of the command line travels in the connector: no process-global state.
    let connector = agent::manager::TlsConnector::with_proxy(proxy);
    let now = SystemTime::now();
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    let need_directory = || {
        cli.directory.clone().ok_or_else(|| {
            AgentError::Usage("this command needs the certificate directory: -d <dir>".to_string())
        })
    };
    match cli.command {
        Command::Checkcerts => {
            let report = agent::checkcerts::check_directory_against(
                &need_directory()?,
                cli.ca.as_deref(),
                now,
            )?;
            print_report(cli.json, &report, report.to_text());
            // The text report lists the warnings already; with --json they are in the JSON and
            // also said on stderr, for the person watching the script run.
            if cli.json {
                for warning in &report.warnings {
                    agent::say_err!("vmutil: warning: {warning}");
                }
            }
            Ok(ExitStatus::Ok)
        }
        Command::Status if cli.prometheus => {
            agent::terminal::out(&agent::metrics::render(
                &agent::settings::Agent::load(&root)?,
                now,
            )?);
            Ok(ExitStatus::Ok)
        }
        Command::Status => {
            let status = agent::status::status(&root, now)?;
            print_report(cli.json, &status, status.to_text());
            Ok(ExitStatus::Ok)
        }
        Command::Rekey => {
            let rekey = agent::rekey::rekey(&root)?;
            let text = if rekey.resealed {
                format!(
                    "generation {}: key sealed again by the {} protector as agent.conf says now\n",
                    rekey.generation, rekey.to
                )
            } else if rekey.from == rekey.to {
                format!(
                    "generation {}: its key is already held by the {} protector; nothing to do\n",
                    rekey.generation, rekey.to
                )
            } else {
                format!(
                    "generation {}: key moved from the {} protector to the {} protector\n",
                    rekey.generation, rekey.from, rekey.to
                )
            };
            print_report(cli.json, &rekey, text);
            Ok(ExitStatus::Ok)
        }
        Command::Certexpiry => {
            let days = agent::status::days_left(&root, now)?;
            if cli.json {
                agent::say!("{{\"days_left\": {days}}}");
            } else {
                agent::say!("{days}");
            }
            Ok(ExitStatus::Ok)
        }
        Command::Updatecerts => {
            let directory = need_directory()?;
            // One context for the whole update: agent.conf read once.
            let agent = agent::settings::Agent::load(&root)?;
            // A dry run changes nothing under the agent root, not even the log.
            let log_file = (!cli.dry_run).then(|| agent::logging::log_file_for(&agent, None));
            let logger = agent::logging::Logger::new("VMUTIL", log_file, true);
            let request = agent::renewal::CheckRequest {
                directory_override: Some(directory),
                dry_run: cli.dry_run,
                ..agent::renewal::CheckRequest::new(agent::renewal::Trigger::Manual)
            };
            let outcome = agent::renewal::run_check(&agent, &logger, &request, now, &connector)?;
            // The outcome was logged to stderr in the product's line shape; JSON goes to stdout.
            if cli.json {
                agent::say!(
                    "{}",
                    agent::terminal::escape_json(
                        &serde_json::to_string_pretty(&outcome.status).unwrap_or_default()
                    )
                );
            }
            if outcome.identity_changed() {
                match agent::daemon::notify_reload(&root) {
                    Ok(Some(pid)) => agent::say!("told the running vmd (pid {pid}) to reload"),
                    Ok(None) => {}
                    Err(error) => {
                        agent::say_err!("vmutil: warning: could not tell vmd to reload: {error}")
                    }
                }
            }
            Ok(outcome.exit_status())
        }
    }
}

fn print_report<T: serde::Serialize>(json: bool, value: &T, text: String) {
    if json {
        // As JSON escapes: serde_json escapes the C0 controls, escape_json the rest.
        agent::terminal::out(&format!(
            "{}\n",
            agent::terminal::escape_json(&serde_json::to_string_pretty(value).unwrap_or_default())
        ));
    } else {
        agent::terminal::out(&text);
    }
}
