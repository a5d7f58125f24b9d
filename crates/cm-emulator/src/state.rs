//! The manager's objects, how they are persisted, and how they are shown as JSON.

use std::collections::HashMap;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::certs::{CertificateFacts, parse_pem_chain};
use crate::store::Store;

/// The account every object belongs to (CM's default account).
pub(crate) const ACCOUNT: &str = "kylo:kylo:admin:accounts:kylo";

pub(crate) const EXTERNAL_CAS: &str = "external-cas";
pub(crate) const REGTOKENS: &str = "regtokens";
pub(crate) const CLIENTS: &str = "clients";
pub(crate) const CLIENT_RECORDS: &str = "client-records";
const WEB_INTERFACE: &str = "web-interface";
const PASSWORD_POLICY: &str = "password-policy";

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

    /// Whether `reference` names this CA by id, name or URI.
    pub(crate) fn is_named(&self, reference: &str) -> bool {
        self.record.id == reference || self.record.name == reference || self.uri() == reference
    }
}

/// The emulator's local CA (CM's "Local CA"): made at first start, listed at
/// `/v1/ca/local-cas`. It issues nothing (the emulator has no CSR endpoint); tokens without a
/// `ca_id` are bound to it, so agents presenting external certificates are refused with them.
#[derive(Debug, Clone)]
pub(crate) struct LocalCa {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) facts: CertificateFacts,
}

impl LocalCa {
    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:naboo:localca:{}", self.id)
    }

    pub(crate) fn is_named(&self, reference: &str) -> bool {
        self.id == reference || self.name == reference || self.uri() == reference
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
    /// Host facts the agent sent at registration (empty when it sent none).
    #[serde(default)]
    pub(crate) os_type: String,
    #[serde(default)]
    pub(crate) client_version: String,
    /// The transparent-encryption settings (created or changed through
    /// `/v1/transparent-encryption/clients`). Absent in state written before they were kept:
    /// the defaults.
    #[serde(default)]
    pub(crate) settings: TeSettings,
}

/// The id of the emulator's one client profile, `DefaultClientProfile` (invented value).
pub(crate) const DEFAULT_PROFILE_ID: &str = "6a1a3b1c-0d5e-4f2a-9b7c-000000000001";
/// The name of the emulator's one client profile (CM's default profile's name).
pub(crate) const DEFAULT_PROFILE_NAME: &str = "DefaultClientProfile";

/// A client's transparent-encryption settings, as `POST` and `PATCH
/// /v1/transparent-encryption/clients` set them. The emulator applies `registration_allowed`
/// (to the registration of a client created beforehand); it keeps and shows the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct TeSettings {
    /// `FS` or `CTE-U`.
    pub(crate) client_type: String,
    pub(crate) communication_enabled: bool,
    pub(crate) registration_allowed: bool,
    pub(crate) client_locked: bool,
    pub(crate) system_locked: bool,
    pub(crate) client_mfa_enabled: bool,
    pub(crate) enable_domain_sharing: bool,
    /// `GENERATE` or `MANUAL`.
    pub(crate) password_creation_method: String,
    pub(crate) enabled_capabilities: String,
    pub(crate) protection_mode: String,
    pub(crate) max_num_cache_log: u64,
    pub(crate) max_space_cache_log: u64,
    pub(crate) labels: serde_json::Map<String, Value>,
}

impl Default for TeSettings {
    /// What an agent that registered without being created beforehand shows.
    fn default() -> Self {
        TeSettings {
            client_type: "FS".to_owned(),
            communication_enabled: true,
            registration_allowed: true,
            client_locked: false,
            system_locked: false,
            client_mfa_enabled: false,
            enable_domain_sharing: false,
            password_creation_method: "GENERATE".to_owned(),
            enabled_capabilities: String::new(),
            protection_mode: String::new(),
            max_num_cache_log: 0,
            max_space_cache_log: 0,
            labels: serde_json::Map::new(),
        }
    }
}

impl Client {
    pub(crate) fn uri(&self) -> String {
        format!("kylo:kylo:client_management:clients:{}", self.id)
    }

    /// Whether an agent has registered (a client created by an administrator has no
    /// certificate until its agent registers).
    pub(crate) fn registered(&self) -> bool {
        !self.cert_fingerprint.is_empty()
    }

