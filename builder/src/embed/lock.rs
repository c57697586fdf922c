//! The image lock file, `images.lock` in the build context: every embedded image, where it was found and
//! the digest it resolved to per platform, in TOML so a review shows exactly which image changed.
//!
//! ```toml
//! # images.lock: written by `sealos build` ...
//! version = 1
//!
//! [[image]]
//! reference = "docker.io/library/nginx:1.25"
//! sources = ["images/shim/list:3"]
//! digests = { "linux/amd64" = "sha256:...", "linux/arm64" = "sha256:..." }
//! ```
//!
//! `reference` is the normalised reference as requested (tag and/or digest); `digests` maps a platform
//! (`os/arch[/variant]`) to the platform manifest embedded for it, or `all` to the whole index embedded
//! with `--all`. Images are sorted by reference and platforms by name, so the file is byte-stable.
//! [`render`] writes it; [`parse`] reads it back (any TOML that has this shape is accepted).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use formats::digest::Digest;
use serde::Deserialize;

/// The lock file's name inside the build context (COPY takes it only when a source names it).
pub const LOCK_FILE: &str = formats::kubefile::IMAGES_LOCK;

/// The format version [`render`] writes and [`parse`] accepts.
pub const LOCK_VERSION: u32 = 1;

/// A parsed lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Lock {
    /// Format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// The images, sorted by reference.
    #[serde(default, rename = "image")]
    pub images: Vec<LockedImage>,
}

/// One locked image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LockedImage {
    /// The normalised reference as requested.
    pub reference: String,
    /// Where the build found it (`file:line`, a chart and values path...).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Resolved manifest digest by platform (`linux/amd64`), or `all` for a whole index.
    #[serde(default)]
    pub digests: BTreeMap<String, Digest>,
}

impl Lock {
    /// The entry for `reference`, if locked.
    pub fn get(&self, reference: &str) -> Option<&LockedImage> {
        self.images.iter().find(|i| i.reference == reference)
    }
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The file is not TOML of the lock's shape.
    #[error(
        "{path}: not a valid image lock: {reason}; fix it, or delete it to resolve every image again"
    )]
    Invalid {
        /// The lock file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is not TOML, or not of the lock's shape.
    #[error(
        "{path}: not a valid image lock: {source}; fix it, or delete it to resolve every image again"
    )]
    Toml {
        /// The lock file.
        path: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
}

/// Parses the text of a lock file; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Lock, LockError> {
    let invalid = |reason: String| LockError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let lock: Lock = toml::from_str(text).map_err(|source| LockError::Toml {
        path: path.display().to_string(),
        source,
    })?;
    if lock.version != LOCK_VERSION {
        return Err(invalid(format!(
            "version {} is not supported (this sealos writes version {LOCK_VERSION})",
            lock.version
        )));
    }
    Ok(lock)
}

/// The text of a lock file: a header comment, then the images sorted by reference.
pub fn render(lock: &Lock) -> String {
    let mut images: Vec<&LockedImage> = lock.images.iter().collect();
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    let mut out = String::from(
        "# images.lock: the images `sealos build` embeds, where they were found and the digest each resolved\n\
         # to per platform. Written by the build; commit it. With it, a rebuild resolves nothing it lists and\n\
         # fetches only blobs missing from the local store. Delete an entry (or the file) to resolve again.\n",
    );
    let _ = writeln!(out, "version = {LOCK_VERSION}");
    for image in images {
        let _ = writeln!(out, "\n[[image]]");
        let _ = writeln!(out, "reference = {}", toml_string(&image.reference));
        let sources: Vec<String> = image.sources.iter().map(|s| toml_string(s)).collect();
        let _ = writeln!(out, "sources = [{}]", sources.join(", "));
        let digests: Vec<String> = image
            .digests
            .iter()
            .map(|(k, d)| format!("{} = {}", toml_string(k), toml_string(&d.to_string())))
            .collect();
        let _ = writeln!(out, "digests = {{ {} }}", digests.join(", "));
    }
    out
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        let d = Digest::sha256_of(b"x");
        Lock {
            version: LOCK_VERSION,
            images: vec![
                LockedImage {
                    reference: "registry.k8s.io/pause:3.9".into(),
                    sources: vec!["images/shim/list:2".into()],
                    digests: BTreeMap::from([("linux/amd64".to_string(), d.clone())]),
                },
                LockedImage {
                    reference: "docker.io/library/nginx:1.25".into(),
                    sources: vec!["manifests/a \"quoted\".yaml:7".into(), "b\\c".into()],
                    digests: BTreeMap::from([
                        ("linux/arm64".to_string(), d.clone()),
                        ("all".to_string(), d),
                    ]),
                },
            ],
        }
    }

    #[test]
    fn rendered_lock_parses_back_to_the_same_images_sorted() {
        let lock = sample();
        let text = render(&lock);
        let back = parse(&text, Path::new("images.lock")).unwrap();
        assert_eq!(back.images.len(), 2);
        assert_eq!(back.images[0], lock.images[1]);
        assert_eq!(back.images[1], lock.images[0]);
        assert_eq!(render(&back), text, "rendering is stable");
        assert!(text.contains("reference = \"docker.io/library/nginx:1.25\""));
    }

    #[test]
    fn lock_with_unknown_version_or_bad_digest_is_refused_naming_the_file() {
        let err = parse("version = 9\n", Path::new("ctx/images.lock")).unwrap_err();
        assert!(err.to_string().contains("ctx/images.lock"), "{err}");
        assert!(err.to_string().contains("version 9"), "{err}");
        let bad = "version = 1\n[[image]]\nreference = \"a\"\ndigests = { all = \"md5:x\" }\n";
        assert!(parse(bad, Path::new("l")).is_err());
    }
}
