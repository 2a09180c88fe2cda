//! The HTTP server under load: what `axum::serve` leaves open. A connection that
//! does not send a whole request head within [`HEADER_READ_TIMEOUT`] — a new one
//! sending nothing, or a kept-alive one idle between requests — is closed; past
//! [`MAX_CONNECTIONS`] open at once a new connection is closed on arrival (so a
//! flood never exhausts the process' file descriptors, and the probes answer again
//! as soon as the flood's own connections time out); request heads are bounded by
//! [`MAX_HEAD_BYTES`], and no connection lives past [`MAX_CONNECTION_LIFE`].

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// Connections served at once; more are closed on arrival.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a connection may take to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may live, whatever it does.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(600);
/// The largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves, then lets the open
/// requests finish (the caller bounds how long it waits). Returns how many
/// connections were refused for the cap, for the log.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<usize> {
    let open = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let mut refused = 0usize;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or the like: wait, do not spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    open = MAX_CONNECTIONS,
                    refused,
                    "too many connections open; closing new ones until some end"
                );
            }
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let counted = OpenConnection(open.clone());
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _counted = counted;
            let _ = tokio::time::timeout(MAX_CONNECTION_LIFE, connection).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(refused)
}

/// One open connection, counted while it lives.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
