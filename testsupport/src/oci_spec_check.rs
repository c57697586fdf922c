//! The OCI specification's own types as an oracle for ours: every manifest, index and config a test produces is
//! read with the `oci-spec` crate's types, and every field we wrote must come back out of them unchanged, so our
//! hand-written types (kept for the reasons in docs/design.md) never drift from the spec's.

use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, OciLayout};
use serde_json::Value;

/// Image manifest media types (OCI and Docker schema 2).
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Index media types (OCI index and Docker manifest list).
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Image config media types (OCI and Docker).
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Which of oci-spec's types reads a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecKind {
    /// `oci_spec::image::ImageManifest`.
    Manifest,
    /// `oci_spec::image::ImageIndex`.
    Index,
    /// `oci_spec::image::ImageConfiguration`.
    Config,
}

impl SpecKind {
    /// The kind of document `media_type` names, or `None` when it is not a manifest, index or image config
    /// (layers, artifact configs, the empty descriptor).
    pub fn of(media_type: &str) -> Option<SpecKind> {
        if MANIFEST_TYPES.contains(&media_type) {
            Some(SpecKind::Manifest)
        } else if INDEX_TYPES.contains(&media_type) {
            Some(SpecKind::Index)
        } else if CONFIG_TYPES.contains(&media_type) {
            Some(SpecKind::Config)
        } else {
            None
        }
    }
}

/// Reads `bytes` (a manifest, index or image config of `media_type`) with oci-spec's type for it and fails the
/// test when oci-spec refuses it, when a manifest's or index's own `mediaType` disagrees with `media_type`, or when
/// a field we wrote does not come back out of oci-spec's value unchanged (a field the spec does not know, or one
/// of the wrong shape). Panics on a media type that is none of the three: call it only for those.
pub fn oci_spec_check(bytes: &[u8], media_type: &str) {
    let kind = SpecKind::of(media_type).unwrap_or_else(|| {
        panic!(
            "oci_spec_check: {media_type:?} is not a manifest, index or image config media type (one of \
             {MANIFEST_TYPES:?}, {INDEX_TYPES:?}, {CONFIG_TYPES:?})"
        )
    });
    let text = String::from_utf8_lossy(bytes);
    let ours: Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{media_type} is not JSON: {e}\n{text}"));
    let theirs = match kind {
        SpecKind::Manifest => ImageManifest::from_reader(bytes).map(|m| serde_json::to_value(&m)),
        SpecKind::Index => ImageIndex::from_reader(bytes).map(|i| serde_json::to_value(&i)),
        SpecKind::Config => {
            ImageConfiguration::from_reader(bytes).map(|c| serde_json::to_value(&c))
        }
    }
    .unwrap_or_else(|e| panic!("oci-spec refuses this {media_type} ({kind:?}): {e}\n{text}"))
    .expect("oci-spec's value serializes");
    if kind != SpecKind::Config
        && let Some(own) = ours.get("mediaType")
    {
        assert_eq!(
            own.as_str(),
            Some(media_type),
            "the document's mediaType disagrees with the media type it was stored or sent as\n{text}"
        );
    }
    let mut lost = Vec::new();
    compare(&ours, &theirs, "$", &mut lost);
    assert!(
        lost.is_empty(),
        "fields of this {media_type} that oci-spec's {kind:?} does not give back unchanged (unknown to the \
         spec, or of the wrong shape):\n  {}\n{text}",
        lost.join("\n  ")
    );
}

/// Walks the OCI image layout at `dir` from `index.json` and checks (with [`oci_spec_check`]) the `oci-layout`
/// file, `index.json`, and every manifest, index and image config it reaches whose blob is present (a store may
/// hold only some platforms of an index). Returns how many documents were checked.
pub fn oci_spec_check_layout(dir: &Path) -> usize {
    let layout = std::fs::read(dir.join("oci-layout"))
        .unwrap_or_else(|e| panic!("{}: no oci-layout file: {e}", dir.display()));
    OciLayout::from_reader(layout.as_slice())
        .unwrap_or_else(|e| panic!("{}/oci-layout: oci-spec refuses it: {e}", dir.display()));
    let index = std::fs::read(dir.join("index.json"))
        .unwrap_or_else(|e| panic!("{}: no index.json: {e}", dir.display()));
    oci_spec_check(&index, INDEX_TYPES[0]);
    let mut checked = 1;
    let mut pending = descriptors(&serde_json::from_slice(&index).expect("index.json is JSON"));
    while let Some((media_type, digest)) = pending.pop() {
        let Some(kind) = SpecKind::of(&media_type) else {
            continue;
        };
        let Some((algorithm, hex)) = digest.split_once(':') else {
            panic!(
                "{}: descriptor digest {digest:?} has no algorithm",
                dir.display()
            );
        };
        let Ok(bytes) = std::fs::read(dir.join("blobs").join(algorithm).join(hex)) else {
            continue;
        };
        oci_spec_check(&bytes, &media_type);
        checked += 1;
        if kind != SpecKind::Config {
            pending.extend(descriptors(&serde_json::from_slice(&bytes).unwrap()));
        }
    }
    checked
}

