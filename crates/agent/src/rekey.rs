//! `vmutil -a vmd rekey` (issue 23): the current generation's key moved to the key protector
//! agent.conf chooses, now instead of at the next renewal.

use keystore::{Error, GenerationId, KeyProtectorKind};

use crate::AgentError;
use crate::paths::AgentRoot;
use crate::protection::HostKeyProtector;

/// What `vmutil -a vmd rekey` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rekey {
    /// The current generation.
    pub generation: GenerationId,
    /// The protector that held its key before.
    pub from: KeyProtectorKind,
    /// The protector that holds it now.
    pub to: KeyProtectorKind,
    /// Whether the same protector sealed it again, as it is configured now (the TPM's PCR
    /// binding, `TPM_PCRS`, changed).
    pub resealed: bool,
}

/// Moves the current generation's key to the protector agent.conf chooses now, instead of at
/// the next renewal (`vmutil -a vmd rekey`). Crash-safe: the key is sealed by the new protector
/// (written durably) and read back before the old copy is removed; a crash in between leaves
/// both, and the store opens the key with the new one, else the old one.
///
/// # Errors
/// The store's errors; a protector that cannot seal here (with the fix).
pub fn rekey(root: &AgentRoot) -> Result<Rekey, AgentError> {
    let agent = crate::settings::Agent::load(root)?;
    let host = HostKeyProtector::new(&root.keys_folder(), &agent.settings.key_protection);
    let status = agent.store.status()?;
    let current = status
        .current()
        .map(|generation| generation.id)
        .ok_or_else(|| Error::NotRegistered {
            path: agent.store.pem_folder().to_path_buf(),
        })?;
    host.check_sealer()?;
    let from = host.holder(current);
    let sealer = host.sealer(current)?;
    let to = sealer.kind();
    if from == to {
        // A move a crash interrupted after sealing may have left the old copy: finish it.
        let stale = KeyProtectorKind::ALL
            .into_iter()
            .filter(|kind| *kind != to)
            .filter_map(|kind| host.built(kind))
            .find(|other| {
                other
                    .stored_keys()
                    .is_ok_and(|keys| keys.contains(&current))
            });
        if let Some(stale) = stale {
            agent.store.with_writer_lock(|store| {
                sealer.load_key(current)?;
                store.identity(current)?;
                stale.remove_key(current)
            })?;
            return Ok(Rekey {
                generation: current,
                from: stale.kind(),
                to,
                resealed: false,
            });
        }
        if sealer.sealed_as_configured(current)? {
            return Ok(Rekey {
                generation: current,
                from,
                to,
                resealed: false,
            });
        }
        // Same protector, other settings (the PCR binding): seal again in place. The sealed
        // file is replaced atomically, so a crash leaves the old seal or the new one.
        agent
            .store
            .with_writer_lock(|store| seal_again(store, &host, sealer, sealer, current))?;
        return Ok(Rekey {
            generation: current,
            from,
            to,
            resealed: true,
        });
    }
    let old = host.built(from).ok_or_else(|| {
        host.refusal(
            current,
            "its key is held by a protector this build does not have",
            "install the package built with it",
        )
    })?;
    agent.store.with_writer_lock(|store| {
        // The new copy opens, and decrypts the generation, before the old one goes.
        seal_again(store, &host, old, sealer, current)?;
        old.remove_key(current)?;
        crate::fault::crash_point("rekey-removed");
        Ok(())
    })?;
    Ok(Rekey {
        generation: current,
        from,
        to: sealer.kind(),
        resealed: false,
    })
}

/// Seals `generation`'s key, as `from` holds it, with `sealer` (the same protector when only
/// its settings changed: the sealed file is then replaced atomically), then checks that the new
/// seal gives the key back and that the key decrypts the generation.
fn seal_again(
    store: &keystore::Keystore,
    host: &HostKeyProtector,
    from: &dyn keystore::KeyProtector,
    sealer: &dyn keystore::KeyProtector,
    generation: GenerationId,
) -> Result<(), Error> {
    let key = from.load_key(generation)?;
    crate::fault::crash_point("rekey-loaded");
    sealer.store_key(generation, &key)?;
    crate::fault::crash_point("rekey-sealed");
    if sealer.load_key(generation)?.as_bytes() != key.as_bytes() {
        return Err(Error::Tampered {
            path: host.folder.clone(),
            reason: "the key read back from the new protector differs".to_owned(),
        });
    }
    store.identity(generation).map(|_| ())
}
