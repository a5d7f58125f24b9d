//! Service restarts: `/v1/system/services/restart`.

use std::time::Duration;

use super::wire::RestartRequest;
use super::*;

/// The services CM restarts when none are named (the emulator only acts on `web`).
const ALL_SERVICES: [&str; 2] = ["nae-kmip", "web"];

impl Api {
    /// `{"services"?, "delay"?}` → 202. Without `services` every service restarts; `delay`
    /// (seconds, default 5) is honoured: the web restart happens after it.
    pub(super) fn restart_services(
        self: &Arc<Self>,
        _admin: Admin,
        request: &ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let body: RestartRequest = if request.body.iter().all(u8::is_ascii_whitespace) {
            RestartRequest::default()
        } else {
            wire::parse(&request.body)?
        };
        let services = body
            .services
            .unwrap_or_else(|| ALL_SERVICES.map(str::to_owned).to_vec());
        let delay = body.delay.unwrap_or(DEFAULT_RESTART_DELAY_SECONDS);
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
