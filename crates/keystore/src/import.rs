//! Importing an identity as the current one, with the undo a caller needs when a step of its own
//! that follows (writing its configuration, say) fails.

use std::time::SystemTime;

use crate::{Error, GenerationId, GenerationInfo, Identity, Keystore};

/// An identity that [`Keystore::import`] staged and made current, until the caller keeps it
/// ([`Import::keep`]) or takes it back ([`Import::undo`]). Dropping it keeps it.
#[derive(Debug)]
#[must_use = "keep() the import, or undo() it when a later step fails"]
pub struct Import<'store> {
    store: &'store Keystore,
    generation: GenerationId,
    /// What activation read back from the stored generation (after decrypting it and checking
    /// that the key matches the certificate).
    info: GenerationInfo,
    /// The current generation before the import, if the store had one.
    previous: Option<GenerationId>,
}

impl Keystore {
    /// Stages `identity` as a new generation and makes it current, returning an [`Import`] that
    /// can take both steps back. If staging or activating fails, what was written is removed
    /// before the error is returned (best effort: the next writer removes leftovers anyway).
    ///
    /// # Errors
    /// The errors of [`Keystore::stage`] and [`Keystore::activate`].
    pub fn import(&self, identity: &Identity, created_at: SystemTime) -> Result<Import<'_>, Error> {
        let previous = self.current_generation()?;
        let generation = self.stage(identity, created_at)?;
        let info = match self.activate_holding(generation, Some(identity)) {
            Ok(info) => info,
            Err(error) => {
                // Not switched: the generation is still only staged.
                let _ = self.discard_staged(generation);
                return Err(error);
            }
        };
        Ok(Import {
            store: self,
            generation,
            info,
            previous,
        })
    }
}

impl Import<'_> {
    /// The imported generation.
    pub fn generation(&self) -> GenerationId {
        self.generation
    }

    /// The imported generation as activation read it back from the store: decrypted with its
    /// random key, the key checked against the certificate, the fingerprint from the stored
    /// chain. A caller compares it with what it imported to confirm the round trip.
    pub fn info(&self) -> &GenerationInfo {
        &self.info
    }

    /// Keeps the import: the imported identity stays current.
    pub fn keep(self) -> GenerationId {
        self.generation
    }

    /// Takes the import back: the store is as it was before, as far as the identities go.
    /// - With a generation current before: that generation is current again (rollback) and the
    ///   imported one is removed with its key.
    /// - Into an empty store: the store is unregistered again (pointer, `agent.pem`, the
    ///   generation and its key removed), and the store folder too if
    ///   [`Keystore::open_or_create`] created it.
    ///
    /// # Errors
    /// The first step that failed, naming its file; the steps before it stay done. The store
    /// is then still consistent (a reader sees the imported or the previous identity), and
    /// calling `undo` again, or a later writer, finishes the job.
    pub fn undo(self) -> Result<(), Error> {
        let store = self.store;
        match self.previous {
            Some(previous) => {
                if store.current_generation()? == Some(self.generation) {
                    store.rollback()?;
                }
                debug_assert_ne!(previous, self.generation);
                store.discard_staged(self.generation)
            }
            None => {
                store.unregister_only_generation(self.generation)?;
                if store.created_here() {
                    std::fs::remove_dir_all(store.pem_folder()).map_err(|source| {
                        Error::io(
                            store.pem_folder(),
                            "remove the store folder created by",
                            source,
                        )
                    })?;
                }
                Ok(())
            }
        }
    }
}
