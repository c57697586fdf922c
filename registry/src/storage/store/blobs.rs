//! Opening blobs, with verification on first read for trees this registry did not write.

use std::sync::Arc;

use formats::digest::{Digest, Hasher};

use super::{DistributionStore, locked};
use crate::storage::driver::{Driver, FileInfo, Opened, ReadMode};
use crate::storage::{BlobReader, ByteRange, ByteStream, Result, StorageError, for_each_chunk};

/// Feeds a whole stream into `hasher`; `what` names the source in errors.
pub(crate) async fn hash_stream(
    stream: ByteStream,
    mut hasher: Hasher,
    what: &str,
) -> Result<(Hasher, u64)> {
    let mut len = 0u64;
    for_each_chunk(stream, "read", what, |frame| {
        len += frame.len() as u64;
        hasher.update(frame);
    })
    .await?;
    Ok((hasher, len))
}

impl<D: Driver> DistributionStore<D> {
    /// Opens a blob or a range of it, verified first when the store verifies on first read.
    pub(super) async fn open_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
        mode: ReadMode,
    ) -> Result<BlobReader> {
        let path = self.blob_path(digest);
        let opened = self
            .driver
            .reader(&path, range, mode)
            .await?
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        if self.verify {
            self.verify_once(digest, &path, &opened.info).await?;
        }
        let Opened {
            info,
            range,
            stream,
        } = opened;
        Ok(BlobReader {
            size: info.size,
            range,
            stream,
        })
    }

    /// Whether the blob's file with this stamp was hashed before, and matched.
    fn known(&self, digest: &Digest, stamp: &str) -> Option<bool> {
        locked(&self.verified)
            .get(digest)
            .filter(|(known, _)| known == stamp)
            .map(|(_, matched)| *matched)
    }

    /// Hashes the blob at `path` against `digest` unless the file with the stamp of the one opened (`info`)
    /// was verified before; concurrent first reads of one blob hash it once. A file replaced between the hash
    /// and the open (another stamp) is hashed again.
    async fn verify_once(&self, digest: &Digest, path: &str, info: &FileInfo) -> Result<()> {
        let corrupt = || StorageError::Corrupt {
            what: path.to_string(),
            reason: format!(
                "its content does not match its digest `{digest}`, so it is not served"
            ),
        };
        let gate = {
            if let Some(matched) = self.known(digest, &info.stamp) {
                return if matched { Ok(()) } else { Err(corrupt()) };
            }
            let mut map = locked(&self.verifying);
            map.entry(digest.clone()).or_default().clone()
        };
        let turn = Arc::clone(&gate);
        let _turn = turn.lock().await;
        let hashed = async {
            if let Some(matched) = self.known(digest, &info.stamp) {
                return Ok(matched);
            }
            let whole = self
                .driver
                .reader(path, None, ReadMode::Copy)
                .await?
                .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
            let stamp = whole.info.stamp.clone();
            let (hasher, _) = hash_stream(whole.stream, digest.algorithm().hasher(), path).await?;
            let matched = hasher.finish() == *digest;
            locked(&self.verified).insert(digest.clone(), (stamp.clone(), matched));
            if stamp != info.stamp {
                return Err(StorageError::Io {
                    op: "verify",
                    path: path.to_string(),
                    source: std::io::Error::other(
                        "the blob's file was replaced while it was verified; retry",
                    ),
                });
            }
            Ok(matched)
        }
        .await;
        locked(&self.verifying).remove(digest);
        if !hashed? {
            #[cfg(any(feature = "client", feature = "server"))]
            tracing::error!(
                blob = %digest,
                path,
                "corrupt blob: its content does not match its digest; refusing to serve it"
            );
            // The computed digest is left out: it says nothing useful and would hash any file for the asker.
            return Err(corrupt());
        }
        Ok(())
    }
}
