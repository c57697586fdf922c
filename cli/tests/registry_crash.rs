//! Crash safety of `sealos registry serve fs`, and `sealos registry gc` while it serves.
//!
//! Crash: 20 concurrent chunked pushes (our client), `kill -9` of the server while they run, restart on the same
//! directory; then `sealos registry fsck` finds nothing wrong, every push whose manifest PUT succeeded is intact,
//! and every interrupted one is absent (or intact, if only its answer was lost) with its upload session, when one
//! is left, resumable to a correct blob.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient, RetryPolicy};
use testsupport::SealosRegistry;

const PUSHES: usize = 20;
const CHUNK: u64 = 256 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Deterministic incompressible bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One image to push: a layer of a few MiB (in a file), a config and a manifest.
struct Image {
    repo: String,
    layer_file: PathBuf,
    layer: Digest,
    layer_size: u64,
    config: Bytes,
    manifest: Bytes,
}

fn make_image(dir: &Path, i: usize) -> Image {
    // Sizes from 1 to 20 MiB: the pushes finish one after another, so when the first few are through the
    // larger ones are still in the middle of their chunks, however fast the machine.
    let bytes = random_bytes((i + 1) * 1024 * 1024 + i * 17, i as u64 + 1);
    let layer = Digest::sha256_of(&bytes);
    let layer_file = dir.join(format!("layer{i}"));
    std::fs::write(&layer_file, &bytes).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}},"push":{i}}}"#
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        Digest::sha256_of(config.as_bytes()),
        config.len(),
        bytes.len()
    );
    Image {
        repo: format!("crash/p{i:02}"),
        layer_file,
        layer,
        layer_size: bytes.len() as u64,
        config: Bytes::from(config),
        manifest: Bytes::from(manifest),
    }
}

fn new_client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        tls_verify: false,
        chunked_upload_threshold: Some(CHUNK),
        upload_chunk_size: CHUNK,
        max_concurrent_per_host: PUSHES,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    })
    .unwrap()
}

async fn push(client: &RegistryClient, host: &str, img: &Image) -> Result<(), String> {
    let e = |e: registry::client::ClientError| e.to_string();
    client
        .push_blob(
            host,
            &img.repo,
            &img.layer,
            img.layer_size,
            BlobSource::File(img.layer_file.clone()),
            None,
        )
        .await
        .map_err(e)?;
    let config = Digest::sha256_of(&img.config);
    client
        .push_blob(
            host,
            &img.repo,
            &config,
            img.config.len() as u64,
            BlobSource::Bytes(img.config.clone()),
            None,
        )
        .await
        .map_err(e)?;
    client
        .put_manifest(host, &img.repo, "v1", img.manifest.clone(), OCI_MANIFEST)
        .await
        .map_err(e)?;
    Ok(())
}

/// Pulls `repo:v1` and checks the manifest bytes and every blob's digest.
async fn assert_intact(client: &RegistryClient, host: &str, img: &Image) {
    let m = client
        .get_manifest(host, &img.repo, "v1", &[OCI_MANIFEST])
        .await
        .unwrap_or_else(|e| panic!("{}: manifest of a completed push: {e}", img.repo));
    assert_eq!(m.bytes, img.manifest, "{}: manifest bytes", img.repo);
    for (digest, size) in [
        (img.layer.clone(), img.layer_size),
        (Digest::sha256_of(&img.config), img.config.len() as u64),
    ] {
        let mut out = Vec::new();
        client
            .fetch_blob_to_writer(host, &img.repo, &digest, Some(size), &mut out)
            .await
            .unwrap_or_else(|e| panic!("{}: blob {digest}: {e}", img.repo));
        assert_eq!(Digest::sha256_of(&out), digest, "{}", img.repo);
    }
}

