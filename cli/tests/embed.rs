//! `sealos build` embedding the images a context lists: pulled from a local upstream (Debian's
//! `docker-registry`, reached through a registries.conf mirror for `docker.io` and `registry.k8s.io`), one layer
//! per image, the lock file, and the unpacked `registry/` tree served by `sealos registry serve` and by
//! `docker-registry`, read back with `skopeo`. Needs `docker-registry` and `skopeo`; fails naming them.

mod build_common;
mod store_fixture;
mod upstream;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use build_common::{blob_json, build, sealos, tree_listing, write_context};
use formats::digest::Digest;
use testsupport::{DockerRegistry, SealosRegistry};
use upstream::{client, push_image, push_image_layers, push_multi_arch_seeded, skopeo};

/// A registries.conf sending `docker.io` and `registry.k8s.io` pulls to the mirror at `host`.
fn mirror_conf(dir: &Path, host: &str) -> String {
    let path = dir.join("registries.conf");
    let mut text = String::new();
    for prefix in ["docker.io", "registry.k8s.io", "quay.io"] {
        text.push_str(&format!(
            "[[registry]]\nprefix = \"{prefix}\"\nlocation = \"{prefix}\"\n[[registry.mirror]]\nlocation = \"{host}\"\ninsecure = true\n\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Upstream images: (reference, repository at the mirror, index, amd64, arm64).
struct Pushed {
    reference: &'static str,
    sealos_name: &'static str,
    amd64: Digest,
    arm64: Digest,
    index: Digest,
}

fn populate(reg: &DockerRegistry) -> Vec<Pushed> {
    let mut out = Vec::new();
    for (reference, repo, tag, sealos_name) in [
        (
            "docker.io/library/nginx:1.25",
            "library/nginx",
            "1.25",
            "library/nginx:1.25",
        ),
        ("registry.k8s.io/pause:3.9", "pause", "3.9", "pause:3.9"),
        (
            "quay.io/cilium/operator:v1.12.0",
            "cilium/operator",
            "v1.12.0",
            "cilium/operator:v1.12.0",
        ),
    ] {
        let (index, amd64, arm64) = push_multi_arch_seeded(&reg.host(), repo, tag, reference);
        out.push(Pushed {
            reference,
            sealos_name,
            amd64,
            arm64,
            index,
        });
    }
    out
}

/// A context `COPY . .` plus an image list naming `images` (written as users do: short names, quotes).
fn context(dir: &Path, images: &[&str]) {
    let list: String = images.iter().map(|i| format!("\"{i}\"\n")).collect();
    write_context(
        dir,
        &[
            ("Kubefile", "FROM scratch\nCOPY . .\nCMD [\"true\"]\n"),
            ("manifests/app.yaml", "kind: Pod\n"),
            ("images/shim/list", &format!("# embedded\n{list}")),
        ],
    );
}

fn build_with(store: &Path, conf: &str, extra: &[&str], ctx: &Path) -> Output {
    let mut args = vec![
        "--registries-conf",
        conf,
        "--format",
        "json",
        "--timestamp",
        "0",
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    build(store, &args)
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "sealos build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("build report is JSON")
}

/// `sealos registry serve fs DIR` on 127.0.0.1, killed when dropped.
fn serve_filesystem(dir: &Path) -> SealosRegistry {
    SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), dir, &[])
}

/// `skopeo copy` of `host/name` into a `dir:` and the sha256 of the manifest it wrote.
fn skopeo_pull_digest(host: &str, name: &str, tmp: &Path) -> Digest {
    let dest = tmp.join(name.replace(['/', ':'], "_"));
    let _ = std::fs::remove_dir_all(&dest);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{name}"),
        &format!("dir:{}", dest.display()),
    ]);
    Digest::sha256_of(&std::fs::read(dest.join("manifest.json")).unwrap())
}

#[test]
fn embedded_images_are_one_layer_each_and_both_registries_serve_them_with_original_digests() {
    let reg = DockerRegistry::start_fresh();
    let pushed = populate(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    context(
        &ctx,
        &[
            "nginx:1.25",
            "registry.k8s.io/pause:3.9",
            "quay.io/cilium/operator:v1.12.0",
        ],
    );
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    let report = ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/amd64",
            "-t",
            "test/embed:v1",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    ));
    assert_eq!(report["embedded"].as_array().unwrap().len(), 3);

    // One layer for COPY, then one uncompressed layer per image, annotated with the image.
    let manifest = blob_json(&store, report["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{manifest}");
    for (layer, image) in layers[1..].iter().zip([
        "docker.io/library/nginx",
        "quay.io/cilium/operator",
        "registry.k8s.io/pause",
    ]) {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        let annotated = layer["annotations"]["io.sealos.image.embedded"]
            .as_str()
            .unwrap();
        assert!(
            annotated.starts_with(&format!("{image}@sha256:")),
            "{annotated}"
        );
    }
    // Text `inspect` names the image each embedded layer holds, as the JSON does.
    let inspect = build_common::sealos()
        .arg("--root")
        .arg(&store)
        .args(["inspect", "test/embed:v1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{text}");
    for layer in &layers[1..] {
        let annotated = layer["annotations"]["io.sealos.image.embedded"]
            .as_str()
            .unwrap();
        assert!(
            text.contains(&format!("(embedded image {annotated})")),
            "{text}"
        );
    }

    // The unpacked tree: sealos naming (host stripped), tags point at the amd64 manifests.
    let v2 = out.join("registry/docker/registry/v2");
    for p in &pushed {
        let (repo, tag) = p.sealos_name.rsplit_once(':').unwrap();
        let link = v2.join(format!(
            "repositories/{repo}/_manifests/tags/{tag}/current/link"
        ));
        assert_eq!(
            std::fs::read_to_string(&link).unwrap(),
            p.amd64.to_string(),
            "{}",
            link.display()
        );
    }

    // The lock records every image, its source and the amd64 digest.
    let lock = std::fs::read_to_string(ctx.join("images.lock")).unwrap();
    for p in &pushed {
        assert!(
            lock.contains(&format!("reference = \"{}\"", p.reference)),
            "{lock}"
        );
        assert!(
            lock.contains(&format!("\"linux/amd64\" = \"{}\"", p.amd64)),
            "{lock}"
        );
    }

    // Served by our registry and by docker-registry; skopeo pulls each by its sealos name, same digest.
    let ours = serve_filesystem(&out.join("registry"));
    let theirs = DockerRegistry::start(&out.join("registry"));
    for host in [ours.host().to_string(), theirs.host()] {
        for p in &pushed {
            assert_eq!(
                skopeo_pull_digest(&host, p.sealos_name, tmp.path()),
                p.amd64,
                "{} from {host}",
                p.sealos_name
            );
        }
    }
}

#[test]
fn multi_platform_build_gives_each_platform_its_own_tags_and_all_keeps_the_index() {
    let reg = DockerRegistry::start_fresh();
    let pushed = populate(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    context(&ctx, &["registry.k8s.io/pause:3.9"]);
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    ));
    let pause = &pushed[1];
    let tag = "registry/docker/registry/v2/repositories/pause/_manifests/tags/3.9/current/link";
    assert_eq!(
        std::fs::read_to_string(out.join("linux_amd64").join(tag)).unwrap(),
        pause.amd64.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("linux_arm64").join(tag)).unwrap(),
        pause.arm64.to_string()
    );

    let all = tmp.path().join("all");
    ok_json(&build_with(
        &store,
        &conf,
        &[
            "--all",
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=local,dest={}", all.display()),
        ],
        &ctx,
    ));
    assert_eq!(
        std::fs::read_to_string(all.join(tag)).unwrap(),
        pause.index.to_string()
    );
    let served = serve_filesystem(&all.join("registry"));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/pause:3.9", served.host()),
    ]);
    assert_eq!(Digest::sha256_of(&raw), pause.index);
}

