//! A [`Storage`] backend on S3-compatible object storage (AWS S3, MinIO, Ceph RGW, ...) through the
//! `object_store` crate, with the Docker Distribution layout under a key prefix, so that several stateless
//! registry replicas can serve one bucket.
//!
//! # What is guaranteed
//! - Every object is written by one PUT, which S3 makes atomic: a reader sees an old or a new link, never a torn
//!   one. Concurrent tag updates from different replicas therefore cannot corrupt a tag; the last writer wins.
//! - A blob becomes visible only after its digest was verified: uploads are assembled under `_uploads/`, checked,
//!   then copied (server side) to `blobs/`. Blob data is immutable once visible.
//! - An upload session lives entirely in the bucket: its multipart upload id, the ids of the parts sent, the bytes
//!   not yet making a whole part (the "tail", under 8 MiB), and the saved SHA-256 state. Any replica continues a
//!   session another replica started, without reading back what was already sent. The session's `state.json` is
//!   the commit point of a chunk: parts and the tail are written first, under names the state does not yet
//!   reference, so a chunk that fails half-way leaves the session at its last acknowledged offset.
//! - Not guaranteed: two replicas appending to the *same* session at the same moment (clients send a session's
//!   chunks one after another, and the offset check refuses the slower one in the common case).
//! - Blobs larger than 5 GiB cannot be finished on stores whose server-side copy is limited to 5 GiB (AWS S3).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use formats::digest::{Algorithm, Digest, Hasher};
use formats::distribution::{DistributionPaths, link_text};
use futures_util::{StreamExt, TryStreamExt};
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use super::{BlobReader, ByteRange, ByteStream, Result, Storage, StorageError, UploadStatus};

/// Bytes per multipart part (S3 wants at least 5 MiB for every part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Deadline of one bulk request (a blob GET streamed to a slow client, completing or copying a multipart upload
/// of several GiB), instead of object_store's 30 s, which would cut such requests off.
const BULK_TIMEOUT: &str = "1h";

/// How to reach the bucket. Also readable from a TOML file ([`S3Config::from_toml`]) with the same keys
/// (`bucket`, `endpoint`, `region`, `prefix`, `redirect`, `access_key_id`, `secret_access_key`).
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// The bucket's name.
    pub bucket: String,
    /// The endpoint (`http://127.0.0.1:9000` for MinIO); `None` for AWS S3 itself.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when in doubt).
    pub region: String,
    /// A key prefix under which the Distribution layout lives (`docker/registry/v2/...` below it).
    pub prefix: String,
    /// Blob GETs answer with a redirect to a presigned URL instead of streaming through the registry.
    pub redirect: bool,
    /// Access key id and secret, overriding the AWS environment variables.
    pub credentials: Option<(String, String)>,
}

/// The TOML form of [`S3Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3ConfigFile {
    bucket: String,
    endpoint: Option<String>,
    region: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    redirect: bool,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
}

impl S3Config {
    /// Parses a TOML config file's text; `what` names the file in errors.
    pub fn from_toml(text: &str, what: &str) -> Result<S3Config> {
        let file: S3ConfigFile = toml::from_str(text).map_err(|e| StorageError::Corrupt {
            what: what.to_string(),
            reason: format!("{e}(keys: bucket, endpoint, region, prefix, redirect, access_key_id, secret_access_key)"),
        })?;
        let credentials = match (file.access_key_id, file.secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(StorageError::Corrupt {
                    what: what.to_string(),
                    reason: "access_key_id and secret_access_key go together".into(),
                });
            }
        };
        Ok(S3Config {
            bucket: file.bucket,
            endpoint: file.endpoint,
            region: file.region.unwrap_or_else(|| "us-east-1".into()),
            prefix: file.prefix,
            redirect: file.redirect,
            credentials,
        })
    }
}

