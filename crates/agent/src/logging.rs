//! Log lines in the product's shape, to the product's log file and to stderr, plus the records
//! to upload to the manager.
//!
//! `2026-11-28 04:21:47.829 [VMD] [WARNING] [591115] [CGP3001W] text` (UTC, milliseconds): the
//! date and time, the facility (`VMD`, `VMUTIL`), the level, the process id, the message id
//! (`CGP`, the number from [`crate::messages`], the level's letter) and the text.
//!
//! The file is `vorvmd_root.log` in [`log_dir`] (`/var/log/vormetric` for the product's agent
//! root). Before a line would take it past `DEFAULT_MAX_BYTES` it is rotated by size
//! (`vorvmd_root.log.1` … `.5`, oldest dropped) and the line goes to the new file: a line is never
//! lost to a rotation (if renaming fails the line is appended to the full file anyway). When
//! stderr is the systemd journal (`JOURNAL_STREAM` names stderr's device and inode) the stderr
//! copy drops the timestamp, which journald adds itself, and starts with the syslog priority
//! (`<4>` for WARNING) so `journalctl -p warning` filters it; elsewhere stderr gets the full line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use cert_loading::escape_for_terminal;
use durable_fs::Trust;

use crate::AgentError;
use crate::paths::{AgentRoot, DEFAULT_LOG_DIR, LOG_FILE_NAME};

/// The size past which the log file is rotated.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// How many rotated files are kept (`.1` newest to `.5` oldest).
pub(crate) const DEFAULT_KEPT_FILES: u32 = 5;

/// The log folder: `flag` (`--log-dir`) if given, else agent.conf's `LOG_DIR`, else
/// `DEFAULT_LOG_DIR` for the product's agent root on Unix, and `<root>/vmd/log` for any other
/// root (so a test or second agent keeps its logs to itself) and on Windows. agent.conf is read
/// leniently here: a broken file is reported by the operation itself, into the default log.
pub fn log_dir(root: &AgentRoot, flag: Option<&Path>) -> PathBuf {
    if let Some(flag) = flag.filter(|flag| !flag.as_os_str().is_empty()) {
        return flag.to_path_buf();
    }
    let configured = agent_config::ConfigFile::read(&root.agent_conf())
        .ok()
        .and_then(|file| agent_config::path_setting(&file, agent_config::keys::LOG_DIR));
    log_dir_with(root, None, configured.as_deref())
}

/// [`log_dir`] with agent.conf's `LOG_DIR` already read (`configured`), so a caller that has the
/// settings does not parse agent.conf again.
pub(crate) fn log_dir_with(
    root: &AgentRoot,
    flag: Option<&Path>,
    configured: Option<&Path>,
) -> PathBuf {
    if let Some(flag) = flag.filter(|flag| !flag.as_os_str().is_empty()) {
        return flag.to_path_buf();
    }
    if let Some(configured) = configured {
        return configured.to_path_buf();
    }
    // Windows has no /var/log: its logs stay under the agent root unless LOG_DIR says otherwise.
    if cfg!(unix) && root.path() == Path::new(crate::paths::DEFAULT_AGENT_ROOT) {
        PathBuf::from(DEFAULT_LOG_DIR)
    } else {
        root.log_dir()
    }
}

/// The log file and how far its folder is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFile {
    /// The file.
    pub path: PathBuf,
    /// [`Trust::Own`] for the agent's own log folders (`DEFAULT_LOG_DIR`, `vmd/log`): created
    /// 0700, mode repaired, refused when a link or another user's. [`Trust::Shared`] for a folder
    /// named by `--log-dir` or `LOG_DIR`: refused when anyone but root can replace entries in it.
    pub trust: Trust,
}

impl From<PathBuf> for LogFile {
    /// A log file in a folder of the agent's own.
    fn from(path: PathBuf) -> Self {
        LogFile {
            path,
            trust: Trust::Own,
        }
    }
}

/// The log file: `LOG_FILE_NAME` in [`log_dir`].
pub fn log_file(root: &AgentRoot, flag: Option<&Path>) -> LogFile {
    log_file_in(root, log_dir(root, flag))
}

/// The log file for an agent whose settings are read: `LOG_FILE_NAME` in `log_dir_with`.
pub fn log_file_for(agent: &crate::settings::Agent, flag: Option<&Path>) -> LogFile {
    log_file_in(
        &agent.root,
        log_dir_with(&agent.root, flag, agent.settings.log_dir.as_deref()),
    )
}

fn log_file_in(root: &AgentRoot, folder: PathBuf) -> LogFile {
    let own = folder == Path::new(DEFAULT_LOG_DIR) || folder == root.log_dir();
    LogFile {
        path: folder.join(LOG_FILE_NAME),
        trust: if own { Trust::Own } else { Trust::Shared },
    }
}

