//! Clients: the admin view (`/v1/client-management/clients`) and the agent endpoints (registration, `self/client`, renewal).

use super::query::{Resource, index_of, list_response, listed};
use super::te_clients::TE_CLIENT_URI_PREFIX;
use super::wire::{RegisterRequest, RenewRequest};
use super::*;
use crate::certs::{ChainError, parse_pem_chain, verify_client_chain};
use crate::state::{CLIENTS, Client, REGTOKENS, Subject};
use crate::util::uuid_v4;

/// The list filters for clients (CM's names for the client-management and transparent
/// encryption views).
const CLIENT_FILTERS: &[&str] = &[
    "id",
    "name",
    "client_name",
    "sha256_fingerprint",
    "state",
    "ca_id",
];

/// One collection behind both views (client management and transparent encryption).
impl Resource for Client {
    const KIND: &'static str = "client";
    const FILTERS: &'static [&'static str] = CLIENT_FILTERS;

    /// By id, name, either view's URI.
    fn answers_to(&self, reference: &str) -> bool {
        self.is_named(reference) || reference.strip_prefix(TE_CLIENT_URI_PREFIX) == Some(&self.id)
    }

    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>> {
        match filter {
            "id" => Some(self.id.as_str().into()),
            "name" | "client_name" => Some(self.name.as_str().into()),
            "sha256_fingerprint" => Some(self.cert_fingerprint.as_str().into()),
            "state" => Some(self.state().into()),
            "ca_id" => Some(self.ca_id.as_str().into()),
            _ => None,
        }
    }
}

/// What a client's certificate must chain to: an external CA or the local CA.
struct IssuingCa {
    id: String,
    name: String,
    der: CertificateDer<'static>,
}

/// The outcome of a registration's token checks.
enum Precheck {
    /// An identical registration exists: its client object.
    Existing(Value),
    /// Go on: the certificate must chain to this CA.
    Proceed(IssuingCa),
}

/// The outcome of reserving a new client.
enum Reserved {
    Existing(Value),
    /// The client added, or completed (`before`: as an administrator had created it).
    New {
        client: Box<Client>,
        before: Option<Box<Client>>,
    },
}

/// The index of the client named `name` that an administrator created and no agent has
/// registered yet, if any; 409 when an agent already registered under that name, 403 when the
/// created client does not allow registration.
fn created_beforehand(state: &State, name: &str) -> Result<Option<usize>, ApiError> {
    let Some(at) = state.clients.iter().position(|other| other.name == name) else {
        return Ok(None);
    };
    let existing = &state.clients[at];
    if existing.registered() {
        return Err(ApiError::conflict(format!(
            "a client named {name:?} already exists with a different certificate"
        )));
    }
    if !existing.settings.registration_allowed {
        return Err(ApiError::new(
            403,
            "NCERRRegistrationNotAllowed",
            format!(
                "the client {name:?} was created with registration_allowed false; an administrator must set it to true (PATCH /v1/transparent-encryption/clients/{})",
                existing.id
            ),
        ));
    }
    Ok(Some(at))
}

fn issuing_ca(state: &State, ca_id: &str) -> Option<IssuingCa> {
    if state.local_ca.id == ca_id {
        return Some(IssuingCa {
            id: state.local_ca.id.clone(),
            name: format!("local CA {:?}", state.local_ca.name),
            der: state.local_ca.facts.der.clone(),
        });
    }
    state
        .external_cas
        .iter()
        .find(|ca| ca.record.id == ca_id)
        .map(|ca| IssuingCa {
            id: ca.record.id.clone(),
            name: format!("external CA {:?}", ca.record.name),
            der: ca.facts.der.clone(),
        })
}

/// 409 when the certificate is already another client's (current or previous): one
/// certificate is at most one client.
fn refuse_certificate_of_another_client(
    state: &State,
    fingerprint: &str,
    except_client_id: Option<&str>,
) -> Result<(), ApiError> {
    match state.clients.iter().find(|client| {
        Some(client.id.as_str()) != except_client_id
            && (client.cert_fingerprint == fingerprint
                || client.previous_cert_fingerprint.as_deref() == Some(fingerprint))
    }) {
        Some(other) => Err(ApiError::conflict(format!(
            "this certificate is already registered as client {:?}: one certificate is at most one client",
            other.name
        ))),
        None => Ok(()),
    }
}

impl Api {
    // ---- Clients (admin) ------------------------------------------------------------------

    pub(super) fn list_clients(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        list_response(
            &query,
            listed(&query, state.clients.iter(), Client::to_json),
        )
    }

    pub(super) fn get_client(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let index = index_of(&state.clients, reference)?;
        respond(200, state.clients[index].to_json())
    }

