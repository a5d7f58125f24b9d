//! Test and demo helpers: start the manager emulator and set it up as an administrator would,
//! through its public REST API (add the external CA, trust it for the web interface, restart
//! web, create a registration token), then inspect clients and log records.
//!
//! Used by the integration tests of the binaries and by `cargo xtask demo`; never by the
//! product's binaries.
//!
//! # Example
//! ```no_run
//! let manager = test_support::Manager::start()?;
//! let ca = std::fs::read_to_string("testdata/pki/ca-p384/ca.pem")?;
//! let token = manager.setup_external_ca(&ca, "demo-ca")?;
//! println!("register with token {token} at {}", manager.url());
//! # Ok::<(), anyhow::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

pub mod in_process;
pub mod relay;
pub mod swtpm;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The workspace's `testdata` folder (OpenSSL-made vectors and test CAs).
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A running emulator with an admin session.
pub struct Manager {
    emulator: Option<cm_emulator::RunningEmulator>,
    _state: Option<tempfile::TempDir>,
    agent: ureq::Agent,
    admin_jwt: String,
}

impl Manager {
    /// The emulator's API without a socket (same handling as over HTTPS).
    pub fn in_process(&self) -> cm_emulator::InProcessHandle {
        self.emulator().in_process()
    }

    /// Starts an emulator on 127.0.0.1 with a fresh temporary state folder and logs in as admin.
    ///
    /// # Errors
    /// When the emulator does not start or the admin login fails.
    pub fn start() -> Result<Self> {
        let state = tempfile::tempdir()?;
        let mut manager = Self::start_in(state.path())?;
        manager._state = Some(state);
        Ok(manager)
    }

    /// Starts an emulator with its state in `state_dir` (kept).
    ///
    /// # Errors
    /// When the emulator does not start or the admin login fails.
    pub fn start_in(state_dir: &Path) -> Result<Self> {
        Self::start_with(cm_emulator::EmulatorConfig::new(state_dir))
    }

    /// Starts an emulator with a temporary state folder and the given retirement mode.
    ///
    /// # Errors
    /// When the emulator does not start or the admin login fails.
    pub fn start_retiring(retire: cm_emulator::RetireOldCertificate) -> Result<Self> {
        let state = tempfile::tempdir()?;
        let mut manager = Self::start_with(cm_emulator::EmulatorConfig {
            retire_old_certificate: retire,
            ..cm_emulator::EmulatorConfig::new(state.path())
        })?;
        manager._state = Some(state);
        Ok(manager)
    }

    /// Starts an emulator that lets one certificate be registered as several clients (the real
    /// manager does not; the emulator's default follows it), for tests that register the same
    /// committed vector again and again, with a temporary state folder.
    ///
    /// # Errors
    /// When the emulator does not start or the admin login fails.
    pub fn start_sharing_certificates() -> Result<Self> {
        let state = tempfile::tempdir()?;
        let mut manager = Self::start_with(cm_emulator::EmulatorConfig {
            one_client_per_certificate: false,
            ..cm_emulator::EmulatorConfig::new(state.path())
        })?;
        manager._state = Some(state);
        Ok(manager)
    }

    /// Starts an emulator with `config` (its state folder is kept) and logs in as admin.
    ///
    /// # Errors
    /// When the emulator does not start or the admin login fails.
    pub fn start_with(config: cm_emulator::EmulatorConfig) -> Result<Self> {
        let emulator =
            cm_emulator::Emulator::start(config).context("starting the manager emulator")?;
        let ca = ureq::tls::Certificate::from_pem(emulator.web_ca_pem().as_bytes())
            .context("reading the emulator's web CA")?
            .to_owned();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .new_agent();
        let mut manager = Self {
            emulator: Some(emulator),
            _state: None,
            agent,
            admin_jwt: String::new(),
        };
        let password = manager.emulator().admin_password().to_string();
        let token = manager.call(
            "POST",
            "/api/v1/auth/tokens/",
            Some(json!({"grant_type": "password", "username": "admin", "password": password})),
            200,
        )?;
        manager.admin_jwt = token["jwt"].as_str().context("no jwt")?.to_string();
        Ok(manager)
    }