/// A log level: the product's one level scale (`INFO`, `WARNING`, `ERROR`, `CRITICAL`), the
/// same type the renewal plan decides with and agent.conf's upload threshold names.
pub use agent_config::Severity;

/// Whether agent.conf's upload threshold (`None`: upload nothing) lets `level` through.
fn is_uploaded(level: Severity, threshold: Option<Severity>) -> bool {
    threshold.is_some_and(|threshold| level >= threshold)
}

/// Opens each of the agent's own folders that exists (`vmd/etc`, `vmd/run`, `vmd/log`, and
/// `/var/log/vormetric` for the product's root) as `Trust::Own` and logs each repair of a mode
/// (CGP3015W). A refusal is left to the operation that needs the folder, which reports it.
pub(crate) fn check_own_folders(root: &crate::paths::AgentRoot, logger: &Logger) {
    let mut folders = vec![root.etc_dir(), root.run_dir(), root.log_dir()];
    if root.path() == std::path::Path::new(crate::paths::DEFAULT_AGENT_ROOT) {
        folders.push(DEFAULT_LOG_DIR.into());
    }
    for folder in folders {
        if std::fs::symlink_metadata(&folder).is_err() {
            continue;
        }
        if let Ok(opened) = durable_fs::Folder::open(&folder, durable_fs::Trust::Own)
            && let Some(repair) = opened.repaired()
        {
            logger.message(
                Severity::Warning,
                &crate::messages::Message::FolderRepaired {
                    repair: repair.to_string(),
                },
            );
        }
    }
}

/// Writes log lines; keeps the lines worth uploading until `Logger::take_uploads`.
pub struct Logger {
    component: &'static str,
    file: Option<LogFile>,
    write_failures: std::sync::atomic::AtomicU64,
    to_stderr: bool,
    stderr_is_journal: bool,
    max_bytes: u64,
    kept_files: u32,
    upload_threshold: Mutex<Option<Severity>>,
    pending: Mutex<Vec<cm_client::LogRecord>>,
}

