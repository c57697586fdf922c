//! Embedding container images into a cluster image: the images a build context references are pulled into
//! the local store (in parallel, pinned by the lock file [`lock`]), and their `registry/` tree is appended
//! after the Kubefile's layers as one layer per image plus one shared layer of the blobs several images
//! reference ([`layer`]): every blob is in exactly one layer.
//!
//! The flow of a build ([`prepare`], then [`layers`] per platform):
//! 1. The requested images are normalised (`nginx` -> `docker.io/library/nginx:latest`), merged (same
//!    reference twice = one image with both sources) and sorted. Two images from different hosts with the
//!    same repository path would share a directory in the registry tree: that is an error naming both.
//! 2. `images.lock` is read. An image and platform it lists is not resolved again: its digest is used, and
//!    when its manifests and blobs are all in the store no request is made. `--locked` refuses a build whose
//!    requested images (or platforms) differ from the lock.
//! 3. The rest is pulled, at most `max_pull_procs` at a time ([`pull`]); the lock is rewritten when it changed.
//!    The lock is written before the Kubefile's layers are built, so `COPY . .` sees the same file as the
//!    next build will.
//! 4. Per platform, the shared layer (when images share blobs), then one uncompressed layer per image, in
//!    reference order, each cached.
//!
//! With `--all`, indexes are embedded whole and the same layer serves every platform; otherwise each
//! platform gets the image's platform manifest, tagged in that platform's own tree (platforms never
//! overwrite each other's tags, since each platform is a separate image with its own `registry/`).

pub mod archives;
pub mod layer;
pub mod lock;
pub mod pull;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use formats::digest::Digest;
use formats::layer::ExpansionLimit;
use formats::manifest::Platform;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;
use registry::client::RegistryClient;
use registry::mirror::{MirrorError, PlatformFilter};

use self::archives::{ArchiveImage, load_archives};
use self::layer::{
    EMBEDDED_IMAGE_ANNOTATION, LayerSpec, SHARED_BLOBS_ANNOTATION, image_blobs, image_layer,
    shared_layer,
};
use self::lock::{LOCK_FILE, Lock, LockError, LockedImage};
use self::pull::{PullWork, pull_all};
use crate::build::BuildError;
use crate::build::cache::{CachedLayer, LayerCache};

/// Default of `--max-pull-procs`.
pub const DEFAULT_MAX_PULL_PROCS: usize = 5;

/// The platform key of `--all` in the lock and in [`EmbeddedImage::digests`].
pub const ALL_PLATFORMS: &str = "all";

/// One image to embed, as discovery (or an image list) gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    /// The image reference as written.
    pub reference: String,
    /// Where it was found (`file:line`...).
    pub sources: Vec<String>,
}

/// How images are embedded (the `sealos build` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    /// `--save-image`: embed at all (default true).
    pub save_image: bool,
    /// `--all`: embed whole multi-platform indexes.
    pub all_platforms: bool,
    /// `--max-pull-procs`: images pulled at once.
    pub max_pull_procs: usize,
    /// `--locked`: fail when the requested images differ from the lock; never write it.
    pub locked: bool,
    /// `--strict`: every discovery warning is an error.
    pub strict: bool,
    /// `--chart-renderer`: how discovery renders charts.
    pub chart_renderer: crate::discover::ChartRenderer,
    /// `--kube-version`: the Kubernetes version charts are rendered for; `None`: the rootfs image's
    /// `version` label when the image is (or is built on) a rootfs image, else the documented default.
    pub kube_version: Option<String>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            save_image: true,
            all_platforms: false,
            max_pull_procs: DEFAULT_MAX_PULL_PROCS,
            locked: false,
            strict: false,
            chart_renderer: crate::discover::ChartRenderer::default(),
            kube_version: None,
        }
    }
}

/// An image ready to embed: in the store, resolved for every platform of the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedImage {
    /// The normalised reference.
    pub reference: Reference,
    /// Where it was found.
    pub sources: Vec<String>,
    /// The digest embedded per platform key (`linux/amd64`, or [`ALL_PLATFORMS`]).
    pub digests: BTreeMap<String, Digest>,
}

