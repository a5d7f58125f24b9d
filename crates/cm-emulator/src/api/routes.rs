//! The router: every endpoint of `docs/protocol.md` as an axum route, the extractors the
//! handlers take (the request, a path parameter, the proof of an admin bearer), and the one way
//! a handler runs (on tokio's blocking pool, or inline for the in-process path).
//!
//! The HTTPS server (`server.rs`) and the in-process path (`in_process.rs`) both send their
//! requests through [`router`], with a [`Connection`] extension saying what the connection
//! presented; nothing else distinguishes them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower_http::normalize_path::NormalizePath;

use super::*;

/// Request bodies larger than this are refused with 413.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an oversized body is read and discarded so that the client sees the 413
/// instead of a reset connection; beyond this the connection is closed.
const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

/// What the connection a request came on presented, put in the request's extensions by the
/// server (`server.rs`) or the in-process path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Connection {
    /// The TLS client certificate chain, leaf first.
    pub(crate) peer_certificates: PeerCertificates,
    /// The whole body must arrive within this time (else 408 and the connection closes).
    /// `None` in process, where the body is already there. tower-http's
    /// `RequestBodyTimeoutLayer` times out each frame, not the body, so a body that trickles in
    /// a byte at a time would never trip it: the deadline is on the whole read, here.
    pub(crate) body_deadline: Option<Duration>,
    /// Run the handler on the calling thread (the in-process path, which may run without the
    /// emulator's runtime) instead of tokio's blocking pool.
    pub(crate) inline: bool,
}

pub(crate) type PeerCertificates = Option<Arc<Vec<CertificateDer<'static>>>>;

/// The emulator's service: the routes under `/api/v1`, matched with or without a trailing
/// slash.
pub(crate) type Service = NormalizePath<Router>;

type Plain = fn(&Arc<Api>, &ApiRequest) -> Result<ApiResponse, ApiError>;
type AdminPlain = fn(&Arc<Api>, Admin, &ApiRequest) -> Result<ApiResponse, ApiError>;
type AdminById = fn(&Arc<Api>, Admin, &ApiRequest, &str) -> Result<ApiResponse, ApiError>;

const GET: MethodFilter = MethodFilter::GET;
const POST: MethodFilter = MethodFilter::POST;
const PATCH: MethodFilter = MethodFilter::PATCH;
const DELETE: MethodFilter = MethodFilter::DELETE;

