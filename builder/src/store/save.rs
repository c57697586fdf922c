//! `save`: exports images from the store as an OCI archive (a tar of an OCI layout), a docker archive (the
//! `docker save` format: `manifest.json`, `<config-hex>.json`, `<diff_id-hex>/layer.tar` uncompressed) or an
//! OCI layout directory.
//!
//! Archives are written to a temporary file beside the destination and renamed into place when complete,
//! so a failed save leaves nothing behind. Blobs stream from the store and are verified while they stream;
//! compressed layers going into a docker archive are decompressed on the fly (one pass to learn the
//! uncompressed size and check the diff_id, one to write, since a tar header needs the size first).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use formats::digest::{Algorithm, Digest, Hasher};
use formats::fsutil::StagedFile;
use formats::layer::{Compression, decompressing_reader};
use formats::manifest::{
    Descriptor, ImageIndex, ParsedManifest, Platform, RawManifest, to_canonical_json,
};
use formats::media_type;
use formats::oci_layout::{ANNOTATION_REF_NAME, IMAGE_LAYOUT_VERSION, OciLayout};
use serde::Serialize;

use super::details::{JsonBlobs, image_blobs, parse_config};
use super::transport::{ANNOTATION_CONTAINERD_NAME, diff_id_of, read_prefix};
use super::{Image, Store, StoreError, io_err};

/// The formats `save` writes and `load` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A tar of an OCI image layout.
    OciArchive,
    /// The `docker save` format.
    DockerArchive,
    /// An OCI image layout directory.
    OciDir,
}

impl ArchiveFormat {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::OciArchive => "oci-archive",
            ArchiveFormat::DockerArchive => "docker-archive",
            ArchiveFormat::OciDir => "oci-dir",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ArchiveFormat {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oci-archive" => Ok(ArchiveFormat::OciArchive),
            "docker-archive" => Ok(ArchiveFormat::DockerArchive),
            "oci-dir" | "oci" => Ok(ArchiveFormat::OciDir),
            other => Err(StoreError::Unsupported(format!(
                "unknown archive format `{other}`: use `oci-archive`, `docker-archive` or `oci-dir`"
            ))),
        }
    }
}

/// What `save` wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaveReport {
    /// The names of the images written.
    pub images: Vec<String>,
    /// How many blobs (or layer and config files) were written.
    pub blobs: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

pub(crate) fn save(
    store: &Store,
    names: &[&str],
    format: ArchiveFormat,
    out: &Path,
) -> Result<SaveReport, StoreError> {
    if names.is_empty() {
        return Err(StoreError::Unsupported(
            "name at least one image to save".into(),
        ));
    }
    let mut images: Vec<Image> = Vec::new();
    for name in names {
        let image = store.resolve(name)?;
        if !images.iter().any(|i| i.name == image.name) {
            images.push(image);
        }
    }
    match format {
        ArchiveFormat::OciArchive => write_oci_archive(&store.layout, &images, out, 0),
        ArchiveFormat::DockerArchive => write_docker_archive(store, &images, out),
        ArchiveFormat::OciDir => write_oci_dir(store, &images, out),
    }
}

/// A reader that yields exactly `size` bytes of `inner` and fails at the end unless they hash to `digest`.
struct Verifying<R> {
    inner: io::Take<R>,
    hasher: Option<Hasher>,
    digest: Digest,
    size: u64,
    seen: u64,
    what: String,
}

impl<R: Read> Verifying<R> {
    fn new(inner: R, digest: &Digest, size: u64, what: String) -> Self {
        Verifying {
            inner: inner.take(size),
            hasher: Some(digest.algorithm().hasher()),
            digest: digest.clone(),
            size,
            seen: 0,
            what,
        }
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            self.seen += n as u64;
            return Ok(n);
        }
        if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if self.seen != self.size {
                return Err(io::Error::other(format!(
                    "{}: {} bytes expected, {} read",
                    self.what, self.size, self.seen
                )));
            }
            if actual != self.digest {
                return Err(io::Error::other(format!(
                    "{} is corrupt: it hashes to {actual}, not {}; run fsck",
                    self.what, self.digest
                )));
            }
        }
        Ok(0)
    }
}

