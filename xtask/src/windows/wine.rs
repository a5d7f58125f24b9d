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

    dpapi_unit_tests(&wine)?;

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
    refuse_other_entropy(&wine)?;

    println!(
        "\nThe Windows builds behaved as on Linux under Wine (register, status, renew, refusals),\n\
         with the data keys sealed by DPAPI (Wine's DPAPI uses one fixed key for every prefix, so\n\
         the refusal of a copy on another installation is not shown here; see docs/security.md)."
    );
    Ok(())
}

/// The `dpapi` crate's own tests (seal, open, other entropy refused, cut blob refused), run by
/// cargo with Wine as the target's runner.
fn dpapi_unit_tests(wine: &Wine) -> Result<()> {
    println!("== the dpapi crate's tests under Wine");
    let deps = crate::target_dir().join(TARGET).join("debug").join("deps");
    std::fs::create_dir_all(&deps)?;
    std::fs::copy(
        wine.bin.join("bcryptprimitives.dll"),
        deps.join("bcryptprimitives.dll"),
    )?;
    let status = Command::new(env!("CARGO"))
        .args(["test", "--locked", "--target", TARGET, "--package", "dpapi"])
        .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", "wine")
        .env("WINEPREFIX", &wine.prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .current_dir(project_root())
        .status()
        .context("running cargo test for the dpapi crate under Wine")?;
    ensure!(
        status.success(),
        "the dpapi crate's tests failed under Wine"
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
    ensure!(
        text.contains("key:          sealed by Windows DPAPI"),
        "KEY_PROTECTOR=auto should seal with DPAPI on Windows:\n{text}"
    );
    sealed_by_dpapi_only(&drive_c.join("agent/vmd/keys"), 1)?;
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
        code == 0 && text.contains(&first) && text.contains("(key: dpapi)"),
        "vmutil.exe status (expected the fingerprint and key: dpapi): exit {code}\n{text}"
    );
    ensure!(
        text.contains("sealed by Windows DPAPI"),
        "vmutil.exe status should say where the key is:\n{text}"
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
    // Both generations (current and previous) sealed by DPAPI, and status --json says so.
    sealed_by_dpapi_only(&wine.prefix.join("drive_c/agent/vmd/keys"), 2)?;
    let (code, json) = wine.run(
        "vmutil",
        &["--agent-root", r"C:\agent", "-a", "vmd", "status", "--json"],
    )?;
    // The document, without anything Wine may have printed around it.
    let document = json
        .find('{')
        .zip(json.rfind('}'))
        .map_or("", |(start, end)| &json[start..=end]);
    let status: serde_json::Value = serde_json::from_str(document)
        .with_context(|| format!("vmutil.exe status --json (exit {code}):\n{json}"))?;
    let protectors: Vec<&str> = status["generations"]
        .as_array()
        .map(|generations| {
            generations
                .iter()
                .filter_map(|generation| generation["key_protector"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        protectors == ["dpapi", "dpapi"],
        "status --json should show two generations sealed by dpapi, got {protectors:?}:\n{json}"
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

/// The keys folder holds `count` DPAPI-sealed keys and the root's entropy, and no key file.
fn sealed_by_dpapi_only(keys: &Path, count: usize) -> Result<()> {
    let names: Vec<String> = std::fs::read_dir(keys)?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    let sealed = names.iter().filter(|name| name.ends_with(".dpapi")).count();
    ensure!(
        sealed == count
            && names.iter().any(|name| name == "dpapi.entropy")
            && !names.iter().any(|name| name.ends_with(".key")),
        "expected {count} .dpapi files, dpapi.entropy and no .key file in {}: {names:?}",
        keys.display()
    );
    Ok(())
}

/// The root's DPAPI entropy replaced (as when the keys of one root are copied beside another's
/// entropy): `vmd.exe --once` refuses with the protector, the generation and the fix, and
/// changes nothing; with the entropy restored, the host works again.
fn refuse_other_entropy(wine: &Wine) -> Result<()> {
    println!("== another root's DPAPI entropy: refused, nothing changed, restored");
    let drive_c = wine.prefix.join("drive_c");
    let entropy = drive_c.join("agent/vmd/keys/dpapi.entropy");
    let original = std::fs::read(&entropy)?;
    std::fs::write(&entropy, [0x5a_u8; 32])?;
    let before = (
        test_support::snapshot_tree(&drive_c.join("agent/vmd/pem")),
        test_support::snapshot_tree(&drive_c.join("agent/vmd/keys")),
    );
    let (code, text) = wine.run("vmd", &["--agent-root", r"C:\agent", "--once"])?;
    ensure!(
        code != 0
            && text.contains("dpapi key protector cannot open generation")
            && text.contains("register_host --force"),
        "vmd.exe --once with other entropy: exit {code}\n{text}"
    );
    ensure!(
        (
            test_support::snapshot_tree(&drive_c.join("agent/vmd/pem")),
            test_support::snapshot_tree(&drive_c.join("agent/vmd/keys")),
        ) == before,
        "a refused key changed the pem store or the keys folder"
    );
    std::fs::write(&entropy, original)?;
    let (code, text) = wine.run(
        "vmutil",
        &["--agent-root", r"C:\agent", "-a", "vmd", "status"],
    )?;
    ensure!(
        code == 0 && text.contains("(key: dpapi)"),
        "vmutil.exe status after restoring the entropy: exit {code}\n{text}"
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
