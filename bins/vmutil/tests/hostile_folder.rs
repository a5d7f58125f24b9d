//! `vmutil checkcerts` on a certificate folder a hostile writer prepared: links to `/dev/zero`
//! and to FIFOs, FIFOs in place of the files, and a folder writable by everyone. Each ends
//! promptly (bounded wait) with exit 3 and a message naming the file, or the folder and the
//! `chmod` fix.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use test_support::copy_vector;

const SET: &str = "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256";
const FILES: [&str; 3] = ["client_cert.pem", "client_key.pem", "passphrase"];

/// `vmutil -a vmd -d DIR checkcerts`, killed (and the test failed) after 20 s.
fn checkcerts(directory: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vmutil"));
    command
        .args(["-a", "vmd", "-d"])
        .arg(directory)
        .arg("checkcerts")
        .env_remove("CTE_AGENT_ROOT");
    test_support::run_within(command, Duration::from_secs(20))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn checkcerts_ends_promptly_on_links_to_dev_zero_and_fifos_for_each_file() {
    let elsewhere = tempfile::tempdir().unwrap();
    let fifo = elsewhere.path().join("fifo");
    mkfifo(&fifo);
    for file in FILES {
        for (target, needle) in [
            (Some(PathBuf::from("/dev/zero")), "is a symbolic link"),
            (Some(fifo.clone()), "is a symbolic link"),
            (None, "not a regular file (a FIFO)"),
        ] {
            let set = copy_vector("good", SET).unwrap();
            let path = set.path().join(file);
            std::fs::remove_file(&path).unwrap();
            match &target {
                Some(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
                None => mkfifo(&path),
            }
            let output = checkcerts(set.path());
            let all = text(&output);
            assert_eq!(output.status.code(), Some(3), "{file} {target:?}: {all}");
            assert!(
                all.contains(&format!("{}: ", path.display())) && all.contains(needle),
                "{file} {target:?}: {all}"
            );
        }
    }
}

#[test]
fn checkcerts_refuses_a_folder_writable_by_everyone_and_warns_when_sticky() {
    let set = copy_vector("good", SET).unwrap();
    std::fs::set_permissions(set.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let output = checkcerts(set.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(3), "{all}");
    assert!(
        all.contains(&format!("chmod 700 {}", set.path().display())),
        "{all}"
    );

    std::fs::set_permissions(set.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let output = checkcerts(set.path());
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(
        all.contains("writable by group or others (mode 1777)"),
        "{all}"
    );
}
