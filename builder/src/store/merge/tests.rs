//! Merging images of the store: layers, dedup by diff_id, labels, env, commands, types and platforms.

use std::collections::BTreeMap;

use formats::layer::LayerEntry;
use formats::manifest::{
    ContainerConfig, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, ParsedManifest,
    Platform, RawManifest,
};
use formats::media_type;
use testsupport::images::{TestImage, write_image};

use super::super::details::parse_config;
use super::super::{Store, StoreError, normalize_name};
use super::ImageKind;

/// What a test image holds.
#[derive(Default, Clone)]
struct Spec<'a> {
    files: Vec<(&'a str, &'a str)>,
    labels: Vec<(&'a str, &'a str)>,
    env: Vec<&'a str>,
    entrypoint: Vec<&'a str>,
    cmd: Vec<&'a str>,
    created: &'a str,
    arch: &'a str,
}

/// Writes an image with one layer per file of `spec` and returns its manifest descriptor; tags it when
/// `tag` is given.
fn image(store: &Store, tag: Option<&str>, spec: &Spec) -> Descriptor {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut image = TestImage::hello("");
    image.layers = spec
        .files
        .iter()
        .map(|(path, content)| vec![LayerEntry::file(*path, content.as_bytes())])
        .collect();
    if !spec.arch.is_empty() {
        image.platform = Platform::new("linux", spec.arch);
    }
    image.created = if spec.created.is_empty() {
        "2024-01-01T00:00:00Z"
    } else {
        spec.created
    }
    .to_string();
    image.config = ContainerConfig {
        env: strings(&spec.env),
        entrypoint: strings(&spec.entrypoint),
        cmd: strings(&spec.cmd),
        labels: spec
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ContainerConfig::default()
    };
    image.history = spec
        .files
        .iter()
        .map(|(p, _)| History {
            created_by: Some(format!("COPY {p}")),
            ..History::default()
        })
        .collect();
    let desc = write_image(store.layout(), &image);
    if let Some(tag) = tag {
        store
            .layout()
            .set_tag(&normalize_name(tag).unwrap(), desc.clone())
            .unwrap();
    }
    desc
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path().join("store")).unwrap();
    (dir, store)
}

/// The merged image's (single) manifest and config.
fn merged(store: &Store, name: &str) -> (ImageManifest, ImageConfig) {
    let image = store.resolve(name).unwrap();
    testsupport::oci_spec_check(&image.manifest.bytes, &image.manifest.media_type);
    let ParsedManifest::Image(m) = image.manifest.parsed else {
        panic!("{name} is an index");
    };
    let bytes = store.layout().read_blob_bytes(&m.config.digest).unwrap();
    testsupport::oci_spec_check(&bytes, &m.config.media_type);
    let config = parse_config(&bytes, &m.config).unwrap();
    (m, config)
}

fn unsupported(result: Result<super::MergeReport, StoreError>) -> String {
    match result {
        Err(StoreError::Unsupported(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn layers_follow_input_order_and_duplicates_by_diff_id_are_left_out() {
    let (_d, store) = store();
    let base = ("base.txt", "base");
    let a = image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![base, ("a.txt", "a")],
            ..Spec::default()
        },
    );
    let b = image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![base, ("b.txt", "b")],
            ..Spec::default()
        },
    );
    let report = store.merge(&["a:1", "b:1"], &["merged:v1"]).unwrap();
    assert_eq!(report.layers, 3);
    assert_eq!(report.duplicate_layers, 1);
    assert_eq!(
        report.names,
        vec!["docker.io/library/merged:v1".to_string()]
    );
    assert_eq!(report.sources[0].1, a.digest);
    assert_eq!(report.sources[1].1, b.digest);
    let (manifest, config) = merged(&store, "merged:v1");
    let layer_of = |d: &Descriptor, i: usize| {
        let raw = store.layout().read_manifest(d).unwrap();
        let ParsedManifest::Image(m) = raw.parsed else {
            unreachable!()
        };
        m.layers[i].digest.clone()
    };
    let digests: Vec<_> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
    assert_eq!(
        digests,
        vec![layer_of(&a, 0), layer_of(&a, 1), layer_of(&b, 1)]
    );
    assert_eq!(config.rootfs.diff_ids.len(), 3);
    // One history entry per kept layer plus the merge entry; the duplicate's entry is gone.
    let by: Vec<_> = config
        .history
        .iter()
        .map(|h| h.created_by.clone().unwrap())
        .collect();
    assert_eq!(
        by,
        vec![
            "COPY base.txt",
            "COPY a.txt",
            "COPY b.txt",
            "sealos merge docker.io/library/a:1 docker.io/library/b:1"
        ]
    );
    assert_eq!(
        report.digest,
        store.resolve("merged:v1").unwrap().descriptor.digest
    );
}

