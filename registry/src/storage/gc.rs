//! `sealos registry gc`: mark and sweep over a Docker Distribution tree.
//!
//! Mark: in every repository, start from every tag's current manifest and (unless `delete_untagged`) every
//! manifest revision; a kept manifest keeps its blob, its config and layers, and every child of an index
//! (recursively, even when the child is untagged: distribution's `--delete-untagged` deletes those, we do
//! not); a revision whose `subject` is kept is kept too (referrers: signatures, SBOMs), repeated until
//! nothing changes. Sweep, in an order that never leaves a dangling link behind: untagged revisions (with
//! `delete_untagged`) and their tag-history entries, then the layer links of unmarked blobs, then the blobs,
//! then upload sessions idle for longer than the grace period.
//!
//! A blob whose data was written within the grace period is never removed: it is an upload that just
//! finished whose manifest has not been pushed yet. The mark runs twice (before and right after choosing what
//! to remove) so a manifest pushed while gc runs keeps its blobs. See `docs/registry-maintenance.md` for what
//! is and is not safe while a server uses the directory.
//!
//! gc never follows a symlink: it refuses to run while the tree holds one (or a device, fifo or socket; `fsck`
//! lists them), since what it keeps or removes behind one is unknown, and it removes nothing reached through one.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::manifest::{ParsedManifest, RawManifest};

use formats::fsutil::check_beneath;

use super::fs::{beneath, beneath_err, remove_dir_if_exists};
use super::fsck::{
    load_manifest, scan_blobs, scan_links, scan_repositories, scan_strays, scan_tags,
    sorted_entries,
};
use super::{Result, StorageError};

/// How [`gc`] runs.
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

/// What [`gc`] removed (or, with `dry_run`, would remove).
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

/// The outcome of marking: every blob to keep and the revisions to delete.
#[derive(Default)]
struct Marks {
    blobs: HashSet<Digest>,
    doomed_revisions: Vec<InRepository>,
    warnings: Vec<String>,
}

/// Manifests of one repository, parsed once. `None`: the blob is not stored (nothing to mark).
struct Manifests<'a> {
    paths: &'a DistributionPaths,
    repo: &'a str,
    cache: HashMap<Digest, std::result::Result<Option<RawManifest>, String>>,
}

impl Manifests<'_> {
    fn get(
        &mut self,
        digest: &Digest,
    ) -> Result<&std::result::Result<Option<RawManifest>, String>> {
        if !self.cache.contains_key(digest) {
            let loaded = load_manifest(self.paths, digest)?;
            self.cache.insert(digest.clone(), loaded);
        }
        self.cache.get(digest).ok_or_else(|| StorageError::Corrupt {
            what: format!("{}@{digest}", self.repo),
            reason: "manifest vanished from the cache".into(),
        })
    }
}

fn mark(paths: &DistributionPaths, delete_untagged: bool) -> Result<Marks> {
    let mut marks = Marks::default();
    for repo in scan_repositories(paths)? {
        mark_repository(paths, &repo, delete_untagged, &mut marks)?;
    }
    Ok(marks)
}

