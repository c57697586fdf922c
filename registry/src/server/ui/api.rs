//! What the hub's JSON API answers, read from [`Storage`] only: repositories, a repository's tags, and one image
//! (manifest or index) with its configuration, layers, referrers, and for a cluster image its type, version and
//! embedded images. Who may see what is decided before these are called (see [`super`]); every blob read here is
//! one the repository links, so a repository's page never shows another repository's data.

use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageConfig, ParsedManifest, Platform, RawManifest};
use formats::media_type;
use serde::Serialize;

use crate::server::error::ApiError;
use crate::server::manifests;
use crate::storage::{MANIFEST_LIMIT, Storage, StorageError};
use axum::http::StatusCode;

use formats::cluster_image::{
    EMBEDDED_IMAGE_ANNOTATION, FORMAT_VERSION_LABEL, VERSION_LABEL, image_type,
};

/// Largest image config read (configs are small JSON; a larger one is shown without its details).
const CONFIG_LIMIT: u64 = MANIFEST_LIMIT;

/// One repository in the list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepositoryEntry {
    /// Its name.
    pub name: String,
    /// How many tags it has.
    pub tags: usize,
}

/// One tag of a repository.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TagEntry {
    /// The tag.
    pub tag: String,
    /// The manifest or index it points to.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Bytes of every config and layer it references (of every platform, for an index).
    pub size: u64,
    /// Its platforms (`linux/amd64`), attestation entries (`unknown/unknown`) left out.
    pub platforms: Vec<String>,
    /// The newest `created` of its configs (RFC 3339), when they say.
    pub created: Option<String>,
}

/// The runtime settings of an image's config.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunConfig {
    /// The platform the config is for.
    pub platform: String,
    /// ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// CMD.
    pub cmd: Vec<String>,
    /// ENV, `KEY=VALUE`.
    pub env: Vec<String>,
    /// WORKDIR.
    pub working_dir: Option<String>,
    /// Labels, sorted by key.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One layer of an image manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LayerEntry {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The instruction that made it (the config's history), when known.
    pub created_by: Option<String>,
    /// Its annotations.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// An image embedded in a cluster image, from its layer's annotation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EmbeddedImage {
    /// The image's reference without digest (`docker.io/library/nginx:1.25`).
    pub name: String,
    /// The embedded manifest or index.
    pub digest: String,
    /// The cluster image's platforms whose layers hold it.
    pub platforms: Vec<String>,
    /// The size of the layer holding it (blobs it shares with other embedded images are in a shared layer).
    pub size: u64,
}

/// What makes a cluster image one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `rootfs`, `patch`, `application`...: the type label (`formats::cluster_image::image_type`).
    #[serde(rename = "type")]
    pub kind: String,
    /// What the image installs: the `version` label, else `sealos.io.version`.
    pub version: Option<String>,
    /// The images its embedded registry holds.
    pub embedded: Vec<EmbeddedImage>,
}

/// A child manifest of an index.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChildEntry {
    /// Its digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The manifest's own size.
    pub size: u64,
    /// Its platform, when the index says.
    pub platform: Option<String>,
    /// Whether the repository holds it (an index may be stored with some platforms only).
    pub present: bool,
}

/// A manifest that refers to the image (a signature, an SBOM, an attestation).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerEntry {
    /// Its digest.
    pub digest: String,
    /// Its artifact type (or, for an image manifest without one, its config's media type).
    pub artifact_type: Option<String>,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its annotations.
    pub annotations: Option<serde_json::Value>,
}

/// The copyable command lines for an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Commands {
    /// `sealos pull HOST/NAME:TAG`.
    pub pull: String,
    /// `sealos run HOST/NAME:TAG`.
    pub run: String,
}

/// Everything the image page shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// The repository.
    pub repository: String,
    /// The tag or digest asked for.
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
    /// `image` or `index`.
    pub kind: &'static str,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's `artifactType`, when it has one.
    pub artifact_type: Option<String>,
    /// Bytes of every config and layer it references.
    pub size: u64,
    /// Its platforms.
    pub platforms: Vec<String>,
    /// The newest `created` of its configs.
    pub created: Option<String>,
    /// The runtime settings (of the first platform the repository holds, for an index).
    pub config: Option<RunConfig>,
    /// Type, version and embedded images, when it is a cluster image.
    pub cluster: Option<ClusterInfo>,
    /// Its layers (an image manifest only).
    pub layers: Vec<LayerEntry>,
    /// Its child manifests (an index only).
    pub manifests: Vec<ChildEntry>,
    /// Manifests whose subject it is.
    pub referrers: Vec<ReferrerEntry>,
    /// Copyable `sealos pull` and `sealos run` lines.
    pub commands: Commands,
}