    pub(super) fn delete_client(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = index_of(&state.clients, reference)?;
        Self::remove_client(&mut state, index)?;
        no_content()
    }

    /// Removes the client at `index`: its record, then its sessions (its certificate no longer
    /// logs in). Every way to delete a client ends here.
    pub(super) fn remove_client(state: &mut State, index: usize) -> Result<Client, ApiError> {
        let id = state.clients[index].id.clone();
        state
            .store
            .delete(CLIENTS, &id)
            .map_err(ApiError::storage)?;
        let client = state.clients.remove(index);
        state.sessions.retain(|session| {
            !matches!(&session.subject, Subject::Client { client_id, .. } if client_id == &id)
        });
        Ok(client)
    }

    // ---- Agent endpoints ------------------------------------------------------------------

    /// `POST /v1/client-management/clients/`: registration with a token and an external
    /// certificate, checks in the order of `docs/protocol.md`.
    pub(super) fn register(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        // 1. Body fields (400).
        let body: RegisterRequest = wire::parse(&request.body)?;
        let reg_token = body.reg_token.as_str();
        let cert = body.cert.as_str();
        let name = body.name.as_str();
        let client_type = body.client_type.as_deref().unwrap_or("CTE");
        let description = body.description.as_deref().unwrap_or("");
        if name.trim().is_empty() {
            return Err(ApiError::invalid_param("field `name`: must not be empty"));
        }
        // 2. TLS client certificate present (401).
        let tls_leaf = request.tls_leaf()?;
        // 3. Body leaf equals TLS leaf (403).
        let chain = parse_pem_chain(cert)
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        if chain[0] != *tls_leaf {
            return Err(ApiError::new(
                403,
                "NCERRCertificateMismatch",
                "the certificate in `cert` is not the TLS client certificate of this connection",
            ));
        }
        let facts = CertificateFacts::parse(chain[0].clone())
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        let fingerprint = facts.sha256_fingerprint();
        let now = self.now();
        let now_seconds = unix_seconds(now);

        // 4.-6. Token known, not expired, not exhausted (under the lock, without crypto).
        let ca = match self.registration_token_checks(reg_token, name, &fingerprint, now)? {
            Precheck::Existing(json) => return respond(200, json),
            Precheck::Proceed(ca) => ca,
        };
        // 7. Issued by the token's CA (403): the signature checks run without the lock.
        let chain_outside_validity = match verify_client_chain(
            &chain[0],
            &chain[1..],
            &ca.der,
            now,
            facts.not_before,
        ) {
            Ok(()) => None,
            Err(ChainError::OutsideValidity(message)) => Some(message),
            Err(ChainError::NotTrusted(message)) => {
                return Err(ApiError::not_trusted(format!(
                    "the certificate was not issued by the registration token's CA ({}): {message}",
                    ca.name
                )));
            }
        };
        // 8. Inside its validity (422).
        check_validity(&facts, now, chain_outside_validity)?;
        let client = Client {
            sequence: 0,
            id: uuid_v4(),
            name: name.to_owned(),
            description: description.to_owned(),
            client_type: client_type.to_owned(),
            reg_token_id: String::new(),
            ca_id: ca.id,
            cert: chain_pem(&chain),
            common_name: facts.common_name.clone().unwrap_or_default(),
            cert_fingerprint: fingerprint,
            cert_not_after: facts.not_after,
            previous_cert_fingerprint: None,
            previous_cert_accepted: false,
            previous_cert_not_after: None,
            created_at: now_seconds,
            updated_at: now_seconds,
            last_seen: None,
            os_type: body.os_type.clone().unwrap_or_default(),
            client_version: body.client_version.clone().unwrap_or_default(),
            settings: crate::state::TeSettings::default(),
        };
        // 9.-10. One certificate one client, name free (409); the client is reserved in memory.
        let client = match self.reserve_client(reg_token, client, now)? {
            Reserved::Existing(json) => return respond(200, json),
            Reserved::New { client, before } => {
                self.persist_registration(&client, before.map(|before| *before))?;
                client
            }
        };
        respond(201, client.to_json())
    }

    /// The checks of a registration that need the token: known (401), an identical earlier
    /// registration (answered 200), not expired (401), not exhausted (403); then the CA the
    /// certificate must chain to.
    fn registration_token_checks(
        &self,
        reg_token: &str,
        name: &str,
        fingerprint: &str,
        now: std::time::SystemTime,
    ) -> Result<Precheck, ApiError> {
        let state = self.lock();
        let token = Self::token_for_registration(&state, reg_token, name, fingerprint, now)?;
        let token = match token {
            Err(existing) => return Ok(Precheck::Existing(existing)),
            Ok(index) => &state.regtokens[index],
        };
        issuing_ca(&state, &token.ca_id)
            .map(Precheck::Proceed)
            .ok_or_else(|| {
                ApiError::not_trusted(format!("the token's CA {} no longer exists", token.ca_id))
            })
    }

