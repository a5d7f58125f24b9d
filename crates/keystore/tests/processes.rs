//! Tests that need other processes: crash safety (a child is killed with SIGKILL at every named
//! crash point of stage, activate, rollback and discard) and two writers at once.
//!
//! The children are this test binary itself, re-run with a filter naming
//! [`child_process_helper`] (`--exact --ignored`) and environment variables saying what to do.
//! The crash points exist because this crate's dev-dependency on itself enables its
//! `fault-injection` feature.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use common::{P384, RENEWAL_P384, RENEWAL_RSA3072, RSA3072, created_at, identity};
use keystore::{Fingerprint, LockWait};

const ACTION: &str = "KEYSTORE_TEST_CHILD_ACTION";
const AGENT_ROOT: &str = "KEYSTORE_TEST_AGENT_ROOT";
const VECTOR: &str = "KEYSTORE_TEST_VECTOR";
const FAIL_FAST: &str = "KEYSTORE_TEST_FAIL_FAST";
/// The exit code of a child whose writer found the store locked.
const LOCKED_EXIT_CODE: i32 = 75;

/// Run by the tests below as a child process; does nothing when run directly.
#[test]
#[ignore = "helper: run as a child process by the crash and lock tests"]
fn child_process_helper() {
    let Ok(action) = std::env::var(ACTION) else {
        return;
    };
    let root = PathBuf::from(std::env::var(AGENT_ROOT).unwrap());
    let lock_wait = if std::env::var_os(FAIL_FAST).is_some() {
        LockWait::FailFast
    } else {
        LockWait::UpTo(Duration::from_secs(20))
    };
    let store = common::open_or_create(&root)
        .unwrap()
        .with_lock_wait(lock_wait);
    let result = match action.as_str() {
        "stage-and-activate" => {
            let vector = std::env::var(VECTOR).unwrap();
            store
                .stage(&identity(&vector), created_at())
                .and_then(|generation| store.activate(generation))
                .map(drop)
        }
        "rollback" => store.rollback().map(drop),
        "discard-staged" => {
            let staged = store.status().unwrap().staged().next().unwrap().id;
            store.discard_staged(staged)
        }
        other => panic!("unknown action {other}"),
    };
    match result {
        Ok(()) => {}
        Err(keystore::Error::Locked { .. }) => std::process::exit(LOCKED_EXIT_CODE),
        Err(error) => panic!("{error}"),
    }
}

fn child(root: &Path, action: &str, environment: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ACTION, action)
        .env(AGENT_ROOT, root)
        .env_remove("KEYSTORE_CRASH_AT")
        .env_remove("KEYSTORE_CRASH_POINTS_LOG")
        .env_remove("KEYSTORE_PAUSE_AT")
        .env_remove(FAIL_FAST)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(tcti) = common::tpm_tcti() {
        command.env(common::TPM_TCTI_VARIABLE, tcti);
    }
    for (name, value) in environment {
        command.env(name, value);
    }
    command
}

fn run(mut command: Command) -> (ExitStatus, String) {
    let output = command.output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One operation to interrupt: how to prepare the store, what the child does, and which
/// identities are acceptable afterwards (`None`: not registered).
struct Scenario {
    name: &'static str,
    prepare: fn(&Path),
    action: &'static str,
    vector: &'static str,
    old: Option<&'static str>,
    new: Option<&'static str>,
}

fn prepare_empty(root: &Path) {
    common::open_or_create(root).unwrap();
}

fn prepare_registered(root: &Path) {
    let store = common::open_or_create(root).unwrap();
    let generation = store.stage(&identity(P384), created_at()).unwrap();
    store.activate(generation).unwrap();
}

/// Current: RENEWAL_P384 (generation 2), previous: P384 (generation 1).
fn prepare_renewed(root: &Path) {
    prepare_registered(root);
    let store = common::open(root).unwrap();
    let generation = store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
    store.activate(generation).unwrap();
}

/// Current: P384, plus a staged RENEWAL_P384.
fn prepare_staged(root: &Path) {
    prepare_registered(root);
    let store = common::open(root).unwrap();
    store.stage(&identity(RENEWAL_P384), created_at()).unwrap();
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "first registration",
        prepare: prepare_empty,
        action: "stage-and-activate",
        vector: RSA3072,
        old: None,
        new: Some(RSA3072),
    },
    Scenario {
        name: "renewal (with pruning)",
        prepare: prepare_renewed,
        action: "stage-and-activate",
        vector: RSA3072,
        old: Some(RENEWAL_P384),
        new: Some(RSA3072),
    },
    Scenario {
        name: "rollback",
        prepare: prepare_renewed,
        action: "rollback",
        vector: "",
        old: Some(RENEWAL_P384),
        new: Some(P384),
    },
    Scenario {
        name: "discard staged",
        prepare: prepare_staged,
        action: "discard-staged",
        vector: "",
        old: Some(P384),
        new: Some(P384),
    },
];

