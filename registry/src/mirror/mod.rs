//! Image-level copying between registries, registry stores (Distribution-layout directories, S3 buckets) and
//! the local OCI store: the engine behind `pull`, `push`, `registry save`, `registry sync` and `registry copy`.
//!
//! # How an image is copied
//!
//! 1. The source manifest is read byte-exact (by tag or digest) and verified.
//! 2. The platform filter is applied: [`PlatformFilter::All`] keeps an index whole; a filter on an index
//!    selects the *first* child manifest that matches, and that single platform manifest is copied and
//!    tagged (the index itself is not copied, because a rewritten index would have a new digest). A
//!    single-platform manifest is copied as it is whatever the filter says.
//!    With [`MirrorOptions::keep_pinned_index`], a job that names an index by digest (a pin,
//!    `name:tag@sha256:<index>`) keeps the index byte-exact and tags it, so both the pinned digest and the
//!    tag resolve at the destination: into a directory or the local store only the selected platform's
//!    manifest comes with it (the index's other children are absent, as with `skopeo copy --multi-arch
//!    index-only` plus that one platform); a registry refuses an index whose children it lacks, so into a
//!    registry every child is copied.
//! 3. When the destination tag already points at that digest and the destination has every referrer
//!    the source lists for it, the image is skipped (`sync` and `save` compare before anything is
//!    fetched); referrers it lacks (a run that failed on them) are copied alone.
//! 4. Children go before parents: an index's child manifests (each skipped when the destination already
//!    has it — a stored manifest implies its content is there), then each manifest's config and layers in
//!    parallel, then the manifest, and the tag last; an interrupted copy leaves no tag pointing at missing
//!    content and a rerun copies only what is missing. Blobs already at the destination are never read from
//!    the source (`HEAD` on registries, the store's blob size on stores). Into a store, a blob is streamed
//!    into an upload session the store verifies before the blob appears; a blob that was half brought into
//!    a directory when the run was interrupted (even killed) is continued from where it stopped, with a
//!    `Range` request for the rest (see [`Store`]: the session is named in `<dir>/.staging/<alg>-<hex>.upload`).
//!    An upload to a registry, or into a bucket, that was cut is started again.
//! 5. Referrers of the copied image (signatures, SBOMs) are copied by digest when the source is a registry
//!    or a store (manifests there whose `subject` is the image).
//!
//! Images run concurrently, at most [`MirrorOptions::max_images`] transferring at a time; the blobs of one
//! image run concurrently too, limited per host by the client. A blob wanted by two images at once is
//! transferred once: the second waits and then links (directory) or mounts (same registry) it, and while
//! it only waits it gives its place to the next image, so one large shared layer does not stall the run.
//! One blob is never uploaded, mounted or linked into one repository twice at once, nor one manifest put
//! there by digest twice at once: a second image that needs it waits for the first write and uses its
//! result (docker-registry rewrites a repository's link file on each such write, and a manifest `PUT`
//! reading it mid-rewrite fails with `DIGEST_INVALID`). Every blob and child manifest of a manifest is
//! there before the manifest is put.

mod location;
pub mod shim;
mod store;
pub mod tars;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageIndex, ParsedManifest, Platform, RawManifest};
use formats::media_type;
use formats::reference::Reference;
use futures_util::StreamExt;
use futures_util::future::join_all;

pub use location::{BlobOrigin, Location};
pub use store::Store;

use crate::client::ClientError;

