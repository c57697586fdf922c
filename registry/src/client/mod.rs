//! The OCI Distribution client: pull and push manifests and blobs, list tags, catalogs and referrers, with
//! credentials, token auth, `registries.conf` mirrors, retries and resumable downloads.
//!
//! # Why our own client on `reqwest` rather than `oci-client`
//!
//! - **Byte-exact manifests.** Digests are over the exact bytes a registry served; a client that decodes
//!   manifests into structs and re-serialises them changes the digest of anything it did not write itself.
//!   Here a manifest is moved as the bytes received, and only inspected through a small JSON view.
//! - **Streaming blobs.** Blobs go straight from the socket to a [`formats::fsutil::StagedFile`] (or to an
//!   upload body) and are hashed on the way; nothing holds a whole blob in memory, so a 4 GiB layer costs a
//!   few hundred KiB.
//! - **Range resume.** A body cut off mid-way is continued with `Range: bytes=N-` rather than started again;
//!   `oci-client` has no resume.
//! - **Mirrors and policy.** `registries.conf` mirrors, `location` rewrites, `blocked`/`insecure` entries,
//!   per-host concurrency limits and retry policy need control over every request, which a higher-level
//!   crate hides.
//!
//! The client talks in plain names (`host`, `repository`, `reference`) and [`Digest`]s; callers that hold a
//! parsed image reference pass its parts.
//!
//! # Behaviour
//!
//! - **Verification.** A manifest fetched by digest must hash to it; one fetched by tag must match
//!   `Docker-Content-Digest` when sent. Blobs are staged beside their destination and renamed into place
//!   only after digest and size match; a blob never grows past its expected size on disk.
//! - **Scheme.** `https` with verified TLS, always, unless the registry is `insecure` in `registries.conf`,
//!   [`ClientOptions::tls_verify`] is off, or it is a loopback host and [`ClientOptions::insecure_loopback`]
//!   is on: then `https` without verification first, and plain `http` only when the host answers plain
//!   HTTP (decided once per host). `HTTP(S)_PROXY`/`NO_PROXY` are honoured (reqwest's default).
//! - **Auth.** Credentials from [`ClientOptions::credentials`], else the [`CredentialFiles`] (docker
//!   `config.json`, containers `auth.json`, credential helpers, identity tokens), else anonymous. A host's
//!   first challenge (`Basic` or `Bearer`) is remembered so later requests authenticate up front; bearer
//!   tokens are cached per host and scope set until shortly before they expire.
//! - **Retries.** Transient network errors (timeouts, resets, cut bodies; not a refused connection, a DNS
//!   failure or a failed TLS handshake, which fail at once), 5xx and 429 are retried up to [`RetryPolicy::max_attempts`] with
//!   doubling backoff; `Retry-After` (seconds) wins over backoff, capped at
//!   [`RetryPolicy::max_retry_after`]. A cut blob body is resumed with `Range: bytes=N-` (up to
//!   [`RetryPolicy::max_resumes`] times); a cut manifest body is fetched again; a failed upload from a
//!   replayable source starts a new upload session.
//! - **Limits.** At most [`ClientOptions::max_concurrent_per_host`] requests per host are in flight; a slot
//!   is held until the response body is dropped.
//! - **Mirrors.** Pulls try `registries.conf` mirrors in order, then the (rewritten) registry; a mirror
//!   that fails or serves bad content is skipped. Pushes, tags and catalogs go to the registry itself.
//! - **Errors.** A 401 is [`ClientError::Unauthorized`], saying "not logged in" when no credentials were
//!   sent and "rejected our credentials" when they were (a token server's JSON reduced to its message);
//!   an error answer lists every entry of its `errors` (code, message, short detail); a refused
//!   connection is one short line naming `host:port`.
//! - **Logs.** Each request (method, URL without user information) and its response status or failure
//!   is logged at `debug` level (target `registry::client`): `sealos --debug` shows them.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), registry::client::ClientError> {
//! use registry::client::{ClientOptions, RegistryClient};
//! let client = RegistryClient::new(ClientOptions::from_env()?)?;
//! let m = client
//!     .get_manifest("docker.io", "library/busybox", "latest", registry::client::DEFAULT_MANIFEST_ACCEPT)
//!     .await?;
//! println!("{} {}", m.digest, m.media_type);
//! # Ok(()) }
//! ```

