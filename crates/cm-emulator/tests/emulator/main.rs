//! Integration tests: the emulator over real HTTPS on 127.0.0.1 (ureq 3 + rustls, and `curl`),
//! and in-process requests compared with HTTPS ones.

mod admin;
mod agent;
mod cm_shapes;
mod in_process;
mod public_clients;
mod retirement;
mod support;
mod transport;
