//! Test fixtures: small real images (config, one layer, manifest) written into a store with the formats API.

use formats::layer::{Compression, LayerEntry, LayerOptions, write_entries_layer};
use formats::manifest::{
    ContainerConfig, Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform, RawManifest,
    RootFs,
};
use formats::media_type;

use super::Store;

/// Writes a one-layer image holding `/hello.txt` = `content` for `platform`, tags it `tag` when given, and
/// returns its manifest descriptor.
pub(crate) fn image(
    store: &Store,
    tag: Option<&str>,
    content: &str,
    compression: Compression,
    platform: &Platform,
) -> Descriptor {
    let mut tar = Vec::new();
    let layer = write_entries_layer(
        [
            LayerEntry::file("hello.txt", content.as_bytes()),
            LayerEntry::dir("etc"),
        ],
        &LayerOptions {
            compression,
            mtime: 0,
        },
        &mut tar,
    )
    .unwrap();
    store.layout().write_blob_bytes(&tar).unwrap();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("org.example.content".to_string(), content.to_string());
    let config = ImageConfig {
        created: Some("2024-01-02T03:04:05Z".into()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        config: Some(ContainerConfig {
            env: vec!["PATH=/usr/bin".into(), format!("CONTENT={content}")],
            cmd: vec!["cat".into(), "/hello.txt".into()],
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            labels,
            ..ContainerConfig::default()
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        ..ImageConfig::default()
    };
    let config_bytes = formats::manifest::to_canonical_json(&config).unwrap();
    store.layout().write_blob_bytes(&config_bytes).unwrap();
    let mut manifest = ImageManifest::new(
        Descriptor::for_bytes(media_type::OCI_CONFIG, &config_bytes),
        vec![Descriptor::new(
            layer.media_type.clone(),
            layer.blob_digest.clone(),
            layer.blob_size,
        )],
    );
    manifest
        .annotations
        .insert("org.opencontainers.image.title".into(), content.into());
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let desc = store.layout().write_manifest(&raw).unwrap();
    if let Some(tag) = tag {
        store.layout().set_tag(tag, desc.clone()).unwrap();
    }
    desc
}

/// A gzip image for linux/amd64 tagged with the full name of `tag`.
pub(crate) fn simple(store: &Store, tag: &str, content: &str) -> Descriptor {
    image(
        store,
        Some(&super::normalize_name(tag).unwrap()),
        content,
        Compression::default(),
        &Platform::new("linux", "amd64"),
    )
}

/// An index of a linux/amd64 and a linux/arm64 image, tagged with the full name of `tag`.
pub(crate) fn multi(store: &Store, tag: &str) -> Descriptor {
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let p = Platform::new("linux", arch);
        let mut d = image(store, None, arch, Compression::default(), &p);
        d.platform = Some(p);
        children.push(d);
    }
    let raw = RawManifest::from_created(&ImageIndex::new(children), media_type::OCI_INDEX).unwrap();
    let desc = store.layout().write_manifest(&raw).unwrap();
    store
        .layout()
        .set_tag(&super::normalize_name(tag).unwrap(), desc.clone())
        .unwrap();
    desc
}
