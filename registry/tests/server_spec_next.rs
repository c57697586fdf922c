//! Features of the distribution-spec's development version (after OCI 1.1) that `registry serve` implements, over
//! TCP on 127.0.0.1 with a real HTTP client and skopeo: tags set in one manifest push by digest
//! (`PUT /v2/<name>/manifests/<digest>?tag=A&tag=B`, each answered with an `OCI-Tag` header) and the
//! `digest-algorithm` hint of an upload start. docs/registry-conformance.md lists what is and is not implemented.

use std::sync::Arc;

use formats::digest::{Algorithm, Digest};
use registry::server::{self, ServerConfig};
use registry::storage::FsStorage;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A registry on a temporary filesystem store, stopped on drop.
struct Registry {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server::router(
        Arc::new(FsStorage::new(dir.path())),
        ServerConfig::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    Registry {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: stop,
    }
}

impl Registry {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The `host:port` skopeo names the registry by.
    fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        let r = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "pushing blob {d}");
        d
    }

    /// Pushes a config and a layer made from `seed` and returns an image manifest using them (not pushed).
    async fn image(&self, repo: &str, seed: &str) -> Vec<u8> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":"{seed}"}}"#
        );
        let layer = format!("layer of {seed}");
        let cd = self.push_blob(repo, config.as_bytes()).await;
        let ld = self.push_blob(repo, layer.as_bytes()).await;
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld.to_string(), "size": layer.len()}]
        }))
        .unwrap()
    }

    /// `PUT /v2/<repo>/manifests/<reference>?<query>` with `manifest`.
    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        query: &str,
        manifest: &[u8],
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}?{query}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// The digest `reference` resolves to in `repo` (`HEAD`), `None` on 404.
    async fn resolve(&self, repo: &str, reference: &str) -> Option<String> {
        let r = self
            .http
            .head(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => Some(
                r.headers()["docker-content-digest"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            ),
            StatusCode::NOT_FOUND => None,
            other => panic!("HEAD {repo}:{reference} answered {other}"),
        }
    }

    async fn tags(&self, repo: &str) -> Vec<String> {
        let r = self
            .http
            .get(self.url(&format!("/v2/{repo}/tags/list")))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        let v: Value = r.json().await.unwrap();
        v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// The values of every `OCI-Tag` header, in order.
fn oci_tags(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The first error of an error response: `(code, message)`.
async fn error_of(r: reqwest::Response) -> (String, String) {
    let v: Value = r.json().await.expect("a JSON error body");
    let e = &v["errors"][0];
    (
        e["code"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

fn query(tags: &[&str]) -> String {
    tags.iter()
        .map(|t| format!("tag={t}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn a_push_by_digest_sets_every_tag_and_answers_one_oci_tag_header_per_tag() {
    let s = start().await;
    let manifest = s.image("team/app", "one").await;
    let digest = Digest::sha256_of(&manifest);
    let r = s
        .put_manifest(
            "team/app",
            &digest.to_string(),
            &query(&["1.2.3", "1.2", "1", "latest"]),
            &manifest,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r), ["1.2.3", "1.2", "1", "latest"]);
    assert_eq!(r.headers()["docker-content-digest"], digest.to_string());
    assert_eq!(
        r.headers()["location"],
        format!("/v2/team/app/manifests/{digest}")
    );
    for tag in ["1.2.3", "1.2", "1", "latest"] {
        assert_eq!(
            s.resolve("team/app", tag).await.as_deref(),
            Some(digest.to_string().as_str()),
            "tag {tag}"
        );
    }
    assert_eq!(s.tags("team/app").await, ["1", "1.2", "1.2.3", "latest"]);

    // A real client sees the tags too.
    let image = format!("docker://{}/team/app:1.2", s.host());
    // Off the runtime's thread: the registry answers skopeo from it.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--command-timeout=60s",
            ])
            .arg(image)
            .output()
    })
    .await
    .unwrap()
    .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, manifest, "skopeo reads the pushed bytes by tag");
}

#[tokio::test]
async fn more_than_ten_tags_go_in_one_push() {
    let s = start().await;
    let manifest = s.image("many", "many").await;
    let digest = Digest::sha256_of(&manifest);
    let tags: Vec<String> = (0..40).map(|i| format!("v{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let r = s
        .put_manifest("many", &digest.to_string(), &query(&refs), &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r), tags);
    assert_eq!(s.tags("many").await.len(), 40);
}

#[tokio::test]
async fn a_tag_given_twice_is_set_and_answered_once() {
    let s = start().await;
    let manifest = s.image("twice", "twice").await;
    let digest = Digest::sha256_of(&manifest);
    let r = s
        .put_manifest(
            "twice",
            &digest.to_string(),
            &query(&["a", "b", "a"]),
            &manifest,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r), ["a", "b"]);
}

#[tokio::test]
async fn the_tags_move_to_the_pushed_manifest() {
    let s = start().await;
    let old = s.image("moving", "old").await;
    let new = s.image("moving", "new").await;
    let (old_d, new_d) = (Digest::sha256_of(&old), Digest::sha256_of(&new));
    let r = s
        .put_manifest(
            "moving",
            &old_d.to_string(),
            &query(&["stable", "v1"]),
            &old,
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = s
        .put_manifest("moving", &new_d.to_string(), &query(&["stable"]), &new)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r), ["stable"]);
    assert_eq!(s.resolve("moving", "stable").await, Some(new_d.to_string()));
    assert_eq!(s.resolve("moving", "v1").await, Some(old_d.to_string()));
}

#[tokio::test]
async fn a_push_without_tag_parameters_has_no_oci_tag_header() {
    let s = start().await;
    let manifest = s.image("plain", "plain").await;
    let digest = Digest::sha256_of(&manifest);
    let r = s
        .put_manifest("plain", &digest.to_string(), "", &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(oci_tags(&r).is_empty());
    assert!(s.tags("plain").await.is_empty());
}

#[tokio::test]
async fn one_invalid_tag_refuses_the_whole_push() {
    let s = start().await;
    let manifest = s.image("strict", "strict").await;
    let digest = Digest::sha256_of(&manifest);
    let long = "x".repeat(129);
    for bad in ["-dash", ".dot", "a%2Fb", "", long.as_str()] {
        let r = s
            .put_manifest(
                "strict",
                &digest.to_string(),
                &format!("tag=good&tag={bad}"),
                &manifest,
            )
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "tag `{bad}`");
        assert!(oci_tags(&r).is_empty());
        let (code, message) = error_of(r).await;
        assert_eq!(code, "MANIFEST_INVALID", "tag `{bad}`");
        assert!(message.contains("invalid tag"), "{message}");
    }
    // Nothing was stored: neither the manifest nor the valid tag.
    assert_eq!(s.resolve("strict", &digest.to_string()).await, None);
    assert_eq!(s.resolve("strict", "good").await, None);
}

#[tokio::test]
async fn more_tags_than_the_limit_is_414_and_stores_nothing() {
    let s = start().await;
    let manifest = s.image("limit", "limit").await;
    let digest = Digest::sha256_of(&manifest);
    let tags: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let r = s
        .put_manifest("limit", &digest.to_string(), &query(&refs), &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::URI_TOO_LONG);
    let (_, message) = error_of(r).await;
    assert!(message.contains("more than 50"), "{message}");
    assert_eq!(s.resolve("limit", &digest.to_string()).await, None);
    assert!(s.tags("limit").await.is_empty());

    // Exactly the limit is fine.
    let r = s
        .put_manifest("limit", &digest.to_string(), &query(&refs[..50]), &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r).len(), 50);
}

