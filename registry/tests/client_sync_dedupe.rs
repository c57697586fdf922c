//! Mirroring into a registry never writes one blob (upload or mount) or one manifest into one repository
//! twice at the same time, and puts a manifest only once everything it references is there: what
//! docker-registry needs (a mount rewrites the repository's link file, and a manifest `PUT` that reads it
//! mid-rewrite fails with `DIGEST_INVALID`). The destination is a small fake registry that counts writes
//! per (repository, digest), notices overlapping ones, and refuses manifests whose content it lacks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use formats::digest::Digest;
use formats::manifest::{Descriptor, RawManifest};
use formats::oci_layout::OciLayout;
use registry::client::{ClientOptions, RegistryClient};
use registry::mirror::{ImageJob, Location, Mirror, MirrorOptions, Outcome, PlatformFilter};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What the fake registry holds and saw.
#[derive(Default)]
struct State {
    /// Blobs by repository.
    blobs: HashSet<(String, String)>,
    /// Manifests by (repository, tag or digest): bytes and media type.
    manifests: HashMap<(String, String), (Vec<u8>, String)>,
    /// Writes (uploads, mounts, manifest PUTs by digest) per (repository, digest).
    writes: HashMap<(String, String), usize>,
    /// Writes running now per (repository, digest).
    running: HashMap<(String, String), usize>,
    /// Writes of one key that overlapped.
    overlaps: Vec<(String, String)>,
    /// Manifests refused because content they reference was missing.
    refused: Vec<String>,
    uploads: usize,
}

type Shared = Arc<Mutex<State>>;

/// Records a write of `key` for its duration (50 ms, to give a second writer time to overlap).
async fn write(state: &Shared, key: (String, String)) {
    {
        let mut s = state.lock().unwrap();
        *s.writes.entry(key.clone()).or_default() += 1;
        let running = s.running.entry(key.clone()).or_default();
        *running += 1;
        if *running > 1 {
            s.overlaps.push(key.clone());
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut s = state.lock().unwrap();
    *s.running.get_mut(&key).unwrap() -= 1;
}

fn query(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%3A", ":"))
    })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        r#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#,
    )
        .into_response()
}

async fn handle(
    state: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if path == "/v2/" {
        return (StatusCode::OK, "{}").into_response();
    }
    let rest = path.strip_prefix("/v2/").unwrap_or("");
    if let Some((repo, upload)) = rest.split_once("/blobs/uploads/") {
        let repo = repo.to_string();
        if method == Method::POST {
            if let Some(digest) = query(&uri, "mount") {
                let known = state
                    .lock()
                    .unwrap()
                    .blobs
                    .iter()
                    .any(|(_, d)| *d == digest);
                if known {
                    write(&state, (repo.clone(), digest.clone())).await;
                    state
                        .lock()
                        .unwrap()
                        .blobs
                        .insert((repo.clone(), digest.clone()));
                    return (
                        StatusCode::CREATED,
                        [
                            ("location", format!("/v2/{repo}/blobs/{digest}")),
                            ("docker-content-digest", digest),
                        ],
                    )
                        .into_response();
                }
            }
            let id = {
                let mut s = state.lock().unwrap();
                s.uploads += 1;
                s.uploads
            };
            return (
                StatusCode::ACCEPTED,
                [("location", format!("/v2/{repo}/blobs/uploads/{id}"))],
            )
                .into_response();
        }
        if method == Method::PUT && !upload.is_empty() {
            let digest = query(&uri, "digest").unwrap_or_default();
            if Digest::sha256_of(&body).to_string() != digest {
                return (
                    StatusCode::BAD_REQUEST,
                    r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#,
                )
                    .into_response();
            }
            write(&state, (repo.clone(), digest.clone())).await;
            state
                .lock()
                .unwrap()
                .blobs
                .insert((repo.clone(), digest.clone()));
            return (
                StatusCode::CREATED,
                [
                    ("location", format!("/v2/{repo}/blobs/{digest}")),
                    ("docker-content-digest", digest),
                ],
            )
                .into_response();
        }
    }
    if let Some((repo, digest)) = rest.rsplit_once("/blobs/") {
        let has = state
            .lock()
            .unwrap()
            .blobs
            .contains(&(repo.to_string(), digest.to_string()));
        return if has {
            StatusCode::OK.into_response()
        } else {
            not_found()
        };
    }
    if let Some((repo, reference)) = rest.rsplit_once("/manifests/") {
        let key = (repo.to_string(), reference.to_string());
        if method == Method::PUT {
            let media_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(OCI_MANIFEST)
                .to_string();
            let raw = RawManifest::from_bytes(body.to_vec(), Some(&media_type)).unwrap();
            let digest = raw.digest.to_string();
            // Like docker-registry: every blob and child manifest must be in the repository already.
            let missing = {
                let s = state.lock().unwrap();
                let has = |d: &Digest| match &raw.parsed {
                    formats::manifest::ParsedManifest::Index(_) => {
                        s.manifests.contains_key(&(repo.to_string(), d.to_string()))
                    }
                    formats::manifest::ParsedManifest::Image(_) => {
                        s.blobs.contains(&(repo.to_string(), d.to_string()))
                    }
                };
                raw.referenced_blobs().iter().any(|d| !has(&d.digest))
            };
            if missing {
                state
                    .lock()
                    .unwrap()
                    .refused
                    .push(format!("{repo}@{digest}"));
                return (
                    StatusCode::BAD_REQUEST,
                    r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                )
                    .into_response();
            }
            if reference == digest {
                write(&state, key.clone()).await;
            }
            let mut s = state.lock().unwrap();
            s.manifests.insert(key, (body.to_vec(), media_type.clone()));
            s.manifests.insert(
                (repo.to_string(), digest.clone()),
                (body.to_vec(), media_type),
            );
            return (StatusCode::CREATED, [("docker-content-digest", digest)]).into_response();
        }
        let found = state.lock().unwrap().manifests.get(&key).cloned();
        return match found {
            Some((bytes, media_type)) => {
                let digest = Digest::sha256_of(&bytes).to_string();
                let body = if method == Method::HEAD {
                    Vec::new()
                } else {
                    bytes
                };
                (
                    StatusCode::OK,
                    [
                        ("content-type", media_type),
                        ("docker-content-digest", digest),
                    ],
                    body,
                )
                    .into_response()
            }
            None => not_found(),
        };
    }
    not_found()
}

