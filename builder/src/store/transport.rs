//! Where an image is read from: the local store (a plain name) or a transport, as skopeo spells them:
//! `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:NAME:TAG]`, and `docker://NAME`
//! (registry, not supported yet). Also the reading of OCI `index.json` and docker `manifest.json` shared by
//! `inspect` and `load`.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest, DigestReader};
use formats::layer::{Compression, ExpansionLimit, decompressing_reader};
use formats::manifest::{
    Descriptor, ImageConfig, ImageIndex, ImageManifest, ParsedManifest, RawManifest,
};
use formats::media_type;
use formats::oci_layout::ANNOTATION_REF_NAME;
use formats::reference::Reference;
use serde::Deserialize;

use super::archive::ArchiveSource;
use super::details::{self, ImageDetails, JsonBlobs};
use super::{StoreError, io_err};

/// containerd's (and docker's) annotation holding an image's full name in `index.json`.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// An image source as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A name or digest in the local store.
    Local(String),
    /// An OCI layout directory and optionally the ref name of one image in it.
    OciDir {
        /// The layout directory.
        path: PathBuf,
        /// The `org.opencontainers.image.ref.name` (or full name) of the image.
        reference: Option<String>,
    },
    /// A tar of an OCI layout and optionally the ref name of one image in it.
    OciArchive {
        /// The archive file.
        path: PathBuf,
        /// The ref name of the image.
        reference: Option<String>,
    },
    /// A `docker save` archive and optionally the `NAME:TAG` of one image in it.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// The name of the image.
        reference: Option<String>,
    },
    /// An image in a registry (`docker://NAME`).
    Registry(String),
}

impl ImageSource {
    /// Parses `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`, `docker://NAME`;
    /// anything else names an image in the local store. The path ends at the first `:` after the prefix,
    /// as in skopeo.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        let split = |rest: &str,
                     transport: &str|
         -> Result<(PathBuf, Option<String>), StoreError> {
            let (path, reference) = match rest.split_once(':') {
                Some((p, r)) => (p, Some(r.to_string()).filter(|r| !r.is_empty())),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(StoreError::Unsupported(format!(
                    "`{s}`: the {transport} transport needs a path, as in `{transport}:PATH[:NAME]`"
                )));
            }
            Ok((PathBuf::from(path), reference))
        };
        if let Some(name) = s.strip_prefix("docker://") {
            return Ok(ImageSource::Registry(name.to_string()));
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, reference) = split(rest, "oci-archive")?;
            return Ok(ImageSource::OciArchive { path, reference });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, reference) = split(rest, "docker-archive")?;
            return Ok(ImageSource::DockerArchive { path, reference });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, reference) = split(rest, "oci")?;
            return Ok(ImageSource::OciDir { path, reference });
        }
        if s.is_empty() {
            return Err(StoreError::Unsupported("an image name is required".into()));
        }
        Ok(ImageSource::Local(s.to_string()))
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let with = |f: &mut fmt::Formatter<'_>, t: &str, p: &Path, r: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            match r {
                Some(r) => write!(f, ":{r}"),
                None => Ok(()),
            }
        };
        match self {
            ImageSource::Local(n) => f.write_str(n),
            ImageSource::OciDir { path, reference } => with(f, "oci", path, reference),
            ImageSource::OciArchive { path, reference } => with(f, "oci-archive", path, reference),
            ImageSource::DockerArchive { path, reference } => {
                with(f, "docker-archive", path, reference)
            }
            ImageSource::Registry(n) => write!(f, "docker://{n}"),
        }
    }
}

