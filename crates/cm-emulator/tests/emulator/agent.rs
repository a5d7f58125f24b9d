//! Agent endpoints: registration, login, status, renewal, log upload.

use std::time::{Duration, SystemTime};

use cm_emulator::{EmulatorConfig, TrustedCaChanges};
use serde_json::json;
use test_pki::{CertificateAuthority, ClientCertificateRequest, ExtendedKeyUsage, KeyType};

use crate::support::{World, sha256_hex};

const REGISTER: &str = "/api/v1/client-management/clients/";

#[test]
fn registration_succeeds_and_a_retry_is_idempotent() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let client = world.register(&issued, "host1").expect(201);
    assert_eq!(client["name"], "host1");
    assert_eq!(client["hostname"], "host1");
    assert_eq!(client["state"], "active");
    assert_eq!(client["common_name"], "host1.example");
    assert_eq!(client["description"], "test host");
    assert_eq!(client["ca_id"], world.ca_id.as_str());
    assert_eq!(client["client_metadata"]["client_type"], "CTE");
    assert_eq!(
        client["cert_fingerprint"],
        sha256_hex(issued.certificate_der())
    );
    assert!(client["cert_not_after"].as_str().unwrap().ends_with('Z'));

    let retry = world.register(&issued, "host1").expect(200);
    assert_eq!(retry["id"], client["id"]);
    let tokens = world
        .admin_call("GET", "/api/v1/client-management/regtokens/", None)
        .expect(200);
    assert_eq!(tokens["resources"][0]["clients_registered"], 1);
}

#[test]
fn registration_with_an_intermediate_chain_succeeds() {
    let world = World::new();
    let intermediate = world
        .ca
        .new_intermediate("Issuing CA", KeyType::P384)
        .unwrap();
    let issued = intermediate
        .issue(&ClientCertificateRequest::new("host2.example"))
        .unwrap();
    world.register(&issued, "host2").expect(201);
}

#[test]
fn registration_refuses_bad_tokens() {
    let world = World::new();
    let issued = world.issue("host1.example");
    world
        .register_with("no-such-token", &issued, "host1")
        .expect_error(401, "NCERRInvalidRegToken");

    let short = world.create_token(json!({"ca_id": world.ca_id, "lifetime": "10m"}));
    world.clock.advance(Duration::from_secs(11 * 60));
    // The clock moved past the admin bearer's life too: log in again.
    let world = World {
        admin_token: crate::support::admin_login(&world.admin),
        ..world
    };
    world
        .register_with(short["token"].as_str().unwrap(), &issued, "host1")
        .expect_error(401, "NCERRRegTokenExpired");

    let single = world.create_token(json!({"ca_id": world.ca_id, "max_clients": 1}));
    let single = single["token"].as_str().unwrap();
    world.register_with(single, &issued, "host1").expect(201);
    // The idempotent retry does not count against the token, even when it is used up.
    world.register_with(single, &issued, "host1").expect(200);
    let second = world.issue("host2.example");
    world
        .register_with(single, &second, "host2")
        .expect_error(403, "NCERRRegTokenExhausted");
}

#[test]
fn registration_checks_the_certificate() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let other = world.issue("host2.example");

    // No TLS client certificate.
    let body = json!({"reg_token": world.reg_token, "cert": issued.chain_pem(), "name": "host1"});
    world
        .admin
        .call("POST", REGISTER, None, Some(&body))
        .expect_error(401, "NCERRClientCertificateRequired");

    // Body certificate differs from the TLS certificate.
    world
        .presenting(&other)
        .call("POST", REGISTER, None, Some(&body))
        .expect_error(403, "NCERRCertificateMismatch");

    // Missing or wrongly typed fields name the field.
    let reply = world
        .presenting(&issued)
        .call(
            "POST",
            REGISTER,
            None,
            Some(&json!({"cert": issued.chain_pem(), "name": "h"})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"].as_str().unwrap().contains("reg_token"),
        "{reply}"
    );
    let reply = world
        .presenting(&issued)
        .call(
            "POST",
            REGISTER,
            None,
            Some(&json!({"reg_token": world.reg_token, "cert": issued.chain_pem(), "name": 5})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"].as_str().unwrap().contains("`name`"),
        "{reply}"
    );
    let reply = world
        .presenting(&issued)
        .try_raw("POST", REGISTER, None, Some(b"{\"reg_token\": ".to_vec()))
        .unwrap()
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"].as_str().unwrap().contains("JSON"),
        "{reply}"
    );

    // Name taken by a client with another certificate.
    world.register(&issued, "host1").expect(201);
    world
        .register(&other, "host1")
        .expect_error(409, "NCERRConflict");
}

