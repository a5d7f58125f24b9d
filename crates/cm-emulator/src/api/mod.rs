//! The REST API: the router table, authentication and the handlers of `docs/protocol.md`.
//!
//! Handlers are synchronous and run on tokio's blocking pool: they take the state lock, check,
//! write the changed objects to disk and answer. The HTTP layer (`server.rs`) only turns hyper
//! requests into [`ApiRequest`]s and [`ApiResponse`]s back into hyper responses; the
//! in-process path (`in_process.rs`) does the same with the same helpers, without a socket.
//!
//! One file per resource: `auth.rs` (tokens, sessions), `cas.rs` (external and local CAs),
//! `interfaces.rs` (the web interface), `system.rs` (service restarts), `regtokens.rs`,
//! `clients.rs` (the admin view and the agent endpoints), `te_clients.rs` (the transparent
//! encryption view of the agents), `audit.rs` (client log records). Request bodies are the
//! serde types of `wire.rs`, answers those of `views.rs`; lists and filters are in `query.rs`; errors in `error.rs`.

mod audit;
mod auth;
mod cas;
mod clients;
mod error;
mod interfaces;
mod jwt;
mod query;
mod regtokens;
mod system;
mod te_clients;
mod views;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use hyper::Method;
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use serde_json::{Value, json};

use crate::certs::{CertificateFacts, sha256_fingerprint};
use crate::state::State;
use crate::tls::TlsSwitch;
use crate::util::{rfc3339, unix_seconds};
use crate::{Clock, RetireOldCertificate, TrustedCaChanges};

pub(crate) use error::ApiError;
use query::Query;

/// Bearer token lifetime in seconds (CM's default).
pub(crate) const TOKEN_DURATION_SECONDS: i64 = 300;

/// Default delay of a service restart, in seconds.
const DEFAULT_RESTART_DELAY_SECONDS: u64 = 5;

/// One request, as the handlers see it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authorization: Option<String>,
    /// The `Content-Type` header (media type only, lower case), when known.
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The TLS client certificate chain presented on this connection (leaf first).
    pub(crate) peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl ApiRequest {
    /// The TLS client certificate, or 401 `NCERRClientCertificateRequired`.
    fn tls_leaf(&self) -> Result<&CertificateDer<'static>, ApiError> {
        self.peer_certificates
            .as_deref()
            .and_then(|chain| chain.first())
            .ok_or_else(|| {
                ApiError::new(
                    401,
                    "NCERRClientCertificateRequired",
                    "this call needs a TLS client certificate",
                )
            })
    }

    /// Lower-case SHA-256 of the TLS client certificate.
    fn tls_fingerprint(&self) -> Result<String, ApiError> {
        self.tls_leaf().map(|leaf| sha256_fingerprint(leaf))
    }

    fn query(&self) -> Query {
        Query::parse(self.query.as_deref())
    }
}

/// One response: a status, an optional JSON body, and an optional `Retry-After` (seconds).
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
    pub(crate) retry_after: Option<u64>,
}

fn respond(status: u16, body: Value) -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse {
        status,
        body: Some(body),
        retry_after: None,
    })
}

fn respond_with<T: Serialize>(status: u16, body: &T) -> Result<ApiResponse, ApiError> {
    let body = serde_json::to_value(body)
        .map_err(|error| ApiError::internal(format!("cannot encode the answer: {error}")))?;
    respond(status, body)
}

/// `Ok` when `name` is `only`, the one resource of this `kind` the emulator has; else 404
/// naming it.
fn the_only(kind: &str, name: &str, only: &str) -> Result<(), ApiError> {
    if name == only {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "{kind} {name:?} not found (the emulator has only {only:?})"
        )))
    }
}

fn no_content() -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse {
        status: 204,
        body: None,
        retry_after: None,
    })
}

/// Splits `/api/v1/a/b/` into `["v1", "a", "b"]`, percent-decoding each segment (RFC 3986: a
/// `+` in a path stays a `+`).
fn api_segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("/api")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let trimmed = rest.trim_matches('/');
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(|text| text.into_owned())
        })
        .collect()
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// A handler: the API, the request and the path parameters (`{}` segments, in order).
type Handler = fn(&Arc<Api>, &ApiRequest, &[&str]) -> Result<ApiResponse, ApiError>;

/// One line of the router table: method, path under `/api/v1` (`{}` matches one segment).
struct Route {
    method: &'static str,
    path: &'static [&'static str],
    handler: Handler,
}

