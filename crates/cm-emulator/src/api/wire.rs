//! The request bodies the emulator reads, as serde types: the documentation of the wire format
//! (`docs/protocol.md` marks each field public, with its source, or invented).
//!
//! Every field a public client sends may be present; unknown fields are ignored, `null` counts
//! as absent. Decoding errors name the field by its path (`records[0].level`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ApiError;

/// `POST /v1/auth/tokens` (password, refresh-token and client-credential grants).
///
/// Thales's Terraform provider (`internal/provider/common/client.go`, `AuthStruct`) sends
/// `username`, `password`, `auth_domain`, `auth_domain_path`, `domain`, `grant_type`,
/// `refresh_token`, `renew_refresh_token`; CM's API also takes `connection`, `labels`,
/// `cookies` and `refresh_token_lifetime`. The emulator has one domain and one user: those
/// are accepted and otherwise ignored.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginRequest {
    /// `password` (the default when absent), `refresh_token` or `client_credential`.
    pub(crate) grant_type: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) refresh_token: Option<String>,
    /// For `client_credential`: the registered client's id.
    pub(crate) client_id: Option<String>,
    pub(crate) renew_refresh_token: Option<bool>,
    pub(crate) refresh_token_lifetime: Option<u64>,
    pub(crate) auth_domain: Option<String>,
    /// CDSPaaS tenants only: accepted and ignored.
    #[allow(dead_code)]
    pub(crate) auth_domain_path: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) connection: Option<String>,
    /// Accepted and ignored.
    #[allow(dead_code)]
    pub(crate) labels: Option<Vec<String>>,
    pub(crate) cookies: Option<bool>,
}

impl LoginRequest {
    /// From an `application/x-www-form-urlencoded` body.
    pub(crate) fn from_form(body: &[u8]) -> Result<Self, ApiError> {
        let mut request = LoginRequest::default();
        for (key, value) in form_urlencoded::parse(body) {
            let value = value.into_owned();
            let flag = |value: &str| match value {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(ApiError::bad_request(format!(
                    "field `{key}`: expected true or false, found {value:?}"
                ))),
            };
            match key.as_ref() {
                "grant_type" => request.grant_type = Some(value),
                "username" => request.username = Some(value),
                "password" => request.password = Some(value),
                "refresh_token" => request.refresh_token = Some(value),
                "client_id" => request.client_id = Some(value),
                "renew_refresh_token" => request.renew_refresh_token = Some(flag(&value)?),
                "cookies" => request.cookies = Some(flag(&value)?),
                "refresh_token_lifetime" => {
                    request.refresh_token_lifetime = Some(value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "field `refresh_token_lifetime`: expected a non-negative integer, found {value:?}"
                        ))
                    })?);
                }
                "auth_domain" => request.auth_domain = Some(value),
                "domain" => request.domain = Some(value),
                "connection" => request.connection = Some(value),
                _ => {}
            }
        }
        Ok(request)
    }
}

/// `POST /v1/auth/tokens` answer.
#[derive(Debug, Serialize)]
pub(crate) struct LoginResponse {
    pub(crate) jwt: String,
    pub(crate) duration: i64,
    pub(crate) token_type: &'static str,
    pub(crate) client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token_id: Option<String>,
}

/// `POST /v1/ca/external-cas`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateExternalCa {
    pub(crate) cert: String,
    pub(crate) name: Option<String>,
    pub(crate) parent: Option<String>,
    pub(crate) allow_client_authentication: Option<bool>,
    pub(crate) allow_user_authentication: Option<bool>,
}

/// `PATCH /v1/ca/external-cas/{id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchExternalCa {
    pub(crate) allow_client_authentication: Option<bool>,
    pub(crate) allow_user_authentication: Option<bool>,
}

/// `trusted_cas` of an interface: names, ids or URIs of CAs. A list left out is unchanged; a
/// list sent as `null` is empty, as CM (a Go server) decodes it: the Ansible collection 1.0.2
/// sends `"local": null` whenever a playbook gives only `external` (AnsibleModule fills an
/// unspecified suboption of `trusted_cas` with `None`, and the module drops only top-level
/// `None`s), and Terraform's provider did so for an empty local list
/// (`internal/provider/cm/resource_interface.go`, version `1021e061`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct TrustedCasRequest {
    #[serde(default, deserialize_with = "present")]
    pub(crate) external: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) local: Option<Option<Vec<String>>>,
}

