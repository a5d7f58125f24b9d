//! What the store shows without decrypting anything: the current certificate for status
//! displays, expiry checks and metrics.

use crate::generation::{self, GenerationInfo};
use crate::store::READ_ATTEMPTS;
use crate::{Error, Keystore};

impl Keystore {
    /// The current certificate chain and its metadata, checked against `metadata.json` and the
    /// pointer, without touching the key: what a status display, the expiry check and the
    /// metrics show. (The certificate alone proves nothing about the key; use
    /// [`Keystore::current`] to present the identity.)
    ///
    /// # Errors
    /// [`Error::NotRegistered`]; [`Error::Tampered`] when the chain differs from its metadata or
    /// the pointer; [`Error::Certificate`]; [`Error::Io`].
    pub fn current_certificate(
        &self,
    ) -> Result<(Vec<cert_loading::CertificateDer<'static>>, GenerationInfo), Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let pointer = self.read_pointer()?.ok_or_else(|| self.not_registered())?;
            let id = pointer.current.0;
            let folder = self.generation_folder(id);
            let result = generation::read_checked_chain(&folder, id).and_then(|(chain, info)| {
                if info.fingerprint == pointer.current.1 {
                    Ok((chain, info))
                } else {
                    Err(self.pointer_mismatch(id))
                }
            });
            match result {
                Ok(found) => return Ok(found),
                // A writer may have switched and pruned between the two reads: read again.
                Err(error) if attempt < READ_ATTEMPTS && self.read_pointer()? != Some(pointer) => {
                    drop(error);
                }
                Err(error) => return Err(error),
            }
        }
    }
}
