//! `sealos registry fsck`: checks a registry's storage offline, on every store. Every blob is re-hashed
//! (streamed through [`Storage::read_blob`], one pass) against its digest; every layer and revision link must
//! be readable and point at a stored blob, and every tag at a revision of its repository; every manifest
//! revision must parse and everything it references (config, layers, child manifests) must be in the
//! repository. Each problem names where the item lives in the Docker Distribution layout (a path below the
//! directory, or a key in the bucket).
//!
//! [`fsck_store`] checks any [`Storage`]; [`fsck`] checks a directory, adding what only a directory has
//! (module `tree`: symlinks and special files, names that are not digests, staging debris, link files whose text is
//! wrong, tag history links), so a tree that came from elsewhere cannot make fsck read anything outside it.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::manifest::{ParsedManifest, RawManifest};
use formats::media_type;
use formats::oci_layout::MAX_JSON_BLOB;
use futures_util::StreamExt;

use super::{FsStorage, Result, Storage, StorageError, for_each_chunk};

pub(in crate::storage) mod tree;

use tree::Audit;

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

    /// A store's refusal to read damaged data ([`StorageError::Corrupt`]) as a problem at the item it names;
    /// any other error stops the check.
    fn refused(&mut self, e: StorageError, kind: ProblemKind) -> Result<()> {
        match e {
            StorageError::Corrupt { what, reason } => {
                self.problem_once(PathBuf::from(what), kind, reason);
                Ok(())
            }
            e => Err(e),
        }
    }

    /// As [`FsckReport::refused`], naming `path`.
    fn refused_at(&mut self, path: PathBuf, e: StorageError, kind: ProblemKind) -> Result<()> {
        match e {
            StorageError::Corrupt { reason, .. } => {
                self.problem_once(path, kind, reason);
                Ok(())
            }
            e => Err(e),
        }
    }

    /// A problem, unless one at `path` is reported already (a directory's own walk finds symlinks first).
    fn problem_once(&mut self, path: PathBuf, kind: ProblemKind, message: String) {
        if !self.problems.iter().any(|p| p.path == path) {
            self.problem(path, kind, message);
        }
    }
}

/// Checks the tree rooted at `root` (the directory holding `docker/registry/v2`): the directory-only checks
/// (module `tree`), then the checks of [`fsck_store`] through the filesystem store. Problems go into the report;
/// `Err` only when the walk itself fails (an unreadable directory).
pub async fn fsck(root: &Path) -> Result<FsckReport> {
    let paths = DistributionPaths::new(root);
    let walk = paths.clone();
    let (mut report, audit) = tree::blocking(move || {
        let mut report = FsckReport::default();
        let audit = tree::audit(&walk, &mut report)?;
        Ok((report, audit))
    })
    .await?;
    if let Some(audit) = audit {
        check(&FsStorage::new(root), &paths, &audit, &mut report).await?;
    }
    Ok(report)
}

/// Checks every blob, link, tag and manifest of `store`. `layout` says where the store keeps its Docker
/// Distribution layout (the directory, or the bucket and prefix), to name each item a problem is about.
/// Problems go into the report; `Err` only when the store fails (unreachable, an I/O error).
pub async fn fsck_store(store: &dyn Storage, layout: &DistributionPaths) -> Result<FsckReport> {
    let mut report = FsckReport::default();
    check(store, layout, &Audit::default(), &mut report).await?;
    Ok(report)
}

/// The checks every store gets; `audit` holds what a directory's own walk found already.
async fn check(
    store: &dyn Storage,
    layout: &DistributionPaths,
    audit: &Audit,
    report: &mut FsckReport,
) -> Result<()> {
    let blobs = store.list_blobs().await?;
    hash_blobs(store, layout, &blobs, report).await?;
    let stored: HashSet<&Digest> = blobs.iter().collect();
    let mut repositories = store.list_repositories().await?;
    repositories.extend(audit.repositories.iter().cloned());
    repositories.sort();
    repositories.dedup();
    for repo in &repositories {
        report.repositories += 1;
        let links = RepoLinks {
            store,
            layout,
            repo,
            audit,
            stored: &stored,
        };
        links.check(report).await?;
    }
    report.uploads = store.list_uploads().await?.len() as u64;
    Ok(())
}

/// Blobs hashed at once: an object store answers each GET after a round trip, so a few run side by side.
const HASHING_AT_ONCE: usize = 4;