    fn emulator(&self) -> &cm_emulator::RunningEmulator {
        self.emulator.as_ref().expect("running")
    }

    /// The base URL, `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.emulator().url().to_string()
    }

    /// Everything a client needs: URL, web CA (PEM and file), web certificate fingerprint and
    /// the admin password.
    pub fn details(&self) -> &cm_emulator::EmulatorDetails {
        self.emulator().details()
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.emulator().local_addr().to_string()
    }

    /// The web CA file an agent must trust.
    pub fn web_ca_path(&self) -> PathBuf {
        self.emulator().web_ca_path().to_path_buf()
    }

    /// The web certificate's SHA-256 fingerprint (lower-case hex).
    pub fn web_fingerprint(&self) -> String {
        self.emulator().web_cert_sha256_fingerprint().to_string()
    }

    /// Stops the emulator.
    pub fn stop(mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown();
        }
    }

    /// An admin call; fails unless the status is `expected`.
    ///
    /// # Errors
    /// On transport errors or another status.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Result<Value> {
        let (status, value) = self.call_any(method, path, body)?;
        if status != expected {
            bail!("{method} {path}: expected HTTP {expected}, got {status}: {value}");
        }
        Ok(value)
    }

    /// An admin call returning the status and the JSON body (or `null`).
    ///
    /// # Errors
    /// On transport errors.
    pub fn call_any(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.url());
        let bearer = format!("Bearer {}", self.admin_jwt);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &bearer).call(),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &bearer)
                .call(),
            (_, body) => {
                let request = match method {
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                };
                request
                    .header("Authorization", &bearer)
                    .send_json(body.unwrap_or(json!({})))
            }
        };
        let mut response = response.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// The source document's manager-side steps: add the external CA, add it to the web
    /// interface's trusted CAs, restart web, and create a registration token bound to the CA.
    /// Returns the token.
    ///
    /// # Errors
    /// When any admin call fails.
    pub fn setup_external_ca(&self, ca_pem: &str, name: &str) -> Result<String> {
        let ca = self.add_external_ca(ca_pem, name)?;
        self.trust_external_ca(&ca)?;
        self.restart_web()?;
        self.create_token(&ca, None, "")
    }

    /// `POST /v1/ca/external-cas`; returns the CA id.
    ///
    /// # Errors
    /// When the call fails.
    pub fn add_external_ca(&self, ca_pem: &str, name: &str) -> Result<String> {
        let ca = self.call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(json!({"cert": ca_pem, "name": name})),
            201,
        )?;
        Ok(ca["id"].as_str().context("no id")?.to_string())
    }

    /// Appends a CA to the web interface's trusted external CAs (read, append, patch).
    ///
    /// # Errors
    /// When a call fails.
    pub fn trust_external_ca(&self, ca_id: &str) -> Result<()> {
        let web = self.call("GET", "/api/v1/configs/interfaces/web", None, 200)?;
        let mut external: Vec<Value> = web["trusted_cas"]["external"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        external.push(json!(ca_id));
        let local = web["trusted_cas"]["local"].clone();
        let local = if local.is_array() { local } else { json!([]) };
        self.call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(json!({"trusted_cas": {"external": external, "local": local}})),
            200,
        )?;
        Ok(())
    }

    /// Restarts the web service now (delay 0).
    ///
    /// # Errors
    /// When the call fails.
    pub fn restart_web(&self) -> Result<()> {
        self.call(
            "POST",
            "/api/v1/system/services/restart",
            Some(json!({"services": ["web"], "delay": 0})),
            202,
        )?;
        Ok(())
    }

    /// Creates a registration token for `ca_id`; returns the token string.
    ///
    /// # Errors
    /// When the call fails.
    pub fn create_token(
        &self,
        ca_id: &str,
        max_clients: Option<u64>,
        lifetime: &str,
    ) -> Result<String> {
        let mut body = json!({"ca_id": ca_id, "name_prefix": "cte", "lifetime": lifetime});
        if let Some(max) = max_clients {
            body["max_clients"] = json!(max);
        }
        let token = self.call(
            "POST",
            "/api/v1/client-management/regtokens/",
            Some(body),
            201,
        )?;
        Ok(token["token"].as_str().context("no token")?.to_string())
    }

    /// The registered clients.
    ///
    /// # Errors
    /// When the call fails.
    pub fn clients(&self) -> Result<Vec<Value>> {
        let list = self.call(
            "GET",
            "/api/v1/client-management/clients/?limit=1000",
            None,
            200,
        )?;
        Ok(list["resources"].as_array().cloned().unwrap_or_default())
    }

    /// The uploaded agent log records.
    ///
    /// # Errors
    /// When the call fails.
    pub fn client_records(&self) -> Result<Vec<Value>> {
        let list = self.call("GET", "/api/v1/audit/client-records?limit=1000", None, 200)?;
        Ok(list["resources"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            emulator.shutdown();
        }
    }
}

