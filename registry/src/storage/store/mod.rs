//! [`DistributionStore`]: the one implementation of [`Storage`], in the Docker Distribution layout
//! (`docker/registry/v2/...`, paths from [`DistributionPaths`]) over any byte-level [`Driver`], so a
//! distribution data directory, a cluster image's `registry/` directory or a bucket written by distribution
//! serves as is, and distribution reads what we write.
//!
//! The store owns the layout, the links, tags, revisions, upload sessions ([`uploads`]) and blob reads with their
//! checks ([`blobs`]); the driver only keeps bytes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use formats::digest::{Algorithm, Digest};
use formats::distribution::{DistributionPaths, link_text};

use super::driver::{Driver, join, parent};
use super::{BlobReader, ByteRange, ByteStream, Result, Storage, StorageError, UploadStatus};

mod blobs;
mod uploads;

/// Link files hold one digest; anything longer is damage.
const LINK_MAX: u64 = 1024;

/// The registry's storage over the driver `D`. See the module docs of [`super`] for what is atomic.
pub struct DistributionStore<D: Driver> {
    driver: D,
    /// The layout with an empty root: every path is relative, as drivers want them.
    paths: DistributionPaths,
    /// Blobs are hashed before they are first served ([`DistributionStore::verify_on_first_read`]).
    verify: bool,
    /// Blobs hashed, with the stamp of the file hashed and whether it matched.
    verified: Mutex<HashMap<Digest, (String, bool)>>,
    /// One verification at a time per blob: concurrent first reads wait for it instead of hashing again.
    verifying: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// One request at a time per upload session, with the size this process last committed to it (`None` when
    /// this process has not seen all of its bytes).
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<u64>>>>>,
}

/// A layout path as a driver path.
fn rel(path: PathBuf) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

