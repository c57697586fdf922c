//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`): writing blobs verified
//! while streaming, tagging through `index.json` under a lock, and checking and collecting the store.
//!
//! Blobs are staged beside their destination and renamed into place only once their digest is verified.
//! `index.json` is rewritten atomically while an exclusive `flock` on `index.json.lock` is held, so
//! concurrent taggers (threads or processes) never lose each other's updates.
//!
//! A writer stores its blobs before the tag that makes them reachable. So that garbage collection never
//! takes them in between, a writer holds a [`WriterLock`] (a shared lock on [`STORE_LOCK`]) from its first
//! blob to its last tag, and [`OciLayout::collect_garbage`] takes that lock exclusively or, while any writer
//! holds it, removes nothing. There is no other way to collect: a blob staged by a live writer is protected
//! by its lock, whatever its age.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest, DigestReader};
use crate::fsutil::{StageError, StagedFile, atomic_write};
use crate::manifest::{Descriptor, ImageIndex, ManifestError, RawManifest, to_canonical_json};
use crate::media_type;
use crate::walk::Walk;

/// The only image layout version this crate reads and writes.
pub const IMAGE_LAYOUT_VERSION: &str = "1.0.0";
/// The annotation on an `index.json` entry that names its tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The largest blob [`OciLayout::read_blob_bytes`] loads into memory (manifests and configs only).
pub const MAX_JSON_BLOB: u64 = 8 * 1024 * 1024;
/// The lock file (in the layout directory) writers hold shared and garbage collection takes exclusively.
pub const STORE_LOCK: &str = "store.lock";

/// Errors from reading or writing an OCI layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
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
    /// The directory is not an OCI layout this crate can use.
    #[error("`{path}` is not an OCI image layout: {reason}")]
    NotALayout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory's `oci-layout` file cannot be read.
    #[error("`{path}` is not an OCI image layout: cannot read `oci-layout`: {source}")]
    MarkerUnreadable {
        /// The layout directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The directory's `oci-layout` file is not JSON.
    #[error("`{path}` is not an OCI image layout: `oci-layout` is not JSON: {source}")]
    MarkerNotJson {
        /// The layout directory.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Staging or verifying a blob failed; nothing was stored.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// A blob is not in the layout.
    #[error("blob {0} is not in the layout")]
    BlobNotFound(Digest),
    /// A blob was expected to be small JSON but is larger than [`MAX_JSON_BLOB`].
    #[error(
        "blob {digest} is {size} bytes, more than the {limit} allowed for a manifest or config"
    )]
    BlobTooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A stored blob does not hash to its name.
    #[error("blob {expected} is corrupt: its content hashes to {actual}; run fsck and re-pull it")]
    Corrupt {
        /// The name of the blob.
        expected: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
    /// A manifest blob or `index.json` could not be parsed.
    #[error("{what}: {source}")]
    Manifest {
        /// Which document.
        what: String,
        /// Why it was rejected.
        source: ManifestError,
    },
    /// A tag is not acceptable as a ref name.
    #[error("invalid tag `{tag}`: {reason}")]
    InvalidTag {
        /// The rejected tag.
        tag: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LayoutError + 'a {
    move |source| LayoutError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One problem [`OciLayout::fsck`] found, by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsckProblem {
    /// The blob concerned.
    pub digest: Digest,
    /// What is wrong with it.
    pub kind: FsckProblemKind,
}

/// What is wrong with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckProblemKind {
    /// The content hashes to a different digest.
    Corrupt {
        /// What the content hashes to.
        actual: Digest,
    },
    /// Referenced from `index.json` (directly or through manifests) but absent.
    Missing,
    /// Present, but of a different size than the descriptor referencing it says.
    SizeMismatch {
        /// The size in the descriptor.
        expected: u64,
        /// The size on disk.
        actual: u64,
    },
    /// A manifest or index blob that cannot be read or parsed.
    BadManifest(String),
}

/// The result of [`OciLayout::fsck`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// How many blobs had their digest re-verified.
    pub blobs_checked: usize,
    /// How many bytes were hashed.
    pub bytes_checked: u64,
    /// Everything wrong, by digest.
    pub problems: Vec<FsckProblem>,
    /// Blobs present but unreachable from `index.json` (what [`OciLayout::collect_garbage`] would remove).
    pub unreferenced: Vec<Digest>,
    /// Files under `blobs/` whose names are not digests (for example staging files of an interrupted write).
    pub stray_files: Vec<PathBuf>,
}