/// A copy of a committed good vector's three files in a new temporary folder.
///
/// # Errors
/// When the vector is missing.
pub fn copy_vector(kind: &str, name: &str) -> Result<tempfile::TempDir> {
    let directory = tempfile::tempdir()?;
    copy_vector_into(kind, name, directory.path())?;
    Ok(directory)
}

/// Copies a committed vector's three files into `target`, replacing what is there.
///
/// # Errors
/// When the vector is missing.
pub fn copy_vector_into(kind: &str, name: &str, target: &Path) -> Result<()> {
    let source = testdata().join("vectors").join(kind).join(name);
    std::fs::create_dir_all(target)?;
    for file in ["client_cert.pem", "client_key.pem", "passphrase"] {
        let from = source.join(file);
        if from.exists() {
            std::fs::copy(&from, target.join(file))
                .with_context(|| format!("{}", from.display()))?;
        }
    }
    Ok(())
}

/// Reads a test CA's certificate PEM (`ca-rsa`, `ca-p384`, `other-ca`, `intermediate-rsa`).
///
/// # Errors
/// When the file is missing.
pub fn test_ca_pem(name: &str) -> Result<String> {
    let path = testdata().join("pki").join(name).join("ca.pem");
    std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))
}

/// Loads a test CA with its key, for issuing certificates at test time.
///
/// # Errors
/// When the files are missing or unusable.
pub fn test_ca(name: &str) -> Result<test_pki::CertificateAuthority> {
    let key_path = testdata().join("pki").join(name).join("ca.key");
    let key =
        std::fs::read_to_string(&key_path).with_context(|| format!("{}", key_path.display()))?;
    Ok(test_pki::CertificateAuthority::from_pem(
        &test_ca_pem(name)?,
        &key,
    )?)
}

/// Issues a client certificate from `ca` for `common_name`, valid from `not_before` to
/// `not_after`, and writes the three files of a set (`client_cert.pem`, the key encrypted under
/// `passphrase`, and `passphrase`) into `directory`, replacing what was there.
///
/// # Errors
/// When issuing or writing fails.
pub fn issue_set(
    ca: &test_pki::CertificateAuthority,
    key_type: test_pki::KeyType,
    common_name: &str,
    validity: (std::time::SystemTime, std::time::SystemTime),
    directory: &Path,
    passphrase: &str,
) -> Result<test_pki::IssuedCertificate> {
    let (not_before, not_after) = validity;
    let issued = ca.issue(
        &test_pki::ClientCertificateRequest::new(common_name)
            .key_type(key_type)
            .validity(not_before, not_after),
    )?;
    issued.write_directory(directory, passphrase)?;
    Ok(issued)
}