/// `POST /v1/trusted-cas` (CM 2.18 and later; Terraform's `CMTrustedCAJSON` in
/// `internal/provider/cm/resource_trusted_cas.go`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TrustedCaEntryRequest {
    pub(crate) ca_id: String,
    pub(crate) service: String,
    /// `local` or `external`; the emulator finds out from `ca_id`.
    #[allow(dead_code)]
    pub(crate) ca_type: Option<String>,
}

/// `POST /v1/trusted-cas-create-many` (Terraform's `CMTrustedCABulkJSON`).
#[derive(Debug, Deserialize)]
pub(crate) struct TrustedCasBulkRequest {
    pub(crate) trusted_cas: Vec<TrustedCaEntryRequest>,
    /// The emulator applies the change at once whatever this says.
    #[allow(dead_code)]
    pub(crate) auto_restart: Option<bool>,
}

/// `PATCH /v1/configs/interfaces/web` (fields of Terraform's `CMInterfaceJSON` the emulator
/// keeps; the others are accepted and ignored). `""` resets a text field to its default, as
/// Terraform's `resource_interface.go` sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchInterface {
    pub(crate) port: Option<u64>,
    /// Absent: unchanged; `null`: both lists emptied (Terraform's "explicitly empty").
    #[serde(default, deserialize_with = "present")]
    pub(crate) trusted_cas: Option<Option<TrustedCasRequest>>,
    pub(crate) mode: Option<String>,
    pub(crate) minimum_tls_version: Option<String>,
    pub(crate) maximum_tls_version: Option<String>,
    pub(crate) cert_user_field: Option<String>,
    /// Enabled flags of the emulator's cipher suites (every member, none added or removed);
    /// `[]` resets to the defaults (Terraform's newest `resource_interface.go` sends it so).
    pub(crate) tls_ciphers: Option<Vec<TlsCipherRequest>>,
    // Kept as written and shown back (the fields Terraform's `resource_interface.go` reads
    // when they are configured); the emulator's web interface does nothing with them.
    pub(crate) allow_unregistered: Option<bool>,
    pub(crate) auto_registration: Option<bool>,
    pub(crate) kmip_enable_hard_delete: Option<u8>,
    pub(crate) meta: Option<Map<String, Value>>,
    pub(crate) custom_uid_size: Option<u64>,
    pub(crate) custom_uid_v2: Option<bool>,
    pub(crate) auto_gen_days_before_expiry: Option<u64>,
    pub(crate) local_auto_gen_attributes: Option<Map<String, Value>>,
}

/// One member of an interface's `tls_ciphers` (Terraform's `resource_interface.go`:
/// `cipher_suite`, `enabled`, `hex_code`).
#[derive(Debug, Deserialize)]
pub(crate) struct TlsCipherRequest {
    pub(crate) cipher_suite: String,
    pub(crate) enabled: bool,
    /// Accepted; the name identifies the suite.
    #[allow(dead_code)]
    pub(crate) hex_code: Option<String>,
}

/// `POST /v1/system/services/restart` (Thales's Ansible collection, `cm_services.py`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RestartRequest {
    /// Absent: every service.
    pub(crate) services: Option<Vec<String>>,
    /// Seconds; absent: 5.
    pub(crate) delay: Option<u64>,
}

/// `POST` and `PATCH /v1/client-management/regtokens` (Terraform's `CMRegTokenJSON`, which
/// sends every field, empty ones as `""`, `0` or `{}`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegTokenRequest {
    /// Id, name or URI of an external or the local CA; absent or `""`: the local CA.
    pub(crate) ca_id: Option<String>,
    /// Days; absent or 0: 730.
    pub(crate) cert_duration: Option<u64>,
    pub(crate) client_management_profile_id: Option<String>,
    pub(crate) label: Option<Map<String, Value>>,
    pub(crate) labels: Option<Map<String, Value>>,
    /// `<n>m|h|d`; absent or `""`: no expiry.
    pub(crate) lifetime: Option<String>,
    /// Absent or 0: unlimited.
    pub(crate) max_clients: Option<u64>,
    pub(crate) name_prefix: Option<String>,
}