async fn start_fake() -> (String, Shared) {
    let state: Shared = Arc::default();
    let s = state.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            handle(s.clone(), method, uri, headers, body)
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (host, state)
}

/// Writes a one-layer-plus-`shared` image manifest for `arch` into `layout`; returns it.
fn image(layout: &OciLayout, arch: &str, shared: &[u8]) -> RawManifest {
    let own = format!("{arch} layer ").repeat(100).into_bytes();
    let config = format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes();
    let mut descs = Vec::new();
    for blob in [&config, &own, &shared.to_vec()] {
        let (d, n) = layout.write_blob_bytes(blob).unwrap();
        descs.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#
        ));
    }
    let config_desc = descs[0].replace(
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.config.v1+json",
    );
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{config_desc},"layers":[{},{}]}}"#,
        descs[1], descs[2]
    )
    .into_bytes();
    let raw = RawManifest::from_bytes(bytes, Some(OCI_MANIFEST)).unwrap();
    layout.write_manifest(&raw).unwrap();
    raw
}

/// An index of amd64 and arm64 images that share a layer.
fn index(layout: &OciLayout, shared: &[u8]) -> RawManifest {
    let entries: Vec<String> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let m = image(layout, arch, shared);
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                m.digest,
                m.bytes.len()
            )
        })
        .collect();
    let bytes = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes();
    let raw = RawManifest::from_bytes(bytes, Some(OCI_INDEX)).unwrap();
    layout.write_manifest(&raw).unwrap();
    raw
}

fn tag(layout: &OciLayout, name: &str, raw: &RawManifest) {
    layout
        .set_tag(
            name,
            Descriptor::new(&raw.media_type, raw.digest.clone(), raw.bytes.len() as u64),
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_layers_are_written_once_per_repository_and_manifests_after_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::create(dir.path()).unwrap();
    let shared = b"shared layer ".repeat(1000);
    // One image and two indexes, in three repositories plus a second tag of one: every platform of every
    // index shares a layer with the image, so after the first copy every other wants to mount it.
    let single = image(&layout, "s390x", &shared);
    tag(&layout, "single", &single);
    let multi = index(&layout, &shared);
    tag(&layout, "multi", &multi);
    let source = Arc::new(Location::Oci(Arc::new(
        OciLayout::open(dir.path()).unwrap(),
    )));
    let (host, state) = start_fake().await;
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })
    .unwrap();
    let job = |src: &str, repo: &str, tag: &str| ImageJob {
        source: source.clone(),
        source_repository: String::new(),
        source_reference: src.to_string(),
        dest_repository: repo.to_string(),
        dest_tag: Some(tag.to_string()),
    };
    let jobs = vec![
        job("single", "one", "v1"),
        job("multi", "two", "v1"),
        job("multi", "two", "v2"),
        job("multi", "three", "v1"),
    ];
    let mirror = Mirror::new(
        Location::registry(&client, &host),
        MirrorOptions {
            platforms: PlatformFilter::All,
            max_images: 8,
            referrers: false,
            ..MirrorOptions::default()
        },
    );
    let reports = mirror.run(jobs).await;
    for r in &reports {
        assert!(
            matches!(r.outcome, Outcome::Copied { .. } | Outcome::Skipped { .. }),
            "{r:?}"
        );
    }
    let s = state.lock().unwrap();
    assert!(
        s.refused.is_empty(),
        "manifests put before their content: {:?}",
        s.refused
    );
    assert!(
        s.overlaps.is_empty(),
        "concurrent writes of one key: {:?}",
        s.overlaps
    );
    let shared_digest = Digest::sha256_of(&shared).to_string();
    for repo in ["one", "two", "three"] {
        let key = (repo.to_string(), shared_digest.clone());
        assert_eq!(
            s.writes.get(&key),
            Some(&1),
            "writes of the shared layer into {repo}"
        );
    }
    let twice: Vec<_> = s.writes.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written more than once: {twice:?}");
}
