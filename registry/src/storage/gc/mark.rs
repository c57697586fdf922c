//! The mark phase of gc: everything a registry's tags and revisions keep, read through [`Storage`].

use std::collections::{HashMap, HashSet};

use formats::digest::Digest;
use formats::manifest::{ParsedManifest, RawManifest};

use super::InRepository;
use crate::storage::fsck::load_manifest;
use crate::storage::{Result, Storage, StorageError};

/// The outcome of marking: every blob to keep and the revisions to delete.
#[derive(Default)]
pub(super) struct Marks {
    pub(super) blobs: HashSet<Digest>,
    pub(super) doomed_revisions: Vec<InRepository>,
    pub(super) warnings: Vec<String>,
}

/// A loaded manifest: `None` when its blob is not stored (nothing to mark), `Err` why it is unusable.
type Loaded = std::result::Result<Option<RawManifest>, String>;

/// Manifests of one repository, parsed once.
struct Manifests<'a> {
    store: &'a dyn Storage,
    cache: HashMap<Digest, Loaded>,
}

impl Manifests<'_> {
    async fn get(&mut self, digest: &Digest) -> Result<&Loaded> {
        if !self.cache.contains_key(digest) {
            let loaded = load_manifest(self.store, digest).await?;
            self.cache.insert(digest.clone(), loaded);
        }
        Ok(&self.cache[digest])
    }
}

/// Marks every repository in `repositories`.
pub(super) async fn mark(
    store: &dyn Storage,
    repositories: &[String],
    delete_untagged: bool,
) -> Result<Marks> {
    let mut marks = Marks::default();
    for repo in repositories {
        mark_repository(store, repo, delete_untagged, &mut marks).await?;
    }
    Ok(marks)
}

/// Lists a repository's revisions; a repository that went away has none.
async fn revisions(store: &dyn Storage, repo: &str) -> Result<Vec<Digest>> {
    match store.list_revisions(repo).await {
        Err(StorageError::NameUnknown(_)) => Ok(Vec::new()),
        other => other,
    }
}

/// Every tag's current manifest; an unreadable tag stops gc, since what it keeps is unknown.
async fn tagged(store: &dyn Storage, repo: &str) -> Result<Vec<Digest>> {
    let tags = match store.list_tags(repo).await {
        Err(StorageError::NameUnknown(_)) => return Ok(Vec::new()),
        other => other?,
    };
    let mut roots = Vec::new();
    for tag in tags {
        match store.resolve_tag(repo, &tag).await {
            Ok(Some(d)) => roots.push(d),
            // Deleted since it was listed.
            Ok(None) => {}
            Err(e) => {
                return Err(StorageError::Corrupt {
                    what: format!("{repo}:{tag}"),
                    reason: format!(
                        "tag `{tag}` of `{repo}` is unreadable ({e}), so what it keeps is unknown; gc refuses to \
                         run until it is repaired"
                    ),
                });
            }
        }
    }
    Ok(roots)
}

async fn mark_repository(
    store: &dyn Storage,
    repo: &str,
    delete_untagged: bool,
    marks: &mut Marks,
) -> Result<()> {
    let revisions = revisions(store, repo).await?;
    let mut work = tagged(store, repo).await?;
    if !delete_untagged {
        work.extend(revisions.iter().cloned());
    }
    let mut manifests = Manifests {
        store,
        cache: HashMap::new(),
    };
    let mut kept: HashSet<Digest> = HashSet::new();
    loop {
        while let Some(digest) = work.pop() {
            if !kept.insert(digest.clone()) {
                continue;
            }
            marks.blobs.insert(digest.clone());
            match manifests.get(&digest).await? {
                Ok(None) => {}
                Ok(Some(m)) => {
                    for child in m.referenced_blobs() {
                        marks.blobs.insert(child.digest.clone());
                        if matches!(m.parsed, ParsedManifest::Index(_)) {
                            work.push(child.digest.clone());
                        }
                    }
                }
                Err(reason) => {
                    return Err(StorageError::Corrupt {
                        what: format!("{repo}@{digest}"),
                        reason: format!(
                            "manifest `{digest}` of `{repo}` is kept but {reason}, so what it references is \
                             unknown; gc refuses to run until it is repaired (see `sealos registry fsck`)"
                        ),
                    });
                }
            }
        }
        // Referrers of what is kept are kept; an untagged manifest gc cannot read is kept as it is.
        for digest in &revisions {
            if kept.contains(digest) {
                continue;
            }
            match manifests.get(digest).await? {
                Ok(Some(m)) => {
                    if m.subject().is_some_and(|s| kept.contains(&s.digest)) {
                        work.push(digest.clone());
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    // Kept as it is: what it references is unknown, but it cannot be pulled either.
                    marks.warnings.push(format!(
                        "kept untagged manifest `{digest}` of `{repo}`: it {reason}"
                    ));
                    kept.insert(digest.clone());
                    marks.blobs.insert(digest.clone());
                }
            }
        }
        if work.is_empty() {
            break;
        }
    }
    for digest in revisions {
        if !kept.contains(&digest) {
            marks.doomed_revisions.push(InRepository {
                repository: repo.to_string(),
                digest,
            });
        }
    }
    Ok(())
}
