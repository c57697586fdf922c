//! Pull-through cache rows (P1 of benchmarks.md): an image pulled through `sealos registry serve fs DIR --proxy
//! UPSTREAM` against Debian's `docker-registry` in proxy mode (`proxy: remoteurl:`), both in front of the same
//! upstream, a `docker-registry` on 127.0.0.1 holding one image of four random layers (`--size` in all).
//!
//! - `proxy-cold-vs-docker-registry`: a pull into a cache started empty for the run (started and stopped
//!   untimed), so every blob comes from upstream through the cache to the client. The CPU time each cache
//!   spent until the pull ended is printed on stderr (ours stores a blob after its download, so mostly later).
//! - `proxy-warm-vs-docker-registry`: a pull from a cache that already holds the image (filled, and done
//!   storing it, before the runs). The CPU time each cache spent on each run is printed on stderr.
//!
//! - `proxy-cold-curl-vs-docker-registry` (P1c) and `proxy-warm-curl-vs-docker-registry` (P1w): the same cold
//!   and warm pulls with a client that does what a node's container runtime does on the wire, minus hashing:
//!   the manifest by tag, then one `curl --parallel` process fetching every blob at once to `/dev/null`. They
//!   measure the caches (and loopback), where the verifying rows also measure the client hashing the image on
//!   the same 2 cores (which dominates their warm time for both sides).
//!
//! The verifying rows' client is ours (`registry::client`): the manifest by tag, then every blob at once,
//! verified, into a sink; as a container runtime pulls layers in parallel.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::Context as _;
use bytes::Bytes;
use formats::digest::Digest;
use formats::manifest::RawManifest;
use registry::client::{BlobSource, ClientOptions, DEFAULT_MANIFEST_ACCEPT, RegistryClient};

use super::Context;
use super::registry::{
    Blob, Server, start_docker_registry, start_docker_registry_with, start_sealos,
};
use crate::harness::{Job, Pair, untimed};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "proxy-cold-vs-docker-registry",
    "proxy-warm-vs-docker-registry",
    "proxy-cold-curl-vs-docker-registry",
    "proxy-warm-curl-vs-docker-registry",
];

/// Measured pairs by default: each cold run moves the whole image twice.
pub const DEFAULT_PAIRS: usize = 3;

const PEER: &str = "docker-registry (proxy)";
const REPO: &str = "bench/proxied";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYERS: u64 = 4;

/// Which cache a job starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Sealos,
    DockerRegistry,
}

impl Cache {
    fn name(self) -> &'static str {
        match self {
            Cache::Sealos => "sealos",
            Cache::DockerRegistry => PEER,
        }
    }

    /// Starts an empty cache of `upstream` with its data under `work`; returns it and its data directory (a
    /// Distribution layout for both).
    fn start(self, work: &Path, upstream: &str) -> anyhow::Result<(Server, PathBuf)> {
        let root = tempfile::tempdir_in(work).context("cannot create a cache directory")?;
        let data = root.path().join("data");
        let server = match self {
            Cache::Sealos => {
                let spool = root.path().join("spool");
                start_sealos(
                    root,
                    &[
                        OsString::from("fs"),
                        data.clone().into(),
                        "--proxy".into(),
                        format!("http://{upstream}").into(),
                        "--proxy-spool-dir".into(),
                        spool.into(),
                    ],
                )
            }
            Cache::DockerRegistry => {
                let storage = format!("  filesystem:\n    rootdirectory: {}\n", data.display());
                let proxy = format!("proxy:\n  remoteurl: http://{upstream}\n");
                start_docker_registry_with(root, &storage, &proxy)
            }
        }?;
        Ok((server, data))
    }
}

