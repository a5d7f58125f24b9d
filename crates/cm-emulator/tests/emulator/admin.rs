//! Admin endpoints and their refusals.

use std::time::Duration;

use serde_json::json;
use test_pki::{CertificateAuthority, KeyType};

use crate::support::{ADMIN_PASSWORD, Http, World};

#[test]
fn password_grant_issues_a_bearer_and_refuses_wrong_credentials() {
    let world = World::new();
    let http = &world.admin;
    let ok = http
        .call(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(
                &json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD}),
            ),
        )
        .expect(200);
    assert_eq!(ok["duration"], 300);
    assert_eq!(ok["token_type"], "Bearer");
    for (username, password) in [("admin", "wrong"), ("root", ADMIN_PASSWORD)] {
        http.call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(&json!({"grant_type": "password", "username": username, "password": password})),
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
    }
    // Missing and invalid bearers.
    http.call("GET", "/api/v1/ca/external-cas", None, None)
        .expect_error(401, "NCERRUnauthorizedAccess");
    http.call("GET", "/api/v1/ca/external-cas", Some("not-a-token"), None)
        .expect_error(401, "NCERRUnauthorizedAccess");
    // Missing field and unknown grant.
    let reply = http
        .call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(&json!({"grant_type": "password", "username": "admin"})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"].as_str().unwrap().contains("password"),
        "{reply}"
    );
    http.call(
        "POST",
        "/api/v1/auth/tokens/",
        None,
        Some(&json!({"grant_type": "magic"})),
    )
    .expect_error(400, "NCERRBadRequest");
}