#[test]
fn labels_and_env_merge_with_the_last_value_winning() {
    let (_d, store) = store();
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            labels: vec![("version", "v1"), ("only.a", "x")],
            env: vec!["NAME=calico", "PATH=/bin", "NS=tigera"],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            labels: vec![("version", "v2"), ("only.b", "y")],
            env: vec!["NS=kube-system", "EXTRA=1"],
            ..Spec::default()
        },
    );
    store.merge(&["a:1", "b:1"], &["m:1"]).unwrap();
    let (_, config) = merged(&store, "m:1");
    let c = config.config.unwrap();
    let labels: BTreeMap<&str, &str> = c
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        BTreeMap::from([("only.a", "x"), ("only.b", "y"), ("version", "v2")])
    );
    assert_eq!(
        c.env,
        vec!["NAME=calico", "PATH=/bin", "NS=kube-system", "EXTRA=1"]
    );
}

#[test]
fn commands_are_concatenated_in_input_order_without_the_shell_prefix() {
    let (_d, store) = store();
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            entrypoint: vec!["/bin/sh", "-c"],
            cmd: vec!["echo a"],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            entrypoint: vec!["echo b0"],
            cmd: vec!["echo b1", "echo b2"],
            ..Spec::default()
        },
    );
    store.merge(&["a:1", "b:1"], &["m:1"]).unwrap();
    let c = merged(&store, "m:1").1.config.unwrap();
    assert!(c.entrypoint.is_empty());
    assert_eq!(c.cmd, vec!["echo a", "echo b0", "echo b1", "echo b2"]);
}

#[test]
fn merging_the_same_images_twice_gives_the_same_digest() {
    let (_d, store) = store();
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            created: "2024-01-01T00:00:00Z",
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            created: "2025-06-01T00:00:00Z",
            ..Spec::default()
        },
    );
    let first = store.merge(&["a:1", "b:1"], &["m:1"]).unwrap();
    let second = store.merge(&["a:1", "b:1"], &["m:2", "m:3"]).unwrap();
    assert_eq!(first.digest, second.digest);
    assert_eq!(second.names.len(), 2);
    assert_eq!(
        merged(&store, "m:1").1.created.as_deref(),
        Some("2025-06-01T00:00:00Z")
    );
    // Order matters.
    let swapped = store.merge(&["b:1", "a:1"], &["m:4"]).unwrap();
    assert_ne!(first.digest, swapped.digest);
}

#[test]
fn type_is_rootfs_when_any_input_is_rootfs() {
    let (_d, store) = store();
    image(
        &store,
        Some("k8s:1"),
        &Spec {
            files: vec![("k", "k")],
            labels: vec![
                ("sealos.io.type", "rootfs"),
                ("sealos.io.version", "v1beta1"),
            ],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("helm:1"),
        &Spec {
            files: vec![("h", "h")],
            labels: vec![("sealos.io.type", "application")],
            cmd: vec!["helm install x"],
            ..Spec::default()
        },
    );
    let report = store.merge(&["k8s:1", "helm:1"], &["m:1"]).unwrap();
    assert_eq!(report.kind, ImageKind::Rootfs);
    let c = merged(&store, "m:1").1.config.unwrap();
    assert_eq!(c.labels["sealos.io.type"], "rootfs");
    assert_eq!(c.labels["sealos.io.version"], "v1beta1");
    // Files-only patches go into a rootfs as well.
    image(
        &store,
        Some("patch:1"),
        &Spec {
            files: vec![("p", "p")],
            labels: vec![("apps.sealos.io/type", "patch")],
            ..Spec::default()
        },
    );
    let report = store.merge(&["k8s:1", "patch:1"], &["m:2"]).unwrap();
    assert_eq!(report.kind, ImageKind::Rootfs);
    let c = merged(&store, "m:2").1.config.unwrap();
    assert_eq!(c.labels["apps.sealos.io/type"], "rootfs");
}

#[test]
fn applications_merge_into_an_application() {
    let (_d, store) = store();
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            labels: vec![("sealos.io.type", "application")],
            ..Spec::default()
        },
    );
    assert_eq!(
        store.merge(&["a:1", "b:1"], &["m:1"]).unwrap().kind,
        ImageKind::Application
    );
}

