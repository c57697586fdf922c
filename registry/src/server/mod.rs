//! The OCI Distribution v1.1 HTTP server (`sealos registry serve`): one `/v2/{*path}` handler that parses the
//! path from the right (so repository names may have any depth), streaming blob bodies in both directions,
//! Prometheus `/metrics` and structured request logs. With [`ServerConfig::auth`] every `/v2/` request goes
//! through [`auth`] (Basic or bearer tokens from `GET /token`), and so does `/metrics`, which wants a logged-in
//! user. Open upload sessions are capped and idle ones expire ([`uploads`]); blob and manifest deletes are off
//! unless [`ServerConfig::enable_delete`]. [`tls`] serves the same router over rustls.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use formats::digest::{Algorithm, Digest};
use futures_util::StreamExt;

use crate::storage::{BlobReader, ByteRange, ByteStream, MANIFEST_LIMIT, Storage, StorageError};

pub mod auth;
mod conn;
pub mod error;
pub mod limits;
pub mod manifest_check;
pub mod sendfile;
pub mod tls;
pub mod uploads;

use error::{ApiError, range_value};
use uploads::{Client, UploadSessionLimits, UploadSessions};

/// Options of a running registry.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Refuse every write with 405 UNSUPPORTED.
    pub read_only: bool,
    /// Emit one `tracing` event per request.
    pub log_requests: bool,
    /// Require credentials (`--htpasswd`); `None` serves everyone.
    pub auth: Option<auth::AuthConfig>,
    /// Served over TLS: the token realm in challenges is an `https://` URL.
    pub tls: bool,
    /// Allow `DELETE` of blobs and manifests (`--enable-delete`); off, they answer 405 UNSUPPORTED, as in
    /// distribution. A blob that a manifest of its repository uses is never unlinked (409).
    pub enable_delete: bool,
    /// Caps on open upload sessions and their idle timeout.
    pub upload_sessions: UploadSessionLimits,
    /// Timeouts and limits against slow, idle or greedy connections. [`router`] applies the per-request ones
    /// (upload slots, the body timeout and deadline); give the same to [`serve_with`] or
    /// [`tls::serve_tls_with`] for the rest.
    pub limits: limits::ConnectionLimits,
}

/// Request and byte counters exported at `/metrics`. Every label set is bounded: methods outside HTTP's own
/// are counted as `other`, and statuses are the ones the server answers with.
#[derive(Default)]
pub struct Metrics {
    requests: std::sync::Mutex<BTreeMap<(&'static str, u16), u64>>,
    bytes_in: Arc<AtomicU64>,
    bytes_out: AtomicU64,
}

/// The `method` label of a request: its method when HTTP defines it, else `other` (made-up methods would
/// otherwise each add a series).
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ]
    .iter()
    .find(|m| *m == method)
    .map_or("other", |m| m.as_str())
}

impl Metrics {
    fn render(&self, upload_sessions: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP registry_http_requests_total HTTP requests by method and status.\n");
        out.push_str("# TYPE registry_http_requests_total counter\n");
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, status), n) in map.iter() {
            out.push_str(&format!(
                "registry_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP registry_bytes_received_total Request body bytes received.\n");
        out.push_str("# TYPE registry_bytes_received_total counter\n");
        out.push_str(&format!(
            "registry_bytes_received_total {}\n",
            self.bytes_in.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP registry_bytes_sent_total Response body bytes sent.\n");
        out.push_str("# TYPE registry_bytes_sent_total counter\n");
        out.push_str(&format!(
            "registry_bytes_sent_total {}\n",
            self.bytes_out.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP registry_upload_sessions_open Upload sessions open now.\n");
        out.push_str("# TYPE registry_upload_sessions_open gauge\n");
        out.push_str(&format!(
            "registry_upload_sessions_open {upload_sessions}\n"
        ));
        out
    }
}

/// Shared state of the handlers.
struct App {
    storage: Arc<dyn Storage>,
    config: ServerConfig,
    metrics: Metrics,
    uploads: UploadSessions,
}

type AppState = Arc<App>;
type ApiResult = Result<Response, ApiError>;

/// The registry's router over `storage`. Built inside a tokio runtime, it starts the task that cancels idle
/// upload sessions (it ends when the router is dropped); serve it with [`serve`] or [`tls::serve_tls`], which
/// tell it the clients' addresses.
pub fn router(storage: Arc<dyn Storage>, config: ServerConfig) -> Router {
    let authenticator = config
        .auth
        .clone()
        .map(|a| Arc::new(auth::Authenticator::new(a, config.tls)));
    let request_limits = Arc::new(limits::RequestLimits::new(&config.limits));
    let app = Arc::new(App {
        storage,
        uploads: UploadSessions::new(config.upload_sessions.clone()),
        config,
        metrics: Metrics::default(),
    });
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(expire_idle_uploads(Arc::downgrade(&app)));
    }
    let mut v2 = Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*path}", any(dispatch))
        .route("/metrics", get(metrics))
        // Inside the auth layer: a refused request takes no upload slot.
        .route_layer(middleware::from_fn_with_state(
            request_limits.clone(),
            limits::limit_requests,
        ));
    if let Some(a) = authenticator {
        v2 = v2
            .route_layer(middleware::from_fn_with_state(
                a.clone(),
                auth::require_auth,
            ))
            .merge(
                Router::new()
                    .route("/token", any(auth::token_endpoint))
                    .with_state(a),
            );
    }
    v2.fallback(not_found)
        // Outside everything else: one place drains every body a refusal left unread.
        .layer(middleware::from_fn_with_state(
            request_limits,
            limits::guard_bodies,
        ))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .with_state(app)
}

/// Serves `router` on `listener` with the default [`limits::ConnectionLimits`] until `shutdown` completes, then
/// finishes in-flight requests. Large blobs of the filesystem store are sent with sendfile(2) (see [`sendfile`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    serve_with(
        listener,
        router,
        &limits::ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// As [`serve`], within `limits` (connections, header, idle and stalled-write timeouts; see `conn.rs`). Requests
/// carry the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &limits::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    conn::serve_connections(
        listener,
        router,
        limits,
        shutdown,
        |tcp, _peer| async move { Some(sendfile::SendfileStream::new(tcp)) },
    )
    .await
}