/// Runs the scenario once without crashing, logging the crash points reached, in order.
fn crash_points(scenario: &Scenario) -> Vec<String> {
    let root = tempfile::tempdir().unwrap();
    (scenario.prepare)(root.path());
    let log = root.path().join("points.log");
    let (status, stderr) = run(child(
        root.path(),
        scenario.action,
        &[
            (VECTOR, scenario.vector),
            ("KEYSTORE_CRASH_POINTS_LOG", log.to_str().unwrap()),
        ],
    ));
    assert!(status.success(), "{}: {status}\n{stderr}", scenario.name);
    let mut points: Vec<String> = Vec::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        if !points.iter().any(|point| point == line) {
            points.push(line.to_owned());
        }
    }
    check_recovered(root.path(), scenario, scenario.new, "no crash");
    points
}

/// Checks that the store under `root` holds exactly one of the scenario's acceptable
/// identities, complete and verified, and that a writer can carry on from there.
/// Returns which one it holds.
fn check_recovered(
    root: &Path,
    scenario: &Scenario,
    expected: Option<&str>,
    point: &str,
) -> &'static str {
    let context = format!("{} / crashed at {point}", scenario.name);
    let store = common::open(root).unwrap_or_else(|error| panic!("{context}: {error}"));
    let fingerprint_of = |vector: Option<&str>| -> Option<Fingerprint> {
        vector.map(|vector| identity(vector).certificate().fingerprint)
    };
    let found = if store.is_registered().unwrap() {
        let current = store
            .current()
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        let verification = store
            .verify()
            .unwrap_or_else(|error| panic!("{context}: {error}"));
        let fingerprint = current.certificate().fingerprint;
        assert_eq!(
            verification.generation.fingerprint, fingerprint,
            "{context}"
        );
        assert!(
            !verification.agent_pem_repaired,
            "{context}: open should have repaired agent.pem"
        );
        assert_eq!(
            std::fs::read_to_string(store.agent_pem_path()).unwrap(),
            current.chain_pem(),
            "{context}"
        );
        let vector = [scenario.old, scenario.new]
            .into_iter()
            .flatten()
            .find(|vector| Some(fingerprint) == fingerprint_of(Some(vector)))
            .unwrap_or_else(|| panic!("{context}: an identity from neither before nor after"));
        assert_eq!(
            current.key().pkcs8_der(),
            identity(vector).key().pkcs8_der(),
            "{context}"
        );
        Some(vector)
    } else {
        assert!(!store.agent_pem_path().exists(), "{context}");
        None
    };
    assert!(
        found == scenario.old || found == scenario.new,
        "{context}: found {found:?}"
    );
    if let Some(expected) = expected {
        assert_eq!(found, Some(expected), "{context}");
    }

    // A writer carries on: a further renewal works and cleans up what the crash left.
    let next = store
        .stage(&identity(RENEWAL_RSA3072), created_at())
        .unwrap();
    store.activate(next).unwrap();
    assert_eq!(
        store.current().unwrap().certificate().fingerprint,
        identity(RENEWAL_RSA3072).certificate().fingerprint,
        "{context}"
    );
    for file in common::all_files(root) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.ends_with(".tmp") && !file.to_string_lossy().contains(".trash"),
            "{context}: leftover {}",
            file.display()
        );
    }
    let key_files = common::all_files(&root.join("vmd/keys")).len();
    let generations = store.status().unwrap().generations.len();
    assert_eq!(key_files, generations, "{context}: orphan key files");

    match found {
        None => "not registered",
        Some(vector) if Some(vector) == scenario.old && Some(vector) == scenario.new => "same",
        Some(vector) if Some(vector) == scenario.old => "old",
        Some(_) => "new",
    }
}

#[test]
fn a_crash_at_any_point_leaves_the_old_or_the_new_identity() {
    crash_at_every_point();
}

/// The same with the TPM key protector (swtpm; SKIPPED without it): the key sealed, or not yet,
/// at every point a SIGKILL can stop a writer.
#[cfg(all(feature = "tpm", target_os = "linux"))]
#[test]
fn with_the_tpm_protector_a_crash_at_any_point_leaves_the_old_or_the_new_identity() {
    let host = tempfile::tempdir().unwrap();
    let Some(tpm) = test_support::swtpm::Swtpm::start(host.path()) else {
        eprintln!("SKIPPED: swtpm is not installed (.ci/run installs it)");
        return;
    };
    common::use_tpm(Some(tpm.tcti()));
    crash_at_every_point();
    common::use_tpm(None);
}

