//! Issue 22: an operator's flow, shaped as the public Ansible collection and Terraform provider
//! drive a manager (their request bodies, as the fixtures of
//! `crates/cm-emulator/tests/fixtures/public_clients/` copy them), with the real `register_host`
//! and `vmd` binaries against the real emulator over HTTPS: add the CA, trust it on the web
//! interface, restart, make a token, create the client beforehand, register, list, delete the
//! client the way both clients delete it, and the agent's next check reports the documented
//! refusal.
//!
//! The interface step first sends what the Ansible module sends with its defaults (`port: 443`,
//! `mode: no-tls-pw-opt`, ...): by the public evidence (docs/protocol.md, "Interfaces") CM
//! answers an unchanged port with 409, and the emulator refuses the `no-tls` modes it does not
//! implement, so that step is refused and changes nothing. The playbook then does what the
//! documentation tells an operator: leave out `port` and `mode`.

mod common;

use std::process::Command;
use std::time::SystemTime;

use common::{DAY, PASSPHRASE, issue, log, register_host_command, text};
use serde_json::json;
use test_pki::KeyType;
use test_support::{Manager, test_ca, test_ca_pem};

#[test]
fn a_playbook_shaped_flow_registers_lists_deletes_and_the_agent_reports_the_refusal() {
    let manager = Manager::start().unwrap();
    // Add the CA (the body XS's `external_ca_upload_command` sends).
    let ca_pem = test_ca_pem("ca-p384").unwrap();
    let ca = manager
        .call(
            "POST",
            "/api/v1/ca/external-cas",
            Some(json!({"cert": ca_pem, "name": "playbook-ca"})),
            201,
        )
        .unwrap();
    let ca_id = ca["id"].as_str().unwrap().to_owned();
    // Trust it on the web interface as Ansible's `interface_save` sends it with the module's
    // defaults and `port: 443` (the fixture `ansible_interface_trust_external.json`): refused
    // (409, the unchanged port), and the web interface is as it was.
    let before = manager
        .call("GET", "/api/v1/configs/interfaces/web", None, 200)
        .unwrap();
    let (status, refused) = manager
        .call_any(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(json!({"port": 443, "kmip_enable_hard_delete": 0,
                "minimum_tls_version": "tls_1_2", "mode": "no-tls-pw-opt",
                "trusted_cas": {"external": [ca_id], "local": null}})),
        )
        .unwrap();
    assert_eq!(status, 409, "{refused}");
    assert_eq!(
        manager
            .call("GET", "/api/v1/configs/interfaces/web", None, 200)
            .unwrap(),
        before
    );
    // Without `port` and `mode`; Ansible sends `"local": null` when only `external` is given.
    manager
        .call(
            "PATCH",
            "/api/v1/configs/interfaces/web",
            Some(json!({"trusted_cas": {"external": [ca_id], "local": null}})),
            200,
        )
        .unwrap();
    // Restart the services (Ansible's `cm_services` body).
    manager
        .call(
            "POST",
            "/api/v1/system/services/restart",
            Some(json!({"delay": 0, "services": ["nae-kmip", "web"]})),
            202,
        )
        .unwrap();
    // A registration token (Ansible's `cm_regtoken` body).
    let token = manager
        .call(
            "POST",
            "/api/v1/client-management/regtokens",
            Some(json!({"ca_id": ca_id, "cert_duration": 365,
                "label": {"ClientProfile": "DefaultClientProfile"}, "lifetime": "30d",
                "max_clients": 100, "name_prefix": "cte"})),
            201,
        )
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Create the client beforehand (Terraform's `ciphertrust_cte_client` Create body), so that
    // the agent's registration completes it.
    let created = manager
        .call(
            "POST",
            "/api/v1/transparent-encryption/clients",
            Some(
                json!({"id": "", "name": "playbook-host", "client_locked": false,
                "client_type": "FS", "communication_enabled": true,
                "description": "Temp host for testing.", "password_creation_method": "GENERATE",
                "profile_identifier": "", "registration_allowed": true, "system_locked": false,
                "del_client": false, "disable_capability": "", "enable_domain_sharing": false,
                "max_num_cache_log": 0, "max_space_cache_log": 0, "profile_id": "",
                "shared_domain_list": null, "labels": null}),
            ),
            201,
        )
        .unwrap();

    // Register with the real `register_host`.
    let set = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    issue(
        &test_ca("ca-p384").unwrap(),
        KeyType::P384,
        "playbook-host.example",
        now - DAY,
        now + 200 * DAY,
        set.path(),
    );
    let root = tempfile::tempdir().unwrap();
    let registered = register_host_command(
        &manager,
        &token,
        "playbook-host",
        set.path(),
        root.path(),
        &[],
    )
    .output()
    .unwrap();
    assert_eq!(registered.status.code(), Some(0), "{}", text(&registered));
    assert!(!text(&registered).contains(PASSPHRASE));

    // List the agents (Terraform's `ciphertrust_cte_clients` data source reads this view).
    let list = manager
        .call(
            "GET",
            "/api/v1/transparent-encryption/clients?name=playbook-host",
            None,
            200,
        )
        .unwrap();
    assert_eq!(list["total"], 1, "{list}");
    let id = list["resources"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        id,
        created["id"].as_str().unwrap(),
        "the created client was completed"
    );
    assert_eq!(
        list["resources"][0]["os_type"],
        cm_client::os_type(),
        "{list}"
    );
    let vmd = |root: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_vmd"))
            .arg("--agent-root")
            .arg(root)
            .arg("--once")
            .output()
            .unwrap()
    };
    let healthy = vmd(root.path());
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));

    // Delete as Terraform's Delete and Ansible's `delete_id` do.
    manager
        .call(
            "PATCH",
            &format!("/api/v1/transparent-encryption/clients/{id}/delete"),
            Some(json!({"del_client": true, "force_del_client": true})),
            200,
        )
        .unwrap();
    let refused = vmd(root.path());
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let log = log(root.path());
    assert!(log.contains("CGP3010C"), "{log}");
    // The documented refusal names what to do: register again.
    assert!(log.contains("register the host again"), "{log}");
}
