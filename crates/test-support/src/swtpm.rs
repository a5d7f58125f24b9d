//! A real TPM 2.0 for tests: `swtpm` (Debian `swtpm`) on loopback ports, with its state in a
//! folder of the test's (one state folder is one "host": its own owner seed, so a key sealed by
//! one cannot be loaded by another).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; stopped when dropped.
pub struct Swtpm {
    child: Child,
    port: u16,
}

impl Swtpm {
    /// Starts swtpm on free loopback ports with its state in `state` (kept across restarts, as
    /// a TPM's non-volatile memory is across reboots). `None` when swtpm is not installed: the
    /// caller says SKIPPED.
    ///
    /// # Panics
    /// When swtpm is installed but does not start listening within 10 s.
    pub fn start(state: &Path) -> Option<Swtpm> {
        if Command::new("swtpm").arg("--version").output().is_err() {
            return None;
        }
        let port = free_port_pair();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting swtpm");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "swtpm did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Swtpm { child, port })
    }

    /// The tpm2-tss TCTI that reaches it (`swtpm:host=127.0.0.1,port=N`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Stops it (the TPM "goes away"; its state stays in the folder).
    pub fn stop(self) {}
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free loopback ports (server, control).
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = first.local_addr().expect("a bound address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}