impl FsckReport {
    /// True when no blob is corrupt, missing, mis-sized or unparseable.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The result of [`OciLayout::collect_garbage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs removed.
    pub removed: Vec<Digest>,
    /// The bytes they occupied.
    pub bytes_freed: u64,
}

/// A writer's shared hold on the layout's [`STORE_LOCK`]: while any is held, [`OciLayout::collect_garbage`]
/// removes nothing, so blobs written but not yet tagged stay. Released when dropped (or when the process
/// dies, however it dies).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

/// An OCI image layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLayout {
    root: PathBuf,
}

fn validate_tag(tag: &str) -> Result<(), LayoutError> {
    let bad = |reason: &str| LayoutError::InvalidTag {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if tag.is_empty() {
        return Err(bad("empty"));
    }
    if tag.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains whitespace or control characters"));
    }
    Ok(())
}

impl OciLayout {
    /// Creates the layout at `dir` (or adopts an existing one): `oci-layout`, an empty `index.json`, `blobs/`.
    pub fn create(dir: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = dir.into();
        let blobs = root.join("blobs").join(Algorithm::Sha256.as_str());
        fs::create_dir_all(&blobs).map_err(io_err("create directory", &blobs))?;
        let marker = root.join("oci-layout");
        if marker.exists() {
            return OciLayout::open(root);
        }
        atomic_write(
            &marker,
            format!(r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#).as_bytes(),
        )?;
        let layout = OciLayout { root };
        if !layout.index_path().exists() {
            layout.write_index(&ImageIndex::new(Vec::new()))?;
        }
        Ok(layout)
    }

    /// Opens an existing layout, checking its `oci-layout` file says version 1.0.0.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let root = dir.into();
        let marker = root.join("oci-layout");
        let not = |reason: String| LayoutError::NotALayout {
            path: root.clone(),
            reason,
        };
        let text = fs::read(&marker).map_err(|source| LayoutError::MarkerUnreadable {
            path: root.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|source| LayoutError::MarkerNotJson {
                path: root.clone(),
                source,
            })?;
        match value.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(IMAGE_LAYOUT_VERSION) => Ok(OciLayout { root }),
            Some(other) => Err(not(format!(
                "imageLayoutVersion is `{other}`, only `{IMAGE_LAYOUT_VERSION}` is supported"
            ))),
            None => Err(not("`oci-layout` has no imageLayoutVersion string".into())),
        }
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// `<root>/blobs/<alg>/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True when the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Streams `reader` into the store, verifying it against `expected` and `size` when given.
    /// A blob already present is not rewritten (the reader is not read).
    pub fn write_blob(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<(Digest, u64), LayoutError> {
        if let Some(d) = expected {
            let path = self.blob_path(d);
            if let Ok(meta) = fs::metadata(&path) {
                return Ok((d.clone(), meta.len()));
            }
        }
        let alg = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let dir = self.root.join("blobs").join(alg.as_str());
        let mut staged = StagedFile::new_in(&dir, alg)?;
        io::copy(&mut reader, &mut staged).map_err(io_err("write blob into", &dir))?;
        match expected {
            Some(d) => {
                let len = staged.commit_verified(d, size, &self.blob_path(d))?;
                Ok((d.clone(), len))
            }
            None => {
                if let Some(size) = size.filter(|s| *s != staged.len()) {
                    return Err(LayoutError::Io {
                        op: "write blob into",
                        path: dir,
                        source: io::Error::other(format!(
                            "expected {size} bytes, got {}",
                            staged.len()
                        )),
                    });
                }
                Ok(staged.commit_by_digest(|d| self.blob_path(d))?)
            }
        }
    }

    /// Stores `bytes` as a blob (sha256) and returns its digest and size.
    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64), LayoutError> {
        let digest = Digest::sha256_of(bytes);
        self.write_blob(bytes, Some(&digest), Some(bytes.len() as u64))
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LayoutError::BlobNotFound(digest.clone()),
            _ => LayoutError::Io {
                op: "open blob",
                path,
                source: e,
            },
        })
    }

    /// Reads a small blob (manifest or config, at most [`MAX_JSON_BLOB`]) and verifies its digest.
    pub fn read_blob_bytes(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let file = self.open_blob(digest)?;
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        file.take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read blob", &path))?;
        if bytes.len() as u64 > MAX_JSON_BLOB {
            let size = fs::metadata(&path).map_or(bytes.len() as u64, |m| m.len());
            return Err(LayoutError::BlobTooLarge {
                digest: digest.clone(),
                size,
                limit: MAX_JSON_BLOB,
            });
        }
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(LayoutError::Corrupt {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Stores a manifest's exact bytes as a blob and returns its descriptor.
    pub fn write_manifest(&self, manifest: &RawManifest) -> Result<Descriptor, LayoutError> {
        self.write_blob(
            manifest.bytes.as_slice(),
            Some(&manifest.digest),
            Some(manifest.bytes.len() as u64),
        )?;
        Ok(manifest.descriptor())
    }

    /// Reads and parses the manifest or index a descriptor points to.
    pub fn read_manifest(&self, descriptor: &Descriptor) -> Result<RawManifest, LayoutError> {
        let bytes = self.read_blob_bytes(&descriptor.digest)?;
        RawManifest::from_bytes(bytes, Some(&descriptor.media_type)).map_err(|source| {
            LayoutError::Manifest {
                what: format!("manifest {}", descriptor.digest),
                source,
            }
        })
    }

    /// Reads `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        let raw =
            RawManifest::from_bytes(bytes, Some(media_type::OCI_INDEX)).map_err(|source| {
                LayoutError::Manifest {
                    what: format!("`{}`", path.display()),
                    source,
                }
            })?;
        match raw.parsed {
            crate::manifest::ParsedManifest::Index(i) => Ok(i),
            crate::manifest::ParsedManifest::Image(_) => Err(LayoutError::NotALayout {
                path: self.root.clone(),
                reason: "index.json is an image manifest, not an index".into(),
            }),
        }
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), LayoutError> {
        let bytes = to_canonical_json(index).map_err(|source| LayoutError::Manifest {
            what: "index.json".into(),
            source,
        })?;
        atomic_write(&self.index_path(), &bytes)?;
        Ok(())
    }

    /// Holds an exclusive lock on `index.json.lock` until the returned file is dropped.
    fn lock(&self) -> Result<File, LayoutError> {
        let path = self.root.join("index.json.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        Ok(file)
    }

    /// Every tagged entry of `index.json`, in file order.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>, LayoutError> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                d.annotations
                    .get(ANNOTATION_REF_NAME)
                    .cloned()
                    .map(|t| (t, d))
            })
            .collect())
    }

    /// The descriptor a tag names, if any.
    pub fn resolve(&self, tag: &str) -> Result<Option<Descriptor>, LayoutError> {
        Ok(self
            .tags()?
            .into_iter()
            .find_map(|(t, d)| (t == tag).then_some(d)))
    }

    /// Points `tag` at `descriptor`, replacing any entry with that tag.
    pub fn set_tag(&self, tag: &str, mut descriptor: Descriptor) -> Result<(), LayoutError> {
        validate_tag(tag)?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag));
        descriptor
            .annotations
            .insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
        index.manifests.push(descriptor);
        self.write_index(&index)
    }

    /// Removes the entry for `tag`; returns whether there was one.
    pub fn remove_tag(&self, tag: &str) -> Result<bool, LayoutError> {
        let _lock = self.lock()?;
        let mut index = self.index()?;
        let before = index.manifests.len();
        index
            .manifests
            .retain(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) != Some(tag));
        let removed = index.manifests.len() != before;
        if removed {
            self.write_index(&index)?;
        }
        Ok(removed)
    }

    /// Lists stored blobs (by digest) and stray files under `blobs/`.
    fn list_blobs(&self) -> Result<(Vec<Digest>, Vec<PathBuf>), LayoutError> {
        let blobs = self.root.join("blobs");
        let mut found = Vec::new();
        let mut stray = Vec::new();
        // `blobs/<algorithm>/<hex>`: anything else (an unknown algorithm's directory, a file where a directory
        // belongs, a name that is no digest) is stray; a stray directory is not entered.
        let mut stray_top = Vec::new();
        let walk = Walk::new(&blobs).min_depth(1).max_depth(2).skipping(|e| {
            let is_stray = e.depth() == 1
                && !(e.file_type().is_dir()
                    && e.file_name()
                        .to_str()
                        .and_then(|s| s.parse::<Algorithm>().ok())
                        .is_some());
            if is_stray {
                stray_top.push(e.path().to_path_buf());
            }
            is_stray
        });
        for entry in walk {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.is_not_found() && e.path == blobs => return Ok((found, stray)),
                Err(e) => return Err(io_err("list", &e.path)(e.source)),
            };
            if entry.depth() == 1 {
                continue;
            }
            let alg = entry
                .path()
                .parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<Algorithm>().ok());
            match alg.and_then(|alg| {
                entry
                    .file_name()
                    .to_str()
                    .and_then(|hex| Digest::from_parts(alg, hex).ok())
            }) {
                Some(d) => found.push(d),
                None => stray.push(entry.into_path()),
            }
        }
        stray.extend(stray_top);
        found.sort();
        stray.sort();
        Ok((found, stray))
    }

    /// Walks from `index.json` through indexes and manifests; returns reachable digests and the problems met.
    fn reachable(&self) -> Result<(BTreeSet<Digest>, Vec<FsckProblem>), LayoutError> {
        let mut seen = BTreeSet::new();
        let mut problems = Vec::new();
        let mut stack: Vec<Descriptor> = self.index()?.manifests;
        while let Some(desc) = stack.pop() {
            if !seen.insert(desc.digest.clone()) {
                continue;
            }
            let problem = |kind| FsckProblem {
                digest: desc.digest.clone(),
                kind,
            };
            let Ok(meta) = fs::metadata(self.blob_path(&desc.digest)) else {
                if !media_type::is_non_distributable(&desc.media_type) {
                    problems.push(problem(FsckProblemKind::Missing));
                }
                continue;
            };
            if meta.len() != desc.size {
                problems.push(problem(FsckProblemKind::SizeMismatch {
                    expected: desc.size,
                    actual: meta.len(),
                }));
                continue;
            }
            if media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type) {
                match self.read_manifest(&desc) {
                    Ok(raw) => stack.extend(raw.referenced_blobs().into_iter().cloned()),
                    Err(e) => problems.push(problem(FsckProblemKind::BadManifest(e.to_string()))),
                }
            }
        }
        Ok((seen, problems))
    }

    /// Re-verifies every blob's digest (streaming) and checks everything `index.json` references is present.
    pub fn fsck(&self) -> Result<FsckReport, LayoutError> {
        let (blobs, stray_files) = self.list_blobs()?;
        let mut report = FsckReport {
            stray_files,
            ..FsckReport::default()
        };
        let mut corrupt = BTreeMap::new();
        for digest in &blobs {
            let file = self.open_blob(digest)?;
            let mut reader = DigestReader::new(io::BufReader::new(file), digest.algorithm());
            io::copy(&mut reader, &mut io::sink())
                .map_err(io_err("read blob", &self.blob_path(digest)))?;
            let (_, actual, len) = reader.finish();
            report.blobs_checked += 1;
            report.bytes_checked += len;
            if &actual != digest {
                corrupt.insert(digest.clone(), actual);
            }
        }
        let (reachable, problems) = self.reachable()?;
        report
            .problems
            .extend(corrupt.into_iter().map(|(digest, actual)| FsckProblem {
                digest,
                kind: FsckProblemKind::Corrupt { actual },
            }));
        report.problems.extend(problems);
        report.unreferenced = blobs
            .into_iter()
            .filter(|d| !reachable.contains(d))
            .collect();
        Ok(report)
    }

    fn store_lock_file(&self) -> Result<(File, PathBuf), LayoutError> {
        let path = self.root.join(STORE_LOCK);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        Ok((file, path))
    }

    /// Takes the shared writer lock, waiting while a collection runs; hold it from the first blob written
    /// until the last tag is set (see the module documentation).
    pub fn lock_writer(&self) -> Result<WriterLock, LayoutError> {
        let (file, path) = self.store_lock_file()?;
        file.lock_shared().map_err(io_err("lock", &path))?;
        Ok(WriterLock { _file: file })
    }

    /// Removes blobs unreachable from `index.json`, holding [`STORE_LOCK`] exclusively. Returns `None`, and
    /// removes nothing, while a writer holds a [`WriterLock`]: its blobs may not be tagged yet. Refuses to
    /// run when a manifest cannot be read, since what it references would then look unreachable.
    pub fn collect_garbage(&self) -> Result<Option<GcReport>, LayoutError> {
        let (file, path) = self.store_lock_file()?;
        match file.try_lock() {
            Ok(()) => self.gc().map(Some),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &path)(e)),
        }
    }

    /// Removes blobs unreachable from `index.json`; the caller holds [`STORE_LOCK`] exclusively.
    fn gc(&self) -> Result<GcReport, LayoutError> {
        let _lock = self.lock()?;
        let (reachable, problems) = self.reachable()?;
        if let Some(p) = problems
            .iter()
            .find(|p| matches!(p.kind, FsckProblemKind::BadManifest(_)))
        {
            return Err(LayoutError::NotALayout {
                path: self.root.clone(),
                reason: format!(
                    "refusing to collect garbage: manifest {} is unreadable ({:?}); run fsck",
                    p.digest, p.kind
                ),
            });
        }
        let (blobs, _) = self.list_blobs()?;
        let mut report = GcReport::default();
        for digest in blobs.into_iter().filter(|d| !reachable.contains(d)) {
            let path = self.blob_path(&digest);
            let size = fs::metadata(&path).map_or(0, |m| m.len());
            fs::remove_file(&path).map_err(io_err("remove blob", &path))?;
            report.bytes_freed += size;
            report.removed.push(digest);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ImageManifest;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    /// A layout with one tagged image: config `{}` (empty descriptor), one layer `layer`.
    fn image(layout: &OciLayout, tag: &str) -> RawManifest {
        layout
            .write_blob_bytes(media_type::OCI_EMPTY_CONTENT)
            .unwrap();
        layout.write_blob_bytes(b"layer").unwrap();
        let m = ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"layer")],
        );
        let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        let desc = layout.write_manifest(&raw).unwrap();
        layout.set_tag(tag, desc).unwrap();
        raw
    }

    #[test]
    fn create_writes_marker_and_empty_index_and_open_accepts_it() {
        let dir = tmp();
        OciLayout::create(dir.path()).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let l = OciLayout::open(dir.path()).unwrap();
        assert!(l.index().unwrap().manifests.is_empty());
        assert!(l.tags().unwrap().is_empty());
        // Creating again adopts the existing layout without wiping it.
        image(&l, "v1");
        let again = OciLayout::create(dir.path()).unwrap();
        assert_eq!(again.tags().unwrap().len(), 1);
    }

    #[test]
    fn open_rejects_missing_or_wrong_version_marker() {
        let dir = tmp();
        let e = OciLayout::open(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("not an OCI image layout") && e.contains("oci-layout"),
            "{e}"
        );
        fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        let e = OciLayout::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("2.0.0"), "{e}");
        fs::write(dir.path().join("oci-layout"), "nope").unwrap();
        assert!(OciLayout::open(dir.path()).is_err());
    }

    #[test]
    fn blobs_are_stored_by_digest_and_read_back() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let (d, n) = l.write_blob(&b"hello"[..], None, None).unwrap();
        assert_eq!((d.clone(), n), (Digest::sha256_of(b"hello"), 5));
        assert_eq!(
            l.blob_path(&d),
            dir.path().join("blobs/sha256").join(d.hex())
        );
        assert!(l.has_blob(&d));
        assert_eq!(l.read_blob_bytes(&d).unwrap(), b"hello");
        let mut s = String::new();
        l.open_blob(&d).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        // Writing it again is a no-op that reports the stored size.
        assert_eq!(
            l.write_blob(&b"ignored"[..], Some(&d), None).unwrap(),
            (d, 5)
        );
    }

    #[test]
    fn blob_with_wrong_digest_or_size_is_rejected_and_nothing_is_stored() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let want = Digest::sha256_of(b"good");
        let e = l.write_blob(&b"evil"[..], Some(&want), None).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert!(!l.has_blob(&want));
        let e = l
            .write_blob(&b"good"[..], Some(&want), Some(3))
            .unwrap_err();
        assert!(e.to_string().contains("size mismatch"), "{e}");
        assert!(l.write_blob(&b"good"[..], None, Some(3)).is_err());
        let (blobs, stray) = l.list_blobs().unwrap();
        assert!(blobs.is_empty() && stray.is_empty(), "{blobs:?} {stray:?}");
    }

    #[test]
    fn missing_blob_and_oversized_json_blob_are_reported() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let d = Digest::sha256_of(b"absent");
        assert!(matches!(l.open_blob(&d), Err(LayoutError::BlobNotFound(_))));
        let big = vec![b' '; MAX_JSON_BLOB as usize + 1];
        let (bd, _) = l.write_blob_bytes(&big).unwrap();
        assert!(matches!(
            l.read_blob_bytes(&bd),
            Err(LayoutError::BlobTooLarge { .. })
        ));
    }

    #[test]
    fn tags_are_set_resolved_replaced_and_removed() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let raw = image(&l, "v1");
        let got = l.resolve("v1").unwrap().unwrap();
        assert_eq!(got.digest, raw.digest);
        assert_eq!(got.annotations[ANNOTATION_REF_NAME], "v1");
        assert_eq!(l.resolve("v2").unwrap(), None);
        let other = Descriptor::new(media_type::OCI_MANIFEST, Digest::sha256_of(b"x"), 1);
        l.set_tag("v1", other.clone()).unwrap();
        l.set_tag("latest", raw.descriptor()).unwrap();
        let tags = l.tags().unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(l.resolve("v1").unwrap().unwrap().digest, other.digest);
        assert!(l.remove_tag("v1").unwrap());
        assert!(!l.remove_tag("v1").unwrap());
        assert_eq!(l.tags().unwrap()[0].0, "latest");
        assert!(l.set_tag("bad tag", other).is_err());
    }

    #[test]
    fn concurrent_taggers_in_many_threads_all_succeed() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let l = l.clone();
                s.spawn(move || {
                    for i in 0..5 {
                        let d = Descriptor::for_bytes(
                            media_type::OCI_MANIFEST,
                            format!("{t}-{i}").as_bytes(),
                        );
                        l.set_tag(&format!("t{t}-{i}"), d).unwrap();
                    }
                });
            }
        });
        assert_eq!(l.tags().unwrap().len(), 40);
    }

    /// Runs as the parent normally; re-run by itself with `OCI_LAYOUT_TAGGER_DIR` set, it is a child
    /// process that tags 20 entries and exits.
    #[test]
    fn two_processes_tagging_concurrently_both_keep_all_their_tags() {
        const NAME: &str =
            "oci_layout::tests::two_processes_tagging_concurrently_both_keep_all_their_tags";
        if let Some(dir) = std::env::var_os("OCI_LAYOUT_TAGGER_DIR") {
            let who = std::env::var("OCI_LAYOUT_TAGGER_ID").unwrap();
            let l = OciLayout::open(PathBuf::from(dir)).unwrap();
            for i in 0..20 {
                let d = Descriptor::for_bytes(
                    media_type::OCI_MANIFEST,
                    format!("{who}-{i}").as_bytes(),
                );
                l.set_tag(&format!("p{who}-{i}"), d).unwrap();
            }
            return;
        }
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..2)
            .map(|id| {
                std::process::Command::new(&exe)
                    .args(["--exact", NAME, "--test-threads=1"])
                    .env("OCI_LAYOUT_TAGGER_DIR", dir.path())
                    .env("OCI_LAYOUT_TAGGER_ID", id.to_string())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success());
        }
        let tags = l.tags().unwrap();
        assert_eq!(tags.len(), 40, "{tags:?}");
    }

    #[test]
    fn fsck_of_a_good_layout_is_clean_and_lists_unreferenced_blobs() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        image(&l, "v1");
        let (orphan, _) = l.write_blob_bytes(b"orphan").unwrap();
        let r = l.fsck().unwrap();
        assert!(r.is_clean(), "{r:?}");
        assert_eq!(r.blobs_checked, 4);
        assert_eq!(r.unreferenced, vec![orphan]);
    }

    #[test]
    fn fsck_reports_corrupt_missing_and_mis_sized_blobs_by_digest() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        image(&l, "v1");
        let layer = Digest::sha256_of(b"layer");
        fs::write(l.blob_path(&layer), b"LAYER").unwrap();
        fs::remove_file(l.blob_path(&Descriptor::empty().digest)).unwrap();
        fs::write(dir.path().join("blobs/sha256/.tmp-x"), b"").unwrap();
        let r = l.fsck().unwrap();
        assert!(!r.is_clean());
        assert!(r.problems.contains(&FsckProblem {
            digest: layer.clone(),
            kind: FsckProblemKind::Corrupt {
                actual: Digest::sha256_of(b"LAYER")
            }
        }));
        assert!(r.problems.contains(&FsckProblem {
            digest: Descriptor::empty().digest,
            kind: FsckProblemKind::Missing
        }));
        assert_eq!(r.stray_files.len(), 1);
        // An unknown algorithm's directory and a file where a directory belongs are stray, not entered.
        fs::create_dir_all(dir.path().join("blobs/md5/sub")).unwrap();
        fs::write(dir.path().join("blobs/sha512"), b"").unwrap();
        let r = l.fsck().unwrap();
        assert_eq!(
            r.stray_files,
            [
                dir.path().join("blobs/md5"),
                dir.path().join("blobs/sha256/.tmp-x"),
                dir.path().join("blobs/sha512")
            ]
        );
        fs::write(l.blob_path(&layer), b"LAYER!").unwrap();
        let r = l.fsck().unwrap();
        assert!(r.problems.iter().any(|p| p.digest == layer
            && p.kind
                == FsckProblemKind::SizeMismatch {
                    expected: 5,
                    actual: 6
                }));
    }

    #[test]
    fn gc_removes_only_unreachable_blobs() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let raw = image(&l, "v1");
        let (orphan, _) = l.write_blob_bytes(b"orphan").unwrap();
        let r = l.gc().unwrap();
        assert_eq!(r.removed, vec![orphan.clone()]);
        assert_eq!(r.bytes_freed, 6);
        assert!(!l.has_blob(&orphan) && l.has_blob(&raw.digest));
        assert!(l.fsck().unwrap().is_clean());
        l.remove_tag("v1").unwrap();
        assert_eq!(l.gc().unwrap().removed.len(), 3);
    }

    #[test]
    fn collect_garbage_removes_nothing_while_a_writer_holds_its_lock() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let raw = image(&l, "v1");
        let writer = l.lock_writer().unwrap();
        // A second writer shares the lock.
        let other = OciLayout::open(dir.path()).unwrap().lock_writer().unwrap();
        let (staged, _) = l.write_blob_bytes(b"not tagged yet").unwrap();
        l.remove_tag("v1").unwrap();
        assert_eq!(l.collect_garbage().unwrap(), None);
        assert!(l.has_blob(&staged) && l.has_blob(&raw.digest));
        drop(writer);
        assert_eq!(
            l.collect_garbage().unwrap(),
            None,
            "one writer is still live"
        );
        drop(other);
        let report = l.collect_garbage().unwrap().unwrap();
        assert_eq!(report.removed.len(), 4, "{report:?}");
        assert!(!l.has_blob(&staged));
    }

    #[test]
    fn gc_refuses_when_a_manifest_is_unreadable() {
        let dir = tmp();
        let l = OciLayout::create(dir.path()).unwrap();
        let (junk, n) = l.write_blob_bytes(b"not json").unwrap();
        l.set_tag("bad", Descriptor::new(media_type::OCI_MANIFEST, junk, n))
            .unwrap();
        l.write_blob_bytes(b"orphan").unwrap();
        let e = l.gc().unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
    }
}
