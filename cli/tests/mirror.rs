//! `sealos pull|push|registry save|sync|copy` end to end against Debian's `docker-registry` on 127.0.0.1, read
//! back with `skopeo`. Both tools must be installed; the tests fail naming them when not.
//! Blob fetches are counted from `docker-registry`'s access log.

mod upstream;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use formats::digest::Digest;
use upstream::*;

/// Runs `sealos ARGS --tls-verify=false` with an empty registries.conf and a private store and auth file.
fn sealos(store: &Path, args: &[&str]) -> Output {
    let conf = store.with_extension("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    if !matches!(args.first(), Some(&"manifest")) || args.get(1) == Some(&"push") {
        all.push("--tls-verify=false".into());
        all.push("--registries-conf".into());
        all.push(conf.display().to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(&all)
        .env("SEALOS_ROOT", store)
        .env("REGISTRY_AUTH_FILE", store.with_extension("auth.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run sealos");
    eprintln!(
        "sealos {}\n--- stdout\n{}--- stderr\n{}",
        all.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "sealos failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dir_tag(dir: &Path, repo: &str, tag: &str) -> Option<Digest> {
    formats::distribution::DistributionLayout::new(dir)
        .resolve_tag(repo, tag)
        .unwrap()
}

#[test]
fn pull_then_push_round_trips_an_image_through_the_local_store_byte_exact() {
    let reg = start_registry(None);
    let host = &reg.host;
    let (digest, _) = push_image(host, "app", Some("v1"), "amd64", "round trip ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{host}/app:v1");
    ok(&sealos(&store, &["pull", &image]));
    let layout = formats::oci_layout::OciLayout::open(&store).unwrap();
    assert_eq!(layout.resolve(&image).unwrap().unwrap().digest, digest);
    ok(&sealos(
        &store,
        &["push", &image, &format!("{host}/copies/app:v2")],
    ));
    assert_eq!(remote_digest(host, "copies/app", "v2"), Some(digest));
}

#[test]
fn manifest_list_built_from_local_images_is_pushed_with_its_images() {
    let reg = start_registry(None);
    let host = &reg.host;
    push_image(host, "app", Some("amd"), "amd64", "list amd ");
    push_image(host, "app", Some("arm"), "arm64", "list arm ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok(&sealos(
        &store,
        &[
            "pull",
            &format!("{host}/app:amd"),
            "--platform",
            "linux/amd64",
        ],
    ));
    ok(&sealos(
        &store,
        &[
            "pull",
            &format!("{host}/app:arm"),
            "--platform",
            "linux/arm64",
        ],
    ));
    ok(&sealos(&store, &["manifest", "create", "mylist"]));
    ok(&sealos(
        &store,
        &["manifest", "add", "mylist", &format!("{host}/app:amd")],
    ));
    ok(&sealos(
        &store,
        &[
            "manifest",
            "add",
            "mylist",
            &format!("{host}/app:arm"),
            "--variant",
            "v8",
        ],
    ));
    let inspect = sealos(&store, &["manifest", "inspect", "mylist"]);
    ok(&inspect);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        text.contains("\"arm64\"") && text.contains("\"v8\"") && text.contains("\"amd64\""),
        "{text}"
    );
    ok(&sealos(
        &store,
        &[
            "manifest",
            "push",
            "--all",
            "mylist",
            &format!("docker://{host}/multi:1"),
        ],
    ));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/multi:1"),
    ]);
    assert!(String::from_utf8_lossy(&raw).contains("arm64"));
}

#[test]
fn save_writes_a_layout_that_docker_registry_serves_and_skopeo_reads_with_original_digests() {
    let src = start_registry(None);
    let host = &src.host;
    let (single, _) = push_image(host, "app", Some("v1"), "amd64", "single ");
    let (two_level, _) = push_image(
        host,
        "team/tools/kubectl",
        Some("1.0"),
        "amd64",
        "two level ",
    );
    let (index, _, _) = push_multi_arch(host, "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    let images = format!("{host}/app:v1,{host}/team/tools/kubectl:1.0,{host}/multi:1");
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            &images,
            "--registry-dir",
            out_dir.to_str().unwrap(),
            "--all",
        ],
    ));
    // sealos naming: the host is dropped.
    assert_eq!(dir_tag(&out_dir, "app", "v1"), Some(single.clone()));
    assert_eq!(
        dir_tag(&out_dir, "team/tools/kubectl", "1.0"),
        Some(two_level.clone())
    );
    assert_eq!(dir_tag(&out_dir, "multi", "1"), Some(index.clone()));

    let served = start_registry(Some(&out_dir));
    for (name, digest) in [
        ("app:v1", &single),
        ("team/tools/kubectl:1.0", &two_level),
        ("multi:1", &index),
    ] {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{name}", served.host),
        ]);
        assert_eq!(&Digest::sha256_of(&raw), digest, "{name}");
        let dest = tmp
            .path()
            .join(format!("copy-{}", name.replace(['/', ':'], "-")));
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/{name}", served.host),
            &format!("oci:{}:x", dest.display()),
        ]);
    }
}

#[test]
fn save_with_arch_keeps_only_that_platform_manifest_and_tags_it() {
    let src = start_registry(None);
    let (index, amd, arm) = push_multi_arch(&src.host, "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            &format!("{}/multi:1", src.host),
            "--registry-dir",
            out_dir.to_str().unwrap(),
            "--arch",
            "arm64",
        ],
    ));
    assert_eq!(dir_tag(&out_dir, "multi", "1"), Some(arm));
    let paths = formats::distribution::DistributionPaths::new(&out_dir);
    assert!(
        !paths.blob_data(&amd).exists(),
        "the amd64 manifest must not be saved"
    );
    assert!(
        !paths.blob_data(&index).exists(),
        "the index must not be saved"
    );
}

