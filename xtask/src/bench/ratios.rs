//! Item 1–3 of the bench: the agent's command lines side by side with `openssl` and `curl`
//! (`vmutil checkcerts`, `vmutil status`, `register_host`).

use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::json;

use super::Settings;
use super::emulator::EmulatorProcess;
use super::markdown::Row;
use super::setup::{make_private, release_binary};
use super::timing::{Timed, compare, shell, time_command};

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
    let vmutil = release_binary("vmutil");
    let ours = shell(&[
        text(&vmutil),
        "-a",
        "vmd",
        "-d",
        text(&folder),
        "checkcerts",
    ])?;
    let pkey = shell(&[
        "openssl",
        "pkey",
        "-in",
        text(&key),
        "-passin",
        &passin,
        "-noout",
    ])?;
    let x509 = shell(&[
        "openssl",
        "x509",
        "-noout",
        "-enddate",
        "-in",
        text(&certificate),
    ])?;
    let comparison = compare(
        settings.runs,
        Timed::new(ours),
        Timed::new(format!("{pkey} && {x509} >/dev/null")),
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
    let vmutil = release_binary("vmutil");
    let ours = shell(&[
        text(&vmutil),
        "--agent-root",
        text(&root),
        "-a",
        "vmd",
        "status",
    ])?;
    let reference = shell(&[
        "openssl",
        "x509",
        "-noout",
        "-enddate",
        "-in",
        text(&agent_pem),
    ])?;
    let comparison = compare(settings.runs, Timed::new(ours), Timed::new(reference))?;
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
    let ours_name = format!("bench-rh-{kind}");
    let curl_name = format!("bench-curl-{kind}");
    // One token for every run; the committed certificate is one client at a time (item 2
    // registered it too), so it is freed now, and before each run (untimed) both clients go
    // and the agent root starts empty.
    emulator.delete_all_clients()?;
    let token = emulator.create_token_unlimited(ca)?;
    let root = work.join(format!("register-{kind}"));
    let bearer = emulator.fresh_bearer()?;
    let web_ca = text(&emulator.web_ca_path);
    let mut delete_both = Vec::new();
    for name in [&ours_name, &curl_name] {
        delete_both.push(shell(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--cacert",
            web_ca,
            "-X",
            "DELETE",
            "-H",
            &format!("Authorization: Bearer {bearer}"),
            &format!("{}/api/v1/client-management/clients/{name}", emulator.url),
        ])?);
    }
    let delete_both = delete_both.join(" && ");
    let register_host = release_binary("register_host");
    let ours = shell(&[
        text(&register_host),
        "--agent-root",
        text(&root),
        "--token",
        &token,
        "--agent",
        &ours_name,
        "--extcertdir",
        text(&folder),
        "--cm-ca",
        web_ca,
        &emulator.host_port,
    ])?;
    let body = json!({
        "reg_token": token,
        "cert": certificate_pem,
        "client_type": "CTE",
        "name": curl_name,
    });
    std::fs::write(&body_path, body.to_string())?;
    let certificate = folder.join("client_cert.pem");
    let key = folder.join("client_key.pem");
    let reference = shell(&[
        "curl",
        "-f",
        "-s",
        "-S",
        "-o",
        "/dev/null",
        "--cacert",
        web_ca,
        "--cert",
        text(&certificate),
        "--key",
        text(&key),
        "--pass",
        &passphrase,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", body_path.display()),
        &url,
    ])?;
    let comparison = compare(
        settings.runs,
        Timed::new(ours).prepared_by(format!(
            "rm -rf {} && {delete_both}",
            shell(&[text(&root)])?
        )),
        Timed::new(reference).prepared_by(delete_both.clone()),
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

/// A path as UTF-8 text for a shell command (the bench's own temporary paths always are).
fn text(path: &Path) -> &str {
    path.to_str().unwrap_or("<not UTF-8>")
}

// ---- Item 7 ---------------------------------------------------------------------------------

/// `register_host` and `vmd --once` with the TPM key protector (swtpm) against the key file, or
/// nothing when swtpm is missing (the caller says so).
pub(super) fn tpm_rows(
    settings: &Settings,
    work: &Path,
    emulator: &EmulatorProcess,
) -> Result<Option<Vec<Row>>> {
    let tpm_state = work.join("swtpm-state");
    std::fs::create_dir_all(&tpm_state)?;
    let Some(tpm) = test_support::swtpm::Swtpm::start(&tpm_state) else {
        return Ok(None);
    };
    let vector = "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256";
    let folder = work.join("tpm-set");
    test_support::copy_vector_into("good", vector, &folder)?;
    make_private(&folder)?;
    emulator.delete_all_clients()?;
    let token = emulator.create_token_unlimited("ca-p384")?;
    let bearer = emulator.fresh_bearer()?;
    let register_host = release_binary("register_host");
    let web_ca = text(&emulator.web_ca_path);
    let delete = |name: &str| -> Result<String> {
        shell(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--cacert",
            web_ca,
            "-X",
            "DELETE",
            "-H",
            &format!("Authorization: Bearer {bearer}"),
            &format!("{}/api/v1/client-management/clients/{name}", emulator.url),
        ])
    };
    let delete_both = format!("{} && {}", delete("bench-tpm")?, delete("bench-file")?);
    let registration = |protector: &str, root: &Path, name: &str| -> Result<String> {
        let mut words = vec![
            text(&register_host).to_owned(),
            "--agent-root".into(),
            text(root).to_owned(),
            "--token".into(),
            token.clone(),
            "--agent".into(),
            name.to_owned(),
            "--key-protector".into(),
            protector.to_owned(),
        ];
        if protector == "tpm" {
            words.extend(["--tpm-tcti".into(), tpm.tcti()]);
        }
        words.extend([
            "--extcertdir".into(),
            text(&folder).to_owned(),
            "--cm-ca".into(),
            web_ca.to_owned(),
            emulator.host_port.clone(),
        ]);
        shell(&words)
    };
    let tpm_root = work.join("tpm-agent");
    let file_root = work.join("file-agent");
    let prepared = |root: &Path| -> Result<String> {
        Ok(format!("rm -rf {} && {delete_both}", shell(&[text(root)])?))
    };
    let register = compare(
        settings.runs,
        Timed::new(registration("tpm", &tpm_root, "bench-tpm")?).prepared_by(prepared(&tpm_root)?),
        Timed::new(registration("file", &file_root, "bench-file")?)
            .prepared_by(prepared(&file_root)?),
    )?;
    // A check with nothing to renew: one login with the key (unsealed once by the TPM).
    let vmd = release_binary("vmd");
    for (protector, root, name) in [("tpm", &tpm_root, "bench-tpm"), ("file", &file_root, "bench-file")] {
        time_command(&mut std::process::Command::new("sh").args(["-c", &prepared(root)?]))?;
        time_command(&mut std::process::Command::new("sh").args(["-c", &registration(protector, root, name)?]))?;
    }
    let check = |root: &Path| shell(&[text(&vmd), "--agent-root", text(root), "--once"]);
    let once = compare(
        settings.runs,
        Timed::new(check(&tpm_root)?),
        Timed::new(check(&file_root)?),
    )?;
    drop(tpm);
    Ok(Some(vec![
        register.row(
            "7",
            "`register_host`, P-384, key sealed by the TPM (swtpm)",
            "the same with `--key-protector file`",
            2.0,
        ),
        once.row(
            "7",
            "`vmd --once` (no renewal due), key sealed by the TPM (swtpm)",
            "the same with the key file",
            2.0,
        ),
    ]))
}
