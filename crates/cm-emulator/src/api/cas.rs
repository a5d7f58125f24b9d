//! CAs: external CAs (`/v1/ca/external-cas`) and the emulator's local CA
//! (`/v1/ca/local-cas`).

use super::query::{Resource, found, index_of, list_response, listed};
use super::wire::{CreateExternalCa, PatchExternalCa};
use super::*;
use crate::certs::parse_pem_chain;
use crate::state::{EXTERNAL_CAS, ExternalCa, ExternalCaRecord, LocalCa};
use crate::util::uuid_v4;

/// The list filters CM documents for CAs.
const CA_FILTERS: &[&str] = &["name", "subject", "issuer", "serialNumber", "id"];

impl Resource for ExternalCa {
    const KIND: &'static str = "external CA";
    const FILTERS: &'static [&'static str] = CA_FILTERS;

    fn answers_to(&self, reference: &str) -> bool {
        self.is_named(reference)
    }

    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>> {
        match filter {
            "id" => Some(self.record.id.as_str().into()),
            "name" => Some(self.record.name.as_str().into()),
            _ => certificate_field(&self.facts, filter),
        }
    }
}

impl Resource for LocalCa {
    const KIND: &'static str = "local CA";
    const FILTERS: &'static [&'static str] = CA_FILTERS;

    fn answers_to(&self, reference: &str) -> bool {
        self.is_named(reference)
    }

    fn filter_field(&self, filter: &str) -> Option<std::borrow::Cow<'_, str>> {
        match filter {
            "id" => Some(self.id.as_str().into()),
            "name" => Some(self.name.as_str().into()),
            _ => certificate_field(&self.facts, filter),
        }
    }
}

/// A CA's value for the certificate filters (`subject`, `issuer`, `serialNumber`).
fn certificate_field<'a>(
    facts: &'a CertificateFacts,
    filter: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    match filter {
        "subject" => Some(facts.subject.as_str().into()),
        "issuer" => Some(facts.issuer.as_str().into()),
        "serialNumber" => Some(facts.serial_number.as_str().into()),
        _ => None,
    }
}

impl Api {
    // ---- External CAs ---------------------------------------------------------------------

    pub(super) fn list_external_cas(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        list_response(
            &query,
            listed(&query, state.external_cas.iter(), ExternalCa::to_json),
        )
    }

    pub(super) fn create_external_ca(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let body: CreateExternalCa = wire::parse(&request.body)?;
        let name = body.name.as_deref();
        let chain = parse_pem_chain(&body.cert)
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        let facts = CertificateFacts::parse(chain[0].clone())
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        if !facts.is_ca {
            return Err(ApiError::certificate_invalid(
                "field `cert`: not a CA certificate (basicConstraints CA:TRUE is missing)",
            ));
        }
        let now = self.now();
        if !facts.valid_at(now) {
            return Err(ApiError::certificate_invalid(format!(
                "field `cert`: outside its validity period ({} to {})",
                rfc3339(facts.not_before),
                rfc3339(facts.not_after)
            )));
        }
        let id = uuid_v4();
        let name = name.map_or_else(|| format!("externalca-{id}"), str::to_owned);
        if name.trim().is_empty() {
            return Err(ApiError::invalid_param("field `name`: must not be empty"));
        }
        if state.find_external_ca(&name).is_some() {
            return Err(ApiError::conflict(format!(
                "an external CA named {name:?} already exists"
            )));
        }
        let now = unix_seconds(now);
        let record = ExternalCaRecord {
            sequence: state.next_sequence(),
            id: id.clone(),
            name,
            cert: facts.pem(),
            parent: body.parent.filter(|parent| !parent.is_empty()),
            allow_client_authentication: body.allow_client_authentication.unwrap_or(true),
            allow_user_authentication: body.allow_user_authentication.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        state
            .store
            .put(EXTERNAL_CAS, &id, &record)
            .map_err(ApiError::storage)?;
        let ca = ExternalCa { record, facts };
        let json = ca.to_json();
        state.external_cas.push(ca);
        respond(201, json)
    }

    pub(super) fn get_external_ca(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let index = index_of(&state.external_cas, reference)?;
        respond(200, state.external_cas[index].to_json())
    }

    pub(super) fn patch_external_ca(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = index_of(&state.external_cas, reference)?;
        let body: PatchExternalCa = wire::parse(&request.body)?;
        let allow_client = body.allow_client_authentication;
        let allow_user = body.allow_user_authentication;
        let now = self.now_seconds();
        let mut ca = state.external_cas[index].clone();
        if let Some(flag) = allow_client {
            ca.record.allow_client_authentication = flag;
        }
        if let Some(flag) = allow_user {
            ca.record.allow_user_authentication = flag;
        }
        ca.record.updated_at = now;
        state
            .store
            .put(EXTERNAL_CAS, &ca.record.id, &ca.record)
            .map_err(ApiError::storage)?;
        let json = ca.to_json();
        state.external_cas[index] = ca;
        respond(200, json)
    }

    pub(super) fn delete_external_ca(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = index_of(&state.external_cas, reference)?;
        let id = state.external_cas[index].record.id.clone();
        // In use: refused with what uses it, so nothing is left dangling (a token bound to a CA
        // that is gone, or a trust list naming it). The emulator's choice: CM's answer is not
        // public (docs/protocol.md).
        let mut users = Vec::new();
        if state.web.trusted_external.contains(&id) {
            users.push("the web interface's trusted_cas.external".to_string());
        }
        let tokens: Vec<&str> = state
            .regtokens
            .iter()
            .filter(|token| token.ca_id == id)
            .map(|token| token.id.as_str())
            .collect();
        if !tokens.is_empty() {
            users.push(format!("registration token(s) {}", tokens.join(", ")));
        }
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "external CA {reference:?} is in use by {}: remove it from the web interface's \
                 trusted CAs and delete those tokens (or bind them to another CA) first",
                users.join(" and ")
            )));
        }
        state
            .store
            .delete(EXTERNAL_CAS, &id)
            .map_err(ApiError::storage)?;
        state.external_cas.remove(index);
        no_content()
    }

    // ---- Local CA -------------------------------------------------------------------------

    pub(super) fn list_local_cas(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        list_response(
            &query,
            listed(&query, std::iter::once(&state.local_ca), LocalCa::to_json),
        )
    }

    pub(super) fn get_local_ca(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        respond(
            200,
            found(std::iter::once(&state.local_ca), reference)?.to_json(),
        )
    }
}
