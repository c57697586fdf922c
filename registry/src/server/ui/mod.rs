//! The hub's web page and JSON API (`sealos registry serve ... --ui`), served under `/ui/` by the registry's
//! own process and port.
//!
//! - `/ui/`, `/ui/repository?name=N`, `/ui/image?repository=N&reference=R`: one static page (HTML, CSS and
//!   plain JavaScript embedded in the binary) that renders from the JSON API.
//! - `/ui/api/repositories[?q=TEXT]`, `/ui/api/tags?repository=N`, `/ui/api/image?repository=N&reference=R`:
//!   the JSON the page uses ([`api`]; documented in docs/hub.md).
//! - `/ui/login`: asks the browser for a user and password (HTTP Basic), then goes back to `/ui/`.
//!
//! Who sees what is the `/v2/` rule: with `--htpasswd`, the request's credentials (Basic or a bearer token) are
//! checked by the server's one [`Authenticator`], and a repository is listed or opened only when
//! [`Authenticator::may_pull`] says the caller may pull it — the same check `/v2/` makes on a pull. Anonymous
//! callers see what anonymous callers may pull (everything with `--anonymous-pull`, else nothing: 401).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;

use super::auth::{Authenticator, Caller, request_host};
use super::error::ApiError;
use super::routes::{param, query_pairs};
use crate::storage::Storage;

pub mod api;

const INDEX_HTML: &str = include_str!("assets/index.html");
const HUB_CSS: &str = include_str!("assets/hub.css");
const HUB_JS: &str = include_str!("assets/hub.js");

/// What the page's responses may load: only this origin's own script and style, nothing framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The state of the UI's handlers.
struct Ui {
    storage: Arc<dyn Storage>,
    /// `None` when the registry has no `--htpasswd`: everyone sees everything.
    auth: Option<Arc<Authenticator>>,
}

/// Who asks.
enum Viewer {
    /// The registry has no authentication.
    Everyone,
    /// The caller the authenticator recognised (possibly nobody).
    Caller(Caller),
}

impl Ui {
    /// The caller of a request, or the 401 answer to invalid credentials.
    async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Response> {
        match &self.auth {
            None => Ok(Viewer::Everyone),
            Some(auth) => auth.caller(headers).await.map(Viewer::Caller),
        }
    }

    /// Whether `viewer` may see `repository`: whether they may pull it.
    fn may_see(&self, viewer: &Viewer, repository: &str) -> bool {
        match (viewer, &self.auth) {
            (Viewer::Caller(caller), Some(auth)) => auth.may_pull(caller, repository),
            _ => true,
        }
    }

    /// The 401 for a repository `viewer` may not see: the same answer whether it exists or not.
    fn refuse(&self, headers: &HeaderMap, repository: &str) -> Response {
        let message = format!(
            "you may not pull repository `{repository}` (or it does not exist); sign in at /ui/login as a user \
             who may"
        );
        match &self.auth {
            Some(auth) => auth.unauthorized_response(headers, message),
            None => {
                ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message).into_response()
            }
        }
    }
}

