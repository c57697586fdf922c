//! `sealos registry serve ... --proxy-config FILE` as nodes use it: skopeo, through a `registries.conf` mirror
//! of `docker.io` pointing at the cache, pulls an image the cache fetches from its upstream (our own `sealos
//! registry serve`, whose request log counts blob downloads) once; pushes into the proxied prefix are refused;
//! proxy flags without an upstream are refused.

use std::path::Path;
use std::process::Command;

use formats::oci_layout::OciLayout;
use testsupport::images::{TestImage, write_image};
use testsupport::{Backend, SealosRegistry, run, skopeo};

fn sealos() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

/// An OCI layout holding `TestImage::hello(content)` tagged `v1`; returns its manifest digest.
fn layout(dir: &Path, content: &str) -> String {
    let layout = OciLayout::create(dir).unwrap();
    let desc = write_image(&layout, &TestImage::hello(content));
    layout.set_tag("v1", desc.clone()).unwrap();
    desc.digest.to_string()
}

fn copied_digest(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    formats::digest::Digest::sha256_of(&bytes).to_string()
}

#[test]
fn nodes_pull_docker_io_images_through_the_cache_by_a_registries_conf_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = SealosRegistry::start_with(sealos(), Backend::InMemory, &[], true);
    let digest = layout(&tmp.path().join("image"), "through the cache");
    run(skopeo().args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", tmp.path().join("image").display()),
        &format!("docker://{}/library/app:v1", upstream.host()),
    ]));
    let upstream_gets = upstream.blob_gets();

    let config = tmp.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[[upstream]]\nprefix = \"docker.io/\"\nregistry = \"{}\"\ninsecure = true\n",
            upstream.host()
        ),
    )
    .unwrap();
    let cache_dir = tmp.path().join("cache");
    let cache = SealosRegistry::start_with(
        sealos(),
        Backend::Fs(&cache_dir),
        &[
            "--proxy-config",
            config.to_str().unwrap(),
            "--proxy-max-size",
            "1G",
            "--proxy-tag-ttl",
            "10m",
            "--proxy-spool-dir",
            tmp.path().join("spool").to_str().unwrap(),
        ],
        true,
    );
    let conf = tmp.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \
             \"{}/docker.io\"\ninsecure = true\n",
            cache.host()
        ),
    )
    .unwrap();
    for round in 0..2 {
        let out = tmp.path().join(format!("out{round}"));
        run(skopeo()
            .arg("--registries-conf")
            .arg(&conf)
            .args(["copy", "docker://docker.io/library/app:v1"])
            .arg(format!("dir:{}", out.display())));
        assert_eq!(copied_digest(&out), digest, "round {round}");
    }
    // Config and layer, each fetched from upstream once over both pulls.
    assert_eq!(upstream.blob_gets() - upstream_gets, 2, "{}", cache.log());
    assert!(
        cache_dir
            .join("docker/registry/v2/repositories/docker.io/library/app")
            .is_dir()
    );

    // Pushing into the proxied prefix is refused, saying why.
    let other = tmp.path().join("other");
    layout(&other, "mine");
    let pushed = skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", other.display()))
        .arg(format!(
            "docker://{}/docker.io/library/mine:v1",
            cache.host()
        ))
        .output()
        .unwrap();
    assert!(!pushed.status.success());
    let stderr = String::from_utf8_lossy(&pushed.stderr);
    assert!(stderr.contains("pull-through cache"), "{stderr}");
}

#[test]
fn proxy_flags_without_an_upstream_are_refused() {
    let out = Command::new(sealos())
        .args([
            "registry",
            "serve",
            "inmem",
            "-p",
            "0",
            "--address",
            "127.0.0.1",
            "--proxy-max-size",
            "1G",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("need --proxy or --proxy-config"),
        "{stderr}"
    );

    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "[[upstream]]\nprefix = \"docker.io\"\nregistry = \"r\"\n",
    )
    .unwrap();
    let out = Command::new(sealos())
        .args(["registry", "serve", "inmem", "-p", "0", "--proxy-config"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must end with `/`"), "{stderr}");
}
