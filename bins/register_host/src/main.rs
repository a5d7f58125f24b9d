//! `register_host`: register this host with the manager using an external certificate set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use agent::register::{RegistrationOptions, TrustChoice};
use agent::{AgentError, ExitStatus};
use clap::Parser;
use zeroize::Zeroizing;

const AFTER_HELP: &str = "\
The certificate directory holds client_cert.pem, client_key.pem (passphrase-encrypted) and passphrase.

The registration token: prefer --token-file FILE, --token - (one line from standard input) or the REG_TOKEN environment variable. A token written on the command line (--token T) is visible to every local user (ps, /proc/PID/cmdline) while register_host runs.

Precedence: a command-line flag (--token, --token-file) wins over the environment (REG_TOKEN, EXTERNAL_CERT_DIR), which wins over the silent file.

Proxy: --proxy wins over PROXY in an existing agent.conf, which wins over https_proxy/HTTPS_PROXY/all_proxy/ALL_PROXY with no_proxy/NO_PROXY (HTTP_PROXY is not used: the manager is https). --proxy is not stored; set PROXY in agent.conf for vmd. A proxy password given with --proxy is visible to local users (ps): prefer PROXY in agent.conf or HTTPS_PROXY.

The product's single-dash spellings work too: -token=T -agent=NAME -description=TEXT -extcertdir=DIR.

Silent registration: register_host [flags] silent FILE, with SERVER_HOSTNAME (may carry :port), REG_TOKEN, AGENT_HOST_NAME, HOST_DESC, EXTERNAL_CERT_DIR, CM_CA_FILE or CM_FINGERPRINT.

Exit codes: 0 ok, 2 usage, 3 local input invalid (files, key, passphrase, configuration, pem store), 4 refused by the manager, 5 manager unreachable or TLS failed.";

#[derive(Parser)]
#[command(
    name = "register_host",
    about = "Register this host with the manager using an external client certificate.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR")]
    agent_root: Option<PathBuf>,
    /// The registration token created on the manager; `-` reads one line from standard input.
    /// Prefer --token-file or REG_TOKEN: a token on the command line is visible to other users.
    #[arg(long, value_name = "TOKEN|-")]
    token: Option<String>,
    /// A file holding the registration token (first line; links are not followed; warns when
    /// group or others can read it).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The name to register this host under (default: the host name).
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// A description shown on the manager.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// The external certificate directory (default: $EXTERNAL_CERT_DIR).
    #[arg(long, value_name = "DIR")]
    extcertdir: Option<PathBuf>,
    /// A PEM file of CA certificates the manager's web certificate must chain to.
    #[arg(long, value_name = "FILE", conflicts_with = "cm_fingerprint")]
    cm_ca: Option<PathBuf>,
    /// The SHA-256 fingerprint of the manager's web certificate (hex, colons optional).
    #[arg(long, value_name = "SHA256")]
    cm_fingerprint: Option<String>,
    /// After success, overwrite and remove the three input files (only the very files that were
    /// read: a file replaced or turned into a link since is left alone, with a WARNING; the exit
    /// code stays 0 as the registration is done).
    #[arg(long)]
    shred_input: bool,
    /// Replace an existing registration (the old identity stays until the new one is active).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The HTTP proxy to the manager for this run (not stored in agent.conf):
    /// http://[user:password@]host[:port], or `none` to connect directly. Default: agent.conf's
    /// PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY.
    #[arg(long, value_name = "URL|none")]
    proxy: Option<String>,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The manager (CM_HOST[:PORT] or https://URL), or `silent FILE`.
    #[arg(value_name = "CM_HOST[:PORT]|URL", num_args = 1..=2, required = true)]
    target: Vec<String>,
}

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
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
                // The JSON says it too (`input_shredded`, `shred.not_shredded`); stderr keeps the
                // warning visible to whoever runs it.
                for file in report.shred.iter().flat_map(|shred| &shred.not_shredded) {
                    eprintln!(
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
            eprintln!("register_host: error: {error}");
            ExitCode::from(error.exit_status().code())
        }
    }
}

/// `-token=T` (one dash, as the product's Windows installer passes it) becomes `--token=T`.
fn normalize_product_spellings(
    arguments: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    const PRODUCT_FLAGS: [&str; 8] = [
        "token",
        "agent",
        "description",
        "extcertdir",
        "agent-root",
        "cm-ca",
        "cm-fingerprint",
        "json",
    ];
    arguments
        .map(|argument| {
            let Some(text) = argument.to_str() else {
                return argument;
            };
            if let Some(rest) = text.strip_prefix('-')
                && !rest.starts_with('-')
            {
                let name = rest.split('=').next().unwrap_or_default();
                if PRODUCT_FLAGS.contains(&name) {
                    return format!("--{rest}").into();
                }
            }
            argument
        })
        .collect()
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
            eprintln!("register_host: warning: {warning}");
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
            eprintln!(
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
    if let Some(proxy) = &cli.proxy {
        agent::manager::set_proxy_override(proxy)?;
    }
    let silent = match cli.target.as_slice() {
        [word, file] if word == "silent" => {
            // It may hold REG_TOKEN: read like any secret file (no links, bounded, mode warned).
            let read = agent::secrets::read_secret_file(
                std::path::Path::new(file),
                "the silent registration file",
                "reading the silent registration file",
            )?;
            for warning in &read.warnings {
                eprintln!("register_host: warning: {warning}");
            }
            let silent = agent_config::SilentFile::parse(&read.text, file)?;
            for key in &silent.ignored_keys {
                eprintln!("register_host: note: {file}: {key} is not used by this agent");
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
        (Some(ca), _) => TrustChoice::CaFile(ca),
        (None, Some(fingerprint)) => TrustChoice::Fingerprint(fingerprint),
        (None, None) => match (&silent.cm_ca_file, &silent.cm_fingerprint) {
            (Some(ca), _) => TrustChoice::CaFile(ca.clone()),
            (None, Some(fingerprint)) => TrustChoice::Fingerprint(fingerprint.clone()),
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
    };
    let root = agent::paths::AgentRoot::resolve(cli.agent_root.as_deref());
    agent::register::register(&root, &options, SystemTime::now())
}

fn print_summary(report: &agent::register::RegistrationReport) {
    println!(
        "Registered with {} as client {} ({}).",
        report.manager_url, report.client_id, report.client_name
    );
    println!(
        "  certificate:  {} (expires {})",
        report.common_name, report.not_after
    );
    println!("  fingerprint:  {}", report.sha256_fingerprint);
    println!("  pem store:    {}", report.agent_pem.display());
    println!("  agent.conf:   {}", report.agent_conf.display());
    for warning in &report.warnings {
        println!("  warning:      {warning}");
    }
    if report.input_shredded {
        println!("The input files were overwritten and removed.");
    } else if let Some(shred) = &report.shred {
        // --shred-input, but not every file could be shredded: the registration stands (exit 0),
        // and each file left is named on stderr, so scripts and logs see it.
        for path in &shred.shredded {
            println!("  shredded:     {}", path.display());
        }
        for file in &shred.not_shredded {
            eprintln!(
                "register_host: WARNING: {} was NOT shredded: {}. Check the certificate folder and remove the key material by hand.",
                file.path.display(),
                file.reason
            );
        }
    } else {
        println!(
            "The input files are no longer needed: remove or shred them (or rerun with --shred-input next time)."
        );
    }
}