/// Repositories whose name contains `query` (case-insensitively; all without one) among those `visible`
/// allows, with their tag counts.
pub async fn repositories(
    storage: &dyn Storage,
    query: Option<&str>,
    visible: impl Fn(&str) -> bool,
) -> Result<Vec<RepositoryEntry>, ApiError> {
    let needle = query.map(str::trim).unwrap_or("").to_lowercase();
    let mut out = Vec::new();
    for name in storage.list_repositories().await? {
        if !visible(&name) || !name.to_lowercase().contains(&needle) {
            continue;
        }
        let tags = match storage.list_tags(&name).await {
            Ok(t) => t.len(),
            Err(StorageError::NameUnknown(_)) => 0,
            Err(e) => return Err(e.into()),
        };
        out.push(RepositoryEntry { name, tags });
    }
    Ok(out)
}

/// Every tag of `repository` with what it points to.
pub async fn tags(storage: &dyn Storage, repository: &str) -> Result<Vec<TagEntry>, ApiError> {
    let names = storage.list_tags(repository).await?;
    let mut out = Vec::new();
    for tag in names {
        let Some(digest) = storage.resolve_tag(repository, &tag).await? else {
            continue;
        };
        let manifest = read_manifest(storage, repository, &digest).await?;
        let summary = summarize(storage, repository, &manifest).await?;
        out.push(TagEntry {
            tag,
            digest: digest.to_string(),
            media_type: manifest.media_type.clone(),
            size: summary.size,
            platforms: summary.platforms,
            created: summary.created,
        });
    }
    Ok(out)
}

/// The image `reference` (tag or digest) of `repository`; `host` is the registry as the browser reached it.
pub async fn image(
    storage: &dyn Storage,
    repository: &str,
    reference: &str,
    host: &str,
) -> Result<ImageView, ApiError> {
    let digest = manifests::resolve(storage, repository, reference).await?;
    let manifest = read_manifest(storage, repository, &digest).await?;
    let summary = summarize(storage, repository, &manifest).await?;
    let mut layers = Vec::new();
    let mut manifests = Vec::new();
    let mut configs: Vec<(Option<ImageConfig>, Vec<Descriptor>)> = Vec::new();
    match &manifest.parsed {
        ParsedManifest::Image(m) => {
            let config = read_config(storage, repository, &m.config).await?;
            layers = layer_entries(&m.layers, config.as_ref());
            configs.push((config, m.layers.clone()));
        }
        ParsedManifest::Index(index) => {
            for child in &index.manifests {
                let present = storage.has_revision(repository, &child.digest).await?;
                manifests.push(ChildEntry {
                    digest: child.digest.to_string(),
                    media_type: child.media_type.clone(),
                    size: child.size,
                    platform: child.platform.as_ref().map(Platform::to_string),
                    present,
                });
                if !present || is_attestation(child) {
                    continue;
                }
                let raw = read_manifest(storage, repository, &child.digest).await?;
                if let ParsedManifest::Image(m) = &raw.parsed {
                    let config = read_config(storage, repository, &m.config).await?;
                    configs.push((config, m.layers.clone()));
                }
            }
        }
    }
    let config = configs.iter().find_map(|(c, _)| c.as_ref()).map(run_config);
    let cluster = cluster_info(&configs);
    let referrers = if storage.repository_exists(repository).await? {
        storage.referrers(repository, &digest).await?
    } else {
        Vec::new()
    };
    let shown = if reference.contains(':') {
        format!("{host}/{repository}@{reference}")
    } else {
        format!("{host}/{repository}:{reference}")
    };
    Ok(ImageView {
        repository: repository.to_string(),
        reference: reference.to_string(),
        digest: digest.to_string(),
        kind: match manifest.parsed {
            ParsedManifest::Image(_) => "image",
            ParsedManifest::Index(_) => "index",
        },
        media_type: manifest.media_type.clone(),
        artifact_type: manifest.artifact_type().map(str::to_string),
        size: summary.size,
        platforms: summary.platforms,
        created: summary.created,
        config,
        cluster,
        layers,
        manifests,
        referrers: referrers
            .into_iter()
            .map(|r| ReferrerEntry {
                digest: r.digest.to_string(),
                artifact_type: r.artifact_type,
                media_type: r.media_type,
                size: r.size,
                annotations: r.annotations,
            })
            .collect(),
        commands: Commands {
            pull: format!("sealos pull {shown}"),
            run: format!("sealos run {shown}"),
        },
    })
}