/// Everything that can go wrong while mirroring one image (or listing what to mirror).
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// A registry request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A repository name or tag is not acceptable in a store, or a path in it is refused.
    #[error(transparent)]
    Distribution(#[from] formats::distribution::DistributionError),
    /// A registry store (directory, bucket) could not be read or written.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// A blob's bytes could not be brought from its source.
    #[error("blob {digest}: {reason}")]
    Transfer {
        /// The blob.
        digest: Digest,
        /// What went wrong.
        reason: String,
    },
    /// An OCI layout could not be read or written.
    #[error(transparent)]
    Layout(#[from] formats::oci_layout::LayoutError),
    /// A manifest could not be parsed.
    #[error("manifest {what}: {source}")]
    Manifest {
        /// Which manifest.
        what: String,
        /// Why.
        source: formats::manifest::ManifestError,
    },
    /// A file operation failed.
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The image, tag or repository does not exist at the source.
    #[error("{0} not found")]
    NotFound(String),
    /// An index has no manifest for the requested platform.
    #[error(
        "{image} has no manifest for platform {wanted} (it has: {available}); pick one of those or use --all"
    )]
    NoMatchingPlatform {
        /// The image.
        image: String,
        /// The filter.
        wanted: String,
        /// The platforms it does have.
        available: String,
    },
    /// A `SRC`/`DST` argument is not a registry, a directory or a bucket.
    #[error(
        "`{spec}` is not a registry (host[:port][/prefix]), a directory or a bucket (s3://BUCKET/PREFIX): {reason}"
    )]
    BadLocation {
        /// The argument.
        spec: String,
        /// Why.
        reason: String,
    },
    /// An image reference is invalid.
    #[error("`{image}` is not a valid image reference: {reason}")]
    BadReference {
        /// The text.
        image: String,
        /// Why.
        reason: String,
    },
    /// A context's archive list (`images/skopeo/tar.txt`), or one of its lines, cannot be used.
    #[error("{location}: {reason}")]
    ArchiveList {
        /// The list, and the line when one is at fault (`ctx/images/skopeo/tar.txt:3`).
        location: String,
        /// Why, with what to do about it.
        reason: String,
    },
    /// Two images from different registries would be saved under the same repository and tag.
    #[error(
        "`{first}` and `{second}` would both be saved as `{path}` (the registry host is dropped); save them into different directories"
    )]
    NameCollision {
        /// The first image.
        first: String,
        /// The second image.
        second: String,
        /// The shared name without host.
        path: String,
    },
    /// An internal task failed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Which platforms of a multi-platform image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformFilter {
    /// Every platform: indexes are copied whole.
    All,
    /// Only the platform matching these fields (`None` = any value).
    Only {
        /// `amd64`, `arm64`...
        architecture: Option<String>,
        /// `linux`...
        os: Option<String>,
        /// `v8`...
        variant: Option<String>,
    },
}

impl PlatformFilter {
    /// Only `architecture` (any OS and variant), as `--arch` asks.
    pub fn arch(architecture: &str) -> Self {
        PlatformFilter::Only {
            architecture: Some(architecture.to_string()),
            os: None,
            variant: None,
        }
    }

    /// Exactly `platform` (`os/arch[/variant]`; a missing variant matches any).
    pub fn platform(platform: &Platform) -> Self {
        PlatformFilter::Only {
            architecture: Some(platform.architecture.clone()),
            os: Some(platform.os.clone()),
            variant: platform.variant.clone(),
        }
    }

    /// The platform wanted (empty fields match any), or `None` for [`PlatformFilter::All`].
    fn wanted(&self) -> Option<Platform> {
        let PlatformFilter::Only {
            architecture,
            os,
            variant,
        } = self
        else {
            return None;
        };
        let mut wanted = Platform::new(
            os.as_deref().unwrap_or_default(),
            architecture.as_deref().unwrap_or_default(),
        );
        wanted.variant = variant.clone();
        Some(wanted)
    }

    /// True when `p` passes the filter ([`Platform::matches`]: `arm64` is `arm64/v8`, `arm` is `arm/v7`).
    pub fn matches(&self, p: &Platform) -> bool {
        self.wanted().is_none_or(|w| w.matches(p))
    }

    /// The entry of `index` this filter copies ([`Platform::select`], the one selection rule), or `None`
    /// when none matches; for [`PlatformFilter::All`] the first entry (callers copy the index whole).
    pub fn select<'a>(&self, index: &'a ImageIndex) -> Option<&'a Descriptor> {
        match self.wanted() {
            Some(wanted) => Platform::select(index, &wanted),
            None => index.manifests.first(),
        }
    }
}

