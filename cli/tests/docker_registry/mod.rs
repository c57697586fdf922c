//! Debian's `docker-registry` on 127.0.0.1 for CLI tests: start one on a free port (killed when dropped) and
//! push small test images to it with the client. Fails naming the tool when it is not installed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient};

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
    push_image_with_layer(host, repo, tag, arch, seed.repeat(500).into_bytes())
}

/// Pushes a one-layer image whose layer blob is `layer` (declared an uncompressed OCI tar) for `arch`;
/// returns the manifest digest and bytes.
pub fn push_image_with_layer(
    host: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    layer: Vec<u8>,
) -> (Digest, Vec<u8>) {
    let c = client();
    let layer_d = Digest::sha256_of(&layer);
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_d}"]}}}}"#
    )
    .into_bytes();
    let config_d = Digest::sha256_of(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_d}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let digest = Digest::sha256_of(&manifest);
    rt().block_on(async {
        for (d, b) in [(&layer_d, layer.clone()), (&config_d, config.clone())] {
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
