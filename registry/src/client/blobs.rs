//! Blobs: existence checks, streaming downloads that resume with `Range` and are verified before they are
//! kept, and uploads (HEAD first, cross-repository mount, monolithic `PUT` or chunked `PATCH`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use formats::digest::{Digest, DigestError, Hasher};
use formats::fsutil::{StageError, StagedFile};
use futures_util::{Stream, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::conf::Endpoint;
use super::manifests::resolve;
use super::transport::{Sent, expect_success, registry_error, repo_scope};
use super::{ClientError, Direction, RegistryClient};

/// Where the bytes of a blob to upload come from.
pub enum BlobSource {
    /// Bytes in memory (small blobs: configs, manifests' companions).
    Bytes(Bytes),
    /// A file, reopened for each attempt so failed uploads can be retried.
    File(PathBuf),
    /// Any reader; read once, so an upload that fails mid-way cannot be retried.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
    /// Any stream of chunks; read once, like `Reader`.
    Stream(ChunkStream),
    /// The same blob in another repository (of this or another registry): streamed from there straight
    /// into the upload, verified on the way (a mismatch aborts the upload so the registry keeps nothing).
    /// Mounted instead when it is in the same registry.
    Remote {
        /// Registry host of the source.
        host: String,
        /// Repository of the source.
        repository: String,
    },
}

/// A one-shot stream of blob chunks.
pub type ChunkStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            BlobSource::File(p) => write!(f, "File({})", p.display()),
            BlobSource::Reader(_) => write!(f, "Reader"),
            BlobSource::Stream(_) => write!(f, "Stream"),
            BlobSource::Remote { host, repository } => write!(f, "Remote({host}/{repository})"),
        }
    }
}

/// What [`RegistryClient::push_blob`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry already had the blob in the repository; nothing was sent.
    Existed,
    /// The registry linked it from the source repository; nothing was sent.
    Mounted,
    /// The bytes were uploaded.
    Uploaded,
}

const OCTET_STREAM: &str = "application/octet-stream";

fn blob_path(ep: &Endpoint, digest: &Digest) -> String {
    format!("/v2/{}/blobs/{digest}", ep.repository)
}

/// Parses `bytes START-END/TOTAL` and returns START.
fn content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// `rb` asking for the bytes from `from` on (a `Range` header; none when `from` is 0).
fn range_from(rb: reqwest::RequestBuilder, from: u64) -> reqwest::RequestBuilder {
    if from > 0 {
        rb.header(RANGE, format!("bytes={from}-"))
    } else {
        rb
    }
}

/// How many bytes at the start of `resp`'s body, the answer to a request for the bytes from `from` (> 0)
/// on, the caller already has: none for a `206` whose `Content-Range` starts at `from`, all `from` of them
/// for a server that ignored the `Range` and sends the whole blob; a `206` starting elsewhere is an error.
fn already_had(resp: &reqwest::Response, from: u64, url: &str) -> Result<u64, ClientError> {
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        return Ok(from);
    }
    let at = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(content_range_start);
    if at == Some(from) {
        Ok(0)
    } else {
        Err(ClientError::InvalidResponse {
            url: url.to_string(),
            message: format!(
                "asked for bytes from {from} but the registry sent Content-Range {at:?}"
            ),
        })
    }
}

impl RegistryClient {
    /// `HEAD` on a blob: its size when `repository` has it, `None` when not.
    pub async fn blob_exists(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let ep = self.inner.single_endpoint(host, repository)?;
        self.blob_exists_at(&ep, digest, false).await
    }

    async fn blob_exists_at(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        push: bool,
    ) -> Result<Option<u64>, ClientError> {
        let url = self.inner.url(ep, &blob_path(ep, digest)).await?;
        let sent = self
            .inner
            .send(
                ep,
                &[repo_scope(&ep.repository, push)],
                Method::HEAD,
                &url,
                &|rb| Ok(rb),
            )
            .await?;
        if sent.resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let sent = expect_success(sent, "HEAD", &url).await?;
        let size = sent
            .resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Ok(Some(size))
    }

