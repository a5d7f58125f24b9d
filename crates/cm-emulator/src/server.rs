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
//! Requests go to the API's axum router (`api/routes.rs`), the same service the in-process
//! path (`in_process.rs`) calls, with a [`Connection`] extension carrying the client
//! certificate chain and the body deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tower::ServiceExt;

use hyper::Request;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::api::{Connection, Service};
use crate::tls::TlsSwitch;

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

/// Accepts connections until `shutdown` turns true (or its sender is dropped), then lets
/// open connections finish their current request for up to two seconds.
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Service,
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
                    let connection = connection(stream, tls.current(), routes.clone(), shutdown.clone(), limits);
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
    routes: Service,
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
    let peer: crate::api::PeerCertificates =
        tls_stream.get_ref().1.peer_certificates().map(|chain| {
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
    let connection_facts = Connection {
        peer_certificates: peer,
        body_deadline: Some(limits.header_read_timeout),
        inline: false,
    };
    let service = service_fn(move |mut request: Request<Incoming>| {
        let routes = routes.clone();
        let activity = Arc::clone(&service_activity);
        request.extensions_mut().insert(connection_facts.clone());
        async move {
            activity.in_flight.fetch_add(1, Ordering::SeqCst);
            let response = routes.oneshot(request.map(Body::new)).await;
            activity.touch();
            activity.in_flight.fetch_sub(1, Ordering::SeqCst);
            response
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
