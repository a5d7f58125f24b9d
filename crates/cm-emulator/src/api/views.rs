//! The objects as the API shows them, as serde types: the documentation of the answers'
//! wire format (`docs/protocol.md` marks each field public, with its source, or invented).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::certs::CertificateFacts;
use crate::state::{ACCOUNT, Client, ClientRecord, ExternalCa, LocalCa, RegToken};
use crate::util::{rfc3339, rfc3339_micros};

fn to_value<T: Serialize>(view: &T) -> Value {
    // Plain structs of strings, numbers and maps always serialize.
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// `purpose` of a CA: `Enabled` or `Disabled` for each use.
#[derive(Serialize)]
struct Purpose {
    client_authentication: &'static str,
    user_authentication: &'static str,
}

fn enabled(on: bool) -> &'static str {
    if on { "Enabled" } else { "Disabled" }
}

/// The certificate fields CM shows for a CA (XS `mock_external_ca_list_response.json`):
/// decimal serial, OpenSSL-style names, RFC 3339 dates, upper-case fingerprints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CertificateView<'a> {
    serial_number: &'a str,
    subject: &'a str,
    issuer: &'a str,
    not_before: String,
    not_after: String,
    sha1_fingerprint: String,
    sha256_fingerprint: String,
    sha512_fingerprint: String,
}

impl<'a> CertificateView<'a> {
    fn of(facts: &'a CertificateFacts) -> Self {
        CertificateView {
            serial_number: &facts.serial_number,
            subject: &facts.subject,
            issuer: &facts.issuer,
            not_before: rfc3339(facts.not_before),
            not_after: rfc3339(facts.not_after),
            sha1_fingerprint: facts.sha1_fingerprint_upper(),
            sha256_fingerprint: facts.sha256_fingerprint_upper(),
            sha512_fingerprint: facts.sha512_fingerprint_upper(),
        }
    }
}

/// An external CA.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalCaView<'a> {
    id: &'a str,
    uri: String,
    account: &'static str,
    created_at: String,
    updated_at: String,
    name: &'a str,
    cert: &'a str,
    /// Only when one was given (CM shows no `parent: null`).
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    purpose: Purpose,
    #[serde(flatten)]
    certificate: CertificateView<'a>,
}

impl ExternalCa {
    /// The object as CM shows it.
    pub(crate) fn to_json(&self) -> Value {
        let record = &self.record;
        to_value(&ExternalCaView {
            id: &record.id,
            uri: self.uri(),
            account: ACCOUNT,
            created_at: rfc3339_micros(record.created_at),
            updated_at: rfc3339_micros(record.updated_at),
            name: &record.name,
            cert: &record.cert,
            parent: record.parent.as_deref(),
            purpose: Purpose {
                client_authentication: enabled(record.allow_client_authentication),
                user_authentication: enabled(record.allow_user_authentication),
            },
            certificate: CertificateView::of(&self.facts),
        })
    }
}

/// The local CA (TF-lca's `LocalCAsListModelJSON` plus the certificate fields).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LocalCaView<'a> {
    id: &'a str,
    uri: String,
    account: &'static str,
    created_at: String,
    updated_at: String,
    name: &'a str,
    state: &'static str,
    cert: String,
    purpose: Purpose,
    #[serde(flatten)]
    certificate: CertificateView<'a>,
}

impl LocalCa {
    /// The object as CM shows a local CA.
    pub(crate) fn to_json(&self) -> Value {
        to_value(&LocalCaView {
            id: &self.id,
            uri: self.uri(),
            account: ACCOUNT,
            created_at: rfc3339_micros(self.facts.not_before),
            updated_at: rfc3339_micros(self.facts.not_before),
            name: &self.name,
            state: "active",
            cert: self.facts.pem(),
            purpose: Purpose {
                client_authentication: enabled(true),
                user_authentication: enabled(true),
            },
            certificate: CertificateView::of(&self.facts),
        })
    }
}

