//! Item 1–3 of the bench: the agent's command lines side by side with `openssl` and `curl`
//! (`vmutil checkcerts`, `vmutil status`, `register_host`).

use std::path::{Path, PathBuf};
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
    let delete_both = [&ours_name, &curl_name]
        .into_iter()
        .map(|name| delete_client_command(emulator, &bearer, name))
        .collect::<Result<Vec<_>>>()?
        .join(" && ");
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
    // Two hosts, two P-384 sets from the same CA (one certificate is one client): the
    // committed vector for the TPM host, a set issued now for the key-file host.
    let tpm_set = work.join("tpm-set");
    test_support::copy_vector_into(
        "good",
        "p384-ecdsa-sha384-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &tpm_set,
    )?;
    make_private(&tpm_set)?;
    let file_set = work.join("file-set");
    std::fs::create_dir_all(&file_set)?;
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    test_support::issue_set(
        &test_support::test_ca("ca-p384")?,
        test_pki::KeyType::P384,
        "bench-file.example",
        (now - day, now + 400 * day),
        &file_set,
        "bench-only passphrase",
    )?;
    make_private(&file_set)?;
    emulator.delete_all_clients()?;
    let token = emulator.create_token_unlimited("ca-p384")?;
    let bearer = emulator.fresh_bearer()?;
    let register_host = release_binary("register_host");
    let web_ca = text(&emulator.web_ca_path);
    let tcti = tpm.tcti();
    // (protector, agent root, client name, certificate set) of each host.
    let tpm_host = ("tpm", work.join("tpm-agent"), "bench-tpm", &tpm_set);
    let file_host = ("file", work.join("file-agent"), "bench-file", &file_set);
    let registration = |(protector, root, name, set): &(&str, PathBuf, &str, &PathBuf)| {
        let mut words = vec![
            text(&register_host),
            "--agent-root",
            text(root),
            "--token",
            &token,
            "--agent",
            name,
            "--key-protector",
            protector,
        ];
        if *protector == "tpm" {
            words.extend(["--tpm-tcti", &tcti]);
        }
        words.extend([
            "--extcertdir",
            text(set),
            "--cm-ca",
            web_ca,
            &emulator.host_port,
        ]);
        let register = shell(&words)?;
        // Untimed before each run: an empty agent root, and no client of that name.
        let prepare = format!(
            "rm -rf {} && {}",
            shell(&[text(root)])?,
            delete_client_command(emulator, &bearer, name)?
        );
        Ok::<_, anyhow::Error>(Timed::new(register).prepared_by(prepare))
    };
    let register = compare(
        settings.runs,
        registration(&tpm_host)?,
        registration(&file_host)?,
    )?;
    // A check with nothing to renew: one login with the key (unsealed once by the TPM). Both
    // hosts are registered by the comparison's last runs.
    let vmd = release_binary("vmd");
    let check = |root: &Path| shell(&[text(&vmd), "--agent-root", text(root), "--once"]);
    let once = compare(
        settings.runs,
        Timed::new(check(&tpm_host.1)?),
        Timed::new(check(&file_host.1)?),
    )?;
    drop(tpm);
    // Reported, not judged: issue 23 sets no target, and swtpm is not a hardware TPM.
    let reported = |mut row: Row| {
        row.target = "none set".to_owned();
        row.verdict = "—".to_owned();
        row
    };
    Ok(Some(vec![
        reported(register.row(
            "7",
            "`register_host`, P-384, key sealed by the TPM (swtpm)",
            "the same with `--key-protector file`",
            f64::INFINITY,
        )),
        reported(once.row(
            "7",
            "`vmd --once` (no renewal due), key sealed by the TPM (swtpm)",
            "the same with the key file",
            f64::INFINITY,
        )),
    ]))
}

/// A shell command that deletes client `name` on the emulator (a 404 is fine).
fn delete_client_command(emulator: &EmulatorProcess, bearer: &str, name: &str) -> Result<String> {
    shell(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--cacert",
        text(&emulator.web_ca_path),
        "-X",
        "DELETE",
        "-H",
        &format!("Authorization: Bearer {bearer}"),
        &format!("{}/api/v1/client-management/clients/{name}", emulator.url),
    ])
}
