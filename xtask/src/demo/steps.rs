//! The demo's steps (see the module above).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, ensure};
use test_pki::{CertificateAuthority, ClientCertificateRequest, KeyType};
use test_support::Manager;

use crate::cargo;

const DAY: Duration = Duration::from_secs(86_400);
const PASSPHRASE: &str = "demo-only-passphrase";

pub(crate) fn run(arguments: &[String]) -> Result<()> {
    let options = super::Options::parse(arguments)?;
    let keep = options.keep;
    let kinds: Vec<(&str, KeyType)> = options
        .keys
        .iter()
        .map(|key| {
            let key_type = match key {
                super::Key::Rsa3072 => KeyType::RSA_3072,
                super::Key::P384 => KeyType::P384,
            };
            (key.label(), key_type)
        })
        .collect();
    // The TPM key protector wherever tpm2-tss can be had (installed with apt-get when missing),
    // as the packages build the agent.
    let tpm_built = crate::tpm::available();
    let mut build = vec![
        "build",
        "--quiet",
        "-p",
        "register_host",
        "-p",
        "vmd",
        "-p",
        "vmutil",
    ];
    if tpm_built {
        build.extend(["--features", "register_host/tpm,vmd/tpm,vmutil/tpm"]);
    }
    cargo(&build)?;
    let started = Instant::now();
    let work = tempfile::Builder::new().prefix("cte-demo-").tempdir()?;
    let work_path = work.path().to_path_buf();
    heading("The host's key protector");
    let tpm = if tpm_built {
        std::fs::create_dir_all(work_path.join("swtpm"))?;
        test_support::swtpm::Swtpm::start(&work_path.join("swtpm"))
    } else {
        None
    };
    match &tpm {
        Some(tpm) => say(&format!(
            "a software TPM 2.0 (swtpm, {}) stands in for this host's TPM: register_host --tpm-tcti points the agent at it, and KEY_PROTECTOR=auto seals each data key with it",
            tpm.tcti()
        )),
        None => say(
            "no TPM here (no tpm2-tss build or no swtpm): KEY_PROTECTOR=auto keeps each data key in a key file, and register_host says so",
        ),
    }
    let tcti = tpm.as_ref().map(test_support::swtpm::Swtpm::tcti);
    let mut summary = Vec::new();
    for (label, key_type) in kinds {
        summary.push(demo_one(
            &work_path.join(label.to_lowercase()),
            label,
            key_type,
            tcti.as_deref(),
        )?);
    }
    heading("Summary");
    for line in &summary {
        println!("{line}");
    }
    println!(
        "\nAll steps behaved as shown ({:.1} s after the build).",
        started.elapsed().as_secs_f64()
    );
    if keep {
        let kept = work.keep();
        println!("Kept for inspection: {}", kept.display());
    }
    Ok(())
}

