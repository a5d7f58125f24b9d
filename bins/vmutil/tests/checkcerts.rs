//! The real `vmutil` binary: `checkcerts` on the committed OpenSSL-made vectors, usage errors.

use std::process::{Command, Output};

use test_support::testdata;

fn vmutil(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmutil"))
        .args(arguments)
        .env_remove("CTE_AGENT_ROOT")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn checkcerts_describes_a_valid_rsa_set() {
    let directory = testdata().join("vectors/good/rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256");
    let output = vmutil(&["-a", "vmd", "-d", directory.to_str().unwrap(), "checkcerts"]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    for expected in [
        "common name:         host1.example",
        "not after:           2036-01-01T00:00:00Z",
        "days left",
        "sha256WithRSAEncryption",
        "RSA 3072",
        "PKCS#8 PBES2, PBKDF2-HMAC-SHA256 (2048 iterations), AES-256-CBC",
        "SHA-256 fingerprint:",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    let passphrase = std::fs::read_to_string(directory.join("passphrase")).unwrap();
    assert!(
        !all.contains(passphrase.trim()),
        "the passphrase was printed"
    );
}

#[test]
fn checkcerts_json_for_a_p384_traditional_set() {
    let directory = testdata().join("vectors/good/p384-ecdsa-sha384-traditional-aes256");
    let output = vmutil(&[
        "--json",
        "-a",
        "vmd",
        "-d",
        directory.to_str().unwrap(),
        "checkcerts",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["signature_algorithm"], "ecdsa-with-SHA384");
    assert_eq!(report["key"], "EC P-384");
    assert_eq!(report["sha256_fingerprint"].as_str().unwrap().len(), 64);
    assert!(
        report["key_format"]
            .as_str()
            .unwrap()
            .contains("traditional")
    );
}

#[test]
fn checkcerts_refuses_bad_sets_with_exit_3_and_names_the_file() {
    for (vector, expected) in [
        ("wrong-passphrase-pkcs8", "passphrase does not decrypt"),
        ("unencrypted-key-traditional-rsa", "not encrypted"),
        ("signature-sha1-with-rsa", "sha1WithRSAEncryption"),
        (
            "key-certificate-mismatch-p384",
            "does not match the certificate",
        ),
        ("certificate-is-csr", "CERTIFICATE REQUEST"),
    ] {
        let directory = testdata().join("vectors/bad").join(vector);
        let output = vmutil(&["-a", "vmd", "-d", directory.to_str().unwrap(), "checkcerts"]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(3), "{vector}: {all}");
        assert!(all.contains(expected), "{vector}: {all}");
        assert!(
            all.contains(directory.to_str().unwrap()),
            "{vector}: the file is not named: {all}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    let other_agent = vmutil(&["-a", "pkcs11", "-d", "/tmp", "checkcerts"]);
    assert_eq!(other_agent.status.code(), Some(2), "{}", text(&other_agent));
    let no_directory = vmutil(&["-a", "vmd", "checkcerts"]);
    assert_eq!(no_directory.status.code(), Some(2));
    assert!(text(&no_directory).contains("-d <dir>"));
    let unknown = vmutil(&["-a", "vmd", "frobnicate"]);
    assert_eq!(unknown.status.code(), Some(2));
    let help = vmutil(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help).contains("4 refused by the manager"));
}

#[test]
fn status_on_an_unregistered_root_says_so_with_exit_3() {
    let root = tempfile::tempdir().unwrap();
    let output = vmutil(&[
        "-a",
        "vmd",
        "--agent-root",
        root.path().to_str().unwrap(),
        "status",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    assert!(
        text(&output).contains("not registered"),
        "{}",
        text(&output)
    );
    assert!(
        std::fs::read_dir(root.path()).unwrap().next().is_none(),
        "status wrote something"
    );
}