/// A registration token (TF-reg, AN-reg read `id`, `token`, `ca_id`, `name_prefix`,
/// `max_clients`).
#[derive(Serialize)]
struct RegTokenView<'a> {
    id: &'a str,
    uri: String,
    account: &'static str,
    created_at: String,
    updated_at: String,
    token: &'a str,
    /// `None`: no expiry.
    valid_until: Option<String>,
    /// `None`: unlimited.
    max_clients: Option<u64>,
    clients_registered: u64,
    ca_id: &'a str,
    name_prefix: &'a str,
    lifetime: &'a str,
    cert_duration: u64,
    client_management_profile_id: Option<&'a str>,
    label: &'a Value,
    labels: &'a Value,
}

impl RegToken {
    /// The token as the API shows it.
    pub(crate) fn to_json(&self) -> Value {
        to_value(&RegTokenView {
            id: &self.id,
            uri: self.uri(),
            account: ACCOUNT,
            created_at: rfc3339_micros(self.created_at),
            updated_at: rfc3339_micros(self.updated_at),
            token: &self.token,
            valid_until: self.valid_until.map(rfc3339),
            max_clients: self.max_clients,
            clients_registered: self.clients_registered,
            ca_id: &self.ca_id,
            name_prefix: &self.name_prefix,
            lifetime: &self.lifetime,
            cert_duration: self.cert_duration,
            client_management_profile_id: self.client_management_profile_id.as_deref(),
            label: &self.label,
            labels: &self.labels,
        })
    }
}

/// `client_metadata` of a client.
#[derive(Serialize)]
struct ClientMetadata<'a> {
    client_type: &'a str,
}

/// A registered client (the agent reads `id`, `name`, `state`, `common_name`,
/// `cert_fingerprint`, `cert_not_after`, `previous_cert_fingerprint`).
#[derive(Serialize)]
struct ClientView<'a> {
    id: &'a str,
    uri: String,
    account: &'static str,
    name: &'a str,
    hostname: &'a str,
    description: &'a str,
    state: &'static str,
    client_metadata: ClientMetadata<'a>,
    common_name: &'a str,
    /// Lower-case hex SHA-256 (the agent's contract).
    cert_fingerprint: &'a str,
    /// `null` until an agent registers (a client created by an administrator).
    cert_not_after: Option<String>,
    previous_cert_fingerprint: Option<&'a str>,
    ca_id: &'a str,
    reg_token_id: &'a str,
    created_at: String,
    updated_at: String,
    last_seen: Option<String>,
}

impl Client {
    /// The client as the API shows it.
    pub(crate) fn to_json(&self) -> Value {
        to_value(&ClientView {
            id: &self.id,
            uri: self.uri(),
            account: ACCOUNT,
            name: &self.name,
            hostname: &self.name,
            description: &self.description,
            state: self.state(),
            client_metadata: ClientMetadata {
                client_type: &self.client_type,
            },
            common_name: &self.common_name,
            cert_fingerprint: &self.cert_fingerprint,
            cert_not_after: self.registered().then(|| rfc3339(self.cert_not_after)),
            previous_cert_fingerprint: self.previous_cert_fingerprint.as_deref(),
            ca_id: &self.ca_id,
            reg_token_id: &self.reg_token_id,
            created_at: rfc3339_micros(self.created_at),
            updated_at: rfc3339_micros(self.updated_at),
            last_seen: self.last_seen.map(rfc3339_micros),
        })
    }
}

/// An uploaded log record.
#[derive(Serialize)]
struct ClientRecordView<'a> {
    id: &'a str,
    uri: String,
    account: &'static str,
    client_id: &'a str,
    client_name: &'a str,
    created_at: String,
    time: &'a str,
    level: &'a str,
    component: &'a str,
    message_id: &'a str,
    message: &'a str,
}

