//! The manager's objects, how they are persisted, and how they are shown as JSON.

use std::collections::HashMap;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;
use crate::certs::{CertificateFacts, parse_pem_chain};
use crate::store::Store;
use crate::util::rfc3339;

/// The account every object belongs to (CM's default account).
pub(crate) const ACCOUNT: &str = "kylo:kylo:admin:accounts:kylo";

pub(crate) const EXTERNAL_CAS: &str = "external-cas";
pub(crate) const REGTOKENS: &str = "regtokens";
pub(crate) const CLIENTS: &str = "clients";
pub(crate) const CLIENT_RECORDS: &str = "client-records";
const WEB_INTERFACE: &str = "web-interface";

/// An external CA as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExternalCaRecord {
    pub(crate) sequence: u64,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) cert: String,
    pub(crate) parent: Option<String>,
    pub(crate) allow_client_authentication: bool,
    pub(crate) allow_user_authentication: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// An external CA in memory: the record plus its parsed certificate.
#[derive(Debug, Clone)]
pub(crate) struct ExternalCa {
    pub(crate) record: ExternalCaRecord,
    pub(crate) facts: CertificateFacts,
}

impl ExternalCa {
    pub(crate) fn from_record(record: ExternalCaRecord) -> Result<Self, String> {
        let chain = parse_pem_chain(&record.cert)?;
        let facts = CertificateFacts::parse(chain.into_iter().next().ok_or("no certificate")?)?;
        Ok(ExternalCa { record, facts })
    }

    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:naboo:external_ca:{}", self.record.id)
    }

    pub(crate) fn to_json(&self) -> Value {
        let enabled = |on: bool| if on { "Enabled" } else { "Disabled" };
        let record = &self.record;
        json!({
            "id": record.id,
            "uri": self.uri(),
            "account": ACCOUNT,
            "createdAt": rfc3339(record.created_at),
            "updatedAt": rfc3339(record.updated_at),
            "name": record.name,
            "cert": record.cert,
            "parent": record.parent,
            "purpose": {
                "client_authentication": enabled(record.allow_client_authentication),
                "user_authentication": enabled(record.allow_user_authentication),
            },
            "serialNumber": self.facts.serial_number,
            "subject": self.facts.subject,
            "issuer": self.facts.issuer,
            "notBefore": rfc3339(self.facts.not_before),
            "notAfter": rfc3339(self.facts.not_after),
            "sha1Fingerprint": self.facts.sha1_fingerprint(),
            "sha256Fingerprint": self.facts.sha256_fingerprint(),
            "sha512Fingerprint": self.facts.sha512_fingerprint(),
        })
    }

    /// Whether `reference` names this CA by id, name or URI.
    pub(crate) fn is_named(&self, reference: &str) -> bool {
        self.record.id == reference || self.record.name == reference || self.uri() == reference
    }
}

/// A registration token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RegToken {
    pub(crate) sequence: u64,
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) ca_id: String,
    pub(crate) cert_duration: u64,
    pub(crate) client_management_profile_id: Option<String>,
    pub(crate) lifetime: String,
    pub(crate) valid_until: Option<i64>,
    /// `None` means no limit.
    pub(crate) max_clients: Option<u64>,
    pub(crate) clients_registered: u64,
    pub(crate) name_prefix: String,
    pub(crate) label: Value,
    pub(crate) labels: Value,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

impl RegToken {
    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:client_management:reg_tokens:{}", self.id)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "uri": self.uri(),
            "account": ACCOUNT,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "token": self.token,
            "valid_until": self.valid_until.map(rfc3339),
            "max_clients": self.max_clients,
            "clients_registered": self.clients_registered,
            "ca_id": self.ca_id,
            "name_prefix": self.name_prefix,
            "lifetime": self.lifetime,
            "cert_duration": self.cert_duration,
            "client_management_profile_id": self.client_management_profile_id,
            "label": self.label,
            "labels": self.labels,
        })
    }

    pub(crate) fn is_named(&self, reference: &str) -> bool {
        self.id == reference || self.uri() == reference
    }
}

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Client {
    pub(crate) sequence: u64,
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) client_type: String,
    pub(crate) reg_token_id: String,
    pub(crate) ca_id: String,
    /// The current certificate chain as PEM, leaf first.
    pub(crate) cert: String,
    pub(crate) common_name: String,
    pub(crate) cert_fingerprint: String,
    pub(crate) cert_not_after: i64,
    pub(crate) previous_cert_fingerprint: Option<String>,
    /// Whether the previous certificate may still log in: set at a renewal unless the mode is
    /// `on-renew`, cleared when it is retired (never set again until the next renewal). The
    /// mode in force decides the rest (see `Api::previous_certificate_logs_in`).
    pub(crate) previous_cert_accepted: bool,
    /// The previous certificate's `notAfter` (Unix seconds), for `at-expiry`. Absent in
    /// state written before it was recorded.
    #[serde(default)]
    pub(crate) previous_cert_not_after: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) last_seen: Option<i64>,
}

impl Client {
    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:client_management:clients:{}", self.id)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "uri": self.uri(),
            "account": ACCOUNT,
            "name": self.name,
            "hostname": self.name,
            "description": self.description,
            "state": "active",
            "client_metadata": {"client_type": self.client_type},
            "common_name": self.common_name,
            "cert_fingerprint": self.cert_fingerprint,
            "cert_not_after": rfc3339(self.cert_not_after),
            "previous_cert_fingerprint": self.previous_cert_fingerprint,
            "ca_id": self.ca_id,
            "reg_token_id": self.reg_token_id,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "last_seen": self.last_seen.map(rfc3339),
        })
    }

    pub(crate) fn is_named(&self, reference: &str) -> bool {
        self.id == reference || self.name == reference || self.uri() == reference
    }
}

