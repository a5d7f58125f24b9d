//! Repository rules, checked as ordinary tests (the rust-analyzer `tidy` pattern): dependency
//! directions, crate documentation, lints, and the systemd unit's syntax.

#![cfg(test)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::project_root;

struct Package {
    folder: PathBuf,
    name: String,
    normal: Vec<String>,
    manifest: toml::Table,
}

fn packages() -> BTreeMap<String, Package> {
    let mut packages = BTreeMap::new();
    for group in ["crates", "bins"] {
        for entry in std::fs::read_dir(project_root().join(group)).unwrap() {
            let folder = entry.unwrap().path();
            let text = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
            let manifest: toml::Table = text.parse().unwrap();
            let names = |key: &str| -> Vec<String> {
                let mut names: Vec<String> = manifest
                    .get(key)
                    .and_then(|value| value.as_table())
                    .map(|table| table.keys().cloned().collect())
                    .unwrap_or_default();
                // Target-specific dependencies count as normal ones.
                if let Some(targets) = manifest.get("target").and_then(|value| value.as_table()) {
                    for target in targets.values() {
                        if let Some(table) = target.get(key).and_then(|value| value.as_table()) {
                            names.extend(table.keys().cloned());
                        }
                    }
                }
                names
            };
            let name = manifest["package"]["name"].as_str().unwrap().to_string();
            packages.insert(
                name.clone(),
                Package {
                    folder: folder.clone(),
                    name,
                    normal: names("dependencies"),
                    manifest,
                },
            );
        }
    }
    packages
}

fn is_library(package: &Package) -> bool {
    package.folder.parent().unwrap().ends_with("crates")
}

#[test]
fn libraries_never_depend_on_binaries_or_test_helpers() {
    let packages = packages();
    let binaries: Vec<&str> = packages
        .values()
        .filter(|package| !is_library(package))
        .map(|package| package.name.as_str())
        .collect();
    for package in packages.values().filter(|package| is_library(package)) {
        for dependency in &package.normal {
            assert!(
                !binaries.contains(&dependency.as_str()) && dependency != "xtask",
                "{} depends on the binary package {dependency}",
                package.name
            );
            if !["test-support", "test-pki"].contains(&package.name.as_str()) {
                assert!(
                    !["test-support", "test-pki"].contains(&dependency.as_str()),
                    "{} has the test helper {dependency} as a normal dependency",
                    package.name
                );
            }
        }
    }
}

#[test]
fn renewal_policy_depends_on_no_io_crate_and_forbids_the_clock() {
    let packages = packages();
    let policy = &packages["renewal-policy"];
    assert_eq!(
        policy.normal,
        vec![
            "cert-vocabulary".to_string(),
            "serde".to_string(),
            "sha2".to_string()
        ],
        "renewal-policy must stay pure (serde: derives for the journal's shape, no I/O)"
    );
    let clippy = std::fs::read_to_string(policy.folder.join("clippy.toml")).unwrap();
    assert!(clippy.contains("std::time::SystemTime::now"));
    // The vocabulary under it is as pure: hashing, hex and der's calendar, no clock.
    let vocabulary = &packages["cert-vocabulary"];
    assert_eq!(vocabulary.normal, vec!["base16ct", "der", "serde", "sha2"]);
    let clippy = std::fs::read_to_string(vocabulary.folder.join("clippy.toml")).unwrap();
    assert!(clippy.contains("std::time::SystemTime::now"));
}

#[test]
fn durable_fs_is_a_leaf_and_the_only_atomic_write() {
    let packages = packages();
    let durable = &packages["durable-fs"];
    assert!(
        durable
            .normal
            .iter()
            .all(|dependency| dependency == "rustix"),
        "durable-fs must depend on nothing but std and rustix (it is below every crate that touches files): {:?}",
        durable.normal
    );
    // The one durable atomic write: the crates that write state files use it, and nobody else
    // renames a temporary file over a target on their own.
    for user in ["keystore", "agent", "cm-emulator"] {
        assert!(
            packages[user].normal.contains(&"durable-fs".to_string()),
            "{user} writes files atomically through durable-fs"
        );
    }
    for (file, copy) in [
        ("crates/agent/src/fsutil.rs", "fs::rename("),
        ("crates/keystore/src/files.rs", "fs::rename("),
        ("crates/cm-emulator/src/store.rs", "fs::rename("),
    ] {
        let text = std::fs::read_to_string(project_root().join(file)).unwrap();
        assert!(
            !text.contains(copy),
            "{file} has its own atomic write again; call durable_fs::replace_file"
        );
    }
}

#[test]
fn cert_loading_and_cm_client_stay_apart_and_off_the_network() {
    let packages = packages();
    let cert_loading = &packages["cert-loading"];
    let cm_client = &packages["cm-client"];
    assert!(!cert_loading.normal.contains(&"cm-client".to_string()));
    assert!(!cm_client.normal.contains(&"cert-loading".to_string()));
    assert!(
        !cm_client.normal.contains(&"keystore".to_string()),
        "cm-client must not know the keystore"
    );
    for network in ["ureq", "hyper", "tokio", "rustls", "tokio-rustls"] {
        assert!(
            !cert_loading.normal.contains(&network.to_string()),
            "cert-loading depends on {network}"
        );
    }
}

