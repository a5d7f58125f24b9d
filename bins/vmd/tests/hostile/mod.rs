//! Shared pieces of the hostile-input and manager-fault tests.
#![allow(dead_code)]

pub mod fake_manager;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use test_pki::{IssuedCertificate, KeyType};
use test_support::{Manager, files_containing, snapshot_tree};

// Each test file uses some of these.
#[allow(unused_imports)]
pub use crate::common::{DAY, PASSPHRASE, issue, sibling_binary, text};

/// A host registered with the real emulator, its certificate expiring in `days_left` days.
pub struct Host {
    pub manager: Manager,
    pub root: tempfile::TempDir,
    pub cert_dir: tempfile::TempDir,
    pub ca: test_pki::CertificateAuthority,
    pub current: IssuedCertificate,
    pub token: String,
}

impl Host {
    pub fn registered(days_left: u32) -> Host {
        let manager = Manager::start().unwrap();
        let (token, ca) = crate::common::trust_test_ca(&manager, "ca-p384");
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let current = issue(
            &ca,
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + DAY * days_left,
            cert_dir.path(),
        );
        let root = tempfile::tempdir().unwrap();
        crate::common::register(&manager, &token, "host1", cert_dir.path(), root.path());
        Host {
            manager,
            root,
            cert_dir,
            ca,
            current,
            token,
        }
    }

    /// Places a renewal set (same common name, 400 days) in the certificate folder.
    pub fn place_renewal(&self) -> IssuedCertificate {
        let now = SystemTime::now();
        issue(
            &self.ca,
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + 400 * DAY,
            self.cert_dir.path(),
        )
    }

    pub fn vmd(&self, arguments: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vmd"))
            .arg("--agent-root")
            .arg(self.root.path())
            .args(arguments)
            .env_remove("CTE_AGENT_ROOT")
            .output()
            .unwrap()
    }

    pub fn conf_path(&self) -> PathBuf {
        self.root.path().join("vmd/etc/agent.conf")
    }

    pub fn current_fingerprint(&self) -> String {
        crate::common::current_fingerprint(self.root.path())
    }

    pub fn manager_fingerprint(&self) -> String {
        self.manager.clients().unwrap()[0]["cert_fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn log(&self) -> String {
        crate::common::log(self.root.path())
    }

    pub fn status(&self) -> serde_json::Value {
        std::fs::read_to_string(self.root.path().join("vmd/run/status.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }
}

/// The secret-hygiene checks run after every scenario: no file under `root` holds a plaintext
/// key of `keys` (PKCS#8 DER, or a line of its PEM); `secrets` appear in no file under `root`
/// and not in `output`; files are 0600 and folders 0700.
pub fn assert_hygiene(
    scenario: &str,
    root: &Path,
    keys: &[&IssuedCertificate],
    secrets: &[&str],
    output: &str,
) {
    for key in keys {
        let der = key.key_pkcs8_der();
        assert!(
            files_containing(root, &der).is_empty(),
            "{scenario}: plaintext key DER under the agent root"
        );
        let pem = key.key_pkcs8_pem();
        let line = pem.lines().nth(1).unwrap();
        assert!(
            files_containing(root, line.as_bytes()).is_empty(),
            "{scenario}: plaintext key PEM under the agent root"
        );
    }
    for secret in secrets {
        assert!(
            files_containing(root, secret.as_bytes()).is_empty(),
            "{scenario}: a secret was written under the agent root: {:?}",
            files_containing(root, secret.as_bytes())
        );
        assert!(
            !output.contains(secret),
            "{scenario}: a secret appeared in the output"
        );
    }
    #[cfg(unix)]
    for (path, _) in snapshot_tree(root) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode,
            expected,
            "{scenario}: {} has mode {mode:o}",
            path.display()
        );
    }
}
