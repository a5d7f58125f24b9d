//! agent-config.
