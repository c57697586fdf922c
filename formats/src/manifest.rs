//! Image manifests, indexes, descriptors and configs (OCI and Docker schema 2), kept byte-exact.
//!
//! A manifest's digest is the hash of the exact bytes a registry or layout served, so [`RawManifest`] keeps
//! those bytes beside the parsed form and never re-serializes a manifest it received. Manifests this crate
//! creates are written once in canonical JSON ([`to_canonical_json`]: sorted keys, no whitespace) by
//! [`RawManifest::from_created`]. Optional fields are omitted when empty, as OCI tooling expects.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::media_type;

/// Why a manifest, descriptor or platform was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not well-formed JSON.
    #[error("manifest is not valid JSON: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The JSON is well formed but is not an object.
    #[error("manifest must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// A field is missing or has the wrong type or value.
    #[error("manifest field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The JSON field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither the content type, nor `mediaType`, nor the shape says whether this is a manifest or an index.
    #[error(
        "cannot tell whether this is an image manifest or an index: no known media type and neither \
         `manifests` nor `config`+`layers` fields"
    )]
    UnknownKind,
    /// The media type is not an image manifest or index this crate understands.
    #[error(
        "unsupported manifest media type `{0}` (supported: OCI image manifest/index, Docker schema 2 \
         manifest/manifest list)"
    )]
    UnsupportedMediaType(String),
    /// The content type and the document's own `mediaType` name different kinds of manifest.
    #[error("content type `{content_type}` contradicts the manifest's mediaType `{declared}`")]
    MediaTypeConflict {
        /// The content type given by the caller (for example an HTTP `Content-Type`).
        content_type: String,
        /// The `mediaType` field inside the JSON.
        declared: String,
    },
    /// A value could not be serialized to JSON.
    #[error("cannot serialize to JSON: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// Deserializes `null` as the type's default (Docker writes `"Cmd": null`, some tools `"annotations": null`).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A reference to content by media type, digest and size (OCI descriptor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// Alternative locations the content may be fetched from.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the referenced manifest (in an index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the referenced manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The content itself, base64-encoded, embedded for small blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The descriptor of `bytes` with the given media type (sha256).
    pub fn for_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    /// The OCI empty descriptor: the blob `{}` with media type `application/vnd.oci.empty.v1+json`.
    pub fn empty() -> Self {
        Descriptor::for_bytes(media_type::OCI_EMPTY, media_type::OCI_EMPTY_CONTENT)
    }
}

/// A platform text (a `--platform` value, a `FROM --platform=`) that is not `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform `{platform}`: {reason}; write os/arch[/variant], like linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformError {
    /// The rejected text.
    pub platform: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The CPU architectures an image can be built for, in Go's (OCI's) spelling: the one list of them.
pub const KNOWN_ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
];