#[test]
fn rebuild_with_the_lock_asks_upstream_nothing_and_builds_are_deterministic_across_stores() {
    let reg = DockerRegistry::start_fresh();
    populate(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    context(&ctx, &["nginx:1.25", "registry.k8s.io/pause:3.9"]);
    let store = tmp.path().join("store");
    let args = ["--platform", "linux/amd64", "-t", "test/embed:v1"];
    let first = ok_json(&build_with(&store, &conf, &args, &ctx));
    assert_eq!(first["pulled"], 2);
    let after_first = reg.requests();
    assert!(after_first > 0, "the first build pulls from the upstream");

    let again = ok_json(&build_with(&store, &conf, &args, &ctx));
    assert_eq!(again["digest"], first["digest"]);
    assert_eq!(again["pulled"], 0);
    assert_eq!(
        reg.requests(),
        after_first,
        "a rebuild with nothing changed must not ask the upstream anything"
    );

    // A fresh store: the lock pins the digests (fetched by digest), same image digest.
    let other = ok_json(&build_with(&tmp.path().join("store2"), &conf, &args, &ctx));
    assert_eq!(other["digest"], first["digest"]);

    // --locked accepts the same list and refuses a changed one, naming the difference.
    let mut locked = args.to_vec();
    locked.push("--locked");
    ok_json(&build_with(&store, &conf, &locked, &ctx));
    context(
        &ctx,
        &[
            "nginx:1.25",
            "registry.k8s.io/pause:3.9",
            "quay.io/cilium/operator:v1.12.0",
        ],
    );
    let refused = build_with(&store, &conf, &locked, &ctx);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--locked") && err.contains("quay.io/cilium/operator:v1.12.0"),
        "{err}"
    );

    // --save-image=false embeds nothing.
    let plain = ok_json(&build_with(
        &store,
        &conf,
        &["--save-image=false", "-t", "x:1"],
        &ctx,
    ));
    assert_eq!(plain["embedded"].as_array().unwrap().len(), 0);
}

