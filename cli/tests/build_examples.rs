//! Every context under `Kubefile-examples/` builds into a fresh store, and the results look as their Kubefiles say.

mod build_common;

use std::fs;

use build_common::*;

#[test]
fn every_kubefile_example_builds_into_the_store() {
    let mut names: Vec<String> = fs::read_dir(examples_dir())
        .expect("Kubefile-examples exists")
        .map(|e| e.expect("entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 3,
        "expected the example contexts, found {names:?}"
    );
    let store = tempfile::tempdir().unwrap();
    for name in &names {
        let context = examples_dir().join(name);
        let tag = format!("example/{name}:v1");
        // Embedding needs the upstream registries; tests/embed.rs covers it against a local one.
        let report = build_json(
            store.path(),
            &["--save-image=false", "-t", &tag, context.to_str().unwrap()],
        );
        let full = format!("docker.io/example/{name}:v1");
        assert_eq!(report["tags"][0], full.as_str());
        let descriptor =
            tagged(store.path(), &full).unwrap_or_else(|| panic!("{full} is not tagged"));
        assert_eq!(descriptor["digest"], report["digest"]);
    }
}

#[test]
fn calico_example_has_one_layer_and_the_kubefile_config() {
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let rootfs = out.path().join("rootfs");
    let context = examples_dir().join("calico");
    build_ok(
        store.path(),
        &[
            // The chart's images would be pulled from quay.io; this test is about the Kubefile's layer.
            "--save-image=false",
            "-t",
            "calico:v1",
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
            context.to_str().unwrap(),
        ],
    );
    assert!(rootfs.join("charts/calico/Chart.yaml").is_file());
    assert!(
        rootfs.join("Kubefile").is_file(),
        "COPY . . takes the whole context"
    );
    let descriptor = tagged(store.path(), "docker.io/library/calico:v1").expect("tagged");
    let manifest = blob_json(store.path(), descriptor["digest"].as_str().unwrap());
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "one layer per COPY"
    );
    let config = blob_json(store.path(), manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!([
            format!("PATH={}", formats::kubefile::SCRATCH_PATH),
            "NAME=calico",
            "NAMESPACE=tigera-operator"
        ]),
        "FROM scratch starts with buildah's default PATH"
    );
    assert!(
        config["config"]["Cmd"][0]
            .as_str()
            .unwrap()
            .starts_with("helm upgrade -i $(NAME)")
    );
    assert_eq!(config["created"], "1970-01-01T00:00:00Z");
}

#[test]
fn multi_stage_example_copies_from_its_named_stage_with_chmod() {
    use std::os::unix::fs::PermissionsExt;
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let context = examples_dir().join("multi-stage");
    build_ok(
        store.path(),
        &[
            "-t",
            "ms:v1",
            "-o",
            &format!("type=local,dest={}", out.path().display()),
            context.to_str().unwrap(),
        ],
    );
    assert!(out.path().join("manifests/app.yaml").is_file());
    let mode = fs::metadata(out.path().join("scripts/install.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[test]
fn add_of_a_local_archive_unpacks_the_archive_and_keeps_the_copied_one() {
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let context =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build_fixtures/add-archive");
    build_ok(
        store.path(),
        &[
            "-t",
            "helm:v1",
            "-o",
            &format!("type=local,dest={}", out.path().display()),
            context.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(out.path().join("usr/local/bin/helm")).unwrap(),
        "helm binary stand-in\n"
    );
    assert_eq!(
        fs::read_link(out.path().join("usr/local/bin/h"))
            .unwrap()
            .to_str(),
        Some("helm")
    );
    assert!(out.path().join("opt/archives/helm.tar.gz").is_file());
    assert!(out.path().join("opt/notes.txt").is_file());
}

#[test]
fn multi_arch_example_builds_an_index_with_each_platforms_binary() {
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let context = examples_dir().join("multi-arch");
    let report = build_json(
        store.path(),
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "helm:v1",
            "-o",
            &format!("type=local,dest={}", out.path().display()),
            context.to_str().unwrap(),
        ],
    );
    assert_eq!(
        report["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let descriptor = tagged(store.path(), "docker.io/library/helm:v1").expect("index tagged");
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index = blob_json(store.path(), report["digest"].as_str().unwrap());
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let amd = fs::read(out.path().join("linux_amd64/opt/helm")).unwrap();
    let arm = fs::read(out.path().join("linux_arm64/opt/helm")).unwrap();
    assert_eq!(amd, fs::read(context.join("bin/amd64/helm")).unwrap());
    assert_eq!(arm, fs::read(context.join("bin/arm64/helm")).unwrap());
    assert_ne!(amd, arm);
}