impl Logger {
    /// A logger for `component` (`VMD`, `VMUTIL`, `REG`) writing to `file` (if any) and stderr.
    pub fn new(component: &'static str, file: Option<LogFile>, to_stderr: bool) -> Self {
        Self {
            component,
            file,
            write_failures: std::sync::atomic::AtomicU64::new(0),
            to_stderr,
            stderr_is_journal: to_stderr && stderr_is_journal(),
            max_bytes: DEFAULT_MAX_BYTES,
            kept_files: DEFAULT_KEPT_FILES,
            upload_threshold: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Rotates the file before it would exceed `max_bytes`, keeping `kept_files` old files
    /// (at least one). (The product's sizes are the defaults; tests use small ones.)
    #[cfg(test)]
    fn with_rotation(mut self, max_bytes: u64, kept_files: u32) -> Self {
        self.max_bytes = max_bytes;
        self.kept_files = kept_files.max(1);
        self
    }

    /// Sets which levels are kept for upload.
    pub(crate) fn set_upload_threshold(&self, threshold: Option<Severity>) {
        *self
            .upload_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = threshold;
    }

    /// Logs `text` with the message number `number` (e.g. 3001 gives `CGP3001W` at WARNING).
    /// Never pass secrets here.
    pub fn log(&self, level: Severity, number: u32, text: &str) {
        // Text can carry what others chose (a certificate's common name, a folder name, the
        // manager's message): control and bidi characters are escaped so one call is one line
        // that reads as it is stored.
        let escaped = escape_for_terminal(text);
        let text = escaped.as_str();
        let message_id = format!("CGP{number:04}{}", level.id_suffix());
        let now = SystemTime::now();
        let body = format!(
            "[{}] [{}] [{}] [{}] {}\n",
            self.component,
            level,
            std::process::id(),
            message_id,
            text
        );
        let line = format!("{} {body}", line_time(now));
        if self.to_stderr {
            let _ = if self.stderr_is_journal {
                // journald stamps each line itself and reads the priority from `<N>`.
                let priority = format!("<{}>", level.syslog_priority());
                std::io::stderr().write_all(format!("{priority}{body}").as_bytes())
            } else {
                std::io::stderr().write_all(line.as_bytes())
            };
        }
        if let Some(file) = &self.file
            && let Err(error) = append(file, line.as_bytes(), self.max_bytes, self.kept_files)
        {
            // Never silent: the first failure (and every tenth after it) goes to stderr, which
            // is the journal under systemd; the count is in `write_failures`.
            let failures = self
                .write_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if failures.is_multiple_of(10) {
                let message = crate::messages::Message::LogNotWritten {
                    path: file.path.display().to_string(),
                    failures: failures + 1,
                    error: error.to_string(),
                };
                let _ = std::io::stderr().write_all(
                    format!(
                        "{} [{}] [ERROR] [{}] [CGP{:04}E] {}\n",
                        line_time(now),
                        self.component,
                        std::process::id(),
                        message.id(),
                        escape_for_terminal(&message.text()),
                    )
                    .as_bytes(),
                );
                if !self.to_stderr {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
        }
        let threshold = *self
            .upload_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if is_uploaded(level, threshold) {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cm_client::LogRecord {
                    time: cert_loading::format_rfc3339(now),
                    level: level.to_string(),
                    component: self.component.to_string(),
                    message_id,
                    message: text.to_string(),
                });
        }
    }

    /// Logs a catalogue message at `level` (its id comes from the catalogue).
    pub fn message(&self, level: Severity, message: &crate::messages::Message) {
        self.log(level, message.id(), &message.text());
    }

    /// How many lines could not be written to the log file since this logger started.
    pub(crate) fn write_failures(&self) -> u64 {
        self.write_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether no record is waiting for upload.
    pub(crate) fn has_no_uploads(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// Takes the records waiting for upload.
    pub(crate) fn take_uploads(&self) -> Vec<cm_client::LogRecord> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts records back after a failed upload (bounded, oldest dropped first).
    pub(crate) fn requeue_uploads(&self, mut records: Vec<cm_client::LogRecord>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        records.append(&mut pending);
        let excess = records.len().saturating_sub(1000);
        records.drain(..excess);
        *pending = records;
    }
}

/// Whether stderr is the systemd journal: `JOURNAL_STREAM` is `DEVICE:INODE` of the stream
/// systemd connected (a child with redirected stderr inherits the variable, hence the check).
#[cfg(unix)]
fn stderr_is_journal() -> bool {
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match rustix::fs::fstat(std::io::stderr()) {
        Ok(stat) => expected.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino)),
        Err(_) => false,
    }
}

/// Windows has no journald: a service's stderr gets the full line.
#[cfg(not(unix))]
fn stderr_is_journal() -> bool {
    false
}

/// The lock file that serialises rotation and appends between processes (vmd and vmutil), in
/// the log folder.
pub(crate) const ROTATION_LOCK_NAME: &str = ".vorvmd_root.log.lock";

/// Appends `bytes` to the log file, first rotating it when they would take it past `max_bytes`.
/// Everything goes through the folder's checked handle ([`durable_fs::Folder`]): the file is
/// never opened through a link, a FIFO or another user's file. Appends and rotations of all
/// processes are serialised by an exclusive lock on [`ROTATION_LOCK_NAME`], so two processes
/// never rotate at once. A failed rotation is not a lost line: the line still goes to the file.
fn append(file: &LogFile, bytes: &[u8], max_bytes: u64, kept_files: u32) -> Result<(), AgentError> {
    let (folder_path, name) = crate::fsutil::split(&file.path)?;
    let folder = match file.trust {
        Trust::Own => crate::fsutil::own_folder(folder_path)?,
        trust => {
            // A custom log folder that does not exist yet is made private (0700); one that
            // exists is judged as it is, never changed.
            if std::fs::symlink_metadata(folder_path).is_err() {
                crate::fsutil::create_private_dir(folder_path)?;
            }
            durable_fs::Folder::open(folder_path, trust)
                .map_err(|error| crate::fsutil::fs_error(error, "opening the log folder"))?
        }
    };
    let error = |error| crate::fsutil::fs_error(error, "writing the log");
    let lock = folder.open_lock(ROTATION_LOCK_NAME).map_err(error)?;
    lock.lock()
        .map_err(|source| AgentError::io(folder.join(ROTATION_LOCK_NAME), "locking", source))?;
    let size = folder.size(name).map_err(error)?.unwrap_or(0);
    if size > 0 && size.saturating_add(bytes.len() as u64) > max_bytes {
        let _ = rotate(&folder, name, kept_files);
    }
    folder
        .open_append(name)
        .map_err(error)?
        .write_all(bytes)
        .map_err(|source| AgentError::io(&file.path, "appending to", source))
}

/// `vorvmd_root.log` → `.1` → `.2` … → `.kept_files` (the oldest is dropped), by `renameat` in
/// the folder; the caller holds the rotation lock.
fn rotate(
    folder: &durable_fs::Folder,
    name: &str,
    kept_files: u32,
) -> Result<(), durable_fs::Error> {
    let numbered = |number: u32| format!("{name}.{number}");
    folder.remove(&numbered(kept_files))?;
    for number in (1..kept_files).rev() {
        if folder.size(&numbered(number))?.is_some() {
            folder.rename(&numbered(number), &numbered(number + 1))?;
        }
    }
    folder.rename(name, &numbered(1))
}

/// `2026-11-28 04:21:47.829`, UTC.
fn line_time(time: SystemTime) -> String {
    let rfc3339 = cert_loading::format_rfc3339(time);
    let millis = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|duration| duration.subsec_millis())
        .unwrap_or(0);
    format!(
        "{}.{millis:03}",
        rfc3339.trim_end_matches('Z').replace('T', " ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_product_shape() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("log/vmd.log");
        let logger = Logger::new("VMD", Some(path.clone().into()), false);
        logger.set_upload_threshold(Some(Severity::Warning));
        logger.log(Severity::Info, 2001, "started");
        logger.log(Severity::Warning, 3001, "no new certificate");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let parts: Vec<&str> = lines[1].splitn(3, ' ').collect();
        assert_eq!(parts[0].len(), 10, "{}", lines[1]);
        assert_eq!(parts[1].len(), 12, "{}", lines[1]);
        assert!(parts[2].starts_with(&format!(
            "[VMD] [WARNING] [{}] [CGP3001W] no new",
            std::process::id()
        )));
        let uploads = logger.take_uploads();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].message_id, "CGP3001W");
    }

    #[test]
    fn one_call_is_one_line_whatever_the_text_holds() {
        // A folder name, a common name or a manager message could hold a line break or an
        // escape sequence: it must not forge a second log line or drive a terminal.
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("vmd.log");
        let logger = Logger::new("VMD", Some(path.clone().into()), false);
        logger.log(
            Severity::Error,
            3003,
            "refused: no\n2026-01-01 00:00:00.000 [VMD] [INFO] [1] [CGP2003I] renewed\u{1b}[2J",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("refused: no\\n2026-01-01"), "{text}");
    }

    #[test]
    fn rotation_by_size_keeps_every_line_whole_and_the_newest_in_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(LOG_FILE_NAME);
        let logger = Logger::new("VMD", Some(path.clone().into()), false).with_rotation(400, 50);
        for number in 0..40 {
            logger.log(Severity::Info, 2001, &format!("line {number:02}"));
        }
        // Oldest first: .N … .1, then the file itself.
        let mut files: Vec<PathBuf> = (1..=50)
            .rev()
            .map(|n| folder.path().join(format!("{LOG_FILE_NAME}.{n}")))
            .filter(|file| file.exists())
            .collect();
        files.push(path.clone());
        assert!(files.len() > 3, "{files:?}");
        let mut seen = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                text.len() <= 400,
                "{} is {} bytes",
                file.display(),
                text.len()
            );
            assert!(text.ends_with('\n'));
            seen.extend(
                text.lines()
                    .map(|line| line.rsplit(' ').next().unwrap().to_string()),
            );
        }
        let expected: Vec<String> = (0..40).map(|number| format!("{number:02}")).collect();
        assert_eq!(seen, expected, "no line lost, duplicated or reordered");
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 39"));
        // With two files kept, the oldest are dropped, never the current line.
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join(LOG_FILE_NAME);
        let logger = Logger::new("VMD", Some(path.clone().into()), false).with_rotation(400, 2);
        for number in 0..40 {
            logger.log(Severity::Warning, 3001, &format!("line {number:02}"));
        }
        assert!(folder.path().join(format!("{LOG_FILE_NAME}.2")).exists());
        assert!(!folder.path().join(format!("{LOG_FILE_NAME}.3")).exists());
        assert!(std::fs::read_to_string(&path).unwrap().contains("line 39"));
    }

    #[test]
    fn the_log_folder_follows_flag_then_agent_conf_then_the_root() {
        let folder = tempfile::tempdir().unwrap();
        let root = AgentRoot::new(folder.path());
        assert_eq!(
            log_file(&root, None),
            LogFile {
                path: folder.path().join("vmd/log/vorvmd_root.log"),
                trust: Trust::Own
            }
        );
        std::fs::create_dir_all(root.etc_dir()).unwrap();
        std::fs::write(root.agent_conf(), "URL=https://cm\nLOG_DIR=/srv/logs\n").unwrap();
        assert_eq!(
            log_file(&root, None),
            LogFile {
                path: PathBuf::from("/srv/logs/vorvmd_root.log"),
                trust: Trust::Shared
            }
        );
        assert_eq!(
            log_file(&root, Some(Path::new("/tmp/flag"))).path,
            Path::new("/tmp/flag/vorvmd_root.log")
        );
        let product = AgentRoot::new(crate::paths::DEFAULT_AGENT_ROOT);
        if cfg!(unix) && !product.agent_conf().exists() {
            assert_eq!(
                log_file(&product, None),
                LogFile {
                    path: PathBuf::from("/var/log/vormetric/vorvmd_root.log"),
                    trust: Trust::Own
                }
            );
        }
    }
}