    /// The token's index (`Err(json)`: the same name and certificate are already registered,
    /// the answer of an idempotent retry), refusing unknown, expired and exhausted tokens.
    fn token_for_registration(
        state: &State,
        reg_token: &str,
        name: &str,
        fingerprint: &str,
        now: std::time::SystemTime,
    ) -> Result<Result<usize, Value>, ApiError> {
        let index = state
            .regtokens
            .iter()
            .position(|token| constant_time_eq(token.token.as_bytes(), reg_token.as_bytes()))
            .ok_or_else(|| {
                ApiError::new(401, "NCERRInvalidRegToken", "Invalid registration token")
            })?;
        // Idempotent retry: same name and certificate as an existing client.
        if let Some(existing) = state
            .clients
            .iter()
            .find(|client| client.name == name && client.cert_fingerprint == fingerprint)
        {
            return Ok(Err(existing.to_json()));
        }
        let token = &state.regtokens[index];
        if let Some(valid_until) = token.valid_until.filter(|until| unix_seconds(now) > *until) {
            return Err(ApiError::new(
                401,
                "NCERRRegTokenExpired",
                format!("registration token expired at {}", rfc3339(valid_until)),
            ));
        }
        if token
            .max_clients
            .is_some_and(|max| token.clients_registered >= max)
        {
            return Err(ApiError::new(
                403,
                "NCERRRegTokenExhausted",
                format!(
                    "registration token already registered its maximum of {} clients",
                    token.clients_registered
                ),
            ));
        }
        Ok(Ok(index))
    }

    /// Repeats the token checks (the state may have changed while the certificate was being
    /// verified), refuses a certificate or name already in use (409), and adds the client and
    /// the token's count in memory.
    fn reserve_client(
        &self,
        reg_token: &str,
        mut client: Client,
        now: std::time::SystemTime,
    ) -> Result<Reserved, ApiError> {
        let mut state = self.lock();
        let index = match Self::token_for_registration(
            &state,
            reg_token,
            &client.name,
            &client.cert_fingerprint,
            now,
        )? {
            Err(existing) => return Ok(Reserved::Existing(existing)),
            Ok(index) => index,
        };
        if state.regtokens[index].ca_id != client.ca_id {
            return Err(ApiError::not_trusted(
                "the registration token's CA changed during the registration; try again",
            ));
        }
        if self.one_client_per_certificate {
            refuse_certificate_of_another_client(&state, &client.cert_fingerprint, None)?;
        }
        let created = created_beforehand(&state, &client.name)?;
        client.reg_token_id = state.regtokens[index].id.clone();
        let token = &mut state.regtokens[index];
        token.clients_registered += 1;
        token.updated_at = client.created_at;
        let before = match created {
            // The agent completes the client an administrator created for it.
            Some(at) => {
                let before = state.clients[at].clone();
                client.id.clone_from(&before.id);
                client.sequence = before.sequence;
                client.created_at = before.created_at;
                client.settings = before.settings.clone();
                // The administrator's description wins over the agent's.
                if !before.description.is_empty() {
                    client.description.clone_from(&before.description);
                }
                state.clients[at] = client.clone();
                Some(Box::new(before))
            }
            None => {
                client.sequence = state.next_sequence();
                state.clients.push(client.clone());
                None
            }
        };
        Ok(Reserved::New {
            client: Box::new(client),
            before,
        })
    }

    /// Writes a reserved client, then its token's count, without holding the state lock (the
    /// answer waits for both). A failed client write undoes the reservation: the client is
    /// removed, or back as it was `before` when it had been created beforehand.
    fn persist_registration(
        &self,
        client: &Client,
        before: Option<Client>,
    ) -> Result<(), ApiError> {
        if let Err(error) = self.store.put(CLIENTS, &client.id, client) {
            let mut state = self.lock();
            match before {
                Some(before) => {
                    if let Some(slot) = state.clients.iter_mut().find(|other| other.id == client.id)
                    {
                        *slot = before;
                    }
                }
                None => state.clients.retain(|other| other.id != client.id),
            }
            if let Some(token) = state
                .regtokens
                .iter_mut()
                .find(|token| token.id == client.reg_token_id)
            {
                token.clients_registered = token.clients_registered.saturating_sub(1);
            }
            return Err(ApiError::storage(error));
        }
        // Deleted by an administrator between the reservation and the write: do not bring it
        // back on disk.
        if !self
            .lock()
            .clients
            .iter()
            .any(|other| other.id == client.id)
        {
            self.store
                .delete(CLIENTS, &client.id)
                .map_err(ApiError::storage)?;
        }
        // The token's file: its latest state, written under the token-writes lock so that a
        // slower writer never replaces a newer count with an older one.
        let _writes = self.lock_token_writes();
        let token = self
            .lock()
            .regtokens
            .iter()
            .find(|token| token.id == client.reg_token_id)
            .cloned();
        match token {
            Some(token) => self
                .store
                .put(REGTOKENS, &token.id, &token)
                .map_err(ApiError::storage),
            // Deleted meanwhile: nothing to write.
            None => Ok(()),
        }
    }

