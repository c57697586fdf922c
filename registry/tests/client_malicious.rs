//! The registry client against an in-process registry that misbehaves on purpose: wrong bytes for a digest,
//! a blob body cut mid-way, 429 with Retry-After, a lying Docker-Content-Digest, and token auth.
//! Everything goes over real TCP on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{
    ClientError, ClientOptions, Credentials, ProgressEvent, RegistryClient, RetryPolicy,
};

const USER: &str = "alice";
const PASS: &str = "s3cret";
const TOKEN: &str = "token-for-private-repo";
const REFRESH: &str = "refresh-from-oauth-login";

/// What the misbehaving registry serves and what it saw.
#[derive(Default)]
struct Evil {
    port: u16,
    blob: Vec<u8>,
    manifest: Vec<u8>,
    /// Requests seen: (method, path, Range header).
    log: Vec<(String, String, Option<String>)>,
    /// Bytes of `blob` actually sent, over all requests.
    blob_bytes_served: u64,
    busy_left: u32,
    token_requests: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
    cut_manifest_left: u32,
    unavailable_left: u32,
    /// The chunked upload in progress and whether its first PATCH answer was "lost".
    upload: Vec<u8>,
    lost_answer: bool,
    stored: Option<Vec<u8>>,
}

type Shared = Arc<Mutex<Evil>>;

fn blob_bytes() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

fn manifest_bytes() -> Vec<u8> {
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec()
}

