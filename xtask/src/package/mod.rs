//! `cargo xtask package`: the `.deb` (cargo-deb) and `.rpm` (cargo-generate-rpm) of the agent
//! (`cte-agent`: register_host, vmd, vmutil) and of the emulator (`cm-emulator`), then, from
//! `cargo xtask ci`, their checks: lintian on the `.deb` files, rpmlint (or `rpm -qlp` and the
//! expected file list) on the `.rpm` files, `systemd-analyze verify` on the packaged unit,
//! `logrotate -d` on the packaged entry, and the `.deb` contents extracted to a temporary folder,
//! its maintainer scripts run there (`DPKG_ROOT`, with systemd's tools stubbed), registering and
//! renewing against the emulator (`installed.rs`, an emulator task).
//!
//! What goes into each package is in `bins/vmd/Cargo.toml` and `bins/cm-emulator/Cargo.toml`
//! (`[package.metadata.deb]`, `[package.metadata.generate-rpm]`); the maintainer scripts, the
//! logrotate entry and the profile snippet are in `contrib/`. The binaries are built with the
//! `dist` profile (release, symbols stripped). A check whose tool is missing says
//! `SKIPPED: <step>: <tool> not installed` and never claims to have passed.

#[cfg(feature = "emulator")]
mod installed;
#[cfg(feature = "emulator")]
pub(crate) use installed::run as run_installed;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::{cargo, project_root};

/// The cargo profile the packages are built with (root Cargo.toml: release, stripped).
const PROFILE: &str = "dist";

/// The agent's binaries' folder in the product (and in the packages, without the leading `/`).
const BIN_FOLDER: &str = "opt/vormetric/DataSecurityExpert/agent/vmd/bin";
/// Files both of the agent's packages hold (paths without the leading `/`).
const AGENT_FILES: [&str; 10] = [
    "usr/lib/systemd/system/vmd.service",
    "opt/vormetric/DataSecurityExpert/agent/vmd/bin/register_host",
    "opt/vormetric/DataSecurityExpert/agent/vmd/bin/vmd",
    "opt/vormetric/DataSecurityExpert/agent/vmd/bin/vmutil",
    "etc/logrotate.d/cte-agent",
    "usr/share/bash-completion/completions/register_host",
    "usr/share/bash-completion/completions/vmd",
    "usr/share/bash-completion/completions/vmutil",
    "usr/share/fish/vendor_completions.d/vmutil.fish",
    "usr/share/doc/cte-agent/operations.md",
];
/// Files only the `.deb` holds: the man pages (compressed by cargo-deb), the links on PATH.
const DEB_FILES: [&str; 7] = [
    "usr/share/man/man1/register_host.1.gz",
    "usr/share/man/man1/vmd.1.gz",
    "usr/share/man/man1/vmutil.1.gz",
    "usr/bin/register_host",
    "usr/bin/vmd",
    "usr/bin/vmutil",
    "usr/share/zsh/vendor-completions/_vmutil",
];
/// Files only the `.rpm` holds: the man pages, the PATH snippet.
const RPM_FILES: [&str; 5] = [
    "usr/share/man/man1/register_host.1",
    "usr/share/man/man1/vmd.1",
    "usr/share/man/man1/vmutil.1",
    "etc/profile.d/cte-agent.sh",
    "usr/share/zsh/site-functions/_vmutil",
];

/// The packages built: Debian and RPM files of the agent and of the emulator.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) agent_deb: PathBuf,
    pub(crate) emulator_deb: PathBuf,
    pub(crate) agent_rpm: PathBuf,
    pub(crate) emulator_rpm: PathBuf,
}

/// `cargo xtask package [--check]`: fails when cargo-deb or cargo-generate-rpm is missing.
/// `--check` also runs the checks `cargo xtask ci` runs.
pub(crate) fn run(arguments: &[String]) -> Result<()> {
    match arguments {
        [] => {}
        [check] if check == "--check" => {
            let missing = missing_packagers();
            ensure!(
                missing.is_empty(),
                "missing {}: cargo install --locked cargo-deb cargo-generate-rpm",
                missing.join(" and ")
            );
            return self::check();
        }
        _ => bail!("usage: cargo xtask package [--check]"),
    }
    let missing = missing_packagers();
    if !missing.is_empty() {
        bail!(
            "missing {}: cargo install --locked cargo-deb cargo-generate-rpm",
            missing.join(" and ")
        );
    }
    let built = build()?;
    for path in [
        &built.agent_deb,
        &built.emulator_deb,
        &built.agent_rpm,
        &built.emulator_rpm,
    ] {
        println!("built {}", path.display());
    }
    Ok(())
}

