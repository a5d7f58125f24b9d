//! Looking at the folder and the store: what the decision is given.

use std::path::Path;
use std::time::SystemTime;

use renewal_policy::CandidateCertificate;
use renewal_policy::plan::{FolderView, GenerationView, StoreView};

use crate::AgentError;

/// The folder's set: read, with its key still encrypted, until a step needs the key.
#[derive(Debug)]
pub(crate) enum FolderSet {
    /// Read and its certificate checked; the key not decrypted yet.
    Read(cert_loading::ReadSet),
    /// Decrypted and checked in full.
    Decrypted(cert_loading::LoadedSet),
}

impl FolderSet {
    /// The set decrypted and checked in full (the key derivation runs here, once).
    ///
    /// # Errors
    /// The set's key problem, as text for [`FolderView::Invalid`].
    pub(crate) fn decrypted(self) -> Result<cert_loading::LoadedSet, String> {
        match self {
            Self::Read(set) => set
                .decrypt(&load_options(), SystemTime::UNIX_EPOCH)
                .map_err(|error| error.to_string()),
            Self::Decrypted(set) => Ok(set),
        }
    }
}

/// The time rules are the policy's: `now` only matters for them, and they are skipped.
fn load_options() -> cert_loading::LoadOptions {
    cert_loading::LoadOptions {
        ignore_validity_period: true,
        ..cert_loading::LoadOptions::default()
    }
}

/// Looks at a folder: missing, empty, refused by cert-loading, or a set. The set's key is
/// decrypted only with `decrypt` (a dry run validates everything); otherwise when a step needs
/// it ([`FolderSet::decrypted`]), so a set that is the one in use, older, or not due costs no
/// key derivation.
pub(crate) fn inspect_directory(
    directory: &Path,
    decrypt: bool,
) -> (FolderView, Option<FolderSet>) {
    if !directory.is_dir() {
        return (FolderView::Missing, None);
    }
    let present = [
        cert_loading::CERTIFICATE_FILE,
        cert_loading::KEY_FILE,
        cert_loading::PASSPHRASE_FILE,
    ]
    .iter()
    .any(|file| directory.join(file).symlink_metadata().is_ok());
    if !present {
        return (FolderView::Empty, None);
    }
    let read = cert_loading::read_directory(directory).map(FolderSet::Read);
    let set = match read {
        Ok(set) if decrypt => set.decrypted().map(FolderSet::Decrypted),
        Ok(set) => Ok(set),
        Err(error) => Err(error.to_string()),
    };
    match set {
        Ok(set) => {
            let certificate = match &set {
                FolderSet::Read(read) => read.certificate(),
                FolderSet::Decrypted(loaded) => loaded.identity.certificate(),
            };
            let candidate = CandidateCertificate {
                common_name: certificate.common_name.clone(),
                fingerprint: certificate.fingerprint,
                not_before: certificate.not_before,
                not_after: certificate.not_after,
            };
            (FolderView::Set(candidate), Some(set))
        }
        Err(reason) => (FolderView::Invalid { reason }, None),
    }
}

fn view_of(id: keystore::GenerationId, info: &keystore::GenerationInfo) -> GenerationView {
    GenerationView {
        id,
        fingerprint: info.fingerprint,
        not_after: info.not_after,
    }
}

/// The store's generations for the decision. Unreadable non-current generations are left out
/// (they cannot be used anyway); an unreadable current one is an error.
pub(crate) fn store_view(store: &keystore::Keystore) -> Result<StoreView, AgentError> {
    let status = store.status()?;
    let current = status.current().ok_or_else(|| {
        AgentError::Store(keystore::Error::NotRegistered {
            path: store.pem_folder().to_path_buf(),
        })
    })?;
    let current_info = match &current.info {
        Ok(info) => info,
        Err(_) => {
            // Report the store's own error for the current generation.
            store.current()?;
            return Err(AgentError::Store(keystore::Error::GenerationNotFound {
                id: current.id,
            }));
        }
    };
    let usable = |generation: &keystore::GenerationStatus| {
        generation
            .info
            .as_ref()
            .ok()
            .map(|info| view_of(generation.id, info))
    };
    Ok(StoreView {
        current: view_of(current.id, current_info),
        common_name: current_info.common_name.clone(),
        previous: status.previous().and_then(usable),
        staged: status.staged().filter_map(usable).collect(),
    })
}
