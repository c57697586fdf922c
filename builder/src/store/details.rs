//! What `images` lists and `inspect` shows, computed from a manifest or index and the small blobs (manifests,
//! configs) it references, wherever they are read from (the store, a layout directory, an archive).

use std::collections::{BTreeMap, BTreeSet};

use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageConfig, ParsedManifest, Platform, RawManifest};
use formats::media_type;
use formats::reference::Reference;
use serde::Serialize;

use super::{Store, StoreError};

/// Reads small JSON blobs (manifests, configs) by descriptor, verifying their digest.
pub(crate) trait JsonBlobs {
    /// The verified bytes of the blob `d` names.
    fn json_blob(&self, d: &Descriptor) -> Result<Vec<u8>, StoreError>;
}

impl JsonBlobs for Store {
    fn json_blob(&self, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
        Ok(self.layout.read_blob_bytes(&d.digest)?)
    }
}

/// One row of `sealos images`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// The full reference as stored (`docker.io/library/myapp:v1`).
    pub name: String,
    /// The repository part (`docker.io/library/myapp`), or the stored name when it is not a reference.
    pub repository: String,
    /// The tag (`v1`), or `<none>`.
    pub tag: String,
    /// The manifest (or index) digest: the image ID.
    pub digest: Digest,
    /// The manifest or index media type.
    pub media_type: String,
    /// When the image was created, from its config (the newest of its platforms for an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Bytes of all distinct blobs of the image (manifests, configs, layers as stored).
    pub size: u64,
    /// The platforms it holds (`linux/amd64`).
    pub platforms: Vec<String>,
    /// Why some of its content could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `sealos inspect` shows about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetails {
    /// The name it was found under, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The manifest or index digest.
    pub digest: Digest,
    /// The manifest or index media type.
    pub media_type: String,
    /// Bytes of all distinct blobs of the image.
    pub size: u64,
    /// Annotations of the manifest or index.
    pub annotations: BTreeMap<String, String>,
    /// One entry per platform image (just one for a single manifest).
    pub images: Vec<PlatformImage>,
}

impl ImageDetails {
    /// The platforms of the image, in manifest order.
    pub fn platforms(&self) -> Vec<String> {
        self.images
            .iter()
            .filter_map(|i| i.platform.as_ref().map(Platform::to_string))
            .collect()
    }
}

/// One platform's image: its manifest, config and layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformImage {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest media type.
    pub media_type: String,
    /// The platform, from the index entry or else the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The config blob's media type.
    pub config_media_type: String,
    /// When it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Environment (`NAME=value`).
    pub env: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Default command.
    pub cmd: Vec<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Layers, base first.
    pub layers: Vec<LayerDetails>,
    /// Annotations of the manifest.
    pub annotations: BTreeMap<String, String>,
    /// The whole image config, when the config is an image config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ImageConfig>,
}

/// One layer as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerDetails {
    /// The blob digest.
    pub digest: Digest,
    /// The layer media type.
    pub media_type: String,
    /// The blob size in bytes.
    pub size: u64,
    /// The digest of the uncompressed tar, from the config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// Annotations of the layer descriptor.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Splits a stored name into repository and tag for display.
pub(crate) fn split_name(name: &str) -> (String, String) {
    match Reference::parse(name) {
        Ok(r) => (
            r.name(),
            r.tag().map_or_else(|| "<none>".to_string(), str::to_string),
        ),
        Err(_) => (name.to_string(), "<none>".to_string()),
    }
}

