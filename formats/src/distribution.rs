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
//!
//! [`DistributionPaths`] only computes paths; [`DistributionLayout`] reads repositories, tags, manifests and
//! blobs of a tree (a cluster image's `registry/`, a saved directory). Trees are written by the registry's
//! store (`registry::storage`, also behind `registry save`), the one writer of the layout. It never reaches
//! anything below the root through a symlink ([`check_beneath`], [`open_beneath`]): a tree that came from
//! elsewhere cannot make it read host files.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fsutil::{BeneathError, check_beneath, open_beneath};
use crate::manifest::{ManifestError, RawManifest};
use crate::oci_layout::MAX_JSON_BLOB;

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

/// Errors from reading a Distribution layout, or from names it cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// A filesystem operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A repository name is not acceptable.
    #[error("{reason}")]
    InvalidRepository {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tag is not acceptable.
    #[error("invalid tag `{tag}`: {reason} (tags match `[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}`)")]
    InvalidTag {
        /// The rejected tag.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob is not in the layout.
    #[error("blob {0} is not in the distribution layout")]
    BlobNotFound(Digest),
    /// A manifest is not linked into the repository.
    #[error("manifest {digest} is not in repository `{repo}`")]
    ManifestNotInRepository {
        /// The repository.
        repo: String,
        /// The manifest digest.
        digest: Digest,
    },
    /// A stored manifest blob is unusable.
    #[error("manifest {digest}: {reason}")]
    BadManifest {
        /// The manifest digest.
        digest: Digest,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest could not be parsed.
    #[error("manifest {digest}: {source}")]
    Manifest {
        /// The manifest digest.
        digest: Digest,
        /// Why it was rejected.
        source: ManifestError,
    },
    /// A link file does not hold a digest.
    #[error("link file `{path}` is invalid: {reason}")]
    BadLink {
        /// The link file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A path below the root goes through a symlink, or a blob or link is not a regular file.
    #[error(transparent)]
    Refused(#[from] BeneathError),
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> DistributionError + 'a {
    move |source| DistributionError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a repository name by the one rule, [`crate::repository::Repository`]: this rejects `..`, absolute
/// paths and empty components.
pub fn validate_repository(name: &str) -> Result<(), DistributionError> {
    crate::repository::Repository::parse(name)
        .map(drop)
        .map_err(|e| DistributionError::InvalidRepository {
            name: name.to_string(),
            reason: e.to_string(),
        })
}

/// Checks a tag by the one rule, [`crate::reference::is_valid_tag`].
pub fn validate_tag(tag: &str) -> Result<(), DistributionError> {
    if crate::reference::is_valid_tag(tag) {
        return Ok(());
    }
    Err(DistributionError::InvalidTag {
        tag: tag.to_string(),
        reason: "not a valid tag".to_string(),
    })
}

/// A Distribution layout being read: the storage of `docker-registry`, a cluster image's `registry/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionLayout {
    paths: DistributionPaths,
}

impl DistributionLayout {
    /// The layout rooted at `root` (the directory that holds `docker/registry/v2`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DistributionLayout {
            paths: DistributionPaths::new(root),
        }
    }

    /// The paths of this layout.
    pub fn paths(&self) -> &DistributionPaths {
        &self.paths
    }

    /// Every repository (a directory holding `_manifests`, at any depth), sorted.
    pub fn repositories(&self) -> Result<Vec<String>, DistributionError> {
        let mut found = Vec::new();
        let base = self.paths.repositories_dir();
        if check_beneath(self.paths.root(), &base)?.is_none() {
            return Ok(found);
        }
        let mut stack = vec![(base.clone(), String::new())];
        while let Some((dir, name)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound && dir == base => continue,
                Err(e) => return Err(io_err("list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_err("list", &dir))?;
                let file_name = entry.file_name();
                let Some(child) = file_name.to_str() else {
                    continue;
                };
                if !entry
                    .file_type()
                    .map_err(io_err("stat", &entry.path()))?
                    .is_dir()
                {
                    continue;
                }
                if child == "_manifests" && !name.is_empty() {
                    found.push(name.clone());
                } else if !child.starts_with('_') {
                    let full = if name.is_empty() {
                        child.to_string()
                    } else {
                        format!("{name}/{child}")
                    };
                    stack.push((entry.path(), full));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The tags of `repo` that point somewhere, sorted.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>, DistributionError> {
        validate_repository(repo)?;
        let dir = self.paths.tags_dir(repo);
        if check_beneath(self.paths.root(), &dir)?.is_none() {
            return Ok(Vec::new());
        }
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut tags = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let current = entry.path().join("current/link");
            if let Some(tag) = entry.file_name().to_str()
                && check_beneath(self.paths.root(), &current)
                    .is_ok_and(|m| m.is_some_and(|m| m.is_file()))
            {
                tags.push(tag.to_string());
            }
        }
        tags.sort();
        Ok(tags)
    }

    fn read_link(&self, path: &Path) -> Result<Option<Digest>, DistributionError> {
        let file = match open_beneath(self.paths.root(), path) {
            Ok((file, _)) => file,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut text = String::new();
        file.take(1024)
            .read_to_string(&mut text)
            .map_err(io_err("read link", path))?;
        Digest::parse(text.trim())
            .map(Some)
            .map_err(|e| DistributionError::BadLink {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// The manifest digest `repo:tag` points to, if the tag exists.
    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>, DistributionError> {
        validate_repository(repo)?;
        validate_tag(tag)?;
        self.read_link(&self.paths.tag_current_link(repo, tag))
    }

    /// Reads a manifest linked into `repo`, verifying its digest; the bytes are returned exactly as stored.
    pub fn read_manifest(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<RawManifest, DistributionError> {
        validate_repository(repo)?;
        if self
            .read_link(&self.paths.revision_link(repo, digest))?
            .as_ref()
            != Some(digest)
        {
            return Err(DistributionError::ManifestNotInRepository {
                repo: repo.to_string(),
                digest: digest.clone(),
            });
        }
        let path = self.paths.blob_data(digest);
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(DistributionError::BadManifest {
                digest: digest.clone(),
                reason: format!("larger than {MAX_JSON_BLOB} bytes"),
            });
        }
        digest
            .verify(&bytes)
            .map_err(|e| DistributionError::BadManifest {
                digest: digest.clone(),
                reason: format!("stored blob is corrupt: {e}"),
            })?;
        RawManifest::from_bytes(bytes, None).map_err(|source| DistributionError::Manifest {
            digest: digest.clone(),
            source,
        })
    }

    /// Opens a blob's data for streaming: a regular file reached without symlinks ([`open_beneath`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, DistributionError> {
        let path = self.paths.blob_data(digest);
        match open_beneath(self.paths.root(), &path) {
            Ok((file, _)) => Ok(file),
            Err(e) if e.is_not_found() => Err(DistributionError::BlobNotFound(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::manifest::{Descriptor, ImageManifest};
    use crate::media_type;

    /// Test trees as the registry's store writes them: blob data files and link files holding the digest.
    struct Tree(DistributionPaths);

    impl Tree {
        fn new(root: &Path) -> Tree {
            Tree(DistributionPaths::new(root))
        }

        fn write(&self, path: &Path, bytes: &[u8]) {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }

        fn blob(&self, bytes: &[u8]) -> Digest {
            let d = Digest::sha256_of(bytes);
            self.write(&self.0.blob_data(&d), bytes);
            d
        }

        fn link(&self, path: &Path, d: &Digest) {
            self.write(path, link_text(d).as_bytes());
        }

        fn manifest(&self, repo: &str, raw: &RawManifest, tag: Option<&str>) {
            self.blob(&raw.bytes);
            self.link(&self.0.revision_link(repo, &raw.digest), &raw.digest);
            if let Some(tag) = tag {
                self.link(&self.0.tag_index_link(repo, tag, &raw.digest), &raw.digest);
                self.link(&self.0.tag_current_link(repo, tag), &raw.digest);
            }
        }
    }

    fn empty_image() -> RawManifest {
        RawManifest::from_created(
            &ImageManifest::new(Descriptor::empty(), vec![]),
            media_type::OCI_MANIFEST,
        )
        .unwrap()
    }

    #[test]
    fn repository_names_and_tags_are_validated() {
        for ok in ["a", "library/nginx", "a/b/c/d/e", "my-app.v2/x_y", "a__b"] {
            validate_repository(ok).unwrap();
        }
        for bad in [
            "", "/abs", "a/../b", "..", "a//b", "A", "a/", "-a", "a-", "a b", "a/.",
        ] {
            let e = validate_repository(bad).unwrap_err().to_string();
            assert!(e.contains("invalid repository name"), "{bad}: {e}");
        }
        for ok in ["v1", "latest", "_x", "1.2.3-rc.1"] {
            validate_tag(ok).unwrap();
        }
        for bad in ["", ".x", "-x", "a/b", "..", "a b", &"x".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_below_the_root_are_never_followed_for_reads() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"host secret").unwrap();
        let root = dir.path().join("root");
        let tree = Tree::new(&root);
        let d = tree.blob(b"data");
        let l = DistributionLayout::new(&root);
        let data = l.paths().blob_data(&d);
        fs::remove_file(&data).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), &data).unwrap();
        let err = l.open_blob(&d).unwrap_err();
        assert!(
            matches!(err, DistributionError::Refused(BeneathError::Symlink(_))),
            "{err}"
        );
        let current = l.paths().tag_current_link("a/b", "t");
        fs::create_dir_all(current.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), &current).unwrap();
        let err = l.resolve_tag("a/b", "t").unwrap_err().to_string();
        assert!(
            err.contains("is a symlink") && !err.contains("host secret"),
            "{err}"
        );
        assert!(l.tags("a/b").unwrap().is_empty());
        fs::create_dir_all(outside.join("_manifests")).unwrap();
        std::os::unix::fs::symlink(&outside, l.paths().repository_dir("c")).unwrap();
        assert!(l.repositories().unwrap().iter().all(|r| r != "c"));
    }

    #[test]
    fn tags_resolve_and_manifests_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let raw = empty_image();
        Tree::new(dir.path()).manifest("team/app", &raw, Some("v1"));
        let l = DistributionLayout::new(dir.path());
        assert_eq!(
            l.resolve_tag("team/app", "v1").unwrap(),
            Some(raw.digest.clone())
        );
        assert_eq!(l.resolve_tag("team/app", "v2").unwrap(), None);
        assert_eq!(l.read_manifest("team/app", &raw.digest).unwrap(), raw);
        assert!(matches!(
            l.read_manifest("other", &raw.digest),
            Err(DistributionError::ManifestNotInRepository { .. })
        ));
        assert!(l.resolve_tag("../escape", "v1").is_err());
        assert!(l.resolve_tag("ok", "bad/tag").is_err());
        let mut s = String::new();
        l.open_blob(&raw.digest)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s.as_bytes(), raw.bytes.as_slice());
        assert!(matches!(
            l.open_blob(&Digest::sha256_of(b"absent")),
            Err(DistributionError::BlobNotFound(_))
        ));
    }

    #[test]
    fn repositories_are_found_at_any_depth_and_tags_listed() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        assert!(l.repositories().unwrap().is_empty());
        let raw = empty_image();
        let tree = Tree::new(dir.path());
        for repo in ["a", "a/b", "x/y/z"] {
            tree.manifest(repo, &raw, Some("v1"));
        }
        tree.manifest("a", &raw, Some("v0"));
        tree.manifest("untagged/repo", &raw, None);
        assert_eq!(
            l.repositories().unwrap(),
            ["a", "a/b", "untagged/repo", "x/y/z"]
        );
        assert_eq!(l.tags("a").unwrap(), ["v0", "v1"]);
        assert!(l.tags("untagged/repo").unwrap().is_empty());
        assert!(l.tags("missing").unwrap().is_empty());
    }

    #[test]
    fn corrupt_manifest_blob_and_bad_link_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let raw = empty_image();
        Tree::new(dir.path()).manifest("r", &raw, Some("v1"));
        let l = DistributionLayout::new(dir.path());
        fs::write(l.paths().blob_data(&raw.digest), b"{}").unwrap();
        let e = l.read_manifest("r", &raw.digest).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        fs::write(l.paths().tag_current_link("r", "v1"), "garbage").unwrap();
        let e = l.resolve_tag("r", "v1").unwrap_err().to_string();
        assert!(e.contains("link file") && e.contains("invalid"), "{e}");
    }

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
