//! `sealos registry gc`: mark and sweep over a registry's storage, on every store.
//!
//! Mark (module `mark`): in every repository, start from every tag's current manifest and (unless `delete_untagged`)
//! every manifest revision; a kept manifest keeps its blob, its config and layers, and every child of an index
//! (recursively, even when the child is untagged: distribution's `--delete-untagged` deletes those, we do
//! not); a revision whose `subject` is kept is kept too (referrers: signatures, SBOMs), repeated until
//! nothing changes. Sweep, in an order that never leaves a dangling link behind: untagged revisions (with
//! `delete_untagged`) and their tag-history entries, then the layer links of unmarked blobs, then the blobs,
//! then upload sessions idle for longer than the grace period.
//!
//! A blob whose data was written within the grace period is never removed: it is an upload that just
//! finished whose manifest has not been pushed yet. A store that cannot tell a blob's age
//! ([`Storage::blob_modified`] answers `None`) keeps it, unless the grace period is zero. The mark runs twice
//! (before and right after choosing what to remove) so a manifest pushed while gc runs keeps its blobs. See
//! `docs/registry-maintenance.md` for what is and is not safe while a server uses the storage.
//!
//! [`gc_store`] collects in any [`Storage`]; [`gc`] collects in a directory, which it first walks itself: it
//! refuses to run while the tree holds a symlink (or a device, fifo or socket; `fsck` lists them), since what it
//! keeps or removes behind one is unknown, and it also removes the debris of interrupted blob writes and the
//! tag-history entries of the revisions it removes (a store does not show those).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::fsutil::check_beneath;

use super::fs::{beneath, beneath_err, remove_dir_if_exists};
use super::fsck::tree::{
    blocking, name_of, scan_blobs, scan_repositories, scan_strays, sorted_entries,
};
use super::{FsStorage, Result, Storage, StorageError};

mod mark;

/// How [`gc`] and [`gc_store`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
    /// Also remove manifest revisions no tag points to (unless an index or a subject that is kept needs them).
    pub delete_untagged: bool,
    /// Blobs written and upload sessions active within this period are never removed.
    pub grace_period: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace_period: Duration::from_secs(3600),
        }
    }
}

/// A blob and its size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SizedBlob {
    /// The blob.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// An item that belongs to a repository (a layer link, a revision).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InRepository {
    /// The repository.
    pub repository: String,
    /// The digest linked.
    pub digest: Digest,
}

/// An upload session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaleUpload {
    /// The repository.
    pub repository: String,
    /// The session id.
    pub id: String,
    /// Seconds since the session last received data.
    pub idle_secs: u64,
}

/// What [`gc`] or [`gc_store`] removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// True when nothing was actually removed.
    pub dry_run: bool,
    /// Blobs something references.
    pub blobs_kept: u64,
    /// Unreferenced blobs removed.
    pub blobs_removed: Vec<SizedBlob>,
    /// Bytes of the blobs removed.
    pub bytes_freed: u64,
    /// Unreferenced blobs kept because they were written within the grace period.
    pub young_blobs_kept: Vec<SizedBlob>,
    /// Layer links of removed blobs.
    pub layer_links_removed: Vec<InRepository>,
    /// Untagged revisions removed (`delete_untagged`).
    pub revisions_removed: Vec<InRepository>,
    /// Blob directories left by interrupted writes (only staging files), older than the grace period, removed.
    pub leftovers_removed: Vec<PathBuf>,
    /// Upload sessions idle for longer than the grace period, removed.
    pub uploads_removed: Vec<StaleUpload>,
    /// Things gc left alone and why (an untagged manifest that does not parse, say).
    pub warnings: Vec<String>,
}

