//! A pull-through cache (`sealos registry serve ... --proxy UPSTREAM`): [`ProxyStorage`] wraps the registry's
//! [`Storage`] so that a manifest or blob of a proxied repository that is not stored is fetched from its
//! upstream through our [`RegistryClient`] (credentials, `registries.conf` mirrors, `certs.d` TLS, retries),
//! verified, stored and served. The server needs no change: it asks storage, and storage fetches.
//!
//! # Behaviour
//! - **Which repositories.** [`Upstreams`] maps repository prefixes to upstream registries (longest prefix
//!   wins); a repository no prefix matches is an ordinary local one.
//! - **Blobs** are fetched once per digest however many clients ask at the same time (single flight). The
//!   first bytes reach every waiting client while the download runs (they read a spool file behind it), but
//!   the last byte only after the digest is verified. The verified spool then enters the store through an
//!   upload session, whose commit checks the digest again before the blob becomes visible.
//! - **Tags** are resolved upstream with a `HEAD` and then trusted for [`ProxyOptions::tag_ttl`]; after that,
//!   one `HEAD` re-checks them (a `GET` only when the digest changed). A digest never needs re-checking. When
//!   the upstream cannot be reached, a cached tag is served stale (with a warning).
//! - **Size.** With [`ProxyOptions::max_size`], least recently used whole images are evicted after each fetch
//!   until the cache fits; an image whose blob is being served, the image used last, and any digest another
//!   kept image references are never removed. The bookkeeping lives in memory; [`ProxyStorage::adopt`] reads
//!   back what an earlier run stored.
//! - **Writes** to a proxied repository (blob uploads, mounts into it, manifest pushes, tags, deletes) are
//!   refused with `DENIED`, naming the upstream.
//!
//! # How the server's blob requests find the upstream
//! [`Storage::blob_size`] and [`Storage::read_blob`] name no repository. The server asks
//! [`Storage::has_layer`] (which does) first or alongside them, so `has_layer` of a proxied repository notes
//! the repository as the place to fetch that digest from before it awaits anything; the other two use that
//! note when the blob is not stored.

mod flight;
mod index;
mod upstream;

pub use upstream::{Source, Upstream, UpstreamError, Upstreams};

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use formats::digest::Digest;
use formats::manifest::RawManifest;
use futures_util::{FutureExt, StreamExt};

use crate::client::{DEFAULT_MANIFEST_ACCEPT, FetchedManifest, RegistryClient};
use crate::storage::{
    BlobReader, ByteRange, ByteStream, MANIFEST_LIMIT, Referrer, Result, Storage, StorageError,
    UploadStatus,
};
use flight::{Flight, SingleFlight};
use index::CacheIndex;

/// How long a tag is trusted before it is checked upstream again, by default.
pub const DEFAULT_TAG_TTL: Duration = Duration::from_secs(5 * 60);

/// Settings of a pull-through cache.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Which repositories come from which upstream.
    pub upstreams: Upstreams,
    /// How long a tag resolved upstream is trusted before a `HEAD` checks it again.
    pub tag_ttl: Duration,
    /// The most bytes the cache keeps (`None`: unbounded); past it, least recently used images go.
    pub max_size: Option<u64>,
    /// A directory for the unnamed spool files of downloads in progress (they hold a blob while it streams
    /// to its first clients; each disappears with its last reader).
    pub spool_dir: PathBuf,
}

/// Where a blob to serve comes from.
#[derive(Clone)]
enum Start {
    /// Stored already.
    Local,
    /// Downloading now.
    Remote(Arc<Flight>),
    /// The upstream does not have it.
    Missing,
}

/// A [`Storage`] that fills itself from upstream registries; see the module docs.
pub struct ProxyStorage {
    proxy: Arc<Proxy>,
}

struct Proxy {
    inner: Arc<dyn Storage>,
    client: RegistryClient,
    options: ProxyOptions,
    /// When each `(repository, tag)` was last checked upstream.
    tags_checked: Mutex<HashMap<(String, String), Instant>>,
    /// Blob sizes the manifests we fetched announced (a blob download needs its size up front).
    sizes: Mutex<HashMap<Digest, u64>>,
    /// The proxied repository that last asked for each digest (see the module docs).
    wanted_in: Mutex<HashMap<Digest, String>>,
    /// Downloads in progress.
    downloads: Mutex<HashMap<Digest, Arc<Flight>>>,
    starts: SingleFlight<Digest, std::result::Result<Start, Arc<str>>>,
    manifests: SingleFlight<(String, String), std::result::Result<Option<Digest>, Arc<str>>>,
    index: Mutex<CacheIndex>,
    /// Readers of each digest now (an image with one is in use).
    readers: Mutex<HashMap<Digest, usize>>,
    /// One eviction pass at a time.
    evicting: tokio::sync::Mutex<()>,
}

