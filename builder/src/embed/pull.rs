//! Bringing embedded images into the local store: at most `max_pull_procs` images (per platform) in flight,
//! each copied by [`registry::mirror`] (so auth, `registries.conf` mirrors, retries and verified streaming
//! come with it) into the store's OCI layout, untagged.
//!
//! An image whose digest is already known (from the lock) and whose manifests and blobs are all in the store
//! costs no request at all; one known but incomplete is fetched by digest, and only its missing blobs are
//! downloaded.

use std::collections::HashMap;
use std::sync::Arc;

use formats::digest::Digest;
use formats::manifest::{Descriptor, ParsedManifest};
use formats::media_type;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;
use futures_util::StreamExt;
use registry::client::RegistryClient;
use registry::mirror::{
    ImageJob, Location, Mirror, MirrorError, MirrorOptions, Outcome, PlatformFilter,
};

/// One image to have in the store for one platform.
#[derive(Debug, Clone)]
pub struct PullWork {
    /// The image.
    pub reference: Reference,
    /// The platform filter (`All` keeps an index whole).
    pub platforms: PlatformFilter,
    /// The digest the lock knows for it; `None` resolves the reference.
    pub locked: Option<Digest>,
}

/// The result of one [`PullWork`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The manifest (or index, for `All`) now in the store.
    pub digest: Digest,
    /// True when a registry was asked (false: everything was in the store already).
    pub fetched: bool,
    /// Blob bytes downloaded.
    pub bytes: u64,
}

/// True when the manifest `digest` and everything it references for `platforms` are in `store` (an index
/// with a platform filter needs only the child the filter selects, see [`selected_children`]). Unreadable
/// or invalid content counts as missing (it is fetched again).
pub fn complete_in_store(store: &OciLayout, digest: &Digest, platforms: &PlatformFilter) -> bool {
    complete(store, &Descriptor::new("", digest.clone(), 0), platforms, 0)
}

/// The children of `index` embedded for `platforms`: all of them for `All`, else the first whose platform
/// matches (the one [`registry::mirror`] selects), or none.
pub fn selected_children<'a>(
    index: &'a formats::manifest::ImageIndex,
    platforms: &PlatformFilter,
) -> Vec<&'a Descriptor> {
    if *platforms == PlatformFilter::All {
        return index.manifests.iter().collect();
    }
    platforms.select(index).into_iter().collect()
}

fn complete(
    store: &OciLayout,
    desc: &Descriptor,
    platforms: &PlatformFilter,
    depth: usize,
) -> bool {
    if depth > 4 || !store.has_blob(&desc.digest) {
        return false;
    }
    let Ok(raw) = store.read_manifest(desc) else {
        return false;
    };
    match &raw.parsed {
        ParsedManifest::Index(index) => {
            let children = selected_children(index, platforms);
            !children.is_empty()
                && children
                    .into_iter()
                    .all(|child| complete(store, child, platforms, depth + 1))
        }
        ParsedManifest::Image(_) => raw
            .referenced_blobs()
            .into_iter()
            .filter(|d| !is_foreign(d))
            .all(|d| store.has_blob(&d.digest)),
    }
}

/// A non-distributable layer with download URLs: neither pulled nor embedded (like the mirror does).
pub fn is_foreign(d: &Descriptor) -> bool {
    media_type::is_non_distributable(&d.media_type) && !d.urls.is_empty()
}

/// Brings every item into `store`, at most `max_pull_procs` at a time; results come back in input order.
/// `client` may be `None` when every item is complete in the store.
pub async fn pull_all(
    store: Arc<OciLayout>,
    client: Option<RegistryClient>,
    work: Vec<PullWork>,
    max_pull_procs: usize,
) -> Vec<Result<Pulled, MirrorError>> {
    // One mirror per platform filter, so images pulled at once share blob downloads.
    let mut mirrors: HashMap<String, Arc<Mirror>> = HashMap::new();
    for w in &work {
        mirrors.entry(w.platforms.to_string()).or_insert_with(|| {
            Arc::new(Mirror::new(
                Location::Oci(store.clone()),
                MirrorOptions {
                    platforms: w.platforms.clone(),
                    max_images: 1,
                    skip_identical: false,
                    referrers: false,
                    keep_pinned_index: true,
                    ..MirrorOptions::default()
                },
            ))
        });
    }
    let mut results: Vec<(usize, Result<Pulled, MirrorError>)> =
        futures_util::stream::iter(work.into_iter().enumerate())
            .map(|(i, w)| {
                let store = store.clone();
                let client = client.clone();
                let mirror = mirrors.get(&w.platforms.to_string()).cloned();
                async move {
                    let result = async {
                        if let Some(d) = &w.locked {
                            let (s, d2, f) = (store.clone(), d.clone(), w.platforms.clone());
                            let done =
                                tokio::task::spawn_blocking(move || complete_in_store(&s, &d2, &f))
                                    .await
                                    .unwrap_or(false);
                            if done {
                                return Ok(Pulled {
                                    digest: d.clone(),
                                    fetched: false,
                                    bytes: 0,
                                });
                            }
                        }
                        let (Some(client), Some(mirror)) = (client, mirror) else {
                            return Err(MirrorError::Internal(format!(
                                "{} is not in the local store and no registry client was given",
                                w.reference
                            )));
                        };
                        let r = &w.reference;
                        let job = ImageJob {
                            source: Arc::new(Location::registry(&client, r.registry())),
                            source_repository: r.repository().to_string(),
                            source_reference: match (&w.locked, r.digest()) {
                                (Some(d), _) | (None, Some(d)) => d.to_string(),
                                (None, None) => r.reference_str(),
                            },
                            dest_repository: r.repository().to_string(),
                            dest_tag: None,
                        };
                        match mirror.copy_image(&job).await? {
                            Outcome::Copied { digest, bytes, .. } => Ok(Pulled {
                                digest,
                                fetched: true,
                                bytes,
                            }),
                            Outcome::Skipped { digest } | Outcome::WouldCopy { digest } => {
                                Ok(Pulled {
                                    digest,
                                    fetched: true,
                                    bytes: 0,
                                })
                            }
                            Outcome::Failed(why) => Err(MirrorError::Internal(why)),
                        }
                    }
                    .await;
                    (i, result)
                }
            })
            .buffer_unordered(max_pull_procs.max(1))
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
