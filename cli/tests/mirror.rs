//! `sealos pull|push|inspect|registry save|sync|copy` end to end against Debian's `docker-registry` and
//! our own server (`sealos registry serve`) on 127.0.0.1, read back with `skopeo`. Both tools must be
//! installed; the tests fail naming them when not. Blob fetches are counted from the registries' request
//! logs, or by a counting proxy in front of the source.

mod store_fixture;
mod upstream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use formats::digest::Digest;
use registry::client::{ClientOptions, DEFAULT_MANIFEST_ACCEPT, RegistryClient};
use testsupport::{AnyRegistry, DockerAuth, DockerRegistry, RegistryKind, require_tool};
use upstream::{
    push_image, push_image_layers, push_multi_arch, remote_digest, rt, seeded_layer, skopeo,
};

/// Starts a registry of `kind` with fresh, empty storage and its requests logged.
fn start(kind: RegistryKind) -> AnyRegistry {
    AnyRegistry::start(kind, Path::new(env!("CARGO_BIN_EXE_sealos")))
}

/// Serves the Distribution directory `dir` with a registry of `kind`.
fn serve_dir(kind: RegistryKind, dir: &Path) -> AnyRegistry {
    AnyRegistry::serve_dir(kind, Path::new(env!("CARGO_BIN_EXE_sealos")), dir)
}

/// Runs the test body `$name(kind)` against both registries, as `$name::docker_registry` and
/// `$name::our_server`.
macro_rules! against_both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn docker_registry() {
                super::$name(super::RegistryKind::Docker)
            }
            #[test]
            fn our_server() {
                super::$name(super::RegistryKind::Sealos)
            }
        }
    };
}

/// The command `sealos ARGS --tls-verify=false` with an empty registries.conf and a private store and
/// auth file; also returns the full argument list for messages.
fn sealos_command(store: &Path, args: &[&str]) -> (Command, Vec<String>) {
    let conf = store.with_extension("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let takes_client_flags = match args.first() {
        Some(&"manifest") => args.get(1) == Some(&"push"),
        Some(&"logout") => false,
        _ => true,
    };
    if takes_client_flags {
        all.push("--tls-verify=false".into());
        all.push("--registries-conf".into());
        all.push(conf.display().to_string());
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealos"));
    cmd.args(&all)
        .env("SEALOS_ROOT", store)
        .env("REGISTRY_AUTH_FILE", store.with_extension("auth.json"))
        .stdin(Stdio::null());
    (cmd, all)
}

/// Runs `sealos ARGS` (see [`sealos_command`]) to completion, echoing its output.
fn sealos(store: &Path, args: &[&str]) -> Output {
    let (mut cmd, all) = sealos_command(store, args);
    let out = cmd.output().expect("run sealos");
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

against_both!(pull_then_push_round_trips_an_image_through_the_local_store_byte_exact);
fn pull_then_push_round_trips_an_image_through_the_local_store_byte_exact(kind: RegistryKind) {
    let reg = start(kind);
    let host = &reg.host();
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

against_both!(manifest_list_built_from_local_images_is_pushed_with_its_images);
fn manifest_list_built_from_local_images_is_pushed_with_its_images(kind: RegistryKind) {
    let reg = start(kind);
    let host = &reg.host();
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
    testsupport::oci_spec_check(&raw, "application/vnd.oci.image.index.v1+json");
    testsupport::oci_spec_check_layout(&store);
}

against_both!(save_writes_a_layout_that_a_registry_serves_and_skopeo_reads_with_original_digests);
fn save_writes_a_layout_that_a_registry_serves_and_skopeo_reads_with_original_digests(
    kind: RegistryKind,
) {
    let src = start(kind);
    let host = &src.host();
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

    let served = serve_dir(kind, &out_dir);
    for (name, digest) in [
        ("app:v1", &single),
        ("team/tools/kubectl:1.0", &two_level),
        ("multi:1", &index),
    ] {
        let raw = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/{name}", served.host()),
        ]);
        assert_eq!(&Digest::sha256_of(&raw), digest, "{name}");
        let dest = tmp
            .path()
            .join(format!("copy-{}", name.replace(['/', ':'], "-")));
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{}/{name}", served.host()),
            &format!("oci:{}:x", dest.display()),
        ]);
    }
}

