//! CAs: external CAs (`/v1/ca/external-cas`) and the emulator's local CA
//! (`/v1/ca/local-cas`).

use super::query::list_response;
use super::wire::{CreateExternalCa, PatchExternalCa};
use super::*;
use crate::certs::parse_pem_chain;
use crate::state::{EXTERNAL_CAS, ExternalCa, ExternalCaRecord};
use crate::util::uuid_v4;

/// The list filters CM documents for CAs.
const CA_FILTERS: &[&str] = &["name", "subject", "issuer", "serialNumber", "id"];

impl Api {
    // ---- External CAs ---------------------------------------------------------------------

    pub(super) fn external_ca_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .find_external_ca(reference)
            .ok_or_else(|| ApiError::not_found(format!("external CA {reference:?} not found")))
    }

    pub(super) fn list_external_cas(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        let items = state
            .external_cas
            .iter()
            .filter(|ca| query.matches(CA_FILTERS, |filter| ca.filter_field(filter)))
            .map(ExternalCa::to_json)
            .collect();
        list_response(&query, items)
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
        let index = Self::external_ca_index(&state, reference)?;
        respond(200, state.external_cas[index].to_json())
    }

    pub(super) fn patch_external_ca(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = Self::external_ca_index(&state, reference)?;
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
        let index = Self::external_ca_index(&state, reference)?;
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
        let ca = &state.local_ca;
        let field = |filter: &str| -> Option<std::borrow::Cow<'_, str>> {
            match filter {
                "name" => Some(ca.name.as_str().into()),
                "subject" => Some(ca.facts.subject.as_str().into()),
                "issuer" => Some(ca.facts.issuer.as_str().into()),
                "serialNumber" => Some(ca.facts.serial_number.as_str().into()),
                "id" => Some(ca.id.as_str().into()),
                _ => None,
            }
        };
        let items = if query.matches(CA_FILTERS, field) {
            vec![ca.to_json()]
        } else {
            Vec::new()
        };
        list_response(&query, items)
    }

    pub(super) fn get_local_ca(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        if !state.local_ca.is_named(reference) {
            return Err(ApiError::not_found(format!(
                "local CA {reference:?} not found"
            )));
        }
        respond(200, state.local_ca.to_json())
    }
}
