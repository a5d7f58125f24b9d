//! Crash safety of [`durable_fs::replace_file`]: a child process is killed with SIGKILL at each
//! step of the write, and the target must then hold the whole old content or the whole new one,
//! never a mix and never nothing (when there was an old content).
//!
//! The children are this test binary itself, re-run with a filter naming
//! [`child_process_helper`] (`--exact --ignored`) and environment variables saying what to do,
//! as `crates/keystore/tests/processes.rs` does. A process kill keeps the page cache; the fsync
//! ordering that makes the same hold after a power cut is reasoned, not tested.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use durable_fs::Step;

const TARGET: &str = "DURABLE_FS_TEST_TARGET";
const CRASH_AT: &str = "DURABLE_FS_TEST_CRASH_AT";
const STEPS_LOG: &str = "DURABLE_FS_TEST_STEPS_LOG";
const UNIQUE: &str = "DURABLE_FS_TEST_UNIQUE_TEMPORARY";

/// Bigger than one page, so that a mix of old and new would show.
fn old_content() -> Vec<u8> {
    vec![b'o'; 10_000]
}

fn new_content() -> Vec<u8> {
    (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Run by the tests below as a child process; does nothing when run directly.
#[test]
#[ignore = "helper: run as a child process by the crash tests"]
fn child_process_helper() {
    let Some(target) = std::env::var_os(TARGET).map(PathBuf::from) else {
        return;
    };
    let crash_at = std::env::var(CRASH_AT).ok();
    let log = std::env::var_os(STEPS_LOG).map(PathBuf::from);
    let temporary = if std::env::var_os(UNIQUE).is_some() {
        durable_fs::unique_temporary_sibling(&target)
    } else {
        durable_fs::temporary_sibling(&target)
    };
    let mut observe = |step: Step| {
        if let Some(log) = &log {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap();
            writeln!(file, "{}", step.name()).unwrap();
        }
        if crash_at.as_deref() == Some(step.name()) {
            // SIGKILL cannot be caught: no destructor, flush or clean-up runs.
            let _ = Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
            std::process::abort();
        }
    };
    durable_fs::replace_file(&target, &new_content(), &temporary, &mut observe).unwrap();
}

fn child(target: &Path, unique: bool) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "child_process_helper",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TARGET, target)
        .env_remove(CRASH_AT)
        .env_remove(STEPS_LOG)
        .env_remove(UNIQUE)
        .stdout(std::process::Stdio::null());
    if unique {
        command.env(UNIQUE, "1");
    }
    command
}

/// The steps a child reaches when it is not killed.
fn steps_of_one_write(folder: &Path) -> Vec<String> {
    let target = folder.join("enumerate");
    let log = folder.join("steps.log");
    let status = child(&target, false).env(STEPS_LOG, &log).status().unwrap();
    assert!(status.success(), "uninterrupted child: {status:?}");
    assert_eq!(std::fs::read(&target).unwrap(), new_content());
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_kill_at_any_step_leaves_the_old_or_the_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let steps = steps_of_one_write(dir.path());
    let expected: Vec<&str> = Step::ALL.iter().map(|step| step.name()).collect();
    assert_eq!(steps, expected, "every step is reported, in order");

    let mut crashes = 0;
    for (index, step) in steps.iter().enumerate() {
        for with_old_content in [true, false] {
            for unique in [false, true] {
                let folder = dir
                    .path()
                    .join(format!("{step}-{with_old_content}-{unique}"));
                durable_fs::create_private_dir_all(&folder).unwrap();
                let target = folder.join("state.json");
                if with_old_content {
                    std::fs::write(&target, old_content()).unwrap();
                }
                let status = child(&target, unique).env(CRASH_AT, step).status().unwrap();
                assert_eq!(status.signal(), Some(9), "{step}: killed by SIGKILL");
                crashes += 1;

                // Before the rename the old state must be intact; from the rename on, the new.
                let renamed = index >= steps.iter().position(|s| s == "renamed").unwrap();
                match std::fs::read(&target) {
                    Ok(content) => {
                        assert!(
                            content == old_content() || content == new_content(),
                            "{step}: a mix of old and new ({} bytes)",
                            content.len()
                        );
                        let is_new = content == new_content();
                        assert_eq!(is_new, renamed, "{step}: unexpected content");
                        if is_new {
                            assert_eq!(mode(&target), 0o600, "{step}: mode of the new file");
                        }
                    }
                    Err(error) => {
                        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
                        assert!(!with_old_content && !renamed, "{step}: the target vanished");
                    }
                }
                // Any leftover is a hidden, private `.tmp` file, and the next writer succeeds.
                for entry in std::fs::read_dir(&folder).unwrap() {
                    let path = entry.unwrap().path();
                    if path != target {
                        let name = path.file_name().unwrap().to_str().unwrap().to_string();
                        assert!(name.starts_with(".state.json.") && name.ends_with(".tmp"));
                        assert_eq!(mode(&path), 0o600, "{step}: leftover {name}");
                    }
                }
                let temporary = durable_fs::temporary_sibling(&target);
                durable_fs::replace_file(&target, b"after", &temporary, &mut |_| {}).unwrap();
                assert_eq!(std::fs::read(&target).unwrap(), b"after");
                assert_eq!(mode(&target), 0o600);
                assert!(!temporary.exists());
            }
        }
    }
    assert_eq!(
        crashes, 16,
        "4 steps × old content or none × 2 temporary names"
    );
}
