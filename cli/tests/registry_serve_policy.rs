//! `sealos registry serve` flags for deletes and upload sessions, with the real binary on 127.0.0.1: deletes are
//! refused unless `--enable-delete`, a blob a manifest uses is kept, and `--max-upload-sessions-per-client`
//! answers 429 past its cap.

use std::path::Path;

use reqwest::StatusCode;
use testsupport::{Backend, SealosRegistry};

fn sealos() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `sha256:<hex>` of `bytes`.
fn digest(bytes: &[u8]) -> String {
    formats::digest::Digest::sha256_of(bytes).to_string()
}

/// Pushes `blob` into `repo` with a monolithic POST.
async fn push_blob(http: &reqwest::Client, host: &str, repo: &str, blob: &[u8]) -> String {
    let d = digest(blob);
    let r = http
        .post(format!("http://{host}/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    d
}

/// Pushes a one-layer image as `repo:v1`; returns `(manifest digest, layer digest)`.
async fn push_image(http: &reqwest::Client, host: &str, repo: &str) -> (String, String) {
    let config = push_blob(
        http,
        host,
        repo,
        br#"{"architecture":"amd64","os":"linux"}"#,
    )
    .await;
    let layer = push_blob(http, host, repo, b"layer bytes").await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":37}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":11}}]}}"#
    );
    let r = http
        .put(format!("http://{host}/v2/{repo}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    (digest(manifest.as_bytes()), layer)
}

#[test]
fn serve_refuses_deletes_unless_enable_delete_and_keeps_blobs_a_manifest_uses() {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let plain = SealosRegistry::start_with(sealos(), Backend::InMemory, &[], false);
        let (manifest, layer) = push_image(&http, plain.host(), "app").await;
        for path in [format!("blobs/{layer}"), format!("manifests/{manifest}")] {
            let r = http
                .delete(format!("http://{}/v2/app/{path}", plain.host()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert!(r.text().await.unwrap().contains("--enable-delete"));
        }

        let enabled =
            SealosRegistry::start_with(sealos(), Backend::InMemory, &["--enable-delete"], false);
        let host = enabled.host();
        let (manifest, layer) = push_image(&http, host, "app").await;
        let r = http
            .delete(format!("http://{host}/v2/app/blobs/{layer}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let text = r.text().await.unwrap();
        assert!(
            text.contains(&manifest) && text.contains("DENIED"),
            "{text}"
        );
        let r = http
            .delete(format!("http://{host}/v2/app/manifests/{manifest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let r = http
            .delete(format!("http://{host}/v2/app/blobs/{layer}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    });
}

#[test]
fn serve_caps_open_upload_sessions_per_client() {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        let server = SealosRegistry::start_with(
            sealos(),
            Backend::InMemory,
            &["--max-upload-sessions-per-client", "2"],
            false,
        );
        let start = || {
            http.post(format!("http://{}/v2/app/blobs/uploads/", server.host()))
                .send()
        };
        for _ in 0..2 {
            assert_eq!(start().await.unwrap().status(), StatusCode::ACCEPTED);
        }
        let r = start().await.unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let text = r.text().await.unwrap();
        assert!(
            text.contains("TOOMANYREQUESTS") && text.contains("address `127.0.0.1` (limit 2)"),
            "{text}"
        );
    });
}
