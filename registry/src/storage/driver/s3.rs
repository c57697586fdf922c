//! The S3-compatible driver (AWS S3, MinIO, Ceph RGW, ...) through the `object_store` crate: files are objects
//! under a key prefix, so several stateless registry replicas can serve one bucket.
//!
//! # What is guaranteed
//! - Every object is written by one PUT, which S3 makes atomic: a reader sees an old or a new file, never a torn
//!   one. Concurrent writes of one file from different replicas cannot corrupt it; the last writer wins.
//! - A move is a server-side copy, then a delete of the source: the destination appears whole.
//! - An appendable file lives entirely in the bucket: its multipart upload id, the ids of the parts sent, the bytes
//!   not yet making a whole part (the "tail", under 8 MiB, an object beside the state) and the caller's state, all
//!   in one state object. Any replica continues an append another replica started, without reading back what was
//!   already sent. Writing the state object is the commit: parts and the tail are written first, under names the
//!   state does not yet reference, so a chunk that fails half-way leaves the file at its last commit.
//! - Not guaranteed: two replicas appending to the *same* file at the same moment (clients send a session's
//!   chunks one after another, and the store's offset check refuses the slower one in the common case).
//! - Files larger than 5 GiB cannot be moved on stores whose server-side copy is limited to 5 GiB (AWS S3).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt;
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use super::{AppendState, Driver, Entry, FileInfo, Opened, ReadMode, UploadWriter, join, parent};
use crate::storage::{ByteRange, ByteStream, Result, StorageError};

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
    /// Optional where a bucket URL (`s3://BUCKET/PREFIX`) names it.
    #[serde(default)]
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
        let file: S3ConfigFile = toml::from_str(text).map_err(|e| StorageError::InvalidConfig {
            what: what.to_string(),
            reason: format!("{e}(keys: bucket, endpoint, region, prefix, redirect, access_key_id, secret_access_key)"),
        })?;
        let credentials = match (file.access_key_id, file.secret_access_key) {
            (Some(id), Some(secret)) => Some((id, secret)),
            (None, None) => None,
            _ => {
                return Err(StorageError::InvalidConfig {
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

impl S3Driver {
    /// Connects to the bucket described by `config` (no request is made until the first operation).
    pub fn new(config: &S3Config) -> Result<Self> {
        if config.bucket.is_empty() {
            return Err(StorageError::InvalidConfig {
                what: "S3 storage".into(),
                reason: "no bucket: set `bucket = \"NAME\"` in the config file (or give `s3://BUCKET/PREFIX`)"
                    .into(),
            });
        }
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
        Ok(S3Driver {
            store: Arc::new(store),
            bulk: Arc::new(bulk),
            prefix: config.prefix.trim_matches('/').to_string(),
            redirect: config.redirect,
        })
    }
}

/// Files as objects of one bucket, below a key prefix. Credentials come from [`S3Config::credentials`] or the
/// usual AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...).
#[derive(Clone)]
pub struct S3Driver {
    /// Small requests (links, state, parts, HEAD, LIST), with object_store's 30 s deadline.
    store: Arc<AmazonS3>,
    /// Requests whose time grows with the file size: GETs of blobs, multipart completion, server-side copy.
    bulk: Arc<AmazonS3>,
    prefix: String,
    redirect: bool,
}

impl std::fmt::Debug for S3Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Driver")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The state object of an appendable file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct AppendFile {
    /// Bytes committed.
    size: u64,
    /// The multipart upload, once the first whole part was sent.
    multipart: Option<String>,
    /// Content ids (ETags) of the parts sent, in order.
    parts: Vec<String>,
    /// Generation of the tail object (bytes after the last part); `None` when there is no tail.
    tail: Option<String>,
    /// The caller's state, hex.
    saved: String,
    /// The data object is complete ([`Driver::seal`]).
    sealed: bool,
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

fn info_of(meta: &ObjectMeta) -> FileInfo {
    FileInfo {
        size: meta.size,
        modified: Some(meta.last_modified.into()),
        stamp: format!(
            "{}:{}",
            meta.e_tag.as_deref().unwrap_or_default(),
            meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
        ),
    }
}

impl S3Driver {
    /// The key of a driver path.
    fn key(&self, path: &str) -> Key {
        let path = path.trim_matches('/');
        match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => Key::from(path),
            (false, true) => Key::from(self.prefix.as_str()),
            (false, false) => Key::from(format!("{}/{path}", self.prefix)),
        }
    }

    /// The key of the tail object of generation `generation` of the appendable file `path`.
    fn tail_key(&self, path: &str, generation: &str) -> Key {
        self.key(&join(parent(path), &format!("tail-{generation}")))
    }

    async fn get_bytes(&self, key: &Key) -> Result<Option<Bytes>> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(store_err("read", key))?)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(store_err("read", key)(e)),
        }
    }

    async fn put_key(&self, key: &Key, bytes: impl Into<PutPayload>) -> Result<()> {
        self.store
            .put(key, bytes.into())
            .await
            .map(|_| ())
            .map_err(store_err("write", key))
    }

    async fn delete_key(&self, key: &Key) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(store_err("delete", key)(e)),
        }
    }

    async fn load(&self, state: &str) -> Result<Option<AppendFile>> {
        let key = self.key(state);
        let Some(bytes) = self.get_bytes(&key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                what: key.to_string(),
                reason: e.to_string(),
            })
    }

    async fn save(&self, state: &str, file: &AppendFile) -> Result<()> {
        let key = self.key(state);
        let bytes = serde_json::to_vec(file).map_err(|e| StorageError::Corrupt {
            what: key.to_string(),
            reason: e.to_string(),
        })?;
        self.put_key(&key, Bytes::from(bytes)).await
    }

    fn saved_of(state: &str, file: &AppendFile) -> Result<Bytes> {
        hex::decode(&file.saved)
            .map(Bytes::from)
            .map_err(|e| StorageError::Corrupt {
                what: state.to_string(),
                reason: e.to_string(),
            })
    }

    async fn read_tail(&self, path: &str, file: &AppendFile) -> Result<BytesMut> {
        let mut buf = BytesMut::with_capacity(PART_SIZE + 64 * 1024);
        if let Some(generation) = &file.tail {
            let key = self.tail_key(path, generation);
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

    /// Sends `bytes` as part number `index` (0-based) of the multipart upload to `data`, starting it if needed.
    async fn send_part(
        &self,
        data: &Key,
        multipart: &mut Option<String>,
        index: usize,
        bytes: Bytes,
    ) -> Result<String> {
        let id = match multipart {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .store
                    .create_multipart(data)
                    .await
                    .map_err(store_err("start multipart upload", data))?;
                *multipart = Some(id.clone());
                id
            }
        };
        let part = self
            .store
            .put_part(data, &id, index, bytes.into())
            .await
            .map_err(store_err("upload part", data))?;
        Ok(part.content_id)
    }

    /// The entries directly below `path`.
    async fn listing(&self, path: &str) -> Result<object_store::ListResult> {
        let prefix = self.key(path);
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(store_err("list", &prefix))
    }
}

