//! The web interface and service restarts: `/v1/configs/interfaces/web`, `/v1/system/services/restart`.

use super::*;

impl Api {
    // ---- Web interface --------------------------------------------------------------------

    pub(super) fn web_json(&self, state: &State) -> Value {
        json!({
            "name": "web",
            "mode": "tls-cert-opt-pw-opt",
            "port": self.web_port,
            "cert_user_field": "CN",
            "trusted_cas": {
                "external": state.web.trusted_external,
                "local": state.web.trusted_local,
            },
            "updated_at": state.web.updated_at.map(rfc3339),
        })
    }

    pub(super) fn get_web(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        respond(200, self.web_json(&state))
    }

    pub(super) fn patch_web(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        if let Some(trusted) = body.optional_object("trusted_cas")? {
            let trusted = JsonBody {
                object: trusted.clone(),
            };
            let external = trusted
                .optional_string_array("external")
                .map_err(|error| prefix_field(error, "trusted_cas."))?;
            let local = trusted
                .optional_string_array("local")
                .map_err(|error| prefix_field(error, "trusted_cas."))?;
            if let Some(external) = external {
                let mut ids: Vec<String> = Vec::new();
                for reference in external {
                    let index = state.find_external_ca(&reference).ok_or_else(|| {
                        ApiError::not_found(format!(
                            "field `trusted_cas.external`: external CA {reference:?} not found"
                        ))
                    })?;
                    let id = state.external_cas[index].record.id.clone();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                state.web.trusted_external = ids;
            }
            if let Some(mut local) = local {
                local.dedup();
                state.web.trusted_local = local;
            }
            state.web.updated_at = Some(self.now_seconds());
            state.save_web().map_err(ApiError::storage)?;
        }
        respond(200, self.web_json(&state))
    }

    pub(super) fn restart_services(
        self: &Arc<Self>,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        {
            let mut state = self.lock();
            self.require_admin(&mut state, request)?;
        }
        let body = JsonBody::parse(&request.body)?;
        let services = body
            .optional_string_array("services")?
            .ok_or_else(|| ApiError::bad_request("missing field `services`"))?;
        let delay = body
            .optional_u64("delay")?
            .unwrap_or(DEFAULT_RESTART_DELAY_SECONDS);
        if services.iter().any(|service| service == "web") {
            if delay == 0 {
                self.apply_web_restart();
            } else {
                let api = Arc::clone(self);
                self.runtime.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(delay)).await;
                    let _ = tokio::task::spawn_blocking(move || api.apply_web_restart()).await;
                });
            }
        }
        respond(202, json!({"services": services, "delay": delay}))
    }
}