/// Waits (up to a minute) until every blob of `layers` is stored in the Distribution layout at `data`: a
/// cache keeps storing after the pull that filled it returned.
fn wait_stored(data: &Path, layers: &[Rc<Blob>]) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for layer in layers {
        let hex = layer.digest.hex();
        let file = data
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data");
        while std::fs::metadata(&file).map_or(true, |m| m.len() != layer.size) {
            if std::time::Instant::now() > deadline {
                anyhow::bail!("the cache did not store {} within a minute", layer.digest);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(())
}

fn client() -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })?)
}

/// Pushes an image of `layers` and a small config to `host` as `REPO:v1`.
async fn push_image(
    client: &RegistryClient,
    host: &str,
    layers: &[Rc<Blob>],
) -> anyhow::Result<()> {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let config_digest = Digest::sha256_of(&config);
    client
        .push_blob(
            host,
            REPO,
            &config_digest,
            config.len() as u64,
            BlobSource::Bytes(config.clone()),
            None,
        )
        .await?;
    let mut descriptors = Vec::new();
    for layer in layers {
        client
            .push_blob(
                host,
                REPO,
                &layer.digest,
                layer.size,
                BlobSource::File(layer.file.clone()),
                None,
            )
            .await?;
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":{}}}"#,
            layer.digest, layer.size
        ));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descriptors.join(",")
    );
    client
        .put_manifest(host, REPO, "v1", Bytes::from(manifest), OCI_MANIFEST)
        .await?;
    Ok(())
}

/// How a pull fetches the blobs of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Our client, every blob at once, each verified against its digest.
    Verified,
    /// One `curl --parallel` process, every blob at once to `/dev/null`, nothing hashed.
    Curl,
}

/// Pulls `REPO:v1` from `host`: the manifest by tag, then every blob at once as `fetch` says.
async fn pull_image(client: &RegistryClient, host: &str, fetch: Fetch) -> anyhow::Result<()> {
    let m = client
        .get_manifest(host, REPO, "v1", DEFAULT_MANIFEST_ACCEPT)
        .await?;
    let raw = RawManifest::from_bytes(m.bytes.to_vec(), Some(&m.media_type))?;
    if fetch == Fetch::Curl {
        return curl_blobs(host, &raw).await;
    }
    let mut pulls = tokio::task::JoinSet::new();
    for d in raw.referenced_blobs() {
        let (client, host, digest, size) =
            (client.clone(), host.to_string(), d.digest.clone(), d.size);
        pulls.spawn(async move {
            client
                .fetch_blob_to_writer(&host, REPO, &digest, Some(size), &mut std::io::sink())
                .await
        });
    }
    while let Some(done) = pulls.join_next().await {
        done.context("a blob pull panicked")??;
    }
    Ok(())
}

/// Fetches every blob `raw` references from `host` with one `curl --parallel` to `/dev/null`, failing on any
/// HTTP error or short body.
async fn curl_blobs(host: &str, raw: &RawManifest) -> anyhow::Result<()> {
    let blobs = raw.referenced_blobs();
    let mut curl = tokio::process::Command::new("curl");
    curl.args([
        "--silent",
        "--no-progress-meter",
        "--show-error",
        "--fail",
        "--parallel",
    ])
    .arg("--parallel-max")
    .arg(blobs.len().max(1).to_string());
    for d in &blobs {
        curl.arg("--output")
            .arg("/dev/null")
            .arg(format!("http://{host}/v2/{REPO}/blobs/{}", d.digest));
    }
    let status = curl
        .status()
        .await
        .context("cannot run curl (install the `curl` package)")?;
    anyhow::ensure!(
        status.success(),
        "curl fetching the blobs of {REPO}:v1 from {host} failed: {status}"
    );
    Ok(())
}

/// What the jobs share: the upstream, the runtime of the client, and where caches keep their data.
struct Bench {
    rt: tokio::runtime::Runtime,
    upstream: Server,
    work: PathBuf,
    layers: Vec<Rc<Blob>>,
}

