//! The on-disk formats shared by delta save and import: the site **inventory** and the **delivery manifest**.
//!
//! Both are versioned JSON documents with a `kind` tag so a file handed to the wrong command is refused with a
//! clear message instead of being half-understood.
//!
//! Inventory (`sealos registry inventory`), produced on the site and carried out:
//!
//! ```json
//! { "version": 1, "kind": "sealos-inventory", "created": "2026-12-04T23:00:00Z", "source": "/var/lib/registry",
//!   "repositories": { "library/nginx": { "tags": { "1.25": "sha256:…" }, "manifests": ["sha256:…"] } },
//!   "blobs": { "sha256:…": 1234 } }
//! ```
//!
//! `blobs` holds every blob the source holds (configs and layers) with its size; `manifests` every manifest and
//! index digest stored under the repository (tagged or not).
//!
//! Delivery (`delivery.json` at the root of a Distribution-layout directory written by `registry save
//! --inventory`):
//!
//! ```json
//! { "version": 1, "kind": "sealos-delivery", "created": "2026-12-04T23:00:00Z",
//!   "images": [ { "repository": "library/nginx", "tag": "1.26", "digest": "sha256:…" } ],
//!   "included": { "sha256:…": 1234 }, "relied": { "sha256:…": 5678 } }
//! ```
//!
//! `included` lists the blobs **and** manifests written into the delivery; `relied` those the delivery needs and
//! expects the site to hold already (found in the inventory, so not written). Every tag of `images` is linked in
//! the delivery directory even when its manifest is relied on.

use std::collections::BTreeMap;
use std::path::Path;

use formats::Digest;
use serde::{Deserialize, Serialize};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The `kind` of an inventory document.
pub const INVENTORY_KIND: &str = "sealos-inventory";
/// The `kind` of a delivery manifest.
pub const DELIVERY_KIND: &str = "sealos-delivery";
/// The delivery manifest's file name at the root of a delivery directory.
pub const DELIVERY_FILE: &str = "delivery.json";

/// What is wrong with an inventory or delivery file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid JSON for this document.
    #[error("{path}: not a valid {what} document: {source}")]
    Json {
        /// The file.
        path: String,
        /// "inventory" or "delivery".
        what: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The `kind` field names another document.
    #[error("{path}: kind is `{found}`, expected `{expected}` (did you pass the wrong file?)")]
    Kind {
        /// The file.
        path: String,
        /// The kind found.
        found: String,
        /// The kind expected.
        expected: &'static str,
    },
    /// The document was written by a newer (or unknown) format version.
    #[error(
        "{path}: format version {found} is not supported (this sealos reads version {FORMAT_VERSION}); upgrade sealos"
    )]
    Version {
        /// The file.
        path: String,
        /// The version found.
        found: u32,
    },
}

/// What one repository of the site holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryInventory {
    /// Tag -> manifest (or index) digest.
    #[serde(default)]
    pub tags: BTreeMap<String, Digest>,
    /// Every manifest and index digest stored under the repository, tagged or not, sorted.
    #[serde(default)]
    pub manifests: Vec<Digest>,
}

/// A compact, versioned inventory of what a site holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Always [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// Always [`INVENTORY_KIND`].
    pub kind: String,
    /// When the inventory was taken (RFC 3339, UTC).
    pub created: String,
    /// The registry or directory the inventory describes.
    pub source: String,
    /// Repository name -> what it holds.
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryInventory>,
    /// Every blob (configs and layers) the site holds -> its size in bytes.
    #[serde(default)]
    pub blobs: BTreeMap<Digest, u64>,
}

impl Inventory {
    /// An empty inventory of `source`, created `created` (RFC 3339).
    pub fn new(source: impl Into<String>, created: impl Into<String>) -> Self {
        Inventory {
            version: FORMAT_VERSION,
            kind: INVENTORY_KIND.to_string(),
            created: created.into(),
            source: source.into(),
            repositories: BTreeMap::new(),
            blobs: BTreeMap::new(),
        }
    }

    /// Whether the site holds blob `digest`.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// Whether the site holds manifest `digest` in `repository`.
    pub fn has_manifest(&self, repository: &str, digest: &Digest) -> bool {
        self.repositories
            .get(repository)
            .is_some_and(|r| r.manifests.contains(digest))
    }

    /// Parses and checks an inventory document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, FormatError> {
        let inv: Inventory = parse(text, path, "inventory")?;
        check(path, &inv.kind, INVENTORY_KIND, inv.version)?;
        Ok(inv)
    }

    /// Reads and checks an inventory file.
    pub fn load(path: &Path) -> Result<Self, FormatError> {
        Self::from_json(&read(path)?, &path.display().to_string())
    }

    /// The document as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// One image (tag) a delivery carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveredImage {
    /// Repository name inside the delivery registry (e.g. `library/nginx`).
    pub repository: String,
    /// The tag linked in the delivery.
    pub tag: String,
    /// The tag's manifest (or index) digest.
    pub digest: Digest,
}

