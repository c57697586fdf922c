//! Registry server rows (R1, R2, R3, X1 of benchmarks.md): `sealos registry serve fs` against Debian's
//! `docker-registry` (CNCF distribution 2.8), both on 127.0.0.1, driven by the same client (our
//! `registry::client`, or `wrk`).
//!
//! - `push-monolithic-vs-docker-registry` (R1): one `--size` random blob, POST + one streaming PUT, into a fresh
//!   repository each run (so it is uploaded every time).
//! - `push-chunked-8m-vs-docker-registry` (R1): the same in 8 MiB PATCH chunks.
//! - `pull-vs-docker-registry` (R2): GET of that blob, verified by the client, into a sink.
//! - `manifest-get-wrk-vs-docker-registry` (R3): `wrk -t2 -c20 -d10s` on GET of one manifest by tag. The table's
//!   times are wrk's fixed duration; the requests per second of every run and their ratio are printed on stderr.
//! - `stream-rss-vs-docker-registry` (X1): push then pull a `--size` blob of generated zeros (never on the
//!   client's disk); each server's peak RSS (VmHWM) is printed on stderr after every run.
//!
//! Our server is the `sealos` binary beside the bench binary (`cargo build --release -p sealos -p bench`) or
//! `$SEALOS_BIN`.

use std::cell::RefCell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use formats::digest::{Algorithm, Digest};
use registry::client::{BlobSource, ClientOptions, RegistryClient};

use super::Context;
use crate::data;
use crate::harness::{Job, Pair};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "push-monolithic-vs-docker-registry",
    "push-chunked-8m-vs-docker-registry",
    "pull-vs-docker-registry",
    "manifest-get-wrk-vs-docker-registry",
    "stream-rss-vs-docker-registry",
];

const PEER: &str = "docker-registry";
const CHUNK: u64 = 8 * 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry server process on 127.0.0.1 with its data directory, killed when dropped.
struct Server {
    child: Child,
    host: String,
    _stdout: Option<BufReader<ChildStdout>>,
    _root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Peak resident set size in KiB (VmHWM of `/proc/<pid>/status`).
    fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmHWM in {path}"))
    }
}

fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn sealos_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SEALOS_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let bin = exe.with_file_name("sealos");
    if bin.is_file() {
        return Ok(bin);
    }
    bail!(
        "no `sealos` binary beside {}: run `cargo build --release -p sealos -p bench` or set SEALOS_BIN",
        exe.display()
    )
}

fn start_ours(work: &Path) -> anyhow::Result<Server> {
    let root = tempfile::tempdir_in(work).context("cannot create a registry directory")?;
    let mut child = Command::new(sealos_binary()?)
        .args(["registry", "serve", "fs"])
        .arg(root.path())
        .args(["-p", "0", "--address", "127.0.0.1", "--disable-logging"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `sealos registry serve`")?;
    let mut stdout = child.stdout.take().map(BufReader::new);
    let mut line = String::new();
    if let Some(out) = stdout.as_mut() {
        out.read_line(&mut line)?;
    }
    let server = Server {
        child,
        host: line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_default()
            .to_string(),
        _stdout: stdout,
        _root: root,
    };
    let Some(port) = server.host.rsplit(':').next().and_then(|p| p.parse().ok()) else {
        bail!("`sealos registry serve` printed {line:?}, not `listening on ADDR:PORT`");
    };
    wait_listening(port, "sealos registry serve")?;
    Ok(server)
}

fn start_peer(work: &Path) -> anyhow::Result<Server> {
    let root = tempfile::tempdir_in(work).context("cannot create a registry directory")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            root.path().join("data").display()
        ),
    )?;
    let child = Command::new(PEER)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `docker-registry` (apt-get install docker-registry)")?;
    let server = Server {
        child,
        host: format!("127.0.0.1:{port}"),
        _stdout: None,
        _root: root,
    };
    wait_listening(port, PEER)?;
    Ok(server)
}

