//! The REST API: the router, authentication and the handlers of `docs/protocol.md`.
//!
//! `routes.rs` is the axum router: every endpoint, the extractors handlers take (the
//! [`ApiRequest`], a path parameter, the proof of an admin bearer) and how a handler runs.
//! Handlers are synchronous and run on tokio's blocking pool: they take the state lock, check,
//! write the changed objects to disk and answer. The HTTPS server (`server.rs`) and the
//! in-process path (`in_process.rs`) both send requests through that one router.
//!
//! One file per resource: `auth.rs` (tokens, sessions), `cas.rs` (external and local CAs),
//! `interfaces.rs` (the web interface), `system.rs` (service restarts), `regtokens.rs`,
//! `clients.rs` (the admin view and the agent endpoints), `te_clients.rs` (the transparent
//! encryption view of the agents), `audit.rs` (client log records). Request bodies are the
//! serde types of `wire.rs`, answers those of `views.rs`; lists, filters and lookups by
//! reference are in `query.rs`; errors in `error.rs`.

mod audit;
mod auth;
mod cas;
mod clients;
mod error;
mod interfaces;
mod jwt;
mod query;
mod regtokens;
mod routes;
mod system;
mod te_clients;
mod views;
mod wire;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

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
use routes::Admin;
pub(crate) use routes::{Connection, PeerCertificates, Service, router};

/// Bearer token lifetime in seconds (CM's default).
pub(crate) const TOKEN_DURATION_SECONDS: i64 = 300;

/// Default delay of a service restart, in seconds.
const DEFAULT_RESTART_DELAY_SECONDS: u64 = 5;

/// One request, as the handlers see it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authorization: Option<String>,
    /// The `Content-Type` header (media type only, lower case), when known.
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The TLS client certificate chain presented on this connection (leaf first).
    pub(crate) peer_certificates: PeerCertificates,
    /// Run on the calling thread (the in-process path).
    pub(crate) inline: bool,
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

    /// The back-pressure answer for this request, when [`crate::Throttle`] picks it: agent
    /// requests only (a client certificate presented to the agent endpoints).
    pub(super) fn throttled(&self, request: &ApiRequest) -> Option<ApiResponse> {
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