    /// Downloads a blob to `dest`, trying mirrors first: streamed to a staged file beside `dest`, resumed
    /// with `Range` when the body is cut, verified against `digest` (and `size` when given) and only then
    /// renamed to `dest`. On any failure nothing is left at `dest` or beside it. Returns the size.
    pub async fn fetch_blob(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            let mut staged = StagedFile::new_in(&dir, digest.algorithm())?;
            let got = match self.download(ep, digest, size, 0, &mut staged, None).await {
                Ok(n) => n,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let (want, dest_owned) = (digest.clone(), dest.to_path_buf());
            // Sealing syncs the file to disk: keep that off the async threads.
            let committed = tokio::task::spawn_blocking(move || {
                staged.commit_verified(&want, Some(size.unwrap_or(got)), &dest_owned)
            })
            .await
            .map_err(|e| ClientError::InvalidInput(format!("blob commit panicked: {e}")))?;
            match committed {
                Ok(n) => return Ok(n),
                Err(StageError::Digest(source)) => {
                    last = Some(ClientError::Verification {
                        what: format!("blob {digest} from {}/{}", ep.host, ep.repository),
                        source,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last.unwrap_or_else(|| {
            ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
        }))
    }

    /// Downloads a blob into `writer` (resuming with `Range` when cut) and verifies digest and size at the
    /// end. On error `writer` may hold some or wrong bytes: the caller must discard them. Mirrors are
    /// tried only while nothing has been written. Returns the size.
    pub async fn fetch_blob_to_writer<W: Write + Send>(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        writer: &mut W,
    ) -> Result<u64, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            let mut counting = CountingWriter {
                inner: &mut *writer,
                written: 0,
            };
            let mut hasher = digest.algorithm().hasher();
            match self
                .download(ep, digest, size, 0, &mut counting, Some(&mut hasher))
                .await
            {
                Ok(n) => {
                    counting.flush().map_err(|source| ClientError::Io {
                        op: "write blob",
                        what: digest.to_string(),
                        source,
                    })?;
                    digest.expect(&hasher.finish()).map_err(|source| {
                        ClientError::Verification {
                            what: format!("blob {digest} from {}/{}", ep.host, ep.repository),
                            source,
                        }
                    })?;
                    return Ok(n);
                }
                Err(e) if counting.written == 0 => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
        }))
    }

    /// Opens a blob of `size` bytes for streaming from byte `start` on (a `Range` request when it is not 0;
    /// mirrors first): the chunks as they arrive, reported to the progress callback. The stream ends with an
    /// error when the body is cut or would exceed `size`; it does not verify the digest, so the consumer must
    /// (a store's upload session does when it is finished), and may continue a cut stream with a new call
    /// from the bytes it kept. The host's request slot is held until the stream is dropped.
    pub async fn fetch_blob_stream(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
        start: u64,
    ) -> Result<ChunkStream, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            let url = self.inner.url(ep, &blob_path(ep, digest)).await?;
            let sent = self
                .inner
                .get_pull(ep, &url, &|rb| Ok(range_from(rb, start)))
                .await;
            let sent = match sent {
                Ok(s) => expect_success(s, "GET", &url).await,
                Err(e) => Err(e),
            };
            let Sent { resp, _permit } = match sent {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            // Bytes at the start of the body we already have (a server that ignored the Range).
            let skip = if start > 0 {
                already_had(&resp, start, &url)?
            } else {
                0
            };
            let client = self.clone();
            let state = (resp, _permit, client, digest.clone(), skip, start, false);
            let stream = futures_util::stream::unfold(
                state,
                move |(mut resp, permit, client, digest, mut skip, mut done, ended)| async move {
                    if ended {
                        return None;
                    }
                    loop {
                        let chunk = match resp.chunk().await {
                            Ok(Some(c)) => c,
                            Ok(None) => return None,
                            Err(e) => {
                                let err = std::io::Error::other(e);
                                return Some((
                                    Err(err),
                                    (resp, permit, client, digest, skip, done, true),
                                ));
                            }
                        };
                        let k = skip.min(chunk.len() as u64) as usize;
                        skip -= k as u64;
                        let data = chunk.slice(k..);
                        if data.is_empty() {
                            continue;
                        }
                        if done + data.len() as u64 > size {
                            let err = std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!("blob {digest} is longer than its {size} bytes"),
                            );
                            return Some((
                                Err(err),
                                (resp, permit, client, digest, skip, done, true),
                            ));
                        }
                        done += data.len() as u64;
                        client.progress(&digest, done, Some(size), Direction::Pull);
                        return Some((Ok(data), (resp, permit, client, digest, skip, done, false)));
                    }
                },
            );
            return Ok(Box::pin(stream));
        }
        Err(last.unwrap_or_else(|| {
            ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
        }))
    }

    /// Streams one blob from one endpoint into `sink`, starting at byte `start` (a `Range` request when it
    /// is not 0) and resuming with `Range` after a cut body; checks the size (never writes more than
    /// expected) and, when given, feeds `hasher`. Returns the blob's full size (`start` included).
    pub(super) async fn download(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        size: Option<u64>,
        start: u64,
        sink: &mut (dyn Write + Send),
        mut hasher: Option<&mut Hasher>,
    ) -> Result<u64, ClientError> {
        let url = self.inner.url(ep, &blob_path(ep, digest)).await?;
        let policy = &self.inner.opts.retry;
        let mut done: u64 = start;
        let mut total = size;
        let mut resumes = 0u32;
        loop {
            let from = done;
            let sent = self
                .inner
                .get_pull(ep, &url, &|rb| Ok(range_from(rb, from)))
                .await?;
            let Sent { mut resp, _permit } = sent;
            let status = resp.status();
            if !status.is_success() {
                return Err(registry_error(resp, "GET", &url).await);
            }
            // Bytes at the start of this body we already have (a server that ignored our Range).
            let mut skip = 0u64;
            if from > 0 {
                skip = already_had(&resp, from, &url)?;
            } else if total.is_none() && status == StatusCode::OK {
                total = resp.content_length();
            }
            let mut cut = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        let mut data = &chunk[..];
                        if skip > 0 {
                            let k = skip.min(data.len() as u64) as usize;
                            data = &data[k..];
                            skip -= k as u64;
                        }
                        if let Some(t) = total
                            && done + data.len() as u64 > t
                        {
                            return Err(ClientError::Verification {
                                what: url,
                                source: DigestError::SizeMismatch {
                                    digest: digest.clone(),
                                    expected: t,
                                    actual: done + data.len() as u64,
                                },
                            });
                        }
                        sink.write_all(data).map_err(|source| ClientError::Io {
                            op: "write blob",
                            what: digest.to_string(),
                            source,
                        })?;
                        if let Some(h) = hasher.as_deref_mut() {
                            h.update(data);
                        }
                        done += data.len() as u64;
                        self.progress(digest, done, total, Direction::Pull);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        cut = Some(e);
                        break;
                    }
                }
            }
            let complete = match total {
                Some(t) => done == t,
                None => cut.is_none(),
            };
            if complete {
                return Ok(done);
            }
            if resumes >= policy.max_resumes
                || cut
                    .as_ref()
                    .is_some_and(|e| !super::transport::is_transient(e))
            {
                return Err(match cut {
                    Some(e) => super::transport::transport_error(&Method::GET, &url, e, ep),
                    None => ClientError::Verification {
                        what: url,
                        source: DigestError::SizeMismatch {
                            digest: digest.clone(),
                            expected: total.unwrap_or(0),
                            actual: done,
                        },
                    },
                });
            }
            resumes += 1;
            tracing::debug!(%url, done, ?total, resumes, "blob body was cut; resuming with Range");
            drop(resp);
            tokio::time::sleep(policy.backoff(resumes)).await;
        }
    }

    /// Uploads a blob of `size` bytes to `repository` unless it is already there: `HEAD` first, then a
    /// cross-repository mount from `mount_from` (a repository of the same registry that has it) when
    /// given, then `POST` and one streaming `PUT` — or `PATCH` chunks when `size` exceeds
    /// [`super::ClientOptions::chunked_upload_threshold`]. Failed uploads from replayable sources are
    /// retried in a new upload session. The registry verifies the digest.
    pub async fn push_blob(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
        source: BlobSource,
        mount_from: Option<&str>,
    ) -> Result<PushOutcome, ClientError> {
        let ep = self.inner.single_endpoint(host, repository)?;
        if self.blob_exists_at(&ep, digest, true).await?.is_some() {
            return Ok(PushOutcome::Existed);
        }
        let replayable = !matches!(source, BlobSource::Reader(_) | BlobSource::Stream(_));
        let mount_from = match (&source, mount_from) {
            (_, Some(m)) => Some(m.to_string()),
            (
                BlobSource::Remote {
                    host: h,
                    repository,
                },
                None,
            ) if super::normalize_host(h) == ep.host => Some(repository.clone()),
            _ => None,
        };
        let mount_from = mount_from.as_deref();
        let source = SourceSlot {
            source: Mutex::new(Some(source)),
            mismatch: Arc::new(Mutex::new(None)),
        };
        let policy = self.inner.opts.retry.clone();
        let mut session = 0u32;
        loop {
            session += 1;
            let location = match self.start_upload(&ep, digest, mount_from).await? {
                None => return Ok(PushOutcome::Mounted),
                Some(l) => l,
            };
            let chunked = self
                .inner
                .opts
                .chunked_upload_threshold
                .is_some_and(|t| size > t);
            let result = if chunked {
                self.upload_chunked(&ep, &location, digest, size, &source)
                    .await
            } else {
                self.upload_monolithic(&ep, &location, digest, size, &source)
                    .await
            };
            let mismatch = source
                .mismatch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match (result, mismatch) {
                (_, Some(source)) => {
                    return Err(ClientError::Verification {
                        what: format!("blob {digest} copied to {}/{}", ep.host, ep.repository),
                        source,
                    });
                }
                (Ok(()), None) => return Ok(PushOutcome::Uploaded),
                (Err(e), None)
                    if replayable && session < policy.max_attempts && retryable_upload(&e) =>
                {
                    tracing::debug!(%digest, error = %e, session, "upload failed; starting a new session");
                    tokio::time::sleep(policy.backoff(session)).await;
                }
                (Err(e), None) => return Err(e),
            }
        }
    }

    /// `POST` an upload (or a mount): `None` when the mount succeeded, else the upload URL.
    async fn start_upload(
        &self,
        ep: &Endpoint,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Option<String>, ClientError> {
        let base = self.inner.base(ep).await?;
        let mut scopes = vec![repo_scope(&ep.repository, true)];
        let url = match mount_from.filter(|f| *f != ep.repository) {
            Some(from) => {
                scopes.push(repo_scope(from, false));
                format!(
                    "{base}/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                    ep.repository
                )
            }
            None => format!("{base}/v2/{}/blobs/uploads/", ep.repository),
        };
        let sent = self
            .inner
            .send(ep, &scopes, Method::POST, &url, &|rb| {
                Ok(rb.header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let sent = expect_success(sent, "POST", &url).await?;
        if sent.resp.status() == StatusCode::CREATED && mount_from.is_some() {
            return Ok(None);
        }
        let loc = sent
            .resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::InvalidResponse {
                url: url.clone(),
                message: "upload started without a Location header".into(),
            })?;
        resolve(&base, loc)
            .map(Some)
            .map_err(|source| ClientError::BadLink { url, source })
    }

    async fn upload_monolithic(
        &self,
        ep: &Endpoint,
        location: &str,
        digest: &Digest,
        size: u64,
        source: &SourceSlot,
    ) -> Result<(), ClientError> {
        let url = with_digest(location, digest);
        let client = self.clone();
        let progress_digest = digest.clone();
        let mut done = 0u64;
        let stream = self
            .open_source(source, digest, &ep.host)
            .await?
            .map(move |item| {
                if let Ok(chunk) = &item {
                    done += chunk.len() as u64;
                    client.progress(&progress_digest, done, Some(size), Direction::Push);
                }
                item
            });
        let body = reqwest::Body::wrap_stream(stream);
        let once = Mutex::new(Some(body));
        let sent = self
            .inner
            .send(
                ep,
                &[repo_scope(&ep.repository, true)],
                Method::PUT,
                &url,
                &|rb| {
                    let body = once
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .ok_or_else(|| {
                            ClientError::InvalidInput("an upload body can be sent only once".into())
                        })?;
                    Ok(rb
                        .header(CONTENT_TYPE, OCTET_STREAM)
                        .header(CONTENT_LENGTH, size.to_string())
                        .body(body))
                },
            )
            .await?;
        let sent = expect_success(sent, "PUT", &url).await?;
        check_stored_digest(&sent, digest, &url)
    }

    /// Where an upload stands: how many bytes the registry holds, and the upload's next location.
    async fn upload_status(
        &self,
        ep: &Endpoint,
        url: &str,
    ) -> Result<(u64, Option<String>), ClientError> {
        let scopes = [repo_scope(&ep.repository, true)];
        let sent = self
            .inner
            .send(ep, &scopes, Method::GET, url, &|rb| Ok(rb))
            .await?;
        let sent = expect_success(sent, "GET", url).await?;
        let h = sent.resp.headers();
        // `Range: 0-N` means bytes 0..=N are held; no header (or `0-0` on some registries) means none.
        let taken = h
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.trim().trim_start_matches("bytes=").split('-').nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map_or(0, |n| n + 1);
        let next = h
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((taken, next))
    }

    async fn upload_chunked(
        &self,
        ep: &Endpoint,
        location: &str,
        digest: &Digest,
        size: u64,
        source: &SourceSlot,
    ) -> Result<(), ClientError> {
        let base = self.inner.base(ep).await?;
        let chunk_size = self.inner.opts.upload_chunk_size.max(1);
        let mut chunks = self.open_source(source, digest, &ep.host).await?.fuse();
        let mut pending = Bytes::new();
        let mut location = location.to_string();
        let mut offset = 0u64;
        let scopes = [repo_scope(&ep.repository, true)];
        loop {
            // The chunk is the source's own frames (shared, not copied), resent as they are on a retry.
            let mut frames: Vec<Bytes> = Vec::new();
            let mut len = 0u64;
            while len < chunk_size {
                if pending.is_empty() {
                    match chunks.next().await {
                        Some(Ok(c)) => pending = c,
                        Some(Err(source)) => {
                            return Err(ClientError::Io {
                                op: "read blob to upload",
                                what: digest.to_string(),
                                source,
                            });
                        }
                        None => break,
                    }
                }
                let room = (chunk_size - len).min(pending.len() as u64) as usize;
                let frame = pending.split_to(room);
                len += frame.len() as u64;
                frames.push(frame);
            }
            if len == 0 {
                break;
            }
            let end = offset + len - 1;
            let url = location.clone();
            let sent = self
                .inner
                .send(ep, &scopes, Method::PATCH, &url, &|rb| {
                    let body = futures_util::stream::iter(
                        frames.clone().into_iter().map(Ok::<_, std::io::Error>),
                    );
                    Ok(rb
                        .header(CONTENT_TYPE, OCTET_STREAM)
                        .header(CONTENT_RANGE, format!("{offset}-{end}"))
                        .header(CONTENT_LENGTH, len.to_string())
                        .body(reqwest::Body::wrap_stream(body)))
                })
                .await?;
            let next = if sent.resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
                // A chunk sent again after a lost answer: the registry may have taken it already.
                drop(sent);
                let (taken, next) = self.upload_status(ep, &url).await?;
                if taken != end + 1 {
                    return Err(ClientError::InvalidResponse {
                        url,
                        message: format!(
                            "upload of {digest} is at byte {taken}, expected {} after a retried chunk",
                            end + 1
                        ),
                    });
                }
                next
            } else {
                let sent = expect_success(sent, "PATCH", &url).await?;
                sent.resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            if let Some(l) = next {
                location = resolve(&base, &l).map_err(|source| ClientError::BadLink {
                    url: url.clone(),
                    source,
                })?;
            }
            offset = end + 1;
            self.progress(digest, offset, Some(size), Direction::Push);
        }
        let url = with_digest(&location, digest);
        let sent = self
            .inner
            .send(ep, &scopes, Method::PUT, &url, &|rb| {
                Ok(rb.header(CONTENT_LENGTH, "0"))
            })
            .await?;
        let sent = expect_success(sent, "PUT", &url).await?;
        check_stored_digest(&sent, digest, &url)
    }
}

fn retryable_upload(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { source, .. } => super::transport::is_transient(source),
        ClientError::Registry { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// Adds `digest=` to an upload URL that may already have a query.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn check_stored_digest(sent: &Sent, digest: &Digest, url: &str) -> Result<(), ClientError> {
    let said = sent
        .resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Digest::parse(s.trim()).ok());
    match said {
        Some(d) if &d != digest && d.algorithm() == digest.algorithm() => {
            Err(ClientError::Verification {
                what: format!("{url} (registry stored different bytes)"),
                source: DigestError::Mismatch {
                    expected: digest.clone(),
                    actual: d,
                },
            })
        }
        _ => Ok(()),
    }
}

impl RegistryClient {
    /// Opens the source for one upload attempt as a chunk stream (files are reopened, remote blobs fetched
    /// again; readers and streams are taken once). `dest_host` is where the upload goes.
    async fn open_source(
        &self,
        source: &SourceSlot,
        digest: &Digest,
        dest_host: &str,
    ) -> Result<ChunkStream, ClientError> {
        enum Opened {
            Ready(ChunkStream),
            File(PathBuf),
            Remote(String, String),
        }
        let opened = {
            let mut guard = source.source.lock().unwrap_or_else(|p| p.into_inner());
            match guard.take() {
                Some(BlobSource::Reader(r)) => Opened::Ready(reader_stream(r)),
                Some(BlobSource::Stream(st)) => Opened::Ready(st),
                Some(BlobSource::Bytes(b)) => {
                    *guard = Some(BlobSource::Bytes(b.clone()));
                    Opened::Ready(Box::pin(futures_util::stream::iter([Ok(b)])))
                }
                Some(BlobSource::File(p)) => {
                    *guard = Some(BlobSource::File(p.clone()));
                    Opened::File(p)
                }
                Some(BlobSource::Remote { host, repository }) => {
                    *guard = Some(BlobSource::Remote {
                        host: host.clone(),
                        repository: repository.clone(),
                    });
                    Opened::Remote(host, repository)
                }
                None => {
                    return Err(ClientError::InvalidInput(format!(
                        "the source of blob {digest} was used up by a failed attempt and cannot be replayed"
                    )));
                }
            }
        };
        match opened {
            Opened::Ready(st) => Ok(st),
            Opened::File(path) => {
                let f = std::fs::File::open(&path).map_err(|source| ClientError::Io {
                    op: "open blob to upload",
                    what: path.display().to_string(),
                    source,
                })?;
                let len = f.metadata().map_err(|source| ClientError::Io {
                    op: "stat blob to upload",
                    what: path.display().to_string(),
                    source,
                })?;
                Ok(read_ahead(
                    crate::storage::fs::read_stream(f, len.len()),
                    FILE_FRAMES_AHEAD,
                ))
            }
            Opened::Remote(host, repository) => {
                self.remote_stream(
                    &host,
                    &repository,
                    digest,
                    dest_host,
                    source.mismatch.clone(),
                )
                .await
            }
        }
    }

    /// A verified stream of a blob from another repository: it ends with an error instead of its last
    /// chunk when the bytes do not hash to `digest`, so an upload fed from it is aborted.
    async fn remote_stream(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        dest_host: &str,
        mismatch: Arc<Mutex<Option<DigestError>>>,
    ) -> Result<ChunkStream, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            let url = self.inner.url(ep, &blob_path(ep, digest)).await?;
            let sent = match self.inner.get_pull(ep, &url, &|rb| Ok(rb)).await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let Sent { resp, _permit } = match expect_success(sent, "GET", &url).await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            // Holding a slot of the source host while the destination takes one of its own would deadlock
            // a copy within one host whose limit is 1; there the upload's slot covers both.
            let permit = (ep.host != dest_host).then_some(_permit);
            let want = digest.clone();
            let mismatch = mismatch.clone();
            let state = (resp, want.algorithm().hasher(), want, permit, false);
            let stream = futures_util::stream::unfold(
                state,
                move |(mut resp, mut hasher, want, permit, done)| {
                    let mismatch = mismatch.clone();
                    async move {
                        if done {
                            return None;
                        }
                        match resp.chunk().await {
                            Ok(Some(c)) => {
                                hasher.update(&c);
                                Some((Ok(c), (resp, hasher, want, permit, false)))
                            }
                            Ok(None) => {
                                let actual = hasher.finish();
                                match want.expect(&actual) {
                                    Ok(()) => None,
                                    Err(e) => Some((
                                        Err(std::io::Error::other({
                                            let text = e.to_string();
                                            *mismatch.lock().unwrap_or_else(|p| p.into_inner()) =
                                                Some(e);
                                            text
                                        })),
                                        (resp, want.algorithm().hasher(), want, permit, true),
                                    )),
                                }
                            }
                            Err(e) => Some((
                                Err(std::io::Error::other(e)),
                                (resp, hasher, want, permit, true),
                            )),
                        }
                    }
                },
            );
            return Ok(Box::pin(stream));
        }
        Err(last.unwrap_or_else(|| {
            ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
        }))
    }
}

