//! What `registry serve` allows and keeps, over TCP on 127.0.0.1: open upload sessions capped per client, per
//! repository and in all (429 TOOMANYREQUESTS) and cancelled when idle, deletes off unless enabled and never of a
//! blob a manifest uses, and `/metrics` bounded in size and behind the login when auth is on.

mod auth_common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use auth_common::*;
use formats::digest::Digest;
use registry::server::ServerConfig;
use registry::server::auth::{AuthConfig, Htpasswd, htpasswd_entry};
use registry::server::uploads::UploadSessionLimits;
use registry::storage::{FsStorage, Storage};
use reqwest::StatusCode;

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// The first error of a response: `(code, message)`.
async fn error_of(resp: reqwest::Response) -> (String, String) {
    let body: serde_json::Value = resp.json().await.expect("a JSON error body");
    let e = &body["errors"][0];
    (
        e["code"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Limits with `per_client`, `per_repository` and `total` open sessions, idle for at most `idle`.
fn limits(
    per_client: usize,
    per_repository: usize,
    total: usize,
    idle: Duration,
) -> UploadSessionLimits {
    UploadSessionLimits {
        per_client,
        per_repository,
        total,
        idle_timeout: idle,
    }
}

/// Users alice and bob (bcrypt cost 4).
fn two_users() -> AuthConfig {
    let text = format!(
        "{}\n{}\n",
        htpasswd_entry(USER, PASSWORD, 4).unwrap(),
        htpasswd_entry("bob", "bobs-pass", 4).unwrap()
    );
    let htpasswd = Htpasswd::parse(&text, Path::new("two-users")).unwrap();
    AuthConfig::new(htpasswd, false).unwrap()
}

/// Starts an upload session in `repo` as `user` (None: anonymous); returns the response.
async fn open_session(
    s: &AuthServer,
    from: &reqwest::Client,
    repo: &str,
    user: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut rb = from.post(s.url(&format!("/v2/{repo}/blobs/uploads/")));
    if let Some((u, p)) = user {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.unwrap()
}

/// `/metrics` read as alice.
async fn metrics(s: &AuthServer) -> String {
    let r = http()
        .get(s.url("/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// The value of `name` in a metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_sessions_past_a_users_cap_are_refused_with_429_until_one_ends() {
    let config = ServerConfig {
        auth: Some(two_users()),
        upload_sessions: limits(3, 100, 100, Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let s = start_with(config, None).await;
    let alice = Some((USER, PASSWORD));
    let mut locations = Vec::new();
    for repo in ["a", "b", "c"] {
        let r = open_session(&s, &http(), repo, alice).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        locations.push(r.headers()["location"].to_str().unwrap().to_string());
    }
    let r = open_session(&s, &http(), "d", alice).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (code, message) = error_of(r).await;
    assert_eq!(code, "TOOMANYREQUESTS");
    assert!(message.contains("user `alice` (limit 3)"), "{message}");
    assert!(message.contains("10m"), "names the idle timeout: {message}");
    // A monolithic push opens a session too.
    let blob = b"monolithic".to_vec();
    let r = http()
        .post(s.url(&format!(
            "/v2/d/blobs/uploads/?digest={}",
            Digest::sha256_of(&blob)
        )))
        .basic_auth(USER, Some(PASSWORD))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Bob is another client.
    let r = open_session(&s, &http(), "d", Some(("bob", "bobs-pass"))).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        metric(&metrics(&s).await, "registry_upload_sessions_open"),
        4
    );
    // Cancelling one gives alice her room back; finishing one does too.
    let r = http()
        .delete(s.url(&locations[0]))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http()
        .put(s.url(&format!(
            "{}?digest={}",
            locations[1],
            Digest::sha256_of(&blob)
        )))
        .basic_auth(USER, Some(PASSWORD))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for _ in 0..2 {
        let r = open_session(&s, &http(), "d", alice).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(
        open_session(&s, &http(), "d", alice).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        metric(&metrics(&s).await, "registry_upload_sessions_open"),
        4
    );
    assert_eq!(s.storage.list_uploads().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_clients_are_capped_per_address_and_repositories_and_the_registry_in_all() {
    let config = ServerConfig {
        upload_sessions: limits(2, 3, 5, Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let s = start_with(config, None).await;
    let from = |last: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .unwrap()
    };
    let (one, two, three) = (from(1), from(2), from(3));
    for _ in 0..2 {
        assert_eq!(
            open_session(&s, &one, "r", None).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let r = open_session(&s, &one, "q", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, message) = error_of(r).await;
    assert!(
        message.contains("address `127.0.0.1` (limit 2)"),
        "{message}"
    );
    // Another address may open one more in `r`, then the repository is full.
    assert_eq!(
        open_session(&s, &two, "r", None).await.status(),
        StatusCode::ACCEPTED
    );
    let r = open_session(&s, &three, "r", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (_, message) = error_of(r).await;
    assert!(message.contains("repository `r` (limit 3)"), "{message}");
    assert_eq!(
        open_session(&s, &two, "q", None).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        open_session(&s, &three, "q", None).await.status(),
        StatusCode::ACCEPTED
    );
    let r = open_session(&s, &three, "p", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let (code, message) = error_of(r).await;
    assert_eq!(code, "TOOMANYREQUESTS");
    assert!(message.contains("on this registry (limit 5)"), "{message}");
    assert_eq!(s.storage.list_uploads().await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn naming_a_session_under_another_repository_does_not_free_its_slot() {
    let config = ServerConfig {
        upload_sessions: limits(1, 10, 10, Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let s = start_with(config, None).await;
    let r = open_session(&s, &http(), "a", None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let id = r.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    let elsewhere = s.url(&format!("/v2/b/blobs/uploads/{id}"));
    for r in [
        http().get(&elsewhere).send().await.unwrap(),
        http().patch(&elsewhere).body("x").send().await.unwrap(),
        http()
            .put(format!("{elsewhere}?digest={}", Digest::sha256_of(b"")))
            .send()
            .await
            .unwrap(),
        http().delete(&elsewhere).send().await.unwrap(),
    ] {
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(
        open_session(&s, &http(), "c", None).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(s.storage.list_uploads().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn monolithic_pushes_give_their_session_back_when_done() {
    let config = ServerConfig {
        upload_sessions: limits(1, 1, 1, Duration::from_secs(600)),
        ..ServerConfig::default()
    };
    let s = start_with(config, None).await;
    for i in 0..5u8 {
        let blob = vec![i; 100];
        let r = http()
            .post(s.url(&format!(
                "/v2/m/blobs/uploads/?digest={}",
                Digest::sha256_of(&blob)
            )))
            .body(blob)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "push {i}");
    }
    // One refused for its digest gives it back too.
    let r = http()
        .post(s.url(&format!(
            "/v2/m/blobs/uploads/?digest={}",
            Digest::sha256_of(b"other")
        )))
        .body("not other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        open_session(&s, &http(), "m", None).await.status(),
        StatusCode::ACCEPTED
    );
    assert!(s.storage.list_uploads().await.unwrap().len() == 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_upload_sessions_are_cancelled_and_busy_or_active_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    // A session an earlier run left behind.
    let left = storage.create_upload("old").await.unwrap();
    let config = ServerConfig {
        auth: Some(auth_config(false)),
        upload_sessions: limits(100, 100, 100, Duration::from_secs(1)),
        ..ServerConfig::default()
    };
    let s = start_on(storage.clone(), config, None).await;
    let alice = Some((USER, PASSWORD));
    let idle = open_session(&s, &http(), "idle", alice).await;
    let idle = idle.headers()["location"].to_str().unwrap().to_string();
    let active = open_session(&s, &http(), "active", alice).await;
    let active = active.headers()["location"].to_str().unwrap().to_string();
    let busy = open_session(&s, &http(), "busy", alice).await;
    let busy = busy.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        metric(&metrics(&s).await, "registry_upload_sessions_open"),
        4
    );

    // `busy` receives one chunk slowly, for longer than the idle timeout; `active` gets a chunk every 200 ms.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let slow = tokio::spawn(
        http()
            .patch(s.url(&busy))
            .basic_auth(USER, Some(PASSWORD))
            .body(body)
            .send(),
    );
    let mut sent = Vec::new();
    for i in 0..12u8 {
        tx.send(Ok(vec![i; 10])).await.unwrap();
        sent.extend_from_slice(&[i; 10]);
        let r = http()
            .patch(s.url(&active))
            .basic_auth(USER, Some(PASSWORD))
            .body(vec![i; 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {i} of `active`");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(tx);
    assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);

    let status = |loc: String| {
        http()
            .get(s.url(&loc))
            .basic_auth(USER, Some(PASSWORD))
            .send()
    };
    let r = status(idle).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_of(r).await.0, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        status(active).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = status(busy.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-119");
    let r = http()
        .put(s.url(&format!("{busy}?digest={}", Digest::sha256_of(&sent))))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut stored: Vec<String> = storage
        .list_uploads()
        .await
        .unwrap()
        .into_iter()
        .map(|(repo, _, _)| repo)
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        vec!["active"],
        "the idle and the left-over sessions are gone"
    );
    assert!(
        storage.upload_status("old", &left.id).await.is_err(),
        "the session of an earlier run is cancelled"
    );
    assert_eq!(
        metric(&metrics(&s).await, "registry_upload_sessions_open"),
        1
    );
}

/// A stream of the chunks `rx` receives.
fn tokio_stream_of(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_are_refused_with_405_unless_enabled() {
    let s = start(Some(auth_config(false)), None).await;
    let owner = client(&s.host, Some((USER, PASSWORD)));
    let image = TestImage::new("kept");
    image.push(&owner, &s.host, "app", "v1").await.unwrap();
    let layer = Digest::sha256_of(&image.layer);
    for path in [
        format!("/v2/app/blobs/{layer}"),
        format!("/v2/app/manifests/{}", image.digest()),
        "/v2/app/manifests/v1".to_string(),
    ] {
        let r = http()
            .delete(s.url(&path))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        let (code, message) = error_of(r).await;
        assert_eq!(code, "UNSUPPORTED");
        assert!(message.contains("--enable-delete"), "{message}");
    }
    assert!(s.storage.has_layer("app", &layer).await.unwrap());
    assert_eq!(s.storage.list_tags("app").await.unwrap(), vec!["v1"]);
    // Cancelling an upload is not a delete of content.
    let r = open_session(&s, &http(), "app", Some((USER, PASSWORD))).await;
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = http()
        .delete(s.url(&loc))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_a_manifest_uses_is_not_deleted_and_the_image_stays_pullable() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
    let config = ServerConfig {
        enable_delete: true,
        ..ServerConfig::default()
    };
    let s = start_on(storage, config, None).await;
    let c = client(&s.host, None);
    let image = TestImage::new("in use");
    image.push(&c, &s.host, "app", "v1").await.unwrap();
    // The same image, untagged, in a second repository; and a stray blob there.
    image.push(&c, &s.host, "copy", "v1").await.unwrap();
    let r = http()
        .delete(s.url("/v2/copy/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let layer = Digest::sha256_of(&image.layer);
    let config_blob = Digest::sha256_of(&image.config);
    for (repo, blob) in [
        ("app", &layer),
        ("app", &config_blob),
        ("copy", &layer),
        ("copy", &config_blob),
    ] {
        let r = http()
            .delete(s.url(&format!("/v2/{repo}/blobs/{blob}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT, "{repo} {blob}");
        let (code, message) = error_of(r).await;
        assert_eq!(code, "DENIED");
        assert!(
            message.contains(&format!("manifest `{}`", image.digest()))
                && message.contains(&format!("`{blob}`")),
            "{message}"
        );
    }
    let pulled = c
        .get_manifest(
            &s.host,
            "app",
            "v1",
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    assert_eq!(pulled.digest, image.digest());
    let r = http()
        .get(s.url(&format!("/v2/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report = registry::storage::fsck::fsck(dir.path()).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    // Once the manifest is gone, so may its blobs be; a blob no manifest uses goes at once.
    let r = http()
        .delete(s.url(&format!("/v2/copy/manifests/{}", image.digest())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for blob in [&layer, &config_blob] {
        let r = http()
            .delete(s.url(&format!("/v2/copy/blobs/{blob}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED, "{blob}");
    }
    let report = registry::storage::fsck::fsck(dir.path()).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    let r = http()
        .get(s.url(&format!("/v2/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "`app` still has it");
}

#[tokio::test(flavor = "multi_thread")]
async fn made_up_methods_are_counted_as_other_and_metrics_stay_small() {
    let s = start(Some(auth_config(false)), None).await;
    let c = http();
    for i in 0..2000u32 {
        let name = format!("X{:08X}", i.wrapping_mul(2_654_435_761));
        let method = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
        let r = c
            .request(method, s.url(&format!("/v2/r{i}/manifests/v1")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let text = metrics(&s).await;
    assert!(text.len() < 4096, "{} bytes:\n{text}", text.len());
    assert_eq!(
        metric(
            &text,
            "registry_http_requests_total{method=\"other\",status=\"401\"}"
        ),
        2000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_a_login_when_auth_is_configured() {
    for anonymous_pull in [false, true] {
        let s = start(Some(auth_config(anonymous_pull)), None).await;
        let r = http().get(s.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("www-authenticate"));
        let r = http()
            .get(s.url("/metrics"))
            .basic_auth(USER, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // An anonymous token is no login.
        let anonymous: registry::server::auth::TokenAnswer = http()
            .get(s.url("/token?scope=repository:a:pull"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http()
            .get(s.url("/metrics"))
            .bearer_auth(&anonymous.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let text = metrics(&s).await;
        assert!(text.contains("registry_http_requests_total"), "{text}");
        let user: registry::server::auth::TokenAnswer = http()
            .get(s.url("/token"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http()
            .get(s.url("/metrics"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
}