#[test]
fn registration_refuses_a_certificate_from_another_trusted_ca() {
    let world = World::new();
    let second = CertificateAuthority::new_root("Second CA", KeyType::P384).unwrap();
    let second_id = world.add_ca(&second.certificate_pem(), "second");
    world.trust(&[world.ca_id.clone(), second_id]);
    world.restart_web(0);
    // The token names the first CA; the certificate comes from the second.
    let issued = second
        .issue(&ClientCertificateRequest::new("host1.example"))
        .unwrap();
    world
        .register(&issued, "host1")
        .expect_error(403, "NCERRCertificateNotTrusted");
}

#[test]
fn a_certificate_from_a_ca_unknown_to_the_web_interface_fails_the_handshake() {
    let world = World::new();
    let stranger = CertificateAuthority::new_root("Stranger CA", KeyType::P384).unwrap();
    let issued = stranger
        .issue(&ClientCertificateRequest::new("host1.example"))
        .unwrap();
    let result = world.presenting(&issued).try_call(
        "GET",
        "/api/v1/client-management/webcert-fingerprint/",
        None,
        None,
    );
    assert!(result.is_err(), "handshake should fail: {result:?}");
    // A certificate whose extended key usage excludes client authentication fails as well.
    let server_only = world
        .ca
        .issue(
            &ClientCertificateRequest::new("h")
                .extended_key_usage(ExtendedKeyUsage::ServerAuthOnly),
        )
        .unwrap();
    assert!(
        world
            .presenting(&server_only)
            .try_call(
                "GET",
                "/api/v1/client-management/webcert-fingerprint/",
                None,
                None
            )
            .is_err()
    );
}

#[test]
fn with_the_at_web_restart_setting_a_newly_trusted_ca_works_only_after_the_web_restart() {
    let world = World::configured(|config| EmulatorConfig {
        trusted_ca_changes: TrustedCaChanges::AtWebRestart,
        ..config
    });
    let second = CertificateAuthority::new_root("Second CA", KeyType::P384).unwrap();
    let second_id = world.add_ca(&second.certificate_pem(), "second");
    world.trust(&[world.ca_id.clone(), second_id.clone()]);
    let token = world.create_token(json!({"ca_id": second_id}));
    let token = token["token"].as_str().unwrap();
    let issued = second
        .issue(&ClientCertificateRequest::new("host1.example"))
        .unwrap();

    let body = json!({"reg_token": token, "cert": issued.chain_pem(), "name": "host1"});
    let before = world
        .presenting(&issued)
        .try_call("POST", REGISTER, None, Some(&body));
    assert!(before.is_err(), "trusted but not restarted: {before:?}");

    // A delayed restart applies after the delay, not before.
    world.restart_web(1);
    let immediately = world
        .presenting(&issued)
        .try_call("POST", REGISTER, None, Some(&body));
    assert!(
        immediately.is_err(),
        "restart still pending: {immediately:?}"
    );
    std::thread::sleep(Duration::from_millis(1600));
    world
        .presenting(&issued)
        .call("POST", REGISTER, None, Some(&body))
        .expect(201);
}

