//! What public clients read: real JWTs, CM's error codes, lists with filters, objects as CM
//! shows them, the transparent-encryption view of the agents, and the hardening limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use cm_emulator::{EmulatorConfig, TrustedCaChanges};
use serde_json::{Value, json};
use test_pki::{CertificateAuthority, ClientCertificateRequest, KeyType};

use crate::support::{ADMIN_PASSWORD, Http, World, sha256_hex};

const REGISTER: &str = "/api/v1/client-management/clients/";

/// The claims the test reads, decoded and verified by `jsonwebtoken` (not the emulator's code).
#[derive(Debug, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    account: String,
    #[serde(default)]
    client_id: Option<String>,
}

fn decode(world: &World, token: &str) -> jsonwebtoken::errors::Result<Claims> {
    let public = world.emulator.details().jwt_public_key();
    assert_eq!(public.len(), 65, "an uncompressed P-256 point");
    let key = jsonwebtoken::DecodingKey::from_ec_components(
        &Base64UrlUnpadded::encode_string(&public[1..33]),
        &Base64UrlUnpadded::encode_string(&public[33..65]),
    )?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&["kylo"]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    jsonwebtoken::decode::<Claims>(token, &key, &validation).map(|data| data.claims)
}

#[test]
fn bearers_are_jwts_an_independent_library_verifies() {
    let world = World::new();
    let claims = decode(&world, &world.admin_token).expect("a valid ES256 JWT");
    assert_eq!(claims.iss, "kylo");
    assert_eq!(claims.sub, "local|admin");
    assert_eq!(claims.exp - claims.iat, 300);
    assert!(!claims.jti.is_empty());
    assert_eq!(claims.account, "kylo:kylo:admin:accounts:kylo");

    let issued = world.issue("host1.example");
    let id = world.registered(&issued, "host1");
    let bearer = world.client_bearer(&issued, &id);
    let claims = decode(&world, &bearer).unwrap();
    assert_eq!(claims.sub, format!("client|{id}"));
    assert_eq!(claims.client_id.as_deref(), Some(id.as_str()));

    // Another emulator's token does not verify, here or there.
    let other = World::new();
    assert!(decode(&world, &other.admin_token).is_err());
    world
        .admin
        .call(
            "GET",
            "/api/v1/ca/external-cas",
            Some(&other.admin_token),
            None,
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
    // A tampered payload is refused by signature.
    let parts: Vec<&str> = world.admin_token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(parts[1]).unwrap()).unwrap();
    payload["exp"] = json!(payload["exp"].as_i64().unwrap() + 3600);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        Base64UrlUnpadded::encode_string(payload.to_string().as_bytes()),
        parts[2]
    );
    let reply = world
        .admin
        .call("GET", "/api/v1/ca/external-cas", Some(&forged), None)
        .expect_error(401, "NCERRUnauthorizedAccess");
    assert!(
        reply["message"].as_str().unwrap().contains("signature"),
        "{reply}"
    );
}

#[test]
fn login_takes_form_bodies_and_defaults_to_the_password_grant() {
    let world = World::new();
    let form = format!(
        "username=admin&password={}",
        ADMIN_PASSWORD.replace(' ', "+")
    );
    let reply = world
        .admin
        .try_typed(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(form.into_bytes()),
            Some("application/x-www-form-urlencoded"),
        )
        .unwrap()
        .expect(200);
    for field in [
        "jwt",
        "duration",
        "token_type",
        "client_id",
        "refresh_token",
        "refresh_token_id",
    ] {
        assert!(reply.get(field).is_some(), "{field} missing: {reply}");
    }
    assert_eq!(reply["token_type"], "Bearer");
    // JSON sent as a form (`curl -d` without a Content-Type) is told what to send, not
    // "missing field `username`" (issue 22).
    let json_as_form = world
        .admin
        .try_typed(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(
                serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD})
                    .to_string()
                    .into_bytes(),
            ),
            Some("application/x-www-form-urlencoded"),
        )
        .unwrap()
        .expect_error(400, "NCERRBadRequest");
    let message = json_as_form["message"].as_str().unwrap();
    assert!(
        message.contains("Content-Type: application/json"),
        "{message}"
    );
    // The fields CM's API takes besides the credentials are accepted.
    world
        .admin
        .call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(&json!({
                "grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD,
                "auth_domain": "root", "domain": "root", "connection": "local_account",
                "labels": ["terraform"], "cookies": false, "renew_refresh_token": false,
                "refresh_token_lifetime": 60,
            })),
        )
        .expect(200);
    world
        .admin
        .call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(&json!({"username": "admin", "password": ADMIN_PASSWORD, "domain": "other"})),
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn errors_carry_cm_code_desc_and_public_codes() {
    let world = World::new();
    let cases = [
        (
            world.admin_call("GET", "/api/v1/nothing", None),
            404,
            16,
            "NCERRResourceNotFound: Resource not found",
        ),
        (
            world
                .admin
                .call("GET", "/api/v1/ca/external-cas", None, None),
            401,
            5,
            "NCERRUnauthorizedAccess: Unauthorized access",
        ),
        (
            world.admin_call("GET", "/api/v1/ca/external-cas?limit=-1", None),
            400,
            9,
            "NCERRInvalidParamValue: Invalid parameter value",
        ),
        (
            world
                .admin
                .try_raw(
                    "POST",
                    "/api/v1/ca/external-cas",
                    Some(&world.admin_token),
                    Some(b"{".to_vec()),
                )
                .unwrap(),
            400,
            15,
            "NCERRBadRequest: Bad request",
        ),
    ];
    for (reply, status, code, code_desc) in cases {
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.body["code"], code, "{}", reply.text);
        assert_eq!(reply.body["codeDesc"], code_desc, "{}", reply.text);
    }
}

