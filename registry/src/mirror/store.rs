//! A registry store ([`Storage`]: a directory in the Docker Distribution layout, an S3 bucket) as a place
//! images are copied from and to. Everything goes through the store, which owns the layout: manifests are
//! stored whole and linked, blobs are streamed from their source into an upload session that the store
//! verifies before the blob appears, so a blob is never seen half-written.
//!
//! A directory store keeps a claim file per blob being brought in, `<dir>/.staging/<alg>-<hex>.upload`,
//! naming its upload session and locked while the blob is written: a run that was interrupted (even killed)
//! continues the session from the bytes it holds (a `Range` request at a registry), and a second process
//! bringing the same blob waits and then finds it there. A bucket's sessions are started again.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use formats::digest::Digest;
use formats::distribution::{DistributionPaths, validate_repository, validate_tag};
use formats::manifest::{Descriptor, RawManifest};
use formats::oci_layout::MAX_JSON_BLOB;
use futures_util::{StreamExt, TryStreamExt};

use super::{BlobOrigin, MirrorError};
use crate::storage::{ByteRange, ByteStream, FsStorage, Storage, StorageError};

/// Attempts in a row that bring no byte of a blob before the copy gives up on it.
const MAX_STALLS: u32 = 5;

/// A registry store images are read from and written to.
#[derive(Clone)]
pub struct Store {
    storage: Arc<dyn Storage>,
    /// Where it is, for messages: a directory's path, `s3://bucket/prefix`.
    place: String,
    /// The directory of a filesystem store.
    root: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

fn invalid(e: formats::distribution::DistributionError) -> MirrorError {
    MirrorError::Distribution(e)
}

impl Store {
    /// The directory `root` in the Distribution layout (created as needed when written to).
    pub fn dir(root: impl Into<PathBuf>) -> Store {
        let root = root.into();
        Store {
            storage: Arc::new(FsStorage::new(&root)),
            place: root.display().to_string(),
            root: Some(root),
        }
    }

    /// Any store, named `place` in messages.
    pub fn new(storage: Arc<dyn Storage>, place: impl Into<String>) -> Store {
        Store {
            storage,
            place: place.into(),
            root: None,
        }
    }

    /// The store.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The directory, for a filesystem store.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Where it is: the directory's path or `s3://bucket/prefix`.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// `directory DIR` or `bucket s3://...`.
    pub fn describe(&self) -> String {
        match self.root {
            Some(_) => format!("directory {}", self.place),
            None => format!("bucket {}", self.place),
        }
    }

    /// True when the store holds any repository (a directory: `docker/registry/v2/repositories` exists).
    pub async fn has_repositories(&self) -> Result<bool, MirrorError> {
        if let Some(root) = &self.root {
            return Ok(DistributionPaths::new(root).repositories_dir().is_dir());
        }
        Ok(!self.storage.list_repositories().await?.is_empty())
    }

    /// The size of blob `digest`, `None` when it is not stored (in any repository).
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, MirrorError> {
        Ok(self.storage.blob_size(digest).await?)
    }

    /// The manifest `repo:tag` points to, `None` when there is no such tag.
    pub async fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        validate_tag(tag).map_err(invalid)?;
        Ok(self.storage.resolve_tag(repo, tag).await?)
    }

