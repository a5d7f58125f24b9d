//! `cargo xtask man`: the man pages (`contrib/man/*.1`) and the bash, zsh and fish completions
//! (`contrib/completions/`) of `register_host`, `vmd`, `vmutil` and `cm-emulator`, generated from
//! the clap definitions in each binary's lib target (clap_mangen, clap_complete) plus the sections
//! clap does not know (`pages.rs`: exit status, environment, files, examples).
//!
//! The files are committed: the packages ship them and a reader finds them in the repository. The
//! test below regenerates them in memory and fails, naming `cargo xtask man`, when a flag was added
//! or changed without regenerating.
//!
//! The clap definitions come with the agent and the emulator, so this lives behind the `docs`
//! feature (the light `cargo xtask` hands the task over, see main.rs) and, for the test, in
//! xtask's dev-dependencies.

mod pages;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap_complete::Shell;
use roff::{Roff, bold, roman};

use crate::project_root;
use pages::{Block, Page};

/// Where the man pages go, relative to the workspace root.
pub(crate) const MAN_FOLDER: &str = "contrib/man";
/// Where the completions go (one folder per shell), relative to the workspace root.
pub(crate) const COMPLETIONS_FOLDER: &str = "contrib/completions";

/// Writes every generated file, replacing what is there, and removes stale ones.
#[cfg_attr(not(feature = "docs"), allow(dead_code))]
pub(crate) fn run(arguments: &[String]) -> Result<()> {
    if let Some(argument) = arguments.first() {
        bail!("`cargo xtask man` takes no arguments, not {argument:?}");
    }
    let root = project_root();
    let files = generate()?;
    for folder in [MAN_FOLDER, COMPLETIONS_FOLDER] {
        let folder = root.join(folder);
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .with_context(|| format!("removing {}", folder.display()))?;
        }
    }
    for (relative, bytes) in &files {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", relative.display());
    }
    Ok(())
}

/// Every generated file: path relative to the workspace root, and contents.
pub(crate) fn generate() -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for page in pages::all() {
        let name = page.name;
        files.insert(
            Path::new(MAN_FOLDER).join(format!("{name}.1")),
            man_page(&page)?,
        );
        for (shell, file) in [
            (Shell::Bash, name.to_string()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut (page.command)(), name, &mut bytes);
            files.insert(
                Path::new(COMPLETIONS_FOLDER)
                    .join(shell.to_string())
                    .join(file),
                bytes,
            );
        }
    }
    Ok(files)
}

/// clap_mangen's page (title, name, synopsis, description, options) without clap's after-help
/// text, then clap's after-help as NOTES and the page's own sections.
fn man_page(page: &Page) -> Result<Vec<u8>> {
    let command = (page.command)();
    let after_help = command
        .get_after_long_help()
        .or(command.get_after_help())
        .map(|text| text.to_string());
    let command = command
        .after_help(None::<&str>)
        .after_long_help(None::<&str>);
    let man = clap_mangen::Man::new(command)
        .manual("CTE agent")
        .source(format!("CTE agent {}", env!("CARGO_PKG_VERSION")));
    let mut bytes = Vec::new();
    man.render(&mut bytes)?;

    let mut roff = Roff::new();
    // The exit codes have their own section; the rest of clap's after-help text is NOTES.
    let notes: Vec<String> = after_help
        .iter()
        .flat_map(|text| text.split("\n\n"))
        .map(|paragraph| paragraph.trim().to_string())
        .filter(|paragraph| !paragraph.is_empty() && !paragraph.starts_with("Exit codes"))
        .collect();
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for note in &notes {
            for line in note.lines() {
                roff.control("PP", []).text([roman(line)]);
            }
        }
    }
    for (title, blocks) in &page.sections {
        roff.control("SH", [*title]);
        for block in blocks {
            render_block(&mut roff, block);
        }
    }
    bytes.extend_from_slice(roff.to_roff().as_bytes());
    Ok(bytes)
}

