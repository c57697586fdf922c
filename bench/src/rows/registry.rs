//! Registry server rows (R1, R2, R3, X1 of benchmarks.md): `sealos registry serve fs` against Debian's
//! `docker-registry` (CNCF distribution 2.8), both on 127.0.0.1, driven by the same client (our
//! `registry::client`, or `wrk`).
//!
//! - `push-monolithic-vs-docker-registry` (R1): one `--size` random blob, POST + one streaming PUT, into a fresh
//!   repository each run, new to the registry: before each run (untimed) the blob is deleted from the server's
//!   store and the page cache is flushed (`sync`), so each run writes and commits the whole blob.
//! - `push-chunked-8m-vs-docker-registry` (R1): the same in 8 MiB PATCH chunks.
//! - `pull-vs-docker-registry` (R2): GET of that blob, verified by the client, into a sink.
//! - `push-stored-blob-vs-docker-registry`: the monolithic push of a blob the registry already holds (in another
//!   repository; the client does not mount it), so the upload is received, verified and dropped.
//! - `manifest-get-wrk-vs-docker-registry` (R3): `wrk -t2 -c32 -d10s` on GET of one manifest by tag. The table's
//!   times are wrk's fixed duration; the requests per second of every run and their ratio are printed on stderr.
//! - `stream-rss-vs-docker-registry` (X1): push then pull a `--size` blob of generated zeros (never on the
//!   client's disk); each server's peak RSS (VmHWM) is printed on stderr after every run.
//!
//! Our server is the `sealos` binary beside the bench binary (`cargo build --release -p sealos -p bench`) or
//! `$SEALOS_BIN`. The servers, jobs and blob rows are shared with the `registry-s3` group
//! ([`super::registry_s3`]), which runs the same client against both servers on S3 storage.

use std::cell::RefCell;
use std::ffi::OsString;
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
use crate::harness::{Job, Pair, Side, record_peak, untimed};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "push-monolithic-vs-docker-registry",
    "push-chunked-8m-vs-docker-registry",
    "pull-vs-docker-registry",
    "push-stored-blob-vs-docker-registry",
    "manifest-get-wrk-vs-docker-registry",
    "stream-rss-vs-docker-registry",
];

const PEER: &str = "docker-registry";
const CHUNK: u64 = 8 * 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry server process on 127.0.0.1 with its data directory, killed when dropped.
pub(super) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(super) host: String,
    /// The `docker/registry/v2/blobs` directory of a filesystem-backed server.
    blobs: Option<PathBuf>,
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
    /// Declares where a filesystem-backed server keeps its blobs (`.../docker/registry/v2/blobs`).
    fn with_blobs(mut self, blobs: PathBuf) -> Server {
        self.blobs = Some(blobs);
        self
    }

    /// Deletes blob `digest` from the server's store behind its back, so the next push writes it again, and
    /// flushes the page cache.
    fn forget_blob(&self, digest: &Digest) -> anyhow::Result<()> {
        let Some(blobs) = &self.blobs else {
            bail!(
                "{}: the blob store is not on a known filesystem path",
                self.host
            );
        };
        let hex = digest.hex();
        let dir = blobs
            .join(digest.algorithm().to_string())
            .join(&hex[..2])
            .join(hex);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let status = Command::new("sync").status().context("cannot run `sync`")?;
        if !status.success() {
            bail!("`sync` failed: {status}");
        }
        Ok(())
    }

    /// CPU seconds (user + system) the server has used so far.
    pub(super) fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(&format!("/proc/{}/stat", self.child.id()), 14)
    }

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

    /// Resets the peak resident set size (VmHWM) to the current one, so the next [`Server::peak_rss_kib`]
    /// belongs to what runs in between (`5` to `/proc/<pid>/clear_refs`, Linux 4.0+).
    fn reset_peak_rss(&self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/clear_refs", self.child.id());
        std::fs::write(&path, "5").with_context(|| format!("resetting the peak RSS through {path}"))
    }
}

/// Waits up to 20 s until something listens on 127.0.0.1:`port`; `what` names it in the error.
pub(super) fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The `sealos` binary the rows run: $SEALOS_BIN, else the one beside this benchmark binary.
pub(super) fn sealos_binary() -> anyhow::Result<PathBuf> {
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

/// Which registry server a benchmark starts on a filesystem store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerKind {
    /// Debian's `docker-registry` (CNCF distribution 2.8).
    DockerRegistry,
    /// Ours: `sealos registry serve fs DIR`.
    Sealos,
}

