//! Registration tokens: `/v1/client-management/regtokens`.

use super::*;

impl Api {
    // ---- Registration tokens --------------------------------------------------------------

    pub(super) fn regtoken_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .regtokens
            .iter()
            .position(|token| token.is_named(reference))
            .ok_or_else(|| {
                ApiError::not_found(format!("registration token {reference:?} not found"))
            })
    }

    pub(super) fn resolve_ca_id(state: &State, reference: &str) -> Result<String, ApiError> {
        state
            .find_external_ca(reference)
            .map(|index| state.external_cas[index].record.id.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "field `ca_id`: external CA {reference:?} not found"
                ))
            })
    }

    pub(super) fn list_regtokens(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.regtokens.iter().map(RegToken::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    pub(super) fn create_regtoken(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        let ca_reference = body.required_string("ca_id")?;
        let cert_duration = body.optional_u64("cert_duration")?.unwrap_or(730);
        let profile = body.optional_string("client_management_profile_id")?;
        let lifetime_text = body.optional_string("lifetime")?.unwrap_or("");
        let lifetime = parse_lifetime(lifetime_text)
            .map_err(|message| ApiError::bad_request(format!("field `lifetime`: {message}")))?;
        let max_clients = body.optional_u64("max_clients")?;
        if max_clients == Some(0) {
            return Err(ApiError::bad_request(
                "field `max_clients`: must be at least 1",
            ));
        }
        let name_prefix = body.optional_string("name_prefix")?.unwrap_or("");
        let label = body.optional_object("label")?.cloned().unwrap_or_default();
        let labels = body.optional_object("labels")?.cloned().unwrap_or_default();
        let ca_id = Self::resolve_ca_id(&state, ca_reference)?;
        let now = self.now();
        let now_seconds = unix_seconds(now);
        let token = RegToken {
            sequence: state.next_sequence(),
            id: uuid_v4(),
            token: random_token(),
            ca_id,
            cert_duration,
            client_management_profile_id: profile.map(str::to_owned),
            lifetime: lifetime_text.to_owned(),
            valid_until: lifetime.map(|lifetime| unix_seconds(now + lifetime)),
            max_clients,
            clients_registered: 0,
            name_prefix: name_prefix.to_owned(),
            label: Value::Object(label),
            labels: Value::Object(labels),
            created_at: now_seconds,
            updated_at: now_seconds,
        };
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        let json = token.to_json();
        state.regtokens.push(token);
        respond(201, json)
    }

    pub(super) fn get_regtoken(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        respond(200, state.regtokens[index].to_json())
    }

    pub(super) fn patch_regtoken(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        let body = JsonBody::parse(&request.body)?;
        let mut token = state.regtokens[index].clone();
        let now = self.now();
        if let Some(reference) = body.optional_string("ca_id")? {
            token.ca_id = Self::resolve_ca_id(&state, reference)?;
        }
        if let Some(duration) = body.optional_u64("cert_duration")? {
            token.cert_duration = duration;
        }
        if let Some(text) = body.optional_string("lifetime")? {
            let lifetime = parse_lifetime(text)
                .map_err(|message| ApiError::bad_request(format!("field `lifetime`: {message}")))?;
            token.lifetime = text.to_owned();
            token.valid_until = lifetime.map(|lifetime| unix_seconds(now + lifetime));
        }
        if let Some(max_clients) = body.optional_u64("max_clients")? {
            if max_clients == 0 {
                return Err(ApiError::bad_request(
                    "field `max_clients`: must be at least 1",
                ));
            }
            token.max_clients = Some(max_clients);
        }
        if let Some(prefix) = body.optional_string("name_prefix")? {
            token.name_prefix = prefix.to_owned();
        }
        if let Some(labels) = body.optional_object("labels")? {
            token.labels = Value::Object(labels.clone());
        }
        if let Some(label) = body.optional_object("label")? {
            token.label = Value::Object(label.clone());
        }
        token.updated_at = unix_seconds(now);
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        let json = token.to_json();
        state.regtokens[index] = token;
        respond(200, json)
    }

    pub(super) fn delete_regtoken(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        let id = state.regtokens[index].id.clone();
        state
            .store
            .delete(REGTOKENS, &id)
            .map_err(ApiError::storage)?;
        state.regtokens.remove(index);
        no_content()
    }
}
