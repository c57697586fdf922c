//! The local image store: an OCI image layout whose `index.json` names every image by its full normalised
//! reference (`docker.io/library/myapp:v1`), with the commands users run around it (list, inspect, tag,
//! remove, garbage-collect) and import/export as `oci-archive`, `docker-archive` and OCI layout directories.
//!
//! Names a user types (`myapp:v1`) are normalised with [`Reference::parse`] before lookup; an image can also
//! be named by its manifest digest (`sha256:...`, or a unique prefix of the hex). An image is either a
//! single manifest or an index of per-platform manifests.
//!
//! Garbage collection and writers: every writer of the store (a build, a load, a merge, a pull, a manifest
//! list) goes through [`Store`]: it holds a [`WriteGuard`] (a shared lock on `<root>/store.lock`, see
//! [`formats::oci_layout::WriterLock`]) from its first blob to its last tag, so its blobs are staged, then
//! the index updated, under the guard. Collection ([`Store::gc`], the only way to collect) takes that lock
//! exclusively and, when a writer holds it, is deferred rather than deleting blobs the writer is about to
//! reference; the next `rmi` or `prune` collects them. A writer below this crate (registry mirroring into
//! the store, see [`StoreWriter`]) writes into the layout [`StoreWriter::layout`] gives while the guard is
//! held.

mod archive;
mod details;
mod load;
mod merge;
mod save;
pub mod stale;
mod transport;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use formats::digest::{DigestError, VerifyError};
use formats::fsutil::StageError;
use formats::layer::ExpansionLimit;
use formats::manifest::{Descriptor, ManifestError, RawManifest};
use formats::oci_layout::{ANNOTATION_REF_NAME, GcReport, LayoutError, OciLayout, WriterLock};
use formats::reference::{Reference, ReferenceError};

pub use details::{ImageDetails, ImageSummary, LayerDetails, PlatformImage, parse_rfc3339};
pub use load::LoadedImage;
pub use merge::{ImageKind, MergeReport, TYPE_LABELS, UnknownImageKind};
pub(crate) use save::write_oci_archive;
pub use save::{ArchiveFormat, SaveReport};
pub use transport::ImageSource;

