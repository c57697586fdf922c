//! `sealos merge`: one image made of several images of the local store, as sealos users expect.
//!
//! Rules (sealos builds `FROM scratch` + `COPY --from=<image> . .` per input with merged labels, env and
//! commands; the result here is the same image without a build):
//!
//! - Layers: every input's layers in input order; a layer whose uncompressed digest (diff_id) already
//!   appeared is left out (two images built on the same base share it). Blobs are reused, not copied.
//! - Labels and env: merged in input order, the last value of a key wins (env keeps the position where the
//!   name first appeared).
//! - Command: for each input in order, its ENTRYPOINT then CMD elements, without the literal `/bin/sh` and
//!   `-c` elements, become the merged CMD (the merged ENTRYPOINT is empty). The runtime runs each element
//!   as one shell command, so the merged image runs every input's commands in input order.
//! - Type (`sealos.io.type` / `apps.sealos.io/type`): `rootfs` when any input is a rootfs image, else
//!   `patch` when any is a patch, else `application`; every type label present is set to that value.
//!   Refused: a patch image with an application image and no rootfs (patch files belong in the rootfs of
//!   every host, application files in the application's directory on the first master), and a patch image
//!   whose command is not empty together with a rootfs image (a patch's command runs on every host; in a
//!   rootfs image it would not). Apply such images one after the other with `sealos run` instead.
//! - Platforms: single-platform inputs must share their platform. When an input is a multi-platform index,
//!   the result is an index with one merged image per platform every input has.
//! - `created` is the newest input's, so merging the same images again gives the same digest.

use std::collections::{BTreeMap, BTreeSet};

use formats::digest::Digest;
use formats::manifest::{
    ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, ParsedManifest,
    Platform, RawManifest, RootFs,
};
use formats::media_type;
use formats::reference::Reference;
use serde::Serialize;

use super::details::{created_key, parse_config};
use super::{Image, Store, StoreError, normalize_name};

pub use formats::cluster_image::TYPE_LABELS;

/// What kind of cluster image an image is, from its type label (absent means application).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// Applied on the first master in its own directory.
    Application,
    /// Copied over the rootfs of every host; its command runs on every host.
    Patch,
    /// The cluster's root filesystem, on every host.
    Rootfs,
}

impl ImageKind {
    /// The label value (`rootfs`, `patch`, `application`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Application => "application",
            ImageKind::Patch => "patch",
            ImageKind::Rootfs => "rootfs",
        }
    }

    /// The kind `labels` declare; `Err` holds an unknown type value.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Result<Self, UnknownImageKind> {
        let Some(value) = formats::cluster_image::image_type(labels) else {
            return Ok(ImageKind::Application);
        };
        match value {
            "rootfs" => Ok(ImageKind::Rootfs),
            "patch" => Ok(ImageKind::Patch),
            "application" | "" => Ok(ImageKind::Application),
            other => Err(UnknownImageKind(other.to_string())),
        }
    }
}

/// A type label value that is none of `rootfs`, `patch` or `application` (the value as written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image type `{0}`: it must be rootfs, patch or application")]
pub struct UnknownImageKind(pub String);

/// What [`Store::merge`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeReport {
    /// The full names the merged image is tagged with.
    pub names: Vec<String>,
    /// The digest of its manifest (or index).
    pub digest: Digest,
    /// The manifest or index media type.
    pub media_type: String,
    /// The merged image's type.
    pub kind: ImageKind,
    /// The inputs as resolved (full name and digest), in order.
    pub sources: Vec<(String, Digest)>,
    /// The platforms of the result.
    pub platforms: Vec<String>,
    /// Layers in each platform's image.
    pub layers: usize,
    /// Layers left out because an earlier input already had them (same diff_id), per platform.
    pub duplicate_layers: usize,
}

/// One platform's image of an input.
struct Part {
    platform: Platform,
    manifest: ImageManifest,
    config: ImageConfig,
}

/// One platform's merged image, before it is written.
struct Merged {
    manifest: RawManifest,
    config_bytes: Vec<u8>,
    layers: usize,
    duplicates: usize,
}

fn merge_err(message: impl Into<String>) -> StoreError {
    StoreError::Unsupported(message.into())
}

fn same_platform(a: &Platform, b: &Platform) -> bool {
    a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
}

