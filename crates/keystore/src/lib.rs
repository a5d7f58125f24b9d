//! keystore.
