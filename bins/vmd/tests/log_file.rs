//! The product's log file and line shape, with the real `vmd --once` against the real emulator:
//! where the file goes (`--log-dir`, `LOG_DIR`, the agent root), the line
//! `YYYY-MM-DD HH:MM:SS.mmm [VMD] [LEVEL] [pid] [CGPnnnnX] text`, and the stderr copy under
//! journald (no second timestamp, a syslog priority instead).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use common::{DAY, text};
use test_pki::KeyType;
use test_support::{Manager, test_ca, test_ca_pem};

struct Host {
    _manager: Manager,
    root: tempfile::TempDir,
    _cert_dir: tempfile::TempDir,
}

impl Host {
    fn registered() -> Host {
        let manager = Manager::start().unwrap();
        let token = manager
            .setup_external_ca(&test_ca_pem("ca-p384").unwrap(), "ext")
            .unwrap();
        let cert_dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        common::issue(
            &test_ca("ca-p384").unwrap(),
            KeyType::P384,
            "host1.example",
            now - DAY,
            now + 200 * DAY,
            cert_dir.path(),
        );
        let root = tempfile::tempdir().unwrap();
        common::register(&manager, &token, "host1", cert_dir.path(), root.path());
        Host {
            _manager: manager,
            root,
            _cert_dir: cert_dir,
        }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmd"));
        command
            .arg("--agent-root")
            .arg(self.root.path())
            .arg("--once")
            .args(extra)
            .env_remove("JOURNAL_STREAM");
        command
    }

    fn once(&self, extra: &[&str]) -> Output {
        let output = self.command(extra).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        output
    }

    fn set_log_dir(&self, folder: &Path) {
        let conf = self.root.path().join("vmd/etc/agent.conf");
        let mut file = agent_config::ConfigFile::read(&conf).unwrap();
        file.set("LOG_DIR", &folder.display().to_string());
        std::fs::write(&conf, file.render()).unwrap();
    }
}

/// Checks `[VMD] [LEVEL] [pid] [CGPnnnnX] text` and returns the message id.
fn assert_tail_shape(tail: &str, line: &str) -> String {
    let parts: Vec<&str> = tail.splitn(5, ' ').collect();
    assert_eq!(parts.len(), 5, "{line}");
    assert_eq!(parts[0], "[VMD]", "{line}");
    let level = parts[1].trim_start_matches('[').trim_end_matches(']');
    let letter = match level {
        "INFO" => 'I',
        "WARNING" => 'W',
        "ERROR" => 'E',
        "CRITICAL" => 'C',
        other => panic!("level {other} in {line}"),
    };
    let pid = parts[2].trim_start_matches('[').trim_end_matches(']');
    assert!(pid.parse::<u32>().is_ok(), "{line}");
    let id = parts[3].trim_start_matches('[').trim_end_matches(']');
    assert_eq!(id.len(), 8, "{line}");
    assert!(
        id.starts_with("CGP") && id[3..7].chars().all(|c| c.is_ascii_digit()),
        "{line}"
    );
    assert_eq!(id.chars().last(), Some(letter), "{line}");
    assert!(!parts[4].is_empty(), "{line}");
    id.to_string()
}

/// `YYYY-MM-DD HH:MM:SS.mmm [VMD] ...`, dated today (UTC) or yesterday around midnight.
fn assert_file_line(line: &str) -> String {
    let bytes = line.as_bytes();
    assert!(bytes.len() > 24, "{line}");
    for (index, byte) in bytes[..23].iter().enumerate() {
        let expected_separator = match index {
            4 | 7 => Some(b'-'),
            10 => Some(b' '),
            13 | 16 => Some(b':'),
            19 => Some(b'.'),
            _ => None,
        };
        match expected_separator {
            Some(separator) => assert_eq!(*byte, separator, "{line}"),
            None => assert!(byte.is_ascii_digit(), "{line}"),
        }
    }
    assert_eq!(bytes[23], b' ', "{line}");
    let today = der::DateTime::from_system_time(SystemTime::now()).unwrap();
    assert_eq!(&line[..4], today.year().to_string(), "{line}");
    assert_tail_shape(&line[24..], line)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_log_file_goes_under_a_custom_root_then_to_log_dir_then_to_the_flag() {
    let host = Host::registered();
    let under_root: PathBuf = host.root.path().join("vmd/log/vorvmd_root.log");
    host.once(&[]);
    let written = lines(&under_root);
    let ids: Vec<String> = written.iter().map(|line| assert_file_line(line)).collect();
    assert_eq!(ids, ["CGP2005I"], "{written:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&under_root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // LOG_DIR in agent.conf moves it (the folder is created).
    let configured = tempfile::tempdir().unwrap();
    let log_dir = configured.path().join("vormetric");
    host.set_log_dir(&log_dir);
    host.once(&[]);
    assert_eq!(lines(&log_dir.join("vorvmd_root.log")).len(), 1);
    assert_eq!(lines(&under_root).len(), 1, "nothing more under the root");

    // --log-dir wins over LOG_DIR.
    let flagged = tempfile::tempdir().unwrap();
    host.once(&["--log-dir", flagged.path().to_str().unwrap()]);
    let flagged_lines = lines(&flagged.path().join("vorvmd_root.log"));
    assert_eq!(flagged_lines.len(), 1);
    assert_file_line(&flagged_lines[0]);
    assert_eq!(lines(&log_dir.join("vorvmd_root.log")).len(), 1);
}

/// Under systemd, stderr is the journal: journald stamps lines itself, so the copy on stderr has
/// no timestamp and starts with the syslog priority (`<6>` INFO); the file keeps the full line.
/// `JOURNAL_STREAM` must name stderr itself (device:inode), or the full line is written.
#[cfg(unix)]
#[test]
fn under_journald_stderr_lines_carry_a_priority_instead_of_a_second_timestamp() {
    use std::os::unix::fs::MetadataExt;
    let host = Host::registered();
    let folder = tempfile::tempdir().unwrap();
    let stderr_path = folder.path().join("stderr");
    let run = |journal_stream: Option<String>| {
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let metadata = stderr.metadata().unwrap();
        let mut command = host.command(&[]);
        let value =
            journal_stream.unwrap_or_else(|| format!("{}:{}", metadata.dev(), metadata.ino()));
        command.env("JOURNAL_STREAM", value);
        let status = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0));
        std::fs::read_to_string(&stderr_path).unwrap()
    };
    let journal = run(None);
    let line = journal.lines().next().unwrap_or_default();
    let tail = line
        .strip_prefix("<6>")
        .unwrap_or_else(|| panic!("no priority: {journal}"));
    assert_eq!(assert_tail_shape(tail, line), "CGP2005I");
    assert!(
        tail.starts_with("[VMD]"),
        "no timestamp under journald: {line}"
    );
    let file_lines = lines(&host.root.path().join("vmd/log/vorvmd_root.log"));
    assert_file_line(file_lines.last().unwrap());
    assert!(file_lines.last().unwrap().ends_with(tail), "{file_lines:?}");

    // A JOURNAL_STREAM inherited from elsewhere (not our stderr): the full line.
    let terminal = run(Some("1:1".to_string()));
    assert_file_line(terminal.lines().next().unwrap_or_default());
}
