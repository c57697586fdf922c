//! Embedded images as layers: deterministic, uncompressed tars (the images' blobs are already compressed)
//! that together hold the `registry/docker/registry/v2` tree of every embedded image:
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
//! `<repo>` is the reference without its host (`registry.k8s.io/pause` -> `pause`), as sealos names it.
//!
//! Every blob is in exactly one layer. A blob two or more embedded images reference (a common base layer)
//! goes into one **shared layer** ([`shared_layer`], sorted by digest, placed before the per-image layers);
//! each image's own layer ([`image_layer`]) holds its link files and the blobs no other embedded image
//! references. An image's layer is thus a function of the image and of which of its blobs other images
//! also use: the same embedded image gives the same layer in every cluster image whose other images share
//! the same of its blobs (registries dedupe it), and adding an image that shares nothing with it never
//! rewrites it. Link files are tiny and stay with their image (two tags of one repository write some of
//! the same link files, with identical content).
//!
//! Blob files are streamed from the store into the tar, never loaded whole. Entries are sorted, with mode
//! 0644/0755, uid/gid 0 and the build's timestamp as mtime. Each layer is remembered in the build's layer
//! cache under a key of what its bytes depend on, so a rebuild reuses it without reading a blob.

use std::collections::BTreeSet;
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

pub use formats::cluster_image::{EMBEDDED_IMAGE_ANNOTATION, SHARED_BLOBS_ANNOTATION};

/// Where the registry tree sits in the cluster image's file system by default (what sealos serves); a
/// `COPY registry DEST` elsewhere moves it (see [`LayerSpec::root`]).
pub const REGISTRY_DIR: &str = "registry";

/// The layer root of the registry tree for a `COPY registry` landing at the absolute `destination`
/// (`/app/registry` -> `app/registry`).
pub fn registry_root(destination: &str) -> String {
    destination.trim_matches('/').to_string()
}

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
    /// Where the tree sits in the layer, relative to the image root ([`REGISTRY_DIR`] unless `COPY
    /// registry` puts it elsewhere).
    pub root: String,
}

impl LayerSpec {
    /// The layer cache key: what the layer's bytes depend on, `left_out` being the image's blobs the
    /// shared layer holds instead (none: the key of an image whose layer holds all its blobs).
    pub fn cache_key(&self, mtime: u64, left_out: &BTreeSet<Digest>) -> Digest {
        let platforms = match &self.platforms {
            PlatformFilter::All => String::new(),
            only => format!("platforms {only}\n"),
        };
        let left_out: String = left_out.iter().map(|d| format!("shared {d}\n")).collect();
        let root = root_line(&self.root);
        Digest::sha256_of(
            format!(
                "sealos embedded image layer v1\nrepository {}\ntag {}\ndigest {}\n{platforms}{root}mtime {mtime}\n{left_out}",
                self.repository,
                self.tag.as_deref().unwrap_or(""),
                self.digest
            )
            .as_bytes(),
        )
    }
}

/// The cache key line of a tree root other than the default (none for [`REGISTRY_DIR`], so keys of the
/// default layout are unchanged).
fn root_line(root: &str) -> String {
    if root == REGISTRY_DIR {
        String::new()
    } else {
        format!("root {root}\n")
    }
}

fn rel(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// One image's part of the tree: its link files, and the blobs it references.
struct ImageTree {
    links: Vec<LayerEntry>,
    blobs: BTreeSet<Digest>,
}

fn image_tree(store: &OciLayout, spec: &LayerSpec) -> Result<ImageTree, BuildError> {
    let paths = DistributionPaths::new(&spec.root);
    let repo = spec.repository.as_str();
    let mut tree = ImageTree {
        links: Vec::new(),
        blobs: BTreeSet::new(),
    };
    let link = |path: &Path, d: &Digest| LayerEntry::file(rel(path), link_text(d)).with_mode(0o644);
    if let Some(tag) = &spec.tag {
        tree.links
            .push(link(&paths.tag_current_link(repo, tag), &spec.digest));
        tree.links.push(link(
            &paths.tag_index_link(repo, tag, &spec.digest),
            &spec.digest,
        ));
    }
    let mut pending = vec![(Descriptor::new("", spec.digest.clone(), 0), 0usize)];
    while let Some((desc, depth)) = pending.pop() {
        let raw = store.read_manifest(&desc)?;
        tree.blobs.insert(desc.digest.clone());
        tree.links
            .push(link(&paths.revision_link(repo, &desc.digest), &desc.digest));
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
                    tree.blobs.insert(d.digest.clone());
                    tree.links
                        .push(link(&paths.layer_link(repo, &d.digest), &d.digest));
                }
            }
        }
    }
    Ok(tree)
}

