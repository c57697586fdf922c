//! `COPY registry registry` of published sealos application recipes: sealos runs its image saver into
//! `CONTEXT/registry` before buildah, so the line copies the saved images. Ours are embedded as per-image layers
//! at `/registry`, which stand for the line: the real `sealos build` binary on recipe-shaped contexts whose
//! manifests reference an image on a local `docker-registry` (127.0.0.1); the embedded tree is read back with
//! `skopeo`. Needs `docker-registry` and `skopeo`; fails naming them.

mod build_common;
mod upstream;

use std::path::Path;
use std::process::Output;

use build_common::{blob_json, build, write_context};
use formats::digest::Digest;
use testsupport::{DockerRegistry, SealosRegistry};
use upstream::{push_multi_arch_seeded, skopeo};

/// A published-recipe-shaped context: a chart, a manifest naming `HOST/library/app:v1`, and `kubefile`.
fn recipe(dir: &Path, host: &str, kubefile: &str) {
    write_context(
        dir,
        &[
            ("Kubefile", kubefile),
            (
                "charts/app/Chart.yaml",
                "apiVersion: v2\nname: app\nversion: 0.1.0\n",
            ),
            ("charts/app/values.yaml", "replicas: 1\n"),
            (
                "manifests/app.yaml",
                &format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: {host}/library/app:v1\n"
                ),
            ),
        ],
    );
}

const KUBEFILE: &str = "FROM scratch\nCOPY charts charts\nCOPY manifests manifests\nCOPY registry registry\nCMD [\"helm install app charts/app\"]\n";

/// `sealos build` with no registries.conf of the host, plain HTTP to 127.0.0.1, timestamp 0.
fn build_in(tmp: &Path, extra: &[&str], ctx: &Path) -> Output {
    let conf = tmp.join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut args = vec![
        "--registries-conf",
        conf.to_str().unwrap(),
        "--tls-verify=false",
        "--timestamp",
        "0",
        "--platform",
        "linux/amd64",
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    build(&tmp.join("store"), &args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "sealos build failed:\n{}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The dry-run text's lines for the Kubefile line `line`.
fn dry_run_line(tmp: &Path, extra: &[&str], ctx: &Path, line: usize) -> String {
    let mut args = vec!["--dry-run"];
    args.extend_from_slice(extra);
    let text = ok(build_in(tmp, &args, ctx));
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&format!("{line} ")));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no line {line} in:\n{text}"));
    let rest: Vec<&str> = lines.take_while(|l| l.starts_with("        ")).collect();
    format!("{first}\n{}", rest.join("\n"))
}

#[test]
fn copy_registry_is_the_embedded_registry_and_skopeo_pulls_it_with_the_original_digest() {
    let reg = DockerRegistry::start_fresh();
    let (_, amd64, _) = push_multi_arch_seeded(&reg.host(), "library/app", "v1", "app");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    recipe(&ctx, &reg.host(), KUBEFILE);
    let out = tmp.path().join("out");
    let report: serde_json::Value = serde_json::from_str(&ok(build_in(
        tmp.path(),
        &[
            "--format",
            "json",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    )))
    .unwrap();
    assert_eq!(report["embedded"].as_array().unwrap().len(), 1, "{report}");

    // Two COPY layers, no layer for `COPY registry`, then the image's own layer.
    let manifest = blob_json(
        &tmp.path().join("store"),
        report["digest"].as_str().unwrap(),
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    let config = blob_json(
        &tmp.path().join("store"),
        manifest["config"]["digest"].as_str().unwrap(),
    );
    let step = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["created_by"] == "COPY registry registry")
        .unwrap_or_else(|| panic!("no COPY registry history: {config}"));
    assert_eq!(step["empty_layer"], true, "{step}");

    // The embedded tree sits at /registry and serves the image with its original digest.
    let link = out.join(
        "registry/docker/registry/v2/repositories/library/app/_manifests/tags/v1/current/link",
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), amd64.to_string());
    let served = SealosRegistry::start(
        Path::new(env!("CARGO_BIN_EXE_sealos")),
        &out.join("registry"),
        &[],
    );
    let dest = tmp.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/library/app:v1", served.host()),
        &format!("dir:{}", dest.display()),
    ]);
    assert_eq!(
        Digest::sha256_of(&std::fs::read(dest.join("manifest.json")).unwrap()),
        amd64
    );
}