impl std::fmt::Display for PlatformFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlatformFilter::All => write!(f, "all"),
            PlatformFilter::Only {
                architecture,
                os,
                variant,
            } => {
                write!(
                    f,
                    "{}/{}",
                    os.as_deref().unwrap_or("*"),
                    architecture.as_deref().unwrap_or("*")
                )?;
                if let Some(v) = variant {
                    write!(f, "/{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// One image to copy.
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// Where it comes from.
    pub source: Arc<Location>,
    /// Its repository there (without the location's prefix).
    pub source_repository: String,
    /// Its tag or digest there (for an OCI layout: the tag in `index.json`).
    pub source_reference: String,
    /// Its repository at the destination.
    pub dest_repository: String,
    /// The tag to give it at the destination (for an OCI layout: the full tag in `index.json`); `None`
    /// stores it by digest only.
    pub dest_tag: Option<String>,
}

impl ImageJob {
    /// The image's name at its source, for messages.
    pub fn source_name(&self) -> String {
        self.source
            .image_name(&self.source_repository, &self.source_reference)
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Copied; `bytes` of blobs were transferred.
    Copied {
        /// The digest now at the destination.
        digest: Digest,
        /// Blob bytes transferred (the referrers' included).
        bytes: u64,
        /// Referrers copied along.
        referrers: usize,
    },
    /// The destination already had it.
    Skipped {
        /// The digest.
        digest: Digest,
    },
    /// `--dry-run`: it would be copied.
    WouldCopy {
        /// The digest that would be copied.
        digest: Digest,
    },
    /// It failed; the cause.
    Failed(String),
}

/// The result for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// The source image's name.
    pub source: String,
    /// The destination repository and tag.
    pub destination: String,
    /// What happened.
    pub outcome: Outcome,
}

/// Called once per finished image.
pub type ImageCallback = Arc<dyn Fn(&ImageReport) + Send + Sync>;

/// How images are copied.
#[derive(Clone)]
pub struct MirrorOptions {
    /// Which platforms.
    pub platforms: PlatformFilter,
    /// Images in flight at once.
    pub max_images: usize,
    /// List what would be copied without copying.
    pub dry_run: bool,
    /// Skip an image whose destination tag already points at the same digest.
    pub skip_identical: bool,
    /// Copy referrers (signatures, SBOMs) of each copied image.
    pub referrers: bool,
    /// Told about every finished image.
    pub on_image: Option<ImageCallback>,
    /// Keep an index the job names by digest (a pin) with the selected platform, so the pinned digest
    /// resolves at the destination (`registry save/sync/copy` and embedding; see the module documentation).
    /// Off: the selected platform manifest alone is copied, as for a tag (`pull`, base images).
    pub keep_pinned_index: bool,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            platforms: PlatformFilter::All,
            max_images: 5,
            dry_run: false,
            skip_identical: true,
            referrers: true,
            on_image: None,
            keep_pinned_index: false,
        }
    }
}

impl std::fmt::Debug for MirrorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorOptions")
            .field("platforms", &self.platforms)
            .field("max_images", &self.max_images)
            .field("dry_run", &self.dry_run)
            .field("skip_identical", &self.skip_identical)
            .field("referrers", &self.referrers)
            .field("keep_pinned_index", &self.keep_pinned_index)
            .finish_non_exhaustive()
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Images copied (or, with `--dry-run`, that would be).
    pub copied: usize,
    /// Images skipped because the destination had them.
    pub skipped: usize,
    /// Images that failed.
    pub failed: usize,
    /// Blob bytes transferred.
    pub bytes: u64,
}

impl Summary {
    /// Adds up reports.
    pub fn of(reports: &[ImageReport]) -> Summary {
        let mut s = Summary::default();
        for r in reports {
            match &r.outcome {
                Outcome::Copied { bytes, .. } => {
                    s.copied += 1;
                    s.bytes += bytes;
                }
                Outcome::WouldCopy { .. } => s.copied += 1,
                Outcome::Skipped { .. } => s.skipped += 1,
                Outcome::Failed(_) => s.failed += 1,
            }
        }
        s
    }
}

type BlobCell = Arc<tokio::sync::OnceCell<String>>;

/// Set once a write into a repository succeeded.
type WriteCell = Arc<tokio::sync::OnceCell<()>>;

