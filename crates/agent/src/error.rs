//! The error every operation of the agent returns, and the exit codes shared by all binaries.

use std::path::PathBuf;

/// The project's exit codes, the same for every binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success.
    Ok = 0,
    /// Internal failure that fits no other code (a bug; please report it).
    Internal = 1,
    /// Wrong command-line usage.
    Usage = 2,
    /// The local input is invalid: files, key, passphrase, configuration, pem store.
    LocalInput = 3,
    /// The manager refused.
    Refused = 4,
    /// The manager could not be reached, TLS failed, or it answered something unexpected.
    Unreachable = 5,
    /// Another process holds the lock this one needs (a renewal check in progress, or a
    /// running daemon); nothing was done. Try again later.
    Busy = 6,
    /// The local system failed the agent: its disk is full or read-only, a permission is
    /// missing, or one of its own files or folders was refused as unsafe (a link, a FIFO, a
    /// folder others can write). The message names the path and the fix; the input is fine.
    LocalSystem = 7,
}

impl From<renewal_policy::plan::ExitClass> for ExitStatus {
    fn from(class: renewal_policy::plan::ExitClass) -> Self {
        use renewal_policy::plan::ExitClass;
        match class {
            ExitClass::Ok => ExitStatus::Ok,
            ExitClass::LocalInput => ExitStatus::LocalInput,
            ExitClass::Refused => ExitStatus::Refused,
            ExitClass::Unreachable => ExitStatus::Unreachable,
            ExitClass::LocalSystem => ExitStatus::LocalSystem,
        }
    }
}

impl ExitStatus {
    /// Every code, in order: the one exit-code table (README "Exit codes" and the man pages'
    /// EXIT STATUS are made from or checked against it).
    pub const ALL: [ExitStatus; 8] = [
        ExitStatus::Ok,
        ExitStatus::Internal,
        ExitStatus::Usage,
        ExitStatus::LocalInput,
        ExitStatus::Refused,
        ExitStatus::Unreachable,
        ExitStatus::Busy,
        ExitStatus::LocalSystem,
    ];