/// Re-hashes every blob, [`HASHING_AT_ONCE`] at a time, reporting in the order of `blobs`.
async fn hash_blobs(
    store: &dyn Storage,
    layout: &DistributionPaths,
    blobs: &[Digest],
    report: &mut FsckReport,
) -> Result<()> {
    let mut hashed = futures_util::stream::iter(blobs)
        .map(|digest| async move { (digest, hash_blob(store, digest).await) })
        .buffered(HASHING_AT_ONCE);
    while let Some((digest, outcome)) = hashed.next().await {
        let (actual, len) = match outcome {
            Ok(Some(hashed)) => hashed,
            // Removed since it was listed (gc, or a server deleting).
            Ok(None) => continue,
            Err(e) => {
                report.refused(e, ProblemKind::UnexpectedEntry)?;
                continue;
            }
        };
        report.blobs += 1;
        report.bytes += len;
        if &actual != digest {
            report.problem(
                layout.blob_data(digest),
                ProblemKind::CorruptBlob,
                format!(
                    "content hashes to `{actual}`, not `{digest}` ({len} bytes); restore it or push the blob again"
                ),
            );
        }
    }
    Ok(())
}

/// Hashes one blob as it streams: what it hashes to and its length, or `None` when it is not stored.
async fn hash_blob(store: &dyn Storage, digest: &Digest) -> Result<Option<(Digest, u64)>> {
    let reader = match store.read_blob(digest, None).await {
        Ok(reader) => reader,
        Err(StorageError::BlobUnknown(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut hasher = digest.algorithm().hasher();
    let mut len = 0u64;
    for_each_chunk(reader.stream, "read blob", &digest.to_string(), |chunk| {
        hasher.update(chunk);
        len += chunk.len() as u64;
    })
    .await?;
    Ok(Some((hasher.finish(), len)))
}

/// Reads and parses a stored manifest, verifying its bytes against `digest`. `Ok(None)` when the blob is not
/// stored; `Err(reason)` when it is unusable (too large, damaged, not a manifest).
pub(in crate::storage) async fn load_manifest(
    store: &dyn Storage,
    digest: &Digest,
) -> Result<std::result::Result<Option<RawManifest>, String>> {
    let bytes = match store.read_blob_bytes(digest, MAX_JSON_BLOB).await {
        Ok(bytes) => bytes,
        Err(StorageError::BlobUnknown(_)) => return Ok(Ok(None)),
        Err(StorageError::TooLarge { .. }) => {
            return Ok(Err(format!(
                "larger than {MAX_JSON_BLOB} bytes, too large to be a manifest"
            )));
        }
        Err(StorageError::Corrupt { reason, .. }) => return Ok(Err(reason)),
        Err(e) => return Err(e),
    };
    if let Err(e) = digest.verify(&bytes) {
        return Ok(Err(format!("stored bytes do not match: {e}")));
    }
    Ok(RawManifest::from_bytes(bytes.to_vec(), None)
        .map(Some)
        .map_err(|e| format!("does not parse as a manifest: {e}")))
}

/// A repository's links, tags and manifests, checked.
struct RepoLinks<'a> {
    store: &'a dyn Storage,
    layout: &'a DistributionPaths,
    repo: &'a str,
    audit: &'a Audit,
    stored: &'a HashSet<&'a Digest>,
}

/// The two kinds of link a store lists per repository.
#[derive(Clone, Copy)]
enum LinkKind {
    Layer,
    Revision,
}

impl RepoLinks<'_> {
    async fn check(&self, report: &mut FsckReport) -> Result<()> {
        let layers: HashSet<Digest> = self
            .stored_links(LinkKind::Layer, report)
            .await?
            .into_iter()
            .collect();
        let revisions = self.stored_links(LinkKind::Revision, report).await?;
        let revision_set: HashSet<&Digest> = revisions.iter().collect();
        for digest in &revisions {
            report.manifests += 1;
            self.check_manifest(digest, &layers, &revision_set, report)
                .await?;
        }
        self.check_tags(&revision_set, report).await
    }

    /// Lists the links of one kind, counts them, reports unreadable ones and ones naming a blob that is not
    /// stored, and returns the others.
    async fn stored_links(&self, kind: LinkKind, report: &mut FsckReport) -> Result<Vec<Digest>> {
        let (store, repo) = (self.store, self.repo);
        let listed = match kind {
            LinkKind::Layer => store.list_layers(repo).await,
            LinkKind::Revision => store.list_revisions(repo).await,
        };
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                report.refused(e, ProblemKind::UnexpectedEntry)?;
                return Ok(Vec::new());
            }
        };
        let mut kept = Vec::new();
        for digest in listed {
            report.links += 1;
            let path = match kind {
                LinkKind::Layer => self.layout.layer_link(repo, &digest),
                LinkKind::Revision => self.layout.revision_link(repo, &digest),
            };
            if self.audit.bad_links.contains(&path) {
                continue;
            }
            let linked = match kind {
                LinkKind::Layer => store.has_layer(repo, &digest).await,
                LinkKind::Revision => store.has_revision(repo, &digest).await,
            };
            match linked {
                Ok(true) => {}
                // Removed since it was listed.
                Ok(false) => continue,
                Err(e) => {
                    report.refused_at(path, e, ProblemKind::BadLink)?;
                    continue;
                }
            }
            if self.stored.contains(&digest) {
                kept.push(digest);
                continue;
            }
            let message = match kind {
                LinkKind::Layer => format!("layer link names blob `{digest}`, which is not stored"),
                LinkKind::Revision => {
                    format!("revision link names manifest `{digest}`, whose blob is not stored")
                }
            };
            report.problem(path, ProblemKind::DanglingLink, message);
        }
        Ok(kept)
    }

    /// Parses one revision and checks what it references.
    async fn check_manifest(
        &self,
        digest: &Digest,
        layers: &HashSet<Digest>,
        revision_set: &HashSet<&Digest>,
        report: &mut FsckReport,
    ) -> Result<()> {
        let repo = self.repo;
        let manifest = match load_manifest(self.store, digest).await? {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(reason) => {
                report.problem(
                    self.layout.blob_data(digest),
                    ProblemKind::BadManifest,
                    format!("manifest `{digest}` of `{repo}` {reason}"),
                );
                return Ok(());
            }
        };
        let link = self.layout.revision_link(repo, digest);
        let children = manifest.referenced_blobs();
        let is_index = matches!(manifest.parsed, ParsedManifest::Index(_));
        let partial_index = is_index && children.iter().any(|c| revision_set.contains(&c.digest));
        if partial_index && children.iter().any(|c| !revision_set.contains(&c.digest)) {
            report.partial_indexes += 1;
        }
        for child in children {
            let d = &child.digest;
            let problem = if is_index {
                (!partial_index && !revision_set.contains(d)).then(|| {
                    format!("child manifest `{d}` is not a revision of `{repo}` (nor is any other child)")
                })
            } else if !self.stored.contains(d) {
                (!media_type::is_non_distributable(&child.media_type))
                    .then(|| format!("references blob `{d}`, which is not stored"))
            } else if !layers.contains(d) {
                Some(format!(
                    "references blob `{d}`, which is not linked into `{repo}` (no _layers link)"
                ))
            } else {
                match self.store.blob_size(d).await {
                    Ok(Some(size)) if size != child.size => Some(format!(
                        "references blob `{d}` as {} bytes, but it holds {size}",
                        child.size
                    )),
                    Ok(_) => None,
                    Err(e) => {
                        report.refused(e, ProblemKind::UnexpectedEntry)?;
                        None
                    }
                }
            };
            if let Some(message) = problem {
                report.problem(
                    &link,
                    ProblemKind::BadReference,
                    format!("manifest `{digest}` {message}"),
                );
            }
        }
        Ok(())
    }

    /// Every tag must point at a revision of the repository.
    async fn check_tags(
        &self,
        revision_set: &HashSet<&Digest>,
        report: &mut FsckReport,
    ) -> Result<()> {
        let (store, repo) = (self.store, self.repo);
        let tags = match store.list_tags(repo).await {
            Ok(tags) => tags,
            Err(StorageError::NameUnknown(_)) => Vec::new(),
            Err(e) => {
                report.refused(e, ProblemKind::UnexpectedEntry)?;
                Vec::new()
            }
        };
        for tag in tags {
            let current = self.layout.tag_current_link(repo, &tag);
            report.links += 1;
            if self.audit.bad_links.contains(&current) {
                continue;
            }
            match store.resolve_tag(repo, &tag).await {
                Ok(Some(d)) if !revision_set.contains(&d) => report.problem(
                    current,
                    ProblemKind::DanglingLink,
                    format!(
                        "tag `{tag}` points at `{d}`, which is not a stored revision of `{repo}`"
                    ),
                ),
                Ok(_) => {}
                Err(e) => report.refused_at(current, e, ProblemKind::BadLink)?,
            }
        }
        Ok(())
    }
}