/// Collects garbage in the tree rooted at `root` (the directory holding `docker/registry/v2`): refuses a tree
/// holding a symlink or special file, collects through the filesystem store as [`gc_store`] does, then removes
/// the tag-history entries of removed revisions and staging debris older than the grace period.
pub async fn gc(root: &Path, options: &GcOptions) -> Result<GcReport> {
    let paths = DistributionPaths::new(root);
    let walk = paths.clone();
    let repositories = blocking(move || refuse_strays(&walk)).await?;
    let store = FsStorage::new(root);
    let mut report = collect(&store, &repositories, options).await?;
    let (grace, dry_run) = (options.grace_period, options.dry_run);
    blocking(move || {
        if !dry_run {
            for rev in &report.revisions_removed {
                remove_tag_history(&paths, rev)?;
            }
            for blob in &report.blobs_removed {
                prune_empty_parents(&paths.blob_dir(&blob.digest), &paths.blobs_dir());
            }
        }
        report.leftovers_removed = remove_leftovers(&paths, grace, dry_run)?;
        Ok(report)
    })
    .await
}

/// Collects garbage in `store` (see the module docs). Removes through the store: revisions, layer links,
/// blobs and upload sessions.
pub async fn gc_store(store: &dyn Storage, options: &GcOptions) -> Result<GcReport> {
    collect(store, &[], options).await
}

/// Every repository to visit: those the store lists (they hold manifests), those holding upload sessions, and
/// `extra` (a directory's walk also finds repositories holding only layer links).
async fn repositories(
    store: &dyn Storage,
    uploads: &[(String, String, u64)],
    extra: &[String],
) -> Result<Vec<String>> {
    let mut repos = store.list_repositories().await?;
    repos.extend(uploads.iter().map(|(repo, _, _)| repo.clone()));
    repos.extend(extra.iter().cloned());
    repos.sort();
    repos.dedup();
    Ok(repos)
}

/// How long ago a blob was written; `None` when the store cannot tell or it is gone.
async fn blob_age(
    store: &dyn Storage,
    digest: &Digest,
    now: SystemTime,
) -> Result<Option<Duration>> {
    Ok(store
        .blob_modified(digest)
        .await?
        .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO)))
}