/// Counts the upload sessions an earlier run left in storage, then cancels idle sessions every
/// [`UploadSessions::sweep_interval`] until the router is dropped.
async fn expire_idle_uploads(app: std::sync::Weak<App>) {
    let interval = match app.upgrade() {
        Some(app) => {
            app.uploads.adopt_stored(app.storage.as_ref()).await;
            app.uploads.sweep_interval()
        }
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(app) = app.upgrade() else { return };
        app.uploads.sweep(app.storage.as_ref()).await;
    }
}

async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    if method != Method::HEAD
        && let Some(len) = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    {
        app.metrics.bytes_out.fetch_add(len, Ordering::Relaxed);
    }
    {
        let mut map = app
            .metrics
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry((method_label(&method), status)).or_default() += 1;
    }
    if app.config.log_requests {
        tracing::info!(
            method = %method,
            path = %path,
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    resp
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.uploads.open()),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

async fn base() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("docker-distribution-api-version"),
                "registry/2.0",
            ),
        ],
        "{}",
    )
        .into_response()
}

/// What a `/v2/...` path asks for, parsed from the right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Catalog,
    Tags(String),
    UploadStart(String),
    Upload(String, String),
    Blob(String, String),
    Manifest(String, String),
    Referrers(String, String),
}

impl Route {
    /// The repository the route names (none for the catalog).
    pub(crate) fn repository(&self) -> Option<&str> {
        match self {
            Route::Catalog => None,
            Route::Tags(n)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Blob(n, _)
            | Route::Manifest(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Splits `path` (after `/v2/`) into the repository name and the endpoint.
pub(crate) fn parse_route(path: &str) -> Option<Route> {
    let path = path.trim_start_matches('/');
    if path == "_catalog" {
        return Some(Route::Catalog);
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let name_before = |suffix_segments: usize| -> Option<String> {
        let mut end = trimmed.len();
        for _ in 0..suffix_segments {
            end = trimmed[..end].rfind('/')?;
        }
        Some(trimmed[..end].to_string())
    };
    let segs: Vec<&str> = trimmed.rsplitn(4, '/').collect();
    // segs[0] is the last segment, segs[1] the one before, ...
    let last = *segs.first()?;
    let prev = segs.get(1).copied();
    let prev2 = segs.get(2).copied();
    if prev == Some("tags") && last == "list" {
        return name_before(2).map(Route::Tags);
    }
    if prev == Some("blobs") && last == "uploads" {
        return name_before(2).map(Route::UploadStart);
    }
    let last = last.to_string();
    if prev2 == Some("blobs") && prev == Some("uploads") {
        return name_before(3).map(|n| Route::Upload(n, last));
    }
    match prev {
        Some("blobs") => name_before(2).map(|n| Route::Blob(n, last)),
        Some("manifests") => name_before(2).map(|n| Route::Manifest(n, last)),
        Some("referrers") => name_before(2).map(|n| Route::Referrers(n, last)),
        _ => None,
    }
}

/// What a request's path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/v2` or `/v2/`: the API version check.
    Base,
    /// An endpoint under `/v2/`.
    Endpoint(Route),
    /// Anything else: no endpoint, or a path outside `/v2` (`/metrics`).
    Unknown,
}

/// A request parsed once, from its percent-decoded path and query: the auth layer decides on this value and the
/// handler serves it, so both see the same route, repository names and parameters (an encoded `m%6Funt` is
/// `mount` for both). The auth layer leaves it in the request's extensions for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V2Request {
    /// The percent-decoded path after `/v2/` (the whole path outside `/v2`), for messages.
    pub(crate) path: String,
    /// What the path names.
    pub(crate) target: Target,
    /// Query parameters in order, percent-decoded.
    pub(crate) query: Vec<(String, String)>,
}

impl V2Request {
    /// Parses `uri`.
    pub(crate) fn parse(uri: &Uri) -> Self {
        let decoded = percent_decode(uri.path());
        let query = query_pairs(uri.query());
        let rest = decoded
            .strip_prefix("/v2")
            .filter(|r| r.is_empty() || r.starts_with('/'));
        let Some(rest) = rest else {
            return V2Request {
                path: decoded,
                target: Target::Unknown,
                query,
            };
        };
        let path = rest.strip_prefix('/').unwrap_or(rest).to_string();
        let target = if rest.is_empty() || rest == "/" {
            Target::Base
        } else {
            parse_route(&path).map_or(Target::Unknown, Target::Endpoint)
        };
        V2Request {
            path,
            target,
            query,
        }
    }

    /// The parsed form of `req`, parsing it on first use and keeping it in the request's extensions.
    pub(crate) fn of(req: &mut Request) -> &mut V2Request {
        let (uri, extensions) = (req.uri().clone(), req.extensions_mut());
        extensions.get_or_insert_with(|| V2Request::parse(&uri))
    }

    /// The cross-repository mount a blob upload start asks for (see [`mount_of`]).
    pub(crate) fn mount(&self) -> Option<(&str, &str)> {
        mount_of(&self.query)
    }

    /// Turns a mount into a plain upload start (the caller may not read the source).
    pub(crate) fn drop_mount(&mut self) {
        self.query.retain(|(k, _)| k != "mount" && k != "from");
    }
}

/// The cross-repository mount in query `q`: `(digest, source repository)` when `mount` and `from` are both given
/// and not empty. A `mount` without `from` is a plain upload start, as in distribution.
fn mount_of(q: &[(String, String)]) -> Option<(&str, &str)> {
    let digest = param(q, "mount").filter(|d| !d.is_empty())?;
    let from = param(q, "from").filter(|f| !f.is_empty())?;
    Some((digest, from))
}

/// Query parameters in order, percent-decoded.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::digest_invalid(e.to_string()))
}

async fn dispatch(State(app): State<AppState>, req: Request) -> ApiResult {
    let (mut parts, body) = req.into_parts();
    // Parsed by the auth layer when there is one: the handler serves what was authorised.
    let V2Request {
        path,
        target,
        query: q,
    } = parts
        .extensions
        .remove::<V2Request>()
        .unwrap_or_else(|| V2Request::parse(&parts.uri));
    let route = match target {
        Target::Endpoint(route) => route,
        Target::Base => return Ok(base().await),
        Target::Unknown => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                format!("no endpoint at `/v2/{path}`"),
            ));
        }
    };
    if let Some(n) = route.repository()
        && let Err(e) = formats::reference::Repository::parse(n)
    {
        return Err(ApiError::name_invalid(&e));
    }
    let (method, headers) = (parts.method, parts.headers);
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if writes && app.config.read_only {
        return Err(ApiError::read_only());
    }
    if method == Method::DELETE
        && matches!(route, Route::Blob(..) | Route::Manifest(..))
        && !app.config.enable_delete
    {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "deletes are disabled on this registry (start it with --enable-delete)",
        ));
    }
    let unsupported = || {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{method} is not supported on `/v2/{path}`"),
        )
    };
    let app = app.as_ref();
    let client = || Client::of(&parts.extensions);
    match (&route, &method) {
        (Route::Catalog, &Method::GET) => catalog(app, &q).await,
        (Route::Tags(n), &Method::GET) => tags_list(app, n, &q).await,
        (Route::Blob(n, d), &Method::GET) => get_blob(app, n, d, &headers, true).await,
        (Route::Blob(n, d), &Method::HEAD) => get_blob(app, n, d, &headers, false).await,
        (Route::Blob(n, d), &Method::DELETE) => delete_blob(app, n, d).await,
        (Route::UploadStart(n), &Method::POST) => {
            start_upload(app, n, &q, client(), &headers, body).await
        }
        (Route::Upload(n, id), &Method::PATCH) => patch_upload(app, n, id, &headers, body).await,
        (Route::Upload(n, id), &Method::PUT) => put_upload(app, n, id, &q, &headers, body).await,
        (Route::Upload(n, id), &Method::GET) => upload_status(app, n, id).await,
        (Route::Upload(n, id), &Method::DELETE) => cancel_upload(app, n, id).await,
        (Route::Manifest(n, r), &Method::GET) => get_manifest(app, n, r, true).await,
        (Route::Manifest(n, r), &Method::HEAD) => get_manifest(app, n, r, false).await,
        (Route::Manifest(n, r), &Method::PUT) => put_manifest(app, n, r, &q, &headers, body).await,
        (Route::Manifest(n, r), &Method::DELETE) => delete_manifest(app, n, r).await,
        (Route::Referrers(n, d), &Method::GET) => referrers(app, n, d, &q).await,
        _ => Err(unsupported()),
    }
}