against_both!(save_with_arch_keeps_only_that_platform_manifest_and_tags_it);
fn save_with_arch_keeps_only_that_platform_manifest_and_tags_it(kind: RegistryKind) {
    let src = start(kind);
    let (index, amd, arm) = push_multi_arch(&src.host(), "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            &format!("{}/multi:1", src.host()),
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

against_both!(save_of_a_pinned_index_keeps_the_index_and_that_platform_so_the_pin_resolves);
fn save_of_a_pinned_index_keeps_the_index_and_that_platform_so_the_pin_resolves(
    kind: RegistryKind,
) {
    let src = start(kind);
    let (index, amd, arm) = push_multi_arch(&src.host(), "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            "--images",
            &format!("{}/multi:1@{index}", src.host()),
            "--registry-dir",
            out_dir.to_str().unwrap(),
            "--arch",
            "arm64",
        ],
    ));
    assert_eq!(dir_tag(&out_dir, "multi", "1"), Some(index.clone()));
    let paths = formats::distribution::DistributionPaths::new(&out_dir);
    assert!(paths.blob_data(&index).exists() && paths.blob_data(&arm).exists());
    assert!(
        !paths.blob_data(&amd).exists(),
        "the amd64 manifest must not be saved"
    );
    let served = serve_dir(kind, &out_dir);
    let dest = tmp.path().join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        "--override-arch",
        "arm64",
        &format!("docker://{}/multi@{index}", served.host()),
        &format!("oci:{}", dest.display()),
    ]);
    let pulled: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
    assert_eq!(pulled["manifests"][0]["digest"], arm.to_string());
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
    let src = DockerRegistry::start_fresh();
    let (d, _) = push_image(&src.host(), "listed", Some("v1"), "amd64", "listed ");
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("images/shim")).unwrap();
    std::fs::write(
        ctx.join("images/shim/list"),
        format!("# images\n\n\"{}/listed:v1\"\n", src.host()),
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
    let src = DockerRegistry::start_fresh();
    let (good, _) = push_image(&src.host(), "good", Some("v1"), "amd64", "good ");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("registry");
    let images = format!("{0}/good:v1,{0}/missing:v1", src.host());
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

against_both!(sync_registry_to_registry_then_again_fetches_no_blob_and_skips_every_image);
fn sync_registry_to_registry_then_again_fetches_no_blob_and_skips_every_image(kind: RegistryKind) {
    let src = start(kind);
    let dst = start(kind);
    let (a, _) = push_image(&src.host(), "a", Some("v1"), "amd64", "sync a ");
    let (b, _) = push_image(&src.host(), "org/b", Some("v2"), "amd64", "sync b ");
    let (index, _, _) = push_multi_arch(&src.host(), "multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (src_host, dst_host) = (src.host(), dst.host());
    let sync = [
        "registry", "sync", &src_host, &dst_host, "--all", "--format", "json",
    ];
    let first = sealos(&store, &sync);
    ok(&first);
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["copied"], 3, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert!(summary["bytes"].as_u64().unwrap() > 0);
    assert_eq!(remote_digest(&dst.host(), "a", "v1"), Some(a));
    assert_eq!(remote_digest(&dst.host(), "org/b", "v2"), Some(b));
    assert_eq!(remote_digest(&dst.host(), "multi", "1"), Some(index));
    let gets_after_first = src.blob_gets();
    assert!(
        gets_after_first > 0,
        "the first sync must read blobs from the source"
    );

    let second = sealos(&store, &sync);
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

against_both!(sync_registry_to_dir_resumes_after_lost_content_and_dir_to_registry_serves_it);
fn sync_registry_to_dir_resumes_after_lost_content_and_dir_to_registry_serves_it(
    kind: RegistryKind,
) {
    let src = start(kind);
    let (a, _) = push_image(&src.host(), "a", Some("v1"), "amd64", "dir a ");
    let (b, _) = push_image(&src.host(), "b", Some("v1"), "amd64", "dir b ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dir = tmp.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    ok(&sealos(
        &store,
        &["registry", "sync", &src.host(), dir.to_str().unwrap()],
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
            &src.host(),
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
        &["registry", "sync", &src.host(), dir.to_str().unwrap()],
    ));
    assert_eq!(dir_tag(&dir, "b", "v1"), Some(b.clone()));
    assert_eq!(
        src.blob_gets(),
        before,
        "blobs already in the directory were fetched again"
    );

    let dst = start(kind);
    ok(&sealos(
        &store,
        &[
            "registry",
            "sync",
            dir.to_str().unwrap(),
            &format!("{}/mirror", dst.host()),
            "--include",
            "^a:",
        ],
    ));
    assert_eq!(remote_digest(&dst.host(), "mirror/a", "v1"), Some(a));
    assert_eq!(
        remote_digest(&dst.host(), "mirror/b", "v1"),
        None,
        "--include must filter"
    );
}

against_both!(copy_puts_one_image_into_another_registry);
fn copy_puts_one_image_into_another_registry(kind: RegistryKind) {
    let src = start(kind);
    let dst = start(kind);
    let (index, _, arm) = push_multi_arch(&src.host(), "org/multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    ok(&sealos(
        &store,
        &[
            "registry",
            "copy",
            &format!("{}/org/multi:1", src.host()),
            &dst.host(),
            "--all",
        ],
    ));
    assert_eq!(remote_digest(&dst.host(), "org/multi", "1"), Some(index));
    ok(&sealos(
        &store,
        &[
            "registry",
            "copy",
            &format!("{}/org/multi:1", src.host()),
            &format!("{}/arm", dst.host()),
            "--arch",
            "arm64",
        ],
    ));
    assert_eq!(remote_digest(&dst.host(), "arm/org/multi", "1"), Some(arm));
}

against_both!(copy_of_a_pinned_index_into_a_registry_keeps_the_pin_with_every_platform);
fn copy_of_a_pinned_index_into_a_registry_keeps_the_pin_with_every_platform(kind: RegistryKind) {
    let src = start(kind);
    let dst = start(kind);
    let (index, amd, arm) = push_multi_arch(&src.host(), "org/multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "copy",
            &format!("{}/org/multi:1@{index}", src.host()),
            &dst.host(),
            "--arch",
            "arm64",
        ],
    ));
    // A registry refuses an index without its children, so the pin brings every platform.
    assert_eq!(
        remote_digest(&dst.host(), "org/multi", "1"),
        Some(index.clone())
    );
    for d in [&index, &amd, &arm] {
        assert_eq!(
            remote_digest(&dst.host(), "org/multi", &d.to_string()).as_ref(),
            Some(d)
        );
    }
}

