//! Interfaces: `/v1/configs/interfaces` (the emulator has one, `web`) and, when the emulator
//! behaves as CM 2.18 and later, `/v1/trusted-cas` and `/v1/trusted-cas-create-many`.

use super::query::list_response;
use super::views::{InterfaceView, TrustedCasView};
use super::wire::{
    PatchInterface, TrustedCaEntryRequest, TrustedCasBulkRequest, TrustedCasRequest,
};
use super::*;
use crate::state::TrustedCasWritten;
use crate::util::rfc3339_micros;

/// The one interface's name.
const WEB: &str = "web";

/// `local_auto_gen_attributes` until one is written: the shape of CM's own sample (its admin
/// guide's `ksctl interfaces list`), "always" with a `names` entry as Terraform's provider says
/// CM returns it; the values are **invented**.
fn default_auto_gen_attributes() -> Value {
    serde_json::json!({
        "cn": "cm-emulator",
        "dns_names": [],
        "email_addresses": [],
        "ip_addresses": [],
        "names": [{"C": "", "ST": "", "L": "", "O": "", "OU": ""}],
    })
}

impl Api {
    /// The web interface as CM shows it (fields of Terraform's `CMInterfaceJSON`,
    /// `cm/schema_cm.go`); `trusted_cas` as the administrator wrote them.
    pub(super) fn web_json(&self, state: &State) -> Value {
        let web = &state.web;
        let trusted = web
            .trusted_cas_as_written
            .clone()
            .unwrap_or_else(|| TrustedCasWritten {
                external: web.trusted_external.clone(),
                // Never written: the local CA by its URI, as in CM's own sample (its admin
                // guide's `ksctl interfaces list`).
                local: web
                    .trusted_local
                    .iter()
                    .map(|id| {
                        if *id == state.local_ca.id {
                            state.local_ca.uri()
                        } else {
                            id.clone()
                        }
                    })
                    .collect(),
            });
        let created_at = web.created_at.unwrap_or_default();
        InterfaceView {
            id: web.id.as_deref().unwrap_or_default(),
            name: WEB,
            enabled: true,
            interface_type: "web",
            mode: web.mode.as_deref().unwrap_or("tls-cert-opt-pw-opt"),
            port: self.web_port,
            network_interface: "all",
            cert_user_field: web.cert_user_field.as_deref().unwrap_or("CN"),
            minimum_tls_version: web.minimum_tls_version.as_deref().unwrap_or("tls_1_2"),
            maximum_tls_version: web.maximum_tls_version.as_deref().unwrap_or("tls_1_3"),
            auto_gen_ca_id: state.local_ca.uri(),
            default_connection: "local_account",
            trusted_cas: TrustedCasView {
                external: &trusted.external,
                local: &trusted.local,
            },
            tls_ciphers: crate::tls::ciphers()
                .into_iter()
                .map(|cipher| {
                    serde_json::json!({
                        "cipher_suite": cipher.name,
                        "enabled": !web.disabled_ciphers.contains(&cipher.name),
                        "hex_code": cipher.hex_code,
                    })
                })
                .collect(),
            local_auto_gen_attributes: web
                .kept
                .get("local_auto_gen_attributes")
                .cloned()
                .unwrap_or_else(default_auto_gen_attributes),
            kept: web
                .kept
                .iter()
                .filter(|(field, _)| *field != "local_auto_gen_attributes")
                .map(|(field, value)| (field.clone(), value.clone()))
                .collect(),
            created_at: rfc3339_micros(created_at),
            updated_at: rfc3339_micros(web.updated_at.unwrap_or(created_at)),
        }
        .to_json()
    }