fn header(size: u64, dir: bool, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

struct ArchiveWriter<'a> {
    tar: tar::Builder<StagedFile>,
    out: &'a Path,
    mtime: u64,
    report: SaveReport,
}

impl<'a> ArchiveWriter<'a> {
    /// A writer staging `out`; every entry gets the modification time `mtime` (seconds since the epoch).
    fn new(out: &'a Path, mtime: u64) -> Result<Self, StoreError> {
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        if out.is_dir() {
            return Err(StoreError::Unsupported(format!(
                "`{}` is a directory; give an archive file name (or save with --format oci-dir)",
                out.display()
            )));
        }
        let staged = StagedFile::new_in(&dir, Algorithm::Sha256)?;
        let mut tar = tar::Builder::new(staged);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(ArchiveWriter {
            tar,
            out,
            mtime,
            report: SaveReport::default(),
        })
    }

    fn dir(&mut self, name: &str) -> Result<(), StoreError> {
        let mut h = header(0, true, self.mtime);
        self.tar
            .append_data(&mut h, name, io::empty())
            .map_err(io_err("write", self.out))
    }

    fn file(&mut self, name: &str, size: u64, data: impl Read) -> Result<(), StoreError> {
        let mut h = header(size, false, self.mtime);
        self.tar
            .append_data(&mut h, name, data)
            .map_err(io_err("write", self.out))?;
        self.report.blobs += 1;
        self.report.bytes += size;
        Ok(())
    }

    fn finish(self) -> Result<SaveReport, StoreError> {
        let staged = self.tar.into_inner().map_err(io_err("write", self.out))?;
        staged.commit_by_digest(|_| self.out.to_path_buf())?;
        Ok(self.report)
    }
}

fn open_verified(
    layout: &OciLayout,
    d: &Descriptor,
) -> Result<Verifying<io::BufReader<std::fs::File>>, StoreError> {
    let file = layout.open_blob(&d.digest)?;
    Ok(Verifying::new(
        io::BufReader::with_capacity(256 * 1024, file),
        &d.digest,
        d.size,
        format!("blob {}", d.digest),
    ))
}

/// The index.json entry for an image saved under its name (an empty name: saved unnamed).
fn named_descriptor(image: &Image) -> Descriptor {
    let mut d = image.descriptor.clone();
    if !image.name.is_empty() {
        d.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), image.name.clone());
        d.annotations
            .insert(ANNOTATION_CONTAINERD_NAME.to_string(), image.name.clone());
    }
    d
}

/// Reads manifests and configs from a bare layout (the build's view of the store).
struct LayoutBlobs<'a>(&'a OciLayout);

impl JsonBlobs for LayoutBlobs<'_> {
    fn json_blob(&self, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
        Ok(self.0.read_blob_bytes(&d.digest)?)
    }
}

