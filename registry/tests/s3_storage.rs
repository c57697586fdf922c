//! The S3 backend against a real S3-compatible server (moto, `python3 -m moto.server`, installed by
//! `.ci/run`) on 127.0.0.1: uploads that span multipart parts, a chunked upload started on one replica and
//! finished on another, concurrent pushes and pulls through two replicas over one bucket, presigned
//! redirects, and skopeo through both replicas.

use std::process::Command;
use std::sync::Arc;

use formats::digest::{Algorithm, Digest};
use registry::server::{self, ServerConfig};
use registry::storage::{S3Config, S3Storage, Storage};
use reqwest::StatusCode;
use serde_json::json;
use testsupport::moto::Moto;

/// Makes a bucket and returns a backend config for it.
fn bucket(moto: &Moto, name: &str) -> S3Config {
    moto.create_bucket(name);
    S3Config {
        bucket: name.to_string(),
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        prefix: "reg".into(),
        redirect: false,
        // moto accepts any credentials.
        credentials: Some(("test".into(), "test".into())),
    }
}

struct Replica {
    base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn replica(config: &S3Config) -> Replica {
    let storage: Arc<dyn Storage> = Arc::new(S3Storage::new(config).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(
        listener,
        server::router(storage, ServerConfig::default()),
        async move {
            let _ = rx.await;
        },
    ));
    Replica {
        base: format!("http://{addr}"),
        shutdown: Some(tx),
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64 * 31 + seed as u64 * 7 + (i as u64 >> 11)) as u8)
        .collect()
}

async fn start_upload(http: &reqwest::Client, base: &str, repo: &str) -> String {
    let r = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    }
}