#[test]
fn dry_run_says_every_spelling_of_copy_registry_is_the_embedded_registry() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (copy, placeholder)) in [
        ("COPY registry registry", None),
        ("COPY ./registry ./registry", Some("")),
        ("COPY registry/ registry/", Some(".keep")),
        ("COPY registry /registry", Some(".gitkeep")),
    ]
    .into_iter()
    .enumerate()
    {
        let ctx = tmp.path().join(format!("ctx{i}"));
        recipe(
            &ctx,
            "127.0.0.1:1",
            &KUBEFILE.replace("COPY registry registry", copy),
        );
        match placeholder {
            Some("") => std::fs::create_dir_all(ctx.join("registry")).unwrap(),
            Some(keep) => write_context(&ctx.join("registry"), &[(keep, "")]),
            None => {}
        }
        let line = dry_run_line(tmp.path(), &[], &ctx, 4);
        assert!(
            line.contains("note: registry: the embedded images, written at /registry"),
            "{copy}: {line}"
        );
        assert!(
            !line.contains(" -> "),
            "{copy} copies no context file: {line}"
        );
    }
}

#[test]
fn save_image_false_skips_copy_registry_with_a_note() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    recipe(&ctx, "127.0.0.1:1", KUBEFILE);
    let line = dry_run_line(tmp.path(), &["--save-image=false"], &ctx, 4);
    assert!(
        line.contains("note: registry: skipped, --save-image=false"),
        "{line}"
    );
    let out = build_in(
        tmp.path(),
        &["--save-image=false", "-t", "test/app:v1"],
        &ctx,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("note: ")
            && stderr(&out).contains("COPY registry registry: registry: skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn context_files_under_registry_merge_with_the_embedded_images() {
    let reg = DockerRegistry::start_fresh();
    let (_, amd64, _) = push_multi_arch_seeded(&reg.host(), "library/app", "v1", "app");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    recipe(&ctx, &reg.host(), KUBEFILE);
    write_context(&ctx.join("registry"), &[("config.yml", "version: 0.1\n")]);
    let line = dry_run_line(tmp.path(), &[], &ctx, 4);
    assert!(
        line.contains("merged with the embedded images")
            && line.contains("registry/config.yml -> /registry/config.yml"),
        "{line}"
    );
    let out = tmp.path().join("out");
    ok(build_in(
        tmp.path(),
        &["-o", &format!("type=local,dest={}", out.display())],
        &ctx,
    ));
    assert_eq!(
        std::fs::read_to_string(out.join("registry/config.yml")).unwrap(),
        "version: 0.1\n"
    );
    let link = out.join(
        "registry/docker/registry/v2/repositories/library/app/_manifests/tags/v1/current/link",
    );
    assert_eq!(std::fs::read_to_string(&link).unwrap(), amd64.to_string());
}

#[test]
fn a_context_file_at_an_embedded_path_fails_naming_both() {
    let reg = DockerRegistry::start_fresh();
    push_multi_arch_seeded(&reg.host(), "library/app", "v1", "app");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    recipe(&ctx, &reg.host(), KUBEFILE);
    let stale = "docker/registry/v2/repositories/library/app/_manifests/tags/v1/current/link";
    write_context(&ctx.join("registry"), &[(stale, "sha256:stale")]);
    let out = build_in(tmp.path(), &["-t", "test/app:v1"], &ctx);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "`registry/{stale}` from the build context collides with `/registry/{stale}`"
        )) && err.contains("library/app@sha256:"),
        "{err}"
    );
}

#[test]
fn copy_registry_elsewhere_than_slash_registry_is_planned_there() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    recipe(
        &ctx,
        "127.0.0.1:1",
        &KUBEFILE.replace(
            "COPY registry registry",
            "WORKDIR /opt\nCOPY registry registry",
        ),
    );
    let out = build_in(tmp.path(), &["--dry-run"], &ctx);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout)
                .contains("registry: the embedded images, written at /opt/registry"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn copy_registry_outside_the_final_stage_fails_saying_to_move_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let kubefile = format!(
        "FROM scratch AS saved\nCOPY registry registry\n\n{}",
        KUBEFILE.replace(
            "COPY registry registry",
            "COPY --from=saved /registry registry"
        )
    );
    recipe(&ctx, "127.0.0.1:1", &kubefile);
    let out = build_in(tmp.path(), &["--dry-run"], &ctx);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(":2")
            && stderr(&out).contains(
                "`COPY registry` in stage 0: the embedded images are added to the final stage only"
            ),
        "{}",
        stderr(&out)
    );
}