/// The S3-compatible backend. Credentials come from the usual AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...).
pub struct S3Storage {
    /// Small requests (links, session state, parts, HEAD, LIST), with object_store's 30 s deadline.
    store: Arc<AmazonS3>,
    /// Requests whose time grows with the blob size: blob GETs, multipart completion, server-side copy.
    bulk: Arc<AmazonS3>,
    paths: DistributionPaths,
    prefix: String,
    redirect: bool,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// An upload session as stored in `_uploads/<id>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct SessionState {
    /// Bytes received so far.
    offset: u64,
    /// Seconds since the epoch when the session started.
    started: u64,
    /// The multipart upload, once the first whole part was sent.
    multipart: Option<String>,
    /// Content ids (ETags) of the parts sent, in order.
    parts: Vec<String>,
    /// Generation of the tail object (bytes after the last part); `None` when there is no tail.
    tail: Option<String>,
    /// Length of the tail.
    tail_len: u64,
    /// The running SHA-256 state (see [`Hasher::save_state`]), hex.
    hash: String,
}

fn store_err<'a>(
    op: &'static str,
    key: &'a Key,
) -> impl FnOnce(object_store::Error) -> StorageError + 'a {
    move |e| StorageError::Io {
        op,
        path: key.to_string(),
        source: std::io::Error::other(e),
    }
}

