//! HTTP-level behaviour, persistence across restarts, and an independent client (`curl`).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cm_emulator::{Emulator, EmulatorConfig, SystemClock};
use serde_json::{Value, json};

use crate::support::{Http, World, admin_login, start};

#[test]
fn body_over_one_mebibyte_is_refused_with_413() {
    let world = World::new();
    let mut body = b"{\"grant_type\": \"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 512));
    body.extend(b"\"}");
    let reply = world
        .admin
        .try_raw("POST", "/api/v1/auth/tokens/", None, Some(body))
        .unwrap();
    reply.expect_error(413, "NCERRRequestTooLarge");
    // Just under the limit is read (and refused for what it says, not for its size).
    let mut body = b"{\"grant_type\": \"".to_vec();
    body.extend(std::iter::repeat_n(b'a', 1024 * 1024 - 100));
    body.extend(b"\"}");
    world
        .admin
        .try_raw("POST", "/api/v1/auth/tokens/", None, Some(body))
        .unwrap()
        .expect_error(400, "NCERRBadRequest");
}

#[test]
fn unknown_paths_are_404_in_the_error_shape() {
    let world = World::new();
    for path in [
        "/api/v1/nothing",
        "/api/v2/auth/tokens/",
        "/",
        "/index.html",
        "/api",
    ] {
        world
            .admin
            .call("GET", path, None, None)
            .expect_error(404, "NCERRResourceNotFound");
    }
    // A known path with another method.
    world
        .admin
        .call("PUT", "/api/v1/auth/tokens/", None, Some(&json!({})))
        .expect_error(404, "NCERRResourceNotFound");
    // A path parameter that is not UTF-8 names nothing; an admin path without a bearer is
    // refused before anything else.
    world
        .admin_call("GET", "/api/v1/ca/external-cas/%ff", None)
        .expect_error(404, "NCERRResourceNotFound");
    world
        .admin
        .call("GET", "/api/v1/ca/external-cas/", None, None)
        .expect_error(401, "NCERRUnauthorizedAccess");
    // Trailing slashes do not matter; names are percent-decoded.
    world.add_ca(&world.ca.certificate_pem(), "My CA");
    world
        .admin_call("GET", "/api/v1/ca/external-cas/My%20CA/", None)
        .expect(200);
}

#[test]
fn state_survives_a_restart() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let id = world.registered(&issued, "host1");
    let ca_pem = world.emulator.web_ca_pem().to_owned();
    let fingerprint = world.emulator.web_cert_sha256_fingerprint().to_owned();
    let old_admin_token = world.admin_token.clone();
    let crate::support::World { emulator, dir, .. } = world;
    emulator.shutdown();

    let emulator = start(dir.path(), Arc::new(SystemClock));
    assert_eq!(emulator.web_ca_pem(), ca_pem);
    assert_eq!(emulator.web_cert_sha256_fingerprint(), fingerprint);
    let admin = Http::anonymous(&emulator);
    // Bearers are not persisted.
    admin
        .call(
            "GET",
            "/api/v1/client-management/clients/",
            Some(&old_admin_token),
            None,
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
    let token = admin_login(&admin);
    let clients = admin
        .call(
            "GET",
            "/api/v1/client-management/clients/",
            Some(&token),
            None,
        )
        .expect(200);
    assert_eq!(clients["total"], 1);
    assert_eq!(clients["resources"][0]["id"], id.as_str());
    let tokens = admin
        .call(
            "GET",
            "/api/v1/client-management/regtokens/",
            Some(&token),
            None,
        )
        .expect(200);
    assert_eq!(tokens["resources"][0]["clients_registered"], 1);
    // The trusted list is applied at start-up: the client still connects and logs in.
    let body = json!({"grant_type": "client_credential", "client_id": id});
    Http::presenting(&emulator, &issued)
        .call("POST", "/api/v1/auth/tokens/", None, Some(&body))
        .expect(200);
    emulator.shutdown();
}

#[test]
fn generated_admin_password_is_written_privately_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Emulator::start(EmulatorConfig::new(dir.path())).unwrap();
    let password = first.admin_password().to_owned();
    assert!(password.len() >= 20);
    let path = dir.path().join("admin-password");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), password);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["admin-password", "web-ca-key.pem", "web-key.pem"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is readable by others");
        }
    }
    first.shutdown();
    let second = Emulator::start(EmulatorConfig::new(dir.path())).unwrap();
    assert_eq!(second.admin_password(), password);
}

#[test]
fn extra_hostnames_reissue_the_web_certificate_from_the_same_ca() {
    let dir = tempfile::tempdir().unwrap();
    let first = Emulator::start(EmulatorConfig::new(dir.path())).unwrap();
    let ca = first.web_ca_pem().to_owned();
    let fingerprint = first.web_cert_sha256_fingerprint().to_owned();
    first.shutdown();
    let second = Emulator::start(EmulatorConfig {
        extra_hostnames: vec!["cm.example.test".to_owned()],
        ..EmulatorConfig::new(dir.path())
    })
    .unwrap();
    assert_eq!(second.web_ca_pem(), ca);
    assert_ne!(second.web_cert_sha256_fingerprint(), fingerprint);
}