    /// `active` once registered, else `pending` (invented: CM's client states are not public).
    pub(crate) fn state(&self) -> &'static str {
        if self.registered() {
            "active"
        } else {
            "pending"
        }
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
    /// The interface's id (a UUID, made at first start).
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// External CA ids trusted for client certificates.
    pub(crate) trusted_external: Vec<String>,
    /// Local CA ids trusted for client certificates.
    pub(crate) trusted_local: Vec<String>,
    /// `trusted_cas` as the administrator wrote them (names, ids or URIs), shown back as
    /// written. Absent in state written before they were kept: the ids are shown.
    #[serde(default)]
    pub(crate) trusted_cas_as_written: Option<TrustedCasWritten>,
    #[serde(default)]
    pub(crate) mode: Option<String>,
    #[serde(default)]
    pub(crate) minimum_tls_version: Option<String>,
    #[serde(default)]
    pub(crate) maximum_tls_version: Option<String>,
    #[serde(default)]
    pub(crate) cert_user_field: Option<String>,
    /// The cipher suites turned off (by CM's name), applied to TLS.
    #[serde(default)]
    pub(crate) disabled_ciphers: Vec<String>,
    /// Fields kept as written and shown back (`allow_unregistered`, `meta`, ...).
    #[serde(default)]
    pub(crate) kept: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub(crate) created_at: Option<i64>,
    pub(crate) updated_at: Option<i64>,
}

/// The global password policy's lockout (`/v1/usermgmt/pwdpolicies/global`, the field of
/// Terraform's `ciphertrust_password_policy`): lockout durations in minutes for the first,
/// second, ... failed login in a row (the last repeats); empty (CM's default): no lockout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PasswordPolicy {
    pub(crate) failed_logins_lockout_thresholds: Vec<u64>,
    #[serde(default)]
    pub(crate) updated_at: Option<i64>,
}

/// The admin's failed logins in a row and the lockout they earned (in memory only).
#[derive(Debug, Clone, Default)]
pub(crate) struct Lockout {
    pub(crate) failures: u32,
    /// Unix seconds until which logins are refused.
    pub(crate) until: Option<i64>,
}

/// An interface's `trusted_cas` as written by the administrator.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TrustedCasWritten {
    pub(crate) external: Vec<String>,
    pub(crate) local: Vec<String>,
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

/// A bearer token's session, keyed by the JWT's `jti`. Sessions live in memory only: like
/// short-lived JWTs they are never written to disk, so a restarted emulator asks everyone to
/// log in again.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) subject: Subject,
    pub(crate) expires_at: i64,
}

/// A refresh token (password grant), in memory only.
#[derive(Debug, Clone)]
pub(crate) struct RefreshToken {
    pub(crate) id: String,
    pub(crate) subject: Subject,
    /// `None`: no expiry.
    pub(crate) expires_at: Option<i64>,
}

/// A map with a size cap: inserting beyond it drops the oldest entry, and the drops are
/// counted.
#[derive(Debug)]
pub(crate) struct Bounded<V> {
    map: HashMap<String, V>,
    order: std::collections::VecDeque<String>,
    cap: usize,
    pub(crate) dropped: u64,
}

impl<V> Bounded<V> {
    pub(crate) fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    pub(crate) fn insert(&mut self, key: String, value: V) {
        while self.map.len() >= self.cap {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if self.map.remove(&oldest).is_some() {
                self.dropped += 1;
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        let value = self.map.remove(key);
        if value.is_some() {
            self.order.retain(|entry| entry != key);
        }
        value
    }

    /// Keeps the entries for which `keep` is true (removals are not counted as drops).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.map.retain(|_, value| keep(value));
        let map = &self.map;
        self.order.retain(|key| map.contains_key(key));
    }
}

/// The caps on what grows with use (`EmulatorConfig::max_sessions` and
/// `EmulatorConfig::max_client_records`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_sessions: usize,
    pub(crate) max_client_records: usize,
}

/// Everything the manager knows.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) store: Store,
    next_sequence: u64,
    pub(crate) external_cas: Vec<ExternalCa>,
    pub(crate) regtokens: Vec<RegToken>,
    pub(crate) clients: Vec<Client>,
    /// Uploaded log records, one batch per upload, oldest first.
    pub(crate) record_batches: std::collections::VecDeque<ClientRecordBatch>,
    /// How many records the batches hold.
    pub(crate) record_count: usize,
    /// Records dropped (oldest first) to stay under the cap, since start.
    pub(crate) records_dropped: u64,
    pub(crate) web: WebInterface,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) admin_lockout: Lockout,
    pub(crate) local_ca: LocalCa,
    pub(crate) sessions: Bounded<Session>,
    pub(crate) refresh_tokens: Bounded<RefreshToken>,
    pub(crate) limits: Limits,
}

