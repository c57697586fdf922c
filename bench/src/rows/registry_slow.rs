//! R4 (registry under slow clients, docs/registry-limits.md): manifest GET latency while [`SLOW_UPLOADS`]
//! uploads trickle a byte a second, `sealos registry serve fs` against Debian's `docker-registry`, both on
//! 127.0.0.1.
//!
//! - `manifest-get-slow-uploads-vs-docker-registry`: before each run (untimed) [`SLOW_UPLOADS`] upload sessions
//!   are opened and each gets a PATCH announcing 1 MB that then sends one byte a second; the run is
//!   [`GETS`] sequential GETs of one manifest by tag on one kept-alive connection; afterwards (untimed) the
//!   trickling connections are closed and the sessions cancelled. The table's time is the run's; the p50 and
//!   p99 latency of every GET so far, per side, and their ratios are printed on stderr.
//!
//! Ours runs with `--max-concurrent-uploads 1000 --max-concurrent-uploads-per-client 1000`, so it receives all
//! the trickling uploads as docker-registry does (by default it would answer most of them 429, which is what
//! the bound is for, but not what this row measures: that waiting bodies starve nobody).

use std::cell::RefCell;
use std::ffi::OsString;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt;

use super::Context;
use super::registry::{Server, start_docker_registry, start_sealos};
use crate::harness::{Job, Pair, untimed};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["manifest-get-slow-uploads-vs-docker-registry"];

/// Uploads trickling while the GETs run.
const SLOW_UPLOADS: usize = 300;
/// Manifest GETs per run.
const GETS: usize = 200;
const PEER: &str = "docker-registry";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REPO: &str = "bench/slow";

/// Both servers, the client runtime and each side's GET latencies so far.
struct Bench {
    rt: tokio::runtime::Runtime,
    ours: Server,
    peer: Server,
    latencies: RefCell<[Vec<Duration>; 2]>,
    /// The trickling uploads of the run in progress: their tasks and session locations.
    trickling: RefCell<Vec<(tokio::task::JoinHandle<()>, String)>>,
}

/// One upload's PATCH announcing 1 MB, then a byte a second until the task is aborted.
async fn trickle(host: String, location: String) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&host).await else {
        return;
    };
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: 1000000\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        if s.write_all(b"x").await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Pushes a one-layer image tagged `REPO:v1` to `host`.
async fn push_image(http: &reqwest::Client, host: &str) -> anyhow::Result<()> {
    let layer = b"layer".to_vec();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let mut descriptors = Vec::new();
    for blob in [&config, &layer] {
        let digest = formats::digest::Digest::sha256_of(blob);
        // POST, then PUT with the digest (distribution 2.8 does not finish a monolithic POST).
        let location = start_session(http, host).await?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("http://{host}{location}{sep}digest={digest}"))
            .body(blob.clone())
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("pushing a blob to {host}: {}", r.status());
        }
        descriptors.push((digest, blob.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
    );
    let r = http
        .put(format!("http://{host}/v2/{REPO}/manifests/v1"))
        .header("content-type", OCI_MANIFEST)
        .body(manifest)
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("pushing the manifest to {host}: {}", r.status());
    }
    Ok(())
}

/// Opens an upload session in `REPO` on `host`; its path (distribution answers with an absolute URL).
async fn start_session(http: &reqwest::Client, host: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("http://{host}/v2/{REPO}/blobs/uploads/"))
        .send()
        .await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .with_context(|| format!("no upload location from {host}: {}", r.status()))?
        .to_string();
    Ok(match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
        None => location,
    })
}

impl Bench {
    fn host(&self, ours: bool) -> String {
        if ours {
            self.ours.host.clone()
        } else {
            self.peer.host.clone()
        }
    }

    /// Opens [`SLOW_UPLOADS`] sessions on one side and starts their trickling PATCHes.
    fn start_trickling(&self, ours: bool) -> anyhow::Result<()> {
        let host = self.host(ours);
        let started = self.rt.block_on(async {
            let http = reqwest::Client::new();
            let mut started = Vec::new();
            for _ in 0..SLOW_UPLOADS {
                let path = start_session(&http, &host).await?;
                let task = tokio::spawn(trickle(host.clone(), path.clone()));
                started.push((task, path));
            }
            // Let every PATCH reach the server.
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::Ok(started)
        })?;
        *self.trickling.borrow_mut() = started;
        Ok(())
    }

