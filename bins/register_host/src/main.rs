//! `register_host`: register this host with the manager using an external certificate set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use agent::register::{ManagerTrust, RegistrationOptions};
use agent::{AgentError, ExitStatus};
use clap::Parser;
use register_host::{Cli, normalize_product_spellings};
use zeroize::Zeroizing;

fn main() -> ExitCode {
    // No core dumps or same-user ptrace of a process that holds keys (docs/security.md).
    let _ = agent::hardening::restrict_process();
    let arguments = normalize_product_spellings(std::env::args_os());
    let cli = match Cli::try_parse_from(arguments) {
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
    let json = cli.json;
    match run(cli) {
        Ok(report) => {
            if json {
                agent::say!(
                    "{}",
                    agent::terminal::escape_json(
                        &serde_json::to_string_pretty(&report).unwrap_or_default()
                    )
                );
                // The JSON says it too (`input_shredded`, `shred.not_shredded`); stderr keeps the
                // warning visible to whoever runs it.
                for file in report.shred.iter().flat_map(|shred| &shred.not_shredded) {
                    agent::say_err!(
                        "register_host: WARNING: {} was NOT shredded: {}",
                        file.path.display(),
                        file.reason
                    );
                }
            } else {
                print_summary(&report);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            agent::say_err!("register_host: error: {error}");
            if let Some(hint) = flag_hint(&error) {
                agent::say_err!("register_host: {hint}");
            }
            ExitCode::from(error.exit_status().code())
        }
    }
}

/// What to type for the errors that this command's flags answer (the library says what is
/// wrong in its own terms; the flags are this binary's).
fn flag_hint(error: &AgentError) -> Option<&'static str> {
    match error {
        AgentError::AlreadyRegistered { .. } => Some(
            "to replace it, run again with --force (the old identity stays active until the new one is)",
        ),
        AgentError::Expired { .. } => {
            Some("run again with --force, a new certificate set (--extcertdir) and a new token")
        }
        _ => None,
    }
}

/// The token, by precedence: `--token-file`, `--token -` (standard input), `--token T` (with a
/// note that argv is visible), `REG_TOKEN`, the silent file.
fn registration_token(
    flag: Option<String>,
    file: Option<PathBuf>,
    silent: Option<String>,
) -> Result<Zeroizing<String>, AgentError> {
    let missing = || {
        AgentError::Usage(
            "the registration token is missing: give --token-file FILE, --token - (standard input) or REG_TOKEN"
                .to_string(),
        )
    };
    if let Some(path) = file {
        let read = agent::secrets::read_secret_file(
            &path,
            "the registration token file",
            "reading the registration token file",
        )?;
        for warning in &read.warnings {
            agent::say_err!("register_host: warning: {warning}");
        }
        return agent::secrets::first_line(&read.text).ok_or_else(|| AgentError::InvalidFile {
            path,
            problem: "the registration token file is empty".to_string(),
        });
    }
    match flag.map(Zeroizing::new) {
        Some(flag) if flag.as_str() == "-" => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|error| AgentError::Io {
                    path: "standard input".into(),
                    action: "reading the registration token from",
                    source: error,
                })?;
            agent::secrets::first_line(&line).ok_or_else(missing)
        }
        Some(flag) => {
            agent::say_err!(
                "register_host: note: a token on the command line is visible to other local users while this runs; prefer --token-file FILE, --token - or REG_TOKEN"
            );
            Ok(flag)
        }
        None => match std::env::var("REG_TOKEN")
            .ok()
            .filter(|token| !token.is_empty())
        {
            Some(token) => Ok(Zeroizing::new(token)),
            None => silent.map(Zeroizing::new).ok_or_else(missing),
        },
    }
}