#[test]
fn client_login_status_and_refusals() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let other = world.issue("host2.example");
    let id = world.registered(&issued, "host1");
    world.registered(&other, "host2");

    let login = world.login(&issued, &id).expect(200);
    assert_eq!(login["client_id"], id.as_str());
    assert_eq!(login["duration"], 300);
    let bearer = login["jwt"].as_str().unwrap();

    world
        .login(&issued, "no-such-client")
        .expect_error(401, "NCERRUnauthorizedAccess");
    world
        .login(&other, &id)
        .expect_error(401, "NCERRUnauthorizedAccess");
    world
        .admin
        .call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(&json!({"grant_type": "client_credential", "client_id": id})),
        )
        .expect_error(401, "NCERRClientCertificateRequired");

    // A client bearer cannot call admin endpoints.
    world
        .presenting(&issued)
        .call(
            "GET",
            "/api/v1/client-management/clients/",
            Some(bearer),
            None,
        )
        .expect_error(403, "NCERRForbidden");

    let status = world
        .presenting(&issued)
        .call(
            "GET",
            "/api/v1/client-management/self/client",
            Some(bearer),
            None,
        )
        .expect(200);
    assert_eq!(status["id"], id.as_str());
    assert!(status["last_seen"].is_string(), "{status}");
    // The admin bearer is not a client bearer.
    world
        .presenting(&issued)
        .call(
            "GET",
            "/api/v1/client-management/self/client",
            Some(&world.admin_token),
            None,
        )
        .expect_error(403, "NCERRForbidden");
    world
        .presenting(&issued)
        .call("GET", "/api/v1/client-management/self/client", None, None)
        .expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn renewal_succeeds_with_proof_of_possession_and_is_idempotent() {
    let world = World::new();
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let new = world.issue_valid_for("host1.example", 90);

    let renewed = world.renew(&new, &bearer, &new).expect(200);
    assert_eq!(
        renewed["cert_fingerprint"],
        sha256_hex(new.certificate_der())
    );
    assert_eq!(
        renewed["previous_cert_fingerprint"],
        sha256_hex(old.certificate_der())
    );
    let retry = world.renew(&new, &bearer, &new).expect(200);
    assert_eq!(retry["cert_fingerprint"], renewed["cert_fingerprint"]);
}

