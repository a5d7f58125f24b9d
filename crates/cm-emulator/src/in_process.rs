//! In-process requests: the API without a socket, for deterministic simulations.
//!
//! A request goes through the same steps as one that arrived over HTTPS (`server.rs`): the
//! same [`ApiRequest`] construction, the same body-size limit, the same `Api::handle`
//! (routing, authentication, handlers, persistence, clock) and the same response encoding.
//! Only the transport is missing: there is no TLS handshake, so the caller states which
//! client certificate chain "the connection" presented.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use rustls_pki_types::CertificateDer;

use crate::api::{Api, ApiResponse};
use crate::server::{MAX_BODY_BYTES, api_request, encode, handler_failed, too_large};

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
    api: Arc<Api>,
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
        InProcessHandle { api }
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
        let (status, body, retry_after) = encode(self.answer(request));
        InProcessResponse {
            status: status.as_u16(),
            body: body.map(|body| body.to_vec()).unwrap_or_default(),
            retry_after,
        }
    }

    fn answer(&self, request: InProcessRequest) -> ApiResponse {
        let InProcessRequest {
            method,
            path_and_query,
            authorization,
            body,
            peer_certificates,
        } = request;
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return unparsable();
        };
        let Ok(uri) = path_and_query.parse::<Uri>() else {
            return unparsable();
        };
        let authorization = match authorization.as_deref().map(HeaderValue::from_str) {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(_)) => return unparsable(),
        };
        if body.len() > MAX_BODY_BYTES {
            return too_large();
        }
        let request = api_request(
            method,
            &uri,
            authorization.as_ref(),
            None,
            body,
            peer_certificates.map(Arc::new),
        );
        catch_unwind(AssertUnwindSafe(|| self.api.handle(&request)))
            .unwrap_or_else(|_| handler_failed())
    }
}

/// hyper's answer to a request line or header it cannot parse: 400 without a body.
fn unparsable() -> ApiResponse {
    ApiResponse {
        status: 400,
        body: None,
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
