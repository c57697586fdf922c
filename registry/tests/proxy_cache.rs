//! The pull-through cache over TCP with a real upstream (Debian's `docker-registry`) behind a counting TCP
//! proxy that logs every request line the cache sends: skopeo and our client pull through the cache cold and
//! warm (the upstream stopped), 20 concurrent pulls fetch each blob once, tags are re-checked with a `HEAD` after
//! their TTL, the size bound evicts least recently used images, and pushes into proxied repositories are refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use formats::digest::Digest;
use formats::layer::{Compression, LayerEntry};
use formats::manifest::RawManifest;
use formats::oci_layout::OciLayout;
use registry::client::{BlobSource, ClientOptions, DEFAULT_MANIFEST_ACCEPT, RegistryClient};
use registry::proxy::{ProxyOptions, ProxyStorage, Upstream, Upstreams};
use registry::server::{self, ServerConfig};
use registry::storage::{FsStorage, Storage};
use testsupport::DockerRegistry;
use testsupport::images::{TestImage, write_image};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Request lines (`GET /v2/...`) a counting proxy saw.
#[derive(Clone, Default)]
struct RequestLog(Arc<Mutex<Vec<String>>>);

impl RequestLog {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, method: &str, kind: &str) -> usize {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(&format!("{method} ")) && l.contains(kind))
            .count()
    }
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that logs request lines; returns its address.
async fn counting_proxy(upstream: String, log: RequestLog) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
                let mut pending: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(at) = pending.windows(2).position(|w| w == b"\r\n") {
                        let line = String::from_utf8_lossy(&pending[..at]).to_string();
                        pending.drain(..at + 2);
                        let request = ["GET ", "HEAD ", "PUT ", "POST ", "PATCH ", "DELETE "]
                            .iter()
                            .any(|m| line.starts_with(m));
                        if request && line.contains(" /v2/") {
                            let line = line.trim_end_matches(" HTTP/1.1").to_string();
                            log.0.lock().unwrap().push(line);
                        }
                    }
                    if pending.len() > 16 * 1024 {
                        pending.clear();
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
            });
        }
    });
    addr
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// An image whose layers hold `layers` (seed, size) of noise, uncompressed.
struct Image {
    manifest: RawManifest,
    layout: OciLayout,
    _dir: tempfile::TempDir,
}

impl Image {
    fn new(name: &str, layers: &[(u64, usize)]) -> Image {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::create(dir.path()).unwrap();
        let mut image = TestImage::hello(name);
        image.compression = Compression::None;
        image.layers = layers
            .iter()
            .map(|(seed, size)| vec![LayerEntry::file("data.bin", noise(*seed, *size))])
            .collect();
        let desc = write_image(&layout, &image);
        layout.set_tag("v1", desc.clone()).unwrap();
        let manifest = layout.read_manifest(&desc).unwrap();
        Image {
            manifest,
            layout,
            _dir: dir,
        }
    }

    fn digest(&self) -> Digest {
        self.manifest.digest.clone()
    }

    fn blobs(&self) -> Vec<Digest> {
        self.manifest
            .referenced_blobs()
            .into_iter()
            .map(|d| d.digest.clone())
            .collect()
    }

    fn layers(&self) -> Vec<Digest> {
        self.blobs().into_iter().skip(1).collect()
    }

    /// Pushes the image to `host`/`repo`:`tag` with our client.
    async fn push(&self, client: &RegistryClient, host: &str, repo: &str, tag: &str) {
        for d in self.manifest.referenced_blobs() {
            client
                .push_blob(
                    host,
                    repo,
                    &d.digest,
                    d.size,
                    BlobSource::File(self.layout.blob_path(&d.digest)),
                    None,
                )
                .await
                .unwrap();
        }
        client
            .put_manifest(
                host,
                repo,
                tag,
                Bytes::from(self.manifest.bytes.clone()),
                &self.manifest.media_type,
            )
            .await
            .unwrap();
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(ClientOptions {
        insecure_loopback: true,
        ..ClientOptions::default()
    })
    .unwrap()
}

/// A cache serving on 127.0.0.1 over a filesystem store.
struct Cache {
    host: String,
    proxy: Arc<ProxyStorage>,
    store: Arc<FsStorage>,
    _dir: tempfile::TempDir,
}

async fn start_cache(upstreams: Upstreams, tag_ttl: Duration, max_size: Option<u64>) -> Cache {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FsStorage::new(dir.path().join("data")));
    let proxy = Arc::new(ProxyStorage::new(
        store.clone(),
        client(),
        ProxyOptions {
            upstreams,
            tag_ttl,
            max_size,
            spool_dir: dir.path().join("spool"),
        },
    ));
    proxy.adopt().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let router = server::router(proxy.clone(), ServerConfig::default());
    tokio::spawn(server::serve(listener, router, std::future::pending()));
    Cache {
        host,
        proxy,
        store,
        _dir: dir,
    }
}