macro_rules! route {
    ($method:literal, [$($segment:literal),*], $handler:expr) => {
        Route { method: $method, path: &[$($segment),*], handler: $handler }
    };
}

/// Every endpoint. Paths match with or without a trailing slash.
const ROUTES: &[Route] = &[
    route!("POST", ["auth", "tokens"], |api, request, _| api
        .login(request)),
    route!("GET", ["ca", "external-cas"], |api, request, _| api
        .list_external_cas(request)),
    route!("POST", ["ca", "external-cas"], |api, request, _| api
        .create_external_ca(request)),
    route!("GET", ["ca", "external-cas", "{}"], |api, request, id| api
        .get_external_ca(request, id[0])),
    route!("PATCH", ["ca", "external-cas", "{}"], |api, request, id| {
        api.patch_external_ca(request, id[0])
    }),
    route!(
        "DELETE",
        ["ca", "external-cas", "{}"],
        |api, request, id| api.delete_external_ca(request, id[0])
    ),
    route!("GET", ["ca", "local-cas"], |api, request, _| api
        .list_local_cas(request)),
    route!("GET", ["ca", "local-cas", "{}"], |api, request, id| api
        .get_local_ca(request, id[0])),
    route!("GET", ["configs", "interfaces"], |api, request, _| api
        .list_interfaces(request)),
    route!(
        "GET",
        ["configs", "interfaces", "{}"],
        |api, request, name| api.get_interface(request, name[0])
    ),
    route!(
        "PATCH",
        ["configs", "interfaces", "{}"],
        |api, request, name| api.patch_interface(request, name[0])
    ),
    route!(
        "POST",
        ["system", "services", "restart"],
        |api, request, _| api.restart_services(request)
    ),
    route!(
        "GET",
        ["client-management", "regtokens"],
        |api, request, _| api.list_regtokens(request)
    ),
    route!(
        "POST",
        ["client-management", "regtokens"],
        |api, request, _| api.create_regtoken(request)
    ),
    route!(
        "GET",
        ["client-management", "regtokens", "{}"],
        |api, request, id| api.get_regtoken(request, id[0])
    ),
    route!(
        "PATCH",
        ["client-management", "regtokens", "{}"],
        |api, request, id| api.patch_regtoken(request, id[0])
    ),
    route!(
        "DELETE",
        ["client-management", "regtokens", "{}"],
        |api, request, id| api.delete_regtoken(request, id[0])
    ),
    route!(
        "GET",
        ["client-management", "clients"],
        |api, request, _| api.list_clients(request)
    ),
    route!(
        "POST",
        ["client-management", "clients"],
        |api, request, _| api.register(request)
    ),
    route!(
        "GET",
        ["client-management", "clients", "{}"],
        |api, request, id| api.get_client(request, id[0])
    ),
    route!(
        "DELETE",
        ["client-management", "clients", "{}"],
        |api, request, id| api.delete_client(request, id[0])
    ),
    route!(
        "GET",
        ["client-management", "self", "client"],
        |api, request, _| api.self_status(request)
    ),
    route!(
        "POST",
        ["client-management", "self", "client", "renew"],
        |api, request, _| api.self_renew(request)
    ),
    route!(
        "GET",
        ["client-management", "webcert-fingerprint"],
        |api, _, _| api.webcert_fingerprint()
    ),
    route!(
        "GET",
        ["transparent-encryption", "clients"],
        |api, request, _| api.list_te_clients(request)
    ),
    route!(
        "GET",
        ["transparent-encryption", "clients", "{}"],
        |api, request, id| api.get_te_client(request, id[0])
    ),
    route!(
        "POST",
        ["transparent-encryption", "clients"],
        |api, request, _| api.create_te_client(request)
    ),
    route!(
        "PATCH",
        ["transparent-encryption", "clients", "delete"],
        |api, request, _| api.delete_te_clients(request)
    ),
    route!(
        "PATCH",
        ["transparent-encryption", "clients", "{}", "delete"],
        |api, request, id| api.delete_te_client(request, id[0])
    ),
    // After `clients/delete`: the first route that matches answers.
    route!(
        "PATCH",
        ["transparent-encryption", "clients", "{}"],
        |api, request, id| api.patch_te_client(request, id[0])
    ),
    route!(
        "GET",
        ["usermgmt", "pwdpolicies", "{}"],
        |api, request, name| api.get_password_policy(request, name[0])
    ),
    route!(
        "PATCH",
        ["usermgmt", "pwdpolicies", "{}"],
        |api, request, name| api.patch_password_policy(request, name[0])
    ),
    route!("GET", ["audit", "client-records"], |api, request, _| api
        .list_records(request)),
    route!("POST", ["audit", "client-records"], |api, request, _| api
        .upload_records(request)),
    route!(
        "GET",
        ["audit", "client-records", "{}"],
        |api, request, id| api.get_record(request, id[0])
    ),
    route!("GET", ["trusted-cas"], |api, request, _| api
        .list_trusted_cas(request)),
    route!("POST", ["trusted-cas"], |api, request, _| api
        .create_trusted_ca(request)),
    route!("DELETE", ["trusted-cas", "{}"], |api, request, id| api
        .delete_trusted_ca(request, id[0])),
    route!("POST", ["trusted-cas-create-many"], |api, request, _| api
        .create_many_trusted_cas(request)),
];

