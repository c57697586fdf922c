//! `sealos build` with `FROM` and `COPY --from` images from a registry (Debian's `docker-registry` on
//! 127.0.0.1): pulled for the build platform into the store, a local image of the same name wins, and
//! `--pull=always|missing|never`.

mod build_common;
mod upstream;

use std::fs;
use std::path::Path;
use std::process::Output;

use build_common::{tagged, write_context};
use formats::layer::{Compression, LayerEntry, LayerOptions, write_entries_layer};
use testsupport::DockerRegistry;
use upstream::{client, push_image_layers};

/// The host's architecture in Go's spelling, as the builder targets by default.
fn host_arch() -> String {
    formats::manifest::Platform::host().architecture
}

/// An uncompressed tar layer holding `etc/base.txt` = `content`.
fn tar_layer(content: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write_entries_layer(
        [LayerEntry::file(
            "etc/base.txt",
            content.as_bytes().to_vec(),
        )],
        &LayerOptions {
            compression: Compression::None,
            mtime: 0,
        },
        &mut out,
    )
    .expect("write tar layer");
    out
}

/// Runs `sealos --root STORE build --tls-verify=false --registries-conf EMPTY ARGS...`.
fn build(store: &Path, args: &[&str]) -> Output {
    let conf = store.with_extension("registries.conf");
    fs::write(&conf, "").unwrap();
    let out = build_common::sealos()
        .arg("--root")
        .arg(store)
        .arg("build")
        .arg("--tls-verify=false")
        .arg("--registries-conf")
        .arg(&conf)
        .args(args)
        .env("REGISTRY_AUTH_FILE", store.with_extension("auth.json"))
        .output()
        .expect("run sealos");
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build_json(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = build(store, &all);
    assert!(out.status.success(), "sealos build {args:?} failed");
    serde_json::from_slice(&out.stdout).expect("build report is JSON")
}

/// The layer digests of the image tagged `tag` in `store`.
fn layers(store: &Path, tag: &str) -> Vec<String> {
    let desc = tagged(store, tag).unwrap_or_else(|| panic!("{tag} is not tagged"));
    let manifest = build_common::blob_json(store, desc["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// A registry holding `base:v1` (one tar layer with etc/base.txt = "from the registry"); returns the
/// registry, the full image name and its layer digest.
fn registry_with_base() -> (DockerRegistry, String, String) {
    let reg = DockerRegistry::start_fresh();
    let layer = tar_layer("from the registry");
    let layer_digest = formats::digest::Digest::sha256_of(&layer).to_string();
    push_image_layers(
        &client(),
        &reg.host(),
        "base",
        Some("v1"),
        &host_arch(),
        &[layer],
    );
    let image = format!("{}/base:v1", reg.host());
    (reg, image, layer_digest)
}

#[test]
fn from_a_registry_image_pulls_it_into_the_store_and_a_second_build_fetches_no_blob() {
    let (reg, image, base_layer) = registry_with_base();
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            (
                "Kubefile",
                &format!("FROM {image}\nCOPY app.yaml /manifests/\n"),
            ),
            ("app.yaml", "kind: ConfigMap\n"),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let context = ctx.path().to_str().unwrap();
    build_json(&store, &["-t", "app:v1", context]);
    let built = layers(&store, "docker.io/library/app:v1");
    assert_eq!(built.len(), 2);
    assert_eq!(
        built[0], base_layer,
        "the base layer comes first, unchanged"
    );
    assert!(
        tagged(&store, &image).is_some(),
        "the pulled base is kept under its name"
    );
    let fetched = reg.blob_gets();
    assert!(fetched >= 2, "config and layer were fetched: {fetched}");

    // Default policy (missing): the local image wins, nothing is fetched again; never: works offline.
    build_json(&store, &["--no-cache", "-t", "app:v2", context]);
    build_json(&store, &["--pull=never", "-t", "app:v3", context]);
    assert_eq!(reg.blob_gets(), fetched);
    assert_eq!(layers(&store, "docker.io/library/app:v3"), built);
}

#[test]
fn a_local_image_with_the_registry_name_wins_unless_pull_is_always() {
    let (_reg, image, base_layer) = registry_with_base();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    // A local image under the same name, built from scratch.
    let local_ctx = tempfile::tempdir().unwrap();
    write_context(
        local_ctx.path(),
        &[
            ("Kubefile", "FROM scratch\nCOPY local.txt /etc/\n"),
            ("local.txt", "local\n"),
        ],
    );
    build_json(&store, &["-t", &image, local_ctx.path().to_str().unwrap()]);
    let local_layers = layers(&store, &image);

    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            ("Kubefile", &format!("FROM {image}\nCOPY a /a\n")),
            ("a", "a"),
        ],
    );
    let context = ctx.path().to_str().unwrap();
    build_json(&store, &["-t", "app:local", context]);
    assert_eq!(
        layers(&store, "docker.io/library/app:local")[0],
        local_layers[0]
    );

    build_json(&store, &["--pull=always", "-t", "app:remote", context]);
    assert_eq!(
        layers(&store, "docker.io/library/app:remote")[0],
        base_layer
    );
    assert_eq!(
        layers(&store, &image),
        vec![base_layer],
        "--pull=always retags the name to the registry's image"
    );
}

#[test]
fn copy_from_a_registry_image_takes_files_out_of_its_layers() {
    let (_reg, image, _) = registry_with_base();
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[(
            "Kubefile",
            &format!("FROM scratch\nCOPY --from={image} /etc/base.txt /copied.txt\n"),
        )],
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out_dir = tmp.path().join("out");
    build_json(
        &store,
        &[
            "-t",
            "copy:v1",
            "-o",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(out_dir.join("copied.txt")).unwrap(),
        "from the registry"
    );
}

#[test]
fn a_registry_image_missing_from_the_store_with_pull_never_fails_naming_it_and_tags_nothing() {
    let (reg, image, _) = registry_with_base();
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            ("Kubefile", &format!("FROM {image}\nCOPY a /a\n")),
            ("a", "a"),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = build(
        &store,
        &["--pull=never", "-t", "x:v1", ctx.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Kubefile:1") && stderr.contains(&image) && stderr.contains("--pull=never"),
        "{stderr}"
    );
    assert!(tagged(&store, "docker.io/library/x:v1").is_none());
    assert_eq!(reg.blob_gets(), 0);
}

#[test]
fn a_registry_image_that_does_not_exist_fails_naming_it_and_tags_nothing() {
    let (_reg, image, _) = registry_with_base();
    let missing = image.replace("base:v1", "nothere:v1");
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            ("Kubefile", &format!("FROM {missing}\nCOPY a /a\n")),
            ("a", "a"),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = build(&store, &["-t", "x:v1", ctx.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&missing) && stderr.contains("pulling it failed"),
        "{stderr}"
    );
    assert!(tagged(&store, "docker.io/library/x:v1").is_none());
}