#[test]
fn patch_with_application_or_patch_command_with_rootfs_is_refused() {
    let (_d, store) = store();
    image(
        &store,
        Some("patch:1"),
        &Spec {
            files: vec![("p", "p")],
            labels: vec![("sealos.io.type", "patch")],
            cmd: vec!["cp -f ./opt/skopeo /usr/local/bin/skopeo"],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("app:1"),
        &Spec {
            files: vec![("a", "a")],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("k8s:1"),
        &Spec {
            files: vec![("k", "k")],
            labels: vec![("sealos.io.type", "rootfs")],
            ..Spec::default()
        },
    );
    let message = unsupported(store.merge(&["patch:1", "app:1"], &["m:1"]));
    assert!(
        message.contains("patch image `docker.io/library/patch:1`"),
        "{message}"
    );
    assert!(message.contains("sealos run"), "{message}");
    let message = unsupported(store.merge(&["k8s:1", "patch:1"], &["m:1"]));
    assert!(message.contains("has a command"), "{message}");
    assert!(
        store.resolve("m:1").is_err(),
        "nothing is tagged after a refusal"
    );
    // Patches alone merge into a patch.
    image(
        &store,
        Some("patch:2"),
        &Spec {
            files: vec![("q", "q")],
            labels: vec![("sealos.io.type", "patch")],
            ..Spec::default()
        },
    );
    assert_eq!(
        store.merge(&["patch:1", "patch:2"], &["m:2"]).unwrap().kind,
        ImageKind::Patch
    );
}

#[test]
fn unknown_type_missing_image_and_missing_name_are_refused() {
    let (_d, store) = store();
    image(
        &store,
        Some("odd:1"),
        &Spec {
            files: vec![("o", "o")],
            labels: vec![("sealos.io.type", "weird")],
            ..Spec::default()
        },
    );
    let message = unsupported(store.merge(&["odd:1"], &["m:1"]));
    assert!(message.contains("unknown type `weird`"), "{message}");
    assert!(matches!(
        store.merge(&["nope:1"], &["m:1"]),
        Err(StoreError::NotFound(_))
    ));
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            ..Spec::default()
        },
    );
    assert!(unsupported(store.merge(&["a:1"], &[])).contains("-t"));
    assert!(unsupported(store.merge(&[], &["m:1"])).contains("at least one"));
    assert!(
        unsupported(store.merge(
            &["a:1"],
            &["m@sha256:0000000000000000000000000000000000000000000000000000000000000000"]
        ))
        .contains("digest")
    );
}

#[test]
fn images_of_different_platforms_are_refused() {
    let (_d, store) = store();
    image(
        &store,
        Some("a:1"),
        &Spec {
            files: vec![("a", "a")],
            ..Spec::default()
        },
    );
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            arch: "arm64",
            ..Spec::default()
        },
    );
    let message = unsupported(store.merge(&["a:1", "b:1"], &["m:1"]));
    assert!(
        message.contains("linux/amd64") && message.contains("linux/arm64"),
        "{message}"
    );
}

#[test]
fn an_index_input_gives_an_index_of_the_common_platforms() {
    let (_d, store) = store();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let mut d = image(
            &store,
            None,
            &Spec {
                files: vec![("f", arch)],
                arch,
                ..Spec::default()
            },
        );
        d.platform = Some(Platform::new("linux", arch));
        children.push(d);
    }
    let raw = RawManifest::from_created(&ImageIndex::new(children), media_type::OCI_INDEX).unwrap();
    let desc = store.layout().write_manifest(&raw).unwrap();
    store
        .layout()
        .set_tag(&normalize_name("multi:1").unwrap(), desc)
        .unwrap();
    image(
        &store,
        Some("app:1"),
        &Spec {
            files: vec![("app", "x")],
            ..Spec::default()
        },
    );
    let report = store.merge(&["multi:1", "app:1"], &["m:1"]).unwrap();
    assert_eq!(report.media_type, media_type::OCI_INDEX);
    assert_eq!(report.platforms, vec!["linux/amd64".to_string()]);
    assert_eq!(report.layers, 2);
    let details = store.inspect("m:1").unwrap();
    assert_eq!(details.platforms(), vec!["linux/amd64".to_string()]);
    assert_eq!(details.images[0].layers.len(), 2);
    // The store stays consistent: every referenced blob is present.
    assert!(store.layout().fsck().unwrap().is_clean());
}

#[test]
fn docker_format_inputs_give_an_oci_image_with_oci_layer_types() {
    let (_d, store) = store();
    let oci = image(
        &store,
        None,
        &Spec {
            files: vec![("d", "docker")],
            ..Spec::default()
        },
    );
    let raw = store.layout().read_manifest(&oci).unwrap();
    let ParsedManifest::Image(mut manifest) = raw.parsed else {
        unreachable!()
    };
    manifest.media_type = Some(media_type::DOCKER_MANIFEST.to_string());
    manifest.config.media_type = media_type::DOCKER_CONFIG.to_string();
    for layer in &mut manifest.layers {
        layer.media_type = media_type::DOCKER_LAYER_TAR_GZIP.to_string();
    }
    let raw = RawManifest::from_created(&manifest, media_type::DOCKER_MANIFEST).unwrap();
    let desc = store.layout().write_manifest(&raw).unwrap();
    store
        .layout()
        .set_tag(&normalize_name("docker:1").unwrap(), desc)
        .unwrap();
    image(
        &store,
        Some("b:1"),
        &Spec {
            files: vec![("b", "b")],
            ..Spec::default()
        },
    );
    let report = store.merge(&["docker:1", "b:1"], &["m:1"]).unwrap();
    assert_eq!(report.media_type, media_type::OCI_MANIFEST);
    let (m, _) = merged(&store, "m:1");
    assert_eq!(m.config.media_type, media_type::OCI_CONFIG);
    assert!(
        m.layers
            .iter()
            .all(|l| l.media_type == media_type::OCI_LAYER_TAR_GZIP),
        "{:?}",
        m.layers
    );
}
