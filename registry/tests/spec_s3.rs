//! The full distribution-spec case set (`spec_cases/`) on the S3 backend, against a real S3-compatible server
//! (moto, `python3 -m moto.server`, installed by `.ci/run`) on 127.0.0.1: one moto for the test binary, one
//! fresh bucket per test. Plus the S3 form of "an upload survives a restart": a new backend instance (a new
//! replica) continues a session.

mod spec_cases;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use formats::digest::Digest;
use registry::server::ServerConfig;
use registry::storage::{S3Config, S3Storage};
use reqwest::StatusCode;
use spec_cases::{Server, start_with};

/// The endpoint of the moto server shared by this test binary. moto is started through a small shell watchdog
/// that stops it once this process is gone, so no server outlives the tests.
#[expect(
    clippy::zombie_processes,
    reason = "the watchdog shell outlives the test binary on purpose and stops moto itself"
)]
fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let script = format!(
            "python3 -m moto.server -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $m",
            parent = std::process::id()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh is needed to start moto");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start: install it with `pip install 'moto[server]'` (.ci/run does)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// A config for a new, empty bucket.
async fn new_bucket() -> S3Config {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let endpoint = moto_endpoint().to_string();
    let name = format!(
        "spec-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let r = reqwest::Client::new()
        .put(format!("{endpoint}/{name}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    S3Config {
        bucket: name,
        endpoint: Some(endpoint),
        region: "us-east-1".into(),
        prefix: "registry".into(),
        redirect: false,
        credentials: Some(("test".into(), "test".into())),
    }
}

/// A fresh registry on its own bucket.
async fn start() -> Server {
    let config = new_bucket().await;
    start_with(
        Arc::new(S3Storage::new(&config).unwrap()),
        spec_cases::config(),
        None,
    )
    .await
}

/// The S3 backend has one flavour.
async fn start_all() -> Vec<Server> {
    vec![start().await]
}

#[tokio::test]
async fn upload_session_continues_on_a_new_replica() {
    let config = new_bucket().await;
    let first = start_with(
        Arc::new(S3Storage::new(&config).unwrap()),
        ServerConfig::default(),
        None,
    )
    .await;
    let r = first
        .client
        .post(first.url("/v2/rs/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = first
        .client
        .patch(first.url(&loc))
        .header("content-range", "0-2")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    drop(first);
    let second = start_with(
        Arc::new(S3Storage::new(&config).unwrap()),
        ServerConfig::default(),
        None,
    )
    .await;
    let r = second.client.get(second.url(&loc)).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-2");
    let d = Digest::sha256_of(b"abcdef");
    let r = second
        .client
        .put(second.url(&format!("{loc}?digest={d}")))
        .header("content-range", "3-5")
        .body("def")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = second
        .client
        .get(second.url(&format!("/v2/rs/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"abcdef");
}