    /// True when `repo` holds manifest revision `digest` and its bytes are stored.
    pub async fn has_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        Ok(self.storage.has_revision(repo, digest).await?
            && self.storage.blob_size(digest).await?.is_some())
    }

    /// Reads manifest `reference` (a tag or a digest) of `repo`, byte-exact and verified against its digest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Result<RawManifest, MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        let digest = match Digest::parse(reference) {
            Ok(d) => d,
            Err(_) => self.tag(repo, reference).await?.ok_or_else(|| {
                MirrorError::NotFound(format!("tag `{repo}:{reference}` in {}", self.place))
            })?,
        };
        if !self.storage.has_revision(repo, &digest).await? {
            return Err(MirrorError::NotFound(format!(
                "manifest {digest} in repository `{repo}` of {}",
                self.place
            )));
        }
        let bytes = match self.storage.read_blob_bytes(&digest, MAX_JSON_BLOB).await {
            Ok(b) => b,
            Err(StorageError::BlobUnknown(_)) => {
                return Err(MirrorError::NotFound(format!(
                    "manifest {digest} (linked into `{repo}`, its bytes absent) in {}",
                    self.place
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = Digest::of(digest.algorithm(), &bytes);
        if actual != digest {
            return Err(StorageError::Corrupt {
                what: format!("manifest {digest} in {}", self.place),
                reason: format!("its bytes hash to {actual}"),
            }
            .into());
        }
        RawManifest::from_bytes(bytes.to_vec(), None).map_err(|source| MirrorError::Manifest {
            what: format!("{}/{repo}@{digest}", self.place),
            source,
        })
    }

    /// Stores manifest `raw` byte-exact in `repo` (blob, then revision link), then points `tag` at it.
    pub async fn put_manifest(
        &self,
        repo: &str,
        raw: &RawManifest,
        tag: Option<&str>,
    ) -> Result<(), MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        if let Some(tag) = tag {
            validate_tag(tag).map_err(invalid)?;
        }
        let d = &raw.digest;
        self.storage
            .put_blob_bytes(d, Bytes::from(raw.bytes.clone()))
            .await?;
        self.storage.link_revision(repo, d).await?;
        if let Some(tag) = tag {
            self.storage.set_tag(repo, tag, d).await?;
        }
        Ok(())
    }

    /// Every `(repository, tag)`, referrers-tag-schema tags (`sha256-<hex>`) left out.
    pub async fn images(&self) -> Result<Vec<(String, String)>, MirrorError> {
        let mut out = Vec::new();
        for repo in self.storage.list_repositories().await? {
            let tags = match self.storage.list_tags(&repo).await {
                Ok(t) => t,
                Err(StorageError::NameUnknown(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            for tag in tags {
                if !crate::client::is_referrers_tag(&tag) {
                    out.push((repo.clone(), tag));
                }
            }
        }
        Ok(out)
    }

    /// Manifests of `repo` whose subject is `digest`.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Digest>, MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        Ok(self
            .storage
            .referrers(repo, digest)
            .await?
            .into_iter()
            .map(|r| r.digest)
            .collect())
    }

    /// Where blobs are read from: this store (through it, so a directory's symlinks are never followed).
    pub fn blob_origin(&self) -> BlobOrigin {
        BlobOrigin::Store(self.clone())
    }

    /// The file of blob `digest` in a directory store, for a registry upload to stream (and reopen when it
    /// retries): its path when it is a regular file reached without symlinks below the directory, or absent
    /// (a registry that holds the blob never asks for it); `None` for a bucket or a path that is refused.
    pub(crate) fn blob_file(&self, digest: &Digest) -> Option<PathBuf> {
        let root = self.root.as_ref()?;
        let path = DistributionPaths::new(root).blob_data(digest);
        match formats::fsutil::check_beneath(root, &path) {
            Ok(None) => Some(path),
            Ok(Some(m)) if m.is_file() => Some(path),
            _ => None,
        }
    }

    /// Blob `digest` as a stream opened only when first read (a registry upload that finds the blob there
    /// already never opens it).
    pub(crate) fn lazy_stream(&self, digest: &Digest, size: u64) -> ByteStream {
        let (store, digest) = (self.clone(), digest.clone());
        futures_util::stream::once(async move {
            store
                .read_from(&digest, 0, size)
                .await
                .map_err(std::io::Error::other)
        })
        .try_flatten()
        .boxed()
    }

    /// Reads blob `digest` (of `size` bytes) from byte `from` on.
    pub(crate) async fn read_from(
        &self,
        digest: &Digest,
        from: u64,
        size: u64,
    ) -> Result<ByteStream, MirrorError> {
        let range = (from > 0).then_some(ByteRange {
            start: from,
            end: size.saturating_sub(1).max(from),
        });
        Ok(self.storage.read_blob(digest, range).await?.stream)
    }

    /// Makes blob `desc` part of `repo`, bringing its bytes from `origin` unless the store holds them
    /// (then nothing is read). Returns the bytes brought.
    pub async fn put_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        origin: &BlobOrigin,
    ) -> Result<u64, MirrorError> {
        validate_repository(repo).map_err(invalid)?;
        let mut brought = 0;
        if self.storage.blob_size(&desc.digest).await?.is_none() {
            brought = self.bring(repo, desc, origin).await?;
        }
        self.storage.link_layer(repo, &desc.digest).await?;
        Ok(brought)
    }

    /// Streams the blob from `origin` into an upload session (continuing one an interrupted run left, when the
    /// store is a directory) and has the store verify and keep it.
    async fn bring(
        &self,
        repo: &str,
        desc: &Descriptor,
        origin: &BlobOrigin,
    ) -> Result<u64, MirrorError> {
        let digest = &desc.digest;
        let mut claim = match &self.root {
            Some(root) => Some(Claim::take(root, digest).await?),
            None => None,
        };
        // Another process may have brought it while this one waited for the claim.
        if let Some(c) = claim.take() {
            if self.storage.blob_size(digest).await?.is_some() {
                c.release().await;
                return Ok(0);
            }
            claim = Some(c);
        }
        let (session_repo, id, offset) = self.session(repo, claim.as_mut()).await?;
        let moved = self
            .fill(&session_repo, &id, offset, desc, origin)
            .await
            .map_err(|e| (e, false));
        let finished = match moved {
            Ok(_) => self
                .storage
                .finish_upload(&session_repo, &id, digest)
                .await
                .map_err(|e| (MirrorError::from(e), true)),
            Err(e) => Err(e),
        };
        match finished {
            Ok(size) => {
                if let Some(c) = claim {
                    c.release().await;
                }
                Ok(size.saturating_sub(offset))
            }
            Err((e, gone)) => {
                // A session nobody can continue is removed; a claimed one is kept for the next run, unless
                // the store refused it (then it is gone already).
                if claim.is_none() || gone || !resumable(&e) {
                    let _ignored = self.storage.cancel_upload(&session_repo, &id).await;
                    if let Some(c) = claim {
                        c.release().await;
                    }
                }
                Err(e)
            }
        }
    }

    /// The upload session to write into: the one `claim` names when the store still has it, else a new one
    /// in `repo` (recorded in the claim). Returns its repository, id and offset.
    async fn session(
        &self,
        repo: &str,
        claim: Option<&mut Claim>,
    ) -> Result<(String, String, u64), MirrorError> {
        let Some(claim) = claim else {
            let s = self.storage.create_upload(repo).await?;
            return Ok((repo.to_string(), s.id, s.offset));
        };
        if let Some((r, id)) = claim.session.clone()
            && validate_repository(&r).is_ok()
        {
            match self.storage.upload_status(&r, &id).await {
                Ok(s) => {
                    tracing::debug!(upload = %id, offset = s.offset, "continuing an interrupted blob");
                    return Ok((r, id, s.offset));
                }
                Err(StorageError::UploadUnknown(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let s = self.storage.create_upload(repo).await?;
        claim.record(repo, &s.id).await?;
        Ok((repo.to_string(), s.id, s.offset))
    }

    /// Appends the blob's bytes from `offset` on to session `id` until it holds all `desc.size` of them. A
    /// registry's body that is cut keeps what arrived, and the next request asks for the rest.
    async fn fill(
        &self,
        repo: &str,
        id: &str,
        mut offset: u64,
        desc: &Descriptor,
        origin: &BlobOrigin,
    ) -> Result<(), MirrorError> {
        let digest = &desc.digest;
        if offset > desc.size {
            return Err(MirrorError::Transfer {
                digest: digest.clone(),
                reason: format!(
                    "the upload session holds {offset} bytes, more than the blob's {}",
                    desc.size
                ),
            });
        }
        let mut stalls = 0;
        let remote = matches!(origin, BlobOrigin::Remote { .. });
        while offset < desc.size {
            let stream = open_origin(origin, desc, offset).await?;
            let (stream, cut) = until_cut(stream);
            let status = self
                .storage
                .append_upload(repo, id, Some(offset), None, stream)
                .await?;
            let cut = cut.lock().unwrap_or_else(|p| p.into_inner()).take();
            stalls = if status.offset > offset {
                0
            } else {
                stalls + 1
            };
            offset = status.offset;
            if offset >= desc.size {
                break;
            }
            let oversized = cut
                .as_ref()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::InvalidData);
            if oversized || !remote || stalls >= MAX_STALLS {
                let reason = match cut {
                    Some(e) => format!("{e} (after {offset} of {} bytes)", desc.size),
                    None => format!("the source ended after {offset} of its {} bytes", desc.size),
                };
                return Err(MirrorError::Transfer {
                    digest: digest.clone(),
                    reason,
                });
            }
            if cut.is_some() {
                // A cut body: ask for the rest after a pause that grows while nothing arrives.
                tokio::time::sleep(std::time::Duration::from_millis(200 << stalls.min(4))).await;
            }
        }
        Ok(())
    }
}

/// Whether an interrupted blob's session is worth keeping for the next run.
fn resumable(e: &MirrorError) -> bool {
    !matches!(
        e,
        MirrorError::Storage(StorageError::DigestMismatch { .. })
            | MirrorError::Transfer { .. }
            | MirrorError::Distribution(_)
    )
}

/// The blob's bytes from `offset` on.
async fn open_origin(
    origin: &BlobOrigin,
    desc: &Descriptor,
    offset: u64,
) -> Result<ByteStream, MirrorError> {
    match origin {
        BlobOrigin::Remote {
            client,
            host,
            repository,
        } => Ok(client
            .fetch_blob_stream(host, repository, &desc.digest, desc.size, offset)
            .await?),
        BlobOrigin::File(path) => {
            let mut file = std::fs::File::open(path).map_err(|source| MirrorError::Io {
                op: "open blob",
                path: path.clone(),
                source,
            })?;
            if offset > 0 {
                file.seek(std::io::SeekFrom::Start(offset))
                    .map_err(|source| MirrorError::Io {
                        op: "seek in blob",
                        path: path.clone(),
                        source,
                    })?;
            }
            let file = tokio::fs::File::from_std(file);
            Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                file,
                1 << 20,
            )))
        }
        BlobOrigin::Store(store) => store.read_from(&desc.digest, offset, desc.size).await,
    }
}

/// `stream` ending without an error where it fails (so the bytes before are kept), and where the failure is
/// then found.
fn until_cut(stream: ByteStream) -> (ByteStream, Arc<Mutex<Option<std::io::Error>>>) {
    let cut = Arc::new(Mutex::new(None));
    let seen = cut.clone();
    let stream = stream
        .scan((), move |_, item| {
            let next = match item {
                Ok(b) => Some(Ok(b)),
                Err(e) => {
                    *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    None
                }
            };
            futures_util::future::ready(next)
        })
        .boxed();
    (stream, cut)
}

/// A directory store's claim on one blob being brought in: `<dir>/.staging/<alg>-<hex>.upload`, locked while
/// held, naming the upload session (`REPOSITORY\nID\n`).
struct Claim {
    file: std::fs::File,
    path: PathBuf,
    /// The session it names, if any.
    session: Option<(String, String)>,
}

impl Claim {
    /// Takes the claim, waiting for another process holding it.
    async fn take(root: &Path, digest: &Digest) -> Result<Claim, MirrorError> {
        let dir = root.join(".staging");
        let path = dir.join(format!("{}-{}.upload", digest.algorithm(), digest.hex()));
        let (root, at) = (root.to_path_buf(), path.clone());
        super::location::blocking(move || {
            let io = |op, path: &Path| {
                let path = path.to_path_buf();
                move |source| MirrorError::Io { op, path, source }
            };
            formats::fsutil::check_beneath(&root, &at)
                .map_err(|e| MirrorError::Distribution(e.into()))?;
            std::fs::create_dir_all(&dir).map_err(io("create directory", &dir))?;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&at)
                .map_err(io("open", &at))?;
            loop {
                match file.lock() {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => other.map_err(io("lock", &at))?,
                }
                break;
            }
            let mut text = String::new();
            let _ignored = file.read_to_string(&mut text);
            let mut lines = text.lines();
            let session = match (lines.next(), lines.next()) {
                (Some(r), Some(id)) if !r.is_empty() && !id.is_empty() => {
                    Some((r.to_string(), id.to_string()))
                }
                _ => None,
            };
            Ok(Claim {
                file,
                path: at,
                session,
            })
        })
        .await
    }

    /// Names session `id` of `repo` in the claim.
    async fn record(&mut self, repo: &str, id: &str) -> Result<(), MirrorError> {
        let text = format!("{repo}\n{id}\n");
        let mut file = self.file.try_clone().map_err(|source| MirrorError::Io {
            op: "write",
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.clone();
        super::location::blocking(move || {
            file.set_len(0)
                .and_then(|()| file.seek(std::io::SeekFrom::Start(0)).map(drop))
                .and_then(|()| file.write_all(text.as_bytes()))
                .map_err(|source| MirrorError::Io {
                    op: "write",
                    path,
                    source,
                })
        })
        .await?;
        self.session = Some((repo.to_string(), id.to_string()));
        Ok(())
    }

    /// Removes the claim file (the blob is stored, or its session gone) and lets waiters in.
    async fn release(self) {
        let Claim { file, path, .. } = self;
        let _ignored = tokio::task::spawn_blocking(move || {
            let _ignored = std::fs::remove_file(&path);
            drop(file);
        })
        .await;
    }
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;
    use crate::storage::{S3Config, S3Storage};

    impl Store {
        /// The bucket `s3://BUCKET[/PREFIX]`, reached with the settings `registry serve s3` takes: the TOML
        /// file `config` (endpoint, region, credentials; its bucket and prefix are the URL's), else the usual
        /// AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...).
        pub fn s3(url: &str, config: Option<&Path>) -> Result<Store, MirrorError> {
            let bad = |reason: String| MirrorError::BadLocation {
                spec: url.to_string(),
                reason,
            };
            let rest = url
                .strip_prefix("s3://")
                .ok_or_else(|| bad("an S3 location is written s3://BUCKET[/PREFIX]".into()))?;
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(
                    "no bucket (an S3 location is written s3://BUCKET[/PREFIX])".into(),
                ));
            }
            let mut s3 = match config {
                Some(file) => {
                    let text = std::fs::read_to_string(file).map_err(|source| MirrorError::Io {
                        op: "read the S3 config",
                        path: file.to_path_buf(),
                        source,
                    })?;
                    S3Config::from_toml(&text, &file.display().to_string())?
                }
                None => S3Config {
                    region: env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                        .unwrap_or_else(|| "us-east-1".into()),
                    ..S3Config::default()
                },
            };
            if s3.endpoint.is_none() {
                s3.endpoint = env_first(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]);
            }
            s3.bucket = bucket.to_string();
            s3.prefix = prefix.trim_matches('/').to_string();
            let storage = S3Storage::new(&s3).map_err(|e| bad(e.to_string()))?;
            let place = match s3.prefix.as_str() {
                "" => format!("s3://{}", s3.bucket),
                p => format!("s3://{}/{p}", s3.bucket),
            };
            Ok(Store::new(Arc::new(storage), place))
        }
    }

    /// The first of `names` set (and not empty) in the environment.
    fn env_first(names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;
    use formats::manifest::ImageManifest;
    use formats::media_type;

    fn image() -> (RawManifest, Vec<u8>) {
        let layer = b"layer bytes".to_vec();
        let m = ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes(media_type::OCI_LAYER_TAR, &layer)],
        );
        (
            RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap(),
            layer,
        )
    }

    #[tokio::test]
    async fn a_directory_store_is_written_and_read_back_in_the_distribution_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("layer");
        let (raw, layer) = image();
        std::fs::write(&src, &layer).unwrap();
        let store = Store::dir(tmp.path().join("reg"));
        let desc = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, &layer);
        let origin = BlobOrigin::File(src);
        assert_eq!(
            store.put_blob("team/app", &desc, &origin).await.unwrap(),
            layer.len() as u64
        );
        assert_eq!(store.put_blob("other", &desc, &origin).await.unwrap(), 0);
        store
            .put_manifest("team/app", &raw, Some("v1"))
            .await
            .unwrap();
        let paths = DistributionPaths::new(tmp.path().join("reg"));
        assert_eq!(std::fs::read(paths.blob_data(&desc.digest)).unwrap(), layer);
        for link in [
            paths.layer_link("team/app", &desc.digest),
            paths.layer_link("other", &desc.digest),
        ] {
            assert_eq!(
                std::fs::read_to_string(link).unwrap(),
                desc.digest.to_string()
            );
        }
        assert_eq!(
            std::fs::read_to_string(paths.tag_current_link("team/app", "v1")).unwrap(),
            raw.digest.to_string()
        );
        assert_eq!(store.manifest("team/app", "v1").await.unwrap(), raw);
        assert!(store.has_manifest("team/app", &raw.digest).await.unwrap());
        assert!(!store.has_manifest("other", &raw.digest).await.unwrap());
        assert_eq!(
            store.images().await.unwrap(),
            [("team/app".to_string(), "v1".to_string())]
        );
        let e = store.manifest("team/app", "v2").await.unwrap_err();
        assert!(matches!(e, MirrorError::NotFound(_)), "{e}");
        assert!(store.put_manifest("../up", &raw, None).await.is_err());
        assert!(
            store
                .put_manifest("ok", &raw, Some("bad/tag"))
                .await
                .is_err()
        );
        let staging = tmp.path().join("reg/.staging");
        assert_eq!(std::fs::read_dir(staging).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_blob_whose_bytes_do_not_match_is_not_kept_and_its_claim_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("evil");
        std::fs::write(&src, b"other bytes").unwrap();
        let store = Store::dir(tmp.path().join("reg"));
        let desc = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"good bytes!");
        let e = store
            .put_blob("r", &desc, &BlobOrigin::File(src))
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&desc.digest.to_string()), "{e}");
        assert_eq!(store.blob_size(&desc.digest).await.unwrap(), None);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("reg/.staging"))
                .unwrap()
                .count(),
            0
        );
        assert!(store.storage().list_uploads().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_interrupted_blob_continues_from_its_claimed_session() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, layer) = image();
        let src = tmp.path().join("layer");
        std::fs::write(&src, &layer).unwrap();
        let root = tmp.path().join("reg");
        let store = Store::dir(&root);
        let desc = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, &layer);
        // What a killed run leaves: a session holding the first bytes, named by the claim.
        let s = store.storage().create_upload("r").await.unwrap();
        let head: ByteStream = Box::pin(futures_util::stream::iter([Ok(Bytes::from(
            layer[..5].to_vec(),
        ))]));
        store
            .storage()
            .append_upload("r", &s.id, Some(0), None, head)
            .await
            .unwrap();
        let mut claim = Claim::take(&root, &desc.digest).await.unwrap();
        claim.record("r", &s.id).await.unwrap();
        drop(claim);
        let brought = store
            .put_blob("r", &desc, &BlobOrigin::File(src))
            .await
            .unwrap();
        assert_eq!(
            brought,
            layer.len() as u64 - 5,
            "the first bytes were sent again"
        );
        assert_eq!(
            std::fs::read(DistributionPaths::new(&root).blob_data(&desc.digest)).unwrap(),
            layer
        );
        assert!(store.storage().list_uploads().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_source_directory_blob_that_is_a_symlink_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = b"host file outside the source";
        std::fs::write(tmp.path().join("secret"), secret).unwrap();
        let desc = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, secret);
        let src = tmp.path().join("src");
        let data = DistributionPaths::new(&src).blob_data(&desc.digest);
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), &data).unwrap();
        let from = Store::dir(&src);
        assert_eq!(from.blob_file(&desc.digest), None);
        let to = Store::dir(tmp.path().join("dst"));
        let e = to
            .put_blob("r", &desc, &from.blob_origin())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert_eq!(to.blob_size(&desc.digest).await.unwrap(), None);
    }

    #[tokio::test]
    async fn any_store_is_a_location_store_and_origin() {
        let from = Store::new(Arc::new(MemoryStorage::new()), "memory");
        let to = Store::new(Arc::new(MemoryStorage::new()), "memory 2");
        let (raw, layer) = image();
        let desc = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, &layer);
        from.storage()
            .put_blob_bytes(&desc.digest, Bytes::from(layer.clone()))
            .await
            .unwrap();
        let origin = from.blob_origin();
        assert!(matches!(origin, BlobOrigin::Store(_)));
        assert_eq!(
            to.put_blob("a", &desc, &origin).await.unwrap(),
            layer.len() as u64
        );
        to.put_manifest("a", &raw, Some("v1")).await.unwrap();
        assert_eq!(to.tag("a", "v1").await.unwrap(), Some(raw.digest.clone()));
        assert_eq!(to.describe(), "bucket memory 2");
    }
}