/// What every row of the group shares.
struct Setup {
    rt: tokio::runtime::Runtime,
    ours: Server,
    peer: Server,
    file: PathBuf,
    digest: Digest,
    size: u64,
    runs: RefCell<u32>,
}

fn client(chunked: bool) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(ClientOptions {
        tls_verify: false,
        chunked_upload_threshold: chunked.then_some(CHUNK - 1),
        upload_chunk_size: CHUNK,
        ..ClientOptions::default()
    })?)
}

/// A job pushing the blob to `host` (`ours` picks the server) into a fresh repository.
fn push_job(setup: &Rc<Setup>, ours: bool, chunked: bool) -> anyhow::Result<Job> {
    let (setup, client) = (setup.clone(), client(chunked)?);
    Ok(Box::new(move || {
        let n = {
            let mut runs = setup.runs.borrow_mut();
            *runs += 1;
            *runs
        };
        let host = if ours {
            &setup.ours.host
        } else {
            &setup.peer.host
        };
        setup.rt.block_on(client.push_blob(
            host,
            &format!("bench/push{n}"),
            &setup.digest,
            setup.size,
            BlobSource::File(setup.file.clone()),
            None,
        ))?;
        Ok(())
    }))
}

fn pull_job(setup: &Rc<Setup>, ours: bool) -> anyhow::Result<Job> {
    let (setup, client) = (setup.clone(), client(false)?);
    Ok(Box::new(move || {
        let host = if ours {
            &setup.ours.host
        } else {
            &setup.peer.host
        };
        let got = setup.rt.block_on(client.fetch_blob_to_writer(
            host,
            "bench/pull",
            &setup.digest,
            Some(setup.size),
            &mut std::io::sink(),
        ))?;
        if got != setup.size {
            bail!("pulled {got} bytes, expected {}", setup.size);
        }
        Ok(())
    }))
}

/// Pushes a tiny image (one layer, config) tagged `bench/manifest:v1`; returns the manifest bytes.
async fn push_small_image(client: &RegistryClient, host: &str) -> anyhow::Result<()> {
    let layer = Bytes::from_static(b"layer");
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    for blob in [&layer, &config] {
        client
            .push_blob(
                host,
                "bench/manifest",
                &Digest::sha256_of(blob),
                blob.len() as u64,
                BlobSource::Bytes(blob.clone()),
                None,
            )
            .await?;
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        Digest::sha256_of(&config),
        config.len(),
        Digest::sha256_of(&layer),
        layer.len()
    );
    client
        .put_manifest(
            host,
            "bench/manifest",
            "v1",
            Bytes::from(manifest),
            OCI_MANIFEST,
        )
        .await?;
    Ok(())
}

