//! A local upstream registry for the integration tests: Debian's `docker-registry` on 127.0.0.1 (with an
//! access log to count requests) and helpers that push generated single- and multi-platform images to it.
//! Tests that use it fail naming `docker-registry` or `skopeo` when they are not installed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, DEFAULT_MANIFEST_ACCEPT, RegistryClient};

/// A `docker-registry serve` process, killed when dropped.
pub struct DockerRegistry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub host: String,
    access_log: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DockerRegistry {
    /// How many requests of any kind the access log shows so far.
    pub fn requests(&self) -> usize {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"GET /")
                    || l.contains("\"HEAD /")
                    || l.contains("\"PUT /")
                    || l.contains("\"POST /")
                    || l.contains("\"PATCH /")
            })
            .count()
    }

    /// How many blob downloads (`GET .../blobs/...`) the access log shows so far.
    pub fn blob_gets(&self) -> usize {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .count()
    }
}

pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed; this test needs it (apt-get install {name})")
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `docker-registry` storing into `root` (a fresh temp dir when `None`).
pub fn start_registry(root: Option<&Path>) -> DockerRegistry {
    let bin = require_tool("docker-registry");
    let tmp = tempfile::tempdir().unwrap();
    let data = root.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
    let port = free_port();
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        ),
    )
    .unwrap();
    let access_log = tmp.path().join("access.log");
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(std::fs::File::create(&access_log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = DockerRegistry {
        child,
        host: format!("127.0.0.1:{port}"),
        access_log,
        _tmp: tmp,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "docker-registry did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes a one-layer image (layer = `seed` repeated) for `arch`; returns the manifest digest and bytes.
pub fn push_image(
    host: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    seed: &str,
) -> (Digest, Vec<u8>) {
    push_image_layers(host, repo, tag, arch, &[seed.repeat(500).into_bytes()])
}

/// Pushes an image of `layers` for `arch` (as `repo:tag`, or by digest only); returns the manifest digest
/// and bytes.
pub fn push_image_layers(
    host: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[Vec<u8>],
) -> (Digest, Vec<u8>) {
    let c = client();
    let digests: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let diff_ids: Vec<String> = digests.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_d = Digest::sha256_of(&config);
    let layer_descs: Vec<String> = digests
        .iter()
        .zip(layers)
        .map(|(d, l)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{}}}"#,
                l.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layer_descs.join(",")
    )
    .into_bytes();
    let digest = Digest::sha256_of(&manifest);
    rt().block_on(async {
        let blobs = digests
            .iter()
            .zip(layers.iter().cloned())
            .chain([(&config_d, config.clone())]);
        for (d, b) in blobs {
            c.push_blob(
                host,
                repo,
                d,
                b.len() as u64,
                BlobSource::Bytes(Bytes::from(b)),
                None,
            )
            .await
            .unwrap();
        }
        let reference = tag.map_or_else(|| digest.to_string(), str::to_string);
        c.put_manifest(
            host,
            repo,
            &reference,
            Bytes::from(manifest.clone()),
            OCI_MANIFEST,
        )
        .await
        .unwrap();
    });
    (digest, manifest)
}

/// Pushes an amd64 + arm64 index as `repo:tag`; returns (index, amd64, arm64) digests.
pub fn push_multi_arch(host: &str, repo: &str, tag: &str) -> (Digest, Digest, Digest) {
    push_multi_arch_seeded(host, repo, tag, "")
}

/// [`push_multi_arch`] with layer contents that start with `seed`, so different images differ.
pub fn push_multi_arch_seeded(
    host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
) -> (Digest, Digest, Digest) {
    let (amd, amd_bytes) = push_image(host, repo, None, "amd64", &format!("{seed}amd64-layer "));
    let (arm, arm_bytes) = push_image(host, repo, None, "arm64", &format!("{seed}arm64-layer "));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        amd_bytes.len(),
        arm_bytes.len()
    )
    .into_bytes();
    let digest = Digest::sha256_of(&index);
    rt().block_on(client().put_manifest(host, repo, tag, Bytes::from(index), OCI_INDEX))
        .unwrap();
    (digest, amd, arm)
}

/// The digest `repo:reference` has at `host`, `None` when absent.
pub fn remote_digest(host: &str, repo: &str, reference: &str) -> Option<Digest> {
    rt().block_on(client().head_manifest(host, repo, reference, DEFAULT_MANIFEST_ACCEPT))
        .unwrap()
        .and_then(|h| h.digest)
}

/// Runs `skopeo ARGS` and returns its stdout; panics with its stderr when it fails.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(require_tool("skopeo"))
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
