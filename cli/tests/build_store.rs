//! `sealos build` against the local store: determinism, the layer and stat caches, atomicity on failure,
//! concurrent builds, base images and refusals.

mod build_common;

use std::fs;
use std::path::Path;

use build_common::*;

const KUBEFILE: &str = "FROM scratch\nCOPY bin/ /opt/bin/\nCOPY manifests manifests/\nCMD [\"kubectl apply -f manifests\"]\n";

fn sample_context(dir: &Path) {
    write_context(
        dir,
        &[
            ("Kubefile", KUBEFILE),
            ("bin/tool", "#!/bin/sh\necho tool\n"),
            ("bin/helper", "helper"),
            ("manifests/app.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
        ],
    );
}

fn steps(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["images"][0]["steps"].as_array().expect("steps")
}

#[test]
fn same_context_gives_same_manifest_digest_in_two_stores() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build_json(a.path(), &["-t", "app:v1", ctx.path().to_str().unwrap()]);
    let second = build_json(b.path(), &["-t", "app:v1", ctx.path().to_str().unwrap()]);
    assert_eq!(first["digest"], second["digest"]);
    // Also stable across compressions of the same choice, and sensitive to the timestamp.
    let third = build_json(
        b.path(),
        &[
            "--timestamp",
            "1700000000",
            "-t",
            "app:v2",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert_ne!(first["digest"], third["digest"]);
}

#[test]
fn rebuild_reuses_every_layer_without_reading_file_contents() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let first = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    assert!(steps(&first).iter().all(|s| s["cached"] == false));
    let second = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    assert_eq!(first["digest"], second["digest"]);
    for step in steps(&second) {
        assert_eq!(step["cached"], true, "{step}");
        assert_eq!(step["filesHashed"], 0, "file contents were re-read: {step}");
        assert_eq!(step["bytesWritten"], 0);
    }
}

#[test]
fn touched_file_is_hashed_again_and_its_unchanged_layer_reused() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let first = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    let touched = ctx.path().join("bin/helper");
    fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    let second = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(steps(&second)[0]["cached"], true);
    assert_eq!(
        steps(&second)[0]["filesHashed"],
        1,
        "only the touched file is read"
    );
    assert_eq!(steps(&second)[1]["filesHashed"], 0);
    // A changed content gives a new first layer; the second step's parent changed, so it is rebuilt too.
    fs::write(&touched, "helper v2").unwrap();
    let third = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    assert_ne!(first["digest"], third["digest"]);
    assert_eq!(steps(&third)[0]["cached"], false);
    assert_eq!(steps(&third)[1]["cached"], false);
}