/// Temporary files whose writer cannot be told alive or gone (no lock to check) are removed by
/// [`Store::prune`] once older than this; those whose writer is gone are removed at once (see [`stale`]).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// Errors from the local image store, its archives and transports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the OCI layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// No image has this name or digest.
    #[error("image `{0}` not found in the local store")]
    NotFound(String),
    /// A digest prefix matches more than one image.
    #[error("`{prefix}` matches {} images ({}); give more digits of the digest", .matches.len(), .matches.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The digests it matches.
        matches: Vec<String>,
    },
    /// A name is not a valid image reference.
    #[error("invalid image name `{name}`: {source}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was rejected.
        source: ReferenceError,
    },
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
    /// An archive or layout given to load or inspect is malformed.
    #[error("`{path}`: {reason}")]
    BadArchive {
        /// The archive or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive given to load or inspect cannot be read as one (its tar, its compression, a layer).
    #[error("`{path}`: {what}: {source}")]
    ArchiveIo {
        /// The archive or directory.
        path: PathBuf,
        /// What was read (`not a tar archive`, `layer `x.tar` (diff_id ...)`).
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A JSON document of an archive given to load or inspect is not what it must be.
    #[error("`{path}`: {what}: {source}")]
    ArchiveJson {
        /// The archive or directory.
        path: PathBuf,
        /// Which document and what it should be (`manifest.json is not a docker archive manifest`).
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An archive entry or a name inside an archive would point outside the archive.
    #[error(
        "`{path}`: entry `{entry}` points outside the archive (absolute path or `..`); refusing to read it"
    )]
    UnsafeEntry {
        /// The archive.
        path: PathBuf,
        /// The offending entry name.
        entry: String,
    },
    /// A manifest, index or config could not be parsed.
    #[error("{what}: {source}")]
    Manifest {
        /// Which document.
        what: String,
        /// Why it was rejected.
        source: ManifestError,
    },
    /// Content does not match its digest or size.
    #[error("{what}: {source}")]
    Verify {
        /// Which content.
        what: String,
        /// The mismatch.
        source: DigestError,
    },
    /// The operation or transport is not available.
    #[error("{0}")]
    Unsupported(String),
    /// A stored layer cannot be read or decompressed.
    #[error("{what}: {source}")]
    Layer {
        /// The layer (`layer sha256:...`).
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

impl From<StageError> for StoreError {
    fn from(e: StageError) -> Self {
        StoreError::Layout(LayoutError::Stage(e))
    }
}

pub(crate) fn verify_err(what: String, e: VerifyError, path: &Path) -> StoreError {
    match e {
        VerifyError::Io(source) => StoreError::Io {
            op: "read",
            path: path.to_path_buf(),
            source,
        },
        VerifyError::Digest(source) => StoreError::Verify { what, source },
    }
}

/// An image found in a store: its name, the descriptor `index.json` holds for it, and its manifest.
#[derive(Debug, Clone)]
pub struct Image {
    /// The full reference it is tagged as (the first tag, when it was found by digest).
    pub name: String,
    /// The top-level descriptor (manifest or index), without the ref-name annotation.
    pub descriptor: Descriptor,
    /// The manifest or index, byte-exact.
    pub manifest: RawManifest,
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    /// The tags removed.
    pub untagged: Vec<String>,
    /// The blobs collected afterwards; `None` when collection was deferred because a writer was active.
    pub gc: Option<GcReport>,
}

/// What [`Store::prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Unreferenced blobs removed; `None` when collection was deferred because a writer was active.
    pub gc: Option<GcReport>,
    /// Stale temporary files removed: their writer is gone (see [`stale::clean_stale`]).
    pub temp_files: Vec<PathBuf>,
    /// Bytes those temporary files occupied.
    pub temp_bytes: u64,
}

/// Held by a writer between storing its first blob and setting its last tag; see the module docs.
#[derive(Debug)]
pub struct WriteGuard {
    _lock: WriterLock,
}

/// A writer's hold on the store for code that writes the OCI layout itself (registry mirroring into the
/// store): the layout to write blobs and tags into, and the [`WriteGuard`] that keeps garbage collection
/// from taking those blobs before they are tagged. Write nothing through the layout after dropping it.
#[derive(Debug)]
pub struct StoreWriter {
    layout: OciLayout,
    _guard: WriteGuard,
}

impl StoreWriter {
    /// The layout to write into while this writer lives.
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }
}

/// The local image store.
#[derive(Debug, Clone)]
pub struct Store {
    layout: OciLayout,
    expansion: ExpansionLimit,
}

/// Inspects an image behind a transport (`oci:`, `oci-archive:`, `docker-archive:`) without a store; a
/// compressed archive is decompressed within `limit`.
pub fn inspect_transport(
    source: &ImageSource,
    limit: ExpansionLimit,
) -> Result<ImageDetails, StoreError> {
    transport::inspect(source, limit)
}

/// Normalises a name a user typed to the full reference stored in `index.json`.
pub fn normalize_name(name: &str) -> Result<String, StoreError> {
    Reference::parse(name)
        .map(|r| r.to_string())
        .map_err(|source| StoreError::InvalidName {
            name: name.to_string(),
            source,
        })
}