async fn handle(State(state): State<Shared>, req: Request) -> Response {
    if req.uri().path().starts_with("/v2/up/repo/blobs/") {
        return chunked_upload(state, req).await;
    }
    // The OAuth2 flow for identity tokens: a form POST with the refresh token.
    if req.method() == axum::http::Method::POST && req.uri().path() == "/token" {
        let body = axum::body::to_bytes(req.into_body(), 1 << 16)
            .await
            .unwrap();
        let form = String::from_utf8_lossy(&body).into_owned();
        state
            .lock()
            .unwrap()
            .token_requests
            .push(format!("POST {form}"));
        let ok = form.contains("grant_type=refresh_token")
            && form.contains(&format!("refresh_token={REFRESH}"))
            && form.contains("scope=repository%3Aprivate%2Frepo%3Apull");
        if !ok {
            return (StatusCode::UNAUTHORIZED, "bad refresh token").into_response();
        }
        return format!(r#"{{"access_token":"{TOKEN}","expires_in":300}}"#).into_response();
    }
    // A slow blob: tracks how many requests are in flight at once.
    if req.uri().path().starts_with("/v2/slow/repo/blobs/") {
        let blob = {
            let mut s = state.lock().unwrap();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
            s.blob.clone()
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        state.lock().unwrap().in_flight -= 1;
        return blob.into_response();
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = state.lock().unwrap();
    s.log.push((method, path.clone(), range.clone()));
    let blob_digest = Digest::sha256_of(&s.blob).to_string();
    let manifest_digest = Digest::sha256_of(&s.manifest).to_string();

    if path == "/token" {
        s.token_requests.push(query.clone());
        let basic = format!(
            "Basic {}",
            base64_encode(format!("{USER}:{PASS}").as_bytes())
        );
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(basic.as_str());
        let scope_ok = query.contains("scope=repository%3Aprivate%2Frepo%3Apull")
            && query.contains("service=evil");
        if !authorized || !scope_ok {
            return (StatusCode::UNAUTHORIZED, "bad credentials or scope").into_response();
        }
        return (
            [(header::CONTENT_TYPE, "application/json")],
            format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
        )
            .into_response();
    }

    if path.starts_with("/v2/private/repo/") {
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(format!("Bearer {TOKEN}").as_str());
        if !ok {
            let challenge = format!(
                r#"Bearer realm="http://127.0.0.1:{}/token",service="evil",scope="repository:private/repo:pull""#,
                s.port
            );
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}"#,
            )
                .into_response();
        }
        return manifest_response(&s.manifest, &manifest_digest);
    }

    if path.starts_with("/v2/basic/repo/") {
        let basic = format!(
            "Basic {}",
            base64_encode(format!("{USER}:{PASS}").as_bytes())
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(basic.as_str())
        {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, r#"Basic realm="evil""#)],
                "",
            )
                .into_response();
        }
        return manifest_response(&s.manifest, &manifest_digest);
    }

    // Paginated listings, one entry a page, 250 entries: relative Link headers for tags, absolute for
    // the catalog.
    if path == "/v2/paged/repo/tags/list" || path == "/v2/_catalog" {
        let all: Vec<String> = (0..250).map(|i| format!("item{i:03}")).collect();
        let last = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("last="))
            .map(str::to_string);
        let start = last.map_or(0, |l| all.iter().position(|t| *t == l).unwrap() + 1);
        let page = &all[start..(start + 1).min(all.len())];
        let field = if path == "/v2/_catalog" {
            "repositories"
        } else {
            "tags"
        };
        let body = serde_json::json!({ field: page }).to_string();
        let mut resp = body.into_response();
        if start + 1 < all.len() {
            let target = if path == "/v2/_catalog" {
                format!("http://127.0.0.1:{}{path}?n=1&last={}", s.port, page[0])
            } else {
                format!("{path}?n=1&last={}", page[0])
            };
            resp.headers_mut().insert(
                header::LINK,
                format!("<{target}>; rel=\"next\"").parse().unwrap(),
            );
        }
        return resp;
    }

    match path.as_str() {
        // An image whose only layer is the blob with wrong bytes below (its config `{}` is fine).
        "/v2/wrong/bytes/manifests/v1" => {
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{blob_digest}","size":{}}}]}}"#,
                Digest::sha256_of(b"{}"),
                s.blob.len()
            );
            let d = Digest::sha256_of(m.as_bytes()).to_string();
            manifest_response(m.as_bytes(), &d)
        }
        p if p == format!("/v2/wrong/bytes/blobs/{}", Digest::sha256_of(b"{}")) => {
            "{}".into_response()
        }
        // A blob that ends early, cleanly: the registry says it is shorter than it is, and refuses
        // Range requests (a truncated upload on its side).
        p if p == format!("/v2/short/blob/blobs/{blob_digest}") => {
            let half = s.blob[..s.blob.len() / 2].to_vec();
            s.blob_bytes_served += half.len() as u64;
            half.into_response()
        }
        // A blob whose bytes do not match the digest in the URL.
        p if p == format!("/v2/wrong/bytes/blobs/{blob_digest}") => {
            let mut bad = s.blob.clone();
            bad[1000] ^= 0xff;
            s.blob_bytes_served += bad.len() as u64;
            bad.into_response()
        }
        // A blob whose body is cut half-way unless a Range asks for the rest.
        p if p == format!("/v2/cut/blob/blobs/{blob_digest}") => {
            let total = s.blob.len();
            match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                Some(r) => {
                    let start: usize = r.trim_end_matches('-').parse().unwrap();
                    let rest = s.blob[start..].to_vec();
                    s.blob_bytes_served += rest.len() as u64;
                    Response::builder()
                        .status(StatusCode::PARTIAL_CONTENT)
                        .header(
                            header::CONTENT_RANGE,
                            format!("bytes {start}-{}/{total}", total - 1),
                        )
                        .header(header::CONTENT_LENGTH, rest.len())
                        .body(Body::from(rest))
                        .unwrap()
                }
                None => {
                    let half = Bytes::copy_from_slice(&s.blob[..total / 2]);
                    s.blob_bytes_served += half.len() as u64;
                    let stream = futures_util::stream::iter(vec![Ok::<Bytes, std::io::Error>(
                        half,
                    )])
                    .chain(futures_util::stream::once(async {
                        // Let the first half reach the socket before the connection dies.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err(std::io::Error::other("connection cut on purpose"))
                    }));
                    Response::builder()
                        .header(header::CONTENT_LENGTH, total)
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }
        }
        // Busy twice (429 with Retry-After: 1), then fine.
        "/v2/busy/repo/manifests/v1" => {
            if s.busy_left > 0 {
                s.busy_left -= 1;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                )
                    .into_response();
            }
            manifest_response(&s.manifest, &manifest_digest)
        }
        // 503 twice, then the blob is there.
        p if p == format!("/v2/unstable/repo/blobs/{blob_digest}") => {
            if s.unavailable_left > 0 {
                s.unavailable_left -= 1;
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            Response::builder()
                .header(header::CONTENT_LENGTH, s.blob.len())
                .body(Body::empty())
                .unwrap()
        }
        // The first answer dies after a few bytes of the body; then it is served whole.
        "/v2/flaky/repo/manifests/v1" => {
            if s.cut_manifest_left > 0 {
                s.cut_manifest_left -= 1;
                let start = Bytes::copy_from_slice(&s.manifest[..10]);
                let stream = futures_util::stream::iter(vec![Ok::<Bytes, std::io::Error>(start)])
                    .chain(futures_util::stream::once(async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err(std::io::Error::other("connection cut on purpose"))
                    }));
                return Response::builder()
                    .header(header::CONTENT_LENGTH, s.manifest.len())
                    .body(Body::from_stream(stream))
                    .unwrap();
            }
            manifest_response(&s.manifest, &manifest_digest)
        }
        // The manifest comes with someone else's digest.
        "/v2/lying/repo/manifests/v1" => {
            manifest_response(&s.manifest, &Digest::sha256_of(b"other").to_string())
        }
        // Asked by digest, it serves different bytes.
        p if p == format!("/v2/swapped/repo/manifests/{manifest_digest}") => {
            let mut other = s.manifest.clone();
            other.extend_from_slice(b" ");
            manifest_response(&other, &manifest_digest)
        }
        "/v2/" => StatusCode::OK.into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such thing"}]}"#,
        )
            .into_response(),
    }
}

