//! The referrers tag schema of OCI distribution 1.1, client side: a registry without the referrers API
//! keeps no list of the manifests whose `subject` is an image, so the client that pushes such a manifest
//! maintains one itself, an image index tagged `<alg>-<hex>` of the subject's digest. Readers
//! ([`RegistryClient::referrers`]) fall back to that tag when the API answers 404.

use bytes::Bytes;
use formats::digest::Digest;
use serde_json::{Map, Value, json};

use super::conf::Endpoint;
use super::{ClientError, RegistryClient};

const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The tag that lists the referrers of `subject` on a registry without the referrers API:
/// `sha256-<hex>`.
pub(crate) fn referrers_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

/// Whether `tag` is a referrers-tag-schema tag (`sha256-<64 hex>`): an index of referrers kept for a registry
/// without the referrers API, copied with its subject's referrers, never an image of its own.
pub fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The `subject` digest of a manifest, when it has one.
fn subject_of(manifest: &Value) -> Option<Digest> {
    let digest = manifest.get("subject")?.get("digest")?.as_str()?;
    Digest::parse(digest).ok()
}

/// The index entry describing a referrer, as the referrers API would list it: its media type, digest and
/// size, its artifact type (the manifest's `artifactType`, else its config's media type) and annotations.
fn referrer_entry(manifest: &Value, media_type: &str, digest: &Digest, size: usize) -> Value {
    let mut entry = Map::new();
    entry.insert("mediaType".into(), json!(media_type));
    entry.insert("digest".into(), json!(digest.to_string()));
    entry.insert("size".into(), json!(size));
    let artifact_type = manifest
        .get("artifactType")
        .or_else(|| manifest.get("config").and_then(|c| c.get("mediaType")))
        .filter(|t| t.is_string());
    if let Some(t) = artifact_type {
        entry.insert("artifactType".into(), t.clone());
    }
    if let Some(a) = manifest.get("annotations").filter(|a| a.is_object()) {
        entry.insert("annotations".into(), a.clone());
    }
    Value::Object(entry)
}

/// `index` (the current referrers tag, or none) with `entry` added; `None` when it already lists it.
fn with_entry(index: Option<Value>, entry: Value) -> Option<Value> {
    let mut index = index
        .filter(|i| i.get("manifests").is_some_and(Value::is_array))
        .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}));
    let manifests = index.get_mut("manifests")?.as_array_mut()?;
    if manifests
        .iter()
        .any(|m| m.get("digest") == entry.get("digest"))
    {
        return None;
    }
    manifests.push(entry);
    Some(index)
}

impl RegistryClient {
    /// When the manifest just pushed (`bytes`, `digest`) has a `subject`, adds it to the subject's referrers
    /// tag at `ep` (fetched, extended, put back; nothing is put when it is listed already).
    pub(super) async fn add_to_referrers_tag(
        &self,
        ep: &Endpoint,
        bytes: &[u8],
        media_type: &str,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        let Ok(manifest) = serde_json::from_slice::<Value>(bytes) else {
            return Ok(());
        };
        let Some(subject) = subject_of(&manifest) else {
            return Ok(());
        };
        let tag = referrers_tag(&subject);
        let current = match self.get_manifest_at(ep, &tag, None, &[INDEX]).await {
            Ok(m) => serde_json::from_slice::<Value>(&m.bytes).ok(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let entry = referrer_entry(&manifest, media_type, digest, bytes.len());
        let Some(index) = with_entry(current, entry) else {
            return Ok(());
        };
        let body = serde_json::to_vec(&index).map_err(|e| {
            ClientError::InvalidInput(format!("cannot encode the referrers index `{tag}`: {e}"))
        })?;
        tracing::debug!(%subject, referrer = %digest, "updating the referrers tag {tag}");
        self.put_manifest_at(ep, &tag, Bytes::from(body), INDEX)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_is_added_once_with_its_artifact_type_and_annotations() {
        let subject = Digest::sha256_of(b"image");
        let sig = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.example.sig.v1+json", "digest": subject.to_string(), "size": 2},
            "layers": [],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 5},
            "annotations": {"org.example.signed-by": "alice"}
        });
        assert_eq!(subject_of(&sig), Some(subject.clone()));
        assert_eq!(referrers_tag(&subject), format!("sha256-{}", subject.hex()));
        assert!(is_referrers_tag(&referrers_tag(&subject)));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("v1"));
        let d = Digest::sha256_of(b"sig");
        let entry = referrer_entry(&sig, "application/vnd.oci.image.manifest.v1+json", &d, 42);
        assert_eq!(entry["artifactType"], "application/vnd.example.sig.v1+json");
        assert_eq!(entry["annotations"]["org.example.signed-by"], "alice");
        assert_eq!(entry["size"], 42);
        let index = with_entry(None, entry.clone()).expect("a new index");
        assert_eq!(index["mediaType"], INDEX);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert!(with_entry(Some(index.clone()), entry).is_none());
        let other = referrer_entry(&sig, "x", &Digest::sha256_of(b"other"), 1);
        let two = with_entry(Some(index), other).expect("extended");
        assert_eq!(two["manifests"].as_array().unwrap().len(), 2);
        assert!(subject_of(&json!({"schemaVersion": 2})).is_none());
    }
}