impl State {
    /// Loads the state from `<state_dir>/objects`, creating it when absent.
    pub(crate) fn load(
        state_dir: &Path,
        local_ca: LocalCa,
        limits: Limits,
        change_log: Option<&Path>,
    ) -> Result<State, Error> {
        let root = state_dir.join("objects");
        let store = Store::open(
            root.clone(),
            &[EXTERNAL_CAS, REGTOKENS, CLIENTS, CLIENT_RECORDS],
            change_log,
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
        // A registration writes its client before its token's counter: after a crash between
        // the two, the clients on disk are the truth.
        for token in &mut regtokens {
            let registered = clients
                .iter()
                .filter(|client| client.reg_token_id == token.id)
                .count() as u64;
            token.clients_registered = token.clients_registered.max(registered);
        }
        let mut batches: Vec<ClientRecordBatch> = store.load_all(CLIENT_RECORDS)?;
        batches.sort_by_key(|batch| batch.sequence);
        let mut web: WebInterface = store.load_singleton(WEB_INTERFACE)?.unwrap_or_default();
        if web.id.is_none() {
            web.id = Some(crate::util::uuid_v4());
            web.created_at = Some(crate::util::unix_seconds(std::time::SystemTime::now()));
            store
                .put_singleton(WEB_INTERFACE, &web)
                .map_err(|source| Error::StateIo {
                    path: root.join(format!("{WEB_INTERFACE}.json")),
                    source,
                })?;
        }
        let password_policy: PasswordPolicy =
            store.load_singleton(PASSWORD_POLICY)?.unwrap_or_default();
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
            record_count: batches.iter().map(|batch| batch.records.len()).sum(),
            record_batches: batches.into_iter().collect(),
            records_dropped: 0,
            web,
            password_policy,
            admin_lockout: Lockout::default(),
            local_ca,
            sessions: Bounded::new(limits.max_sessions),
            refresh_tokens: Bounded::new(limits.max_sessions),
            limits,
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

    pub(crate) fn save_password_policy(&self) -> std::io::Result<()> {
        self.store
            .put_singleton(PASSWORD_POLICY, &self.password_policy)
    }

    /// The web interface's TLS settings as stored (checked when they were written: a value the
    /// emulator does not implement was refused then, so the default stands in for it here).
    pub(crate) fn web_tls(&self) -> crate::tls::WebTls {
        use crate::tls::{ClientCertificates, TlsVersion, client_certificates, tls_version};
        let version = |value: &Option<String>, default| {
            value
                .as_deref()
                .and_then(|name| tls_version(name).ok())
                .unwrap_or(default)
        };
        crate::tls::WebTls {
            trusted_cas: self.trusted_client_cas(),
            client_certificates: self
                .web
                .mode
                .as_deref()
                .and_then(|mode| client_certificates(mode).ok())
                .unwrap_or(ClientCertificates::Optional),
            minimum: version(&self.web.minimum_tls_version, TlsVersion::Tls12),
            maximum: version(&self.web.maximum_tls_version, TlsVersion::Tls13),
            disabled_ciphers: self.web.disabled_ciphers.clone(),
        }
    }

    /// The certificates of the trusted external CAs that allow client authentication, and of
    /// the local CA when it is trusted.
    pub(crate) fn trusted_client_cas(&self) -> Vec<CertificateDer<'static>> {
        let mut trusted: Vec<CertificateDer<'static>> = self
            .web
            .trusted_external
            .iter()
            .filter_map(|id| self.external_cas.iter().find(|ca| &ca.record.id == id))
            .filter(|ca| ca.record.allow_client_authentication)
            .map(|ca| ca.facts.der.clone())
            .collect();
        if self.web.trusted_local.contains(&self.local_ca.id) {
            trusted.push(self.local_ca.facts.der.clone());
        }
        trusted
    }

    /// Every uploaded record, oldest first.
    pub(crate) fn records(&self) -> impl Iterator<Item = &ClientRecord> {
        self.record_batches
            .iter()
            .flat_map(|batch| batch.records.iter())
    }

    /// Adds an upload and drops the oldest uploads beyond the cap (their files too).
    pub(crate) fn add_records(&mut self, batch: ClientRecordBatch) -> std::io::Result<()> {
        self.store.put(CLIENT_RECORDS, &batch.id, &batch)?;
        self.record_count += batch.records.len();
        self.record_batches.push_back(batch);
        while self.record_count > self.limits.max_client_records && self.record_batches.len() > 1 {
            let Some(oldest) = self.record_batches.pop_front() else {
                break;
            };
            self.store.delete(CLIENT_RECORDS, &oldest.id)?;
            self.record_count -= oldest.records.len();
            self.records_dropped += oldest.records.len() as u64;
        }
        Ok(())
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