/// Every endpoint.
pub(crate) fn router(api: Arc<Api>) -> Service {
    let routes = Router::new()
        .route("/api/v1/auth/tokens", open(POST, |api, r| api.login(r)))
        .route(
            "/api/v1/ca/external-cas",
            admin(GET, |api, a, r| api.list_external_cas(a, r))
                .merge(admin(POST, |api, a, r| api.create_external_ca(a, r))),
        )
        .route(
            "/api/v1/ca/external-cas/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_external_ca(a, id))
                .merge(admin_by_id(PATCH, |api, a, r, id| {
                    api.patch_external_ca(a, r, id)
                }))
                .merge(admin_by_id(DELETE, |api, a, _, id| {
                    api.delete_external_ca(a, id)
                })),
        )
        .route(
            "/api/v1/ca/local-cas",
            admin(GET, |api, a, r| api.list_local_cas(a, r)),
        )
        .route(
            "/api/v1/ca/local-cas/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_local_ca(a, id)),
        )
        .route(
            "/api/v1/configs/interfaces",
            admin(GET, |api, a, r| api.list_interfaces(a, r)),
        )
        .route(
            "/api/v1/configs/interfaces/{name}",
            admin_by_id(GET, |api, a, _, name| api.get_interface(a, name))
                .merge(admin_by_id(PATCH, |api, a, r, name| {
                    api.patch_interface(a, r, name)
                })),
        )
        .route(
            "/api/v1/system/services/restart",
            admin(POST, |api, a, r| api.restart_services(a, r)),
        )
        .route(
            "/api/v1/client-management/regtokens",
            admin(GET, |api, a, r| api.list_regtokens(a, r))
                .merge(admin(POST, |api, a, r| api.create_regtoken(a, r))),
        )
        .route(
            "/api/v1/client-management/regtokens/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_regtoken(a, id))
                .merge(admin_by_id(PATCH, |api, a, r, id| {
                    api.patch_regtoken(a, r, id)
                }))
                .merge(admin_by_id(DELETE, |api, a, _, id| {
                    api.delete_regtoken(a, id)
                })),
        )
        .route(
            "/api/v1/client-management/clients",
            admin(GET, |api, a, r| api.list_clients(a, r))
                .merge(open(POST, |api, r| api.register(r))),
        )
        .route(
            "/api/v1/client-management/clients/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_client(a, id))
                .merge(admin_by_id(DELETE, |api, a, _, id| {
                    api.delete_client(a, id)
                })),
        )
        .route(
            "/api/v1/client-management/self/client",
            open(GET, |api, r| api.self_status(r)),
        )
        .route(
            "/api/v1/client-management/self/client/renew",
            open(POST, |api, r| api.self_renew(r)),
        )
        .route(
            "/api/v1/client-management/webcert-fingerprint",
            open(GET, |api, _| api.webcert_fingerprint()),
        )
        .route(
            "/api/v1/transparent-encryption/clients",
            admin(GET, |api, a, r| api.list_te_clients(a, r))
                .merge(admin(POST, |api, a, r| api.create_te_client(a, r))),
        )
        .route(
            "/api/v1/transparent-encryption/clients/delete",
            admin(PATCH, |api, a, r| api.delete_te_clients(a, r)),
        )
        .route(
            "/api/v1/transparent-encryption/clients/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_te_client(a, id))
                .merge(admin_by_id(PATCH, |api, a, r, id| {
                    api.patch_te_client(a, r, id)
                })),
        )
        .route(
            "/api/v1/transparent-encryption/clients/{id}/delete",
            admin_by_id(PATCH, |api, a, r, id| api.delete_te_client(a, r, id)),
        )
        .route(
            "/api/v1/usermgmt/pwdpolicies/{name}",
            admin_by_id(GET, |api, a, _, name| api.get_password_policy(a, name)).merge(
                admin_by_id(PATCH, |api, a, r, name| {
                    api.patch_password_policy(a, r, name)
                }),
            ),
        )
        .route(
            "/api/v1/audit/client-records",
            admin(GET, |api, a, r| api.list_records(a, r))
                .merge(open(POST, |api, r| api.upload_records(r))),
        )
        .route(
            "/api/v1/audit/client-records/{id}",
            admin_by_id(GET, |api, a, _, id| api.get_record(a, id)),
        )
        .route(
            "/api/v1/trusted-cas",
            admin(GET, |api, a, r| api.list_trusted_cas(a, r))
                .merge(admin(POST, |api, a, r| api.create_trusted_ca(a, r))),
        )
        .route(
            "/api/v1/trusted-cas/{id}",
            admin_by_id(DELETE, |api, a, _, id| api.delete_trusted_ca(a, id)),
        )
        .route(
            "/api/v1/trusted-cas-create-many",
            admin(POST, |api, a, r| api.create_many_trusted_cas(a, r)),
        )
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(no_such_endpoint)
        .with_state(api);
    NormalizePath::trim_trailing_slash(routes)
}

/// An endpoint without a bearer check of its own (logins, the agent's calls: each checks what
/// it needs).
fn open(method: MethodFilter, handler: Plain) -> MethodRouter<Arc<Api>> {
    on(
        method,
        move |State(api): State<Arc<Api>>, request: ApiRequest| run(api, request, handler),
    )
}

/// An admin endpoint: the handler runs only with an admin bearer.
fn admin(method: MethodFilter, handler: AdminPlain) -> MethodRouter<Arc<Api>> {
    on(
        method,
        move |State(api): State<Arc<Api>>, proof: Admin, request: ApiRequest| {
            run(api, request, move |api, request| {
                handler(api, proof, request)
            })
        },
    )
}

/// An admin endpoint on one resource (`{id}` or `{name}` in the path).
fn admin_by_id(method: MethodFilter, handler: AdminById) -> MethodRouter<Arc<Api>> {
    on(
        method,
        move |State(api): State<Arc<Api>>, proof: Admin, Id(id): Id, request: ApiRequest| {
            run(api, request, move |api, request| {
                handler(api, proof, request, &id)
            })
        },
    )
}

/// Runs a handler: the back-pressure answer first when [`crate::Throttle`] picks the request,
/// then the handler on tokio's blocking pool (it takes the state lock and writes files), or
/// inline for the in-process path. A handler that panics gives 500.
async fn run<F>(api: Arc<Api>, request: ApiRequest, handler: F) -> Response
where
    F: FnOnce(&Arc<Api>, &ApiRequest) -> Result<ApiResponse, ApiError> + Send + 'static,
{
    if let Some(answer) = api.throttled(&request) {
        return answer.into_response();
    }
    let inline = request.inline;
    let work = move || handler(&api, &request).unwrap_or_else(ApiError::into_response);
    let answer = if inline {
        catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| handler_failed())
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or_else(|_| handler_failed())
    };
    answer.into_response()
}