fn everything_from(host: &str) -> Upstreams {
    Upstreams::single(Upstream::parse_url(&format!("http://{host}")).unwrap())
}

/// Pulls `repo`:`reference` from `host` with our client into `dir`: the manifest's digest.
async fn pull(client: &RegistryClient, host: &str, repo: &str, reference: &str) -> Digest {
    let m = client
        .get_manifest(host, repo, reference, DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap_or_else(|e| panic!("pulling {repo}:{reference} from {host}: {e}"));
    let raw = RawManifest::from_bytes(m.bytes.to_vec(), Some(&m.media_type)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for d in raw.referenced_blobs() {
        client
            .fetch_blob(
                host,
                repo,
                &d.digest,
                Some(d.size),
                &dir.path().join(d.digest.hex()),
            )
            .await
            .unwrap_or_else(|e| panic!("pulling blob {} of {repo}: {e}", d.digest));
    }
    m.digest
}

/// `skopeo copy` of `image` (a `docker://` reference) into a fresh `dir:`; returns the manifest's digest as
/// skopeo wrote it.
async fn skopeo_pull(image: String) -> Result<Digest, String> {
    tokio::task::spawn_blocking(move || {
        let out = tempfile::tempdir().unwrap();
        let dest = format!("dir:{}", out.path().display());
        let result = testsupport::skopeo()
            .args(["copy", "--src-tls-verify=false", &image, &dest])
            .output()
            .unwrap();
        if !result.status.success() {
            return Err(String::from_utf8_lossy(&result.stderr).into_owned());
        }
        let manifest = std::fs::read(out.path().join("manifest.json")).unwrap();
        Ok(Digest::sha256_of(&manifest))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn skopeo_pulls_cold_then_warm_with_the_upstream_stopped() {
    let upstream = DockerRegistry::start_fresh();
    let log = RequestLog::default();
    let via = counting_proxy(upstream.host(), log.clone()).await;
    let image = Image::new("cold-warm", &[(1, 300_000), (2, 200_000)]);
    image
        .push(&client(), &upstream.host(), "team/app", "v1")
        .await;
    let cache = start_cache(everything_from(&via), Duration::from_secs(300), None).await;

    let cold = skopeo_pull(format!("docker://{}/team/app:v1", cache.host))
        .await
        .unwrap();
    assert_eq!(cold, image.digest());
    assert_eq!(log.count("GET", "/blobs/"), 3, "{:#?}", log.lines());
    // Clients get the last byte once it is verified; storing and linking finish just after.
    for d in image.blobs() {
        let mut kept = false;
        for _ in 0..100 {
            kept = cache.store.blob_size(&d).await.unwrap().is_some()
                && cache.store.has_layer("team/app", &d).await.unwrap();
            if kept {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(kept, "{d} not kept in the store");
    }

    drop(upstream);
    let before = log.lines().len();
    let by_tag = skopeo_pull(format!("docker://{}/team/app:v1", cache.host)).await;
    assert_eq!(by_tag.unwrap(), image.digest(), "a tag within its TTL");
    let by_digest = skopeo_pull(format!(
        "docker://{}/team/app@{}",
        cache.host,
        image.digest()
    ))
    .await;
    assert_eq!(by_digest.unwrap(), image.digest());
    assert_eq!(
        log.lines().len(),
        before,
        "warm pulls asked upstream: {:#?}",
        log.lines()
    );

    // What upstream never had cannot come from a stopped upstream: a clear failure, not a hang.
    let missing = skopeo_pull(format!("docker://{}/team/other:v1", cache.host)).await;
    assert!(missing.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_pulls_fetch_each_blob_once() {
    let upstream = DockerRegistry::start_fresh();
    let log = RequestLog::default();
    let via = counting_proxy(upstream.host(), log.clone()).await;
    let image = Image::new("twenty", &[(3, 4_000_000), (4, 1_000_000), (5, 10)]);
    image
        .push(&client(), &upstream.host(), "busy/app", "v1")
        .await;
    let cache = start_cache(everything_from(&via), Duration::from_secs(300), None).await;

    let mut pulls = Vec::new();
    for _ in 0..20 {
        let host = cache.host.clone();
        pulls.push(tokio::spawn(async move {
            // A client each, as 20 nodes would have.
            pull(&client(), &host, "busy/app", "v1").await
        }));
    }
    for p in pulls {
        assert_eq!(p.await.unwrap(), image.digest());
    }
    for d in image.blobs() {
        let gets = log
            .lines()
            .iter()
            .filter(|l| l.starts_with("GET ") && l.contains(&d.to_string()))
            .count();
        assert_eq!(gets, 1, "blob {d} fetched {gets} times: {:#?}", log.lines());
    }
    assert_eq!(log.count("GET", "/blobs/"), image.blobs().len());
    assert_eq!(
        log.count("GET", "/manifests/"),
        1,
        "the manifest once: {:#?}",
        log.lines()
    );
    // skopeo, one more pull, is served from the cache alone.
    let before = log.lines().len();
    let again = skopeo_pull(format!("docker://{}/busy/app:v1", cache.host)).await;
    assert_eq!(again.unwrap(), image.digest());
    assert_eq!(log.lines().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tags_are_rechecked_with_one_head_after_their_ttl() {
    let upstream = DockerRegistry::start_fresh();
    let log = RequestLog::default();
    let via = counting_proxy(upstream.host(), log.clone()).await;
    let first = Image::new("ttl-1", &[(6, 50_000)]);
    first
        .push(&client(), &upstream.host(), "ttl/app", "latest")
        .await;
    let ttl = Duration::from_secs(2);
    let cache = start_cache(everything_from(&via), ttl, None).await;
    let c = client();

    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        first.digest()
    );
    let after_cold = log.lines().len();
    // Within the TTL: nothing upstream.
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        first.digest()
    );
    assert_eq!(log.lines().len(), after_cold);
    // Past it: one HEAD, nothing else (the digest did not change).
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        first.digest()
    );
    let new: Vec<String> = log.lines()[after_cold..].to_vec();
    assert_eq!(new, vec!["HEAD /v2/ttl/app/manifests/latest".to_string()]);

    // The tag moves upstream: after the TTL the cache serves the new image.
    let second = Image::new("ttl-2", &[(7, 50_000)]);
    second
        .push(&client(), &upstream.host(), "ttl/app", "latest")
        .await;
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        second.digest()
    );

    // Upstream gone and the TTL over: the cached tag is served stale rather than failing, and then trusted for
    // another TTL (no second failed check).
    drop(upstream);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        second.digest()
    );
    // (The failed check retried upstream for seconds; the next pull does not.)
    let started = std::time::Instant::now();
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", "latest").await,
        second.digest()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // A digest never needs upstream.
    assert_eq!(
        pull(&c, &cache.host, "ttl/app", &first.digest().to_string()).await,
        first.digest()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_size_bound_evicts_least_recently_used_images_keeping_shared_blobs() {
    let upstream = DockerRegistry::start_fresh();
    let log = RequestLog::default();
    let via = counting_proxy(upstream.host(), log.clone()).await;
    // Three images sharing one base layer; each has 1 MB of its own.
    let base = (10, 500_000);
    let images: Vec<Image> = (0..3)
        .map(|i| Image::new(&format!("lru-{i}"), &[base, (20 + i, 1_000_000)]))
        .collect();
    let c = client();
    for (i, image) in images.iter().enumerate() {
        image
            .push(&c, &upstream.host(), &format!("lru/app{i}"), "v1")
            .await;
    }
    // Room for two images (base once, two own layers, configs, manifests), not three.
    let max = 2_900_000;
    let cache = start_cache(everything_from(&via), Duration::from_secs(300), Some(max)).await;

    pull(&c, &cache.host, "lru/app0", "v1").await;
    pull(&c, &cache.host, "lru/app1", "v1").await;
    // app0 used again: app1 is now the least recently used.
    pull(&c, &cache.host, "lru/app0", "v1").await;
    pull(&c, &cache.host, "lru/app2", "v1").await;
    // Eviction runs right after the last blob is stored; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        cache.proxy.cached_bytes() <= max,
        "{}",
        cache.proxy.cached_bytes()
    );
    let stored = |d: Digest| {
        let store = cache.store.clone();
        async move { store.blob_size(&d).await.unwrap().is_some() }
    };
    assert!(
        !stored(images[1].layers()[1].clone()).await,
        "app1's own layer stayed"
    );
    assert!(
        !cache
            .store
            .has_revision("lru/app1", &images[1].digest())
            .await
            .unwrap()
    );
    assert!(
        stored(images[0].layers()[1].clone()).await,
        "app0 was evicted"
    );
    assert!(
        stored(images[2].layers()[1].clone()).await,
        "app2 was evicted"
    );
    assert!(
        stored(images[0].layers()[0].clone()).await,
        "the shared base went"
    );

    // An evicted image is fetched again on demand.
    let gets = log.count("GET", "/blobs/");
    assert_eq!(
        pull(&c, &cache.host, "lru/app1", "v1").await,
        images[1].digest()
    );
    assert!(log.count("GET", "/blobs/") > gets);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cache.proxy.cached_bytes() <= max);

    // A restarted cache reads back what it holds and keeps the bound.
    let again = Arc::new(ProxyStorage::new(
        cache.store.clone(),
        c.clone(),
        ProxyOptions {
            upstreams: everything_from(&via),
            tag_ttl: Duration::from_secs(300),
            max_size: Some(max),
            spool_dir: cache._dir.path().join("spool"),
        },
    ));
    let held = again.adopt().await.unwrap();
    assert!(held > 1_000_000 && held <= max, "{held}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_to_a_proxied_repository_are_denied_and_local_ones_work() {
    let upstream = DockerRegistry::start_fresh();
    let image = Image::new("push", &[(30, 10_000)]);
    image
        .push(&client(), &upstream.host(), "library/app", "v1")
        .await;
    let config = format!(
        "[[upstream]]\nprefix = \"hub/\"\nregistry = \"{}\"\nrepository_prefix = \"library/\"\ninsecure = true\n",
        upstream.host()
    );
    let upstreams = Upstreams::parse(&config, "proxy.toml").unwrap();
    let cache = start_cache(upstreams, Duration::from_secs(300), None).await;
    let c = client();

    // `hub/app` is upstream's `library/app`.
    assert_eq!(pull(&c, &cache.host, "hub/app", "v1").await, image.digest());

    let other = Image::new("mine", &[(31, 10_000)]);
    let d = &other.manifest.referenced_blobs()[0].clone();
    let refused = c
        .push_blob(
            &cache.host,
            "hub/mine",
            &d.digest,
            d.size,
            BlobSource::File(other.layout.blob_path(&d.digest)),
            None,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("DENIED"), "{refused}");
    assert!(refused.contains("pull-through cache"), "{refused}");

    let skopeo_push = tokio::task::spawn_blocking({
        let layout = other.layout.root().to_path_buf();
        let host = cache.host.clone();
        move || {
            let src = format!("oci:{}:v1", layout.display());
            testsupport::skopeo()
                .args(["copy", "--dest-tls-verify=false", &src])
                .arg(format!("docker://{host}/hub/app:pushed"))
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!skopeo_push.status.success());
    let stderr = String::from_utf8_lossy(&skopeo_push.stderr);
    assert!(stderr.contains("pull-through cache"), "{stderr}");

    // Outside the proxied prefixes the registry is an ordinary one.
    other.push(&c, &cache.host, "local/mine", "v1").await;
    assert_eq!(
        pull(&c, &cache.host, "local/mine", "v1").await,
        other.digest()
    );
}

/// An upstream that serves `evil/app:v1` whose layer's bytes do not match its digest.
async fn lying_upstream() -> (String, Digest) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
    use axum::response::IntoResponse;
    let good = noise(40, 300_000);
    let mut bad = good.clone();
    bad[299_999] ^= 1;
    let layer = Digest::sha256_of(&good);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = Digest::sha256_of(config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{}}}]}}"#,
        config.len(),
        good.len()
    );
    let manifest_digest = Digest::sha256_of(manifest.as_bytes());
    let (layer_path, config_path) = (
        format!("/v2/evil/app/blobs/{layer}"),
        format!("/v2/evil/app/blobs/{config_digest}"),
    );
    let handler = move |method: Method, uri: Uri| {
        let (manifest, bad) = (manifest.clone(), bad.clone());
        let (layer_path, config_path) = (layer_path.clone(), config_path.clone());
        let manifest_digest = manifest_digest.clone();
        async move {
            let path = uri.path();
            let mut headers = HeaderMap::new();
            let body: Vec<u8> = if path == "/v2/" {
                b"{}".to_vec()
            } else if path.starts_with("/v2/evil/app/manifests/") {
                headers.insert(
                    header::CONTENT_TYPE,
                    "application/vnd.oci.image.manifest.v1+json"
                        .parse()
                        .unwrap(),
                );
                headers.insert(
                    "docker-content-digest",
                    manifest_digest.to_string().parse().unwrap(),
                );
                manifest.into_bytes()
            } else if path == layer_path {
                bad
            } else if path == config_path {
                config.to_vec()
            } else {
                return (StatusCode::NOT_FOUND, HeaderMap::new(), Vec::new()).into_response();
            };
            headers.insert(header::CONTENT_LENGTH, body.len().into());
            let body = if method == Method::HEAD {
                Vec::new()
            } else {
                body
            };
            (StatusCode::OK, headers, body).into_response()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, layer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blob_upstream_serves_wrong_is_never_completed_nor_stored() {
    let (upstream, layer) = lying_upstream().await;
    let cache = start_cache(everything_from(&upstream), Duration::from_secs(300), None).await;
    let c = client();
    // The manifest is fine and served.
    let m = c
        .get_manifest(&cache.host, "evil/app", "v1", DEFAULT_MANIFEST_ACCEPT)
        .await
        .unwrap();
    assert!(m.bytes.len() > 100);

    // A raw GET of the bad layer: the body is cut before its announced end, never handed out whole.
    for attempt in 0..2 {
        let url = format!("http://{}/v2/evil/app/blobs/{layer}", cache.host);
        let resp = reqwest::get(&url).await.unwrap();
        let announced = resp.content_length();
        match resp.bytes().await {
            Err(_) => {}
            Ok(body) => panic!(
                "attempt {attempt}: a body of {} bytes (announced {announced:?}) came out whole",
                body.len()
            ),
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(cache.store.blob_size(&layer).await.unwrap().is_none());
    assert!(!cache.store.has_layer("evil/app", &layer).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eviction_keeps_the_data_of_a_blob_a_local_repository_also_uses() {
    let upstream = DockerRegistry::start_fresh();
    let c = client();
    let a = Image::new("shared-a", &[(50, 1_000_000)]);
    let b = Image::new("shared-b", &[(51, 1_000_000)]);
    a.push(&c, &upstream.host(), "a", "v1").await;
    b.push(&c, &upstream.host(), "b", "v1").await;
    let config = format!(
        "[[upstream]]\nprefix = \"up/\"\nregistry = \"{}\"\ninsecure = true\n",
        upstream.host()
    );
    let upstreams = Upstreams::parse(&config, "proxy.toml").unwrap();
    let max = 1_500_000;
    let cache = start_cache(upstreams, Duration::from_secs(300), Some(max)).await;

    assert_eq!(pull(&c, &cache.host, "up/a", "v1").await, a.digest());
    // A local repository (outside `up/`) gets a's layer too, pushed by a user.
    let layer = a.manifest.referenced_blobs()[1].clone();
    c.push_blob(
        &cache.host,
        "local/keep",
        &layer.digest,
        layer.size,
        BlobSource::File(a.layout.blob_path(&layer.digest)),
        None,
    )
    .await
    .unwrap();
    // b does not fit beside a: a goes from the cache, but its layer's data stays for local/keep.
    assert_eq!(pull(&c, &cache.host, "up/b", "v1").await, b.digest());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!cache.store.has_revision("up/a", &a.digest()).await.unwrap());
    assert!(!cache.store.has_layer("up/a", &layer.digest).await.unwrap());
    assert!(
        cache
            .store
            .has_layer("local/keep", &layer.digest)
            .await
            .unwrap()
    );
    assert!(
        cache
            .store
            .blob_size(&layer.digest)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        cache.proxy.cached_bytes() <= max,
        "{}",
        cache.proxy.cached_bytes()
    );
    // a's config, which nothing local uses, is gone.
    let config_digest = a.blobs()[0].clone();
    assert!(
        cache
            .store
            .blob_size(&config_digest)
            .await
            .unwrap()
            .is_none()
    );
}