#[test]
fn no_cache_writes_every_layer_again_with_the_same_result() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let first = build_json(
        store.path(),
        &["-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    let second = build_json(
        store.path(),
        &["--no-cache", "-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    assert_eq!(first["digest"], second["digest"]);
    for step in steps(&second) {
        assert_eq!(step["cached"], false);
        assert!(step["bytesWritten"].as_u64().unwrap() > 0);
    }
}

#[test]
fn missing_second_source_fails_with_its_line_and_leaves_the_store_unchanged() {
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY a.txt /a.txt\nCOPY missing.txt /b.txt\n",
            ),
            ("a.txt", "a"),
        ],
    );
    let store = tempfile::tempdir().unwrap();
    sample_context(&ctx.path().join("ok"));
    build_ok(
        store.path(),
        &["-t", "ok:v1", ctx.path().join("ok").to_str().unwrap()],
    );
    let index_before = fs::read(store.path().join("index.json")).unwrap();
    let blobs_before = walk(&store.path().join("blobs"));
    let out = build(
        store.path(),
        &["-t", "broken:v1", ctx.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Kubefile:3"), "{stderr}");
    assert!(stderr.contains("missing.txt"), "{stderr}");
    assert_eq!(
        fs::read(store.path().join("index.json")).unwrap(),
        index_before
    );
    assert_eq!(
        walk(&store.path().join("blobs")),
        blobs_before,
        "a failed build added blobs"
    );
    let leftovers: Vec<_> = walk(store.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert!(
        fs::read_dir(store.path().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn two_builds_into_one_store_at_once_both_succeed() {
    let store = tempfile::tempdir().unwrap();
    let (c1, c2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    sample_context(c1.path());
    write_context(
        c2.path(),
        &[
            ("Kubefile", "FROM scratch\nCOPY . /data/\n"),
            ("x.yaml", "x: 1\n"),
        ],
    );
    let spawn = |ctx: &Path, tag: &str| {
        sealos()
            .arg("--root")
            .arg(store.path())
            .args(["build", "-q", "-t", tag])
            .arg(ctx)
            .output()
            .expect("spawn")
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(c1.path(), "one:v1"));
        let b = s.spawn(|| spawn(c2.path(), "two:v1"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let one = tagged(store.path(), "docker.io/library/one:v1").expect("one tagged");
    let two = tagged(store.path(), "docker.io/library/two:v1").expect("two tagged");
    assert_eq!(
        one["digest"].as_str().unwrap(),
        String::from_utf8_lossy(&a.stdout).trim()
    );
    assert_eq!(
        two["digest"].as_str().unwrap(),
        String::from_utf8_lossy(&b.stdout).trim()
    );
}

#[test]
fn quiet_prints_only_the_digest() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let out = build_ok(
        store.path(),
        &["-q", "-t", "app:v1", ctx.path().to_str().unwrap()],
    );
    let line = out.trim();
    assert!(
        line.starts_with("sha256:") && line.len() == 71 && !line.contains('\n'),
        "{out:?}"
    );
}

#[test]
fn run_is_refused_saying_cluster_images_do_not_execute_commands() {
    let ctx = tempfile::tempdir().unwrap();
    write_context(ctx.path(), &[("Kubefile", "FROM scratch\nRUN make\n")]);
    let out = build(
        tempfile::tempdir().unwrap().path(),
        &["-t", "x:v1", ctx.path().to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Kubefile:2") && stderr.contains("without executing commands"),
        "{stderr}"
    );
}

#[test]
fn from_a_store_image_an_oci_archive_and_an_oci_dir_stack_on_its_layers() {
    let store = tempfile::tempdir().unwrap();
    let base_ctx = tempfile::tempdir().unwrap();
    write_context(
        base_ctx.path(),
        &[
            (
                "Kubefile",
                "FROM scratch\nENV BASE=1\nLABEL tier=base\nCOPY base.txt /base.txt\n",
            ),
            ("base.txt", "base"),
        ],
    );
    let archive = store.path().join("../base-archive.tar");
    let archive = archive.to_str().unwrap().to_string();
    build_ok(
        store.path(),
        &[
            "-t",
            "base:v1",
            "-o",
            &format!("type=oci-archive,dest={archive}"),
            base_ctx.path().to_str().unwrap(),
        ],
    );
    let oci_dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(oci_dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    for from in [
        "base:v1".to_string(),
        format!("oci-archive:{archive}"),
        format!("oci:{}:docker.io/library/base:v1", oci_dir.path().display()),
    ] {
        let ctx = tempfile::tempdir().unwrap();
        write_context(
            ctx.path(),
            &[
                (
                    "Kubefile",
                    &format!("FROM {from}\nENV APP=2\nCOPY app.txt /app.txt\n"),
                ),
                ("app.txt", "app"),
            ],
        );
        let fresh = tempfile::tempdir().unwrap();
        let target_store = if from.starts_with("base") {
            store.path()
        } else {
            fresh.path()
        };
        let out = tempfile::tempdir().unwrap();
        let report = build_json(
            target_store,
            &[
                "-t",
                "app:v1",
                "-o",
                &format!("type=local,dest={}", out.path().display()),
                ctx.path().to_str().unwrap(),
            ],
        );
        assert!(
            out.path().join("base.txt").is_file(),
            "FROM {from}: base layer missing"
        );
        assert!(out.path().join("app.txt").is_file());
        let manifest = blob_json(target_store, report["digest"].as_str().unwrap());
        assert_eq!(
            manifest["layers"].as_array().unwrap().len(),
            2,
            "FROM {from}"
        );
        let config = blob_json(target_store, manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(
            config["config"]["Env"],
            serde_json::json!([
                format!("PATH={}", formats::kubefile::SCRATCH_PATH),
                "BASE=1",
                "APP=2"
            ]),
            "FROM {from}"
        );
        assert_eq!(config["config"]["Labels"]["tier"], "base");
        assert!(testsupport::oci_spec_check_layout(target_store) >= 3);
    }
    assert!(testsupport::oci_spec_check_layout(oci_dir.path()) >= 3);
    fs::remove_file(&archive).unwrap();
}

#[test]
fn tar_output_holds_the_root_file_system() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let file = store.path().join("rootfs.tar");
    build_ok(
        store.path(),
        &[
            "-t",
            "app:v1",
            "-o",
            &format!("type=tar,dest={}", file.display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&file)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for path in ["opt/bin/tool", "opt/bin/helper", "manifests/app.yaml"] {
        assert!(
            listing.lines().any(|l| l.trim_end_matches('/') == path),
            "{path} not in:\n{listing}"
        );
    }
}

#[test]
fn skopeo_inspect_shows_our_config() {
    require_tool("skopeo");
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    build_ok(
        store.path(),
        &[
            "--label",
            "team=infra",
            "--env",
            "MODE=prod",
            "-t",
            "app:v1",
            ctx.path().to_str().unwrap(),
        ],
    );
    let out = std::process::Command::new("skopeo")
        .arg("inspect")
        .arg(format!(
            "oci:{}:docker.io/library/app:v1",
            store.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Labels"]["team"], "infra");
    assert!(
        info["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "MODE=prod")
    );
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(info["Created"], "1970-01-01T00:00:00Z");
}

#[test]
fn umoci_unpack_gives_the_same_tree_as_the_local_output() {
    require_tool("umoci");
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    build_ok(
        store.path(),
        &[
            "-t",
            "app:v1",
            "-o",
            &format!("type=local,dest={}", local.path().display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    let bundle = tempfile::tempdir().unwrap();
    let bundle_dir = bundle.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!(
            "{}:docker.io/library/app:v1",
            store.path().display()
        ))
        .arg(&bundle_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        tree_listing(&bundle_dir.join("rootfs")),
        tree_listing(local.path())
    );
}

#[test]
fn dockerignore_keeps_excluded_files_out_of_the_image() {
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[
            ("Kubefile", "FROM scratch\nCOPY . /app/\n"),
            (".dockerignore", "# leftovers\n.git\n**/*.bak\n!keep.bak\n"),
            (".git/config", "secret"),
            ("manifests/app.yaml", "kind: ConfigMap\n"),
            ("manifests/app.yaml.bak", "old"),
            ("keep.bak", "kept"),
        ],
    );
    let store = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    build_ok(
        store.path(),
        &[
            "-t",
            "app:v1",
            "-o",
            &format!("type=local,dest={}", out.path().display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    assert!(out.path().join("app/manifests/app.yaml").is_file());
    assert!(
        out.path().join("app/keep.bak").is_file(),
        "an exception re-includes the file"
    );
    assert!(!out.path().join("app/manifests/app.yaml.bak").exists());
    assert!(!out.path().join("app/.git").exists());
}

#[test]
fn build_oci_archive_output_is_byte_for_byte_what_save_writes() {
    let ctx = tempfile::tempdir().unwrap();
    sample_context(ctx.path());
    let store = tempfile::tempdir().unwrap();
    let outdir = tempfile::tempdir().unwrap();
    let built = outdir.path().join("built.tar");
    build_ok(
        store.path(),
        &[
            "-t",
            "app:v1",
            "--timestamp",
            "0",
            "-o",
            &format!("type=oci-archive,dest={}", built.display()),
            ctx.path().to_str().unwrap(),
        ],
    );
    let saved = outdir.path().join("saved.tar");
    let out = sealos()
        .arg("--root")
        .arg(store.path())
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&saved)
        .arg("app:v1")
        .output()
        .expect("run sealos save");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (built_bytes, saved_bytes) = (fs::read(&built).unwrap(), fs::read(&saved).unwrap());
    assert!(
        built_bytes == saved_bytes,
        "build -o type=oci-archive and save --format oci-archive wrote different archives"
    );
}