/// A chunked upload whose first PATCH is taken but answered 500, as if the answer were lost.
async fn chunked_upload(state: Shared, req: Request) -> Response {
    let method = req.method().to_string();
    let range = req
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = req.uri().query().unwrap_or("").to_string();
    state
        .lock()
        .unwrap()
        .log
        .push((method.clone(), req.uri().path().to_string(), None));
    let location = (header::LOCATION, "/v2/up/repo/blobs/uploads/u1".to_string());
    match method.as_str() {
        "HEAD" => StatusCode::NOT_FOUND.into_response(),
        "POST" => (StatusCode::ACCEPTED, [location]).into_response(),
        "GET" => {
            let n = state.lock().unwrap().upload.len();
            let taken = (header::RANGE, format!("0-{}", n.saturating_sub(1)));
            (StatusCode::NO_CONTENT, [taken, location]).into_response()
        }
        "PATCH" => {
            let start: usize = range.unwrap().split('-').next().unwrap().parse().unwrap();
            if start != state.lock().unwrap().upload.len() {
                return StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            }
            let body = axum::body::to_bytes(req.into_body(), 1 << 24)
                .await
                .unwrap();
            let mut s = state.lock().unwrap();
            s.upload.extend_from_slice(&body);
            if !s.lost_answer {
                s.lost_answer = true;
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            (StatusCode::ACCEPTED, [location]).into_response()
        }
        "PUT" => {
            let mut s = state.lock().unwrap();
            if Digest::sha256_of(&s.upload).to_string() != query.trim_start_matches("digest=") {
                return StatusCode::BAD_REQUEST.into_response();
            }
            s.stored = Some(std::mem::take(&mut s.upload));
            StatusCode::CREATED.into_response()
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

fn manifest_response(bytes: &[u8], digest: &str) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .unwrap(),
    );
    h.insert("docker-content-digest", digest.parse().unwrap());
    (h, bytes.to_vec()).into_response()
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

use futures_util::StreamExt;

/// Starts the evil registry on a free port; returns its host and shared state.
async fn start_evil() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = Arc::new(Mutex::new(Evil {
        port,
        blob: blob_bytes(),
        manifest: manifest_bytes(),
        busy_left: 2,
        cut_manifest_left: 1,
        unavailable_left: 2,
        ..Evil::default()
    }));
    let app = Router::new().fallback(handle).with_state(state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("127.0.0.1:{port}"), state)
}

fn client_for(host: &str, creds: bool) -> RegistryClient {
    let mut credentials = HashMap::new();
    if creds {
        credentials.insert(
            host.to_string(),
            Credentials {
                username: USER.into(),
                password: PASS.into(),
            },
        );
    }
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        credentials,
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
            max_resumes: 3,
        },
        ..ClientOptions::default()
    })
    .unwrap()
}

fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn blob_with_wrong_bytes_is_refused_and_nothing_is_kept() {
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let digest = Digest::sha256_of(&blob_bytes());
    let err = client
        .fetch_blob(&host, "wrong/bytes", &digest, None, &dest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Verification { .. }),
        "expected a verification error, got {err}"
    );
    assert!(err.to_string().contains("nothing was kept"), "{err}");
    assert!(!dest.exists());
    assert!(
        dir_entries(dir.path()).is_empty(),
        "left behind: {:?}",
        dir_entries(dir.path())
    );

    // The writer variant refuses the same bytes.
    let mut sink = Vec::new();
    let err = client
        .fetch_blob_to_writer(&host, "wrong/bytes", &digest, None, &mut sink)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Verification { .. }), "{err}");
}

#[tokio::test]
async fn cut_blob_body_is_resumed_with_range_and_no_byte_is_fetched_twice() {
    let (host, state) = start_evil().await;
    let events = Arc::new(Mutex::new(Vec::<ProgressEvent>::new()));
    let sink = events.clone();
    let mut client = client_for(&host, false);
    let mut opts = client.options().clone();
    opts.progress = Some(Arc::new(move |e| sink.lock().unwrap().push(e)));
    client = RegistryClient::new(opts).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blobs/data");
    let blob = blob_bytes();
    let digest = Digest::sha256_of(&blob);
    let size = client
        .fetch_blob(&host, "cut/blob", &digest, Some(blob.len() as u64), &dest)
        .await
        .unwrap();
    assert_eq!(size, blob.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), blob);

    let s = state.lock().unwrap();
    let ranges: Vec<_> = s.log.iter().filter_map(|(_, _, r)| r.clone()).collect();
    assert_eq!(
        ranges,
        vec![format!("bytes={}-", blob.len() / 2)],
        "log: {:?}",
        s.log
    );
    assert_eq!(
        s.blob_bytes_served,
        blob.len() as u64,
        "some bytes were fetched twice"
    );
    let events = events.lock().unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.bytes_done, last.total),
        (blob.len() as u64, Some(blob.len() as u64))
    );
    assert_eq!(
        dir_entries(&dir.path().join("blobs")),
        vec!["data".to_string()]
    );
}

#[tokio::test]
async fn too_many_requests_is_retried_after_the_time_the_registry_asks() {
    let (host, state) = start_evil().await;
    let client = client_for(&host, false);
    let started = Instant::now();
    let m = client
        .get_manifest(
            &host,
            "busy/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(&m.bytes[..], &manifest_bytes()[..]);
    assert_eq!(m.digest, Digest::sha256_of(&manifest_bytes()));
    // Backoff alone would have waited 10 + 20 ms; Retry-After: 1 twice means at least 2 s.
    assert!(
        elapsed >= Duration::from_secs(2),
        "retried too early: {elapsed:?}"
    );
    let hits = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, p, _)| p == "/v2/busy/repo/manifests/v1")
        .count();
    assert_eq!(hits, 3);
}