#[async_trait]
impl Driver for S3Driver {
    async fn get(&self, path: &str, limit: u64) -> Result<Option<Bytes>> {
        let key = self.key(path);
        let result = match self.store.get(&key).await {
            Ok(r) => r,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(store_err("read", &key)(e)),
        };
        if result.meta.size > limit {
            return Err(StorageError::TooLarge { limit });
        }
        Ok(Some(result.bytes().await.map_err(store_err("read", &key))?))
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.put_key(&self.key(path), bytes).await
    }

    async fn reader(
        &self,
        path: &str,
        range: Option<ByteRange>,
        _mode: ReadMode,
    ) -> Result<Option<Opened>> {
        // One GET: the object's size comes back with it.
        let key = self.key(path);
        let options = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end.saturating_add(1))),
            ..GetOptions::default()
        };
        let result = match self.bulk.get_opts(&key, options).await {
            Ok(r) => r,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => {
                // A range the store cannot satisfy: report it against the real size.
                if let (Some(r), Some(info)) = (range, self.stat(path).await?) {
                    r.within(info.size)?;
                }
                return Err(store_err("read", &key)(e));
            }
        };
        let info = info_of(&result.meta);
        let range = range.map(|r| r.within(info.size)).transpose()?;
        let stream: ByteStream = Box::pin(result.into_stream().map_err(std::io::Error::other));
        Ok(Some(Opened {
            info,
            range,
            stream,
        }))
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        let key = self.key(path);
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(info_of(&meta))),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(store_err("stat", &key)(e)),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let listing = self.listing(path).await?;
        let dirs = listing.common_prefixes.iter().filter_map(|p| {
            Some(Entry {
                name: p.filename()?.to_string(),
                is_dir: true,
            })
        });
        let files = listing.objects.iter().filter_map(|m| {
            Some(Entry {
                name: m.location.filename()?.to_string(),
                is_dir: false,
            })
        });
        let mut out: Vec<Entry> = dirs.chain(files).collect();
        out.sort();
        Ok(out)
    }

    async fn walk(&self, path: &str) -> Result<Vec<String>> {
        let prefix = self.key(path);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(store_err("list", &prefix))?;
        let mut out: Vec<String> = metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<String> = m
                    .location
                    .prefix_match(&prefix)?
                    .map(|p| p.as_ref().to_string())
                    .collect();
                (!parts.is_empty()).then(|| parts.join("/"))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn move_file(&self, from: &str, to: &str) -> Result<()> {
        let (from, to) = (self.key(from), self.key(to));
        self.bulk
            .copy(&from, &to)
            .await
            .map_err(store_err("copy into place", &to))?;
        self.delete_key(&from).await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        let key = self.key(path);
        let mut keys: Vec<Key> = self
            .store
            .list(Some(&key))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(store_err("list", &key))?;
        // Objects below make it a directory; only a name without any is worth asking about as a file.
        if keys.is_empty() && self.stat(path).await?.is_some() {
            keys.push(key);
        }
        for key in &keys {
            self.delete_key(key).await?;
        }
        Ok(!keys.is_empty())
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>> {
        if !self.redirect {
            return Ok(None);
        }
        let key = self.key(path);
        let url = self
            .store
            .signed_url(reqwest::Method::GET, &key, Duration::from_secs(20 * 60))
            .await
            .map_err(store_err("presign", &key))?;
        Ok(Some(url.to_string()))
    }

    async fn append_state(&self, _path: &str, state: &str) -> Result<Option<AppendState>> {
        let Some(file) = self.load(state).await? else {
            return Ok(None);
        };
        Ok(Some(AppendState {
            size: file.size,
            saved: Some(Self::saved_of(state, &file)?),
        }))
    }

    async fn create_append(&self, _path: &str, state: &str, saved: Bytes) -> Result<()> {
        let file = AppendFile {
            saved: hex::encode(saved),
            ..AppendFile::default()
        };
        self.save(state, &file).await
    }

    async fn writer(&self, path: &str, state: &str) -> Result<Option<Box<dyn UploadWriter>>> {
        let Some(file) = self.load(state).await? else {
            return Ok(None);
        };
        let saved = Self::saved_of(state, &file)?;
        let buf = self.read_tail(path, &file).await?;
        Ok(Some(Box::new(S3Writer {
            driver: self.clone(),
            path: path.to_string(),
            state: state.to_string(),
            created_multipart: file.multipart.is_none(),
            written: 0,
            saved,
            buf,
            file,
        })))
    }

    async fn discard_append(&self, path: &str, state: &str) -> Result<()> {
        if let Ok(Some(AppendFile {
            multipart: Some(multipart),
            sealed: false,
            ..
        })) = self.load(state).await
        {
            // Best effort: a store that already forgot the multipart upload is fine.
            let _ignored = self
                .store
                .abort_multipart(&self.key(path), &multipart)
                .await;
        }
        Ok(())
    }

    async fn seal(&self, path: &str, state: &str) -> Result<u64> {
        let data = self.key(path);
        let mut file = self.load(state).await?.ok_or_else(|| StorageError::Io {
            op: "seal",
            path: data.to_string(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        if file.sealed {
            return Ok(file.size);
        }
        let tail = self.read_tail(path, &file).await?.freeze();
        if file.multipart.is_none() {
            self.put_key(&data, tail).await?;
        } else {
            if !tail.is_empty() {
                let index = file.parts.len();
                let etag = self
                    .send_part(&data, &mut file.multipart, index, tail)
                    .await?;
                file.parts.push(etag);
            }
            let multipart = file.multipart.clone().unwrap_or_default();
            let parts = file
                .parts
                .iter()
                .map(|etag| PartId {
                    content_id: etag.clone(),
                })
                .collect();
            self.bulk
                .complete_multipart(&data, &multipart, parts)
                .await
                .map_err(store_err("complete multipart upload", &data))?;
        }
        file.sealed = true;
        self.save(state, &file).await?;
        Ok(file.size)
    }

    fn durable_appends(&self) -> bool {
        true
    }
}

/// Adds to an appendable file: whole parts go to the multipart upload as they fill, the rest becomes the new tail
/// at commit.
struct S3Writer {
    driver: S3Driver,
    path: String,
    state: String,
    /// The file as committed, updated with the parts this writer sent.
    file: AppendFile,
    saved: Bytes,
    /// The old tail and the bytes since, not yet a whole part.
    buf: BytesMut,
    written: u64,
    /// The multipart upload did not exist when the writer opened (a cancel aborts it).
    created_multipart: bool,
}

#[async_trait]
impl UploadWriter for S3Writer {
    fn start(&self) -> u64 {
        self.file.size
    }

    fn saved(&self) -> Option<Bytes> {
        Some(self.saved.clone())
    }

    async fn write(&mut self, frames: Arc<[Bytes]>) -> Result<()> {
        let data = self.driver.key(&self.path);
        for frame in frames.iter() {
            self.written += frame.len() as u64;
            self.buf.extend_from_slice(frame);
            while self.buf.len() >= PART_SIZE {
                let part = self.buf.split_to(PART_SIZE).freeze();
                let index = self.file.parts.len();
                let etag = self
                    .driver
                    .send_part(&data, &mut self.file.multipart, index, part)
                    .await?;
                self.file.parts.push(etag);
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, state: Bytes) -> Result<u64> {
        let old_tail = self.file.tail.take();
        self.file.tail = if self.buf.is_empty() {
            None
        } else {
            let generation = uuid::Uuid::new_v4().simple().to_string();
            let key = self.driver.tail_key(&self.path, &generation);
            self.driver.put_key(&key, self.buf.split().freeze()).await?;
            Some(generation)
        };
        self.file.size += self.written;
        self.file.saved = hex::encode(state);
        self.driver.save(&self.state, &self.file).await?;
        if let Some(old) = old_tail {
            self.driver
                .delete_key(&self.driver.tail_key(&self.path, &old))
                .await?;
        }
        Ok(self.file.size)
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        if self.created_multipart
            && let Some(multipart) = &self.file.multipart
        {
            // Best effort: parts sent into an older upload are overwritten by the next chunk's.
            let data = self.driver.key(&self.path);
            let _ignored = self.driver.store.abort_multipart(&data, multipart).await;
        }
        Ok(())
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
        assert!(
            !err.to_string().contains("fsck"),
            "a config error is not corruption: {err}"
        );
    }

    #[test]
    fn a_config_without_a_bucket_parses_but_does_not_connect() {
        let c = S3Config::from_toml("endpoint = \"http://127.0.0.1:9000\"\n", "s3.toml").unwrap();
        assert_eq!(c.bucket, "");
        let Err(err) = S3Driver::new(&c) else {
            panic!("a driver without a bucket")
        };
        assert!(err.to_string().contains("no bucket"), "{err}");
    }
}