/// The UI's routes over `storage`, checking callers with `auth` (the registry's authenticator; `None` when it
/// has none). Merge them into the registry's router.
pub fn router<S: Clone + Send + Sync + 'static>(
    storage: Arc<dyn Storage>,
    auth: Option<Arc<Authenticator>>,
) -> Router<S> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(page))
        .route("/ui/repository", get(page))
        .route("/ui/image", get(page))
        .route("/ui/assets/hub.css", get(css))
        .route("/ui/assets/hub.js", get(js))
        .route("/ui/login", get(login))
        .route("/ui/api/repositories", get(repositories))
        .route("/ui/api/tags", get(tags))
        .route("/ui/api/image", get(image))
        .with_state(Arc::new(Ui { storage, auth }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

async fn page() -> Response {
    let mut resp = asset("text/html; charset=utf-8", INDEX_HTML);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    resp
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", HUB_CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", HUB_JS)
}

/// `GET /ui/login`: with valid Basic credentials, back to `/ui/` (the browser keeps sending them for
/// `/ui/`); without, a Basic challenge so the browser asks for them.
async fn login(State(ui): State<Arc<Ui>>, headers: HeaderMap) -> Response {
    let signed_in = match ui.viewer(&headers).await {
        Ok(Viewer::Everyone) => true,
        Ok(Viewer::Caller(c)) => c.user().is_some(),
        Err(_) => false,
    };
    if signed_in {
        return Redirect::to("/ui/").into_response();
    }
    let mut resp = (
        StatusCode::UNAUTHORIZED,
        "Sign-in needed: give a user name and password of this registry (its --htpasswd file). \
         Back to the hub: /ui/\n",
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sealos registry\", charset=\"UTF-8\""),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_string(value).unwrap_or_default();
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The `repositories` answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryList {
    /// The user the request was authenticated as, if any.
    user: Option<String>,
    /// Whether the registry asks for credentials (`--htpasswd`).
    auth: bool,
    repositories: Vec<api::RepositoryEntry>,
}

/// `GET /ui/api/repositories[?q=TEXT]`: the repositories the caller may pull whose names contain `TEXT`.
/// An anonymous caller who may pull nothing gets 401 (sign in), not an empty list.
async fn repositories(State(ui): State<Arc<Ui>>, uri: Uri, headers: HeaderMap) -> Response {
    let viewer = match ui.viewer(&headers).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if let (Viewer::Caller(Caller::Nobody), Some(auth)) = (&viewer, &ui.auth)
        && !auth.anonymous_pull()
    {
        return auth.unauthorized_response(
            &headers,
            "this registry wants credentials: sign in at /ui/login, or send Basic credentials or a bearer token"
                .into(),
        );
    }
    let q = query_pairs(uri.query());
    let found = api::repositories(ui.storage.as_ref(), param(&q, "q"), |name| {
        ui.may_see(&viewer, name)
    })
    .await;
    match found {
        Ok(repositories) => json(&RepositoryList {
            user: match &viewer {
                Viewer::Caller(c) => c.user().map(str::to_string),
                Viewer::Everyone => None,
            },
            auth: ui.auth.is_some(),
            repositories,
        }),
        Err(e) => e.into_response(),
    }
}

/// The `repository` parameter, checked as a repository name.
fn repository_param(q: &[(String, String)]) -> Result<String, ApiError> {
    let Some(name) = param(q, "repository").filter(|n| !n.is_empty()) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "give the repository: `?repository=NAME`",
        ));
    };
    formats::reference::Repository::parse(name)
        .map(|_| name.to_string())
        .map_err(|e| ApiError::name_invalid(&e))
}

/// Admits a request for one repository: its name when the caller may see it, else the answer.
async fn admit(
    ui: &Ui,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(String, Vec<(String, String)>), Response> {
    let viewer = ui.viewer(headers).await?;
    let q = query_pairs(uri.query());
    let repository = repository_param(&q).map_err(IntoResponse::into_response)?;
    if !ui.may_see(&viewer, &repository) {
        return Err(ui.refuse(headers, &repository));
    }
    Ok((repository, q))
}

/// The `tags` answer.
#[derive(Serialize)]
struct TagList {
    repository: String,
    tags: Vec<api::TagEntry>,
}

/// `GET /ui/api/tags?repository=NAME`: the repository's tags with digest, size, platforms and created time.
async fn tags(State(ui): State<Arc<Ui>>, uri: Uri, headers: HeaderMap) -> Response {
    let (repository, _) = match admit(&ui, &uri, &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match api::tags(ui.storage.as_ref(), &repository).await {
        Ok(tags) => json(&TagList { repository, tags }),
        Err(e) => e.into_response(),
    }
}

/// `GET /ui/api/image?repository=NAME&reference=TAG_OR_DIGEST`: one image (see [`api::ImageView`]).
async fn image(State(ui): State<Arc<Ui>>, uri: Uri, headers: HeaderMap) -> Response {
    let (repository, q) = match admit(&ui, &uri, &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(reference) = param(&q, "reference").filter(|r| !r.is_empty()) else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "give the image: `&reference=TAG` or `&reference=sha256:...`",
        )
        .into_response();
    };
    match api::image(
        ui.storage.as_ref(),
        &repository,
        reference,
        &browser_host(&headers),
    )
    .await
    {
        Ok(view) => json(&view),
        Err(e) => e.into_response(),
    }
}

/// The registry's address as the browser used it (its `Host` header), for copyable command lines; `localhost`
/// when it is missing or holds characters no host name has.
fn browser_host(headers: &HeaderMap) -> String {
    request_host(headers).unwrap_or("localhost").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_command_lines_is_the_browsers_when_it_is_a_host_name() {
        let mut h = HeaderMap::new();
        assert_eq!(browser_host(&h), "localhost");
        h.insert(header::HOST, HeaderValue::from_static("hub.example:5000"));
        assert_eq!(browser_host(&h), "hub.example:5000");
        h.insert(header::HOST, HeaderValue::from_static("a b<script>"));
        assert_eq!(browser_host(&h), "localhost");
    }

    #[test]
    fn the_page_loads_only_its_own_assets() {
        assert!(INDEX_HTML.contains("/ui/assets/hub.js"));
        assert!(INDEX_HTML.contains("/ui/assets/hub.css"));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(!HUB_JS.contains("http://") && !HUB_JS.contains("https://"));
        assert!(!HUB_CSS.contains("url("));
    }
}
