//! `cargo xtask package-installed FOLDER` (run by the package check, see the module above): the
//! agent's `.deb`, already extracted into `FOLDER/tree` (data) and `FOLDER/control` (maintainer
//! scripts), used as an installed system would be. `FOLDER/tree` is the file system root
//! (`DPKG_ROOT`) and its `/opt/vormetric/DataSecurityExpert/agent` the agent root:
//!
//! 1. `postinst configure` creates the agent root's folders with mode 0700;
//! 2. the packaged `register_host` registers against the emulator, `vmutil status` shows it;
//! 3. the packaged `vmd --once` renews with a new set placed in the folder;
//! 4. an upgrade (`prerm upgrade`, `postinst configure OLD`), a removal (`prerm remove`,
//!    `postrm remove`) and a purge leave agent.conf, the pem store, its keys, the run and log
//!    folders byte for byte as they were, and the purge says what it leaves.
//!
//! systemd's tools (`systemctl`, `deb-systemd-helper`, `deb-systemd-invoke`) are stubs that log
//! their calls, so the scripts never act on the machine running the check.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use test_support::Manager;

use super::BIN_FOLDER;

const AGENT_ROOT: &str = "opt/vormetric/DataSecurityExpert/agent";

pub(crate) fn run(arguments: &[String]) -> Result<()> {
    let [folder] = arguments else {
        bail!("usage: cargo xtask package-installed FOLDER (with FOLDER/tree and FOLDER/control)");
    };
    let folder = PathBuf::from(folder);
    let installed = Installed::new(&folder)?;
    let root = installed.tree.join(AGENT_ROOT);

    println!("== postinst configure (a first install)");
    installed.script("postinst", &["configure"])?;
    for private in [
        root.join("vmd/etc"),
        root.join("vmd/run"),
        root.join("vmd/log"),
        installed.tree.join("var/log/vormetric"),
    ] {
        ensure!(
            mode(&private)? == 0o700,
            "{} is not a 0700 folder",
            private.display()
        );
    }
    ensure!(
        !root.join("vmd/pem").exists(),
        "postinst must not create the pem store (its absence means: not registered)"
    );

    let manager = Manager::start()?;
    let token = manager.setup_external_ca(&test_support::test_ca_pem("ca-rsa")?, "ext-rsa")?;
    let cert_files = folder.join("cert_files");
    test_support::copy_vector_into(
        "good",
        "rsa3072-sha256-pkcs8-pbes2-aes256-pbkdf2-sha256",
        &cert_files,
    )?;
    register(&installed, &manager, &token, &cert_files)?;
    renew(&installed, &manager, &cert_files)?;
    keep_identity_through_upgrade_and_removal(&installed)?;
    manager.stop();
    println!(
        "\nThe extracted .deb registered, renewed, and kept the identity through upgrade, removal and purge."
    );
    Ok(())
}

/// `register_host` with the token in a private file, then `vmutil status`.
fn register(
    installed: &Installed,
    manager: &Manager,
    token: &str,
    cert_files: &Path,
) -> Result<()> {
    println!("== the packaged register_host");
    let token_file = installed.folder.join("regtoken");
    std::fs::write(&token_file, format!("{token}\n"))?;
    set_mode(&token_file, 0o600)?;
    let (code, text) = installed.binary(
        "register_host",
        &[
            "--token-file",
            &token_file.display().to_string(),
            "--agent",
            "packaged-host",
            "--extcertdir",
            &cert_files.display().to_string(),
            "--cm-ca",
            &manager.web_ca_path().display().to_string(),
            &manager.host_port(),
        ],
    )?;
    ensure!(code == 0, "register_host: exit {code}\n{text}");
    let fingerprint = registered_fingerprint(manager)?;
    println!("== the packaged vmutil status");
    let (code, text) = installed.binary("vmutil", &["-a", "vmd", "status"])?;
    ensure!(
        code == 0 && text.contains(&fingerprint),
        "vmutil status: exit {code}\n{text}"
    );
    Ok(())
}

/// A renewed set in the folder and the packaged `vmd --once`.
fn renew(installed: &Installed, manager: &Manager, cert_files: &Path) -> Result<()> {
    println!("== the packaged vmd --once with a renewed set in the folder");
    let first = registered_fingerprint(manager)?;
    std::fs::remove_dir_all(cert_files)?;
    test_support::copy_vector_into(
        "good",
        "renewal-same-cn-later-rsa3072-pkcs8-pbes2-aes256-pbkdf2-sha256",
        cert_files,
    )?;
    let (code, text) = installed.binary("vmd", &["--once"])?;
    ensure!(
        code == 0 && text.contains("certificate renewed"),
        "vmd --once: exit {code}\n{text}"
    );
    let renewed = registered_fingerprint(manager)?;
    ensure!(
        renewed != first,
        "the manager still has the first certificate"
    );
    Ok(())
}

