//! Test fixtures: small real images written into a store with `testsupport::images` (shared with the cli's
//! store tests).

use formats::layer::{Compression, LayerEntry};
use formats::manifest::{Descriptor, Platform};
use testsupport::images::{TestImage, write_image, write_index};

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
    let mut spec = TestImage::hello(content);
    spec.layers[0].push(LayerEntry::dir("etc"));
    spec.compression = compression;
    spec.platform = platform.clone();
    spec.config.env.insert(0, "PATH=/usr/bin".into());
    spec.config.entrypoint = vec!["/bin/sh".into(), "-c".into()];
    spec.annotations
        .insert("org.opencontainers.image.title".into(), content.into());
    let desc = write_image(store.layout(), &spec);
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
    let desc = write_index(store.layout(), children);
    store
        .layout()
        .set_tag(&super::normalize_name(tag).unwrap(), desc.clone())
        .unwrap();
    desc
}