impl ServerKind {
    /// The names [`ServerKind::from_name`] accepts, in the order of the variants.
    pub(super) const NAMES: [&'static str; 2] = ["docker-registry", "sealos"];

    /// The kind named `name` (one of [`ServerKind::NAMES`]), or `None`.
    pub(super) fn from_name(name: &str) -> Option<ServerKind> {
        match name {
            "docker-registry" => Some(ServerKind::DockerRegistry),
            "sealos" => Some(ServerKind::Sealos),
            _ => None,
        }
    }

    /// The command line that serves a directory, for messages.
    pub(super) fn command(self) -> &'static str {
        match self {
            ServerKind::DockerRegistry => "docker-registry serve",
            ServerKind::Sealos => "sealos registry serve fs",
        }
    }

    /// Starts this server on a free port of 127.0.0.1, storing into `data` (a fresh directory under `work` when
    /// `None`); the server's config and fresh data live in a temporary directory under `work`, deleted when the
    /// server is dropped.
    pub(super) fn start_fs(self, work: &Path, data: Option<&Path>) -> anyhow::Result<Server> {
        let root = tempfile::tempdir_in(work).context("cannot create a registry directory")?;
        let data = data.map_or_else(|| root.path().join("data"), Path::to_path_buf);
        let blobs = data.join("docker/registry/v2/blobs");
        let server = match self {
            ServerKind::Sealos => start_sealos(root, &[OsString::from("fs"), data.into()])?,
            ServerKind::DockerRegistry => {
                let storage = format!("  filesystem:\n    rootdirectory: {}\n", data.display());
                start_docker_registry(root, &storage)?
            }
        };
        Ok(server.with_blobs(blobs))
    }
}

/// The sum of two adjacent clock-tick fields of a `/proc/.../stat` file in seconds, `field` being the first
/// one's number as proc(5) counts them (14: `utime` + `stime`; 16: waited-for children's); 0 when unreadable.
pub(super) fn proc_cpu_seconds(path: &str, field: usize) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // The command name (field 2) may contain spaces: count from its closing parenthesis, where field 3 starts.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(field - 3)
        .take(2)
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    ticks as f64 / 100.0
}

/// Starts `sealos registry serve BACKEND...` on a free port; `root` is kept as long as the server runs.
pub(super) fn start_sealos(
    root: tempfile::TempDir,
    backend: &[OsString],
) -> anyhow::Result<Server> {
    let mut child = Command::new(sealos_binary()?)
        .args(["registry", "serve"])
        .args(backend)
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
        blobs: None,
        _stdout: stdout,
        _root: root,
    };
    let Some(port) = server.host.rsplit(':').next().and_then(|p| p.parse().ok()) else {
        bail!("`sealos registry serve` printed {line:?}, not `listening on ADDR:PORT`");
    };
    wait_listening(port, "sealos registry serve")?;
    Ok(server)
}

/// Starts `docker-registry serve` on a free port with `storage` (the YAML lines under `storage:`, indented by
/// two spaces); its config file is written into `root`, which is kept as long as the server runs.
pub(super) fn start_docker_registry(
    root: tempfile::TempDir,
    storage: &str,
) -> anyhow::Result<Server> {
    start_docker_registry_with(root, storage, "")
}

/// [`start_docker_registry`] with `extra` top-level YAML appended to its config (`proxy:` for proxy mode).
pub(super) fn start_docker_registry_with(
    root: tempfile::TempDir,
    storage: &str,
    extra: &str,
) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n{storage}  delete:\n    \
             enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}"
        ),
    )?;
    let child = Command::new(PEER)
        .arg("serve")
        .arg(&config)
        // distribution 2.8's s3 driver panics at start when AWS_CA_BUNDLE is set (its HTTP transport cannot
        // take a custom CA bundle); the benchmark's store is plain http on 127.0.0.1.
        .env_remove("AWS_CA_BUNDLE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `docker-registry` (apt-get install docker-registry)")?;
    let server = Server {
        child,
        host: format!("127.0.0.1:{port}"),
        blobs: None,
        _stdout: None,
        _root: root,
    };
    wait_listening(port, PEER)?;
    Ok(server)
}

/// Our server and the peer, with the runtime that drives the client; a run counter names fresh repositories.
pub(super) struct Servers {
    rt: tokio::runtime::Runtime,
    ours: Server,
    peer: Server,
    runs: RefCell<u32>,
}

