//! Base images of a build: `FROM` and `COPY --from` images found in the local store (by tag), in an OCI
//! layout directory (`oci:DIR[:TAG]`), in an OCI archive (`oci-archive:FILE[:TAG]`) or in a registry.
//! Blobs of images from outside the store are copied into the store, verified, so the built image is
//! complete there.
//!
//! The rule for names (see [`PullPolicy`]): an image tagged with that name in the local store wins; with
//! the default `missing` policy a registry is asked only when the store has no image of that name for the
//! platform being built. A pulled image is kept in the store tagged with its full name, as `sealos pull`
//! does, so the next build finds it locally.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use formats::digest::Digest;
use formats::layer::{ExpansionLimit, UnpackOptions, decompressing_reader, unpack};
use formats::manifest::{Descriptor, ImageConfig as OciConfig, ParsedManifest, Platform};
use formats::oci_layout::LayoutError;
use formats::oci_layout::{ANNOTATION_REF_NAME, OciLayout};
use formats::reference::{Reference, ReferenceError};
use registry::client::RegistryClient;
use registry::mirror::{
    Location, Mirror, MirrorError, MirrorOptions, Outcome, PlatformFilter, job_from_reference,
};

use super::BuildError;
use crate::blocking::WaitError;

/// When a `FROM`/`COPY --from` image named by reference is pulled from its registry (`--pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Always ask the registry (once per image and platform in a build), even when the store has the name.
    Always,
    /// Pull only when the store has no image of that name for the platform (the default).
    #[default]
    Missing,
    /// Never pull: the image must be in the store.
    Never,
}

/// A `--pull` value that is not a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pull policy {0:?}: use always, missing or never")]
pub struct UnknownPullPolicy(pub String);

impl FromStr for PullPolicy {
    type Err = UnknownPullPolicy;

    /// Parses `always`, `missing` or `never` (also `true` = always and `false` = missing, as buildah).
    fn from_str(text: &str) -> Result<PullPolicy, UnknownPullPolicy> {
        match text {
            "always" | "true" => Ok(PullPolicy::Always),
            "missing" | "false" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(UnknownPullPolicy(other.to_string())),
        }
    }
}

