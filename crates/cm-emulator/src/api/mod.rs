//! The REST API: routing, authentication and the handlers of `docs/protocol.md`.
//!
//! Handlers are synchronous and run on tokio's blocking pool: they take the state lock, check,
//! write the changed objects to disk and answer. The HTTP layer (`server.rs`) only turns hyper
//! requests into [`ApiRequest`]s and [`ApiResponse`]s back into hyper responses; the
//! in-process path (`in_process.rs`) does the same with the same helpers, without a socket.

mod cas;
mod clients;
mod records;
mod regtokens;
mod web;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use hyper::Method;
use rustls_pki_types::CertificateDer;
use serde_json::{Map, Value, json};

use crate::certs::{
    CertificateFacts, ChainError, parse_pem_chain, sha256_fingerprint, verify_client_chain,
};
use crate::state::{
    CLIENT_RECORDS, CLIENTS, Client, ClientRecord, ClientRecordBatch, EXTERNAL_CAS, ExternalCa,
    ExternalCaRecord, REGTOKENS, RegToken, Session, State, Subject,
};
use crate::tls::TlsSwitch;
use crate::util::{parse_lifetime, random_token, rfc3339, unix_seconds, uuid_v4};
use crate::{Clock, RetireOldCertificate};

/// Bearer token lifetime in seconds (CM's default).
pub(crate) const TOKEN_DURATION_SECONDS: i64 = 300;

/// Default delay of a web restart, in seconds.
const DEFAULT_RESTART_DELAY_SECONDS: u64 = 5;

/// One request, as the handlers see it.
#[derive(Debug)]
pub(crate) struct ApiRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    pub(crate) authorization: Option<String>,
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
}

/// One response: a status and an optional JSON body.
#[derive(Debug)]
pub(crate) struct ApiResponse {
    pub(crate) status: u16,
    pub(crate) body: Option<Value>,
}

fn respond(status: u16, body: Value) -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse {
        status,
        body: Some(body),
    })
}

fn no_content() -> Result<ApiResponse, ApiError> {
    Ok(ApiResponse {
        status: 204,
        body: None,
    })
}

/// An error answer in CM's shape.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code_desc: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code_desc: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code_desc,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "NCERRBadRequest", message)
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "NCERRUnauthorizedAccess", message)
    }

    fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "NCERRForbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NCERRResourceNotFound", message)
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "NCERRResourceAlreadyExists", message)
    }

    fn certificate_invalid(message: impl Into<String>) -> Self {
        Self::new(422, "NCERRCertificateInvalid", message)
    }

    fn not_trusted(message: impl Into<String>) -> Self {
        Self::new(403, "NCERRCertificateNotTrusted", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "NCERRInternalServerError", message)
    }

    fn storage(error: std::io::Error) -> Self {
        Self::internal(format!("cannot write the state: {error}"))
    }

    /// The numeric `code`. CM's public examples show 5 for `NCERRUnauthorizedAccess`; the
    /// other numbers are invented, and clients should match on `codeDesc`.
    fn code(&self) -> u32 {
        match self.code_desc {
            "NCERRBadRequest" => 1,
            "NCERRResourceNotFound" => 2,
            "NCERRResourceAlreadyExists" => 3,
            "NCERRForbidden" => 4,
            "NCERRUnauthorizedAccess" => 5,
            "NCERRRequestTooLarge" => 6,
            "NCERRInvalidRegToken" => 10,
            "NCERRRegTokenExpired" => 11,
            "NCERRRegTokenExhausted" => 12,
            "NCERRClientCertificateRequired" => 13,
            "NCERRCertificateMismatch" => 14,
            "NCERRCertificateNotTrusted" => 15,
            "NCERRCommonNameMismatch" => 16,
            "NCERRProofOfPossessionFailed" => 17,
            "NCERRCertificateNotLater" => 18,
            "NCERRCertificateInvalid" => 19,
            _ => 99,
        }
    }

    /// The response: `{"code","codeDesc","message","requestID"}`.
    pub(crate) fn into_response(self) -> ApiResponse {
        ApiResponse {
            status: self.status,
            body: Some(json!({
                "code": self.code(),
                "codeDesc": self.code_desc,
                "message": self.message,
                "requestID": uuid_v4(),
            })),
        }
    }
}

