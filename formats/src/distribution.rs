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
//! [`DistributionPaths`] only computes paths; [`DistributionLayout`] writes blobs (verified while streaming),
//! links and manifests the way `docker-registry` does, copies whole images in from an [`OciLayout`], and
//! reads repositories, tags and manifests back. It never reaches anything below the root through a symlink
//! ([`check_beneath`], [`open_beneath`]): a tree that came from elsewhere cannot make it read or write host files.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest};
use crate::fsutil::{
    BeneathError, StageError, StagedFile, atomic_write, check_beneath, open_beneath,
};
use crate::manifest::{Descriptor, ManifestError, RawManifest};
use crate::media_type;
use crate::oci_layout::{LayoutError, MAX_JSON_BLOB, OciLayout};

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

/// Errors from reading or writing a Distribution layout.
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
    /// Staging or verifying a blob failed; nothing was stored.
    #[error(transparent)]
    Stage(#[from] StageError),
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
    /// The source OCI layout has no such tag.
    #[error("tag `{0}` is not in the OCI layout")]
    TagNotInLayout(String),
    /// Reading the source OCI layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
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

/// A Distribution layout that can be written and read: the storage of `docker-registry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionLayout {
    paths: DistributionPaths,
}

impl DistributionLayout {
    /// The layout rooted at `root` (the directory that holds, or will hold, `docker/registry/v2`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DistributionLayout {
            paths: DistributionPaths::new(root),
        }
    }

    /// The paths of this layout.
    pub fn paths(&self) -> &DistributionPaths {
        &self.paths
    }

    /// Where blobs are staged before their verified rename: `<root>/.staging`, outside `docker/` so the
    /// registry never sees a half-written file, but on the same filesystem so the rename is atomic.
    fn staging_dir(&self) -> PathBuf {
        self.paths.root().join(".staging")
    }

    /// Streams `reader` into `blobs/.../data`, verifying it against `expected` and `size` when given.
    /// A blob already present is not rewritten (the reader is not read).
    pub fn write_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<(Digest, u64), DistributionError> {
        if let Some(d) = expected
            && let Some(meta) = check_beneath(self.paths.root(), &self.paths.blob_data(d))?
        {
            if !meta.is_file() {
                return Err(BeneathError::NotRegular(self.paths.blob_data(d)).into());
            }
            return Ok((d.clone(), meta.len()));
        }
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let dir = self.staging_dir();
        let mut staged = StagedFile::new_in(&dir, alg)?;
        io::copy(&mut reader, &mut staged).map_err(io_err("write blob into", &dir))?;
        match expected {
            Some(d) => {
                let dest = self.paths.blob_data(d);
                check_beneath(self.paths.root(), &dest)?;
                let len = staged.commit_verified(d, size, &dest)?;
                Ok((d.clone(), len))
            }
            None => {
                if let Some(size) = size.filter(|s| *s != staged.len()) {
                    return Err(DistributionError::Io {
                        op: "write blob into",
                        path: dir,
                        source: io::Error::other(format!(
                            "expected {size} bytes, got {}",
                            staged.len()
                        )),
                    });
                }
                // Sealed under a staging name first: the destination is known only from the digest, and is
                // checked before the content is moved there.
                let (digest, len) =
                    staged.commit_by_digest(|d| dir.join(format!(".sealed-{}", d.hex())))?;
                let sealed = dir.join(format!(".sealed-{}", digest.hex()));
                let dest = self.paths.blob_data(&digest);
                let placed = check_beneath(self.paths.root(), &dest)
                    .map_err(DistributionError::from)
                    .and_then(|_| {
                        let parent = dest.parent().unwrap_or(Path::new("."));
                        fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
                        fs::rename(&sealed, &dest).map_err(io_err("rename into", &dest))
                    });
                if let Err(e) = placed {
                    let _ignored = fs::remove_file(&sealed);
                    return Err(e);
                }
                Ok((digest, len))
            }
        }
    }

    fn write_link(&self, path: &Path, digest: &Digest) -> Result<(), DistributionError> {
        check_beneath(self.paths.root(), path)?;
        atomic_write(path, link_text(digest).as_bytes())?;
        Ok(())
    }

    /// Makes a blob (layer or config) part of `repo`.
    pub fn link_layer(&self, repo: &str, digest: &Digest) -> Result<(), DistributionError> {
        validate_repository(repo)?;
        self.write_link(&self.paths.layer_link(repo, digest), digest)
    }

    /// Stores a manifest's exact bytes as a blob, links the revision into `repo`, and when `tag` is given
    /// records it in the tag's history and points the tag at it.
    pub fn put_manifest(
        &self,
        repo: &str,
        manifest: &RawManifest,
        tag: Option<&str>,
    ) -> Result<(), DistributionError> {
        validate_repository(repo)?;
        if let Some(tag) = tag {
            validate_tag(tag)?;
        }
        let d = &manifest.digest;
        self.write_blob(
            manifest.bytes.as_slice(),
            Some(d),
            Some(manifest.bytes.len() as u64),
        )?;
        self.write_link(&self.paths.revision_link(repo, d), d)?;
        if let Some(tag) = tag {
            self.write_link(&self.paths.tag_index_link(repo, tag, d), d)?;
            self.write_link(&self.paths.tag_current_link(repo, tag), d)?;
        }
        Ok(())
    }

    /// Copies the image `tag_in_layout` (an index or a manifest, with its children, configs and layers)
    /// from an OCI layout into `repo:tag`. Returns the top manifest's digest.
    pub fn write_image_from_oci(
        &self,
        layout: &OciLayout,
        tag_in_layout: &str,
        repo: &str,
        tag: &str,
    ) -> Result<Digest, DistributionError> {
        validate_repository(repo)?;
        validate_tag(tag)?;
        let top = layout
            .resolve(tag_in_layout)?
            .ok_or_else(|| DistributionError::TagNotInLayout(tag_in_layout.to_string()))?;
        self.copy_manifest(layout, &top, repo, Some(tag))?;
        Ok(top.digest)
    }

    /// Copies one manifest's children first, then the manifest itself, so a tag never points at a
    /// manifest whose content is not there yet.
    fn copy_manifest(
        &self,
        layout: &OciLayout,
        desc: &Descriptor,
        repo: &str,
        tag: Option<&str>,
    ) -> Result<(), DistributionError> {
        let raw = layout.read_manifest(desc)?;
        for child in raw.referenced_blobs() {
            if media_type::is_manifest(&child.media_type) || media_type::is_index(&child.media_type)
            {
                self.copy_manifest(layout, child, repo, None)?;
                continue;
            }
            if !layout.has_blob(&child.digest)
                && media_type::is_non_distributable(&child.media_type)
            {
                continue;
            }
            let file = layout.open_blob(&child.digest)?;
            self.write_blob(
                io::BufReader::new(file),
                Some(&child.digest),
                Some(child.size),
            )?;
            self.link_layer(repo, &child.digest)?;
        }
        self.put_manifest(repo, &raw, tag)
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

    use crate::manifest::{ImageIndex, ImageManifest, ParsedManifest, Platform};

    fn oci_image(layout: &OciLayout) -> RawManifest {
        layout.write_blob_bytes(b"{}").unwrap();
        layout.write_blob_bytes(b"layer").unwrap();
        let m = ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"layer")],
        );
        let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        layout.write_manifest(&raw).unwrap();
        raw
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
    fn symlinks_below_the_root_are_never_followed_for_reads_or_writes() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"host secret").unwrap();
        let l = DistributionLayout::new(dir.path().join("root"));
        let (d, _) = l.write_blob(&b"data"[..], None, None).unwrap();
        l.link_layer("a/b", &d).unwrap();
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
        std::os::unix::fs::symlink(&outside, l.paths().repository_dir("c")).unwrap();
        assert!(l.link_layer("c", &d).is_err());
        assert!(l.repositories().unwrap().iter().all(|r| r != "c"));
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            1,
            "something was written outside"
        );
    }

    #[test]
    fn blob_is_written_verified_and_stays_when_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        let d = Digest::sha256_of(b"data");
        assert_eq!(
            l.write_blob(&b"data"[..], Some(&d), Some(4)).unwrap(),
            (d.clone(), 4)
        );
        assert_eq!(fs::read(l.paths().blob_data(&d)).unwrap(), b"data");
        assert_eq!(
            l.write_blob(&b"other"[..], Some(&d), None).unwrap(),
            (d.clone(), 4)
        );
        let (d2, _) = l.write_blob(&b"free"[..], None, None).unwrap();
        assert_eq!(d2, Digest::sha256_of(b"free"));
        let mut s = String::new();
        l.open_blob(&d).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "data");
    }

    #[test]
    fn blob_with_wrong_digest_is_rejected_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        let d = Digest::sha256_of(b"data");
        assert!(l.write_blob(&b"evil"[..], Some(&d), None).is_err());
        assert!(!l.paths().blob_data(&d).exists());
        assert!(matches!(
            l.open_blob(&d),
            Err(DistributionError::BlobNotFound(_))
        ));
        assert_eq!(fs::read_dir(l.staging_dir()).unwrap().count(), 0);
    }

    #[test]
    fn put_manifest_writes_blob_revision_and_tag_links_with_exact_text() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        let m = ImageManifest::new(Descriptor::empty(), vec![]);
        let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        l.put_manifest("team/app", &raw, Some("v1")).unwrap();
        let p = l.paths();
        let text = format!("sha256:{}", raw.digest.hex());
        assert_eq!(
            fs::read_to_string(p.revision_link("team/app", &raw.digest)).unwrap(),
            text
        );
        assert_eq!(
            fs::read_to_string(p.tag_current_link("team/app", "v1")).unwrap(),
            text
        );
        assert_eq!(
            fs::read_to_string(p.tag_index_link("team/app", "v1", &raw.digest)).unwrap(),
            text
        );
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
        let e = l
            .put_manifest("../escape", &raw, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`..`"), "{e}");
        assert!(l.put_manifest("ok", &raw, Some("bad/tag")).is_err());
    }

    #[test]
    fn link_layer_writes_the_digest_text() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        let d = Digest::sha256_of(b"x");
        l.link_layer("r", &d).unwrap();
        assert_eq!(
            fs::read_to_string(l.paths().layer_link("r", &d)).unwrap(),
            d.to_string()
        );
        assert!(l.link_layer("/etc", &d).is_err());
    }

    #[test]
    fn repositories_are_found_at_any_depth_and_tags_listed() {
        let dir = tempfile::tempdir().unwrap();
        let l = DistributionLayout::new(dir.path());
        assert!(l.repositories().unwrap().is_empty());
        let raw = RawManifest::from_created(
            &ImageManifest::new(Descriptor::empty(), vec![]),
            media_type::OCI_MANIFEST,
        )
        .unwrap();
        for repo in ["a", "a/b", "x/y/z"] {
            l.put_manifest(repo, &raw, Some("v1")).unwrap();
        }
        l.put_manifest("a", &raw, Some("v0")).unwrap();
        l.put_manifest("untagged/repo", &raw, None).unwrap();
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
        let l = DistributionLayout::new(dir.path());
        let raw = RawManifest::from_created(
            &ImageManifest::new(Descriptor::empty(), vec![]),
            media_type::OCI_MANIFEST,
        )
        .unwrap();
        l.put_manifest("r", &raw, Some("v1")).unwrap();
        fs::write(l.paths().blob_data(&raw.digest), b"{}").unwrap();
        let e = l.read_manifest("r", &raw.digest).unwrap_err().to_string();
        assert!(e.contains("corrupt"), "{e}");
        fs::write(l.paths().tag_current_link("r", "v1"), "garbage").unwrap();
        let e = l.resolve_tag("r", "v1").unwrap_err().to_string();
        assert!(e.contains("link file") && e.contains("invalid"), "{e}");
    }

    #[test]
    fn image_index_is_copied_from_an_oci_layout_with_children_and_blobs() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(src.path()).unwrap();
        let child = oci_image(&layout);
        let mut child_desc = child.descriptor();
        child_desc.platform = Some(Platform::parse("linux/amd64").unwrap());
        let index =
            RawManifest::from_created(&ImageIndex::new(vec![child_desc]), media_type::OCI_INDEX)
                .unwrap();
        layout
            .set_tag("v1", layout.write_manifest(&index).unwrap())
            .unwrap();
        let l = DistributionLayout::new(dst.path());
        let top = l
            .write_image_from_oci(&layout, "v1", "lib/app", "1.0")
            .unwrap();
        assert_eq!(top, index.digest);
        assert_eq!(
            l.resolve_tag("lib/app", "1.0").unwrap(),
            Some(index.digest.clone())
        );
        let back = l.read_manifest("lib/app", &index.digest).unwrap();
        assert_eq!(back.bytes, index.bytes);
        let ParsedManifest::Index(_) = back.parsed else {
            panic!("expected an index")
        };
        assert_eq!(
            l.read_manifest("lib/app", &child.digest).unwrap().bytes,
            child.bytes
        );
        for blob in [Descriptor::empty().digest, Digest::sha256_of(b"layer")] {
            assert!(l.paths().layer_link("lib/app", &blob).is_file());
            assert!(l.paths().blob_data(&blob).is_file());
        }
        assert!(matches!(
            l.write_image_from_oci(&layout, "nope", "lib/app", "x"),
            Err(DistributionError::TagNotInLayout(_))
        ));
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
