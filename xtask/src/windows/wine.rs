//! The Wine run of `cargo xtask windows` (see the module above): builds the Windows binaries,
//! then registers, renews and is refused as on Linux, against the emulator in this process.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use test_support::Manager;

use super::{MINGW_GCC, TARGET, missing_tools};
use crate::{cargo, project_root};

pub(crate) fn run() -> Result<()> {
    let missing = missing_tools(true);
    if !missing.is_empty() {
        bail!("missing {}", missing.join(" and "));
    }
    cargo(&[
        "build",
        "--locked",
        "--target",
        TARGET,
        "--package",
        "register_host",
        "--package",
        "vmutil",
        "--package",
        "vmd",
    ])?;
    let work = tempfile::Builder::new().prefix("cte-windows-").tempdir()?;
    let bin = install_binaries(work.path())?;

    let wine = Wine {
        prefix: work.path().join("prefix"),
        bin,
    };
    println!(
        "== Wine prefix {} (first start takes a few seconds)",
        wine.prefix.display()
    );
    let version = Command::new("wine").arg("--version").output()?;
    println!("   {}", String::from_utf8_lossy(&version.stdout).trim());

    let manager = Manager::start()?;
    let token = manager.setup_external_ca(&test_support::test_ca_pem("ca-rsa")?, "ext-rsa")?;
    let fingerprint = manager.web_fingerprint();

    // First start creates the prefix (and drive_c) before anything is copied into it.
    let (code, text) = wine.run("vmutil", &["--help"])?;
    ensure!(
        code == 0,
        "vmutil.exe --help under Wine: exit {code}\n{text}"
    );

    let first = register(&wine, &manager, &token, &fingerprint)?;
    // Before the renewal: the broken set is then newer than the one in use, so the update needs
    // its key (a set already in use is never decrypted: there is nothing to do with it).
    refuse_wrong_passphrase(&wine)?;
    let renewed = renew(&wine, &manager, &first)?;
    refuse_changed_common_name(&wine, &manager, &renewed)?;

    println!(
        "\nThe Windows builds behaved as on Linux under Wine (register, status, renew, refusals)."
    );
    Ok(())
}

/// The three .exe files and the `bcryptprimitives.dll` shim, in `work/bin`.
fn install_binaries(work: &Path) -> Result<PathBuf> {
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin)?;
    let target_dir = crate::target_dir();
    for name in ["register_host", "vmutil", "vmd"] {
        let from = target_dir
            .join(TARGET)
            .join("debug")
            .join(format!("{name}.exe"));
        std::fs::copy(&from, bin.join(format!("{name}.exe")))
            .with_context(|| format!("copying {}", from.display()))?;
    }
    let status = Command::new(MINGW_GCC)
        .args(["-shared", "-O2", "-o"])
        .arg(bin.join("bcryptprimitives.dll"))
        .arg(project_root().join("xtask/windows/bcryptprimitives.c"))
        .arg("-ladvapi32")
        .status()
        .context("running the MinGW-w64 gcc")?;
    ensure!(
        status.success(),
        "building the bcryptprimitives.dll shim failed"
    );
    Ok(bin)
}

/// `register_host.exe` with the product's Windows spellings, then `vmutil.exe status`; returns
/// the fingerprint the manager registered.
fn register(wine: &Wine, manager: &Manager, token: &str, fingerprint: &str) -> Result<String> {
    let drive_c = wine.prefix.join("drive_c");
    let cert_files = drive_c.join("temp").join("cert_files");
    println!("== register_host.exe with the product's Windows spellings");
    test_support::copy_vector_into(
        "good",
        "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &cert_files,
    )?;
    let token_argument = format!("-token={token}");
    let (code, text) = wine.run(
        "register_host",
        &[
            "--agent-root",
            r"C:\agent",
            &manager.host_port(),
            &token_argument,
            "-agent=winhost1",
            "-description=web server",
            r"-extcertdir=c:\temp\cert_files",
            "--cm-fingerprint",
            fingerprint,
        ],
    )?;
    ensure!(code == 0, "register_host.exe: exit {code}\n{text}");
    ensure!(!text.contains(token), "the token appeared in the output");
    ensure!(
        text.contains(r"C:\agent\vmd\pem\agent.pem"),
        "the summary should show Windows paths:\n{text}"
    );
    let conf = std::fs::read_to_string(drive_c.join("agent/vmd/etc/agent.conf"))?;
    ensure!(
        conf.lines()
            .any(|line| line == r"EXTERNAL_CERT_DIR=c:\temp\cert_files"),
        "agent.conf does not record the folder as given:\n{conf}"
    );
    let first = registered_fingerprint(manager)?;

    println!("== vmutil.exe status");
    let (code, text) = wine.run(
        "vmutil",
        &["--agent-root", r"C:\agent", "-a", "vmd", "status"],
    )?;
    ensure!(
        code == 0 && text.contains(&first),
        "vmutil.exe status: exit {code}\n{text}"
    );
    Ok(first)
}