/// Most digests remembered as wanted, or with the size a manifest announced, before the notes are dropped
/// (they are only needed until the blob is fetched).
const REMEMBERED_CAP: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An upstream failure as a storage error (500 with the client's message).
fn upstream_error(what: String, why: &str) -> StorageError {
    StorageError::Io {
        op: "fetching from the upstream registry",
        path: what,
        source: io::Error::other(why.to_string()),
    }
}

/// Marks a digest as being read while alive.
struct ReadGuard {
    proxy: Arc<Proxy>,
    digest: Digest,
}

impl ReadGuard {
    fn new(proxy: &Arc<Proxy>, digest: &Digest) -> ReadGuard {
        *lock(&proxy.readers).entry(digest.clone()).or_default() += 1;
        ReadGuard {
            proxy: proxy.clone(),
            digest: digest.clone(),
        }
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let mut readers = lock(&self.proxy.readers);
        if let Some(n) = readers.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                readers.remove(&self.digest);
            }
        }
    }
}

/// `stream` holding `guard` until it is dropped.
fn guarded(stream: ByteStream, guard: ReadGuard) -> ByteStream {
    Box::pin(stream.map(move |chunk| {
        let _held = &guard;
        chunk
    }))
}

impl ProxyStorage {
    /// A cache over `inner` fetching through `client` as `options` say.
    pub fn new(inner: Arc<dyn Storage>, client: RegistryClient, options: ProxyOptions) -> Self {
        ProxyStorage {
            proxy: Arc::new(Proxy {
                inner,
                client,
                options,
                tags_checked: Mutex::new(HashMap::new()),
                sizes: Mutex::new(HashMap::new()),
                wanted_in: Mutex::new(HashMap::new()),
                downloads: Mutex::new(HashMap::new()),
                starts: SingleFlight::new(),
                manifests: SingleFlight::new(),
                index: Mutex::new(CacheIndex::default()),
                readers: Mutex::new(HashMap::new()),
                evicting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Reads what an earlier run cached (every manifest of a proxied repository and the blobs it references)
    /// into the size bookkeeping, as least recently used; then evicts down to the bound. Returns the bytes
    /// the cache holds.
    pub async fn adopt(&self) -> Result<u64> {
        let p = &self.proxy;
        for repo in p.inner.list_repositories().await? {
            if p.options.upstreams.source_of(&repo).is_none() {
                continue;
            }
            for manifest in p.inner.list_revisions(&repo).await? {
                let bytes = match p.inner.read_blob_bytes(&manifest, MANIFEST_LIMIT).await {
                    Ok(b) => b,
                    Err(StorageError::BlobUnknown(_) | StorageError::TooLarge { .. }) => continue,
                    Err(e) => return Err(e),
                };
                let refs = references(&bytes, None);
                let mut present = Vec::new();
                for (d, _) in &refs {
                    if let Some(size) = p.inner.blob_size(d).await?
                        && p.inner.has_layer(&repo, d).await?
                    {
                        present.push((d.clone(), size));
                    }
                }
                let mut index = lock(&p.index);
                index.add_image(
                    &repo,
                    &manifest,
                    bytes.len() as u64,
                    refs.into_iter().map(|(d, _)| d).collect(),
                    false,
                );
                for (d, size) in present {
                    index.add_blob(&repo, &d, size);
                }
            }
        }
        p.evict().await;
        Ok(self.cached_bytes())
    }

    /// The bytes the cache holds now, as its bookkeeping counts them.
    pub fn cached_bytes(&self) -> u64 {
        lock(&self.proxy.index).total()
    }
}

/// The digests (and sizes) manifest `bytes` references: config and layers, or an index's children.
fn references(bytes: &Bytes, media_type: Option<&str>) -> Vec<(Digest, u64)> {
    RawManifest::from_bytes(bytes.to_vec(), media_type)
        .map(|m| {
            m.referenced_blobs()
                .into_iter()
                .map(|d| (d.digest.clone(), d.size))
                .collect()
        })
        .unwrap_or_default()
}

impl Proxy {
    fn source(&self, repo: &str) -> Option<Source> {
        self.options.upstreams.source_of(repo)
    }

    /// The refusal of a write to proxied `repo`, or `Ok` for a local repository.
    fn writable(&self, repo: &str) -> Result<()> {
        match self.source(repo) {
            Some(src) => Err(StorageError::Denied(format!(
                "repository `{repo}` is a pull-through cache of `{}/{}`: it cannot be pushed to or changed \
                 here; push to the upstream, or to a repository outside the proxied prefixes",
                src.registry, src.repository
            ))),
            None => Ok(()),
        }
    }

    /// Notes that proxied `repo` asked for `digest` (synchronously: see the module docs).
    fn note_wanted(&self, repo: &str, digest: &Digest) {
        let mut wanted = lock(&self.wanted_in);
        if wanted.len() >= REMEMBERED_CAP {
            wanted.clear();
        }
        wanted.insert(digest.clone(), repo.to_string());
    }

    fn tag_is_fresh(&self, repo: &str, tag: &str) -> bool {
        lock(&self.tags_checked)
            .get(&(repo.to_string(), tag.to_string()))
            .is_some_and(|at| at.elapsed() < self.options.tag_ttl)
    }

    /// Resolves `reference` (tag or digest) of proxied `repo` upstream and makes sure its manifest is stored;
    /// `None` when the upstream does not have it. One run per `(repo, reference)` at a time.
    async fn fetch_manifest(
        self: &Arc<Self>,
        repo: &str,
        reference: &str,
    ) -> std::result::Result<Option<Digest>, Arc<str>> {
        let me = self.clone();
        let (r, rf) = (repo.to_string(), reference.to_string());
        self.manifests
            .run((r.clone(), rf.clone()), move || {
                async move { me.fetch_manifest_once(&r, &rf).await }.boxed()
            })
            .await
    }

    async fn fetch_manifest_once(
        &self,
        repo: &str,
        reference: &str,
    ) -> std::result::Result<Option<Digest>, Arc<str>> {
        let src = self
            .source(repo)
            .ok_or_else(|| Arc::<str>::from(format!("`{repo}` is not proxied")))?;
        let failed = |e: &dyn std::fmt::Display| Arc::<str>::from(e.to_string());
        let by_digest = reference.contains(':');
        let digest = if by_digest {
            Digest::parse(reference).map_err(|e| failed(&e))?
        } else {
            let head = self
                .client
                .head_manifest(
                    &src.registry,
                    &src.repository,
                    reference,
                    DEFAULT_MANIFEST_ACCEPT,
                )
                .await
                .map_err(|e| failed(&e))?;
            match head {
                None => return Ok(None),
                Some(h) => match h.digest {
                    Some(d) => d,
                    // No Docker-Content-Digest: the GET by tag tells it.
                    None => {
                        let m = match self.get_upstream(&src, reference).await? {
                            Some(m) => m,
                            None => return Ok(None),
                        };
                        self.store_manifest(repo, &m)
                            .await
                            .map_err(|e| failed(&e))?;
                        m.digest
                    }
                },
            }
        };
        let stored = self
            .inner
            .has_revision(repo, &digest)
            .await
            .map_err(|e| failed(&e))?
            && self
                .inner
                .blob_size(&digest)
                .await
                .map_err(|e| failed(&e))?
                .is_some();
        if stored {
            lock(&self.index).touch_image(repo, &digest);
        } else {
            let Some(m) = self.get_upstream(&src, &digest.to_string()).await? else {
                return Ok(None);
            };
            self.store_manifest(repo, &m)
                .await
                .map_err(|e| failed(&e))?;
        }
        if !by_digest {
            self.inner
                .set_tag(repo, reference, &digest)
                .await
                .map_err(|e| failed(&e))?;
            lock(&self.tags_checked)
                .insert((repo.to_string(), reference.to_string()), Instant::now());
        }
        self.evict().await;
        Ok(Some(digest))
    }

    /// GETs a manifest upstream; `None` on 404.
    async fn get_upstream(
        &self,
        src: &Source,
        reference: &str,
    ) -> std::result::Result<Option<FetchedManifest>, Arc<str>> {
        match self
            .client
            .get_manifest(
                &src.registry,
                &src.repository,
                reference,
                DEFAULT_MANIFEST_ACCEPT,
            )
            .await
        {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string().into()),
        }
    }

    /// Stores a verified upstream manifest as a revision of `repo` and records it as a cached image.
    async fn store_manifest(&self, repo: &str, m: &FetchedManifest) -> Result<()> {
        let refs = references(&m.bytes, Some(&m.media_type));
        {
            let mut sizes = lock(&self.sizes);
            if sizes.len() >= REMEMBERED_CAP {
                sizes.clear();
            }
            for (d, size) in &refs {
                sizes.insert(d.clone(), *size);
            }
        }
        self.inner
            .put_blob_bytes(&m.digest, m.bytes.clone())
            .await?;
        self.inner.link_revision(repo, &m.digest).await?;
        lock(&self.index).add_image(
            repo,
            &m.digest,
            m.bytes.len() as u64,
            refs.into_iter().map(|(d, _)| d).collect(),
            true,
        );
        Ok(())
    }

    /// Where blob `digest` of proxied `repo` comes from: stored, downloading, or missing upstream. Starts the
    /// download when none runs; links the blob into `repo` (now or once stored).
    async fn start_blob(self: &Arc<Self>, repo: &str, digest: &Digest) -> Result<Start> {
        let running = lock(&self.downloads).get(digest).cloned();
        let start = match running {
            Some(f) => Start::Remote(f),
            None => {
                let me = self.clone();
                let (r, d) = (repo.to_string(), digest.clone());
                self.starts
                    .run(digest.clone(), move || {
                        async move { me.begin_download(&r, &d).await }.boxed()
                    })
                    .await
                    .map_err(|why| upstream_error(format!("blob {digest} for `{repo}`"), &why))?
            }
        };
        let link_now = match &start {
            Start::Local => true,
            Start::Remote(f) => !f.link_later(repo),
            Start::Missing => false,
        };
        if link_now {
            self.inner.link_layer(repo, digest).await?;
            lock(&self.index).link_if_cached(repo, digest);
        }
        Ok(start)
    }

    async fn begin_download(
        self: Arc<Self>,
        repo: &str,
        digest: &Digest,
    ) -> std::result::Result<Start, Arc<str>> {
        let failed = |e: &dyn std::fmt::Display| Arc::<str>::from(e.to_string());
        if self
            .inner
            .blob_size(digest)
            .await
            .map_err(|e| failed(&e))?
            .is_some()
        {
            return Ok(Start::Local);
        }
        let src = self
            .source(repo)
            .ok_or_else(|| Arc::<str>::from(format!("`{repo}` is not proxied")))?;
        let known = lock(&self.sizes).get(digest).copied();
        let size = match known {
            Some(s) => s,
            None => match self
                .client
                .blob_exists(&src.registry, &src.repository, digest)
                .await
                .map_err(|e| failed(&e))?
            {
                Some(s) => s,
                None => return Ok(Start::Missing),
            },
        };
        // The upstream's answer took a while: another download of this digest may have started or been stored
        // meanwhile. Join it, or read the store, instead of fetching the blob a second time.
        if self
            .inner
            .blob_size(digest)
            .await
            .map_err(|e| failed(&e))?
            .is_some()
        {
            return Ok(Start::Local);
        }
        let (flight, writer) = Flight::start(&self.options.spool_dir, size, repo).map_err(|e| {
            failed(&format!(
                "cannot create a spool file in `{}`: {e}",
                self.options.spool_dir.display()
            ))
        })?;
        {
            let mut downloads = lock(&self.downloads);
            if let Some(running) = downloads.get(digest) {
                return Ok(Start::Remote(running.clone()));
            }
            downloads.insert(digest.clone(), flight.clone());
        }
        let me = self.clone();
        let (r, d, f) = (repo.to_string(), digest.clone(), flight.clone());
        tokio::spawn(async move { me.download(src, r, d, f, writer).await });
        Ok(Start::Remote(flight))
    }

    /// Downloads, verifies and stores one blob, then links it and evicts what no longer fits. The store copies the
    /// verified spool (still in the page cache) once the download ends rather than alongside it: on a small
    /// machine a second writer and hasher during the download slows the clients waiting for it (P1's cold pull
    /// measured 0.8 of docker-registry's time this way, 1.15 storing alongside).
    async fn download(
        self: Arc<Self>,
        src: Source,
        repo: String,
        digest: Digest,
        flight: Arc<Flight>,
        mut writer: flight::SpoolWriter,
    ) {
        let fetched = self
            .client
            .fetch_blob_to_writer(
                &src.registry,
                &src.repository,
                &digest,
                Some(flight.size),
                &mut writer,
            )
            .await;
        if let Err(e) = fetched {
            let written = writer.written();
            tracing::warn!(%digest, repository = %repo, error = %e, written, "upstream blob download failed");
            writer.finish(Err(e.to_string()));
            lock(&self.downloads).remove(&digest);
            return;
        }
        writer.finish(Ok(()));
        match self.store_spool(&repo, &digest, &flight).await {
            Ok(()) => {
                for r in flight.take_repos() {
                    if let Err(e) = self.inner.link_layer(&r, &digest).await {
                        tracing::warn!(%digest, repository = %r, error = %e, "cannot link a cached blob");
                        continue;
                    }
                    lock(&self.index).add_blob(&r, &digest, flight.size);
                }
            }
            Err(e) => {
                tracing::warn!(%digest, repository = %repo, error = %e, "cannot store a downloaded blob")
            }
        }
        lock(&self.downloads).remove(&digest);
        self.evict().await;
    }

    /// Puts the verified spool of `flight` into the store through an upload session (whose commit checks the
    /// digest once more).
    async fn store_spool(&self, repo: &str, digest: &Digest, flight: &Arc<Flight>) -> Result<()> {
        let session = self.inner.create_upload(repo).await?;
        let stored = async {
            self.inner
                .append_upload(
                    repo,
                    &session.id,
                    Some(0),
                    Some(flight.size),
                    flight.spool_stream(),
                )
                .await?;
            self.inner.finish_upload(repo, &session.id, digest).await
        }
        .await;
        if stored.is_err() {
            let _ignored = self.inner.cancel_upload(repo, &session.id).await;
        }
        stored.map(|_| ())
    }

    /// The download serving `digest` when it is not stored: running, or started for the repository that
    /// asked for it.
    async fn flight_for(self: &Arc<Self>, digest: &Digest) -> Result<Option<Start>> {
        if let Some(f) = lock(&self.downloads).get(digest).cloned() {
            return Ok(Some(Start::Remote(f)));
        }
        let wanted = lock(&self.wanted_in).get(digest).cloned();
        match wanted {
            Some(repo) => self.start_blob(&repo, digest).await.map(Some),
            None => Ok(None),
        }
    }

    /// Opens `digest` as `open` does in the store, else from its download (ranges wait for the download's
    /// end and read the store).
    async fn open(
        self: &Arc<Self>,
        digest: &Digest,
        range: Option<ByteRange>,
        send: bool,
    ) -> Result<BlobReader> {
        let local = |me: Arc<Self>| async move {
            let reader = if send {
                me.inner.send_blob(digest, range).await
            } else {
                me.inner.read_blob(digest, range).await
            }?;
            let guard = ReadGuard::new(&me, digest);
            Ok::<_, StorageError>(BlobReader {
                stream: guarded(reader.stream, guard),
                ..reader
            })
        };
        match local(self.clone()).await {
            Err(StorageError::BlobUnknown(_)) => {}
            other => return other,
        }
        let flight = match self.flight_for(digest).await? {
            Some(Start::Remote(f)) => f,
            Some(Start::Local) => return local(self.clone()).await,
            Some(Start::Missing) | None => return Err(StorageError::BlobUnknown(digest.clone())),
        };
        if range.is_some() {
            flight
                .finished()
                .await
                .map_err(|why| upstream_error(format!("blob {digest}"), &why))?;
            return local(self.clone()).await;
        }
        Ok(BlobReader {
            size: flight.size,
            range: None,
            stream: flight::tail(flight, ReadGuard::new(self, digest)),
        })
    }

    /// True when one of `local_repos` (those with manifests) links `digest` as a layer or a manifest (or the
    /// check fails: keep it). Links made through this process are also known without a scan
    /// ([`CacheIndex::mark_local`]).
    async fn used_locally(&self, local_repos: &[String], digest: &Digest) -> bool {
        for repo in local_repos {
            let layer = self.inner.has_layer(repo, digest).await;
            let revision = self.inner.has_revision(repo, digest).await;
            if !matches!((layer, revision), (Ok(false), Ok(false))) {
                return true;
            }
        }
        false
    }

    /// Evicts least recently used images until the cache fits [`ProxyOptions::max_size`].
    async fn evict(&self) {
        let Some(max) = self.options.max_size else {
            return;
        };
        let _one = self.evicting.lock().await;
        let removals = {
            let readers = lock(&self.readers).clone();
            let downloads: Vec<Digest> = lock(&self.downloads).keys().cloned().collect();
            let in_use = |d: &Digest| readers.contains_key(d) || downloads.contains(d);
            lock(&self.index).evict_to(max, &in_use)
        };
        if removals.is_empty() {
            return;
        }
        // A digest a local (not proxied) repository also uses keeps its data: it is not the cache's alone.
        let local_repos: Vec<String> = match self.inner.list_repositories().await {
            Ok(repos) => repos
                .into_iter()
                .filter(|r| self.source(r).is_none())
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list repositories; nothing evicted");
                return;
            }
        };
        for r in removals {
            let shared = r.keep_data || self.used_locally(&local_repos, &r.digest).await;
            for repo in &r.revision_in {
                lock(&self.tags_checked).retain(|(rp, _), _| rp != repo);
                match self.inner.unlink_revision(repo, &r.digest).await {
                    Ok(()) | Err(StorageError::ManifestUnknown(_)) => {}
                    Err(e) => {
                        tracing::warn!(digest = %r.digest, repository = %repo, error = %e, "evicting a manifest")
                    }
                }
            }
            for repo in &r.layer_in {
                match self.inner.unlink_layer(repo, &r.digest).await {
                    Ok(()) | Err(StorageError::BlobUnknown(_)) => {}
                    Err(e) => {
                        tracing::warn!(digest = %r.digest, repository = %repo, error = %e, "evicting a blob link")
                    }
                }
            }
            if shared {
                continue;
            }
            match self.inner.remove_blob(&r.digest).await {
                Ok(()) | Err(StorageError::BlobUnknown(_)) => {
                    tracing::info!(digest = %r.digest, "evicted from the pull-through cache")
                }
                Err(e) => tracing::warn!(digest = %r.digest, error = %e, "evicting a blob"),
            }
        }
    }
}

#[async_trait]
impl Storage for ProxyStorage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let p = &self.proxy;
        if let Some(size) = p.inner.blob_size(digest).await? {
            return Ok(Some(size));
        }
        match p.flight_for(digest).await? {
            Some(Start::Remote(f)) => Ok(Some(f.size)),
            Some(Start::Local) => p.inner.blob_size(digest).await,
            Some(Start::Missing) | None => Ok(None),
        }
    }