fn body_stream(app: &App, body: Body) -> ByteStream {
    let counter = app.metrics.bytes_in.clone();
    Box::pin(body.into_data_stream().map(move |r| {
        r.inspect(|b| {
            counter.fetch_add(b.len() as u64, Ordering::Relaxed);
        })
        .map_err(io::Error::other)
    }))
}

fn location(name: &str, rest: &str) -> String {
    format!("/v2/{name}/{rest}")
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("blobs/uploads/{id}")),
    );
    set(h, header::RANGE, &range_value(offset));
    set(h, header::CONTENT_LENGTH, "0");
    set(h, header::HeaderName::from_static("docker-upload-uuid"), id);
    resp
}

fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn digest_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("blobs/{digest}")),
    );
    set(h, digest_header(), &digest.to_string());
    set(h, header::CONTENT_LENGTH, "0");
    resp
}

/// Parses a `Range: bytes=a-b` request header. `Ok(None)` when absent; `Err` when not satisfiable or malformed.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UNKNOWN",
            format!(
                "range `{}` cannot be served from a blob of {size} bytes",
                value.to_str().unwrap_or("?")
            ),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let text = value.to_str().map_err(|_| unsatisfiable())?;
    let spec = text
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(unsatisfiable());
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().map_err(|_| unsatisfiable())?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        ByteRange {
            start: size.saturating_sub(suffix),
            end: size - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| unsatisfiable())?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().map_err(|_| unsatisfiable())?
        };
        if start >= size || end < start {
            return Err(unsatisfiable());
        }
        ByteRange {
            start,
            end: end.min(size - 1),
        }
    };
    Ok(Some(range))
}

