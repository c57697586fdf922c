//! `registry import`: bring a delivery (a Distribution-layout directory with `delivery.json`) into a site's
//! registry or directory, verified and resumable.
//!
//! 1. [`preflight`] walks every image of the delivery — manifests from the delivery (verified against their
//!    digests), child manifests, configs and layers — and checks, **before anything is written**, that each
//!    piece the delivery does not carry (what it relies on) is at the destination: `HEAD` on registries, the
//!    store's blob size on directories and buckets. A relied blob held by another repository of a registry is mounted from there.
//!    Anything missing refuses the import with the full list ([`ImportError::Missing`]).
//! 2. [`import`] then copies the delivery through the mirror engine ([`crate::mirror::Mirror`], the code path
//!    of `registry sync DIR DEST`): blobs first, each verified against its digest, manifests byte-exact, the
//!    tag last. Blobs already at the destination are never read again, so running the import a second time
//!    after an interruption completes only what is missing. Images whose manifest the delivery relies on are
//!    tagged from the manifest the destination already holds.
//! 3. Every tag is finally read back from the destination and must point at the delivered digest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use formats::digest::Digest;
use formats::manifest::{Descriptor, ParsedManifest};
use formats::media_type;

use super::format::{DeliveredImage, Delivery, FormatError};
use crate::mirror::{
    BlobOrigin, ImageJob, ImageReport, Location, Mirror, MirrorError, MirrorOptions, Outcome,
    PlatformFilter, Store,
};

/// Whether a missing piece is a blob (config, layer) or a manifest (image manifest or index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PieceKind {
    /// A config or layer.
    Blob,
    /// An image manifest or index.
    Manifest,
}

/// A piece the delivery relies on that the destination lacks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingPiece {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes (from the delivery manifest or the descriptor that names it).
    pub size: u64,
    /// Blob or manifest.
    pub kind: PieceKind,
    /// The images (`repository:tag`) that need it; empty for a `relied` entry no image reaches.
    pub images: Vec<String>,
    /// `delivery.json` lists it as included, yet the delivery directory lacks it (an incomplete copy).
    pub listed_as_included: bool,
}

/// What can stop an import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// `delivery.json` is unreadable or of the wrong kind or version.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Reading the delivery or talking to the destination failed.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// The destination lacks pieces the delivery relies on; nothing was written.
    #[error("{}", missing_message(.0))]
    Missing(Vec<MissingPiece>),
    /// Some images could not be imported (the rest were); running the import again resumes.
    #[error(
        "{} of {total} images failed (run the same import again to resume):\n  {}",
        .failed.len(),
        .failed.join("\n  ")
    )]
    Failed {
        /// `image: cause` per failed image.
        failed: Vec<String>,
        /// How many images the delivery has.
        total: usize,
    },
    /// After the import a tag does not point at the delivered digest.
    #[error("after the import, {image} points at {found} instead of the delivered {expected}")]
    Verification {
        /// `repository:tag` at the destination.
        image: String,
        /// What the delivery says.
        expected: Digest,
        /// What the destination answers (`nothing` when the tag is absent).
        found: String,
    },
}

fn missing_message(missing: &[MissingPiece]) -> String {
    let bytes: u64 = missing.iter().map(|m| m.size).sum();
    let mut text = format!(
        "the destination lacks {} piece(s) ({bytes} bytes) this delivery relies on; nothing was written.\n\
         Import the delivery these came with first (or deliver them whole: `registry save` without --inventory):",
        missing.len()
    );
    for m in missing {
        let kind = match m.kind {
            PieceKind::Blob => "blob",
            PieceKind::Manifest => "manifest",
        };
        let who = if m.images.is_empty() {
            "listed as relied on".to_string()
        } else {
            format!("needed by {}", m.images.join(", "))
        };
        let note = if m.listed_as_included {
            " (listed as included, but absent from the delivery: copy the delivery again)"
        } else {
            ""
        };
        text.push_str(&format!(
            "\n  {} ({kind}, {} bytes) {who}{note}",
            m.digest, m.size
        ));
    }
    text
}

