//! Media types of OCI and Docker image content, and predicates that classify them.
//!
//! Docker "schema 2" manifests and manifest lists have the same JSON shape as OCI image manifests and
//! indexes; only the media type differs, so the predicates here accept both families.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (a list of manifests, usually one per platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI non-distributable layer, uncompressed tar (deprecated by the spec but still seen).
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// OCI non-distributable layer, gzip-compressed tar.
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// OCI non-distributable layer, zstd-compressed tar.
pub const OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The OCI empty descriptor's media type: the blob is the two bytes `{}`.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The content of the OCI empty blob.
pub const OCI_EMPTY_CONTENT: &[u8] = b"{}";
/// The digest of [`OCI_EMPTY_CONTENT`].
pub const OCI_EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The size in bytes of [`OCI_EMPTY_CONTENT`].
pub const OCI_EMPTY_SIZE: u64 = 2;

/// Docker image manifest, version 2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker equivalent of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker foreign layer (for example Windows base layers fetched from elsewhere).
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Strips media-type parameters (`; charset=utf-8`) and surrounding whitespace.
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or("").trim()
}

/// True for single-image manifests (OCI image manifest or Docker schema 2 manifest).
pub fn is_manifest(media_type: &str) -> bool {
    matches!(essence(media_type), OCI_MANIFEST | DOCKER_MANIFEST)
}

/// True for manifest lists (OCI image index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(essence(media_type), OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// True for filesystem layers of either family, compressed or not, distributable or not.
pub fn is_layer(media_type: &str) -> bool {
    let m = essence(media_type);
    m.starts_with("application/vnd.oci.image.layer.")
        || m == DOCKER_LAYER_TAR_GZIP
        || m == DOCKER_LAYER_FOREIGN
        || m == "application/vnd.docker.image.rootfs.diff.tar"
}

/// True for layers that registries are not expected to serve (OCI non-distributable, Docker foreign).
pub fn is_non_distributable(media_type: &str) -> bool {
    let m = essence(media_type);
    m.starts_with("application/vnd.oci.image.layer.nondistributable.") || m == DOCKER_LAYER_FOREIGN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    #[test]
    fn empty_descriptor_constants_describe_the_two_byte_blob() {
        assert_eq!(
            Digest::sha256_of(OCI_EMPTY_CONTENT).to_string(),
            OCI_EMPTY_DIGEST
        );
        assert_eq!(OCI_EMPTY_CONTENT.len() as u64, OCI_EMPTY_SIZE);
    }

    #[test]
    fn manifests_and_indexes_of_both_families_are_classified() {
        assert!(is_manifest(OCI_MANIFEST));
        assert!(is_manifest(DOCKER_MANIFEST));
        assert!(is_manifest(
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8"
        ));
        assert!(!is_manifest(OCI_INDEX));
        assert!(is_index(OCI_INDEX));
        assert!(is_index(DOCKER_MANIFEST_LIST));
        assert!(!is_index(DOCKER_MANIFEST));
        assert!(!is_index(OCI_CONFIG));
    }

    #[test]
    fn every_layer_media_type_is_a_layer_and_configs_are_not() {
        for m in [
            OCI_LAYER_TAR,
            OCI_LAYER_TAR_GZIP,
            OCI_LAYER_TAR_ZSTD,
            OCI_LAYER_NONDISTRIBUTABLE_TAR,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
            OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD,
            DOCKER_LAYER_TAR_GZIP,
            DOCKER_LAYER_FOREIGN,
        ] {
            assert!(is_layer(m), "{m}");
        }
        for m in [OCI_CONFIG, DOCKER_CONFIG, OCI_EMPTY, OCI_MANIFEST] {
            assert!(!is_layer(m), "{m}");
        }
    }

    #[test]
    fn only_nondistributable_and_foreign_layers_are_non_distributable() {
        assert!(is_non_distributable(OCI_LAYER_NONDISTRIBUTABLE_TAR));
        assert!(is_non_distributable(OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP));
        assert!(is_non_distributable(OCI_LAYER_NONDISTRIBUTABLE_TAR_ZSTD));
        assert!(is_non_distributable(DOCKER_LAYER_FOREIGN));
        assert!(!is_non_distributable(OCI_LAYER_TAR_GZIP));
        assert!(!is_non_distributable(DOCKER_LAYER_TAR_GZIP));
    }
}