/// Continues an upload session left by the crash: GET its status, PATCH the rest, PUT with the digest. The
/// session is for the layer or the config; which one is told by the bytes it holds, which must be a prefix of
/// one of them (anything else is corruption). Returns false when the session is unknown to the server.
async fn resume_session(
    http: &reqwest::Client,
    host: &str,
    img: &Image,
    session_dir: &Path,
) -> bool {
    let id = session_dir.file_name().unwrap().to_string_lossy();
    let url = format!("http://{host}/v2/{}/blobs/uploads/{id}", img.repo);
    let Ok(held) = std::fs::read(session_dir.join("data")) else {
        // A session whose data file was never created is unknown to the server: absent.
        let status = http.get(&url).send().await.unwrap().status();
        assert_eq!(
            status, 404,
            "{}: GET status of a session without data",
            img.repo
        );
        return false;
    };
    let status = http.get(&url).send().await.unwrap();
    assert_eq!(status.status(), 204, "{}: GET upload status", img.repo);
    let range = status.headers()["range"].to_str().unwrap().to_string();
    let expected_range = format!("0-{}", (held.len() as u64).saturating_sub(1));
    assert_eq!(range, expected_range, "{}: Range of session {id}", img.repo);
    let layer = std::fs::read(&img.layer_file).unwrap();
    let (bytes, digest) = if img.config.starts_with(&held) {
        (img.config.to_vec(), Digest::sha256_of(&img.config))
    } else {
        assert!(
            layer.starts_with(&held),
            "{}: session {id} holds {} bytes that are a prefix of neither the layer nor the config",
            img.repo,
            held.len()
        );
        (layer, img.layer.clone())
    };
    let offset = held.len();
    let mut location = url.clone();
    if offset < bytes.len() {
        let resp = http
            .patch(&url)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{}", bytes.len() - 1))
            .body(bytes[offset..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}: PATCH the rest", img.repo);
        let loc = resp.headers()["location"].to_str().unwrap().to_string();
        location = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{host}{loc}")
        };
    }
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!("{location}{sep}digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "{}: PUT to finish session {id} at {offset} of {} bytes: {}",
        img.repo,
        bytes.len(),
        resp.text().await.unwrap_or_default()
    );
    true
}

/// Runs `sealos registry <command> --format json DIR`, asserts it succeeded and returns its JSON report.
fn maintenance(command: &str, dir: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", command, "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{command} failed: {report:#}");
    report
}

fn fsck(dir: &Path) -> serde_json::Value {
    maintenance("fsck", dir)
}

/// How many upload sessions of `images` hold at least one byte in `dir`.
fn sessions_holding_data(dir: &Path, images: &[Image]) -> usize {
    images
        .iter()
        .flat_map(|img| {
            let uploads = dir
                .join("docker/registry/v2/repositories")
                .join(&img.repo)
                .join("_uploads");
            std::fs::read_dir(uploads).into_iter().flatten().flatten()
        })
        .filter(|entry| std::fs::metadata(entry.path().join("data")).is_ok_and(|m| m.len() > 0))
        .count()
}

#[test]
fn kill_9_during_20_concurrent_pushes_loses_nothing_that_completed_and_leaves_the_rest_resumable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("registry");
    let images: Arc<Vec<Image>> =
        Arc::new((0..PUSHES).map(|i| make_image(tmp.path(), i)).collect());
    let bin = Path::new(env!("CARGO_BIN_EXE_sealos"));
    let mut server = SealosRegistry::start(bin, &dir, &[]);
    let host = server.host().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let completed = Arc::new(AtomicUsize::new(0));
    let client = new_client();
    let tasks: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (client, host, images, completed) = (
                client.clone(),
                host.clone(),
                images.clone(),
                completed.clone(),
            );
            rt.spawn(async move {
                let result = push(&client, &host, &images[i]).await;
                if result.is_ok() {
                    completed.fetch_add(1, Ordering::SeqCst);
                }
                result
            })
        })
        .collect();
    // Kill once a few pushes are through while others are in the middle of their chunks (sessions holding
    // data on disk), so the kill always interrupts something resumable.
    let deadline = Instant::now() + Duration::from_secs(120);
    while (completed.load(Ordering::SeqCst) < 4 || sessions_holding_data(&dir, &images) < 2)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    server.kill9();
    let results: Vec<Result<(), String>> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let done: Vec<usize> = (0..PUSHES).filter(|i| results[*i].is_ok()).collect();
    let interrupted: Vec<usize> = (0..PUSHES).filter(|i| results[*i].is_err()).collect();
    assert!(!done.is_empty(), "no push completed before the kill");
    assert!(
        !interrupted.is_empty(),
        "every push completed before the kill; the crash tested nothing"
    );

    let server = SealosRegistry::start(bin, &dir, &[]);
    let host = server.host().to_string();
    let report = fsck(&dir);
    assert_eq!(report["problems"], serde_json::json!([]));
    let http = reqwest::Client::new();
    let client = new_client();
    let mut resumed = 0;
    rt.block_on(async {
        for &i in &done {
            assert_intact(&client, &host, &images[i]).await;
        }
        for &i in &interrupted {
            let img = &images[i];
            // The manifest may have been stored with only its answer lost: then it must be whole.
            if client
                .get_manifest(&host, &img.repo, "v1", &[OCI_MANIFEST])
                .await
                .is_ok()
            {
                assert_intact(&client, &host, img).await;
            }
            let uploads = dir
                .join("docker/registry/v2/repositories")
                .join(&img.repo)
                .join("_uploads");
            for entry in std::fs::read_dir(&uploads).into_iter().flatten().flatten() {
                if resume_session(&http, &host, img, &entry.path()).await {
                    resumed += 1;
                }
            }
            // Whatever happened, the push can now be finished and the image is whole.
            push(&client, &host, img)
                .await
                .unwrap_or_else(|e| panic!("{}: pushing again after the crash: {e}", img.repo));
            assert_intact(&client, &host, img).await;
        }
    });
    eprintln!(
        "{} pushes completed, {} interrupted, {resumed} upload sessions resumed",
        done.len(),
        interrupted.len()
    );
    assert!(
        resumed > 0,
        "no interrupted upload session was left to resume"
    );
    fsck(&dir);
    drop(server);
}

