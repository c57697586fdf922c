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
    start_with(storage, spec_cases::config(), Some(Box::new(dir))).await
}

/// One fresh registry per local backend: filesystem and memory.
async fn start_all() -> Vec<Server> {
    vec![
        start().await,
        start_with(Arc::new(MemoryStorage::new()), spec_cases::config(), None).await,
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

/// Large blobs of the filesystem store are sent with sendfile(2) from a mapping of their file: whole, by range
/// (an offset inside the file, crossing the 8 MiB frames), several at once, and still whole when the blob is
/// deleted while being read.
#[tokio::test]
async fn large_blobs_are_sent_from_their_file_whole_by_range_and_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let storage = Arc::new(FsStorage::new(&root));
    let s = start_with(storage, ServerConfig::default(), Some(Box::new(dir))).await;
    let blob: Vec<u8> = (0..(25 << 20) + 123u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let d = s.push_blob("big/blob", &blob).await;
    let url = s.url(&format!("/v2/big/blob/blobs/{d}"));
    let before = registry::server::sendfile::bytes_sent();
    let gets = (0..3).map(|_| async {
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes().await.unwrap()
    });
    for body in futures_util::future::join_all(gets).await {
        assert_eq!(body.len(), blob.len());
        assert_eq!(Digest::sha256_of(&body), d, "the bytes sent are the blob's");
    }
    let (first, last) = ((1 << 20) + 3, blob.len() - 6);
    let r = s
        .client
        .get(&url)
        .header("range", format!("bytes={first}-{last}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &blob[first..=last]);
    let sent = registry::server::sendfile::bytes_sent() - before;
    assert!(
        sent >= 3 * blob.len() as u64 + (last - first + 1) as u64,
        "only {sent} bytes went through sendfile"
    );

    // A reader that started before the blob's file is removed (by garbage collection, say) still gets every
    // byte.
    let mut r = s.client.get(&url).send().await.unwrap();
    let mut got = r.chunk().await.unwrap().unwrap().to_vec();
    let hex = d.hex();
    let blob_dir = root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}",
        &hex[..2]
    ));
    std::fs::remove_dir_all(&blob_dir).unwrap();
    while let Some(c) = r.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(Digest::sha256_of(&got), d);
}
