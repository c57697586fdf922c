//! Interoperability of our OCI layout and Distribution layout reader with real tools: umoci, skopeo and
//! Debian's `docker-registry` (CNCF distribution 2.8). A missing tool fails the test with its name; nothing is
//! skipped. (Trees the registry's store writes are served by docker-registry in `cli/tests/mirror.rs`.)

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use formats::digest::Digest;
use formats::distribution::DistributionLayout;
use formats::manifest::{
    ContainerConfig, Descriptor, ImageConfig, ImageManifest, ParsedManifest, RawManifest, RootFs,
};
use formats::media_type;
use formats::oci_layout::OciLayout;
use testsupport::{DockerRegistry as Registry, run, skopeo, tool};

/// The files our test layer contains.
const FILES: [(&str, &str); 3] = [
    ("hello.txt", "hello from sealos-rs\n"),
    ("etc/app.conf", "answer=42\n"),
    ("usr/share/doc/readme", "read me\n"),
];

/// Builds a one-layer image in a fresh OCI layout at `dir`, tagged `v1`; returns the manifest.
fn build_image(dir: &Path) -> (OciLayout, RawManifest) {
    let layout = OciLayout::create(dir).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    for d in ["etc", "usr", "usr/share", "usr/share/doc"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, format!("{d}/"), std::io::empty())
            .unwrap();
    }
    for (path, content) in FILES {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(content.len() as u64);
        h.set_mtime(1_700_000_000);
        tar.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let tar_bytes = tar.into_inner().unwrap();
    let diff_id = Digest::sha256_of(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).unwrap();
    let layer = gz.finish().unwrap();
    let (layer_digest, layer_size) = layout.write_blob_bytes(&layer).unwrap();

    let config = ImageConfig {
        created: Some("2024-01-01T00:00:00Z".into()),
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(ContainerConfig {
            env: vec!["PATH=/usr/bin:/bin".into()],
            cmd: vec!["/bin/sh".into()],
            ..ContainerConfig::default()
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        ..ImageConfig::default()
    };
    let config_bytes = formats::manifest::to_canonical_json(&config).unwrap();
    let (config_digest, config_size) = layout.write_blob_bytes(&config_bytes).unwrap();
    let manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
        vec![Descriptor::new(
            media_type::OCI_LAYER_TAR_GZIP,
            layer_digest,
            layer_size,
        )],
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let desc = layout.write_manifest(&raw).unwrap();
    layout.set_tag("v1", desc).unwrap();
    assert_eq!(testsupport::oci_spec_check_layout(dir), 3);
    (layout, raw)
}

#[test]
fn umoci_lists_the_tag_and_unpacks_the_files_of_an_image_we_built() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    build_image(&dir);
    let tags = run(tool("umoci").arg("ls").arg("--layout").arg(&dir));
    assert_eq!(tags.lines().collect::<Vec<_>>(), ["v1"]);
    let bundle = tmp.path().join("bundle");
    let mut unpack = tool("umoci");
    unpack.arg("unpack");
    // umoci needs --rootless unless it runs as root.
    let uid = run(Command::new("id").arg("-u"));
    if uid.trim() != "0" {
        unpack.arg("--rootless");
    }
    run(unpack
        .arg("--image")
        .arg(format!("{}:v1", dir.display()))
        .arg(&bundle));
    for (path, content) in FILES {
        assert_eq!(
            fs::read_to_string(bundle.join("rootfs").join(path)).unwrap(),
            content,
            "{path}"
        );
    }
    assert!(bundle.join("config.json").is_file());
}

#[test]
fn skopeo_inspects_our_layout_and_reports_our_digest_and_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let (_, raw) = build_image(&dir);
    let image = format!("oci:{}:v1", dir.display());
    let inspect: serde_json::Value =
        serde_json::from_str(&run(skopeo().arg("inspect").arg(&image))).unwrap();
    assert_eq!(inspect["Digest"], raw.digest.to_string());
    assert_eq!(inspect["Architecture"], "amd64");
    let bytes = run(skopeo().args(["inspect", "--raw"]).arg(&image));
    assert_eq!(bytes.as_bytes(), raw.bytes.as_slice());
}

#[test]
fn skopeo_pushes_into_docker_registry_and_our_distribution_reader_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layout");
    let (_, raw) = build_image(&dir);
    let tree = tmp.path().join("registry");
    fs::create_dir_all(&tree).unwrap();
    let registry = Registry::start(&tree);
    run(skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", dir.display()))
        .arg(format!("docker://{}/a/b:v1", registry.host())));
    drop(registry);

    let dist = DistributionLayout::new(&tree);
    assert_eq!(dist.repositories().unwrap(), ["a/b"]);
    assert_eq!(dist.tags("a/b").unwrap(), ["v1"]);
    let digest = dist.resolve_tag("a/b", "v1").unwrap().unwrap();
    assert_eq!(digest, raw.digest);
    let back = dist.read_manifest("a/b", &digest).unwrap();
    assert_eq!(back.bytes, raw.bytes);
    let ParsedManifest::Image(m) = back.parsed else {
        panic!("expected an image manifest")
    };
    for blob in std::iter::once(&m.config).chain(&m.layers) {
        let reader = dist.open_blob(&blob.digest).unwrap();
        formats::digest::DigestReader::new(reader, blob.digest.algorithm())
            .verify_to_end(&blob.digest, Some(blob.size))
            .unwrap();
    }
}
