//! Clients: the admin view (`/v1/client-management/clients`) and the agent endpoints (registration, `self/client`, renewal).

use super::*;

impl Api {
    // ---- Clients (admin) ------------------------------------------------------------------

    pub(super) fn client_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .clients
            .iter()
            .position(|client| client.is_named(reference))
            .ok_or_else(|| ApiError::not_found(format!("client {reference:?} not found")))
    }

    pub(super) fn list_clients(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.clients.iter().map(Client::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    pub(super) fn get_client(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::client_index(&state, reference)?;
        respond(200, state.clients[index].to_json())
    }

    pub(super) fn delete_client(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::client_index(&state, reference)?;
        let id = state.clients[index].id.clone();
        state
            .store
            .delete(CLIENTS, &id)
            .map_err(ApiError::storage)?;
        state.clients.remove(index);
        state.sessions.retain(|_, session| {
            !matches!(&session.subject, Subject::Client { client_id, .. } if client_id == &id)
        });
        no_content()
    }

    // ---- Agent endpoints ------------------------------------------------------------------

    /// `POST /v1/client-management/clients/`: registration with a token and an external
    /// certificate, checks in the order of `docs/protocol.md`.
    pub(super) fn register(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        // 1. Body fields (400).
        let body = JsonBody::parse(&request.body)?;
        let reg_token = body.required_string("reg_token")?;
        let cert = body.required_string("cert")?;
        let name = body.required_string("name")?;
        let client_type = body.optional_string("client_type")?.unwrap_or("CTE");
        let description = body.optional_string("description")?.unwrap_or("");
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("field `name`: must not be empty"));
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

        let mut state = self.lock();
        // 4. Token known (401).
        let token_index = state
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
            return respond(200, existing.to_json());
        }
        let token = &state.regtokens[token_index];
        // 5. Not expired (401).
        if token
            .valid_until
            .is_some_and(|valid_until| now_seconds > valid_until)
        {
            return Err(ApiError::new(
                401,
                "NCERRRegTokenExpired",
                format!(
                    "registration token expired at {}",
                    rfc3339(token.valid_until.unwrap_or_default())
                ),
            ));
        }
        // 6. Not exhausted (403).
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
        // 7. Chains to the token's CA (403).
        let ca_id = token.ca_id.clone();
        let ca = state
            .external_cas
            .iter()
            .find(|ca| ca.record.id == ca_id)
            .ok_or_else(|| {
                ApiError::not_trusted(format!("the token's CA {ca_id} no longer exists"))
            })?;
        let chain_outside_validity = match verify_client_chain(
            &chain[0],
            &chain[1..],
            &ca.facts.der,
            now,
            facts.not_before,
        ) {
            Ok(()) => None,
            Err(ChainError::OutsideValidity(message)) => Some(message),
            Err(ChainError::NotTrusted(message)) => {
                return Err(ApiError::not_trusted(format!(
                    "the certificate does not chain to the registration token's CA {:?}: {message}",
                    ca.record.name
                )));
            }
        };
        // 8. Inside its validity (422).
        check_validity(&facts, now, chain_outside_validity)?;
        // 9. Name free (409).
        if state.clients.iter().any(|client| client.name == name) {
            return Err(ApiError::conflict(format!(
                "a client named {name:?} already exists with a different certificate"
            )));
        }
        let client = Client {
            sequence: state.next_sequence(),
            id: uuid_v4(),
            name: name.to_owned(),
            description: description.to_owned(),
            client_type: client_type.to_owned(),
            reg_token_id: state.regtokens[token_index].id.clone(),
            ca_id,
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
        };
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let mut token = state.regtokens[token_index].clone();
        token.clients_registered += 1;
        token.updated_at = now_seconds;
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        state.regtokens[token_index] = token;
        let json = client.to_json();
        state.clients.push(client);
        respond(201, json)
    }

    /// `GET /v1/client-management/self/client`: status and heartbeat.
    pub(super) fn self_status(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let (index, _) = self.require_client(&mut state, request)?;
        request.tls_leaf()?;
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
        let (index, login_fingerprint) = self.require_client(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        let ext_cert = body.required_string("ext_cert")?;
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
        let ca = state
            .external_cas
            .iter()
            .find(|ca| ca.record.id == client.ca_id)
            .ok_or_else(|| {
                ApiError::not_trusted(format!("the client's CA {} no longer exists", client.ca_id))
            })?;
        let chain_outside_validity =
            match verify_client_chain(&chain[0], &chain[1..], &ca.facts.der, now, facts.not_before)
            {
                Ok(()) => None,
                Err(ChainError::OutsideValidity(message)) => Some(message),
                Err(ChainError::NotTrusted(message)) => {
                    return Err(ApiError::not_trusted(format!(
                        "the new certificate does not chain to the client's CA {:?}: {message}",
                        ca.record.name
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
