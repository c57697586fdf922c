//! Images for the integration tests' upstream registries (started by `testsupport`): pushes generated single-
//! and multi-platform images with our registry client, reads back what a registry holds, and runs `skopeo`.

#![allow(dead_code)]

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, DEFAULT_MANIFEST_ACCEPT, RegistryClient};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// One layer of `seed` repeated 500 times, so images pushed with different seeds differ.
pub fn seeded_layer(seed: &str) -> Vec<u8> {
    seed.repeat(500).into_bytes()
}

/// Pushes a one-layer image (layer = [`seeded_layer`]) for `arch`; returns the manifest digest and bytes.
pub fn push_image(
    host: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    seed: &str,
) -> (Digest, Vec<u8>) {
    push_image_layers(&client(), host, repo, tag, arch, &[seeded_layer(seed)])
}

/// Pushes an image of `layers` for `arch` through the client `c` (e.g. one with credentials), as
/// `repo:tag` or by digest only; returns the manifest digest and bytes.
pub fn push_image_layers(
    c: &RegistryClient,
    host: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[Vec<u8>],
) -> (Digest, Vec<u8>) {
    let digests: Vec<Digest> = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    let diff_ids: Vec<String> = digests.iter().map(|d| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_d = Digest::sha256_of(&config);
    let layer_descs: Vec<String> = digests
        .iter()
        .zip(layers)
        .map(|(d, l)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{}}}"#,
                l.len()
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layer_descs.join(",")
    )
    .into_bytes();
    let digest = Digest::sha256_of(&manifest);
    rt().block_on(async {
        let blobs = digests
            .iter()
            .zip(layers.iter().cloned())
            .chain([(&config_d, config.clone())]);
        for (d, b) in blobs {
            c.push_blob(
                host,
                repo,
                d,
                b.len() as u64,
                BlobSource::Bytes(Bytes::from(b)),
                None,
            )
            .await
            .unwrap();
        }
        let reference = tag.map_or_else(|| digest.to_string(), str::to_string);
        c.put_manifest(
            host,
            repo,
            &reference,
            Bytes::from(manifest.clone()),
            OCI_MANIFEST,
        )
        .await
        .unwrap();
    });
    (digest, manifest)
}

/// Pushes an amd64 + arm64 index as `repo:tag`; returns (index, amd64, arm64) digests.
pub fn push_multi_arch(host: &str, repo: &str, tag: &str) -> (Digest, Digest, Digest) {
    push_multi_arch_seeded(host, repo, tag, "")
}

/// [`push_multi_arch`] with layer contents that start with `seed`, so different images differ.
pub fn push_multi_arch_seeded(
    host: &str,
    repo: &str,
    tag: &str,
    seed: &str,
) -> (Digest, Digest, Digest) {
    let (amd, amd_bytes) = push_image(host, repo, None, "amd64", &format!("{seed}amd64-layer "));
    let (arm, arm_bytes) = push_image(host, repo, None, "arm64", &format!("{seed}arm64-layer "));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{amd}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{arm}","size":{},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#,
        amd_bytes.len(),
        arm_bytes.len()
    )
    .into_bytes();
    let digest = Digest::sha256_of(&index);
    rt().block_on(client().put_manifest(host, repo, tag, Bytes::from(index), OCI_INDEX))
        .unwrap();
    (digest, amd, arm)
}

/// The digest `repo:reference` has at `host`, `None` when absent.
pub fn remote_digest(host: &str, repo: &str, reference: &str) -> Option<Digest> {
    rt().block_on(client().head_manifest(host, repo, reference, DEFAULT_MANIFEST_ACCEPT))
        .unwrap()
        .and_then(|h| h.digest)
}

/// Runs `skopeo ARGS` and returns its stdout; panics with its stderr when it fails, or naming `skopeo` when
/// it is not installed.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = testsupport::tool("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