fn mark_repository(
    paths: &DistributionPaths,
    repo: &str,
    delete_untagged: bool,
    marks: &mut Marks,
) -> Result<()> {
    let repo_dir = paths.repository_dir(repo);
    let mut revisions = Vec::new();
    for link in scan_links(paths, &repo_dir.join("_manifests/revisions"))? {
        match link.target {
            Ok(d) => revisions.push(d),
            Err(reason) => marks.warnings.push(format!(
                "left `{}` alone: {reason} (run `sealos registry fsck`)",
                link.path.display()
            )),
        }
    }
    let mut roots = Vec::new();
    for (tag, link) in scan_tags(paths, repo)? {
        match link.target {
            Ok(d) => roots.push(d),
            Err(reason) => {
                return Err(StorageError::Corrupt {
                    what: link.path.display().to_string(),
                    reason: format!(
                        "tag `{tag}` of `{repo}` is unreadable ({reason}), so what it keeps is unknown; \
                         gc refuses to run until it is repaired"
                    ),
                });
            }
        }
    }
    if !delete_untagged {
        roots.extend(revisions.iter().cloned());
    }
    let mut manifests = Manifests {
        paths,
        repo,
        cache: HashMap::new(),
    };
    let mut kept: HashSet<Digest> = HashSet::new();
    let mut work = roots;
    loop {
        while let Some(digest) = work.pop() {
            if !kept.insert(digest.clone()) {
                continue;
            }
            marks.blobs.insert(digest.clone());
            match manifests.get(&digest)? {
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
                        what: paths.blob_data(&digest).display().to_string(),
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
            match manifests.get(digest)? {
                Ok(Some(m)) => {
                    if m.subject().is_some_and(|s| kept.contains(&s.digest)) {
                        work.push(digest.clone());
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    marks.warnings.push(format!(
                        "kept untagged manifest `{digest}` of `{repo}`: it {reason}"
                    ));
                    work.push(digest.clone());
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

/// Collects garbage in the tree rooted at `root` (the directory holding `docker/registry/v2`).
pub fn gc(root: &Path, options: &GcOptions) -> Result<GcReport> {
    let paths = DistributionPaths::new(root);
    if let Err(e) = check_beneath(root, &paths.v2()) {
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
    if let Some((path, what)) = scan_strays(&paths)?.into_iter().next() {
        return Err(StorageError::Corrupt {
            what: path.display().to_string(),
            reason: format!(
                "{what}; gc refuses to run while the tree holds one, since what it keeps or removes behind it is \
                 unknown"
            ),
        });
    }
    let now = SystemTime::now();
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    let first = mark(&paths, options.delete_untagged)?;
    let scan = scan_blobs(&paths)?;
    // Mark again now that the candidates are known: a manifest pushed during the first mark keeps its blobs.
    let second = mark(&paths, options.delete_untagged)?;
    report.warnings = second.warnings;
    let doomed_revisions: Vec<InRepository> = first
        .doomed_revisions
        .into_iter()
        .filter(|r| second.doomed_revisions.contains(r))
        .collect();
    let mut doomed_blobs = HashSet::new();
    for blob in scan.blobs {
        if first.blobs.contains(&blob.digest) || second.blobs.contains(&blob.digest) {
            report.blobs_kept += 1;
            continue;
        }
        let size = std::fs::symlink_metadata(&blob.data).map_or(0, |m| m.len());
        let entry = SizedBlob {
            digest: blob.digest.clone(),
            size,
        };
        if age(&blob.data, now).is_none_or(|a| a < options.grace_period) {
            report.young_blobs_kept.push(entry);
        } else {
            report.bytes_freed += size;
            report.blobs_removed.push(entry);
            doomed_blobs.insert(blob.digest);
        }
    }
    let repos = scan_repositories(&paths)?;

    for rev in &doomed_revisions {
        if !options.dry_run {
            remove_revision(&paths, rev)?;
        }
        report.revisions_removed.push(rev.clone());
    }
    for repo in &repos {
        for link in scan_links(&paths, &paths.repository_dir(repo).join("_layers"))? {
            let Ok(digest) = link.target else { continue };
            if !doomed_blobs.contains(&digest) {
                continue;
            }
            if !options.dry_run
                && let Some(dir) = link.path.parent()
            {
                remove_beneath(&paths, dir)?;
            }
            report.layer_links_removed.push(InRepository {
                repository: repo.clone(),
                digest,
            });
        }
    }
    let blobs_dir = paths.blobs_dir();
    if !options.dry_run {
        for blob in &report.blobs_removed {
            let dir = paths.blob_dir(&blob.digest);
            remove_beneath(&paths, &dir)?;
            prune_empty_parents(&dir, &blobs_dir);
        }
    }
    for dir in scan.leftovers {
        // Last activity: the newest of the directory and the staging files in it.
        let mut newest = sorted_entries(&paths, &dir)?
            .iter()
            .map(|e| age(&e.path(), now))
            .collect::<Vec<_>>();
        newest.push(age(&dir, now));
        if newest
            .iter()
            .any(|a| a.is_none_or(|a| a < options.grace_period))
        {
            continue;
        }
        if !options.dry_run {
            remove_beneath(&paths, &dir)?;
            prune_empty_parents(&dir, &blobs_dir);
        }
        report.leftovers_removed.push(dir);
    }
    for repo in &repos {
        for session in sorted_entries(&paths, &paths.uploads_dir(repo))? {
            let dir = session.path();
            // Last activity: the newest of the session directory and its files.
            let idle = [dir.clone(), dir.join("data"), dir.join("startedat")]
                .iter()
                .filter_map(|p| age(p, now))
                .min();
            let Some(idle) = idle.filter(|i| *i >= options.grace_period) else {
                continue;
            };
            if !options.dry_run {
                remove_beneath(&paths, &dir)?;
            }
            report.uploads_removed.push(StaleUpload {
                repository: repo.clone(),
                id: session.file_name().to_string_lossy().into_owned(),
                idle_secs: idle.as_secs(),
            });
        }
    }
    Ok(report)
}

/// Removes a revision link and every tag-history entry naming it (as distribution deletes a manifest).
fn remove_revision(paths: &DistributionPaths, rev: &InRepository) -> Result<()> {
    let link = paths.revision_link(&rev.repository, &rev.digest);
    if let Some(dir) = link.parent() {
        remove_beneath(paths, dir)?;
    }
    for tag in sorted_entries(paths, &paths.tags_dir(&rev.repository))? {
        let tag_name = tag.file_name().to_string_lossy().into_owned();
        let index = paths.tag_index_link(&rev.repository, &tag_name, &rev.digest);
        if let Some(dir) = index.parent() {
            remove_beneath(paths, dir)?;
        }
    }
    Ok(())
}