/// A JSON object request body with field accessors whose errors name the field.
struct JsonBody {
    object: Map<String, Value>,
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl JsonBody {
    fn parse(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body: expected a JSON object, found an empty body",
            ));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|error| ApiError::bad_request(format!("malformed JSON: {error}")))?;
        Self::from_value(value, "request body")
    }

    fn from_value(value: Value, what: &str) -> Result<Self, ApiError> {
        match value {
            Value::Object(object) => Ok(JsonBody { object }),
            other => Err(ApiError::bad_request(format!(
                "{what}: expected a JSON object, found {}",
                json_kind(&other)
            ))),
        }
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.object.get(field).filter(|value| !value.is_null())
    }

    fn wrong_type(field: &str, expected: &str, found: &Value) -> ApiError {
        ApiError::bad_request(format!(
            "field `{field}`: expected {expected}, found {}",
            json_kind(found)
        ))
    }

    fn required_string(&self, field: &str) -> Result<&str, ApiError> {
        match self.present(field) {
            None => Err(ApiError::bad_request(format!("missing field `{field}`"))),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(Self::wrong_type(field, "a string", other)),
        }
    }

    fn optional_string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(Self::wrong_type(field, "a string", other)),
        }
    }

    fn optional_u64(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| Self::wrong_type(field, "a non-negative integer", value)),
        }
    }

    fn optional_bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(Self::wrong_type(field, "a boolean", other)),
        }
    }

    fn optional_object(&self, field: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(other) => Err(Self::wrong_type(field, "an object", other)),
        }
    }

    fn optional_string_array(&self, field: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => Err(Self::wrong_type(
                        &format!("{field}[{index}]"),
                        "a string",
                        other,
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(Self::wrong_type(field, "an array of strings", other)),
        }
    }

    fn required_array(&self, field: &str) -> Result<&Vec<Value>, ApiError> {
        match self.present(field) {
            None => Err(ApiError::bad_request(format!("missing field `{field}`"))),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(Self::wrong_type(field, "an array", other)),
        }
    }
}

/// Splits `/api/v1/a/b/` into `["v1", "a", "b"]`, percent-decoding each segment.
fn api_segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("/api")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let trimmed = rest.trim_matches('/');
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    trimmed.split('/').map(percent_decode).collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(if bytes[index] == b'+' {
                b' '
            } else {
                bytes[index]
            });
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads `skip` and `limit` from a query string.
fn paging(query: Option<&str>) -> Result<(usize, Option<usize>), ApiError> {
    let mut skip = 0;
    let mut limit = None;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let parse = |name: &str| {
            percent_decode(value)
                .and_then(|value| value.parse::<usize>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "query parameter `{name}`: expected a non-negative integer"
                    ))
                })
        };
        match key {
            "skip" => skip = parse("skip")?,
            "limit" => limit = Some(parse("limit")?),
            _ => {}
        }
    }
    Ok((skip, limit))
}

/// A CM list: `{"skip","limit","total","resources"}`. Without a `limit` parameter, every
/// object is returned and `limit` equals `total`.
fn list_response(query: Option<&str>, items: Vec<Value>) -> Result<ApiResponse, ApiError> {
    let (skip, limit) = paging(query)?;
    let total = items.len();
    let resources: Vec<Value> = items
        .into_iter()
        .skip(skip)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    respond(
        200,
        json!({"skip": skip, "limit": limit.unwrap_or(total), "total": total, "resources": resources}),
    )
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
    clock: Arc<dyn Clock>,
    admin_password: String,
    web_fingerprint: String,
    web_port: u16,
    retire_old_certificate: RetireOldCertificate,
    tls: Arc<TlsSwitch>,
    runtime: tokio::runtime::Handle,
}

