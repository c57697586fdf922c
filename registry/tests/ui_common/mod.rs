//! Shared by the hub tests: a registry holding a two-platform cluster image with embedded images and a
//! signature, a plain image and a "private" one, served with `--ui`.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use formats::digest::Digest;
use registry::server::ServerConfig;
use registry::storage::{MemoryStorage, Storage};
use serde_json::{Value, json};

use crate::auth_common::{AuthServer, start_on};

pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const EMBEDDED: &str = "io.sealos.image.embedded";

/// Stores `bytes` as a blob linked into `repo`; returns its descriptor.
pub async fn blob(storage: &dyn Storage, repo: &str, media_type: &str, bytes: &[u8]) -> Value {
    let digest = Digest::sha256_of(bytes);
    storage
        .put_blob_bytes(&digest, Bytes::copy_from_slice(bytes))
        .await
        .unwrap();
    storage.link_layer(repo, &digest).await.unwrap();
    json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
}

/// Stores `manifest` as a revision of `repo`, tagged `tag` when given; returns its digest.
pub async fn manifest(
    storage: &dyn Storage,
    repo: &str,
    tag: Option<&str>,
    manifest: &Value,
) -> Digest {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let digest = Digest::sha256_of(&bytes);
    storage
        .put_blob_bytes(&digest, Bytes::from(bytes))
        .await
        .unwrap();
    storage.link_revision(repo, &digest).await.unwrap();
    if let Some(tag) = tag {
        storage.set_tag(repo, tag, &digest).await.unwrap();
    }
    digest
}

/// A cluster image for `arch` in `repo`: a files layer and two embedded-image layers (the pause image's digest
/// differs per platform), its config labelled as an application.
pub async fn cluster_image(storage: &dyn Storage, repo: &str, arch: &str, created: &str) -> Value {
    let config = json!({
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin", "NAMESPACE=demo"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["kubectl apply -f manifests/"],
            "Labels": {"sealos.io.type": "application", "sealos.io.version": "v1beta1", "version": "v1.2.3", "team": "hub", "note": "<b>not markup</b>"},
        },
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [
            {"created_by": "ENV NAMESPACE=demo", "empty_layer": true},
            {"created_by": "COPY . ."},
            {"created_by": "EMBED docker.io/library/nginx:1.25@sha256:aa"},
            {"created_by": "EMBED registry.k8s.io/pause:3.9"},
        ],
    });
    let config = blob(storage, repo, CONFIG, &serde_json::to_vec(&config).unwrap()).await;
    let files = blob(
        storage,
        repo,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &[1; 300],
    )
    .await;
    let mut nginx = blob(
        storage,
        repo,
        "application/vnd.oci.image.layer.v1.tar",
        &[2; 2000],
    )
    .await;
    nginx["annotations"] =
        json!({EMBEDDED: format!("docker.io/library/nginx:1.25@sha256:{}", "a".repeat(64))});
    let mut pause = blob(
        storage,
        repo,
        "application/vnd.oci.image.layer.v1.tar",
        arch.repeat(100).as_bytes(),
    )
    .await;
    let pause_digest = Digest::sha256_of(format!("pause {arch}").as_bytes());
    pause["annotations"] = json!({EMBEDDED: format!("registry.k8s.io/pause:3.9@{pause_digest}")});
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [files, nginx, pause],
    })
}

/// Serves `storage` with the UI on (and `auth`).
pub async fn serve(
    storage: Arc<dyn Storage>,
    auth: Option<registry::server::auth::AuthConfig>,
) -> AuthServer {
    let config = ServerConfig {
        auth,
        ui: true,
        ..ServerConfig::default()
    };
    start_on(storage, config, None).await
}

/// A registry holding `apps/demo` (a two-platform cluster image `v1`, its amd64 manifest also tagged
/// `amd64`, with a signature referring to the index), `library/nginx:1.25` (a plain image) and
/// `private/secret:v1`.
pub async fn seeded() -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let s = storage.as_ref();
    let amd64 = cluster_image(s, "apps/demo", "amd64", "2025-01-01T00:00:00Z").await;
    let arm64 = cluster_image(s, "apps/demo", "arm64", "2025-02-01T00:00:00Z").await;
    let amd64_digest = manifest(s, "apps/demo", Some("amd64"), &amd64).await;
    let arm64_digest = manifest(s, "apps/demo", None, &arm64).await;
    let child = |d: &Digest, arch: &str, m: &Value| {
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d.to_string(),
            "size": serde_json::to_vec(m).unwrap().len(),
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [child(&amd64_digest, "amd64", &amd64), child(&arm64_digest, "arm64", &arm64)],
    });
    let index_digest = manifest(s, "apps/demo", Some("v1"), &index).await;
    let empty = blob(s, "apps/demo", "application/vnd.oci.empty.v1+json", b"{}").await;
    let signature = blob(
        s,
        "apps/demo",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        b"sig",
    )
    .await;
    let index_bytes = serde_json::to_vec(&index).unwrap();
    manifest(
        s,
        "apps/demo",
        None,
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": empty,
            "layers": [signature],
            "subject": {"mediaType": INDEX, "digest": index_digest.to_string(), "size": index_bytes.len()},
        }),
    )
    .await;
    for repo in ["library/nginx", "private/secret"] {
        let config = json!({
            "created": "2024-06-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["nginx"]},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let config = blob(s, repo, CONFIG, &serde_json::to_vec(&config).unwrap()).await;
        let layer = blob(
            s,
            repo,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            repo.as_bytes(),
        )
        .await;
        let tag = if repo == "library/nginx" {
            "1.25"
        } else {
            "v1"
        };
        manifest(
            s,
            repo,
            Some(tag),
            &json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer],
            }),
        )
        .await;
    }
    storage
}
