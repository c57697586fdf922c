//! Shared by the auth tests: an in-process registry with `--htpasswd` on 127.0.0.1 (optionally over TLS),
//! a CA and server certificate made with `openssl`, a one-layer test image, and external-tool helpers that
//! fail naming a missing tool.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, Credentials, RegistryClient};
use registry::server::auth::{AuthConfig, Htpasswd, htpasswd_entry};
use registry::server::{self, ServerConfig, tls};
use registry::storage::{MemoryStorage, Storage};

/// The user every test server knows.
pub const USER: &str = "alice";
/// Her password.
pub const PASSWORD: &str = "s3cret-pass";
/// The manifest media type of [`TestImage`].
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry served on 127.0.0.1 until dropped.
pub struct AuthServer {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `http://host` or `https://host`.
    pub base: String,
    /// What the server stores, to check what a refused request left behind.
    pub storage: Arc<dyn Storage>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl AuthServer {
    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// An htpasswd with [`USER`]/[`PASSWORD`] (bcrypt cost 4 to keep tests fast).
pub fn htpasswd() -> Htpasswd {
    let line = htpasswd_entry(USER, PASSWORD, 4).unwrap();
    Htpasswd::parse(&format!("{line}\n"), Path::new("test-htpasswd")).unwrap()
}

/// Auth settings for [`htpasswd`].
pub fn auth_config(anonymous_pull: bool) -> AuthConfig {
    AuthConfig::new(htpasswd(), anonymous_pull).unwrap()
}

/// Serves an in-memory registry with `auth` (and TLS when `tls` is given).
pub async fn start(auth: Option<AuthConfig>, tls: Option<tls::TlsConfig>) -> AuthServer {
    let config = ServerConfig {
        auth,
        ..ServerConfig::default()
    };
    start_with(config, tls).await
}

/// Serves an in-memory registry with `config` (and TLS when `tls` is given, whatever `config.tls` says).
pub async fn start_with(config: ServerConfig, tls: Option<tls::TlsConfig>) -> AuthServer {
    start_on(Arc::new(MemoryStorage::new()), config, tls).await
}

/// Serves `storage` with `config` (and TLS when `tls` is given, whatever `config.tls` says).
pub async fn start_on(
    storage: Arc<dyn Storage>,
    mut config: ServerConfig,
    tls: Option<tls::TlsConfig>,
) -> AuthServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    config.tls = tls.is_some();
    let router = server::router(storage.clone(), config);
    let shutdown = async move {
        let _ = rx.await;
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    match tls {
        Some(tls) => {
            tokio::spawn(tls::serve_tls(listener, tls, router, shutdown));
        }
        None => {
            tokio::spawn(server::serve(listener, router, shutdown));
        }
    }
    AuthServer {
        host: addr.to_string(),
        base: format!("{scheme}://{addr}"),
        storage,
        shutdown: Some(tx),
    }
}

/// A client for `host` with these credentials (or anonymous), TLS verification off.
pub fn client(host: &str, creds: Option<(&str, &str)>) -> RegistryClient {
    let mut opts = ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    };
    if let Some((u, p)) = creds {
        opts.credentials.insert(
            host.to_string(),
            Credentials {
                username: u.into(),
                password: p.into(),
            },
        );
    }
    RegistryClient::new(opts).unwrap()
}

/// A one-layer image (an empty tar layer, its config and manifest).
pub struct TestImage {
    /// The layer blob.
    pub layer: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The manifest.
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// An image whose config carries `label`, so different tests get different digests.
    pub fn new(label: &str) -> Self {
        let layer = vec![0u8; 1024];
        let diff_id = Digest::sha256_of(&layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"test":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            Digest::sha256_of(&config),
            config.len(),
            diff_id,
            layer.len()
        )
        .into_bytes();
        TestImage {
            layer,
            config,
            manifest,
        }
    }

    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    /// Pushes the blobs and the manifest as `repo:tag` with `client`.
    pub async fn push(
        &self,
        client: &RegistryClient,
        host: &str,
        repo: &str,
        tag: &str,
    ) -> Result<Digest, registry::client::ClientError> {
        for blob in [&self.layer, &self.config] {
            client
                .push_blob(
                    host,
                    repo,
                    &Digest::sha256_of(blob),
                    blob.len() as u64,
                    BlobSource::Bytes(Bytes::from(blob.clone())),
                    None,
                )
                .await?;
        }
        client
            .put_manifest(
                host,
                repo,
                tag,
                Bytes::from(self.manifest.clone()),
                OCI_MANIFEST,
            )
            .await
    }
}

/// The path of `tool`, or a test failure naming it.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not installed; this test needs it (apt-get install -y {tool})")
        })
}

/// Runs `tool args` off the async threads and returns its output. `REGISTRY_AUTH_FILE` points at an empty
/// credentials file of its own, so stored credentials of the machine never leak into a test.
pub async fn run(tool: &str, args: Vec<String>) -> Output {
    let bin = require_tool(tool);
    tokio::task::spawn_blocking(move || {
        let auth = tempfile::tempdir()?;
        let file = auth.path().join("auth.json");
        std::fs::write(&file, "{}")?;
        Command::new(bin)
            .args(&args)
            .env("REGISTRY_AUTH_FILE", &file)
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
}

/// Runs `tool args`, failing the test with its stderr when it fails; returns stdout.
pub async fn run_ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args.iter().map(|s| s.to_string()).collect()).await;
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 signed by it (`server.crt`, `server.key`) in
/// `dir`, made with openssl.
pub fn make_certificates(dir: &Path) {
    require_tool("openssl");
    let p = |name: &str| dir.join(name).display().to_string();
    let ext = dir.join("san.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: Vec<Vec<String>> = vec![
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.crt"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        vec![
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("san.ext"),
            "-out",
            &p("server.crt"),
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    ];
    for args in steps {
        openssl(&args);
    }
}

/// A client certificate `NAME.cert` with its key `NAME.key` in `dir`, signed by the CA [`make_certificates`]
/// made there (`ca.crt`, `ca.key`), for mutual TLS; made with openssl.
pub fn make_client_certificate(dir: &Path, name: &str) {
    require_tool("openssl");
    let p = |file: String| dir.join(file).display().to_string();
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let (key, csr, cert, ext) = (
        p(format!("{name}.key")),
        p(format!("{name}.csr")),
        p(format!("{name}.cert")),
        ext.display().to_string(),
    );
    let (ca, ca_key) = (p("ca.crt".into()), p("ca.key".into()));
    let subject = format!("/CN={name}");
    let steps: [Vec<&str>; 2] = [
        vec![
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject, "-keyout", &key, "-out",
            &csr,
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    ];
    for args in steps {
        openssl(&args);
    }
}

/// Runs `openssl ARGS`, failing the test with its stderr when it fails.
fn openssl<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
