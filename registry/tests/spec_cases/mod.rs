//! The distribution-spec v1.1 cases every storage backend must pass, over TCP on 127.0.0.1 with a real HTTP
//! client and skopeo. Each backend's test crate (`spec.rs`: filesystem and memory; `spec_s3.rs`: S3 over moto)
//! declares this module and provides `start()` (a fresh, empty registry) and `start_all()` (one per flavour).
#![allow(dead_code)]

use formats::digest::{Algorithm, Digest};
use registry::server::{self, ServerConfig};
use registry::storage::Storage;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// A registry under test, stopped on drop.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    _guard: Option<Box<dyn std::any::Any + Send>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The configuration the shared cases run with: the defaults, with deletes on (`--enable-delete`).
pub fn config() -> ServerConfig {
    ServerConfig {
        enable_delete: true,
        ..ServerConfig::default()
    }
}

/// Serves `storage` on a free port of 127.0.0.1; `guard` (a temporary directory, ...) lives as long as the server.
pub async fn start_with(
    storage: Arc<dyn Storage>,
    config: ServerConfig,
    guard: Option<Box<dyn std::any::Any + Send>>,
) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = server::router(storage, config);
    tokio::spawn(server::serve(listener, router, async move {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _guard: guard,
        shutdown: Some(tx),
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let r = self
            .client
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        d
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &Value,
    ) -> reqwest::Response {
        let mt = body["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();
        self.client
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("content-type", mt)
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap()
    }

    /// Pushes config + one layer + manifest; returns the manifest JSON and its digest.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Value, Digest) {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let layer = format!("layer-{seed}");
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer.as_bytes()).await;
        let m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}]
        });
        let r = self.put_manifest(repo, tag, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let d = Digest::sha256_of(&serde_json::to_vec(&m).unwrap());
        (m, d)
    }
}

/// The first error code of an error response.
pub async fn error_code(r: reqwest::Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

fn tool(name: &str) {
    let ok = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "this test needs `{name}` installed and on PATH");
}

