//! `sealos registry fsck`: checks a Docker Distribution tree offline. Every blob is re-hashed (streaming, one
//! pass) against the digest its path names; every layer, revision and tag link must hold a well-formed digest
//! that matches its path and points at something stored; every manifest revision must parse and everything it
//! references (config, layers, child manifests) must be in the repository. Each problem names the path.
//!
//! The tree walks here ([`scan_blobs`], [`scan_repositories`], [`scan_links`]) are shared with [`super::gc`].
//! None of them follows a symlink: [`scan_strays`] lists every symlink and every device, fifo or socket in the
//! tree (fsck reports each, gc refuses to run while there is one), and the other walks skip them, so a tree
//! that came from elsewhere cannot make fsck read, or gc delete, anything outside it.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest};
use formats::distribution::DistributionPaths;
use formats::manifest::{ParsedManifest, RawManifest};
use formats::media_type;
use formats::oci_layout::MAX_JSON_BLOB;

use formats::fsutil::{BeneathError, check_beneath, open_beneath};

use super::Result;
use super::fs::{beneath_err, hash_at, io_err, is_not_found, is_real_dir};

/// What kind of damage a [`Problem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A blob's bytes do not hash to the digest its path names.
    CorruptBlob,
    /// A file or directory that has no place in the layout (a bad digest in a path, a blob without data).
    UnexpectedEntry,
    /// A link file that does not hold a digest, or holds another digest than its path names.
    BadLink,
    /// A link naming a blob or manifest that is not stored.
    DanglingLink,
    /// A manifest revision that cannot be read or parsed.
    BadManifest,
    /// A manifest referencing a blob or child manifest that is missing from its repository (or has another
    /// size than the descriptor says).
    BadReference,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::CorruptBlob => "corrupt blob",
            ProblemKind::UnexpectedEntry => "unexpected entry",
            ProblemKind::BadLink => "bad link",
            ProblemKind::DanglingLink => "dangling link",
            ProblemKind::BadManifest => "bad manifest",
            ProblemKind::BadReference => "bad reference",
        })
    }
}

/// One thing wrong in the tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file or directory at fault.
    pub path: PathBuf,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// What exactly is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.kind,
            self.path.display(),
            self.message
        )
    }
}

/// The outcome of [`fsck`]: what was checked and every problem found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FsckReport {
    /// Blobs re-hashed.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Repositories found.
    pub repositories: u64,
    /// Layer, revision and tag links read.
    pub links: u64,
    /// Manifest revisions parsed.
    pub manifests: u64,
    /// Upload sessions present (not checked: their content is incomplete by nature).
    pub uploads: u64,
    /// Indexes that keep only some of their child manifests (a pinned index embedded or saved for the chosen
    /// platforms, as `skopeo copy --multi-arch index-only` leaves them); an index with none of its children is a
    /// problem.
    pub partial_indexes: u64,
    /// Blob directories holding only staging files of an interrupted write (harmless; `gc` removes them).
    pub leftovers: Vec<PathBuf>,
    /// Every problem, in walk order.
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, path: impl Into<PathBuf>, kind: ProblemKind, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            kind,
            message: message.into(),
        });
    }
}

/// A stored blob found by [`scan_blobs`].
#[derive(Debug, Clone)]
pub(super) struct BlobEntry {
    pub(super) digest: Digest,
    pub(super) data: PathBuf,
}

/// A link file found by [`scan_links`]: its path and the digest it validly names, or why it does not.
#[derive(Debug, Clone)]
pub(super) struct LinkEntry {
    pub(super) path: PathBuf,
    pub(super) target: std::result::Result<Digest, String>,
}

/// Lists the directory entries of `dir` (below the tree's root) sorted by name. A missing directory is empty,
/// and so is one reached through a symlink or that is not a directory: it is not followed ([`scan_strays`]
/// reports it).
pub(super) fn sorted_entries(
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

fn name_of(entry: &std::fs::DirEntry) -> String {
    entry.file_name().to_string_lossy().into_owned()
}

/// What [`scan_blobs`] found under `blobs/`.
#[derive(Debug, Default)]
pub(super) struct BlobScan {
    /// Every `blobs/<alg>/<xx>/<hex>/data`.
    pub(super) blobs: Vec<BlobEntry>,
    /// Entries not shaped like a blob, with the reason.
    pub(super) unexpected: Vec<(PathBuf, String)>,
    /// Blob directories holding only staging files (`.tmp-*`) or nothing: debris of an interrupted write, never
    /// visible to clients.
    pub(super) leftovers: Vec<PathBuf>,
}

/// True when `dir` holds nothing but staging files (`.tmp-*`), or nothing at all.
fn only_staging_files(paths: &DistributionPaths, dir: &Path) -> Result<bool> {
    Ok(sorted_entries(paths, dir)?
        .iter()
        .all(|e| name_of(e).starts_with(".tmp-")))
}

/// True when the entry is a symlink, device, fifo or socket: never followed or read, listed by [`scan_strays`].
fn is_stray(entry: &std::fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| !t.is_dir() && !t.is_file())
}