/// A platform whose architecture is not one of [`KNOWN_ARCHITECTURES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture `{architecture}` in platform `{platform}`; known architectures: {known}"
)]
pub struct UnknownArchitecture {
    /// The platform as given.
    pub platform: String,
    /// Its architecture.
    pub architecture: String,
    /// [`KNOWN_ARCHITECTURES`], comma separated.
    pub known: String,
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's spelling (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system in Go's spelling (`linux`).
    pub os: String,
    /// Operating system version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required operating system features.
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// A platform with operating system and architecture only.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Platform {
            architecture: architecture.into(),
            os: os.into(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        }
    }

    /// Parses `os/arch` or `os/arch/variant`, as in `linux/arm64/v8`: the one parser of platform texts.
    /// Surrounding blanks are ignored and the parts are lowercased (`Linux/AMD64` is `linux/amd64`).
    pub fn parse(text: &str) -> Result<Self, PlatformError> {
        let bad = |reason| PlatformError {
            platform: text.to_string(),
            reason,
        };
        let parts: Vec<String> = text
            .trim()
            .split('/')
            .map(str::to_ascii_lowercase)
            .collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] => (os, arch, None),
            [os, arch, variant] => (os, arch, Some(variant)),
            _ => return Err(bad("wrong number of `/`-separated parts")),
        };
        if parts.iter().any(String::is_empty) {
            return Err(bad("empty part"));
        }
        if parts.iter().any(|p| {
            !p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
        }) {
            return Err(bad(
                "parts may contain only letters, digits, `.`, `_` and `-`",
            ));
        }
        let mut platform = Platform::new(os.as_str(), architecture.as_str());
        platform.variant = variant.cloned();
        Ok(platform)
    }

    /// Ok when the architecture is one of [`KNOWN_ARCHITECTURES`] (a platform to build for must be).
    pub fn check_known(&self) -> Result<(), UnknownArchitecture> {
        if KNOWN_ARCHITECTURES.contains(&self.architecture.as_str()) {
            return Ok(());
        }
        Err(UnknownArchitecture {
            platform: self.to_string(),
            architecture: self.architecture.clone(),
            known: KNOWN_ARCHITECTURES.join(", "),
        })
    }

    /// The platform of the running host, in OCI (Go) spelling.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest: a config blob and an ordered list of layers (OCI, or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of artifact this manifest describes, when it is not a runnable image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image configuration.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// An OCI image manifest with the given config and layers.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image index: a list of manifests, usually one per platform (OCI, or Docker manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of artifact this index describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The child manifests.
    #[serde(default, deserialize_with = "null_as_default")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (referrers API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An OCI image index listing `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An empty JSON object, the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// The runtime defaults of an image (the `config` object of an image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// User (name or uid, optionally `:group`) the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports to expose, as `port/proto`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, EmptyObject>,
    /// Environment, as `NAME=value`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// The command prefix.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    /// Default arguments.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    /// Paths that are volumes.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, EmptyObject>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Arbitrary labels.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The layer chain of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, base first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One step of an image's build history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free-form comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step produced no layer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// An OCI image configuration (also parses Docker image configs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// Operating system version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Runtime defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layer chain.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
}

/// A parsed manifest: a single image or an index of images.
// One value per manifest, never held in bulk, so the size difference between variants does not matter
// and unboxed variants keep pattern matching plain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedManifest {
    /// An image manifest (OCI or Docker schema 2).
    Image(ImageManifest),
    /// An image index (OCI or Docker manifest list).
    Index(ImageIndex),
}

/// A manifest with the exact bytes it was received as, their digest, its media type and its parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The exact bytes received or written; the digest is over these.
    pub bytes: Vec<u8>,
    /// The sha256 digest of `bytes`.
    pub digest: Digest,
    /// The media type (without parameters).
    pub media_type: String,
    /// The parsed content.
    pub parsed: ParsedManifest,
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn known_kind(media_type: &str) -> bool {
    media_type::is_manifest(media_type) || media_type::is_index(media_type)
}

fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