async fn collect(store: &dyn Storage, extra: &[String], options: &GcOptions) -> Result<GcReport> {
    let now = SystemTime::now();
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let uploads = store.list_uploads().await?;
    let repos = repositories(store, &uploads, extra).await?;
    let first = mark::mark(store, &repos, options.delete_untagged).await?;
    let blobs = store.list_blobs().await?;
    // Mark again now that the candidates are known: a manifest pushed during the first mark keeps its blobs.
    let repos = repositories(store, &uploads, extra).await?;
    let second = mark::mark(store, &repos, options.delete_untagged).await?;
    report.warnings = second.warnings;
    let doomed_revisions: Vec<InRepository> = first
        .doomed_revisions
        .into_iter()
        .filter(|r| second.doomed_revisions.contains(r))
        .collect();
    let mut doomed_blobs = HashSet::new();
    for digest in blobs {
        if first.blobs.contains(&digest) || second.blobs.contains(&digest) {
            report.blobs_kept += 1;
            continue;
        }
        let Some(size) = store.blob_size(&digest).await? else {
            continue; // removed since it was listed
        };
        let entry = SizedBlob {
            digest: digest.clone(),
            size,
        };
        let young = !options.grace_period.is_zero()
            && blob_age(store, &digest, now)
                .await?
                .is_none_or(|age| age < options.grace_period);
        if young {
            report.young_blobs_kept.push(entry);
        } else {
            report.bytes_freed += size;
            report.blobs_removed.push(entry);
            doomed_blobs.insert(digest);
        }
    }

    for rev in &doomed_revisions {
        if !options.dry_run {
            match store.unlink_revision(&rev.repository, &rev.digest).await {
                Ok(()) | Err(StorageError::ManifestUnknown(_)) => {}
                Err(e) => return Err(e),
            }
        }
        report.revisions_removed.push(rev.clone());
    }
    for repo in &repos {
        let layers = match store.list_layers(repo).await {
            Err(StorageError::NameUnknown(_)) => Vec::new(),
            other => other?,
        };
        for digest in layers.into_iter().filter(|d| doomed_blobs.contains(d)) {
            if !options.dry_run {
                match store.unlink_layer(repo, &digest).await {
                    Ok(()) | Err(StorageError::BlobUnknown(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            report.layer_links_removed.push(InRepository {
                repository: repo.clone(),
                digest,
            });
        }
    }
    if !options.dry_run {
        for blob in &report.blobs_removed {
            match store.remove_blob(&blob.digest).await {
                Ok(()) | Err(StorageError::BlobUnknown(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for (repository, id, idle_secs) in store.list_uploads().await? {
        if Duration::from_secs(idle_secs) < options.grace_period {
            continue;
        }
        if !options.dry_run {
            match store.cancel_upload(&repository, &id).await {
                Ok(()) | Err(StorageError::UploadUnknown(_)) => {}
                Err(e) => return Err(e),
            }
        }
        report.uploads_removed.push(StaleUpload {
            repository,
            id,
            idle_secs,
        });
    }
    Ok(report)
}

/// Checks that `paths` holds a tree gc may work on (reached without symlinks, holding none) and returns every
/// repository in it.
fn refuse_strays(paths: &DistributionPaths) -> Result<Vec<String>> {
    if let Err(e) = check_beneath(paths.root(), &paths.v2()) {
        return Err(beneath_err(e));
    }
    if !paths.v2().is_dir() {
        return Err(StorageError::Io {
            op: "open registry tree",
            path: paths.v2().display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not a Docker Distribution tree (expected docker/registry/v2 under the directory given)",
            ),
        });
    }
    if let Some((path, what)) = scan_strays(paths)?.into_iter().next() {
        return Err(StorageError::Corrupt {
            what: path.display().to_string(),
            reason: format!(
                "{what}; gc refuses to run while the tree holds one, since what it keeps or removes behind it is \
                 unknown"
            ),
        });
    }
    scan_repositories(paths)
}

fn age(path: &Path, now: SystemTime) -> Option<Duration> {
    let modified = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()?;
    Some(now.duration_since(modified).unwrap_or(Duration::ZERO))
}

/// Removes `path`'s parent directories up to (not including) `stop` while they are empty.
fn prune_empty_parents(path: &Path, stop: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

/// Removes the directory `dir` (below the tree's root) when it exists, unless it is reached through a symlink.
fn remove_beneath(paths: &DistributionPaths, dir: &Path) -> Result<bool> {
    if beneath(paths.root(), dir)?.is_none() {
        return Ok(false);
    }
    remove_dir_if_exists(dir)
}

/// Blob directories holding only staging files whose last activity (the newest of the directory and its
/// files) is older than `grace`: removed unless `dry_run`, and returned.
fn remove_leftovers(
    paths: &DistributionPaths,
    grace: Duration,
    dry_run: bool,
) -> Result<Vec<PathBuf>> {
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for dir in scan_blobs(paths)?.leftovers {
        let mut ages = sorted_entries(paths, &dir)?
            .iter()
            .map(|e| age(&e.path(), now))
            .collect::<Vec<_>>();
        ages.push(age(&dir, now));
        if ages.iter().any(|a| a.is_none_or(|a| a < grace)) {
            continue;
        }
        if !dry_run {
            remove_beneath(paths, &dir)?;
            prune_empty_parents(&dir, &paths.blobs_dir());
        }
        removed.push(dir);
    }
    Ok(removed)
}

/// Removes every tag-history entry naming a removed revision (as distribution deletes a manifest).
fn remove_tag_history(paths: &DistributionPaths, rev: &InRepository) -> Result<()> {
    for tag in sorted_entries(paths, &paths.tags_dir(&rev.repository))? {
        let index = paths.tag_index_link(&rev.repository, &name_of(&tag), &rev.digest);
        if let Some(dir) = index.parent() {
            remove_beneath(paths, dir)?;
        }
    }
    Ok(())
}