fn crash_at_every_point() {
    let started = Instant::now();
    let mut total = 0;
    let mut all_names = std::collections::BTreeSet::new();
    for scenario in &SCENARIOS {
        let points = crash_points(scenario);
        assert!(points.len() >= 4, "{}: {points:?}", scenario.name);
        let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
        println!("{}: {} crash points", scenario.name, points.len());
        for point in &points {
            let root = tempfile::tempdir().unwrap();
            (scenario.prepare)(root.path());
            let (status, stderr) = run(child(
                root.path(),
                scenario.action,
                &[(VECTOR, scenario.vector), ("KEYSTORE_CRASH_AT", point)],
            ));
            assert_eq!(
                status.signal(),
                Some(9),
                "{} / {point}: the child was not killed: {status}\n{stderr}",
                scenario.name
            );
            let outcome = check_recovered(root.path(), scenario, None, point);
            println!("  killed at {point:<42} -> {outcome}");
            *outcomes.entry(outcome).or_default() += 1;
            all_names.insert(point.clone());
            total += 1;
        }
        println!("  outcomes: {outcomes:?}");
    }
    println!(
        "{total} crashes at {} distinct crash points, {:.1} s",
        all_names.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(all_names.len() >= 20, "{all_names:?}");
}

fn wait_for(path: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended before reaching the pause: {status}");
        }
        assert!(Instant::now() < deadline, "the child never paused");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_second_writer_fails_fast_or_waits_while_another_holds_the_lock() {
    let root = tempfile::tempdir().unwrap();
    prepare_registered(root.path());
    let marker = root.path().join("paused");
    // The first writer pauses with the lock held, just after its generation folder appeared.
    let mut first = child(
        root.path(),
        "stage-and-activate",
        &[
            (VECTOR, RENEWAL_P384),
            ("KEYSTORE_PAUSE_AT", "stage.generation.renamed"),
            ("KEYSTORE_PAUSE_MARKER", marker.to_str().unwrap()),
            ("KEYSTORE_PAUSE_MS", "1500"),
        ],
    )
    .spawn()
    .unwrap();
    wait_for(&marker, &mut first);

    // Another process that does not wait is refused.
    let (status, stderr) = run(child(
        root.path(),
        "stage-and-activate",
        &[(VECTOR, RSA3072), (FAIL_FAST, "1")],
    ));
    assert_eq!(status.code(), Some(LOCKED_EXIT_CODE), "{stderr}");
    // So is this one, and its error says why.
    let store = common::open(root.path()).unwrap();
    let error = common::open(root.path())
        .unwrap()
        .with_lock_wait(LockWait::FailFast)
        .stage(&identity(RSA3072), created_at())
        .unwrap_err();
    assert_eq!(error.kind(), "Locked");
    assert!(
        error.to_string().contains("locked by another process"),
        "{error}"
    );
    // Readers are not blocked and see the old identity, complete.
    assert_eq!(
        store.current().unwrap().certificate().fingerprint,
        identity(P384).certificate().fingerprint
    );

    // A writer that waits gets its turn after the first one.
    let waited = Instant::now();
    let generation = common::open(root.path())
        .unwrap()
        .with_lock_wait(LockWait::UpTo(Duration::from_secs(20)))
        .stage(&identity(RSA3072), created_at())
        .unwrap();
    assert!(waited.elapsed() > Duration::from_millis(300));
    let status = first.wait_with_output().unwrap();
    assert!(status.status.success(), "{status:?}");

    assert_eq!(generation.number(), 3);
    assert_eq!(
        store.current().unwrap().certificate().fingerprint,
        identity(RENEWAL_P384).certificate().fingerprint
    );
    store.activate(generation).unwrap();
    store.verify().unwrap();
    assert_eq!(store.status().unwrap().generations.len(), 2);
}

#[test]
fn two_processes_importing_at_once_do_not_corrupt_the_store() {
    for fail_fast in [false, true] {
        let root = tempfile::tempdir().unwrap();
        prepare_registered(root.path());
        let environment = |vector| {
            let mut environment = vec![(VECTOR, vector)];
            if fail_fast {
                environment.push((FAIL_FAST, "1"));
            }
            environment
        };
        let first = child(root.path(), "stage-and-activate", &environment(RSA3072))
            .spawn()
            .unwrap();
        let second = child(
            root.path(),
            "stage-and-activate",
            &environment(RENEWAL_P384),
        )
        .spawn()
        .unwrap();
        let mut winners = Vec::new();
        for (child, vector) in [(first, RSA3072), (second, RENEWAL_P384)] {
            let output = child.wait_with_output().unwrap();
            match output.status.code() {
                Some(0) => winners.push(vector),
                Some(LOCKED_EXIT_CODE) if fail_fast => {}
                _ => panic!(
                    "{:?}\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        }
        if !fail_fast {
            assert_eq!(winners.len(), 2);
        }
        assert!(!winners.is_empty());

        let store = common::open(root.path()).unwrap();
        let current = store.current().unwrap();
        let verification = store.verify().unwrap();
        assert!(!verification.agent_pem_repaired);
        assert!(
            winners
                .iter()
                .any(|vector| identity(vector).certificate().fingerprint
                    == current.certificate().fingerprint)
        );
        // Current and previous; with fail-fast, perhaps also a generation whose writer staged
        // it but then found the lock taken when activating.
        let status = store.status().unwrap();
        assert!((2..=3).contains(&status.generations.len()), "{status:?}");
        for generation in &status.generations {
            generation.info.as_ref().unwrap();
        }
    }
}
