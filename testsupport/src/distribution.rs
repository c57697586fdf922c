//! Docker Distribution trees written file by file, as another tool (docker-registry, `aws s3 sync`, a cluster
//! image's `registry/`) leaves them: for tests of code that reads or repairs a tree it did not write. The
//! product writes the layout through one writer only, the registry's store (`registry::storage`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use formats::digest::Digest;
use formats::distribution::{DistributionPaths, link_text};
use formats::manifest::RawManifest;

/// A Distribution tree being written directly.
#[derive(Debug, Clone)]
pub struct RawTree {
    paths: DistributionPaths,
}

fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)
}

impl RawTree {
    /// The tree rooted at `root` (the directory that holds, or will hold, `docker/registry/v2`).
    pub fn new(root: impl Into<PathBuf>) -> RawTree {
        RawTree {
            paths: DistributionPaths::new(root),
        }
    }

    /// The paths of the tree.
    pub fn paths(&self) -> &DistributionPaths {
        &self.paths
    }

    /// Writes the bytes `reader` holds as a blob's `data`; `expected` (when given) must be their digest and
    /// `size` their length. Returns the digest and size.
    pub fn write_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> io::Result<(Digest, u64)> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        let digest = Digest::sha256_of(&bytes);
        if expected.is_some_and(|e| *e != digest) || size.is_some_and(|s| s != bytes.len() as u64) {
            return Err(io::Error::other(format!(
                "the bytes ({digest}, {} bytes) are not the blob asked for",
                bytes.len()
            )));
        }
        write(&self.paths.blob_data(&digest), &bytes)?;
        Ok((digest, bytes.len() as u64))
    }

    /// Links blob `digest` into `repo`.
    pub fn link_layer(&self, repo: &str, digest: &Digest) -> io::Result<()> {
        write(
            &self.paths.layer_link(repo, digest),
            link_text(digest).as_bytes(),
        )
    }

    /// Stores manifest `raw` as a blob, links it as a revision of `repo` and points `tag` at it when given.
    pub fn put_manifest(&self, repo: &str, raw: &RawManifest, tag: Option<&str>) -> io::Result<()> {
        let d = &raw.digest;
        self.write_blob(raw.bytes.as_slice(), Some(d), None)?;
        let link = link_text(d);
        write(&self.paths.revision_link(repo, d), link.as_bytes())?;
        if let Some(tag) = tag {
            write(&self.paths.tag_index_link(repo, tag, d), link.as_bytes())?;
            write(&self.paths.tag_current_link(repo, tag), link.as_bytes())?;
        }
        Ok(())
    }
}
