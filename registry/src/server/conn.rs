//! The server's accept loop, in place of `axum::serve` (which has no timeouts): at most
//! [`ConnectionLimits::max_connections`] connections, each served by hyper's HTTP/1.1 in its own task with the
//! header, idle and stalled-write timeouts enforced on its socket ([`Watched`]), and graceful shutdown. Plain TCP
//! ([`super::serve`]) and TLS ([`super::tls::serve_tls`]) differ only in how an accepted socket becomes the
//! stream hyper reads and writes.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::limits::ConnectionLimits;

/// How often at most the "connection limit reached" warning is logged while the limit holds.
const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until `shutdown` completes, turning each into a stream with `prepare`
/// (`None` drops it) in the connection's own task and serving `router` on it; then lets in-flight requests
/// finish and returns once every connection has closed.
pub(crate) async fn serve_connections<I, P, F>(
    listener: TcpListener,
    router: Router,
    limits: &ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    prepare: P,
) -> io::Result<()>
where
    P: Fn(TcpStream, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Option<I>> + Send + 'static,
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if last_warning.is_none_or(|t| t.elapsed() >= LIMIT_LOG_INTERVAL) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached: new connections wait until one closes (raise \
                         --max-connections, or look for clients holding connections open)"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, limits, stop, prepare) = (
            router.clone(),
            limits.clone(),
            stop_rx.clone(),
            prepare.clone(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(io) = prepare(tcp, peer).await {
                serve_connection(io, peer, router, &limits, stop).await;
            }
        });
    }
    drop(listener);
    let _ignored = stop_tx.send(true);
    // Every connection holds a slot until it closes.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Serves HTTP/1.1 on one connection until the client or a timeout closes it, or `stop` turns true (then the
/// request in flight finishes first).
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let clock = Arc::new(Clock::new());
    let io = Watched::new(io, clock.clone(), limits);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::start(&clock);
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        // A Router is always ready (its poll_ready returns Ready), so it is called without asking.
        let answer = router.clone().call(req);
        async move {
            let resp = answer.await?;
            Ok::<_, Infallible>(resp.map(|body| {
                Body::new(Tracked {
                    inner: body,
                    _busy: busy,
                })
            }))
        }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// What a connection's requests tell its socket: whether one is running, and when the last one ended.
struct Clock {
    opened: Instant,
    /// Requests whose response has not been sent whole yet.
    busy: AtomicUsize,
    /// Requests started so far.
    started: AtomicU64,
    /// When the last response was sent whole, in milliseconds after `opened`.
    idle_since_ms: AtomicU64,
    /// The socket's reader, parked while a request ran: woken when the last one ends, so its idle deadline
    /// is armed even if the client sends nothing more.
    reader: AtomicWaker,
}

impl Clock {
    fn new() -> Self {
        Clock {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            reader: AtomicWaker::new(),
        }
    }

    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire))
    }
}

/// A request in flight, from its head to the end of its response body.
struct Busy(Arc<Clock>);

impl Busy {
    fn start(clock: &Arc<Clock>) -> Busy {
        clock.started.fetch_add(1, Ordering::AcqRel);
        clock.busy.fetch_add(1, Ordering::AcqRel);
        Busy(clock.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Release);
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader.wake();
        }
    }
}

/// A response body that marks its request done when hyper drops it (sent whole, or the connection ended).
/// Frames pass through untouched, so the sendfile stream still recognises mapped blob slices.
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket with its deadlines. While no request is in flight, a read waiting for the client
/// fails once the request head is late: [`ConnectionLimits::header_timeout`] after the connection opened (first
/// request) or after the head's first byte, or [`ConnectionLimits::idle_timeout`] after the last response when
/// nothing came since. While a request runs, its body has its own timeout (`limits::limit_requests`). A write
/// the client does not take for [`ConnectionLimits::body_timeout`] fails. hyper closes the connection on
/// either failure.
struct Watched<I> {
    inner: I,
    clock: Arc<Clock>,
    header_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    /// `clock.started` when last looked at: a change means a new request began.
    seen_started: u64,
    /// When the head being received started (the connection's opening for the first request).
    head_since: Option<Instant>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// When the pending write started waiting for the client.
    write_stalled: Option<Instant>,
}

impl<I> Watched<I> {
    fn new(inner: I, clock: Arc<Clock>, limits: &ConnectionLimits) -> Self {
        let opened = clock.opened;
        Watched {
            inner,
            clock,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.body_timeout,
            seen_started: 0,
            head_since: Some(opened),
            read_timer: None,
            write_timer: None,
            write_stalled: None,
        }
    }

    /// Whether the read deadline has passed, arming its timer for `cx` if not.
    fn read_late(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = match self.head_since {
            Some(t) => t + self.header_timeout,
            None => self.clock.idle_since() + self.idle_timeout,
        };
        passed(&mut self.read_timer, deadline, cx)
    }

    /// `result` of a write, failing it once the client has taken nothing for the write timeout.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_stalled = None;
            return result;
        }
        let since = *self.write_stalled.get_or_insert_with(Instant::now);
        if passed(&mut self.write_timer, since + self.write_timeout, cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of the response for the body timeout",
            )));
        }
        Poll::Pending
    }
}

/// Whether `deadline` has passed, else arms `timer` to wake `cx` by then. The timer is moved only to an earlier
/// time: a deadline that moves later (as the idle one does after every request) leaves it where it is, and when
/// it fires early it is moved once, so a busy connection costs no timer update per request.
pub(crate) fn passed(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if timer.deadline() > deadline {
        timer.as_mut().reset(deadline);
    }
    while timer.as_mut().poll(cx).is_ready() {
        if timer.deadline() >= deadline {
            return true;
        }
        timer.as_mut().reset(deadline);
    }
    false
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let started = this.clock.started.load(Ordering::Acquire);
        if started != this.seen_started {
            this.seen_started = started;
            this.head_since = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let idle = this.clock.busy.load(Ordering::Acquire) == 0;
                if idle && this.head_since.is_none() && buf.filled().len() > before {
                    this.head_since = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.clock.reader.register(cx.waker());
                if this.clock.busy.load(Ordering::Acquire) == 0 && this.read_late(cx) {
                    let what = if this.head_since.is_some() {
                        "the request head did not arrive within the header timeout"
                    } else {
                        "the connection was idle for the idle timeout"
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
            failed => failed,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch_write(cx, result)
    }
}
