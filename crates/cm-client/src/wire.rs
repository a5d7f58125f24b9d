//! The JSON bodies of docs/protocol.md, as serde types.

use serde::{Deserialize, Serialize};

/// `POST /v1/client-management/clients/` body. `Debug` does not show the token, and the token is
/// zeroized on drop.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The registration token. Secret: never logged.
    pub reg_token: String,
    /// The certificate chain, PEM, leaf first.
    pub cert: String,
    /// Always `CTE` for this agent.
    pub client_type: String,
    /// The host name the client registers under.
    pub name: String,
    /// Free text shown on the manager.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The host's operating system as CM names it (`LINUX`, `WINDOWS`, `UNKNOWN`: the values
    /// of CM's `os_type`); see [`os_type`]. Not sent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os_type: String,
    /// The agent's version, shown on the manager as `client_version`. Not sent when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_version: String,
}

/// This host's operating system as CM's `os_type` names it.
pub fn os_type() -> &'static str {
    if cfg!(target_os = "linux") {
        "LINUX"
    } else if cfg!(windows) {
        "WINDOWS"
    } else {
        "UNKNOWN"
    }
}

impl std::fmt::Debug for RegisterRequest {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegisterRequest")
            .field("reg_token", &"..")
            .field("cert_len", &self.cert.len())
            .field("client_type", &self.client_type)
            .field("name", &self.name)
            .field("description", &self.description)
            .field("os_type", &self.os_type)
            .field("client_version", &self.client_version)
            .finish()
    }
}

impl Drop for RegisterRequest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.reg_token);
    }
}

/// A registered client as the manager describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client's id (a UUID on the manager).
    pub id: String,
    /// The client's name.
    #[serde(default)]
    pub name: String,
    /// `active` when registered.
    #[serde(default)]
    pub state: String,
    /// The subject common name of the client's current certificate.
    #[serde(default)]
    pub common_name: String,
    /// SHA-256 of the current certificate, lower-case hex.
    #[serde(default)]
    pub cert_fingerprint: String,
    /// End of validity of the current certificate, RFC 3339.
    #[serde(default)]
    pub cert_not_after: String,
    /// After a renewal: the fingerprint of the certificate it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_cert_fingerprint: Option<String>,
}

impl ClientRecord {
    /// Checks what the agent stores or prints: the id is 1 to 128 characters of letters, digits
    /// and `.` `_` `:` `-` (a UUID fits); names carry no control characters and are at most 255
    /// characters; the fingerprint is hex (colons allowed); the date has the RFC 3339 alphabet.
    /// Returns the field and what is wrong.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 128
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
        if !id_ok {
            return Some((
                "id",
                "expected 1 to 128 letters, digits, '.', '_', ':' or '-' (a UUID)".to_string(),
            ));
        }
        for (field, value) in [
            ("name", &self.name),
            ("state", &self.state),
            ("common_name", &self.common_name),
        ] {
            if value.chars().count() > 255 || value.chars().any(char::is_control) {
                return Some((
                    field,
                    "expected at most 255 characters without control characters".to_string(),
                ));
            }
        }
        let fingerprint_ok = self.cert_fingerprint.len() <= 95
            && self
                .cert_fingerprint
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':');
        if !fingerprint_ok {
            return Some(("cert_fingerprint", "expected hexadecimal".to_string()));
        }
        let date_ok = self.cert_not_after.len() <= 40
            && self
                .cert_not_after
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, 'T' | 'Z' | ':' | '.' | '+' | '-'));
        if !date_ok {
            return Some(("cert_not_after", "expected an RFC 3339 time".to_string()));
        }
        None
    }
}

/// `POST /v1/auth/tokens/` body for the client-certificate grant.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ClientCredentialRequest {
    pub(crate) grant_type: String,
    pub(crate) client_id: String,
}

/// `POST /v1/auth/tokens/` response.
#[derive(Clone, Deserialize)]
pub(crate) struct TokenResponse {
    pub(crate) jwt: String,
    #[serde(default)]
    pub(crate) duration: u64,
}

/// `POST /v1/client-management/self/client/renew` body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct RenewRequest {
    pub(crate) ext_cert: String,
}

/// One agent log record for `POST /v1/audit/client-records`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogRecord {
    /// RFC 3339 time of the event.
    pub time: String,
    /// `INFO`, `WARNING`, `ERROR` or `CRITICAL`.
    pub level: String,
    /// The component, e.g. `VMD`.
    pub component: String,
    /// The product-style message id, e.g. `CGP3001W`.
    pub message_id: String,
    /// The text.
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct LogUpload {
    pub(crate) records: Vec<LogRecord>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct LogUploadResponse {
    pub(crate) accepted: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct FingerprintResponse {
    pub(crate) fingerprint: String,
}

/// The manager's error body: `{"code","codeDesc","message","requestID"}`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub(crate) code: i64,
    #[serde(rename = "codeDesc")]
    pub(crate) code_desc: String,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(rename = "requestID", default)]
    pub(crate) request_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_decodes_the_public_shape() {
        let body: ErrorBody = serde_json::from_str(
            r#"{"code": 5, "codeDesc": "NCERRUnauthorizedAccess", "message": "Invalid Client", "requestID": "a1"}"#,
        )
        .unwrap();
        assert_eq!(body.code, 5);
        assert_eq!(body.code_desc, "NCERRUnauthorizedAccess");
        assert_eq!(body.message, "Invalid Client");
        assert_eq!(body.request_id, "a1");
    }

    #[test]
    fn register_request_has_the_documented_field_names() {
        let request = RegisterRequest {
            reg_token: "T".into(),
            cert: "PEM".into(),
            client_type: "CTE".into(),
            name: "host1".into(),
            description: String::new(),
            os_type: String::new(),
            client_version: String::new(),
        };
        assert_eq!(
            serde_json::to_string(&request).unwrap(),
            r#"{"reg_token":"T","cert":"PEM","client_type":"CTE","name":"host1"}"#
        );
    }

    #[test]
    fn client_record_ignores_unknown_fields_and_fills_defaults() {
        let record: ClientRecord = serde_json::from_str(
            r#"{"id":"u1","name":"h","state":"active","client_metadata":{"client_type":"CTE"},"cert_fingerprint":"ab","cert_not_after":"2036-01-01T00:00:00Z","common_name":"h.example","created_at":"x"}"#,
        )
        .unwrap();
        assert_eq!(record.id, "u1");
        assert_eq!(record.common_name, "h.example");
        assert_eq!(record.previous_cert_fingerprint, None);
    }

    #[test]
    fn token_response_and_log_upload() {
        let token: TokenResponse = serde_json::from_str(
            r#"{"jwt":"abc","duration":300,"token_type":"Bearer","client_id":"u1"}"#,
        )
        .unwrap();
        assert_eq!(token.jwt, "abc");
        assert_eq!(token.duration, 300);
        let upload = LogUpload {
            records: vec![LogRecord {
                time: "2026-11-28T04:21:47Z".into(),
                level: "WARNING".into(),
                component: "VMD".into(),
                message_id: "CGP3001W".into(),
                message: "m".into(),
            }],
        };
        assert_eq!(
            serde_json::to_string(&upload).unwrap(),
            r#"{"records":[{"time":"2026-11-28T04:21:47Z","level":"WARNING","component":"VMD","message_id":"CGP3001W","message":"m"}]}"#
        );
    }
}
