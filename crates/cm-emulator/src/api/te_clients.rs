//! The transparent-encryption view of the registered agents:
//! `/v1/transparent-encryption/clients` and `/{id}`, with the fields of Terraform's
//! `CTEClientsListJSON` (`internal/provider/cte/schema_cte.go`). The emulator knows only what
//! registration and heartbeats tell it: the other fields have fixed, documented values.

use std::borrow::Cow;

use super::clients::CLIENT_FILTERS;
use super::query::list_response;
use super::views::TeClientView;
use super::*;
use crate::state::{ACCOUNT, Client};
use crate::util::rfc3339_micros;

/// A heartbeat within this many seconds counts as healthy (the agent's default interval is
/// 60 minutes; twice that, invented).
const HEALTHY_WITHIN_SECONDS: i64 = 2 * 3600;

impl Api {
    fn te_client_json(&self, client: &Client) -> Value {
        let health = match client.last_seen {
            Some(seen) if self.now_seconds() - seen <= HEALTHY_WITHIN_SECONDS => "HEALTHY",
            Some(_) => "ERROR",
            None => "UNKNOWN",
        };
        TeClientView {
            id: &client.id,
            uri: format!("kylo:kylo:vorpal:clients:{}", client.id),
            account: ACCOUNT,
            application: "ncryptify:gemalto:admin:apps:kylo",
            dev_account: "ncryptify:gemalto:admin:accounts:gemalto",
            created_at: rfc3339_micros(client.created_at),
            updated_at: rfc3339_micros(client.updated_at),
            name: &client.name,
            os_type: "",
            os_sub_type: "",
            client_reg_id: &client.reg_token_id,
            server_host_name: "",
            description: &client.description,
            client_locked: false,
            system_locked: false,
            password_creation_method: "GENERATE",
            client_version: "",
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
        let index = Self::client_index(&state, reference)?;
        respond(200, self.te_client_json(&state.clients[index]))
    }
}