/// Why a base image (`FROM`, `COPY --from`) cannot be used; shown after `base image REFERENCE: `.
#[derive(Debug, thiserror::Error)]
pub enum BaseImageError {
    /// The image must be pulled and the build has no registry client.
    #[error("it is not in the local store and no registry access was configured to pull it")]
    NoRegistryAccess,
    /// The image is not in the store and `--pull=never` forbids pulling it.
    #[error(
        "it is not in the local store and --pull=never forbids pulling it; run `sealos pull` first, or \
         build with --pull=missing"
    )]
    PullForbidden,
    /// The copy from the registry reported a failure.
    #[error("pulling it failed: {0}")]
    PullFailed(String),
    /// The copy from the registry failed.
    #[error("pulling it failed: {0}")]
    Pull(#[source] MirrorError),
    /// The pull could not be waited for (no suitable runtime).
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The OCI layout holding the image cannot be read.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The `oci-archive:` file cannot be opened or read.
    #[error("cannot {op} {}: {source}", path.display())]
    Archive {
        /// `open` or `read`.
        op: &'static str,
        /// The archive.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The `oci-archive:` cannot be decompressed.
    #[error(transparent)]
    Decompress(std::io::Error),
    /// The `oci-archive:` cannot be unpacked.
    #[error(transparent)]
    Unpack(#[from] formats::layer::UnpackError),
    /// No image has the tag.
    #[error("no image tagged {0:?} in it")]
    NoSuchTag(String),
    /// The layout is empty.
    #[error("it holds no image")]
    Empty,
    /// The layout holds several images and no tag chose one.
    #[error(
        "it holds several images: add :TAG naming one (see its index.json ref.name annotations)"
    )]
    SeveralImages,
    /// An index lists another index.
    #[error("an index inside an index is not supported")]
    NestedIndex,
    /// The index has no image for the platform.
    #[error("it has no image for platform {0}")]
    NoPlatform(Platform),
    /// The image config is not valid JSON for an image config.
    #[error("its config is not valid: {0}")]
    Config(#[source] serde_json::Error),
    /// The config's `diff_ids` and the manifest's layers disagree.
    #[error("its config lists {diff_ids} diff_ids for {layers} layers")]
    DiffIds {
        /// How many diff_ids the config lists.
        diff_ids: usize,
        /// How many layers the manifest lists.
        layers: usize,
    },
    /// A layer blob is not in the store.
    #[error("layer {0} is missing from the store")]
    MissingLayer(Digest),
}

/// Registry access for images named by reference: the client, the policy, and what this build pulled.
#[derive(Debug, Default)]
pub struct Remote {
    client: Option<RegistryClient>,
    policy: PullPolicy,
    pulled: Mutex<HashSet<String>>,
}

impl Remote {
    /// Pulls through `client` (none: registry images are refused) following `policy`.
    pub fn new(client: Option<RegistryClient>, policy: PullPolicy) -> Remote {
        Remote {
            client,
            policy,
            pulled: Mutex::new(HashSet::new()),
        }
    }

    /// Copies `reference` for `platform` from its registry into `store`, tagged with its full name; once
    /// per image and platform in a build. Runs on the caller's runtime (with the shared client's
    /// connections and tokens).
    pub async fn pull(
        &self,
        store: &OciLayout,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<(), BaseImageError> {
        let key = format!("{reference} {platform}");
        if self.pulled_already(&key) {
            return Ok(());
        }
        let client = self
            .client
            .as_ref()
            .ok_or(BaseImageError::NoRegistryAccess)?;
        let dest = OciLayout::open(store.root())?;
        let mut job = job_from_reference(reference, client, reference.repository().to_string());
        job.dest_tag = Some(reference.to_string());
        let mirror = Mirror::new(
            Location::Oci(Arc::new(dest)),
            MirrorOptions {
                platforms: PlatformFilter::platform(platform),
                max_images: 1,
                referrers: false,
                ..MirrorOptions::default()
            },
        );
        match mirror.copy_image(&job).await {
            Ok(Outcome::Failed(cause)) => Err(BaseImageError::PullFailed(cause)),
            Ok(_) => {
                self.pulled
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key);
                Ok(())
            }
            Err(e) => Err(BaseImageError::Pull(e)),
        }
    }

    fn pulled_already(&self, key: &str) -> bool {
        self.pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }
}

/// An image's layers and config, all blobs present in the store.
#[derive(Debug, Clone)]
pub struct ImageState {
    /// Layer descriptors, base first.
    pub layers: Vec<Descriptor>,
    /// The image config (rootfs diff_ids and history included).
    pub config: OciConfig,
}

fn base_err(reference: &str, problem: impl Into<BaseImageError>) -> BuildError {
    BuildError::BaseImage {
        reference: reference.to_string(),
        problem: Box::new(problem.into()),
    }
}

/// Splits `PATH[:TAG]`: the whole text when it names an existing path, else at the first `:` whose prefix
/// exists (so tags may contain `:`, as in `oci:DIR:docker.io/library/app:v1`), else at the last `:`.
fn split_path_tag(text: &str) -> (PathBuf, Option<String>) {
    if Path::new(text).exists() {
        return (PathBuf::from(text), None);
    }
    for (i, _) in text.match_indices(':') {
        let (path, tag) = (&text[..i], &text[i + 1..]);
        if !path.is_empty() && !tag.is_empty() && Path::new(path).exists() {
            return (PathBuf::from(path), Some(tag.to_string()));
        }
    }
    match text.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !tag.is_empty() => {
            (PathBuf::from(path), Some(tag.to_string()))
        }
        _ => (PathBuf::from(text), None),
    }
}

