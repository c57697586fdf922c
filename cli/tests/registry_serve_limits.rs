//! `sealos registry serve` connection flags, with the real binary on 127.0.0.1: `--max-connections` makes new
//! clients wait (logged once), `--header-timeout` closes connections that never send a request,
//! `--max-concurrent-uploads-per-client` answers 429, `--body-deadline` ends a manifest body that trickles past
//! it, and zero values are refused naming the flag.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use testsupport::{Backend, SealosRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sealos() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Reads `s` until the server closes it; the bytes read, or `None` past `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(out)
}

#[test]
fn max_connections_and_header_timeout_flags_make_clients_wait_then_free_the_slots() {
    let server = SealosRegistry::start_with(
        sealos(),
        Backend::InMemory,
        &["--max-connections", "2", "--header-timeout", "1s"],
        true,
    );
    let host = server.host().to_string();
    runtime().block_on(async {
        // Two connections that never send a request fill the limit.
        let mut silent = vec![
            TcpStream::connect(&host).await.unwrap(),
            TcpStream::connect(&host).await.unwrap(),
        ];
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let mut third = TcpStream::connect(&host).await.unwrap();
        third
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // The silent ones are closed after the header timeout; then the third is served.
        for s in &mut silent {
            read_until_closed(s, Duration::from_secs(5))
                .await
                .expect("a silent connection is closed after --header-timeout");
        }
        let answer = read_until_closed(&mut third, Duration::from_secs(5))
            .await
            .expect("the waiting client is served");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "the third client did not wait: {:?}",
            started.elapsed()
        );
    });
    let log = server.log();
    assert_eq!(
        log.matches("connection limit reached").count(),
        1,
        "logged once while the limit held:\n{log}"
    );
}

#[test]
fn max_concurrent_uploads_per_client_flag_answers_429_with_retry_after() {
    let server = SealosRegistry::start_with(
        sealos(),
        Backend::InMemory,
        &["--max-concurrent-uploads-per-client", "1"],
        false,
    );
    let host = server.host().to_string();
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let mut locations = Vec::new();
        for _ in 0..2 {
            let r = http
                .post(format!("http://{host}/v2/app/blobs/uploads/"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::ACCEPTED);
            locations.push(r.headers()["location"].to_str().unwrap().to_string());
        }
        // One upload receiving slowly takes the client's only slot.
        let mut slow = TcpStream::connect(&host).await.unwrap();
        slow.write_all(
            format!(
                "PATCH {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\nabc",
                locations[0]
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let r = http
            .patch(format!("http://{host}{}", locations[1]))
            .body(vec![0u8; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "1");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("TOOMANYREQUESTS")
                && text.contains("--max-concurrent-uploads-per-client"),
            "{text}"
        );
        drop(slow);
    });
}

#[test]
fn body_deadline_flag_ends_a_manifest_put_that_trickles_past_it() {
    let server = SealosRegistry::start_with(
        sealos(),
        Backend::InMemory,
        &["--body-deadline", "1s"],
        false,
    );
    let host = server.host().to_string();
    runtime().block_on(async {
        let mut s = TcpStream::connect(&host).await.unwrap();
        s.write_all(
            format!(
                "PUT /v2/app/manifests/v1 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (mut rd, mut wr) = s.into_split();
        // A byte every 200 ms: never quiet for the body timeout, 20 s for the whole body.
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if wr.write_all(b" ").await.is_err() {
                    break;
                }
            }
            std::future::pending::<()>().await;
        });
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        trickle.abort();
        assert!(ended.is_ok(), "the request still runs after 5 s");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(800), "ended after {took:?}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400") && answer.contains("--body-deadline"),
            "{answer}"
        );
    });
}

#[test]
fn zero_timeouts_and_counts_are_refused_naming_the_flag() {
    for (flag, value) in [
        ("--header-timeout", "0s"),
        ("--body-timeout", "0m"),
        ("--body-deadline", "0s"),
        ("--max-connections", "0"),
    ] {
        let out = std::process::Command::new(sealos())
            .args(["registry", "serve", "inmem", "-p", "0", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(value), "{err}");
    }
}