#[test]
fn bearer_expires_after_its_duration() {
    let world = World::new();
    world.clock.advance(std::time::Duration::from_secs(301));
    world
        .admin_call("GET", "/api/v1/ca/external-cas", None)
        .expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn external_ca_lifecycle_and_lookup_by_id_name_and_uri() {
    let world = World::new();
    let created = world
        .admin_call(
            "GET",
            &format!("/api/v1/ca/external-cas/{}", world.ca_id),
            None,
        )
        .expect(200);
    for field in [
        "id",
        "uri",
        "account",
        "createdAt",
        "updatedAt",
        "name",
        "cert",
        "purpose",
        "serialNumber",
        "subject",
        "issuer",
        "notBefore",
        "notAfter",
        "sha1Fingerprint",
        "sha256Fingerprint",
        "sha512Fingerprint",
    ] {
        assert!(created.get(field).is_some(), "{field} missing in {created}");
    }
    assert_eq!(created["name"], "test-ca");
    // As CM shows them: OpenSSL's one-line name, upper-case fingerprints, no `parent: null`.
    assert_eq!(created["subject"], "/CN=Test External CA");
    assert_eq!(
        created["sha256Fingerprint"],
        crate::support::sha256_hex(world.ca.certificate_der()).to_uppercase()
    );
    assert!(created.get("parent").is_none(), "{created}");
    let uri = created["uri"].as_str().unwrap().to_owned();
    for reference in [world.ca_id.as_str(), "test-ca", uri.as_str()] {
        let found = world
            .admin_call("GET", &format!("/api/v1/ca/external-cas/{reference}"), None)
            .expect(200);
        assert_eq!(found["id"], world.ca_id.as_str());
    }
    world
        .admin_call("GET", "/api/v1/ca/external-cas/no-such-ca", None)
        .expect_error(404, "NCERRResourceNotFound");

    // Without a name: externalca-<id>.
    let other = CertificateAuthority::new_root("Other CA", KeyType::P384).unwrap();
    let unnamed = world
        .admin_call(
            "POST",
            "/api/v1/ca/external-cas/",
            Some(&json!({"cert": other.certificate_pem()})),
        )
        .expect(201);
    assert_eq!(
        unnamed["name"].as_str().unwrap(),
        format!("externalca-{}", unnamed["id"].as_str().unwrap())
    );
    // The same name twice is refused.
    world
        .admin_call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(&json!({"cert": other.certificate_pem(), "name": "test-ca"})),
        )
        .expect_error(409, "NCERRConflict");

    // PATCH purpose flags.
    let patched = world
        .admin_call(
            "PATCH",
            "/api/v1/ca/external-cas/test-ca",
            Some(&json!({"allow_user_authentication": false})),
        )
        .expect(200);
    assert_eq!(patched["purpose"]["user_authentication"], "Disabled");
    assert_eq!(patched["purpose"]["client_authentication"], "Enabled");
    world
        .admin_call(
            "PATCH",
            "/api/v1/ca/external-cas/test-ca",
            Some(&json!({"allow_client_authentication": "yes"})),
        )
        .expect_error(400, "NCERRBadRequest");

    let list = world
        .admin_call("GET", "/api/v1/ca/external-cas", None)
        .expect(200);
    assert_eq!(list["total"], 2);
    let page = world
        .admin_call("GET", "/api/v1/ca/external-cas?skip=1&limit=1", None)
        .expect(200);
    assert_eq!(page["resources"].as_array().unwrap().len(), 1);
    assert_eq!(page["resources"][0]["id"], unnamed["id"]);
    assert_eq!(
        (
            page["skip"].as_u64(),
            page["limit"].as_u64(),
            page["total"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );

    // DELETE of a CA nothing uses, then it is gone.
    let id = unnamed["id"].as_str().unwrap();
    world
        .admin_call("DELETE", &format!("/api/v1/ca/external-cas/{id}"), None)
        .expect(204);
    world
        .admin_call("DELETE", &format!("/api/v1/ca/external-cas/{id}"), None)
        .expect_error(404, "NCERRResourceNotFound");
}

/// Issue 22: an external CA in use (trusted by the web interface, or bound to a registration
/// token) is not deleted: 409 naming what uses it, and nothing changes; once released it goes.
#[test]
fn an_external_ca_in_use_is_not_deleted_and_the_answer_names_its_users() {
    let world = World::new();
    let path = format!("/api/v1/ca/external-cas/{}", world.ca_id);
    let refused = world
        .admin_call("DELETE", &path, None)
        .expect_error(409, "NCERRConflict");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("trusted_cas") && message.contains("registration token"),
        "{message}"
    );
    world.admin_call("GET", &path, None).expect(200);
    let web = world
        .admin_call("GET", "/api/v1/configs/interfaces/web", None)
        .expect(200);
    assert_eq!(
        web["trusted_cas"]["external"][0],
        world.ca_id.as_str(),
        "{web}"
    );
    // Released: no longer trusted, its tokens deleted.
    world.trust(&[]);
    let tokens = world
        .admin_call("GET", "/api/v1/client-management/regtokens?limit=100", None)
        .expect(200);
    for token in tokens["resources"].as_array().unwrap() {
        let id = token["id"].as_str().unwrap();
        world
            .admin_call(
                "DELETE",
                &format!("/api/v1/client-management/regtokens/{id}"),
                None,
            )
            .expect(204);
    }
    world.admin_call("DELETE", &path, None).expect(204);
    world
        .admin_call("GET", &path, None)
        .expect_error(404, "NCERRResourceNotFound");
}

#[test]
fn external_ca_refuses_non_ca_and_non_pem_certificates() {
    let world = World::new();
    let leaf = world.issue("not-a-ca");
    let reply = world
        .admin_call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(&json!({"cert": leaf.certificate_pem()})),
        )
        .expect_error(422, "NCERRCertificateInvalid");
    assert!(
        reply["message"].as_str().unwrap().contains("CA:TRUE"),
        "{reply}"
    );
    world
        .admin_call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(&json!({"cert": "hello"})),
        )
        .expect_error(422, "NCERRCertificateInvalid");
    let reply = world
        .admin_call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(&json!({"name": "x"})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"].as_str().unwrap().contains("`cert`"),
        "{reply}"
    );
}

#[test]
fn web_interface_trusted_list_accepts_names_and_stores_ids() {
    let world = World::new();
    let web = world
        .admin_call("GET", "/api/v1/configs/interfaces/web", None)
        .expect(200);
    assert_eq!(web["name"], "web");
    assert_eq!(web["trusted_cas"]["external"], json!([world.ca_id]));

    let other = CertificateAuthority::new_root("Second CA", KeyType::P384).unwrap();
    let other_id = world.add_ca(&other.certificate_pem(), "second");
    let patched = world
        .admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&json!({"trusted_cas": {"external": ["test-ca", "second"], "local": []}})),
        )
        .expect(200);
    // Read back as written (names here), applied by id.
    assert_eq!(
        patched["trusted_cas"]["external"],
        json!(["test-ca", "second"])
    );
    let _ = other_id;
    world
        .admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&json!({"trusted_cas": {"external": ["nope"]}})),
        )
        .expect_error(404, "NCERRResourceNotFound");
    let reply = world
        .admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&json!({"trusted_cas": {"external": [1]}})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("trusted_cas.external[0]"),
        "{reply}"
    );

    let restarted = world
        .admin_call(
            "POST",
            "/api/v1/system/services/restart",
            Some(&json!({"services": ["web"]})),
        )
        .expect(202);
    assert_eq!(restarted["delay"], 5);
    // Without `services`, every service restarts (as CM).
    let everything = world
        .admin_call(
            "POST",
            "/api/v1/system/services/restart",
            Some(&json!({"delay": 0})),
        )
        .expect(202);
    assert!(
        everything["services"]
            .as_array()
            .unwrap()
            .contains(&json!("web")),
        "{everything}"
    );
}

