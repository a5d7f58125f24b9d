//! Manager faults during renewal: the manager down, its TLS certificate changed, 5xx answers,
//! a refusal, the manager accepting and the connection dropping before the answer arrives, and
//! the new identity's first login refused. Each runs the real `vmd --once` against the real
//! emulator, through the misbehaving test double where a fault must be injected between them.
//!
//! After every scenario: the host has a complete identity that the manager accepts (no lost
//! identity), the next check follows the documented schedule (5 minutes, doubling, after the
//! manager could not be reached or the outcome was unknown; the stage's interval after a
//! refusal), a fault-free retry completes the renewal (the emulator accepts the repeated push),
//! and the secret-hygiene checks hold. When the renewal's outcome is unknown (5xx, the answer
//! lost), nothing is rolled back or discarded: the journal stays in phase `pushing` with the
//! candidate staged, and the next check settles it by logging in with the candidate. Otherwise
//! no journal is left behind. `vmd --once` is a health check: it exits 0 whenever the manager
//! accepts the host's identity and renewal is not overdue, also when this renewal failed. The
//! crash points of the renewal journal are covered by `renewal.rs` (SIGKILL at each step); this
//! file covers the manager's side.

mod common;
mod hostile;

use std::process::Output;
use std::sync::Mutex;

use agent::paths::AgentRoot;
use hostile::fake_manager::{FakeManager, Reply, Upstream, http};
use hostile::{Host, PASSPHRASE, assert_hygiene, text};
use test_pki::IssuedCertificate;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

/// A proxy in front of the host's emulator, answering `path` suffixes by `script`, and
/// agent.conf pointed at it.
fn proxied(
    host: &Host,
    renewal: &IssuedCertificate,
    script: impl Fn(&str, &str, usize) -> Reply + Send + Sync + 'static,
) -> FakeManager {
    let proxy = FakeManager::start(
        script,
        Some(Upstream {
            base_url: host.manager.url(),
            ca_pem: std::fs::read(host.manager.web_ca_path()).unwrap(),
            identities: Mutex::new(Vec::new()),
        }),
    );
    for issued in [&host.current, renewal] {
        proxy.add_identity(
            issued
                .chain_der()
                .iter()
                .map(|certificate| certificate.to_vec())
                .collect(),
            issued.key_pkcs8_pem().to_string(),
        );
    }
    point_at(host, proxy.address(), Some(proxy.fingerprint()));
    proxy
}

/// Rewrites agent.conf's URL, and the trust when a fingerprint is given.
fn point_at(host: &Host, address: &str, fingerprint: Option<&str>) {
    let mut conf = agent_config::ConfigFile::read(&host.conf_path()).unwrap();
    conf.set("URL", &format!("https://{address}"));
    if let Some(fingerprint) = fingerprint {
        conf.remove("CM_CA_FILE");
        conf.set("CM_FINGERPRINT", fingerprint);
    }
    write_private(&host.conf_path(), conf.render().as_bytes());
}

fn point_at_emulator(host: &Host) {
    let mut conf = agent_config::ConfigFile::read(&host.conf_path()).unwrap();
    conf.set("URL", &host.manager.url());
    conf.remove("CM_FINGERPRINT");
    conf.set(
        "CM_CA_FILE",
        &host
            .root
            .path()
            .join("vmd/etc/cm-ca.pem")
            .display()
            .to_string(),
    );
    write_private(&host.conf_path(), conf.render().as_bytes());
}

fn write_private(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn fingerprint(issued: &IssuedCertificate) -> String {
    cert_loading::Fingerprint::of(issued.certificate_der()).to_string()
}

/// Seconds since the epoch of an RFC 3339 UTC time as the agent writes it.
fn epoch_seconds(text: &str) -> u64 {
    text.parse::<der::DateTime>()
        .unwrap_or_else(|error| panic!("{text:?} is not RFC 3339 UTC: {error}"))
        .unix_duration()
        .as_secs()
}

/// The delay from the last check to the next one that status.json records.
fn scheduled_delay(host: &Host) -> u64 {
    let status = host.status();
    epoch_seconds(status["next_check"].as_str().unwrap())
        - epoch_seconds(status["last_check"].as_str().unwrap())
}

/// What the journal must say after a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Journal {
    /// Settled: no journal.
    None,
    /// The renewal's outcome is unknown: phase `pushing` for the renewal, which is still staged.
    Pushing,
}