/// One uploaded client log record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    pub(crate) id: String,
    pub(crate) client_id: String,
    pub(crate) client_name: String,
    pub(crate) created_at: i64,
    pub(crate) time: String,
    pub(crate) level: String,
    pub(crate) component: String,
    pub(crate) message_id: String,
    pub(crate) message: String,
}

impl ClientRecord {
    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:audit:client_records:{}", self.id)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "uri": self.uri(),
            "account": ACCOUNT,
            "client_id": self.client_id,
            "client_name": self.client_name,
            "created_at": rfc3339(self.created_at),
            "time": self.time,
            "level": self.level,
            "component": self.component,
            "message_id": self.message_id,
            "message": self.message,
        })
    }
}

/// One upload of log records, persisted as one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientRecordBatch {
    pub(crate) sequence: u64,
    pub(crate) id: String,
    pub(crate) records: Vec<ClientRecord>,
}

/// The web interface configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct WebInterface {
    /// External CA ids trusted for client certificates (applied at the next web restart).
    pub(crate) trusted_external: Vec<String>,
    /// Local CA ids (the emulator has no local CAs; kept as given).
    pub(crate) trusted_local: Vec<String>,
    pub(crate) updated_at: Option<i64>,
}

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    Admin,
    Client {
        client_id: String,
        /// The SHA-256 fingerprint of the certificate the client logged in with.
        certificate_fingerprint: String,
    },
}

/// A bearer token's session. Sessions live in memory only: like short-lived JWTs they are
/// never written to disk, so a restarted emulator asks everyone to log in again.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) subject: Subject,
    pub(crate) expires_at: i64,
}

/// Everything the manager knows.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Store,
    next_sequence: u64,
    pub(crate) external_cas: Vec<ExternalCa>,
    pub(crate) regtokens: Vec<RegToken>,
    pub(crate) clients: Vec<Client>,
    pub(crate) records: Vec<ClientRecord>,
    pub(crate) web: WebInterface,
    pub(crate) sessions: HashMap<String, Session>,
}

impl State {
    /// Loads the state from `<state_dir>/objects`, creating it when absent.
    pub(crate) fn load(state_dir: &Path) -> Result<State, Error> {
        let root = state_dir.join("objects");
        let store = Store::open(
            root.clone(),
            &[EXTERNAL_CAS, REGTOKENS, CLIENTS, CLIENT_RECORDS],
        )?;
        let mut ca_records: Vec<ExternalCaRecord> = store.load_all(EXTERNAL_CAS)?;
        ca_records.sort_by_key(|record| record.sequence);
        let external_cas = ca_records
            .into_iter()
            .map(|record| {
                let path = root.join(EXTERNAL_CAS).join(format!("{}.json", record.id));
                ExternalCa::from_record(record)
                    .map_err(|message| Error::StateCorrupt { path, message })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut regtokens: Vec<RegToken> = store.load_all(REGTOKENS)?;
        regtokens.sort_by_key(|token| token.sequence);
        let mut clients: Vec<Client> = store.load_all(CLIENTS)?;
        clients.sort_by_key(|client| client.sequence);
        let mut batches: Vec<ClientRecordBatch> = store.load_all(CLIENT_RECORDS)?;
        batches.sort_by_key(|batch| batch.sequence);
        let web = store.load_singleton(WEB_INTERFACE)?.unwrap_or_default();
        let next_sequence = external_cas
            .iter()
            .map(|ca| ca.record.sequence)
            .chain(regtokens.iter().map(|token| token.sequence))
            .chain(clients.iter().map(|client| client.sequence))
            .chain(batches.iter().map(|batch| batch.sequence))
            .max()
            .map_or(1, |max| max + 1);
        Ok(State {
            store,
            next_sequence,
            external_cas,
            regtokens,
            clients,
            records: batches
                .into_iter()
                .flat_map(|batch| batch.records)
                .collect(),
            web,
            sessions: HashMap::new(),
        })
    }

    /// The next value of the creation counter that orders listings.
    pub(crate) fn next_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// Persists the web interface configuration.
    pub(crate) fn save_web(&self) -> std::io::Result<()> {
        self.store.put_singleton(WEB_INTERFACE, &self.web)
    }

    /// The certificates of the trusted external CAs that allow client authentication.
    pub(crate) fn trusted_client_cas(&self) -> Vec<CertificateDer<'static>> {
        self.web
            .trusted_external
            .iter()
            .filter_map(|id| self.external_cas.iter().find(|ca| &ca.record.id == id))
            .filter(|ca| ca.record.allow_client_authentication)
            .map(|ca| ca.facts.der.clone())
            .collect()
    }

    pub(crate) fn find_external_ca(&self, reference: &str) -> Option<usize> {
        self.external_cas
            .iter()
            .position(|ca| ca.is_named(reference))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_file_without_the_previous_not_after_still_loads() {
        // As written before `previous_cert_not_after` existed.
        let json = r#"{"sequence":3,"id":"c1","name":"host1","description":"","client_type":"CTE",
            "reg_token_id":"t1","ca_id":"ca1","cert":"","common_name":"host1.example",
            "cert_fingerprint":"aa","cert_not_after":1900000000,
            "previous_cert_fingerprint":"bb","previous_cert_accepted":true,
            "created_at":1,"updated_at":2,"last_seen":null}"#;
        let client: Client = serde_json::from_str(json).unwrap();
        assert_eq!(client.previous_cert_not_after, None);
        assert!(client.previous_cert_accepted);
        let written = serde_json::to_value(&client).unwrap();
        assert!(written["previous_cert_not_after"].is_null());
    }
}