#[test]
fn registration_tokens_crud() {
    let world = World::new();
    let token = world.create_token(json!({
        "ca_id": "test-ca", "cert_duration": 365, "lifetime": "2h", "max_clients": 3,
        "name_prefix": "host", "labels": {"env": "test"},
    }));
    for field in [
        "id",
        "uri",
        "account",
        "created_at",
        "updated_at",
        "token",
        "valid_until",
        "max_clients",
        "clients_registered",
        "ca_id",
        "name_prefix",
        "lifetime",
        "cert_duration",
        "labels",
    ] {
        assert!(token.get(field).is_some(), "{field} missing in {token}");
    }
    assert_eq!(token["ca_id"], world.ca_id.as_str());
    assert_eq!(token["clients_registered"], 0);
    assert!(token["valid_until"].is_string());
    let id = token["id"].as_str().unwrap();
    let uri = token["uri"].as_str().unwrap();
    world
        .admin_call(
            "GET",
            &format!("/api/v1/client-management/regtokens/{uri}"),
            None,
        )
        .expect(200);
    let patched = world
        .admin_call(
            "PATCH",
            &format!("/api/v1/client-management/regtokens/{id}"),
            Some(&json!({"max_clients": 10})),
        )
        .expect(200);
    assert_eq!(patched["max_clients"], 10);
    let list = world
        .admin_call("GET", "/api/v1/client-management/regtokens/", None)
        .expect(200);
    assert_eq!(list["total"], 2);

    world
        .admin_call(
            "POST",
            "/api/v1/client-management/regtokens/",
            Some(&json!({"ca_id": "unknown"})),
        )
        .expect_error(404, "NCERRResourceNotFound");
    let reply = world
        .admin_call(
            "POST",
            "/api/v1/client-management/regtokens/",
            Some(&json!({"ca_id": "test-ca", "lifetime": "3y"})),
        )
        .expect_error(400, "NCERRInvalidParamValue");
    assert!(
        reply["message"].as_str().unwrap().contains("lifetime"),
        "{reply}"
    );
    world
        .admin_call(
            "POST",
            "/api/v1/client-management/regtokens/",
            Some(&json!({"ca_id": "test-ca", "max_clients": "3"})),
        )
        .expect_error(400, "NCERRBadRequest");

    world
        .admin_call(
            "DELETE",
            &format!("/api/v1/client-management/regtokens/{id}"),
            None,
        )
        .expect(204);
    world
        .admin_call(
            "GET",
            &format!("/api/v1/client-management/regtokens/{id}"),
            None,
        )
        .expect_error(404, "NCERRResourceNotFound");
}

#[test]
fn clients_list_get_by_name_and_delete() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let id = world.registered(&issued, "host1");
    let list = world
        .admin_call("GET", "/api/v1/client-management/clients/", None)
        .expect(200);
    assert_eq!(list["total"], 1);
    assert_eq!(list["resources"][0]["state"], "active");
    assert_eq!(
        list["resources"][0]["client_metadata"]["client_type"],
        "CTE"
    );
    let by_name = world
        .admin_call("GET", "/api/v1/client-management/clients/host1", None)
        .expect(200);
    assert_eq!(by_name["id"], id.as_str());
    world
        .admin_call(
            "DELETE",
            &format!("/api/v1/client-management/clients/{id}"),
            None,
        )
        .expect(204);
    world
        .admin_call(
            "GET",
            &format!("/api/v1/client-management/clients/{id}"),
            None,
        )
        .expect_error(404, "NCERRResourceNotFound");
    // A deleted client can no longer log in.
    world
        .login(&issued, &id)
        .expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn anonymous_http_client_reaches_admin_login() {
    // No client certificate at all is fine for admin traffic.
    let world = World::new();
    let http = Http::anonymous(&world.emulator);
    crate::support::admin_login(&http);
}

/// A TLS handshake with the emulator's web interface offering only `version`, verifying the web
/// certificate against its CA.
fn handshake(
    world: &World,
    version: &'static rustls::SupportedProtocolVersion,
) -> Result<(), String> {
    handshake_offering(world, version, None)
}