/// `POST /v1/client-management/clients/` (the agent's registration).
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterRequest {
    pub(crate) reg_token: String,
    pub(crate) cert: String,
    pub(crate) name: String,
    pub(crate) client_type: Option<String>,
    pub(crate) description: Option<String>,
    /// The host's OS as CM's `os_type` names it (`LINUX`, `WINDOWS`, `UNKNOWN`), and the agent's
    /// version: sent by this project's `register_host` (field names invented for the
    /// registration body; the values are those of CM's transparent-encryption view).
    pub(crate) os_type: Option<String>,
    pub(crate) client_version: Option<String>,
}

/// `PATCH /v1/usermgmt/pwdpolicies/{name}` (Terraform's `ciphertrust_password_policy`,
/// `internal/provider/cm/resource_password_policy.go`): the lockout durations in minutes; the
/// other fields it sends (`inclusive_min_total_length`, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
pub(crate) struct PatchPasswordPolicy {
    pub(crate) failed_logins_lockout_thresholds: Option<Vec<u64>>,
}

/// `POST` and `PATCH /v1/transparent-encryption/clients[/{id}]`: the fields of Terraform's
/// `CTEClientJSON` (`internal/provider/cte/schema_cte.go`, sent whole by
/// `resource_cte_client.go` Create and Update, `""`/`0`/`false`/`null` included) and of the
/// Ansible collection's `createClient`/`patchClient` (`plugins/module_utils/cte.py`, 1.0.2,
/// which leave out what the playbook did not give). What the emulator does with each is in
/// `docs/protocol.md`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TeClientRequest {
    /// Create: required. Update: Terraform sends `""`; a different name is refused.
    pub(crate) name: Option<String>,
    /// `FS` (the default) or `CTE-U`. Update: Terraform sends `""`; a change is refused.
    pub(crate) client_type: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) communication_enabled: Option<bool>,
    pub(crate) registration_allowed: Option<bool>,
    pub(crate) client_locked: Option<bool>,
    pub(crate) system_locked: Option<bool>,
    pub(crate) client_mfa_enabled: Option<bool>,
    pub(crate) enable_domain_sharing: Option<bool>,
    /// `GENERATE` or `MANUAL`.
    pub(crate) password_creation_method: Option<String>,
    /// Accepted and never kept nor shown (the emulator has no agent password).
    #[allow(dead_code)]
    pub(crate) password: Option<String>,
    /// Create: the profile's name or id (`""`: the default profile).
    pub(crate) profile_identifier: Option<String>,
    /// Update: the profile's id (`""`: unchanged).
    pub(crate) profile_id: Option<String>,
    pub(crate) enabled_capabilities: Option<String>,
    pub(crate) max_num_cache_log: Option<u64>,
    pub(crate) max_space_cache_log: Option<u64>,
    pub(crate) labels: Option<Map<String, Value>>,
    pub(crate) protection_mode: Option<String>,
    /// `true` is refused: deletion is `PATCH .../{id}/delete`.
    pub(crate) del_client: Option<bool>,
    // Accepted and ignored (the emulator has no capabilities, domains or dynamic parameters):
    // `id` (Terraform sends `""`), `disable_capability`, `shared_domain_list`,
    // `dynamic_parameters`, `lgcs_access_only`.
}

/// `POST /v1/client-management/self/client/renew`.
#[derive(Debug, Deserialize)]
pub(crate) struct RenewRequest {
    pub(crate) ext_cert: String,
}

/// `PATCH /v1/transparent-encryption/clients/{id}/delete`: Terraform's `DelClientJSON`
/// (`internal/provider/cte/schema_cte.go`, sent by `resource_cte_client.go` Delete) and the
/// Ansible collection's `deleteClientById` (`plugins/module_utils/cte.py`, 1.0.2) both send
/// `{"del_client": true, "force_del_client": true}`; Ansible leaves out a field it was not given.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeleteTeClientRequest {
    pub(crate) del_client: Option<bool>,
    /// Accepted; the emulator removes the client at once either way (invented: how CM handles
    /// an unforced delete is not public).
    #[allow(dead_code)]
    pub(crate) force_del_client: Option<bool>,
}