#[test]
fn external_cas_are_shown_and_filtered_as_cm_does() {
    let world = World::new();
    let list = world
        .admin_call("GET", "/api/v1/ca/external-cas?name=test-ca", None)
        .expect(200);
    assert_eq!(list["total"], 1, "{list}");
    let ca = &list["resources"][0];
    let serial = ca["serialNumber"].as_str().unwrap();
    assert!(
        !serial.is_empty() && serial.bytes().all(|byte| byte.is_ascii_digit()),
        "{ca}"
    );
    assert_eq!(ca["subject"], "/CN=Test External CA");
    assert_eq!(ca["issuer"], "/CN=Test External CA");
    let fingerprint = ca["sha1Fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint, fingerprint.to_uppercase());
    assert!(ca.get("parent").is_none(), "{ca}");
    for (filter, value) in [
        ("subject", "/CN=Test External CA"),
        ("serialNumber", serial),
        ("issuer", "/CN=Test External CA"),
    ] {
        let path = format!(
            "/api/v1/ca/external-cas?{filter}={}&unknown_filter=ignored",
            value
                .replace('/', "%2F")
                .replace(' ', "+")
                .replace('=', "%3D")
        );
        let found = world.admin_call("GET", &path, None).expect(200);
        assert_eq!(found["total"], 1, "{filter}: {found}");
    }
    let none = world
        .admin_call("GET", "/api/v1/ca/external-cas?name=absent", None)
        .expect(200);
    assert_eq!(none["total"], 0);
    // A `+` in a path segment is a plus sign.
    let plus = CertificateAuthority::new_root("Plus CA", KeyType::P256).unwrap();
    world.add_ca(&plus.certificate_pem(), "a+b");
    world
        .admin_call("GET", "/api/v1/ca/external-cas/a+b", None)
        .expect(200);
    world
        .admin_call("GET", "/api/v1/ca/external-cas/a%2Bb", None)
        .expect(200);
}

#[test]
fn agents_are_listed_for_admins_and_filtered_by_fingerprint() {
    let world = World::new();
    let first = world.issue("host1.example");
    let second = world.issue("host2.example");
    let first_id = world.registered(&first, "host1");
    world.registered(&second, "host2");
    let fingerprint = sha256_hex(first.certificate_der());

    let clients = world
        .admin_call(
            "GET",
            &format!(
                "/api/v1/client-management/clients?sha256_fingerprint={}",
                fingerprint.to_uppercase()
            ),
            None,
        )
        .expect(200);
    assert_eq!(clients["total"], 1, "{clients}");
    assert_eq!(clients["resources"][0]["id"], first_id.as_str());

    let te = world
        .admin_call("GET", "/api/v1/transparent-encryption/clients", None)
        .expect(200);
    assert_eq!(te["total"], 2, "{te}");
    for field in [
        "name",
        "id",
        "uri",
        "client_health_status",
        "communication_enabled",
        "client_type",
        "registration_allowed",
        "created_at",
    ] {
        assert!(
            te["resources"][0].get(field).is_some(),
            "{field} missing: {te}"
        );
    }
    let one = world
        .admin_call(
            "GET",
            &format!("/api/v1/transparent-encryption/clients/{first_id}"),
            None,
        )
        .expect(200);
    assert_eq!(one["name"], "host1");
    assert_eq!(one["client_health_status"], "UNKNOWN");
    let bearer = world.client_bearer(&first, &first_id);
    world
        .presenting(&first)
        .call(
            "GET",
            "/api/v1/client-management/self/client",
            Some(&bearer),
            None,
        )
        .expect(200);
    let one = world
        .admin_call(
            "GET",
            "/api/v1/transparent-encryption/clients?name=host1&limit=1",
            None,
        )
        .expect(200);
    assert_eq!(
        one["resources"][0]["client_health_status"], "HEALTHY",
        "{one}"
    );
    // A client bearer cannot read the admin view.
    world
        .presenting(&first)
        .call(
            "GET",
            "/api/v1/transparent-encryption/clients",
            Some(&bearer),
            None,
        )
        .expect_error(403, "NCERRForbidden");
}

#[test]
fn one_certificate_is_at_most_one_client() {
    let world = World::new();
    let issued = world.issue("host1.example");
    world.registered(&issued, "host1");
    let reply = world
        .register(&issued, "host1-again")
        .expect_error(409, "NCERRConflict");
    assert!(
        reply["message"].as_str().unwrap().contains("host1"),
        "{reply}"
    );
}

#[test]
fn sessions_and_records_are_bounded_oldest_first() {
    let world = World::configured(|config| EmulatorConfig {
        max_sessions: 3,
        max_client_records: 3,
        ..config
    });
    // The world's admin session is the first; three more logins push it out.
    let logins: Vec<String> = (0..3)
        .map(|_| crate::support::admin_login(&world.admin))
        .collect();
    world
        .admin
        .call(
            "GET",
            "/api/v1/ca/external-cas",
            Some(&world.admin_token),
            None,
        )
        .expect_error(401, "NCERRUnauthorizedAccess");
    world
        .admin
        .call("GET", "/api/v1/ca/external-cas", Some(&logins[2]), None)
        .expect(200);

    let issued = world.issue("host1.example");
    let id = world.registered(&issued, "host1");
    let bearer = world.client_bearer(&issued, &id);
    let record = json!({"time": "2026-11-28T04:21:47Z", "level": "WARNING", "component": "VMD", "message_id": "CGP3001W", "message": "m"});
    for _ in 0..2 {
        world
            .presenting(&issued)
            .call(
                "POST",
                "/api/v1/audit/client-records",
                Some(&bearer),
                Some(&json!({"records": [record, record]})),
            )
            .expect(201);
    }
    let admin = crate::support::admin_login(&world.admin);
    let records = world
        .admin
        .call(
            "GET",
            "/api/v1/audit/client-records?limit=100",
            Some(&admin),
            None,
        )
        .expect(200);
    assert_eq!(records["total"], 2, "{records}");
    assert_eq!(records["dropped"], 2, "{records}");
}

/// A TLS connection to the emulator, for raw HTTP/1.1.
fn raw_tls(world: &World) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    crate::support::raw_tls(world, &[], None).unwrap()
}

