//! `load`: imports the images of an OCI archive, an OCI layout directory or a docker archive into the store.
//!
//! Every blob is streamed from the archive into [`OciLayout::write_blob`](formats::oci_layout::OciLayout)
//! and verified against its digest and size before it becomes visible; manifests and indexes are stored
//! byte-exact; tags are set only once everything an image references is stored.
//!
//! Docker archives are converted to OCI images: the config is stored byte-exact (its digest is the image
//! ID docker showed), each layer is stored as the archive gives it (normally an uncompressed tar, media type
//! `application/vnd.oci.image.layer.v1.tar`, whose digest is then its diff_id) after checking it against the
//! config's diff_id, and a canonical OCI manifest is written. Names: a docker archive's `RepoTags`; an OCI
//! entry's `io.containerd.image.name`, or its ref name when that is a whole reference (`name:tag`). An image
//! without such a name is tagged `localhost/<archive file stem>:<ref name or latest>` (by manifest digest
//! when several unnamed images would collide).

use std::io::{self, Read, Write};
use std::path::Path;

use formats::digest::{Algorithm, Digest, DigestWriter};
use formats::fsutil::StagedFile;
use formats::layer::{Compression, decompressing_reader};
use formats::manifest::{Descriptor, ImageManifest, RawManifest};
use formats::media_type;
use formats::oci_layout::ANNOTATION_REF_NAME;
use formats::reference::Reference;
use serde::Serialize;

use super::archive::ArchiveSource;
use super::transport::{
    self, checked_member, oci_entry_name, read_docker_config, read_docker_manifest, read_oci_index,
    read_prefix,
};
use super::{Store, StoreError, io_err};

/// One image `load` stored and tagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadedImage {
    /// The full name it is tagged as.
    pub name: String,
    /// Its manifest (or index) digest.
    pub digest: Digest,
}

/// Detects the format of `path` and loads every image in it.
pub(crate) fn load(store: &Store, path: &Path) -> Result<Vec<LoadedImage>, StoreError> {
    let src = ArchiveSource::open(path, store.root(), store.expansion_limit())?;
    let _guard = store.write_guard()?;
    if src.contains("oci-layout") && src.contains("index.json") {
        load_oci(store, &src)
    } else if src.contains("manifest.json") && is_dir_transport(&src) {
        Err(StoreError::BadArchive {
            path: path.to_path_buf(),
            reason: format!(
                "this is a containers/image `dir:` directory (what `podman save --format docker-dir` or \
                 `skopeo copy ... dir:` write), which sealos does not read; {READ_FORMATS}. Convert it \
                 with `skopeo copy dir:{} oci-archive:image.tar`",
                path.display()
            ),
        })
    } else if src.contains("manifest.json") {
        load_docker(store, &src)
    } else {
        Err(StoreError::BadArchive {
            path: path.to_path_buf(),
            reason: format!(
                "neither an OCI layout (`oci-layout`, `index.json`) nor a docker archive \
                 (`manifest.json`); {READ_FORMATS}"
            ),
        })
    }
}

/// The formats `load` reads, for messages about the ones it does not.
const READ_FORMATS: &str = "sealos load reads OCI archives and OCI layout directories (`sealos save`, \
                            `podman save --format oci-archive|oci-dir`) and docker archives (`docker save`, \
                            `podman save --format docker-archive`), plain or gzip/zstd-compressed";

/// True when `src` is a containers/image directory-transport copy: its `version` member says so.
fn is_dir_transport(src: &ArchiveSource) -> bool {
    if !src.contains("version") {
        return false;
    }
    let Ok((mut reader, size)) = src.open_member("version") else {
        return false;
    };
    let mut text = String::new();
    if size > 4096 || reader.read_to_string(&mut text).is_err() {
        return false;
    }
    text.starts_with("Directory Transport Version")
}

/// A tag-safe lower-case stem of the archive's file name, for images that carry no name.
fn fallback_repository(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let cleaned: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-').to_string();
    let repo = if cleaned.is_empty() {
        "image".to_string()
    } else {
        cleaned
    };
    format!("localhost/{repo}")
}

fn fallback_name(path: &Path, tag: Option<&str>, digest: &Digest, unnamed: usize) -> String {
    let repo = fallback_repository(path);
    let tag = match tag.filter(|t| formats::reference::is_valid_tag(t)) {
        Some(t) if unnamed <= 1 => t.to_string(),
        None if unnamed <= 1 => "latest".to_string(),
        _ => digest.hex()[..12].to_string(),
    };
    Reference::parse(&format!("{repo}:{tag}"))
        .map_or_else(|_| format!("localhost/image:{tag}"), |r| r.to_string())
}

fn load_oci(store: &Store, src: &ArchiveSource) -> Result<Vec<LoadedImage>, StoreError> {
    let index = read_oci_index(src)?;
    let unnamed = index
        .manifests
        .iter()
        .filter(|d| oci_entry_name(d).is_none())
        .count();
    let mut planned = Vec::new();
    for entry in &index.manifests {
        copy_tree(store, src, entry, 0)?;
        let name = oci_entry_name(entry).unwrap_or_else(|| {
            fallback_name(
                src.path(),
                entry
                    .annotations
                    .get(ANNOTATION_REF_NAME)
                    .map(String::as_str),
                &entry.digest,
                unnamed,
            )
        });
        let mut desc = entry.clone();
        desc.annotations = transport::other_annotations(entry);
        planned.push((name, desc));
    }
    let mut loaded = Vec::new();
    for (name, desc) in planned {
        store.layout.set_tag(&name, desc.clone())?;
        loaded.push(LoadedImage {
            name,
            digest: desc.digest,
        });
    }
    Ok(loaded)
}

