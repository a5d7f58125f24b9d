//! `KEY_PROTECTOR` and `TPM_TCTI`: where the pem store's data keys are sealed (issue 23).

use cert_vocabulary::KeyProtectorKind;

use crate::{ConfigFile, Error, keys};

/// The TCTI used when `TPM_TCTI` is absent: the kernel's TPM resource manager.
pub const DEFAULT_TPM_TCTI: &str = "device:/dev/tpmrm0";

/// Which key protector seals new generations' data keys (`KEY_PROTECTOR`). Keys already
/// stored keep the protector that sealed them: the store opens each with its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProtectorChoice {
    /// The TPM when the host has one (Linux), DPAPI on Windows, else a key file (the default).
    #[default]
    Auto,
    /// That protector, or a refusal when this host or build does not have it.
    Only(KeyProtectorKind),
}

impl ProtectorChoice {
    /// Reads a value (case-insensitive): `auto` (or empty), `tpm`, `dpapi`, `file`; `None` for
    /// an unknown one.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" => Some(Self::Auto),
            value if value.eq_ignore_ascii_case("auto") => Some(Self::Auto),
            value => KeyProtectorKind::parse(value).map(Self::Only),
        }
    }

    /// The value as agent.conf spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Only(kind) => kind.as_str(),
        }
    }
}

/// The key-protection settings of agent.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyProtection {
    /// `KEY_PROTECTOR`.
    pub choice: ProtectorChoice,
    /// `TPM_TCTI`: how the TPM is reached.
    pub tpm_tcti: String,
}

impl Default for KeyProtection {
    fn default() -> Self {
        Self {
            choice: ProtectorChoice::Auto,
            tpm_tcti: DEFAULT_TPM_TCTI.to_owned(),
        }
    }
}

impl KeyProtection {
    /// The settings of a parsed file.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `KEY_PROTECTOR` for an unknown value (`name`: the file).
    pub fn from_file(file: &ConfigFile, name: &str) -> Result<Self, Error> {
        let choice = match file.get(keys::KEY_PROTECTOR) {
            None => ProtectorChoice::Auto,
            Some(value) => ProtectorChoice::parse(value).ok_or_else(|| Error::Invalid {
                file: name.to_owned(),
                key: keys::KEY_PROTECTOR.to_owned(),
                reason: "expected auto, tpm, dpapi or file".to_owned(),
            })?,
        };
        let tpm_tcti = file
            .get(keys::TPM_TCTI)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .unwrap_or(DEFAULT_TPM_TCTI)
            .to_owned();
        Ok(Self { choice, tpm_tcti })
    }
}