/// The delivery manifest (`delivery.json`): what a delta carries and what it relies on the site having.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Always [`FORMAT_VERSION`] when written by this build.
    pub version: u32,
    /// Always [`DELIVERY_KIND`].
    pub kind: String,
    /// When the delivery was written (RFC 3339, UTC).
    pub created: String,
    /// Every tag the delivery links.
    #[serde(default)]
    pub images: Vec<DeliveredImage>,
    /// Blobs and manifests written into the delivery -> size in bytes.
    #[serde(default)]
    pub included: BTreeMap<Digest, u64>,
    /// Blobs and manifests the delivery needs but did not write, expected on the site -> size in bytes.
    #[serde(default)]
    pub relied: BTreeMap<Digest, u64>,
}

impl Delivery {
    /// An empty delivery created `created` (RFC 3339).
    pub fn new(created: impl Into<String>) -> Self {
        Delivery {
            version: FORMAT_VERSION,
            kind: DELIVERY_KIND.to_string(),
            created: created.into(),
            images: Vec::new(),
            included: BTreeMap::new(),
            relied: BTreeMap::new(),
        }
    }

    /// Total bytes written into the delivery.
    pub fn included_bytes(&self) -> u64 {
        self.included.values().sum()
    }

    /// Total bytes the delivery relies on the site having.
    pub fn relied_bytes(&self) -> u64 {
        self.relied.values().sum()
    }

    /// Parses and checks a delivery document; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Self, FormatError> {
        let d: Delivery = parse(text, path, "delivery")?;
        check(path, &d.kind, DELIVERY_KIND, d.version)?;
        Ok(d)
    }

    /// Reads and checks `DIR/delivery.json` (pass the delivery directory).
    pub fn load(dir: &Path) -> Result<Self, FormatError> {
        let path = dir.join(DELIVERY_FILE);
        Self::from_json(&read(&path)?, &path.display().to_string())
    }

    /// Writes `DIR/delivery.json`.
    pub fn store(&self, dir: &Path) -> Result<(), FormatError> {
        let path = dir.join(DELIVERY_FILE);
        std::fs::write(&path, self.to_json()).map_err(|source| FormatError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The document as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// The current time as RFC 3339 UTC (`2026-12-04T23:00:00Z`), for `created`: the one formatter.
pub use formats::time::now_rfc3339;

fn read(path: &Path) -> Result<String, FormatError> {
    std::fs::read_to_string(path).map_err(|source| FormatError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &str,
    what: &'static str,
) -> Result<T, FormatError> {
    // Check the kind first so a wrong file gets the "wrong file" message, not a missing-field one.
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        let expected = if what == "inventory" {
            INVENTORY_KIND
        } else {
            DELIVERY_KIND
        };
        if let Some(found) = map.get("kind").and_then(|k| k.as_str())
            && found != expected
        {
            return Err(FormatError::Kind {
                path: path.to_string(),
                found: found.to_string(),
                expected,
            });
        }
    }
    serde_json::from_str(text).map_err(|source| FormatError::Json {
        path: path.to_string(),
        what,
        source,
    })
}

fn check(path: &str, kind: &str, expected: &'static str, version: u32) -> Result<(), FormatError> {
    if kind != expected {
        return Err(FormatError::Kind {
            path: path.to_string(),
            found: kind.to_string(),
            expected,
        });
    }
    if version != FORMAT_VERSION {
        return Err(FormatError::Version {
            path: path.to_string(),
            found: version,
        });
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> String {
    let mut text =
        serde_json::to_string_pretty(value).expect("inventory and delivery types always serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn inventory_round_trips_and_answers_lookups() {
        let mut inv = Inventory::new("127.0.0.1:5000", "2026-12-04T23:00:00Z");
        inv.blobs.insert(d('a'), 10);
        inv.repositories.insert(
            "library/nginx".into(),
            RepositoryInventory {
                tags: BTreeMap::from([("1".to_string(), d('b'))]),
                manifests: vec![d('b')],
            },
        );
        let text = inv.to_json();
        assert!(text.contains("\"kind\": \"sealos-inventory\""), "{text}");
        let back = Inventory::from_json(&text, "inv.json").unwrap();
        assert_eq!(back, inv);
        assert!(back.has_blob(&d('a')));
        assert!(!back.has_blob(&d('b')));
        assert!(back.has_manifest("library/nginx", &d('b')));
        assert!(!back.has_manifest("library/redis", &d('b')));
    }

    #[test]
    fn wrong_kind_and_version_are_refused() {
        let delivery = Delivery::new("2026-12-04T23:00:00Z").to_json();
        let err = Inventory::from_json(&delivery, "x.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kind is `sealos-delivery`, expected `sealos-inventory`"),
            "{err}"
        );
        let future = r#"{"version":2,"kind":"sealos-inventory","created":"","source":""}"#;
        let err = Inventory::from_json(future, "x.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("format version 2 is not supported"), "{err}");
    }
}