/// The blobs (`blobs/sha256/../<hex>/data`) a Distribution directory holds.
fn dir_blobs(dir: &Path) -> Vec<String> {
    let root = formats::distribution::DistributionPaths::new(dir)
        .root()
        .join("docker/registry/v2/blobs/sha256");
    let mut out = Vec::new();
    for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for blob in std::fs::read_dir(prefix.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if blob.path().join("data").is_file() {
                out.push(format!("sha256:{}", blob.file_name().to_string_lossy()));
            }
        }
    }
    out.sort();
    out
}

/// An HTTP proxy in front of a registry that counts blob downloads per digest and slows each one down,
/// so a client can be stopped midway.
struct CountingProxy {
    host: String,
    blob_gets: Arc<Mutex<HashMap<String, usize>>>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    delay: Duration,
    client: reqwest::Client,
    blob_gets: Arc<Mutex<HashMap<String, usize>>>,
}

async fn forward(
    axum::extract::State(s): axum::extract::State<ProxyState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = req.uri().path().to_string();
    let target = format!(
        "http://{}{}",
        s.upstream,
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    if req.method() == axum::http::Method::GET
        && let Some((_, digest)) = path.split_once("/blobs/")
        && digest.starts_with("sha256:")
    {
        *s.blob_gets
            .lock()
            .unwrap()
            .entry(digest.to_string())
            .or_default() += 1;
        tokio::time::sleep(s.delay).await;
    }
    let mut rb = s.client.request(req.method().clone(), target);
    for (k, v) in req.headers() {
        if k != axum::http::header::HOST {
            rb = rb.header(k, v);
        }
    }
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let resp = match rb.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        out = out.header(k, v);
    }
    out.body(axum::body::Body::from_stream(resp.bytes_stream()))
        .unwrap()
}

