//! `--retire-old-certificate`: which certificate logs in after a self renewal, in each mode.

use std::time::Duration;

use cm_emulator::RetireOldCertificate;
use test_pki::IssuedCertificate;

use crate::support::{World, sha256_hex};

const STATUS: &str = "/api/v1/client-management/self/client";
const DAY: Duration = Duration::from_secs(86_400);

/// A registered client ("host1") renewed from a 30-day to a 90-day certificate with a bearer
/// the old certificate obtained. Checks what every mode shares: the renewal is answered 200,
/// a repeated renewal too (with the same, old-certificate bearer), and that bearer keeps
/// working for its 300 seconds.
struct Renewed {
    world: World,
    id: String,
    old: IssuedCertificate,
    old_bearer: String,
    new: IssuedCertificate,
}

fn renewed(when: RetireOldCertificate) -> Renewed {
    let world = World::retiring(when);
    let old = world.issue_valid_for("host1.example", 30);
    let id = world.registered(&old, "host1");
    let old_bearer = world.client_bearer(&old, &id);
    let new = world.issue_valid_for("host1.example", 90);

    let renewed = world.renew(&new, &old_bearer, &new).expect(200);
    assert_eq!(
        renewed["cert_fingerprint"],
        sha256_hex(new.certificate_der())
    );
    assert_eq!(
        renewed["previous_cert_fingerprint"],
        sha256_hex(old.certificate_der())
    );
    // The agent lost the answer and asks again, with the bearer of the old certificate.
    let retry = world.renew(&new, &old_bearer, &new).expect(200);
    assert_eq!(retry["cert_fingerprint"], renewed["cert_fingerprint"]);
    // Sessions stay valid whatever the mode, over the certificate they were issued for:
    // a bearer is bound to its certificate on the `self` endpoints (renewal excepted).
    world
        .presenting(&old)
        .call("GET", STATUS, Some(&old_bearer), None)
        .expect(200);
    world
        .presenting(&new)
        .call("GET", STATUS, Some(&old_bearer), None)
        .expect_error(401, "NCERRUnauthorizedAccess");
    Renewed {
        world,
        id,
        old,
        old_bearer,
        new,
    }
}

impl Renewed {
    #[track_caller]
    fn old_logs_in(&self) {
        self.world.login(&self.old, &self.id).expect(200);
    }

    #[track_caller]
    fn old_is_refused(&self) {
        self.world
            .login(&self.old, &self.id)
            .expect_error(401, "NCERRUnauthorizedAccess");
    }

    #[track_caller]
    fn new_logs_in(&self) {
        self.world.login(&self.new, &self.id).expect(200);
    }

    fn advance(&self, by: Duration) {
        self.world.clock.advance(by);
    }
}

#[test]
fn on_renew_retires_the_old_certificate_at_the_renewal() {
    let client = renewed(RetireOldCertificate::OnRenew);
    // Right after the renewal, before the new certificate has logged in.
    client.old_is_refused();
    // After the new certificate's first login.
    client.new_logs_in();
    client.old_is_refused();
    client.new_logs_in();
    // The bearer the retired certificate obtained before the renewal still answers a repeat
    // of that renewal (checked in `renewed`), but cannot renew to yet another certificate.
    let world = &client.world;
    let third = world.issue_valid_for("host1.example", 120);
    world
        .renew(&third, &client.old_bearer, &third)
        .expect_error(401, "NCERRUnauthorizedAccess");
    let bearer = world.client_bearer(&client.new, &client.id);
    world.renew(&third, &bearer, &third).expect(200);
    // Now the second certificate is the retired one; its bearer still gets the repeat.
    world.renew(&third, &bearer, &third).expect(200);
    world
        .login(&client.new, &client.id)
        .expect_error(401, "NCERRUnauthorizedAccess");
    world.login(&third, &client.id).expect(200);
}

#[test]
fn on_first_login_retires_the_old_certificate_when_the_new_one_logs_in() {
    let client = renewed(RetireOldCertificate::OnFirstLogin);
    // Right after the renewal: both log in (a host that crashed mid-switch is not locked out).
    client.old_logs_in();
    client.old_logs_in();
    // After the new certificate's first login: only the new one.
    client.new_logs_in();
    client.old_is_refused();
    client.new_logs_in();
    // Past the old certificate's notAfter nothing changes.
    client.advance(31 * DAY);
    client.old_is_refused();
    client.new_logs_in();
}

#[test]
fn at_expiry_keeps_the_old_certificate_until_its_not_after() {
    let client = renewed(RetireOldCertificate::AtExpiry);
    // Right after the renewal.
    client.old_logs_in();
    // After the new certificate's first login, the old one still logs in...
    client.new_logs_in();
    client.old_logs_in();
    client.new_logs_in();
    // ...a day before its notAfter (issued for 30 days) too...
    client.advance(29 * DAY);
    client.old_logs_in();
    // ...and no longer once the emulator's clock is past it.
    client.advance(2 * DAY);
    client.old_is_refused();
    client.new_logs_in();
}

#[test]
fn at_expiry_keeps_the_old_certificate_across_a_restart() {
    let client = renewed(RetireOldCertificate::AtExpiry);
    client.new_logs_in();
    let Renewed { world, id, old, .. } = client;
    let dir = world.dir;
    drop(world.emulator);
    let emulator = crate::support::start_retiring(
        dir.path(),
        world.clock.clone(),
        RetireOldCertificate::AtExpiry,
    );
    let login = serde_json::json!({"grant_type": "client_credential", "client_id": id});
    crate::support::Http::presenting(&emulator, &old)
        .call("POST", "/api/v1/auth/tokens/", None, Some(&login))
        .expect(200);
}

#[test]
fn the_setting_has_three_spellings_and_defaults_to_on_first_login() {
    for (text, mode) in [
        ("on-renew", RetireOldCertificate::OnRenew),
        ("on-first-login", RetireOldCertificate::OnFirstLogin),
        ("at-expiry", RetireOldCertificate::AtExpiry),
    ] {
        assert_eq!(text.parse::<RetireOldCertificate>().unwrap(), mode);
        assert_eq!(mode.to_string(), text);
    }
    let error = "never".parse::<RetireOldCertificate>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "\"never\" is not one of on-renew, on-first-login, at-expiry"
    );
    assert_eq!(
        RetireOldCertificate::default(),
        RetireOldCertificate::OnFirstLogin
    );
    assert_eq!(
        cm_emulator::EmulatorConfig::new("/nonexistent").retire_old_certificate,
        RetireOldCertificate::OnFirstLogin
    );
}