/// `PATCH /v1/transparent-encryption/clients/delete`: the Ansible collection's `deleteClients`
/// (`plugins/module_utils/cte.py`, 1.0.2) sends `client_id_list`, each "the name, ID, URI, or
/// slug" of a client.
#[derive(Debug, Deserialize)]
pub(crate) struct DeleteTeClientsRequest {
    pub(crate) client_id_list: Vec<String>,
}

/// `POST /v1/audit/client-records`.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordsUpload {
    pub(crate) records: Vec<RecordIn>,
}

/// One uploaded log record.
#[derive(Debug, Deserialize)]
pub(crate) struct RecordIn {
    pub(crate) time: String,
    pub(crate) level: String,
    pub(crate) component: String,
    pub(crate) message_id: Option<String>,
    pub(crate) message: String,
}

/// For `Option<Option<T>>` fields: `Some(None)` when the field is `null`, `None` when absent.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The body as a JSON object. A JSON string holding a JSON object is unwrapped: Thales's
/// Ansible collection (`plugins/module_utils/cm_api.py`, `getJwt`) sent its login body encoded
/// twice between commits `145d284` and `5ddc328` (July 2023; 1.0.2 sends plain JSON).
pub(crate) fn body_value(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body: expected a JSON object, found an empty body",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| ApiError::bad_request(format!("malformed JSON: {error}")))?;
    let value = match value {
        Value::String(text) => match serde_json::from_str::<Value>(&text) {
            Ok(inner @ Value::Object(_)) => inner,
            _ => Value::String(text),
        },
        other => other,
    };
    match value {
        Value::Object(_) => Ok(value),
        other => Err(ApiError::bad_request(format!(
            "request body: expected a JSON object, found {}",
            json_kind(&other)
        ))),
    }
}

/// Decodes a JSON body into `T`; the error names the field by its path.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    from_value(body_value(bytes)?)
}

/// Decodes a JSON object into `T`; the error names the field by its path.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let message = match inner.strip_prefix("missing field `") {
            Some(rest) if path != "." => format!("missing field `{path}.{rest}"),
            Some(_) => inner,
            None if path == "." => format!("request body: {inner}"),
            None => format!("field `{path}`: {inner}"),
        };
        ApiError::bad_request(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let error = parse::<RegisterRequest>(br#"{"reg_token": 5}"#).unwrap_err();
        assert!(error.message.contains("`reg_token`"), "{}", error.message);
        let error = parse::<RenewRequest>(b"{}").unwrap_err();
        assert!(error.message.contains("`ext_cert`"), "{}", error.message);
        let error =
            parse::<RecordsUpload>(br#"{"records":[{"time":"t","component":"c","message":"m"}]}"#)
                .unwrap_err();
        assert!(
            error.message.contains("records[0].level"),
            "{}",
            error.message
        );
        let error = parse::<PatchInterface>(br#"{"trusted_cas":{"external":[5]}}"#).unwrap_err();
        assert!(
            error.message.contains("trusted_cas.external[0]"),
            "{}",
            error.message
        );
        assert!(parse::<RestartRequest>(b"[1]").is_err());
        assert!(parse::<RestartRequest>(b"").is_err());
        assert_eq!(
            parse::<RestartRequest>(br#"{"a": }"#).unwrap_err().status,
            400
        );
    }

    #[test]
    fn a_body_encoded_twice_is_unwrapped() {
        let body = serde_json::to_vec(&Value::String(
            r#"{"grant_type":"password","username":"admin","password":"p"}"#.to_owned(),
        ))
        .unwrap();
        let login: LoginRequest = parse(&body).unwrap();
        assert_eq!(login.username.as_deref(), Some("admin"));
    }

    #[test]
    fn form_login() {
        let login =
            LoginRequest::from_form(b"username=admin&password=a%26b+c&renew_refresh_token=true")
                .unwrap();
        assert_eq!(login.password.as_deref(), Some("a&b c"));
        assert_eq!(login.renew_refresh_token, Some(true));
        assert!(login.grant_type.is_none());
    }
}