async fn get_blob(
    app: &App,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    with_body: bool,
) -> ApiResult {
    let digest = parse_digest(digest)?;
    let whole = with_body && !headers.contains_key(header::RANGE);
    if whole && let Some(url) = app.storage.blob_redirect(&digest).await? {
        // The URL is only handed out once the repository is known to link the blob.
        if !app.storage.has_layer(name, &digest).await? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let h = resp.headers_mut();
        set(h, header::LOCATION, &url);
        set(h, digest_header(), &digest.to_string());
        return Ok(resp);
    }
    // The link check runs beside the open (whole GET) or the size lookup (HEAD, ranged GET), so a remote store
    // costs one round trip before the bytes flow: the open answers with the size.
    let (size, range, stream) = if whole {
        let (linked, reader) = tokio::join!(
            app.storage.has_layer(name, &digest),
            open_blob_body(app, &digest, None)
        );
        if !linked? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let reader = reader?;
        (reader.size, None, Some(reader.stream))
    } else {
        let (linked, size) = tokio::join!(
            app.storage.has_layer(name, &digest),
            app.storage.blob_size(&digest)
        );
        if !linked? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let size = size?.ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        let range = parse_range(headers, size)?;
        let stream = if with_body {
            Some(open_blob_body(app, &digest, range).await?.stream)
        } else {
            None
        };
        (size, range, stream)
    };
    let (status, len) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, size),
    };
    let body = match stream {
        Some(stream) => Body::from_stream(stream),
        None => Body::empty(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, "application/octet-stream");
    set(h, header::CONTENT_LENGTH, &len.to_string());
    set(h, header::ACCEPT_RANGES, "bytes");
    set(h, digest_header(), &digest.to_string());
    set(h, header::ETAG, &format!("\"{digest}\""));
    if let Some(r) = range {
        set(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", r.start, r.end),
        );
    }
    Ok(resp)
}

