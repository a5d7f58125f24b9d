//! `cm_client`'s transport seam over the emulator's in-process API: the agent's real client
//! code against the real manager logic, without sockets, so simulations are deterministic.

use cm_emulator::{InProcessHandle, InProcessRequest};
use rustls_pki_types::CertificateDer;

/// A [`cm_client::Transport`] that hands each request to a running emulator in-process,
/// presenting `peer_certificates` as the connection's TLS client certificate chain.
#[derive(Clone, Debug)]
pub struct EmulatorTransport {
    handle: InProcessHandle,
    peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

impl EmulatorTransport {
    /// A transport presenting `chain` (leaf first), or no client certificate.
    pub fn new(handle: InProcessHandle, chain: Option<Vec<CertificateDer<'static>>>) -> Self {
        Self {
            handle,
            peer_certificates: chain,
        }
    }
}

impl cm_client::Transport for EmulatorTransport {
    fn send(
        &self,
        request: &cm_client::Request<'_>,
    ) -> Result<cm_client::Response, cm_client::Error> {
        let response = self.handle.handle(InProcessRequest {
            method: request.method.to_string(),
            path_and_query: request.path.to_string(),
            authorization: request.bearer.map(|bearer| format!("Bearer {bearer}")),
            body: request.json_body.map(<[u8]>::to_vec).unwrap_or_default(),
            peer_certificates: self.peer_certificates.clone(),
        });
        Ok(cm_client::Response {
            status: response.status,
            body: response.body,
            retry_after: response.retry_after.map(cm_client::RetryAfter::Seconds),
        })
    }
}
