//! Registry storage: the [`Storage`] trait the server talks to (content-addressed blobs, repository links,
//! manifest revisions, tags, resumable upload sessions), implemented once by [`DistributionStore`] in the Docker
//! Distribution layout over a byte-level [`driver::Driver`]: a directory ([`FsStorage`]), memory
//! ([`MemoryStorage`]) or an S3 bucket (`S3Storage`, feature `s3`).
//!
//! # Atomicity, honestly
//! - A blob becomes visible only once complete and verified: the store moves a fully written, durable upload file
//!   into `blobs/` (on a filesystem an fsync, then a rename, atomic on one filesystem; on S3 a server-side copy).
//!   Readers never see a partial blob.
//! - Each link (layer, revision, tag `current`, tag `index`) is written atomically (temporary file + rename, or
//!   one PUT),
//!   but a group of links is not: pushing a manifest writes the revision link, then the tag index link, then the
//!   tag's `current` link. A crash between them leaves a revision without the tag, never a tag without its
//!   manifest. Readers may observe any prefix of that sequence.
//! - Deletions remove links, not shared blob data; blob data is only removed by garbage collection.
//! - Upload sessions survive the server process on the filesystem (and any replica continues them on S3): a chunk that was acknowledged has been
//!   written to the session's data file (the kernel's page cache), so it is there after the server is killed and
//!   restarted. Chunks are not fsynced one by one (neither does distribution): durability against power loss is
//!   promised for finished blobs only, whose data is fsynced before the rename. After a power loss a session may be
//!   shorter than acknowledged; the client learns its real offset from the session status and resumes from there,
//!   and the digest check at commit refuses any session whose bytes are not the client's.
//! - The running hash state is saved beside the session's data after each acknowledged chunk, so a restarted
//!   server continues a session without re-hashing its bytes; a session resumed that way is re-read once when it
//!   is finished, so the stored blob is verified against bytes actually on disk.

use std::io;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use formats::digest::Digest;
use futures_util::Stream;

pub mod driver;
pub mod fsck;
pub mod gc;
pub(crate) mod mapped;
pub mod store;

pub(crate) use driver::fs;
pub use store::DistributionStore;

/// The store in a directory holding (or to hold) `docker/registry/v2`.
pub type FsStorage = DistributionStore<driver::fs::FsDriver>;

impl DistributionStore<driver::fs::FsDriver> {
    /// The store rooted at `root` (the directory that holds, or will hold, `docker/registry/v2`).
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        Self::with_driver(driver::fs::FsDriver::new(root))
    }
}

/// The in-memory store (`registry serve inmem`): everything is lost on exit.
pub type MemoryStorage = DistributionStore<driver::memory::MemoryDriver>;

impl DistributionStore<driver::memory::MemoryDriver> {
    /// An empty in-memory store.
    pub fn new() -> Self {
        Self::with_driver(driver::memory::MemoryDriver::new())
    }
}

impl Default for DistributionStore<driver::memory::MemoryDriver> {
    fn default() -> Self {
        Self::new()
    }
}
#[cfg(feature = "s3")]
pub use driver::s3::S3Config;

/// The store on S3-compatible object storage, the layout under a key prefix: several stateless replicas can
/// serve one bucket.
#[cfg(feature = "s3")]
pub type S3Storage = DistributionStore<driver::s3::S3Driver>;

#[cfg(feature = "s3")]
impl DistributionStore<driver::s3::S3Driver> {
    /// The store in the bucket described by `config` (no request is made until the first operation).
    pub fn new(config: &S3Config) -> Result<Self> {
        Ok(Self::with_driver(driver::s3::S3Driver::new(config)?))
    }
}

/// A stream of bytes: request bodies going in, blob contents going out.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Reads `stream` to its end, handing each chunk to `each`; a read error is a [`StorageError::Io`] of `op`
/// on `what` (the blob or file the stream comes from).
pub(crate) async fn for_each_chunk(
    mut stream: ByteStream,
    op: &'static str,
    what: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<()> {
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| StorageError::Io {
            op,
            path: what.to_string(),
            source,
        })?;
        each(&chunk);
    }
    Ok(())
}

