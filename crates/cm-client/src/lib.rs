//! cm-client.