#[test]
fn renewal_refuses_a_missing_proof_of_possession() {
    let world = World::new();
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let new = world.issue_valid_for("host1.example", 90);
    // The TLS connection presents the old certificate.
    world
        .renew(&old, &bearer, &new)
        .expect_error(403, "NCERRProofOfPossessionFailed");
    // Or none at all.
    world
        .admin
        .call(
            "POST",
            "/api/v1/client-management/self/client/renew",
            Some(&bearer),
            Some(&json!({"ext_cert": new.chain_pem()})),
        )
        .expect_error(401, "NCERRClientCertificateRequired");
    // And without a bearer.
    world
        .presenting(&new)
        .call(
            "POST",
            "/api/v1/client-management/self/client/renew",
            None,
            Some(&json!({"ext_cert": new.chain_pem()})),
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn renewal_refuses_a_different_common_name_and_names_both() {
    let world = World::new();
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let new = world.issue_valid_for("host9.example", 90);
    let reply = world
        .renew(&new, &bearer, &new)
        .expect_error(403, "NCERRCommonNameMismatch");
    assert_eq!(
        reply["message"],
        "common name differs: current \"host1.example\", new \"host9.example\""
    );
}

#[test]
fn renewal_refuses_an_earlier_expiry() {
    let world = World::new();
    let old = world.issue_valid_for("host1.example", 60);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let earlier = world.issue_valid_for("host1.example", 30);
    world
        .renew(&earlier, &bearer, &earlier)
        .expect_error(422, "NCERRCertificateNotLater");
}

#[test]
fn renewal_refuses_a_certificate_from_another_ca() {
    let world = World::new();
    let second = CertificateAuthority::new_root("Second CA", KeyType::P384).unwrap();
    let second_id = world.add_ca(&second.certificate_pem(), "second");
    world.trust(&[world.ca_id.clone(), second_id]);
    world.restart_web(0);
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let now = SystemTime::now();
    let foreign = second
        .issue(
            &ClientCertificateRequest::new("host1.example")
                .validity(now, now + Duration::from_secs(90 * 86_400)),
        )
        .unwrap();
    world
        .renew(&foreign, &bearer, &foreign)
        .expect_error(403, "NCERRCertificateNotTrusted");
}

#[test]
fn old_certificate_logs_in_until_the_new_one_has() {
    let world = World::new();
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let bearer = world.client_bearer(&old, &id);
    let new = world.issue_valid_for("host1.example", 90);
    world.renew(&new, &bearer, &new).expect(200);

    // The host crashed mid-switch: the old certificate still works...
    world.login(&old, &id).expect(200);
    world.login(&old, &id).expect(200);
    // ...until the new one has logged in once.
    world.login(&new, &id).expect(200);
    world
        .login(&old, &id)
        .expect_error(401, "NCERRUnauthorizedAccess");
    world.login(&new, &id).expect(200);
}

#[test]
fn log_records_upload_and_admin_listing() {
    let world = World::new();
    let issued = world.issue("host1.example");
    let id = world.registered(&issued, "host1");
    let bearer = world.client_bearer(&issued, &id);
    let records = json!({"records": [
        {"time": "2026-11-28T04:21:47Z", "level": "WARNING", "component": "VMD",
         "message_id": "CGP3001W", "message": "certificate expires in 20 days"},
        {"time": "2026-11-28T04:21:48Z", "level": "INFO", "component": "VMD",
         "message_id": "CGP2603I", "message": "renewed"},
    ]});
    let accepted = world
        .presenting(&issued)
        .call(
            "POST",
            "/api/v1/audit/client-records",
            Some(&bearer),
            Some(&records),
        )
        .expect(201);
    assert_eq!(accepted["accepted"], 2);
    let reply = world
        .presenting(&issued)
        .call(
            "POST",
            "/api/v1/audit/client-records",
            Some(&bearer),
            Some(&json!({"records": [{"time": "t", "component": "VMD", "message": "m"}]})),
        )
        .expect_error(400, "NCERRBadRequest");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("records[0].level"),
        "{reply}"
    );

    let list = world
        .admin_call("GET", "/api/v1/audit/client-records", None)
        .expect(200);
    assert_eq!(list["total"], 2);
    let first = &list["resources"][0];
    assert_eq!(first["client_id"], id.as_str());
    assert_eq!(first["client_name"], "host1");
    assert_eq!(first["message_id"], "CGP3001W");
    assert!(first["created_at"].is_string());
    let record_id = first["id"].as_str().unwrap();
    world
        .admin_call(
            "GET",
            &format!("/api/v1/audit/client-records/{record_id}"),
            None,
        )
        .expect(200);
    world
        .admin_call("GET", "/api/v1/audit/client-records/nope", None)
        .expect_error(404, "NCERRResourceNotFound");
}

#[test]
fn webcert_fingerprint_matches_the_served_certificate() {
    let world = World::new();
    let reply = world
        .admin
        .call(
            "GET",
            "/api/v1/client-management/webcert-fingerprint/",
            None,
            None,
        )
        .expect(200);
    assert_eq!(reply["algorithm"], "sha256");
    assert_eq!(
        reply["fingerprint"],
        world.emulator.web_cert_sha256_fingerprint()
    );
    let web_cert = std::fs::read_to_string(world.dir.path().join("web-cert.pem")).unwrap();
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(web_cert.as_bytes()).unwrap();
    let der: rustls_pki_types::CertificateDer<'_> = der;
    assert_eq!(
        sha256_hex(&der),
        world.emulator.web_cert_sha256_fingerprint()
    );
}

#[test]
fn registration_refuses_a_certificate_outside_its_validity() {
    let world = World::new();
    let issued = world.issue_valid_for("host1.example", 1);
    // TLS checks use the real clock; the API's own checks use the shifted one.
    world.clock.advance(Duration::from_secs(2 * 86_400));
    world
        .register(&issued, "host1")
        .expect_error(422, "NCERRCertificateInvalid");
}

#[test]
fn concurrent_registrations_are_all_counted() {
    let world = World::new();
    let certificates: Vec<_> = (0..8)
        .map(|index| world.issue(&format!("host{index}.example")))
        .collect();
    std::thread::scope(|scope| {
        for (index, issued) in certificates.iter().enumerate() {
            let world = &world;
            scope.spawn(move || {
                world.register(issued, &format!("host{index}")).expect(201);
            });
        }
    });
    let tokens = world
        .admin_call("GET", "/api/v1/client-management/regtokens/", None)
        .expect(200);
    assert_eq!(tokens["resources"][0]["clients_registered"], 8);
    let clients = world
        .admin_call("GET", "/api/v1/client-management/clients/", None)
        .expect(200);
    assert_eq!(clients["total"], 8);
}

#[test]
fn a_ca_without_client_authentication_is_not_applied_at_restart() {
    let world = World::new();
    let issued = world.issue("host1.example");
    world
        .admin_call(
            "PATCH",
            &format!("/api/v1/ca/external-cas/{}", world.ca_id),
            Some(&json!({"allow_client_authentication": false})),
        )
        .expect(200);
    // Still trusted until the web interface restarts.
    world.register(&issued, "host1").expect(201);
    world.restart_web(0);
    assert!(
        world
            .presenting(&issued)
            .try_call(
                "GET",
                "/api/v1/client-management/webcert-fingerprint/",
                None,
                None
            )
            .is_err()
    );
}