/// Upgrade, removal and purge leave the identity, the state and the logs alone.
fn keep_identity_through_upgrade_and_removal(installed: &Installed) -> Result<()> {
    let root = installed.tree.join(AGENT_ROOT);
    let state = || {
        let mut files = Vec::new();
        for folder in ["vmd/etc", "vmd/pem", "vmd/keys", "vmd/run", "vmd/log"] {
            files.extend(test_support::snapshot_tree(&root.join(folder)));
        }
        files
    };
    let before = state();
    ensure!(
        before.iter().any(|(path, _)| path.ends_with("agent.conf")),
        "no agent.conf after registration"
    );
    let version = "0.0.1-1";
    println!("== an upgrade: prerm upgrade, postinst configure {version}");
    installed.script("prerm", &["upgrade", version])?;
    installed.script("postinst", &["configure", version])?;
    ensure!(state() == before, "an upgrade changed the agent's files");
    println!("== a removal and a purge");
    installed.script("prerm", &["remove"])?;
    installed.script("postrm", &["remove"])?;
    ensure!(state() == before, "a removal changed the agent's files");
    let said = installed.script("postrm", &["purge"])?;
    ensure!(state() == before, "a purge changed the agent's files");
    ensure!(
        said.contains("purge leaves") && said.contains("agent.conf"),
        "the purge does not say what it leaves:\n{said}"
    );
    let calls =
        std::fs::read_to_string(installed.folder.join("stub-calls.log")).unwrap_or_default();
    println!("   systemd's tools as the scripts called them (stubbed):");
    for line in calls.lines() {
        println!("     {line}");
    }
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

#[cfg(unix)]
fn mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::symlink_metadata(path)
        .with_context(|| format!("{} is missing", path.display()))?;
    ensure!(metadata.is_dir(), "{} is not a folder", path.display());
    Ok(metadata.permissions().mode() & 0o7777)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(mode),
    )?)
}

#[cfg(not(unix))]
fn mode(_path: &Path) -> Result<u32> {
    bail!("the package check runs on Linux")
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<()> {
    bail!("the package check runs on Linux")
}

/// The extracted package: its tree, its maintainer scripts, the stubs of systemd's tools.
struct Installed {
    folder: PathBuf,
    tree: PathBuf,
    control: PathBuf,
    stubs: PathBuf,
}

impl Installed {
    fn new(folder: &Path) -> Result<Self> {
        let installed = Self {
            folder: folder.to_path_buf(),
            tree: folder.join("tree"),
            control: folder.join("control"),
            stubs: folder.join("stubs"),
        };
        ensure!(
            installed.tree.join(BIN_FOLDER).join("vmd").is_file()
                && installed.control.join("postinst").is_file(),
            "{} does not hold an extracted cte-agent package",
            folder.display()
        );
        std::fs::create_dir_all(&installed.stubs)?;
        for tool in ["systemctl", "deb-systemd-helper", "deb-systemd-invoke"] {
            // Queries ("was it installed or enabled before?") answer no, as on a new machine.
            let stub = installed.stubs.join(tool);
            std::fs::write(
                &stub,
                format!(
                    "#!/bin/sh\necho \"{tool} $*\" >> \"$STUB_LOG\"\ncase \"$*\" in *debian-installed*|*was-enabled*) exit 1 ;; esac\nexit 0\n"
                ),
            )?;
            set_mode(&stub, 0o755)?;
        }
        Ok(installed)
    }

    /// Runs a maintainer script with `DPKG_ROOT` at the tree; returns what it printed.
    fn script(&self, name: &str, arguments: &[&str]) -> Result<String> {
        println!("  $ DPKG_ROOT=tree {name} {}", arguments.join(" "));
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut search = std::ffi::OsString::from(self.stubs.as_os_str());
        search.push(":");
        search.push(path);
        let output = Command::new("sh")
            .arg(self.control.join(name))
            .args(arguments)
            .env("DPKG_ROOT", &self.tree)
            .env("PATH", search)
            .env("STUB_LOG", self.folder.join("stub-calls.log"))
            .output()
            .with_context(|| format!("running {name}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for line in text.lines() {
            println!("    {line}");
        }
        ensure!(
            output.status.success(),
            "{name} {arguments:?} failed: {}",
            output.status
        );
        Ok(text)
    }

    /// Runs a packaged binary with the tree's agent root; returns its exit code and output.
    fn binary(&self, name: &str, arguments: &[&str]) -> Result<(i32, String)> {
        println!("  $ {BIN_FOLDER}/{name} {}", arguments.join(" "));
        let mut command = Command::new(self.tree.join(BIN_FOLDER).join(name));
        command
            .arg("--agent-root")
            .arg(self.tree.join(AGENT_ROOT))
            .args(arguments);
        for variable in [
            "EXTERNAL_CERT_DIR",
            "CTE_AGENT_ROOT",
            "REG_TOKEN",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            command.env_remove(variable);
        }
        let output = command
            .output()
            .with_context(|| format!("running {name}"))?;
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