fn start_proxy(upstream: &str, delay: Duration) -> CountingProxy {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let blob_gets = Arc::new(Mutex::new(HashMap::new()));
    let state = ProxyState {
        upstream: upstream.to_string(),
        delay,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        blob_gets: blob_gets.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    rt.spawn(async move { axum::serve(listener, app).await });
    CountingProxy {
        host,
        blob_gets,
        _rt: rt,
    }
}

#[test]
fn sync_killed_midway_then_rerun_fetches_no_landed_blob_twice() {
    let src = start(RegistryKind::Sealos);
    let mut expected = Vec::new();
    for i in 0..6 {
        let (d, _) = push_image(
            &src.host(),
            &format!("team/app{i}"),
            Some("v1"),
            "amd64",
            &format!("resume {i} "),
        );
        expected.push((format!("team/app{i}"), d));
    }
    let proxy = start_proxy(&src.host(), Duration::from_millis(300));
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dir = tmp.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "registry",
        "sync",
        proxy.host.as_str(),
        dir.to_str().unwrap(),
        "--max-procs",
        "1",
    ];
    let (mut cmd, _) = sealos_command(&store, &args);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sealos registry sync");
    let deadline = Instant::now() + Duration::from_secs(60);
    while dir_blobs(&dir).len() < 4 {
        assert!(
            Instant::now() < deadline,
            "the sync did not land 3 blobs in time"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Manifests are stored among the blobs of the layout but are not blob downloads.
    let manifests: Vec<String> = expected.iter().map(|(_, d)| d.to_string()).collect();
    let layer_blobs = |dir: &Path| -> Vec<String> {
        dir_blobs(dir)
            .into_iter()
            .filter(|b| !manifests.contains(b))
            .collect()
    };
    let landed = layer_blobs(&dir);
    assert!(
        landed.len() < expected.len() * 2,
        "everything had landed before the kill: {landed:?}"
    );
    let gets_before: HashMap<String, usize> = proxy.blob_gets.lock().unwrap().clone();

    ok(&sealos(&store, &args));
    for (repo, digest) in &expected {
        assert_eq!(dir_tag(&dir, repo, "v1").as_ref(), Some(digest), "{repo}");
    }
    let gets = proxy.blob_gets.lock().unwrap().clone();
    for blob in &landed {
        assert_eq!(
            gets.get(blob),
            Some(&1),
            "blob {blob} had landed before the kill but was fetched again (before: {gets_before:?}, after: {gets:?})"
        );
    }
    for (blob, n) in &gets {
        assert!(
            *n <= 2 && (*n == 1 || !landed.contains(blob)),
            "blob {blob} fetched {n} times: {gets:?}"
        );
    }
    assert_eq!(layer_blobs(&dir).len(), expected.len() * 2);
}

/// Writes `image` (from `host`) into a docker archive and an OCI archive with skopeo.
fn archives_of(host: &str, image: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let docker = dir.join("app-docker.tar");
    let oci = dir.join("app-oci.tar");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{image}"),
        &format!("docker-archive:{}:example.com/app:v1", docker.display()),
    ]);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{image}"),
        &format!("oci-archive:{}:v1", oci.display()),
    ]);
    (docker, oci)
}

/// The config digest of manifest `digest` of `repo` in a Distribution directory.
fn dir_config(dir: &Path, repo: &str, digest: &Digest) -> Digest {
    let raw = formats::distribution::DistributionLayout::new(dir)
        .read_manifest(repo, digest)
        .unwrap();
    match raw.parsed {
        formats::manifest::ParsedManifest::Image(m) => m.config.digest,
        other => panic!("expected an image manifest, got {other:?}"),
    }
}

