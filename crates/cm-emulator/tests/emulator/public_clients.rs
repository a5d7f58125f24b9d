//! Requests exactly as public CipherTrust Manager clients send them
//! (`tests/fixtures/public_clients/*.json`, each naming its source), replayed over HTTPS.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::{ADMIN_PASSWORD, World};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/public_clients")
}

/// The values a fixture refers to.
struct Values {
    refresh_token: String,
    /// A registered client's id.
    client_id: String,
    /// A name no client has, for the creates.
    client_name: String,
    /// The `profile_id` of the registered client, as the manager shows it.
    profile_id: String,
    ca_name: String,
    ca_id: String,
    ca_pem: String,
}

/// Replaces `${NAME}` in the fixture's JSON text (the values need no JSON escaping but the PEM,
/// which is escaped).
fn fill(text: &str, values: &Values) -> String {
    let pem = serde_json::to_string(&values.ca_pem).unwrap();
    text.replace("${ADMIN_PASSWORD}", ADMIN_PASSWORD)
        .replace("${REFRESH_TOKEN}", &values.refresh_token)
        .replace("${CA_NAME}", &values.ca_name)
        .replace("${CA_ID}", &values.ca_id)
        .replace("${CLIENT_ID}", &values.client_id)
        .replace("${CLIENT_NAME}", &values.client_name)
        .replace("${PROFILE_ID}", &values.profile_id)
        .replace("${CA_PEM}", &pem[1..pem.len() - 1])
}

/// Runs one fixture and returns the answer's body.
fn replay(world: &World, name: &str, values: &Values) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{name}: {error}"));
    let fixture: Value = serde_json::from_str(&fill(&text, values)).unwrap();
    for field in ["repository", "path", "sends"] {
        assert!(
            fixture["source"][field]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{name}: the fixture must name its source ({field})"
        );
    }
    let request = &fixture["request"];
    let body = match &request["body"] {
        Value::Null => None,
        body => Some(serde_json::to_vec(body).unwrap()),
    };
    // Admin calls carry the admin bearer; logins carry none.
    let path_text = request["path"].as_str().unwrap();
    let bearer =
        (!path_text.starts_with("/api/v1/auth/tokens")).then_some(world.admin_token.as_str());
    let reply = world
        .admin
        .try_typed(
            request["method"].as_str().unwrap(),
            path_text,
            bearer,
            body,
            request["content_type"].as_str(),
        )
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    let status = fixture["expect"]["status"].as_u64().unwrap();
    assert_eq!(u64::from(reply.status), status, "{name}: {}", reply.text);
    for pointer in fixture["expect"]["reads"].as_array().unwrap() {
        let pointer = pointer.as_str().unwrap();
        let value = reply.body.pointer(pointer);
        assert!(
            value.is_some_and(|value| !value.is_null() && value != ""),
            "{name}: the client reads {pointer}, missing in {}",
            reply.text
        );
    }
    reply.body
}

fn values(world: &World) -> Values {
    let login = world
        .admin
        .call(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD})),
        )
        .expect(200);
    let other =
        test_pki::CertificateAuthority::new_root("Uploaded CA", test_pki::KeyType::P256).unwrap();
    let client_id = world.registered(&world.issue("fixture-host.example"), "fixture-host");
    let te_view = world
        .admin_call(
            "GET",
            &format!("/api/v1/transparent-encryption/clients/{client_id}"),
            None,
        )
        .expect(200);
    Values {
        refresh_token: login["refresh_token"].as_str().unwrap().to_owned(),
        client_id,
        client_name: "created-host".to_owned(),
        profile_id: te_view["profile_id"].as_str().unwrap().to_owned(),
        ca_name: "test-ca".to_owned(),
        ca_id: world.ca_id.clone(),
        ca_pem: other.certificate_pem(),
    }
}

#[test]
fn every_fixture_is_replayed() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        // A fresh world for each: fixtures do not depend on each other.
        let world = World::new();
        let values = values(&world);
        replay(&world, name, &values);
    }
}

