//! `sealos merge`: two images built from Kubefile-examples-like contexts merged into one, checked with
//! `sealos inspect --format json` and unpacked with umoci.

mod build_common;

use std::path::Path;

use build_common::*;

/// A rootfs image shaped like `Kubefile-examples/rootfs-kubernetes`, with a `shared/` layer.
fn rootfs_context(dir: &Path) {
    write_context(
        dir,
        &[
            (
                "Kubefile",
                "FROM scratch\n\
                 COPY shared shared\n\
                 LABEL sealos.io.type=\"rootfs\" sealos.io.version=\"v1beta1\" version=\"v1.27.7\" \\\n  \
                       check=\"check.sh \\$registryData\"\n\
                 ENV criData=/var/lib/containerd registryDomain=sealos.hub NAMESPACE=kube-system\n\
                 COPY etc etc\n\
                 COPY scripts scripts\n",
            ),
            ("shared/README", "same bytes in both images\n"),
            ("etc/registry.yml.tmpl", "domain: {{ .registryDomain }}\n"),
            ("scripts/check.sh", "#!/bin/bash\necho check \"$1\"\n"),
        ],
    );
}

/// An application image shaped like `Kubefile-examples/calico`, with the same `shared/` layer.
fn app_context(dir: &Path) {
    write_context(
        dir,
        &[
            (
                "Kubefile",
                "FROM scratch\n\
                 COPY shared shared\n\
                 ENV NAME=${NAME:-\"calico\"}\n\
                 ENV NAMESPACE=${NAMESPACE:-\"tigera-operator\"}\n\
                 LABEL version=\"v3.26.1\"\n\
                 COPY charts charts\n\
                 CMD [\"helm upgrade -i $(NAME) charts/calico -n $(NAMESPACE) --create-namespace\"]\n",
            ),
            ("shared/README", "same bytes in both images\n"),
            (
                "charts/calico/Chart.yaml",
                "apiVersion: v2\nname: calico\nversion: 3.26.1\n",
            ),
        ],
    );
}

fn patch_context(dir: &Path) {
    write_context(
        dir,
        &[
            (
                "Kubefile",
                "FROM scratch\nLABEL sealos.io.type=\"patch\"\nCOPY opt opt\n\
                 CMD [\"cp -f ./opt/skopeo /usr/local/bin/skopeo\"]\n",
            ),
            ("opt/skopeo", "#!/bin/sh\necho skopeo\n"),
        ],
    );
}