async fn patch(http: &reqwest::Client, url: &str, start: u64, bytes: &[u8]) -> reqwest::Response {
    http.patch(url)
        .header("content-type", "application/octet-stream")
        .header(
            "content-range",
            format!("{start}-{}", start + bytes.len() as u64 - 1),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

fn with_digest(url: &str, digest: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

async fn push_image(http: &reqwest::Client, base: &str, repo: &str, tag: &str, seed: u8) -> Digest {
    let layer = data(300_000 + seed as usize, seed);
    let layer_digest = Digest::sha256_of(&layer);
    let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "seed": seed});
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = Digest::sha256_of(&config);
    for (bytes, digest) in [(&layer, &layer_digest), (&config, &config_digest)] {
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED, "push blob");
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let r = http
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "push manifest");
    Digest::sha256_of(&manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunked_upload_started_on_one_replica_finishes_on_the_other() {
    let moto = Moto::start();
    let config = bucket(&moto, "handover");
    let (a, b) = (replica(&config).await, replica(&config).await);
    let http = reqwest::Client::new();
    // 21 MiB: two whole 8 MiB parts plus a tail, sent as three uneven chunks alternating replicas.
    let blob = data(21 * 1024 * 1024 + 123, 1);
    let digest = Digest::sha256_of(&blob);
    let url_a = start_upload(&http, &a.base, "team/app").await;
    let url_b = url_a.replacen(&a.base, &b.base, 1);
    let cuts = [0usize, 5 * 1024 * 1024 + 7, 17 * 1024 * 1024, blob.len()];
    let urls = [&url_a, &url_b, &url_a];
    for (i, url) in urls.iter().enumerate() {
        let r = patch(&http, url, cuts[i] as u64, &blob[cuts[i]..cuts[i + 1]]).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED, "chunk {i}");
        assert_eq!(
            r.headers()["range"].to_str().unwrap(),
            format!("0-{}", cuts[i + 1] - 1)
        );
    }
    // Status is visible on either replica; an out-of-order chunk is refused with the current range.
    let status = http.get(&url_a).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    let r = patch(&http, &url_b, 5, b"late").await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = http.put(with_digest(&url_b, &digest)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for base in [&a.base, &b.base] {
        let got = http
            .get(format!("{base}/v2/team/app/blobs/{digest}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        let bytes = got.bytes().await.unwrap();
        assert_eq!(Digest::sha256_of(&bytes), digest);
    }
    // A range read is served from the object store too.
    let r = http
        .get(format!("{}/v2/team/app/blobs/{digest}", b.base))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.bytes().await.unwrap()[..], &blob[10..20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_digest_stores_nothing_and_sha512_works() {
    let moto = Moto::start();
    let config = bucket(&moto, "digests");
    let a = replica(&config).await;
    let http = reqwest::Client::new();
    let blob = data(9 * 1024 * 1024, 2);
    let url = start_upload(&http, &a.base, "x").await;
    assert_eq!(
        patch(&http, &url, 0, &blob).await.status(),
        StatusCode::ACCEPTED
    );
    let wrong = Digest::sha256_of(b"something else");
    let r = http.put(with_digest(&url, &wrong)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let storage = S3Storage::new(&config).unwrap();
    assert!(storage.list_blobs().await.unwrap().is_empty());
    assert!(storage.list_uploads().await.unwrap().is_empty());

    let sha512 = Digest::of(Algorithm::Sha512, &blob);
    let url = start_upload(&http, &a.base, "x").await;
    assert_eq!(
        patch(&http, &url, 0, &blob).await.status(),
        StatusCode::ACCEPTED
    );
    let r = http.put(with_digest(&url, &sha512)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(storage.list_blobs().await.unwrap(), vec![sha512]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_push_and_pull_concurrently_over_one_bucket() {
    let moto = Moto::start();
    let config = bucket(&moto, "shared");
    let (a, b) = (replica(&config).await, replica(&config).await);
    let http = reqwest::Client::new();
    let mut pushes = Vec::new();
    for i in 0..8u8 {
        let (http, base) = (
            http.clone(),
            if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            },
        );
        pushes.push(tokio::spawn(async move {
            let repo = format!("apps/app{}", i % 3);
            let digest = push_image(&http, &base, &repo, &format!("v{i}"), i).await;
            (repo, format!("v{i}"), digest)
        }));
    }
    let mut pushed = Vec::new();
    for p in pushes {
        pushed.push(p.await.unwrap());
    }
    // Every image is readable, by tag, from the replica that did not push it.
    for (i, (repo, tag, digest)) in pushed.iter().enumerate() {
        let base = if i % 2 == 0 { &b.base } else { &a.base };
        let r = http
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["docker-content-digest"].to_str().unwrap(),
            digest.to_string()
        );
    }
    let catalog: serde_json::Value = http
        .get(format!("{}/v2/_catalog", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        catalog["repositories"],
        json!(["apps/app0", "apps/app1", "apps/app2"])
    );
    let tags: serde_json::Value = http
        .get(format!("{}/v2/apps/app0/tags/list", b.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["tags"], json!(["v0", "v3", "v6"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirect_mode_answers_blob_gets_with_a_presigned_url() {
    let moto = Moto::start();
    let mut config = bucket(&moto, "redirects");
    config.redirect = true;
    let a = replica(&config).await;
    let http = reqwest::Client::new();
    push_image(&http, &a.base, "r", "v1", 9).await;
    let layer = data(300_000 + 9, 9);
    let digest = Digest::sha256_of(&layer);
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(format!("{}/v2/r/blobs/{digest}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&moto.endpoint()), "{location}");
    let followed = http
        .get(format!("{}/v2/r/blobs/{digest}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(Digest::sha256_of(&followed.bytes().await.unwrap()), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skopeo_copies_in_through_one_replica_and_out_through_the_other() {
    let skopeo = which("skopeo");
    let moto = Moto::start();
    let config = bucket(&moto, "skopeo");
    let (a, b) = (replica(&config).await, replica(&config).await);
    let http = reqwest::Client::new();
    let digest = push_image(&http, &a.base, "seed/img", "v1", 3).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("oci");
    let host_a = a.base.trim_start_matches("http://").to_string();
    let host_b = b.base.trim_start_matches("http://").to_string();
    let run = |args: &[&str]| {
        let out = Command::new(&skopeo).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let dir_ref = format!("oci:{}:v1", dir.display());
    run(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host_a}/seed/img:v1"),
        &dir_ref,
    ]);
    run(&[
        "copy",
        "--dest-tls-verify=false",
        &dir_ref,
        &format!("docker://{host_a}/copied/img:v1"),
    ]);
    let inspect = run(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host_b}/copied/img:v1"),
    ]);
    let copied: serde_json::Value = serde_json::from_slice(&inspect).unwrap();
    // skopeo compresses the uncompressed layer on its way to a registry, so the copy has its own digest;
    // both replicas must agree on it, and on the original's.
    let via_a = run(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host_a}/copied/img:v1"),
    ]);
    let via_a: serde_json::Value = serde_json::from_slice(&via_a).unwrap();
    assert_eq!(copied["Digest"], via_a["Digest"]);
    assert_eq!(copied["Layers"].as_array().map(Vec::len), Some(1));
    let original = run(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host_b}/seed/img:v1"),
    ]);
    let original: serde_json::Value = serde_json::from_slice(&original).unwrap();
    assert_eq!(original["Digest"], digest.to_string());
}

fn which(tool: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(tool))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{tool}` is required (Debian package; .ci/run installs it)"))
}
