//! The transparent-encryption view of the registered agents:
//! `/v1/transparent-encryption/clients` and `/{id}`, and their deletion as the public clients
//! send it (`PATCH .../{id}/delete`, `PATCH .../delete`), with the fields of Terraform's
//! `CTEClientsListJSON` (`internal/provider/cte/schema_cte.go`). The emulator knows only what
//! registration and heartbeats tell it: the other fields have fixed, documented values.

use super::query::{index_of, list_response, listed};
use super::views::TeClientView;
use super::*;
use crate::state::{
    ACCOUNT, CLIENTS, Client, DEFAULT_PROFILE_ID, DEFAULT_PROFILE_NAME, TeSettings,
};
use crate::util::rfc3339_micros;

/// A heartbeat within this many seconds counts as healthy (the agent's default interval is
/// 60 minutes; twice that, invented).
const HEALTHY_WITHIN_SECONDS: i64 = 2 * 3600;

/// The URI prefix of the transparent-encryption view of a client.
pub(super) const TE_CLIENT_URI_PREFIX: &str = "kylo:kylo:vorpal:clients:";

impl Api {
    fn te_client_json(&self, client: &Client) -> Value {
        let health = match client.last_seen {
            Some(seen) if self.now_seconds() - seen <= HEALTHY_WITHIN_SECONDS => "HEALTHY",
            Some(_) => "ERROR",
            None => "UNKNOWN",
        };
        let settings = &client.settings;
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
            client_locked: settings.client_locked,
            system_locked: settings.system_locked,
            password_creation_method: &settings.password_creation_method,
            client_version: &client.client_version,
            registration_allowed: settings.registration_allowed,
            communication_enabled: settings.communication_enabled,
            capabilities: "",
            enabled_capabilities: &settings.enabled_capabilities,
            protection_mode: &settings.protection_mode,
            client_type: &settings.client_type,
            profile_name: DEFAULT_PROFILE_NAME,
            profile_id: DEFAULT_PROFILE_ID,
            ldt_enabled: false,
            client_health_status: health,
            errors: "",
            warnings: "",
            client_errors: "",
            client_warnings: "",
            fam_enabled: false,
            fam_state: "",
            dps_enabled: false,
            client_mfa_enabled: settings.client_mfa_enabled,
            del_client: false,
            enable_domain_sharing: settings.enable_domain_sharing,
            max_num_cache_log: settings.max_num_cache_log,
            max_space_cache_log: settings.max_space_cache_log,
            labels: &settings.labels,
            sha256_fingerprint: &client.cert_fingerprint,
        }
        .to_json()
    }

    pub(super) fn list_te_clients(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        list_response(
            &query,
            listed(&query, state.clients.iter(), |client| {
                self.te_client_json(client)
            }),
        )
    }

    pub(super) fn get_te_client(
        &self,
        _admin: Admin,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let index = index_of(&state.clients, reference)?;
        respond(200, self.te_client_json(&state.clients[index]))
    }

    /// `PATCH /v1/transparent-encryption/clients/{id}/delete` (Terraform's Delete, Ansible's
    /// `op_type: delete_id`): removes the client as `DELETE /v1/client-management/clients/{id}`
    /// does, and answers 200 with the client as it was, marked `del_client` (invented: the
    /// public clients show only that CM answers 2xx with a JSON object, which Ansible needs).
    pub(super) fn delete_te_client(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let index = index_of(&state.clients, reference)?;
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
    pub(super) fn delete_te_clients(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let body: wire::DeleteTeClientsRequest = wire::parse(&request.body)?;
        if body.client_id_list.is_empty() {
            return Err(ApiError::bad_request(
                "field `client_id_list` is empty: name the clients to delete",
            ));
        }
        let mut ids = Vec::with_capacity(body.client_id_list.len());
        for reference in &body.client_id_list {
            let index = index_of(&state.clients, reference)?;
            let id = state.clients[index].id.clone();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for id in &ids {
            let index = index_of(&state.clients, id)?;
            Self::remove_client(&mut state, index)?;
        }
        respond(200, serde_json::json!({ "client_id_list": ids }))
    }
}

impl Api {
    /// `POST /v1/transparent-encryption/clients` (Terraform's `ciphertrust_cte_client` Create,
    /// Ansible's `cte_client op_type: create`): a client without a certificate, in state
    /// `pending`, that the agent of that name completes when it registers (if
    /// `registration_allowed`). Answers 201 with the client as the transparent-encryption view
    /// shows it (Terraform reads `id`, `profile_id`, `profile_name`; Ansible `id`).
    pub(super) fn create_te_client(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let body: wire::TeClientRequest = wire::parse(&request.body)?;
        let mut state = self.lock();
        let name = body.name.as_deref().unwrap_or_default();
        if name.trim().is_empty() {
            return Err(ApiError::invalid_param(
                "field `name`: required, the host name the agent will register with",
            ));
        }
        if state.clients.iter().any(|client| client.name == name) {
            return Err(ApiError::conflict(format!(
                "a client named {name:?} already exists"
            )));
        }
        if let Some(profile) = body.profile_identifier.as_deref().filter(|p| !p.is_empty()) {
            the_only_profile("profile_identifier", profile)?;
        }
        let mut settings = TeSettings::default();
        if let Some(client_type) = body.client_type.as_deref().filter(|t| !t.is_empty()) {
            settings.client_type = one_of("client_type", client_type, TE_CLIENT_TYPES)?;
        }
        // Created clients start with both flags off unless the request turns them on (the
        // public clients always send them; Terraform's schema default is false).
        settings.communication_enabled = false;
        settings.registration_allowed = false;
        apply_te_settings(&mut settings, &body)?;
        let now = self.now_seconds();
        let client = Client {
            sequence: state.next_sequence(),
            id: crate::util::uuid_v4(),
            name: name.to_owned(),
            description: body.description.clone().unwrap_or_default(),
            client_type: "CTE".to_owned(),
            reg_token_id: String::new(),
            ca_id: String::new(),
            cert: String::new(),
            common_name: String::new(),
            cert_fingerprint: String::new(),
            cert_not_after: 0,
            previous_cert_fingerprint: None,
            previous_cert_accepted: false,
            previous_cert_not_after: None,
            created_at: now,
            updated_at: now,
            last_seen: None,
            os_type: String::new(),
            client_version: String::new(),
            settings,
        };
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let view = self.te_client_json(&client);
        state.clients.push(client);
        respond(201, view)
    }

    /// `PATCH /v1/transparent-encryption/clients/{id}` (Terraform's Update, Ansible's
    /// `op_type: patch`): changes the settings given. Terraform sends `name`, `client_type` and
    /// `id` as `""` (unchanged); a different name or type is refused. Answers 200 with the
    /// client (Terraform keeps the answer's `id`: it must be there).
    pub(super) fn patch_te_client(
        &self,
        _admin: Admin,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let body: wire::TeClientRequest = wire::parse(&request.body)?;
        let mut state = self.lock();
        let index = index_of(&state.clients, reference)?;
        let client = &state.clients[index];
        if let Some(name) = body.name.as_deref().filter(|name| !name.is_empty())
            && name != client.name
        {
            return Err(ApiError::invalid_param(format!(
                "field `name`: a client's name cannot be changed (it is {:?}); create a new client",
                client.name
            )));
        }
        if let Some(client_type) = body.client_type.as_deref().filter(|t| !t.is_empty())
            && client_type != client.settings.client_type
        {
            return Err(ApiError::invalid_param(format!(
                "field `client_type`: a client's type cannot be changed (it is {:?})",
                client.settings.client_type
            )));
        }
        if let Some(profile) = body.profile_id.as_deref().filter(|p| !p.is_empty()) {
            the_only_profile("profile_id", profile)?;
        }
        let mut changed = client.clone();
        apply_te_settings(&mut changed.settings, &body)?;
        if let Some(description) = &body.description {
            changed.description.clone_from(description);
        }
        changed.updated_at = self.now_seconds();
        state
            .store
            .put(CLIENTS, &changed.id, &changed)
            .map_err(ApiError::storage)?;
        let view = self.te_client_json(&changed);
        state.clients[index] = changed;
        respond(200, view)
    }
}

/// `client_type` values (Ansible's `cte_client` choices; Terraform's schema).
const TE_CLIENT_TYPES: &[&str] = &["FS", "CTE-U"];
/// `password_creation_method` values (the same sources).
const PASSWORD_CREATION_METHODS: &[&str] = &["GENERATE", "MANUAL"];

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, ApiError> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid_param(format!(
            "field `{field}`: {value:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

/// `Ok` for the emulator's one profile, by name or id; else 404 naming it.
fn the_only_profile(field: &str, profile: &str) -> Result<(), ApiError> {
    if profile == DEFAULT_PROFILE_ID {
        return Ok(());
    }
    the_only(
        &format!("field `{field}`: profile"),
        profile,
        DEFAULT_PROFILE_NAME,
    )
}

/// Copies the settings a create or update request gives.
fn apply_te_settings(
    settings: &mut TeSettings,
    body: &wire::TeClientRequest,
) -> Result<(), ApiError> {
    if body.del_client == Some(true) {
        return Err(ApiError::invalid_param(
            "field `del_client`: a client is deleted with PATCH /v1/transparent-encryption/clients/{id}/delete",
        ));
    }
    let flags = [
        (
            body.communication_enabled,
            &mut settings.communication_enabled,
        ),
        (
            body.registration_allowed,
            &mut settings.registration_allowed,
        ),
        (body.client_locked, &mut settings.client_locked),
        (body.system_locked, &mut settings.system_locked),
        (body.client_mfa_enabled, &mut settings.client_mfa_enabled),
        (
            body.enable_domain_sharing,
            &mut settings.enable_domain_sharing,
        ),
    ];
    for (given, kept) in flags {
        if let Some(value) = given {
            *kept = value;
        }
    }
    if let Some(method) = body
        .password_creation_method
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        settings.password_creation_method = one_of(
            "password_creation_method",
            method,
            PASSWORD_CREATION_METHODS,
        )?;
    }
    if let Some(capabilities) = &body.enabled_capabilities {
        settings.enabled_capabilities.clone_from(capabilities);
    }
    if let Some(mode) = &body.protection_mode {
        settings.protection_mode.clone_from(mode);
    }
    if let Some(count) = body.max_num_cache_log {
        settings.max_num_cache_log = count;
    }
    if let Some(space) = body.max_space_cache_log {
        settings.max_space_cache_log = space;
    }
    if let Some(labels) = &body.labels {
        settings.labels.clone_from(labels);
    }
    Ok(())
}
