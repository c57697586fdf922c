//! Taking the inventory of a site: a Distribution-layout directory (walked on disk) or a registry (catalog,
//! tags and manifests read through the client).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use formats::Digest;
use formats::distribution::DistributionLayout;
use formats::manifest::{ParsedManifest, RawManifest};
use futures_util::StreamExt;

use super::format::{Inventory, RepositoryInventory, now_rfc3339};
use crate::mirror::{Location, MirrorError};

/// The inventory of `location`, described as `source`: a directory is walked on disk (every blob file, every
/// tag and every stored manifest revision); a registry is walked through its catalog, every tag and the
/// manifests they reach (index children included; blobs with the sizes their manifests give). At most
/// `max_parallel` registry requests for images run at once. An OCI layout is refused.
pub async fn take_inventory(
    location: &Location,
    source: &str,
    max_parallel: usize,
) -> Result<Inventory, MirrorError> {
    match location {
        Location::Dir(layout) => {
            let layout = layout.clone();
            let source = source.to_string();
            tokio::task::spawn_blocking(move || directory_inventory(&layout, &source))
                .await
                .map_err(|e| MirrorError::Internal(e.to_string()))?
        }
        Location::Registry { .. } => registry_inventory(location, source, max_parallel).await,
        Location::Oci(_) => Err(MirrorError::BadLocation {
            spec: source.to_string(),
            reason: "an inventory is taken of a registry or a Distribution-layout directory".into(),
        }),
    }
}

/// The inventory of a Distribution-layout directory, from its files alone (no manifest is parsed): blobs are
/// the `blobs/<alg>/<xx>/<hex>/data` files that are not manifests, with their file sizes; a repository's
/// manifests are its revision links whose data is present.
pub fn directory_inventory(
    layout: &DistributionLayout,
    source: &str,
) -> Result<Inventory, MirrorError> {
    let paths = layout.paths();
    let mut inv = Inventory::new(source, now_rfc3339());
    let mut stored = BTreeMap::new();
    walk_blobs(&paths.blobs_dir(), &mut stored)?;
    let mut manifests_anywhere = BTreeSet::new();
    for repo in layout.repositories()? {
        let mut entry = RepositoryInventory::default();
        for tag in layout.tags(&repo)? {
            if let Some(d) = layout.resolve_tag(&repo, &tag)?
                && stored.contains_key(&d)
            {
                entry.tags.insert(tag, d);
            }
        }
        let revisions = paths.repository_dir(&repo).join("_manifests/revisions");
        for digest in linked_digests(&revisions)? {
            if stored.contains_key(&digest) {
                entry.manifests.push(digest.clone());
                manifests_anywhere.insert(digest);
            }
        }
        entry.manifests.sort();
        inv.repositories.insert(repo, entry);
    }
    inv.blobs = stored
        .into_iter()
        .filter(|(d, _)| !manifests_anywhere.contains(d))
        .collect();
    Ok(inv)
}

/// Every `<alg>/<xx>/<hex>/data` file under `blobs` -> its size.
fn walk_blobs(blobs: &Path, out: &mut BTreeMap<Digest, u64>) -> Result<(), MirrorError> {
    for (alg, alg_dir) in subdirs(blobs)? {
        for (_, prefix_dir) in subdirs(&alg_dir)? {
            for (hex, blob_dir) in subdirs(&prefix_dir)? {
                let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) else {
                    continue;
                };
                let data = blob_dir.join("data");
                match std::fs::symlink_metadata(&data) {
                    Ok(m) if m.is_file() => {
                        out.insert(digest, m.len());
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(MirrorError::Io {
                            op: "stat",
                            path: data,
                            source,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// The digests of `<dir>/<alg>/<hex>/link` entries whose link names the same digest.
fn linked_digests(dir: &Path) -> Result<Vec<Digest>, MirrorError> {
    let mut out = Vec::new();
    for (alg, alg_dir) in subdirs(dir)? {
        for (hex, entry) in subdirs(&alg_dir)? {
            let Ok(digest) = Digest::parse(&format!("{alg}:{hex}")) else {
                continue;
            };
            let link = entry.join("link");
            let text = match std::fs::read_to_string(&link) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(MirrorError::Io {
                        op: "read",
                        path: link,
                        source,
                    });
                }
            };
            if Digest::parse(text.trim()).ok().as_ref() == Some(&digest) {
                out.push(digest);
            }
        }
    }
    Ok(out)
}

/// The sub-directories of `dir` (none when it does not exist), sorted by name; symlinks are not followed.
fn subdirs(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, MirrorError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(MirrorError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| MirrorError::Io {
            op: "list",
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            out.push((name.to_string(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
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