/// A job running wrk on one manifest; records requests per second in `log`.
fn wrk_job(host: String, log: Rc<RefCell<Vec<f64>>>) -> Job {
    Box::new(move || {
        let out = Command::new("wrk")
            .args(["-t2", "-c20", "-d10s", "-H"])
            .arg(format!("Accept: {OCI_MANIFEST}"))
            .arg(format!("http://{host}/v2/bench/manifest/manifests/v1"))
            .output()
            .context("cannot run `wrk` (apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || text.contains("Non-2xx") {
            bail!(
                "wrk failed or got errors: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let rps = text
            .lines()
            .find_map(|l| l.strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("no Requests/sec in wrk output: {text}"))?;
        log.borrow_mut().push(rps);
        Ok(())
    })
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The digest of `size` zero bytes.
fn zeros_digest(size: u64) -> Digest {
    let chunk = vec![0u8; 1024 * 1024];
    let mut hasher = Algorithm::Sha256.hasher();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64);
        hasher.update(&chunk[..n as usize]);
        left -= n;
    }
    hasher.finish()
}

/// A job streaming `size` generated zeros through a server (push into a fresh repository, then pull into a
/// sink) and printing the server's peak RSS.
fn stream_job(setup: &Rc<Setup>, ours: bool, digest: Digest, size: u64) -> anyhow::Result<Job> {
    let (setup, client) = (setup.clone(), client(false)?);
    Ok(Box::new(move || {
        use tokio::io::AsyncReadExt;
        let n = {
            let mut runs = setup.runs.borrow_mut();
            *runs += 1;
            *runs
        };
        let server = if ours { &setup.ours } else { &setup.peer };
        let repo = format!("bench/stream{n}");
        setup.rt.block_on(async {
            let zeros = tokio::io::repeat(0).take(size);
            client
                .push_blob(
                    &server.host,
                    &repo,
                    &digest,
                    size,
                    BlobSource::Reader(Box::new(zeros)),
                    None,
                )
                .await?;
            client
                .fetch_blob_to_writer(
                    &server.host,
                    &repo,
                    &digest,
                    Some(size),
                    &mut std::io::sink(),
                )
                .await?;
            anyhow::Ok(())
        })?;
        eprintln!(
            "  X1 {}: peak RSS {} MiB after streaming {} MiB",
            if ours { "sealos" } else { PEER },
            server.peak_rss_kib()? / 1024,
            size >> 20
        );
        Ok(())
    }))
}

/// Starts both servers, generates the blob and returns the rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let file = data::random_file(&ctx.work, ctx.size, ctx.seed)?;
    let digest = {
        let mut reader = formats::digest::DigestReader::new(
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?),
            Algorithm::Sha256,
        );
        std::io::copy(&mut reader, &mut std::io::sink())?;
        reader.finish().1
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let setup = Rc::new(Setup {
        rt,
        ours: start_ours(&ctx.work)?,
        peer: start_peer(&ctx.work)?,
        file,
        digest,
        size: ctx.size,
        runs: RefCell::new(0),
    });
    let seed_client = client(false)?;
    for host in [&setup.ours.host, &setup.peer.host] {
        setup.rt.block_on(async {
            seed_client
                .push_blob(
                    host,
                    "bench/pull",
                    &setup.digest,
                    setup.size,
                    BlobSource::File(setup.file.clone()),
                    None,
                )
                .await?;
            push_small_image(&seed_client, host).await
        })?;
    }
    let (ours_rps, peer_rps) = (
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(Vec::new())),
    );
    let report = (ours_rps.clone(), peer_rps.clone());
    let mut peer_wrk = wrk_job(setup.peer.host.clone(), peer_rps);
    let peer_wrk_reporting: Job = Box::new(move || {
        peer_wrk()?;
        let (ours, peer) = (report.0.borrow(), report.1.borrow());
        let (o, p) = (median(&ours), median(&peer));
        eprintln!(
            "  R3 requests/s so far: sealos {ours:.0?} (median {o:.0}), {PEER} {peer:.0?} (median {p:.0}), ours/peer {:.2}",
            o / p
        );
        Ok(())
    });
    let stream_digest = zeros_digest(ctx.size);
    let pair = |id: &str, ours: Job, peer: Job| Pair {
        id: id.to_string(),
        ours,
        peer_name: PEER.to_string(),
        peer,
    };
    Ok(vec![
        pair(
            ROWS[0],
            push_job(&setup, true, false)?,
            push_job(&setup, false, false)?,
        ),
        pair(
            ROWS[1],
            push_job(&setup, true, true)?,
            push_job(&setup, false, true)?,
        ),
        pair(ROWS[2], pull_job(&setup, true)?, pull_job(&setup, false)?),
        pair(
            ROWS[3],
            wrk_job(setup.ours.host.clone(), ours_rps),
            peer_wrk_reporting,
        ),
        pair(
            ROWS[4],
            stream_job(&setup, true, stream_digest.clone(), ctx.size)?,
            stream_job(&setup, false, stream_digest, ctx.size)?,
        ),
    ])
}
