//! The HTTP/1.1 accept loop shared by the shim and by `sora-sim`.
//!
//! It owns the socket-level details that hyper 1 leaves to the caller: `TCP_NODELAY` on every
//! accepted socket, a timer so the header-read timeout actually fires, and a graceful shutdown
//! that lets in-flight requests finish but never waits longer than a hard deadline.

pub mod reload;
pub mod stack;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Service;

use crate::body::BoxError;

/// Connection-level settings of [`serve`].
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a client may take to send a complete request head.
    pub header_read_timeout: Duration,
    /// After a shutdown signal, how long in-flight requests may still run before connections are cut.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10), shutdown_grace: Duration::from_secs(10) }
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then drains connections.
///
/// The service must be infallible: hyper drops the connection when a service returns an error,
/// so every failure has to be turned into a response before it gets here.
pub async fn serve<S, B, F>(listener: TcpListener, service: S, options: ServeOptions, shutdown: F)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // half_close: a client that shuts its write side after a complete request (`nc -N`, some
    // scripts) still gets its answer instead of a silently dropped connection.
    builder.timer(TokioTimer::new()).header_read_timeout(options.header_read_timeout).keep_alive(true).half_close(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "could not set TCP_NODELAY");
        }
        let service = ConnectionInfo::new(service.clone(), peer);
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), "shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.shutdown_grace) => {
            tracing::warn!(grace = ?options.shutdown_grace, "shutdown deadline reached; cutting remaining connections");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = interrupt.recv() => tracing::info!("SIGINT received"),
    }
}

/// The peer address of the connection a request arrived on, stored in request extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Wraps a per-connection service so every request carries its [`PeerAddr`].
#[derive(Clone)]
struct ConnectionInfo<S> {
    inner: S,
    peer: SocketAddr,
}

impl<S> ConnectionInfo<S> {
    fn new(inner: S, peer: SocketAddr) -> Self {
        Self { inner, peer }
    }
}

impl<S, B> Service<Request<B>> for ConnectionInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.call(request)
    }
}