/// Takes a lock, whatever a panicking holder left behind (the maps stay consistent).
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<D: Driver> DistributionStore<D> {
    /// The store over `driver`.
    pub fn with_driver(driver: D) -> Self {
        DistributionStore {
            driver,
            paths: DistributionPaths::new(""),
            verify: false,
            verified: Mutex::default(),
            verifying: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    /// With `on`, every blob is hashed against its digest before it is first served (a whole read before the
    /// response starts); the file's stamp is remembered, so later reads cost nothing until the file changes. A
    /// blob that does not match is refused ([`StorageError::Corrupt`]) and logged. For trees this registry did
    /// not write itself (a cluster image's `registry/`, which `sealos run` serves): blobs it stores are verified
    /// as they are uploaded.
    pub fn verify_on_first_read(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// The driver under the store.
    pub fn driver(&self) -> &D {
        &self.driver
    }

    fn blob_path(&self, digest: &Digest) -> String {
        rel(self.paths.blob_data(digest))
    }

    fn repo_path(&self, repo: &str) -> String {
        rel(self.paths.repository_dir(repo))
    }

    /// The digest a link file names, or `None` when it is missing.
    async fn read_link(&self, path: &str) -> Result<Option<Digest>> {
        let corrupt = |reason: String| StorageError::Corrupt {
            what: path.to_string(),
            reason,
        };
        let bytes = match self.driver.get(path, LINK_MAX).await {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(StorageError::TooLarge { .. }) => {
                return Err(corrupt(format!("a link of more than {LINK_MAX} bytes")));
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&bytes);
        Digest::parse(text.trim())
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Writes the link at `path` naming `digest` unless it is there already (links are idempotent).
    async fn ensure_link(&self, path: &str, digest: &Digest) -> Result<()> {
        if self.driver.stat(path).await?.is_some() {
            return Ok(());
        }
        self.driver.put(path, Bytes::from(link_text(digest))).await
    }

    /// Removes the link at `path` (its directory); false when there was none.
    async fn remove_link(&self, path: &str) -> Result<bool> {
        Ok(self.driver.stat(path).await?.is_some() && self.driver.delete(parent(path)).await?)
    }

    /// Digests named by `<dir>/<algorithm>/<hex>/link` files (`_layers`, `_manifests/revisions`).
    async fn list_links(&self, dir: &str) -> Result<Vec<Digest>> {
        let mut out: Vec<Digest> = self
            .driver
            .walk(dir)
            .await?
            .iter()
            .filter_map(|file| match file.split('/').collect::<Vec<_>>()[..] {
                [alg, hex, "link"] => Digest::from_parts(alg.parse::<Algorithm>().ok()?, hex).ok(),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Calls `visit(name, dir)` for every repository candidate below `dir` (any depth), skipping the
    /// `_`-prefixed directories distribution uses and hidden ones.
    async fn walk_repositories(
        &self,
        visit: &mut (dyn FnMut(&str, &[super::driver::Entry]) + Send),
    ) -> Result<()> {
        let mut pending = vec![String::new()];
        let root = rel(self.paths.repositories_dir());
        while let Some(name) = pending.pop() {
            let entries = self.driver.list(&join(&root, &name)).await?;
            if !name.is_empty() {
                visit(&name, &entries);
            }
            for e in entries.iter().rev() {
                if e.is_dir && !e.name.starts_with('_') && !e.name.starts_with('.') {
                    pending.push(join(&name, &e.name));
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Driver> Storage for DistributionStore<D> {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self
            .driver
            .stat(&self.blob_path(digest))
            .await?
            .map(|i| i.size))
    }

    async fn blob_modified(&self, digest: &Digest) -> Result<Option<std::time::SystemTime>> {
        Ok(self
            .driver
            .stat(&self.blob_path(digest))
            .await?
            .and_then(|i| i.modified))
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.open_blob(digest, range, super::driver::ReadMode::Copy)
            .await
    }

    async fn send_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.open_blob(digest, range, super::driver::ReadMode::Mapped)
            .await
    }

    async fn blob_redirect(&self, digest: &Digest) -> Result<Option<String>> {
        self.driver.redirect_url(&self.blob_path(digest)).await
    }

    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let path = self.blob_path(digest);
        if self.driver.stat(&path).await?.is_some() {
            return Ok(());
        }
        self.driver.put(&path, bytes).await
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>> {
        let mut out: Vec<Digest> = self
            .driver
            .walk(&rel(self.paths.blobs_dir()))
            .await?
            .iter()
            .filter_map(|file| match file.split('/').collect::<Vec<_>>()[..] {
                [alg, _, hex, "data"] => {
                    Digest::from_parts(alg.parse::<Algorithm>().ok()?, hex).ok()
                }
                _ => None,
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<()> {
        if self
            .driver
            .delete(&rel(self.paths.blob_dir(digest)))
            .await?
        {
            Ok(())
        } else {
            Err(StorageError::BlobUnknown(digest.clone()))
        }
    }

    async fn create_upload(&self, repo: &str) -> Result<UploadStatus> {
        self.start_session(repo).await
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        self.session_status(repo, id).await
    }

    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        self.append_session(repo, id, offset, expected_len, body)
            .await
    }

    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        self.finish_session(repo, id, digest).await
    }

    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()> {
        self.cancel_session(repo, id).await
    }

    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>> {
        self.list_sessions().await
    }

    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.ensure_link(&rel(self.paths.layer_link(repo, digest)), digest)
            .await
    }

    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&rel(self.paths.layer_link(repo, digest)))
            .await?
            .is_some())
    }

    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        if self
            .remove_link(&rel(self.paths.layer_link(repo, digest)))
            .await?
        {
            Ok(())
        } else {
            Err(StorageError::BlobUnknown(digest.clone()))
        }
    }

    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>> {
        self.list_links(&join(&self.repo_path(repo), "_layers"))
            .await
    }

    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        self.ensure_link(&rel(self.paths.revision_link(repo, digest)), digest)
            .await
    }

    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self
            .read_link(&rel(self.paths.revision_link(repo, digest)))
            .await?
            .is_some())
    }

    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        if !self
            .remove_link(&rel(self.paths.revision_link(repo, digest)))
            .await?
        {
            return Err(StorageError::ManifestUnknown(digest.to_string()));
        }
        // Tags pointing at a deleted manifest go with it, as in distribution.
        let tags = rel(self.paths.tags_dir(repo));
        for tag in self
            .driver
            .list(&tags)
            .await?
            .into_iter()
            .filter(|e| e.is_dir)
        {
            let current = rel(self.paths.tag_current_link(repo, &tag.name));
            if self.read_link(&current).await.ok().flatten().as_ref() == Some(digest) {
                self.driver.delete(&join(&tags, &tag.name)).await?;
            }
        }
        Ok(())
    }

    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>> {
        self.list_links(&join(&self.repo_path(repo), "_manifests/revisions"))
            .await
    }

    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        self.ensure_link(&rel(self.paths.tag_index_link(repo, tag, digest)), digest)
            .await?;
        self.driver
            .put(
                &rel(self.paths.tag_current_link(repo, tag)),
                Bytes::from(link_text(digest)),
            )
            .await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        self.read_link(&rel(self.paths.tag_current_link(repo, tag)))
            .await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let current = rel(self.paths.tag_current_link(repo, tag));
        if self.driver.stat(&current).await?.is_none() {
            return Err(StorageError::ManifestUnknown(tag.to_string()));
        }
        // `current` first, so a crash leaves no tag rather than a tag without history.
        self.driver.delete(&current).await?;
        self.driver
            .delete(&join(&rel(self.paths.tags_dir(repo)), tag))
            .await?;
        Ok(())
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        if !self.repository_exists(repo).await? {
            return Err(StorageError::NameUnknown(repo.to_string()));
        }
        let mut tags = Vec::new();
        for dir in self
            .driver
            .list(&rel(self.paths.tags_dir(repo)))
            .await?
            .into_iter()
            .filter(|e| e.is_dir)
        {
            let current = rel(self.paths.tag_current_link(repo, &dir.name));
            if self.driver.stat(&current).await.ok().flatten().is_some() {
                tags.push(dir.name);
            }
        }
        tags.sort();
        Ok(tags)
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk_repositories(&mut |name, entries| {
            if entries.iter().any(|e| e.is_dir && e.name == "_manifests") {
                out.push(name.to_string());
            }
        })
        .await?;
        out.sort();
        Ok(out)
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        Ok(!self.driver.list(&self.repo_path(repo)).await?.is_empty())
    }
}

#[cfg(test)]
mod tests;
