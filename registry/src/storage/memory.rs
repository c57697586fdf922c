//! The in-memory backend (`registry serve inmem`): everything lives in process memory and is lost on exit.
//! Each operation takes one lock, so every operation is atomic; a chunk is gathered before it is appended.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use formats::digest::{Algorithm, Digest, Hasher};
use futures_util::StreamExt;

use super::{BlobReader, ByteRange, ByteStream, Result, Storage, StorageError, UploadStatus};

/// Storage held in memory.
#[derive(Default)]
pub struct MemoryStorage {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blobs: HashMap<Digest, Bytes>,
    repos: BTreeMap<String, Repo>,
}

#[derive(Default)]
struct Repo {
    layers: BTreeSet<Digest>,
    revisions: BTreeSet<Digest>,
    tags: BTreeMap<String, Digest>,
    uploads: HashMap<String, Upload>,
}

struct Upload {
    data: Vec<u8>,
    hasher: Hasher,
    started: Instant,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.with(|s| s.blobs.get(digest).map(|b| b.len() as u64)))
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        let bytes = self
            .with(|s| s.blobs.get(digest).cloned())
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        let size = bytes.len() as u64;
        let (range, slice) = match range {
            None => (None, bytes),
            Some(r) => {
                let r = r.within(size)?;
                let slice = bytes.slice(r.start as usize..=r.end as usize);
                (Some(r), slice)
            }
        };
        // Chunks of 256 KiB so large in-memory blobs still stream.
        let chunks: Vec<std::io::Result<Bytes>> = (0..slice.len())
            .step_by(256 * 1024)
            .map(|i| Ok(slice.slice(i..(i + 256 * 1024).min(slice.len()))))
            .collect();
        Ok(BlobReader {
            size,
            range,
            stream: Box::pin(futures_util::stream::iter(chunks)),
        })
    }

    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        self.with(|s| s.blobs.insert(actual, bytes));
        Ok(())
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>> {
        let mut v: Vec<Digest> = self.with(|s| s.blobs.keys().cloned().collect());
        v.sort();
        Ok(v)
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<()> {
        self.with(|s| s.blobs.remove(digest))
            .map(|_| ())
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))
    }

    async fn create_upload(&self, repo: &str) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        self.with(|s| {
            s.repos.entry(repo.to_string()).or_default().uploads.insert(
                id.clone(),
                Upload {
                    data: Vec::new(),
                    hasher: Algorithm::Sha256.hasher(),
                    started: Instant::now(),
                },
            )
        });
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        self.with(|s| {
            s.repos
                .get(repo)
                .and_then(|r| r.uploads.get(id))
                .map(|u| UploadStatus {
                    id: id.to_string(),
                    offset: u.data.len() as u64,
                })
        })
        .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))
    }

    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        mut body: ByteStream,
    ) -> Result<UploadStatus> {
        let current = self.upload_status(repo, id).await?.offset;
        if let Some(given) = offset.filter(|o| *o != current) {
            return Err(StorageError::OutOfOrder { current, given });
        }
        let mut chunk = Vec::new();
        while let Some(part) = body.next().await {
            chunk.extend_from_slice(&part.map_err(StorageError::Body)?);
        }
        if let Some(expected) = expected_len.filter(|e| *e != chunk.len() as u64) {
            return Err(StorageError::ChunkLength {
                expected,
                actual: chunk.len() as u64,
            });
        }
        self.with(|s| {
            let upload = s
                .repos
                .get_mut(repo)
                .and_then(|r| r.uploads.get_mut(id))
                .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))?;
            let now = upload.data.len() as u64;
            if now != current {
                return Err(StorageError::OutOfOrder {
                    current: now,
                    given: current,
                });
            }
            upload.hasher.update(&chunk);
            upload.data.extend_from_slice(&chunk);
            Ok(UploadStatus {
                id: id.to_string(),
                offset: upload.data.len() as u64,
            })
        })
    }

    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        let upload = self
            .with(|s| s.repos.get_mut(repo).and_then(|r| r.uploads.remove(id)))
            .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))?;
        let actual = if upload.hasher.algorithm() == digest.algorithm() {
            upload.hasher.finish()
        } else {
            Digest::of(digest.algorithm(), &upload.data)
        };
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let size = upload.data.len() as u64;
        self.with(|s| s.blobs.insert(actual, Bytes::from(upload.data)));
        Ok(size)
    }

    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()> {
        self.with(|s| s.repos.get_mut(repo).and_then(|r| r.uploads.remove(id)))
            .map(|_| ())
            .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))
    }

    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>> {
        Ok(self.with(|s| {
            s.repos
                .iter()
                .flat_map(|(name, r)| {
                    r.uploads.iter().map(move |(id, u)| {
                        (name.clone(), id.clone(), u.started.elapsed().as_secs())
                    })
                })
                .collect()
        }))
    }

    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.with(|s| {
            s.repos
                .entry(repo.to_string())
                .or_default()
                .layers
                .insert(digest.clone())
        });
        Ok(())
    }

    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.with(|s| s.repos.get(repo).is_some_and(|r| r.layers.contains(digest))))
    }

    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        if self.with(|s| {
            s.repos
                .get_mut(repo)
                .is_some_and(|r| r.layers.remove(digest))
        }) {
            Ok(())
        } else {
            Err(StorageError::BlobUnknown(digest.clone()))
        }
    }

    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>> {
        Ok(self.with(|s| {
            s.repos
                .get(repo)
                .map(|r| r.layers.iter().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.with(|s| {
            s.repos
                .entry(repo.to_string())
                .or_default()
                .revisions
                .insert(digest.clone())
        });
        Ok(())
    }

    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.with(|s| {
            s.repos
                .get(repo)
                .is_some_and(|r| r.revisions.contains(digest))
        }))
    }

    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.with(|s| {
            let r = s
                .repos
                .get_mut(repo)
                .filter(|r| r.revisions.contains(digest))
                .ok_or_else(|| StorageError::ManifestUnknown(digest.to_string()))?;
            r.revisions.remove(digest);
            r.tags.retain(|_, d| d != digest);
            Ok(())
        })
    }

    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>> {
        Ok(self.with(|s| {
            s.repos
                .get(repo)
                .map(|r| r.revisions.iter().cloned().collect())
                .unwrap_or_default()
        }))
    }

    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        self.with(|s| {
            s.repos
                .entry(repo.to_string())
                .or_default()
                .tags
                .insert(tag.to_string(), digest.clone())
        });
        Ok(())
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        Ok(self.with(|s| s.repos.get(repo).and_then(|r| r.tags.get(tag).cloned())))
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        self.with(|s| s.repos.get_mut(repo).and_then(|r| r.tags.remove(tag)))
            .map(|_| ())
            .ok_or_else(|| StorageError::ManifestUnknown(tag.to_string()))
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        self.with(|s| s.repos.get(repo).map(|r| r.tags.keys().cloned().collect()))
            .ok_or_else(|| StorageError::NameUnknown(repo.to_string()))
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        Ok(self.with(|s| {
            s.repos
                .iter()
                .filter(|(_, r)| !r.revisions.is_empty() || !r.tags.is_empty())
                .map(|(n, _)| n.clone())
                .collect()
        }))
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        Ok(self.with(|s| s.repos.contains_key(repo)))
    }
}