/// Inspects an image behind a transport (not the local store); a compressed archive is decompressed within
/// `limit`.
pub(crate) fn inspect(
    source: &ImageSource,
    limit: ExpansionLimit,
) -> Result<ImageDetails, StoreError> {
    match source {
        ImageSource::Local(n) => Err(StoreError::NotFound(n.clone())),
        ImageSource::Registry(n) => Err(StoreError::Unsupported(format!(
            "`docker://{n}`: reading images from a registry is not supported yet; pull it with \
             `skopeo copy docker://{n} oci-archive:FILE` and inspect `oci-archive:FILE`"
        ))),
        ImageSource::OciDir { path, reference } | ImageSource::OciArchive { path, reference } => {
            let want_dir = matches!(source, ImageSource::OciDir { .. });
            let is_dir = path.is_dir();
            if want_dir != is_dir && path.exists() {
                return Err(StoreError::BadArchive {
                    path: path.clone(),
                    reason: if want_dir {
                        "`oci:` needs an OCI layout directory; use `oci-archive:` for a tar file"
                            .into()
                    } else {
                        "`oci-archive:` needs a tar file; use `oci:` for a directory".into()
                    },
                });
            }
            let src = ArchiveSource::open(path, &std::env::temp_dir(), limit)?;
            let index = read_oci_index(&src)?;
            let entry = select_oci_entry(&src, &index, reference.as_deref())?;
            let raw = read_manifest(&src, &entry)?;
            let name = oci_entry_name(&entry);
            let mut top = entry.clone();
            top.annotations.remove(ANNOTATION_REF_NAME);
            details::describe(&src, name, &top, &raw)
        }
        ImageSource::DockerArchive { path, reference } => {
            let src = ArchiveSource::open(path, &std::env::temp_dir(), limit)?;
            let entries = read_docker_manifest(&src)?;
            let entry = select_docker_entry(&src, &entries, reference.as_deref())?;
            let image = docker_image_view(&src, entry)?;
            let raw = RawManifest::from_created(&image.manifest, media_type::OCI_MANIFEST)
                .map_err(|source| StoreError::Manifest {
                    what: "converted manifest".into(),
                    source,
                })?;
            let view = DockerView {
                config: image.config_bytes,
            };
            let name = entry.repo_tags.first().cloned();
            details::describe(&view, name, &raw.descriptor(), &raw)
        }
    }
}

struct DockerView {
    config: Vec<u8>,
}

impl JsonBlobs for DockerView {
    fn json_blob(&self, _d: &Descriptor) -> Result<Vec<u8>, StoreError> {
        Ok(self.config.clone())
    }
}

/// Reads and parses `index.json` of an OCI layout (directory or archive), checking `oci-layout`.
pub(crate) fn read_oci_index(src: &ArchiveSource) -> Result<ImageIndex, StoreError> {
    let bad = |reason: String| StoreError::BadArchive {
        path: src.path().to_path_buf(),
        reason,
    };
    let marker = src.read_small("oci-layout")?;
    let version = serde_json::from_slice::<serde_json::Value>(&marker)
        .ok()
        .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
    if version.as_deref() != Some("1.0.0") {
        return Err(bad(format!(
            "`oci-layout` must say imageLayoutVersion 1.0.0, found {}",
            version.unwrap_or_else(|| "none".into())
        )));
    }
    let bytes = src.read_small("index.json")?;
    let raw = RawManifest::from_bytes(bytes, Some(media_type::OCI_INDEX)).map_err(|source| {
        StoreError::Manifest {
            what: format!("`{}`: index.json", src.path().display()),
            source,
        }
    })?;
    match raw.parsed {
        ParsedManifest::Index(i) => Ok(i),
        ParsedManifest::Image(_) => Err(bad("index.json is a manifest, not an index".into())),
    }
}

/// Reads and verifies the manifest or index an entry points to.
pub(crate) fn read_manifest(
    src: &ArchiveSource,
    d: &Descriptor,
) -> Result<RawManifest, StoreError> {
    let bytes = src.json_blob(d)?;
    RawManifest::from_bytes(bytes, Some(&d.media_type)).map_err(|source| StoreError::Manifest {
        what: format!("`{}`: manifest {}", src.path().display(), d.digest),
        source,
    })
}

/// The full name an `index.json` entry carries: containerd's name annotation, else a ref name that is a
/// whole reference (`name:tag`, `host/name`); a bare tag such as `latest` is not a name.
pub(crate) fn oci_entry_name(d: &Descriptor) -> Option<String> {
    if let Some(n) = d.annotations.get(ANNOTATION_CONTAINERD_NAME)
        && let Ok(r) = Reference::parse(n)
    {
        return Some(r.to_string());
    }
    let r = d.annotations.get(ANNOTATION_REF_NAME)?;
    if !r.contains([':', '/', '@']) {
        return None;
    }
    Reference::parse(r).ok().map(|r| r.to_string())
}

fn names_of(index: &ImageIndex) -> String {
    let names: Vec<String> = index
        .manifests
        .iter()
        .map(|d| {
            d.annotations
                .get(ANNOTATION_REF_NAME)
                .cloned()
                .unwrap_or_else(|| d.digest.to_string())
        })
        .collect();
    names.join(", ")
}

/// Picks the entry named `reference` (a ref name as written, or a name that normalises to the same), or the
/// only entry when no reference is given.
pub(crate) fn select_oci_entry(
    src: &ArchiveSource,
    index: &ImageIndex,
    reference: Option<&str>,
) -> Result<Descriptor, StoreError> {
    let bad = |reason: String| StoreError::BadArchive {
        path: src.path().to_path_buf(),
        reason,
    };
    match reference {
        None => match index.manifests.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(bad("the layout holds no image".into())),
            _ => Err(bad(format!(
                "the layout holds {} images ({}); name one as `PATH:NAME`",
                index.manifests.len(),
                names_of(index)
            ))),
        },
        Some(want) => {
            let normal = Reference::parse(want).ok().map(|r| r.to_string());
            index
                .manifests
                .iter()
                .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(want))
                .or_else(|| {
                    index
                        .manifests
                        .iter()
                        .find(|d| normal.is_some() && oci_entry_name(d) == normal)
                })
                .cloned()
                .ok_or_else(|| {
                    bad(format!(
                        "no image named `{want}` in the layout (it holds: {})",
                        names_of(index)
                    ))
                })
        }
    }
}