#[test]
fn save_of_two_hosts_with_the_same_path_fails_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            "a.example/x/pause:3.9,b.example/x/pause:3.9",
            "--registry-dir",
            tmp.path().join("r").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.example/x/pause:3.9") && err.contains("b.example/x/pause:3.9"),
        "{err}"
    );
}

#[test]
fn save_from_a_context_reads_the_shim_image_lists() {
    let src = start_registry(None);
    let (d, _) = push_image(&src.host, "listed", Some("v1"), "amd64", "listed ");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("images/shim")).unwrap();
    std::fs::write(
        ctx.join("images/shim/list"),
        format!("# images\n\n\"{}/listed:v1\"\n", src.host),
    )
    .unwrap();
    let out_dir = tmp.path().join("registry");
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            ctx.to_str().unwrap(),
            "--registry-dir",
            out_dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(dir_tag(&out_dir, "listed", "v1"), Some(d));
}

#[test]
fn a_missing_image_fails_by_name_with_nonzero_exit_and_the_others_are_saved() {
    let src = start_registry(None);
    let (good, _) = push_image(&src.host, "good", Some("v1"), "amd64", "good ");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    let images = format!("{0}/good:v1,{0}/missing:v1", src.host);
    let out = sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            &images,
            "--registry-dir",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing:v1"), "{err}");
    assert_eq!(dir_tag(&out_dir, "good", "v1"), Some(good));
}

#[test]
fn sync_registry_to_registry_then_again_fetches_no_blob_and_skips_every_image() {
    let src = start_registry(None);
    let dst = start_registry(None);
    let (a, _) = push_image(&src.host, "a", Some("v1"), "amd64", "sync a ");
    let (b, _) = push_image(&src.host, "org/b", Some("v2"), "amd64", "sync b ");
    let (index, _, _) = push_multi_arch(&src.host, "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let first = sealos(
        &store,
        &[
            "registry", "sync", &src.host, &dst.host, "--all", "--format", "json",
        ],
    );
    ok(&first);
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["copied"], 3, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert!(summary["bytes"].as_u64().unwrap() > 0);
    assert_eq!(remote_digest(&dst.host, "a", "v1"), Some(a));
    assert_eq!(remote_digest(&dst.host, "org/b", "v2"), Some(b));
    assert_eq!(remote_digest(&dst.host, "multi", "1"), Some(index));
    let gets_after_first = src.blob_gets();
    assert!(
        gets_after_first > 0,
        "the first sync must read blobs from the source"
    );

    let second = sealos(
        &store,
        &[
            "registry", "sync", &src.host, &dst.host, "--all", "--format", "json",
        ],
    );
    ok(&second);
    let summary: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(summary["skipped"], 3, "{summary}");
    assert_eq!(summary["bytes"], 0);
    assert_eq!(
        src.blob_gets(),
        gets_after_first,
        "the second sync fetched blobs"
    );
}

#[test]
fn sync_registry_to_dir_resumes_after_lost_content_and_dir_to_registry_serves_it() {
    let src = start_registry(None);
    let (a, _) = push_image(&src.host, "a", Some("v1"), "amd64", "dir a ");
    let (b, _) = push_image(&src.host, "b", Some("v1"), "amd64", "dir b ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dir = tmp.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    ok(&sealos(
        &store,
        &["registry", "sync", &src.host, dir.to_str().unwrap()],
    ));
    assert_eq!(dir_tag(&dir, "a", "v1"), Some(a.clone()));
    // Simulate an interrupted run: image b's tag and manifest are gone, its blobs are still there.
    std::fs::remove_dir_all(
        formats::distribution::DistributionPaths::new(&dir).repository_dir("b"),
    )
    .unwrap();
    let before = src.blob_gets();
    let dry = sealos(
        &store,
        &[
            "registry",
            "sync",
            &src.host,
            dir.to_str().unwrap(),
            "--dry-run",
            "--format",
            "json",
        ],
    );
    ok(&dry);
    let summary: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        (summary["copied"].as_u64(), summary["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(
        dir_tag(&dir, "b", "v1"),
        None,
        "--dry-run must copy nothing"
    );
    ok(&sealos(
        &store,
        &["registry", "sync", &src.host, dir.to_str().unwrap()],
    ));
    assert_eq!(dir_tag(&dir, "b", "v1"), Some(b.clone()));
    assert_eq!(
        src.blob_gets(),
        before,
        "blobs already in the directory were fetched again"
    );

    let dst = start_registry(None);
    ok(&sealos(
        &store,
        &[
            "registry",
            "sync",
            dir.to_str().unwrap(),
            &format!("{}/mirror", dst.host),
            "--include",
            "^a:",
        ],
    ));
    assert_eq!(remote_digest(&dst.host, "mirror/a", "v1"), Some(a));
    assert_eq!(
        remote_digest(&dst.host, "mirror/b", "v1"),
        None,
        "--include must filter"
    );
}

#[test]
fn copy_puts_one_image_into_another_registry() {
    let src = start_registry(None);
    let dst = start_registry(None);
    let (index, _, arm) = push_multi_arch(&src.host, "org/multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok(&sealos(
        &store,
        &[
            "registry",
            "copy",
            &format!("{}/org/multi:1", src.host),
            &dst.host,
            "--all",
        ],
    ));
    assert_eq!(remote_digest(&dst.host, "org/multi", "1"), Some(index));
    ok(&sealos(
        &store,
        &[
            "registry",
            "copy",
            &format!("{}/org/multi:1", src.host),
            &format!("{}/arm", dst.host),
            "--arch",
            "arm64",
        ],
    ));
    assert_eq!(remote_digest(&dst.host, "arm/org/multi", "1"), Some(arm));
}
