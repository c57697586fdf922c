//! What only a directory has: walks of a Docker Distribution tree on disk that see entries the [`Storage`]
//! trait never shows (symlinks, devices, fifos and sockets; names that are not digests; staging debris of an
//! interrupted write; link files whose text is not the digest their path names). `fsck` of a directory runs
//! [`audit`] before the checks every store gets; `gc` of a directory uses the walks to refuse a tree with strays
//! and to remove debris.
//!
//! None of these walks follows a symlink: [`scan_strays`] lists every symlink and special file, and the other
//! walks skip them, so a tree that came from elsewhere cannot make fsck read, or gc delete, anything outside it.
//!
//! [`Storage`]: crate::storage::Storage

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest};
use formats::distribution::DistributionPaths;
use formats::fsutil::{BeneathError, check_beneath, open_beneath};

use super::{FsckReport, ProblemKind};
use crate::storage::fs::{beneath_err, io_err, is_not_found, is_real_dir};
use crate::storage::{Result, StorageError};

/// Runs blocking filesystem work (a walk of the tree) off the async threads.
pub(in crate::storage) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            op: "walk the registry tree",
            path: String::new(),
            source: io::Error::other(e),
        })?
}

/// Lists the directory entries of `dir` (below the tree's root) sorted by name. A missing directory is empty,
/// and so is one reached through a symlink or that is not a directory: it is not followed ([`scan_strays`]
/// reports it).
pub(in crate::storage) fn sorted_entries(
    paths: &DistributionPaths,
    dir: &Path,
) -> Result<Vec<std::fs::DirEntry>> {
    match check_beneath(paths.root(), dir) {
        Ok(Some(m)) if m.is_dir() => {}
        Ok(_) | Err(BeneathError::Symlink(_)) => return Ok(Vec::new()),
        Err(e) => return Err(beneath_err(e)),
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    let mut out = entries
        .collect::<io::Result<Vec<_>>>()
        .map_err(io_err("list", dir))?;
    out.sort_by_key(std::fs::DirEntry::file_name);
    Ok(out)
}

pub(in crate::storage) fn name_of(entry: &std::fs::DirEntry) -> String {
    entry.file_name().to_string_lossy().into_owned()
}

/// True when the entry is a symlink, device, fifo or socket: never followed or read, listed by [`scan_strays`].
fn is_stray(entry: &std::fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| !t.is_dir() && !t.is_file())
}