impl RawManifest {
    /// Parses `bytes` as a manifest or index, keeping them exactly.
    ///
    /// The media type comes from `content_type` when that names a manifest or index, else from the JSON
    /// `mediaType` field, else from the shape (`manifests` means index, `config` and `layers` mean image).
    pub fn from_bytes(bytes: Vec<u8>, content_type: Option<&str>) -> Result<Self, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(ManifestError::Malformed)?;
        let obj = match &value {
            serde_json::Value::Object(o) => o,
            other => return Err(ManifestError::NotAnObject(json_kind(other))),
        };
        match obj.get("schemaVersion") {
            None => {
                return Err(ManifestError::InvalidField {
                    field: "schemaVersion".into(),
                    reason: "missing (must be 2)".into(),
                });
            }
            Some(v) if v.as_u64() == Some(2) => {}
            Some(v) => {
                return Err(ManifestError::InvalidField {
                    field: "schemaVersion".into(),
                    reason: format!("is {v}, must be 2 (schema 1 manifests are not supported)"),
                });
            }
        }
        let declared = match obj.get("mediaType") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(essence(s)),
            Some(other) => {
                return Err(ManifestError::InvalidField {
                    field: "mediaType".into(),
                    reason: format!("must be a string, found {}", json_kind(other)),
                });
            }
        };
        let given = content_type.map(essence).filter(|c| known_kind(c));
        if let (Some(given), Some(declared)) = (&given, &declared)
            && given != declared
        {
            return Err(ManifestError::MediaTypeConflict {
                content_type: given.clone(),
                declared: declared.clone(),
            });
        }
        let media_type = match given.or(declared) {
            Some(m) if known_kind(&m) => m,
            Some(m) => return Err(ManifestError::UnsupportedMediaType(m)),
            None if obj.contains_key("manifests") => media_type::OCI_INDEX.to_string(),
            None if obj.contains_key("config") && obj.contains_key("layers") => {
                media_type::OCI_MANIFEST.to_string()
            }
            None => return Err(ManifestError::UnknownKind),
        };
        let parsed = if media_type::is_index(&media_type) {
            require_array(obj, "manifests")?;
            ParsedManifest::Index(deserialize(value)?)
        } else {
            if !obj.contains_key("config") {
                return Err(ManifestError::InvalidField {
                    field: "config".into(),
                    reason: "missing (an image manifest needs a config descriptor)".into(),
                });
            }
            require_array(obj, "layers")?;
            ParsedManifest::Image(deserialize(value)?)
        };
        let digest = Digest::sha256_of(&bytes);
        Ok(RawManifest {
            bytes,
            digest,
            media_type,
            parsed,
        })
    }

    /// Serializes `manifest` once in canonical JSON and wraps the result; the digest is over those bytes.
    pub fn from_created<T: Serialize>(
        manifest: &T,
        media_type: &str,
    ) -> Result<Self, ManifestError> {
        let bytes = to_canonical_json(manifest)?;
        RawManifest::from_bytes(bytes, Some(media_type))
    }

    /// The descriptor that points at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        );
        d.artifact_type = self.artifact_type().map(str::to_string);
        d
    }

    /// The blobs this manifest references directly: config then layers, or an index's child manifests.
    pub fn referenced_blobs(&self) -> Vec<&Descriptor> {
        match &self.parsed {
            ParsedManifest::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
            ParsedManifest::Index(i) => i.manifests.iter().collect(),
        }
    }

    /// The manifest this one refers to, if any.
    pub fn subject(&self) -> Option<&Descriptor> {
        match &self.parsed {
            ParsedManifest::Image(m) => m.subject.as_ref(),
            ParsedManifest::Index(i) => i.subject.as_ref(),
        }
    }

    /// The artifact type: `artifactType` when set, else for an image manifest the config media type when
    /// that is not an image config (the rule of the OCI referrers API).
    pub fn artifact_type(&self) -> Option<&str> {
        match &self.parsed {
            ParsedManifest::Image(m) => m.artifact_type.as_deref().or_else(|| {
                let c = m.config.media_type.as_str();
                (c != media_type::OCI_CONFIG
                    && c != media_type::DOCKER_CONFIG
                    && c != media_type::OCI_EMPTY)
                    .then_some(c)
            }),
            ParsedManifest::Index(i) => i.artifact_type.as_deref(),
        }
    }
}