#[test]
fn save_tars_stores_archives_under_the_names_given_after_the_at_sign() {
    let src = start(RegistryKind::Sealos);
    let (_, manifest) = push_image(&src.host(), "app", Some("v1"), "amd64", "archive ");
    let config = match formats::manifest::RawManifest::from_bytes(manifest, None)
        .unwrap()
        .parsed
    {
        formats::manifest::ParsedManifest::Image(m) => m.config.digest,
        other => panic!("{other:?}"),
    };
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let skopeo_dir = ctx.join("images/skopeo");
    std::fs::create_dir_all(&skopeo_dir).unwrap();
    let (docker, oci) = archives_of(&src.host(), "app:v1", &skopeo_dir);
    std::fs::write(
        skopeo_dir.join("tar.txt"),
        "# archives of the context\ndocker-archive:app-docker.tar@library/from-context:1.0\n",
    )
    .unwrap();
    let out_dir = tmp.path().join("registry");
    let tars = format!(
        "oci-archive:{}@team/tools/app:v2,docker-archive:{}",
        oci.display(),
        docker.display()
    );
    ok(&sealos(
        &tmp.path().join("store"),
        &[
            "registry",
            "save",
            ctx.to_str().unwrap(),
            "--tars",
            &tars,
            "--registry-dir",
            out_dir.to_str().unwrap(),
        ],
    ));
    // OCI archive: its manifest byte-exact, under the 3-level name given.
    let in_archive = Digest::sha256_of(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v1", oci.display()),
    ]));
    assert_eq!(
        dir_tag(&out_dir, "team/tools/app", "v2"),
        Some(in_archive.clone())
    );
    assert_eq!(dir_config(&out_dir, "team/tools/app", &in_archive), config);
    // Docker archives: converted manifests, same config; named from tar.txt, or from the archive itself
    // without its host.
    let from_ctx = dir_tag(&out_dir, "library/from-context", "1.0").expect("tar.txt entry saved");
    assert_eq!(
        dir_config(&out_dir, "library/from-context", &from_ctx),
        config
    );
    let own = dir_tag(&out_dir, "app", "v1").expect("archive's own name used");
    assert_eq!(own, from_ctx);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".sealos-archives-")
        })
        .collect();
    assert!(leftovers.is_empty(), "scratch directory left behind");

    // What was saved is served and readable.
    let served = serve_dir(RegistryKind::Sealos, &out_dir);
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{}/library/from-context:1.0", served.host()),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["Architecture"], "amd64", "{v}");
}

#[test]
fn save_from_a_context_refuses_tar_txt_archives_out_of_the_context_but_reads_a_host_tars_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-store");
    store_fixture::make_image(&src, "example.com/app:v1", "host ");
    let archive = tmp.path().join("host/app.tar");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .arg("--root")
        .arg(&src)
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&archive)
        .arg("example.com/app:v1")
        .output()
        .unwrap();
    ok(&out);
    let ctx = tmp.path().join("ctx");
    let skopeo_dir = ctx.join("images/skopeo");
    std::fs::create_dir_all(&skopeo_dir).unwrap();
    std::os::unix::fs::symlink(&archive, skopeo_dir.join("linked.tar")).unwrap();
    let tar_txt = skopeo_dir.join("tar.txt");
    let out_dir = tmp.path().join("registry");
    let store = tmp.path().join("store");
    for (line, why) in [
        (
            format!("docker-archive:{}@library/app:v1", archive.display()),
            "is not in the build context (in tar.txt a leading `/` starts at the context root"
                .to_string(),
        ),
        (
            "docker-archive:linked.tar@library/app:v1".to_string(),
            format!(
                "`images/skopeo/linked.tar` is a symlink to `{}`, which leads out of it",
                archive.display()
            ),
        ),
    ] {
        std::fs::write(&tar_txt, format!("# host archives\n{line}\n")).unwrap();
        let out = sealos(
            &store,
            &[
                "registry",
                "save",
                ctx.to_str().unwrap(),
                "--registry-dir",
                out_dir.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&format!("{}:2: `{line}`: ", tar_txt.display()))
                && err.contains(&why)
                && err.contains(
                    "copy the archive into the context, or give a host archive with `--tars`"
                ),
            "{err}"
        );
        assert!(!out_dir.exists(), "something was saved");
    }
    // The same host archive given with --tars is the user's own path, read as given.
    ok(&sealos(
        &store,
        &[
            "registry",
            "save",
            "--tars",
            &format!("docker-archive:{}@library/app:v1", archive.display()),
            "--registry-dir",
            out_dir.to_str().unwrap(),
        ],
    ));
    assert!(dir_tag(&out_dir, "library/app", "v1").is_some());
}