/// Copies a descriptor and everything it references from the archive, children first.
fn copy_tree(
    store: &Store,
    src: &ArchiveSource,
    desc: &Descriptor,
    depth: usize,
) -> Result<(), StoreError> {
    let layout = &store.layout;
    if media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type) {
        if depth > 4 {
            return Err(StoreError::BadArchive {
                path: src.path().to_path_buf(),
                reason: format!("manifest {} is nested more than 4 levels deep", desc.digest),
            });
        }
        let raw = transport::read_manifest(src, desc)?;
        for child in raw.referenced_blobs() {
            copy_tree(store, src, child, depth + 1)?;
        }
        layout.write_manifest(&raw)?;
        return Ok(());
    }
    if layout.has_blob(&desc.digest) {
        return Ok(());
    }
    let name = ArchiveSource::blob_name(&desc.digest);
    if media_type::is_non_distributable(&desc.media_type) && !src.contains(&name) {
        return Ok(());
    }
    let reader = src.open_blob(desc)?;
    layout.write_blob(reader, Some(&desc.digest), Some(desc.size))?;
    Ok(())
}

fn load_docker(store: &Store, src: &ArchiveSource) -> Result<Vec<LoadedImage>, StoreError> {
    let entries = read_docker_manifest(src)?;
    let unnamed = entries.iter().filter(|e| e.repo_tags.is_empty()).count();
    let mut planned = Vec::new();
    for entry in &entries {
        let (config_bytes, config) = read_docker_config(src, entry)?;
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            layers.push(store_docker_layer(
                store,
                src,
                checked_member(src, name)?,
                diff_id,
            )?);
        }
        let (config_digest, config_size) = store.layout.write_blob_bytes(&config_bytes)?;
        let manifest = ImageManifest::new(
            Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
            layers,
        );
        let raw =
            RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).map_err(|source| {
                StoreError::Manifest {
                    what: "converted manifest".into(),
                    source,
                }
            })?;
        let desc = store.layout.write_manifest(&raw)?;
        let mut names = Vec::new();
        for tag in &entry.repo_tags {
            let r = Reference::parse(tag).map_err(|source| StoreError::InvalidName {
                name: tag.clone(),
                source,
            })?;
            names.push(r.to_string());
        }
        if names.is_empty() {
            names.push(fallback_name(src.path(), None, &desc.digest, unnamed));
        }
        for name in names {
            planned.push((name, desc.clone()));
        }
    }
    let mut loaded = Vec::new();
    for (name, desc) in planned {
        store.layout.set_tag(&name, desc.clone())?;
        loaded.push(LoadedImage {
            name,
            digest: desc.digest,
        });
    }
    Ok(loaded)
}

/// Copies a bytes stream into a writer as it is read.
struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Stores one docker-archive layer as given, verified against its diff_id, and returns its descriptor.
///
/// An uncompressed layer's digest is its diff_id, so it is verified by the store while streaming. A
/// compressed one is staged and decompressed in the same pass, within the store's
/// [`ExpansionLimit`](formats::layer::ExpansionLimit) (a decompression bomb stops at the bound, not at its
/// end), and becomes visible only when the decompressed stream hashes to the diff_id. Data after the
/// compressed stream is refused.
fn store_docker_layer(
    store: &Store,
    src: &ArchiveSource,
    name: &str,
    diff_id: &Digest,
) -> Result<Descriptor, StoreError> {
    let (mut reader, size) = src.open_member(name)?;
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut reader, &mut magic).map_err(io_err("read", src.path()))?;
    let compression = Compression::detect(&magic[..n]);
    let media_type = format!(
        "{}{}",
        media_type::OCI_LAYER_TAR,
        compression.media_type_suffix()
    );
    let reader = io::Cursor::new(magic[..n].to_vec()).chain(reader);
    if compression == Compression::None {
        store
            .layout
            .write_blob(reader, Some(diff_id), Some(size))
            .map_err(|e| layer_err(src, name, e.into()))?;
        return Ok(Descriptor::new(media_type, diff_id.clone(), size));
    }
    let blobs_dir = store.root().join("blobs").join(Algorithm::Sha256.as_str());
    let mut staged = StagedFile::new_in(&blobs_dir, Algorithm::Sha256)?;
    let actual = {
        let tee = Tee {
            reader,
            writer: &mut staged,
        };
        let mut hashing = DigestWriter::new(io::sink(), diff_id.algorithm());
        let mut decoded = decompressing_reader(tee, size, store.expansion_limit())
            .map_err(io_err("read", src.path()))?;
        io::copy(&mut decoded, &mut hashing).map_err(|source| StoreError::ArchiveIo {
            path: src.path().to_path_buf(),
            what: format!("layer `{name}` (diff_id {diff_id})"),
            source,
        })?;
        hashing.finish().1
    };
    if &actual != diff_id {
        return Err(StoreError::BadArchive {
            path: src.path().to_path_buf(),
            reason: format!(
                "layer `{name}` decompresses to {actual}, but the config says its diff_id is {diff_id}"
            ),
        });
    }
    let (digest, len) = staged.commit_by_digest(|d| store.layout.blob_path(d))?;
    Ok(Descriptor::new(media_type, digest, len))
}

fn layer_err(src: &ArchiveSource, name: &str, e: StoreError) -> StoreError {
    match e {
        StoreError::Layout(formats::oci_layout::LayoutError::Stage(
            formats::fsutil::StageError::Digest(d),
        )) => StoreError::BadArchive {
            path: src.path().to_path_buf(),
            reason: format!("layer `{name}` does not match the diff_id its config gives: {d}"),
        },
        other => other,
    }
}