/// Opens a blob for a response body: for plain-TCP connections (which [`serve`] sends with sendfile(2)) as
/// [`Storage::send_blob`], over TLS (which reads the bytes to encrypt them) as [`Storage::read_blob`].
async fn open_blob_body(
    app: &App,
    digest: &Digest,
    range: Option<ByteRange>,
) -> Result<BlobReader, StorageError> {
    if app.config.tls {
        app.storage.read_blob(digest, range).await
    } else {
        app.storage.send_blob(digest, range).await
    }
}

/// Unlinks a blob from `name`, unless a manifest of `name` uses it: deleting it would leave that image
/// unpullable (and fsck failing), so the answer is 409 naming the manifest.
async fn delete_blob(app: &App, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    if let Some(manifest) = manifest_using(app, name, &digest).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DENIED",
            format!(
                "blob `{digest}` is used by manifest `{manifest}` of repository `{name}`; delete the manifest first"
            ),
        ));
    }
    app.storage.unlink_layer(name, &digest).await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    set(resp.headers_mut(), digest_header(), &digest.to_string());
    Ok(resp)
}

/// A manifest revision of `name` that references blob `digest` (as its config or a distributable layer). Reads
/// every revision of the repository: blob deletes are rare, repositories of cluster images hold few manifests.
async fn manifest_using(
    app: &App,
    name: &str,
    digest: &Digest,
) -> Result<Option<Digest>, ApiError> {
    for revision in app.storage.list_revisions(name).await? {
        let bytes = match app.storage.read_blob_bytes(&revision, MANIFEST_LIMIT).await {
            Ok(b) => b,
            // A revision without readable content cannot be pulled anyway; it keeps nothing.
            Err(StorageError::BlobUnknown(_) | StorageError::TooLarge { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let uses = manifest_check::check(&bytes, None).is_ok_and(|f| f.blobs.contains(digest));
        if uses {
            return Ok(Some(revision));
        }
    }
    Ok(None)
}

async fn start_upload(
    app: &App,
    name: &str,
    q: &[(String, String)],
    client: Client,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    if let Some((mount, from)) = mount_of(q) {
        let digest = parse_digest(mount)?;
        if formats::reference::Repository::is_valid(from)
            && app.storage.has_layer(from, &digest).await?
            && app.storage.blob_size(&digest).await?.is_some()
        {
            app.storage.link_layer(name, &digest).await?;
            return Ok(blob_created(name, &digest));
        }
        // Not mountable: fall through to a fresh session, as the spec allows.
    } else if let Some(d) = param(q, "digest") {
        let digest = parse_digest(d)?;
        let room = app.uploads.reserve(name, client)?;
        let session = app.storage.create_upload(name).await?;
        let _busy = room.open(&session.id);
        let expected_len = content_length(headers);
        let stored = match app
            .storage
            .append_upload(
                name,
                &session.id,
                Some(0),
                expected_len,
                body_stream(app, body),
            )
            .await
        {
            Ok(_) => app.storage.finish_upload(name, &session.id, &digest).await,
            Err(e) => Err(e),
        };
        if stored.is_err() {
            // The client never learnt this session's id: nothing could resume it.
            let _ignored = app.storage.cancel_upload(name, &session.id).await;
        }
        app.uploads.close(name, &session.id);
        stored?;
        app.storage.link_layer(name, &digest).await?;
        return Ok(blob_created(name, &digest));
    }
    let room = app.uploads.reserve(name, client)?;
    let session = app.storage.create_upload(name).await?;
    drop(room.open(&session.id));
    Ok(upload_response(StatusCode::ACCEPTED, name, &session.id, 0))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Parses an upload `Content-Range: <start>-<end>` (also accepting a `bytes ` or `bytes=` prefix):
/// the chunk's offset and length.
fn parse_content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bogus = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!(
                "bad Content-Range `{}`: expected `<start>-<end>` with start <= end",
                v.to_str().unwrap_or("?")
            ),
        )
    };
    let text = v.to_str().map_err(|_| bogus())?.trim();
    let text = text
        .strip_prefix("bytes ")
        .or_else(|| text.strip_prefix("bytes="))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (a, b) = text.split_once('-').ok_or_else(bogus)?;
    let start: u64 = a.trim().parse().map_err(|_| bogus())?;
    let end: u64 = b.trim().parse().map_err(|_| bogus())?;
    if end < start {
        return Err(bogus());
    }
    Ok(Some((start, end - start + 1)))
}

/// Runs `op` on upload session `id` of `name` with the session marked busy (it does not expire meanwhile);
/// forgets the session when storage no longer has it, or when `done` says `op` ended it.
async fn on_session<T>(
    app: &App,
    name: &str,
    id: &str,
    op: impl Future<Output = Result<T, StorageError>>,
    done: impl FnOnce(&Result<T, StorageError>) -> bool,
) -> Result<T, StorageError> {
    let busy = app.uploads.begin(name, id)?;
    let result = op.await;
    if done(&result) || matches!(result, Err(StorageError::UploadUnknown(_))) {
        app.uploads.close(name, id);
    }
    drop(busy);
    result
}

/// An upload request that keeps the session: only storage's "no such session" ends it.
fn keeps_session<T>(_: &Result<T, StorageError>) -> bool {
    false
}

async fn patch_upload(
    app: &App,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let range = match parse_content_range(headers) {
        Ok(r) => r,
        Err(e) => {
            // A bogus range still tells the client where the session stands.
            let status = on_session(
                app,
                name,
                id,
                app.storage.upload_status(name, id),
                keeps_session,
            )
            .await?;
            return Err(e
                .with_header(header::RANGE, range_value(status.offset))
                .with_header(
                    header::LOCATION,
                    location(name, &format!("blobs/uploads/{id}")),
                ));
        }
    };
    let (offset, expected_len) = match range {
        Some((start, len)) => (Some(start), Some(len)),
        None => (None, content_length(headers)),
    };
    let append = app
        .storage
        .append_upload(name, id, offset, expected_len, body_stream(app, body));
    match on_session(app, name, id, append, keeps_session).await {
        Ok(status) => {
            app.uploads.grew(name, id, status.offset);
            Ok(upload_response(
                StatusCode::ACCEPTED,
                name,
                id,
                status.offset,
            ))
        }
        Err(e @ StorageError::OutOfOrder { .. }) => Err(ApiError::from(e).with_header(
            header::LOCATION,
            location(name, &format!("blobs/uploads/{id}")),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn put_upload(
    app: &App,
    name: &str,
    id: &str,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let digest = param(q, "digest")
        .ok_or_else(|| {
            ApiError::digest_invalid("finishing an upload needs `?digest=<algorithm>:<hex>`")
        })
        .and_then(parse_digest)?;
    let range = parse_content_range(headers)?;
    let has_body = content_length(headers).is_none_or(|l| l > 0) || range.is_some();
    let finish = async {
        if has_body {
            let (offset, expected_len) = match range {
                Some((start, len)) => (Some(start), Some(len)),
                None => (None, content_length(headers)),
            };
            app.storage
                .append_upload(name, id, offset, expected_len, body_stream(app, body))
                .await?;
        } else {
            // Make sure the session exists before reporting anything about the digest.
            app.storage.upload_status(name, id).await?;
        }
        app.storage.finish_upload(name, id, &digest).await
    };
    // Finished, or refused for its digest (which removes the session): either way it is over.
    let over = |r: &Result<u64, StorageError>| {
        matches!(r, Ok(_) | Err(StorageError::DigestMismatch { .. }))
    };
    on_session(app, name, id, finish, over).await?;
    app.storage.link_layer(name, &digest).await?;
    Ok(blob_created(name, &digest))
}

async fn upload_status(app: &App, name: &str, id: &str) -> ApiResult {
    let status = on_session(
        app,
        name,
        id,
        app.storage.upload_status(name, id),
        keeps_session,
    )
    .await?;
    Ok(upload_response(
        StatusCode::NO_CONTENT,
        name,
        id,
        status.offset,
    ))
}

async fn cancel_upload(app: &App, name: &str, id: &str) -> ApiResult {
    on_session(app, name, id, app.storage.cancel_upload(name, id), |r| {
        r.is_ok()
    })
    .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    Ok(resp)
}

/// Resolves a manifest reference (tag or digest) to a revision digest in `name`.
async fn resolve(app: &App, name: &str, reference: &str) -> Result<Digest, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest `{reference}` is not in repository `{name}`"),
        )
    };
    if reference.contains(':') {
        let digest = parse_digest(reference)?;
        if app.storage.has_revision(name, &digest).await? {
            return Ok(digest);
        }
        return Err(unknown());
    }
    if !formats::reference::is_valid_tag(reference) {
        // No manifest can be stored under a reference that is neither a digest nor a valid tag, so reads answer
        // 404 like any unknown manifest (the OCI conformance suite asks for exactly that).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!(
                "manifest `{reference}` is not in repository `{name}`: it is not a valid tag (up to 128 of \
                 [A-Za-z0-9_.-], not starting with `.` or `-`) nor a digest"
            ),
        ));
    }
    match app.storage.resolve_tag(name, reference).await? {
        Some(d) => Ok(d),
        None if !app.storage.repository_exists(name).await? => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository `{name}` does not exist"),
        )),
        None => Err(unknown()),
    }
}