/// What the API is configured with besides its state, TLS switch and runtime.
pub(crate) struct ApiSettings {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) admin_password: String,
    /// SHA-256 of the web certificate, lower-case hex.
    pub(crate) web_fingerprint: String,
    pub(crate) web_port: u16,
    pub(crate) retire_old_certificate: RetireOldCertificate,
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
        } = settings;
        Api {
            state: Mutex::new(state),
            clock,
            admin_password,
            web_fingerprint,
            web_port,
            retire_old_certificate,
            tls,
            runtime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler leaves the state as consistent as its last completed write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn now_seconds(&self) -> i64 {
        unix_seconds(self.now())
    }

    /// Applies the web interface's current trusted CA list to TLS (a web restart).
    pub(crate) fn apply_web_restart(&self) {
        let trusted = self.lock().trusted_client_cas();
        if let Err(error) = self.tls.apply(&trusted) {
            eprintln!(
                "cm-emulator: web restart failed, keeping the previous TLS settings: {error}"
            );
        }
    }

    /// Answers one request.
    pub(crate) fn handle(self: &Arc<Self>, request: &ApiRequest) -> ApiResponse {
        self.route(request).unwrap_or_else(ApiError::into_response)
    }

    fn route(self: &Arc<Self>, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let not_found = || {
            ApiError::not_found(format!(
                "no such endpoint: {} {}",
                request.method, request.path
            ))
        };
        let segments = api_segments(&request.path).ok_or_else(not_found)?;
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let method = &request.method;
        match (method, segments.as_slice()) {
            (&Method::POST, ["v1", "auth", "tokens"]) => self.login(request),

            (&Method::GET, ["v1", "ca", "external-cas"]) => self.list_external_cas(request),
            (&Method::POST, ["v1", "ca", "external-cas"]) => self.create_external_ca(request),
            (&Method::GET, ["v1", "ca", "external-cas", id]) => self.get_external_ca(request, id),
            (&Method::PATCH, ["v1", "ca", "external-cas", id]) => {
                self.patch_external_ca(request, id)
            }
            (&Method::DELETE, ["v1", "ca", "external-cas", id]) => {
                self.delete_external_ca(request, id)
            }

            (&Method::GET, ["v1", "configs", "interfaces", "web"]) => self.get_web(request),
            (&Method::PATCH, ["v1", "configs", "interfaces", "web"]) => self.patch_web(request),
            (&Method::POST, ["v1", "system", "services", "restart"]) => {
                self.restart_services(request)
            }

            (&Method::GET, ["v1", "client-management", "regtokens"]) => {
                self.list_regtokens(request)
            }
            (&Method::POST, ["v1", "client-management", "regtokens"]) => {
                self.create_regtoken(request)
            }
            (&Method::GET, ["v1", "client-management", "regtokens", id]) => {
                self.get_regtoken(request, id)
            }
            (&Method::PATCH, ["v1", "client-management", "regtokens", id]) => {
                self.patch_regtoken(request, id)
            }
            (&Method::DELETE, ["v1", "client-management", "regtokens", id]) => {
                self.delete_regtoken(request, id)
            }

            (&Method::GET, ["v1", "client-management", "clients"]) => self.list_clients(request),
            (&Method::POST, ["v1", "client-management", "clients"]) => self.register(request),
            (&Method::GET, ["v1", "client-management", "clients", id]) => {
                self.get_client(request, id)
            }
            (&Method::DELETE, ["v1", "client-management", "clients", id]) => {
                self.delete_client(request, id)
            }

            (&Method::GET, ["v1", "client-management", "self", "client"]) => {
                self.self_status(request)
            }
            (&Method::POST, ["v1", "client-management", "self", "client", "renew"]) => {
                self.self_renew(request)
            }

            (&Method::GET, ["v1", "audit", "client-records"]) => self.list_records(request),
            (&Method::POST, ["v1", "audit", "client-records"]) => self.upload_records(request),
            (&Method::GET, ["v1", "audit", "client-records", id]) => self.get_record(request, id),

            (&Method::GET, ["v1", "client-management", "webcert-fingerprint"]) => respond(
                200,
                json!({"fingerprint": self.web_fingerprint, "algorithm": "sha256"}),
            ),

            _ => Err(not_found()),
        }
    }

    // ---- Authentication -------------------------------------------------------------------

    /// The session behind the request's bearer token.
    fn subject(&self, state: &mut State, request: &ApiRequest) -> Result<Subject, ApiError> {
        let header = request
            .authorization
            .as_deref()
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        let now = self.now_seconds();
        match state.sessions.get(token) {
            Some(session) if session.expires_at > now => Ok(session.subject.clone()),
            Some(_) => {
                state.sessions.remove(token);
                Err(ApiError::unauthorized("bearer token expired"))
            }
            None => Err(ApiError::unauthorized("invalid bearer token")),
        }
    }

    fn require_admin(&self, state: &mut State, request: &ApiRequest) -> Result<(), ApiError> {
        match self.subject(state, request)? {
            Subject::Admin => Ok(()),
            Subject::Client { .. } => Err(ApiError::forbidden(
                "a client bearer cannot call admin endpoints",
            )),
        }
    }

    /// A client session: (client id, fingerprint of the certificate used to log in).
    /// The client must still exist.
    fn require_client(
        &self,
        state: &mut State,
        request: &ApiRequest,
    ) -> Result<(usize, String), ApiError> {
        match self.subject(state, request)? {
            Subject::Admin => Err(ApiError::forbidden(
                "this endpoint needs a client bearer (client_credential grant)",
            )),
            Subject::Client {
                client_id,
                certificate_fingerprint,
            } => {
                let index = state
                    .clients
                    .iter()
                    .position(|client| client.id == client_id)
                    .ok_or_else(|| ApiError::unauthorized("Invalid Client"))?;
                Ok((index, certificate_fingerprint))
            }
        }
    }

    /// The retirement rule for this client: the configured one, except that `at-expiry` falls
    /// back to `on-first-login` for a previous certificate whose `notAfter` was not recorded
    /// (renewed by an emulator version that did not store it).
    fn retirement_for(&self, client: &Client) -> RetireOldCertificate {
        match self.retire_old_certificate {
            RetireOldCertificate::AtExpiry if client.previous_cert_not_after.is_none() => {
                RetireOldCertificate::OnFirstLogin
            }
            mode => mode,
        }
    }

    /// Whether the client's previous certificate may log in now (any fingerprint).
    fn previous_certificate_usable(&self, client: &Client) -> bool {
        client.previous_cert_accepted
            && match self.retirement_for(client) {
                RetireOldCertificate::OnRenew => false,
                RetireOldCertificate::OnFirstLogin => true,
                RetireOldCertificate::AtExpiry => client
                    .previous_cert_not_after
                    .is_some_and(|not_after| self.now_seconds() <= not_after),
            }
    }

    /// Whether `fingerprint` is the client's previous certificate and may still log in.
    fn previous_certificate_logs_in(&self, client: &Client, fingerprint: &str) -> bool {
        client.previous_cert_fingerprint.as_deref() == Some(fingerprint)
            && self.previous_certificate_usable(client)
    }

    fn new_session(&self, state: &mut State, subject: Subject) -> String {
        let now = self.now_seconds();
        state.sessions.retain(|_, session| session.expires_at > now);
        let token = random_token();
        state.sessions.insert(
            token.clone(),
            Session {
                subject,
                expires_at: now + TOKEN_DURATION_SECONDS,
            },
        );
        token
    }

    /// `POST /v1/auth/tokens/`: password and client-credential grants.
    fn login(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let body = JsonBody::parse(&request.body)?;
        match body.required_string("grant_type")? {
            "password" => {
                let username = body.required_string("username")?;
                let password = body.required_string("password")?;
                let password_matches =
                    constant_time_eq(password.as_bytes(), self.admin_password.as_bytes());
                if username != "admin" || !password_matches {
                    return Err(ApiError::unauthorized("Invalid username or password"));
                }
                let mut state = self.lock();
                let jwt = self.new_session(&mut state, Subject::Admin);
                respond(
                    200,
                    json!({"jwt": jwt, "duration": TOKEN_DURATION_SECONDS, "token_type": "Bearer"}),
                )
            }
            "client_credential" => {
                let client_id = body.required_string("client_id")?;
                let fingerprint = sha256_fingerprint(request.tls_leaf()?);
                let mut state = self.lock();
                let client = state
                    .clients
                    .iter_mut()
                    .find(|client| client.id == client_id)
                    .ok_or_else(|| ApiError::unauthorized("Invalid Client"))?;
                if client.cert_fingerprint == fingerprint {
                    // The new certificate has logged in: the previous one is retired, unless
                    // it lives on until its own expiry (`at-expiry`, not yet expired).
                    let keep_previous = self.retirement_for(client)
                        == RetireOldCertificate::AtExpiry
                        && self.previous_certificate_usable(client);
                    if client.previous_cert_accepted && !keep_previous {
                        client.previous_cert_accepted = false;
                        let client = client.clone();
                        state
                            .store
                            .put(CLIENTS, &client.id, &client)
                            .map_err(ApiError::storage)?;
                    }
                } else if !self.previous_certificate_logs_in(client, &fingerprint) {
                    return Err(ApiError::unauthorized(
                        "Invalid Client: the TLS client certificate is not this client's certificate",
                    ));
                }
                let subject = Subject::Client {
                    client_id: client_id.to_owned(),
                    certificate_fingerprint: fingerprint,
                };
                let jwt = self.new_session(&mut state, subject);
                respond(
                    200,
                    json!({
                        "jwt": jwt,
                        "duration": TOKEN_DURATION_SECONDS,
                        "token_type": "Bearer",
                        "client_id": client_id,
                    }),
                )
            }
            other => Err(ApiError::bad_request(format!(
                "field `grant_type`: unsupported grant type {other:?} (expected \"password\" or \"client_credential\")"
            ))),
        }
    }
}

/// Rewrites "field `x`" in an error message as "field `<prefix>x`".
fn prefix_field(mut error: ApiError, prefix: &str) -> ApiError {
    error.message = error
        .message
        .replacen("field `", &format!("field `{prefix}"), 1);
    error
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
        assert!(api_segments("/apiv1").is_none());
        assert!(api_segments("/other").is_none());
    }

    #[test]
    fn body_errors_name_the_field() {
        let body = JsonBody::parse(br#"{"a": 5}"#).unwrap();
        assert!(
            body.required_string("a")
                .unwrap_err()
                .message
                .contains("`a`")
        );
        assert!(
            body.required_string("b")
                .unwrap_err()
                .message
                .contains("`b`")
        );
        assert!(JsonBody::parse(b"[1]").is_err());
        assert!(JsonBody::parse(b"").is_err());
        let error = JsonBody::parse(br#"{"a": }"#).err().unwrap();
        assert_eq!(error.status, 400);
    }

    #[test]
    fn paging_reads_skip_and_limit() {
        assert_eq!(paging(None).unwrap(), (0, None));
        assert_eq!(paging(Some("skip=2&limit=5&x=1")).unwrap(), (2, Some(5)));
        assert!(paging(Some("limit=-1")).is_err());
    }
}