/// The three ways the public clients delete a CTE client (Terraform's Delete and Ansible's
/// `delete_id` by id, Ansible's `delete` by list) remove it as the emulator's own `DELETE` does:
/// gone from both views, and its certificate no longer logs in.
#[test]
fn the_public_clients_deletes_remove_the_client_and_its_logins() {
    for fixture in [
        "terraform_cte_client_delete.json",
        "ansible_cte_client_delete_id.json",
        "ansible_cte_clients_delete.json",
    ] {
        let world = World::new();
        let issued = world.issue("deleted-host.example");
        let client_id = world.registered(&issued, "deleted-host");
        world.login(&issued, &client_id).expect(200);
        let defaults = values(&world);
        let other = defaults.client_id.clone();
        let values = Values {
            client_id: client_id.clone(),
            ..defaults
        };
        let answer = replay(&world, fixture, &values);
        assert!(
            answer.as_object().is_some_and(|object| !object.is_empty()),
            "{fixture}: Ansible needs a non-empty JSON object: {answer}"
        );
        for view in ["client-management", "transparent-encryption"] {
            world
                .admin_call("GET", &format!("/api/v1/{view}/clients/{client_id}"), None)
                .expect_error(404, "NCERRResourceNotFound");
        }
        world
            .login(&issued, &client_id)
            .expect_error(401, "NCERRUnauthorizedAccess");
        // The other registered client is still there.
        world
            .admin_call(
                "GET",
                &format!("/api/v1/client-management/clients/{other}"),
                None,
            )
            .expect(200);
    }
}

#[test]
fn deleting_by_list_deletes_all_or_nothing_and_del_client_false_is_refused() {
    let world = World::new();
    let first = world.registered(&world.issue("one.example"), "one");
    let second = world.registered(&world.issue("two.example"), "two");
    let body = serde_json::json!({"client_id_list": ["one", "no-such-client"]});
    world
        .admin_call(
            "PATCH",
            "/api/v1/transparent-encryption/clients/delete",
            Some(&body),
        )
        .expect_error(404, "NCERRResourceNotFound");
    world
        .admin_call(
            "GET",
            &format!("/api/v1/client-management/clients/{first}"),
            None,
        )
        .expect(200);
    let body = serde_json::json!({"client_id_list": ["one", format!("kylo:kylo:vorpal:clients:{second}")]});
    let answer = world
        .admin_call(
            "PATCH",
            "/api/v1/transparent-encryption/clients/delete",
            Some(&body),
        )
        .expect(200);
    assert_eq!(answer["client_id_list"], serde_json::json!([first, second]));
    let third = world.registered(&world.issue("three.example"), "three");
    world
        .admin_call(
            "PATCH",
            &format!("/api/v1/transparent-encryption/clients/{third}/delete"),
            Some(&serde_json::json!({"del_client": false})),
        )
        .expect_error(400, "NCERRBadRequest");
    world
        .admin_call(
            "GET",
            &format!("/api/v1/client-management/clients/{third}"),
            None,
        )
        .expect(200);
}

/// `"local": null` (Terraform `1021e061` for an empty list; the Ansible collection whenever a
/// playbook gives only `external`) empties the local list, as CM (a Go server) decodes it; a
/// list left out stays as it was.
#[test]
fn trusted_cas_local_null_is_an_empty_list_and_a_list_left_out_is_unchanged() {
    let world = World::new();
    let values = values(&world);
    let local = world
        .admin_call("GET", "/api/v1/ca/local-cas", None)
        .expect(200)["resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let both = serde_json::json!({"trusted_cas": {"external": [values.ca_id], "local": [local]}});
    world
        .admin_call("PATCH", "/api/v1/configs/interfaces/web", Some(&both))
        .expect(200);
    let only_external = serde_json::json!({"trusted_cas": {"external": [values.ca_id]}});
    let web = world
        .admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&only_external),
        )
        .expect(200);
    assert_eq!(
        web["trusted_cas"]["local"],
        serde_json::json!([local]),
        "{web}"
    );
    let web = replay(
        &world,
        "terraform_interface_update_local_null.json",
        &values,
    );
    assert_eq!(web["trusted_cas"]["local"], serde_json::json!([]), "{web}");
    assert_eq!(
        web["trusted_cas"]["external"],
        serde_json::json!([values.ca_id]),
        "{web}"
    );
}

#[test]
fn terraform_regtoken_without_a_ca_is_bound_to_the_local_ca() {
    let world = World::new();
    let values = values(&world);
    let token = replay(&world, "terraform_regtoken_create.json", &values);
    let local = world
        .admin_call("GET", "/api/v1/ca/local-cas", None)
        .expect(200);
    assert_eq!(local["total"], 1, "{local}");
    assert_eq!(token["ca_id"], local["resources"][0]["id"]);
    assert_eq!(token["cert_duration"], 730);
    assert!(token["max_clients"].is_null(), "0 means unlimited: {token}");
    assert!(
        token["valid_until"].is_null(),
        "\"\" means no expiry: {token}"
    );
    // A host presenting an external certificate with that token is refused, and told why.
    let host = world.issue("host1.example");
    let reply = world
        .register_with(token["token"].as_str().unwrap(), &host, "host1")
        .expect_error(403, "NCERRCertificateNotTrusted");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains("not issued by") && message.contains("local CA"),
        "{message}"
    );
}