fn require_array(
    obj: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<(), ManifestError> {
    match obj.get(field) {
        Some(serde_json::Value::Array(_)) => Ok(()),
        None => Err(ManifestError::InvalidField {
            field: field.into(),
            reason: "missing (must be an array)".into(),
        }),
        Some(other) => Err(ManifestError::InvalidField {
            field: field.into(),
            reason: format!("must be an array, found {}", json_kind(other)),
        }),
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ManifestError> {
    serde_json::from_value(value).map_err(ManifestError::Malformed)
}

/// Recursively sorts object keys; a no-op unless serde_json's `preserve_order` feature is on somewhere in
/// the build, in which case it keeps the output canonical anyway.
fn sort_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.sort_keys();
            m.values_mut().for_each(sort_keys);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

/// Canonical JSON: object keys sorted at every depth, no insignificant whitespace.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ManifestError> {
    let mut v = serde_json::to_value(value).map_err(ManifestError::Serialize)?;
    sort_keys(&mut v);
    serde_json::to_vec(&v).map_err(ManifestError::Serialize)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCI_MANIFEST_JSON: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
    "size": 7023
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
      "size": 32654
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 16724,
      "annotations": {"org.opencontainers.image.title": "x"}
    }
  ],
  "annotations": {
    "com.example.key1": "value1"
  }
}"#;

    const DOCKER_MANIFEST_JSON: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "sha256:feb5d9fea6a5e9606aa995e879d862b825965ba48de054caab5ef356dc6b3412"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2479,
         "digest": "sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54"
      }
   ]
}"#;

    const DOCKER_LIST_JSON: &str = r#"{"manifests":[{"digest":"sha256:7d246653d0511db2a6b2e0436cfd0e52ac8c066000264b3ce63331ac66dca625","mediaType":"application/vnd.docker.distribution.manifest.v2+json","platform":{"architecture":"amd64","os":"linux"},"size":525},{"digest":"sha256:c4ba6347b0e4258ce6a6de2401619316f982b7bcc529f73d2a410d0097730204","mediaType":"application/vnd.docker.distribution.manifest.v2+json","platform":{"architecture":"arm","os":"linux","variant":"v5"},"size":525},{"digest":"sha256:8a5a5b2a1d8e8b7f7a6f2a8e4d1f0f9b5b2a3c4d5e6f708192a3b4c5d6e7f809","mediaType":"application/vnd.docker.distribution.manifest.v2+json","platform":{"architecture":"amd64","os":"windows","os.version":"10.0.17763.3406","os.features":["win32k"]},"size":946}],"mediaType":"application\/vnd.docker.distribution.manifest.list.v2+json","schemaVersion":2}"#;

    fn d(c: u8) -> Digest {
        Digest::sha256_of(&[c])
    }

    #[test]
    fn oci_manifest_parses_with_config_layers_and_annotations() {
        let raw = RawManifest::from_bytes(OCI_MANIFEST_JSON.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.media_type, media_type::OCI_MANIFEST);
        let ParsedManifest::Image(m) = &raw.parsed else {
            panic!("not an image")
        };
        assert_eq!(m.config.size, 7023);
        assert_eq!(m.layers.len(), 2);
        assert_eq!(
            m.layers[1].annotations["org.opencontainers.image.title"],
            "x"
        );
        assert_eq!(m.annotations["com.example.key1"], "value1");
        let refs: Vec<u64> = raw.referenced_blobs().iter().map(|d| d.size).collect();
        assert_eq!(refs, vec![7023, 32654, 16724]);
        assert_eq!(raw.artifact_type(), None);
        assert!(raw.subject().is_none());
    }

    #[test]
    fn docker_schema2_manifest_parses_with_the_same_types() {
        let raw = RawManifest::from_bytes(DOCKER_MANIFEST_JSON.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.media_type, media_type::DOCKER_MANIFEST);
        let ParsedManifest::Image(m) = &raw.parsed else {
            panic!("not an image")
        };
        assert_eq!(m.config.media_type, media_type::DOCKER_CONFIG);
        assert_eq!(m.layers[0].media_type, media_type::DOCKER_LAYER_TAR_GZIP);
    }

    #[test]
    fn docker_manifest_list_parses_as_an_index_with_platforms() {
        let raw = RawManifest::from_bytes(DOCKER_LIST_JSON.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.media_type, media_type::DOCKER_MANIFEST_LIST);
        let ParsedManifest::Index(i) = &raw.parsed else {
            panic!("not an index")
        };
        let platforms: Vec<String> = i
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm/v5", "windows/amd64"]);
        let win = i.manifests[2].platform.as_ref().unwrap();
        assert_eq!(win.os_version.as_deref(), Some("10.0.17763.3406"));
        assert_eq!(win.os_features, ["win32k"]);
        assert_eq!(raw.referenced_blobs().len(), 3);
    }

    #[test]
    fn artifact_with_empty_config_and_artifact_type_and_subject_parses() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/vnd.example.sbom",
            "config":{{"mediaType":"{}","digest":"{}","size":2,"data":"e30="}},
            "layers":[{{"mediaType":"application/spdx+json","digest":"{}","size":10}}],
            "subject":{{"mediaType":"{}","digest":"{}","size":100}}}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_EMPTY,
            media_type::OCI_EMPTY_DIGEST,
            d(1),
            media_type::OCI_MANIFEST,
            d(2)
        );
        let raw = RawManifest::from_bytes(json.into_bytes(), None).unwrap();
        assert_eq!(raw.artifact_type(), Some("application/vnd.example.sbom"));
        assert_eq!(raw.subject().unwrap().digest, d(2));
        let ParsedManifest::Image(m) = &raw.parsed else {
            panic!("not an image")
        };
        assert_eq!(m.config, {
            let mut e = Descriptor::empty();
            e.data = Some("e30=".into());
            e
        });
        assert_eq!(
            raw.descriptor().artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
    }

    #[test]
    fn artifact_type_falls_back_to_a_non_image_config_media_type() {
        let m = ImageManifest::new(
            Descriptor::new("application/vnd.example.config", d(1), 1),
            vec![],
        );
        let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        assert_eq!(raw.artifact_type(), Some("application/vnd.example.config"));
    }

    #[test]
    fn bytes_are_kept_exactly_and_the_digest_is_over_them_even_with_odd_whitespace() {
        let odd = format!("\n\t {}  \r\n", OCI_MANIFEST_JSON.replace(": ", " :\t"));
        let raw = RawManifest::from_bytes(odd.clone().into_bytes(), None).unwrap();
        assert_eq!(raw.bytes, odd.as_bytes());
        assert_eq!(raw.digest, Digest::sha256_of(odd.as_bytes()));
        assert_eq!(raw.descriptor().size, odd.len() as u64);
        assert_eq!(raw.descriptor().digest, raw.digest);
    }

    #[test]
    fn content_type_wins_and_shape_detection_fills_in_when_no_media_type() {
        let no_mt = r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let raw = RawManifest::from_bytes(no_mt.into(), None).unwrap();
        assert_eq!(raw.media_type, media_type::OCI_MANIFEST);
        let raw = RawManifest::from_bytes(
            no_mt.into(),
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(raw.media_type, media_type::DOCKER_MANIFEST);
        // A generic content type is ignored rather than trusted.
        let raw = RawManifest::from_bytes(no_mt.into(), Some("application/json")).unwrap();
        assert_eq!(raw.media_type, media_type::OCI_MANIFEST);
        let idx = RawManifest::from_bytes(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(), None)
            .unwrap();
        assert_eq!(idx.media_type, media_type::OCI_INDEX);
        assert!(idx.referenced_blobs().is_empty());
    }

    fn err(bytes: &str, ct: Option<&str>) -> String {
        RawManifest::from_bytes(bytes.as_bytes().to_vec(), ct)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn malformed_inputs_give_errors_naming_the_field_and_reason() {
        assert!(err("{", None).contains("not valid JSON"));
        assert!(err("", None).contains("not valid JSON"));
        assert!(err("[]", None).contains("must be a JSON object, found an array"));
        assert!(err(r#"{"manifests":[]}"#, None).contains("`schemaVersion`"));
        let e = err(r#"{"schemaVersion":1,"manifests":[]}"#, None);
        assert!(e.contains("`schemaVersion`") && e.contains("is 1"), "{e}");
        assert!(err(r#"{"schemaVersion":2}"#, None).contains("cannot tell"));
        let e = err(r#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None);
        assert!(
            e.contains("unsupported manifest media type `text/plain`"),
            "{e}"
        );
        let e = err(r#"{"schemaVersion":2,"mediaType":7}"#, None);
        assert!(e.contains("`mediaType`") && e.contains("a number"), "{e}");
        let e = err(
            &format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","layers":[]}}"#,
                media_type::OCI_MANIFEST
            ),
            None,
        );
        assert!(e.contains("`config`") && e.contains("missing"), "{e}");
        let e = err(
            &format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":{{}}}}"#,
                media_type::OCI_INDEX
            ),
            None,
        );
        assert!(e.contains("`manifests`") && e.contains("an object"), "{e}");
        let e = err(
            r#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:zz","size":1},"layers":[]}"#,
            None,
        );
        assert!(e.contains("sha256:zz"), "{e}");
        let e = err(
            &format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
                media_type::OCI_INDEX
            ),
            Some(media_type::OCI_MANIFEST),
        );
        assert!(e.contains("contradicts"), "{e}");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_without_whitespace() {
        #[derive(Serialize)]
        struct Inner {
            zeta: u8,
            alpha: u8,
        }
        #[derive(Serialize)]
        struct Outer {
            z: Inner,
            m: BTreeMap<String, u8>,
            a: Vec<Inner>,
        }
        let v = Outer {
            z: Inner { zeta: 1, alpha: 2 },
            m: [("y".to_string(), 1), ("b".to_string(), 2)].into(),
            a: vec![Inner { zeta: 3, alpha: 4 }],
        };
        let got = String::from_utf8(to_canonical_json(&v).unwrap()).unwrap();
        assert_eq!(
            got,
            r#"{"a":[{"alpha":4,"zeta":3}],"m":{"b":2,"y":1},"z":{"alpha":2,"zeta":1}}"#
        );
    }

    #[test]
    fn created_manifest_is_canonical_and_omits_empty_optional_fields() {
        let m = ImageManifest::new(
            Descriptor::empty(),
            vec![Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"x")],
        );
        let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        let text = String::from_utf8(raw.bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"config":{"digest":"sha256:44136fa"#),
            "{text}"
        );
        for absent in [
            "annotations",
            "null",
            "urls",
            "platform",
            "subject",
            "artifactType",
            " ",
            "\n",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(raw.digest, Digest::sha256_of(text.as_bytes()));
        assert_eq!(raw.parsed, ParsedManifest::Image(m));
    }

    #[test]
    fn platform_parses_and_displays_os_arch_variant() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "arm64"));
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64", ""] {
            let e = Platform::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("invalid platform") && e.contains("os/arch[/variant]"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            Platform::parse(" Linux/AMD64 ").unwrap(),
            Platform::new("linux", "amd64")
        );
    }

    #[test]
    fn host_platform_uses_go_architecture_names() {
        let h = Platform::host();
        assert_eq!(h.os, std::env::consts::OS);
        assert!(!["x86_64", "aarch64"].contains(&h.architecture.as_str()));
        assert_eq!(Platform::parse(&h.to_string()).unwrap(), h);
    }

    #[test]
    fn platform_serializes_dotted_field_names() {
        let mut p = Platform::new("windows", "amd64");
        p.os_version = Some("10.0".into());
        p.os_features = vec!["win32k".into()];
        assert_eq!(
            String::from_utf8(to_canonical_json(&p).unwrap()).unwrap(),
            r#"{"architecture":"amd64","os":"windows","os.features":["win32k"],"os.version":"10.0"}"#
        );
    }

    #[test]
    fn image_config_parses_docker_nulls_and_round_trips_oci_fields() {
        let docker = r#"{"architecture":"amd64","os":"linux","created":"2023-01-01T00:00:00Z",
          "config":{"User":"1000","Env":["PATH=/bin"],"Cmd":null,"Entrypoint":["/app"],
            "ExposedPorts":{"80/tcp":{}},"Volumes":null,"WorkingDir":"/w","Labels":{"a":"b"},"StopSignal":"SIGTERM",
            "Hostname":"ignored"},
          "rootfs":{"type":"layers","diff_ids":["sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"]},
          "history":[{"created_by":"/bin/sh -c x","empty_layer":true},{"created_by":"COPY"}],
          "container_config":{"Hostname":"x"}}"#;
        let c: ImageConfig = serde_json::from_str(docker).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert!(cc.cmd.is_empty());
        assert_eq!(cc.entrypoint, ["/app"]);
        assert!(cc.exposed_ports.contains_key("80/tcp"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert!(c.history[0].empty_layer && !c.history[1].empty_layer);
        let out = String::from_utf8(to_canonical_json(&c).unwrap()).unwrap();
        assert!(out.contains(r#""ExposedPorts":{"80/tcp":{}}"#), "{out}");
        assert!(
            out.contains(r#""rootfs":{"diff_ids":["sha256:44136fa"#),
            "{out}"
        );
        assert!(
            !out.contains("null") && !out.contains("Cmd") && !out.contains("Hostname"),
            "{out}"
        );
        let back: ImageConfig = serde_json::from_str(&out).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn descriptor_omits_empty_optional_fields_and_keeps_set_ones() {
        let mut desc = Descriptor::new(media_type::OCI_MANIFEST, d(1), 5);
        assert_eq!(
            String::from_utf8(to_canonical_json(&desc).unwrap()).unwrap(),
            format!(
                r#"{{"digest":"{}","mediaType":"{}","size":5}}"#,
                d(1),
                media_type::OCI_MANIFEST
            )
        );
        desc.platform = Some(Platform::parse("linux/amd64").unwrap());
        desc.annotations.insert("k".into(), "v".into());
        desc.urls.push("https://x".into());
        let json = to_canonical_json(&desc).unwrap();
        let back: Descriptor = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, desc);
        let with_null: Descriptor = serde_json::from_str(&format!(
            r#"{{"digest":"{}","mediaType":"x","size":1,"annotations":null,"urls":null}}"#,
            d(1)
        ))
        .unwrap();
        assert!(with_null.annotations.is_empty() && with_null.urls.is_empty());
    }

    #[test]
    fn empty_descriptor_points_at_the_two_byte_blob() {
        let e = Descriptor::empty();
        assert_eq!(e.digest.to_string(), media_type::OCI_EMPTY_DIGEST);
        assert_eq!(e.size, 2);
        assert_eq!(e.media_type, media_type::OCI_EMPTY);
    }

    #[test]
    fn index_constructor_creates_a_parseable_oci_index() {
        let i = ImageIndex::new(vec![Descriptor::new(media_type::OCI_MANIFEST, d(3), 9)]);
        let raw = RawManifest::from_created(&i, media_type::OCI_INDEX).unwrap();
        assert_eq!(raw.parsed, ParsedManifest::Index(i));
        assert_eq!(raw.referenced_blobs()[0].digest, d(3));
    }

    #[test]
    fn every_field_we_write_is_one_the_oci_spec_reads_back_unchanged() {
        let mut platform = Platform::parse("linux/arm64/v8").unwrap();
        platform.os_version = Some("10.0.17763".into());
        platform.os_features = vec!["win32k".into()];
        let mut layer = Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b"x");
        layer.urls.push("https://example.com/x".into());
        layer.annotations.insert("k".into(), "v".into());
        let mut manifest = ImageManifest::new(Descriptor::empty(), vec![layer]);
        manifest.artifact_type = Some("application/vnd.example+type".into());
        manifest.subject = Some(Descriptor::new(media_type::OCI_MANIFEST, d(1), 3));
        manifest.annotations.insert("a".into(), "b".into());
        let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
        testsupport::oci_spec_check(&raw.bytes, &raw.media_type);

        let mut child = Descriptor::new(media_type::OCI_MANIFEST, raw.digest.clone(), 9);
        child.platform = Some(platform);
        child.artifact_type = Some("application/vnd.example+type".into());
        child.data = Some("e30=".into());
        let mut index = ImageIndex::new(vec![child]);
        index.annotations.insert("a".into(), "b".into());
        index.subject = Some(Descriptor::new(media_type::OCI_MANIFEST, d(2), 3));
        let raw = RawManifest::from_created(&index, media_type::OCI_INDEX).unwrap();
        testsupport::oci_spec_check(&raw.bytes, &raw.media_type);

        let config = ImageConfig {
            created: Some("2024-01-02T03:04:05Z".into()),
            author: Some("me".into()),
            architecture: "arm64".into(),
            os: "linux".into(),
            os_version: Some("10".into()),
            variant: Some("v8".into()),
            config: Some(ContainerConfig {
                user: Some("1000:1000".into()),
                exposed_ports: [("80/tcp".to_string(), EmptyObject {})].into(),
                env: vec!["PATH=/usr/bin".into()],
                entrypoint: vec!["/bin/sh".into(), "-c".into()],
                cmd: vec!["true".into()],
                volumes: [("/data".to_string(), EmptyObject {})].into(),
                working_dir: Some("/work".into()),
                labels: [("l".to_string(), "v".to_string())].into(),
                stop_signal: Some("SIGTERM".into()),
            }),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![d(4)],
            },
            history: vec![History {
                created: Some("2024-01-02T03:04:05Z".into()),
                created_by: Some("COPY . .".into()),
                author: Some("me".into()),
                comment: Some("c".into()),
                empty_layer: true,
            }],
        };
        testsupport::oci_spec_check(&to_canonical_json(&config).unwrap(), media_type::OCI_CONFIG);
    }
}