/// Errors from a storage backend. Each variant maps to one distribution-spec error code in the server.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob is not stored (or not linked into the repository).
    #[error("blob `{0}` is not stored")]
    BlobUnknown(Digest),
    /// The manifest revision is not in the repository.
    #[error("manifest `{0}` is not in the repository")]
    ManifestUnknown(String),
    /// The repository does not exist.
    #[error("repository `{0}` does not exist")]
    NameUnknown(String),
    /// No upload session has this id in this repository.
    #[error("upload session `{0}` does not exist (finished, cancelled or never started)")]
    UploadUnknown(String),
    /// A chunk did not start at the session's current offset.
    #[error("chunk starts at byte {given} but the upload is at byte {current}")]
    OutOfOrder {
        /// Bytes the session holds.
        current: u64,
        /// Where the rejected chunk claimed to start.
        given: u64,
    },
    /// A chunk's body was not as long as its Content-Range or Content-Length said; it was rolled back.
    #[error("chunk body has {actual} bytes but the request announced {expected}")]
    ChunkLength {
        /// Announced length.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// Uploaded content did not hash to the digest the client named; nothing was stored.
    #[error("uploaded content has digest `{actual}`, not `{expected}`")]
    DigestMismatch {
        /// The digest the client named.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// Content exceeded a size limit.
    #[error("content is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The operation is not allowed here (a push to a pull-through cache's repository); the message says why.
    #[error("{0}")]
    Denied(String),
    /// A requested byte range lies outside the blob.
    #[error("range {start}-{end} is outside the blob of {size} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        start: u64,
        /// Last byte asked for (inclusive).
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// The request body failed while streaming (client went away); the chunk was rolled back.
    #[error("reading the request body: {0}")]
    Body(io::Error),
    /// A storage configuration (an S3 config file, a bucket URL) is invalid.
    #[error("{what}: {reason}")]
    InvalidConfig {
        /// The file or setting at fault.
        what: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Stored data is damaged (an unreadable link, a blob whose bytes do not match).
    #[error("corrupt storage at `{what}`: {reason}; run `sealos registry fsck` on the directory")]
    Corrupt {
        /// The item that is damaged.
        what: String,
        /// Why it is considered damaged.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An inclusive byte range `start..=end` of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range checked against a blob of `size` bytes: its end clamped to the blob's last byte, or
    /// [`StorageError::RangeNotSatisfiable`] when it starts past the end or ends before it starts.
    pub fn within(self, size: u64) -> Result<ByteRange> {
        if self.start >= size || self.end < self.start {
            return Err(StorageError::RangeNotSatisfiable {
                start: self.start,
                end: self.end,
                size,
            });
        }
        Ok(ByteRange {
            start: self.start,
            end: self.end.min(size - 1),
        })
    }
}

/// An open blob: its total size and a stream of the requested bytes.
pub struct BlobReader {
    /// Total size of the blob (not of the range).
    pub size: u64,
    /// The range being streamed, if one was asked for.
    pub range: Option<ByteRange>,
    /// The bytes.
    pub stream: ByteStream,
}

/// State of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session id (a UUID).
    pub id: String,
    /// Bytes received so far; the next chunk must start here.
    pub offset: u64,
}

/// A manifest that names a subject, as listed by the referrers API.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    /// The referring manifest's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its `artifactType`, or for an image manifest without one, its config's media type.
    pub artifact_type: Option<String>,
    /// Its annotations, if any.
    pub annotations: Option<serde_json::Value>,
}

/// A registry's storage. All names are already validated repository names; all methods are safe to call
/// concurrently. See the module docs for what is atomic.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The size of a stored blob, or `None` when it is not stored. Ignores repository links.
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>>;

    /// When a stored blob's data was last written, or `None` when it is not stored or the backend does not
    /// know (gc uses it to spare blobs younger than an upload could be). The default is `None`.
    async fn blob_modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        let _ = digest;
        Ok(None)
    }

    /// Opens a blob for reading, optionally only `range` of it (checked against the size:
    /// [`StorageError::RangeNotSatisfiable`] when it starts past the end; an end past the end is clamped).
    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader>;

    /// Opens a blob, as [`Storage::read_blob`] does, to be written to a plain TCP connection that sends file pages
    /// itself (`server::sendfile`). The filesystem store hands out views of a mapping of the blob's file, which
    /// such a connection sends without reading them; other stores read the blob. Only for that use: code that
    /// reads the bytes of a mapping turns a disk error into a `SIGBUS` instead of an error.
    async fn send_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.read_blob(digest, range).await
    }

    /// A URL the client may fetch the blob from directly (a presigned object-store URL), or `None` to stream
    /// it through the registry. The default is `None`.
    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        let _ = digest;
        Ok(None)
    }

    /// Reads a whole blob into memory, refusing blobs larger than `limit` (for manifests only).
    async fn read_blob_bytes(&self, digest: &Digest, limit: u64) -> Result<Bytes> {
        let reader = self.read_blob(digest, None).await?;
        if reader.size > limit {
            return Err(StorageError::TooLarge { limit });
        }
        let mut out = Vec::with_capacity(usize::try_from(reader.size).unwrap_or(0));
        for_each_chunk(reader.stream, "read blob", &digest.to_string(), |chunk| {
            out.extend_from_slice(chunk)
        })
        .await?;
        Ok(Bytes::from(out))
    }

    /// Stores small content already in memory (manifests) under its digest with `digest`'s algorithm.
    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Lists every stored blob (for fsck and gc).
    async fn list_blobs(&self) -> Result<Vec<Digest>>;

    /// Removes a blob's data (gc only; the server never calls this).
    async fn remove_blob(&self, digest: &Digest) -> Result<()>;

    /// Starts an upload session in `repo`.
    async fn create_upload(&self, repo: &str) -> Result<UploadStatus>;

    /// The state of an upload session.
    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus>;

    /// Appends `body` to a session, hashing as it streams. `offset` (when the client gave one) must equal the
    /// current offset, else [`StorageError::OutOfOrder`]. When the body fails mid-way, or `expected_len` is given
    /// and the body has another length ([`StorageError::ChunkLength`]), the chunk is rolled back.
    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus>;

    /// Completes a session: verifies the content against `digest` and makes it a blob (atomic rename), then
    /// removes the session. On mismatch the session is removed and nothing is stored. Returns the blob size.
    /// Does not link the blob into the repository; see [`Storage::link_layer`].
    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64>;

    /// Cancels a session and removes its data.
    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()>;

    /// Lists `(repo, id, age in seconds)` of every upload session (for gc).
    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>>;

    /// Links a stored blob into a repository (the repository's `_layers`).
    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()>;

    /// True when the repository links the blob.
    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool>;

    /// Removes a repository's link to a blob; [`StorageError::BlobUnknown`] when there was none.
    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()>;

    /// Lists the blobs a repository links.
    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>>;

    /// Records a manifest revision in a repository (its bytes must already be a blob).
    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()>;

    /// True when the repository holds the manifest revision.
    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool>;

    /// Removes a manifest revision and every tag that points to it;
    /// [`StorageError::ManifestUnknown`] when there was none.
    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()>;

    /// Lists a repository's manifest revisions.
    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>>;

    /// Points `tag` at a manifest revision (index link first, then `current`).
    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()>;

    /// The manifest a tag points to, or `None`.
    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;

    /// Removes a tag; [`StorageError::ManifestUnknown`] when there was none.
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()>;

    /// Every tag of a repository, sorted; [`StorageError::NameUnknown`] when the repository does not exist.
    async fn list_tags(&self, repo: &str) -> Result<Vec<String>>;

    /// Every repository that holds manifests, at any depth, sorted.
    async fn list_repositories(&self) -> Result<Vec<String>>;

    /// True when the repository exists (has manifests, layers or uploads).
    async fn repository_exists(&self, repo: &str) -> Result<bool>;

    /// Manifests in `repo` whose `subject` is `subject`. The default scans the repository's revisions
    /// (fine for the sizes cluster images have; a backend with an index may override it).
    async fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Referrer>> {
        let mut found = Vec::new();
        for digest in self.list_revisions(repo).await? {
            let bytes = match self.read_blob_bytes(&digest, MANIFEST_LIMIT).await {
                Ok(b) => b,
                Err(StorageError::BlobUnknown(_) | StorageError::TooLarge { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Some(r) = referrer_of(&digest, &bytes, subject) {
                found.push(r);
            }
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }
}

/// The largest manifest the registry accepts (4 MiB, as distribution and the OCI guidance say).
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;

/// The referrer entry for manifest `bytes` when its `subject` is `subject`.
fn referrer_of(digest: &Digest, bytes: &[u8], subject: &Digest) -> Option<Referrer> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let subj = v.get("subject")?.get("digest")?.as_str()?;
    if subj != subject.to_string() {
        return None;
    }
    let media_type = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let artifact_type = v
        .get("artifactType")
        .and_then(|a| a.as_str())
        .or_else(|| {
            v.get("config")
                .and_then(|c| c.get("mediaType"))
                .and_then(|m| m.as_str())
        })
        .map(str::to_string);
    Some(Referrer {
        digest: digest.clone(),
        size: bytes.len() as u64,
        media_type,
        artifact_type,
        annotations: v.get("annotations").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_clamped_to_the_blob_or_refused() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(r(2, 4).within(10).unwrap(), r(2, 4));
        assert_eq!(r(5, 99).within(10).unwrap(), r(5, 9));
        assert_eq!(r(9, 9).within(10).unwrap(), r(9, 9));
        for (bad, size) in [(r(10, 12), 10), (r(5, 2), 10), (r(0, 0), 0)] {
            assert!(matches!(
                bad.within(size),
                Err(StorageError::RangeNotSatisfiable { .. })
            ));
        }
    }
}