    async fn blob_modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        self.proxy.inner.blob_modified(digest).await
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.proxy.open(digest, range, false).await
    }

    async fn send_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.proxy.open(digest, range, true).await
    }

    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        // Only a stored blob may be fetched from the backend directly.
        if self.proxy.inner.blob_size(digest).await?.is_none() {
            return Ok(None);
        }
        self.proxy.inner.blob_redirect(digest).await
    }

    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.proxy.inner.put_blob_bytes(digest, bytes).await
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>> {
        self.proxy.inner.list_blobs().await
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<()> {
        self.proxy.inner.remove_blob(digest).await
    }

    async fn create_upload(&self, repo: &str) -> Result<UploadStatus> {
        self.proxy.writable(repo)?;
        self.proxy.inner.create_upload(repo).await
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        self.proxy.inner.upload_status(repo, id).await
    }

    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.proxy
            .inner
            .append_upload(repo, id, offset, expected_len, body)
            .await
    }

    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        self.proxy.inner.finish_upload(repo, id, digest).await
    }

    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()> {
        self.proxy.inner.cancel_upload(repo, id).await
    }

    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>> {
        self.proxy.inner.list_uploads().await
    }

    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.link_layer(repo, digest).await?;
        lock(&self.proxy.index).mark_local(digest);
        Ok(())
    }

    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let p = &self.proxy;
        if p.source(repo).is_none() {
            return p.inner.has_layer(repo, digest).await;
        }
        // Before any await: blob_size or read_blob of the same request may be polled next.
        p.note_wanted(repo, digest);
        if p.inner.has_layer(repo, digest).await? && p.inner.blob_size(digest).await?.is_some() {
            return Ok(true);
        }
        Ok(!matches!(p.start_blob(repo, digest).await?, Start::Missing))
    }

    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.unlink_layer(repo, digest).await
    }

    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>> {
        self.proxy.inner.list_layers(repo).await
    }

    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.link_revision(repo, digest).await?;
        lock(&self.proxy.index).mark_local(digest);
        Ok(())
    }

    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        let p = &self.proxy;
        if p.inner.has_revision(repo, digest).await? {
            lock(&p.index).touch_image(repo, digest);
            return Ok(true);
        }
        if p.source(repo).is_none() {
            return Ok(false);
        }
        match p.fetch_manifest(repo, &digest.to_string()).await {
            Ok(found) => Ok(found.is_some()),
            Err(why) => Err(upstream_error(
                format!("manifest {digest} of `{repo}`"),
                &why,
            )),
        }
    }

    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.unlink_revision(repo, digest).await
    }

    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>> {
        self.proxy.inner.list_revisions(repo).await
    }

    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.set_tag(repo, tag, digest).await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let p = &self.proxy;
        if p.source(repo).is_none() {
            return p.inner.resolve_tag(repo, tag).await;
        }
        if p.tag_is_fresh(repo, tag)
            && let Some(d) = p.inner.resolve_tag(repo, tag).await?
        {
            lock(&p.index).touch_image(repo, &d);
            return Ok(Some(d));
        }
        match p.fetch_manifest(repo, tag).await {
            Ok(found) => Ok(found),
            Err(why) => match p.inner.resolve_tag(repo, tag).await? {
                Some(d) => {
                    tracing::warn!(repository = %repo, tag, error = %why, "upstream unreachable; serving the cached tag");
                    // Asked again within the TTL, the cached tag answers at once instead of retrying upstream.
                    lock(&p.tags_checked)
                        .insert((repo.to_string(), tag.to_string()), Instant::now());
                    Ok(Some(d))
                }
                None => Err(upstream_error(format!("tag `{tag}` of `{repo}`"), &why)),
            },
        }
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        self.proxy.writable(repo)?;
        self.proxy.inner.delete_tag(repo, tag).await
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        self.proxy.inner.list_tags(repo).await
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        self.proxy.inner.list_repositories().await
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        self.proxy.inner.repository_exists(repo).await
    }

    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        self.proxy.inner.referrers(repo, subject).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientOptions;
    use crate::storage::{FsStorage, mapped};

    /// A cache over a filesystem store whose only upstream cannot be reached (nothing listens on port 1).
    fn unreachable_cache(dir: &std::path::Path) -> (ProxyStorage, Arc<FsStorage>) {
        let store = Arc::new(FsStorage::new(dir.join("data")));
        let client = RegistryClient::new(ClientOptions {
            insecure_loopback: true,
            ..ClientOptions::default()
        })
        .unwrap();
        let options = ProxyOptions {
            upstreams: Upstreams::single(Upstream::parse_url("http://127.0.0.1:1").unwrap()),
            tag_ttl: DEFAULT_TAG_TTL,
            max_size: None,
            spool_dir: dir.join("spool"),
        };
        (ProxyStorage::new(store.clone(), client, options), store)
    }

    #[tokio::test]
    async fn a_cached_blob_is_served_as_mapped_file_views_without_the_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let (proxy, store) = unreachable_cache(dir.path());
        let blob = Bytes::from(
            (0..4u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect::<Vec<u8>>(),
        );
        let digest = Digest::sha256_of(&blob);
        store.put_blob_bytes(&digest, blob.clone()).await.unwrap();
        store.link_layer("library/app", &digest).await.unwrap();

        // As the server asks for a blob GET: has_layer and blob_size, then send_blob.
        assert!(proxy.has_layer("library/app", &digest).await.unwrap());
        assert_eq!(
            proxy.blob_size(&digest).await.unwrap(),
            Some(blob.len() as u64)
        );
        let reader = proxy.send_blob(&digest, None).await.unwrap();
        assert_eq!(reader.size, blob.len() as u64);
        let chunks: Vec<Bytes> = reader.stream.map(|c| c.unwrap()).collect::<Vec<_>>().await;
        assert!(
            chunks.iter().all(|c| mapped::lookup(c).is_some()),
            "every chunk of a cached blob should be a view of the stored file, so the server sends it with \
             sendfile(2)"
        );
        assert_eq!(chunks.concat(), blob.to_vec());
        // The guard of the finished read is gone: the image is no longer counted as in use.
        assert!(lock(&proxy.proxy.readers).is_empty());
    }
}