#[test]
fn two_hosts_with_the_same_repository_path_fail_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx, &["docker.io/x/pause:1", "registry.k8s.io/x/pause:1"]);
    std::fs::write(tmp.path().join("empty.conf"), "").unwrap();
    let out = build_with(
        &tmp.path().join("store"),
        tmp.path().join("empty.conf").to_str().unwrap(),
        &["-t", "x:1"],
        &ctx,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("docker.io/x/pause:1") && err.contains("registry.k8s.io/x/pause:1"),
        "{err}"
    );
    assert!(!ctx.join("images.lock").exists());
}

/// A registry that answers every manifest request after a delay with 404, counting how many are in flight.
struct SlowRegistry {
    host: String,
    max_in_flight: Arc<AtomicUsize>,
}

fn start_slow_registry() -> SlowRegistry {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let max = max_in_flight.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (in_flight, max) = (in_flight.clone(), max.clone());
            std::thread::spawn(move || serve_slow(conn, &in_flight, &max));
        }
    });
    SlowRegistry {
        host,
        max_in_flight,
    }
}

fn serve_slow(conn: TcpStream, in_flight: &AtomicUsize, max: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let (status, body) = if request.contains("/manifests/") {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(400));
            in_flight.fetch_sub(1, Ordering::SeqCst);
            (
                "404 Not Found",
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            )
        } else {
            ("200 OK", "{}")
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn max_pull_procs_bounds_the_images_pulled_at_once() {
    for (flag, expected) in [(Some("3"), 3), (None, 5)] {
        let slow = start_slow_registry();
        let tmp = tempfile::tempdir().unwrap();
        let ctx = tmp.path().join("ctx");
        let images: Vec<String> = (0..12).map(|i| format!("{}/img{i}:1", slow.host)).collect();
        let refs: Vec<&str> = images.iter().map(String::as_str).collect();
        context(&ctx, &refs);
        std::fs::write(tmp.path().join("empty.conf"), "").unwrap();
        let mut args = vec!["--tls-verify=false", "-t", "x:1"];
        if let Some(n) = flag {
            args.extend(["--max-pull-procs", n]);
        }
        let out = build_with(
            &tmp.path().join("store"),
            tmp.path().join("empty.conf").to_str().unwrap(),
            &args,
            &ctx,
        );
        assert!(!out.status.success(), "every manifest is missing");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/img"), "the error names an image: {err}");
        assert_eq!(
            slow.max_in_flight.load(Ordering::SeqCst),
            expected,
            "manifest requests in flight with --max-pull-procs {flag:?}"
        );
    }
}

/// The manifest `skopeo` reads from `host/name` (an insecure registry): its digest and its config digest.
fn skopeo_manifest(host: &str, name: &str) -> (Digest, String) {
    let raw = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{host}/{name}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).expect("manifest JSON");
    let config = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (Digest::sha256_of(&raw), config)
}

