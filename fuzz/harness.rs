//! The fuzz harnesses, one function per target. Shared by the cargo-fuzz targets in
//! `fuzz_targets/` (libFuzzer, `cargo xtask fuzz`) and by the stable smoke test
//! `crates/agent/tests/fuzz_smoke.rs`, which runs them over the seed corpora in `corpus/` and
//! deterministic mutations of them on every CI run. Each harness asserts properties beyond "does
//! not panic": secrets never appear in error messages or `Debug` output, messages from the
//! manager are single-line and bounded, and what parses round-trips.
//!
//! Inputs with several parts (certificate, key, passphrase) are split at [`SEPARATOR`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Separates the parts of a multi-part input.
pub const SEPARATOR: &[u8] = b"\n=====8<=====\n";

/// The fixed "now" of the harnesses (2026-06-01, as the committed vectors' tests use).
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// Splits `data` at [`SEPARATOR`] into exactly `count` parts (missing parts are empty, extra
/// separators stay in the last part).
pub fn split(data: &[u8], count: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(count);
    let mut rest = data;
    while parts.len() + 1 < count {
        match rest
            .windows(SEPARATOR.len())
            .position(|window| window == SEPARATOR)
        {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    while parts.len() < count {
        parts.push(&[]);
    }
    parts
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// A scratch folder for this thread (the loader reads files, as the agent does).
fn scratch() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static FOLDER: PathBuf = {
            let folder = std::env::temp_dir().join(format!(
                "cte-fuzz-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&folder).expect("scratch folder");
            folder
        };
    }
    FOLDER.with(Clone::clone)
}

/// Target `certificate_loading`: `client_cert.pem`, `client_key.pem` and `passphrase` bytes
/// (three parts), loaded as `register_host` and `vmd` load a folder.
///
/// Properties: no panic; an accepted set's key matches its certificate again through
/// `Identity::from_parts` (as the keystore rebuilds it); no error message or `Debug` output
/// depends on the passphrase (its bytes may occur in fixed text, and must stay when another
/// passphrase is used).
pub fn certificate_loading(data: &[u8]) {
    let parts = split(data, 3);
    let (certificate, key, passphrase) = (parts[0], parts[1], parts[2]);
    let folder = scratch();
    let write = |name: &str, bytes: &[u8]| std::fs::write(folder.join(name), bytes).expect("write");
    write("client_cert.pem", certificate);
    write("client_key.pem", key);
    write("passphrase", passphrase);
    let secret = passphrase
        .strip_suffix(b"\n")
        .map(|rest| rest.strip_suffix(b"\r").unwrap_or(rest))
        .unwrap_or(passphrase);

    // The PEM and certificate rules alone, as vmutil status and the keystore use them.
    if let Ok(chain) = cert_loading::parse_certificate_pem(Path::new("fuzz.pem"), certificate) {
        let _ = cert_loading::summarize_certificate(Path::new("fuzz.pem"), &chain);
    }

    let shown =
        match cert_loading::load_directory(&folder, &cert_loading::LoadOptions::default(), now()) {
            Ok(set) => {
                let identity = &set.identity;
                let rebuilt = cert_loading::Identity::from_parts(
                    Path::new("rebuilt"),
                    identity.chain().to_vec(),
                    identity.key().clone(),
                )
                .expect("an accepted identity rebuilds from its own parts");
                assert_eq!(
                    rebuilt.certificate().fingerprint,
                    identity.certificate().fingerprint
                );
                format!("{set:?}")
            }
            Err(error) => format!("{error} {error:?}"),
        };
    // The passphrase must not be shown. Its bytes may of course occur in fixed text (a short or
    // common passphrase): it leaked only if they disappear when another passphrase is used.
    if secret.len() >= 4 && contains(shown.as_bytes(), secret) {
        write("passphrase", &vec![0x01; secret.len()]);
        let other = match cert_loading::load_directory(
            &folder,
            &cert_loading::LoadOptions::default(),
            now(),
        ) {
            Ok(set) => format!("{set:?}"),
            Err(error) => format!("{error} {error:?}"),
        };
        assert!(
            contains(other.as_bytes(), secret),
            "the passphrase appears in what is shown: {shown}"
        );
    }
}

/// Target `agent_conf`: the text of `vmd/etc/agent.conf`.
///
/// Properties: no panic; a file that parses renders to text that parses to the same values
/// (rewriting keeps every key's value); setting a value changes that key only; the typed
/// settings either load or name the key that is wrong.
pub fn agent_conf(data: &[u8]) {
    // The agent reads the file with read_to_string: bytes that are not UTF-8 are refused there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = match agent_config::ConfigFile::parse(text) {
        Ok(file) => file,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let rendered = file.render();
    let again = agent_config::ConfigFile::parse(&rendered).expect("a rendered file parses");
    let keys: Vec<&str> = file.keys().collect();
    for key in &keys {
        assert_eq!(file.get(key), again.get(key), "{key} changed on rewrite");
    }
    let mut edited = file.clone();
    edited.set(agent_config::keys::CLIENT_ID, "fuzz-client");
    let edited = agent_config::ConfigFile::parse(&edited.render()).expect("parses");
    assert_eq!(
        edited.get(agent_config::keys::CLIENT_ID),
        Some("fuzz-client")
    );
    for key in keys
        .iter()
        .filter(|key| **key != agent_config::keys::CLIENT_ID)
    {
        assert_eq!(file.get(key), edited.get(key), "{key} changed by set");
    }
    match agent_config::AgentSettings::from_file(&file, "agent.conf") {
        Ok(settings) => {
            assert!(!settings.url.is_empty() && !settings.client_id.is_empty());
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("agent.conf"), "{message}");
        }
    }
}

/// Target `silent_file`: the text of a `register_host silent FILE` input.
///
/// Properties: no panic; `Debug` never depends on the registration token.
pub fn silent_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match agent_config::SilentFile::parse(text, "silent.txt") {
        Ok(silent) => {
            // Debug must not depend on the token: the same file with another token shows the same.
            let mut other = silent.clone();
            other.reg_token = silent
                .reg_token
                .as_ref()
                .map(|token| "\u{1}".repeat(token.len()));
            assert_eq!(
                format!("{silent:?}"),
                format!("{other:?}"),
                "the token changes the Debug output"
            );
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// Target `manager_response`: a status (first two bytes, big-endian, folded into 100..=599)
/// and a body, decoded as `cm-client` decodes every answer it reads.
///
/// Properties: no panic; every error message is one line and bounded, whatever the manager sent.
pub fn manager_response(data: &[u8]) {
    let (status, body) = match data {
        [high, low, body @ ..] => (100 + u16::from_be_bytes([*high, *low]) % 500, body),
        _ => (200, data),
    };
    let _ = cm_client::fuzzing::decode_every_answer(status, body);
    for message in cm_client::fuzzing::error_messages(status, body) {
        assert!(
            !message.contains(['\n', '\r', '\u{1b}']),
            "a manager answer put a control character in a message: {message:?}"
        );
        assert!(
            message.chars().count() <= 1200,
            "a manager answer made a message of {} characters",
            message.chars().count()
        );
    }
}