async fn get_manifest(app: &App, name: &str, reference: &str, with_body: bool) -> ApiResult {
    let digest = resolve(app, name, reference).await?;
    let bytes = match app.storage.read_blob_bytes(&digest, MANIFEST_LIMIT).await {
        Ok(b) => b,
        Err(StorageError::BlobUnknown(_)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest `{digest}` is linked in `{name}` but its content is missing"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let media_type = manifest_check::media_type_of(&bytes);
    let len = bytes.len();
    let mut resp = Response::new(if with_body {
        Body::from(bytes)
    } else {
        Body::empty()
    });
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, &media_type);
    set(h, header::CONTENT_LENGTH, &len.to_string());
    set(h, digest_header(), &digest.to_string());
    set(h, header::ETAG, &format!("\"{digest}\""));
    Ok(resp)
}

async fn read_limited(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "manifest is larger than the {limit}-byte limit; split it or push the large parts as blobs"
            ),
        )
    };
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::manifest_invalid(format!("reading the body: {e}")))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

async fn put_manifest(
    app: &App,
    name: &str,
    reference: &str,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    if content_length(headers).is_some_and(|l| l > MANIFEST_LIMIT) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest is larger than the {MANIFEST_LIMIT}-byte limit"),
        ));
    }
    let (by_digest, mut tags) = if reference.contains(':') {
        (Some(parse_digest(reference)?), Vec::new())
    } else if formats::reference::is_valid_tag(reference) {
        (None, vec![reference.to_string()])
    } else {
        return Err(ApiError::manifest_invalid(format!(
            "invalid tag `{reference}`"
        )));
    };
    for (k, v) in q {
        if k == "tag" {
            if !formats::reference::is_valid_tag(v) {
                return Err(ApiError::manifest_invalid(format!("invalid tag `{v}`")));
            }
            tags.push(v.clone());
        }
    }
    let bytes = read_limited(body, MANIFEST_LIMIT).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let facts = manifest_check::check(&bytes, content_type)
        .map_err(|e| ApiError::manifest_invalid(e.to_string()))?;
    let digest = match by_digest {
        Some(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if actual != expected {
                return Err(ApiError::digest_invalid(format!(
                    "manifest content has digest `{actual}`, not `{expected}` as in the URL"
                )));
            }
            expected
        }
        None => Digest::of(Algorithm::Sha256, &bytes),
    };
    for blob in &facts.blobs {
        let present = app.storage.has_layer(name, blob).await?
            && app.storage.blob_size(blob).await?.is_some();
        if !present {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "manifest references blob `{blob}`, which is not in repository `{name}`; push it first"
                ),
            ));
        }
    }
    for child in &facts.children {
        if !app.storage.has_revision(name, child).await? {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "index references manifest `{child}`, which is not in repository `{name}`; push it first"
                ),
            ));
        }
    }
    app.storage.put_blob_bytes(&digest, bytes).await?;
    app.storage.link_revision(name, &digest).await?;
    for tag in &tags {
        app.storage.set_tag(name, tag, &digest).await?;
    }
    let mut resp = blob_created(name, &digest);
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("manifests/{digest}")),
    );
    if let Some(subject) = &facts.subject {
        set(
            h,
            header::HeaderName::from_static("oci-subject"),
            &subject.to_string(),
        );
    }
    Ok(resp)
}