#[test]
fn archives_of_tar_txt_are_embedded_under_their_sealos_names_without_any_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-store");
    let app = store_fixture::make_image(&src, "example.com/team/app:v1", "app");
    let cli = store_fixture::make_image(&src, "quay.io/tools/cli:2", "cli");
    let ctx = tmp.path().join("ctx");
    let skopeo_dir = ctx.join("images/skopeo");
    std::fs::create_dir_all(&skopeo_dir).unwrap();
    for (format, file, image) in [
        ("docker-archive", "app.tar", "example.com/team/app:v1"),
        ("oci-archive", "cli.tar", "quay.io/tools/cli:2"),
    ] {
        let out = sealos()
            .arg("--root")
            .arg(&src)
            .args(["save", "--format", format, "-o"])
            .arg(skopeo_dir.join(file))
            .arg(image)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sealos save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    write_context(
        &ctx,
        &[
            ("Kubefile", "FROM scratch\nCOPY . .\nCMD [\"true\"]\n"),
            (
                "images/skopeo/tar.txt",
                "# offline images\ndocker-archive:app.tar@library/app:v1\noci-archive:cli.tar\n",
            ),
        ],
    );
    let dest = tmp.path().join("rootfs");
    let out = build(
        &tmp.path().join("store"),
        &[
            "--tls-verify=false",
            "--format",
            "json",
            "--timestamp",
            "0",
            "-o",
            &format!("type=local,dest={}", dest.display()),
            ctx.to_str().unwrap(),
        ],
    );
    ok_json(&out);

    let lock = std::fs::read_to_string(ctx.join("images.lock")).unwrap();
    let served = serve_filesystem(&dest.join("registry"));
    // The docker archive is named as written after `@`; its config is kept byte-exact.
    let (app_digest, app_config) = skopeo_manifest(served.host(), "library/app:v1");
    let app_manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(src.join("blobs/sha256").join(app.digest.hex())).unwrap(),
    )
    .unwrap();
    assert_eq!(
        app_config,
        app_manifest["config"]["digest"].as_str().unwrap()
    );
    // The OCI archive has no `@NAME`: its own name without the host, byte-exact manifest.
    let (cli_digest, _) = skopeo_manifest(served.host(), "tools/cli:2");
    assert_eq!(cli_digest, cli.digest);
    for (name, digest, line) in [
        ("library/app:v1", &app_digest, "images/skopeo/tar.txt:2"),
        ("tools/cli:2", &cli_digest, "images/skopeo/tar.txt:3"),
    ] {
        let entry = lock
            .split("[[image]]")
            .find(|e| e.contains(&format!("reference = \"{name}\"")))
            .unwrap_or_else(|| panic!("{name} is not in images.lock:\n{lock}"));
        assert!(
            entry.contains(&digest.to_string()) && entry.contains(line),
            "{entry}"
        );
    }
}

