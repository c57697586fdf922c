//! Pulls that are interrupted leave no partial blob behind: SIGINT and SIGTERM remove the staged file and
//! exit 130 and 143; what a SIGKILL leaves is removed by the next `sealos prune` at once (its writer is
//! gone), and by the next pull.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use formats::digest::Digest;

/// The layer the registry serves: 8 MiB, of which it sends only the first MiB, then stalls (the staged
/// file buffers 256 KiB, so some of it is on disk).
const LAYER_SIZE: usize = 8 << 20;
const SENT_BEFORE_STALL: usize = 1 << 20;

/// A registry of one image, `x:1`, that never finishes sending its layer.
struct StallingRegistry {
    port: u16,
}

struct Image {
    manifest: Vec<u8>,
    manifest_digest: Digest,
    config: Vec<u8>,
    config_digest: Digest,
    layer: Vec<u8>,
    layer_digest: Digest,
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        other => other,
    }
}

fn image() -> Image {
    let layer: Vec<u8> = (0..LAYER_SIZE)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let layer_digest = Digest::sha256_of(&layer);
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#,
        host_arch()
    )
    .into_bytes();
    let config_digest = Digest::sha256_of(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let manifest_digest = Digest::sha256_of(&manifest);
    Image {
        manifest,
        manifest_digest,
        config,
        config_digest,
        layer,
        layer_digest,
    }
}

impl StallingRegistry {
    fn start() -> StallingRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let image = Arc::new(image());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let image = Arc::clone(&image);
                std::thread::spawn(move || {
                    let _ignored = serve(conn, &image);
                });
            }
        });
        StallingRegistry { port }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Answers the requests of one connection (keep-alive) until the client goes or the layer stalls.
fn serve(conn: TcpStream, image: &Image) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request)? == 0 {
            return Ok(());
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
        }
        let mut parts = request.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let head = method == "HEAD";
        let blob = |d: &Digest| format!("/v2/x/blobs/{d}");
        let (status, content_type, body, digest): (&str, &str, &[u8], Option<&Digest>) =
            if path == "/v2/" {
                ("200 OK", "application/json", b"{}", None)
            } else if path == "/v2/x/manifests/1"
                || path == format!("/v2/x/manifests/{}", image.manifest_digest)
            {
                (
                    "200 OK",
                    "application/vnd.oci.image.manifest.v1+json",
                    &image.manifest,
                    Some(&image.manifest_digest),
                )
            } else if path == blob(&image.config_digest) {
                (
                    "200 OK",
                    "application/octet-stream",
                    &image.config,
                    Some(&image.config_digest),
                )
            } else if path == blob(&image.layer_digest) {
                (
                    "200 OK",
                    "application/octet-stream",
                    &image.layer,
                    Some(&image.layer_digest),
                )
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    br#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#,
                    None,
                )
            };
        let mut headers = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(d) = digest {
            headers.push_str(&format!("Docker-Content-Digest: {d}\r\n"));
        }
        headers.push_str("\r\n");
        out.write_all(headers.as_bytes())?;
        if head {
            continue;
        }
        if digest == Some(&image.layer_digest) {
            out.write_all(&body[..SENT_BEFORE_STALL])?;
            out.flush()?;
            // Stall until the client hangs up.
            let mut sink = [0u8; 1];
            let _ignored = reader.read(&mut sink);
            return Ok(());
        }
        out.write_all(body)?;
    }
}

fn sealos(store: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealos"));
    cmd.arg("--root")
        .arg(store)
        .env("REGISTRY_AUTH_FILE", store.with_extension("auth.json"));
    cmd
}

fn staged_files(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store.join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `sealos pull` of the stalling image and waits until its layer is being written (to a staged
/// file other than those in `earlier`).
fn start_pull(registry: &StallingRegistry, store: &Path, earlier: &[PathBuf]) -> Child {
    let conf = store.with_extension("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut child = sealos(store)
        .args(["pull", "--tls-verify=false", "--registries-conf"])
        .arg(&conf)
        .arg(format!("{}/x:1", registry.host()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sealos pull");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writing = staged_files(store)
            .iter()
            .filter(|p| !earlier.contains(p))
            .any(|p| {
                p.metadata()
                    .is_ok_and(|m| m.len() >= (SENT_BEFORE_STALL / 2) as u64)
            });
        if writing {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "sealos pull ended ({status}) before writing its layer:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the pull never started writing its layer"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 stale temporary file".to_string()
    } else {
        format!("{n} stale temporary files")
    }
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("wait for sealos")
}

#[test]
fn a_pull_interrupted_with_sigint_removes_its_partial_blob_and_exits_130() {
    let registry = StallingRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let child = start_pull(&registry, &store, &[]);
    signal(&child, "INT");
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(staged_files(&store), Vec::<PathBuf>::new(), "{stderr}");
    assert!(stderr.contains("interrupted: removed "), "{stderr}");
}

#[test]
fn a_pull_terminated_with_sigterm_removes_its_partial_blob_and_exits_143() {
    let registry = StallingRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let child = start_pull(&registry, &store, &[]);
    signal(&child, "TERM");
    let out = finish(child);
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(staged_files(&store), Vec::<PathBuf>::new());
}

#[test]
fn what_a_killed_pull_left_is_removed_by_the_next_prune_at_once_and_by_the_next_pull() {
    let registry = StallingRegistry::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let child = start_pull(&registry, &store, &[]);
    signal(&child, "KILL");
    let _ = finish(child);
    let left = staged_files(&store);
    let size: u64 = left.iter().map(|p| p.metadata().unwrap().len()).sum();
    assert!(
        size >= (SENT_BEFORE_STALL / 2) as u64,
        "SIGKILL leaves the partial blob (the case prune is for): {left:?}"
    );
    // Past the two-second grace a fresh temporary gets, but far under the old one-hour rule.
    std::thread::sleep(Duration::from_millis(2100));
    let out = sealos(&store).arg("prune").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(staged_files(&store).is_empty(), "{stdout}");
    assert!(
        stdout.contains(&format!("deleted {}, ", plural(left.len()))),
        "prune reports what it removed: {stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.contains("stale temporary"))
        .unwrap_or_default();
    assert!(
        line.ends_with("MiB freed") || line.ends_with("KiB freed"),
        "{stdout}"
    );

    // And a pull cleans what a killed pull left before it starts.
    let child = start_pull(&registry, &store, &[]);
    signal(&child, "KILL");
    let _ = finish(child);
    let killed = staged_files(&store);
    assert!(!killed.is_empty());
    std::thread::sleep(Duration::from_millis(2100));
    let child = start_pull(&registry, &store, &killed);
    let now = staged_files(&store);
    assert!(
        killed.iter().all(|p| !now.contains(p)),
        "the killed pull's files are gone: {killed:?} {now:?}"
    );
    signal(&child, "INT");
    let _ = finish(child);
    assert!(staged_files(&store).is_empty());
}
