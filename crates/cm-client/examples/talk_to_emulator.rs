//! Parses manager and proxy addresses, then talks to an in-process manager emulator on
//! 127.0.0.1: reads its web certificate fingerprint, gets a login refused, and shows how each
//! failure is classified ([`cm_client::Certainty`]).
//!
//! Run with `cargo run --example talk_to_emulator -p cm-client`.

use cm_client::{Error, ManagerClient, ManagerUrl, Options, ProxySetting, ServerTrust};
use cm_emulator::{Emulator, EmulatorConfig};

fn show(call: &str, error: &Error) {
    println!(
        "{call}: {:?} (codeDesc: {:?}): {error}",
        error.certainty(),
        error.code_desc()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Addresses, as an administrator may write them.
    for text in [
        "cm.example.com",
        "https://cm.example.com:8443/api",
        "[::1]:443",
    ] {
        let url = ManagerUrl::parse(text)?;
        println!("{text:?} -> {url} {:?}", url.host_and_port());
    }
    if let Err(error) = ManagerUrl::parse("http://cm.example.com") {
        show("ManagerUrl::parse", &error);
    }
    let proxy = ProxySetting::parse("http://user:secret@proxy.example.com:3128")?;
    println!("proxy (password hidden): {proxy:?}");

    // A manager on 127.0.0.1, verified by its web CA; no proxy, whatever the environment says.
    let state = tempfile::tempdir()?;
    let emulator = Emulator::start(EmulatorConfig::new(state.path()))?;
    let trust = ServerTrust::from_pem(&std::fs::read(emulator.web_ca_path())?)?;
    let options = Options {
        proxy: ProxySetting::None,
        retries: 0,
        ..Options::default()
    };
    let client = ManagerClient::new(
        ManagerUrl::parse(emulator.url())?,
        trust.clone(),
        None,
        options.clone(),
    )?;
    println!(
        "web certificate fingerprint: {}",
        client.webcert_fingerprint()?
    );

    // Without a client certificate, a login is refused: a definite answer.
    match client.login("no-such-client") {
        Ok(_) => panic!("a login without a client certificate succeeded"),
        Err(error) => show("login", &error),
    }
    emulator.shutdown();

    // Nobody listens any more: the outcome is indefinite (the agent retries later).
    let (host, port) = client.url().host_and_port();
    let gone = ManagerClient::new(
        ManagerUrl::parse(&format!("{host}:{port}"))?,
        trust,
        None,
        options,
    )?;
    match gone.webcert_fingerprint() {
        Ok(_) => panic!("the stopped emulator answered"),
        Err(error) => show("webcert_fingerprint", &error),
    }
    Ok(())
}