fn gc(dir: &Path) -> serde_json::Value {
    maintenance("gc", dir)
}

/// What docs/registry-maintenance.md claims: with the default grace period, gc run again and again while 20
/// pushes of new content go on removes only old garbage, and every push ends intact.
#[test]
fn gc_while_serving_removes_old_garbage_and_keeps_every_push_made_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("registry");
    let images: Arc<Vec<Image>> =
        Arc::new((0..PUSHES).map(|i| make_image(tmp.path(), i)).collect());
    let server = SealosRegistry::start(Path::new(env!("CARGO_BIN_EXE_sealos")), &dir, &[]);
    let host = server.host().to_string();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Old garbage: a blob pushed two hours ago that no manifest uses.
    let orphan = Bytes::from_static(b"an old orphan blob");
    let orphan_digest = Digest::sha256_of(&orphan);
    rt.block_on(new_client().push_blob(
        &host,
        "old/garbage",
        &orphan_digest,
        orphan.len() as u64,
        BlobSource::Bytes(orphan.clone()),
        None,
    ))
    .unwrap();
    let orphan_data = dir
        .join("docker/registry/v2/blobs/sha256")
        .join(&orphan_digest.hex()[..2])
        .join(orphan_digest.hex())
        .join("data");
    std::fs::File::open(&orphan_data)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();

    let client = new_client();
    let tasks: Vec<_> = (0..PUSHES)
        .map(|i| {
            let (client, host, images) = (client.clone(), host.clone(), images.clone());
            rt.spawn(async move { push(&client, &host, &images[i]).await })
        })
        .collect();
    let mut runs = 0;
    let mut removed = Vec::new();
    while runs < 3 || !tasks.iter().all(|t| t.is_finished()) {
        let report = gc(&dir);
        for b in report["blobs_removed"].as_array().unwrap() {
            removed.push(b["digest"].as_str().unwrap().to_string());
        }
        runs += 1;
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for img in images.iter() {
            assert_intact(&client, &host, img).await;
        }
    });
    assert_eq!(removed, [orphan_digest.to_string()], "after {runs} gc runs");
    assert!(!orphan_data.exists());
    assert_eq!(fsck(&dir)["problems"], serde_json::json!([]));
    drop(server);
}
