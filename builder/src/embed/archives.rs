//! Images from the archives `images/skopeo/tar.txt` lists: each archive's content is loaded into the local
//! store with the store's own loader ([`crate::store::Store::load`]) but, like a pulled image being
//! embedded, it gets no name there (`sealos images` does not list it; the loader's tags are taken back).
//! Its name in the embedded registry follows the pulled images' rule, the reference without its registry
//! host ([`Reference::repository`], via `registry::mirror::tars`): the `NAME[:TAG]` after `@`
//! (`example.com/team/app:v1` is served as `team/app:v1`, the path a node's mirror request asks for),
//! else the name stored in the archive; the tag is `latest` when absent. No registry is asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use formats::digest::Digest;
use formats::layer::ExpansionLimit;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;

use super::EmbedError;
use crate::discover::{ArchiveEntry, ArchiveTransport};
use crate::store::{ImageSource, Store, StoreError, inspect_transport};

/// An image taken from an archive of `tar.txt`, loaded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveImage {
    /// The repository it is embedded as, without a registry host (`library/nginx`, `team/app`).
    pub repository: String,
    /// The tag it is embedded as (`latest` by default).
    pub tag: String,
    /// The manifest (or index) digest of the archive's image.
    pub digest: Digest,
    /// Where it was found: the `tar.txt` line and the archive (`docker-archive:images/skopeo/app.tar`).
    pub sources: Vec<String>,
}

impl ArchiveImage {
    /// `repository:tag`, the name it has in the embedded registry and in the lock.
    pub fn name(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// [`EmbedError::ArchiveFailed`] for `entry`: `doing` (a prefix, or empty) failed with `source`.
fn archive_failed(
    entry: &ArchiveEntry,
    doing: &str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> EmbedError {
    EmbedError::ArchiveFailed {
        archive: format!("{}:{}", entry.transport, entry.file),
        source_line: entry.source.to_string(),
        doing: doing.to_string(),
        source: source.into(),
    }
}

fn archive_error(entry: &ArchiveEntry, reason: String) -> EmbedError {
    EmbedError::Archive {
        archive: format!("{}:{}", entry.transport, entry.file),
        source_line: entry.source.to_string(),
        reason,
    }
}

/// Loads the archive at `path` into `store` and takes back the tags the loader set: an embedded image is
/// content of the cluster image, not an image of the store (a tag the store had before is restored).
fn load_unnamed(store: &OciLayout, path: &Path, limit: ExpansionLimit) -> Result<(), StoreError> {
    let before: BTreeMap<String, formats::manifest::Descriptor> =
        store.tags()?.into_iter().collect();
    let loaded =
        Store::open(store.root()).and_then(|s| s.with_expansion_limit(limit).load(path))?;
    for image in loaded {
        match before.get(&image.name) {
            Some(previous) => store.set_tag(&image.name, previous.clone())?,
            None => {
                store.remove_tag(&image.name)?;
            }
        }
    }
    Ok(())
}

/// Loads the image of every archive entry into `store` (each archive file read once, a compressed one
/// decompressed within `limit`) and names it; the same name given to two different images is refused.
pub fn load_archives(
    store: &OciLayout,
    context: &Path,
    entries: &[ArchiveEntry],
    limit: ExpansionLimit,
) -> Result<Vec<ArchiveImage>, EmbedError> {
    let mut loaded: Vec<PathBuf> = Vec::new();
    let mut by_name: BTreeMap<String, ArchiveImage> = BTreeMap::new();
    let mut order = Vec::new();
    for entry in entries {
        let path = context.join(&entry.file);
        let source = match entry.transport {
            ArchiveTransport::DockerArchive => ImageSource::DockerArchive {
                path: path.clone(),
                reference: None,
            },
            ArchiveTransport::OciArchive => ImageSource::OciArchive {
                path: path.clone(),
                reference: None,
            },
        };
        let details =
            inspect_transport(&source, limit).map_err(|e| archive_failed(entry, "", e))?;
        if !loaded.contains(&path) {
            load_unnamed(store, &path, limit)
                .map_err(|e| archive_failed(entry, "loading it into the local store: ", e))?;
            loaded.push(path);
        }
        let (repository, tag) = match &entry.written_name {
            Some(name) => {
                let spec = format!("{}:{}@{name}", entry.transport, entry.file);
                let t = registry::mirror::tars::parse_tar_spec(&spec, context)
                    .map_err(|e| archive_failed(entry, "", e))?;
                (
                    t.repository.unwrap_or_default(),
                    t.tag.unwrap_or_else(|| "latest".into()),
                )
            }
            None => {
                let name = details.name.clone().ok_or_else(|| {
                    archive_error(
                        entry,
                        "the archive's image has no name; give one in tar.txt: `FILE@NAME:TAG`"
                            .into(),
                    )
                })?;
                let r = Reference::parse(&name).map_err(|e| {
                    archive_failed(entry, &format!("the archive names its image `{name}`: "), e)
                })?;
                (
                    r.repository().to_string(),
                    r.tag().unwrap_or("latest").to_string(),
                )
            }
        };
        let image = ArchiveImage {
            repository,
            tag,
            digest: details.digest,
            sources: vec![
                entry.source.to_string(),
                format!("{}:{}", entry.transport, entry.file),
            ],
        };
        let name = image.name();
        match by_name.get_mut(&name) {
            Some(prev) if prev.digest != image.digest => {
                return Err(EmbedError::NameClash {
                    name,
                    first: format!("{} ({})", prev.sources.join(", "), prev.digest),
                    second: format!("{} ({})", image.sources.join(", "), image.digest),
                });
            }
            Some(prev) => {
                for s in image.sources {
                    if !prev.sources.contains(&s) {
                        prev.sources.push(s);
                    }
                }
            }
            None => {
                order.push(name.clone());
                by_name.insert(name, image);
            }
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|n| by_name.remove(&n))
        .collect())
}