/// Every symlink, device, fifo and socket under `docker/registry/v2` (found without following any symlink),
/// with what is wrong with it: the store never follows or reads them.
pub(in crate::storage) fn scan_strays(paths: &DistributionPaths) -> Result<Vec<(PathBuf, String)>> {
    let mut found = Vec::new();
    let mut stack = vec![paths.v2()];
    while let Some(dir) = stack.pop() {
        for entry in sorted_entries(paths, &dir)? {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map(|t| format!(" (to `{}`)", t.display()))
                    .unwrap_or_default();
                found.push((
                    entry.path(),
                    format!(
                        "a symlink{target}: the registry never follows symlinks in its directory (one could \
                         point outside it); replace it with what it points to, or remove it"
                    ),
                ));
            } else if !kind.is_file() {
                found.push((
                    entry.path(),
                    "not a regular file (a device, fifo or socket); remove it".into(),
                ));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// What [`scan_blobs`] found under `blobs/` besides blobs (the store lists those).
#[derive(Debug, Default)]
pub(in crate::storage) struct BlobScan {
    /// Entries not shaped like a blob, with the reason.
    pub(in crate::storage) unexpected: Vec<(PathBuf, String)>,
    /// Blob directories holding only staging files (`.tmp-*`) or nothing: debris of an interrupted write, never
    /// visible to clients.
    pub(in crate::storage) leftovers: Vec<PathBuf>,
}

/// True when `dir` holds nothing but staging files (`.tmp-*`), or nothing at all.
fn only_staging_files(paths: &DistributionPaths, dir: &Path) -> Result<bool> {
    Ok(sorted_entries(paths, dir)?
        .iter()
        .all(|e| name_of(e).starts_with(".tmp-")))
}

/// Walks `blobs/<alg>/<xx>/<hex>`, skipping strays ([`scan_strays`]).
pub(in crate::storage) fn scan_blobs(paths: &DistributionPaths) -> Result<BlobScan> {
    let mut scan = BlobScan::default();
    for alg in sorted_entries(paths, &paths.blobs_dir())? {
        if is_stray(&alg) {
            continue;
        }
        let Ok(algorithm) = name_of(&alg).parse::<Algorithm>() else {
            scan.unexpected
                .push((alg.path(), "not a digest algorithm directory".into()));
            continue;
        };
        for prefix in sorted_entries(paths, &alg.path())? {
            let prefix_name = name_of(&prefix);
            for hex in sorted_entries(paths, &prefix.path())? {
                if is_stray(&hex) {
                    continue;
                }
                let name = name_of(&hex);
                match Digest::from_parts(algorithm, &name) {
                    Ok(d) if prefix_name.len() == 2 && d.hex().starts_with(&prefix_name) => {}
                    Ok(_) => {
                        scan.unexpected
                            .push((hex.path(), "blob directory under the wrong prefix".into()));
                        continue;
                    }
                    Err(e) => {
                        scan.unexpected
                            .push((hex.path(), format!("not a blob directory: {e}")));
                        continue;
                    }
                }
                let kind =
                    std::fs::symlink_metadata(hex.path().join("data")).map(|m| m.file_type());
                if kind.is_ok() {
                    // A blob (the store lists it), or a stray `data` ([`scan_strays`] reports it).
                } else if only_staging_files(paths, &hex.path())? {
                    scan.leftovers.push(hex.path());
                } else {
                    scan.unexpected
                        .push((hex.path(), "blob directory without a `data` file".into()));
                }
            }
        }
    }
    Ok(scan)
}

/// Every repository under `repositories/` (any depth): a directory holding `_manifests`, `_layers` or
/// `_uploads` (a store lists only those with manifests). Returns the names, sorted.
pub(in crate::storage) fn scan_repositories(paths: &DistributionPaths) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack = vec![(paths.repositories_dir(), String::new())];
    while let Some((dir, name)) = stack.pop() {
        let mut is_repo = false;
        for entry in sorted_entries(paths, &dir)? {
            let child = name_of(&entry);
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if matches!(child.as_str(), "_manifests" | "_layers" | "_uploads") {
                is_repo = true;
            } else if !child.starts_with('_') && !child.starts_with('.') {
                let full = if name.is_empty() {
                    child
                } else {
                    format!("{name}/{child}")
                };
                stack.push((entry.path(), full));
            }
        }
        if is_repo && !name.is_empty() {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

/// Why the link file at `path` (a regular file reached without symlinks) is unusable: it does not hold a
/// digest, or holds another one than `named` (the digest its path spells) when given. `None` when it is fine.
fn link_fault(
    paths: &DistributionPaths,
    path: &Path,
    named: Option<&Digest>,
) -> Result<Option<String>> {
    let (file, _) = open_beneath(paths.root(), path).map_err(beneath_err)?;
    let mut text = Vec::new();
    file.take(1024)
        .read_to_end(&mut text)
        .map_err(io_err("read link", path))?;
    Ok(match std::str::from_utf8(&text) {
        Err(_) => Some("link is not text".to_string()),
        Ok(t) => match Digest::parse(t.trim()) {
            Err(e) => Some(format!("link does not hold a digest: {e}")),
            Ok(d) if named.is_some_and(|n| n != &d) => Some(format!(
                "link holds `{d}` but its path names `{}`",
                named.map(ToString::to_string).unwrap_or_default()
            )),
            Ok(_) => None,
        },
    })
}

/// True when `path` is a regular file (not a symlink to one).
fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// The faults of every `<dir>/<alg>/<hex>/link` (the shape of `_layers`, `_manifests/revisions` and a tag's
/// `index`). A `<hex>` directory without a `link` is an entry distribution deleted and is skipped; strays are skipped
/// ([`scan_strays`]).
fn link_faults(paths: &DistributionPaths, dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for alg in sorted_entries(paths, dir)? {
        if is_stray(&alg) {
            continue;
        }
        let Ok(algorithm) = name_of(&alg).parse::<Algorithm>() else {
            out.push((alg.path(), "not a digest algorithm directory".into()));
            continue;
        };
        for hex in sorted_entries(paths, &alg.path())? {
            let link = hex.path().join("link");
            if !is_real_dir(&hex) || !is_plain_file(&link) {
                continue;
            }
            match Digest::from_parts(algorithm, &name_of(&hex)) {
                Ok(named) => {
                    if let Some(fault) = link_fault(paths, &link, Some(&named))? {
                        out.push((link, fault));
                    }
                }
                Err(e) => out.push((link, format!("its directory does not name a digest: {e}"))),
            }
        }
    }
    Ok(out)
}

/// Tag history links of one tag (`<tag>/index/<alg>/<hex>/link`) that exist.
fn count_links(paths: &DistributionPaths, dir: &Path) -> Result<u64> {
    let mut n = 0;
    for alg in sorted_entries(paths, dir)? {
        for hex in sorted_entries(paths, &alg.path())? {
            n += u64::from(is_real_dir(&hex) && is_plain_file(&hex.path().join("link")));
        }
    }
    Ok(n)
}

/// What [`audit`] hands to the checks every store gets.
#[derive(Debug, Default)]
pub(in crate::storage) struct Audit {
    /// Every repository directory, including those with layers or uploads only (a store lists only those with
    /// manifests).
    pub(in crate::storage) repositories: Vec<String>,
    /// Link files already reported as bad: the store checks skip them, so their digests count as unlinked.
    pub(in crate::storage) bad_links: HashSet<PathBuf>,
}

/// The directory-only checks of `fsck`: the tree exists and is reached without symlinks, strays, entries of
/// `blobs/` that are not blobs, staging debris, link files whose text is wrong, and tag history links (a store
/// does not list those). Returns `None` when there is no tree to check further (reported as a problem).
pub(in crate::storage) fn audit(
    paths: &DistributionPaths,
    report: &mut FsckReport,
) -> Result<Option<Audit>> {
    match check_beneath(paths.root(), &paths.v2()) {
        Ok(Some(m)) if m.is_dir() => {}
        Err(BeneathError::Symlink(link)) => {
            report.problem(
                link,
                ProblemKind::UnexpectedEntry,
                "a symlink: the registry never follows symlinks in its directory (one could point outside it)",
            );
            return Ok(None);
        }
        Err(e @ BeneathError::Io { .. }) if !e.is_not_found() => return Err(beneath_err(e)),
        _ => {
            report.problem(
                paths.v2(),
                ProblemKind::UnexpectedEntry,
                "missing: not a Docker Distribution tree (expected docker/registry/v2 under the directory given)",
            );
            return Ok(None);
        }
    }
    for (path, message) in scan_strays(paths)? {
        report.problem(path, ProblemKind::UnexpectedEntry, message);
    }
    let BlobScan {
        unexpected,
        leftovers,
    } = scan_blobs(paths)?;
    for (path, message) in unexpected {
        report.problem(path, ProblemKind::UnexpectedEntry, message);
    }
    report.leftovers = leftovers;
    let mut audit = Audit {
        repositories: scan_repositories(paths)?,
        ..Audit::default()
    };
    for repo in &audit.repositories {
        let repo_dir = paths.repository_dir(repo);
        let mut faults = link_faults(paths, &repo_dir.join("_layers"))?;
        faults.extend(link_faults(paths, &repo_dir.join("_manifests/revisions"))?);
        for tag in sorted_entries(paths, &paths.tags_dir(repo))? {
            let current = tag.path().join("current/link");
            if check_beneath(paths.root(), &current).is_ok_and(|m| m.is_some_and(|m| m.is_file()))
                && let Some(fault) = link_fault(paths, &current, None)?
            {
                faults.push((current, fault));
            }
            let index = tag.path().join("index");
            report.links += count_links(paths, &index)?;
            faults.extend(link_faults(paths, &index)?);
        }
        for (path, fault) in faults {
            audit.bad_links.insert(path.clone());
            report.problem(path, ProblemKind::BadLink, fault);
        }
    }
    Ok(Some(audit))
}