async fn delete_manifest(app: &App, name: &str, reference: &str) -> ApiResult {
    if reference.contains(':') {
        let digest = parse_digest(reference)?;
        app.storage.unlink_revision(name, &digest).await?;
    } else {
        if !formats::reference::is_valid_tag(reference) {
            return Err(ApiError::manifest_invalid(format!(
                "invalid tag `{reference}`"
            )));
        }
        app.storage.delete_tag(name, reference).await?;
    }
    let mut resp = StatusCode::ACCEPTED.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    Ok(resp)
}

async fn referrers(app: &App, name: &str, digest: &str, q: &[(String, String)]) -> ApiResult {
    let subject = parse_digest(digest)?;
    let filter = param(q, "artifactType");
    let found = if app.storage.repository_exists(name).await? {
        app.storage.referrers(name, &subject).await?
    } else {
        Vec::new()
    };
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .filter(|r| filter.is_none_or(|f| r.artifact_type.as_deref() == Some(f)))
        .map(|r| {
            let mut d = serde_json::json!({
                "mediaType": r.media_type,
                "digest": r.digest.to_string(),
                "size": r.size,
            });
            if let Some(at) = r.artifact_type {
                d["artifactType"] = at.into();
            }
            if let Some(a) = r.annotations {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_check::OCI_INDEX,
        "manifests": manifests,
    })
    .to_string();
    let mut resp = Response::new(Body::from(body.clone()));
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, manifest_check::OCI_INDEX);
    set(h, header::CONTENT_LENGTH, &body.len().to_string());
    if filter.is_some() {
        set(
            h,
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType",
        );
    }
    Ok(resp)
}