/// The route for a method and the segments after `v1`, with its path parameters.
fn find_route<'a>(
    method: &Method,
    segments: &'a [String],
) -> Option<(&'static Route, Vec<&'a str>)> {
    ROUTES.iter().find_map(|route| {
        if route.method != method.as_str() || route.path.len() != segments.len() {
            return None;
        }
        let mut parameters = Vec::new();
        for (pattern, segment) in route.path.iter().zip(segments) {
            if *pattern == "{}" {
                parameters.push(segment.as_str());
            } else if pattern != segment {
                return None;
            }
        }
        Some((route, parameters))
    })
}

/// The API server: state, clock, credentials and the TLS switch for web restarts.
pub(crate) struct Api {
    state: Mutex<State>,
    /// The state's object store, for writes made without holding the state lock.
    store: crate::store::Store,
    /// Held (before the state lock, never after) by whoever writes a registration token's file,
    /// so that the file always ends with the latest state of the token.
    token_writes: Mutex<()>,
    clock: Arc<dyn Clock>,
    admin_password: String,
    web_fingerprint: String,
    web_port: u16,
    retire_old_certificate: RetireOldCertificate,
    trusted_ca_changes: TrustedCaChanges,
    one_client_per_certificate: bool,
    throttle: Option<crate::Throttle>,
    /// Agent requests seen, for [`crate::Throttle::every`].
    agent_requests: std::sync::atomic::AtomicU64,
    jwt_key: jwt::JwtKey,
    /// The `client_id` of password-grant answers (CM's id of the calling application).
    auth_client_id: String,
    tls: Arc<TlsSwitch>,
    runtime: tokio::runtime::Handle,
}

/// What the API is configured with besides its state, TLS switch and runtime.
pub(crate) struct ApiSettings {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) admin_password: String,
    pub(crate) web_fingerprint: String,
    pub(crate) web_port: u16,
    pub(crate) retire_old_certificate: RetireOldCertificate,
    pub(crate) trusted_ca_changes: TrustedCaChanges,
    pub(crate) one_client_per_certificate: bool,
    pub(crate) throttle: Option<crate::Throttle>,
}

