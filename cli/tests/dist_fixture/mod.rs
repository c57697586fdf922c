//! Distribution-layout directories for tests, written through the registry's store (`registry::mirror::Store`,
//! the one writer of the layout): blobs linked into a repository, manifests stored and tagged.

#![allow(dead_code)]

use std::path::Path;

use bytes::Bytes;
use formats::digest::Digest;
use formats::manifest::RawManifest;
use registry::mirror::Store;

/// A directory in the Distribution layout being filled.
pub struct DistDir {
    store: Store,
    rt: tokio::runtime::Runtime,
}

impl DistDir {
    /// The directory `root` (created as needed).
    pub fn new(root: &Path) -> DistDir {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        DistDir {
            store: Store::dir(root),
            rt,
        }
    }

    /// Stores `bytes` as a blob linked into `repo`; returns its digest.
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let storage = self.store.storage();
        self.rt.block_on(async {
            storage
                .put_blob_bytes(&d, Bytes::copy_from_slice(bytes))
                .await
                .unwrap();
            storage.link_layer(repo, &d).await.unwrap();
        });
        d
    }

    /// Stores `raw` in `repo` byte-exact and points `tag` at it when given.
    pub fn manifest(&self, repo: &str, raw: &RawManifest, tag: Option<&str>) {
        self.rt
            .block_on(self.store.put_manifest(repo, raw, tag))
            .unwrap();
    }
}