/// Another binary of the workspace, next to `beside` (a binary cargo built for this test, such as
/// `env!("CARGO_BIN_EXE_vmd")`). It is built now, once per process and package, so that a
/// `cargo test -p X` never runs a stale copy of a binary X does not depend on.
///
/// # Panics
/// When the build fails or the binary is not where it should be: a test cannot go on then.
pub fn sibling_binary(beside: &Path, package: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|error| error.into_inner());
    if !built.iter().any(|done| done == package) {
        let mut build = std::process::Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "--package", package])
            .current_dir(testdata().join(".."));
        // The agent's binaries as `cargo test --workspace` builds them: with the agent's crash
        // points (`agent/fault-injection`, which vmd's and vmutil's dev-dependencies turn on
        // there; inert unless a test names a point in the environment) and with the TPM key
        // protector wherever it can be built (tpm2-tss present; `.ci/run` installs it). Both
        // builds write the same `target/debug/<name>`, and a test's own binary
        // (`CARGO_BIN_EXE_<name>`) is that file: built otherwise here, it would lose the crash
        // points or the TPM support for the tests that run after.
        if ["register_host", "vmd", "vmutil"].contains(&package) {
            let features = if tpm_buildable() {
                "tpm,agent/fault-injection"
            } else {
                "agent/fault-injection"
            };
            build.args(["--features", features]);
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --package {package} failed");
        built.push(package.to_string());
    }
    let path = beside.with_file_name(package);
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// Whether the agent's `tpm` feature can be built here: Linux with tpm2-tss's development
/// files (`pkg-config --exists tss2-esys`).
pub fn tpm_buildable() -> bool {
    cfg!(target_os = "linux")
        && std::process::Command::new("pkg-config")
            .args(["--exists", "tss2-esys"])
            .status()
            .is_ok_and(|status| status.success())
}

/// The names of the entries of an agent root's keys folder (`vmd/keys`), sorted: which
/// protector holds which generation (`000001.key`, `000001.tpm`, ...).
///
/// # Panics
/// When the folder cannot be listed: a test cannot go on then.
pub fn key_files(agent_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(agent_root.join("vmd/keys"))
        .expect("the keys folder lists")
        .map(|entry| {
            entry
                .expect("the keys folder lists")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A snapshot of every file (path and bytes) under a folder, for byte-identity checks.
pub fn snapshot_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.push((path.clone(), Vec::new()));
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    files.sort();
    files
}

/// Every file under `root` whose bytes contain `needle`.
pub fn files_containing(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    snapshot_tree(root)
        .into_iter()
        .filter(|(_, bytes)| {
            !needle.is_empty() && bytes.windows(needle.len()).any(|window| window == needle)
        })
        .map(|(path, _)| path)
        .collect()
}

/// Runs `command` with its output captured in files (so a child that fills a pipe cannot block),
/// killing it and failing the test when it is still running after `limit`: for inputs that could
/// hang a process (a FIFO, `/dev/zero`).
///
/// # Panics
/// When the command cannot start, or outlives `limit`.
pub fn run_within(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let capture = tempfile::tempdir().expect("a temporary folder");
    let (out, err) = (capture.path().join("stdout"), capture.path().join("stderr"));
    let mut child = command
        .stdout(Stdio::from(
            std::fs::File::create(&out).expect("stdout file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&err).expect("stderr file"),
        ))
        .spawn()
        .expect("the command starts");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the command") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {limit:?}: {command:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap_or_default(),
        stderr: std::fs::read(&err).unwrap_or_default(),
    }
}

/// An HTTPS client (ureq) for tests and benchmarks that talk to the emulator as a script would:
/// it trusts only `ca_pem` (the emulator's web CA), presents `identity`'s chain and key when
/// given (mutual TLS, as an agent does), returns HTTP error statuses as answers rather than
/// errors, and bounds a whole call by `timeout` when given.
///
/// # Errors
/// When the CA or the identity's key is not usable PEM.
pub fn mtls_agent(
    ca_pem: &[u8],
    identity: Option<&test_pki::IssuedCertificate>,
    timeout: Option<std::time::Duration>,
) -> Result<ureq::Agent> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(ca_pem)?.to_owned();
    let mut tls = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
    if let Some(issued) = identity {
        let chain: Vec<Certificate<'static>> = issued
            .chain_der()
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect();
        let key = PrivateKey::from_pem(issued.key_pkcs8_pem().as_bytes())?.to_owned();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(timeout)
        .build()
        .new_agent())
}

/// The number of a field of a Linux `/proc/<pid>/status` text (`VmRSS:` and `VmHWM:` in KiB,
/// `Threads:`, `voluntary_ctxt_switches:`), or 0 when the field is absent, for the benchmarks
/// that watch a process's memory and wakeups.
pub fn proc_status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}
