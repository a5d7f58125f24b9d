//! In-process requests: the API without a socket, for deterministic simulations.
//!
//! A request goes through the same axum router as one that arrived over HTTPS (`server.rs`):
//! the same extractors, body-size limit, routing, authentication, handlers, persistence, clock
//! and response encoding. Only the transport is missing: there is no TLS handshake, so the
//! caller states which client certificate chain "the connection" presented; and the handler
//! runs on the calling thread, so that no runtime is needed.

use std::fmt;
use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::header::AUTHORIZATION;
use rustls_pki_types::CertificateDer;
use tower::ServiceExt;

use crate::api::{Api, Connection, Service, router};

/// One HTTP request as the API sees it, with the TLS client certificate chain that the
/// connection presented.
#[derive(Clone, Default)]
pub struct InProcessRequest {
    /// The method, for example `"POST"` (case-sensitive, as in HTTP).
    pub method: String,
    /// The request target, for example `"/api/v1/auth/tokens/"` or
    /// `"/api/v1/client-management/clients/?skip=0&limit=10"`.
    pub path_and_query: String,
    /// The `Authorization` header value, for example `"Bearer <jwt>"`.
    pub authorization: Option<String>,
    /// The request body (JSON for every endpoint that takes one).
    pub body: Vec<u8>,
    /// The client certificate chain, leaf first, as a TLS handshake would have accepted it.
    /// `None`: no client certificate. It is taken as given: nothing checks it against the
    /// web interface's trusted CAs, as the TLS layer would (the API's own checks still apply).
    pub peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

impl fmt::Debug for InProcessRequest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("InProcessRequest")
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("body_len", &self.body.len())
            .field(
                "peer_certificates",
                &self.peer_certificates.as_ref().map(Vec::len),
            )
            .finish()
    }
}

/// The answer to an [`InProcessRequest`]: what the HTTPS server would have sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InProcessResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body bytes: JSON, or empty (for example 204, where the server sends no body and no
    /// `Content-Type`).
    pub body: Vec<u8>,
    /// The `Retry-After` header's seconds, when the answer has one.
    pub retry_after: Option<u64>,
}

/// Sends requests straight to a running emulator's API, sharing its state, clock and TLS
/// settings with the HTTPS server. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct InProcessHandle {
    routes: Service,
}

impl fmt::Debug for InProcessHandle {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("InProcessHandle")
            .finish_non_exhaustive()
    }
}

impl InProcessHandle {
    pub(crate) fn new(api: Arc<Api>) -> Self {
        InProcessHandle {
            routes: router(api),
        }
    }

    /// Answers one request, synchronously, on the calling thread, exactly as the HTTPS server
    /// answers it: the same routing, bearer checks, handlers, state (also written to the
    /// state folder), [`Clock`](crate::Clock) and response bytes. A body over 1 MiB gets 413;
    /// a handler that panics gives 500. A method, request target or `Authorization` value that
    /// HTTP cannot carry gets 400 with an empty body, as hyper answers a request it cannot
    /// parse.
    ///
    /// Handlers take the state lock and write files: this blocks (briefly), so from async
    /// code call it where blocking is allowed (for example `spawn_blocking`). A web restart
    /// with a `delay` is scheduled on the emulator's runtime; once the emulator has been shut
    /// down such a delayed restart no longer happens (`"delay": 0` still applies at once).
    pub fn handle(&self, request: InProcessRequest) -> InProcessResponse {
        let InProcessRequest {
            method,
            path_and_query,
            authorization,
            body,
            peer_certificates,
        } = request;
        let mut builder = Request::builder()
            .method(method.as_str())
            .uri(path_and_query.as_str());
        if let Some(authorization) = &authorization {
            builder = builder.header(AUTHORIZATION, authorization.as_str());
        }
        let Ok(mut request) = builder.body(Body::from(body)) else {
            return unparsable();
        };
        request.extensions_mut().insert(Connection {
            peer_certificates: peer_certificates.map(Arc::new),
            body_deadline: None,
            inline: true,
        });
        // Every future on this path is ready at once (the handler runs inline), so a plain
        // executor drives it: no runtime is needed, and none is entered.
        let response = match pollster::block_on(self.routes.clone().oneshot(request)) {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let body = pollster::block_on(response.into_body().collect())
            .map(|collected| collected.to_bytes().to_vec())
            .unwrap_or_default();
        InProcessResponse {
            status,
            body,
            retry_after,
        }
    }
}

/// hyper's answer to a request line or header it cannot parse: 400 without a body.
fn unparsable() -> InProcessResponse {
    InProcessResponse {
        status: 400,
        body: Vec::new(),
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<InProcessHandle>();
        send_sync::<InProcessRequest>();
    }
}