    /// `GET /v1/client-management/self/client`: status and heartbeat.
    pub(super) fn self_status(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = self.require_bound_client(&state, request)?;
        let mut client = state.clients[index].clone();
        client.last_seen = Some(self.now_seconds());
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let json = client.to_json();
        state.clients[index] = client;
        respond(200, json)
    }

    /// `POST /v1/client-management/self/client/renew`: self renewal with an external
    /// certificate and proof of possession of the new key.
    pub(super) fn self_renew(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        // Bearer valid (401).
        let (index, login_fingerprint) = self.require_client(&state, request)?;
        let body: RenewRequest = wire::parse(&request.body)?;
        let ext_cert = body.ext_cert.as_str();
        // TLS client certificate present (401) and equal to the new leaf (403).
        let tls_leaf = request.tls_leaf()?;
        let chain = parse_pem_chain(ext_cert).map_err(|message| {
            ApiError::certificate_invalid(format!("field `ext_cert`: {message}"))
        })?;
        if chain[0] != *tls_leaf {
            return Err(ApiError::new(
                403,
                "NCERRProofOfPossessionFailed",
                "the TLS client certificate of this request is not the new certificate: \
                 present the new certificate to prove possession of its key",
            ));
        }
        let client = state.clients[index].clone();
        let fingerprint = sha256_fingerprint(&chain[0]);
        if fingerprint == client.cert_fingerprint {
            // Idempotent retry: this renewal already happened.
            return respond(200, client.to_json());
        }
        let login_certificate_usable = login_fingerprint == client.cert_fingerprint
            || self.previous_certificate_logs_in(&client, &login_fingerprint);
        if !login_certificate_usable {
            return Err(ApiError::unauthorized(
                "the bearer was obtained with a certificate this client no longer uses",
            ));
        }
        let facts = CertificateFacts::parse(chain[0].clone()).map_err(|message| {
            ApiError::certificate_invalid(format!("field `ext_cert`: {message}"))
        })?;
        let now = self.now();
        // Chains to the client's CA (403).
        let ca = issuing_ca(&state, &client.ca_id).ok_or_else(|| {
            ApiError::not_trusted(format!("the client's CA {} no longer exists", client.ca_id))
        })?;
        let chain_outside_validity =
            match verify_client_chain(&chain[0], &chain[1..], &ca.der, now, facts.not_before) {
                Ok(()) => None,
                Err(ChainError::OutsideValidity(message)) => Some(message),
                Err(ChainError::NotTrusted(message)) => {
                    return Err(ApiError::not_trusted(format!(
                        "the new certificate was not issued by the client's CA ({}): {message}",
                        ca.name
                    )));
                }
            };
        // Exactly the same common name (403).
        let new_common_name = facts.common_name.clone().unwrap_or_default();
        if new_common_name != client.common_name {
            return Err(ApiError::new(
                403,
                "NCERRCommonNameMismatch",
                format!(
                    "common name differs: current {:?}, new {:?}",
                    client.common_name, new_common_name
                ),
            ));
        }
        // Valid now (422).
        check_validity(&facts, now, chain_outside_validity)?;
        // Not another client's certificate (409).
        if self.one_client_per_certificate {
            refuse_certificate_of_another_client(&state, &fingerprint, Some(&client.id))?;
        }
        // Expires later than the current certificate (422).
        if facts.not_after <= client.cert_not_after {
            return Err(ApiError::new(
                422,
                "NCERRCertificateNotLater",
                format!(
                    "the new certificate expires at {}, not later than the current one ({})",
                    rfc3339(facts.not_after),
                    rfc3339(client.cert_not_after)
                ),
            ));
        }
        let mut client = client;
        client.previous_cert_fingerprint = Some(client.cert_fingerprint.clone());
        client.previous_cert_not_after = Some(client.cert_not_after);
        client.previous_cert_accepted =
            self.retire_old_certificate != RetireOldCertificate::OnRenew;
        client.cert = chain_pem(&chain);
        client.cert_fingerprint = fingerprint;
        client.cert_not_after = facts.not_after;
        client.updated_at = unix_seconds(now);
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let json = client.to_json();
        state.clients[index] = client;
        respond(200, json)
    }
}
