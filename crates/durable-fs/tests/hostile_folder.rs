//! A user who can write a folder the agent writes in swaps what the agent is working on for a
//! symbolic link (or a FIFO) at each step of a durable write, as an inotify watcher would. The
//! file the link points to (the "victim", standing for /etc/shadow) must keep its bytes and its
//! mode, and no call may block. Before `Folder`, root chmodded the link's target 0644 by path.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use durable_fs::{Folder, Step, Trust};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn victim(folder: &Path) -> std::path::PathBuf {
    let victim = folder.join("victim");
    fs::write(&victim, b"root:secret-hash\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    victim
}

#[test]
fn a_link_swapped_in_at_any_step_never_changes_another_file() {
    for swap_at in Step::ALL {
        let outside = tempfile::tempdir().unwrap();
        let victim = victim(outside.path());
        let folder_dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(folder_dir.path(), Trust::Private).unwrap();
        let mut observe = |step: Step| {
            if step != swap_at {
                return;
            }
            // Every temporary and the target itself become links to the victim.
            for entry in fs::read_dir(folder_dir.path()).unwrap() {
                let path = entry.unwrap().path();
                let _ = fs::remove_file(&path);
                symlink(&victim, &path).unwrap();
            }
        };
        let _ = folder.replace("metrics.prom", b"cte_agent_up 1\n", 0o644, &mut observe);
        // And once more, with the links already in place before the write starts.
        let _ = folder.replace("metrics.prom", b"cte_agent_up 1\n", 0o644, &mut |_| {});
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"root:secret-hash\n",
            "swap at {swap_at}"
        );
        assert_eq!(
            mode(&victim),
            0o600,
            "swap at {swap_at}: the victim's mode changed"
        );
    }
}

#[test]
fn links_fifos_and_devices_are_refused_without_blocking() {
    let outside = tempfile::tempdir().unwrap();
    let victim = victim(outside.path());
    let folder_dir = tempfile::tempdir().unwrap();
    let folder = Folder::open(folder_dir.path(), Trust::Own).unwrap();
    symlink(&victim, folder_dir.path().join("link")).unwrap();
    symlink("/dev/zero", folder_dir.path().join("zero")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        folder_dir.path().join("fifo"),
        rustix::fs::Mode::from_raw_mode(0o666),
    )
    .unwrap();
    for name in ["link", "zero", "fifo"] {
        let read = folder.read(name, 1024).unwrap_err();
        assert!(read.is_refusal(), "{name}: {read}");
        let append = folder.open_append(name).unwrap_err();
        assert!(append.is_refusal(), "{name}: {append}");
        let lock = folder.open_lock(name).unwrap_err();
        assert!(lock.is_refusal(), "{name}: {lock}");
    }
    assert_eq!(fs::read(&victim).unwrap(), b"root:secret-hash\n");
    assert_eq!(mode(&victim), 0o600);
    // A file over the bound is refused, not read whole.
    fs::write(folder_dir.path().join("big"), vec![b'x'; 2048]).unwrap();
    assert!(folder.read("big", 1024).unwrap_err().is_refusal());
}

#[test]
fn folders_are_judged_on_their_handle() {
    let dir = tempfile::tempdir().unwrap();
    // The agent's own folder: a wide mode is repaired on the handle and reported.
    let own = dir.path().join("run");
    fs::create_dir(&own).unwrap();
    fs::set_permissions(&own, fs::Permissions::from_mode(0o777)).unwrap();
    let opened = Folder::open(&own, Trust::Own).unwrap();
    assert_eq!(opened.repaired().unwrap().old_mode, 0o777);
    assert_eq!(mode(&own), 0o700);
    // A link where a folder belongs is refused, whatever the trust.
    let link = dir.path().join("link");
    symlink(&own, &link).unwrap();
    for trust in [Trust::Own, Trust::Shared, Trust::Private] {
        let error = Folder::open(&link, trust).unwrap_err();
        assert!(error.is_refusal(), "{trust:?}: {error}");
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
    // Someone else's folder that others can write is refused with the fix, never changed.
    let shared = dir.path().join("textfile");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let error = Folder::open(&shared, Trust::Shared).unwrap_err();
    assert!(error.is_refusal());
    assert!(error.to_string().contains("chmod go-w"), "{error}");
    assert_eq!(mode(&shared), 0o777);
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
    Folder::open(&shared, Trust::Shared).unwrap();
}
