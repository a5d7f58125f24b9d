//! The HTTPS layer: a tokio-rustls accept loop feeding hyper 1 (HTTP/1.1) connections.
//!
//! Each connection takes the TLS configuration current when it is accepted (so a web restart
//! affects new connections only), completes the handshake, and hands the client certificate
//! chain it presented to every request of that connection.
//!
//! Limits: at most `max_connections` connections are served at once (the rest wait in the
//! kernel's queue); a TLS handshake must finish within 10 s; request headers must arrive within
//! `header_read_timeout` (hyper's timer, with tokio's timer set; 10 s by default), and the body
//! within the same time after them (else 408 and the connection is closed: a body that
//! trickles in must not hold a connection slot); a keep-alive connection with no request in
//! flight is closed after `idle_timeout` (30 s by default).
//!
//! [`api_request`], [`too_large`], [`handler_failed`] and [`encode`] are shared with the
//! in-process path (`in_process.rs`), so both build the same [`ApiRequest`] and send the same
//! status and body bytes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::api::{Api, ApiError, ApiRequest, ApiResponse};
use crate::tls::TlsSwitch;

/// Request bodies larger than this are refused with 413.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an oversized body is read and discarded so that the client sees the 413
/// instead of a reset connection; beyond this the connection is closed.
const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

/// A TLS handshake must finish within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection limits (`EmulatorConfig::max_connections`, `header_read_timeout`,
/// `idle_timeout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

pub(crate) type PeerCertificates = Option<Arc<Vec<CertificateDer<'static>>>>;

/// Accepts connections until `shutdown` turns true (or its sender is dropped), then lets
/// open connections finish their current request for up to two seconds.
pub(crate) async fn serve(
    listener: TcpListener,
    api: Arc<Api>,
    tls: Arc<TlsSwitch>,
    shutdown: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop = shutdown.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Wait for a free slot first: beyond the cap, connections queue in the kernel.
        let permit = tokio::select! {
            _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        tokio::select! {
            _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let connection = connection(stream, tls.current(), Arc::clone(&api), shutdown.clone(), limits);
                    connections.spawn(async move {
                        connection.await;
                        drop(permit);
                    });
                }
                // Usually too many open files: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    connections.abort_all();
}

/// What the idle timer of a connection watches: requests in flight and the last activity.
struct Activity {
    in_flight: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(
            self.last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .elapsed(),
        )
    }
}

async fn connection(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    api: Arc<Api>,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    let _ = stream.set_nodelay(true);
    let acceptor = TlsAcceptor::from(config);
    // A failed handshake (for example a client certificate from an untrusted CA) has already
    // been answered with a TLS alert by rustls; there is nothing else to do.
    let Ok(Ok(tls_stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
    else {
        return;
    };
    let peer: PeerCertificates = tls_stream.get_ref().1.peer_certificates().map(|chain| {
        Arc::new(
            chain
                .iter()
                .map(|certificate| certificate.clone().into_owned())
                .collect(),
        )
    });
    let activity = Arc::new(Activity {
        in_flight: AtomicUsize::new(0),
        last: std::sync::Mutex::new(Instant::now()),
    });
    let service_activity = Arc::clone(&activity);
    let service = service_fn(move |request| {
        let api = Arc::clone(&api);
        let peer = peer.clone();
        let activity = Arc::clone(&service_activity);
        async move {
            activity.in_flight.fetch_add(1, Ordering::SeqCst);
            let response = handle(api, peer, request, limits.header_read_timeout).await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(tls_stream), service);
    tokio::pin!(connection);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break,
            _ = ticks.tick() => {
                if activity.idle_for().is_some_and(|idle| idle >= limits.idle_timeout) {
                    break;
                }
            }
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(2), connection).await;
}

async fn handle(
    api: Arc<Api>,
    peer_certificates: PeerCertificates,
    request: Request<Incoming>,
    body_read_timeout: Duration,
) -> Response<Full<Bytes>> {
    let (parts, mut body) = request.into_parts();
    let declared_length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_DRAINED_BYTES as u64) {
        return to_hyper(too_large(), true);
    }
    let read = tokio::time::timeout(
        body_read_timeout,
        Limited::new(&mut body, MAX_BODY_BYTES).collect(),
    )
    .await;
    let Ok(read) = read else {
        let response = ApiError::new(
            408,
            "NCERRBadRequest",
            format!(
                "the request body did not arrive within {} s",
                body_read_timeout.as_secs_f64()
            ),
        )
        .into_response();
        return to_hyper(response, true);
    };
    let body = match read {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let drained = drain(&mut body).await;
            return to_hyper(too_large(), !drained);
        }
        Err(error) => {
            let response = ApiError::new(
                400,
                "NCERRBadRequest",
                format!("cannot read the request body: {error}"),
            )
            .into_response();
            return to_hyper(response, true);
        }
    };
    let request = api_request(
        parts.method,
        &parts.uri,
        parts.headers.get(AUTHORIZATION),
        parts.headers.get(CONTENT_TYPE),
        body.to_vec(),
        peer_certificates,
    );
    let response = tokio::task::spawn_blocking(move || api.handle(&request))
        .await
        .unwrap_or_else(|_| handler_failed());
    to_hyper(response, false)
}

/// The request the handlers see, from the parts of an HTTP request. An `Authorization` value
/// that is not visible ASCII counts as absent; of `Content-Type` only the media type is kept.
pub(crate) fn api_request(
    method: Method,
    uri: &Uri,
    authorization: Option<&HeaderValue>,
    content_type: Option<&HeaderValue>,
    body: Vec<u8>,
    peer_certificates: PeerCertificates,
) -> ApiRequest {
    ApiRequest {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        authorization: authorization
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        content_type: content_type
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|media_type| media_type.trim().to_ascii_lowercase()),
        body,
        peer_certificates,
    }
}

/// The answer when a handler panicked.
pub(crate) fn handler_failed() -> ApiResponse {
    ApiError::internal("the request handler failed").into_response()
}

/// The answer to a body over [`MAX_BODY_BYTES`].
pub(crate) fn too_large() -> ApiResponse {
    ApiError::new(
        413,
        "NCERRRequestTooLarge",
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
    .into_response()
}

/// Reads and discards the rest of a body; false when it is too long or broken.
async fn drain(body: &mut Incoming) -> bool {
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
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .unwrap_or(false)
}

/// The status, body bytes and `Retry-After` seconds sent for an answer; `None`: no body (and
/// no content type), no header.
pub(crate) fn encode(response: ApiResponse) -> (StatusCode, Option<Bytes>, Option<u64>) {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        response.body.map(|body| Bytes::from(body.to_string())),
        response.retry_after,
    )
}

fn to_hyper(response: ApiResponse, close: bool) -> Response<Full<Bytes>> {
    let (status, body, retry_after) = encode(response);
    let mut builder = Response::builder().status(status);
    if let Some(seconds) = retry_after {
        builder = builder.header(hyper::header::RETRY_AFTER, seconds);
    }
    if close {
        builder = builder.header(CONNECTION, HeaderValue::from_static("close"));
    }
    let result = match body {
        Some(body) => builder
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body)),
        None => builder.body(Full::new(Bytes::new())),
    };
    result.unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
