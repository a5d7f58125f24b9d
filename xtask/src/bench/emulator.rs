//! The release `cm-emulator` as a separate process, and the admin REST calls the bench makes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use test_pki::IssuedCertificate;

use super::process::Started;
use super::setup::release_binary;

/// Test-only password of the emulator's admin user.
const ADMIN_PASSWORD: &str = "bench-only admin password";

// ---- The emulator as a separate release process ---------------------------------------------

pub(super) struct EmulatorProcess {
    pub(super) process: Started,
    pub(super) _stdout: BufReader<ChildStdout>,
    pub(super) url: String,
    pub(super) host_port: String,
    pub(super) web_ca_path: PathBuf,
    pub(super) admin: ureq::Agent,
    pub(super) admin_jwt: String,
}

impl EmulatorProcess {
    pub(super) fn start(state: &Path) -> Result<Self> {
        let mut child = Command::new(release_binary("cm-emulator"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin-password",
                ADMIN_PASSWORD,
            ])
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting cm-emulator")?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
        let process = Started {
            child,
            name: "cm-emulator",
        };
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let url = line
            .trim_end()
            .strip_prefix("listening on ")
            .with_context(|| format!("cm-emulator printed {line:?}"))?
            .to_string();
        let host_port = url
            .strip_prefix("https://")
            .context("not an https URL")?
            .to_string();
        let web_ca_path = state.join("web-ca.pem");
        let admin = client_agent(&std::fs::read(&web_ca_path)?, None)?;
        Self {
            process,
            _stdout: stdout,
            url,
            host_port,
            web_ca_path,
            admin,
            admin_jwt: String::new(),
        }
        .logged_in()
    }

    fn logged_in(mut self) -> Result<Self> {
        self.admin_jwt = self.fresh_bearer()?;
        Ok(self)
    }

    /// A new admin bearer (CM's bearers last 5 minutes), for the commands hyperfine runs.
    pub(super) fn fresh_bearer(&self) -> Result<String> {
        let (status, login) = call(
            &self.admin,
            "POST",
            &format!("{}/api/v1/auth/tokens/", self.url),
            None,
            Some(
                &json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}),
            ),
        )?;
        ensure!(status == 200, "admin login answered {status}: {login}");
        Ok(login["jwt"].as_str().context("no jwt")?.to_string())
    }

    pub(super) fn admin_call(
        &self,
        method: &str,
        path: &str,
        body: Value,
        expected: u16,
    ) -> Result<Value> {
        let (status, reply) = call(
            &self.admin,
            method,
            &format!("{}{path}", self.url),
            Some(&self.admin_jwt),
            Some(&body),
        )?;
        ensure!(
            status == expected,
            "{method} {path}: expected HTTP {expected}, got {status}: {reply}"
        );
        Ok(reply)
    }

    /// Adds the committed test CAs `ca-rsa` and `ca-p384` (under those names), trusts both for
    /// the web interface and restarts web, as an administrator would.
    pub(super) fn setup_test_cas(&self) -> Result<()> {
        for name in ["ca-rsa", "ca-p384"] {
            self.admin_call(
                "POST",
                "/api/v1/ca/external-cas",
                json!({"cert": test_support::test_ca_pem(name)?, "name": name}),
                201,
            )?;
        }
        self.admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            json!({"trusted_cas": {"external": ["ca-rsa", "ca-p384"], "local": []}}),
            200,
        )?;
        self.admin_call(
            "POST",
            "/api/v1/system/services/restart",
            json!({"services": ["web"], "delay": 0}),
            202,
        )?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// A fresh single-use registration token for the CA named `ca`.
    pub(super) fn create_token(&self, ca: &str) -> Result<String> {
        let token = self.admin_call(
            "POST",
            "/api/v1/client-management/regtokens/",
            json!({"ca_id": ca, "max_clients": 1, "lifetime": "1h"}),
            201,
        )?;
        Ok(token["token"].as_str().context("no token")?.to_string())
    }

    /// Deletes every registered client, so that the same committed certificate can be
    /// registered again (the emulator, like CM, holds one certificate for at most one client).
    pub(super) fn delete_all_clients(&self) -> Result<()> {
        let list = self.admin_call(
            "GET",
            "/api/v1/client-management/clients/?limit=1000",
            Value::Null,
            200,
        )?;
        for client in list["resources"].as_array().context("no client list")? {
            let id = client["id"].as_str().context("a client without an id")?;
            self.admin_call(
                "DELETE",
                &format!("/api/v1/client-management/clients/{id}"),
                Value::Null,
                204,
            )?;
        }
        Ok(())
    }

    pub(super) fn create_token_unlimited(&self, ca: &str) -> Result<String> {
        let token = self.admin_call(
            "POST",
            "/api/v1/client-management/regtokens/",
            json!({"ca_id": ca, "lifetime": "1h"}),
            201,
        )?;
        Ok(token["token"].as_str().context("no token")?.to_string())
    }

    pub(super) fn stop(self) {
        drop(self);
    }
}

pub(super) fn client_agent(
    ca_pem: &[u8],
    identity: Option<&IssuedCertificate>,
) -> Result<ureq::Agent> {
    test_support::mtls_agent(ca_pem, identity, None)
}

pub(super) fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(bearer) = bearer {
        builder = builder.header("Authorization", format!("Bearer {bearer}"));
    }
    let request = builder
        .header("Content-Type", "application/json")
        .body(body.map(Value::to_string).unwrap_or_default())?;
    let mut response = agent
        .run(request)
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