fn demo_one(folder: &Path, label: &str, key_type: KeyType, tcti: Option<&str>) -> Result<String> {
    heading(&format!("{label}: the manager (cm-emulator on 127.0.0.1)"));
    std::fs::create_dir_all(folder)?;
    let manager = Manager::start_in(&folder.join("manager-state"))?;
    say(&format!(
        "manager listening on {}; its web CA is {}",
        manager.url(),
        manager.web_ca_path().display()
    ));

    heading(&format!("{label}: an external CA and a client certificate"));
    let ca = CertificateAuthority::new_root(&format!("Demo External CA ({label})"), key_type)?;
    let cert_dir = folder.join("cert_files");
    let now = SystemTime::now();
    // Valid for 45 days: already inside the 60-day renewal window.
    let first = ca.issue(
        &ClientCertificateRequest::new("host1.demo.example")
            .key_type(key_type)
            .validity(now - DAY, now + 45 * DAY),
    )?;
    create_private_dir(&cert_dir)?;
    first.write_directory(&cert_dir, PASSPHRASE)?;
    say(&format!(
        "wrote {}/client_cert.pem, client_key.pem (PKCS#8, PBES2 AES-256-CBC, passphrase-encrypted) and passphrase",
        cert_dir.display()
    ));

    heading(&format!("{label}: manager-side setup through the REST API"));
    say("POST /api/v1/ca/external-cas            (CA > External > Add External CA)");
    let ca_id = manager.add_external_ca(
        &ca.certificate_pem(),
        &format!("demo-{}", label.to_lowercase()),
    )?;
    say("PATCH /api/v1/configs/interfaces/web     (web > External Trusted CAs)");
    manager.trust_external_ca(&ca_id)?;
    say("POST /api/v1/system/services/restart    (restart web: the trust takes effect now)");
    manager.restart_web()?;
    say("POST /api/v1/client-management/regtokens/ (registration token with ca_id)");
    let token = manager.create_token(&ca_id, Some(5), "1h")?;

    heading(&format!("{label}: register_host"));
    let root = folder.join("agent");
    let web_ca = manager.web_ca_path();
    let mut arguments = vec![
        "--agent-root",
        path(&root),
        "--token",
        &token,
        "--agent",
        "host1",
        "--extcertdir",
        path(&cert_dir),
        "--cm-ca",
        path(&web_ca),
    ];
    if let Some(tcti) = tcti {
        arguments.extend(["--tpm-tcti", tcti]);
    }
    let host_port = manager.host_port();
    arguments.push(&host_port);
    let output = run_binary("register_host", &arguments)?;
    ensure!(output.0 == 0, "register_host exited {}", output.0);
    let sealed_by = if test_support::key_files(&root)
        .iter()
        .any(|name| name.ends_with(".tpm"))
    {
        "its key sealed by the TPM"
    } else {
        "its key in a key file"
    };
    ensure!(
        tcti.is_some() == sealed_by.contains("TPM"),
        "with a TPM the key should be sealed by it, and without one be in a key file"
    );
    ensure!(
        !output.1.contains(&token),
        "the token appeared in register_host's output"
    );
    let first_fingerprint = fingerprint(first.certificate_der());

    heading(&format!("{label}: the pem store"));
    list_tree(&root.join("vmd"))?;
    let status = run_binary(
        "vmutil",
        &["--agent-root", path(&root), "-a", "vmd", "status"],
    )?;
    ensure!(
        status.0 == 0 && status.1.contains(&first_fingerprint),
        "vmutil status does not show the registered certificate"
    );

    let host = Host {
        label,
        key_type,
        ca: &ca,
        root: &root,
        manager: &manager,
        now,
    };
    let new_fingerprint = renew_with_vmd(&host, &cert_dir)?;
    refuse_changed_common_name(&host, folder, &new_fingerprint)?;

    manager.stop();
    Ok(format!(
        "{label}: registered {} ({sealed_by}) -> renewed {} -> changed common name refused",
        short(&first_fingerprint),
        short(&new_fingerprint)
    ))
}

/// One registered host of the demo, for the steps after registration.
struct Host<'a> {
    label: &'a str,
    key_type: KeyType,
    ca: &'a CertificateAuthority,
    root: &'a Path,
    manager: &'a Manager,
    now: SystemTime,
}