#[test]
fn override_arch_and_variant_pick_one_platform_and_a_missing_one_names_the_available() {
    let src = start(RegistryKind::Sealos);
    let dst = start(RegistryKind::Sealos);
    let (_, amd, arm) = push_multi_arch(&src.host(), "org/multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{}/org/multi:1", src.host());
    ok(&sealos(
        &store,
        &[
            "registry",
            "copy",
            &image,
            &format!("{}/arm", dst.host()),
            "--override-arch",
            "arm64",
            "--override-variant",
            "v8",
            "--override-os",
            "linux",
        ],
    ));
    assert_eq!(remote_digest(&dst.host(), "arm/org/multi", "1"), Some(arm));
    let out_dir = tmp.path().join("registry");
    ok(&sealos(
        &store,
        &[
            "registry",
            "save",
            "--images",
            &image,
            "--registry-dir",
            out_dir.to_str().unwrap(),
            "--override-arch",
            "amd64",
        ],
    ));
    assert_eq!(dir_tag(&out_dir, "org/multi", "1"), Some(amd));
    let out = sealos(
        &store,
        &[
            "registry",
            "sync",
            &src.host(),
            &format!("{}/win", dst.host()),
            "--override-os",
            "windows",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("windows/") && err.contains("linux/arm64/v8") && err.contains("linux/amd64"),
        "{err}"
    );
}

#[test]
fn inspect_docker_image_reads_platforms_and_configs_without_pulling_and_raw_is_byte_exact() {
    let src = start(RegistryKind::Sealos);
    let (index, amd, arm) = push_multi_arch(&src.host(), "org/multi", "1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("docker://{}/org/multi:1", src.host());
    let before = src.blob_gets();
    let out = sealos(&store, &["inspect", &image, "--format", "json"]);
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], index.to_string(), "{v}");
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{v}");
    assert_eq!(images[0]["digest"], amd.to_string());
    assert_eq!(images[1]["digest"], arm.to_string());
    assert_eq!(images[1]["platform"]["architecture"], "arm64");
    assert_eq!(images[0]["config"]["architecture"], "amd64");
    assert_eq!(images[0]["layers"].as_array().unwrap().len(), 1);
    // Two configs fetched, no layer.
    assert_eq!(src.blob_gets() - before, 2);
    assert!(
        !store.exists()
            || formats::oci_layout::OciLayout::open(&store)
                .map_or(true, |l| l.tags().unwrap().is_empty()),
        "inspect must not pull into the store"
    );

    let raw = sealos(&store, &["inspect", "--raw", &image]);
    ok(&raw);
    assert_eq!(Digest::sha256_of(&raw.stdout), index);

    let text = sealos(
        &store,
        &[
            "inspect",
            &format!("docker://{}/org/multi@{arm}", src.host()),
        ],
    );
    ok(&text);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Platform linux/arm64/v8") || text.contains("arm64"),
        "{text}"
    );
    assert!(text.contains(&arm.to_string()), "{text}");
}

const USER: &str = "alice";
const PASS: &str = "s3cret";

