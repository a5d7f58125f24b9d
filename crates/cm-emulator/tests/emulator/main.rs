//! Integration tests: the emulator over real HTTPS on 127.0.0.1 (ureq 3 + rustls, and `curl`).

mod admin;
mod agent;
mod support;
mod transport;
