//! Distribution-spec v1.1 behaviour of `registry::server` on the filesystem and in-memory backends: the shared
//! cases in `spec_cases/`, plus what only these backends do (restart of a filesystem upload session, read-only
//! mode, metrics). One test per rule; each starts its own server on a free port.

mod spec_cases;

use std::sync::Arc;

use formats::digest::Digest;
use registry::server::ServerConfig;
use registry::storage::{FsStorage, MemoryStorage};
use reqwest::StatusCode;
use spec_cases::{Server, error_code, start_with};

/// A fresh registry on the filesystem backend.
async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(FsStorage::new(dir.path()));
    start_with(storage, ServerConfig::default(), Some(Box::new(dir))).await
}

/// One fresh registry per local backend: filesystem and memory.
async fn start_all() -> Vec<Server> {
    vec![
        start().await,
        start_with(
            Arc::new(MemoryStorage::new()),
            ServerConfig::default(),
            None,
        )
        .await,
    ]
}

#[tokio::test]
async fn read_only_registry_refuses_writes() {
    let s = start_with(
        Arc::new(MemoryStorage::new()),
        ServerConfig {
            read_only: true,
            log_requests: false,
            ..ServerConfig::default()
        },
        None,
    )
    .await;
    let r = s
        .client
        .post(s.url("/v2/ro/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(r).await, "UNSUPPORTED");
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_status() {
    let s = start_all().await.remove(1);
    s.client.get(s.url("/v2/")).send().await.unwrap();
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("registry_http_requests_total{method=\"GET\",status=\"200\"}"),
        "{text}"
    );
    assert!(text.contains("registry_bytes_sent_total"));
}

#[tokio::test]
async fn upload_session_survives_a_restart_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let loc;
    {
        let s = start_with(
            Arc::new(FsStorage::new(dir.path())),
            ServerConfig::default(),
            None,
        )
        .await;
        let r = s
            .client
            .post(s.url("/v2/rs/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = s
            .client
            .patch(s.url(&loc))
            .header("content-range", "0-2")
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let s = start_with(
        Arc::new(FsStorage::new(dir.path())),
        ServerConfig::default(),
        None,
    )
    .await;
    let r = s.client.get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-2");
    let d = Digest::sha256_of(b"abcdef");
    let r = s
        .client
        .put(s.url(&format!("{loc}?digest={d}")))
        .header("content-range", "3-5")
        .body("def")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}