/// Writes into one destination repository that must not run twice at once: a second caller with the same
/// key waits for the first and shares its success (after a failure, the next caller tries again).
/// docker-registry rewrites a repository's link file on every mount or manifest `PUT`, and a manifest
/// `PUT` that reads it mid-rewrite fails with `DIGEST_INVALID`.
#[derive(Default)]
struct InFlight {
    cells: Mutex<HashMap<(String, Digest), WriteCell>>,
}

impl InFlight {
    /// Runs `write` unless it already succeeded (or is running) for `(repository, digest)`; waits for a
    /// running one.
    async fn once<F>(&self, repository: &str, digest: &Digest, write: F) -> Result<(), MirrorError>
    where
        F: std::future::Future<Output = Result<(), MirrorError>>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells
                .entry((repository.to_string(), digest.clone()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| write).await.map(|_| ())
    }
}

/// An image's place among the [`MirrorOptions::max_images`] allowed to transfer at once.
struct ImageSlot {
    held: Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl ImageSlot {
    /// Waits for a free place.
    async fn acquire(slots: Arc<tokio::sync::Semaphore>) -> ImageSlot {
        ImageSlot {
            // The semaphore is never closed, so this is always a permit.
            held: Mutex::new(slots.acquire_owned().await.ok()),
        }
    }

    /// A place outside any limit (one image copied on its own).
    fn unlimited() -> ImageSlot {
        ImageSlot {
            held: Mutex::new(None),
        }
    }

    /// Lets the next image start.
    fn give_up(&self) {
        drop(self.held.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// What a delta delivery may leave out because the site already holds it, and the record of what it wrote
/// (implemented by [`crate::delta::plan::DeltaPlan`]; set with [`Mirror::with_site`]).
pub trait SiteContent: Send + Sync {
    /// Whether the site holds blob `digest` (`size` bytes); when it does, the blob is not written and the
    /// implementation records it as relied on.
    fn relies_on_blob(&self, digest: &Digest, size: u64) -> bool;
    /// The same for a manifest stored under `repository` (index children and pinned platform manifests; a
    /// tagged image's own manifest is always written).
    fn relies_on_manifest(&self, repository: &str, digest: &Digest, size: u64) -> bool;
    /// Records a blob or manifest written into (or already present in) the destination.
    fn wrote(&self, digest: &Digest, size: u64);
}

/// Copies images into one destination.
pub struct Mirror {
    dest: Arc<Location>,
    opts: MirrorOptions,
    /// Blobs already brought to the destination in this run, with the repository they went to.
    blobs: Mutex<HashMap<Digest, BlobCell>>,
    /// Blobs mounted or linked into a repository other than the one they first went to.
    placed: InFlight,
    /// Manifests put by digest (index children, referrers).
    manifests: InFlight,
    /// A delta delivery's view of the site (`registry save --inventory`).
    site: Option<Arc<dyn SiteContent>>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("dest", &self.dest.describe())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Mirror {
    /// A mirror writing into `dest`.
    pub fn new(dest: Location, opts: MirrorOptions) -> Self {
        Mirror {
            dest: Arc::new(dest),
            opts,
            blobs: Mutex::new(HashMap::new()),
            placed: InFlight::default(),
            manifests: InFlight::default(),
            site: None,
        }
    }

    /// Writes a delta: content `site` holds is left out (and recorded as relied on), everything written is
    /// recorded. Turn [`MirrorOptions::skip_identical`] off with it, so a rerun records every image.
    pub fn with_site(mut self, site: Arc<dyn SiteContent>) -> Self {
        self.site = Some(site);
        self
    }

    /// True when the delta's site holds manifest `digest` (recorded as relied on).
    fn site_has_manifest(&self, repo: &str, digest: &Digest, size: u64) -> bool {
        self.site
            .as_ref()
            .is_some_and(|s| s.relies_on_manifest(repo, digest, size))
    }

    /// Records a manifest or blob now at the destination (delta deliveries).
    fn record_written(&self, digest: &Digest, size: u64) {
        if let Some(site) = &self.site {
            site.wrote(digest, size);
        }
    }

    /// The destination.
    pub fn dest(&self) -> &Location {
        &self.dest
    }

    /// Copies every job, at most [`MirrorOptions::max_images`] transferring at once (an image that only
    /// waits for blobs other images are bringing gives its place to the next one); one failing image does
    /// not stop the others. Reports come back in job order.
    pub async fn run(&self, jobs: Vec<ImageJob>) -> Vec<ImageReport> {
        let limit = self.opts.max_images.max(1);
        let slots = Arc::new(tokio::sync::Semaphore::new(limit));
        futures_util::stream::iter(jobs)
            .map(|job| {
                let slots = slots.clone();
                async move {
                    let slot = ImageSlot::acquire(slots).await;
                    let destination = self.dest.image_name(
                        &job.dest_repository,
                        job.dest_tag.as_deref().unwrap_or("(digest)"),
                    );
                    let outcome = match self.copy_image_in(&job, &slot).await {
                        Ok(o) => o,
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                    drop(slot);
                    let report = ImageReport {
                        source: job.source_name(),
                        destination,
                        outcome,
                    };
                    if let Some(cb) = &self.opts.on_image {
                        cb(&report);
                    }
                    report
                }
            })
            // Look ahead past images that wait for others; the slots bound the work.
            .buffered(limit.saturating_mul(8))
            .collect()
            .await
    }

    /// Copies one image (see the module documentation for the steps).
    pub async fn copy_image(&self, job: &ImageJob) -> Result<Outcome, MirrorError> {
        self.copy_image_in(job, &ImageSlot::unlimited()).await
    }

    /// [`Mirror::copy_image`] holding `slot`, which is given up once the image's own transfers are done.
    async fn copy_image_in(
        &self,
        job: &ImageJob,
        slot: &ImageSlot,
    ) -> Result<Outcome, MirrorError> {
        let src = &job.source;
        let top = src
            .get_manifest(&job.source_repository, &job.source_reference)
            .await?;
        // A pin to an index (`name:tag@sha256:<index>`) keeps the index, so the pinned digest resolves at the
        // destination too; only the selected platform's manifest comes with it (see the module documentation).
        let pinned_index = self.opts.keep_pinned_index
            && matches!(top.parsed, ParsedManifest::Index(_))
            && self.opts.platforms != PlatformFilter::All
            && Digest::parse(&job.source_reference).is_ok();
        let target = if pinned_index {
            top
        } else {
            self.select_platform(job, top).await?
        };
        if self.opts.skip_identical
            && let Some(tag) = &job.dest_tag
            && self
                .dest
                .tag_digest(&job.dest_repository, tag)
                .await?
                .as_ref()
                == Some(&target.digest)
        {
            // "Already there" covers the referrers too: a run that failed on them left the tag behind.
            let missing = self.missing_referrers(job, &target).await?;
            if missing.is_empty() {
                return Ok(Outcome::Skipped {
                    digest: target.digest,
                });
            }
            if self.opts.dry_run {
                return Ok(Outcome::WouldCopy {
                    digest: target.digest,
                });
            }
            let (referrers, bytes) = self.copy_referrers(job, &missing).await?;
            return Ok(Outcome::Copied {
                digest: target.digest,
                bytes,
                referrers,
            });
        }
        if self.opts.dry_run {
            return Ok(Outcome::WouldCopy {
                digest: target.digest,
            });
        }
        let bytes = if pinned_index && !matches!(*self.dest, Location::Registry { .. }) {
            self.copy_pinned_platform(job, &target, slot).await?
        } else {
            self.copy_children(job, &target, Some(slot)).await?
        };
        self.dest
            .put_manifest(&job.dest_repository, &target, job.dest_tag.as_deref())
            .await?;
        self.record_written(&target.digest, target.bytes.len() as u64);
        let missing = self.missing_referrers(job, &target).await?;
        let (referrers, referrer_bytes) = self.copy_referrers(job, &missing).await?;
        Ok(Outcome::Copied {
            digest: target.digest,
            bytes: bytes + referrer_bytes,
            referrers,
        })
    }

    /// The referrers of `target` at the source that the destination lacks (none unless
    /// [`MirrorOptions::referrers`]).
    async fn missing_referrers(
        &self,
        job: &ImageJob,
        target: &RawManifest,
    ) -> Result<Vec<Digest>, MirrorError> {
        let mut missing = Vec::new();
        if !self.opts.referrers {
            return Ok(missing);
        }
        let wanted = job
            .source
            .referrers(&job.source_repository, &target.digest)
            .await?;
        if wanted.is_empty() {
            return Ok(missing);
        }
        // A registry destination must also list them (referrers API or referrers tag): a referrer stored
        // by digest that nothing lists is not found by any tool, so it is put again (the tag is then
        // written).
        let listed = match &*self.dest {
            Location::Registry { .. } => Some(
                self.dest
                    .referrers(&job.dest_repository, &target.digest)
                    .await?,
            ),
            _ => None,
        };
        for d in wanted {
            let unlisted = listed.as_ref().is_some_and(|l| !l.contains(&d));
            // A delta copies them again (a directory already holding them keeps its files) to record them.
            if unlisted
                || self.site.is_some()
                || !self.dest.has_manifest(&job.dest_repository, &d).await?
            {
                missing.push(d);
            }
        }
        Ok(missing)
    }

    /// Copies the referrer manifests `digests` with their content; returns how many were copied and the
    /// blob bytes transferred for them.
    async fn copy_referrers(
        &self,
        job: &ImageJob,
        digests: &[Digest],
    ) -> Result<(usize, u64), MirrorError> {
        let mut bytes = 0;
        for d in digests {
            let raw = job
                .source
                .get_manifest(&job.source_repository, &d.to_string())
                .await?;
            bytes += self.copy_children(job, &raw, None).await?;
            self.put_by_digest(&job.dest_repository, &raw).await?;
        }
        Ok((digests.len(), bytes))
    }

    /// Copies the platform manifest the filter selects from the pinned `index` (not the index itself), with
    /// its content; returns the blob bytes transferred.
    async fn copy_pinned_platform(
        &self,
        job: &ImageJob,
        index: &RawManifest,
        slot: &ImageSlot,
    ) -> Result<u64, MirrorError> {
        let child = self.select_platform(job, index.clone()).await?;
        let size = child.bytes.len() as u64;
        if self.site_has_manifest(&job.dest_repository, &child.digest, size) {
            return Ok(0);
        }
        // A delta walks what is already there too, so a rerun records all of it.
        if self.site.is_none()
            && self
                .dest
                .has_manifest(&job.dest_repository, &child.digest)
                .await?
        {
            return Ok(0);
        }
        let bytes = self.copy_children(job, &child, Some(slot)).await?;
        self.put_by_digest(&job.dest_repository, &child).await?;
        Ok(bytes)
    }

    async fn select_platform(
        &self,
        job: &ImageJob,
        top: RawManifest,
    ) -> Result<RawManifest, MirrorError> {
        let ParsedManifest::Index(index) = &top.parsed else {
            return Ok(top);
        };
        if self.opts.platforms == PlatformFilter::All {
            return Ok(top);
        }
        let Some(chosen) = self.opts.platforms.select(index) else {
            let available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(MirrorError::NoMatchingPlatform {
                image: job.source_name(),
                wanted: self.opts.platforms.to_string(),
                available: available.join(", "),
            });
        };
        job.source
            .get_manifest(&job.source_repository, &chosen.digest.to_string())
            .await
    }

    /// Copies everything `raw` references (not `raw` itself); returns the blob bytes transferred. For an
    /// image manifest, `slot` is given up as soon as the blobs this image brings itself are done (the
    /// blobs other images are bringing are only waited for).
    fn copy_children<'a>(
        &'a self,
        job: &'a ImageJob,
        raw: &'a RawManifest,
        slot: Option<&'a ImageSlot>,
    ) -> futures_util::future::BoxFuture<'a, Result<u64, MirrorError>> {
        Box::pin(async move {
            match &raw.parsed {
                ParsedManifest::Index(index) => {
                    let copies = index.manifests.iter().map(|child| async move {
                        if self.site_has_manifest(&job.dest_repository, &child.digest, child.size) {
                            return Ok(0);
                        }
                        // A delta walks what is already there too, so a rerun records all of it.
                        if self.site.is_none()
                            && self
                                .dest
                                .has_manifest(&job.dest_repository, &child.digest)
                                .await?
                        {
                            return Ok(0);
                        }
                        let m = job
                            .source
                            .get_manifest(&job.source_repository, &child.digest.to_string())
                            .await?;
                        let n = self.copy_children(job, &m, None).await?;
                        self.put_by_digest(&job.dest_repository, &m).await?;
                        Ok::<u64, MirrorError>(n)
                    });
                    sum_all(join_all(copies).await)
                }
                ParsedManifest::Image(_) => {
                    let mut own = Vec::new();
                    let mut others = Vec::new();
                    for d in raw.referenced_blobs().into_iter().filter(|d| {
                        !media_type::is_non_distributable(&d.media_type) || d.urls.is_empty()
                    }) {
                        let (cell, first) = self.blob_cell(&d.digest);
                        let copy = self.copy_blob(job, d, cell);
                        if first {
                            own.push(copy)
                        } else {
                            others.push(copy)
                        }
                    }
                    // Every copy runs to its end even when one fails, so nothing is still being
                    // written when the image is reported.
                    let own = async {
                        let done = join_all(own).await;
                        if let Some(slot) = slot {
                            slot.give_up();
                        }
                        done
                    };
                    let (own, others) = futures_util::future::join(own, join_all(others)).await;
                    sum_all(own.into_iter().chain(others))
                }
            }
        })
    }

    /// Puts `raw` into `repo` by digest, once per run however many images list it.
    async fn put_by_digest(&self, repo: &str, raw: &RawManifest) -> Result<(), MirrorError> {
        self.manifests
            .once(repo, &raw.digest, async {
                self.dest.put_manifest(repo, raw, None).await
            })
            .await?;
        self.record_written(&raw.digest, raw.bytes.len() as u64);
        Ok(())
    }

    /// The run-wide cell of a blob, and whether this call created it (the caller then brings the blob;
    /// later callers wait for it and mount or link it).
    fn blob_cell(&self, digest: &Digest) -> (BlobCell, bool) {
        let mut blobs = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        match blobs.get(digest) {
            Some(cell) => (cell.clone(), false),
            None => {
                let cell = BlobCell::default();
                blobs.insert(digest.clone(), cell.clone());
                (cell, true)
            }
        }
    }

    async fn copy_blob(
        &self,
        job: &ImageJob,
        desc: &Descriptor,
        cell: BlobCell,
    ) -> Result<u64, MirrorError> {
        if let Some(site) = &self.site {
            if site.relies_on_blob(&desc.digest, desc.size) {
                return Ok(0);
            }
            site.wrote(&desc.digest, desc.size);
        }
        let origin = job.source.blob_origin(&job.source_repository, &desc.digest);
        let repo = &job.dest_repository;
        let mut transferred = 0;
        let first = cell
            .get_or_try_init(|| async {
                transferred = self.dest.put_blob(repo, desc, &origin, None).await?;
                Ok::<String, MirrorError>(repo.clone())
            })
            .await?;
        if first != repo {
            self.placed
                .once(repo, &desc.digest, async {
                    transferred += self.dest.put_blob(repo, desc, &origin, Some(first)).await?;
                    Ok(())
                })
                .await?;
        }
        Ok(transferred)
    }
}

/// The total of `results`, or the first error among them.
fn sum_all(
    results: impl IntoIterator<Item = Result<u64, MirrorError>>,
) -> Result<u64, MirrorError> {
    results.into_iter().sum()
}

/// The jobs of `registry save`: each image pulled from its own registry into `repository:tag` without the
/// host (`registry.k8s.io/pause:3.9` -> `pause:3.9`). Two images from different hosts with the same path
/// are an error naming both; the same image listed twice is kept once.
pub fn save_jobs(
    images: &[String],
    client: &crate::client::RegistryClient,
) -> Result<Vec<ImageJob>, MirrorError> {
    let mut seen: HashMap<String, Reference> = HashMap::new();
    let mut jobs = Vec::new();
    for image in images {
        let r = Reference::parse(image).map_err(|e| MirrorError::BadReference {
            image: image.clone(),
            reason: e.to_string(),
        })?;
        let path = r.path_without_host();
        if let Some(prev) = seen.get(&path) {
            if prev.registry() != r.registry() {
                return Err(MirrorError::NameCollision {
                    first: prev.to_string(),
                    second: r.to_string(),
                    path,
                });
            }
            continue;
        }
        seen.insert(path, r.clone());
        jobs.push(job_from_reference(&r, client, r.repository().to_string()));
    }
    Ok(jobs)
}

/// A job copying the image `r` from its registry into `dest_repository` under its tag.
pub fn job_from_reference(
    r: &Reference,
    client: &crate::client::RegistryClient,
    dest_repository: String,
) -> ImageJob {
    ImageJob {
        source: Arc::new(Location::registry(client, r.registry())),
        source_repository: r.repository().to_string(),
        source_reference: match r.digest() {
            Some(d) => d.to_string(),
            None => r.reference_str(),
        },
        dest_repository,
        dest_tag: r.tag().map(str::to_string),
    }
}

/// The jobs of `registry sync`: every `(repository, tag)` of `source` that passes `include`/`exclude`
/// (regular expressions matched against `repo:tag`), to the same repository and tag at the destination.
pub async fn sync_jobs(
    source: Location,
    include: &[regex::Regex],
    exclude: &[regex::Regex],
    max_parallel: usize,
) -> Result<Vec<ImageJob>, MirrorError> {
    let source = Arc::new(source);
    let list = source.list_images(max_parallel).await?;
    Ok(list
        .into_iter()
        .filter(|(repo, tag)| {
            let name = format!("{repo}:{tag}");
            (include.is_empty() || include.iter().any(|r| r.is_match(&name)))
                && !exclude.iter().any(|r| r.is_match(&name))
        })
        .map(|(repo, tag)| ImageJob {
            source: source.clone(),
            source_repository: repo.clone(),
            source_reference: tag.clone(),
            dest_repository: repo,
            dest_tag: Some(tag),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientOptions, RegistryClient};
    use std::path::Path;

    #[test]
    fn arch_filter_matches_any_os_and_variant() {
        let f = PlatformFilter::arch("arm64");
        let mut p = Platform::new("linux", "arm64");
        p.variant = Some("v8".into());
        assert!(f.matches(&p));
        assert!(!f.matches(&Platform::new("linux", "amd64")));
    }

    #[test]
    fn platform_filter_with_variant_requires_it() {
        let mut want = Platform::new("linux", "arm");
        want.variant = Some("v7".into());
        let f = PlatformFilter::platform(&want);
        let mut v6 = Platform::new("linux", "arm");
        v6.variant = Some("v6".into());
        assert!(!f.matches(&v6));
        assert!(f.matches(&want));
    }

    #[test]
    fn save_names_drop_the_host_and_collisions_name_both_images() {
        let client = RegistryClient::new(ClientOptions::default()).unwrap();
        let jobs = save_jobs(
            &["registry.k8s.io/pause:3.9".into(), "nginx".into()],
            &client,
        )
        .unwrap();
        assert_eq!(jobs[0].dest_repository, "pause");
        assert_eq!(jobs[0].dest_tag.as_deref(), Some("3.9"));
        assert_eq!(jobs[1].dest_repository, "library/nginx");
        let err =
            save_jobs(&["a.io/x/pause:1".into(), "b.io/x/pause:1".into()], &client).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("a.io/x/pause:1") && text.contains("b.io/x/pause:1"),
            "{text}"
        );
    }

    #[test]
    fn registry_location_parses_host_port_and_prefix() {
        let client = RegistryClient::new(ClientOptions::default()).unwrap();
        match Location::parse("127.0.0.1:5000/mirror/sub", &client).unwrap() {
            Location::Registry { host, prefix, .. } => {
                assert_eq!(host, "127.0.0.1:5000");
                assert_eq!(prefix, "mirror/sub");
            }
            other => panic!("{other:?}"),
        }
        let dir = Location::parse("./out", &client).unwrap();
        assert_eq!(dir.store().and_then(Store::root), Some(Path::new("./out")));
        assert!(Location::parse("s3://", &client).is_err());
    }
}
