//! The registry client against a real registry: Debian's `docker-registry` (CNCF distribution) on 127.0.0.1,
//! read back with `skopeo inspect`. Both tools must be installed; the test fails naming them when not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{
    BlobSource, ClientOptions, Direction, ProgressEvent, PushOutcome, RegistryClient,
};
use testsupport::{DockerRegistry, require_tool};

/// `docker-registry` on a fresh data directory, killed when dropped (the test fails naming the tool when it is
/// not installed).
async fn start_docker_registry() -> DockerRegistry {
    DockerRegistry::start_fresh()
}

fn insecure_client(page: Option<u32>, chunk_threshold: Option<u64>) -> RegistryClient {
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        list_page_size: page,
        chunked_upload_threshold: chunk_threshold,
        upload_chunk_size: 700,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// A one-layer image: an empty tar layer, its config and manifest.
struct TestImage {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

fn test_image() -> TestImage {
    // Only zero blocks: a valid, empty tar archive, big enough to be uploaded in several chunks.
    let layer = vec![0u8; 3072];
    let diff_id = Digest::sha256_of(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"test":"client"}}}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        Digest::sha256_of(&config),
        config.len(),
        diff_id,
        layer.len()
    )
    .into_bytes();
    testsupport::oci_spec_check(&config, "application/vnd.oci.image.config.v1+json");
    testsupport::oci_spec_check(&manifest, OCI_MANIFEST);
    TestImage {
        layer,
        config,
        manifest,
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn skopeo_inspect(host: &str, image: &str, raw: bool) -> Vec<u8> {
    let skopeo = require_tool("skopeo");
    let mut cmd = Command::new(skopeo);
    cmd.arg("inspect").arg("--tls-verify=false");
    if raw {
        cmd.arg("--raw");
    }
    let out = cmd
        .arg(format!("docker://{host}/{image}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn write_temp(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

#[tokio::test]
async fn pushed_image_is_read_back_byte_exact_by_skopeo_and_by_the_client() {
    let reg = start_docker_registry().await;
    let host = reg.host();
    let host = host.as_str();
    // Chunked uploads for anything above 1000 bytes, in 700-byte PATCHes; progress tells the chunks.
    let pushed_offsets = Arc::new(Mutex::new(Vec::new()));
    let sink = pushed_offsets.clone();
    let mut opts = insecure_client(None, Some(1000)).options().clone();
    opts.progress = Some(Arc::new(move |e: ProgressEvent| {
        if e.direction == Direction::Push {
            sink.lock().unwrap().push(e.bytes_done);
        }
    }));
    let client = RegistryClient::new(opts).unwrap();
    client.ping(host).await.unwrap();
    let img = test_image();
    let tmp = tempfile::tempdir().unwrap();
    let layer_file = write_temp(tmp.path(), "layer", &img.layer);
    let layer_digest = Digest::sha256_of(&img.layer);
    let config_digest = Digest::sha256_of(&img.config);

    let pushed = client
        .push_blob(
            host,
            "a/b",
            &layer_digest,
            img.layer.len() as u64,
            BlobSource::File(layer_file.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(pushed, PushOutcome::Uploaded);
    assert_eq!(
        *pushed_offsets.lock().unwrap(),
        vec![700, 1400, 2100, 2800, 3072]
    );
    let pushed = client
        .push_blob(
            host,
            "a/b",
            &config_digest,
            img.config.len() as u64,
            BlobSource::Bytes(Bytes::from(img.config.clone())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(pushed, PushOutcome::Uploaded);
    // Pushed again: the HEAD finds it.
    let again = client
        .push_blob(
            host,
            "a/b",
            &layer_digest,
            img.layer.len() as u64,
            BlobSource::File(layer_file),
            None,
        )
        .await
        .unwrap();
    assert_eq!(again, PushOutcome::Existed);
    assert_eq!(
        client
            .blob_exists(host, "a/b", &layer_digest)
            .await
            .unwrap(),
        Some(img.layer.len() as u64)
    );

    let digest = client
        .put_manifest(
            host,
            "a/b",
            "v1",
            Bytes::from(img.manifest.clone()),
            OCI_MANIFEST,
        )
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(&img.manifest));

    // skopeo reads what we pushed, byte for byte.
    let raw = skopeo_inspect(host, "a/b:v1", true);
    assert_eq!(raw, img.manifest);
    let info: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(host, "a/b:v1", false)).unwrap();
    assert_eq!(info["Digest"], digest.to_string());
    assert_eq!(info["Labels"]["test"], "client");

    // And so does our client, by tag and by digest.
    let by_tag = client
        .get_manifest(host, "a/b", "v1", registry::client::DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap();
    assert_eq!(&by_tag.bytes[..], &img.manifest[..]);
    assert_eq!(by_tag.media_type, OCI_MANIFEST);
    assert_eq!(by_tag.digest, digest);
    let by_digest = client
        .get_manifest(
            host,
            "a/b",
            &digest.to_string(),
            registry::client::DEFAULT_MANIFEST_ACCEPT,
        )
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, by_tag.bytes);
    let head = client
        .head_manifest(host, "a/b", "v1", registry::client::DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.digest, Some(digest.clone()));
    assert!(
        client
            .head_manifest(
                host,
                "a/b",
                "nope",
                registry::client::DEFAULT_MANIFEST_ACCEPT
            )
            .await
            .unwrap()
            .is_none()
    );

    let dest = tmp.path().join("out/layer");
    let n = client
        .fetch_blob(
            host,
            "a/b",
            &layer_digest,
            Some(img.layer.len() as u64),
            &dest,
        )
        .await
        .unwrap();
    assert_eq!(n, img.layer.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), img.layer);

    // Deleted by digest, it is gone by tag too.
    client.delete_manifest(host, "a/b", &digest).await.unwrap();
    assert!(
        client
            .head_manifest(host, "a/b", "v1", registry::client::DEFAULT_MANIFEST_ACCEPT)
            .await
            .unwrap()
            .is_none()
    );

    // No referrers: the registry lacks the API and the fallback tag does not exist.
    assert!(
        client
            .referrers(host, "a/b", &digest, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tags_and_catalog_follow_pagination_one_entry_per_page() {
    let reg = start_docker_registry().await;
    let host = reg.host();
    let host = host.as_str();
    let client = insecure_client(Some(1), None);
    let img = test_image();
    let layer_digest = Digest::sha256_of(&img.layer);
    let config_digest = Digest::sha256_of(&img.config);
    for (digest, bytes) in [(&layer_digest, &img.layer), (&config_digest, &img.config)] {
        client
            .push_blob(
                host,
                "a/b",
                digest,
                bytes.len() as u64,
                BlobSource::Bytes(Bytes::from(bytes.clone())),
                None,
            )
            .await
            .unwrap();
    }
    // Cross-repository mount: nothing is uploaded again.
    let mounted = client
        .push_blob(
            host,
            "c/d/e",
            &layer_digest,
            img.layer.len() as u64,
            BlobSource::Bytes(Bytes::from(img.layer.clone())),
            Some("a/b"),
        )
        .await
        .unwrap();
    assert_eq!(mounted, PushOutcome::Mounted);
    client
        .push_blob(
            host,
            "c/d/e",
            &config_digest,
            img.config.len() as u64,
            BlobSource::Bytes(Bytes::from(img.config.clone())),
            Some("a/b"),
        )
        .await
        .unwrap();
    for tag in ["v1", "v2", "v3"] {
        client
            .put_manifest(
                host,
                "a/b",
                tag,
                Bytes::from(img.manifest.clone()),
                OCI_MANIFEST,
            )
            .await
            .unwrap();
    }
    client
        .put_manifest(
            host,
            "c/d/e",
            "latest",
            Bytes::from(img.manifest.clone()),
            OCI_MANIFEST,
        )
        .await
        .unwrap();
    // A manifest whose blobs the repository lacks is refused, and the registry's reason comes through.
    let err = client
        .put_manifest(
            host,
            "z",
            "latest",
            Bytes::from(img.manifest.clone()),
            OCI_MANIFEST,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{err}");

    let mut tags = client.tags(host, "a/b").await.unwrap();
    tags.sort();
    assert_eq!(tags, vec!["v1", "v2", "v3"]);
    let catalog = client.catalog(host).await.unwrap();
    assert_eq!(catalog, vec!["a/b", "c/d/e"]);
}

#[tokio::test]
async fn blob_copied_between_registries_streams_verified_and_mounts_within_one() {
    let (src, dst) = (start_docker_registry().await, start_docker_registry().await);
    let client = insecure_client(None, None);
    let img = test_image();
    let layer_digest = Digest::sha256_of(&img.layer);
    let size = img.layer.len() as u64;
    client
        .push_blob(
            &src.host(),
            "a/b",
            &layer_digest,
            size,
            BlobSource::Bytes(Bytes::from(img.layer.clone())),
            None,
        )
        .await
        .unwrap();
    let remote = |host: &str| BlobSource::Remote {
        host: host.to_string(),
        repository: "a/b".to_string(),
    };
    // Another registry: streamed from the source into the upload.
    let copied = client
        .push_blob(
            &dst.host(),
            "x/y",
            &layer_digest,
            size,
            remote(&src.host()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(copied, PushOutcome::Uploaded);
    let mut out = Vec::new();
    client
        .fetch_blob_to_writer(&dst.host(), "x/y", &layer_digest, Some(size), &mut out)
        .await
        .unwrap();
    assert_eq!(out, img.layer);
    // The same registry: mounted, nothing sent.
    let mounted = client
        .push_blob(
            &src.host(),
            "c/d",
            &layer_digest,
            size,
            remote(&src.host()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(mounted, PushOutcome::Mounted);
}

#[tokio::test]
async fn blob_copied_from_a_source_serving_wrong_bytes_is_not_stored() {
    use axum::response::IntoResponse;
    let dst = start_docker_registry().await;
    let img = test_image();
    let layer_digest = Digest::sha256_of(&img.layer);
    let mut wrong = img.layer.clone();
    wrong[10] = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let src = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = axum::Router::new().fallback(move || {
        let wrong = wrong.clone();
        async move { wrong.into_response() }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = insecure_client(None, None);
    let err = client
        .push_blob(
            &dst.host(),
            "x/y",
            &layer_digest,
            img.layer.len() as u64,
            BlobSource::Remote {
                host: src.clone(),
                repository: "a/b".into(),
            },
            None,
        )
        .await
        .unwrap_err();
    // Whichever notices first says so: our hashing of the source stream (which aborts the upload body) or
    // the registry (which gets every byte before our stream reports the mismatch and refuses the digest).
    let refused_by_us = matches!(err, registry::client::ClientError::Verification { .. });
    let refused_by_registry = err.to_string().contains("DIGEST_INVALID");
    assert!(refused_by_us || refused_by_registry, "{err}");
    assert_eq!(
        client
            .blob_exists(&dst.host(), "x/y", &layer_digest)
            .await
            .unwrap(),
        None
    );
}