#[test]
fn only_agent_combines_the_focused_crates() {
    let focused = [
        "cert-loading",
        "keystore",
        "cm-client",
        "renewal-policy",
        "agent-config",
    ];
    for package in packages().values().filter(|package| is_library(package)) {
        if ["agent", "test-support"].contains(&package.name.as_str()) {
            continue;
        }
        let used: Vec<&String> = package
            .normal
            .iter()
            .filter(|dependency| focused.contains(&dependency.as_str()))
            .collect();
        // keystore stores cert-loading's identity type: the one allowed pairing.
        let allowed = package.name == "keystore" && used == [&"cert-loading".to_string()];
        assert!(
            used.is_empty() || allowed,
            "{} combines {used:?}; move that into agent",
            package.name
        );
    }
}

/// The one crate allowed `unsafe` code (DPAPI's FFI calls, issue 23): it must deny it at the
/// crate level, allow it only on SAFETY-commented blocks (clippy's `undocumented_unsafe_blocks`
/// at deny), and otherwise keep the workspace's lints.
const UNSAFE_FFI_CRATE: &str = "dpapi";

fn check_ffi_crate_lints(package: &Package) {
    let workspace: toml::Table = std::fs::read_to_string(project_root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut expected = workspace["workspace"]["lints"].as_table().unwrap().clone();
    expected["rust"]
        .as_table_mut()
        .unwrap()
        .insert("unsafe_code".into(), "deny".into());
    expected["clippy"]
        .as_table_mut()
        .unwrap()
        .insert("undocumented_unsafe_blocks".into(), "deny".into());
    assert_eq!(
        package
            .manifest
            .get("lints")
            .and_then(|lints| lints.as_table()),
        Some(&expected),
        "{}: the workspace's lints, with unsafe_code and undocumented_unsafe_blocks at deny",
        package.name
    );
    let text = std::fs::read_to_string(package.folder.join("src/lib.rs")).unwrap();
    assert!(text.contains("#![deny(unsafe_code)]"), "{}", package.name);
}

#[test]
fn every_crate_has_crate_docs_workspace_lints_and_its_folder_name() {
    for package in packages().values() {
        if package.name == UNSAFE_FFI_CRATE {
            check_ffi_crate_lints(package);
        } else {
            let lints = package
                .manifest
                .get("lints")
                .and_then(|lints| lints.get("workspace"));
            assert_eq!(
                lints.and_then(|value| value.as_bool()),
                Some(true),
                "{}: [lints] workspace = true",
                package.name
            );
        }
        let source = if is_library(package) {
            "src/lib.rs"
        } else {
            "src/main.rs"
        };
        let text = std::fs::read_to_string(package.folder.join(source)).unwrap();
        assert!(
            text.starts_with("//!"),
            "{}: {source} must start with crate docs",
            package.name
        );
        let folder = package.folder.file_name().unwrap().to_str().unwrap();
        // The emulator's binary package cannot share the library's name.
        let expected = if folder == "cm-emulator" && !is_library(package) {
            "cm-emulator-bin"
        } else {
            folder
        };
        assert_eq!(
            package.name, expected,
            "folder name and package name differ"
        );
        if is_library(package) && package.name != UNSAFE_FFI_CRATE {
            assert!(
                text.contains("#![forbid(unsafe_code)]"),
                "{}: forbid unsafe_code",
                package.name
            );
        }
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = project_root().join("contrib/vmd.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: systemd-analyze is not installed; contrib/vmd.service was not verified"
        );
        return;
    }
    // Point ExecStart at a binary that exists here, so only the unit's own syntax is judged.
    let folder = tempfile::tempdir().unwrap();
    let copy = folder.path().join("vmd.service");
    let text = text.replace(
        "/opt/vormetric/DataSecurityExpert/agent/vmd/bin/vmd",
        "/bin/true",
    );
    std::fs::write(&copy, text).unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let messages = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = messages
        .lines()
        .filter(|line| !line.trim().is_empty())
        // Running outside a booted systemd (CI containers) adds notes about the manager itself.
        .filter(|line| !line.contains("Failed to") && !line.contains("System has not been booted"))
        .collect();
    assert!(problems.is_empty(), "systemd-analyze verify: {problems:?}");
}

/// The non-test Rust sources: `src/` of every crate, binary and xtask (tests, benches, examples
/// and fuzz targets are not counted).
fn source_files() -> Vec<PathBuf> {
    fn walk(folder: &std::path::Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    for group in ["crates", "bins"] {
        for entry in std::fs::read_dir(project_root().join(group)).unwrap() {
            let source = entry.unwrap().path().join("src");
            if source.is_dir() {
                walk(&source, &mut found);
            }
        }
    }
    walk(&project_root().join("xtask/src"), &mut found);
    found.sort();
    found
}

/// What a file over the limits must say near its top (in its first 20 lines), with the reason.
const LENGTH_REASON: &str = "Longer than usual because";

/// The lines of `text` before its `#[cfg(test)]` module, if it has one at the top level.
fn without_unit_tests(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .collect()
}

#[test]
fn no_source_file_over_800_lines_without_a_reason_at_its_top() {
    let mut long = Vec::new();
    for path in source_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = without_unit_tests(&text).len();
        let top: String = text.lines().take(20).collect::<Vec<_>>().join("\n");
        if lines > 800 && !top.contains(LENGTH_REASON) {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(
        long.is_empty(),
        "split these by job, or say why at the top (\"{LENGTH_REASON} ...\"): {long:#?}"
    );
}

#[test]
fn no_function_over_150_lines_without_a_reason_above_it() {
    let mut long = Vec::new();
    for path in source_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = without_unit_tests(&text);
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_function = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub async fn ",
                "pub(crate) async fn ",
                "const fn ",
                "pub const fn ",
            ]
            .iter()
            .any(|prefix| trimmed.starts_with(prefix));
            // A declaration without a body (a trait method) ends on its own line.
            if !is_function || trimmed.ends_with(';') {
                continue;
            }
            let indent = &line[..line.len() - trimmed.len()];
            let closing = format!("{indent}}}");
            let Some(length) = lines[start..].iter().position(|line| *line == closing) else {
                continue;
            };
            let above = lines[start.saturating_sub(6)..start].join("\n");
            if length > 150 && !above.contains(LENGTH_REASON) {
                long.push(format!("{}:{} ({length} lines)", path.display(), start + 1));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these functions, or say why in the comment above (\"{LENGTH_REASON} ...\"): {long:#?}"
    );
}

/// The modules of `agent` a module names with `crate::` in its code (comments and its tests
/// left out). `crate::AgentError` and `crate::ExitStatus` are `error`'s, re-exported at the root.
fn agent_module_uses(text: &str) -> std::collections::BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut uses = std::collections::BTreeSet::new();
    let root_items = |name: &str| match name {
        "AgentError" | "ExitStatus" => Some("error".to_string()),
        "Fingerprint" => None,
        _ => Some(name.to_string()),
    };
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or_default().trim();
                if let Some(module) = root_items(first).filter(|module| !module.is_empty()) {
                    uses.insert(module);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(module) = root_items(&name).filter(|module| !module.is_empty()) {
                uses.insert(module);
            }
        }
    }
    uses
}

/// `agent`'s modules use each other one way: docs/ARCHITECTURE.md draws the map (a fenced block
/// after "Module map of `agent`", one `module -> uses, ...` line each), every `crate::` path in a
/// module's code is on its line, and the map has no cycle. Adding a use that closes a cycle, or
/// one the map does not show, fails here with the module and the use.
#[test]
fn agent_modules_follow_the_documented_map_and_have_no_cycle() {
    let architecture =
        std::fs::read_to_string(project_root().join("docs/ARCHITECTURE.md")).unwrap();
    let after = architecture
        .split("Module map of `agent`")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has the module map of `agent`");
    let block = after
        .split("```")
        .nth(1)
        .expect("the module map is a fenced block");
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in block.lines().filter(|line| line.contains("->")) {
        let (module, uses) = line.split_once("->").unwrap();
        let uses = uses
            .split(',')
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty() && name != "(nothing)")
            .collect();
        map.insert(module.trim().to_string(), uses);
    }
    let source = project_root().join("crates/agent/src");
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" {
            continue;
        }
        let files: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|file| file.extension().is_some_and(|ext| ext == "rs"))
                .collect()
        } else {
            vec![path.clone()]
        };
        let mut uses = std::collections::BTreeSet::new();
        for file in files {
            uses.extend(agent_module_uses(&std::fs::read_to_string(file).unwrap()));
        }
        uses.remove(&name);
        modules.push((name, uses));
    }
    modules.sort();
    for (module, uses) in &modules {
        let allowed = map.get(module).unwrap_or_else(|| {
            panic!("agent module `{module}` is missing from the module map in docs/ARCHITECTURE.md")
        });
        for used in uses {
            assert!(
                allowed.contains(used),
                "agent module `{module}` uses `crate::{used}`, which the module map in docs/ARCHITECTURE.md does not show (a cycle, or a map to update)"
            );
        }
    }
    // The map itself is one-way: a depth-first walk finds no module on its own path.
    fn visit<'a>(
        module: &'a str,
        map: &'a BTreeMap<String, Vec<String>>,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) {
        if done.contains(module) {
            return;
        }
        assert!(
            !path.contains(&module),
            "the module map of `agent` has a cycle: {} -> {module}",
            path.join(" -> ")
        );
        path.push(module);
        for used in map.get(module).into_iter().flatten() {
            visit(used, map, path, done);
        }
        path.pop();
        done.insert(module);
    }
    let mut done = std::collections::BTreeSet::new();
    for module in map.keys() {
        visit(module, &map, &mut Vec::new(), &mut done);
    }
}