/// Reads until the server closes the connection; returns how long that took.
fn until_closed(stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// Issue 22, item 11: a body that trickles in (no client certificate needed) is answered 408
/// and its connection closed once the header timeout passes again, so such connections cannot
/// hold every slot: with all slots taken by them, an administrator still gets through.
#[test]
fn a_trickling_body_is_timed_out_and_does_not_block_other_clients() {
    let world = World::configured(|config| EmulatorConfig {
        header_read_timeout: Duration::from_secs(1),
        max_connections: 4,
        ..config
    });
    let mut trickling: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = raw_tls(&world);
            stream
                .write_all(
                    b"POST /api/v1/auth/tokens HTTP/1.1\r\nHost: localhost\r\n\
                      Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
                )
                .unwrap();
            stream
        })
        .collect();
    let started = Instant::now();
    world
        .admin_call("GET", "/api/v1/ca/external-cas", None)
        .expect(200);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "waited {:?} behind trickling bodies",
        started.elapsed()
    );
    let mut answer = String::new();
    let _ = trickling[0].read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let world = World::configured(|config| EmulatorConfig {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..config
    });
    // Headers that never end.
    let mut slow = raw_tls(&world);
    slow.write_all(
        b"GET /api/v1/client-management/webcert-fingerprint HTTP/1.1\r\nHost: localhost\r\n",
    )
    .unwrap();
    let waited = until_closed(&mut slow);
    assert!(waited < Duration::from_secs(8), "closed after {waited:?}");

    // A keep-alive connection that answered once, then stays idle.
    let mut idle = raw_tls(&world);
    idle.write_all(
        b"GET /api/v1/client-management/webcert-fingerprint HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let waited = until_closed(&mut idle);
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "closed after {waited:?}"
    );
}