fn strip_ref_name(mut d: Descriptor) -> Descriptor {
    d.annotations.remove(ANNOTATION_REF_NAME);
    d
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Store {
    /// Opens the store at `root`, creating an empty OCI layout there when there is none.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Store {
            layout: OciLayout::create(root)?,
            expansion: ExpansionLimit::default(),
        })
    }

    /// Opens an existing store (or any OCI layout) without creating anything.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Ok(Store {
            layout: OciLayout::open(root)?,
            expansion: ExpansionLimit::default(),
        })
    }

    /// Sets how far layers and archives this store reads may expand when decompressed (`load`, `save`
    /// to a docker archive, and the runtime's unpacking); the default is [`ExpansionLimit::default`].
    pub fn with_expansion_limit(mut self, limit: ExpansionLimit) -> Self {
        self.expansion = limit;
        self
    }

    /// The bound on decompression that [`Store::with_expansion_limit`] set.
    pub fn expansion_limit(&self) -> ExpansionLimit {
        self.expansion
    }

    /// The OCI layout underneath, for reading; write through [`Store::writer`] (or under a
    /// [`Store::write_guard`]) so garbage collection cannot take blobs not yet tagged.
    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Takes the shared writer lock; hold it from the first blob written until the last tag is set.
    /// Also removes what killed writers left behind (see [`stale::clean_stale`]): staged files and work
    /// directories no live writer holds locked.
    pub fn write_guard(&self) -> Result<WriteGuard, StoreError> {
        let lock = self.layout.lock_writer()?;
        stale::clean_stale(self.root(), STALE_TEMP_AGE).map_err(io_err("clean", self.root()))?;
        Ok(WriteGuard { _lock: lock })
    }

    /// Takes the writer guard (see [`Store::write_guard`]) and hands out the layout to write into under it.
    pub fn writer(&self) -> Result<StoreWriter, StoreError> {
        Ok(StoreWriter {
            _guard: self.write_guard()?,
            layout: self.layout.clone(),
        })
    }

    /// Stores a manifest or index (byte-exact) and tags it `tag` (a full reference), under the writer
    /// guard; returns its descriptor.
    pub fn put_manifest(
        &self,
        tag: &str,
        manifest: &RawManifest,
    ) -> Result<Descriptor, StoreError> {
        let _guard = self.write_guard()?;
        let descriptor = self.layout.write_manifest(manifest)?;
        self.layout.set_tag(tag, descriptor.clone())?;
        Ok(descriptor)
    }

    /// Finds an image by name (`myapp:v1`, `docker.io/library/myapp:v1`, `myapp@sha256:...`) or by its
    /// manifest digest (`sha256:<hex>`, a unique prefix of it, or a bare hex prefix of at least 4 digits).
    pub fn resolve(&self, name: &str) -> Result<Image, StoreError> {
        self.find(name).map(|(image, _)| image)
    }

    /// Like [`Store::resolve`], also saying whether `name` matched a tag (true) or a digest (false).
    fn find(&self, name: &str) -> Result<(Image, bool), StoreError> {
        let tags = self.layout.tags()?;
        let by_tag = |tag: &str| {
            tags.iter()
                .find(|(t, _)| t == tag)
                .map(|(t, d)| (t.clone(), d.clone()))
        };
        let mut by_name = None;
        let mut by_digest = None;
        if let Some(hex) = name.strip_prefix("sha256:") {
            if is_hex(hex) {
                by_digest = self.by_digest_prefix(&tags, name, hex)?;
            }
        } else {
            match Reference::parse(name) {
                Ok(r) => match r.digest() {
                    Some(d) => {
                        let repo = r.name();
                        by_digest = tags
                            .iter()
                            .filter(|(_, desc)| &desc.digest == d)
                            .min_by_key(|(t, _)| !t.starts_with(&format!("{repo}:")))
                            .map(|(t, d)| (t.clone(), d.clone()));
                    }
                    None => by_name = by_tag(&r.to_string()).or_else(|| by_tag(name)),
                },
                Err(_) => by_name = by_tag(name),
            }
            if by_name.is_none() && by_digest.is_none() && name.len() >= 4 && is_hex(name) {
                by_digest = self.by_digest_prefix(&tags, name, name)?;
            }
        }
        let (found, is_tag) = match (by_name, by_digest) {
            (Some(f), _) => (f, true),
            (None, Some(f)) => (f, false),
            (None, None) => return Err(StoreError::NotFound(name.to_string())),
        };
        let (tag, descriptor) = found;
        let descriptor = strip_ref_name(descriptor);
        let manifest = self.layout.read_manifest(&descriptor)?;
        Ok((
            Image {
                name: tag,
                descriptor,
                manifest,
            },
            is_tag,
        ))
    }

    fn by_digest_prefix(
        &self,
        tags: &[(String, Descriptor)],
        name: &str,
        hex: &str,
    ) -> Result<Option<(String, Descriptor)>, StoreError> {
        let mut matches: Vec<&(String, Descriptor)> = tags
            .iter()
            .filter(|(_, d)| d.digest.hex().starts_with(hex))
            .collect();
        let mut digests: Vec<String> = matches.iter().map(|(_, d)| d.digest.to_string()).collect();
        digests.sort();
        digests.dedup();
        if digests.len() > 1 {
            return Err(StoreError::Ambiguous {
                prefix: name.to_string(),
                matches: digests,
            });
        }
        Ok(matches.drain(..).next().cloned())
    }

    /// Every tagged image, in `index.json` order.
    pub fn list(&self) -> Result<Vec<ImageSummary>, StoreError> {
        Ok(self
            .layout
            .tags()?
            .into_iter()
            .map(|(tag, d)| details::summarize(self, &tag, &strip_ref_name(d)))
            .collect())
    }

    /// The configuration, layers, platforms and annotations of an image in the store.
    pub fn inspect(&self, name: &str) -> Result<ImageDetails, StoreError> {
        let image = self.resolve(name)?;
        details::describe(
            self,
            Some(image.name.clone()),
            &image.descriptor,
            &image.manifest,
        )
    }

    /// Inspects an image in the store or behind a transport (`oci:`, `oci-archive:`, `docker-archive:`).
    pub fn inspect_source(&self, source: &ImageSource) -> Result<ImageDetails, StoreError> {
        match source {
            ImageSource::Local(name) => self.inspect(name),
            other => transport::inspect(other, self.expansion),
        }
    }

    /// Tags the image `src` also as `new` (normalised); returns the full new name.
    pub fn tag(&self, src: &str, new: &str) -> Result<String, StoreError> {
        // Held from finding the image to tagging it, so no collection takes its blobs in between.
        let _guard = self.write_guard()?;
        let image = self.resolve(src)?;
        let new = normalize_name(new)?;
        if Reference::parse(&new).is_ok_and(|r| r.digest().is_some()) {
            return Err(StoreError::Unsupported(format!(
                "cannot tag as `{new}`: a new name must be `name[:tag]` without a digest"
            )));
        }
        self.layout.set_tag(&new, image.descriptor)?;
        Ok(new)
    }

    /// Removes one tag (as typed or normalised); returns the full name removed. Blobs stay until [`Store::gc`].
    pub fn untag(&self, name: &str) -> Result<String, StoreError> {
        let full = normalize_name(name).ok();
        for candidate in full.iter().map(String::as_str).chain([name]) {
            if self.layout.remove_tag(candidate)? {
                return Ok(candidate.to_string());
            }
        }
        Err(StoreError::NotFound(name.to_string()))
    }

    /// `rmi`: removes a tag, or, for a digest, every tag of that image (more than one only with `force`),
    /// then collects blobs no image uses.
    pub fn remove(&self, names: &[&str], force: bool) -> Result<RemoveReport, StoreError> {
        let mut report = RemoveReport::default();
        for name in names {
            let (image, is_tag) = self.find(name)?;
            if is_tag {
                if self.layout.remove_tag(&image.name)? {
                    report.untagged.push(image.name);
                }
                continue;
            }
            let tags = self.layout.tags()?;
            let all: Vec<String> = tags
                .iter()
                .filter(|(_, d)| d.digest == image.descriptor.digest)
                .map(|(t, _)| t.clone())
                .collect();
            if all.len() > 1 && !force {
                return Err(StoreError::Unsupported(format!(
                    "image {} is tagged {} times ({}); remove the tags one by one or use --force",
                    image.descriptor.digest,
                    all.len(),
                    all.join(", ")
                )));
            }
            for t in all {
                if self.layout.remove_tag(&t)? {
                    report.untagged.push(t);
                }
            }
        }
        report.gc = self.gc()?;
        Ok(report)
    }

    /// Removes blobs no tagged image references. Returns `None` (and removes nothing) while a writer holds
    /// a [`WriteGuard`].
    pub fn gc(&self) -> Result<Option<GcReport>, StoreError> {
        Ok(self.layout.collect_garbage()?)
    }

    /// Removes dangling content (blobs no image references) and the temporary files interrupted writes
    /// left (whose writer is gone, whatever their age).
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        self.prune_older_than(STALE_TEMP_AGE)
    }

    fn prune_older_than(&self, age: Duration) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport {
            gc: self.gc()?,
            ..PruneReport::default()
        };
        let stale = stale::clean_stale(self.root(), age).map_err(io_err("clean", self.root()))?;
        report.temp_files = stale.paths;
        report.temp_bytes = stale.bytes;
        Ok(report)
    }

    /// Exports images to `out` as an OCI archive, a docker archive or an OCI layout directory.
    pub fn save(
        &self,
        names: &[&str],
        format: ArchiveFormat,
        out: &Path,
    ) -> Result<SaveReport, StoreError> {
        save::save(self, names, format, out)
    }

    /// Imports every image of an OCI archive, docker archive or OCI layout directory (detected) and tags
    /// them; returns what was loaded.
    pub fn load(&self, path: &Path) -> Result<Vec<LoadedImage>, StoreError> {
        load::load(self, path)
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
