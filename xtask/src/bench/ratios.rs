//! Item 1–3 of the bench: the agent's command lines side by side with `openssl` and `curl`
//! (`vmutil checkcerts`, `vmutil status`, `register_host`).

use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};
use serde_json::json;

use super::Settings;
use super::emulator::EmulatorProcess;
use super::markdown::Row;
use super::setup::{make_private, release_binary};
use super::timing::{compare, time_command};

/// The four key formats of item 1: committed OpenSSL-made vectors.
pub(super) const CHECKCERTS_VECTORS: [(&str, &str); 4] = [
    (
        "RSA-3072, PKCS#8 PBKDF2",
        "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
    ),
    (
        "RSA-3072, PKCS#8 scrypt",
        "rsa3072-sha256-pkcs8-pbes2-aes256-scrypt",
    ),
    (
        "P-384, PKCS#8 PBKDF2",
        "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256",
    ),
    (
        "P-384, PKCS#8 scrypt",
        "p384-ecdsa-sha384-pkcs8-pbes2-aes256-scrypt",
    ),
];

// ---- Item 1 ---------------------------------------------------------------------------------

pub(super) fn checkcerts_row(
    settings: &Settings,
    work: &Path,
    label: &str,
    vector: &str,
) -> Result<Row> {
    let folder = work.join("checkcerts").join(vector);
    test_support::copy_vector_into("good", vector, &folder)?;
    make_private(&folder)?;
    let key = folder.join("client_key.pem");
    let certificate = folder.join("client_cert.pem");
    let passin = format!("file:{}", folder.join("passphrase").display());
    let comparison = compare(
        settings.runs,
        |_| {
            time_command(
                Command::new(release_binary("vmutil"))
                    .args(["-a", "vmd", "-d"])
                    .arg(&folder)
                    .arg("checkcerts"),
            )
            .map(|(elapsed, _)| elapsed)
        },
        |_| {
            let (pkey, _) = time_command(
                Command::new("openssl")
                    .args(["pkey", "-in"])
                    .arg(&key)
                    .args(["-passin", &passin, "-noout"]),
            )?;
            let (x509, _) = time_command(
                Command::new("openssl")
                    .args(["x509", "-noout", "-enddate", "-in"])
                    .arg(&certificate),
            )?;
            Ok(pkey + x509)
        },
    )?;
    Ok(comparison.row(
        "1",
        &format!("`vmutil checkcerts`, {label}"),
        "`openssl pkey -passin file:` + `openssl x509 -enddate`",
        1.0,
    ))
}

// ---- Item 2 ---------------------------------------------------------------------------------

pub(super) fn status_row(
    settings: &Settings,
    work: &Path,
    emulator: &EmulatorProcess,
) -> Result<Row> {
    let vector = "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256";
    let folder = work.join("status-set");
    test_support::copy_vector_into("good", vector, &folder)?;
    make_private(&folder)?;
    let root = work.join("status-agent");
    let token = emulator.create_token("ca-p384")?;
    register_host(emulator, &root, &folder, &token, "bench-status")?;
    let agent_pem = root.join("vmd/pem/agent.pem");
    let comparison = compare(
        settings.runs,
        |_| {
            time_command(
                Command::new(release_binary("vmutil"))
                    .arg("--agent-root")
                    .arg(&root)
                    .args(["-a", "vmd", "status"]),
            )
            .map(|(elapsed, _)| elapsed)
        },
        |_| {
            time_command(
                Command::new("openssl")
                    .args(["x509", "-noout", "-enddate", "-in"])
                    .arg(&agent_pem),
            )
            .map(|(elapsed, _)| elapsed)
        },
    )?;
    Ok(comparison.row(
        "2",
        "`vmutil status` (P-384 agent)",
        "`openssl x509 -noout -enddate -in vmd/pem/agent.pem`",
        1.0,
    ))
}

// ---- Item 3 ---------------------------------------------------------------------------------

pub(super) fn register_row(
    settings: &Settings,
    work: &Path,
    emulator: &EmulatorProcess,
    label: &str,
    vector: &str,
    ca: &str,
) -> Result<Row> {
    let folder = work.join("register-sets").join(vector);
    test_support::copy_vector_into("good", vector, &folder)?;
    make_private(&folder)?;
    let certificate_pem = std::fs::read_to_string(folder.join("client_cert.pem"))?;
    let passphrase = std::fs::read_to_string(folder.join("passphrase"))?
        .trim_end_matches(['\r', '\n'])
        .to_string();
    let body_path = work.join("registration-body.json");
    let url = format!("{}/api/v1/client-management/clients/", emulator.url);
    let kind = label.to_lowercase();
    let comparison = compare(
        settings.runs,
        |index| {
            // Untimed preparation: no client holding this certificate yet, a fresh token and a
            // fresh agent root for every run.
            emulator.delete_all_clients()?;
            let token = emulator.create_token(ca)?;
            let root = work.join(format!("register-{kind}-{index}"));
            let (elapsed, _) = time_command(
                Command::new(release_binary("register_host"))
                    .arg("--agent-root")
                    .arg(&root)
                    .args(["--token", &token, "--agent"])
                    .arg(format!("bench-rh-{kind}-{index}"))
                    .arg("--extcertdir")
                    .arg(&folder)
                    .arg("--cm-ca")
                    .arg(&emulator.web_ca_path)
                    .arg(&emulator.host_port),
            )?;
            Ok(elapsed)
        },
        |index| {
            emulator.delete_all_clients()?;
            let token = emulator.create_token(ca)?;
            let body = json!({
                "reg_token": token,
                "cert": certificate_pem,
                "client_type": "CTE",
                "name": format!("bench-curl-{kind}-{index}"),
            });
            std::fs::write(&body_path, body.to_string())?;
            let (elapsed, output) = time_command(
                Command::new("curl")
                    .args(["-s", "-S", "-o", "/dev/null", "-w", "%{http_code}"])
                    .arg("--cacert")
                    .arg(&emulator.web_ca_path)
                    .arg("--cert")
                    .arg(folder.join("client_cert.pem"))
                    .arg("--key")
                    .arg(folder.join("client_key.pem"))
                    .args(["--pass", &passphrase])
                    .args(["-H", "Content-Type: application/json", "--data-binary"])
                    .arg(format!("@{}", body_path.display()))
                    .arg(&url),
            )?;
            let code = String::from_utf8_lossy(&output.stdout).to_string();
            ensure!(code == "201", "curl's registration answered HTTP {code}");
            Ok(elapsed)
        },
    )?;
    Ok(comparison.row(
        "3",
        &format!("`register_host`, {label} PKCS#8 PBKDF2"),
        "`curl --cert --key --pass` POSTing the same body",
        1.5,
    ))
}

pub(super) fn register_host(
    emulator: &EmulatorProcess,
    root: &Path,
    folder: &Path,
    token: &str,
    name: &str,
) -> Result<()> {
    // The committed vectors are registered more than once in a run: free the certificate.
    emulator.delete_all_clients()?;
    time_command(
        Command::new(release_binary("register_host"))
            .arg("--agent-root")
            .arg(root)
            .args(["--token", token, "--agent", name])
            .arg("--extcertdir")
            .arg(folder)
            .arg("--cm-ca")
            .arg(&emulator.web_ca_path)
            .arg(&emulator.host_port),
    )?;
    Ok(())
}