/// Frames of a file being uploaded read ahead of the upload (512 KiB each): the next chunk of a chunked upload
/// is read while the previous one is still being sent and acknowledged.
const FILE_FRAMES_AHEAD: usize = 16;

/// Drives `stream` on its own task, up to `frames` items ahead of the consumer; the task stops when the
/// returned stream is dropped.
fn read_ahead(mut stream: ChunkStream, frames: usize) -> ChunkStream {
    let (ahead, queue) = tokio::sync::mpsc::channel(frames.max(1));
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if ahead.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(
        queue,
        |mut queue| async move { queue.recv().await.map(|item| (item, queue)) },
    ))
}

/// Reads `r` as a stream of chunks of up to 256 KiB.
fn reader_stream(r: Box<dyn AsyncRead + Send + Unpin>) -> ChunkStream {
    Box::pin(futures_util::stream::unfold(r, |mut r| async move {
        let mut buf = BytesMut::zeroed(256 * 1024);
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf.freeze()), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    }))
}

/// The source of one upload, shared by its attempts, and what a verifying source found wrong.
struct SourceSlot {
    source: Mutex<Option<BlobSource>>,
    mismatch: Arc<Mutex<Option<DigestError>>>,
}

/// Counts what reaches a writer, to know whether a failed download already wrote something.
struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start_is_read() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes=5-"), None);
        assert_eq!(
            with_digest(
                "http://h/v2/a/blobs/uploads/x?_state=1",
                &Digest::sha256_of(b"")
            ),
            format!(
                "http://h/v2/a/blobs/uploads/x?_state=1&digest={}",
                Digest::sha256_of(b"")
            )
        );
    }
}
