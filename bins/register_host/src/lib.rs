//! `register_host`'s command line: the clap definition (which `cargo xtask man` also turns into
//! the man page and the shell completions) and the product's single-dash spellings. The program
//! itself is `src/main.rs`.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// The text after `--help`: the certificate folder, the token, precedence, proxy, spellings.
pub const AFTER_HELP: &str = "\
The certificate directory holds client_cert.pem, client_key.pem (passphrase-encrypted) and passphrase.

The registration token: prefer --token-file FILE, --token - (one line from standard input) or the REG_TOKEN environment variable. A token written on the command line (--token T) is visible to every local user (ps, /proc/PID/cmdline) while register_host runs.

Precedence: a command-line flag (--token, --token-file) wins over the environment (REG_TOKEN, EXTERNAL_CERT_DIR), which wins over the silent file.

Proxy: --proxy wins over PROXY in an existing agent.conf, which wins over https_proxy/HTTPS_PROXY/all_proxy/ALL_PROXY with no_proxy/NO_PROXY (HTTP_PROXY is not used: the manager is https). --proxy is not stored; set PROXY in agent.conf for vmd. A proxy password given with --proxy is visible to local users (ps): prefer PROXY in agent.conf or HTTPS_PROXY.

The product's single-dash spellings work too: -token=T -agent=NAME -description=TEXT -extcertdir=DIR.

Silent registration: register_host [flags] silent FILE, with SERVER_HOSTNAME (may carry :port), REG_TOKEN, AGENT_HOST_NAME, HOST_DESC, EXTERNAL_CERT_DIR, CM_CA_FILE or CM_FINGERPRINT.

Exit codes: 0 ok, 2 usage, 3 local input invalid (files, key, passphrase, configuration, pem store), 4 refused by the manager, 5 manager unreachable or TLS failed.";

/// The command line (see `--help`).
#[derive(Parser)]
#[command(
    name = "register_host",
    about = "Register this host with the manager using an external client certificate.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The agent root (default: $CTE_AGENT_ROOT or /opt/vormetric/DataSecurityExpert/agent).
    #[arg(long, value_name = "DIR")]
    pub agent_root: Option<PathBuf>,
    /// The registration token created on the manager; `-` reads one line from standard input.
    /// Prefer --token-file or REG_TOKEN: a token on the command line is visible to other users.
    #[arg(long, value_name = "TOKEN|-")]
    pub token: Option<String>,
    /// A file holding the registration token (first line; links are not followed; warns when
    /// group or others can read it).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The name to register this host under (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// A description shown on the manager.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The external certificate directory (default: $EXTERNAL_CERT_DIR).
    #[arg(long, value_name = "DIR")]
    pub extcertdir: Option<PathBuf>,
    /// A PEM file of CA certificates the manager's web certificate must chain to.
    #[arg(long, value_name = "FILE", conflicts_with = "cm_fingerprint")]
    pub cm_ca: Option<PathBuf>,
    /// The SHA-256 fingerprint of the manager's web certificate (hex, colons optional).
    #[arg(long, value_name = "SHA256")]
    pub cm_fingerprint: Option<String>,
    /// After success, overwrite and remove the three input files (only the very files that were
    /// read: a file replaced or turned into a link since is left alone, with a WARNING; the exit
    /// code stays 0 as the registration is done).
    #[arg(long)]
    pub shred_input: bool,
    /// Replace an existing registration (the old identity stays until the new one is active).
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Where the identity's data key is sealed (written to agent.conf as KEY_PROTECTOR): `auto`
    /// (the TPM when the host has one, DPAPI on Windows, else a key file), `tpm`, `dpapi`
    /// (Windows) or `file`.
    /// Default: agent.conf's, else auto.
    #[arg(long, value_name = "auto|tpm|dpapi|file", value_parser = ["auto", "tpm", "dpapi", "file"])]
    pub key_protector: Option<String>,
    /// How the TPM is reached, as a tpm2-tss TCTI (written to agent.conf as TPM_TCTI).
    /// Default: device:/dev/tpmrm0.
    #[arg(long, value_name = "TCTI")]
    pub tpm_tcti: Option<String>,
    /// Bind the TPM-sealed key to these PCRs of the SHA-256 bank, for example `7` (Secure Boot
    /// state); written to agent.conf as TPM_PCRS. A firmware, boot loader or kernel update that
    /// changes them locks the key out until the host registers again. Default: no binding.
    #[arg(long, value_name = "PCR[,PCR...]", value_parser = pcr_list)]
    pub tpm_pcrs: Option<String>,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The HTTP proxy to the manager for this run (not stored in agent.conf):
    /// http://[user:password@]host[:port], or `none` to connect directly. Default: agent.conf's
    /// PROXY, else HTTPS_PROXY/ALL_PROXY/NO_PROXY.
    #[arg(long, value_name = "URL|none")]
    pub proxy: Option<String>,
    // The text is clap's --help output, not Markdown: keep its brackets as they are.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// The manager (CM_HOST[:PORT] or https://URL), or `silent FILE`.
    #[arg(value_name = "CM_HOST[:PORT]|URL", num_args = 1..=2, required = true)]
    pub target: Vec<String>,
}

/// The clap command, for the man page and the shell completions.
pub fn command() -> clap::Command {
    Cli::command()
}

/// The long options the product also accepts with one dash (`-token=T`, as the product's Windows
/// installer passes them).
pub const PRODUCT_FLAGS: [&str; 8] = [
    "token",
    "agent",
    "description",
    "extcertdir",
    "agent-root",
    "cm-ca",
    "cm-fingerprint",
    "json",
];

/// `-token=T` (one dash, as the product's Windows installer passes it) becomes `--token=T`.
pub fn normalize_product_spellings(
    arguments: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
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

/// `--tpm-pcrs`: checked here (clap then names the flag in its error), read again by
/// [`agent::parse_pcrs`].
fn pcr_list(value: &str) -> Result<String, String> {
    agent::parse_pcrs(value).map(|_| value.to_owned())
}