impl Servers {
    /// Wraps two running servers with a two-thread client runtime.
    pub(super) fn new(ours: Server, peer: Server) -> anyhow::Result<Rc<Servers>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Rc::new(Servers {
            rt,
            ours,
            peer,
            runs: RefCell::new(0),
        }))
    }

    fn side(&self, ours: bool) -> &Server {
        if ours { &self.ours } else { &self.peer }
    }

    /// The next run number (1, 2, ...), for a fresh repository name.
    fn next_run(&self) -> u32 {
        let mut runs = self.runs.borrow_mut();
        *runs += 1;
        *runs
    }
}

/// The random blob pushed and pulled by R1 and R2.
pub(super) struct Blob {
    /// The generated file.
    pub(super) file: PathBuf,
    /// Its digest.
    pub(super) digest: Digest,
    /// Its size in bytes.
    pub(super) size: u64,
}

impl Blob {
    /// Generates a `size`-byte random blob from `seed` under `work` (reused if present) and hashes it.
    pub(super) fn generate(work: &Path, size: u64, seed: u64) -> anyhow::Result<Rc<Blob>> {
        let file = data::random_file(work, size, seed)?;
        let mut reader = formats::digest::DigestReader::new(
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&file)?),
            Algorithm::Sha256,
        );
        std::io::copy(&mut reader, &mut std::io::sink())?;
        let digest = reader.finish().1;
        Ok(Rc::new(Blob { file, digest, size }))
    }

    /// Pushes the blob into `bench/pull` on `host`, where [`pull_job`] reads it.
    async fn seed(&self, client: &RegistryClient, host: &str) -> anyhow::Result<()> {
        client
            .push_blob(
                host,
                "bench/pull",
                &self.digest,
                self.size,
                BlobSource::File(self.file.clone()),
                None,
            )
            .await?;
        Ok(())
    }
}

fn client(chunked: bool) -> anyhow::Result<RegistryClient> {
    Ok(RegistryClient::new(ClientOptions {
        tls_verify: false,
        chunked_upload_threshold: chunked.then_some(CHUNK - 1),
        upload_chunk_size: CHUNK,
        ..ClientOptions::default()
    })?)
}

/// A job pushing the blob to one server (`ours` picks it) into a fresh repository; with `new_blob`, the blob is
/// first deleted from the server's store (untimed, see [`Server::forget_blob`]).
fn push_job(
    servers: &Rc<Servers>,
    blob: &Rc<Blob>,
    ours: bool,
    chunked: bool,
    new_blob: bool,
) -> anyhow::Result<Job> {
    let (servers, blob, client) = (servers.clone(), blob.clone(), client(chunked)?);
    Ok(Box::new(move || {
        if new_blob {
            untimed(|| servers.side(ours).forget_blob(&blob.digest))?;
        }
        let repo = format!("bench/push{}", servers.next_run());
        servers.rt.block_on(client.push_blob(
            &servers.side(ours).host,
            &repo,
            &blob.digest,
            blob.size,
            BlobSource::File(blob.file.clone()),
            None,
        ))?;
        Ok(())
    }))
}

fn pull_job(servers: &Rc<Servers>, blob: &Rc<Blob>, ours: bool) -> anyhow::Result<Job> {
    let (servers, blob, client) = (servers.clone(), blob.clone(), client(false)?);
    Ok(Box::new(move || {
        let got = servers.rt.block_on(client.fetch_blob_to_writer(
            &servers.side(ours).host,
            "bench/pull",
            &blob.digest,
            Some(blob.size),
            &mut std::io::sink(),
        ))?;
        if got != blob.size {
            bail!("pulled {got} bytes, expected {}", blob.size);
        }
        Ok(())
    }))
}