/// Resolves `reference` for `platform` and makes sure all its blobs are in `store` (an `oci-archive:` is
/// decompressed within `limit`).
pub fn resolve_image(
    store: &OciLayout,
    reference: &str,
    platform: &Platform,
    temp_root: &Path,
    remote: &Remote,
    limit: ExpansionLimit,
) -> Result<ImageState, BuildError> {
    if let Some(rest) = reference.strip_prefix("oci:") {
        let (dir, tag) = split_path_tag(rest);
        let layout = OciLayout::open(&dir).map_err(|e| base_err(reference, e))?;
        return import(store, &layout, tag.as_deref(), reference, platform);
    }
    if let Some(rest) = reference.strip_prefix("oci-archive:") {
        let (file, tag) = split_path_tag(rest);
        let archive_err = |op, source| {
            base_err(
                reference,
                BaseImageError::Archive {
                    op,
                    path: file.clone(),
                    source,
                },
            )
        };
        let archive = File::open(&file).map_err(|e| archive_err("open", e))?;
        let temp = tempfile::Builder::new()
            .prefix(".archive-")
            .tempdir_in(temp_root)
            .map_err(|e| BuildError::io(temp_root, e))?;
        let size = archive
            .metadata()
            .map_err(|e| archive_err("read", e))?
            .len();
        let mut reader = decompressing_reader(archive, size, limit)
            .map_err(|e| base_err(reference, BaseImageError::Decompress(e)))?;
        unpack(&mut reader, temp.path(), &UnpackOptions::default())
            .map_err(|e| base_err(reference, e))?;
        reader
            .finish()
            .map_err(|e| base_err(reference, BaseImageError::Decompress(e)))?;
        let layout = OciLayout::open(temp.path()).map_err(|e| base_err(reference, e))?;
        return import(store, &layout, tag.as_deref(), reference, platform);
    }
    let parsed = Reference::parse(reference).map_err(|e| base_err(reference, e))?;
    let candidates = [parsed.to_string(), reference.to_string()];
    let local = || -> Result<Option<Descriptor>, BuildError> {
        for tag in &candidates {
            if let Some(descriptor) = store.resolve(tag)? {
                return Ok(Some(descriptor));
            }
        }
        Ok(None)
    };
    let pull = match remote.policy {
        PullPolicy::Always => true,
        PullPolicy::Never => false,
        PullPolicy::Missing => match local()? {
            Some(descriptor) => !has_platform(store, &descriptor, platform),
            None => true,
        },
    };
    if pull {
        let pulled = match remote.client {
            None => Err(BaseImageError::NoRegistryAccess),
            Some(_) => crate::blocking::wait(remote.pull(store, &parsed, platform))
                .map_err(BaseImageError::from)
                .and_then(|pulled| pulled),
        };
        pulled.map_err(|problem| base_err(&parsed.to_string(), problem))?;
    }
    match local()? {
        Some(descriptor) => load(store, &descriptor, reference, platform),
        None => Err(base_err(&parsed.to_string(), BaseImageError::PullForbidden)),
    }
}

/// The config `Env` of the base image `reference` for `platform` when it can be read without pulling or
/// writing anything: from the local store at `store_root` by name, or from an `oci:DIR[:TAG]` layout.
/// `None` otherwise (a registry image not pulled yet, an `oci-archive:`): what `--dry-run` can know.
pub fn stored_env(store_root: &Path, reference: &str, platform: &Platform) -> Option<Vec<String>> {
    let (layout, descriptor) = if let Some(rest) = reference.strip_prefix("oci:") {
        let (dir, tag) = split_path_tag(rest);
        let layout = OciLayout::open(&dir).ok()?;
        let descriptor = match tag {
            Some(tag) => {
                let full = Reference::parse(&tag).map(|r| r.to_string()).ok();
                layout.tags().ok()?.into_iter().find_map(|(t, d)| {
                    let short = t.rsplit_once(':').map(|(_, s)| s.to_string());
                    (t == tag || Some(&t) == full.as_ref() || short.as_deref() == Some(&tag))
                        .then_some(d)
                })?
            }
            None => match layout.index().ok()?.manifests.as_slice() {
                [only] => only.clone(),
                _ => return None,
            },
        };
        (layout, descriptor)
    } else if reference.starts_with("oci-archive:") {
        return None;
    } else {
        let parsed = Reference::parse(reference).ok()?;
        let layout = OciLayout::open(store_root).ok()?;
        let descriptor = [parsed.to_string(), reference.to_string()]
            .iter()
            .find_map(|tag| layout.resolve(tag).ok().flatten())?;
        (layout, descriptor)
    };
    let state = load(&layout, &descriptor, reference, platform).ok()?;
    Some(state.config.config.map(|c| c.env).unwrap_or_default())
}