impl ClientRecord {
    /// The record as the API shows it.
    pub(crate) fn to_json(&self) -> Value {
        to_value(&ClientRecordView {
            id: &self.id,
            uri: self.uri(),
            account: ACCOUNT,
            client_id: &self.client_id,
            client_name: &self.client_name,
            created_at: rfc3339_micros(self.created_at),
            time: &self.time,
            level: &self.level,
            component: &self.component,
            message_id: &self.message_id,
            message: &self.message,
        })
    }
}

/// An interface's `trusted_cas`.
#[derive(Serialize)]
pub(super) struct TrustedCasView<'a> {
    pub(super) external: &'a [String],
    pub(super) local: &'a [String],
}

/// The web interface (TF-if's `CMInterfaceJSON`).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) struct InterfaceView<'a> {
    pub(super) id: &'a str,
    pub(super) name: &'static str,
    pub(super) enabled: bool,
    pub(super) interface_type: &'static str,
    pub(super) mode: &'a str,
    pub(super) port: u16,
    pub(super) network_interface: &'static str,
    pub(super) cert_user_field: &'a str,
    pub(super) minimum_tls_version: &'a str,
    pub(super) maximum_tls_version: &'a str,
    pub(super) auto_gen_ca_id: String,
    pub(super) default_connection: &'static str,
    pub(super) trusted_cas: TrustedCasView<'a>,
    pub(super) tls_ciphers: Vec<Value>,
    pub(super) local_auto_gen_attributes: Value,
    /// The other fields kept as written (`allow_unregistered`, `meta`, ...), shown once set.
    #[serde(flatten)]
    pub(super) kept: serde_json::Map<String, Value>,
    #[serde(rename = "createdAt")]
    pub(super) created_at: String,
    #[serde(rename = "updatedAt")]
    pub(super) updated_at: String,
}

impl InterfaceView<'_> {
    pub(super) fn to_json(&self) -> Value {
        to_value(self)
    }
}

/// An agent in the transparent-encryption view (TF-cte's `CTEClientsListJSON`; what the
/// emulator does not know is empty, false or a fixed value).
#[derive(Serialize)]
pub(super) struct TeClientView<'a> {
    pub(super) id: &'a str,
    pub(super) uri: String,
    pub(super) account: &'static str,
    pub(super) application: &'static str,
    #[serde(rename = "devAccount")]
    pub(super) dev_account: &'static str,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) name: &'a str,
    pub(super) os_type: &'a str,
    pub(super) os_sub_type: &'static str,
    pub(super) client_reg_id: &'a str,
    pub(super) server_host_name: &'static str,
    pub(super) description: &'a str,
    pub(super) client_locked: bool,
    pub(super) system_locked: bool,
    pub(super) password_creation_method: &'a str,
    pub(super) client_version: &'a str,
    pub(super) registration_allowed: bool,
    pub(super) communication_enabled: bool,
    pub(super) capabilities: &'static str,
    pub(super) enabled_capabilities: &'a str,
    pub(super) protection_mode: &'a str,
    pub(super) client_type: &'a str,
    pub(super) profile_name: &'static str,
    pub(super) profile_id: &'static str,
    pub(super) ldt_enabled: bool,
    /// `HEALTHY`, `ERROR` or `UNKNOWN` (from the heartbeats).
    pub(super) client_health_status: &'static str,
    pub(super) errors: &'static str,
    pub(super) warnings: &'static str,
    pub(super) client_errors: &'static str,
    pub(super) client_warnings: &'static str,
    pub(super) fam_enabled: bool,
    pub(super) fam_state: &'static str,
    pub(super) dps_enabled: bool,
    pub(super) client_mfa_enabled: bool,
    pub(super) del_client: bool,
    pub(super) enable_domain_sharing: bool,
    pub(super) max_num_cache_log: u64,
    pub(super) max_space_cache_log: u64,
    pub(super) labels: &'a Map<String, Value>,
    /// Invented: the current certificate's SHA-256 (lower-case hex).
    pub(super) sha256_fingerprint: &'a str,
}

impl TeClientView<'_> {
    pub(super) fn to_json(&self) -> Value {
        to_value(self)
    }
}