/// A client that sends `alice`'s credentials to `host`.
fn client_as_alice(host: &str) -> RegistryClient {
    let mut credentials = HashMap::new();
    credentials.insert(
        host.to_string(),
        registry::client::Credentials {
            username: USER.into(),
            password: PASS.into(),
        },
    );
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        credentials,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// Without credentials a command fails with 401; `sealos login` with a wrong password fails; after a good
/// login pull, copy (a cross-repository mount) and save work.
fn commands_need_login_and_then_work(host: &str) {
    let (digest, _) = push_image_layers(
        &client_as_alice(host),
        host,
        "team/app",
        Some("v1"),
        "amd64",
        &[seeded_layer("auth ")],
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{host}/team/app:v1");
    let out_dir = tmp.path().join("registry");
    let save = [
        "registry",
        "save",
        "--images",
        image.as_str(),
        "--registry-dir",
        out_dir.to_str().unwrap(),
    ];
    let anonymous = sealos(&store, &save);
    assert!(!anonymous.status.success());
    let err = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );

    let wrong = sealos(&store, &["login", "-u", USER, "-p", "wrong", host]);
    assert!(!wrong.status.success(), "a wrong password must be refused");
    ok(&sealos(&store, &["login", "-u", USER, "-p", PASS, host]));

    ok(&sealos(&store, &save));
    assert_eq!(dir_tag(&out_dir, "team/app", "v1"), Some(digest.clone()));
    ok(&sealos(&store, &["pull", &image]));
    ok(&sealos(
        &store,
        &["registry", "copy", &image, &format!("{host}/copies")],
    ));
    let head = rt()
        .block_on(client_as_alice(host).head_manifest(
            host,
            "copies/team/app",
            "v1",
            DEFAULT_MANIFEST_ACCEPT,
        ))
        .unwrap()
        .and_then(|h| h.digest);
    assert_eq!(head, Some(digest));
    ok(&sealos(&store, &["logout", host]));
    assert!(
        !sealos(&store, &["pull", &image]).status.success(),
        "logout must forget the credentials"
    );
}

#[test]
fn basic_auth_on_docker_registry_needs_login_and_then_every_command_works() {
    let tmp = tempfile::tempdir().unwrap();
    let htpasswd = tmp.path().join("htpasswd");
    let hash = bcrypt::hash(PASS, 4).unwrap();
    std::fs::write(&htpasswd, format!("{USER}:{hash}\n")).unwrap();
    let reg = DockerRegistry::start_with_auth(DockerAuth::Htpasswd {
        realm: "basic-realm",
        path: &htpasswd,
    });
    commands_need_login_and_then_work(&reg.host());
}

/// A token server for `docker-registry`'s token auth: checks `alice`'s Basic credentials and returns a
/// JWT (RS256, signed by `openssl` with a key whose self-signed certificate is the registry's root)
/// granting every scope asked for.
struct TokenServer {
    realm: String,
    cert: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

#[derive(Clone)]
struct TokenState {
    key: PathBuf,
    cert_der_b64: String,
    requests: Arc<Mutex<Vec<String>>>,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn issue_token(
    axum::extract::State(s): axum::extract::State<TokenState>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use base64::Engine as _;
    let query = req.uri().query().unwrap_or("").to_string();
    s.requests.lock().unwrap().push(query.clone());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    let auth = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(expected.as_str()) {
        return (axum::http::StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(("scope", v)) = pair.split_once('=') else {
            continue;
        };
        for scope in percent_decode(v).split(' ') {
            let parts: Vec<&str> = scope.split(':').collect();
            if let [kind, name @ .., actions] = parts.as_slice() {
                access.push(serde_json::json!({
                    "type": kind,
                    "name": name.join(":"),
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [s.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": USER, "aud": "test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now - 10,
        "jti": format!("t{now}{}", access.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let key = s.key.clone();
    let input = signing_input.clone();
    let signature = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new(require_tool("openssl"))
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run openssl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst -sign failed");
        out.stdout
    })
    .await
    .unwrap();
    let token = format!("{signing_input}.{}", b64url(&signature));
    axum::Json(serde_json::json!({"token": token, "access_token": token, "expires_in": 300}))
        .into_response()
}

fn start_token_server() -> TokenServer {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key.pem");
    let cert = tmp.path().join("cert.pem");
    let keygen = Command::new(require_tool("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=token-issuer",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl req");
    assert!(
        keygen.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let der = Command::new(require_tool("openssl"))
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .expect("run openssl x509");
    assert!(der.status.success());
    use base64::Engine as _;
    let state = TokenState {
        key,
        cert_der_b64: base64::engine::general_purpose::STANDARD.encode(&der.stdout),
        requests: Arc::new(Mutex::new(Vec::new())),
    };
    let requests = state.requests.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/token", axum::routing::get(issue_token))
        .with_state(state);
    rt.spawn(async move { axum::serve(listener, app).await });
    TokenServer {
        realm,
        cert,
        requests,
        _rt: rt,
        _tmp: tmp,
    }
}

#[test]
fn token_auth_on_docker_registry_needs_login_and_then_every_command_works() {
    let tokens = start_token_server();
    let reg = DockerRegistry::start_with_auth(DockerAuth::Token {
        realm: &tokens.realm,
        service: "test-registry",
        issuer: "test-issuer",
        root_cert_bundle: &tokens.cert,
    });
    commands_need_login_and_then_work(&reg.host());
    let requests = tokens.requests.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|q| q.contains("service=test-registry") && q.contains("scope=repository")),
        "tokens were asked with the registry's service and a repository scope: {requests:?}"
    );
}