#[tokio::test]
async fn base_endpoint_answers_with_api_version() {
    let s = super::start().await;
    let r = s.client.get(s.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
}

#[tokio::test]
async fn monolithic_blob_push_then_get_and_head_return_it() {
    for s in super::start_all().await {
        let d = s.push_blob("a/b/c/d/e/f/g/h/i", b"hello world").await;
        let r = s
            .client
            .get(s.url(&format!("/v2/a/b/c/d/e/f/g/h/i/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
        assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello world");
        let r = s
            .client
            .head(s.url(&format!("/v2/a/b/c/d/e/f/g/h/i/blobs/{d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-length"], "11");
    }
}

#[tokio::test]
async fn range_reads_return_206_and_unsatisfiable_ranges_416() {
    let s = super::start().await;
    let d = s.push_blob("r", b"0123456789").await;
    let url = s.url(&format!("/v2/r/blobs/{d}"));
    let r = s
        .client
        .get(&url)
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"234");
    let r = s
        .client
        .get(&url)
        .header("range", "bytes=20-30")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */10");
    let r = s
        .client
        .get(&url)
        .header("range", "bytes=5-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunk_416() {
    for s in super::start_all().await {
        let r = s
            .client
            .post(s.url("/v2/c/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let r = s
            .client
            .patch(s.url(&loc))
            .header("content-range", "0-4")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()["range"], "0-4");
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        // Out of order: starts at 10, the session is at 5.
        let r = s
            .client
            .patch(s.url(&loc))
            .header("content-range", "10-14")
            .body("xxxxx")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()["range"], "0-4");
        let r = s.client.get(s.url(&loc)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["range"], "0-4");
        let d = Digest::sha256_of(b"hello world");
        let r = s
            .client
            .put(s.url(&format!("{loc}?digest={d}")))
            .body(" world")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["location"], format!("/v2/c/blobs/{d}").as_str());
        let got = s
            .client
            .get(s.url(&format!("/v2/c/blobs/{d}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(got.as_ref(), b"hello world");
    }
}

#[tokio::test]
async fn sha512_blobs_are_accepted() {
    let s = super::start().await;
    let d = Digest::of(Algorithm::Sha512, b"five twelve");
    let r = s
        .client
        .post(s.url(&format!("/v2/x/blobs/uploads/?digest={d}")))
        .body("five twelve")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .client
        .get(s.url(&format!("/v2/x/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"five twelve");
}

#[tokio::test]
async fn push_with_wrong_digest_is_rejected_and_nothing_is_stored() {
    let s = super::start().await;
    let wrong = Digest::sha256_of(b"other");
    let r = s
        .client
        .post(s.url(&format!("/v2/w/blobs/uploads/?digest={wrong}")))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = s
        .client
        .head(s.url(&format!("/v2/w/blobs/{wrong}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_digest_is_400_digest_invalid() {
    let s = super::start().await;
    for path in [
        "/v2/m/blobs/sha256:nothex",
        "/v2/m/manifests/sha256:zz",
        "/v2/m/referrers/md5:00",
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_code(r).await, "DIGEST_INVALID");
    }
}

#[tokio::test]
async fn unknown_blob_and_upload_give_their_codes() {
    let s = super::start().await;
    let d = Digest::sha256_of(b"nope");
    let r = s
        .client
        .get(s.url(&format!("/v2/u/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UNKNOWN");
    let r = s
        .client
        .patch(s.url("/v2/u/blobs/uploads/0000-1111"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn cancelled_upload_is_gone() {
    let s = super::start().await;
    let r = s
        .client
        .post(s.url("/v2/k/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = s.client.delete(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.client.get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cross_repository_mount_links_or_falls_back_to_a_session() {
    let s = super::start().await;
    let d = s.push_blob("src", b"shared").await;
    let r = s
        .client
        .post(s.url(&format!("/v2/dst/blobs/uploads/?mount={d}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .client
        .head(s.url(&format!("/v2/dst/blobs/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .client
        .post(s.url(&format!("/v2/dst2/blobs/uploads/?mount={d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let absent = Digest::sha256_of(b"absent");
    let r = s
        .client
        .post(s.url(&format!("/v2/dst3/blobs/uploads/?mount={absent}&from=src")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn manifest_push_get_by_tag_and_digest_and_delete() {
    let s = super::start().await;
    let (m, d) = s.push_image("lib/app", "v1", "1").await;
    for reference in ["v1".to_string(), d.to_string()] {
        let r = s
            .client
            .get(s.url(&format!("/v2/lib/app/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(r.headers()["docker-content-digest"], d.to_string().as_str());
        assert_eq!(r.json::<Value>().await.unwrap(), m);
    }
    let r = s
        .client
        .delete(s.url("/v2/lib/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s
        .client
        .get(s.url("/v2/lib/app/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = s
        .client
        .delete(s.url(&format!("/v2/lib/app/manifests/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = s
        .client
        .get(s.url(&format!("/v2/lib/app/manifests/{d}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn manifest_referencing_missing_blobs_is_rejected_except_non_distributable() {
    let s = super::start().await;
    let cd = s.push_blob("n", b"{}").await;
    let missing = Digest::sha256_of(b"missing");
    let mut m = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing.to_string(), "size": 7}]
    });
    let r = s.put_manifest("n", "v1", &m).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    m["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar".into();
    let r = s.put_manifest("n", "v1", &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": missing.to_string(), "size": 7}]});
    let r = s.put_manifest("n", "idx", &idx).await;
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn oversized_manifest_is_rejected_with_size_invalid() {
    let s = super::start().await;
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = s
        .client
        .put(s.url("/v2/big/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(r).await, "SIZE_INVALID");
}

#[tokio::test]
async fn manifest_put_by_wrong_digest_is_digest_invalid_and_tag_param_tags() {
    let s = super::start().await;
    let (m, d) = s.push_image("t", "v1", "2").await;
    let wrong = Digest::sha256_of(b"x");
    let r = s.put_manifest("t", &wrong.to_string(), &m).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = s
        .put_manifest("t", &format!("{d}?tag=extra&tag=more"), &m)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let tags: Value = s
        .client
        .get(s.url("/v2/t/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["extra", "more", "v1"]));
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_exclusive_last_and_link() {
    let s = super::start().await;
    for t in ["a", "b", "c"] {
        s.push_image("p/q", t, t).await;
    }
    s.push_image("z", "v", "z").await;
    let r = s
        .client
        .get(s.url("/v2/p/q/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["link"],
        "</v2/p/q/tags/list?n=2&last=b>; rel=\"next\""
    );
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["a", "b"]));
    let r = s
        .client
        .get(s.url("/v2/p/q/tags/list?n=2&last=b"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_none());
    assert_eq!(r.json::<Value>().await.unwrap()["tags"], json!(["c"]));
    let r = s
        .client
        .get(s.url("/v2/_catalog?n=1"))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("link").is_some());
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["p/q"])
    );
    let r = s
        .client
        .get(s.url("/v2/_catalog?last=p/q"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["repositories"],
        json!(["z"])
    );
    let r = s
        .client
        .get(s.url("/v2/nothere/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");
}

#[tokio::test]
async fn referrers_list_subjects_with_artifact_type_filter_and_oci_subject_header() {
    let s = super::start().await;
    let (subject, sd) = s.push_image("ref", "v1", "s").await;
    let empty = s.push_blob("ref", b"{}").await;
    let art = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sd.to_string(),
                    "size": serde_json::to_vec(&subject).unwrap().len()}
    });
    let ad = Digest::sha256_of(&serde_json::to_vec(&art).unwrap());
    let r = s.put_manifest("ref", &ad.to_string(), &art).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], sd.to_string().as_str());
    let r = s
        .client
        .get(s.url(&format!("/v2/ref/referrers/{sd}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"][0]["digest"], ad.to_string());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.sbom"
    );
    let r = s
        .client
        .get(s.url(&format!("/v2/ref/referrers/{sd}?artifactType=other")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    assert_eq!(r.json::<Value>().await.unwrap()["manifests"], json!([]));
}

#[tokio::test]
async fn path_traversal_in_names_is_name_invalid() {
    let s = super::start().await;
    for path in [
        "/v2/a/../b/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/UPPER/tags/list",
        "/v2/_x/tags/list",
    ] {
        let r = s.client.get(s.url(path)).send().await.unwrap();
        assert!(
            r.status() == StatusCode::BAD_REQUEST || r.status() == StatusCode::NOT_FOUND,
            "{path}: {}",
            r.status()
        );
        if r.status() == StatusCode::BAD_REQUEST {
            assert_eq!(error_code(r).await, "NAME_INVALID");
        }
    }
    // One rule for names everywhere: 255 characters is the longest (the server used to take 1,024), and
    // the error says which limit was hit.
    let ok = "a".repeat(255);
    let r = s
        .client
        .get(s.url(&format!("/v2/{ok}/tags/list")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let long = "a".repeat(256);
    let r = s
        .client
        .get(s.url(&format!("/v2/{long}/tags/list")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0]["code"], "NAME_INVALID");
    let message = v["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("the limit is 255"), "{message}");
}

#[tokio::test]
async fn bogus_content_range_is_rejected_and_session_unchanged() {
    let s = super::start().await;
    let r = s
        .client
        .post(s.url("/v2/bc/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = s
        .client
        .patch(s.url(&loc))
        .header("content-range", "abc")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = s
        .client
        .patch(s.url(&loc))
        .header("content-range", "0-9")
        .body("short")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = s.client.get(s.url(&loc)).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_an_oci_layout_in_and_out() {
    tool("skopeo");
    tool("umoci");
    let s = super::start().await;
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let run = |args: Vec<String>| {
        let out = std::process::Command::new(&args[0])
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let l = layout.display().to_string();
    tokio::task::spawn_blocking(move || {
        run(vec![
            "umoci".into(),
            "init".into(),
            "--layout".into(),
            l.clone(),
        ]);
        run(vec![
            "umoci".into(),
            "new".into(),
            "--image".into(),
            format!("{l}:v1"),
        ]);
    })
    .await
    .unwrap();
    let host = s.base.trim_start_matches("http://").to_string();
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("docker://{host}/deep/path/of/repo:v1");
    let back = format!("oci:{}:v1", work.path().join("back").display());
    let (d2, b2) = (dst.clone(), back.clone());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("skopeo")
            .args(["copy", "--dest-tls-verify=false", &src, &d2])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = std::process::Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false", &d2, &b2])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pull: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .unwrap();
    let tags: Value = s
        .client
        .get(s.url("/v2/deep/path/of/repo/tags/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["v1"]));
}