/// What must hold after any fault: a complete identity that is one of the two, that the
/// manager accepts for a login now, the journal as expected, and the hygiene checks.
fn assert_identity_kept(
    scenario: &str,
    host: &Host,
    renewal: &IssuedCertificate,
    expected: &str,
    journal: Journal,
    output: &Output,
) {
    assert_eq!(host.current_fingerprint(), expected, "{scenario}: identity");
    let journal_path = host.root.path().join("vmd/run/renewal-journal.json");
    match journal {
        Journal::None => assert!(
            !journal_path.exists(),
            "{scenario}: a journal was left behind"
        ),
        Journal::Pushing => {
            let text = std::fs::read_to_string(&journal_path)
                .unwrap_or_else(|error| panic!("{scenario}: no journal: {error}"));
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["phase"], "pushing", "{scenario}: {text}");
            assert_eq!(
                value["candidate_fingerprint"],
                fingerprint(renewal),
                "{scenario}: {text}"
            );
            let status = agent::paths::AgentRoot::new(host.root.path())
                .open_store()
                .unwrap()
                .status()
                .unwrap();
            let staged: Vec<String> = status
                .staged()
                .filter_map(|generation| generation.info.as_ref().ok())
                .map(|info| info.fingerprint.to_string())
                .collect();
            assert!(
                staged.contains(&fingerprint(renewal)),
                "{scenario}: the candidate is no longer staged: {staged:?}"
            );
        }
    }
    let proxy_conf = std::fs::read(host.conf_path()).unwrap();
    point_at_emulator(host);
    agent::settings::Agent::load(&AgentRoot::new(host.root.path()))
        .and_then(|agent| {
            agent::renewal::heartbeat(
                &agent,
                &agent::logging::Logger::new("VMD", None, false),
                &agent::manager::TlsConnector::default(),
            )
        })
        .unwrap_or_else(|error| panic!("{scenario}: the kept identity cannot log in: {error}"));
    write_private(&host.conf_path(), &proxy_conf);
    assert_hygiene(
        scenario,
        host.root.path(),
        &[&host.current, renewal],
        &[PASSPHRASE, &host.token],
        &format!("{}{}", text(output), host.log()),
    );
}

/// A fault-free run against the emulator completes the renewal.
fn assert_retry_completes(scenario: &str, host: &Host, renewal: &IssuedCertificate) {
    point_at_emulator(host);
    let output = host.vmd(&["--once"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{scenario}: retry: {}",
        text(&output)
    );
    assert_eq!(
        host.current_fingerprint(),
        fingerprint(renewal),
        "{scenario}: retry; log:\n{}",
        host.log()
    );
    assert_eq!(
        host.manager_fingerprint(),
        fingerprint(renewal),
        "{scenario}: retry"
    );
    assert_hygiene(
        scenario,
        host.root.path(),
        &[&host.current, renewal],
        &[PASSPHRASE, &host.token],
        &format!("{}{}", text(&output), host.log()),
    );
    eprintln!("{scenario}: identity kept, schedule right, retry renewed");
}

fn count_faults(proxy: &FakeManager) -> usize {
    let faults = proxy
        .seen()
        .iter()
        .filter(|seen| seen.reply != "Forward")
        .count();
    eprintln!("{faults} faults injected by the proxy");
    faults
}

const RENEW: &str = "/self/client/renew";
const LOGIN: &str = "/auth/tokens/";

#[test]
fn the_manager_down_costs_a_short_retry_and_nothing_else() {
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    point_at(&host, &closed.to_string(), None);
    let pem_before = test_support::snapshot_tree(&host.root.path().join("vmd/pem"));
    let output = host.vmd(&["--once"]);
    eprintln!("3 faults injected: three refused connections (the first attempt and two retries)");
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        text(&output).contains("cannot connect"),
        "{}",
        text(&output)
    );
    assert_eq!(
        test_support::snapshot_tree(&host.root.path().join("vmd/pem")),
        pem_before
    );
    assert_eq!(host.status()["result"], "unreachable");
    assert_eq!(
        scheduled_delay(&host),
        5 * MINUTE,
        "first retry after 5 minutes"
    );
    assert_eq!(host.manager_fingerprint(), old);
    assert_identity_kept(
        "manager down",
        &host,
        &renewal,
        &old,
        Journal::None,
        &output,
    );
    assert_retry_completes("manager down", &host, &renewal);
}