/// A relied blob that the destination holds in another repository; mounted before the copy.
#[derive(Debug, Clone)]
struct Mount {
    repository: String,
    descriptor: Descriptor,
    from: String,
}

/// What the destination already holds and what the import will add, found before anything is written.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// Distinct blobs the delivery carries that the destination lacks (they will be added).
    pub blobs_to_add: BTreeMap<Digest, u64>,
    /// Distinct blobs the delivery carries that the destination already has (a resumed import).
    pub blobs_present: BTreeMap<Digest, u64>,
    /// Distinct pieces the delivery relies on, all present at the destination.
    pub relied_present: BTreeMap<Digest, u64>,
    /// Images whose manifest is not in the delivery but at the destination: only their tag is written.
    tag_only: Vec<DeliveredImage>,
    /// Relied blobs to mount from another repository of the destination registry.
    mounts: Vec<Mount>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The checks done before writing (what was added: [`Preflight::blobs_to_add`]).
    pub preflight: Preflight,
    /// One report per image of the delivery, in its order.
    pub images: Vec<ImageReport>,
}

impl ImportReport {
    /// Blobs added to the destination and their bytes.
    pub fn added(&self) -> (usize, u64) {
        (
            self.preflight.blobs_to_add.len(),
            self.preflight.blobs_to_add.values().sum(),
        )
    }
}

/// The walk of one delivery against one destination.
struct Walk<'a> {
    delivery: &'a Delivery,
    source: &'a Location,
    dest: &'a Location,
    /// Repositories of the delivery's images, where a relied blob may be found at a registry.
    repositories: Vec<String>,
    /// The destination registry's repositories, once listed.
    site_repositories: Option<Vec<String>>,
    /// `(repository, digest)` already checked at the destination -> present.
    checked: HashMap<(String, Digest), bool>,
    missing: BTreeMap<Digest, MissingPiece>,
    seen: BTreeSet<Digest>,
    out: Preflight,
}