/// The packagers that are not installed.
fn missing_packagers() -> Vec<&'static str> {
    ["deb", "generate-rpm"]
        .into_iter()
        .filter(|subcommand| {
            !Command::new(env!("CARGO"))
                .args([subcommand, "--version"])
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .map(|subcommand| {
            if subcommand == "deb" {
                "cargo-deb"
            } else {
                "cargo-generate-rpm"
            }
        })
        .collect()
}

/// Builds the binaries (profile `dist`) and the four packages.
fn build() -> Result<Built> {
    // The agent's binaries with the TPM key protector where tpm2-tss can be had (the .deb then
    // depends on its libraries, found by cargo-deb's `$auto`).
    let mut arguments = vec![
        "build",
        "--locked",
        "--profile",
        PROFILE,
        "-p",
        "register_host",
        "-p",
        "vmd",
        "-p",
        "vmutil",
        "-p",
        "cm-emulator-bin",
    ];
    if crate::tpm::available() {
        arguments.extend(["--features", "register_host/tpm,vmd/tpm,vmutil/tpm"]);
    }
    cargo(&arguments)?;
    let debian = crate::target_dir().join("debian");
    let rpm = crate::target_dir().join("generate-rpm");
    for folder in [&debian, &rpm] {
        if folder.exists() {
            std::fs::remove_dir_all(folder)?;
        }
    }
    for package in ["vmd", "cm-emulator-bin"] {
        cargo(&[
            "deb",
            "--locked",
            "--no-build",
            "--profile",
            PROFILE,
            "-p",
            package,
        ])?;
    }
    for folder in ["bins/vmd", "bins/cm-emulator"] {
        cargo(&["generate-rpm", "--profile", PROFILE, "-p", folder])?;
    }
    Ok(Built {
        agent_deb: only_file(&debian, "cte-agent_", ".deb")?,
        emulator_deb: only_file(&debian, "cm-emulator_", ".deb")?,
        agent_rpm: only_file(&rpm, "cte-agent-", ".rpm")?,
        emulator_rpm: only_file(&rpm, "cm-emulator-", ".rpm")?,
    })
}

/// The one file in `folder` named `prefix...suffix`.
fn only_file(folder: &Path, prefix: &str, suffix: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in
        std::fs::read_dir(folder).with_context(|| format!("reading {}", folder.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(suffix) && !name.contains("dbgsym") {
            found.push(path);
        }
    }
    ensure!(
        found.len() == 1,
        "expected one {prefix}*{suffix} in {}, found {found:?}",
        folder.display()
    );
    Ok(found.remove(0))
}

/// Whether `program` can be started (`--version` or `-V`, any exit status).
fn installed(program: &str, argument: &str) -> bool {
    Command::new(program).arg(argument).output().is_ok()
}

fn skipped(step: &str, tool: &str) {
    eprintln!("SKIPPED: {step}: {tool} not installed");
}

/// Runs `program arguments`, echoing it and its output; returns the exit status and the output.
fn run_shown(program: &str, arguments: &[&str]) -> Result<(bool, String)> {
    eprintln!("$ {program} {}", arguments.join(" "));
    let output = Command::new(program)
        .args(arguments)
        .output()
        .with_context(|| format!("running {program}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for line in text.lines() {
        eprintln!("  {line}");
    }
    Ok((output.status.success(), text))
}

/// The checks `cargo xtask ci` runs: build the packages, lint them, look inside, and install the
/// agent's `.deb` into a temporary folder that registers and renews against the emulator.
pub(crate) fn check() -> Result<()> {
    let missing = missing_packagers();
    if !missing.is_empty() {
        for tool in missing {
            skipped("packages (build, lintian, rpmlint, installed run)", tool);
        }
        return Ok(());
    }
    let built = build()?;
    check_debs(&built)?;
    check_rpms(&built)?;
    let folder = tempfile_folder("cte-package-")?;
    let result = check_installed(&built, &folder);
    let _ = std::fs::remove_dir_all(&folder);
    result
}

/// A new empty folder under the system's temporary folder (the light xtask has no tempfile).
fn tempfile_folder(prefix: &str) -> Result<PathBuf> {
    let folder = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
    if folder.exists() {
        std::fs::remove_dir_all(&folder)?;
    }
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

fn check_debs(built: &Built) -> Result<()> {
    for deb in [&built.agent_deb, &built.emulator_deb] {
        let deb = deb.display().to_string();
        if !installed("dpkg-deb", "--version") {
            skipped("dpkg-deb -c (package contents)", "dpkg-deb");
        } else {
            let (ok, _) = run_shown("dpkg-deb", &["-c", &deb])?;
            ensure!(ok, "dpkg-deb -c {deb} failed");
        }
        if !installed("lintian", "--version") {
            skipped("lintian on the .deb", "lintian");
            continue;
        }
        // Errors fail the check; warnings and notes are shown for whoever reads the log.
        let (ok, text) = run_shown(
            "lintian",
            &[
                "--fail-on",
                "error",
                "--display-info",
                "--tag-display-limit",
                "0",
                &deb,
            ],
        )?;
        ensure!(
            ok && !text.lines().any(|line| line.starts_with("E: ")),
            "lintian reports errors on {deb}"
        );
    }
    Ok(())
}

/// rpmlint when installed (its errors fail the check), and always, when `rpm` is there, the
/// file list and the scriptlets.
fn check_rpms(built: &Built) -> Result<()> {
    if !installed("rpm", "--version") {
        skipped("rpm -qlp (the .rpm's files and scriptlets)", "rpm");
    } else {
        let agent = built.agent_rpm.display().to_string();
        let (ok, files) = run_shown("rpm", &["-qlp", &agent])?;
        ensure!(ok, "rpm -qlp {agent} failed");
        for expected in AGENT_FILES.iter().chain(&RPM_FILES) {
            ensure!(
                files.lines().any(|line| line == format!("/{expected}")),
                "{agent} lacks /{expected}"
            );
        }
        let (ok, scripts) = run_shown("rpm", &["-qp", "--scripts", &agent])?;
        ensure!(
            ok && scripts.contains("postinstall scriptlet")
                && scripts.contains("preuninstall scriptlet")
                && scripts.contains("postuninstall scriptlet"),
            "{agent} lacks its scriptlets"
        );
        let emulator = built.emulator_rpm.display().to_string();
        let (ok, files) = run_shown("rpm", &["-qlp", &emulator])?;
        ensure!(
            ok && files.lines().any(|line| line == "/usr/bin/cm-emulator"),
            "{emulator} lacks /usr/bin/cm-emulator"
        );
    }
    if !installed("rpmlint", "--version") {
        skipped("rpmlint on the .rpm", "rpmlint");
        return Ok(());
    }
    for rpm in [&built.agent_rpm, &built.emulator_rpm] {
        let rpm = rpm.display().to_string();
        let (_, text) = run_shown("rpmlint", &["-c", &rpmlint_config()?, &rpm])?;
        let errors: Vec<&str> = text.lines().filter(|line| line.contains(": E: ")).collect();
        ensure!(
            errors.is_empty(),
            "rpmlint reports errors on {rpm}: {errors:?}"
        );
    }
    Ok(())
}

/// rpmlint's settings for these packages: `contrib/rpm/rpmlint.toml`.
fn rpmlint_config() -> Result<String> {
    let path = project_root().join("contrib/rpm/rpmlint.toml");
    ensure!(path.is_file(), "{} is missing", path.display());
    Ok(path.display().to_string())
}

/// The agent's `.deb` extracted into `folder`: the unit and logrotate entry verified, then (an
/// emulator task) the maintainer scripts and the binaries run there.
fn check_installed(built: &Built, folder: &Path) -> Result<()> {
    if !installed("dpkg-deb", "--version") {
        skipped(
            "the .deb extracted and run against the emulator",
            "dpkg-deb",
        );
        return Ok(());
    }
    let tree = folder.join("tree");
    let control = folder.join("control");
    let deb = built.agent_deb.display().to_string();
    for (option, into) in [("-x", &tree), ("-e", &control)] {
        let status = Command::new("dpkg-deb")
            .arg(option)
            .arg(&deb)
            .arg(into)
            .status()
            .context("running dpkg-deb")?;
        ensure!(status.success(), "dpkg-deb {option} {deb} failed");
    }
    for file in AGENT_FILES.iter().chain(&DEB_FILES) {
        ensure!(
            tree.join(file).symlink_metadata().is_ok(),
            "{deb} lacks /{file}"
        );
    }
    verify_unit(&tree)?;
    verify_logrotate(&tree)?;
    eprintln!("$ cargo xtask package-installed {}", folder.display());
    let status = crate::emulator_task("package-installed", &[folder.display().to_string()])?;
    if !status.success() {
        bail!("the extracted .deb did not register and renew as expected ({status})");
    }
    Ok(())
}

/// `systemd-analyze verify` on the packaged unit, its ExecStart pointed at the packaged vmd.
fn verify_unit(tree: &Path) -> Result<()> {
    if !installed("systemd-analyze", "--version") {
        skipped(
            "systemd-analyze verify on the packaged unit",
            "systemd-analyze",
        );
        return Ok(());
    }
    let unit = tree.join("usr/lib/systemd/system/vmd.service");
    let text = std::fs::read_to_string(&unit)?;
    let product = format!("/{BIN_FOLDER}/vmd");
    ensure!(
        text.contains(&format!("ExecStart={product} ")),
        "the packaged unit does not start {product}"
    );
    let extracted = tree.join(BIN_FOLDER).join("vmd");
    ensure!(extracted.is_file(), "the package lacks {product}");
    let copy = tree.parent().expect("in a folder").join("vmd.service");
    std::fs::write(
        &copy,
        text.replace(&product, &extracted.display().to_string()),
    )?;
    let (_, messages) = run_shown("systemd-analyze", &["verify", &copy.display().to_string()])?;
    let problems: Vec<&str> = messages
        .lines()
        .filter(|line| !line.trim().is_empty())
        // Outside a booted systemd (CI containers) it adds notes about the manager itself.
        .filter(|line| !line.contains("Failed to") && !line.contains("System has not been booted"))
        .collect();
    ensure!(problems.is_empty(), "systemd-analyze verify: {problems:?}");
    eprintln!("systemd-analyze verify: the packaged vmd.service is clean");
    Ok(())
}

/// `logrotate -d` (dry run) on the packaged entry.
fn verify_logrotate(tree: &Path) -> Result<()> {
    let logrotate = ["/usr/sbin/logrotate", "/sbin/logrotate", "logrotate"]
        .into_iter()
        .find(|program| installed(program, "--version"));
    let Some(logrotate) = logrotate else {
        skipped("logrotate -d on the packaged entry", "logrotate");
        return Ok(());
    };
    let entry = tree.join("etc/logrotate.d/cte-agent");
    let state = tree.parent().expect("in a folder").join("logrotate.state");
    let (ok, text) = run_shown(
        logrotate,
        &[
            "-d",
            "-s",
            &state.display().to_string(),
            &entry.display().to_string(),
        ],
    )?;
    ensure!(
        ok && !text.contains("error"),
        "logrotate -d rejects the packaged entry"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20: the maintainer scripts (Debian postinst, rpm %post) run against a tree
    /// (`DPKG_ROOT`) holding a link where an agent folder belongs, a 0777 agent folder and a
    /// folder of another owner: the link is refused and its target left alone, the mode is
    /// repaired to 0700 with a message, the other owner's folder is refused (root only).
    #[cfg(unix)]
    #[test]
    fn maintainer_scripts_refuse_links_and_foreign_folders_and_repair_modes() {
        use std::fs;
        use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
        let mode = |path: &Path| fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777;
        for script in ["contrib/debian/postinst", "contrib/rpm/post-install.sh"] {
            let script = project_root().join(script);
            let arguments: &[&str] = if script.ends_with("postinst") {
                &["configure"]
            } else {
                &["1"]
            };
            let run = |tree: &Path| {
                std::process::Command::new("sh")
                    .arg(&script)
                    .args(arguments)
                    .env("DPKG_ROOT", tree)
                    .output()
                    .unwrap()
            };
            let tree = tempfile::tempdir().unwrap();
            let agent = tree
                .path()
                .join("opt/vormetric/DataSecurityExpert/agent/vmd");
            fs::create_dir_all(&agent).unwrap();
            // A link at vmd/etc to a folder elsewhere.
            let elsewhere = tree.path().join("elsewhere");
            fs::create_dir(&elsewhere).unwrap();
            fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o755)).unwrap();
            symlink(&elsewhere, agent.join("etc")).unwrap();
            let output = run(tree.path());
            let said = String::from_utf8_lossy(&output.stderr).to_string();
            assert!(!output.status.success(), "{script:?}: a link was accepted");
            assert!(said.contains("symbolic link"), "{said}");
            assert_eq!(mode(&elsewhere), 0o755, "the link's target was changed");
            assert!(fs::read_dir(&elsewhere).unwrap().next().is_none());
            // Without the link: a 0777 folder is repaired, missing ones are made 0700.
            fs::remove_file(agent.join("etc")).unwrap();
            fs::create_dir(agent.join("run")).unwrap();
            fs::set_permissions(agent.join("run"), fs::Permissions::from_mode(0o777)).unwrap();
            let output = run(tree.path());
            let said = String::from_utf8_lossy(&output.stdout).to_string();
            assert!(
                output.status.success(),
                "{script:?}: {said}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(said.contains("had mode 777"), "{said}");
            for folder in ["etc", "run", "log"] {
                assert_eq!(mode(&agent.join(folder)), 0o700, "{folder}");
            }
            assert_eq!(mode(&tree.path().join("var/log/vormetric")), 0o700);
            // A folder of another owner (root can make one): refused.
            if rustix_free_euid() == 0 {
                std::process::Command::new("chown")
                    .arg("65534")
                    .arg(agent.join("log"))
                    .status()
                    .unwrap();
                assert_eq!(fs::metadata(agent.join("log")).unwrap().uid(), 65534);
                let output = run(tree.path());
                let said = String::from_utf8_lossy(&output.stderr).to_string();
                assert!(
                    !output.status.success(),
                    "{script:?}: a foreign folder was accepted"
                );
                assert!(said.contains("belongs to uid 65534"), "{said}");
            } else {
                eprintln!("SKIPPED: the foreign-owner case needs root");
            }
        }
    }

    /// The effective uid, from `id -u` (xtask keeps its dependencies light).
    fn rustix_free_euid() -> u32 {
        let output = std::process::Command::new("id").arg("-u").output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap()
    }

    /// cargo-deb takes the version from Cargo.toml and the changelog from contrib/debian: a
    /// version bump must add a changelog entry (lintian and apt show the changelog's version).
    #[test]
    fn debian_changelogs_start_with_this_version() {
        for package in ["cte-agent", "cm-emulator"] {
            let path = project_root().join(format!("contrib/debian/{package}.changelog"));
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = format!("{package} ({}-1) ", env!("CARGO_PKG_VERSION"));
            assert!(
                text.starts_with(&expected),
                "{}: the first entry must be {expected:?}...: add one for this version",
                path.display()
            );
        }
    }

    /// The maintainer scripts are POSIX sh that `sh -n` accepts, and the Debian ones keep the
    /// `#DEBHELPER#` token exactly once and only as a line of its own (cargo-deb replaces every
    /// occurrence, comments included).
    #[test]
    fn maintainer_scripts_parse_and_keep_one_debhelper_token() {
        for name in [
            "debian/postinst",
            "debian/prerm",
            "debian/postrm",
            "rpm/post-install.sh",
            "rpm/pre-uninstall.sh",
            "rpm/post-uninstall.sh",
            "rpm/cte-agent.sh",
        ] {
            let path = project_root().join("contrib").join(name);
            let text = std::fs::read_to_string(&path).unwrap();
            if name.starts_with("debian/") {
                assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{name}");
                assert!(text.lines().any(|line| line == "#DEBHELPER#"), "{name}");
            }
            let status = Command::new("sh").arg("-n").arg(&path).status().unwrap();
            assert!(status.success(), "sh -n {name}");
        }
    }
}