/// One image of a docker archive's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct DockerArchiveEntry {
    /// The config file's name in the archive.
    #[serde(rename = "Config")]
    pub config: String,
    /// Names the image is tagged as.
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// The layer tar files, base first.
    #[serde(rename = "Layers", default, deserialize_with = "null_as_empty")]
    pub layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Reads a docker archive's `manifest.json`.
pub(crate) fn read_docker_manifest(
    src: &ArchiveSource,
) -> Result<Vec<DockerArchiveEntry>, StoreError> {
    let bytes = src.read_small("manifest.json")?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::ArchiveJson {
        path: src.path().to_path_buf(),
        what: "manifest.json is not a docker archive manifest".into(),
        source,
    })
}

/// Picks the entry tagged `reference` (normalised), or the only one.
pub(crate) fn select_docker_entry<'a>(
    src: &ArchiveSource,
    entries: &'a [DockerArchiveEntry],
    reference: Option<&str>,
) -> Result<&'a DockerArchiveEntry, StoreError> {
    let bad = |reason: String| StoreError::BadArchive {
        path: src.path().to_path_buf(),
        reason,
    };
    let all = || {
        entries
            .iter()
            .flat_map(|e| e.repo_tags.iter().cloned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match reference {
        None => match entries {
            [one] => Ok(one),
            [] => Err(bad("manifest.json lists no image".into())),
            _ => Err(bad(format!(
                "the archive holds {} images ({}); name one as `FILE:NAME:TAG`",
                entries.len(),
                all()
            ))),
        },
        Some(want) => {
            let normal = Reference::parse(want).ok().map(|r| r.to_string());
            entries
                .iter()
                .find(|e| {
                    e.repo_tags.iter().any(|t| {
                        t == want || Reference::parse(t).ok().map(|r| r.to_string()) == normal
                    })
                })
                .ok_or_else(|| {
                    bad(format!(
                        "no image named `{want}` in the archive ({})",
                        all()
                    ))
                })
        }
    }
}

/// A docker-archive image seen as the OCI image `load` makes of it.
pub(crate) struct DockerImageView {
    /// The config, byte-exact.
    pub config_bytes: Vec<u8>,
    /// The OCI manifest `load` writes (layers as stored: uncompressed unless the archive compressed them).
    pub manifest: ImageManifest,
}

/// Checks a name from `manifest.json` is inside the archive, for a clear error naming the entry.
pub(crate) fn checked_member<'a>(
    src: &ArchiveSource,
    name: &'a str,
) -> Result<&'a str, StoreError> {
    super::archive::safe_name(name)
        .map(|_| name)
        .ok_or_else(|| StoreError::UnsafeEntry {
            path: src.path().to_path_buf(),
            entry: name.to_string(),
        })
}

/// Reads the config of a docker-archive entry and derives the OCI manifest without storing anything:
/// uncompressed layers are taken to be their diff_id (verified when loading); compressed ones are hashed.
pub(crate) fn docker_image_view(
    src: &ArchiveSource,
    entry: &DockerArchiveEntry,
) -> Result<DockerImageView, StoreError> {
    let (config_bytes, config) = read_docker_config(src, entry)?;
    let mut layers = Vec::new();
    for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        let (mut reader, size) = src.open_member(checked_member(src, name)?)?;
        let mut magic = [0u8; 4];
        let n = read_prefix(&mut reader, &mut magic).map_err(io_err("read", src.path()))?;
        let compression = Compression::detect(&magic[..n]);
        let digest = match compression {
            Compression::None => diff_id.clone(),
            _ => {
                let (reader, _) = src.open_member(name)?;
                let mut hashing = DigestReader::new(reader, Algorithm::Sha256);
                io::copy(&mut hashing, &mut io::sink()).map_err(io_err("read", src.path()))?;
                hashing.finish().1
            }
        };
        layers.push(Descriptor::new(
            format!(
                "{}{}",
                media_type::OCI_LAYER_TAR,
                compression.media_type_suffix()
            ),
            digest,
            size,
        ));
    }
    let config_desc = Descriptor::new(
        media_type::OCI_CONFIG,
        Digest::sha256_of(&config_bytes),
        config_bytes.len() as u64,
    );
    Ok(DockerImageView {
        manifest: ImageManifest::new(config_desc, layers),
        config_bytes,
    })
}