/// As [`handshake`], offering only the cipher suite `only` when given (rustls's name).
fn handshake_offering(
    world: &World,
    version: &'static rustls::SupportedProtocolVersion,
    only: Option<rustls::CipherSuite>,
) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut tls = crate::support::raw_tls(world, &[version], only)?;
    tls.write_all(b"GET /api/v1/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|error| error.to_string())?;
    let mut first = [0u8; 8];
    tls.read_exact(&mut first)
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Issue 22: `mode` and the TLS versions are checked against CM's lists (both public clients
/// list them) and what the emulator implements; a refusal changes nothing; what is implemented
/// applies (at once, as CM's guide says): the minimum TLS version, and whether a client
/// certificate is asked for.
#[test]
fn interface_mode_and_tls_versions_are_checked_and_applied() {
    let world = World::new();
    let web = "/api/v1/configs/interfaces/web";
    let before = world.admin_call("GET", web, None).expect(200);
    for (body, says) in [
        (json!({"mode": "bogus-mode"}), "not one of CM's modes"),
        (
            json!({"minimum_tls_version": "tls_9"}),
            "not one of CM's TLS versions",
        ),
        (json!({"mode": "no-tls-pw-opt"}), "not implemented"),
        (json!({"mode": "tls-pw-req"}), "not implemented"),
        (json!({"minimum_tls_version": "tls_1_1"}), "not implemented"),
        (
            json!({"minimum_tls_version": "tls_1_3", "maximum_tls_version": "tls_1_2"}),
            "above",
        ),
        (
            json!({"mode": "bogus", "trusted_cas": {"external": [], "local": []}}),
            "not one of CM's modes",
        ),
    ] {
        let refused = world
            .admin_call("PATCH", web, Some(&body))
            .expect_error(400, "NCERRInvalidParamValue");
        let message = refused["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert_eq!(world.admin_call("GET", web, None).expect(200), before);

    assert_eq!(handshake(&world, &rustls::version::TLS12), Ok(()));
    let raised = world
        .admin_call(
            "PATCH",
            web,
            Some(&json!({"minimum_tls_version": "tls_1_3"})),
        )
        .expect(200);
    assert_eq!(raised["minimum_tls_version"], "tls_1_3");
    assert!(handshake(&world, &rustls::version::TLS12).is_err());
    assert_eq!(handshake(&world, &rustls::version::TLS13), Ok(()));

    // Client certificates not asked for: an agent cannot register with one.
    let issued = world.issue("host-unauth.example");
    world
        .admin_call("PATCH", web, Some(&json!({"mode": "unauth-tls-pw-opt"})))
        .expect(200);
    world
        .register(&issued, "host-unauth")
        .expect_error(401, "NCERRClientCertificateRequired");
    // Back to the default (`""` resets): asked for again.
    world
        .admin_call(
            "PATCH",
            web,
            Some(&json!({"mode": "", "minimum_tls_version": ""})),
        )
        .expect(200);
    world.register(&issued, "host-unauth").expect(201);
    assert_eq!(handshake(&world, &rustls::version::TLS12), Ok(()));
}

/// Issue 22, item 11: the password policy's lockout, as CM's guide describes it (default: no
/// lockout; `[0, 5]`: the first failure does not lock, the second and later lock for 5
/// minutes), set through `PATCH /v1/usermgmt/pwdpolicies/global` as Terraform's
/// `ciphertrust_password_policy` sends it. While locked out even the right password is refused.
#[test]
fn failed_admin_logins_lock_the_account_as_the_password_policy_says() {
    let world = World::new();
    let login = |password: &str| {
        world.admin.call(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(&json!({"username": "admin", "password": password})),
        )
    };
    // CM's default: no lockout, however many failures.
    for _ in 0..20 {
        login("wrong").expect_error(401, "NCERRUnauthorizedAccess");
    }
    login(ADMIN_PASSWORD).expect(200);

    let policy = world
        .admin_call(
            "PATCH",
            "/api/v1/usermgmt/pwdpolicies/global",
            Some(&json!({"failed_logins_lockout_thresholds": [0, 5], "inclusive_min_total_length": 8})),
        )
        .expect(200);
    assert_eq!(policy["failed_logins_lockout_thresholds"], json!([0, 5]));
    // One failure (duration 0) does not lock; a success starts the count again.
    login("wrong").expect_error(401, "NCERRUnauthorizedAccess");
    login(ADMIN_PASSWORD).expect(200);
    // Two in a row lock for 5 minutes, the right password included.
    login("wrong").expect_error(401, "NCERRUnauthorizedAccess");
    login("wrong").expect_error(401, "NCERRUnauthorizedAccess");
    let locked = login(ADMIN_PASSWORD).expect_error(401, "NCERRUnauthorizedAccess");
    assert!(
        locked["message"].as_str().unwrap().contains("locked out"),
        "{locked}"
    );
    world.clock.advance(Duration::from_secs(4 * 60));
    login(ADMIN_PASSWORD).expect_error(401, "NCERRUnauthorizedAccess");
    world.clock.advance(Duration::from_secs(61));
    let fresh = login(ADMIN_PASSWORD).expect(200);
    let jwt = fresh["jwt"].as_str().unwrap();
    // The policy reads back, and an unknown policy is 404.
    let read = world
        .admin
        .call(
            "GET",
            "/api/v1/usermgmt/pwdpolicies/global",
            Some(jwt),
            None,
        )
        .expect(200);
    assert_eq!(read["failed_logins_lockout_thresholds"], json!([0, 5]));
    world
        .admin
        .call("GET", "/api/v1/usermgmt/pwdpolicies/other", Some(jwt), None)
        .expect_error(404, "NCERRResourceNotFound");
}

/// Issue 22, item 7: the interface fields Terraform's provider reads when they are configured
/// are kept and read back as written; `tls_ciphers` lists the emulator's real suites, refuses a
/// list that adds or removes one (CM's words), and applies what it turns off.
#[test]
fn interface_fields_terraform_reads_are_kept_and_tls_ciphers_apply() {
    let world = World::new();
    let web = "/api/v1/configs/interfaces/web";
    let before = world.admin_call("GET", web, None).expect(200);
    let ciphers = before["tls_ciphers"].as_array().unwrap().clone();
    assert!(
        ciphers
            .iter()
            .any(|cipher| cipher["cipher_suite"] == "TLS_AES_256_GCM_SHA384"
                && cipher["hex_code"] == "0x1302"
                && cipher["enabled"] == true),
        "{before}"
    );
    assert!(
        before["local_auto_gen_attributes"]["names"][0].is_object(),
        "{before}"
    );
    let kept = json!({
        "allow_unregistered": false,
        "auto_registration": true,
        "kmip_enable_hard_delete": 1,
        "meta": {"nae": {"mask_system_groups": true}},
        "custom_uid_size": 16,
        "custom_uid_v2": true,
        "auto_gen_days_before_expiry": 30,
        "local_auto_gen_attributes": {"cn": "cm.example", "dns_names": ["cm.example"],
            "email_addresses": [], "ip_addresses": [], "names": [{"C": "US", "ST": "MD", "L": "", "O": "Example", "OU": ""}]},
    });
    let written = world.admin_call("PATCH", web, Some(&kept)).expect(200);
    for (field, value) in kept.as_object().unwrap() {
        assert_eq!(&written[field], value, "{field}: {written}");
    }
    assert_eq!(
        world.admin_call("GET", web, None).expect(200)["meta"],
        kept["meta"]
    );

    // Removing a member is refused, and nothing changes.
    let fewer: Vec<_> = ciphers[1..].to_vec();
    let refused = world
        .admin_call("PATCH", web, Some(&json!({"tls_ciphers": fewer})))
        .expect_error(400, "NCERRInvalidParamValue");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("Adding or removing TLS cipher suites is not allowed"),
        "{refused}"
    );
    // Every TLS 1.3 suite but one off: a client offering only a suite turned off fails.
    let only_aes_128: Vec<_> = ciphers
        .iter()
        .map(|cipher| {
            let name = cipher["cipher_suite"].as_str().unwrap();
            let tls13 = ["TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"].contains(&name);
            json!({"cipher_suite": name, "enabled": !tls13, "hex_code": cipher["hex_code"]})
        })
        .collect();
    // A TLS 1.3 handshake offering only `suite`.
    let offering = |suite| handshake_offering(&world, &rustls::version::TLS13, Some(suite));
    use rustls::CipherSuite::{
        TLS13_AES_128_GCM_SHA256 as AES_128, TLS13_AES_256_GCM_SHA384 as AES_256,
    };
    assert_eq!(offering(AES_256), Ok(()));
    world
        .admin_call("PATCH", web, Some(&json!({"tls_ciphers": only_aes_128})))
        .expect(200);
    assert!(offering(AES_256).is_err());
    assert_eq!(offering(AES_128), Ok(()));
    // `[]` turns every suite on again.
    world
        .admin_call("PATCH", web, Some(&json!({"tls_ciphers": []})))
        .expect(200);
    assert_eq!(offering(AES_256), Ok(()));
}
