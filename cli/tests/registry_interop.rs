//! `sealos registry serve fs` with real clients and a real peer: `skopeo copy --all` of a multi-arch index in
//! and out, `skopeo copy` from a `docker-archive:` source, and Debian's `docker-registry` and our server each
//! serving a directory the other wrote (skopeo reads both; digests match). A missing tool fails the test with
//! its name.

mod dist_fixture;

use std::path::Path;

use dist_fixture::DistDir;
use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::manifest::{Descriptor, ImageManifest, RawManifest};
use formats::media_type;
use testsupport::{Backend, DockerRegistry, SealosRegistry, run, skopeo, tool};

fn sealos_serve(dir: &Path) -> SealosRegistry {
    SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), dir, &[])
}

/// Builds a two-platform OCI layout at `dir` tagged `multi` with umoci (one image per platform), joined in an
/// index by hand; returns the index digest.
fn multi_arch_layout(dir: &Path) -> Digest {
    let l = dir.display().to_string();
    run(tool("umoci").args(["init", "--layout", &l]));
    for arch in ["amd64", "arm64"] {
        run(tool("umoci").args(["new", "--image", &format!("{l}:{arch}")]));
        run(tool("umoci").args([
            "config",
            "--image",
            &format!("{l}:{arch}"),
            "--architecture",
            arch,
            "--os",
            "linux",
            "--config.label",
            &format!("arch={arch}"),
        ]));
    }
    let index_path = dir.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut children = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let tag = m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap_or_default();
        if tag == "amd64" || tag == "arm64" {
            children.push(serde_json::json!({
                "mediaType": m["mediaType"],
                "digest": m["digest"],
                "size": m["size"],
                "platform": {"architecture": tag, "os": "linux"},
            }));
        }
    }
    assert_eq!(
        children.len(),
        2,
        "umoci did not tag both images: {index:#}"
    );
    let multi = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": children,
    });
    let bytes = serde_json::to_vec(&multi).unwrap();
    let digest = Digest::sha256_of(&bytes);
    let blob = dir.join("blobs/sha256").join(digest.hex());
    std::fs::write(&blob, &bytes).unwrap();
    let mut index = index;
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest.to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

fn raw_digest(image: &str, tls_flag: &str) -> Digest {
    let raw = run(skopeo().args(["inspect", "--raw", tls_flag, image]));
    Digest::sha256_of(raw.as_bytes())
}

fn fsck_clean(dir: &Path) {
    run(std::process::Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", "fsck"])
        .arg(dir));
}

#[test]
fn skopeo_copies_a_multi_arch_index_with_all_platforms_in_and_out() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let index = multi_arch_layout(&layout);
    let dir = tmp.path().join("registry");
    let server = sealos_serve(&dir);
    let remote = format!("docker://{}/multi/arch:v1", server.host());
    run(skopeo().args([
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &remote,
    ]));
    assert_eq!(raw_digest(&remote, "--tls-verify=false"), index);
    for arch in ["amd64", "arm64"] {
        let info = run(skopeo().args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &remote,
        ]));
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["Architecture"], arch);
    }
    let back = tmp.path().join("back");
    run(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:v1", back.display()),
    ]));
    assert_eq!(
        raw_digest(&format!("oci:{}:v1", back.display()), "--tls-verify=false"),
        index
    );
    fsck_clean(&dir);
}

#[test]
fn skopeo_copies_a_docker_archive_into_our_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    multi_arch_layout(&layout);
    let archive = tmp.path().join("image.tar");
    run(skopeo().args([
        "copy",
        &format!("oci:{}:amd64", layout.display()),
        &format!("docker-archive:{}:app:v1", archive.display()),
    ]));
    let dir = tmp.path().join("registry");
    let server = sealos_serve(&dir);
    let remote = format!("docker://{}/from/archive:v1", server.host());
    run(skopeo().args([
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &remote,
    ]));
    let pushed = run(skopeo().args(["inspect", "--tls-verify=false", &remote]));
    let pushed: serde_json::Value = serde_json::from_str(&pushed).unwrap();
    let local = run(skopeo().args(["inspect", &format!("docker-archive:{}", archive.display())]));
    let local: serde_json::Value = serde_json::from_str(&local).unwrap();
    assert_eq!(pushed["Layers"], local["Layers"]);
    assert_eq!(pushed["Architecture"], "amd64");
    fsck_clean(&dir);
}