/// True when the store's image `descriptor` has an image for `platform`: an index with a matching entry,
/// or a manifest whose config names a matching platform ([`Platform::matches`]) or none.
fn has_platform(store: &OciLayout, descriptor: &Descriptor, platform: &Platform) -> bool {
    let Ok(chosen) = choose_platform(store, descriptor, "", platform) else {
        return false;
    };
    if chosen.digest != descriptor.digest {
        return true;
    }
    let Ok(raw) = store.read_manifest(&chosen) else {
        return false;
    };
    let ParsedManifest::Image(manifest) = raw.parsed else {
        return false;
    };
    let Ok(bytes) = store.read_blob_bytes(&manifest.config.digest) else {
        return false;
    };
    serde_json::from_slice::<OciConfig>(&bytes)
        .is_ok_and(|c| c.architecture.is_empty() || platform.matches(&c.platform()))
}

/// Copies the image `tag` (or the layout's only image) from `layout` into `store` and loads it.
fn import(
    store: &OciLayout,
    layout: &OciLayout,
    tag: Option<&str>,
    reference: &str,
    platform: &Platform,
) -> Result<ImageState, BuildError> {
    let descriptor = match tag {
        Some(tag) => {
            let full = Reference::parse(tag).map(|r| r.to_string()).ok();
            let found = layout.tags()?.into_iter().find_map(|(t, d)| {
                let short = t.rsplit_once(':').map(|(_, s)| s.to_string());
                (t == tag || Some(&t) == full.as_ref() || short.as_deref() == Some(tag))
                    .then_some(d)
            });
            found.ok_or_else(|| base_err(reference, BaseImageError::NoSuchTag(tag.to_string())))?
        }
        None => {
            let index = layout.index()?;
            match index.manifests.as_slice() {
                [only] => only.clone(),
                [] => return Err(base_err(reference, BaseImageError::Empty)),
                _ => return Err(base_err(reference, BaseImageError::SeveralImages)),
            }
        }
    };
    let mut descriptor = descriptor;
    descriptor.annotations.remove(ANNOTATION_REF_NAME);
    let chosen = choose_platform(layout, &descriptor, reference, platform)?;
    let raw = layout.read_manifest(&chosen)?;
    let ParsedManifest::Image(manifest) = &raw.parsed else {
        return Err(base_err(reference, BaseImageError::NestedIndex));
    };
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        if !store.has_blob(&blob.digest) {
            let reader = layout.open_blob(&blob.digest)?;
            store.write_blob(reader, Some(&blob.digest), Some(blob.size))?;
        }
    }
    store.write_manifest(&raw)?;
    load(store, &raw.descriptor(), reference, platform)
}

/// The manifest of `descriptor` for `platform` (the descriptor itself unless it is an index).
fn choose_platform(
    layout: &OciLayout,
    descriptor: &Descriptor,
    reference: &str,
    platform: &Platform,
) -> Result<Descriptor, BuildError> {
    if !formats::media_type::is_index(&descriptor.media_type) {
        return Ok(descriptor.clone());
    }
    let raw = layout.read_manifest(descriptor)?;
    let ParsedManifest::Index(index) = raw.parsed else {
        return Ok(descriptor.clone());
    };
    Platform::select(&index, platform)
        .cloned()
        .ok_or_else(|| base_err(reference, BaseImageError::NoPlatform(platform.clone())))
}