    /// Closes the trickling connections and cancels their sessions.
    fn stop_trickling(&self, ours: bool) -> anyhow::Result<()> {
        let host = self.host(ours);
        let trickling = std::mem::take(&mut *self.trickling.borrow_mut());
        self.rt.block_on(async {
            let http = reqwest::Client::new();
            for (task, path) in trickling {
                task.abort();
                let _ = task.await;
                // The session may be gone already (the server dropped the cut chunk's session or not).
                let _ = http.delete(format!("http://{host}{path}")).send().await;
            }
        });
        Ok(())
    }

    /// [`GETS`] manifest GETs on one kept-alive connection; their latencies.
    fn gets(&self, ours: bool) -> anyhow::Result<Vec<Duration>> {
        let host = self.host(ours);
        self.rt.block_on(async {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let url = format!("http://{host}/v2/{REPO}/manifests/v1");
            let mut out = Vec::with_capacity(GETS);
            for _ in 0..GETS {
                let t = Instant::now();
                let r = http.get(&url).header("accept", OCI_MANIFEST).send().await?;
                if r.status().as_u16() != 200 {
                    bail!("manifest GET on {host}: {}", r.status());
                }
                r.bytes().await?;
                out.push(t.elapsed());
            }
            Ok(out)
        })
    }
}

/// The `q` quantile (0..=1) of `v`, by nearest rank.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n => v[((n as f64 * q).ceil() as usize).clamp(1, n) - 1],
    }
}

fn job(bench: &Rc<Bench>, ours: bool) -> Job {
    let bench = bench.clone();
    Box::new(move || {
        untimed(|| bench.start_trickling(ours))?;
        let got = bench.gets(ours);
        untimed(|| bench.stop_trickling(ours))?;
        bench.latencies.borrow_mut()[usize::from(!ours)].extend(got?);
        if !ours {
            let l = bench.latencies.borrow();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let (o50, o99) = (quantile(&l[0], 0.5), quantile(&l[0], 0.99));
            let (p50, p99) = (quantile(&l[1], 0.5), quantile(&l[1], 0.99));
            eprintln!(
                "  R4 manifest GET latency with {SLOW_UPLOADS} uploads trickling, {} GETs a side so far: \
                 sealos p50 {:.2} ms p99 {:.2} ms, {PEER} p50 {:.2} ms p99 {:.2} ms, ours/peer p50 {:.2} p99 {:.2}",
                l[0].len(),
                ms(o50),
                ms(o99),
                ms(p50),
                ms(p99),
                ms(o50) / ms(p50),
                ms(o99) / ms(p99)
            );
        }
        Ok(())
    })
}

/// Starts both servers, pushes the manifest to each and returns the row.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let ours_root =
        tempfile::tempdir_in(&ctx.work).context("cannot create a registry directory")?;
    let data = ours_root.path().join("data");
    let ours = start_sealos(
        ours_root,
        &[
            OsString::from("fs"),
            data.into(),
            "--max-concurrent-uploads".into(),
            "1000".into(),
            "--max-concurrent-uploads-per-client".into(),
            "1000".into(),
        ],
    )?;
    let peer_root =
        tempfile::tempdir_in(&ctx.work).context("cannot create a registry directory")?;
    let storage = format!(
        "  filesystem:\n    rootdirectory: {}\n",
        peer_root.path().join("data").display()
    );
    let peer = start_docker_registry(peer_root, &storage)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let http = reqwest::Client::new();
        push_image(&http, &ours.host).await?;
        push_image(&http, &peer.host).await
    })?;
    let bench = Rc::new(Bench {
        rt,
        ours,
        peer,
        latencies: RefCell::default(),
        trickling: RefCell::default(),
    });
    Ok(vec![Pair {
        id: ROWS[0].to_string(),
        ours: job(&bench, true),
        peer_name: PEER.to_string(),
        peer: job(&bench, false),
    }])
}
