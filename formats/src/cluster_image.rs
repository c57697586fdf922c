//! The labels and annotations that make an OCI image a cluster image, named once for the builder, the runtime
//! and the registry's hub page.
//!
//! A sealos Kubefile labels its image `sealos.io.type=rootfs|patch|application` (older images:
//! `apps.sealos.io/type`), `sealos.io.version=v1beta1` (the cluster-image format's version) and, for a rootfs,
//! `version=v1.27.7` (the Kubernetes version it installs). The builder annotates the layers that carry embedded
//! images so readers can list them without unpacking anything.

use std::collections::BTreeMap;

/// The labels an image's type is read from; when both are set, the later (`apps.sealos.io/type`) wins, as in
/// sealos.
pub const TYPE_LABELS: [&str; 2] = ["sealos.io.type", "apps.sealos.io/type"];

/// The label with the version of what the image installs (`v1.27.7` for a Kubernetes rootfs).
pub const VERSION_LABEL: &str = "version";

/// The label with the cluster-image format's version (`v1beta1`).
pub const FORMAT_VERSION_LABEL: &str = "sealos.io.version";

/// Annotation on an embedded image's layer descriptor: the image it holds (`reference@digest`).
pub const EMBEDDED_IMAGE_ANNOTATION: &str = "io.sealos.image.embedded";

/// Annotation on the shared layer's descriptor: the images (`reference@digest`, comma-separated, in layer
/// order) whose common blobs it holds.
pub const SHARED_BLOBS_ANNOTATION: &str = "io.sealos.image.embedded.shared";

/// The type `labels` declare (`rootfs`, `patch`, `application`, or whatever value is written), trimmed;
/// `None` when no type label is set.
pub fn image_type(labels: &BTreeMap<String, String>) -> Option<&str> {
    TYPE_LABELS
        .iter()
        .rev()
        .find_map(|k| labels.get(*k))
        .map(|v| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newer_type_label_wins_and_values_are_trimmed() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(image_type(&labels(&[])), None);
        assert_eq!(
            image_type(&labels(&[("sealos.io.type", " rootfs ")])),
            Some("rootfs")
        );
        assert_eq!(
            image_type(&labels(&[
                ("sealos.io.type", "rootfs"),
                ("apps.sealos.io/type", "patch")
            ])),
            Some("patch")
        );
    }
}