fn run(cli: Cli) -> Result<agent::register::RegistrationReport, AgentError> {
    let proxy = match &cli.proxy {
        Some(proxy) => {
            if let Some(note) = agent::manager::proxy_flag_note(proxy) {
                agent::say_err!("register_host: {note}");
            }
            Some(
                agent::manager::ProxySetting::parse(proxy)
                    .map_err(|error| AgentError::Usage(format!("--proxy: {error}")))?,
            )
        }
        None => None,
    };
    let silent = match cli.target.as_slice() {
        [word, file] if word == "silent" => {
            // It may hold REG_TOKEN: read like any secret file (no links, bounded, mode warned).
            let read = agent::secrets::read_secret_file(
                std::path::Path::new(file),
                "the silent registration file",
                "reading the silent registration file",
            )?;
            for warning in &read.warnings {
                agent::say_err!("register_host: warning: {warning}");
            }
            let silent = agent_config::SilentFile::parse(&read.text, file)?;
            for key in &silent.ignored_keys {
                agent::say_err!("register_host: note: {file}: {key} is not used by this agent");
            }
            Some(silent)
        }
        [_] => None,
        _ => {
            return Err(AgentError::Usage(
                "give the manager address, or `silent FILE`".to_string(),
            ));
        }
    };
    let silent = silent.unwrap_or_default();
    let manager = match cli.target.as_slice() {
        [manager] => manager.clone(),
        _ => silent
            .server_hostname
            .clone()
            .or(silent.server_ip.clone())
            .ok_or_else(|| {
                AgentError::Usage("the silent file has no SERVER_HOSTNAME".to_string())
            })?,
    };
    let token = registration_token(cli.token, cli.token_file, silent.reg_token.clone())?;
    let external_cert_dir = cli
        .extcertdir
        .or_else(|| {
            std::env::var_os("EXTERNAL_CERT_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or(silent.external_cert_dir.clone())
        .ok_or_else(|| {
            AgentError::Usage(
                "no external certificate directory: give --extcertdir DIR or set EXTERNAL_CERT_DIR"
                    .to_string(),
            )
        })?;
    let trust = match (cli.cm_ca, cli.cm_fingerprint) {
        (Some(ca), _) => ManagerTrust::CaFile(ca),
        (None, Some(text)) => match text.parse::<agent::Fingerprint>() {
            Ok(fingerprint) => ManagerTrust::Fingerprint(fingerprint),
            Err(error) => {
                return Err(AgentError::Usage(format!(
                    "--cm-fingerprint \"{text}\": {error}"
                )));
            }
        },
        (None, None) => match (&silent.cm_ca_file, &silent.cm_fingerprint) {
            (Some(ca), _) => ManagerTrust::CaFile(ca.clone()),
            (None, Some(fingerprint)) => ManagerTrust::Fingerprint(*fingerprint),
            (None, None) => {
                return Err(AgentError::Usage(
                    "say how to verify the manager: --cm-ca FILE or --cm-fingerprint SHA256 (the manager's web certificate fingerprint)"
                        .to_string(),
                ));
            }
        },
    };
    let options = RegistrationOptions {
        manager,
        token,
        agent_name: cli.agent.or(silent.agent_host_name.clone()),
        description: cli
            .description
            .or(silent.host_description.clone())
            .unwrap_or_default(),
        external_cert_dir,
        trust,
        shred_input: cli.shred_input,
        force: cli.force,
        proxy,
        key_protection: (cli.key_protector.is_some()
            || cli.tpm_tcti.is_some()
            || cli.tpm_pcrs.is_some())
        .then(|| agent::KeyProtection {
            choice: cli
                .key_protector
                .as_deref()
                .and_then(agent::ProtectorChoice::parse)
                .unwrap_or_default(),
            tpm_tcti: cli
                .tpm_tcti
                .clone()
                .unwrap_or_else(|| agent::DEFAULT_TPM_TCTI.to_owned()),
            tpm_pcrs: cli
                .tpm_pcrs
                .as_deref()
                .and_then(|pcrs| agent::parse_pcrs(pcrs).ok())
                .unwrap_or_default(),
        }),
    };
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    agent::register::register(&root, &options, SystemTime::now())
}

fn print_summary(report: &agent::register::RegistrationReport) {
    agent::say!(
        "Registered with {} as client {} ({}).",
        report.manager_url,
        report.client_id,
        report.client_name
    );
    agent::say!(
        "  certificate:  {} (expires {})",
        report.common_name,
        report.not_after
    );
    agent::say!("  fingerprint:  {}", report.sha256_fingerprint);
    agent::say!("  pem store:    {}", report.agent_pem.display());
    agent::say!("  agent.conf:   {}", report.agent_conf.display());
    agent::say!(
        "  key:          {}",
        agent::protection_summary(report.key_protector)
    );
    for warning in &report.warnings {
        agent::say!("  warning:      {warning}");
    }
    if report.input_shredded {
        agent::say!("The input files were overwritten and removed.");
    } else if let Some(shred) = &report.shred {
        // --shred-input, but not every file could be shredded: the registration stands (exit 0),
        // and each file left is named on stderr, so scripts and logs see it.
        for path in &shred.shredded {
            agent::say!("  shredded:     {}", path.display());
        }
        for file in &shred.not_shredded {
            agent::say_err!(
                "register_host: WARNING: {} was NOT shredded: {}. Check the certificate folder and remove the key material by hand.",
                file.path.display(),
                file.reason
            );
        }
    } else {
        agent::say!(
            "The input files are no longer needed: remove or shred them (or rerun with --shred-input next time)."
        );
    }
}