mod auth;
mod blobs;
mod certs;
mod conf;
mod error;
mod fetch_url;
mod manifests;
mod referrers_tag;
pub use referrers_tag::is_referrers_tag;
mod transport;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{
    Challenge, CredentialFiles, Credentials, IDENTITY_TOKEN_USER, Logout, Token, default_auth_file,
    parse_challenge, parse_token_response, remove_credentials, store_credentials,
};
pub use blobs::{BlobSource, ChunkStream, PushOutcome};
pub use certs::{CertDirs, HostTls};
pub use conf::{Endpoint, MirrorEntry, RegistriesConf, RegistryEntry, SYSTEM_REGISTRIES_CONF};
pub use error::ClientError;
pub use fetch_url::UrlBody;
pub use manifests::{
    DEFAULT_MANIFEST_ACCEPT, FetchedManifest, ManifestHead, Referrer, ResolveError,
};

use formats::digest::Digest;

/// The canonical name of Docker Hub.
pub const DOCKER_HUB: &str = formats::reference::DEFAULT_REGISTRY;
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Normalises a registry host name: the one rule, [`formats::reference::normalize_registry_host`].
pub use formats::reference::normalize_registry_host as normalize_host;

/// The host to send API requests to for a (normalised) registry name: `registry-1.docker.io` for Docker Hub.
pub fn api_host(host: &str) -> String {
    let h = normalize_host(host);
    if h == DOCKER_HUB {
        DOCKER_HUB_API.to_string()
    } else {
        h
    }
}

