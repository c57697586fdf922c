//! One embedded image as one layer: a deterministic, uncompressed tar (the image's blobs are already
//! compressed) holding that image's part of `registry/docker/registry/v2`:
//!
//! ```text
//! registry/docker/registry/v2/blobs/sha256/<xx>/<hex>/data                 every manifest, config and layer
//! registry/docker/registry/v2/repositories/<repo>/_manifests/revisions/sha256/<hex>/link   every manifest
//! registry/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link       the top manifest
//! registry/docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/index/sha256/<hex>/link
//! registry/docker/registry/v2/repositories/<repo>/_layers/sha256/<hex>/link                config and layers
//! ```
//!
//! An index (kept when the image is pinned by its digest, or with `--all`) is stored byte-exact; with a
//! platform filter only the child manifest of that platform is stored with it, so the pinned digest, the
//! tag (pointing at the index) and that platform's manifest all resolve, while the other platforms' children
//! are absent.
//!
//! `<repo>` is the reference without its host (`registry.k8s.io/pause` -> `pause`), as sealos names it. Each
//! layer is self-contained: a blob two images share is stored in both layers (identical bytes at the same
//! path, so the unpacked tree holds it once). That keeps a layer's digest a function of its image alone, so
//! the same embedded image gives the same layer in every cluster image and version (registries dedupe it),
//! and adding or removing one image never rewrites another's layer.
//!
//! Blob files are streamed from the store into the tar, never loaded whole. Entries are sorted, with mode
//! 0644/0755, uid/gid 0 and the build's timestamp as mtime. The layer is remembered in the build's layer
//! cache under a key of (repository, tag, digest, timestamp), so a rebuild reuses it without reading a byte.

use std::path::Path;

use formats::digest::Digest;
use formats::distribution::{DistributionPaths, link_text};
use formats::layer::{Compression, LayerEntry, LayerOptions};
use formats::manifest::{Descriptor, ParsedManifest};
use formats::oci_layout::OciLayout;
use registry::mirror::PlatformFilter;

use super::pull::{is_foreign, selected_children};
use crate::build::BuildError;
use crate::build::cache::{CachedLayer, LayerCache};

/// Annotation on an embedded image's layer descriptor: the image it holds (`reference@digest`).
pub const EMBEDDED_IMAGE_ANNOTATION: &str = "io.sealos.image.embedded";

/// Where the registry tree sits in the cluster image's file system.
pub const REGISTRY_DIR: &str = "registry";

/// Where the image goes in the embedded registry and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// Repository without host (`library/nginx`).
    pub repository: String,
    /// Tag, when the reference has one.
    pub tag: Option<String>,
    /// The manifest or index embedded.
    pub digest: Digest,
    /// The platforms of an index embedded with it (`All` for `--all`; else the one child the filter
    /// selects, as [`super::pull::selected_children`] says).
    pub platforms: PlatformFilter,
}

impl LayerSpec {
    /// The layer cache key: what the layer's bytes depend on.
    pub fn cache_key(&self, mtime: u64) -> Digest {
        let platforms = match &self.platforms {
            PlatformFilter::All => String::new(),
            only => format!("platforms {only}\n"),
        };
        Digest::sha256_of(
            format!(
                "sealos embedded image layer v1\nrepository {}\ntag {}\ndigest {}\n{platforms}mtime {mtime}\n",
                self.repository,
                self.tag.as_deref().unwrap_or(""),
                self.digest
            )
            .as_bytes(),
        )
    }
}

fn rel(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The tar entries of one image: blobs read from `store`, link files from memory.
pub fn image_entries(store: &OciLayout, spec: &LayerSpec) -> Result<Vec<LayerEntry>, BuildError> {
    let paths = DistributionPaths::new(REGISTRY_DIR);
    let repo = spec.repository.as_str();
    let mut entries = Vec::new();
    let link = |path: &Path, d: &Digest| LayerEntry::file(rel(path), link_text(d)).with_mode(0o644);
    let blob = |d: &Digest| {
        LayerEntry::from_disk(store.blob_path(d), rel(&paths.blob_data(d))).with_mode(0o644)
    };
    if let Some(tag) = &spec.tag {
        entries.push(link(&paths.tag_current_link(repo, tag), &spec.digest));
        entries.push(link(
            &paths.tag_index_link(repo, tag, &spec.digest),
            &spec.digest,
        ));
    }
    let mut pending = vec![(Descriptor::new("", spec.digest.clone(), 0), 0usize)];
    while let Some((desc, depth)) = pending.pop() {
        let raw = store.read_manifest(&desc)?;
        entries.push(blob(&desc.digest));
        entries.push(link(&paths.revision_link(repo, &desc.digest), &desc.digest));
        match &raw.parsed {
            ParsedManifest::Index(index) if depth < 4 => {
                pending.extend(
                    selected_children(index, &spec.platforms)
                        .into_iter()
                        .map(|c| (c.clone(), depth + 1)),
                );
            }
            ParsedManifest::Index(_) => {}
            ParsedManifest::Image(_) => {
                for d in raw
                    .referenced_blobs()
                    .into_iter()
                    .filter(|d| !is_foreign(d))
                {
                    entries.push(blob(&d.digest));
                    entries.push(link(&paths.layer_link(repo, &d.digest), &d.digest));
                }
            }
        }
    }
    Ok(entries)
}

/// The layer of one embedded image, from the layer cache or written into the store now.
pub fn image_layer(
    store: &OciLayout,
    cache: &LayerCache,
    spec: &LayerSpec,
    mtime: u64,
) -> Result<CachedLayer, BuildError> {
    let key = spec.cache_key(mtime);
    if let Some(hit) = cache.lookup(&key)
        && store
            .blob_path(&hit.blob_digest)
            .metadata()
            .is_ok_and(|m| m.len() == hit.blob_size)
    {
        return Ok(hit);
    }
    let entries = image_entries(store, spec)?;
    let options = LayerOptions {
        compression: Compression::None,
        mtime,
    };
    let layer = crate::build::commit_layer(store, entries, &options, &mut |_| {})?;
    // A cache record that cannot be written only costs a rewrite later.
    let _ = cache.record(&key, &layer);
    Ok(layer)
}