#[test]
fn a_changed_manager_certificate_is_refused_before_anything_is_sent() {
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    // Another server answers at the manager's address with a certificate the CA did not issue.
    let impostor = FakeManager::start(|_, _, _| http(200, "application/json", b"{}"), None);
    point_at(&host, impostor.address(), None);
    let output = host.vmd(&["--once"]);
    eprintln!("1 fault injected: a handshake with an unknown certificate");
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("TLS"), "{}", text(&output));
    assert!(impostor.seen().is_empty(), "a request reached the impostor");
    assert_eq!(scheduled_delay(&host), 5 * MINUTE);
    assert_identity_kept(
        "TLS certificate changed",
        &host,
        &renewal,
        &old,
        Journal::None,
        &output,
    );
    assert_retry_completes("TLS certificate changed", &host, &renewal);
}

/// A 5xx to the renewal leaves its outcome unknown (the manager may have acted): WARNING
/// CGP3009W, both certificates kept, journal `pushing`, next check in 5 minutes. A 4xx is a
/// refusal: ERROR CGP3003E, the candidate discarded, next check after the stage's interval. With
/// 20 days left the host stays healthy either way, so `vmd --once` exits 0.
#[test]
fn server_errors_are_retried_as_unreachable_and_a_refusal_waits_for_the_next_check() {
    // (scenario, reply to the renewal push, exit code, pushes seen, delay to the next check,
    // message id, journal afterwards)
    let cases: [(&str, Reply, i32, usize, u64, &str, Journal); 3] = [
        (
            "500 on the renewal",
            http(500, "application/json", br#"{"codeDesc":"NCERRInternal","message":"db down"}"#),
            // Outcome unknown: not healthy until the next check settles it (exit 5).
            5,
            1,
            5 * MINUTE,
            "[CGP3009W]",
            Journal::Pushing,
        ),
        (
            "503 on every attempt",
            http(503, "text/html", b"<h1>Service Unavailable</h1>"),
            // Outcome unknown: not healthy until the next check settles it (exit 5).
            5,
            3,
            5 * MINUTE,
            "[CGP3009W]",
            Journal::Pushing,
        ),
        (
            "403 refusal",
            http(
                403,
                "application/json",
                br#"{"code":403,"codeDesc":"NCERRCertificateNotTrusted","message":"not issued by the client's CA"}"#,
            ),
            0,
            1,
            24 * HOUR,
            "[CGP3003E]",
            Journal::None,
        ),
    ];
    // Every case is tried; the failures are listed at the end.
    let mut failed = Vec::new();
    for (scenario, reply, code, pushes, delay, message, journal) in cases {
        let tried = std::panic::catch_unwind(|| {
            server_error_case(scenario, reply, code, pushes, delay, message, journal);
        });
        if tried.is_err() {
            failed.push(scenario);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

fn server_error_case(
    scenario: &str,
    reply: Reply,
    code: i32,
    pushes: usize,
    delay: u64,
    message: &str,
    journal: Journal,
) {
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    let proxy = proxied(&host, &renewal, move |_, path, _| {
        if path.ends_with(RENEW) {
            reply.clone()
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{scenario}: {}",
        text(&output)
    );
    assert_eq!(proxy.seen_at(RENEW).len(), pushes, "{scenario}: pushes");
    assert_eq!(count_faults(&proxy), pushes, "{scenario}");
    assert!(
        text(&output).contains(message),
        "{scenario}: no {message}: {}",
        text(&output)
    );
    assert_eq!(scheduled_delay(&host), delay, "{scenario}: next check");
    assert_eq!(
        host.manager_fingerprint(),
        old,
        "{scenario}: the manager changed"
    );
    assert_identity_kept(scenario, &host, &renewal, &old, journal, &output);
    assert_retry_completes(scenario, &host, &renewal);
}

#[test]
fn a_503_then_success_renews_in_one_run() {
    let host = Host::registered(20);
    let renewal = host.place_renewal();
    let proxy = proxied(&host, &renewal, |_, path, index| {
        if path.ends_with(RENEW) && index == 0 {
            http(
                503,
                "application/json",
                br#"{"codeDesc":"NCERRBusy","message":"busy"}"#,
            )
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(proxy.seen_at(RENEW).len(), 2);
    assert_eq!(count_faults(&proxy), 1);
    assert_eq!(host.current_fingerprint(), fingerprint(&renewal));
    assert_eq!(host.manager_fingerprint(), fingerprint(&renewal));
    assert_identity_kept(
        "503 then success",
        &host,
        &renewal,
        &fingerprint(&renewal),
        Journal::None,
        &output,
    );
}

#[test]
fn accepted_then_the_connection_drops_before_the_answer() {
    // Once: the client's own retry repeats the push, the emulator accepts it again (200), and
    // the renewal completes in the same run.
    let host = Host::registered(20);
    let renewal = host.place_renewal();
    let proxy = proxied(&host, &renewal, |_, path, index| {
        if path.ends_with(RENEW) && index == 0 {
            Reply::ForwardThenDrop
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let pushes = proxy.seen_at(RENEW);
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert!(
        pushes.iter().all(|push| push.upstream_status == Some(200)),
        "the emulator accepted both the push and its repetition: {pushes:?}"
    );
    assert_eq!(count_faults(&proxy), 1);
    assert_eq!(host.current_fingerprint(), fingerprint(&renewal));
    assert_identity_kept(
        "accepted, answer lost once",
        &host,
        &renewal,
        &fingerprint(&renewal),
        Journal::None,
        &output,
    );

    // Every attempt: the manager now holds the new certificate but the host never heard. The
    // outcome is unknown (WARNING, exit 0: the old identity is still accepted and renewal is not
    // overdue); the host keeps its old identity, which the manager still accepts until the new
    // one first logs in, and keeps the candidate staged with the journal at `pushing`. The next
    // run probes with the candidate, which the manager accepts, and switches to it.
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    let proxy = proxied(&host, &renewal, |_, path, _| {
        if path.ends_with(RENEW) {
            Reply::ForwardThenDrop
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    // Unsettled: exit 5 (README, "Exit codes") until the next run settles it.
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(text(&output).contains("[CGP3009W]"), "{}", text(&output));
    assert_eq!(proxy.seen_at(RENEW).len(), 3);
    assert_eq!(count_faults(&proxy), 3);
    assert_eq!(
        host.manager_fingerprint(),
        fingerprint(&renewal),
        "the manager took it"
    );
    assert_eq!(scheduled_delay(&host), 5 * MINUTE);
    assert_identity_kept(
        "accepted, answer lost every time",
        &host,
        &renewal,
        &old,
        Journal::Pushing,
        &output,
    );
    assert_retry_completes("accepted, answer lost every time", &host, &renewal);
}

#[test]
fn the_login_connection_dropping_leaves_no_journal() {
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    let proxy = proxied(&host, &renewal, |_, path, _| {
        if path.ends_with(LOGIN) {
            Reply::Drop
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(proxy.seen_at(RENEW).is_empty());
    assert!(count_faults(&proxy) >= 3);
    assert_identity_kept(
        "login dropped",
        &host,
        &renewal,
        &old,
        Journal::None,
        &output,
    );
    assert_retry_completes("login dropped", &host, &renewal);
}

/// The manager accepts the renewal, then refuses the new identity's first login as not this
/// client's (401). The agent tries its other generations, finds the old one still accepted and
/// adopts it (WARNING CGP3006W; healthy, exit 0); the fault-free retry renews.
#[test]
fn the_new_identitys_first_login_refused_adopts_the_old_one_and_the_retry_renews() {
    let host = Host::registered(20);
    let old = fingerprint(&host.current);
    let renewal = host.place_renewal();
    // Logins: 0 = with the current certificate before the push, 1 = the confirmation with the
    // new one, refused.
    let proxy = proxied(&host, &renewal, |_, path, index| {
        if path.ends_with(LOGIN) && index == 1 {
            http(
                401,
                "application/json",
                br#"{"code":5,"codeDesc":"NCERRUnauthorizedAccess","message":"Invalid Client"}"#,
            )
        } else {
            Reply::Forward
        }
    });
    let output = host.vmd(&["--once"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let all = text(&output);
    assert!(all.contains("[CGP3006W]"), "{all}");
    assert!(
        all.contains(&format!(
            "no longer accepts certificate {} as this client's; it accepts {old}",
            fingerprint(&renewal)
        )),
        "{all}"
    );
    assert_eq!(count_faults(&proxy), 1);
    assert_eq!(host.status()["result"], "adopted");
    assert_eq!(scheduled_delay(&host), 24 * HOUR);
    assert_identity_kept(
        "first login refused",
        &host,
        &renewal,
        &old,
        Journal::None,
        &output,
    );
    assert_retry_completes("first login refused", &host, &renewal);
}