fn is_missing(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn valid_upload_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

impl S3Storage {
    /// Connects to the bucket described by `config` (no request is made until the first operation).
    pub fn new(config: &S3Config) -> Result<Self> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region);
        if let Some((id, secret)) = &config.credentials {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let configure = |e: object_store::Error| StorageError::Io {
            op: "configure S3 bucket",
            path: config.bucket.clone(),
            source: std::io::Error::other(e),
        };
        let bulk = builder
            .clone()
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                BULK_TIMEOUT,
            )
            .build()
            .map_err(configure)?;
        let store = builder.build().map_err(configure)?;
        Ok(S3Storage {
            store: Arc::new(store),
            bulk: Arc::new(bulk),
            paths: DistributionPaths::new(""),
            prefix: config.prefix.trim_matches('/').to_string(),
            redirect: config.redirect,
        })
    }

    /// The object key of a layout path.
    fn key(&self, rel: &std::path::Path) -> Key {
        let rel = rel.to_string_lossy();
        let rel = rel.trim_start_matches('/');
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn upload_key(&self, repo: &str, id: &str, name: &str) -> Key {
        self.key(&self.paths.uploads_dir(repo).join(id).join(name))
    }

    async fn get_bytes(&self, key: &Key) -> Result<Option<Bytes>> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(store_err("read", key))?)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(store_err("read", key)(e)),
        }
    }

    async fn exists(&self, key: &Key) -> Result<bool> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if is_missing(&e) => Ok(false),
            Err(e) => Err(store_err("stat", key)(e)),
        }
    }

    async fn put(&self, key: &Key, bytes: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(store_err("write", key))
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(store_err("delete", key)(e)),
        }
    }

    /// Deletes every object under `prefix`.
    async fn delete_prefix(&self, prefix: &Key) -> Result<usize> {
        let keys: Vec<Key> = self
            .store
            .list(Some(prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(store_err("list", prefix))?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
    }

    async fn write_link(&self, rel: &std::path::Path, digest: &Digest) -> Result<()> {
        self.put(&self.key(rel), Bytes::from(link_text(digest)))
            .await
    }

    async fn read_link(&self, rel: &std::path::Path) -> Result<Option<Digest>> {
        let key = self.key(rel);
        let Some(bytes) = self.get_bytes(&key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes);
        Digest::parse(text.trim())
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                what: key.to_string(),
                reason: e.to_string(),
            })
    }

    /// Digests named by `<dir>/<algorithm>/<hex>/link` objects.
    async fn list_links(&self, dir: &std::path::Path) -> Result<Vec<Digest>> {
        let prefix = self.key(dir);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(store_err("list", &prefix))?;
        let mut out = Vec::new();
        for meta in metas {
            let parts: Vec<_> = meta
                .location
                .prefix_match(&prefix)
                .into_iter()
                .flatten()
                .collect();
            if let [alg, hex, link] = parts.as_slice()
                && link.as_ref() == "link"
                && let Ok(alg) = alg.as_ref().parse::<Algorithm>()
                && let Ok(d) = Digest::from_parts(alg, hex.as_ref())
            {
                out.push(d);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn load_session(&self, repo: &str, id: &str) -> Result<SessionState> {
        if !valid_upload_id(id) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        let key = self.upload_key(repo, id, "state.json");
        let bytes = self
            .get_bytes(&key)
            .await?
            .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            what: key.to_string(),
            reason: e.to_string(),
        })
    }

    async fn save_session(&self, repo: &str, id: &str, state: &SessionState) -> Result<()> {
        let key = self.upload_key(repo, id, "state.json");
        let bytes = serde_json::to_vec(state).map_err(|e| StorageError::Corrupt {
            what: key.to_string(),
            reason: e.to_string(),
        })?;
        self.put(&key, Bytes::from(bytes)).await
    }

    fn hasher_of(&self, id: &str, state: &SessionState) -> Result<Hasher> {
        let raw = hex::decode(&state.hash).map_err(|e| StorageError::Corrupt {
            what: format!("upload {id}"),
            reason: e.to_string(),
        })?;
        Hasher::restore_state(&raw).map_err(|e| StorageError::Corrupt {
            what: format!("upload {id}"),
            reason: e.to_string(),
        })
    }

    async fn read_tail(&self, repo: &str, id: &str, state: &SessionState) -> Result<BytesMut> {
        let mut buf = BytesMut::with_capacity(PART_SIZE + 64 * 1024);
        if let Some(generation) = &state.tail {
            let key = self.upload_key(repo, id, &format!("tail-{generation}"));
            let bytes = self
                .get_bytes(&key)
                .await?
                .ok_or_else(|| StorageError::Corrupt {
                    what: key.to_string(),
                    reason: "the upload's tail object is missing".into(),
                })?;
            buf.extend_from_slice(&bytes);
        }
        Ok(buf)
    }

    /// Sends `bytes` as part number `index` (0-based) of the session's multipart upload, starting it if needed.
    async fn send_part(
        &self,
        data_key: &Key,
        multipart: &mut Option<String>,
        index: usize,
        bytes: Bytes,
    ) -> Result<String> {
        let id = match multipart {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .store
                    .create_multipart(data_key)
                    .await
                    .map_err(store_err("start multipart upload", data_key))?;
                *multipart = Some(id.clone());
                id
            }
        };
        let part = self
            .store
            .put_part(data_key, &id, index, bytes.into())
            .await
            .map_err(store_err("upload part", data_key))?;
        Ok(part.content_id)
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let key = self.key(&self.paths.blob_data(digest));
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(store_err("stat", &key)(e)),
        }
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        // One GET: the object's size comes back with it.
        let key = self.key(&self.paths.blob_data(digest));
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end.saturating_add(1))),
            ..GetOptions::default()
        };
        let result = match self.bulk.get_opts(&key, options).await {
            Ok(r) => r,
            Err(e) if is_missing(&e) => return Err(StorageError::BlobUnknown(digest.clone())),
            Err(e) => {
                // A range the store cannot satisfy: report it against the real size.
                if let (Some(r), Some(size)) = (range, self.blob_size(digest).await?) {
                    r.within(size)?;
                }
                return Err(store_err("read", &key)(e));
            }
        };
        let size = result.meta.size;
        let range = range.map(|r| r.within(size)).transpose()?;
        let stream: ByteStream = Box::pin(result.into_stream().map_err(std::io::Error::other));
        Ok(BlobReader {
            size,
            range,
            stream,
        })
    }

    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        if !self.redirect {
            return Ok(None);
        }
        let key = self.key(&self.paths.blob_data(digest));
        let url = self
            .store
            .signed_url(reqwest::Method::GET, &key, Duration::from_secs(20 * 60))
            .await
            .map_err(store_err("presign", &key))?;
        Ok(Some(url.to_string()))
    }

    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let key = self.key(&self.paths.blob_data(digest));
        if self.exists(&key).await? {
            return Ok(());
        }
        self.put(&key, bytes).await
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>> {
        let prefix = self.key(&self.paths.blobs_dir());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(store_err("list", &prefix))?;
        let mut out = Vec::new();
        for meta in metas {
            let parts: Vec<_> = meta
                .location
                .prefix_match(&prefix)
                .into_iter()
                .flatten()
                .collect();
            if let [alg, _, hex, data] = parts.as_slice()
                && data.as_ref() == "data"
                && let Ok(alg) = alg.as_ref().parse::<Algorithm>()
                && let Ok(d) = Digest::from_parts(alg, hex.as_ref())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<()> {
        let key = self.key(&self.paths.blob_data(digest));
        if !self.exists(&key).await? {
            return Err(StorageError::BlobUnknown(digest.clone()));
        }
        self.delete(&key).await
    }

    async fn create_upload(&self, repo: &str) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let state = SessionState {
            started: now_secs(),
            hash: hex::encode(Algorithm::Sha256.hasher().save_state()),
            ..SessionState::default()
        };
        self.save_session(repo, &id, &state).await?;
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        let state = self.load_session(repo, id).await?;
        Ok(UploadStatus {
            id: id.to_string(),
            offset: state.offset,
        })
    }

    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        mut body: ByteStream,
    ) -> Result<UploadStatus> {
        let saved = self.load_session(repo, id).await?;
        if let Some(given) = offset.filter(|o| *o != saved.offset) {
            return Err(StorageError::OutOfOrder {
                current: saved.offset,
                given,
            });
        }
        let mut state = saved.clone();
        let mut hasher = self.hasher_of(id, &state)?;
        let mut buf = self.read_tail(repo, id, &state).await?;
        let data_key = self.upload_key(repo, id, "data");
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StorageError::Body)?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            while buf.len() >= PART_SIZE {
                let part = buf.split_to(PART_SIZE).freeze();
                let index = state.parts.len();
                let etag = self
                    .send_part(&data_key, &mut state.multipart, index, part)
                    .await?;
                state.parts.push(etag);
            }
        }
        if let Some(expected) = expected_len.filter(|e| *e != written) {
            return Err(StorageError::ChunkLength {
                expected,
                actual: written,
            });
        }
        // Write the new tail under a fresh name, then commit by saving the state.
        state.tail_len = buf.len() as u64;
        state.tail = if buf.is_empty() {
            None
        } else {
            let generation = uuid::Uuid::new_v4().simple().to_string();
            let key = self.upload_key(repo, id, &format!("tail-{generation}"));
            self.put(&key, buf.freeze()).await?;
            Some(generation)
        };
        state.offset = saved.offset + written;
        state.hash = hex::encode(hasher.save_state());
        self.save_session(repo, id, &state).await?;
        if let Some(old) = saved.tail.filter(|old| state.tail.as_ref() != Some(old)) {
            self.delete(&self.upload_key(repo, id, &format!("tail-{old}")))
                .await?;
        }
        Ok(UploadStatus {
            id: id.to_string(),
            offset: state.offset,
        })
    }

    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        let mut state = self.load_session(repo, id).await?;
        let size = state.offset;
        let session_dir = self.key(&self.paths.uploads_dir(repo).join(id));
        let data_key = self.upload_key(repo, id, "data");
        let tail = self.read_tail(repo, id, &state).await?.freeze();
        let dest = self.key(&self.paths.blob_data(digest));
        let sha256 = self.hasher_of(id, &state)?.finish();
        if state.multipart.is_none() {
            // Small blob: everything is in the tail.
            let actual = if digest.algorithm() == Algorithm::Sha256 {
                sha256
            } else {
                Digest::of(digest.algorithm(), &tail)
            };
            self.delete_prefix(&session_dir).await?;
            if &actual != digest {
                return Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
            if !self.exists(&dest).await? {
                self.put(&dest, tail).await?;
            }
            return Ok(size);
        }
        if digest.algorithm() == Algorithm::Sha256 && &sha256 != digest {
            self.cancel_upload(repo, id).await?;
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual: sha256,
            });
        }
        if !tail.is_empty() {
            let index = state.parts.len();
            let etag = self
                .send_part(&data_key, &mut state.multipart, index, tail)
                .await?;
            state.parts.push(etag);
        }
        let multipart = state.multipart.clone().unwrap_or_default();
        let parts: Vec<PartId> = state
            .parts
            .iter()
            .map(|etag| PartId {
                content_id: etag.clone(),
            })
            .collect();
        self.bulk
            .complete_multipart(&data_key, &multipart, parts)
            .await
            .map_err(store_err("complete multipart upload", &data_key))?;
        if digest.algorithm() != Algorithm::Sha256 {
            // The running hash is sha256; any other algorithm costs one read of the assembled data.
            let mut hasher = digest.algorithm().hasher();
            let mut stream = self
                .bulk
                .get(&data_key)
                .await
                .map_err(store_err("read", &data_key))?
                .into_stream();
            while let Some(chunk) = stream.next().await {
                hasher.update(&chunk.map_err(store_err("read", &data_key))?);
            }
            let actual = hasher.finish();
            if &actual != digest {
                self.delete_prefix(&session_dir).await?;
                return Err(StorageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                });
            }
        }
        if !self.exists(&dest).await? {
            self.bulk
                .copy(&data_key, &dest)
                .await
                .map_err(store_err("copy into place", &dest))?;
        }
        self.delete_prefix(&session_dir).await?;
        Ok(size)
    }

    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()> {
        let state = self.load_session(repo, id).await?;
        if let Some(multipart) = &state.multipart {
            let data_key = self.upload_key(repo, id, "data");
            // Best effort: a store that already forgot the multipart upload is fine.
            let _ignored = self.store.abort_multipart(&data_key, multipart).await;
        }
        let session_dir = self.key(&self.paths.uploads_dir(repo).join(id));
        self.delete_prefix(&session_dir).await?;
        Ok(())
    }

    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>> {
        let prefix = self.key(&self.paths.repositories_dir());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(store_err("list", &prefix))?;
        let now = now_secs();
        let mut out = Vec::new();
        for meta in metas {
            let parts: Vec<String> = meta
                .location
                .prefix_match(&prefix)
                .into_iter()
                .flatten()
                .map(|p| p.as_ref().to_string())
                .collect();
            if let [repo @ .., marker, id, file] = parts.as_slice()
                && marker == "_uploads"
                && file == "state.json"
            {
                let repo = repo.join("/");
                let age = match self.load_session(&repo, id).await {
                    Ok(s) => now.saturating_sub(s.started),
                    Err(_) => now.saturating_sub(meta.last_modified.timestamp().max(0) as u64),
                };
                out.push((repo, id.clone(), age));
            }
        }
        Ok(out)
    }

    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.write_link(&self.paths.layer_link(repo, digest), digest)
            .await
    }

    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool> {
        self.exists(&self.key(&self.paths.layer_link(repo, digest)))
            .await
    }

    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        let key = self.key(&self.paths.layer_link(repo, digest));
        if !self.exists(&key).await? {
            return Err(StorageError::BlobUnknown(digest.clone()));
        }
        self.delete(&key).await
    }

    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>> {
        self.list_links(&self.paths.repository_dir(repo).join("_layers"))
            .await
    }

    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.write_link(&self.paths.revision_link(repo, digest), digest)
            .await
    }

    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        self.exists(&self.key(&self.paths.revision_link(repo, digest)))
            .await
    }

    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        let key = self.key(&self.paths.revision_link(repo, digest));
        if !self.exists(&key).await? {
            return Err(StorageError::ManifestUnknown(digest.to_string()));
        }
        for tag in self.list_tags(repo).await.unwrap_or_default() {
            if self.resolve_tag(repo, &tag).await?.as_ref() == Some(digest) {
                self.delete_tag(repo, &tag).await?;
            }
        }
        self.delete(&key).await
    }

    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>> {
        self.list_links(
            &self
                .paths
                .repository_dir(repo)
                .join("_manifests")
                .join("revisions"),
        )
        .await
    }

    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        self.write_link(&self.paths.tag_index_link(repo, tag, digest), digest)
            .await?;
        self.write_link(&self.paths.tag_current_link(repo, tag), digest)
            .await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        self.read_link(&self.paths.tag_current_link(repo, tag))
            .await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let current = self.key(&self.paths.tag_current_link(repo, tag));
        if !self.exists(&current).await? {
            return Err(StorageError::ManifestUnknown(tag.to_string()));
        }
        // `current` first, so a crash leaves no tag rather than a tag without history.
        self.delete(&current).await?;
        self.delete_prefix(&self.key(&self.paths.tags_dir(repo).join(tag)))
            .await?;
        Ok(())
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        if !self.repository_exists(repo).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        let prefix = self.key(&self.paths.tags_dir(repo));
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(store_err("list", &prefix))?;
        let mut tags = Vec::new();
        for dir in listing.common_prefixes {
            if let Some(tag) = dir.filename()
                && self
                    .exists(&self.key(&self.paths.tag_current_link(repo, tag)))
                    .await?
            {
                tags.push(tag.to_string());
            }
        }
        tags.sort();
        Ok(tags)
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        // Walk directories (one listing per directory), not every object.
        let root = self.key(&self.paths.repositories_dir());
        let mut out = Vec::new();
        let mut pending = vec![(root.clone(), String::new())];
        while let Some((dir, name)) = pending.pop() {
            let listing = self
                .store
                .list_with_delimiter(Some(&dir))
                .await
                .map_err(store_err("list", &dir))?;
            for child in listing.common_prefixes {
                let Some(leaf) = child.filename().map(str::to_string) else {
                    continue;
                };
                if leaf == "_manifests" {
                    if !name.is_empty() {
                        out.push(name.clone());
                    }
                } else if !leaf.starts_with('_') {
                    let child_name = if name.is_empty() {
                        leaf
                    } else {
                        format!("{name}/{leaf}")
                    };
                    pending.push((child, child_name));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        let dir = self.paths.repository_dir(repo);
        for part in ["_manifests", "_layers", "_uploads"] {
            let prefix = self.key(&dir.join(part));
            let mut listing = self.store.list(Some(&prefix));
            match listing.next().await {
                Some(Ok(_)) => return Ok(true),
                Some(Err(e)) => return Err(store_err("list", &prefix)(e)),
                None => {}
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_gives_every_setting_and_refuses_unknown_keys() {
        let c = S3Config::from_toml(
            "bucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"\nprefix = \"p\"\nredirect = true\n\
             access_key_id = \"id\"\nsecret_access_key = \"s\"\n",
            "s3.toml",
        )
        .unwrap();
        assert_eq!(c.bucket, "b");
        assert_eq!(c.region, "us-east-1");
        assert!(c.redirect);
        assert_eq!(c.credentials, Some(("id".into(), "s".into())));
        let err = S3Config::from_toml("bucket = \"b\"\nbukket = 1\n", "s3.toml").unwrap_err();
        assert!(err.to_string().contains("bukket"), "{err}");
        let err =
            S3Config::from_toml("bucket = \"b\"\naccess_key_id = \"x\"\n", "s3.toml").unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
    }
}