#[test]
fn trusted_ca_changes_apply_at_once_as_cms_guide_says_and_trusted_cas_exists() {
    // The invented `at-web-restart` setting has no /trusted-cas.
    let world = World::configured(|config| EmulatorConfig {
        trusted_ca_changes: TrustedCaChanges::AtWebRestart,
        ..config
    });
    world
        .admin_call("GET", "/api/v1/trusted-cas", None)
        .expect_error(404, "NCERRResourceNotFound");

    // The default, as CM's administration guide says for 2.7, 2.10, 2.13 and 2.18.
    let world = World::new();
    let second = CertificateAuthority::new_root("Second CA", KeyType::P256).unwrap();
    let second_id = world.add_ca(&second.certificate_pem(), "second");
    // Terraform's CMTrustedCAJSON (internal/provider/cm/resource_trusted_cas.go): ca_id, service.
    let entry = world
        .admin_call(
            "POST",
            "/api/v1/trusted-cas",
            Some(&json!({"ca_id": second_id, "service": "web"})),
        )
        .expect(201);
    assert_eq!(entry["ca_type"], "external");
    let list = world
        .admin_call("GET", "/api/v1/trusted-cas", None)
        .expect(200);
    assert_eq!(list["total"], 2, "{list}");

    let token = world.create_token(json!({"ca_id": "second"}));
    let issued = second
        .issue(&ClientCertificateRequest::new("host9.example"))
        .unwrap();
    let body = json!({"reg_token": token["token"], "cert": issued.chain_pem(), "name": "host9"});
    // No restart: the change is already in force.
    world
        .presenting(&issued)
        .call("POST", REGISTER, None, Some(&body))
        .expect(201);
    world
        .admin_call(
            "DELETE",
            &format!("/api/v1/trusted-cas/{}", entry["id"].as_str().unwrap()),
            None,
        )
        .expect(204);
    assert!(
        Http::presenting(&world.emulator, &issued)
            .try_call(
                "GET",
                "/api/v1/client-management/webcert-fingerprint",
                None,
                None
            )
            .is_err(),
        "removed at once"
    );
}

/// Issue 22: every resource's `created_at`/`updated_at` (or `createdAt`/`updatedAt`) has the
/// same shape in every view, RFC 3339 with microseconds as CM shows them (XS's captured
/// answers), where it had no fraction in some views.
#[test]
fn timestamps_have_one_shape_in_every_view() {
    let world = World::new();
    let issued = world.issue("stamps.example");
    let client = world.registered(&issued, "stamps");
    let token = world.create_token(json!({"ca_id": world.ca_id}));
    let views = [
        format!("/api/v1/client-management/clients/{client}"),
        format!("/api/v1/transparent-encryption/clients/{client}"),
        format!(
            "/api/v1/client-management/regtokens/{}",
            token["id"].as_str().unwrap()
        ),
        format!("/api/v1/ca/external-cas/{}", world.ca_id),
        "/api/v1/configs/interfaces/web".to_owned(),
    ];
    let micros = |text: &str| {
        text.len() == "2026-12-04T11:05:13.000000Z".len()
            && text.ends_with('Z')
            && text.as_bytes()[19] == b'.'
    };
    for path in &views {
        let view = world.admin_call("GET", path, None).expect(200);
        let mut seen = 0;
        for field in ["created_at", "updated_at", "createdAt", "updatedAt"] {
            if let Some(value) = view.get(field) {
                let text = value.as_str().unwrap();
                assert!(micros(text), "{path} {field}: {text}");
                seen += 1;
            }
        }
        assert_eq!(seen, 2, "{path}: {view}");
    }
}

/// Issue 22, item 7: a local CA trusted through `/v1/trusted-cas` shows in the interface's
/// `trusted_cas.local` by its URI, as in CM's own sample (`ksctl interfaces list`).
#[test]
fn a_local_ca_trusted_without_a_written_list_shows_by_its_uri() {
    let world = World::new();
    let local = world
        .admin_call("GET", "/api/v1/ca/local-cas", None)
        .expect(200)["resources"][0]
        .clone();
    world
        .admin_call(
            "POST",
            "/api/v1/trusted-cas",
            Some(&json!({"ca_id": local["id"], "service": "web", "ca_type": "local"})),
        )
        .expect(201);
    let web = world
        .admin_call("GET", "/api/v1/configs/interfaces/web", None)
        .expect(200);
    assert_eq!(web["trusted_cas"]["local"], json!([local["uri"]]), "{web}");
}