#[tokio::test]
async fn retries_stop_after_the_configured_attempts() {
    let (host, state) = start_evil().await;
    state.lock().unwrap().busy_left = 100;
    let client = client_for(&host, false);
    let mut opts = client.options().clone();
    opts.retry.max_attempts = 2;
    opts.retry.max_retry_after = Duration::from_millis(20);
    let client = RegistryClient::new(opts).unwrap();
    let err = client
        .get_manifest(
            &host,
            "busy/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429), "{err}");
    assert!(err.to_string().contains("TOOMANYREQUESTS"), "{err}");
    assert_eq!(state.lock().unwrap().busy_left, 98);
}

#[tokio::test]
async fn manifest_with_a_lying_docker_content_digest_is_refused() {
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let err = client
        .get_manifest(
            &host,
            "lying/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Verification { .. }), "{err}");
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
}

#[tokio::test]
async fn manifest_fetched_by_digest_must_hash_to_it() {
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let digest = Digest::sha256_of(&manifest_bytes()).to_string();
    let err = client
        .get_manifest(
            &host,
            "swapped/repo",
            &digest,
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Verification { .. }), "{err}");
}

#[tokio::test]
async fn bearer_challenge_is_answered_with_basic_credentials_and_the_token_is_cached() {
    let (host, state) = start_evil().await;
    let client = client_for(&host, true);
    for _ in 0..3 {
        let m = client
            .get_manifest(
                &host,
                "private/repo",
                "v1",
                registry::client::DEFAULT_MANIFEST_ACCEPT,
            )
            .await
            .unwrap();
        assert_eq!(&m.bytes[..], &manifest_bytes()[..]);
    }
    let s = state.lock().unwrap();
    assert_eq!(
        s.token_requests.len(),
        1,
        "token fetched more than once: {:?}",
        s.token_requests
    );
    assert!(s.token_requests[0].contains("scope=repository%3Aprivate%2Frepo%3Apull"));
    // One 401 to learn the challenge, then three authorised requests.
    let manifest_hits = s
        .log
        .iter()
        .filter(|(_, p, _)| p.starts_with("/v2/private/"))
        .count();
    assert_eq!(manifest_hits, 4);
}

#[tokio::test]
async fn token_server_refusing_our_credentials_is_unauthorized_with_a_hint() {
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let err = client
        .get_manifest(
            &host,
            "private/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("sealos login"), "{err}");
}

#[tokio::test]
async fn plain_http_registry_is_refused_when_tls_is_verified() {
    let (host, _state) = start_evil().await;
    let client = RegistryClient::new(ClientOptions {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    })
    .unwrap();
    let err = client.ping(&host).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport { .. }), "{err}");
    assert!(err.to_string().contains("https://"), "{err}");
}

#[tokio::test]
async fn basic_challenge_is_answered_with_stored_credentials() {
    let (host, state) = start_evil().await;
    let client = client_for(&host, true);
    for _ in 0..2 {
        client
            .get_manifest(
                &host,
                "basic/repo",
                "v1",
                registry::client::DEFAULT_MANIFEST_ACCEPT,
            )
            .await
            .unwrap();
    }
    // The first request learns the challenge; later ones send credentials straight away.
    let hits = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, p, _)| p.starts_with("/v2/basic/"))
        .count();
    assert_eq!(hits, 3);
    let anonymous = client_for(&host, false);
    let err = anonymous
        .get_manifest(
            &host,
            "basic/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("none are stored"), "{err}");
}

#[tokio::test]
async fn requests_to_one_host_never_exceed_the_concurrency_limit() {
    let (host, state) = start_evil().await;
    let mut opts = client_for(&host, false).options().clone();
    opts.max_concurrent_per_host = 2;
    let client = RegistryClient::new(opts).unwrap();
    let digest = Digest::sha256_of(&blob_bytes());
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, host, digest) = (client.clone(), host.clone(), digest.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            client
                .fetch_blob_to_writer(&host, "slow/repo", &digest, None, &mut out)
                .await
                .map(|_| out.len())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), blob_bytes().len());
    }
    assert_eq!(state.lock().unwrap().max_in_flight, 2);
}

#[tokio::test]
async fn bad_mirror_is_skipped_and_the_rewritten_location_serves_the_blob() {
    let (host, state) = start_evil().await;
    let conf = registry::client::RegistriesConf::parse(
        &format!(
            r#"
[[registry]]
prefix = "{host}/good/blob"
location = "{host}/cut/blob"
insecure = true
[[registry.mirror]]
location = "{host}/wrong/bytes"
insecure = true
"#
        ),
        "test-registries.conf",
    )
    .unwrap();
    // TLS verification stays on: only `insecure = true` in the configuration allows plain HTTP here.
    let client = RegistryClient::new(ClientOptions {
        registries_conf: conf,
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let digest = Digest::sha256_of(&blob_bytes());
    client
        .fetch_blob(&host, "good/blob", &digest, None, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), blob_bytes());
    let paths: Vec<String> = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, p, _)| p.contains("/blobs/"))
        .map(|(_, p, _)| p.split("/blobs/").next().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        vec!["/v2/wrong/bytes", "/v2/cut/blob", "/v2/cut/blob"]
    );
    assert_eq!(dir_entries(dir.path()), vec!["blob".to_string()]);
}

