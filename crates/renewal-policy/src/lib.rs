//! renewal-policy.
