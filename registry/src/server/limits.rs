//! What keeps slow, idle or greedy clients from exhausting the server: [`ConnectionLimits`] (timeouts, the
//! connection limit, concurrent uploads), the request layers that enforce the per-request ones (upload slots;
//! the body timeout and deadline), draining the body of a request answered before it was read so its client
//! reads the answer, and raising the open-file limit at start. The connection-level ones are enforced by [`super::conn`]. See
//! docs/registry-limits.md.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::conn::passed;
use super::error::ApiError;
use super::uploads::Client;
use super::{Route, Target, V2Request};

/// Default of [`ConnectionLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of [`ConnectionLimits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ConnectionLimits::idle_timeout`]: longer than the idle time of common clients' connection pools
/// (90 s for Go and reqwest), so clients close idle connections first.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default of [`ConnectionLimits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`ConnectionLimits::body_deadline`].
pub const DEFAULT_BODY_DEADLINE: Duration = Duration::from_secs(60);
/// Default of [`ConnectionLimits::max_concurrent_uploads`].
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 256;
/// Default of [`ConnectionLimits::max_concurrent_uploads_per_client`] (docker pushes 5 layers at once, skopeo and our client
/// up to 8).
pub const DEFAULT_MAX_CONCURRENT_UPLOADS_PER_CLIENT: usize = 32;
/// At most this much of a refused request's body is read and discarded before answering (see [`drain`]).
pub const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;
/// For at most this long.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Limits on connections and requests (`sealos registry serve --max-connections ...`). The defaults are the
/// `DEFAULT_*` constants of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once (TLS handshakes included); more wait in the kernel's accept queue until
    /// one closes, and a warning is logged at most once every 10 s while the limit holds.
    pub max_connections: usize,
    /// How long a client may take to send a request's line and headers: from accepting the connection (after
    /// the TLS handshake) for its first request, from the first byte for later ones.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request body may send nothing before the request ends, and a response may wait for the
    /// client to take anything, before the connection is closed.
    pub body_timeout: Duration,
    /// How long a request body outside blob uploads (a manifest PUT: at most 4 MiB) may take in all, however
    /// steadily it trickles; past it the request fails and the connection is closed.
    pub body_deadline: Duration,
    /// Most uploads (requests streaming a blob chunk) at once, over all clients; more are answered 429
    /// TOOMANYREQUESTS with `Retry-After: 1`.
    pub max_concurrent_uploads: usize,
    /// Most uploads at once from one client (a logged-in user, else a remote address, as for upload sessions);
    /// more are answered 429 as well.
    pub max_concurrent_uploads_per_client: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_deadline: DEFAULT_BODY_DEADLINE,
            max_concurrent_uploads: DEFAULT_MAX_CONCURRENT_UPLOADS,
            max_concurrent_uploads_per_client: DEFAULT_MAX_CONCURRENT_UPLOADS_PER_CLIENT,
        }
    }
}

impl ConnectionLimits {
    /// Lowers [`ConnectionLimits::max_connections`] to what `open_files` descriptors allow (half of them, less
    /// a reserve: uploads and blob reads hold files of their own); returns the value it had when it lowered it.
    pub fn fit_open_files(&mut self, open_files: u64) -> Option<usize> {
        let fits = usize::try_from(open_files.saturating_sub(64) / 2)
            .unwrap_or(usize::MAX)
            .max(16);
        (self.max_connections > fits).then(|| std::mem::replace(&mut self.max_connections, fits))
    }
}

/// Raises this process's soft limit of open files (`RLIMIT_NOFILE`) to its hard limit and returns the soft
/// limit now in force (`u64::MAX` when unlimited).
pub fn raise_open_file_limit() -> io::Result<u64> {
    let (soft, hard) = formats::sys::open_file_limits(None)?;
    if soft >= hard {
        return Ok(soft);
    }
    formats::sys::open_file_limits(Some(hard)).map(|(soft, _)| soft)
}

/// The request-level limits shared by every connection: upload slots, overall and per client.
pub(crate) struct RequestLimits {
    uploads: Arc<Semaphore>,
    per_client: Mutex<HashMap<Client, usize>>,
    max_per_client: usize,
    max_concurrent_uploads: usize,
    body_timeout: Duration,
    body_deadline: Duration,
}

impl RequestLimits {
    /// The request-level part of `limits`.
    pub(crate) fn new(limits: &ConnectionLimits) -> Self {
        RequestLimits {
            uploads: Arc::new(Semaphore::new(
                limits.max_concurrent_uploads.min(Semaphore::MAX_PERMITS),
            )),
            per_client: Mutex::default(),
            max_per_client: limits.max_concurrent_uploads_per_client,
            max_concurrent_uploads: limits.max_concurrent_uploads,
            body_timeout: limits.body_timeout,
            body_deadline: limits.body_deadline,
        }
    }

    /// An upload slot for `client`.
    fn admit(self: &Arc<Self>, client: Client) -> Result<UploadSlot, ApiError> {
        let too_many = |message: String| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message)
                .with_header(header::RETRY_AFTER, "1")
        };
        let overall = self.uploads.clone().try_acquire_owned().map_err(|_| {
            too_many(format!(
                "the registry receives {} uploads already; retry shortly (raise it with --max-concurrent-uploads)",
                self.max_concurrent_uploads
            ))
        })?;
        {
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(client.clone()).or_default();
            if *n >= self.max_per_client {
                return Err(too_many(format!(
                    "{} has {} uploads running already; retry shortly (raise it with \
                     --max-concurrent-uploads-per-client)",
                    client.describe(),
                    self.max_per_client
                )));
            }
            *n += 1;
        }
        Ok(UploadSlot {
            limits: self.clone(),
            client,
            _overall: overall,
        })
    }
}

