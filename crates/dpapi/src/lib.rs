//! Windows DPAPI in machine scope, behind a safe API: `protect_for_machine` seals a secret
//! with `CryptProtectData` (`CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN`) and the
//! caller's entropy; `unprotect` opens it with `CryptUnprotectData` and the same entropy.
//!
//! - **Machine scope**: any process of this Windows installation that also has the entropy can
//!   open the blob (the agent runs as a service, not as a user whose profile would hold the
//!   keys); another installation cannot, as the machine's DPAPI secret never leaves it.
//! - **Secrets**: the buffer Windows returns is wiped before `LocalFree`; an opened secret is a
//!   [`Zeroizing`] vector.
//! - **Errors** keep the Windows error code ([`Error::code`]), so that the caller can tell a
//!   blob from another installation (or with other entropy) from other failures.
//!
//! The workspace's one crate with `unsafe` code; each block says why it is sound. On systems
//! other than Windows the crate has no items.

#![deny(unsafe_code)]

use std::fmt;

pub use zeroize::Zeroizing;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{protect_for_machine, unprotect};

/// A DPAPI call failed.
#[derive(Debug)]
pub struct Error {
    /// `CryptProtectData` or `CryptUnprotectData`, or what was refused before the call.
    pub operation: &'static str,
    /// What went wrong: the system's message for the error code, or the refusal.
    pub source: std::io::Error,
}

impl Error {
    /// The Windows error code (`GetLastError`), when the call itself failed.
    pub fn code(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// Whether DPAPI refused the blob itself: sealed by another Windows installation, with
    /// other entropy, or damaged (`ERROR_INVALID_DATA`, `NTE_BAD_DATA`, `NTE_BAD_KEY_STATE`).
    pub fn is_foreign_or_damaged(&self) -> bool {
        const ERROR_INVALID_DATA: i32 = 13;
        // HRESULTs as GetLastError returns them (bit patterns of 0x80090005 and 0x8009000B).
        const NTE_BAD_DATA: i32 = 0x8009_0005_u32 as i32;
        const NTE_BAD_KEY_STATE: i32 = 0x8009_000B_u32 as i32;
        matches!(
            self.code(),
            Some(ERROR_INVALID_DATA | NTE_BAD_DATA | NTE_BAD_KEY_STATE)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} failed: {}", self.operation, self.source)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_blob_are_told_apart_from_other_failures() {
        let error = |code: i32| Error {
            operation: "CryptUnprotectData",
            source: std::io::Error::from_raw_os_error(code),
        };
        assert!(error(13).is_foreign_or_damaged());
        assert!(error(0x8009_000B_u32 as i32).is_foreign_or_damaged());
        assert!(!error(5).is_foreign_or_damaged());
        let refused = Error {
            operation: "CryptProtectData",
            source: std::io::Error::other("too long"),
        };
        assert!(!refused.is_foreign_or_damaged());
        assert_eq!(refused.to_string(), "CryptProtectData failed: too long");
    }

    #[cfg(windows)]
    #[test]
    fn a_secret_comes_back_only_with_its_entropy() {
        let blob = protect_for_machine(b"data key bytes", b"entropy of this root").unwrap();
        assert!(!blob.windows(14).any(|window| window == b"data key bytes"));
        let opened = unprotect(&blob, b"entropy of this root").unwrap();
        assert_eq!(opened.as_slice(), b"data key bytes");
        let refused = unprotect(&blob, b"another root").unwrap_err();
        assert!(refused.is_foreign_or_damaged(), "{refused}");
        // A cut blob is refused. (A flipped byte is too on Windows, whose blobs carry an HMAC;
        // Wine's DPAPI, which runs this test here, does not check every byte, so that is left
        // to the store's AES-GCM, which refuses any wrong key.)
        assert!(unprotect(&blob[..blob.len() / 2], b"entropy of this root").is_err());
    }
}
