//! The transparent-encryption view of the registered agents:
//! `/v1/transparent-encryption/clients` and `/{id}`, and their deletion as the public clients
//! send it (`PATCH .../{id}/delete`, `PATCH .../delete`), with the fields of Terraform's
//! `CTEClientsListJSON` (`internal/provider/cte/schema_cte.go`). The emulator knows only what
//! registration and heartbeats tell it: the other fields have fixed, documented values.

use std::borrow::Cow;

use super::clients::CLIENT_FILTERS;
use super::query::list_response;
use super::views::TeClientView;
use super::*;
use crate::state::{ACCOUNT, Client, State};
use crate::util::rfc3339_micros;

/// A heartbeat within this many seconds counts as healthy (the agent's default interval is
/// 60 minutes; twice that, invented).
const HEALTHY_WITHIN_SECONDS: i64 = 2 * 3600;

/// The URI prefix of the transparent-encryption view of a client.
const TE_CLIENT_URI_PREFIX: &str = "kylo:kylo:vorpal:clients:";

impl Api {
    fn te_client_json(&self, client: &Client) -> Value {
        let health = match client.last_seen {
            Some(seen) if self.now_seconds() - seen <= HEALTHY_WITHIN_SECONDS => "HEALTHY",
            Some(_) => "ERROR",
            None => "UNKNOWN",
        };
        TeClientView {
            id: &client.id,
            uri: format!("{TE_CLIENT_URI_PREFIX}{}", client.id),
            account: ACCOUNT,
            application: "ncryptify:gemalto:admin:apps:kylo",
            dev_account: "ncryptify:gemalto:admin:accounts:gemalto",
            created_at: rfc3339_micros(client.created_at),
            updated_at: rfc3339_micros(client.updated_at),
            name: &client.name,
            os_type: &client.os_type,
            os_sub_type: "",
            client_reg_id: &client.reg_token_id,
            server_host_name: "",
            description: &client.description,
            client_locked: false,
            system_locked: false,
            password_creation_method: "GENERATE",
            client_version: &client.client_version,
            registration_allowed: true,
            communication_enabled: true,
            capabilities: "",
            enabled_capabilities: "",
            protection_mode: "",
            client_type: "FS",
            profile_name: "DefaultClientProfile",
            profile_id: "",
            ldt_enabled: false,
            client_health_status: health,
            errors: "",
            warnings: "",
            client_errors: "",
            client_warnings: "",
            fam_enabled: false,
            fam_state: "",
            dps_enabled: false,
            client_mfa_enabled: false,
            del_client: false,
            enable_domain_sharing: false,
            max_num_cache_log: 0,
            max_space_cache_log: 0,
            labels: serde_json::Map::new(),
            sha256_fingerprint: &client.cert_fingerprint,
        }
        .to_json()
    }

    pub(super) fn list_te_clients(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        self.require_admin(&state, request)?;
        let query = request.query();
        let items = state
            .clients
            .iter()
            .filter(|client| {
                query.matches(CLIENT_FILTERS, |filter| -> Option<Cow<'_, str>> {
                    client.filter_field(filter)
                })
            })
            .map(|client| self.te_client_json(client))
            .collect();
        list_response(&query, items)
    }

    pub(super) fn get_te_client(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        self.require_admin(&state, request)?;
        let index = Self::te_client_index(&state, reference)?;
        respond(200, self.te_client_json(&state.clients[index]))
    }

    /// A client by id, name, either of its URIs, or its transparent-encryption URI.
    fn te_client_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        Self::client_index(
            state,
            reference
                .strip_prefix(TE_CLIENT_URI_PREFIX)
                .unwrap_or(reference),
        )
    }

    /// `PATCH /v1/transparent-encryption/clients/{id}/delete` (Terraform's Delete, Ansible's
    /// `op_type: delete_id`): removes the client as `DELETE /v1/client-management/clients/{id}`
    /// does, and answers 200 with the client as it was, marked `del_client` (invented: the
    /// public clients show only that CM answers 2xx with a JSON object, which Ansible needs).
    pub(super) fn delete_te_client(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&state, request)?;
        let index = Self::te_client_index(&state, reference)?;
        let body: wire::DeleteTeClientRequest = if request.body.is_empty() {
            wire::DeleteTeClientRequest::default()
        } else {
            wire::parse(&request.body)?
        };
        if body.del_client == Some(false) {
            return Err(ApiError::bad_request(
                "field `del_client` is false: nothing to do (send true to delete the client)",
            ));
        }
        let removed = Self::remove_client(&mut state, index)?;
        let mut view = self.te_client_json(&removed);
        view["del_client"] = Value::Bool(true);
        respond(200, view)
    }

    /// `PATCH /v1/transparent-encryption/clients/delete` (Ansible's `op_type: delete`): removes
    /// every client of `client_id_list`, or none when one is not found (404 naming it). Answers
    /// 200 with the list of the removed clients' ids (invented, as above).
    pub(super) fn delete_te_clients(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&state, request)?;
        let body: wire::DeleteTeClientsRequest = wire::parse(&request.body)?;
        if body.client_id_list.is_empty() {
            return Err(ApiError::bad_request(
                "field `client_id_list` is empty: name the clients to delete",
            ));
        }
        let mut ids = Vec::with_capacity(body.client_id_list.len());
        for reference in &body.client_id_list {
            let index = Self::te_client_index(&state, reference)?;
            let id = state.clients[index].id.clone();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in &ids {
            let index = Self::client_index(&state, id)?;
            Self::remove_client(&mut state, index)?;
        }
        respond(200, serde_json::json!({ "client_id_list": ids }))
    }
}