async fn no_such_endpoint(request: Request) -> Response {
    ApiError::not_found(format!(
        "no such endpoint: {} {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
    .into_response()
}

/// The answer when a handler panicked.
fn handler_failed() -> ApiResponse {
    ApiError::internal("the request handler failed").into_response()
}

/// Proof that the request carries an admin bearer: only this extractor makes one, so a
/// handler that takes it cannot run without the check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin(());

impl FromRequestParts<Arc<Api>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Response> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let state = api.lock();
        match api.subject_of(&state, authorization) {
            Ok(crate::state::Subject::Admin) => Ok(Admin(())),
            Ok(crate::state::Subject::Client { .. }) => Err(ApiError::forbidden(
                "a client bearer cannot call admin endpoints",
            )
            .into_response()
            .into_response()),
            Err(error) => Err(error.into_response().into_response()),
        }
    }
}

/// The one path parameter (`{id}` or `{name}`), percent-decoded (a `+` stays a `+`). One
/// that is not UTF-8 names no resource: 404.
struct Id(String);

impl FromRequestParts<Arc<Api>> for Id {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, api).await {
            Ok(Path(id)) => Ok(Id(id)),
            Err(_) => Err(ApiError::not_found(format!(
                "no such endpoint: {} {}",
                parts.method,
                parts.uri.path()
            ))
            .into_response()
            .into_response()),
        }
    }
}

impl FromRequest<Arc<Api>> for ApiRequest {
    type Rejection = Response;

    /// The request the handlers see. The body is read whole, within the connection's
    /// deadline (408) and [`MAX_BODY_BYTES`] (413; the rest is read and discarded, up to
    /// 16 MiB, so that the client sees the answer). An `Authorization` value that is not
    /// visible ASCII counts as absent; of `Content-Type` only the media type is kept.
    async fn from_request(request: Request, _: &Arc<Api>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let connection = parts
            .extensions
            .get::<Connection>()
            .cloned()
            .unwrap_or_default();
        let body = read_body(&parts, body, connection.body_deadline).await?;
        let headers = &parts.headers;
        Ok(ApiRequest {
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            content_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(';').next())
                .map(|media_type| media_type.trim().to_ascii_lowercase()),
            body,
            peer_certificates: connection.peer_certificates,
            inline: connection.inline,
        })
    }
}

async fn read_body(
    parts: &Parts,
    mut body: Body,
    deadline: Option<Duration>,
) -> Result<Vec<u8>, Response> {
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_DRAINED_BYTES as u64) {
        return Err(closing(too_large()));
    }
    let collect = Limited::new(&mut body, MAX_BODY_BYTES).collect();
    let read = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, collect).await {
            Ok(read) => read,
            Err(_) => {
                return Err(closing(
                    ApiError::new(
                        408,
                        "NCERRBadRequest",
                        format!(
                            "the request body did not arrive within {} s",
                            deadline.as_secs_f64()
                        ),
                    )
                    .into_response(),
                ));
            }
        },
        None => collect.await,
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let drained = drain(&mut body, deadline.is_some()).await;
            let answer = too_large().into_response();
            Err(if drained { answer } else { close(answer) })
        }
        Err(error) => Err(closing(
            ApiError::new(
                400,
                "NCERRBadRequest",
                format!("cannot read the request body: {error}"),
            )
            .into_response(),
        )),
    }
}

/// The answer to a body over [`MAX_BODY_BYTES`].
fn too_large() -> ApiResponse {
    ApiError::new(
        413,
        "NCERRRequestTooLarge",
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
    .into_response()
}

/// Reads and discards the rest of a body; false when it is too long or broken, or (`timed`)
/// takes over 10 s. In process the body is in memory: nothing to time.
async fn drain(body: &mut Body, timed: bool) -> bool {
    let mut seen = 0usize;
    let read_all = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > MAX_DRAINED_BYTES {
                    return false;
                }
            }
        }
        true
    };
    if !timed {
        return read_all.await;
    }
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .unwrap_or(false)
}

/// The answer, and the connection closes after it.
fn closing(answer: ApiResponse) -> Response {
    close(answer.into_response())
}

fn close(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

impl IntoResponse for ApiResponse {
    /// JSON (`application/json`) when there is a body; none, and no content type, otherwise;
    /// `Retry-After` in seconds when set.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = match self.body {
            Some(body) => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body.to_string(),
            )
                .into_response(),
            None => status.into_response(),
        };
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