#[test]
fn docker_registry_serves_what_we_wrote_and_we_serve_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let index = multi_arch_layout(&layout);
    let src = format!("oci:{}:multi", layout.display());

    // Ours writes, docker-registry serves.
    let ours_dir = tmp.path().join("ours");
    let ours = sealos_serve(&ours_dir);
    let into_ours = format!("docker://{}/team/app:v1", ours.host());
    run(skopeo().args(["copy", "--all", "--dest-tls-verify=false", &src, &into_ours]));
    drop(ours);
    let peer = DockerRegistry::start(&ours_dir);
    let from_peer = format!("docker://{}/team/app:v1", peer.host());
    assert_eq!(raw_digest(&from_peer, "--tls-verify=false"), index);
    let out = tmp.path().join("out1");
    run(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &from_peer,
        &format!("oci:{}:v1", out.display()),
    ]));
    drop(peer);

    // docker-registry writes, ours serves.
    let peer_dir = tmp.path().join("peer");
    let peer = DockerRegistry::start(&peer_dir);
    let into_peer = format!("docker://{}/team/app:v1", peer.host());
    run(skopeo().args(["copy", "--all", "--dest-tls-verify=false", &src, &into_peer]));
    drop(peer);
    fsck_clean(&peer_dir);
    let ours = sealos_serve(&peer_dir);
    let from_ours = format!("docker://{}/team/app:v1", ours.host());
    assert_eq!(raw_digest(&from_ours, "--tls-verify=false"), index);
    let out = tmp.path().join("out2");
    run(skopeo().args([
        "copy",
        "--all",
        "--src-tls-verify=false",
        &from_ours,
        &format!("oci:{}:v1", out.display()),
    ]));
    assert_eq!(
        raw_digest(&format!("oci:{}:v1", out.display()), "--tls-verify=false"),
        index
    );
}

#[test]
fn serve_fs_with_verify_blobs_refuses_a_blob_whose_bytes_do_not_match_and_logs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let layout = DistDir::new(&root);
    let blob = |bytes: &[u8], media: &str| {
        Descriptor::new(media, layout.blob("lib/app", bytes), bytes.len() as u64)
    };
    let config = blob(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        media_type::OCI_CONFIG,
    );
    let layer = blob(&[5u8; 4096], media_type::OCI_LAYER_TAR);
    let manifest = ImageManifest::new(config, vec![layer.clone()]);
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    layout.manifest("lib/app", &raw, Some("v1"));
    let data = DistributionPaths::new(&root).blob_data(&layer.digest);
    let good = std::fs::read(&data).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 0xff;
    std::fs::write(&data, &bad).unwrap();

    let server = SealosRegistry::start_with(
        Path::new(env!("CARGO_BIN_EXE_sealos")),
        Backend::Fs(&root),
        &["--verify-blobs"],
        true,
    );
    let copy = |to: &str| {
        skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/lib/app:v1", server.host()))
            .arg(format!("oci:{}:v1", tmp.path().join(to).display()))
            .output()
            .unwrap()
    };
    let refused = copy("out-bad");
    assert!(!refused.status.success(), "skopeo copied a corrupt blob");
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("corrupt blob") && l.contains(&layer.digest.to_string())),
        "the server did not log which blob is corrupt:\n{log}"
    );
    // Repaired (another file renamed in place), it is hashed again and served.
    let repaired = data.with_file_name("repaired");
    std::fs::write(&repaired, &good).unwrap();
    std::fs::rename(&repaired, &data).unwrap();
    let copied = copy("out-good");
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
}