fn oci_layer_type(media: &str) -> String {
    match media {
        media_type::DOCKER_LAYER_TAR_GZIP => media_type::OCI_LAYER_TAR_GZIP.to_string(),
        media_type::DOCKER_LAYER_FOREIGN => {
            media_type::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP.to_string()
        }
        other => other.to_string(),
    }
}

/// ENTRYPOINT then CMD without the `/bin/sh` and `-c` elements: the commands the runtime runs.
fn commands(config: &ContainerConfig) -> impl Iterator<Item = &String> {
    config
        .entrypoint
        .iter()
        .chain(&config.cmd)
        .filter(|c| c.as_str() != "/bin/sh" && c.as_str() != "-c")
}

impl Store {
    /// Merges the images `sources` (names or digests in this store) into one image tagged with every name
    /// of `tags`; see the module documentation for the rules.
    pub fn merge(&self, sources: &[&str], tags: &[&str]) -> Result<MergeReport, StoreError> {
        if sources.is_empty() {
            return Err(merge_err("nothing to merge: name at least one image"));
        }
        let mut names = Vec::new();
        for tag in tags {
            let full = normalize_name(tag)?;
            if Reference::parse(&full).is_ok_and(|r| r.digest().is_some()) {
                return Err(merge_err(format!(
                    "cannot tag the merged image as `{full}`: a name must be `name[:tag]` without a digest"
                )));
            }
            names.push(full);
        }
        if names.is_empty() {
            return Err(merge_err("the merged image needs a name: give -t NAME:TAG"));
        }
        let mut inputs = Vec::new();
        for source in sources {
            let image = self.resolve(source)?;
            let parts = self.parts(&image)?;
            inputs.push((image, parts));
        }
        let any_index = inputs
            .iter()
            .any(|(i, _)| matches!(i.manifest.parsed, ParsedManifest::Index(_)));
        let platforms = common_platforms(&inputs)?;
        let kind = merged_kind(&inputs)?;

        let guard = self.write_guard()?;
        let mut merged = Vec::new();
        for platform in &platforms {
            let parts: Vec<(&str, &Part)> = inputs
                .iter()
                .filter_map(|(image, parts)| {
                    parts
                        .iter()
                        .find(|p| same_platform(&p.platform, platform))
                        .map(|p| (image.name.as_str(), p))
                })
                .collect();
            let one = self.merge_platform(platform, &parts, kind)?;
            self.layout.write_blob_bytes(&one.config_bytes)?;
            self.layout.write_manifest(&one.manifest)?;
            merged.push((platform.clone(), one));
        }
        let (layers, duplicates) = merged
            .first()
            .map_or((0, 0), |(_, m)| (m.layers, m.duplicates));
        let top = if any_index {
            let children = merged
                .iter()
                .map(|(platform, m)| {
                    let mut d = m.manifest.descriptor();
                    d.platform = Some(platform.clone());
                    d
                })
                .collect();
            let raw = RawManifest::from_created(&ImageIndex::new(children), media_type::OCI_INDEX)
                .map_err(|source| StoreError::Manifest {
                    what: "merged index".into(),
                    source,
                })?;
            self.layout.write_manifest(&raw)?;
            raw
        } else {
            merged
                .into_iter()
                .next()
                .map(|(_, m)| m.manifest)
                .ok_or_else(|| merge_err("the inputs have no platform image"))?
        };
        for name in &names {
            self.layout.set_tag(name, top.descriptor())?;
        }
        drop(guard);
        Ok(MergeReport {
            names,
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            kind,
            sources: inputs
                .iter()
                .map(|(i, _)| (i.name.clone(), i.descriptor.digest.clone()))
                .collect(),
            platforms: platforms.iter().map(Platform::to_string).collect(),
            layers,
            duplicate_layers: duplicates,
        })
    }

