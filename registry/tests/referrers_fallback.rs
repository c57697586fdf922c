//! The referrers tag schema of OCI distribution 1.1 against a registry without the referrers API (Debian's
//! `docker-registry` 2.8 answers 404 on `/v2/<name>/referrers/<digest>`): pushing a manifest with a
//! `subject` also writes the index tagged `sha256-<hex of the subject>` listing it, extended (not replaced)
//! by the next one, and `referrers` reads it back. Needs `docker-registry`; fails naming it.

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient};
use testsupport::DockerRegistry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";

fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// Pushes `{}` (the empty config every manifest here uses) and a manifest; returns its digest.
async fn push_manifest(
    c: &RegistryClient,
    host: &str,
    reference: &str,
    manifest: String,
) -> Digest {
    let empty = Bytes::from_static(b"{}");
    c.push_blob(
        host,
        "app",
        &Digest::sha256_of(&empty),
        empty.len() as u64,
        BlobSource::Bytes(empty.clone()),
        None,
    )
    .await
    .expect("push the empty config");
    c.put_manifest(host, "app", reference, Bytes::from(manifest), OCI_MANIFEST)
        .await
        .expect("put the manifest")
}

fn manifest(artifact_type: Option<&str>, subject: Option<(&Digest, usize)>) -> String {
    let empty = Digest::sha256_of(b"{}");
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": EMPTY_JSON, "digest": empty.to_string(), "size": 2},
        "layers": [],
    });
    if let Some(t) = artifact_type {
        m["artifactType"] = t.into();
        m["annotations"] = serde_json::json!({"org.example.kind": t});
    }
    if let Some((d, size)) = subject {
        m["subject"] =
            serde_json::json!({"mediaType": OCI_MANIFEST, "digest": d.to_string(), "size": size});
    }
    m.to_string()
}

/// The referrers tag's index as the registry serves it, or `None` when the tag does not exist.
async fn referrers_tag(
    c: &RegistryClient,
    host: &str,
    subject: &Digest,
) -> Option<serde_json::Value> {
    let tag = format!("sha256-{}", subject.hex());
    match c.get_manifest(host, "app", &tag, &[OCI_INDEX]).await {
        Ok(m) => Some(serde_json::from_slice(&m.bytes).unwrap()),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("GET the referrers tag: {e}"),
    }
}

fn listed(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pushing_a_referrer_to_a_registry_without_the_api_maintains_the_referrers_tag() {
    let reg = DockerRegistry::start_fresh();
    let host = reg.host();
    let c = client();
    let image = manifest(None, None);
    let image_digest = push_manifest(&c, &host, "v1", image.clone()).await;
    let api = reqwest::get(format!("http://{host}/v2/app/referrers/{image_digest}"))
        .await
        .unwrap();
    assert_eq!(api.status(), 404, "docker-registry has no referrers API");
    assert!(referrers_tag(&c, &host, &image_digest).await.is_none());

    let sig = manifest(
        Some("application/vnd.example.sig"),
        Some((&image_digest, image.len())),
    );
    let sig_digest = Digest::sha256_of(sig.as_bytes());
    push_manifest(&c, &host, &sig_digest.to_string(), sig.clone()).await;
    let index = referrers_tag(&c, &host, &image_digest)
        .await
        .expect("the referrers tag is written");
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(listed(&index), vec![sig_digest.to_string()]);
    let entry = &index["manifests"][0];
    assert_eq!(entry["artifactType"], "application/vnd.example.sig");
    assert_eq!(entry["mediaType"], OCI_MANIFEST);
    assert_eq!(entry["size"], sig.len());
    assert_eq!(
        entry["annotations"]["org.example.kind"],
        "application/vnd.example.sig"
    );

    // Pushed again: listed once. A second referrer is added to the list.
    push_manifest(&c, &host, &sig_digest.to_string(), sig).await;
    let sbom = manifest(
        Some("application/vnd.example.sbom"),
        Some((&image_digest, image.len())),
    );
    let sbom_digest = Digest::sha256_of(sbom.as_bytes());
    push_manifest(&c, &host, &sbom_digest.to_string(), sbom).await;
    let index = referrers_tag(&c, &host, &image_digest).await.unwrap();
    assert_eq!(
        listed(&index),
        vec![sig_digest.to_string(), sbom_digest.to_string()]
    );

    // The reading side falls back to the tag.
    let found: Vec<Digest> = c
        .referrers(&host, "app", &image_digest, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest)
        .collect();
    assert_eq!(found, vec![sig_digest.clone(), sbom_digest]);
    let sigs = c
        .referrers(
            &host,
            "app",
            &image_digest,
            Some("application/vnd.example.sig"),
        )
        .await
        .unwrap();
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].digest, sig_digest);
}
