//! Registration tokens: `/v1/client-management/regtokens`.
//!
//! Every field is optional, as Terraform's `CMRegTokenJSON` sends them all (empty ones as
//! `""`, `0` and `{}`): no `ca_id` (or `""`) binds the token to the local CA, `max_clients`
//! 0 means unlimited, `lifetime` `""` means no expiry, `cert_duration` 0 means 730 days.

use super::query::{Resource, index_of, list_response, listed};
use super::wire::RegTokenRequest;
use super::*;
use crate::state::{REGTOKENS, RegToken};
use crate::util::{parse_lifetime, random_token, uuid_v4};

/// CM's default certificate duration of a token, in days.
const DEFAULT_CERT_DURATION_DAYS: u64 = 730;

/// The list filters for tokens (CM's `id`; `ca_id` and `name_prefix` are invented).
const REGTOKEN_FILTERS: &[&str] = &["id", "ca_id", "name_prefix"];

impl Resource for RegToken {
    const KIND: &'static str = "registration token";
    const FILTERS: &'static [&'static str] = REGTOKEN_FILTERS;

    fn answers_to(&self, reference: &str) -> bool {
        self.is_named(reference)
    }

    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>> {
        match filter {
            "id" => Some(self.id.as_str().into()),
            "ca_id" => Some(self.ca_id.as_str().into()),
            "name_prefix" => Some(self.name_prefix.as_str().into()),
            _ => None,
        }
    }
}

impl Api {
    /// The id of the CA a token is bound to: an external CA or the local CA, by id, name or
    /// URI; empty: the local CA.
    pub(super) fn resolve_ca_id(state: &State, reference: &str) -> Result<String, ApiError> {
        if reference.is_empty() || state.local_ca.is_named(reference) {
            return Ok(state.local_ca.id.clone());
        }
        state
            .find_external_ca(reference)
            .map(|index| state.external_cas[index].record.id.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!("field `ca_id`: CA {reference:?} not found"))
            })
    }

    pub(super) fn list_regtokens(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        list_response(
            &query,
            listed(&query, state.regtokens.iter(), RegToken::to_json),
        )
    }

    pub(super) fn create_regtoken(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let body: RegTokenRequest = if request.body.iter().all(u8::is_ascii_whitespace) {
            RegTokenRequest::default()
        } else {
            wire::parse(&request.body)?
        };
        let ca_id = Self::resolve_ca_id(&state, body.ca_id.as_deref().unwrap_or(""))?;
        let lifetime_text = body.lifetime.unwrap_or_default();
        let lifetime = parse_lifetime(&lifetime_text)
            .map_err(|message| ApiError::invalid_param(format!("field `lifetime`: {message}")))?;
        let now = self.now();
        let now_seconds = unix_seconds(now);
        let token = RegToken {
            sequence: state.next_sequence(),
            id: uuid_v4(),
            token: random_token(),
            ca_id,
            cert_duration: body
                .cert_duration
                .filter(|days| *days > 0)
                .unwrap_or(DEFAULT_CERT_DURATION_DAYS),
            client_management_profile_id: body
                .client_management_profile_id
                .filter(|profile| !profile.is_empty()),
            lifetime: lifetime_text,
            valid_until: lifetime.map(|lifetime| unix_seconds(now + lifetime)),
            max_clients: body.max_clients.filter(|max| *max > 0),
            clients_registered: 0,
            name_prefix: body.name_prefix.unwrap_or_default(),
            label: Value::Object(body.label.unwrap_or_default()),
            labels: Value::Object(body.labels.unwrap_or_default()),
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
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let index = index_of(&state.regtokens, reference)?;
        respond(200, state.regtokens[index].to_json())
    }

    pub(super) fn patch_regtoken(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let _writes = self.lock_token_writes();
        let mut state = self.lock();
        let index = index_of(&state.regtokens, reference)?;
        let body: RegTokenRequest = wire::parse(&request.body)?;
        let mut token = state.regtokens[index].clone();
        let now = self.now();
        // `""` leaves the CA as it is (Terraform sends every field).
        if let Some(reference) = body
            .ca_id
            .as_deref()
            .filter(|reference| !reference.is_empty())
        {
            token.ca_id = Self::resolve_ca_id(&state, reference)?;
        }
        if let Some(days) = body.cert_duration {
            token.cert_duration = if days == 0 {
                DEFAULT_CERT_DURATION_DAYS
            } else {
                days
            };
        }
        if let Some(text) = body.lifetime {
            let lifetime = parse_lifetime(&text).map_err(|message| {
                ApiError::invalid_param(format!("field `lifetime`: {message}"))
            })?;
            token.valid_until = lifetime.map(|lifetime| unix_seconds(now + lifetime));
            token.lifetime = text;
        }
        if let Some(max_clients) = body.max_clients {
            token.max_clients = (max_clients > 0).then_some(max_clients);
        }
        if let Some(prefix) = body.name_prefix {
            token.name_prefix = prefix;
        }
        if let Some(labels) = body.labels {
            token.labels = Value::Object(labels);
        }
        if let Some(label) = body.label {
            token.label = Value::Object(label);
        }
        if let Some(profile) = body.client_management_profile_id {
            token.client_management_profile_id = (!profile.is_empty()).then_some(profile);
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
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let _writes = self.lock_token_writes();
        let mut state = self.lock();
        let index = index_of(&state.regtokens, reference)?;
        let id = state.regtokens[index].id.clone();
        state
            .store
            .delete(REGTOKENS, &id)
            .map_err(ApiError::storage)?;
        state.regtokens.remove(index);
        no_content()
    }
}
