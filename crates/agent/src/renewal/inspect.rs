//! Looking at the folder and the store: what the decision is given.

use std::path::Path;
use std::time::SystemTime;

use renewal_policy::CandidateCertificate;
use renewal_policy::plan::{FolderView, GenerationView, StoreView};

use crate::AgentError;

/// Looks at a folder: missing, empty, refused by cert-loading, or a set (loaded once; the key is
/// decrypted once per check, the time rules are the policy's).
pub fn inspect_directory(directory: &Path) -> (FolderView, Option<cert_loading::LoadedSet>) {
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
    let options = cert_loading::LoadOptions {
        ignore_validity_period: true,
        ..cert_loading::LoadOptions::default()
    };
    // `now` only matters for the time rules, which are skipped here.
    match cert_loading::load_directory(directory, &options, SystemTime::UNIX_EPOCH) {
        Ok(set) => {
            let certificate = set.identity.certificate();
            let candidate = CandidateCertificate {
                common_name: certificate.common_name.clone(),
                fingerprint: certificate.fingerprint,
                not_before: certificate.not_before,
                not_after: certificate.not_after,
            };
            (FolderView::Set(candidate), Some(set))
        }
        Err(error) => (
            FolderView::Invalid {
                reason: error.to_string(),
            },
            None,
        ),
    }
}

fn view_of(id: keystore::GenerationId, info: &keystore::GenerationInfo) -> GenerationView {
    GenerationView {
        number: id.number(),
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
