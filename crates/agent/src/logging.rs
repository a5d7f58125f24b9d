//! Log lines in the product's shape, to a file under the agent root and to stderr, plus the
//! records to upload to the manager.
//!
//! `2026-11-28 04:21:47.829 [VMD] [WARNING] [591115] [CGP3001W] text`

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

/// A log level, as the product names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Routine progress.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Error,
    /// The host is about to lose (or has lost) its identity.
    Critical,
}

impl fmt::Display for Level {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        })
    }
}

impl Level {
    /// The upload threshold of `agent.conf` allows this level.
    pub fn is_uploaded(self, threshold: agent_config::UploadLevel) -> bool {
        use agent_config::UploadLevel;
        let rank = match threshold {
            UploadLevel::Info => Level::Info,
            UploadLevel::Warning => Level::Warning,
            UploadLevel::Error => Level::Error,
            UploadLevel::Critical => Level::Critical,
            UploadLevel::None => return false,
        };
        self >= rank
    }

    /// The letter the product puts at the end of message ids.
    fn suffix(self) -> char {
        match self {
            Level::Info => 'I',
            Level::Warning => 'W',
            Level::Error => 'E',
            Level::Critical => 'C',
        }
    }
}

/// Writes log lines; keeps the lines worth uploading until [`Logger::take_uploads`].
pub struct Logger {
    component: &'static str,
    file: Option<PathBuf>,
    to_stderr: bool,
    upload_threshold: Mutex<agent_config::UploadLevel>,
    pending: Mutex<Vec<cm_client::LogRecord>>,
}

impl Logger {
    /// A logger for `component` (`VMD`, `VMUTIL`, `REG`) writing to `file` (if any) and stderr.
    pub fn new(component: &'static str, file: Option<PathBuf>, to_stderr: bool) -> Self {
        Self {
            component,
            file,
            to_stderr,
            upload_threshold: Mutex::new(agent_config::UploadLevel::None),
            pending: Mutex::new(Vec::new()),
        }
    }

    /// Sets which levels are kept for upload.
    pub fn set_upload_threshold(&self, threshold: agent_config::UploadLevel) {
        *self
            .upload_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = threshold;
    }

    /// Logs `text` with the message number `number` (e.g. 3001 gives `CGP3001W` at WARNING).
    /// Never pass secrets here.
    pub fn log(&self, level: Level, number: u32, text: &str) {
        // Text can carry what others chose (a certificate's common name, a folder name, the
        // manager's message): control characters are escaped so one call is one line.
        let mut escaped = String::with_capacity(text.len());
        for character in text.chars() {
            if character.is_control() {
                escaped.extend(character.escape_default());
            } else {
                escaped.push(character);
            }
        }
        let text = escaped.as_str();
        let message_id = format!("CGP{number:04}{}", level.suffix());
        let now = SystemTime::now();
        let line = format!(
            "{} [{}] [{}] [{}] [{}] {}\n",
            line_time(now),
            self.component,
            level,
            std::process::id(),
            message_id,
            text
        );
        if self.to_stderr {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        if let Some(path) = &self.file {
            let _ = append(path, line.as_bytes());
        }
        let threshold = *self
            .upload_threshold
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if level.is_uploaded(threshold) {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cm_client::LogRecord {
                    time: cert_loading::format_time(now),
                    level: level.to_string(),
                    component: self.component.to_string(),
                    message_id,
                    message: text.to_string(),
                });
        }
    }

    /// Logs a catalogue message at `level` (its id comes from the catalogue).
    pub fn message(&self, level: Level, message: &crate::messages::Message) {
        self.log(level, message.id(), &message.text());
    }

    /// Takes the records waiting for upload.
    pub fn take_uploads(&self) -> Vec<cm_client::LogRecord> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts records back after a failed upload (bounded, oldest dropped first).
    pub fn requeue_uploads(&self, mut records: Vec<cm_client::LogRecord>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        records.append(&mut pending);
        let excess = records.len().saturating_sub(1000);
        records.drain(..excess);
        *pending = records;
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(folder) = path.parent() {
        let _ = crate::fsutil::create_private_dir(folder);
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// `2026-11-28 04:21:47.829`, UTC.
fn line_time(time: SystemTime) -> String {
    let rfc3339 = cert_loading::format_time(time);
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
        let logger = Logger::new("VMD", Some(path.clone()), false);
        logger.set_upload_threshold(agent_config::UploadLevel::Warning);
        logger.log(Level::Info, 2001, "started");
        logger.log(Level::Warning, 3001, "no new certificate");
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
        let logger = Logger::new("VMD", Some(path.clone()), false);
        logger.log(
            Level::Error,
            3003,
            "refused: no\n2026-01-01 00:00:00.000 [VMD] [INFO] [1] [CGP2003I] renewed\u{1b}[2J",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("refused: no\\n2026-01-01"), "{text}");
    }
}