#[tokio::test]
async fn blocked_registry_is_refused_before_any_request() {
    let (host, state) = start_evil().await;
    let conf = registry::client::RegistriesConf::parse(
        &format!("[[registry]]\nlocation = \"{host}\"\nblocked = true\n"),
        "blocked.conf",
    )
    .unwrap();
    let client = RegistryClient::new(ClientOptions {
        registries_conf: conf,
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap();
    let err = client
        .get_manifest(
            &host,
            "busy/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Blocked { .. }), "{err}");
    assert!(err.to_string().contains("blocked.conf"), "{err}");
    assert!(state.lock().unwrap().log.is_empty());
}

#[tokio::test]
async fn tags_and_catalog_follow_every_link_page_without_a_cap() {
    let (host, state) = start_evil().await;
    let mut opts = client_for(&host, false).options().clone();
    opts.list_page_size = Some(1);
    let client = RegistryClient::new(opts).unwrap();
    let want: Vec<String> = (0..250).map(|i| format!("item{i:03}")).collect();
    assert_eq!(client.tags(&host, "paged/repo").await.unwrap(), want);
    assert_eq!(client.catalog(&host).await.unwrap(), want);
    let pages = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, p, _)| p == "/v2/paged/repo/tags/list")
        .count();
    assert_eq!(pages, 250);
}

#[tokio::test]
async fn manifest_whose_body_is_cut_is_fetched_again() {
    let (host, state) = start_evil().await;
    let client = client_for(&host, false);
    let m = client
        .get_manifest(
            &host,
            "flaky/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    assert_eq!(&m.bytes[..], &manifest_bytes()[..]);
    let hits = state
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, p, _)| p == "/v2/flaky/repo/manifests/v1")
        .count();
    assert_eq!(hits, 2);
}

#[tokio::test]
async fn credentials_stored_for_login_are_used_from_the_auth_file() {
    let (host, _state) = start_evil().await;
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("containers/auth.json");
    registry::client::store_credentials(&host, USER, PASS, &auth).unwrap();
    let mut opts = client_for(&host, false).options().clone();
    opts.credential_files = registry::client::CredentialFiles {
        files: vec![auth.clone()],
    };
    let client = RegistryClient::new(opts.clone()).unwrap();
    client
        .get_manifest(
            &host,
            "private/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    // After logout a fresh client is anonymous again and refused.
    registry::client::remove_credentials(registry::client::Logout::Host(&host), &auth).unwrap();
    let err = RegistryClient::new(opts)
        .unwrap()
        .get_manifest(
            &host,
            "private/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn identity_token_from_docker_config_uses_the_oauth_refresh_flow() {
    let (host, state) = start_evil().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"{host}":{{"auth":"","identitytoken":"{REFRESH}"}}}}}}"#),
    )
    .unwrap();
    let mut opts = client_for(&host, false).options().clone();
    opts.credential_files = registry::client::CredentialFiles {
        files: vec![config],
    };
    let client = RegistryClient::new(opts).unwrap();
    client
        .get_manifest(
            &host,
            "private/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    let requests = state.lock().unwrap().token_requests.clone();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].starts_with("POST "), "{requests:?}");
}

#[tokio::test]
async fn service_unavailable_is_retried_with_backoff() {
    let (host, state) = start_evil().await;
    let client = client_for(&host, false);
    let digest = Digest::sha256_of(&blob_bytes());
    let size = client
        .blob_exists(&host, "unstable/repo", &digest)
        .await
        .unwrap();
    assert_eq!(size, Some(blob_bytes().len() as u64));
    let s = state.lock().unwrap();
    assert_eq!(s.unavailable_left, 0);
    assert_eq!(s.log.iter().filter(|(m, _, _)| m == "HEAD").count(), 3);
}