fn curl(ca: &Path, arguments: &[&str]) -> Value {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail-with-body", "--cacert"])
        .arg(ca)
        .args(arguments)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {arguments:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("curl printed JSON")
}

#[test]
fn an_admin_can_set_up_registration_with_curl() {
    if Command::new("curl").arg("--version").output().is_err() {
        println!("skipped: curl is not on PATH");
        return;
    }
    let world = World::new();
    let ca_file = world.emulator.web_ca_path().to_owned();
    let url = world.emulator.url().to_owned();
    let json_header = "Content-Type: application/json";

    let login = curl(
        &ca_file,
        &[
            "-X", "POST", "-H", json_header,
            "-d", &json!({"grant_type": "password", "username": "admin", "password": crate::support::ADMIN_PASSWORD}).to_string(),
            &format!("{url}/api/v1/auth/tokens/"),
        ],
    );
    let bearer = format!("Authorization: Bearer {}", login["jwt"].as_str().unwrap());

    let external =
        test_pki::CertificateAuthority::new_root("Curl CA", test_pki::KeyType::P384).unwrap();
    let ca = curl(
        &ca_file,
        &[
            "-X",
            "POST",
            "-H",
            json_header,
            "-H",
            &bearer,
            "-d",
            &json!({"cert": external.certificate_pem(), "name": "curl-ca"}).to_string(),
            &format!("{url}/api/v1/ca/external-cas"),
        ],
    );
    let ca_id = ca["id"].as_str().unwrap();

    let web = curl(
        &ca_file,
        &[
            "-H",
            &bearer,
            &format!("{url}/api/v1/configs/interfaces/web"),
        ],
    );
    let mut external_ids: Vec<Value> = web["trusted_cas"]["external"].as_array().unwrap().clone();
    external_ids.push(json!(ca_id));
    let patched = curl(
        &ca_file,
        &[
            "-X",
            "PATCH",
            "-H",
            json_header,
            "-H",
            &bearer,
            "-d",
            &json!({"trusted_cas": {"external": external_ids, "local": []}}).to_string(),
            &format!("{url}/api/v1/configs/interfaces/web"),
        ],
    );
    assert!(
        patched["trusted_cas"]["external"]
            .as_array()
            .unwrap()
            .contains(&json!(ca_id))
    );

    curl(
        &ca_file,
        &[
            "-X",
            "POST",
            "-H",
            json_header,
            "-H",
            &bearer,
            "-d",
            r#"{"services":["web"],"delay":0}"#,
            &format!("{url}/api/v1/system/services/restart"),
        ],
    );
    let token = curl(
        &ca_file,
        &[
            "-X",
            "POST",
            "-H",
            json_header,
            "-H",
            &bearer,
            "-d",
            &json!({"ca_id": "curl-ca", "lifetime": "1h", "max_clients": 5}).to_string(),
            &format!("{url}/api/v1/client-management/regtokens/"),
        ],
    );
    assert_eq!(token["ca_id"], ca_id);
    let reg_token = token["token"].as_str().unwrap();

    // And the agent side works with curl too, presenting a certificate from the new CA.
    let issued = external
        .issue(&test_pki::ClientCertificateRequest::new(
            "curl-host.example",
        ))
        .unwrap();
    let cert_file = world.dir.path().join("curl-client.pem");
    let key_file = world.dir.path().join("curl-client.key");
    std::fs::write(&cert_file, issued.chain_pem()).unwrap();
    std::fs::write(&key_file, issued.key_pkcs8_pem().as_bytes()).unwrap();
    let client = curl(
        &ca_file,
        &[
            "--cert",
            cert_file.to_str().unwrap(),
            "--key",
            key_file.to_str().unwrap(),
            "-X",
            "POST",
            "-H",
            json_header,
            "-d",
            &json!({"reg_token": reg_token, "cert": issued.chain_pem(), "name": "curl-host"})
                .to_string(),
            &format!("{url}/api/v1/client-management/clients/"),
        ],
    );
    assert_eq!(client["common_name"], "curl-host.example");
}

#[test]
fn a_token_count_that_lags_its_clients_is_repaired_at_start() {
    // A registration writes the client, then its token's count: a crash in between leaves the
    // token file one behind. The clients on disk are the truth at the next start.
    let world = World::new();
    let issued = world.issue("host1.example");
    world.registered(&issued, "host1");
    let crate::support::World { emulator, dir, .. } = world;
    emulator.shutdown();
    let tokens = dir.path().join("objects").join("regtokens");
    for entry in std::fs::read_dir(&tokens).unwrap() {
        let path = entry.unwrap().path();
        let mut token: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        token["clients_registered"] = json!(0);
        std::fs::write(&path, token.to_string()).unwrap();
    }
    let emulator = start(dir.path(), Arc::new(SystemClock));
    let admin = Http::anonymous(&emulator);
    let token = admin_login(&admin);
    let tokens = admin
        .call(
            "GET",
            "/api/v1/client-management/regtokens/",
            Some(&token),
            None,
        )
        .expect(200);
    assert_eq!(tokens["resources"][0]["clients_registered"], 1, "{tokens}");
    emulator.shutdown();
}