pub(crate) fn parse_config(bytes: &[u8], d: &Descriptor) -> Option<ImageConfig> {
    let is_image_config = d.media_type == media_type::OCI_CONFIG
        || d.media_type == media_type::DOCKER_CONFIG
        || d.media_type.is_empty();
    if !is_image_config {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

fn config_platform(c: &ImageConfig) -> Option<Platform> {
    if c.os.is_empty() || c.architecture.is_empty() {
        return None;
    }
    Some(c.platform())
}

fn platform_image(
    blobs: &dyn JsonBlobs,
    desc: &Descriptor,
    raw: &RawManifest,
    sizes: &mut BTreeMap<Digest, u64>,
) -> Result<PlatformImage, StoreError> {
    let ParsedManifest::Image(m) = &raw.parsed else {
        return Err(StoreError::BadArchive {
            path: Default::default(),
            reason: format!(
                "manifest {} is an index nested inside an index",
                desc.digest
            ),
        });
    };
    sizes.insert(m.config.digest.clone(), m.config.size);
    for l in &m.layers {
        sizes.insert(l.digest.clone(), l.size);
    }
    let config_bytes = blobs.json_blob(&m.config)?;
    let config = parse_config(&config_bytes, &m.config);
    let container = config
        .as_ref()
        .and_then(|c| c.config.clone())
        .unwrap_or_default();
    let diff_ids = config
        .as_ref()
        .map(|c| c.rootfs.diff_ids.clone())
        .unwrap_or_default();
    Ok(PlatformImage {
        digest: desc.digest.clone(),
        media_type: raw.media_type.clone(),
        platform: desc
            .platform
            .clone()
            .or_else(|| config.as_ref().and_then(config_platform)),
        config_digest: m.config.digest.clone(),
        config_media_type: m.config.media_type.clone(),
        created: config.as_ref().and_then(|c| c.created.clone()),
        author: config.as_ref().and_then(|c| c.author.clone()),
        labels: container.labels,
        env: container.env,
        entrypoint: container.entrypoint,
        cmd: container.cmd,
        working_dir: container.working_dir,
        user: container.user,
        layers: m
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerDetails {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: diff_ids.get(i).cloned(),
                annotations: l.annotations.clone(),
            })
            .collect(),
        annotations: m.annotations.clone(),
        config,
    })
}

/// Describes the image `top` (whose manifest or index is `raw`), reading configs and child manifests
/// from `blobs`.
pub(crate) fn describe(
    blobs: &dyn JsonBlobs,
    name: Option<String>,
    top: &Descriptor,
    raw: &RawManifest,
) -> Result<ImageDetails, StoreError> {
    let mut sizes = BTreeMap::new();
    sizes.insert(raw.digest.clone(), raw.bytes.len() as u64);
    let (annotations, images) =
        match &raw.parsed {
            ParsedManifest::Image(m) => (
                m.annotations.clone(),
                vec![platform_image(blobs, top, raw, &mut sizes)?],
            ),
            ParsedManifest::Index(index) => {
                let mut images = Vec::new();
                for child in &index.manifests {
                    if !media_type::is_manifest(&child.media_type) {
                        continue;
                    }
                    let bytes = blobs.json_blob(child)?;
                    let child_raw = RawManifest::from_bytes(bytes, Some(&child.media_type))
                        .map_err(|source| StoreError::Manifest {
                            what: format!("manifest {}", child.digest),
                            source,
                        })?;
                    sizes.insert(child.digest.clone(), child.size);
                    images.push(platform_image(blobs, child, &child_raw, &mut sizes)?);
                }
                (index.annotations.clone(), images)
            }
        };
    Ok(ImageDetails {
        name,
        digest: raw.digest.clone(),
        media_type: raw.media_type.clone(),
        size: sizes.values().sum(),
        annotations,
        images,
    })
}

/// The `images` row of one tag; content that cannot be read is reported in `error`, not as a failure.
pub(crate) fn summarize(store: &Store, name: &str, desc: &Descriptor) -> ImageSummary {
    let (repository, tag) = split_name(name);
    let mut summary = ImageSummary {
        name: name.to_string(),
        repository,
        tag,
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        created: None,
        size: desc.size,
        platforms: Vec::new(),
        error: None,
    };
    let details = store
        .layout
        .read_manifest(desc)
        .map_err(StoreError::from)
        .and_then(|raw| describe(store, Some(name.to_string()), desc, &raw));
    match details {
        Ok(d) => {
            summary.size = d.size;
            summary.platforms = d.platforms();
            summary.created = d
                .images
                .iter()
                .filter_map(|i| i.created.clone())
                .max_by_key(|c| crate::store::details::created_key(c));
        }
        Err(e) => summary.error = Some(e.to_string()),
    }
    summary
}

/// Orders RFC 3339 times (seconds since the epoch; unparseable times sort first).
pub(crate) fn created_key(created: &str) -> i64 {
    parse_rfc3339(created).unwrap_or(i64::MIN)
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05.123Z`, `...+02:00`) into seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// The distinct blobs of an image reachable from `raw` (itself included), children before parents.
pub(crate) fn image_blobs(
    blobs: &dyn JsonBlobs,
    top: &Descriptor,
    raw: &RawManifest,
) -> Result<Vec<Descriptor>, StoreError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    collect_blobs(blobs, top, Some(raw), &mut seen, &mut out, 0)?;
    Ok(out)
}

fn collect_blobs(
    blobs: &dyn JsonBlobs,
    desc: &Descriptor,
    raw: Option<&RawManifest>,
    seen: &mut BTreeSet<Digest>,
    out: &mut Vec<Descriptor>,
    depth: usize,
) -> Result<(), StoreError> {
    if !seen.insert(desc.digest.clone()) {
        return Ok(());
    }
    if media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type) {
        if depth > 4 {
            return Err(StoreError::Unsupported(format!(
                "manifest {} is nested more than 4 levels deep",
                desc.digest
            )));
        }
        let owned;
        let raw = match raw {
            Some(r) => r,
            None => {
                let bytes = blobs.json_blob(desc)?;
                owned =
                    RawManifest::from_bytes(bytes, Some(&desc.media_type)).map_err(|source| {
                        StoreError::Manifest {
                            what: format!("manifest {}", desc.digest),
                            source,
                        }
                    })?;
                &owned
            }
        };
        for child in raw.referenced_blobs() {
            collect_blobs(blobs, child, None, seen, out, depth + 1)?;
        }
    }
    out.push(desc.clone());
    Ok(())
}
