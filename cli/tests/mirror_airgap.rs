//! Air-gapped mirroring: every request of an image (manifest, blobs, referrers, tag lists) goes through a
//! registries.conf mirror, so `registry save`, `copy`, `sync` and `pull` work while the original host
//! (`unresolvable.invalid`) cannot even be resolved, and a rerun copies referrers an earlier run missed.

mod dist_fixture;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use dist_fixture::DistDir;
use formats::digest::Digest;
use formats::distribution::DistributionLayout;
use formats::manifest::RawManifest;
use testsupport::SealosRegistry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const HOST: &str = "unresolvable.invalid";

/// An image manifest over `config` and `layers`, with `extra` JSON members appended.
fn manifest_json(
    config: (&str, &Digest, usize),
    layers: &[(&Digest, usize)],
    extra: &str,
) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"{OCI_LAYER}","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{}]{extra}}}"#,
        config.0,
        config.1,
        config.2,
        layers.join(",")
    )
    .into_bytes()
}

/// A directory holding `lib/app:v1` (for this host's architecture) and a signature whose `subject` is
/// that image; returns the image's digest and the signature's digest.
fn dir_with_signed_image(root: &Path) -> (Digest, Digest) {
    let layout = DistDir::new(root);
    let repo = "lib/app";
    let layer = b"layer of the air-gapped image".to_vec();
    let layer_d = layout.blob(repo, &layer);
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::sha256_of(&layer)
    );
    let config_d = layout.blob(repo, config.as_bytes());
    let image = manifest_json(
        (OCI_CONFIG, &config_d, config.len()),
        &[(&layer_d, layer.len())],
        "",
    );
    let image = RawManifest::from_bytes(image, Some(OCI_MANIFEST)).unwrap();
    layout.manifest(repo, &image, Some("v1"));
    let empty_d = layout.blob(repo, b"{}");
    let sig = b"signature of the air-gapped image";
    let sig_d = layout.blob(repo, sig);
    let subject = format!(
        r#","artifactType":"application/vnd.example.signature","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{}}}"#,
        image.digest,
        image.bytes.len()
    );
    let referrer = manifest_json(
        ("application/vnd.oci.empty.v1+json", &empty_d, 2),
        &[(&sig_d, sig.len())],
        &subject,
    );
    let referrer = RawManifest::from_bytes(referrer, Some(OCI_MANIFEST)).unwrap();
    layout.manifest(repo, &referrer, None);
    (image.digest, referrer.digest)
}

/// The mirror: our server on 127.0.0.1 serving the signed image, and a registries.conf in `work`
/// sending every request for `unresolvable.invalid` to it.
fn start_mirror(work: &Path) -> (SealosRegistry, Digest, Digest) {
    let served = work.join("served");
    let (image, sig) = dir_with_signed_image(&served);
    let server = SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), &served, &[]);
    std::fs::write(
        work.join("registries.conf"),
        format!(
            "[[registry]]\nprefix = \"{HOST}\"\nlocation = \"{HOST}\"\n[[registry.mirror]]\nlocation = \"{}\"\ninsecure = true\n",
            server.host()
        ),
    )
    .unwrap();
    (server, image, sig)
}

/// `sealos ARGS` with the mirror's registries.conf and a private store.
fn sealos(work: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(args)
        .arg("--registries-conf")
        .arg(work.join("registries.conf"))
        .env("SEALOS_ROOT", work.join("store"))
        .env("REGISTRY_AUTH_FILE", work.join("auth.json"))
        .stdin(Stdio::null())
        .output()
        .expect("run sealos");
    eprintln!(
        "sealos {args:?}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sealos {args:?} failed");
    out
}

fn has_manifest(dir: &Path, repo: &str, digest: &Digest) -> bool {
    DistributionLayout::new(dir)
        .read_manifest(repo, digest)
        .is_ok()
}

#[test]
fn save_through_a_mirror_copies_image_and_referrer_with_the_original_host_unresolvable() {
    let work = tempfile::tempdir().unwrap();
    let (_server, image, sig) = start_mirror(work.path());
    let out = work.path().join("saved");
    let name = format!("{HOST}/lib/app:v1");
    sealos(
        work.path(),
        &[
            "registry",
            "save",
            "--images",
            &name,
            "--registry-dir",
            out.to_str().unwrap(),
        ],
    );
    let layout = DistributionLayout::new(&out);
    assert_eq!(layout.resolve_tag("lib/app", "v1").unwrap(), Some(image));
    assert!(
        has_manifest(&out, "lib/app", &sig),
        "the referrer was not saved"
    );
}

#[test]
fn save_rerun_after_losing_the_referrer_copies_it_instead_of_saying_already_there() {
    let work = tempfile::tempdir().unwrap();
    let (_server, _image, sig) = start_mirror(work.path());
    let out = work.path().join("saved");
    let name = format!("{HOST}/lib/app:v1");
    let args = [
        "registry",
        "save",
        "--images",
        &name,
        "--registry-dir",
        out.to_str().unwrap(),
    ];
    sealos(work.path(), &args);
    // What a run that failed on the referrers left behind: the image and its tag, no referrer.
    let revision = out
        .join("docker/registry/v2/repositories/lib/app/_manifests/revisions")
        .join(sig.algorithm().to_string())
        .join(sig.hex());
    std::fs::remove_dir_all(&revision).unwrap();
    assert!(!has_manifest(&out, "lib/app", &sig));
    sealos(work.path(), &args);
    assert!(
        has_manifest(&out, "lib/app", &sig),
        "the rerun did not copy the referrer"
    );
}

#[test]
fn copy_through_a_mirror_copies_image_and_referrer_with_the_original_host_unresolvable() {
    let work = tempfile::tempdir().unwrap();
    let (_server, image, sig) = start_mirror(work.path());
    let dest_dir = work.path().join("dest");
    std::fs::create_dir_all(&dest_dir).unwrap();
    let dest = SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), &dest_dir, &[]);
    let name = format!("{HOST}/lib/app:v1");
    sealos(
        work.path(),
        &[
            "registry",
            "copy",
            &name,
            &format!("{}/copied", dest.host()),
            "--tls-verify=false",
        ],
    );
    assert_eq!(
        DistributionLayout::new(&dest_dir)
            .resolve_tag("copied/lib/app", "v1")
            .unwrap(),
        Some(image.clone())
    );
    assert!(
        has_manifest(&dest_dir, "copied/lib/app", &sig),
        "copy left the referrer out"
    );
}

#[test]
fn sync_through_a_mirror_lists_and_copies_image_and_referrer_with_the_original_host_unresolvable() {
    let work = tempfile::tempdir().unwrap();
    let (_server, image, sig) = start_mirror(work.path());
    let synced = work.path().join("synced");
    sealos(
        work.path(),
        &["registry", "sync", HOST, synced.to_str().unwrap()],
    );
    let layout = DistributionLayout::new(&synced);
    assert_eq!(layout.resolve_tag("lib/app", "v1").unwrap(), Some(image));
    assert!(
        has_manifest(&synced, "lib/app", &sig),
        "sync left the referrer out"
    );
}

#[test]
fn pull_through_a_mirror_works_with_the_original_host_unresolvable() {
    let work = tempfile::tempdir().unwrap();
    let (_server, image, _sig) = start_mirror(work.path());
    let name = format!("{HOST}/lib/app:v1");
    let out = sealos(work.path(), &["pull", &name]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&image.to_string()), "{text}");
}