/// `vmd.exe --once` with a renewed set in the folder; returns the manager's new fingerprint.
fn renew(wine: &Wine, manager: &Manager, first: &str) -> Result<String> {
    let cert_files = wine.prefix.join("drive_c").join("temp").join("cert_files");
    println!("== vmd.exe --once with a renewed set in the folder");
    std::fs::remove_dir_all(&cert_files)?;
    test_support::copy_vector_into(
        "good",
        "renewal-same-cn-later-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &cert_files,
    )?;
    let (code, text) = wine.run("vmd", &["--agent-root", r"C:\agent", "--once"])?;
    ensure!(
        code == 0 && text.contains("certificate renewed"),
        "vmd.exe --once: exit {code}\n{text}"
    );
    let renewed = registered_fingerprint(manager)?;
    ensure!(
        renewed != first,
        "the manager still has the first certificate"
    );
    ensure!(
        text.contains(&renewed),
        "vmd.exe did not switch to the certificate the manager holds ({renewed}):\n{text}"
    );
    Ok(renewed)
}

/// `vmutil.exe updatecerts` with a changed common name: the manager refuses, nothing changes.
fn refuse_changed_common_name(wine: &Wine, manager: &Manager, renewed: &str) -> Result<()> {
    let drive_c = wine.prefix.join("drive_c");
    println!("== vmutil.exe updatecerts with a changed common name (the manager refuses)");
    let other = drive_c.join("temp").join("other_cn");
    test_support::copy_vector_into(
        "good",
        "renewal-other-cn-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &other,
    )?;
    let before = test_support::snapshot_tree(&drive_c.join("agent/vmd/pem"));
    let (code, text) = wine.run(
        "vmutil",
        &[
            "--agent-root",
            r"C:\agent",
            "-a",
            "vmd",
            "-d",
            r"c:\temp\other_cn",
            "updatecerts",
        ],
    )?;
    ensure!(
        code == 4,
        "vmutil.exe updatecerts (changed CN): expected exit 4, got {code}\n{text}"
    );
    ensure!(
        test_support::snapshot_tree(&drive_c.join("agent/vmd/pem")) == before,
        "the pem store changed after a refusal"
    );
    ensure!(
        registered_fingerprint(manager)? == renewed,
        "the manager's record changed"
    );
    Ok(())
}

/// A wrong passphrase: exit 3, the pem store, the keys and agent.conf unchanged.
fn refuse_wrong_passphrase(wine: &Wine) -> Result<()> {
    let drive_c = wine.prefix.join("drive_c");
    println!("== a wrong passphrase: exit 3, pem store and agent.conf unchanged");
    let broken = drive_c.join("temp").join("broken");
    test_support::copy_vector_into(
        "good",
        "renewal-same-cn-later-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &broken,
    )?;
    std::fs::write(broken.join("passphrase"), "not-the-passphrase\r\n")?;
    let protected = |drive_c: &Path| {
        (
            test_support::snapshot_tree(&drive_c.join("agent/vmd/pem")),
            test_support::snapshot_tree(&drive_c.join("agent/vmd/keys")),
            std::fs::read(drive_c.join("agent/vmd/etc/agent.conf")).unwrap_or_default(),
        )
    };
    let before = protected(&drive_c);
    let (code, text) = wine.run(
        "vmutil",
        &[
            "--agent-root",
            r"C:\agent",
            "-a",
            "vmd",
            "-d",
            r"c:\temp\broken",
            "updatecerts",
        ],
    )?;
    ensure!(
        code == 3 && text.contains("passphrase does not decrypt"),
        "vmutil.exe updatecerts (wrong passphrase): exit {code}\n{text}"
    );
    ensure!(
        protected(&drive_c) == before,
        "the pem store, the keys or agent.conf changed after a local refusal"
    );
    Ok(())
}

fn registered_fingerprint(manager: &Manager) -> Result<String> {
    let clients = manager.clients()?;
    ensure!(
        clients.len() == 1,
        "expected one client, the manager has {}",
        clients.len()
    );
    Ok(clients[0]["cert_fingerprint"]
        .as_str()
        .context("client without cert_fingerprint")?
        .to_string())
}

struct Wine {
    prefix: PathBuf,
    bin: PathBuf,
}

impl Wine {
    /// Runs `name.exe` under Wine; prints the command and the output like the demo.
    fn run(&self, name: &str, arguments: &[&str]) -> Result<(i32, String)> {
        let shown: Vec<&str> = arguments
            .iter()
            .map(|argument| {
                if argument.starts_with("-token=") {
                    "-token=<token>"
                } else {
                    argument
                }
            })
            .collect();
        println!("  $ {name}.exe {}", shown.join(" "));
        let output = Command::new("wine")
            .arg(self.bin.join(format!("{name}.exe")))
            .args(arguments)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
            .env_remove("EXTERNAL_CERT_DIR")
            .env_remove("CTE_AGENT_ROOT")
            .current_dir(Path::new(&self.bin))
            .output()
            .context("running wine")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            println!("    {line}");
        }
        let code = output.status.code().unwrap_or(-1);
        println!("    (exit {code})");
        Ok((code, text))
    }
}