#[test]
fn a_pin_to_an_index_embeds_the_index_and_the_build_platform_so_the_pinned_digest_pulls_air_gapped()
{
    let reg = DockerRegistry::start_fresh();
    let pushed = populate(&reg);
    let pause = &pushed[1];
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    let pinned = format!("registry.k8s.io/pause:3.9@{}", pause.index);
    context(&ctx, &[&pinned]);
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    ));
    let v2 = out.join("registry/docker/registry/v2");
    // The tag points at the pinned index, kept byte-exact; the arm64 child is there, the amd64 one is not.
    assert_eq!(
        std::fs::read_to_string(v2.join("repositories/pause/_manifests/tags/3.9/current/link"))
            .unwrap(),
        pause.index.to_string()
    );
    let paths = formats::distribution::DistributionPaths::new(out.join("registry"));
    assert!(paths.blob_data(&pause.index).exists());
    assert!(paths.blob_data(&pause.arm64).exists());
    assert!(!paths.blob_data(&pause.amd64).exists());
    let lock = std::fs::read_to_string(ctx.join("images.lock")).unwrap();
    assert!(
        lock.contains(&format!("\"linux/arm64\" = \"{}\"", pause.index)),
        "{lock}"
    );

    // Two platforms: each tree holds the index and its own platform's manifest only.
    let both = tmp.path().join("both");
    ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=local,dest={}", both.display()),
        ],
        &ctx,
    ));
    for (dir, own, other) in [
        ("linux_amd64", &pause.amd64, &pause.arm64),
        ("linux_arm64", &pause.arm64, &pause.amd64),
    ] {
        let paths = formats::distribution::DistributionPaths::new(both.join(dir).join("registry"));
        assert!(paths.blob_data(&pause.index).exists(), "{dir}");
        assert!(paths.blob_data(own).exists(), "{dir}");
        assert!(!paths.blob_data(other).exists(), "{dir}");
    }

    // Air-gapped: the served tree answers the kubelet's `pause@sha256:<index>` and the tag, for arm64.
    drop(reg);
    let served = serve_filesystem(&out.join("registry"));
    for name in [format!("pause@{}", pause.index), "pause:3.9".to_string()] {
        let dest = tmp.path().join(name.replace([':', '@'], "_"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            "--override-arch",
            "arm64",
            &format!("docker://{}/{name}", served.host()),
            &format!("oci:{}", dest.display()),
        ]);
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            pause.arm64.to_string(),
            "{name}: {index}"
        );
    }
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/pause@{}", served.host(), pause.index),
    ]);
    assert_eq!(Digest::sha256_of(&raw), pause.index);

    // A rebuild with the lock finds everything in the store, without the upstream.
    let again = tmp.path().join("again");
    ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=local,dest={}", again.display()),
        ],
        &ctx,
    ));
}

#[test]
fn an_image_of_another_platform_is_a_warning_naming_it_and_an_error_with_strict() {
    let reg = DockerRegistry::start_fresh();
    push_image(
        &reg.host(),
        "library/amdonly",
        Some("1"),
        "amd64",
        "amd-only ",
    );
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    context(&ctx, &["amdonly:1"]);
    let store = tmp.path().join("store");
    let out = build_with(
        &store,
        &conf,
        &["--platform", "linux/arm64", "-t", "t/a:1"],
        &ctx,
    );
    ok_json(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: image `docker.io/library/amdonly:1` (from images/shim/list:2) is for `linux/amd64`, not for the build's platform `linux/arm64`"),
        "{err}"
    );
    // The same image for its own platform is no warning.
    let out = build_with(
        &store,
        &conf,
        &["--platform", "linux/amd64", "-t", "t/a:1"],
        &ctx,
    );
    ok_json(&out);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let strict = build_with(
        &store,
        &conf,
        &["--platform", "linux/arm64", "--strict", "-t", "t/a:1"],
        &ctx,
    );
    assert!(!strict.status.success());
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        err.contains("--strict: image `docker.io/library/amdonly:1`")
            && err.contains("`linux/arm64`"),
        "{err}"
    );
}