#[test]
fn terraform_refresh_renews_the_refresh_token() {
    let world = World::new();
    let values = values(&world);
    let refreshed = replay(&world, "terraform_auth_refresh.json", &values);
    assert_ne!(refreshed["refresh_token"], values.refresh_token.as_str());
    // The new bearer works; the old refresh token was replaced (renew_refresh_token).
    world
        .admin
        .call(
            "GET",
            "/api/v1/ca/external-cas",
            refreshed["jwt"].as_str(),
            None,
        )
        .expect(200);
    let again = world.admin.call(
        "POST",
        "/api/v1/auth/tokens",
        None,
        Some(&serde_json::json!({"grant_type": "refresh_token", "refresh_token": values.refresh_token})),
    );
    again.expect_error(401, "NCERRUnauthorizedAccess");
}

#[test]
fn ansible_lookup_by_name_finds_the_named_ca_among_many() {
    let world = World::new();
    for index in 0..12 {
        let ca = test_pki::CertificateAuthority::new_root(
            &format!("CA {index}"),
            test_pki::KeyType::P256,
        )
        .unwrap();
        world.add_ca(&ca.certificate_pem(), &format!("ca-{index:02}"));
    }
    let values = Values {
        ca_name: "ca-11".to_owned(),
        ..values(&world)
    };
    let found = replay(&world, "ansible_lookup_by_name.json", &values);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["resources"][0]["name"], "ca-11");
    // Without a limit, CM's default page of 10.
    let page = world
        .admin_call("GET", "/api/v1/ca/external-cas", None)
        .expect(200);
    assert_eq!(page["limit"], 10);
    assert_eq!(page["total"], 13);
    assert_eq!(page["resources"].as_array().unwrap().len(), 10);
}

#[test]
fn terraform_interface_update_reads_back_as_written_and_applies() {
    let world = World::new();
    let values = values(&world);
    let web = replay(&world, "terraform_interface_update.json", &values);
    assert_eq!(
        web["trusted_cas"]["external"],
        serde_json::json!(["test-ca"])
    );
    assert_eq!(web["minimum_tls_version"], "tls_1_2");
    assert_eq!(web["enabled"], true);
    // Terraform's explicit reset ("") returns the default; `null` empties the lists.
    let reset = world
        .admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&serde_json::json!({"minimum_tls_version": "", "trusted_cas": null})),
        )
        .expect(200);
    assert_eq!(reset["minimum_tls_version"], "tls_1_2");
    assert_eq!(reset["trusted_cas"]["external"], serde_json::json!([]));
    // The port is a real manager's, 443, whatever the emulator listens on. Resent unchanged it
    // is a conflict (as Terraform's newest provider documents CM's answer); a change is not
    // implemented; either way nothing changes.
    assert_eq!(web["port"], 443);
    let port = |port: u32| {
        world.admin_call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(&serde_json::json!({"port": port, "minimum_tls_version": "tls_1_3"})),
        )
    };
    port(443).expect_error(409, "NCERRConflict");
    let refused = port(8443).expect_error(400, "NCERRInvalidParamValue");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not implemented"),
        "{refused}"
    );
    let after = world
        .admin_call("GET", "/api/v1/configs/interfaces/web", None)
        .expect(200);
    assert_eq!(
        (
            after["port"].as_u64(),
            after["minimum_tls_version"].as_str()
        ),
        (Some(443), Some("tls_1_2"))
    );
}