/// Seeds `blob` on both servers and returns the R1 and R2 rows: monolithic push, 8 MiB chunked push and pull,
/// with the ids in `ids` (in that order) and `peer_name` as the peer's name in the table. With `new_blob` the
/// pushes write a blob new to the registry each run (see [`push_job`]); without, one it already holds.
pub(super) fn blob_pairs(
    servers: &Rc<Servers>,
    blob: &Rc<Blob>,
    ids: [&str; 3],
    peer_name: &str,
    new_blob: bool,
) -> anyhow::Result<Vec<Pair>> {
    let seed_client = client(false)?;
    for ours in [true, false] {
        servers
            .rt
            .block_on(blob.seed(&seed_client, &servers.side(ours).host))?;
    }
    let pair = |id: &str, ours: Job, peer: Job| Pair {
        id: id.to_string(),
        ours,
        peer_name: peer_name.to_string(),
        peer,
    };
    Ok(vec![
        pair(
            ids[0],
            push_job(servers, blob, true, false, new_blob)?,
            push_job(servers, blob, false, false, new_blob)?,
        ),
        pair(
            ids[1],
            push_job(servers, blob, true, true, new_blob)?,
            push_job(servers, blob, false, true, new_blob)?,
        ),
        pair(
            ids[2],
            pull_job(servers, blob, true)?,
            pull_job(servers, blob, false)?,
        ),
    ])
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
            .args(["-t2", "-c32", "-d10s", "-H"])
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

/// The X1 row `id`: each run streams `size` generated zeros through one server (push into a fresh repository,
/// then pull into a sink), never touching the client's disk, and records that server's peak RSS (VmHWM, reset
/// before the push and again before the pull, so each phase's peak is its own) for the table, which shows the
/// larger of the two; both are printed on stderr after every run.
pub(super) fn stream_pair(
    servers: &Rc<Servers>,
    id: &str,
    peer_name: &str,
    size: u64,
) -> anyhow::Result<Pair> {
    let digest = zeros_digest(size);
    Ok(Pair {
        id: id.to_string(),
        ours: stream_job(servers, id, true, peer_name, digest.clone(), size)?,
        peer_name: peer_name.to_string(),
        peer: stream_job(servers, id, false, peer_name, digest, size)?,
    })
}

fn stream_job(
    servers: &Rc<Servers>,
    row: &str,
    ours: bool,
    peer_name: &str,
    digest: Digest,
    size: u64,
) -> anyhow::Result<Job> {
    let (servers, client, row) = (servers.clone(), client(false)?, row.to_string());
    let peer_name = peer_name.to_string();
    Ok(Box::new(move || {
        use tokio::io::AsyncReadExt;
        let server = servers.side(ours);
        let repo = format!("bench/stream{}", servers.next_run());
        server.reset_peak_rss()?;
        let push_kib = servers.rt.block_on(async {
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
            server.peak_rss_kib()
        })?;
        server.reset_peak_rss()?;
        servers.rt.block_on(async {
            client
                .fetch_blob_to_writer(
                    &server.host,
                    &repo,
                    &digest,
                    Some(size),
                    &mut std::io::sink(),
                )
                .await
        })?;
        let pull_kib = server.peak_rss_kib()?;
        record_peak(
            &row,
            if ours { Side::Ours } else { Side::Peer },
            push_kib.max(pull_kib),
        );
        eprintln!(
            "  {row} {}: peak RSS {} MiB pushing, {} MiB pulling {} MiB",
            if ours { "sealos" } else { peer_name.as_str() },
            push_kib / 1024,
            pull_kib / 1024,
            size >> 20
        );
        Ok(())
    }))
}

/// Starts both servers, generates the blob and returns the rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let blob = Blob::generate(&ctx.work, ctx.size, ctx.seed)?;
    let servers = Servers::new(
        ServerKind::Sealos.start_fs(&ctx.work, None)?,
        ServerKind::DockerRegistry.start_fs(&ctx.work, None)?,
    )?;
    let mut rows = blob_pairs(&servers, &blob, [ROWS[0], ROWS[1], ROWS[2]], PEER, true)?;
    rows.push(Pair {
        id: ROWS[3].to_string(),
        ours: push_job(&servers, &blob, true, false, false)?,
        peer_name: PEER.to_string(),
        peer: push_job(&servers, &blob, false, false, false)?,
    });
    let seed_client = client(false)?;
    for ours in [true, false] {
        servers
            .rt
            .block_on(push_small_image(&seed_client, &servers.side(ours).host))?;
    }
    let (ours_rps, peer_rps) = (
        Rc::new(RefCell::new(Vec::new())),
        Rc::new(RefCell::new(Vec::new())),
    );
    let report = (ours_rps.clone(), peer_rps.clone());
    let mut peer_wrk = wrk_job(servers.peer.host.clone(), peer_rps);
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
    rows.push(Pair {
        id: ROWS[4].to_string(),
        ours: wrk_job(servers.ours.host.clone(), ours_rps),
        peer_name: PEER.to_string(),
        peer: peer_wrk_reporting,
    });
    rows.push(stream_pair(&servers, ROWS[5], PEER, ctx.size)?);
    Ok(rows)
}
