//! Parses an `agent.conf` text into typed settings, rewrites one value while keeping the
//! administrator's comments, and reads a silent-registration file.
//!
//! Run with `cargo run --example parse_agent_conf -p agent-config`.

use agent_config::{AgentSettings, ConfigFile, SilentFile, keys};

const AGENT_CONF: &str = "\
# Written by register_host; comments and unknown keys are kept.
URL=https://cm.example.com:8443
CLIENT_ID=host1-7f3a
CLIENT_NAME=host1.example
CM_FINGERPRINT=AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89
RENEW_DAYS_BEFORE_EXPIRY=45
MY_OWN_NOTE=kept as is
";

const SILENT: &str = "\
SERVER_HOSTNAME=cm.example.com
REG_TOKEN=not-a-real-token
AGENT_HOST_NAME=host1.example
EXTERNAL_CERT_DIR=/root/cert_files
AGENT_USEIP=1
";

fn main() -> Result<(), agent_config::Error> {
    let mut file = ConfigFile::parse_named(AGENT_CONF, "agent.conf")?;
    let settings = AgentSettings::from_file(&file, "agent.conf")?;
    println!(
        "manager {} ({:?}), client {} as {:?}, renew {} days before expiry, retry every {} h, stagger {} h, upload {:?} and above, heartbeat every {} min, proxy {:?}",
        settings.url,
        settings.manager_trust,
        settings.client_id,
        settings.client_name,
        settings.renew_days_before_expiry,
        settings.renew_retry_hours,
        settings.renew_stagger_hours,
        settings.log_upload_level,
        settings.status_interval_minutes,
        settings.proxy,
    );

    // Rewriting one value leaves every other line as it was.
    file.set(keys::EXTERNAL_CERT_DIR, "/root/cert_files");
    print!("rewritten:\n{}", file.render());

    // A malformed value is refused by key, without echoing the value.
    let broken = ConfigFile::parse("URL=https://cm\nCLIENT_ID=x\nCM_FINGERPRINT=secret?\n")?;
    match AgentSettings::from_file(&broken, "agent.conf") {
        Ok(_) => panic!("a malformed fingerprint was accepted"),
        Err(error) => println!("refused: {error}"),
    }

    // A silent-registration file; Debug hides the token.
    let silent = SilentFile::parse(SILENT, "silent.txt")?;
    println!(
        "silent file: {silent:?}; ignored keys: {:?}",
        silent.ignored_keys
    );
    Ok(())
}