/// A job pulling through a cache that is new for each run.
fn cold_job(
    bench: &Rc<Bench>,
    cache: Cache,
    fetch: Fetch,
    row: &'static str,
) -> anyhow::Result<Job> {
    let (bench, client) = (bench.clone(), client()?);
    Ok(Box::new(move || {
        let (server, _data) = untimed(|| cache.start(&bench.work, &bench.upstream.host))?;
        let cpu = server.cpu_seconds();
        bench
            .rt
            .block_on(pull_image(&client, &server.host, fetch))?;
        eprintln!(
            "  {row} {}: the cache used {:.2} s of CPU until the pull ended",
            cache.name(),
            server.cpu_seconds() - cpu
        );
        untimed(|| drop(server));
        Ok(())
    }))
}

/// Starts a cache of `cache`'s kind and fills it with the image (done storing it) for the warm rows.
fn warm_cache(bench: &Bench, cache: Cache) -> anyhow::Result<Rc<Server>> {
    let (server, data) = cache.start(&bench.work, &bench.upstream.host)?;
    bench
        .rt
        .block_on(pull_image(&client()?, &server.host, Fetch::Verified))?;
    wait_stored(&data, &bench.layers)?;
    Ok(Rc::new(server))
}

/// A job pulling through `server`, a cache filled by [`warm_cache`] and kept across runs (and rows).
fn warm_job(
    bench: &Rc<Bench>,
    server: &Rc<Server>,
    cache: Cache,
    fetch: Fetch,
    row: &'static str,
) -> anyhow::Result<Job> {
    let (bench, server, client) = (bench.clone(), server.clone(), client()?);
    Ok(Box::new(move || {
        let cpu = server.cpu_seconds();
        bench
            .rt
            .block_on(pull_image(&client, &server.host, fetch))?;
        eprintln!(
            "  {row} {}: the cache used {:.2} s of CPU",
            cache.name(),
            server.cpu_seconds() - cpu
        );
        Ok(())
    }))
}

/// Starts the upstream with the image and returns P1's cold and warm rows, verifying and with curl.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let layer_size = (ctx.size / LAYERS).max(1);
    let layers = (0..LAYERS)
        .map(|i| Blob::generate(&ctx.work, layer_size, ctx.seed.wrapping_add(100 + i)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let root = tempfile::tempdir_in(&ctx.work).context("cannot create the upstream directory")?;
    let storage = format!(
        "  filesystem:\n    rootdirectory: {}\n",
        root.path().join("data").display()
    );
    let upstream = start_docker_registry(root, &storage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(push_image(&client()?, &upstream.host, &layers))?;
    let bench = Rc::new(Bench {
        rt,
        upstream,
        work: ctx.work.clone(),
        layers,
    });
    let pair = |id: &str, ours: Job, peer: Job| Pair {
        id: id.to_string(),
        ours,
        peer_name: PEER.to_string(),
        peer,
    };
    let cold = |row: &'static str, fetch| -> anyhow::Result<Pair> {
        Ok(pair(
            row,
            cold_job(&bench, Cache::Sealos, fetch, row)?,
            cold_job(&bench, Cache::DockerRegistry, fetch, row)?,
        ))
    };
    let (warm_ours, warm_peer) = (
        warm_cache(&bench, Cache::Sealos)?,
        warm_cache(&bench, Cache::DockerRegistry)?,
    );
    let warm = |row: &'static str, fetch| -> anyhow::Result<Pair> {
        Ok(pair(
            row,
            warm_job(&bench, &warm_ours, Cache::Sealos, fetch, row)?,
            warm_job(&bench, &warm_peer, Cache::DockerRegistry, fetch, row)?,
        ))
    };
    Ok(vec![
        cold(ROWS[0], Fetch::Verified)?,
        warm(ROWS[1], Fetch::Verified)?,
        cold(ROWS[2], Fetch::Curl)?,
        warm(ROWS[3], Fetch::Curl)?,
    ])
}
