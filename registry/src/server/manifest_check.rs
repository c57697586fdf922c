//! What the server needs to know about a pushed manifest, read with `serde_json::Value`: its media type, the
//! blobs and child manifests it references (which must exist), and its subject.

use formats::digest::Digest;
use serde_json::Value;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest v2 schema 2 media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Facts about a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFacts {
    /// The media type to serve it with.
    pub media_type: String,
    /// Blobs (config and distributable layers) that must be in the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests (of an index) that must be in the repository.
    pub children: Vec<Digest>,
    /// The manifest's `subject`, if it has one.
    pub subject: Option<Digest>,
}

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a manifest the registry accepts.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(msg.into())
}

/// Strips parameters (`; charset=...`) from a Content-Type value.
fn bare(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn is_index_type(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// Non-distributable ("foreign") layers live elsewhere; the registry does not require them.
fn is_non_distributable(mt: &str) -> bool {
    mt.contains(".nondistributable.") || mt.contains(".foreign.")
}

/// The media type to serve stored manifest `bytes` with.
pub fn media_type_of(bytes: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return OCI_MANIFEST.to_string();
    };
    if let Some(mt) = v.get("mediaType").and_then(Value::as_str) {
        return mt.to_string();
    }
    if v.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

fn descriptor_digest(d: &Value, what: &str) -> Result<(Digest, String), ManifestError> {
    if !d.is_object() {
        return Err(invalid(format!("{what} is not a descriptor object")));
    }
    let mt = d
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} has no `mediaType`")))?;
    let digest = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} has no `digest`")))?;
    let digest =
        Digest::parse(digest).map_err(|e| invalid(format!("{what} has a bad digest: {e}")))?;
    if !d.get("size").is_some_and(Value::is_u64) {
        return Err(invalid(format!("{what} has no valid `size`")));
    }
    Ok((digest, mt.to_string()))
}

/// Validates a manifest pushed with `content_type` and returns what the registry must check and record.
pub fn check(bytes: &[u8], content_type: Option<&str>) -> Result<ManifestFacts, ManifestError> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("not a JSON object"));
    }
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid(
            "`schemaVersion` must be 2 (Docker schema 1 manifests are not supported)",
        ));
    }
    let body_type = match v.get("mediaType") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("`mediaType` is not a string")),
    };
    let header_type = content_type.map(bare).filter(|t| !t.is_empty());
    let media_type = match (body_type, header_type) {
        (Some(b), _) => b.to_string(),
        (None, Some(h)) if h.contains("manifest") || h.contains("index") => h.to_string(),
        (None, _) if v.get("manifests").is_some() => OCI_INDEX.to_string(),
        (None, _) => OCI_MANIFEST.to_string(),
    };
    let is_index =
        is_index_type(&media_type) || (body_type.is_none() && v.get("manifests").is_some());
    let mut facts = ManifestFacts {
        media_type,
        blobs: Vec::new(),
        children: Vec::new(),
        subject: None,
    };
    if is_index {
        let list = v
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a `manifests` array"))?;
        for (i, m) in list.iter().enumerate() {
            let (d, _) = descriptor_digest(m, &format!("manifests[{i}]"))?;
            facts.children.push(d);
        }
    } else {
        let config = v
            .get("config")
            .ok_or_else(|| invalid("an image manifest needs a `config` descriptor"))?;
        let (d, _) = descriptor_digest(config, "config")?;
        facts.blobs.push(d);
        let layers = match v.get("layers") {
            None => &Vec::new(),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(invalid("`layers` is not an array")),
        };
        for (i, l) in layers.iter().enumerate() {
            let (d, mt) = descriptor_digest(l, &format!("layers[{i}]"))?;
            if !is_non_distributable(&mt) {
                facts.blobs.push(d);
            }
        }
    }
    if let Some(subject) = v.get("subject") {
        let (d, _) = descriptor_digest(subject, "subject")?;
        facts.subject = Some(d);
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn manifest_lists_config_and_distributable_layers_only() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('a'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d('b'), "size": 3},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": d('c'), "size": 3}
            ],
            "subject": {"mediaType": OCI_MANIFEST, "digest": d('e'), "size": 9}
        });
        let f = check(m.to_string().as_bytes(), None).unwrap();
        assert_eq!(f.blobs.len(), 2);
        assert_eq!(f.subject, Some(Digest::parse(&d('e')).unwrap()));
    }

    #[test]
    fn index_lists_children() {
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 1}]});
        let f = check(m.to_string().as_bytes(), None).unwrap();
        assert_eq!(f.children.len(), 1);
        assert!(f.blobs.is_empty());
    }

    #[test]
    fn garbage_and_schema1_are_invalid() {
        assert!(check(b"nope", None).is_err());
        assert!(check(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(check(br#"{"schemaVersion":2,"config":{"digest":"x"}}"#, None).is_err());
    }
}