/// A client created by an administrator (Terraform's and Ansible's create) is `pending` until
/// its agent registers under that name; `registration_allowed` decides whether it may, and the
/// registration completes that client (same id, settings kept) instead of adding another.
#[test]
fn a_created_client_is_completed_by_its_agents_registration_when_allowed() {
    for create in [
        "terraform_cte_client_create.json",
        "ansible_cte_client_create.json",
    ] {
        let world = World::new();
        let values = values(&world);
        let created = replay(&world, create, &values);
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["name"], "created-host", "{create}: {created}");
        assert_eq!(created["client_type"], "FS");
        let admin_view = |id: &str| {
            world
                .admin_call(
                    "GET",
                    &format!("/api/v1/client-management/clients/{id}"),
                    None,
                )
                .expect(200)
        };
        let pending = admin_view(&id);
        assert_eq!(pending["state"], "pending", "{pending}");
        assert!(pending["cert_not_after"].is_null(), "{pending}");
        // Ansible's create leaves registration_allowed out (off): the agent is refused and
        // told what to change; nothing is added.
        let issued = world.issue("created-host.example");
        if create.starts_with("ansible") {
            let refused = world
                .register(&issued, "created-host")
                .expect_error(403, "NCERRRegistrationNotAllowed");
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("registration_allowed"),
                "{refused}"
            );
            assert_eq!(admin_view(&id)["state"], "pending");
            let patched = replay(
                &world,
                "ansible_cte_client_patch.json",
                &Values {
                    client_id: id.clone(),
                    ..values
                },
            );
            assert_eq!(patched["registration_allowed"], true, "{patched}");
            assert_eq!(patched["enabled_capabilities"], "LDT");
        }
        let registered = world.register(&issued, "created-host").expect(201);
        assert_eq!(registered["id"], id.as_str(), "{create}: the same client");
        let active = admin_view(&id);
        assert_eq!(active["state"], "active");
        assert!(active["cert_not_after"].is_string(), "{active}");
        world.login(&issued, &id).expect(200);
        let listed = world
            .admin_call(
                "GET",
                "/api/v1/transparent-encryption/clients?name=created-host",
                None,
            )
            .expect(200);
        assert_eq!(listed["total"], 1, "{listed}");
        let te = &listed["resources"][0];
        assert_eq!(te["registration_allowed"], true);
        let administrators = if create.starts_with("ansible") {
            "Updated via Ansible"
        } else {
            "Temp host for testing."
        };
        assert_eq!(
            te["description"], administrators,
            "the administrator's description wins over the agent's"
        );
        // A second agent under that name is a conflict, as for any registered name.
        world
            .register(&world.issue("other.example"), "created-host")
            .expect_error(409, "NCERRConflict");
    }
}

/// Terraform's update sends `name`, `client_type` and `id` as `""` (unchanged) and gets the
/// client back with its `id`; a real change of name or type, an unknown type or profile, a
/// duplicate name and `del_client: true` are refused with the field named, changing nothing.
#[test]
fn te_client_updates_change_settings_and_refuse_what_cannot_change() {
    let world = World::new();
    let values = values(&world);
    let updated = replay(&world, "terraform_cte_client_update.json", &values);
    assert_eq!(updated["id"], values.client_id.as_str());
    assert_eq!(updated["description"], "Updated via Terraform");
    assert_eq!(updated["name"], "fixture-host");
    let path = format!(
        "/api/v1/transparent-encryption/clients/{}",
        values.client_id
    );
    let before = world.admin_call("GET", &path, None).expect(200);
    let refusals = [
        (serde_json::json!({"name": "renamed"}), "`name`"),
        (serde_json::json!({"client_type": "CTE-U"}), "`client_type`"),
        (
            serde_json::json!({"password_creation_method": "RANDOM"}),
            "`password_creation_method`",
        ),
        (
            serde_json::json!({"del_client": true, "description": "x"}),
            "`del_client`",
        ),
    ];
    for (body, field) in refusals {
        let refused = world
            .admin_call("PATCH", &path, Some(&body))
            .expect_error(400, "NCERRInvalidParamValue");
        assert!(
            refused["message"].as_str().unwrap().contains(field),
            "{refused}"
        );
    }
    world
        .admin_call(
            "PATCH",
            &path,
            Some(&serde_json::json!({"profile_id": "other-profile"})),
        )
        .expect_error(404, "NCERRResourceNotFound");
    assert_eq!(world.admin_call("GET", &path, None).expect(200), before);
    let create = |body: serde_json::Value| {
        world.admin_call(
            "POST",
            "/api/v1/transparent-encryption/clients",
            Some(&body),
        )
    };
    create(serde_json::json!({"name": "fixture-host"})).expect_error(409, "NCERRConflict");
    create(serde_json::json!({"name": "x", "client_type": "NFS"}))
        .expect_error(400, "NCERRInvalidParamValue");
    create(serde_json::json!({"description": "no name"}))
        .expect_error(400, "NCERRInvalidParamValue");
    let listed = world
        .admin_call("GET", "/api/v1/transparent-encryption/clients", None)
        .expect(200);
    assert_eq!(listed["total"], 1, "nothing was created: {listed}");
}