#[tokio::test]
async fn a_supported_digest_algorithm_hint_starts_an_upload_that_finishes_with_it() {
    let s = start().await;
    let blob = b"a blob digested with sha512".to_vec();
    let digest = Digest::of(Algorithm::Sha512, &blob);
    let r = s
        .http
        .post(s.url("/v2/hinted/blobs/uploads/?digest-algorithm=sha512"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let r = s
        .http
        .patch(s.url(&location))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = s
        .http
        .put(s.url(&format!("{location}{sep}digest={digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = s
        .http
        .get(s.url(&format!("/v2/hinted/blobs/{digest}")))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
}

#[tokio::test]
async fn an_unsupported_digest_algorithm_hint_is_refused_before_any_bytes() {
    let s = start().await;
    let r = s
        .http
        .post(s.url("/v2/hinted/blobs/uploads/?digest-algorithm=blake3"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let (code, message) = error_of(r).await;
    assert_eq!(code, "DIGEST_INVALID");
    assert!(message.contains("blake3"), "{message}");
    assert!(message.contains("sha256, sha512"), "{message}");
}

#[tokio::test]
async fn a_push_by_tag_with_tag_parameters_sets_both_and_answers_the_parameters() {
    let s = start().await;
    let manifest = s.image("bytag", "bytag").await;
    let digest = Digest::sha256_of(&manifest).to_string();
    let r = s
        .put_manifest("bytag", "main", &query(&["extra"]), &manifest)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(oci_tags(&r), ["extra"]);
    assert_eq!(
        s.resolve("bytag", "main").await.as_deref(),
        Some(digest.as_str())
    );
    assert_eq!(
        s.resolve("bytag", "extra").await.as_deref(),
        Some(digest.as_str())
    );
}