#[test]
fn an_unknown_platform_architecture_is_an_error_listing_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx, &[]);
    let conf = mirror_conf(tmp.path(), "127.0.0.1:1");
    for extra in [&["--dry-run"][..], &[]] {
        let mut args = vec!["--platform", "linux/amd65", "-t", "test/amd65:1"];
        args.extend_from_slice(extra);
        let out = build_with(&tmp.path().join("store"), &conf, &args, &ctx);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unknown architecture `amd65` in platform `linux/amd65`")
                && err.contains("known architectures: 386, amd64, arm, arm64,"),
            "{err}"
        );
    }
}

#[test]
fn images_lock_stays_out_of_the_image_unless_a_copy_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src-store");
    store_fixture::make_image(&src, "example.com/team/app:v1", "app");
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
    store_fixture::save_oci_archive(
        &src,
        "example.com/team/app:v1",
        &ctx.join("images/skopeo/app.tar"),
    );
    write_context(
        &ctx,
        &[
            ("Kubefile", "FROM scratch\nCOPY . .\nCMD [\"true\"]\n"),
            ("images/skopeo/tar.txt", "oci-archive:app.tar\n"),
        ],
    );
    let store = tmp.path().join("store");
    let build_into = |name: &str| {
        let dest = tmp.path().join(name);
        let out = build(
            &store,
            &[
                "--format",
                "json",
                "--timestamp",
                "0",
                "-o",
                &format!("type=local,dest={}", dest.display()),
                ctx.to_str().unwrap(),
            ],
        );
        ok_json(&out);
        dest
    };

    // The second build finds the lock the first one wrote in the context; `COPY . .` still leaves it out.
    for name in ["first", "second"] {
        let rootfs = build_into(name);
        assert!(
            ctx.join("images.lock").is_file(),
            "the lock stays beside the Kubefile"
        );
        assert!(
            rootfs.join("Kubefile").is_file(),
            "COPY . . took the context"
        );
        assert!(
            !rootfs.join("images.lock").exists(),
            "{name} build copied images.lock into the image"
        );
    }

    std::fs::write(
        ctx.join("Kubefile"),
        "FROM scratch\nCOPY . .\nCOPY images.lock /x\nCMD [\"true\"]\n",
    )
    .unwrap();
    let rootfs = build_into("named");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("x")).unwrap(),
        std::fs::read_to_string(ctx.join("images.lock")).unwrap(),
        "a COPY naming images.lock copies it"
    );
    assert!(!rootfs.join("images.lock").exists());
}