fn render_block(roff: &mut Roff, block: &Block) {
    match block {
        Block::Paragraph(text) => {
            roff.control("PP", []).text([roman(text.to_string())]);
        }
        Block::Item(term, text) => {
            roff.control("TP", [])
                .text([bold(term.to_string())])
                .text([roman(text.to_string())]);
        }
        Block::Example(what, commands) => {
            roff.control("PP", []).text([roman(what.to_string())]);
            roff.control("PP", [])
                .control("RS", ["4"])
                .control("nf", []);
            for line in commands.lines() {
                roff.text([bold(line.to_string())]);
            }
            roff.control("fi", []).control("RE", []);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed files under `folder`, relative to the workspace root.
    fn committed(folder: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, folder: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
            let Ok(entries) = std::fs::read_dir(folder) else {
                return;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, files);
                } else {
                    let relative = path.strip_prefix(root).unwrap().to_path_buf();
                    files.insert(relative, std::fs::read(&path).unwrap());
                }
            }
        }
        let root = project_root();
        let mut files = BTreeMap::new();
        walk(&root, &root.join(folder), &mut files);
        files
    }

    #[test]
    fn committed_man_pages_and_completions_match_the_clap_definitions() {
        let generated = generate().unwrap();
        let mut on_disk = committed(MAN_FOLDER);
        on_disk.extend(committed(COMPLETIONS_FOLDER));
        let mut problems = Vec::new();
        for (path, bytes) in &generated {
            match on_disk.get(path) {
                None => problems.push(format!("{} is missing", path.display())),
                Some(committed) if committed != bytes => {
                    problems.push(format!("{} is out of date", path.display()))
                }
                Some(_) => {}
            }
        }
        for path in on_disk.keys().filter(|path| !generated.contains_key(*path)) {
            problems.push(format!("{} is not generated any more", path.display()));
        }
        assert!(
            problems.is_empty(),
            "the man pages and completions differ from the clap definitions: {}.\nRegenerate them with `cargo xtask man` and commit the result.",
            problems.join("; ")
        );
    }

    #[test]
    fn every_man_page_has_the_sections_users_look_for() {
        for (path, bytes) in generate().unwrap() {
            if !path.starts_with(MAN_FOLDER) {
                continue;
            }
            let text = String::from_utf8(bytes).unwrap();
            for section in [
                "NAME",
                "SYNOPSIS",
                "OPTIONS",
                "EXIT STATUS",
                "ENVIRONMENT",
                "FILES",
                "EXAMPLES",
                "SEE ALSO",
            ] {
                assert!(
                    text.contains(&format!(".SH \"{section}\""))
                        || text.contains(&format!(".SH {section}\n")),
                    "{}: no {section} section",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn register_host_page_shows_the_single_dash_spellings_and_every_exit_code() {
        let files = generate().unwrap();
        let page =
            String::from_utf8(files[Path::new("contrib/man/register_host.1")].clone()).unwrap();
        for flag in register_host::PRODUCT_FLAGS {
            assert!(
                page.contains(&format!("\\-{}", flag.replace('-', "\\-"))),
                "register_host.1 does not show -{flag}"
            );
        }
        for code in ["0", "2", "3", "4", "5", "6"] {
            assert!(
                page.contains(&format!(".TP\n\\fB{code}\\fR\n")),
                "register_host.1 does not explain exit code {code}"
            );
        }
    }

    /// groff, when installed, renders each page without a warning (`-ww`: all warnings).
    #[test]
    fn man_pages_render_without_warnings() {
        if std::process::Command::new("groff")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: groff is not installed; the man pages were not rendered");
            return;
        }
        for (path, bytes) in generate().unwrap() {
            if !path.starts_with(MAN_FOLDER) {
                continue;
            }
            let mut child = std::process::Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            let output = child.wait_with_output().unwrap();
            let warnings = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && warnings.trim().is_empty(),
                "{}: groff says:\n{warnings}",
                path.display()
            );
        }
    }
}
