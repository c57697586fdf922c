//! `ADD <http://URL> DEST` against a tiny HTTP server in the test: streamed download, mode 0600,
//! `--checksum` verified, `Last-Modified` ignored, and failures that leave nothing in the store. The download
//! goes through the registry client's transport: a 503 is retried, and an HTTPS server's CA is trusted from
//! `certs.d` only.

mod build_common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use build_common::{build, build_json, build_ok, sealos, tagged, write_context};

/// Serves `body` for `/files/tool.bin` (404 for anything else) on 127.0.0.1; each response carries a
/// different `Last-Modified`. Returns the base URL and the request counter.
fn serve(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    serve_after_failures(body, 0)
}

/// [`serve`], answering the first `failures` requests `503 Service Unavailable` (with `Retry-After: 0`).
fn serve_after_failures(body: Vec<u8>, failures: usize) -> (String, Arc<AtomicUsize>) {
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
            let (status, content) = if n < failures {
                ("503 Service Unavailable\r\nRetry-After: 0", &b"busy"[..])
            } else if found {
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

/// Builds `ctx` as `url:v1` into a fresh store, exporting the image's files; the scratch directory (kept
/// alive by the caller) and the directory the files are in.
fn build_to_dir(ctx: &tempfile::TempDir) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    build_ok(
        &tmp.path().join("store"),
        &[
            "-t",
            "url:v1",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    (tmp, out_dir)
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
    let (_tmp, out_dir) = build_to_dir(&ctx);
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

/// The `error:` line and the `caused by:` lines of a failed command's stderr (the build's step lines and
/// `--debug` logs left out).
fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("error: "))
        .filter(|l| l.starts_with("error: ") || l.starts_with("  caused by: "))
        .collect()
}

#[test]
fn a_failed_add_url_says_why_in_one_line_and_debug_shows_the_whole_chain_of_causes() {
    // A port nothing listens on: the connection is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/files/tool.bin");
    let ctx = context_with(&format!("FROM scratch\nADD {url} /opt/tool\n"));
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let context = ctx.path().to_str().unwrap();

    let out = build(&store, &["-t", "url:v1", context]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = error_lines(&stderr);
    // The step's message carries its cause inline; the causes beneath it are not repeated.
    let Some(&[_, step]) = Some(lines.as_slice()) else {
        panic!("expected `error:` and one `caused by:` line:\n{stderr}");
    };
    assert!(
        step.contains("Kubefile:2: ADD ")
            && step.contains(&url)
            && step.contains("cannot fetch it: ")
            && step.contains("connection refused"),
        "{stderr}"
    );

    let debug = sealos()
        .arg("--debug")
        .arg("--root")
        .arg(&store)
        .args(["build", "-t", "url:v1", context])
        .output()
        .unwrap();
    assert!(!debug.status.success());
    let stderr = String::from_utf8_lossy(&debug.stderr);
    let lines = error_lines(&stderr);
    // Every source, down to the operating system's error, each on its own line: the step, the download,
    // the client's transport error and what it wraps.
    assert!(lines.len() >= 5, "{stderr}");
    assert_eq!(
        &lines[..2],
        &error_lines(&String::from_utf8_lossy(&out.stderr))[..],
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  caused by: ADD ") && l.contains("cannot fetch it: ")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  caused by: cannot fetch it: ")),
        "{stderr}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("(os error 111)")),
        "the root cause, the refused connection, comes last:\n{stderr}"
    );
}

#[test]
fn add_of_a_url_is_retried_after_a_503_as_registry_requests_are() {
    let body = payload();
    let (base, count) = serve_after_failures(body.clone(), 1);
    let ctx = context_with(&format!(
        "FROM scratch\nADD {base}/files/tool.bin /opt/tool\n"
    ));
    let (_tmp, out_dir) = build_to_dir(&ctx);
    assert_eq!(fs::read(out_dir.join("opt/tool")).unwrap(), body);
    assert_eq!(count.load(Ordering::SeqCst), 2, "one 503, then the retry");
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`openssl` is not installed ({e}); this test needs it"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl s_server -WWW` serving `dir` over HTTPS on 127.0.0.1 with a certificate of a CA made here
/// (`dir/../ca.crt`); killed when dropped.
struct HttpsServer {
    child: Child,
    port: u16,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_https(tls: &Path, dir: &Path) -> HttpsServer {
    openssl(
        tls,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ADD test CA",
        ],
    );
    openssl(
        tls,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs::write(tls.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        tls,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-WWW", "-cert"])
        .arg(tls.join("srv.crt"))
        .arg("-key")
        .arg(tls.join("srv.key"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("openssl s_server said nothing")
            .unwrap();
        if let Some(addr) = line.strip_prefix("ACCEPT ") {
            break addr.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    // Keep reading what it prints, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    HttpsServer { child, port }
}

#[test]
fn add_of_an_https_url_trusts_the_ca_in_certs_d_and_only_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (tls, www, home) = (
        tmp.path().join("tls"),
        tmp.path().join("www"),
        tmp.path().join("home"),
    );
    for d in [&tls, &www.join("files"), &home] {
        fs::create_dir_all(d).unwrap();
    }
    let body = payload();
    fs::write(www.join("files/tool.bin"), &body).unwrap();
    let server = serve_https(&tls, &www);
    let url = format!("https://127.0.0.1:{}/files/tool.bin", server.port);
    let ctx = context_with(&format!("FROM scratch\nADD {url} /opt/tool\n"));
    let run = |store: &str| {
        // --tls-verify: a loopback host is otherwise not verified at all.
        sealos()
            .env("HOME", &home)
            .arg("--root")
            .arg(tmp.path().join(store))
            .args(["build", "--tls-verify", "-t", "url:v1", "-o"])
            .arg(format!(
                "type=local,dest={}",
                tmp.path().join(store).join("out").display()
            ))
            .arg(ctx.path())
            .output()
            .unwrap()
    };

    let refused = run("untrusted");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&url) && stderr.contains("certs.d"),
        "the error names the URL and where a CA goes: {stderr}"
    );

    let certs = home.join(format!(
        ".config/containers/certs.d/127.0.0.1:{}",
        server.port
    ));
    fs::create_dir_all(&certs).unwrap();
    fs::copy(tls.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let trusted = run("trusted");
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(
        fs::read(tmp.path().join("trusted/out/opt/tool")).unwrap(),
        body
    );
}
