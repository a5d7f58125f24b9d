//! The REST API: routing, authentication and the handlers of `docs/protocol.md`.
//!
//! Handlers are synchronous and run on tokio's blocking pool: they take the state lock, check,
//! write the changed objects to disk and answer. The HTTP layer (`server.rs`) only turns hyper
//! requests into [`ApiRequest`]s and [`ApiResponse`]s back into hyper responses; the
//! in-process path (`in_process.rs`) does the same with the same helpers, without a socket.

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

    // ---- External CAs ---------------------------------------------------------------------

    fn external_ca_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .find_external_ca(reference)
            .ok_or_else(|| ApiError::not_found(format!("external CA {reference:?} not found")))
    }

    fn list_external_cas(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.external_cas.iter().map(ExternalCa::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    fn create_external_ca(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        let cert = body.required_string("cert")?;
        let name = body.optional_string("name")?;
        let parent = body.optional_string("parent")?;
        let allow_client = body.optional_bool("allow_client_authentication")?;
        let allow_user = body.optional_bool("allow_user_authentication")?;
        let chain = parse_pem_chain(cert)
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
            return Err(ApiError::bad_request("field `name`: must not be empty"));
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
            parent: parent.map(str::to_owned),
            allow_client_authentication: allow_client.unwrap_or(true),
            allow_user_authentication: allow_user.unwrap_or(true),
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

    fn get_external_ca(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::external_ca_index(&state, reference)?;
        respond(200, state.external_cas[index].to_json())
    }

    fn patch_external_ca(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::external_ca_index(&state, reference)?;
        let body = JsonBody::parse(&request.body)?;
        let allow_client = body.optional_bool("allow_client_authentication")?;
        let allow_user = body.optional_bool("allow_user_authentication")?;
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

    fn delete_external_ca(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::external_ca_index(&state, reference)?;
        let id = state.external_cas[index].record.id.clone();
        if state.web.trusted_external.contains(&id) {
            // The TLS settings keep trusting it until the next web restart, as on CM.
            state.web.trusted_external.retain(|trusted| trusted != &id);
            state.save_web().map_err(ApiError::storage)?;
        }
        state
            .store
            .delete(EXTERNAL_CAS, &id)
            .map_err(ApiError::storage)?;
        state.external_cas.remove(index);
        no_content()
    }

    // ---- Web interface --------------------------------------------------------------------

    fn web_json(&self, state: &State) -> Value {
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

    fn get_web(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        respond(200, self.web_json(&state))
    }

    fn patch_web(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
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

    fn restart_services(self: &Arc<Self>, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
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

    // ---- Registration tokens --------------------------------------------------------------

    fn regtoken_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .regtokens
            .iter()
            .position(|token| token.is_named(reference))
            .ok_or_else(|| {
                ApiError::not_found(format!("registration token {reference:?} not found"))
            })
    }

    fn resolve_ca_id(state: &State, reference: &str) -> Result<String, ApiError> {
        state
            .find_external_ca(reference)
            .map(|index| state.external_cas[index].record.id.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "field `ca_id`: external CA {reference:?} not found"
                ))
            })
    }

    fn list_regtokens(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.regtokens.iter().map(RegToken::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    fn create_regtoken(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        let ca_reference = body.required_string("ca_id")?;
        let cert_duration = body.optional_u64("cert_duration")?.unwrap_or(730);
        let profile = body.optional_string("client_management_profile_id")?;
        let lifetime_text = body.optional_string("lifetime")?.unwrap_or("");
        let lifetime = parse_lifetime(lifetime_text)
            .map_err(|message| ApiError::bad_request(format!("field `lifetime`: {message}")))?;
        let max_clients = body.optional_u64("max_clients")?;
        if max_clients == Some(0) {
            return Err(ApiError::bad_request(
                "field `max_clients`: must be at least 1",
            ));
        }
        let name_prefix = body.optional_string("name_prefix")?.unwrap_or("");
        let label = body.optional_object("label")?.cloned().unwrap_or_default();
        let labels = body.optional_object("labels")?.cloned().unwrap_or_default();
        let ca_id = Self::resolve_ca_id(&state, ca_reference)?;
        let now = self.now();
        let now_seconds = unix_seconds(now);
        let token = RegToken {
            sequence: state.next_sequence(),
            id: uuid_v4(),
            token: random_token(),
            ca_id,
            cert_duration,
            client_management_profile_id: profile.map(str::to_owned),
            lifetime: lifetime_text.to_owned(),
            valid_until: lifetime.map(|lifetime| unix_seconds(now + lifetime)),
            max_clients,
            clients_registered: 0,
            name_prefix: name_prefix.to_owned(),
            label: Value::Object(label),
            labels: Value::Object(labels),
            created_at: now_seconds,
            updated_at: now_seconds,
        };
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        let json = token.to_json();
        state.regtokens.push(token);
        respond(201, json)
    }

    fn get_regtoken(&self, request: &ApiRequest, reference: &str) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        respond(200, state.regtokens[index].to_json())
    }

    fn patch_regtoken(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        let body = JsonBody::parse(&request.body)?;
        let mut token = state.regtokens[index].clone();
        let now = self.now();
        if let Some(reference) = body.optional_string("ca_id")? {
            token.ca_id = Self::resolve_ca_id(&state, reference)?;
        }
        if let Some(duration) = body.optional_u64("cert_duration")? {
            token.cert_duration = duration;
        }
        if let Some(text) = body.optional_string("lifetime")? {
            let lifetime = parse_lifetime(text)
                .map_err(|message| ApiError::bad_request(format!("field `lifetime`: {message}")))?;
            token.lifetime = text.to_owned();
            token.valid_until = lifetime.map(|lifetime| unix_seconds(now + lifetime));
        }
        if let Some(max_clients) = body.optional_u64("max_clients")? {
            if max_clients == 0 {
                return Err(ApiError::bad_request(
                    "field `max_clients`: must be at least 1",
                ));
            }
            token.max_clients = Some(max_clients);
        }
        if let Some(prefix) = body.optional_string("name_prefix")? {
            token.name_prefix = prefix.to_owned();
        }
        if let Some(labels) = body.optional_object("labels")? {
            token.labels = Value::Object(labels.clone());
        }
        if let Some(label) = body.optional_object("label")? {
            token.label = Value::Object(label.clone());
        }
        token.updated_at = unix_seconds(now);
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        let json = token.to_json();
        state.regtokens[index] = token;
        respond(200, json)
    }

    fn delete_regtoken(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::regtoken_index(&state, reference)?;
        let id = state.regtokens[index].id.clone();
        state
            .store
            .delete(REGTOKENS, &id)
            .map_err(ApiError::storage)?;
        state.regtokens.remove(index);
        no_content()
    }

    // ---- Clients (admin) ------------------------------------------------------------------

    fn client_index(state: &State, reference: &str) -> Result<usize, ApiError> {
        state
            .clients
            .iter()
            .position(|client| client.is_named(reference))
            .ok_or_else(|| ApiError::not_found(format!("client {reference:?} not found")))
    }

    fn list_clients(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.clients.iter().map(Client::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    fn get_client(&self, request: &ApiRequest, reference: &str) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::client_index(&state, reference)?;
        respond(200, state.clients[index].to_json())
    }

    fn delete_client(
        &self,
        request: &ApiRequest,
        reference: &str,
    ) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let index = Self::client_index(&state, reference)?;
        let id = state.clients[index].id.clone();
        state
            .store
            .delete(CLIENTS, &id)
            .map_err(ApiError::storage)?;
        state.clients.remove(index);
        state.sessions.retain(|_, session| {
            !matches!(&session.subject, Subject::Client { client_id, .. } if client_id == &id)
        });
        no_content()
    }

    // ---- Agent endpoints ------------------------------------------------------------------

    /// `POST /v1/client-management/clients/`: registration with a token and an external
    /// certificate, checks in the order of `docs/protocol.md`.
    fn register(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        // 1. Body fields (400).
        let body = JsonBody::parse(&request.body)?;
        let reg_token = body.required_string("reg_token")?;
        let cert = body.required_string("cert")?;
        let name = body.required_string("name")?;
        let client_type = body.optional_string("client_type")?.unwrap_or("CTE");
        let description = body.optional_string("description")?.unwrap_or("");
        if name.trim().is_empty() {
            return Err(ApiError::bad_request("field `name`: must not be empty"));
        }
        // 2. TLS client certificate present (401).
        let tls_leaf = request.tls_leaf()?;
        // 3. Body leaf equals TLS leaf (403).
        let chain = parse_pem_chain(cert)
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        if chain[0] != *tls_leaf {
            return Err(ApiError::new(
                403,
                "NCERRCertificateMismatch",
                "the certificate in `cert` is not the TLS client certificate of this connection",
            ));
        }
        let facts = CertificateFacts::parse(chain[0].clone())
            .map_err(|message| ApiError::certificate_invalid(format!("field `cert`: {message}")))?;
        let fingerprint = facts.sha256_fingerprint();
        let now = self.now();
        let now_seconds = unix_seconds(now);

        let mut state = self.lock();
        // 4. Token known (401).
        let token_index = state
            .regtokens
            .iter()
            .position(|token| constant_time_eq(token.token.as_bytes(), reg_token.as_bytes()))
            .ok_or_else(|| {
                ApiError::new(401, "NCERRInvalidRegToken", "Invalid registration token")
            })?;
        // Idempotent retry: same name and certificate as an existing client.
        if let Some(existing) = state
            .clients
            .iter()
            .find(|client| client.name == name && client.cert_fingerprint == fingerprint)
        {
            return respond(200, existing.to_json());
        }
        let token = &state.regtokens[token_index];
        // 5. Not expired (401).
        if token
            .valid_until
            .is_some_and(|valid_until| now_seconds > valid_until)
        {
            return Err(ApiError::new(
                401,
                "NCERRRegTokenExpired",
                format!(
                    "registration token expired at {}",
                    rfc3339(token.valid_until.unwrap_or_default())
                ),
            ));
        }
        // 6. Not exhausted (403).
        if token
            .max_clients
            .is_some_and(|max| token.clients_registered >= max)
        {
            return Err(ApiError::new(
                403,
                "NCERRRegTokenExhausted",
                format!(
                    "registration token already registered its maximum of {} clients",
                    token.clients_registered
                ),
            ));
        }
        // 7. Chains to the token's CA (403).
        let ca_id = token.ca_id.clone();
        let ca = state
            .external_cas
            .iter()
            .find(|ca| ca.record.id == ca_id)
            .ok_or_else(|| {
                ApiError::not_trusted(format!("the token's CA {ca_id} no longer exists"))
            })?;
        let chain_outside_validity = match verify_client_chain(
            &chain[0],
            &chain[1..],
            &ca.facts.der,
            now,
            facts.not_before,
        ) {
            Ok(()) => None,
            Err(ChainError::OutsideValidity(message)) => Some(message),
            Err(ChainError::NotTrusted(message)) => {
                return Err(ApiError::not_trusted(format!(
                    "the certificate does not chain to the registration token's CA {:?}: {message}",
                    ca.record.name
                )));
            }
        };
        // 8. Inside its validity (422).
        check_validity(&facts, now, chain_outside_validity)?;
        // 9. Name free (409).
        if state.clients.iter().any(|client| client.name == name) {
            return Err(ApiError::conflict(format!(
                "a client named {name:?} already exists with a different certificate"
            )));
        }
        let client = Client {
            sequence: state.next_sequence(),
            id: uuid_v4(),
            name: name.to_owned(),
            description: description.to_owned(),
            client_type: client_type.to_owned(),
            reg_token_id: state.regtokens[token_index].id.clone(),
            ca_id,
            cert: chain_pem(&chain),
            common_name: facts.common_name.clone().unwrap_or_default(),
            cert_fingerprint: fingerprint,
            cert_not_after: facts.not_after,
            previous_cert_fingerprint: None,
            previous_cert_accepted: false,
            previous_cert_not_after: None,
            created_at: now_seconds,
            updated_at: now_seconds,
            last_seen: None,
        };
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let mut token = state.regtokens[token_index].clone();
        token.clients_registered += 1;
        token.updated_at = now_seconds;
        state
            .store
            .put(REGTOKENS, &token.id, &token)
            .map_err(ApiError::storage)?;
        state.regtokens[token_index] = token;
        let json = client.to_json();
        state.clients.push(client);
        respond(201, json)
    }

    /// `GET /v1/client-management/self/client`: status and heartbeat.
    fn self_status(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let (index, _) = self.require_client(&mut state, request)?;
        request.tls_leaf()?;
        let mut client = state.clients[index].clone();
        client.last_seen = Some(self.now_seconds());
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let json = client.to_json();
        state.clients[index] = client;
        respond(200, json)
    }

    /// `POST /v1/client-management/self/client/renew`: self renewal with an external
    /// certificate and proof of possession of the new key.
    fn self_renew(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        // Bearer valid (401).
        let (index, login_fingerprint) = self.require_client(&mut state, request)?;
        let body = JsonBody::parse(&request.body)?;
        let ext_cert = body.required_string("ext_cert")?;
        // TLS client certificate present (401) and equal to the new leaf (403).
        let tls_leaf = request.tls_leaf()?;
        let chain = parse_pem_chain(ext_cert).map_err(|message| {
            ApiError::certificate_invalid(format!("field `ext_cert`: {message}"))
        })?;
        if chain[0] != *tls_leaf {
            return Err(ApiError::new(
                403,
                "NCERRProofOfPossessionFailed",
                "the TLS client certificate of this request is not the new certificate: \
                 present the new certificate to prove possession of its key",
            ));
        }
        let client = state.clients[index].clone();
        let fingerprint = sha256_fingerprint(&chain[0]);
        if fingerprint == client.cert_fingerprint {
            // Idempotent retry: this renewal already happened.
            return respond(200, client.to_json());
        }
        let login_certificate_usable = login_fingerprint == client.cert_fingerprint
            || self.previous_certificate_logs_in(&client, &login_fingerprint);
        if !login_certificate_usable {
            return Err(ApiError::unauthorized(
                "the bearer was obtained with a certificate this client no longer uses",
            ));
        }
        let facts = CertificateFacts::parse(chain[0].clone()).map_err(|message| {
            ApiError::certificate_invalid(format!("field `ext_cert`: {message}"))
        })?;
        let now = self.now();
        // Chains to the client's CA (403).
        let ca = state
            .external_cas
            .iter()
            .find(|ca| ca.record.id == client.ca_id)
            .ok_or_else(|| {
                ApiError::not_trusted(format!("the client's CA {} no longer exists", client.ca_id))
            })?;
        let chain_outside_validity =
            match verify_client_chain(&chain[0], &chain[1..], &ca.facts.der, now, facts.not_before)
            {
                Ok(()) => None,
                Err(ChainError::OutsideValidity(message)) => Some(message),
                Err(ChainError::NotTrusted(message)) => {
                    return Err(ApiError::not_trusted(format!(
                        "the new certificate does not chain to the client's CA {:?}: {message}",
                        ca.record.name
                    )));
                }
            };
        // Exactly the same common name (403).
        let new_common_name = facts.common_name.clone().unwrap_or_default();
        if new_common_name != client.common_name {
            return Err(ApiError::new(
                403,
                "NCERRCommonNameMismatch",
                format!(
                    "common name differs: current {:?}, new {:?}",
                    client.common_name, new_common_name
                ),
            ));
        }
        // Valid now (422).
        check_validity(&facts, now, chain_outside_validity)?;
        // Expires later than the current certificate (422).
        if facts.not_after <= client.cert_not_after {
            return Err(ApiError::new(
                422,
                "NCERRCertificateNotLater",
                format!(
                    "the new certificate expires at {}, not later than the current one ({})",
                    rfc3339(facts.not_after),
                    rfc3339(client.cert_not_after)
                ),
            ));
        }
        let mut client = client;
        client.previous_cert_fingerprint = Some(client.cert_fingerprint.clone());
        client.previous_cert_not_after = Some(client.cert_not_after);
        client.previous_cert_accepted =
            self.retire_old_certificate != RetireOldCertificate::OnRenew;
        client.cert = chain_pem(&chain);
        client.cert_fingerprint = fingerprint;
        client.cert_not_after = facts.not_after;
        client.updated_at = unix_seconds(now);
        state
            .store
            .put(CLIENTS, &client.id, &client)
            .map_err(ApiError::storage)?;
        let json = client.to_json();
        state.clients[index] = client;
        respond(200, json)
    }

    // ---- Client log records ---------------------------------------------------------------

    fn upload_records(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        let (index, _) = self.require_client(&mut state, request)?;
        request.tls_leaf()?;
        let body = JsonBody::parse(&request.body)?;
        let items = body.required_array("records")?;
        let client = &state.clients[index];
        let now = self.now_seconds();
        let mut records = Vec::with_capacity(items.len());
        for (position, item) in items.iter().enumerate() {
            let field = |name: &str| format!("records[{position}].{name}");
            let record = JsonBody::from_value(item.clone(), &format!("records[{position}]"))?;
            let text = |name: &str, required: bool| -> Result<String, ApiError> {
                let value = if required {
                    record
                        .required_string(name)
                        .map(|text| Some(text.to_owned()))
                } else {
                    record
                        .optional_string(name)
                        .map(|text| text.map(str::to_owned))
                };
                value
                    .map(Option::unwrap_or_default)
                    .map_err(|error| prefix_field(error, &field("")))
            };
            records.push(ClientRecord {
                id: uuid_v4(),
                client_id: client.id.clone(),
                client_name: client.name.clone(),
                created_at: now,
                time: text("time", true)?,
                level: text("level", true)?,
                component: text("component", true)?,
                message_id: text("message_id", false)?,
                message: text("message", true)?,
            });
        }
        let accepted = records.len();
        if accepted > 0 {
            let batch = ClientRecordBatch {
                sequence: state.next_sequence(),
                id: uuid_v4(),
                records,
            };
            state
                .store
                .put(CLIENT_RECORDS, &batch.id, &batch)
                .map_err(ApiError::storage)?;
            state.records.extend(batch.records);
        }
        respond(201, json!({"accepted": accepted}))
    }

    fn list_records(&self, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let items = state.records.iter().map(ClientRecord::to_json).collect();
        list_response(request.query.as_deref(), items)
    }

    fn get_record(&self, request: &ApiRequest, reference: &str) -> Result<ApiResponse, ApiError> {
        let mut state = self.lock();
        self.require_admin(&mut state, request)?;
        let record = state
            .records
            .iter()
            .find(|record| record.id == reference || record.uri() == reference)
            .ok_or_else(|| ApiError::not_found(format!("client record {reference:?} not found")))?;
        respond(200, record.to_json())
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