async fn read_manifest(
    storage: &dyn Storage,
    repository: &str,
    digest: &Digest,
) -> Result<RawManifest, ApiError> {
    let bytes = storage
        .read_blob_bytes(digest, MANIFEST_LIMIT)
        .await
        .map_err(|e| match e {
            StorageError::BlobUnknown(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!(
                    "manifest `{digest}` is linked in `{repository}` but its content is missing"
                ),
            ),
            e => e.into(),
        })?;
    RawManifest::from_bytes(bytes.to_vec(), None).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MANIFEST_INVALID",
            format!("stored manifest `{digest}` of `{repository}` cannot be read: {e}"),
        )
    })
}

/// The image config `desc` names, when `repository` links it and it parses as one (an artifact's config
/// is not).
async fn read_config(
    storage: &dyn Storage,
    repository: &str,
    desc: &Descriptor,
) -> Result<Option<ImageConfig>, ApiError> {
    let image_config =
        [media_type::OCI_CONFIG, media_type::DOCKER_CONFIG].contains(&desc.media_type.as_str());
    if !image_config
        || desc.size > CONFIG_LIMIT
        || !storage.has_layer(repository, &desc.digest).await?
    {
        return Ok(None);
    }
    match storage.read_blob_bytes(&desc.digest, CONFIG_LIMIT).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(StorageError::BlobUnknown(_) | StorageError::TooLarge { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Size, platforms and creation time of a manifest or index.
struct Summary {
    size: u64,
    platforms: Vec<String>,
    created: Option<String>,
}

async fn summarize(
    storage: &dyn Storage,
    repository: &str,
    manifest: &RawManifest,
) -> Result<Summary, ApiError> {
    let mut summary = Summary {
        size: 0,
        platforms: Vec::new(),
        created: None,
    };
    match &manifest.parsed {
        ParsedManifest::Image(m) => {
            summary.size = image_size(m.config.size, &m.layers);
            if let Some(config) = read_config(storage, repository, &m.config).await? {
                summary.platforms.push(config_platform(&config));
                summary.created = config.created;
            }
        }
        ParsedManifest::Index(index) => {
            for child in index.manifests.iter().filter(|c| !is_attestation(c)) {
                if let Some(p) = &child.platform {
                    summary.platforms.push(p.to_string());
                }
                if !storage.has_revision(repository, &child.digest).await? {
                    continue;
                }
                let raw = read_manifest(storage, repository, &child.digest).await?;
                if let ParsedManifest::Image(m) = &raw.parsed {
                    summary.size += image_size(m.config.size, &m.layers);
                    let config = read_config(storage, repository, &m.config).await?;
                    let created = config.and_then(|c| c.created);
                    if created > summary.created {
                        summary.created = created;
                    }
                }
            }
        }
    }
    Ok(summary)
}

fn image_size(config: u64, layers: &[Descriptor]) -> u64 {
    layers.iter().fold(config, |n, l| n.saturating_add(l.size))
}

/// An index entry for an attestation manifest (buildx writes them with platform `unknown/unknown`).
fn is_attestation(child: &Descriptor) -> bool {
    child
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

fn config_platform(config: &ImageConfig) -> String {
    let mut p = Platform::new(config.os.clone(), config.architecture.clone());
    p.variant = config.variant.clone();
    p.to_string()
}

fn run_config(config: &ImageConfig) -> RunConfig {
    let c = config.config.clone().unwrap_or_default();
    RunConfig {
        platform: config_platform(config),
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        env: c.env,
        working_dir: c.working_dir,
        labels: c.labels,
    }
}

/// The layers with the instruction that made each, from the config's history (entries that made no layer
/// skipped).
fn layer_entries(layers: &[Descriptor], config: Option<&ImageConfig>) -> Vec<LayerEntry> {
    let mut made_by = config
        .map(|c| {
            c.history
                .iter()
                .filter(|h| !h.empty_layer)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter();
    layers
        .iter()
        .map(|l| LayerEntry {
            digest: l.digest.to_string(),
            media_type: l.media_type.clone(),
            size: l.size,
            created_by: made_by.next().and_then(|h| h.created_by.clone()),
            annotations: l.annotations.clone(),
        })
        .collect()
}

/// The cluster-image facts of an image's configs (one per platform) and layers: none unless a config carries
/// a type label. Embedded images are listed once per image digest, with the platforms whose layers hold them.
fn cluster_info(configs: &[(Option<ImageConfig>, Vec<Descriptor>)]) -> Option<ClusterInfo> {
    let labels = configs
        .iter()
        .find_map(|(c, _)| c.as_ref()?.config.as_ref().map(|c| &c.labels))?;
    let kind = image_type(labels)?.to_string();
    // What the image installs (`version`), else the format's version for images that set only that.
    let version = [VERSION_LABEL, FORMAT_VERSION_LABEL]
        .iter()
        .find_map(|k| labels.get(*k))
        .cloned();
    let mut embedded: Vec<EmbeddedImage> = Vec::new();
    for (config, layers) in configs {
        let platform = config.as_ref().map(config_platform);
        for layer in layers {
            let Some((name, digest)) = layer
                .annotations
                .get(EMBEDDED_IMAGE_ANNOTATION)
                .and_then(|v| v.rsplit_once('@'))
            else {
                continue;
            };
            let entry = match embedded
                .iter_mut()
                .find(|e| e.name == name && e.digest == digest)
            {
                Some(e) => e,
                None => {
                    embedded.push(EmbeddedImage {
                        name: name.to_string(),
                        digest: digest.to_string(),
                        platforms: Vec::new(),
                        size: layer.size,
                    });
                    embedded.last_mut()?
                }
            };
            if let Some(p) = &platform
                && !entry.platforms.contains(p)
            {
                entry.platforms.push(p.clone());
            }
        }
    }
    Some(ClusterInfo {
        kind,
        version,
        embedded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::manifest::ContainerConfig;

    fn config(arch: &str, labels: &[(&str, &str)]) -> ImageConfig {
        ImageConfig {
            os: "linux".into(),
            architecture: arch.into(),
            config: Some(ContainerConfig {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..ContainerConfig::default()
            }),
            ..ImageConfig::default()
        }
    }

    fn embedded_layer(image: &str, size: u64) -> Descriptor {
        let mut d = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar",
            Digest::sha256_of(image.as_bytes()),
            size,
        );
        d.annotations
            .insert(EMBEDDED_IMAGE_ANNOTATION.into(), image.into());
        d
    }

    #[test]
    fn embedded_images_are_merged_across_platforms_by_digest() {
        let both = "docker.io/library/nginx:1.25@sha256:aa";
        let configs = vec![
            (
                Some(config(
                    "amd64",
                    &[
                        ("sealos.io.type", "application"),
                        ("sealos.io.version", "v1beta1"),
                    ],
                )),
                vec![
                    embedded_layer(both, 10),
                    embedded_layer("pause:3.9@sha256:bb", 3),
                ],
            ),
            (
                Some(config("arm64", &[("sealos.io.type", "application")])),
                vec![
                    embedded_layer(both, 10),
                    embedded_layer("pause:3.9@sha256:cc", 4),
                ],
            ),
        ];
        let info = cluster_info(&configs).expect("a cluster image");
        assert_eq!(info.kind, "application");
        assert_eq!(info.version.as_deref(), Some("v1beta1"));
        let got: Vec<(&str, &str, Vec<&str>, u64)> = info
            .embedded
            .iter()
            .map(|e| {
                (
                    e.name.as_str(),
                    e.digest.as_str(),
                    e.platforms.iter().map(String::as_str).collect(),
                    e.size,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "docker.io/library/nginx:1.25",
                    "sha256:aa",
                    vec!["linux/amd64", "linux/arm64"],
                    10
                ),
                ("pause:3.9", "sha256:bb", vec!["linux/amd64"], 3),
                ("pause:3.9", "sha256:cc", vec!["linux/arm64"], 4),
            ]
        );
    }

    #[test]
    fn an_image_without_a_type_label_is_no_cluster_image() {
        let configs = vec![(Some(config("amd64", &[("a", "b")])), Vec::new())];
        assert_eq!(cluster_info(&configs), None);
        assert_eq!(cluster_info(&[(None, Vec::new())]), None);
    }

    #[test]
    fn layers_get_the_instruction_of_their_history_entry() {
        let mut c = config("amd64", &[]);
        c.history = vec![
            formats::manifest::History {
                created_by: Some("ENV A=1".into()),
                empty_layer: true,
                ..Default::default()
            },
            formats::manifest::History {
                created_by: Some("COPY . .".into()),
                ..Default::default()
            },
        ];
        let layers = layer_entries(&[embedded_layer("x@sha256:00", 1)], Some(&c));
        assert_eq!(layers[0].created_by.as_deref(), Some("COPY . ."));
    }
}