/// Loads an image whose blobs are in `store`.
fn load(
    store: &OciLayout,
    descriptor: &Descriptor,
    reference: &str,
    platform: &Platform,
) -> Result<ImageState, BuildError> {
    let chosen = choose_platform(store, descriptor, reference, platform)?;
    let raw = store.read_manifest(&chosen)?;
    let ParsedManifest::Image(manifest) = raw.parsed else {
        return Err(base_err(reference, BaseImageError::NestedIndex));
    };
    let bytes = store.read_blob_bytes(&manifest.config.digest)?;
    let config: OciConfig = serde_json::from_slice(&bytes)
        .map_err(|e| base_err(reference, BaseImageError::Config(e)))?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(base_err(
            reference,
            BaseImageError::DiffIds {
                diff_ids: config.rootfs.diff_ids.len(),
                layers: manifest.layers.len(),
            },
        ));
    }
    for layer in &manifest.layers {
        if !store.has_blob(&layer.digest) {
            return Err(base_err(
                reference,
                BaseImageError::MissingLayer(layer.digest.clone()),
            ));
        }
    }
    Ok(ImageState {
        layers: manifest.layers,
        config,
    })
}

/// Unpacks `layers` (blobs in `store`, each decompressed within `limit`), base first, onto the existing
/// directory `target`.
pub fn unpack_layers(
    store: &OciLayout,
    layers: &[Descriptor],
    target: &Path,
    limit: ExpansionLimit,
) -> Result<(), BuildError> {
    for layer in layers {
        let blob = store.open_blob(&layer.digest)?;
        let mut reader = decompressing_reader(blob, layer.size, limit)
            .map_err(|e| BuildError::io(&store.blob_path(&layer.digest), e))?;
        let unpack_err = |e| BuildError::Unpack {
            layer: layer.digest.to_string(),
            source: e,
        };
        unpack(&mut reader, target, &UnpackOptions::default()).map_err(unpack_err)?;
        reader
            .finish()
            .map_err(|e| unpack_err(formats::layer::UnpackError::Read(e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policies_parse_with_buildah_aliases_and_reject_others() {
        assert_eq!("always".parse(), Ok(PullPolicy::Always));
        assert_eq!("true".parse(), Ok(PullPolicy::Always));
        assert_eq!("missing".parse(), Ok(PullPolicy::Missing));
        assert_eq!("false".parse(), Ok(PullPolicy::Missing));
        assert_eq!("never".parse(), Ok(PullPolicy::Never));
        assert_eq!(PullPolicy::default(), PullPolicy::Missing);
        let err = "sometimes".parse::<PullPolicy>().unwrap_err().to_string();
        assert!(err.contains("always, missing or never"), "{err}");
    }

    #[test]
    fn a_missing_oci_archive_keeps_the_io_error_as_the_source_of_a_one_line_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path().join("store")).unwrap();
        let missing = dir.path().join("nothere.tar");
        let reference = format!("oci-archive:{}", missing.display());
        let err = resolve_image(
            &store,
            &reference,
            &Platform::host(),
            dir.path(),
            &Remote::default(),
            ExpansionLimit::default(),
        )
        .unwrap_err();
        let message = err.to_string();
        assert_eq!(
            message,
            format!(
                "base image {reference}: cannot open {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let mut chain = Vec::new();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        assert_eq!(
            chain,
            [
                format!(
                    "cannot open {}: No such file or directory (os error 2)",
                    missing.display()
                ),
                "No such file or directory (os error 2)".to_string(),
            ]
        );
        let io = std::error::Error::source(&err)
            .and_then(|c| c.source())
            .and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::NotFound)
        );
    }

    #[test]
    fn a_registry_image_without_registry_access_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = OciLayout::create(dir.path().join("store")).unwrap();
        let err = resolve_image(
            &store,
            "example.invalid/base:v1",
            &Platform::host(),
            dir.path(),
            &Remote::default(),
            ExpansionLimit::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("example.invalid/base:v1") && err.contains("no registry access"),
            "{err}"
        );
    }
}
