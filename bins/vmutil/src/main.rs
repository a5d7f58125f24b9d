//! `vmutil -a vmd ...`: the agent's utility (check a certificate directory, show status, update
//! certificates by hand).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use agent::{AgentError, ExitStatus};
use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "vmutil",
    about = "Agent utility: check an external certificate directory, show status, update certificates.",
    after_help = ExitStatus::HELP
)]
struct Cli {
    /// The agent to act on; only `vmd` is supported.
    #[arg(short = 'a', value_name = "AGENT")]
    agent: String,
    /// The external certificate directory (for checkcerts and updatecerts).
    #[arg(short = 'd', value_name = "DIR")]
    directory: Option<PathBuf>,
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR", global = true)]
    agent_root: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// With updatecerts: validate locally and stop before contacting the manager.
    #[arg(long, global = true)]
    dry_run: bool,
    /// What to do.
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Command {
    /// Validate the directory given with -d, without contacting anything.
    Checkcerts,
    /// Show registration, current certificate and renewal state.
    Status,
    /// Print the days left before the current certificate expires.
    Certexpiry,
    /// Run the certificate update now with the directory given with -d.
    Updatecerts,
}

fn main() -> ExitCode {
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
            eprintln!("vmutil: error: {error}");
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
    let now = SystemTime::now();
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    let need_directory = || {
        cli.directory.clone().ok_or_else(|| {
            AgentError::Usage("this command needs the certificate directory: -d <dir>".to_string())
        })
    };
    match cli.command {
        Command::Checkcerts => {
            let report = agent::checkcerts::check_directory(&need_directory()?, now)?;
            print_report(cli.json, &report, report.to_text());
            for warning in &report.warnings {
                eprintln!("vmutil: warning: {warning}");
            }
            Ok(ExitStatus::Ok)
        }
        Command::Status | Command::Certexpiry | Command::Updatecerts => {
            let _ = root;
            Err(AgentError::Usage(
                "not available in this build yet".to_string(),
            ))
        }
    }
}

fn print_report<T: serde::Serialize>(json: bool, value: &T, text: String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        print!("{text}");
    }
}