fn blob_entry(store: &OciLayout, root: &str, d: &Digest) -> LayerEntry {
    let paths = DistributionPaths::new(root);
    LayerEntry::from_disk(store.blob_path(d), rel(&paths.blob_data(d))).with_mode(0o644)
}

/// The digests of every blob (manifests, configs, layers) one image puts into the tree.
pub fn image_blobs(store: &OciLayout, spec: &LayerSpec) -> Result<BTreeSet<Digest>, BuildError> {
    Ok(image_tree(store, spec)?.blobs)
}

/// All the tar entries of one image's part of the tree (its links and every blob it references, shared or
/// not): blobs read from `store`, link files from memory.
pub fn image_entries(store: &OciLayout, spec: &LayerSpec) -> Result<Vec<LayerEntry>, BuildError> {
    let tree = image_tree(store, spec)?;
    let mut entries = tree.links;
    entries.extend(tree.blobs.iter().map(|d| blob_entry(store, &spec.root, d)));
    Ok(entries)
}

/// The layer of one embedded image, holding its links and those of its blobs not in `shared` (the shared
/// layer holds them), from the layer cache or written into the store now.
pub fn image_layer(
    store: &OciLayout,
    cache: &LayerCache,
    spec: &LayerSpec,
    shared: &BTreeSet<Digest>,
    mtime: u64,
) -> Result<CachedLayer, BuildError> {
    let tree = image_tree(store, spec)?;
    let (left_out, own): (BTreeSet<Digest>, BTreeSet<Digest>) =
        tree.blobs.into_iter().partition(|d| shared.contains(d));
    let key = spec.cache_key(mtime, &left_out);
    cached_or_written(store, cache, &key, mtime, || {
        let mut entries = tree.links;
        entries.extend(own.iter().map(|d| blob_entry(store, &spec.root, d)));
        entries
    })
}

/// The shared layer: the `blobs` several embedded images reference, each once, under the tree's `root`
/// (as [`LayerSpec::root`]), from the layer cache or written into the store now.
pub fn shared_layer(
    store: &OciLayout,
    cache: &LayerCache,
    blobs: &BTreeSet<Digest>,
    root: &str,
    mtime: u64,
) -> Result<CachedLayer, BuildError> {
    let listed: String = blobs.iter().map(|d| format!("blob {d}\n")).collect();
    let key = Digest::sha256_of(
        format!(
            "sealos embedded shared blobs layer v1\n{}mtime {mtime}\n{listed}",
            root_line(root)
        )
        .as_bytes(),
    );
    cached_or_written(store, cache, &key, mtime, || {
        blobs.iter().map(|d| blob_entry(store, root, d)).collect()
    })
}

/// The uncompressed layer cached under `key`, or the one `entries` gives, written now and recorded.
fn cached_or_written(
    store: &OciLayout,
    cache: &LayerCache,
    key: &Digest,
    mtime: u64,
    entries: impl FnOnce() -> Vec<LayerEntry>,
) -> Result<CachedLayer, BuildError> {
    if let Some(hit) = cache.lookup(key)
        && store
            .blob_path(&hit.blob_digest)
            .metadata()
            .is_ok_and(|m| m.len() == hit.blob_size)
    {
        return Ok(hit);
    }
    let options = LayerOptions {
        compression: Compression::None,
        mtime,
    };
    let layer = crate::build::commit_layer(store, entries(), &options, &mut |_| {})?;
    // A cache record that cannot be written only costs a rewrite later.
    let _ = cache.record(key, &layer);
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_root_is_in_the_cache_key_only_when_not_the_default() {
        let spec = |root: &str| LayerSpec {
            repository: "library/app".into(),
            tag: Some("v1".into()),
            digest: Digest::sha256_of(b"manifest"),
            platforms: PlatformFilter::All,
            root: root.into(),
        };
        let none = BTreeSet::new();
        let default = spec(REGISTRY_DIR).cache_key(0, &none);
        let expected = Digest::sha256_of(
            format!(
                "sealos embedded image layer v1\nrepository library/app\ntag v1\ndigest {}\nmtime 0\n",
                Digest::sha256_of(b"manifest")
            )
            .as_bytes(),
        );
        assert_eq!(default, expected, "the default layout's key is unchanged");
        assert_ne!(spec("app/registry").cache_key(0, &none), default);
        assert_eq!(registry_root("/app/registry/"), "app/registry");
        assert_eq!(registry_root("/registry"), REGISTRY_DIR);
    }
}