    pub(super) fn list_interfaces(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        let query = request.query();
        let field = |filter: &str| -> Option<std::borrow::Cow<'_, str>> {
            matches!(filter, "name" | "interface_type").then_some(WEB.into())
        };
        let items = if query.matches(&["name", "interface_type"], field) {
            vec![self.web_json(&state)]
        } else {
            Vec::new()
        };
        list_response(&query, items)
    }

    pub(super) fn get_interface(&self, _admin: Admin, name: &str) -> Result<ApiResponse, ApiError> {
        let state = self.lock();
        the_only("interface", name, WEB)?;
        respond(200, self.web_json(&state))
    }

    pub(super) fn patch_interface(
        self: &Arc<Self>,
        _admin: Admin,
        request: &ApiRequest,
        name: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        the_only("interface", name, WEB)?;
        let body: PatchInterface = wire::parse(&request.body)?;
        // CM answers 409 "conflict with the current state" to an unchanged port resent
        // (Terraform's newest `resource_interface.go`, from the provider authors' live tests;
        // it sends `port` only to change it) and accepts a changed one, moving the interface;
        // the emulator cannot move its listener, so that is refused as not implemented.
        if let Some(port) = body.port {
            if port == u64::from(self.web_port) {
                return Err(ApiError::conflict(format!(
                    "field `port`: conflict with the current state: {port} is this interface's \
                     port already (send `port` only to change it)"
                )));
            }
            return Err(ApiError::invalid_param(format!(
                "field `port`: changing the web interface's port (to {port}) is not implemented \
                 by the emulator: it listens where it was started (--listen)"
            )));
        }
        // Everything is checked before anything changes.
        let (tls_changed, disabled_ciphers) = Self::check_tls_settings(&state, &body)?;
        if body.kmip_enable_hard_delete.is_some_and(|value| value > 1) {
            return Err(ApiError::invalid_param(
                "field `kmip_enable_hard_delete`: 0 or 1",
            ));
        }
        let trusted_changed = body.trusted_cas.is_some();
        match &body.trusted_cas {
            None => {}
            Some(Some(trusted)) => Self::set_trusted_cas(&mut state, trusted)?,
            Some(None) => {
                let empty = TrustedCasRequest {
                    external: Some(None),
                    local: Some(None),
                };
                Self::set_trusted_cas(&mut state, &empty)?;
            }
        }
        let web = &mut state.web;
        if let Some(disabled) = disabled_ciphers {
            web.disabled_ciphers = disabled;
        }
        let kept = [
            (
                "allow_unregistered",
                body.allow_unregistered.map(Value::from),
            ),
            ("auto_registration", body.auto_registration.map(Value::from)),
            (
                "kmip_enable_hard_delete",
                body.kmip_enable_hard_delete.map(Value::from),
            ),
            ("meta", body.meta.map(Value::Object)),
            ("custom_uid_size", body.custom_uid_size.map(Value::from)),
            ("custom_uid_v2", body.custom_uid_v2.map(Value::from)),
            (
                "auto_gen_days_before_expiry",
                body.auto_gen_days_before_expiry.map(Value::from),
            ),
            (
                "local_auto_gen_attributes",
                body.local_auto_gen_attributes.map(Value::Object),
            ),
        ];
        for (field, value) in kept {
            if let Some(value) = value {
                web.kept.insert(field.to_owned(), value);
            }
        }
        for (value, slot) in [
            (body.mode, &mut web.mode),
            (body.minimum_tls_version, &mut web.minimum_tls_version),
            (body.maximum_tls_version, &mut web.maximum_tls_version),
            (body.cert_user_field, &mut web.cert_user_field),
        ] {
            if let Some(value) = value {
                *slot = (!value.is_empty()).then_some(value);
            }
        }
        web.updated_at = Some(self.now_seconds());
        state.save_web().map_err(ApiError::storage)?;
        let json = self.web_json(&state);
        drop(state);
        // CM applies trusted-CA, mode and TLS-version changes at once, restarting its services
        // (docs/protocol.md cites its guide); `at-web-restart` waits for the restart.
        if (trusted_changed || tls_changed)
            && self.trusted_ca_changes == TrustedCaChanges::Immediately
        {
            self.apply_web_restart();
        }
        respond(200, json)
    }

    /// Checks `mode`, `minimum_tls_version`, `maximum_tls_version` and `tls_ciphers` against
    /// CM's enumerations and what the emulator implements (`""` resets to the default), before
    /// anything is stored; says whether one of them is given, and the cipher suites to turn off
    /// when `tls_ciphers` is given.
    fn check_tls_settings(
        state: &State,
        body: &PatchInterface,
    ) -> Result<(bool, Option<Vec<String>>), ApiError> {
        /// The value in force after the PATCH: the one sent, the default for `""`, else the
        /// stored one.
        fn after<'a>(sent: &'a Option<String>, stored: &'a Option<String>) -> Option<&'a str> {
            match sent.as_deref() {
                Some("") => None,
                Some(value) => Some(value),
                None => stored.as_deref(),
            }
        }
        if let Some(mode) = after(&body.mode, &None) {
            crate::tls::client_certificates(mode)
                .map_err(|message| ApiError::invalid_param(format!("field `mode`: {message}")))?;
        }
        let version = |field: &str, sent, stored, default| match after(sent, stored) {
            Some(name) => crate::tls::tls_version(name)
                .map_err(|message| ApiError::invalid_param(format!("field `{field}`: {message}"))),
            None => Ok(default),
        };
        let minimum = version(
            "minimum_tls_version",
            &body.minimum_tls_version,
            &state.web.minimum_tls_version,
            crate::tls::TlsVersion::Tls12,
        )?;
        let maximum = version(
            "maximum_tls_version",
            &body.maximum_tls_version,
            &state.web.maximum_tls_version,
            crate::tls::TlsVersion::Tls13,
        )?;
        if minimum > maximum {
            return Err(ApiError::invalid_param(
                "field `minimum_tls_version`: above `maximum_tls_version`",
            ));
        }
        let disabled = match &body.tls_ciphers {
            None => None,
            Some(members) => Some(Self::check_ciphers(members)?),
        };
        let disabled_after = disabled.as_ref().unwrap_or(&state.web.disabled_ciphers);
        Self::check_a_cipher_per_version(disabled_after, minimum, maximum)?;
        let changed = body.mode.is_some()
            || body.minimum_tls_version.is_some()
            || body.maximum_tls_version.is_some()
            || body.tls_ciphers.is_some();
        Ok((changed, disabled))
    }

    /// The suites `tls_ciphers` turns off. It must name every suite the emulator has, each once
    /// (CM: "Adding or removing TLS cipher suites is not allowed", as Terraform's provider
    /// quotes it); `[]` turns every suite on again.
    fn check_ciphers(members: &[wire::TlsCipherRequest]) -> Result<Vec<String>, ApiError> {
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let known = crate::tls::ciphers();
        let mut named: Vec<&str> = members
            .iter()
            .map(|member| member.cipher_suite.as_str())
            .collect();
        named.sort_unstable();
        let mut expected: Vec<&str> = known.iter().map(|cipher| cipher.name.as_str()).collect();
        expected.sort_unstable();
        if named != expected {
            return Err(ApiError::invalid_param(format!(
                "field `tls_ciphers`: Adding or removing TLS cipher suites is not allowed; list \
                 each of {} once and set `enabled`",
                expected.join(", ")
            )));
        }
        Ok(members
            .iter()
            .filter(|member| !member.enabled)
            .map(|member| member.cipher_suite.clone())
            .collect())
    }

    /// Every TLS version the interface speaks keeps at least one cipher suite.
    fn check_a_cipher_per_version(
        disabled: &[String],
        minimum: crate::tls::TlsVersion,
        maximum: crate::tls::TlsVersion,
    ) -> Result<(), ApiError> {
        use crate::tls::TlsVersion;
        for (version, tls13, name) in [
            (TlsVersion::Tls12, false, "TLS 1.2"),
            (TlsVersion::Tls13, true, "TLS 1.3"),
        ] {
            let spoken = (minimum..=maximum).contains(&version);
            let left = crate::tls::ciphers()
                .iter()
                .any(|cipher| cipher.tls13 == tls13 && !disabled.contains(&cipher.name));
            if spoken && !left {
                return Err(ApiError::invalid_param(format!(
                    "field `tls_ciphers`: every {name} cipher suite would be off while the \
                     interface speaks {name}; keep one on, or change the TLS versions"
                )));
            }
        }
        Ok(())
    }

    /// Replaces the trusted lists given (ids, names or URIs; kept as written, resolved to ids
    /// for TLS).
    fn set_trusted_cas(state: &mut State, trusted: &TrustedCasRequest) -> Result<(), ApiError> {
        let mut written =
            state
                .web
                .trusted_cas_as_written
                .clone()
                .unwrap_or_else(|| TrustedCasWritten {
                    external: state.web.trusted_external.clone(),
                    local: state.web.trusted_local.clone(),
                });
        // Both lists are resolved before either is assigned: a reference not found changes
        // nothing.
        let mut external_ids = None;
        if let Some(external) = &trusted.external {
            let external = external.as_deref().unwrap_or_default();
            let mut ids: Vec<String> = Vec::new();
            for reference in external {
                let index = state.find_external_ca(reference).ok_or_else(|| {
                    ApiError::not_found(format!(
                        "field `trusted_cas.external`: external CA {reference:?} not found"
                    ))
                })?;
                let id = state.external_cas[index].record.id.clone();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            external_ids = Some(ids);
            written.external = external.to_vec();
        }
        if let Some(local) = &trusted.local {
            let local = local.as_deref().unwrap_or_default();
            let mut ids: Vec<String> = Vec::new();
            for reference in local {
                if !state.local_ca.is_named(reference) {
                    return Err(ApiError::not_found(format!(
                        "field `trusted_cas.local`: local CA {reference:?} not found"
                    )));
                }
                if !ids.contains(&state.local_ca.id) {
                    ids.push(state.local_ca.id.clone());
                }
            }
            state.web.trusted_local = ids;
            written.local = local.to_vec();
        }
        if let Some(ids) = external_ids {
            state.web.trusted_external = ids;
        }
        state.web.trusted_cas_as_written = Some(written);
        Ok(())
    }

    fn trusted_cas_endpoint_available(&self) -> Result<(), ApiError> {
        match self.trusted_ca_changes {
            TrustedCaChanges::Immediately => Ok(()),
            TrustedCaChanges::AtWebRestart => Err(ApiError::not_found(
                "no such endpoint: /api/v1/trusted-cas (the emulator behaves as CM before 2.18; \
                 start it with --trusted-ca-changes immediately)",
            )),
        }
    }

    /// The trusted-CA entries of the web interface, in CM 2.18's `/v1/trusted-cas` shape
    /// (`id`, `ca_id`, `ca_type`, `service`, as Thales's Terraform provider reads them in
    /// `internal/provider/cm/resource_trusted_cas.go`). An entry's id is its CA's id
    /// (invented: the emulator has one service, so a CA is trusted at most once).
    fn trusted_ca_entries(state: &State) -> Vec<Value> {
        let entry = |id: &str, ca_type: &str| json!({"id": id, "ca_id": id, "ca_type": ca_type, "service": WEB});
        state
            .web
            .trusted_external
            .iter()
            .map(|id| entry(id, "external"))
            .chain(state.web.trusted_local.iter().map(|id| entry(id, "local")))
            .collect()
    }

    /// `GET /v1/trusted-cas` (CM 2.18 and later behaviour only).
    pub(super) fn list_trusted_cas(
        &self,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.trusted_cas_endpoint_available()?;
        let state = self.lock();
        let query = request.query();
        let items = Self::trusted_ca_entries(&state)
            .into_iter()
            .filter(|entry| {
                query.matches(&["service", "ca_type", "ca_id"], |filter| {
                    entry[filter].as_str().map(|value| value.to_owned().into())
                })
            })
            .collect();
        list_response(&query, items)
    }

    /// Adds entries and applies them at once.
    fn add_trusted_cas(
        self: &Arc<Self>,
        entries: &[TrustedCaEntryRequest],
    ) -> Result<Vec<Value>, ApiError> {
        let mut state = self.lock();
        // All or nothing: the entries are checked on a copy.
        let mut web = state.web.clone();
        let mut added = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            if entry.service != WEB {
                return Err(ApiError::invalid_param(format!(
                    "field `trusted_cas[{index}].service`: the emulator has only the \"web\" service, not {:?}",
                    entry.service
                )));
            }
            let local = state.local_ca.is_named(&entry.ca_id);
            if local {
                let id = state.local_ca.id.clone();
                if !web.trusted_local.contains(&id) {
                    web.trusted_local.push(id.clone());
                }
                added.push(json!({"id": id, "ca_id": id, "ca_type": "local", "service": WEB}));
            } else {
                let position = state.find_external_ca(&entry.ca_id).ok_or_else(|| {
                    ApiError::not_found(format!("field `ca_id`: CA {:?} not found", entry.ca_id))
                })?;
                let id = state.external_cas[position].record.id.clone();
                if !web.trusted_external.contains(&id) {
                    web.trusted_external.push(id.clone());
                }
                added.push(json!({"id": id, "ca_id": id, "ca_type": "external", "service": WEB}));
            }
        }
        state.web = web;
        state.web.trusted_cas_as_written = None;
        state.web.updated_at = Some(self.now_seconds());
        state.save_web().map_err(ApiError::storage)?;
        drop(state);
        self.apply_web_restart();
        Ok(added)
    }

    /// `POST /v1/trusted-cas` `{"ca_id","service","ca_type"?}` (CM 2.18 and later only).
    pub(super) fn create_trusted_ca(
        self: &Arc<Self>,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.trusted_cas_endpoint_available()?;
        let entry: TrustedCaEntryRequest = wire::parse(&request.body)?;
        let mut added = self.add_trusted_cas(std::slice::from_ref(&entry))?;
        respond(201, added.pop().unwrap_or(Value::Null))
    }

    /// `POST /v1/trusted-cas-create-many` `{"trusted_cas":[..],"auto_restart"?}` → `{"success":[..]}`.
    pub(super) fn create_many_trusted_cas(
        self: &Arc<Self>,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.trusted_cas_endpoint_available()?;
        let body: TrustedCasBulkRequest = wire::parse(&request.body)?;
        let added = self.add_trusted_cas(&body.trusted_cas)?;
        respond(201, json!({"success": added}))
    }

    /// `DELETE /v1/trusted-cas/{id}` (CM 2.18 and later only): applies at once.
    pub(super) fn delete_trusted_ca(
        self: &Arc<Self>,
        _admin: Admin,
        id: &str,
    ) -> Result<ApiResponse, ApiError> {
        self.trusted_cas_endpoint_available()?;
        let mut state = self.lock();
        let before = state.web.trusted_external.len() + state.web.trusted_local.len();
        state.web.trusted_external.retain(|trusted| trusted != id);
        state.web.trusted_local.retain(|trusted| trusted != id);
        if state.web.trusted_external.len() + state.web.trusted_local.len() == before {
            return Err(ApiError::not_found(format!(
                "trusted CA entry {id:?} not found"
            )));
        }
        state.web.trusted_cas_as_written = None;
        state.web.updated_at = Some(self.now_seconds());
        state.save_web().map_err(ApiError::storage)?;
        drop(state);
        self.apply_web_restart();
        no_content()
    }
}