impl Api {
    pub(crate) fn new(
        state: State,
        settings: ApiSettings,
        tls: Arc<TlsSwitch>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let ApiSettings {
            clock,
            admin_password,
            web_fingerprint,
            web_port,
            retire_old_certificate,
            trusted_ca_changes,
            one_client_per_certificate,
            throttle,
        } = settings;
        Api {
            store: state.store.clone(),
            token_writes: Mutex::new(()),
            state: Mutex::new(state),
            clock,
            admin_password,
            web_fingerprint,
            web_port,
            retire_old_certificate,
            trusted_ca_changes,
            one_client_per_certificate,
            throttle,
            agent_requests: std::sync::atomic::AtomicU64::new(0),
            jwt_key: jwt::JwtKey::generate(),
            auth_client_id: crate::util::uuid_v4(),
            tls,
            runtime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler leaves the state as consistent as its last completed write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock of registration-token file writes (see [`Api::token_writes`]).
    fn lock_token_writes(&self) -> MutexGuard<'_, ()> {
        self.token_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn now_seconds(&self) -> i64 {
        unix_seconds(self.now())
    }

    /// Applies the web interface's current trusted CA list to TLS (a web restart).
    pub(crate) fn apply_web_restart(&self) {
        let web = self.lock().web_tls();
        if let Err(error) = self.tls.apply(&web) {
            eprintln!(
                "cm-emulator: web restart failed, keeping the previous TLS settings: {error}"
            );
        }
    }

    /// The public key that verifies the emulator's JWTs (uncompressed P-256 point).
    pub(crate) fn jwt_public_key(&self) -> Vec<u8> {
        self.jwt_key.public_key().to_vec()
    }

    /// Answers one request.
    pub(crate) fn handle(self: &Arc<Self>, request: &ApiRequest) -> ApiResponse {
        if let Some(answer) = self.throttled(request) {
            return answer;
        }
        self.route(request).unwrap_or_else(ApiError::into_response)
    }

    /// The back-pressure answer for this request, when [`crate::Throttle`] picks it: agent
    /// requests only (a client certificate presented to the agent endpoints).
    fn throttled(&self, request: &ApiRequest) -> Option<ApiResponse> {
        let throttle = self.throttle?;
        let agent_endpoint = [
            "/api/v1/auth/tokens",
            "/api/v1/client-management/self/",
            "/api/v1/audit/client-records",
        ]
        .iter()
        .any(|prefix| request.path.starts_with(prefix));
        if request.peer_certificates.is_none() || !agent_endpoint {
            return None;
        }
        let seen = self
            .agent_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !seen.is_multiple_of(u64::from(throttle.every)) {
            return None;
        }
        let (code_desc, message) = if throttle.status == 429 {
            ("NCERRTooManyRequests", "too many requests; slow down")
        } else {
            (
                "NCERRServiceUnavailable",
                "the service is unavailable; try later",
            )
        };
        let mut answer = ApiError::new(throttle.status, code_desc, message).into_response();
        answer.retry_after = throttle.retry_after;
        Some(answer)
    }

    fn route(self: &Arc<Self>, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let not_found = || {
            ApiError::not_found(format!(
                "no such endpoint: {} {}",
                request.method, request.path
            ))
        };
        let segments = api_segments(&request.path).ok_or_else(not_found)?;
        let Some(("v1", rest)) = segments
            .split_first()
            .map(|(first, rest)| (first.as_str(), rest))
        else {
            return Err(not_found());
        };
        let (route, parameters) = find_route(&request.method, rest).ok_or_else(not_found)?;
        (route.handler)(self, request, &parameters)
    }

    /// `GET /v1/client-management/webcert-fingerprint`.
    fn webcert_fingerprint(&self) -> Result<ApiResponse, ApiError> {
        respond(
            200,
            json!({"fingerprint": self.web_fingerprint, "algorithm": "sha256"}),
        )
    }
}

/// 422 when the leaf (or, per webpki, a certificate above it) is outside its validity.
fn check_validity(
    facts: &CertificateFacts,
    now: SystemTime,
    chain_outside_validity: Option<String>,
) -> Result<(), ApiError> {
    if !facts.valid_at(now) {
        return Err(ApiError::certificate_invalid(format!(
            "the certificate is outside its validity period ({} to {})",
            rfc3339(facts.not_before),
            rfc3339(facts.not_after)
        )));
    }
    if let Some(message) = chain_outside_validity {
        return Err(ApiError::certificate_invalid(format!(
            "a certificate of the chain is outside its validity period: {message}"
        )));
    }
    Ok(())
}

fn chain_pem(chain: &[CertificateDer<'_>]) -> String {
    chain
        .iter()
        .map(|der| crate::certs::certificate_pem(der))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_accept_trailing_slashes_and_decode() {
        assert_eq!(
            api_segments("/api/v1/auth/tokens/").unwrap(),
            vec!["v1", "auth", "tokens"]
        );
        assert_eq!(
            api_segments("/api/v1/ca/external-cas/My%20CA").unwrap(),
            vec!["v1", "ca", "external-cas", "My CA"]
        );
        // A `+` in a path is a plus sign, not a space.
        assert_eq!(
            api_segments("/api/v1/ca/external-cas/A+B").unwrap(),
            vec!["v1", "ca", "external-cas", "A+B"]
        );
        assert!(api_segments("/api/v1/x/%ff").is_none());
        assert!(api_segments("/apiv1").is_none());
        assert!(api_segments("/other").is_none());
    }

    #[test]
    fn the_router_table_has_no_duplicates_and_finds_parameters() {
        for (index, route) in ROUTES.iter().enumerate() {
            assert!(
                !ROUTES[..index]
                    .iter()
                    .any(|other| other.method == route.method && other.path == route.path),
                "{} {:?} twice",
                route.method,
                route.path
            );
        }
        let segments: Vec<String> = ["ca", "external-cas", "abc"].map(str::to_owned).to_vec();
        let (route, parameters) = find_route(&Method::DELETE, &segments).unwrap();
        assert_eq!(route.path, &["ca", "external-cas", "{}"]);
        assert_eq!(parameters, vec!["abc"]);
        assert!(find_route(&Method::PUT, &segments).is_none());
    }
}
