//! `cargo xtask demo [--keep] [--key rsa|p384|both]`: the whole feature on 127.0.0.1.
//!
//! Starts the manager emulator, does the manager-side setup through its REST API as an
//! administrator would, makes an external CA and a client certificate with a passphrase-encrypted
//! key, runs the real `register_host`, shows the pem store and `vmutil -a vmd status`, renews with
//! the real `vmd --once`, tries a set with a changed common name, and sums up. Exits non-zero as
//! soon as a step does not behave as shown.
//!
//! The command line is read here, in every build; the steps (`steps.rs`) are one of the
//! emulator tasks (the `emulator` feature, see main.rs).

use anyhow::{Result, bail};

#[cfg(feature = "emulator")]
mod steps;
#[cfg(feature = "emulator")]
pub(crate) use steps::run;

/// The key types the demo can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Rsa3072,
    P384,
}

impl Key {
    /// The label used in headings and the summary.
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    pub(crate) fn label(self) -> &'static str {
        match self {
            Key::Rsa3072 => "RSA-3072",
            Key::P384 => "P-384",
        }
    }
}

/// `[--keep] [--key rsa|p384|both]`.
#[derive(Debug)]
#[cfg_attr(not(feature = "emulator"), allow(dead_code))]
pub(crate) struct Options {
    pub(crate) keep: bool,
    pub(crate) keys: Vec<Key>,
}

impl Options {
    pub(crate) fn parse(arguments: &[String]) -> Result<Self> {
        let mut keep = false;
        let mut keys = vec![Key::Rsa3072, Key::P384];
        let mut iterator = arguments.iter();
        while let Some(argument) = iterator.next() {
            match argument.as_str() {
                "--keep" => keep = true,
                "--key" => {
                    keys = match iterator.next().map(String::as_str) {
                        Some("rsa") => vec![Key::Rsa3072],
                        Some("p384") => vec![Key::P384],
                        Some("both") => keys,
                        other => bail!("--key takes rsa, p384 or both, not {other:?}"),
                    }
                }
                other => bail!("unknown demo option {other:?} (use --keep, --key rsa|p384|both)"),
            }
        }
        Ok(Self { keep, keys })
    }
}
