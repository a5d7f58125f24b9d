//! `KEY_PROTECTOR`, `TPM_TCTI` and `TPM_PCRS`: where the pem store's data keys are sealed
//! (issue 23).

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
    /// `TPM_PCRS`: the PCRs (SHA-256 bank, 0 to 23, ascending, no repeats) a newly sealed key is
    /// bound to; empty (the default): none.
    pub tpm_pcrs: Vec<u8>,
}

impl Default for KeyProtection {
    fn default() -> Self {
        Self {
            choice: ProtectorChoice::Auto,
            tpm_tcti: DEFAULT_TPM_TCTI.to_owned(),
            tpm_pcrs: Vec::new(),
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
        let tpm_pcrs = parse_pcrs(file.get(keys::TPM_PCRS).unwrap_or("")).map_err(|reason| {
            Error::Invalid {
                file: name.to_owned(),
                key: keys::TPM_PCRS.to_owned(),
                reason,
            }
        })?;
        Ok(Self {
            choice,
            tpm_tcti,
            tpm_pcrs,
        })
    }
}

/// The highest PCR number of a PC client TPM (24 PCRs per bank).
const HIGHEST_PCR: u8 = 23;

/// Reads a PCR list such as `7` or `0, 7,11` (empty: none) into ascending numbers without
/// repeats.
///
/// # Errors
/// What is wrong, for an operator (a number out of range, or not a number).
pub fn parse_pcrs(value: &str) -> Result<Vec<u8>, String> {
    let mut pcrs = Vec::new();
    for item in value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match item.parse::<u8>() {
            Ok(pcr) if pcr <= HIGHEST_PCR => pcrs.push(pcr),
            _ => {
                return Err(format!(
                    "{item:?} is not a PCR number: expected numbers from 0 to {HIGHEST_PCR} separated by commas (for example 7), or nothing for no binding"
                ));
            }
        }
    }
    pcrs.sort_unstable();
    pcrs.dedup();
    Ok(pcrs)
}

/// A PCR list as agent.conf spells it (`0,7`).
pub fn format_pcrs(pcrs: &[u8]) -> String {
    pcrs.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_lists_are_read_sorted_and_refused_with_the_expected_form() {
        assert_eq!(parse_pcrs(""), Ok(vec![]));
        assert_eq!(parse_pcrs(" 7 "), Ok(vec![7]));
        assert_eq!(parse_pcrs("11, 7,0,7"), Ok(vec![0, 7, 11]));
        assert_eq!(format_pcrs(&[0, 7, 11]), "0,7,11");
        for bad in ["24", "seven", "-1", "7;11"] {
            let error = parse_pcrs(bad).unwrap_err();
            assert!(error.contains("from 0 to 23"), "{bad}: {error}");
        }
        assert_eq!(
            ProtectorChoice::parse("TPM"),
            Some(ProtectorChoice::Only(KeyProtectorKind::Tpm))
        );
        assert_eq!(ProtectorChoice::parse(""), Some(ProtectorChoice::Auto));
        assert_eq!(ProtectorChoice::parse("hsm"), None);
    }
}