/// Every symlink, device, fifo and socket under `docker/registry/v2` (found without following any symlink),
/// with what is wrong with it: the store never follows or reads them.
pub(super) fn scan_strays(paths: &DistributionPaths) -> Result<Vec<(PathBuf, String)>> {
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

/// Walks `blobs/<alg>/<xx>/<hex>/data`, skipping strays ([`scan_strays`]).
pub(super) fn scan_blobs(paths: &DistributionPaths) -> Result<BlobScan> {
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
                let digest = match Digest::from_parts(algorithm, &name) {
                    Ok(d) if prefix_name.len() == 2 && d.hex().starts_with(&prefix_name) => d,
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
                };
                let data = hex.path().join("data");
                let kind = std::fs::symlink_metadata(&data).map(|m| m.file_type());
                if kind.as_ref().is_ok_and(|k| k.is_file()) {
                    scan.blobs.push(BlobEntry { digest, data });
                } else if kind.is_ok_and(|k| !k.is_dir()) {
                    // A symlink or device as `data`: a stray, not a blob.
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
/// `_uploads`. Returns the names, sorted.
pub(super) fn scan_repositories(paths: &DistributionPaths) -> Result<Vec<String>> {
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

/// Reads one link file (a regular file reached without symlinks), checking it names `named` (the digest its
/// path spells) when given.
pub(super) fn read_link(
    paths: &DistributionPaths,
    path: &Path,
    named: Option<&Digest>,
) -> Result<LinkEntry> {
    let (file, _) = open_beneath(paths.root(), path).map_err(beneath_err)?;
    let mut text = Vec::new();
    file.take(1024)
        .read_to_end(&mut text)
        .map_err(io_err("read link", path))?;
    let target = match std::str::from_utf8(&text) {
        Err(_) => Err("link is not text".to_string()),
        Ok(t) => match Digest::parse(t.trim()) {
            Err(e) => Err(format!("link does not hold a digest: {e}")),
            Ok(d) if named.is_some_and(|n| n != &d) => Err(format!(
                "link holds `{d}` but its path names `{}`",
                named.map(ToString::to_string).unwrap_or_default()
            )),
            Ok(d) => Ok(d),
        },
    };
    Ok(LinkEntry {
        path: path.to_path_buf(),
        target,
    })
}

/// True when `path` is a regular file (not a symlink to one).
fn is_plain_file(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// True when `path` is a regular file reached from the root without symlinks.
pub(super) fn is_file_beneath(paths: &DistributionPaths, path: &Path) -> bool {
    check_beneath(paths.root(), path).is_ok_and(|m| m.is_some_and(|m| m.is_file()))
}

/// Every `<dir>/<alg>/<hex>/link` (the shape of `_layers`, `_manifests/revisions` and a tag's `index`). A
/// `<hex>` directory without a `link` is an entry distribution deleted and is skipped; malformed names are
/// returned as bad links; strays are skipped ([`scan_strays`]).
pub(super) fn scan_links(paths: &DistributionPaths, dir: &Path) -> Result<Vec<LinkEntry>> {
    let mut out = Vec::new();
    for alg in sorted_entries(paths, dir)? {
        if is_stray(&alg) {
            continue;
        }
        let Ok(algorithm) = name_of(&alg).parse::<Algorithm>() else {
            out.push(LinkEntry {
                path: alg.path(),
                target: Err("not a digest algorithm directory".into()),
            });
            continue;
        };
        for hex in sorted_entries(paths, &alg.path())? {
            let link = hex.path().join("link");
            if !is_real_dir(&hex) || !is_plain_file(&link) {
                continue;
            }
            match Digest::from_parts(algorithm, &name_of(&hex)) {
                Ok(named) => out.push(read_link(paths, &link, Some(&named))?),
                Err(e) => out.push(LinkEntry {
                    path: link,
                    target: Err(format!("its directory does not name a digest: {e}")),
                }),
            }
        }
    }
    Ok(out)
}

/// The tags of a repository: `(tag, current link)` for every tag with a `current/link`.
pub(super) fn scan_tags(paths: &DistributionPaths, repo: &str) -> Result<Vec<(String, LinkEntry)>> {
    let mut out = Vec::new();
    for tag in sorted_entries(paths, &paths.tags_dir(repo))? {
        let current = tag.path().join("current/link");
        if is_file_beneath(paths, &current) {
            out.push((name_of(&tag), read_link(paths, &current, None)?));
        }
    }
    Ok(out)
}

/// Reads and parses a stored manifest, verifying its bytes against `digest`. `Ok(None)` when the blob is not
/// stored; `Err(reason)` when it is unusable.
pub(super) fn load_manifest(
    paths: &DistributionPaths,
    digest: &Digest,
) -> Result<std::result::Result<Option<RawManifest>, String>> {
    let path = paths.blob_data(digest);
    let file = match open_beneath(paths.root(), &path) {
        Ok((f, _)) => f,
        Err(e) if e.is_not_found() => return Ok(Ok(None)),
        Err(e @ (BeneathError::Symlink(_) | BeneathError::NotRegular(_))) => {
            return Ok(Err(e.to_string()));
        }
        Err(e) => return Err(beneath_err(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    if bytes.len() as u64 > MAX_JSON_BLOB {
        return Ok(Err(format!(
            "larger than {MAX_JSON_BLOB} bytes, too large to be a manifest"
        )));
    }
    if let Err(e) = digest.verify(&bytes) {
        return Ok(Err(format!("stored bytes do not match: {e}")));
    }
    Ok(RawManifest::from_bytes(bytes, None)
        .map(Some)
        .map_err(|e| format!("does not parse as a manifest: {e}")))
}

/// Checks the tree rooted at `root` (the directory holding `docker/registry/v2`). Problems go into the
/// report; `Err` only when the walk itself fails (an unreadable directory).
pub fn fsck(root: &Path) -> Result<FsckReport> {
    let paths = DistributionPaths::new(root);
    let mut report = FsckReport::default();
    match check_beneath(root, &paths.v2()) {
        Ok(Some(m)) if m.is_dir() => {}
        Err(BeneathError::Symlink(link)) => {
            report.problem(
                link,
                ProblemKind::UnexpectedEntry,
                "a symlink: the registry never follows symlinks in its directory (one could point outside it)",
            );
            return Ok(report);
        }
        Err(e @ BeneathError::Io { .. }) if !e.is_not_found() => return Err(beneath_err(e)),
        _ => {
            report.problem(
                paths.v2(),
                ProblemKind::UnexpectedEntry,
                "missing: not a Docker Distribution tree (expected docker/registry/v2 under the directory given)",
            );
            return Ok(report);
        }
    }
    for (path, message) in scan_strays(&paths)? {
        report.problem(path, ProblemKind::UnexpectedEntry, message);
    }
    let BlobScan {
        blobs,
        unexpected,
        leftovers,
    } = scan_blobs(&paths)?;
    for (path, message) in unexpected {
        report.problem(path, ProblemKind::UnexpectedEntry, message);
    }
    report.leftovers = leftovers;
    for blob in &blobs {
        let (file, _) = open_beneath(root, &blob.data).map_err(beneath_err)?;
        let (hasher, len) = hash_at(&file, &blob.data, blob.digest.algorithm().hasher())?;
        let actual = hasher.finish();
        report.blobs += 1;
        report.bytes += len;
        if actual != blob.digest {
            report.problem(
                &blob.data,
                ProblemKind::CorruptBlob,
                format!(
                    "content hashes to `{actual}`, not `{}` ({len} bytes); restore it or push the blob again",
                    blob.digest
                ),
            );
        }
    }
    let stored: HashSet<&Digest> = blobs.iter().map(|b| &b.digest).collect();
    for repo in scan_repositories(&paths)? {
        report.repositories += 1;
        check_repository(&paths, &repo, &stored, &mut report)?;
    }
    Ok(report)
}

/// Reads the links under `dir` (`<alg>/<hex>/link`), counts them, reports unreadable ones and ones naming a blob
/// that is not stored (with `dangling`'s message), and returns the others with the digest each names.
fn stored_links(
    paths: &DistributionPaths,
    dir: &Path,
    stored: &HashSet<&Digest>,
    report: &mut FsckReport,
    dangling: impl Fn(&Digest) -> String,
) -> Result<Vec<(PathBuf, Digest)>> {
    let mut kept = Vec::new();
    for link in scan_links(paths, dir)? {
        report.links += 1;
        match link.target {
            Err(reason) => report.problem(link.path, ProblemKind::BadLink, reason),
            Ok(d) if !stored.contains(&d) => {
                report.problem(link.path, ProblemKind::DanglingLink, dangling(&d))
            }
            Ok(d) => kept.push((link.path, d)),
        }
    }
    Ok(kept)
}

fn check_repository(
    paths: &DistributionPaths,
    repo: &str,
    stored: &HashSet<&Digest>,
    report: &mut FsckReport,
) -> Result<()> {
    let repo_dir = paths.repository_dir(repo);
    let layers: HashSet<Digest> =
        stored_links(paths, &repo_dir.join("_layers"), stored, report, |d| {
            format!("layer link names blob `{d}`, which is not stored")
        })?
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let revisions = stored_links(
        paths,
        &repo_dir.join("_manifests/revisions"),
        stored,
        report,
        |d| format!("revision link names manifest `{d}`, whose blob is not stored"),
    )?;
    let revision_set: HashSet<&Digest> = revisions.iter().map(|(_, d)| d).collect();
    for (link, digest) in &revisions {
        report.manifests += 1;
        let manifest = match load_manifest(paths, digest)? {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(reason) => {
                report.problem(
                    paths.blob_data(digest),
                    ProblemKind::BadManifest,
                    format!("manifest `{digest}` of `{repo}` {reason}"),
                );
                continue;
            }
        };
        let children = manifest.referenced_blobs();
        let partial_index = matches!(manifest.parsed, ParsedManifest::Index(_))
            && children.iter().any(|c| revision_set.contains(&c.digest));
        if partial_index && children.iter().any(|c| !revision_set.contains(&c.digest)) {
            report.partial_indexes += 1;
        }
        for child in children {
            let d = &child.digest;
            let problem = match &manifest.parsed {
                ParsedManifest::Index(_) if !partial_index && !revision_set.contains(d) => {
                    Some(format!(
                        "child manifest `{d}` is not a revision of `{repo}` (nor is any other child)"
                    ))
                }
                ParsedManifest::Index(_) => None,
                ParsedManifest::Image(_) if !stored.contains(d) => {
                    (!media_type::is_non_distributable(&child.media_type))
                        .then(|| format!("references blob `{d}`, which is not stored"))
                }
                ParsedManifest::Image(_) if !layers.contains(d) => Some(format!(
                    "references blob `{d}`, which is not linked into `{repo}` (no _layers link)"
                )),
                ParsedManifest::Image(_) => std::fs::symlink_metadata(paths.blob_data(d))
                    .ok()
                    .filter(|m| m.len() != child.size)
                    .map(|m| {
                        format!(
                            "references blob `{d}` as {} bytes, but it holds {}",
                            child.size,
                            m.len()
                        )
                    }),
            };
            if let Some(message) = problem {
                report.problem(
                    link,
                    ProblemKind::BadReference,
                    format!("manifest `{digest}` {message}"),
                );
            }
        }
    }
    for tag in sorted_entries(paths, &paths.tags_dir(repo))? {
        let tag_name = name_of(&tag);
        let current = tag.path().join("current/link");
        if is_file_beneath(paths, &current) {
            report.links += 1;
            match read_link(paths, &current, None)?.target {
                Err(reason) => report.problem(&current, ProblemKind::BadLink, reason),
                Ok(d) if !revision_set.contains(&d) => report.problem(
                    &current,
                    ProblemKind::DanglingLink,
                    format!("tag `{tag_name}` points at `{d}`, which is not a stored revision of `{repo}`"),
                ),
                Ok(_) => {}
            }
        }
        for link in scan_links(paths, &tag.path().join("index"))? {
            report.links += 1;
            if let Err(reason) = link.target {
                report.problem(link.path, ProblemKind::BadLink, reason);
            }
        }
    }
    report.uploads += sorted_entries(paths, &paths.uploads_dir(repo))?.len() as u64;
    Ok(())
}
