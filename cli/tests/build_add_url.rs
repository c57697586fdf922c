//! `ADD <http://URL> DEST` against a tiny HTTP server in the test: streamed download, mode 0600,
//! `--checksum` verified, `Last-Modified` ignored, and failures that leave nothing in the store.

mod build_common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use build_common::{build, build_json, tagged, write_context};

/// Serves `body` for `/files/tool.bin` (404 for anything else) on 127.0.0.1; each response carries a
/// different `Last-Modified`. Returns the base URL and the request counter.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => request.extend_from_slice(&buf[..k]),
                }
            }
            let first = String::from_utf8_lossy(&request);
            let found = first.starts_with("GET /files/tool.bin ");
            let (status, content) = if found {
                ("200 OK", body.as_slice())
            } else {
                ("404 Not Found", &b"not found"[..])
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nLast-Modified: Wed, 0{} Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                content.len(),
                1 + n % 9
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(content);
        }
    });
    (base, count)
}

/// 3 MiB of varied bytes, so the download spans many chunks.
fn payload() -> Vec<u8> {
    (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn context_with(kubefile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    write_context(ctx.path(), &[("Kubefile", kubefile)]);
    ctx
}

/// Regular files under `dir` (recursively); empty when it does not exist.
fn files_under(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    build_common::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn add_of_a_url_downloads_it_with_mode_0600_and_the_same_digest_whatever_last_modified_says() {
    let body = payload();
    let (base, count) = serve(body.clone());
    let ctx = context_with(&format!(
        "FROM scratch\nADD {base}/files/tool.bin /opt/bin/\n"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    let context = ctx.path().to_str().unwrap();
    let first = build_json(
        &tmp.path().join("a"),
        &[
            "-t",
            "url:v1",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            context,
        ],
    );
    let file = out_dir.join("opt/bin/tool.bin");
    assert_eq!(fs::read(&file).unwrap(), body);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let second = build_json(&tmp.path().join("b"), &["-t", "url:v1", context]);
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(count.load(Ordering::SeqCst), 2, "downloaded once per build");
    let step = &first["images"][0]["steps"][0];
    assert_eq!(step["bytesHashed"], body.len() as u64);
}

#[test]
fn add_of_a_url_with_the_right_checksum_builds_and_chmod_overrides_the_mode() {
    let body = payload();
    let digest = formats::digest::Digest::sha256_of(&body);
    let (base, _) = serve(body);
    let ctx = context_with(&format!(
        "FROM scratch\nADD --checksum={digest} --chmod=755 {base}/files/tool.bin /usr/bin/tool\n"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    build_json(
        &tmp.path().join("store"),
        &[
            "-t",
            "url:v1",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    let meta = fs::metadata(out_dir.join("usr/bin/tool")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
}

#[test]
fn add_of_a_url_with_a_wrong_checksum_fails_clearly_and_leaves_nothing_in_the_store() {
    let (base, count) = serve(payload());
    let wrong = formats::digest::Digest::sha256_of(b"something else");
    let ctx = context_with(&format!(
        "FROM scratch\nADD --checksum={wrong} {base}/files/tool.bin /opt/tool\n"
    ));
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = build(&store, &["-t", "url:v1", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Kubefile:2")
            && stderr.contains("does not match --checksum")
            && stderr.contains(&wrong.to_string()),
        "{stderr}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(tagged(&store, "docker.io/library/url:v1").is_none());
    assert_eq!(files_under(&store.join("blobs")), Vec::<String>::new());
    assert_eq!(files_under(&store.join("tmp")), Vec::<String>::new());
}

#[test]
fn add_of_a_url_the_server_does_not_have_names_the_status() {
    let (base, _) = serve(Vec::new());
    let ctx = context_with(&format!("FROM scratch\nADD {base}/missing.tgz /opt/\n"));
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = build(&store, &["-t", "url:v1", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/missing.tgz") && stderr.contains("404"),
        "{stderr}"
    );
    assert!(tagged(&store, "docker.io/library/url:v1").is_none());
}
