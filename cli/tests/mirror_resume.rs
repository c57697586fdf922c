//! `sealos registry save`/`sync` across interruptions and with referrers: a save killed in the middle of a
//! blob continues it on the next run with a `Range` request for only the missing bytes (checked at the
//! source through a logging, throttling proxy in front of `docker-registry`), and `sync` from a Distribution-layout directory copies the
//! referrers (signatures, SBOMs) stored there along with their subject image.

mod dist_fixture;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dist_fixture::DistDir;
use formats::digest::Digest;
use formats::distribution::DistributionLayout;
use formats::manifest::RawManifest;
use testsupport::images::noise;
use testsupport::{DockerRegistry, SealosRegistry};

/// One request the proxy forwarded.
#[derive(Debug, Clone)]
struct Logged {
    method: String,
    path: String,
    range: Option<String>,
}

/// What the proxy threads share.
#[derive(Default)]
struct ProxyState {
    log: Mutex<Vec<Logged>>,
    /// Throttle blob bodies to about 2 MiB/s.
    slow: AtomicBool,
    /// Blob body bytes sent to clients.
    blob_bytes: AtomicU64,
    stop: AtomicBool,
}

/// An HTTP/1.1 proxy in front of a registry on 127.0.0.1: logs every request's method, path and `Range`,
/// forwards it with `Connection: close` (one request per connection) and, while `slow` is set, trickles
/// blob bodies so a client can be killed in the middle of one.
struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy on 127.0.0.1");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (shared, upstream) = (shared.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = forward(conn, &upstream, &shared);
                });
            }
        });
        Proxy { port, state }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Forwards one request and its answer.
fn forward(client: TcpStream, upstream: &str, state: &ProxyState) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    let mut body_len = 0usize;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        match name.as_str() {
            "connection" => continue,
            "content-length" => body_len = value.parse().unwrap_or(0),
            "range" => range = Some(value.clone()),
            _ => {}
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    state.log.lock().unwrap().push(Logged {
        method: method.clone(),
        path: path.clone(),
        range,
    });
    let mut up = TcpStream::connect(upstream)?;
    let mut head = request_line.clone();
    for h in &headers {
        head.push_str(h);
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    let mut body = vec![0u8; body_len];
    reader.read_exact(&mut body)?;
    up.write_all(&body)?;
    let is_blob_get = method == "GET" && path.contains("/blobs/sha256:");
    let mut client = client;
    let mut up_reader = BufReader::new(up);
    // The answer's head as it is (upstream closes after it, as asked), then its body.
    loop {
        let mut line = String::new();
        if up_reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        client.write_all(line.as_bytes())?;
        if line == "\r\n" {
            break;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = up_reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if is_blob_get && state.slow.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(30));
        }
        client.write_all(&buf[..n])?;
        if is_blob_get {
            state.blob_bytes.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image manifest over `config` and `layers` (each a media type, a digest and a size).
fn manifest_json(
    config: (&str, &Digest, usize),
    layers: &[(&Digest, usize)],
    extra: &str,
) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"{OCI_LAYER}","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{}]{extra}}}"#,
        config.0,
        config.1,
        config.2,
        layers.join(",")
    )
    .into_bytes()
}

/// Pushes a one-layer image made of `layer` to `host/repo:v1` through the registry client.
fn push_image(host: &str, repo: &str, layer: &[u8]) -> Digest {
    use registry::client::{BlobSource, ClientOptions, RegistryClient};
    let layer_d = Digest::sha256_of(layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_d}"]}}}}"#
    );
    let config_d = Digest::sha256_of(config.as_bytes());
    let manifest = manifest_json(
        (OCI_CONFIG, &config_d, config.len()),
        &[(&layer_d, layer.len())],
        "",
    );
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (d, bytes) in [(&layer_d, layer.to_vec()), (&config_d, config.into_bytes())] {
            let size = bytes.len() as u64;
            client
                .push_blob(host, repo, d, size, BlobSource::Bytes(bytes.into()), None)
                .await
                .unwrap();
        }
        client
            .put_manifest(host, repo, "v1", manifest.into(), OCI_MANIFEST)
            .await
            .unwrap();
    });
    layer_d
}

/// `sealos ARGS` with a private store, no system registries.conf, plain HTTP allowed.
fn sealos_cmd(store: &Path, args: &[&str]) -> Command {
    let conf = store.join("registries.conf");
    std::fs::create_dir_all(store).unwrap();
    std::fs::write(&conf, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealos"));
    cmd.args(args)
        .arg("--tls-verify=false")
        .arg("--registries-conf")
        .arg(&conf)
        .env("SEALOS_ROOT", store.join("root"))
        .env("REGISTRY_AUTH_FILE", store.join("auth.json"))
        .stdin(Stdio::null());
    cmd
}

fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run sealos");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_of(range: &str) -> u64 {
    range
        .trim_start_matches("bytes=")
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Range header {range:?}"))
}

