//! The accept loop: connections served at most [`Config::max_connections`] at a time,
//! each closed when it sends no complete request head within
//! [`Config::header_timeout`] (counted from its first byte, or from its start) or stays
//! idle between requests longer than [`Config::idle_timeout`]. So slow or idle clients
//! cost a bounded amount of memory, while the connector's keep-alive clients (5 s
//! request timeouts) keep their connections between calls.
//!
//! Beyond the cap, new connections are not accepted: they wait in the listen backlog
//! until a served one closes (at the latest after its timeout), and are then served.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::server::Config;

/// Connection limits, from [`Config`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

impl Limits {
    pub(crate) fn of(config: &Config) -> Self {
        Self {
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections.max(1),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, asks
/// every connection to finish its request in flight and waits until all have closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header timeout is enforced below, together with the idle timeout.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new());
        let io = TokioIo::new(Watched {
            stream,
            watch: watch.clone(),
        });
        let service = {
            let watch = watch.clone();
            let router = router.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let router = router.clone();
                let busy = Busy::start(watch.clone());
                async move {
                    let response = router.oneshot(request.map(Body::new)).await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Body::new(BodyUntilDone { body, _busy: busy })),
                    )
                }
            })
        };
        let connection = graceful.watch(builder.serve_connection(io, service).into_owned());
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                () = watch.expired(limits) => tracing::debug!("closing a slow or idle connection"),
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As `axum::serve` does: errors of one connection are skipped, others (such as too
/// many open files) wait a moment before the next accept.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection: {e}");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Where a connection is between requests.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// No byte of a next request yet, since `since`; `first` before the first request.
    Waiting { since: Instant, first: bool },
    /// Part of a request head arrived, first at `since`.
    Head { since: Instant },
    /// Requests in flight (their responses not yet fully sent).
    Busy(usize),
}

struct Watch {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Watch {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                first: true,
            }),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = f(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves once the connection has overstayed its current phase.
    async fn expired(&self, limits: Limits) {
        loop {
            let deadline = match self.phase() {
                Phase::Waiting { since, first: true } | Phase::Head { since } => {
                    Some(since + limits.header_timeout)
                }
                Phase::Waiting {
                    since,
                    first: false,
                } => Some(since + limits.idle_timeout),
                Phase::Busy(_) => None,
            };
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {
                            // Unless the phase changed meanwhile, the time is up.
                            if self.phase_deadline_passed(limits) {
                                return;
                            }
                        }
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    fn phase_deadline_passed(&self, limits: Limits) -> bool {
        let now = Instant::now();
        match self.phase() {
            Phase::Waiting { since, first: true } | Phase::Head { since } => {
                now >= since + limits.header_timeout
            }
            Phase::Waiting {
                since,
                first: false,
            } => now >= since + limits.idle_timeout,
            Phase::Busy(_) => false,
        }
    }
}

/// A request in flight on a connection, until its response body is done with.
struct Busy(Arc<Watch>);

impl Busy {
    fn start(watch: Arc<Watch>) -> Self {
        watch.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        Self(watch)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Waiting {
                since: Instant::now(),
                first: false,
            },
        });
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct BodyUntilDone {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for BodyUntilDone {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The client's socket, noting when the first byte of a request head arrives.
struct Watched {
    stream: TcpStream,
    watch: Arc<Watch>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.update(|phase| match phase {
                Phase::Waiting { .. } => Phase::Head {
                    since: Instant::now(),
                },
                other => other,
            });
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