/// The paths of the `blobs/.../data` files a tar layer of `store` holds.
fn blob_paths_in_layer(store: &Path, digest: &str) -> Vec<String> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(store.join("blobs/sha256").join(hex))
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains("/blobs/sha256/") && l.ends_with("/data"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_blob_two_images_share_is_in_one_shared_layer_and_the_tree_is_the_distribution_layout() {
    let reg = DockerRegistry::start_fresh();
    let c = client();
    let base = b"a base layer both images share".repeat(100);
    let mut pushed = Vec::new();
    for (repo, own) in [
        ("library/alpha", "alpha's own"),
        ("library/beta", "beta's own"),
    ] {
        let layers = [base.clone(), own.repeat(50).into_bytes()];
        let (digest, manifest) =
            push_image_layers(&c, &reg.host(), repo, Some("1"), "amd64", &layers);
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        let mut blobs = vec![
            digest.to_string(),
            manifest["config"]["digest"].as_str().unwrap().to_string(),
        ];
        blobs.extend(
            manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string()),
        );
        pushed.push((repo, digest, blobs));
    }
    let shared = Digest::sha256_of(&base).to_string();
    let tmp = tempfile::tempdir().unwrap();
    let conf = mirror_conf(tmp.path(), &reg.host());
    let ctx = tmp.path().join("ctx");
    context(&ctx, &["alpha:1", "beta:1"]);
    let store = tmp.path().join("store");
    let out = tmp.path().join("out");
    let report = ok_json(&build_with(
        &store,
        &conf,
        &[
            "--platform",
            "linux/amd64",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
        &ctx,
    ));

    // COPY's layer, the shared layer, then one layer per image.
    let manifest = blob_json(&store, report["digest"].as_str().unwrap());
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{manifest}");
    let sharing = layers[1]["annotations"]["io.sealos.image.embedded.shared"]
        .as_str()
        .unwrap_or_else(|| panic!("the second layer is the shared one: {manifest}"));
    let names: Vec<&str> = sharing.split(',').collect();
    assert_eq!(names.len(), 2, "{sharing}");
    assert!(
        layers[1]["annotations"]
            .get("io.sealos.image.embedded")
            .is_none()
    );
    for (layer, (name, (_, digest, _))) in layers[2..].iter().zip(
        ["docker.io/library/alpha", "docker.io/library/beta"]
            .iter()
            .zip(&pushed),
    ) {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar");
        let annotated = layer["annotations"]["io.sealos.image.embedded"]
            .as_str()
            .unwrap();
        assert_eq!(annotated, format!("{name}@{digest}"));
        assert!(names.contains(&annotated), "{sharing}");
    }

    // Every blob is in exactly one layer; the shared one in the shared layer only.
    let per_layer: Vec<Vec<String>> = layers[1..]
        .iter()
        .map(|l| blob_paths_in_layer(&store, l["digest"].as_str().unwrap()))
        .collect();
    let all: Vec<&String> = per_layer.iter().flatten().collect();
    let unique: std::collections::BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "a blob is in two layers: {per_layer:?}"
    );
    let shared_hex = shared.strip_prefix("sha256:").unwrap();
    assert_eq!(
        per_layer[0],
        [format!(
            "registry/docker/registry/v2/blobs/sha256/{}/{shared_hex}/data",
            &shared_hex[..2]
        )]
    );

    // The unpacked tree is the Distribution layout of both images, each blob once.
    let v2 = out.join("registry/docker/registry/v2");
    let found: std::collections::BTreeMap<String, Vec<u8>> = tree_listing(&v2)
        .into_iter()
        .filter(|(_, kind, _, _)| kind == "file")
        .map(|(path, _, _, content)| (path, content))
        .collect();
    let mut expected = std::collections::BTreeMap::new();
    let blob_path = |d: &str| {
        let hex = d.strip_prefix("sha256:").unwrap();
        format!("blobs/sha256/{}/{hex}/data", &hex[..2])
    };
    for (repo, digest, blobs) in &pushed {
        let hex = digest
            .to_string()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        let r = format!("repositories/{repo}");
        let top = digest.to_string().into_bytes();
        expected.insert(format!("{r}/_manifests/tags/1/current/link"), top.clone());
        expected.insert(
            format!("{r}/_manifests/tags/1/index/sha256/{hex}/link"),
            top.clone(),
        );
        expected.insert(format!("{r}/_manifests/revisions/sha256/{hex}/link"), top);
        for d in &blobs[1..] {
            let h = d.strip_prefix("sha256:").unwrap();
            expected.insert(
                format!("{r}/_layers/sha256/{h}/link"),
                d.clone().into_bytes(),
            );
        }
        for d in blobs {
            let content = found
                .get(&blob_path(d))
                .unwrap_or_else(|| panic!("{} is missing", blob_path(d)));
            assert_eq!(Digest::sha256_of(content).to_string(), *d);
            expected.insert(blob_path(d), content.clone());
        }
    }
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert_eq!(found, expected);
}