/// Reads and parses an entry's config, checking it names as many layers as the entry lists and that a
/// config named by digest (`<hex>.json`, `blobs/sha256/<hex>`) hashes to that digest.
pub(crate) fn read_docker_config(
    src: &ArchiveSource,
    entry: &DockerArchiveEntry,
) -> Result<(Vec<u8>, ImageConfig), StoreError> {
    let bad = |reason: String| StoreError::BadArchive {
        path: src.path().to_path_buf(),
        reason,
    };
    let bytes = src.read_small(checked_member(src, &entry.config)?)?;
    let actual = Digest::sha256_of(&bytes);
    let base = entry.config.rsplit('/').next().unwrap_or_default();
    let named_hex = base.strip_suffix(".json").unwrap_or(base);
    if named_hex.len() == 64
        && named_hex.bytes().all(|b| b.is_ascii_hexdigit())
        && named_hex != actual.hex()
    {
        return Err(bad(format!(
            "config `{}` hashes to {actual}, not the digest its name says",
            entry.config
        )));
    }
    let config: ImageConfig =
        serde_json::from_slice(&bytes).map_err(|source| StoreError::ArchiveJson {
            path: src.path().to_path_buf(),
            what: format!("config `{}` is not an image config", entry.config),
            source,
        })?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(bad(format!(
            "config `{}` lists {} diff_ids but manifest.json lists {} layers",
            entry.config,
            config.rootfs.diff_ids.len(),
            entry.layers.len()
        )));
    }
    Ok((bytes, config))
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the stream).
pub(crate) fn read_prefix(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompresses (if needed, within `limit`) and hashes a layer stream of `size` bytes: its diff_id and
/// uncompressed size.
pub(crate) fn diff_id_of(
    reader: impl io::Read,
    size: u64,
    limit: ExpansionLimit,
) -> io::Result<(Digest, u64)> {
    let mut r = DigestReader::new(
        decompressing_reader(reader, size, limit)?,
        Algorithm::Sha256,
    );
    io::copy(&mut r, &mut io::sink())?;
    let (_, d, n) = r.finish();
    Ok((d, n))
}

/// Annotations of an index entry other than the names.
pub(crate) fn other_annotations(d: &Descriptor) -> BTreeMap<String, String> {
    d.annotations
        .iter()
        .filter(|(k, _)| *k != ANNOTATION_REF_NAME && *k != ANNOTATION_CONTAINERD_NAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_like_skopeo_and_plain_names_are_local() {
        assert_eq!(
            ImageSource::parse("oci:/tmp/l:docker.io/library/x:v1").unwrap(),
            ImageSource::OciDir {
                path: "/tmp/l".into(),
                reference: Some("docker.io/library/x:v1".into())
            }
        );
        assert_eq!(
            ImageSource::parse("oci-archive:a.tar").unwrap(),
            ImageSource::OciArchive {
                path: "a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            ImageSource::parse("docker-archive:a.tar:app:v1").unwrap(),
            ImageSource::DockerArchive {
                path: "a.tar".into(),
                reference: Some("app:v1".into())
            }
        );
        assert_eq!(
            ImageSource::parse("docker://nginx").unwrap(),
            ImageSource::Registry("nginx".into())
        );
        assert_eq!(
            ImageSource::parse("myapp:v1").unwrap(),
            ImageSource::Local("myapp:v1".into())
        );
        assert!(ImageSource::parse("oci:").is_err());
        assert!(ImageSource::parse("oci-archive::x").is_err());
        let s = "docker-archive:f.tar:app:v1";
        assert_eq!(ImageSource::parse(s).unwrap().to_string(), s);
    }

    #[test]
    fn registry_source_is_refused_with_a_clear_message() {
        let e = inspect(
            &ImageSource::Registry("nginx".into()),
            ExpansionLimit::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not supported yet"), "{e}");
    }

    #[test]
    fn entry_names_prefer_containerd_name_and_ignore_bare_tags() {
        let mut d = Descriptor::for_bytes(media_type::OCI_MANIFEST, b"x");
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "latest".into());
        assert_eq!(oci_entry_name(&d), None);
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), "app:v1".into());
        assert_eq!(
            oci_entry_name(&d).as_deref(),
            Some("docker.io/library/app:v1")
        );
        d.annotations
            .insert(ANNOTATION_CONTAINERD_NAME.into(), "quay.io/a/b:c".into());
        assert_eq!(oci_entry_name(&d).as_deref(), Some("quay.io/a/b:c"));
    }
}
