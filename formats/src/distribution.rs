//! The Docker Distribution on-disk layout (`docker/registry/v2/...`), the format of a registry's filesystem
//! storage and of a cluster image's embedded `registry/` directory.
//!
//! ```text
//! <root>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data
//! <root>/docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link
//! <root>/docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link
//! <root>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link
//! <root>/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
//! <root>/docker/registry/v2/repositories/<repo>/_uploads/<id>/...
//! ```
//! A link file holds the text `sha256:<hex>` and nothing else.

use std::path::{Path, PathBuf};

use crate::digest::Digest;

/// Paths inside one Distribution layout rooted at `root` (the directory that holds `docker/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionPaths {
    root: PathBuf,
}

impl DistributionPaths {
    /// The layout rooted at `root` (the directory that contains `docker/registry/v2`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DistributionPaths { root: root.into() }
    }

    /// The layout's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/docker/registry/v2`.
    pub fn v2(&self) -> PathBuf {
        self.root.join("docker/registry/v2")
    }

    /// `<v2>/blobs`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.v2().join("blobs")
    }

    /// The directory holding a blob's `data` file.
    pub fn blob_dir(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.blobs_dir()
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// The file holding a blob's bytes.
    pub fn blob_data(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest).join("data")
    }

    /// `<v2>/repositories`.
    pub fn repositories_dir(&self) -> PathBuf {
        self.v2().join("repositories")
    }

    /// The directory of one repository (`repo` is a slash-separated name such as `library/nginx`).
    pub fn repository_dir(&self, repo: &str) -> PathBuf {
        self.repositories_dir().join(repo)
    }

    /// The link that makes a blob part of a repository.
    pub fn layer_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repository_dir(repo)
            .join("_layers")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
            .join("link")
    }

    /// The link that makes a manifest revision part of a repository.
    pub fn revision_link(&self, repo: &str, digest: &Digest) -> PathBuf {
        self.repository_dir(repo)
            .join("_manifests/revisions")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
            .join("link")
    }

    /// `<repo>/_manifests/tags`.
    pub fn tags_dir(&self, repo: &str) -> PathBuf {
        self.repository_dir(repo).join("_manifests/tags")
    }

    /// The link naming the manifest a tag currently points to.
    pub fn tag_current_link(&self, repo: &str, tag: &str) -> PathBuf {
        self.tags_dir(repo).join(tag).join("current/link")
    }

    /// The link recording that a tag has pointed to `digest` (the tag's history index).
    pub fn tag_index_link(&self, repo: &str, tag: &str, digest: &Digest) -> PathBuf {
        self.tags_dir(repo)
            .join(tag)
            .join("index")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
            .join("link")
    }

    /// `<repo>/_uploads`.
    pub fn uploads_dir(&self, repo: &str) -> PathBuf {
        self.repository_dir(repo).join("_uploads")
    }
}

/// The text of a link file for `digest`.
pub fn link_text(digest: &Digest) -> String {
    digest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_distribution_layout() {
        let p = DistributionPaths::new("/r");
        let d = Digest::sha256_of(b"");
        let hex = d.hex();
        assert_eq!(
            p.blob_data(&d),
            PathBuf::from(format!("/r/docker/registry/v2/blobs/sha256/e3/{hex}/data"))
        );
        assert_eq!(
            p.layer_link("library/nginx", &d),
            PathBuf::from(format!(
                "/r/docker/registry/v2/repositories/library/nginx/_layers/sha256/{hex}/link"
            ))
        );
        assert_eq!(
            p.tag_current_link("pause", "3.9"),
            PathBuf::from(
                "/r/docker/registry/v2/repositories/pause/_manifests/tags/3.9/current/link"
            )
        );
        assert_eq!(
            p.tag_index_link("pause", "3.9", &d),
            PathBuf::from(format!(
                "/r/docker/registry/v2/repositories/pause/_manifests/tags/3.9/index/sha256/{hex}/link"
            ))
        );
    }
}