    /// What the code means, as the README's table says it.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Ok => r#"ok"#,
            ExitStatus::Internal => r#"internal error: a bug (please report it with the message)"#,
            ExitStatus::Usage => r#"usage: wrong or missing arguments"#,
            ExitStatus::LocalInput => {
                r#"local input invalid: certificate files, key, passphrase, agent.conf, pem store, the token or CA file given; also "certificate expired, re-registration required" (only after the manager refused the expired certificate)"#
            }
            ExitStatus::Refused => {
                r#"the manager refused (its `codeDesc` and message are printed)"#
            }
            ExitStatus::Unreachable => {
                r#"the manager could not be reached, TLS failed (reason printed), it answered something unexpected, or a renewal's outcome is unknown: not healthy until the next check (soon) settles it"#
            }
            ExitStatus::Busy => {
                r#"busy: another renewal check (or a second `vmd`) holds the agent root's lock; nothing was done"#
            }
            ExitStatus::LocalSystem => {
                r#"local system failure: the disk is full or read-only, a permission is missing, or one of the agent's own files or folders was refused as unsafe (a link, a FIFO, a folder others can write); the path and the fix are printed"#
            }
        }
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The table printed in `--help`.
    pub const HELP: &'static str = "Exit codes: 0 ok, 1 internal error (a bug), 2 usage, 3 local input invalid (files, key, passphrase, configuration, pem store), 4 refused by the manager, 5 manager unreachable, TLS failed or a renewal's outcome unknown, 6 busy (another renewal check or vmd holds the lock), 7 local system failure (disk full, read-only, permission, or an agent file or folder refused as unsafe).";
}

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The command line does not make sense.
    #[error("{0}")]
    Usage(String),
    /// A bug in the agent: a state its own logic should never reach. Exit 1 (internal); the
    /// message says what to report.
    #[error("internal error (a bug, please report it): {0}")]
    Bug(String),
    /// The external certificate set was refused.
    #[error(transparent)]
    CertificateSet(#[from] cert_loading::Error),
    /// `agent.conf` or a silent file is wrong.
    #[error(transparent)]
    Config(#[from] agent_config::Error),
    /// The pem store refused or failed.
    #[error(transparent)]
    Store(#[from] keystore::Error),
    /// The manager refused, could not be reached, or the client settings are unusable.
    #[error(transparent)]
    Manager(#[from] cm_client::Error),
    /// Another process holds a lock this operation needs.
    #[error(
        "{what} is already running for this agent root (lock {path} held{}, waited {} s); nothing was done: try again when it has finished",
        holder.map(|pid| format!(" by pid {pid}")).unwrap_or_default(),
        waited.as_secs()
    )]
    Busy {
        /// What holds it ("a renewal check", "the vmd daemon").
        what: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The pid written by the holder, when readable.
        holder: Option<u32>,
        /// How long this process waited.
        waited: std::time::Duration,
    },
    /// The host is not registered (no pem store / agent.conf).
    #[error("this host is not registered ({path} is missing); run register_host first")]
    NotRegistered {
        /// The file that was expected.
        path: PathBuf,
    },
    /// The host is registered already and replacing it was not asked for
    /// ([`crate::register::RegistrationOptions::force`]).
    #[error(
        "this host is already registered as client {client_id} ({path} exists); registering again replaces its identity and must be asked for explicitly"
    )]
    AlreadyRegistered {
        /// The existing client id.
        client_id: String,
        /// The configuration file found.
        path: PathBuf,
    },
    /// The manager accepted a registration or renewal, but a local step failed after it.
    #[error(
        "the manager accepted {what} (client id {client_id}), but a local step failed: {cause}. {advice}"
    )]
    AcceptedButLocalFailure {
        /// What was accepted ("the registration", "the renewal").
        what: &'static str,
        /// The client id on the manager.
        client_id: String,
        /// What failed, as text.
        cause: String,
        /// What the administrator should do.
        advice: &'static str,
    },
    /// A local file operation failed.
    #[error("{path}: {action} failed: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("writing", "reading", ...).
        action: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The current certificate has expired: renewal is no longer possible.
    #[error(
        "the current certificate ({common_name}) expired on {not_after}; re-registration required: delete the client on the manager, then register this host again, replacing its identity, with a new certificate set"
    )]
    Expired {
        /// The common name.
        common_name: String,
        /// The end of validity, RFC 3339.
        not_after: String,
    },
    /// A local check refused a renewal candidate before anything was sent.
    #[error("{0}")]
    CandidateRefused(String),
    /// One of the agent's own files or folders (state, log, metrics, lock) is not what the agent
    /// may touch: a link, a FIFO or device, a folder others can write, another user's, too large.
    #[error("{path}: {problem}")]
    UnsafeFile {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and the fix.
        problem: String,
    },
    /// A file named on the command line or in agent.conf (such as the manager CA file) is
    /// readable but its content is unusable.
    #[error("{path}: {problem}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl AgentError {
    /// The exit status this error maps to.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            AgentError::Usage(_) => ExitStatus::Usage,
            AgentError::Bug(_) => ExitStatus::Internal,
            AgentError::Busy { .. } => ExitStatus::Busy,
            AgentError::Manager(error) => match error {
                cm_client::Error::Refused { .. } => ExitStatus::Refused,
                cm_client::Error::InvalidConfiguration { .. } => ExitStatus::LocalInput,
                _ => ExitStatus::Unreachable,
            },
            AgentError::CertificateSet(_)
            | AgentError::Config(_)
            | AgentError::Store(_)
            | AgentError::NotRegistered { .. }
            | AgentError::AlreadyRegistered { .. }
            | AgentError::AcceptedButLocalFailure { .. }
            | AgentError::Expired { .. }
            | AgentError::CandidateRefused(_)
            | AgentError::InvalidFile { .. } => ExitStatus::LocalInput,
            AgentError::Io { .. } | AgentError::UnsafeFile { .. } => ExitStatus::LocalSystem,
        }
    }

    /// The file system under the path is mounted read-only.
    pub(crate) fn is_read_only_file_system(&self) -> bool {
        matches!(
            self,
            AgentError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem
        )
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        AgentError::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AgentError, ExitStatus};

    /// Every code of the table is produced by some error or check: a bug is exit 1, no longer
    /// reported as a usage error (exit 2).
    #[test]
    fn a_bug_is_an_internal_error_not_a_usage_error() {
        let bug = AgentError::Bug("the renewal check did not settle".to_string());
        assert_eq!(bug.exit_status(), ExitStatus::Internal);
        assert!(bug.to_string().contains("please report it"));
        assert_eq!(
            AgentError::Usage("-d needs a folder".to_string()).exit_status(),
            ExitStatus::Usage
        );
    }

    #[test]
    fn one_exit_code_table_in_the_code_the_readme_and_help() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap();
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|line| *line != "## Exit codes (every binary)")
            .skip_while(|line| !line.starts_with("| 0 |"))
            .take_while(|line| line.starts_with("| "))
            .collect();
        let expected: Vec<String> = ExitStatus::ALL
            .iter()
            .map(|status| format!("| {} | {} |", status.code(), status.meaning()))
            .collect();
        assert_eq!(rows, expected, "README's exit-code table");
        for (index, status) in ExitStatus::ALL.iter().enumerate() {
            assert_eq!(usize::from(status.code()), index);
            assert!(
                ExitStatus::HELP.contains(&format!(" {} ", status.code())),
                "--help misses {status:?}"
            );
        }
    }
}