/// True when `host` (`name[:port]`, `[v6]:port`) names this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim();
    let name = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("")
    } else {
        h
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Which way bytes are moving in a [`ProgressEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Downloading from a registry.
    Pull,
    /// Uploading to a registry.
    Push,
}

/// Progress of one blob transfer; sent after every chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// The blob.
    pub digest: Digest,
    /// Bytes transferred so far.
    pub bytes_done: u64,
    /// The blob's size when known.
    pub total: Option<u64>,
    /// Download or upload.
    pub direction: Direction,
}

/// Receives [`ProgressEvent`]s; must be cheap (it is called for every chunk).
pub type ProgressCallback = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// How failed requests are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts computed by backoff.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; longer demands are cut to this.
    pub max_retry_after: Duration,
    /// How many times one blob download may be resumed with a Range request after its body was cut.
    pub max_resumes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            max_resumes: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Everything a [`RegistryClient`] is configured with.
#[derive(Clone)]
pub struct ClientOptions {
    /// Verify TLS certificates and refuse plain HTTP (`--tls-verify`); `false` makes every registry insecure.
    pub tls_verify: bool,
    /// Treat loopback registries (`localhost`, 127.0.0.0/8, `::1`) as insecure, as docker and podman do:
    /// https without verification first, plain http when the host does not speak TLS. Off by default;
    /// the CLI turns it on unless `--tls-verify` is given explicitly.
    pub insecure_loopback: bool,
    /// Extra CA certificates per registry (`--cert-dir`, `certs.d`); empty by default:
    /// [`ClientOptions::from_env`] fills the system roots.
    pub cert_dirs: CertDirs,
    /// Mirrors, rewrites, blocked and insecure registries.
    pub registries_conf: RegistriesConf,
    /// Where stored credentials are looked up (empty by default: [`ClientOptions::from_env`] fills it).
    pub credential_files: CredentialFiles,
    /// Credentials given directly (e.g. `--creds`), by normalised host; they win over stored ones.
    pub credentials: HashMap<String, Credentials>,
    /// Retry policy for every request.
    pub retry: RetryPolicy,
    /// Most requests in flight to one host at a time.
    pub max_concurrent_per_host: usize,
    /// Blobs larger than this are uploaded in chunks (`PATCH`) of `upload_chunk_size`; `None` = always one
    /// `PUT`.
    pub chunked_upload_threshold: Option<u64>,
    /// Chunk size of chunked uploads (each chunk is held in memory once).
    pub upload_chunk_size: u64,
    /// Page size (`n=`) asked for when listing tags and catalogs; `None` lets the registry choose.
    pub list_page_size: Option<u32>,
    /// Receives transfer progress.
    pub progress: Option<ProgressCallback>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (headers or body) before the request fails as timed out
    /// (and is retried as any transient failure): a peer that stops sending hangs nothing forever.
    pub read_timeout: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            tls_verify: true,
            insecure_loopback: false,
            cert_dirs: CertDirs::default(),
            registries_conf: RegistriesConf::default(),
            credential_files: CredentialFiles::default(),
            credentials: HashMap::new(),
            retry: RetryPolicy::default(),
            max_concurrent_per_host: 8,
            chunked_upload_threshold: None,
            upload_chunk_size: 32 * 1024 * 1024,
            list_page_size: None,
            progress: None,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            user_agent: format!("sealos-rs/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("tls_verify", &self.tls_verify)
            .field("insecure_loopback", &self.insecure_loopback)
            .field("cert_dirs", &self.cert_dirs)
            .field("registries_conf", &self.registries_conf.source)
            .field("credential_files", &self.credential_files)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("retry", &self.retry)
            .field("max_concurrent_per_host", &self.max_concurrent_per_host)
            .field("chunked_upload_threshold", &self.chunked_upload_threshold)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The usual setup of a command: the system `registries.conf` and the standard credential files.
    pub fn from_env() -> Result<Self, ClientError> {
        Ok(ClientOptions {
            registries_conf: RegistriesConf::load_system()?,
            credential_files: CredentialFiles::from_env(),
            cert_dirs: CertDirs::system(),
            ..Self::default()
        })
    }

    /// Uses `path` as `registries.conf` instead of the system file (`--registries-conf`).
    pub fn with_registries_conf(mut self, path: PathBuf) -> Result<Self, ClientError> {
        self.registries_conf = RegistriesConf::load(&path)?;
        Ok(self)
    }
}

/// A registry client; cheap to clone and share between tasks (clones share connections, tokens and limits).
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<transport::Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds a client.
    pub fn new(opts: ClientOptions) -> Result<Self, ClientError> {
        Ok(RegistryClient {
            inner: Arc::new(transport::Inner::new(opts)?),
        })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Checks that `host` speaks the registry API (`GET /v2/`) and that our credentials, if any, work.
    pub async fn ping(&self, host: &str) -> Result<(), ClientError> {
        let ep = self.inner.single_endpoint(host, "")?;
        let url = self.inner.url(&ep, "/v2/").await?;
        let sent = self
            .inner
            .send(&ep, &[], reqwest::Method::GET, &url, &|rb| Ok(rb))
            .await?;
        transport::expect_success(sent, "GET", &url)
            .await
            .map(|_| ())
    }

    fn progress(&self, digest: &Digest, bytes_done: u64, total: Option<u64>, direction: Direction) {
        if let Some(cb) = &self.inner.opts.progress {
            cb(ProgressEvent {
                digest: digest.clone(),
                bytes_done,
                total,
                direction,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_aliases_normalise_to_one_name() {
        for h in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "Docker.IO",
        ] {
            assert_eq!(normalize_host(h), "docker.io");
            assert_eq!(api_host(h), "registry-1.docker.io");
        }
        assert_eq!(normalize_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn loopback_hosts_are_localhost_127_and_ipv6_one() {
        for h in [
            "localhost",
            "localhost:5000",
            "LOCALHOST:1",
            "127.0.0.1",
            "127.0.0.1:5000",
            "127.1.2.3:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[::2]:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        let got: Vec<_> = (1..=4).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 350, 350]);
    }
}