fn all_blobs(layout: &OciLayout, images: &[Image]) -> Result<Vec<Descriptor>, StoreError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for image in images {
        for d in image_blobs(&LayoutBlobs(layout), &image.descriptor, &image.manifest)? {
            if seen.insert(d.digest.clone()) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// The one OCI archive writer, used by `save --format oci-archive` and `build -o type=oci-archive`: a tar of
/// an OCI layout holding `images` (each named in index.json by `org.opencontainers.image.ref.name` and
/// containerd's name annotation; an [`Image`] with an empty name is saved unnamed) and every blob they reach
/// in `layout`, verified while they stream. The bytes depend only on the images and `mtime` (the time every
/// entry carries): `oci-layout`, `index.json`, then the blobs in the order the images reach them. Written
/// through a staged file renamed to `out` when complete.
pub(crate) fn write_oci_archive(
    layout: &OciLayout,
    images: &[Image],
    out: &Path,
    mtime: u64,
) -> Result<SaveReport, StoreError> {
    let blobs = all_blobs(layout, images)?;
    let index = ImageIndex::new(images.iter().map(named_descriptor).collect());
    let index_bytes = to_canonical_json(&index).map_err(|source| StoreError::Manifest {
        what: "index.json".into(),
        source,
    })?;
    let marker = format!(r#"{{"imageLayoutVersion":"{IMAGE_LAYOUT_VERSION}"}}"#);
    let mut w = ArchiveWriter::new(out, mtime)?;
    w.file("oci-layout", marker.len() as u64, marker.as_bytes())?;
    w.file(
        "index.json",
        index_bytes.len() as u64,
        index_bytes.as_slice(),
    )?;
    w.dir("blobs/")?;
    let mut algs = BTreeSet::new();
    for d in &blobs {
        let alg = d.digest.algorithm().as_str();
        if algs.insert(alg) {
            w.dir(&format!("blobs/{alg}/"))?;
        }
        if media_type::is_non_distributable(&d.media_type) && !layout.has_blob(&d.digest) {
            continue;
        }
        let reader = open_verified(layout, d)?;
        w.file(&format!("blobs/{alg}/{}", d.digest.hex()), d.size, reader)?;
    }
    w.report.images = images.iter().map(|i| i.name.clone()).collect();
    w.report.blobs = blobs.len();
    w.finish()
}

fn write_oci_dir(store: &Store, images: &[Image], out: &Path) -> Result<SaveReport, StoreError> {
    let occupied = formats::walk::Walk::children(out)
        .into_iter()
        .next()
        .is_some_and(|e| e.is_ok());
    if out.exists() && !out.is_dir() || occupied && !out.join("oci-layout").is_file() {
        return Err(StoreError::Unsupported(format!(
            "`{}` exists and is not an OCI layout; give a new or empty directory",
            out.display()
        )));
    }
    let layout = OciLayout::create(out)?;
    let mut report = SaveReport::default();
    for d in all_blobs(&store.layout, images)? {
        if layout.has_blob(&d.digest)
            || media_type::is_non_distributable(&d.media_type) && !store.layout.has_blob(&d.digest)
        {
            continue;
        }
        let file = store.layout.open_blob(&d.digest)?;
        layout.write_blob(file, Some(&d.digest), Some(d.size))?;
        report.blobs += 1;
        report.bytes += d.size;
    }
    for image in images {
        layout.set_tag(&image.name, image.descriptor.clone())?;
        report.images.push(image.name.clone());
    }
    Ok(report)
}

#[derive(Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The single-platform manifest of an image: itself, or the host platform's child of an index.
fn single_manifest(store: &Store, image: &Image) -> Result<RawManifest, StoreError> {
    let ParsedManifest::Index(index) = &image.manifest.parsed else {
        return Ok(image.manifest.clone());
    };
    let Some(child) = Platform::select_host(index) else {
        let host = Platform::host();
        let platforms: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
            .collect();
        return Err(StoreError::Unsupported(format!(
            "`{}` is a multi-platform image ({}) without a {host} image; a docker archive holds \
             one platform: save it as oci-archive instead",
            image.name,
            platforms.join(", ")
        )));
    };
    Ok(store.layout.read_manifest(child)?)
}

fn write_docker_archive(
    store: &Store,
    images: &[Image],
    out: &Path,
) -> Result<SaveReport, StoreError> {
    // manifest digest -> entry, in order; several names of one image share an entry.
    let mut entries: Vec<(Digest, DockerManifestEntry)> = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut w = ArchiveWriter::new(out, 0)?;
    let mut names_done = Vec::new();
    for image in images {
        let raw = single_manifest(store, image)?;
        if let Some((_, e)) = entries.iter_mut().find(|(d, _)| *d == raw.digest) {
            e.repo_tags.push(image.name.clone());
            names_done.push(image.name.clone());
            continue;
        }
        let ParsedManifest::Image(m) = &raw.parsed else {
            return Err(StoreError::Unsupported(format!(
                "`{}`: nested indexes cannot go into a docker archive",
                image.name
            )));
        };
        let config_bytes = store.layout.read_blob_bytes(&m.config.digest)?;
        let config = parse_config(&config_bytes, &m.config).ok_or_else(|| {
            StoreError::Unsupported(format!(
                "`{}` has a config of type `{}`, not an image config; a docker archive cannot hold it",
                image.name, m.config.media_type
            ))
        })?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(StoreError::Unsupported(format!(
                "`{}`: its config lists {} diff_ids for {} layers",
                image.name,
                config.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        let config_name = format!("{}.json", m.config.digest.hex());
        if written.insert(config_name.clone()) {
            w.file(
                &config_name,
                config_bytes.len() as u64,
                config_bytes.as_slice(),
            )?;
        }
        let mut layer_names = Vec::new();
        for (layer, diff_id) in m.layers.iter().zip(&config.rootfs.diff_ids) {
            let name = format!("{}/layer.tar", diff_id.hex());
            layer_names.push(name.clone());
            if !written.insert(name.clone()) {
                continue;
            }
            write_docker_layer(store, &mut w, &name, layer, diff_id)?;
        }
        entries.push((
            raw.digest.clone(),
            DockerManifestEntry {
                config: config_name,
                repo_tags: vec![image.name.clone()],
                layers: layer_names,
            },
        ));
        names_done.push(image.name.clone());
    }
    let manifest: Vec<&DockerManifestEntry> = entries.iter().map(|(_, e)| e).collect();
    let bytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Manifest {
        what: "manifest.json".into(),
        source: formats::manifest::ManifestError::Serialize(e),
    })?;
    w.file("manifest.json", bytes.len() as u64, bytes.as_slice())?;
    // The legacy `repositories` file lets older docker versions find the names too.
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (_, e) in &entries {
        let top = e
            .layers
            .last()
            .and_then(|l| l.split('/').next())
            .unwrap_or("");
        for name in &e.repo_tags {
            let (repo, tag) = super::details::split_name(name);
            if !top.is_empty() {
                repos.entry(repo).or_default().insert(tag, top.to_string());
            }
        }
    }
    let bytes = serde_json::to_vec(&repos).map_err(|e| StoreError::Manifest {
        what: "repositories".into(),
        source: formats::manifest::ManifestError::Serialize(e),
    })?;
    w.file("repositories", bytes.len() as u64, bytes.as_slice())?;
    w.report.images = names_done;
    w.finish()
}

/// Writes one layer as an uncompressed tar whose hash must be `diff_id`.
fn write_docker_layer(
    store: &Store,
    w: &mut ArchiveWriter<'_>,
    name: &str,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<(), StoreError> {
    let what = format!("layer {}", layer.digest);
    let mut probe = store.layout.open_blob(&layer.digest)?;
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut probe, &mut magic).map_err(io_err("read", store.root()))?;
    let compressed = Compression::detect(&magic[..n]) != Compression::None;
    if !compressed {
        if &layer.digest != diff_id {
            return Err(StoreError::Unsupported(format!(
                "{what} is uncompressed but its config gives diff_id {diff_id}; the image is inconsistent"
            )));
        }
        let reader = open_verified(&store.layout, layer)?;
        return w.file(name, layer.size, reader);
    }
    let limit = store.expansion_limit();
    let (actual, size) = diff_id_of(store.layout.open_blob(&layer.digest)?, layer.size, limit)
        .map_err(|source| StoreError::Layer {
            what: what.clone(),
            source,
        })?;
    if &actual != diff_id {
        return Err(StoreError::Unsupported(format!(
            "{what} decompresses to {actual}, but its config gives diff_id {diff_id}; the image is inconsistent"
        )));
    }
    let decoded = decompressing_reader(store.layout.open_blob(&layer.digest)?, layer.size, limit)
        .map_err(io_err("decompress", &store.layout.blob_path(&layer.digest)))?;
    let reader = Verifying::new(decoded, diff_id, size, what);
    w.file(name, size, reader)
}
