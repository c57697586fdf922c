//! `.sealignore` in a build context: what discovery leaves out. Each line (blank lines and `#` comments
//! skipped) is read two ways: as an image, matched exactly after normalisation (`nginx` leaves out
//! `docker.io/library/nginx:latest`, as sealos does), and as a path pattern with `.dockerignore` rules
//! (`manifests/tests/`, `**/*-test.yaml`), matched against context-relative paths of the files discovery
//! reads.

use std::collections::BTreeSet;
use std::path::Path;

use formats::reference::Reference;

use super::{DiscoverError, read_text};
use crate::build::ignore::IgnoreRules;

/// The parsed `.sealignore` of a context.
#[derive(Debug, Clone, Default)]
pub struct SealIgnore {
    images: BTreeSet<String>,
    paths: IgnoreRules,
}

impl SealIgnore {
    /// Reads `<context>/.sealignore` (a symlink is followed inside the context only: one leading out of it
    /// is an error); no file means nothing is left out.
    pub fn load(context: &Path) -> Result<SealIgnore, DiscoverError> {
        let found = formats::kubefile::resolve_in_context(context, ".sealignore")?;
        if !found.path.is_file() {
            return match found.outside_error(".sealignore") {
                Some(e) => Err(e.into()),
                None => Ok(SealIgnore::default()),
            };
        }
        Ok(SealIgnore::parse(&read_text(&found.path)?))
    }

    /// Parses the text of a `.sealignore` file.
    pub fn parse(text: &str) -> SealIgnore {
        let mut images = BTreeSet::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            images.insert(line.to_string());
            if let Ok(reference) = Reference::parse(line) {
                images.insert(reference.to_string());
            }
        }
        SealIgnore {
            images,
            paths: IgnoreRules::parse(text),
        }
    }

    /// True when the normalised `reference` is left out.
    pub fn ignores_image(&self, reference: &str) -> bool {
        self.images.contains(reference)
    }

    /// True when the context-relative path `rel` is not read.
    pub fn ignores_path(&self, rel: &str) -> bool {
        self.paths.is_excluded(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_leave_out_images_by_normalised_name_and_paths_by_pattern() {
        let ignore = SealIgnore::parse(
            "# test only\nnginx\nquay.io/a/b:v1\nmanifests/tests/\n**/*-dev.yaml\n",
        );
        assert!(ignore.ignores_image("docker.io/library/nginx:latest"));
        assert!(ignore.ignores_image("quay.io/a/b:v1"));
        assert!(!ignore.ignores_image("docker.io/library/nginx:1.25"));
        assert!(ignore.ignores_path("manifests/tests/pod.yaml"));
        assert!(ignore.ignores_path("charts/app/values-dev.yaml"));
        assert!(!ignore.ignores_path("manifests/app.yaml"));
    }
}
