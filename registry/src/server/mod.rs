//! The OCI Distribution v1.1 HTTP server (`sealos registry serve`): one `/v2/{*path}` handler that parses the
//! path from the right (so repository names may have any depth, [`routes`]) and hands the request to the module
//! of its resource ([`blobs`], [`blob_upload`], [`manifests`], [`tags`], [`catalog`], [`referrers`]), streaming
//! blob bodies in both directions, Prometheus `/metrics` and structured request logs. With
//! [`ServerConfig::auth`] every `/v2/` request goes through [`auth`] (Basic or bearer tokens from `GET /token`),
//! and so does `/metrics`, which wants a logged-in user. Open upload sessions are capped and idle ones expire
//! ([`uploads`]); blob and manifest deletes are off unless [`ServerConfig::enable_delete`]. [`tls`] serves the
//! same router over rustls.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};

use crate::storage::Storage;

pub mod auth;
mod blob_upload;
mod blobs;
mod catalog;
mod conn;
pub mod error;
mod headers;
pub mod limits;
pub mod manifest_check;
mod manifests;
mod metrics;
mod pagination;
mod referrers;
mod routes;
pub mod sendfile;
mod tags;
pub mod tls;
pub mod ui;
pub mod uploads;

use error::ApiError;
pub use metrics::Metrics;
pub(crate) use routes::{Route, Target, V2Request, query_pairs};
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
    /// Serve the hub's web page and JSON API under `/ui/` (`--ui`), with the same auth as `/v2/`.
    pub ui: bool,
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
    let hub = config
        .ui
        .then(|| ui::router(storage.clone(), authenticator.clone()));
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
        .route("/metrics", get(metrics::metrics))
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
    if let Some(hub) = hub {
        v2 = v2.merge(hub);
    }
    v2.fallback(not_found)
        // Outside everything else: one place drains every body a refusal left unread.
        .layer(middleware::from_fn_with_state(
            request_limits,
            limits::guard_bodies,
        ))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            metrics::observe,
        ))
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
        (Route::Catalog, &Method::GET) => catalog::catalog(app, &q).await,
        (Route::Tags(n), &Method::GET) => tags::tags_list(app, n, &q).await,
        (Route::Blob(n, d), &Method::GET) => blobs::get_blob(app, n, d, &headers, true).await,
        (Route::Blob(n, d), &Method::HEAD) => blobs::get_blob(app, n, d, &headers, false).await,
        (Route::Blob(n, d), &Method::DELETE) => blobs::delete_blob(app, n, d).await,
        (Route::UploadStart(n), &Method::POST) => {
            blob_upload::start_upload(app, n, &q, client(), &headers, body).await
        }
        (Route::Upload(n, id), &Method::PATCH) => {
            blob_upload::patch_upload(app, n, id, &headers, body).await
        }
        (Route::Upload(n, id), &Method::PUT) => {
            blob_upload::put_upload(app, n, id, &q, &headers, body).await
        }
        (Route::Upload(n, id), &Method::GET) => blob_upload::upload_status(app, n, id).await,
        (Route::Upload(n, id), &Method::DELETE) => blob_upload::cancel_upload(app, n, id).await,
        (Route::Manifest(n, r), &Method::GET) => manifests::get_manifest(app, n, r, true).await,
        (Route::Manifest(n, r), &Method::HEAD) => manifests::get_manifest(app, n, r, false).await,
        (Route::Manifest(n, r), &Method::PUT) => {
            manifests::put_manifest(app, n, r, &q, &headers, body).await
        }
        (Route::Manifest(n, r), &Method::DELETE) => manifests::delete_manifest(app, n, r).await,
        (Route::Referrers(n, d), &Method::GET) => referrers::referrers(app, n, d, &q).await,
        _ => Err(unsupported()),
    }
}