    /// The platform images of `image`: itself, or the children of an index (attestations skipped).
    fn parts(&self, image: &Image) -> Result<Vec<Part>, StoreError> {
        let children: Vec<(Option<Platform>, RawManifest)> = match &image.manifest.parsed {
            ParsedManifest::Image(_) => vec![(None, image.manifest.clone())],
            ParsedManifest::Index(index) => {
                let mut out = Vec::new();
                for child in &index.manifests {
                    if child
                        .platform
                        .as_ref()
                        .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
                    {
                        continue;
                    }
                    out.push((child.platform.clone(), self.layout.read_manifest(child)?));
                }
                out
            }
        };
        let mut parts = Vec::new();
        for (platform, raw) in children {
            let ParsedManifest::Image(manifest) = raw.parsed else {
                return Err(merge_err(format!(
                    "image `{}`: manifest {} is an index nested in an index",
                    image.name, raw.digest
                )));
            };
            let bytes = self.layout.read_blob_bytes(&manifest.config.digest)?;
            let config = parse_config(&bytes, &manifest.config).ok_or_else(|| {
                merge_err(format!(
                    "image `{}`: config {} ({}) is not an image config; only images can be merged",
                    image.name, manifest.config.digest, manifest.config.media_type
                ))
            })?;
            if config.rootfs.diff_ids.len() != manifest.layers.len() {
                return Err(merge_err(format!(
                    "image `{}`: its manifest has {} layers but its config lists {} diff_ids",
                    image.name,
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            for layer in &manifest.layers {
                if !self.layout.has_blob(&layer.digest) && layer.urls.is_empty() {
                    return Err(merge_err(format!(
                        "image `{}`: layer {} is not in the local store; pull the image again",
                        image.name, layer.digest
                    )));
                }
            }
            let platform = platform.unwrap_or_else(|| {
                let mut p = Platform::new(config.os.clone(), config.architecture.clone());
                p.variant = config.variant.clone();
                p
            });
            parts.push(Part {
                platform,
                manifest,
                config,
            });
        }
        Ok(parts)
    }

    fn merge_platform(
        &self,
        platform: &Platform,
        parts: &[(&str, &Part)],
        kind: ImageKind,
    ) -> Result<Merged, StoreError> {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        let mut seen = BTreeSet::new();
        let mut duplicates = 0;
        let mut labels = BTreeMap::new();
        let mut env: Vec<(String, String)> = Vec::new();
        let mut cmd = Vec::new();
        let mut merged = ContainerConfig::default();
        let mut created: Option<String> = None;
        for (name, part) in parts {
            let mut kept = Vec::new();
            for (layer, diff_id) in part
                .manifest
                .layers
                .iter()
                .zip(&part.config.rootfs.diff_ids)
            {
                let new = seen.insert(diff_id.clone());
                kept.push(new);
                if new {
                    let mut layer = layer.clone();
                    layer.media_type = oci_layer_type(&layer.media_type);
                    layers.push(layer);
                    diff_ids.push(diff_id.clone());
                } else {
                    duplicates += 1;
                }
            }
            merge_history(&mut history, &part.config.history, &kept, name);
            if let Some(c) = &part.config.created
                && created
                    .as_deref()
                    .is_none_or(|old| created_key(c) > created_key(old))
            {
                created = Some(c.clone());
            }
            let Some(config) = &part.config.config else {
                continue;
            };
            labels.extend(config.labels.clone());
            for entry in &config.env {
                let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                match env.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value.to_string(),
                    None => env.push((key.to_string(), value.to_string())),
                }
            }
            cmd.extend(commands(config).cloned());
            merged.exposed_ports.extend(config.exposed_ports.clone());
            merged.volumes.extend(config.volumes.clone());
            if config.working_dir.is_some() {
                merged.working_dir = config.working_dir.clone();
            }
            if config.user.is_some() {
                merged.user = config.user.clone();
            }
        }
        for key in TYPE_LABELS {
            if let Some(value) = labels.get_mut(key) {
                *value = kind.as_str().to_string();
            }
        }
        let sources: Vec<&str> = parts.iter().map(|(n, _)| *n).collect();
        history.push(History {
            created: created.clone(),
            created_by: Some(format!("sealos merge {}", sources.join(" "))),
            empty_layer: true,
            ..History::default()
        });
        merged.labels = labels;
        merged.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        merged.cmd = cmd;
        let config = ImageConfig {
            created,
            author: None,
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            variant: platform.variant.clone(),
            config: Some(merged),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history,
        };
        let manifest_err = |what: &str| {
            let what = what.to_string();
            move |source| StoreError::Manifest { what, source }
        };
        let config_bytes =
            formats::manifest::to_canonical_json(&config).map_err(manifest_err("merged config"))?;
        let layer_count = layers.len();
        let manifest = ImageManifest::new(
            Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes),
            layers,
        );
        let manifest = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST)
            .map_err(manifest_err("merged manifest"))?;
        Ok(Merged {
            manifest,
            config_bytes,
            layers: layer_count,
            duplicates,
        })
    }
}

/// Appends `from` (one input's history) to `history`, without the entries of left-out layers; `kept`
/// says, per layer, whether it was kept. Layers the history does not describe get a plain entry.
fn merge_history(history: &mut Vec<History>, from: &[History], kept: &[bool], name: &str) {
    let mut layer = 0;
    for entry in from {
        if entry.empty_layer {
            history.push(entry.clone());
            continue;
        }
        if layer >= kept.len() {
            break;
        }
        if kept[layer] {
            history.push(entry.clone());
        }
        layer += 1;
    }
    for keep in &kept[layer.min(kept.len())..] {
        if *keep {
            history.push(History {
                created_by: Some(format!("layer of {name}")),
                ..History::default()
            });
        }
    }
}

/// The platforms to merge for: the one shared platform of single-platform inputs, or every platform all
/// inputs have (in the first index's order).
fn common_platforms(inputs: &[(Image, Vec<Part>)]) -> Result<Vec<Platform>, StoreError> {
    let Some((first, first_parts)) = inputs
        .iter()
        .find(|(i, _)| matches!(i.manifest.parsed, ParsedManifest::Index(_)))
        .or(inputs.first())
    else {
        return Ok(Vec::new());
    };
    let mut platforms = Vec::new();
    for part in first_parts {
        let missing: Vec<&str> = inputs
            .iter()
            .filter(|(_, parts)| {
                !parts
                    .iter()
                    .any(|p| same_platform(&p.platform, &part.platform))
            })
            .map(|(i, _)| i.name.as_str())
            .collect();
        if missing.is_empty() {
            platforms.push(part.platform.clone());
        } else if !matches!(first.manifest.parsed, ParsedManifest::Index(_)) {
            let all: Vec<String> = inputs
                .iter()
                .map(|(i, parts)| {
                    let ps: Vec<String> = parts.iter().map(|p| p.platform.to_string()).collect();
                    format!("{} ({})", i.name, ps.join(", "))
                })
                .collect();
            return Err(merge_err(format!(
                "the images are for different platforms: {}; merge images of one platform",
                all.join(", ")
            )));
        }
    }
    if platforms.is_empty() {
        return Err(merge_err(format!(
            "no platform is common to all images (`{}` has {}); merge images that share a platform",
            first.name,
            first_parts
                .iter()
                .map(|p| p.platform.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(platforms)
}

/// The merged type, or why these types cannot be merged.
fn merged_kind(inputs: &[(Image, Vec<Part>)]) -> Result<ImageKind, StoreError> {
    let mut kinds = Vec::new();
    for (image, parts) in inputs {
        for part in parts {
            let config = part.config.config.clone().unwrap_or_default();
            let kind = ImageKind::from_labels(&config.labels).map_err(|UnknownImageKind(value)| {
                merge_err(format!(
                    "image `{}` has the unknown type `{value}` (label {}): it must be rootfs, patch or \
                     application",
                    image.name,
                    TYPE_LABELS.join(" or ")
                ))
            })?;
            let has_command = commands(&config).next().is_some();
            kinds.push((image.name.as_str(), kind, has_command));
        }
    }
    let find = |k: ImageKind| kinds.iter().find(|(_, kind, _)| *kind == k);
    let rootfs = find(ImageKind::Rootfs);
    let patch = find(ImageKind::Patch);
    let application = find(ImageKind::Application);
    if let (Some(p), Some(a), None) = (patch, application, rootfs) {
        return Err(merge_err(format!(
            "cannot merge patch image `{}` with application image `{}`: patch files go into the rootfs of \
             every host, application files into the application's directory on the first master; apply \
             them one after the other with `sealos run`",
            p.0, a.0
        )));
    }
    if let (Some(r), Some(p)) = (
        rootfs,
        kinds
            .iter()
            .find(|(_, kind, command)| *kind == ImageKind::Patch && *command),
    ) {
        return Err(merge_err(format!(
            "cannot merge patch image `{}` (it has a command) with rootfs image `{}`: a patch's command runs \
             on every host, a rootfs image's would not; apply the patch with `sealos run` after the rootfs",
            p.0, r.0
        )));
    }
    Ok(kinds
        .iter()
        .map(|(_, kind, _)| *kind)
        .max()
        .unwrap_or(ImageKind::Application))
}

#[cfg(test)]
mod tests;
