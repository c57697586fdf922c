//! Taking the inventory of a site: a registry store (a Distribution-layout directory, a bucket: read through
//! the store) or a registry (catalog, tags and manifests read through the client).

use std::collections::{BTreeMap, BTreeSet};

use formats::Digest;
use formats::manifest::{ParsedManifest, RawManifest};
use futures_util::StreamExt;

use super::format::{Inventory, RepositoryInventory, now_rfc3339};
use crate::mirror::{Location, MirrorError, Store};
use crate::storage::StorageError;

/// The inventory of `location`, described as `source`: a store is read through its listings (every blob,
/// every tag and every stored manifest revision); a registry is walked through its catalog, every tag and the
/// manifests they reach (index children included; blobs with the sizes their manifests give). At most
/// `max_parallel` registry requests for images run at once. An OCI layout is refused.
pub async fn take_inventory(
    location: &Location,
    source: &str,
    max_parallel: usize,
) -> Result<Inventory, MirrorError> {
    match location {
        Location::Store(store) => store_inventory(store, source).await,
        Location::Registry { .. } => registry_inventory(location, source, max_parallel).await,
        Location::Oci(_) => Err(MirrorError::BadLocation {
            spec: source.to_string(),
            reason:
                "an inventory is taken of a registry, a Distribution-layout directory or a bucket"
                    .into(),
        }),
    }
}

/// The inventory of a store from its listings alone (no manifest is parsed): blobs are the stored blobs that
/// are not manifests, with their sizes; a repository's manifests are its revisions whose bytes are stored.
pub async fn store_inventory(store: &Store, source: &str) -> Result<Inventory, MirrorError> {
    let storage = store.storage();
    let mut inv = Inventory::new(source, now_rfc3339());
    let mut stored = BTreeMap::new();
    for digest in storage.list_blobs().await? {
        // A blob removed since the listing is not held.
        if let Some(size) = storage.blob_size(&digest).await? {
            stored.insert(digest, size);
        }
    }
    let mut manifests_anywhere = BTreeSet::new();
    for repo in storage.list_repositories().await? {
        let mut entry = RepositoryInventory::default();
        let tags = match storage.list_tags(&repo).await {
            Ok(t) => t,
            Err(StorageError::NameUnknown(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for tag in tags {
            if let Some(d) = storage.resolve_tag(&repo, &tag).await?
                && stored.contains_key(&d)
            {
                entry.tags.insert(tag, d);
            }
        }
        for digest in storage.list_revisions(&repo).await? {
            if stored.contains_key(&digest) {
                entry.manifests.push(digest.clone());
                manifests_anywhere.insert(digest);
            }
        }
        entry.manifests.sort();
        entry.manifests.dedup();
        inv.repositories.insert(repo, entry);
    }
    inv.blobs = stored
        .into_iter()
        .filter(|(d, _)| !manifests_anywhere.contains(d))
        .collect();
    Ok(inv)
}

/// The inventory of a registry: every repository of its catalog (under the location's prefix, named without
/// it) and tag, and the manifests and blobs they reach.
async fn registry_inventory(
    location: &Location,
    source: &str,
    max_parallel: usize,
) -> Result<Inventory, MirrorError> {
    let mut inv = Inventory::new(source, now_rfc3339());
    let images = location.list_images(max_parallel).await?;
    let walked: Vec<Result<(String, String, Walked), MirrorError>> =
        futures_util::stream::iter(images)
            .map(|(repo, tag)| async move {
                let top = location.get_manifest(&repo, &tag).await?;
                let walked = walk_manifest(location, &repo, top).await?;
                Ok((repo, tag, walked))
            })
            .buffer_unordered(max_parallel.max(1))
            .collect()
            .await;
    for result in walked {
        let (repo, tag, walked) = result?;
        let entry = inv.repositories.entry(repo).or_default();
        entry.tags.insert(tag, walked.top);
        entry.manifests.extend(walked.manifests);
        inv.blobs.extend(walked.blobs);
    }
    for entry in inv.repositories.values_mut() {
        entry.manifests.sort();
        entry.manifests.dedup();
    }
    Ok(inv)
}

/// What one tag reaches.
struct Walked {
    top: Digest,
    manifests: Vec<Digest>,
    blobs: BTreeMap<Digest, u64>,
}

/// The manifests (`top` and, for an index, the children the registry has) and blobs `top` reaches.
async fn walk_manifest(
    location: &Location,
    repo: &str,
    top: RawManifest,
) -> Result<Walked, MirrorError> {
    let mut walked = Walked {
        top: top.digest.clone(),
        manifests: Vec::new(),
        blobs: BTreeMap::new(),
    };
    let mut pending = vec![top];
    while let Some(raw) = pending.pop() {
        if walked.manifests.contains(&raw.digest) {
            continue;
        }
        walked.manifests.push(raw.digest.clone());
        match &raw.parsed {
            ParsedManifest::Index(index) => {
                for child in &index.manifests {
                    match location.get_manifest(repo, &child.digest.to_string()).await {
                        Ok(m) => pending.push(m),
                        // An index stored without some platforms (`--multi-arch index-only`): the site
                        // holds only the others.
                        Err(MirrorError::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            ParsedManifest::Image(_) => {
                for d in raw.referenced_blobs() {
                    walked.blobs.insert(d.digest.clone(), d.size);
                }
            }
        }
    }
    Ok(walked)
}