/// What [`prepare`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedPlan {
    /// The images, sorted by reference.
    pub images: Vec<EmbeddedImage>,
    /// The images of `images/skopeo/tar.txt`'s archives, in file order (the same for every platform).
    pub archives: Vec<ArchiveImage>,
    /// Whether embedding is on (`--save-image`) and with `--all`.
    pub all_platforms: bool,
    /// The lock file.
    pub lock_path: PathBuf,
    /// Pulls that had to ask a registry.
    pub fetched: usize,
    /// Blob bytes downloaded.
    pub bytes: u64,
    /// Images whose platform is not the build's (errors instead under `--strict`).
    pub warnings: Vec<String>,
}

/// Why images could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// An image reference is invalid.
    #[error("image `{reference}` (from {sources}) is not a valid image reference: {source}")]
    BadReference {
        /// As written.
        reference: String,
        /// Where it was found.
        sources: String,
        /// Why.
        #[source]
        source: Box<formats::reference::ReferenceError>,
    },
    /// Two hosts map to the same repository in the embedded registry.
    #[error(
        "`{first}` and `{second}` would both be embedded as repository `{repository}` (the registry host is \
         dropped in the embedded registry); keep only one of them, or retag one under another path"
    )]
    HostClash {
        /// The first image.
        first: String,
        /// The second image.
        second: String,
        /// The shared repository path.
        repository: String,
    },
    /// The lock cannot be read.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `--locked` and the requested images differ from the lock.
    #[error(
        "--locked: {path} does not match this build: {difference}; build without --locked to update it"
    )]
    LockMismatch {
        /// The lock file.
        path: String,
        /// What differs.
        difference: String,
    },
    /// An image could not be pulled.
    #[error("pulling {image} for {platform}: {source}")]
    Pull {
        /// The image.
        image: String,
        /// The platform key.
        platform: String,
        /// Why.
        #[source]
        source: Box<MirrorError>,
    },
    /// Images must be pulled but no registry client was configured.
    #[error(
        "{count} image(s) to embed are not in the local store (first: {first}) and no registry access was configured; pass registry options, or --save-image=false"
    )]
    NoClient {
        /// How many.
        count: usize,
        /// The first one.
        first: String,
    },
    /// An archive of `images/skopeo/tar.txt` cannot be read or named.
    #[error("{archive} (from {source_line}): {reason}")]
    Archive {
        /// `transport:file`.
        archive: String,
        /// The `tar.txt` line.
        source_line: String,
        /// Why.
        reason: String,
    },
    /// An archive of `images/skopeo/tar.txt` cannot be inspected, loaded or named.
    #[error("{archive} (from {source_line}): {doing}{source}")]
    ArchiveFailed {
        /// `transport:file`.
        archive: String,
        /// The `tar.txt` line.
        source_line: String,
        /// What was being done, as a prefix of the error (`loading it into the local store: `), or empty.
        doing: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Two different images would get one name in the embedded registry.
    #[error(
        "`{name}` would hold two different images in the embedded registry: {first} and {second}; \
         give one of them another name (`FILE@NAME:TAG` in images/skopeo/tar.txt)"
    )]
    NameClash {
        /// `repository:tag`.
        name: String,
        /// The first image and where it comes from.
        first: String,
        /// The second.
        second: String,
    },
    /// `--strict`: an image is not for the platform it is embedded into.
    #[error("--strict: {0}")]
    WrongPlatform(String),
    /// Image discovery failed (an unreadable file, or warnings under `--strict`).
    #[error(transparent)]
    Discover(Box<crate::discover::DiscoverError>),
    /// The pulls could not run (no async runtime to run them on).
    #[error(transparent)]
    Wait(#[from] crate::blocking::WaitError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The lock file cannot be looked up inside the build context.
    #[error("{path}: {source}")]
    LockPath {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: formats::kubefile::ContextPathError,
    },
    /// The lock file cannot be written.
    #[error("{path}: {source}")]
    LockWrite {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: formats::fsutil::StageError,
    },
}