impl Walk<'_> {
    fn record_missing(&mut self, digest: &Digest, size: u64, kind: PieceKind, image: &str) {
        let entry = self
            .missing
            .entry(digest.clone())
            .or_insert_with(|| MissingPiece {
                digest: digest.clone(),
                size,
                kind,
                images: Vec::new(),
                listed_as_included: self.delivery.included.contains_key(digest),
            });
        if !image.is_empty() && !entry.images.iter().any(|i| i == image) {
            entry.images.push(image.to_string());
        }
    }

    fn relied_size(&self, digest: &Digest, fallback: u64) -> u64 {
        self.delivery
            .relied
            .get(digest)
            .copied()
            .unwrap_or(fallback)
    }

    /// Whether the destination holds blob `digest` in `repo` (memoized).
    async fn dest_has_blob(&mut self, repo: &str, digest: &Digest) -> Result<bool, MirrorError> {
        let key = (repo.to_string(), digest.clone());
        if let Some(&known) = self.checked.get(&key) {
            return Ok(known);
        }
        let present = match self.dest {
            Location::Registry { client, host, .. } => client
                .blob_exists(host, &self.dest.full_repository(repo), digest)
                .await?
                .is_some(),
            Location::Store(s) => s.blob_size(digest).await?.is_some(),
            Location::Oci(layout) => layout.has_blob(digest),
        };
        self.checked.insert(key, present);
        Ok(present)
    }

    /// The repositories of a destination registry (its catalog, without the location's prefix), read once;
    /// empty when the registry does not list them (a catalog needing other rights, say).
    async fn site_repositories(&mut self) -> Vec<String> {
        if let Some(known) = &self.site_repositories {
            return known.clone();
        }
        let listed = match self.dest {
            Location::Registry {
                client,
                host,
                prefix,
            } => match client.catalog(host).await {
                Ok(all) => all
                    .into_iter()
                    .filter_map(|r| {
                        if prefix.is_empty() {
                            Some(r)
                        } else {
                            r.strip_prefix(&format!("{prefix}/")).map(str::to_string)
                        }
                    })
                    .collect(),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot list the destination's repositories");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        self.site_repositories = Some(listed.clone());
        listed
    }

    /// Checks manifest `digest` of `repo` and, when the delivery carries it, everything it references.
    async fn manifest(
        &mut self,
        repo: &str,
        digest: &Digest,
        size: u64,
        image: &str,
    ) -> Result<bool, MirrorError> {
        let in_delivery = match self.source {
            Location::Store(s) => s.has_manifest(repo, digest).await?,
            _ => false,
        };
        if !in_delivery {
            let present = self.dest.has_manifest(repo, digest).await?;
            if present {
                self.out
                    .relied_present
                    .insert(digest.clone(), self.relied_size(digest, size));
            } else {
                let size = self.relied_size(digest, size);
                self.record_missing(digest, size, PieceKind::Manifest, image);
            }
            self.seen.insert(digest.clone());
            return Ok(present);
        }
        self.seen.insert(digest.clone());
        // Verified against its digest on read.
        let raw = self.source.get_manifest(repo, &digest.to_string()).await?;
        match &raw.parsed {
            ParsedManifest::Index(index) => {
                for child in &index.manifests {
                    Box::pin(self.manifest(repo, &child.digest, child.size, image)).await?;
                }
            }
            ParsedManifest::Image(_) => {
                // The same blobs the copier copies (foreign layers with URLs are not distributed).
                for d in raw.referenced_blobs().into_iter().filter(|d| {
                    !media_type::is_non_distributable(&d.media_type) || d.urls.is_empty()
                }) {
                    self.blob(repo, d, image).await?;
                }
            }
        }
        Ok(true)
    }

    async fn blob(&mut self, repo: &str, d: &Descriptor, image: &str) -> Result<(), MirrorError> {
        self.seen.insert(d.digest.clone());
        let carried = match self.source {
            Location::Store(s) => s.blob_size(&d.digest).await?.is_some(),
            _ => false,
        };
        if carried {
            if self.out.blobs_to_add.contains_key(&d.digest)
                || self.out.blobs_present.contains_key(&d.digest)
            {
                return Ok(());
            }
            let present = match self.dest {
                // Present in any repository counts as there: the copier mounts or links it.
                Location::Store(s) => s.blob_size(&d.digest).await?.is_some(),
                _ => self.dest_has_blob(repo, &d.digest).await?,
            };
            let map = if present {
                &mut self.out.blobs_present
            } else {
                &mut self.out.blobs_to_add
            };
            map.insert(d.digest.clone(), d.size);
            return Ok(());
        }
        let size = self.relied_size(&d.digest, d.size);
        if self.dest_has_blob(repo, &d.digest).await? {
            self.out.relied_present.insert(d.digest.clone(), size);
            return Ok(());
        }
        if matches!(self.dest, Location::Registry { .. }) {
            // The delivery's own repositories first, then every other repository of the site.
            let mut others: Vec<String> = self
                .repositories
                .iter()
                .filter(|r| *r != repo)
                .cloned()
                .collect();
            for r in self.site_repositories().await {
                if r != repo && !others.contains(&r) {
                    others.push(r);
                }
            }
            for other in others {
                if self.dest_has_blob(&other, &d.digest).await? {
                    // Mounted once, however many images of `repo` need it.
                    self.checked
                        .insert((repo.to_string(), d.digest.clone()), true);
                    self.out.relied_present.insert(d.digest.clone(), size);
                    self.out.mounts.push(Mount {
                        repository: repo.to_string(),
                        descriptor: d.clone(),
                        from: other,
                    });
                    return Ok(());
                }
            }
        }
        self.record_missing(&d.digest, size, PieceKind::Blob, image);
        Ok(())
    }
}

/// Opens a delivery directory: its `delivery.json` and its Distribution layout as a mirror source (a
/// directory store). A directory without `delivery.json` (a whole `registry save`) is a delivery of every tag
/// it holds that relies on nothing.
pub async fn open(dir: &Path) -> Result<(Delivery, Location), ImportError> {
    let store = Store::dir(dir);
    let delivery = if dir.join(super::format::DELIVERY_FILE).exists() {
        Delivery::load(dir)?
    } else {
        whole_delivery(&store).await?
    };
    Ok((delivery, Location::Store(Arc::new(store))))
}

/// The delivery of every tag of a directory `registry save` wrote whole.
async fn whole_delivery(store: &Store) -> Result<Delivery, ImportError> {
    if !store.has_repositories().await? {
        return Err(MirrorError::NotFound(format!(
            "a delivery in {}: it has neither {} nor docker/registry/v2/repositories",
            store.place(),
            super::format::DELIVERY_FILE
        ))
        .into());
    }
    let mut delivery = Delivery::new(String::new());
    for (repository, tag) in store.images().await? {
        if let Some(digest) = store.tag(&repository, &tag).await? {
            delivery.images.push(DeliveredImage {
                repository,
                tag,
                digest,
            });
        }
    }
    Ok(delivery)
}

/// Checks, without writing anything, that the destination holds every piece the delivery relies on;
/// [`ImportError::Missing`] lists every one it lacks.
pub async fn preflight(
    delivery: &Delivery,
    source: &Location,
    dest: &Location,
) -> Result<Preflight, ImportError> {
    let mut repositories: Vec<String> = delivery
        .images
        .iter()
        .map(|i| i.repository.clone())
        .collect();
    repositories.sort();
    repositories.dedup();
    let mut walk = Walk {
        delivery,
        source,
        dest,
        repositories,
        site_repositories: None,
        checked: HashMap::new(),
        missing: BTreeMap::new(),
        seen: BTreeSet::new(),
        out: Preflight::default(),
    };
    for image in &delivery.images {
        let name = format!("{}:{}", image.repository, image.tag);
        let carried = match source {
            Location::Store(s) => s.has_manifest(&image.repository, &image.digest).await?,
            _ => false,
        };
        let size = delivery
            .relied
            .get(&image.digest)
            .or(delivery.included.get(&image.digest))
            .copied()
            .unwrap_or(0);
        let present = walk
            .manifest(&image.repository, &image.digest, size, &name)
            .await?;
        if !carried && present {
            walk.out.tag_only.push(image.clone());
        }
    }
    // Relied pieces no image reaches (referrers, say) must be there too: as a blob or manifest of any
    // repository the delivery touches.
    let unreached: Vec<(Digest, u64)> = delivery
        .relied
        .iter()
        .filter(|(d, _)| !walk.seen.contains(*d))
        .map(|(d, s)| (d.clone(), *s))
        .collect();
    for (digest, size) in unreached {
        let mut found = false;
        for repo in walk.repositories.clone() {
            if walk.dest_has_blob(&repo, &digest).await?
                || dest.has_manifest(&repo, &digest).await?
            {
                found = true;
                break;
            }
        }
        if found {
            walk.out.relied_present.insert(digest, size);
        } else {
            walk.record_missing(&digest, size, PieceKind::Blob, "");
        }
    }
    if !walk.missing.is_empty() {
        return Err(ImportError::Missing(walk.missing.into_values().collect()));
    }
    Ok(walk.out)
}

/// Imports the delivery in directory `dir` into `dest`: [`preflight`] first (nothing is written when it
/// fails), then the copy of every image (blobs verified, tags last) and a final check of every tag.
/// `options` are the mirror's (`max_images`, `on_image`); the platform filter is forced to "all": a delivery
/// is copied exactly as it was saved.
pub async fn import(
    dir: &Path,
    dest: Location,
    options: MirrorOptions,
) -> Result<ImportReport, ImportError> {
    let (delivery, source) = open(dir).await?;
    let preflight = preflight(&delivery, &source, &dest).await?;
    // Relied blobs held by another repository of the destination registry.
    if let Location::Registry { client, host, .. } = &dest {
        for m in &preflight.mounts {
            let origin = BlobOrigin::Remote {
                client: client.clone(),
                host: host.clone(),
                repository: dest.full_repository(&m.from),
            };
            dest.put_blob(&m.repository, &m.descriptor, &origin, Some(&m.from))
                .await?;
        }
    }
    let source = Arc::new(source);
    let tag_only: BTreeSet<(String, String)> = preflight
        .tag_only
        .iter()
        .map(|i| (i.repository.clone(), i.tag.clone()))
        .collect();
    let jobs: Vec<ImageJob> = delivery
        .images
        .iter()
        .filter(|i| !tag_only.contains(&(i.repository.clone(), i.tag.clone())))
        .map(|i| ImageJob {
            source: source.clone(),
            source_repository: i.repository.clone(),
            source_reference: i.digest.to_string(),
            dest_repository: i.repository.clone(),
            dest_tag: Some(i.tag.clone()),
        })
        .collect();
    let mirror = Mirror::new(
        dest,
        MirrorOptions {
            platforms: PlatformFilter::All,
            dry_run: false,
            skip_identical: true,
            ..options.clone()
        },
    );
    let mut copied = mirror.run(jobs).await.into_iter();
    let dest = mirror.dest();
    let mut reports = Vec::with_capacity(delivery.images.len());
    for image in &delivery.images {
        if !tag_only.contains(&(image.repository.clone(), image.tag.clone())) {
            if let Some(r) = copied.next() {
                reports.push(r);
            }
            continue;
        }
        let report = ImageReport {
            source: format!(
                "{}:{} (manifest already at the destination)",
                image.repository, image.tag
            ),
            destination: dest.image_name(&image.repository, &image.tag),
            outcome: match tag_from_dest(dest, image).await {
                Ok(o) => o,
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        if let Some(cb) = &options.on_image {
            cb(&report);
        }
        reports.push(report);
    }
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(cause) => Some(format!("{}: {cause}", r.destination)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err(ImportError::Failed {
            failed,
            total: reports.len(),
        });
    }
    for image in &delivery.images {
        let found = dest.tag_digest(&image.repository, &image.tag).await?;
        if found.as_ref() != Some(&image.digest) {
            return Err(ImportError::Verification {
                image: dest.image_name(&image.repository, &image.tag),
                expected: image.digest.clone(),
                found: found.map_or_else(|| "nothing".to_string(), |d| d.to_string()),
            });
        }
    }
    Ok(ImportReport {
        preflight,
        images: reports,
    })
}

/// Points `image`'s tag at its manifest, which the destination already holds (read back from there and
/// verified against the digest).
async fn tag_from_dest(dest: &Location, image: &DeliveredImage) -> Result<Outcome, MirrorError> {
    if dest
        .tag_digest(&image.repository, &image.tag)
        .await?
        .as_ref()
        == Some(&image.digest)
    {
        return Ok(Outcome::Skipped {
            digest: image.digest.clone(),
        });
    }
    let raw = dest
        .get_manifest(&image.repository, &image.digest.to_string())
        .await?;
    raw.digest
        .expect(&image.digest)
        .map_err(|e| MirrorError::Internal(format!("manifest {}: {e}", image.digest)))?;
    dest.put_manifest(&image.repository, &raw, Some(&image.tag))
        .await?;
    Ok(Outcome::Copied {
        digest: image.digest.clone(),
        bytes: 0,
        referrers: 0,
    })
}