/// A renewed set in the folder, `vmd --once`, and the new fingerprint on both sides; returns it.
fn renew_with_vmd(host: &Host<'_>, cert_dir: &Path) -> Result<String> {
    let Host {
        label,
        key_type,
        ca,
        root,
        manager,
        now,
    } = *host;
    heading(&format!("{label}: renewal with vmd --once"));
    let renewed = ca.issue(
        &ClientCertificateRequest::new("host1.demo.example")
            .key_type(key_type)
            .validity(now - DAY, now + 400 * DAY),
    )?;
    renewed.write_directory(cert_dir, PASSPHRASE)?;
    say("placed a renewed set (same common name, expires in 400 days) in the folder");
    let once = run_binary("vmd", &["--agent-root", path(root), "--once"])?;
    ensure!(once.0 == 0, "vmd --once exited {}", once.0);
    let new_fingerprint = fingerprint(renewed.certificate_der());
    let local = run_binary(
        "vmutil",
        &["--agent-root", path(root), "-a", "vmd", "status"],
    )?;
    ensure!(
        local.1.contains(&new_fingerprint),
        "the agent does not show the new fingerprint"
    );
    let on_manager = manager.clients()?[0]["cert_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    say(&format!("fingerprint on this host:   {new_fingerprint}"));
    say(&format!("fingerprint on the manager: {on_manager}"));
    ensure!(
        on_manager == new_fingerprint,
        "the manager does not show the new fingerprint"
    );
    Ok(new_fingerprint)
}

/// A set with a changed common name: the manager refuses, its record stays.
fn refuse_changed_common_name(host: &Host<'_>, folder: &Path, new_fingerprint: &str) -> Result<()> {
    let Host {
        label,
        key_type,
        ca,
        root,
        manager,
        now,
    } = *host;
    heading(&format!("{label}: a set with a changed common name"));
    let other_dir = folder.join("cert_files_other_cn");
    create_private_dir(&other_dir)?;
    ca.issue(
        &ClientCertificateRequest::new("host2.demo.example")
            .key_type(key_type)
            .validity(now - DAY, now + 500 * DAY),
    )?
    .write_directory(&other_dir, PASSPHRASE)?;
    let refused = run_binary(
        "vmutil",
        &[
            "--agent-root",
            path(root),
            "-a",
            "vmd",
            "-d",
            path(&other_dir),
            "updatecerts",
        ],
    )?;
    ensure!(
        refused.0 == 4,
        "updatecerts with a changed common name exited {}, expected 4",
        refused.0
    );
    ensure!(
        refused.1.contains("common name"),
        "the manager's reason was not shown"
    );
    let after = manager.clients()?[0]["cert_fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        after == new_fingerprint,
        "the refused set changed the manager's record"
    );
    say("refused by the manager (exit 4); the host keeps its renewed certificate");
    Ok(())
}

/// The folder an administrator would make for the three files (0700 on Unix).
fn create_private_dir(path: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

fn say(text: &str) {
    println!("  {text}");
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..16.min(fingerprint.len())]
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Runs one of the project's binaries, echoing the command and its output (indented).
fn run_binary(name: &str, arguments: &[&str]) -> Result<(i32, String)> {
    let binary = binary_path(name);
    let shown: Vec<String> = arguments
        .iter()
        .map(|argument| {
            if argument.len() > 60 {
                format!("{}…", &argument[..57])
            } else {
                argument.to_string()
            }
        })
        .collect();
    println!(
        "  $ {name} {}",
        shown.join(" ").replace(PASSPHRASE, "<passphrase>")
    );
    let output = Command::new(&binary)
        .args(arguments)
        .env_remove("EXTERNAL_CERT_DIR")
        .output()
        .with_context(|| format!("running {}", binary.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in text.lines() {
        println!("    {line}");
    }
    let code = output.status.code().unwrap_or(-1);
    println!("    (exit {code})");
    Ok((code, text))
}

fn binary_path(name: &str) -> PathBuf {
    crate::target_dir()
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn list_tree(folder: &Path) -> Result<()> {
    let mut entries = Vec::new();
    collect(folder, &mut entries)?;
    entries.sort();
    for (path, mode, size) in entries {
        let relative = path
            .strip_prefix(folder.parent().unwrap_or(folder))
            .unwrap_or(&path);
        say(&format!("{mode} {size:>6}  {}", relative.display()));
    }
    Ok(())
}

fn collect(folder: &Path, entries: &mut Vec<(PathBuf, String, u64)>) -> Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        entries.push((
            entry.path(),
            mode_text(&metadata),
            if metadata.is_dir() { 0 } else { metadata.len() },
        ));
        if metadata.is_dir() {
            collect(&entry.path(), entries)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn mode_text(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::PermissionsExt;
    let kind = if metadata.is_dir() { 'd' } else { '-' };
    format!("{kind}{:04o}", metadata.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn mode_text(metadata: &std::fs::Metadata) -> String {
    if metadata.is_dir() {
        "dir".to_string()
    } else {
        "file".to_string()
    }
}