fn sealos_ok(store: &Path, args: &[&str]) -> String {
    let out = sealos()
        .arg("--root")
        .arg(store)
        .args(args)
        .output()
        .expect("run sealos");
    assert!(
        out.status.success(),
        "sealos {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn inspect(store: &Path, name: &str) -> serde_json::Value {
    serde_json::from_str(&sealos_ok(store, &["inspect", "--format", "json", name]))
        .expect("inspect JSON")
}

/// A store holding `rootfs:v1` and `app:v1` built from the contexts above.
fn built() -> (tempfile::TempDir, [tempfile::TempDir; 2]) {
    let store = tempfile::tempdir().unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    let app = tempfile::tempdir().unwrap();
    rootfs_context(rootfs.path());
    app_context(app.path());
    build_ok(
        store.path(),
        &["-t", "rootfs:v1", rootfs.path().to_str().unwrap()],
    );
    build_ok(
        store.path(),
        &["-t", "app:v1", app.path().to_str().unwrap()],
    );
    (store, [rootfs, app])
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn merged_image_has_both_layer_sets_merged_labels_env_and_concatenated_commands() {
    let (store, _contexts) = built();
    let store = store.path();
    let rootfs = inspect(store, "rootfs:v1");
    let app = inspect(store, "app:v1");
    let report: serde_json::Value = serde_json::from_str(&sealos_ok(
        store,
        &[
            "merge",
            "--format",
            "json",
            "-t",
            "cluster:v1",
            "rootfs:v1",
            "app:v1",
        ],
    ))
    .expect("merge report JSON");
    assert_eq!(report["kind"], "rootfs");
    assert_eq!(
        report["duplicateLayers"], 1,
        "the shared/ layer is taken once: {report}"
    );

    let merged = inspect(store, "cluster:v1");
    assert_eq!(merged["digest"], report["digest"]);
    let image = &merged["images"][0];
    let diff_ids = |i: &serde_json::Value| -> Vec<String> {
        i["images"][0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["diffId"].as_str().unwrap().to_string())
            .collect()
    };
    let (r, a) = (diff_ids(&rootfs), diff_ids(&app));
    assert_eq!(r[0], a[0], "both images start with the same shared/ layer");
    let mut expected = r.clone();
    expected.extend(a[1..].iter().cloned());
    assert_eq!(diff_ids(&merged), expected);

    let labels = &image["labels"];
    assert_eq!(labels["sealos.io.type"], "rootfs");
    assert_eq!(labels["sealos.io.version"], "v1beta1");
    assert_eq!(labels["check"], "check.sh $registryData");
    assert_eq!(labels["version"], "v3.26.1", "the last image's label wins");
    let env = strings(&image["env"]);
    assert!(
        env.contains(&"criData=/var/lib/containerd".to_string()),
        "{env:?}"
    );
    assert!(env.contains(&"NAME=calico".to_string()), "{env:?}");
    assert!(
        env.contains(&"NAMESPACE=tigera-operator".to_string()),
        "the last value wins: {env:?}"
    );
    assert!(
        !env.contains(&"NAMESPACE=kube-system".to_string()),
        "{env:?}"
    );
    assert_eq!(
        strings(&image["cmd"]),
        vec!["helm upgrade -i $(NAME) charts/calico -n $(NAMESPACE) --create-namespace"]
    );
    assert!(image["entrypoint"].as_array().unwrap().is_empty());

    // The same merge again gives the same image.
    let again = sealos_ok(store, &["merge", "-t", "cluster:v2", "rootfs:v1", "app:v1"]);
    assert!(
        again.contains(report["digest"].as_str().unwrap()),
        "{again}"
    );
    assert!(
        again.contains("tagged: docker.io/library/cluster:v2"),
        "{again}"
    );
}

#[test]
fn umoci_unpack_of_the_merged_image_yields_both_images_files() {
    require_tool("umoci");
    let (store, _contexts) = built();
    sealos_ok(
        store.path(),
        &["merge", "-t", "cluster:v1", "rootfs:v1", "app:v1"],
    );
    let bundle = tempfile::tempdir().unwrap();
    let bundle_dir = bundle.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!(
            "{}:docker.io/library/cluster:v1",
            store.path().display()
        ))
        .arg(&bundle_dir)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = bundle_dir.join("rootfs");
    for (path, content) in [
        ("shared/README", "same bytes in both images\n"),
        ("etc/registry.yml.tmpl", "domain: {{ .registryDomain }}\n"),
        ("scripts/check.sh", "#!/bin/bash\necho check \"$1\"\n"),
        (
            "charts/calico/Chart.yaml",
            "apiVersion: v2\nname: calico\nversion: 3.26.1\n",
        ),
    ] {
        let found = std::fs::read_to_string(rootfs.join(path))
            .unwrap_or_else(|e| panic!("{path} missing from the unpacked merged image: {e}"));
        assert_eq!(found, content, "{path}");
    }
}

#[test]
fn merging_a_patch_with_an_application_is_refused_and_tags_nothing() {
    let (store, _contexts) = built();
    let patch = tempfile::tempdir().unwrap();
    patch_context(patch.path());
    build_ok(
        store.path(),
        &["-t", "patch:v1", patch.path().to_str().unwrap()],
    );
    let out = sealos()
        .arg("--root")
        .arg(store.path())
        .args(["merge", "-t", "bad:v1", "patch:v1", "app:v1"])
        .output()
        .expect("run sealos");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot merge patch image `docker.io/library/patch:v1`"),
        "{stderr}"
    );
    assert!(tagged(store.path(), "docker.io/library/bad:v1").is_none());
}

#[test]
fn merge_needs_a_name_and_documents_its_rules() {
    let store = tempfile::tempdir().unwrap();
    let out = sealos()
        .arg("--root")
        .arg(store.path())
        .args(["merge", "a:1"])
        .output()
        .expect("run sealos");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tag"));
    let help = sealos_ok(store.path(), &["merge", "--help"]);
    for rule in ["layers", "labels", "env", "command", "type", "platform"] {
        assert!(help.contains(rule), "help lacks the {rule} rule:\n{help}");
    }
}
