//! Readers other than ours take the block-parallel gzip layers the default build writes: GNU gzip, and Go's
//! compress/gzip through skopeo (`--dest-decompress`) and umoci. A missing tool fails the test with its name.

use std::fs;
use std::path::Path;
use std::process::Command;

use formats::digest::Digest;
use formats::layer::{
    LayerDigests, LayerEntry, LayerOptions, PGZIP_BLOCK_SIZE, write_entries_layer,
};
use formats::manifest::{Descriptor, ImageConfig, ImageManifest, RawManifest, RootFs};
use formats::media_type;
use formats::oci_layout::OciLayout;
use testsupport::{run, skopeo, tool};

/// Text and noise spanning several blocks, so the layer has many sync-flushed blocks.
fn big_file() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::new();
    while out.len() < 3 * PGZIP_BLOCK_SIZE + 12_345 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (out.len() / 200_000) % 2 == 0 {
            out.extend_from_slice(format!("key-{}: value {}\n", x % 1000, x % 7).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

/// A one-layer image with the default layer options (gzip) in a fresh OCI layout at `dir`, tagged `v1`.
fn build_image(dir: &Path, big: &[u8]) -> LayerDigests {
    let layout = OciLayout::create(dir).unwrap();
    let entries = vec![
        LayerEntry::file("data/big.bin", big),
        LayerEntry::file("etc/app.conf", "answer=42\n"),
    ];
    let mut blob = Vec::new();
    let layer = write_entries_layer(entries, &LayerOptions::default(), &mut blob).unwrap();
    assert_eq!(layer.media_type, media_type::OCI_LAYER_TAR_GZIP);
    assert_eq!(layout.write_blob_bytes(&blob).unwrap().0, layer.blob_digest);
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.diff_id.clone()],
        },
        ..ImageConfig::default()
    };
    let config_bytes = formats::manifest::to_canonical_json(&config).unwrap();
    let (config_digest, config_size) = layout.write_blob_bytes(&config_bytes).unwrap();
    let manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
        vec![Descriptor::new(
            media_type::OCI_LAYER_TAR_GZIP,
            layer.blob_digest.clone(),
            layer.blob_size,
        )],
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let desc = layout.write_manifest(&raw).unwrap();
    layout.set_tag("v1", desc).unwrap();
    layer
}

#[test]
fn gnu_gzip_tests_the_layer_blob_as_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layer = build_image(&dir, &big_file());
    let blob = OciLayout::open(&dir).unwrap().blob_path(&layer.blob_digest);
    run(tool("gzip").arg("-t").arg(&blob));
    let tar = Command::new("zcat").arg(&blob).output().unwrap();
    assert!(tar.status.success());
    assert_eq!(Digest::sha256_of(&tar.stdout), layer.diff_id);
}

#[test]
fn skopeo_decompresses_the_layer_with_go_to_its_diff_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let layer = build_image(&dir, &big_file());
    let out = tmp.path().join("copied");
    run(skopeo()
        .args(["copy", "--dest-decompress"])
        .arg(format!("oci:{}:v1", dir.display()))
        .arg(format!("dir:{}", out.display())));
    // skopeo names the decompressed blob by its new digest, which must be the diff_id we computed.
    let tar = fs::read(out.join(layer.diff_id.hex())).unwrap();
    assert_eq!(Digest::sha256_of(&tar), layer.diff_id);
    assert_eq!(tar.len() as u64, layer.uncompressed_size);
}

#[test]
fn umoci_unpacks_the_files_of_a_default_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let big = big_file();
    build_image(&dir, &big);
    let bundle = tmp.path().join("bundle");
    let mut unpack = tool("umoci");
    unpack.arg("unpack");
    if run(Command::new("id").arg("-u")).trim() != "0" {
        unpack.arg("--rootless");
    }
    run(unpack
        .arg("--image")
        .arg(format!("{}:v1", dir.display()))
        .arg(&bundle));
    assert!(fs::read(bundle.join("rootfs/data/big.bin")).unwrap() == big);
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/app.conf")).unwrap(),
        "answer=42\n"
    );
}