/// What a build asks to embed: images to pull and archives to load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbedInputs {
    /// Registry images, as written, with their provenance.
    pub requests: Vec<EmbedRequest>,
    /// The archives of `images/skopeo/tar.txt`, in file order.
    pub archives: Vec<crate::discover::ArchiveEntry>,
}

/// The images of a build context to embed, found by [`crate::discover`] (lists, manifests, charts, with
/// `.sealignore` applied), each with its provenance; the archives of `images/skopeo/tar.txt`; and the
/// discovery warnings. The one place the build asks for its image list.
pub fn requests_from_context(
    context: &Path,
    opts: &crate::discover::DiscoverOptions,
) -> Result<(EmbedInputs, Vec<crate::discover::Warning>), EmbedError> {
    let found =
        crate::discover::discover(context, opts).map_err(|e| EmbedError::Discover(Box::new(e)))?;
    let requests = found
        .images
        .into_iter()
        .map(|image| EmbedRequest {
            reference: image.reference,
            sources: image.sources.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let inputs = EmbedInputs {
        requests,
        archives: found.archives,
    };
    Ok((inputs, found.warnings))
}

/// The platform key of `p` (`linux/arm64/v8`).
pub fn platform_key(p: &Platform) -> String {
    p.to_string()
}

/// Normalises, merges and sorts the requests, and refuses host clashes.
pub fn normalise(requests: &[EmbedRequest]) -> Result<Vec<(Reference, Vec<String>)>, EmbedError> {
    let mut by_ref: BTreeMap<String, (Reference, Vec<String>)> = BTreeMap::new();
    for req in requests {
        let r = Reference::parse(&req.reference).map_err(|source| EmbedError::BadReference {
            reference: req.reference.clone(),
            sources: req.sources.join(", "),
            source: Box::new(source),
        })?;
        let entry = by_ref
            .entry(r.to_string())
            .or_insert_with(|| (r, Vec::new()));
        for s in &req.sources {
            if !entry.1.contains(s) {
                entry.1.push(s.clone());
            }
        }
    }
    let mut repos: BTreeMap<&str, &Reference> = BTreeMap::new();
    for (r, _) in by_ref.values() {
        if let Some(prev) = repos.get(r.repository())
            && prev.registry() != r.registry()
        {
            return Err(EmbedError::HostClash {
                first: prev.to_string(),
                second: r.to_string(),
                repository: r.repository().to_string(),
            });
        }
        repos.insert(r.repository(), r);
    }
    Ok(by_ref.into_values().collect())
}

fn read_lock(path: &Path) -> Result<Option<Lock>, EmbedError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(lock::parse(&text, path)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EmbedError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `--locked`: what differs between the lock and the wanted (reference, platform keys).
fn lock_difference(
    lock: Option<&Lock>,
    wanted: &[(Reference, Vec<String>)],
    archives: &[ArchiveImage],
    keys: &[String],
) -> Option<String> {
    let Some(lock) = lock else {
        return (!wanted.is_empty() || !archives.is_empty())
            .then(|| "there is no lock file".into());
    };
    let locked: BTreeSet<&str> = lock.images.iter().map(|i| i.reference.as_str()).collect();
    let mut asked: BTreeSet<String> = wanted.iter().map(|(r, _)| r.to_string()).collect();
    let mut diffs = Vec::new();
    for a in archives {
        let name = a.name();
        if let Some(entry) = lock.get(&name) {
            for k in keys {
                if entry.digests.get(k).is_some_and(|d| *d != a.digest) {
                    diffs.push(format!(
                        "{name} (from {}) is {} but locked for {k} as another digest",
                        a.sources.join(", "),
                        a.digest
                    ));
                }
            }
        }
        asked.insert(name);
    }
    for a in &asked {
        match lock.get(a) {
            None => diffs.push(format!("{a} is not locked")),
            Some(entry) => {
                for k in keys {
                    if !entry.digests.contains_key(k) {
                        diffs.push(format!("{a} has no digest for {k}"));
                    }
                }
            }
        }
    }
    for l in locked {
        if !asked.contains(l) {
            diffs.push(format!("{l} is locked but no longer requested"));
        }
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// Resolves and pulls every requested image for `platforms` into `store` and loads every archive
/// ([`archives`]), honouring and updating the lock in `context` (see the module documentation). Creates its
/// own async runtime: call it from synchronous code. A compressed archive is decompressed within `limit`
/// (`--max-layer-expansion`). Layers are written later, by [`layers`], once every image is known: which
/// blobs go into the shared layer depends on all of them.
pub fn prepare(
    store: &OciLayout,
    client: Option<&RegistryClient>,
    context: &Path,
    inputs: &EmbedInputs,
    platforms: &[Platform],
    opts: &EmbedOptions,
    limit: ExpansionLimit,
) -> Result<EmbedPlan, EmbedError> {
    let lock_path = context.join(LOCK_FILE);
    let mut plan = EmbedPlan {
        lock_path: lock_path.clone(),
        all_platforms: opts.all_platforms,
        ..EmbedPlan::default()
    };
    if !opts.save_image {
        return Ok(plan);
    }
    let wanted = normalise(&inputs.requests)?;
    plan.archives = load_archives(store, context, &inputs.archives, limit)?;
    for a in &plan.archives {
        if let Some((r, sources)) = wanted
            .iter()
            .find(|(r, _)| r.repository() == a.repository && r.tag() == Some(a.tag.as_str()))
        {
            return Err(EmbedError::NameClash {
                name: a.name(),
                first: format!("{r} (from {})", sources.join(", ")),
                second: format!("{} ({})", a.sources.join(", "), a.digest),
            });
        }
    }
    // An archive's image is embedded into every platform's tree as it is: check it like a pulled one.
    if !opts.all_platforms {
        for a in &plan.archives {
            for platform in platforms {
                if let Some(found) = platform_mismatch(store, &a.digest, platform) {
                    let why = wrong_platform(&a.name(), &a.sources, &found, platform);
                    if opts.strict {
                        return Err(EmbedError::WrongPlatform(why));
                    }
                    plan.warnings.push(why);
                }
            }
        }
    }
    // Read where the lock leads inside the context (never a host file through a symlink); it is rewritten by
    // an atomic rename, which replaces a symlink rather than writing through it.
    let existing = match formats::kubefile::resolve_in_context(context, LOCK_FILE) {
        Ok(found) => read_lock(&found.path)?,
        Err(source) => {
            return Err(EmbedError::LockPath {
                path: lock_path,
                source,
            });
        }
    };
    let keys: Vec<String> = if opts.all_platforms {
        vec![ALL_PLATFORMS.to_string()]
    } else {
        platforms.iter().map(platform_key).collect()
    };
    let filters: Vec<PlatformFilter> = if opts.all_platforms {
        vec![PlatformFilter::All]
    } else {
        platforms.iter().map(PlatformFilter::platform).collect()
    };
    if opts.locked
        && let Some(difference) = lock_difference(existing.as_ref(), &wanted, &plan.archives, &keys)
    {
        return Err(EmbedError::LockMismatch {
            path: lock_path.display().to_string(),
            difference,
        });
    }
    if wanted.is_empty() && plan.archives.is_empty() && existing.is_none() {
        return Ok(plan);
    }
    let mut work = Vec::new();
    for (r, _) in &wanted {
        let locked = existing.as_ref().and_then(|l| l.get(&r.to_string()));
        for (key, filter) in keys.iter().zip(&filters) {
            work.push(PullWork {
                reference: r.clone(),
                platforms: filter.clone(),
                // A pin is the digest embedded (an index stays an index, see `registry::mirror`).
                locked: r
                    .digest()
                    .or_else(|| locked.and_then(|l| l.digests.get(key)))
                    .cloned(),
            });
        }
    }
    let results = if work.is_empty() {
        Vec::new()
    } else {
        crate::blocking::wait(pull_all(
            Arc::new(store.clone()),
            client.cloned(),
            work,
            opts.max_pull_procs,
        ))?
    };
    let mut results = results.into_iter();
    for (r, sources) in wanted {
        let mut digests = BTreeMap::new();
        for key in &keys {
            let Some(result) = results.next() else {
                continue;
            };
            let pulled = result.map_err(|source| match (&source, client) {
                (MirrorError::Internal(_), None) => EmbedError::NoClient {
                    count: 1,
                    first: r.to_string(),
                },
                _ => EmbedError::Pull {
                    image: r.to_string(),
                    platform: key.clone(),
                    source: Box::new(source),
                },
            })?;
            plan.fetched += usize::from(pulled.fetched);
            plan.bytes += pulled.bytes;
            if let Some(platform) = platforms.iter().find(|p| platform_key(p) == *key)
                && let Some(found) = platform_mismatch(store, &pulled.digest, platform)
            {
                let why = wrong_platform(&r.to_string(), &sources, &found, platform);
                if opts.strict {
                    return Err(EmbedError::WrongPlatform(why));
                }
                plan.warnings.push(why);
            }
            digests.insert(key.clone(), pulled.digest);
        }
        plan.images.push(EmbeddedImage {
            reference: r,
            sources,
            digests,
        });
    }
    if !opts.locked {
        write_lock(
            &lock_path,
            existing.as_ref(),
            &plan.images,
            &plan.archives,
            &keys,
        )?;
    }
    Ok(plan)
}

/// The warning (or `--strict` error) for image `name`, found in `sources`, built for `found` only.
fn wrong_platform(name: &str, sources: &[String], found: &str, platform: &Platform) -> String {
    format!(
        "image `{name}` (from {}) is for `{found}`, not for the build's platform `{platform}`; \
         list an image built for `{platform}` (or a multi-platform one)",
        sources.join(", ")
    )
}

/// The platform of the single-platform image `digest` in `store` (from its config) when it is not
/// `wanted`; `None` when it matches, is an index (its children carry their platforms) or cannot be read.
/// Compared by [`Platform::matches`] (`arm64` is `arm64/v8`, `arm` is `arm/v7`; a wanted platform without a
/// variant takes any).
fn platform_mismatch(store: &OciLayout, digest: &Digest, wanted: &Platform) -> Option<String> {
    let raw = store
        .read_manifest(&formats::manifest::Descriptor::new("", digest.clone(), 0))
        .ok()?;
    let formats::manifest::ParsedManifest::Image(image) = &raw.parsed else {
        return None;
    };
    let bytes = store.read_blob_bytes(&image.config.digest).ok()?;
    let config: formats::manifest::ImageConfig = serde_json::from_slice(&bytes).ok()?;
    let found = config.platform();
    (!wanted.matches(&found)).then(|| found.to_string())
}

/// Writes the lock for `images` (keeping digests of other platforms the old lock knew) when it changed.
fn write_lock(
    path: &Path,
    old: Option<&Lock>,
    images: &[EmbeddedImage],
    archives: &[ArchiveImage],
    keys: &[String],
) -> Result<(), EmbedError> {
    let from_archives = archives.iter().map(|a| LockedImage {
        reference: a.name(),
        sources: a.sources.clone(),
        digests: keys.iter().map(|k| (k.clone(), a.digest.clone())).collect(),
    });
    let new = Lock {
        version: lock::LOCK_VERSION,
        images: images
            .iter()
            .map(|i| {
                let reference = i.reference.to_string();
                let mut digests = old
                    .and_then(|l| l.get(&reference))
                    .map(|l| l.digests.clone())
                    .unwrap_or_default();
                digests.extend(i.digests.clone());
                LockedImage {
                    reference,
                    sources: i.sources.clone(),
                    digests,
                }
            })
            .chain(from_archives)
            .collect(),
    };
    let text = lock::render(&new);
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    if new.images.is_empty() && old.is_none() {
        return Ok(());
    }
    formats::fsutil::atomic_write(path, text.as_bytes()).map_err(|source| EmbedError::LockWrite {
        path: path.to_path_buf(),
        source,
    })
}

/// One layer of the embedded registry tree for one platform: an embedded image's own layer, or the
/// shared layer of the blobs several images reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedLayer {
    /// The layer.
    pub layer: CachedLayer,
    /// `reference@digest` of the image it holds; for the shared layer, those of the images whose common
    /// blobs it holds, comma-separated.
    pub image: String,
    /// Where the image sits in the embedded registry (its full part of the tree follows from it, see
    /// [`layer::image_entries`]); `None` for the shared layer.
    pub spec: Option<LayerSpec>,
}

impl EmbeddedLayer {
    /// The annotation on the layer's descriptor (key, value): [`EMBEDDED_IMAGE_ANNOTATION`] naming the
    /// image, or [`SHARED_BLOBS_ANNOTATION`] naming the images sharing the blobs.
    pub fn annotation(&self) -> (&'static str, &str) {
        match self.spec {
            Some(_) => (EMBEDDED_IMAGE_ANNOTATION, &self.image),
            None => (SHARED_BLOBS_ANNOTATION, &self.image),
        }
    }

    /// The `created_by` of the layer's history entry.
    pub fn created_by(&self) -> String {
        match self.spec {
            Some(_) => format!("EMBED {}", self.image),
            None => format!(
                "EMBED blobs shared by {} images",
                self.image.split(',').count()
            ),
        }
    }
}

/// The layers of every image of `plan` for `platform`: first the shared layer of the blobs two or more of
/// them reference (when any do), then one layer per image, in reference order, then the archives' images
/// in `tar.txt` order (cached ones are reused). Every blob is in exactly one of them; the tree sits under
/// `root` (see [`LayerSpec::root`]).
pub fn layers(
    store: &OciLayout,
    cache: &LayerCache,
    plan: &EmbedPlan,
    platform: &Platform,
    root: &str,
    mtime: u64,
) -> Result<Vec<EmbeddedLayer>, BuildError> {
    let (key, filter) = if plan.all_platforms {
        (ALL_PLATFORMS.to_string(), PlatformFilter::All)
    } else {
        (platform_key(platform), PlatformFilter::platform(platform))
    };
    let specs: Vec<(String, LayerSpec)> = plan
        .images
        .iter()
        .filter_map(|i| {
            let digest = i.digests.get(&key)?.clone();
            Some((
                format!("{}@{digest}", i.reference.name()),
                LayerSpec {
                    repository: i.reference.repository().to_string(),
                    tag: i.reference.tag().map(str::to_string),
                    digest,
                    platforms: filter.clone(),
                    root: root.to_string(),
                },
            ))
        })
        .chain(plan.archives.iter().map(|a| {
            (
                format!("{}@{}", a.name(), a.digest),
                LayerSpec {
                    repository: a.repository.clone(),
                    tag: Some(a.tag.clone()),
                    digest: a.digest.clone(),
                    // An archive's image is embedded as it was saved.
                    platforms: PlatformFilter::All,
                    root: root.to_string(),
                },
            )
        }))
        .collect();
    let blobs = specs
        .iter()
        .map(|(_, spec)| image_blobs(store, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let shared = shared_blobs(&blobs);
    let sharing: Vec<&str> = specs
        .iter()
        .zip(&blobs)
        .filter(|(_, b)| !b.is_disjoint(&shared))
        .map(|((image, _), _)| image.as_str())
        .collect();
    // The shared layer first (usually the largest), then the images'.
    let jobs: Vec<(String, Option<LayerSpec>)> = (!shared.is_empty())
        .then(|| (sharing.join(","), None))
        .into_iter()
        .chain(specs.into_iter().map(|(image, spec)| (image, Some(spec))))
        .collect();
    // Layers are independent: write them on a few threads (each streams its blobs once).
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<CachedLayer, BuildError>>> = Vec::new();
    slots.resize_with(jobs.len(), || None);
    let slots = std::sync::Mutex::new(slots);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((_, spec)) = jobs.get(i) else { break };
                    let result = match spec {
                        Some(spec) => image_layer(store, cache, spec, &shared, mtime),
                        None => shared_layer(store, cache, &shared, root, mtime),
                    };
                    if let Ok(mut s) = slots.lock() {
                        s[i] = Some(result);
                    }
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_default();
    jobs.into_iter()
        .zip(slots)
        .map(|((image, spec), slot)| {
            let layer = slot.unwrap_or_else(|| {
                Err(BuildError::Output {
                    output: image.clone(),
                    reason: "writing the embedded image layer did not finish".into(),
                })
            })?;
            Ok(EmbeddedLayer { layer, image, spec })
        })
        .collect()
}

/// The blobs referenced by two or more of the images whose blobs `per_image` lists.
fn shared_blobs(per_image: &[BTreeSet<Digest>]) -> BTreeSet<Digest> {
    let mut seen = BTreeSet::new();
    let mut shared = BTreeSet::new();
    for d in per_image.iter().flatten() {
        if !seen.insert(d) {
            shared.insert(d.clone());
        }
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(reference: &str, source: &str) -> EmbedRequest {
        EmbedRequest {
            reference: reference.into(),
            sources: vec![source.into()],
        }
    }

    #[test]
    fn the_same_image_twice_is_one_image_with_both_sources_in_reference_order() {
        let images = normalise(&[
            req("registry.k8s.io/pause:3.9", "a:1"),
            req("nginx", "a:2"),
            req("docker.io/library/nginx:latest", "b:7"),
        ])
        .unwrap();
        let names: Vec<String> = images.iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(
            names,
            [
                "docker.io/library/nginx:latest",
                "registry.k8s.io/pause:3.9"
            ]
        );
        assert_eq!(images[0].1, ["a:2", "b:7"]);
    }

    #[test]
    fn a_blob_is_shared_when_two_or_more_images_reference_it() {
        let d = |s: &str| Digest::sha256_of(s.as_bytes());
        let set = |items: &[&str]| items.iter().map(|s| d(s)).collect::<BTreeSet<_>>();
        let shared = shared_blobs(&[
            set(&["base", "a"]),
            set(&["base", "b", "common"]),
            set(&["c", "common", "base"]),
        ]);
        assert_eq!(shared, set(&["base", "common"]));
        assert!(shared_blobs(&[set(&["a", "b"])]).is_empty());
    }

    #[test]
    fn two_hosts_with_one_repository_path_are_refused_naming_both() {
        let err = normalise(&[req("quay.io/x/app:1", "s"), req("docker.io/x/app:2", "s")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("quay.io/x/app:1")
                && err.contains("docker.io/x/app:2")
                && err.contains("`x/app`"),
            "{err}"
        );
    }

    #[test]
    fn locked_build_refuses_an_archive_whose_image_changed_and_accepts_an_unchanged_one() {
        let old = Digest::sha256_of(b"old");
        let new = Digest::sha256_of(b"new");
        let key = "linux/amd64".to_string();
        let lock = Lock {
            version: lock::LOCK_VERSION,
            images: vec![LockedImage {
                reference: "library/app:v1".into(),
                sources: Vec::new(),
                digests: BTreeMap::from([(key.clone(), old.clone())]),
            }],
        };
        let archive = |digest: &Digest| ArchiveImage {
            repository: "library/app".into(),
            tag: "v1".into(),
            digest: digest.clone(),
            sources: vec!["images/skopeo/tar.txt:1".into()],
        };
        let diff = lock_difference(
            Some(&lock),
            &[],
            &[archive(&new)],
            std::slice::from_ref(&key),
        )
        .unwrap();
        assert!(
            diff.contains("library/app:v1") && diff.contains(&new.to_string()),
            "{diff}"
        );
        assert_eq!(
            lock_difference(Some(&lock), &[], &[archive(&old)], &[key]),
            None
        );
    }

    #[test]
    fn locked_build_lists_every_difference_from_the_lock() {
        let lock = Lock {
            version: lock::LOCK_VERSION,
            images: vec![LockedImage {
                reference: "docker.io/library/old:1".into(),
                sources: Vec::new(),
                digests: BTreeMap::new(),
            }],
        };
        let wanted = normalise(&[req("new:2", "s")]).unwrap();
        let diff = lock_difference(Some(&lock), &wanted, &[], &["linux/amd64".into()]).unwrap();
        assert!(
            diff.contains("docker.io/library/new:2 is not locked"),
            "{diff}"
        );
        assert!(
            diff.contains("docker.io/library/old:1 is locked but no longer requested"),
            "{diff}"
        );
        assert!(lock_difference(None, &wanted, &[], &[]).is_some());
        assert!(
            lock_difference(None, &[], &[], &[]).is_none(),
            "nothing to embed needs no lock"
        );
    }
}