/// The `(mediaType, digest)` of a manifest's config and an index's manifests.
fn descriptors(doc: &Value) -> Vec<(String, String)> {
    let config = doc.get("config").into_iter();
    let manifests = doc
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    config
        .chain(manifests)
        .filter_map(|d| {
            Some((
                d.get("mediaType")?.as_str()?.to_string(),
                d.get("digest")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Appends to `lost` the JSON path of every value of `ours` that `theirs` does not hold unchanged. A null, empty
/// array or empty object that oci-spec leaves out is no loss: the spec reads it as absent.
fn compare(ours: &Value, theirs: &Value, path: &str, lost: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let at = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => compare(value, other, &at, lost),
                    None if is_empty(value) || oci_spec_gap(&at) => {}
                    None => lost.push(format!("{at} (not kept: {value})")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                compare(x, y, &format!("{path}[{i}]"), lost);
            }
        }
        _ if ours == theirs => {}
        _ => lost.push(format!("{path} (ours {ours}, oci-spec's {theirs})")),
    }
}

/// Fields the spec has that oci-spec 0.10 does not read: a descriptor's `platform` spells `os.version` and
/// `os.features` with a dot (image-index.md; distribution, containerd and ghcr.io write them so), oci-spec's
/// `Platform` reads `os_version` and `os_features` (youki-dev/oci-spec-rs pull request 163, open). Ours are right.
fn oci_spec_gap(path: &str) -> bool {
    path.ends_with(".platform.os.version") || path.ends_with(".platform.os.features")
}

/// Null, `[]` or `{}`.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]}}"#;

    fn manifest(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":7}},"layers":[]{extra}}}"#
        )
    }

    #[test]
    fn a_spec_manifest_and_config_pass() {
        oci_spec_check(manifest("").as_bytes(), MANIFEST_TYPES[0]);
        oci_spec_check(CONFIG.as_bytes(), CONFIG_TYPES[0]);
    }

    /// Two of the reasons in docs/design.md for keeping our own types: when oci-spec reads these, reconsider.
    #[test]
    fn oci_spec_still_refuses_null_layers_and_drops_a_platform_os_version() {
        let null_layers = manifest("").replace(r#""layers":[]"#, r#""layers":null"#);
        assert!(ImageManifest::from_reader(null_layers.as_bytes()).is_err());
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":7,"platform":{"architecture":"amd64","os":"windows","os.version":"10.0.17763"}}]}"#;
        let parsed = ImageIndex::from_reader(index.as_bytes()).unwrap();
        assert_eq!(
            parsed.manifests()[0]
                .platform()
                .as_ref()
                .unwrap()
                .os_version(),
            &None
        );
    }

    #[test]
    #[should_panic(expected = "$.annotatoins")]
    fn a_misspelt_field_fails() {
        oci_spec_check(
            manifest(r#","annotatoins":{"a":"b"}"#).as_bytes(),
            MANIFEST_TYPES[0],
        );
    }

    #[test]
    #[should_panic(expected = "oci-spec refuses")]
    fn a_bad_digest_fails() {
        let bad = manifest("").replace("sha256:bbbb", "sha256:BBBB");
        oci_spec_check(bad.as_bytes(), MANIFEST_TYPES[0]);
    }

    #[test]
    #[should_panic(expected = "mediaType disagrees")]
    fn a_manifest_sent_as_another_type_fails() {
        oci_spec_check(manifest("").as_bytes(), MANIFEST_TYPES[1]);
    }
}