#[test]
fn save_killed_mid_blob_then_rerun_requests_only_the_missing_range_at_the_source() {
    let source = DockerRegistry::start_fresh();
    let layer = noise(24 << 20, 7);
    let layer_d = push_image(&source.host(), "app/big", &layer);
    let proxy = Proxy::start(source.host());
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");
    let image = format!("{}/app/big:v1", proxy.host());
    let save_args = [
        "registry",
        "save",
        "--images",
        image.as_str(),
        "--registry-dir",
        out_dir.to_str().unwrap(),
    ];

    // First run: trickled, killed once a good part of the layer went through.
    proxy.state.slow.store(true, Ordering::SeqCst);
    let mut cmd = sealos_cmd(work.path(), &save_args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut first = KillOnDrop(cmd.spawn().expect("start sealos"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.state.blob_bytes.load(Ordering::SeqCst) < 12 << 20 {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the first save ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the first save made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let sent_before_kill = proxy.state.blob_bytes.load(Ordering::SeqCst);
    let blob = DistributionLayout::new(&out_dir)
        .paths()
        .blob_data(&layer_d);
    assert!(
        !blob.exists(),
        "the layer cannot be complete after the kill"
    );
    let first_requests = proxy.requests().len();

    // Second run: full speed; it must continue the layer, not start it again.
    proxy.state.slow.store(false, Ordering::SeqCst);
    run_ok(sealos_cmd(work.path(), &save_args));
    let layer_path = format!("/v2/app/big/blobs/{layer_d}");
    let again: Vec<Logged> = proxy.requests()[first_requests..]
        .iter()
        .filter(|r| r.method == "GET" && r.path == layer_path)
        .cloned()
        .collect();
    assert!(!again.is_empty(), "the rerun never fetched the layer");
    for r in &again {
        let range = r.range.as_deref().unwrap_or_else(|| {
            panic!("the rerun fetched the whole layer again instead of a range: {r:?}")
        });
        let start = start_of(range);
        assert!(
            start >= 4 << 20 && start <= sent_before_kill,
            "the rerun asked for {range} but {sent_before_kill} bytes had arrived before the kill"
        );
        assert!(range.ends_with('-'), "asked for a closed range {range}");
    }
    assert_eq!(
        std::fs::read(&blob).unwrap(),
        layer,
        "the saved layer differs"
    );
    let staging = out_dir.join(".staging");
    let left: Vec<PathBuf> = std::fs::read_dir(&staging)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial files were left behind: {left:?}");
    let tag = DistributionLayout::new(&out_dir)
        .resolve_tag("app/big", "v1")
        .unwrap();
    assert!(tag.is_some(), "the image was not tagged after the rerun");
}

/// A directory source holding `lib/app:v1` and a signature whose `subject` is that image; returns the
/// image's digest and the signature's digest.
fn dir_with_signed_image(root: &Path) -> (Digest, Digest) {
    let layout = DistDir::new(root);
    let repo = "lib/app";
    let layer = noise(64 * 1024, 3);
    let layer_d = layout.blob(repo, &layer);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = layout.blob(repo, config);
    let image = manifest_json(
        (OCI_CONFIG, &config_d, config.len()),
        &[(&layer_d, layer.len())],
        "",
    );
    let image = RawManifest::from_bytes(image, Some(OCI_MANIFEST)).unwrap();
    layout.manifest(repo, &image, Some("v1"));
    let empty_d = layout.blob(repo, b"{}");
    let sig = b"signature of the image";
    let sig_d = layout.blob(repo, sig);
    let subject = format!(
        r#","artifactType":"application/vnd.example.signature","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}"#,
        image.digest,
        image.bytes.len()
    );
    let referrer = manifest_json(
        ("application/vnd.oci.empty.v1+json", &empty_d, 2),
        &[(&sig_d, sig.len())],
        &subject,
    );
    let referrer = RawManifest::from_bytes(referrer, Some(OCI_MANIFEST)).unwrap();
    layout.manifest(repo, &referrer, None);
    (image.digest, referrer.digest)
}

/// True when `root` holds manifest `digest` in `repo` with every blob it references.
fn dir_has_image(root: &Path, repo: &str, digest: &Digest) -> bool {
    let layout = DistributionLayout::new(root);
    let Ok(m) = layout.read_manifest(repo, digest) else {
        return false;
    };
    m.referenced_blobs().iter().all(|d| {
        layout.paths().blob_data(&d.digest).is_file()
            && layout.paths().layer_link(repo, &d.digest).is_file()
    })
}

#[test]
fn sync_from_a_directory_copies_the_referrers_stored_there_to_a_directory_and_a_registry() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let (image_d, sig_d) = dir_with_signed_image(&src);

    let dst = work.path().join("dst");
    run_ok(sealos_cmd(
        work.path(),
        &[
            "registry",
            "sync",
            src.to_str().unwrap(),
            dst.to_str().unwrap(),
        ],
    ));
    assert!(dir_has_image(&dst, "lib/app", &image_d), "image missing");
    assert!(
        dir_has_image(&dst, "lib/app", &sig_d),
        "the signature stored in the source directory was not copied"
    );

    let served = work.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), &served, &[]);
    let out = run_ok(sealos_cmd(
        work.path(),
        &["registry", "sync", src.to_str().unwrap(), server.host()],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        dir_has_image(&served, "lib/app", &image_d),
        "image missing at the registry: {text}"
    );
    assert!(
        dir_has_image(&served, "lib/app", &sig_d),
        "the signature was not pushed to the registry: {text}"
    );
}