/// Applies `n`/`last` pagination (`last` exclusive) and returns the page and whether more follow.
fn paginate(
    all: Vec<String>,
    q: &[(String, String)],
) -> Result<(Vec<String>, Option<usize>, bool), ApiError> {
    let last = param(q, "last");
    let n = match param(q, "n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("`n` must be a non-negative integer, not `{v}`"),
            )
        })?),
    };
    let mut rest: Vec<String> = all
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let more = n.is_some_and(|n| rest.len() > n);
    if let Some(n) = n {
        rest.truncate(n);
    }
    Ok((rest, n, more))
}

fn json_page(body: serde_json::Value, link: Option<String>) -> Response {
    let text = body.to_string();
    let mut resp = Response::new(Body::from(text.clone()));
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, "application/json");
    set(h, header::CONTENT_LENGTH, &text.len().to_string());
    if let Some(l) = link {
        set(h, header::LINK, &l);
    }
    resp
}

fn next_link(path: &str, n: Option<usize>, page: &[String], more: bool) -> Option<String> {
    match (more, n, page.last()) {
        (true, Some(n), Some(last)) => Some(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    }
}

async fn tags_list(app: &App, name: &str, q: &[(String, String)]) -> ApiResult {
    let tags = app.storage.list_tags(name).await?;
    let (page, n, more) = paginate(tags, q)?;
    let link = next_link(&location(name, "tags/list"), n, &page, more);
    Ok(json_page(
        serde_json::json!({"name": name, "tags": page}),
        link,
    ))
}

async fn catalog(app: &App, q: &[(String, String)]) -> ApiResult {
    let repos = app.storage.list_repositories().await?;
    let (page, n, more) = paginate(repos, q)?;
    let link = next_link("/v2/_catalog", n, &page, more);
    Ok(json_page(serde_json::json!({"repositories": page}), link))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right_at_any_depth() {
        let s = String::from;
        assert_eq!(
            parse_route("a/b/c/d/e/f/g/h/manifests/v1"),
            Some(Route::Manifest(s("a/b/c/d/e/f/g/h"), s("v1")))
        );
        assert_eq!(
            parse_route("x/blobs/uploads/"),
            Some(Route::UploadStart(s("x")))
        );
        assert_eq!(
            parse_route("x/y/blobs/uploads/abc-1"),
            Some(Route::Upload(s("x/y"), s("abc-1")))
        );
        assert_eq!(
            parse_route("x/blobs/sha256:00"),
            Some(Route::Blob(s("x"), s("sha256:00")))
        );
        assert_eq!(parse_route("x/tags/list"), Some(Route::Tags(s("x"))));
        assert_eq!(parse_route("_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("x/referrers/sha256:00"),
            Some(Route::Referrers(s("x"), s("sha256:00")))
        );
        assert_eq!(parse_route("blobs/uploads/"), None);
    }

    #[test]
    fn a_request_is_parsed_once_from_its_decoded_path_and_query() {
        let parse = |uri: &str| V2Request::parse(&uri.parse().unwrap());
        let r = parse("/v2/a%2Fb/blobs/uploads/?m%6Funt=sha256%3A00&fr%6Fm=c%2Fd&x");
        assert_eq!(r.path, "a/b/blobs/uploads/");
        assert_eq!(r.target, Target::Endpoint(Route::UploadStart("a/b".into())));
        assert_eq!(r.mount(), Some(("sha256:00", "c/d")));
        let mut r = r;
        r.drop_mount();
        assert_eq!(r.mount(), None);
        assert_eq!(r.query, vec![("x".to_string(), String::new())]);
        assert_eq!(parse("/v2/x/blobs/uploads?mount=sha256:00").mount(), None);
        assert_eq!(parse("/v2/").target, Target::Base);
        assert_eq!(parse("/v2").target, Target::Base);
        assert_eq!(parse("/v2//").target, Target::Unknown);
        assert_eq!(parse("/metrics").target, Target::Unknown);
        assert_eq!(parse("/v2x/_catalog").target, Target::Unknown);
        assert_eq!(
            parse("/v2/_c%61talog").target,
            Target::Endpoint(Route::Catalog)
        );
    }

    #[test]
    fn unknown_methods_share_one_metrics_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }

    #[test]
    fn percent_decoding_handles_escapes() {
        assert_eq!(percent_decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