#[tokio::test]
async fn retried_chunk_the_registry_already_took_is_not_sent_twice() {
    let (host, state) = start_evil().await;
    let mut opts = client_for(&host, false).options().clone();
    opts.chunked_upload_threshold = Some(1);
    opts.upload_chunk_size = 64 * 1024;
    let client = RegistryClient::new(opts).unwrap();
    let blob = blob_bytes();
    let digest = Digest::sha256_of(&blob);
    let outcome = client
        .push_blob(
            &host,
            "up/repo",
            &digest,
            blob.len() as u64,
            registry::client::BlobSource::Bytes(Bytes::from(blob.clone())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome, registry::client::PushOutcome::Uploaded);
    let s = state.lock().unwrap();
    assert_eq!(s.stored.as_deref(), Some(&blob[..]));
    let methods: Vec<&str> = s.log.iter().map(|(m, _, _)| m.as_str()).collect();
    // 4 chunks of 64 KiB (the last shorter); the first is sent again, refused with 416, and the status
    // check shows it arrived.
    assert_eq!(
        methods,
        vec![
            "HEAD", "POST", "PATCH", "PATCH", "GET", "PATCH", "PATCH", "PATCH", "PUT"
        ]
    );
}

#[tokio::test]
async fn truncated_blob_is_refused_and_nothing_partial_is_kept() {
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blobs/data");
    let blob = blob_bytes();
    let digest = Digest::sha256_of(&blob);
    for size in [Some(blob.len() as u64), None] {
        let err = client
            .fetch_blob(&host, "short/blob", &digest, size, &dest)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&digest.to_string()) || text.contains("bytes"),
            "the error must say what was wrong: {text}"
        );
        assert!(!dest.exists(), "a truncated blob was kept");
        assert!(
            dir_entries(&dir.path().join("blobs")).is_empty(),
            "left behind: {:?}",
            dir_entries(&dir.path().join("blobs"))
        );
    }
}

#[tokio::test]
async fn mirror_of_an_image_with_a_corrupt_layer_fails_and_leaves_no_tag_link_or_partial_blob() {
    use registry::mirror::{ImageJob, Location, Mirror, MirrorOptions, Outcome};
    let (host, _state) = start_evil().await;
    let client = client_for(&host, false);
    let out = tempfile::tempdir().unwrap();
    let layout = Arc::new(formats::distribution::DistributionLayout::new(out.path()));
    let mirror = Mirror::new(Location::dir(out.path()), MirrorOptions::default());
    let job = ImageJob {
        source: Arc::new(Location::registry(&client, &host)),
        source_repository: "wrong/bytes".into(),
        source_reference: "v1".into(),
        dest_repository: "wrong/bytes".into(),
        dest_tag: Some("v1".into()),
    };
    let reports = mirror.run(vec![job]).await;
    let Outcome::Failed(cause) = &reports[0].outcome else {
        panic!("expected a failure, got {:?}", reports[0].outcome);
    };
    let layer = Digest::sha256_of(&blob_bytes());
    assert!(cause.contains(&layer.to_string()), "{cause}");
    assert_eq!(layout.resolve_tag("wrong/bytes", "v1").ok().flatten(), None);
    let paths = layout.paths();
    assert!(
        !paths.blob_data(&layer).exists(),
        "the corrupt layer was kept"
    );
    assert!(!paths.layer_link("wrong/bytes", &layer).exists());
    // Whatever is left is whole: every data file hashes to its name, nothing is staged.
    let mut stack = vec![out.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                name == "data" || name == "link",
                "left behind: {}",
                p.display()
            );
            if name == "data" {
                let hex = p
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(Digest::sha256_of(&std::fs::read(&p).unwrap()).hex(), hex);
            }
        }
    }
}

/// A registry that accepts the connection, reads the request and never answers: the request fails as timed
/// out after the read timeout (each retry too), instead of hanging the command forever.
#[tokio::test]
async fn registry_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            // Hold every connection open, silent.
            keep.lock().unwrap().push(conn);
        }
    });
    let mut opts = client_for(&host, false).options().clone();
    opts.read_timeout = Duration::from_millis(300);
    opts.retry.max_attempts = 2;
    opts.insecure_loopback = true;
    let client = RegistryClient::new(opts).unwrap();
    let started = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        client.get_manifest(
            &host,
            "silent/repo",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        ),
    )
    .await
    .expect("the client hung on a registry that never answers")
    .unwrap_err();
    assert!(
        err.to_string().contains("timed out") || err.to_string().contains("timeout"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!held.lock().unwrap().is_empty(), "no connection was made");
}
