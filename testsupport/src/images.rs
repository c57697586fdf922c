//! Small real images for tests, written into an OCI image layout with the formats API: layers, a config and a
//! manifest (and indexes of them), each manifest and config checked with [`crate::oci_spec_check`] as it is
//! written. The one place tests make images without running a build, so store, mirror and merge tests share it.

use std::collections::BTreeMap;

use formats::layer::{Compression, LayerEntry, LayerOptions, write_entries_layer};
use formats::manifest::{
    ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, Platform,
    RawManifest, RootFs, to_canonical_json,
};
use formats::media_type;
use formats::oci_layout::OciLayout;

use crate::oci_spec_check;

/// What a test image holds. [`TestImage::hello`] is the usual one; change its fields for more.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The layers, base first; each a list of entries (files, directories).
    pub layers: Vec<Vec<LayerEntry>>,
    /// How every layer is compressed.
    pub compression: Compression,
    /// The platform written into the config (`architecture`, `os`, `variant`).
    pub platform: Platform,
    /// The config's `created` (RFC 3339).
    pub created: String,
    /// The runtime defaults (`config` of the image config).
    pub config: ContainerConfig,
    /// The config's build history.
    pub history: Vec<History>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl TestImage {
    /// One gzip layer holding `/hello.txt` = `content`, for linux/amd64, created 2024-01-02T03:04:05Z, with
    /// `CONTENT=<content>` in its env, `cat /hello.txt` as its command and the label `org.example.content` =
    /// `content`.
    pub fn hello(content: &str) -> Self {
        TestImage {
            layers: vec![vec![LayerEntry::file("hello.txt", content.as_bytes())]],
            compression: LayerOptions::default().compression,
            platform: Platform::new("linux", "amd64"),
            created: "2024-01-02T03:04:05Z".into(),
            config: ContainerConfig {
                env: vec![format!("CONTENT={content}")],
                cmd: vec!["cat".into(), "/hello.txt".into()],
                labels: [("org.example.content".to_string(), content.to_string())].into(),
                ..ContainerConfig::default()
            },
            history: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// Writes `image`'s layers, config and OCI manifest into `layout`, untagged, and returns the manifest's
/// descriptor (without a platform).
pub fn write_image(layout: &OciLayout, image: &TestImage) -> Descriptor {
    let options = LayerOptions {
        compression: image.compression,
        mtime: 0,
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for entries in &image.layers {
        let mut blob = Vec::new();
        let layer = write_entries_layer(entries.iter().cloned(), &options, &mut blob)
            .expect("write a test layer");
        layout.write_blob_bytes(&blob).expect("store a test layer");
        layers.push(Descriptor::new(
            layer.media_type,
            layer.blob_digest,
            layer.blob_size,
        ));
        diff_ids.push(layer.diff_id);
    }
    let config = ImageConfig {
        created: Some(image.created.clone()),
        architecture: image.platform.architecture.clone(),
        os: image.platform.os.clone(),
        variant: image.platform.variant.clone(),
        config: Some(image.config.clone()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history: image.history.clone(),
        ..ImageConfig::default()
    };
    let config_bytes = to_canonical_json(&config).expect("serialize a test config");
    oci_spec_check(&config_bytes, media_type::OCI_CONFIG);
    layout
        .write_blob_bytes(&config_bytes)
        .expect("store a test config");
    let mut manifest = ImageManifest::new(
        Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes),
        layers,
    );
    manifest.annotations = image.annotations.clone();
    write_manifest(layout, &manifest, media_type::OCI_MANIFEST)
}

/// Writes an OCI index of `children` (manifest descriptors, each with its platform) into `layout`, untagged,
/// and returns its descriptor.
pub fn write_index(layout: &OciLayout, children: Vec<Descriptor>) -> Descriptor {
    write_manifest(layout, &ImageIndex::new(children), media_type::OCI_INDEX)
}

fn write_manifest<T: serde::Serialize>(
    layout: &OciLayout,
    manifest: &T,
    media_type: &str,
) -> Descriptor {
    let raw = RawManifest::from_created(manifest, media_type).expect("serialize a test manifest");
    oci_spec_check(&raw.bytes, &raw.media_type);
    layout.write_manifest(&raw).expect("store a test manifest")
}

/// `len` deterministic bytes that do not compress (xorshift from `seed`): layer contents whose size a
/// compressor cannot shrink, the same for a seed on every run.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_two_hello_images_is_a_layout_oci_spec_reads_whole() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let mut image = TestImage::hello(arch);
            image.platform = Platform::new("linux", arch);
            let mut d = write_image(&layout, &image);
            d.platform = Some(image.platform);
            children.push(d);
        }
        let index = write_index(&layout, children);
        layout.set_tag("example.com/a:v1", index).unwrap();
        // index.json, the index, two manifests, two configs.
        assert_eq!(crate::oci_spec_check_layout(dir.path()), 6);
    }
}