/// One running upload's place in [`RequestLimits`], given back when dropped.
struct UploadSlot {
    limits: Arc<RequestLimits>,
    client: Client,
    _overall: OwnedSemaphorePermit,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut map = self
            .limits
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Whether `req` streams a blob chunk into an upload session (a POST, PATCH or PUT under `blobs/uploads/`
/// with a body), its path read as the handler reads it ([`V2Request`]).
fn is_upload(req: &mut Request) -> bool {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    has_body
        && matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT)
        && matches!(
            V2Request::of(req).target,
            Target::Endpoint(Route::UploadStart(_) | Route::Upload(..))
        )
}

/// The request layer inside the auth layer: an upload takes a slot for as long as it runs (429
/// TOOMANYREQUESTS when none is free; [`guard_bodies`] drains the refused body).
pub(crate) async fn limit_requests(
    State(limits): State<Arc<RequestLimits>>,
    mut req: Request,
    next: Next,
) -> Response {
    let slot = if is_upload(&mut req) {
        match limits.admit(Client::of(req.extensions())) {
            Ok(slot) => Some(slot),
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let resp = next.run(req).await;
    drop(slot);
    resp
}

/// The outer request layer, in front of every route and of the auth layer: a request body fails once it sends
/// nothing for the body timeout, or, outside uploads, once it has taken the body deadline in all. A request
/// answered before its body was read to the end (any refusal: 401, 405, 404, 413, 429, ...) has the rest
/// drained before the answer goes out (see [`drain`]), so a client still sending it reads the answer; with
/// `Connection: close` when it could not be.
pub(crate) async fn guard_bodies(
    State(limits): State<Arc<RequestLimits>>,
    mut req: Request,
    next: Next,
) -> Response {
    let deadline = (!is_upload(&mut req)).then(|| Instant::now() + limits.body_deadline);
    let (unread_tx, mut unread) = tokio::sync::oneshot::channel();
    let timeout = limits.body_timeout;
    let body_deadline = limits.body_deadline;
    let mut resp = next
        .run(req.map(|body| {
            Body::new(GuardedBody {
                inner: body,
                timeout,
                quiet_since: None,
                deadline: deadline.map(|at| (at, body_deadline)),
                timer: None,
                unread: Some(unread_tx),
            })
        }))
        .await;
    // The body comes back when the handler dropped it before its end; if something still holds it, that
    // something reads it.
    if let Ok(rest) = unread.try_recv()
        && !drain(rest).await
    {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request body that fails once it has sent nothing for `timeout` or is past its `deadline`, and that hands
/// what is left of it to `unread` when dropped before its end.
struct GuardedBody {
    inner: Body,
    timeout: Duration,
    /// Since when the body has been waiting for the client.
    quiet_since: Option<Instant>,
    /// When the whole body must have arrived, and the limit that set it (for the message).
    deadline: Option<(Instant, Duration)>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Taken once the body ended, failed or timed out: nothing is left to drain then.
    unread: Option<tokio::sync::oneshot::Sender<Body>>,
}

impl GuardedBody {
    /// Ends the body with a timeout error `message`; what is left of it is not drained.
    fn time_out(&mut self, message: String) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.unread = None;
        Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
            io::ErrorKind::TimedOut,
            message,
        )))))
    }

    fn past_deadline(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let limit = self.deadline.map_or(Duration::ZERO, |(_, limit)| limit);
        self.time_out(format!(
            "the request body took longer than {} s in all (--body-deadline); push large content as a blob",
            limit.as_secs_f64()
        ))
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.quiet_since = None;
                match &frame {
                    None | Some(Err(_)) => this.unread = None,
                    Some(Ok(_)) => {
                        if let Some((at, _)) = this.deadline
                            && Instant::now() >= at
                        {
                            return this.past_deadline();
                        }
                    }
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let since = *this.quiet_since.get_or_insert_with(Instant::now);
                let quiet_until = since + this.timeout;
                let until = this
                    .deadline
                    .map_or(quiet_until, |(at, _)| at.min(quiet_until));
                if passed(&mut this.timer, until, cx) {
                    if this.deadline.is_some_and(|(at, _)| at <= quiet_until) {
                        return this.past_deadline();
                    }
                    let secs = this.timeout.as_secs_f64();
                    return this.time_out(format!(
                        "the request body sent nothing for {secs} s (--body-timeout)"
                    ));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if let Some(unread) = self.unread.take()
            && !http_body::Body::is_end_stream(&self.inner)
        {
            let _ = unread.send(std::mem::take(&mut self.inner));
        }
    }
}

/// Reads and discards what is left of a refused request's body, up to [`DRAIN_LIMIT`] bytes for at most
/// [`DRAIN_TIME`]; true when the body ended. A client still sending its body reads the answer only if the
/// server takes the body first: closing a connection with unread data resets it, and over TLS the client then
/// sees the connection cut instead of the answer.
pub(crate) async fn drain(body: Body) -> bool {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    let reading = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                return false;
            };
            read += chunk.len() as u64;
            if read > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, reading)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_fits_half_the_open_files() {
        let mut limits = ConnectionLimits::default();
        assert_eq!(limits.fit_open_files(1024), Some(DEFAULT_MAX_CONNECTIONS));
        assert_eq!(limits.max_connections, 480);
        assert_eq!(limits.fit_open_files(1 << 20), None);
        assert_eq!(limits.max_connections, 480);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let soft = raise_open_file_limit().unwrap();
        assert_eq!(soft, formats::sys::open_file_limits(None).unwrap().1);
    }
}
