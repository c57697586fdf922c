//! Mirroring rows (M1, M2, M3 of benchmarks.md): N images with random layers in a source registry, copied by
//! `registry::mirror` against `skopeo sync --src yaml` run as one process over all images.
//!
//! Every registry the group starts (the source, the M2 destination, each fresh M1 destination, the X1
//! destination) is the server `SEALOS_BENCH_MIRROR_REGISTRY` names: `docker-registry` (the default, Debian's
//! CNCF distribution 2.8) or `sealos` (`sealos registry serve fs DIR`, the `sealos` binary beside the bench
//! binary or `$SEALOS_BIN`). Both tools always talk to the same servers, over plain http on 127.0.0.1.
//!
//! - `mirror-vs-skopeo-sync` (M1): registry -> registry into a fresh destination for every run of either
//!   tool: a new registry process with an empty data directory, started before the timed run
//!   (a pool of `SEALOS_BENCH_MIRROR_FRESH` per tool, default 4 = warm-up + 3 pairs; the previous one is
//!   stopped, deleted and the disk flushed at the start of the next run of the same tool, outside the timing).
//!   skopeo's blob-info cache (`/var/lib/containers/cache/blob-info-cache-v1.boltdb` as root,
//!   `~/.local/share/containers/cache/...` otherwise) is deleted before each of its runs, so it cannot
//!   mount blobs it saw in an earlier run.
//! - `remirror-vs-skopeo-sync` (M2): the same into a destination that already holds everything.
//! - `save-vs-skopeo-sync-dir` (M3): into a fresh directory (ours: Docker Distribution layout, blobs shared;
//!   skopeo: `--dest dir`, one directory per image); disk usage of both is printed on stderr.
//! - `blob-rss-vs-skopeo-copy` (X1): push then pull one `SEALOS_BENCH_X1_SIZE` blob (default 4G, a gzip
//!   stream of stored blocks so skopeo passes it through instead of compressing it) to a fresh
//!   registry: ours through `registry::client` in this process (its peak RSS reset through
//!   `/proc/self/clear_refs` first, then read as VmHWM), skopeo as `skopeo copy dir: -> docker://` and back
//!   under `/usr/bin/time -v`. The peak RSS of both is printed on stderr; the timed ratio is secondary.
//!
//! Ours transfers `SEALOS_BENCH_MIRROR_PROCS` images at a time (default 5, the CLI's `--max-procs` default).
//!
//! Each M1 run prints on stderr the CPU seconds the source, the copying tool and the destination spent.
//!
//! Before the rows run, the group prints this disk's floor for M1: the time to write `--size` bytes as one
//! file per image, that many at a time, each fsynced (a destination that makes every blob durable, as
//! `sealos registry serve` does, cannot finish sooner; `docker-registry` never fsyncs).
//!
//! Data: `--size` bytes in total over `SEALOS_BENCH_MIRROR_IMAGES` images (default 20): each image has one
//! layer shared by all (10% of the size) and one of its own. `--size 400M` runs in a few minutes.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient};
use registry::mirror::{ImageJob, Location, Mirror, MirrorOptions, Outcome, PlatformFilter};

use super::Context;
use super::registry::{Server, ServerKind, proc_cpu_seconds};
use crate::data;
use crate::harness::{Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "mirror-vs-skopeo-sync",
    "remirror-vs-skopeo-sync",
    "save-vs-skopeo-sync-dir",
    "blob-rss-vs-skopeo-copy",
];

/// The variable choosing the registry server of every registry the group starts.
const REGISTRY_VAR: &str = "SEALOS_BENCH_MIRROR_REGISTRY";

/// The server named by `SEALOS_BENCH_MIRROR_REGISTRY` (`docker-registry` when unset).
fn server_kind() -> anyhow::Result<ServerKind> {
    let Some(value) = std::env::var_os(REGISTRY_VAR) else {
        return Ok(ServerKind::DockerRegistry);
    };
    value
        .to_str()
        .and_then(ServerKind::from_name)
        .with_context(|| {
            format!(
                "{REGISTRY_VAR}={}: not a registry server; use one of: {}",
                value.to_string_lossy(),
                ServerKind::NAMES.join(", ")
            )
        })
}

/// Destination registries started ahead of the timed runs, one per run.
struct FreshPool {
    name: &'static str,
    kind: ServerKind,
    work: PathBuf,
    ready: RefCell<Vec<Server>>,
    used: RefCell<Vec<Server>>,
}

impl FreshPool {
    fn new(
        name: &'static str,
        kind: ServerKind,
        work: &Path,
        count: usize,
    ) -> anyhow::Result<FreshPool> {
        let ready = (0..count)
            .map(|_| kind.start_fs(work, None))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(FreshPool {
            name,
            kind,
            work: work.to_path_buf(),
            ready: RefCell::new(ready),
            used: RefCell::new(Vec::new()),
        })
    }

    /// Stops and deletes the destination of the previous run (untimed, the disk flushed after it), and hands
    /// out a fresh one.
    fn take(&self) -> anyhow::Result<String> {
        crate::harness::untimed(|| {
            self.used.borrow_mut().clear();
            let _ = Command::new("sync").status();
        });
        let server = match self.ready.borrow_mut().pop() {
            Some(s) => s,
            None => {
                eprintln!(
                    "mirror-vs-skopeo-sync: {}: no fresh destination left (raise SEALOS_BENCH_MIRROR_FRESH); starting one inside the timed run",
                    self.name
                );
                self.kind.start_fs(&self.work, None)?
            }
        };
        let host = server.host.clone();
        self.used.borrow_mut().push(server);
        Ok(host)
    }

    /// CPU seconds used so far by the destination [`FreshPool::take`] handed out last.
    fn taken_cpu(&self) -> f64 {
        self.used.borrow().first().map_or(0.0, Server::cpu_seconds)
    }
}

/// Runs one M1 copy into `pool`'s next destination and prints on stderr the CPU time the source, the copying
/// tool (this process and the children it waited for) and the destination spent on it.
fn with_cpu_split(
    who: &str,
    src: &Server,
    pool: &FreshPool,
    copy: impl FnOnce(String) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let tool = || proc_cpu_seconds("/proc/self/stat", 14) + proc_cpu_seconds("/proc/self/stat", 16);
    let host = pool.take()?;
    let before = [src.cpu_seconds(), tool(), pool.taken_cpu()];
    copy(host)?;
    let after = [src.cpu_seconds(), tool(), pool.taken_cpu()];
    eprintln!(
        "mirror-vs-skopeo-sync: {who}: CPU seconds: source {:.2}, copying tool {:.2}, destination {:.2}",
        after[0] - before[0],
        after[1] - before[1],
        after[2] - before[2]
    );
    Ok(())
}

/// Deletes skopeo's blob-info cache so a run cannot reuse what an earlier run learnt.
fn clear_skopeo_cache() {
    let mut paths = vec![PathBuf::from(
        "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    )];
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(
            PathBuf::from(home).join(".local/share/containers/cache/blob-info-cache-v1.boltdb"),
        );
    }
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

struct Setup {
    kind: ServerKind,
    src: Server,
    dst: Server,
    fresh_ours: FreshPool,
    fresh_skopeo: FreshPool,
    rt: tokio::runtime::Runtime,
    client: RegistryClient,
    images: Vec<String>,
    yaml: PathBuf,
    work: PathBuf,
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes the images into the source registry.
pub(super) async fn populate(
    client: &RegistryClient,
    host: &str,
    work: &Path,
    size: u64,
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let shared_size = (size / 10).max(1024);
    let own_size = ((size - shared_size.min(size)) / count as u64).max(1024);
    let shared = data::random_file(work, shared_size, seed)?;
    let shared_d = digest_file(&shared)?;
    let mut names = Vec::new();
    for i in 0..count {
        let repo = format!("bench/img{i}");
        let own = data::random_file(work, own_size, seed + 1 + i as u64)?;
        let own_d = digest_file(&own)?;
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{shared_d}","{own_d}"]}}}}"#
        )
        .into_bytes();
        let config_d = Digest::sha256_of(&config);
        for (d, s, p) in [(&shared_d, shared_size, &shared), (&own_d, own_size, &own)] {
            client
                .push_blob(host, &repo, d, s, BlobSource::File(p.clone()), None)
                .await?;
        }
        client
            .push_blob(
                host,
                &repo,
                &config_d,
                config.len() as u64,
                BlobSource::Bytes(Bytes::from(config.clone())),
                None,
            )
            .await?;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{shared_d}","size":{shared_size}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{own_d}","size":{own_size}}}]}}"#,
            config.len()
        );
        client
            .put_manifest(host, &repo, "v1", Bytes::from(manifest), OCI_MANIFEST)
            .await?;
        names.push(repo);
    }
    Ok(names)
}

/// The sha256 digest of the file at `path`.
pub(super) fn digest_file(path: &Path) -> anyhow::Result<Digest> {
    let file = std::fs::File::open(path)?;
    let mut r = formats::digest::DigestReader::new(file, formats::digest::Algorithm::Sha256);
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(r.finish().1)
}

impl Setup {
    /// Ours: every image from the source into `dest`, `SEALOS_BENCH_MIRROR_PROCS` images in flight (default 5, as
    /// `sealos registry sync` does).
    fn mirror(&self, dest: Location) -> anyhow::Result<()> {
        let source = Arc::new(Location::registry(&self.client, &self.src.host));
        let jobs = self
            .images
            .iter()
            .map(|repo| ImageJob {
                source: source.clone(),
                source_repository: repo.clone(),
                source_reference: "v1".into(),
                dest_repository: repo.clone(),
                dest_tag: Some("v1".into()),
            })
            .collect();
        let mirror = Mirror::new(
            dest,
            MirrorOptions {
                platforms: PlatformFilter::All,
                max_images: mirror_procs(),
                ..MirrorOptions::default()
            },
        );
        for r in self.rt.block_on(mirror.run(jobs)) {
            if let Outcome::Failed(e) = r.outcome {
                bail!("mirroring {} failed: {e}", r.source);
            }
        }
        Ok(())
    }
}

fn du(path: &Path) -> String {
    Command::new("du")
        .arg("-sh")
        .arg(path)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

/// Images ours transfers at a time (`SEALOS_BENCH_MIRROR_PROCS`, default 5).
fn mirror_procs() -> usize {
    std::env::var("SEALOS_BENCH_MIRROR_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// How long this disk takes to write `total` bytes as `files` equal files, `parallel` at a time, each fsynced
/// before the next starts (what a destination that makes every blob durable must at least do in M1). The
/// files are removed afterwards.
fn disk_floor(
    dir: &Path,
    total: u64,
    files: usize,
    parallel: usize,
) -> anyhow::Result<std::time::Duration> {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = dir.join("disk-floor");
    std::fs::create_dir_all(&dir)?;
    let per_file = total / files.max(1) as u64;
    let next = AtomicUsize::new(0);
    let start = std::time::Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..parallel.clamp(1, files.max(1)))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let block = vec![0x5au8; 1 << 20];
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= files {
                            return Ok(());
                        }
                        let path = dir.join(format!("file-{i}"));
                        let mut f = std::fs::File::create(&path)?;
                        let mut left = per_file;
                        while left > 0 {
                            let n = left.min(block.len() as u64) as usize;
                            f.write_all(&block[..n])?;
                            left -= n as u64;
                        }
                        f.sync_all()?;
                    }
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("disk floor writer panicked"))??;
        }
        Ok(())
    })?;
    let took = start.elapsed();
    std::fs::remove_dir_all(&dir)?;
    Ok(took)
}

/// Starts both registries, fills the source and builds the three rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let count: usize = std::env::var("SEALOS_BENCH_MIRROR_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let work = ctx.work.join("mirror");
    std::fs::create_dir_all(&work)?;
    let kind = server_kind()?;
    eprintln!(
        "mirror: source and destinations are {} (set {REGISTRY_VAR} to one of: {})",
        kind.command(),
        ServerKind::NAMES.join(", ")
    );
    let src = kind.start_fs(&work, None)?;
    let dst = kind.start_fs(&work, None)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })?;
    eprintln!(
        "mirror: pushing {count} images ({} in total) into {}",
        ctx.size, src.host
    );
    let images = rt.block_on(populate(
        &client, &src.host, &work, ctx.size, count, ctx.seed,
    ))?;
    let floor = disk_floor(&work, ctx.size, count, mirror_procs())?;
    eprintln!(
        "mirror: disk floor: {} bytes written as {count} files, {} at a time, each fsynced: {:.2} s (M1 into a \
         registry that makes each blob durable cannot be faster)",
        ctx.size,
        mirror_procs(),
        floor.as_secs_f64()
    );
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", src.host);
    for repo in &images {
        yaml.push_str(&format!("    {repo}: [\"v1\"]\n"));
    }
    let yaml_path = work.join("sync.yaml");
    std::fs::write(&yaml_path, yaml)?;
    let fresh: usize = std::env::var("SEALOS_BENCH_MIRROR_FRESH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let setup = Rc::new(Setup {
        kind,
        src,
        dst,
        fresh_ours: FreshPool::new("ours", kind, &work, fresh)?,
        fresh_skopeo: FreshPool::new("skopeo", kind, &work, fresh)?,
        rt,
        client,
        images,
        yaml: yaml_path,
        work: work.clone(),
    });
    let skopeo_into = |setup: &Setup, host: &str, prefix: &str| {
        format!(
            "skopeo sync --src yaml --dest docker --dest-tls-verify=false {} {host}/{prefix}",
            quote(&setup.yaml.to_string_lossy()),
        )
    };
    let skopeo_to = move |setup: &Setup, prefix: &str| skopeo_into(setup, &setup.dst.host, prefix);
    // M2: both destinations filled once before timing.
    setup.mirror(Location::Registry {
        client: setup.client.clone(),
        host: setup.dst.host.clone(),
        prefix: "steady-ours".into(),
    })?;
    shell(&skopeo_to(&setup, "steady-skopeo"))()?;

    let m1_ours = {
        let s = setup.clone();
        Box::new(move || {
            with_cpu_split("ours", &s.src, &s.fresh_ours, |host| {
                s.mirror(Location::Registry {
                    client: s.client.clone(),
                    host,
                    prefix: "m1".into(),
                })
            })
        }) as crate::harness::Job
    };
    let m1_peer = {
        let s = setup.clone();
        Box::new(move || {
            clear_skopeo_cache();
            with_cpu_split("skopeo", &s.src, &s.fresh_skopeo, |host| {
                shell(&skopeo_into(&s, &host, "m1"))()
            })
        }) as crate::harness::Job
    };
    let m2_ours = {
        let s = setup.clone();
        Box::new(move || {
            s.mirror(Location::Registry {
                client: s.client.clone(),
                host: s.dst.host.clone(),
                prefix: "steady-ours".into(),
            })
        }) as crate::harness::Job
    };
    let m2_peer = shell(&skopeo_to(&setup, "steady-skopeo"));
    let ours_dir = work.join("save-ours");
    let peer_dir = work.join("save-skopeo");
    let m3_ours = {
        let (s, dir) = (setup.clone(), ours_dir.clone());
        Box::new(move || {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            s.mirror(Location::dir(&dir))?;
            eprintln!("save-vs-skopeo-sync-dir: ours uses {} on disk", du(&dir));
            Ok(())
        }) as crate::harness::Job
    };
    let m3_peer = {
        let (s, dir) = (setup.clone(), peer_dir.clone());
        Box::new(move || {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            shell(&format!(
                "skopeo sync --src yaml --dest dir {} {}",
                quote(&s.yaml.to_string_lossy()),
                quote(&dir.to_string_lossy())
            ))()?;
            eprintln!("save-vs-skopeo-sync-dir: skopeo uses {} on disk", du(&dir));
            let _ = &s.work;
            Ok(())
        }) as crate::harness::Job
    };
    let (x1_ours, x1_peer) = x1_jobs(&setup, [ours_dir.clone(), peer_dir.clone()])?;
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: m1_ours,
            peer_name: "skopeo sync".into(),
            peer: m1_peer,
        },
        Pair {
            id: ROWS[1].into(),
            ours: m2_ours,
            peer_name: "skopeo sync".into(),
            peer: m2_peer,
        },
        Pair {
            id: ROWS[2].into(),
            ours: m3_ours,
            peer_name: "skopeo sync".into(),
            peer: m3_peer,
        },
        Pair {
            id: ROWS[3].into(),
            ours: x1_ours,
            peer_name: "skopeo copy".into(),
            peer: x1_peer,
        },
    ])
}

/// This process's peak resident set size (VmHWM) in bytes.
fn vm_hwm() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib * 1024)
}

/// Writes `size` bytes of random data as a gzip stream of stored (uncompressed) deflate blocks: valid
/// gzip that costs nothing to make, so skopeo keeps it as it is instead of compressing it.
fn gzip_stored_file(work: &Path, size: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let out = work.join(format!("x1-stored-s{seed}-{size}.gz"));
    if out.is_file() {
        return Ok(out);
    }
    let random = data::random_file(work, size, seed)?;
    let tmp = out.with_extension("partial");
    {
        let mut input = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&random)?);
        let file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::none());
        std::io::copy(&mut input, &mut gz)?;
        gz.finish()?;
    }
    std::fs::remove_file(&random)?;
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// The peak RSS `/usr/bin/time -v` reports for `cmdline`, in bytes.
fn time_v_peak(cmdline: &str) -> anyhow::Result<u64> {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg("sh")
        .arg("-c")
        .arg(cmdline)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("cannot run /usr/bin/time (apt-get install time)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("`{cmdline}` failed: {stderr}");
    }
    let kib: u64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no peak RSS in the output of /usr/bin/time: {stderr}"))?;
    Ok(kib * 1024)
}

/// The blob X1 moves and the skopeo `dir:` image around it.
struct X1Data {
    blob: PathBuf,
    digest: Digest,
    size: u64,
    image: PathBuf,
}

/// Makes the X1 data (on the first X1 run, so the mirror rows before it do not hold that disk space too).
fn x1_data(work: &Path, size: u64) -> anyhow::Result<X1Data> {
    std::fs::create_dir_all(work)?;
    eprintln!("blob-rss-vs-skopeo-copy: preparing a {size}-byte blob");
    let blob = gzip_stored_file(work, size, 7)?;
    let digest = digest_file(&blob)?;
    let blob_size = std::fs::metadata(&blob)?.len();
    // skopeo's `dir:` image around the blob: hard-linked, not copied.
    let image = work.join("dir-image");
    let _ = std::fs::remove_dir_all(&image);
    std::fs::create_dir_all(&image)?;
    std::fs::hard_link(&blob, image.join(digest.hex()))?;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_d = Digest::sha256_of(config);
    std::fs::write(image.join(config_d.hex()), config)?;
    std::fs::write(
        image.join("manifest.json"),
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":{blob_size}}}]}}"#,
            config.len()
        ),
    )?;
    std::fs::write(image.join("version"), "Directory Transport Version: 1.1\n")?;
    Ok(X1Data {
        blob,
        digest,
        size: blob_size,
        image,
    })
}

/// X1: push then pull one big blob, ours through the client in-process, skopeo as two `copy` runs. The
/// M3 output directories are deleted first (disk space).
fn x1_jobs(
    setup: &Rc<Setup>,
    m3_dirs: [PathBuf; 2],
) -> anyhow::Result<(crate::harness::Job, crate::harness::Job)> {
    let size = match std::env::var("SEALOS_BENCH_X1_SIZE") {
        Ok(v) => data::parse_size(&v).map_err(|e| anyhow::anyhow!("SEALOS_BENCH_X1_SIZE: {e}"))?,
        Err(_) => 4 << 30,
    };
    let work = setup.work.join("x1");
    let prepared: Rc<RefCell<Option<Rc<X1Data>>>> = Rc::new(RefCell::new(None));
    let get = {
        let (prepared, work) = (prepared.clone(), work.clone());
        move || -> anyhow::Result<Rc<X1Data>> {
            if let Some(d) = prepared.borrow().as_ref() {
                return Ok(d.clone());
            }
            for d in &m3_dirs {
                let _ = std::fs::remove_dir_all(d);
            }
            let d = Rc::new(x1_data(&work, size)?);
            *prepared.borrow_mut() = Some(d.clone());
            Ok(d)
        }
    };
    let get = Rc::new(get);
    let ours = {
        let (s, work, get) = (setup.clone(), work.clone(), get.clone());
        Box::new(move || {
            let x1 = get()?;
            let (blob, blob_d, blob_size) = (x1.blob.clone(), x1.digest.clone(), x1.size);
            let server = s.kind.start_fs(&work, None)?;
            let pulled = work.join("pulled-ours");
            let _ = std::fs::remove_file(&pulled);
            // Reset this process's peak RSS so VmHWM covers only the transfer.
            std::fs::write("/proc/self/clear_refs", "5")
                .context("cannot reset the peak RSS through /proc/self/clear_refs")?;
            s.rt.block_on(async {
                s.client
                    .push_blob(
                        &server.host,
                        "x1/blob",
                        &blob_d,
                        blob_size,
                        BlobSource::File(blob.clone()),
                        None,
                    )
                    .await?;
                s.client
                    .fetch_blob(&server.host, "x1/blob", &blob_d, Some(blob_size), &pulled)
                    .await?;
                Ok::<(), registry::client::ClientError>(())
            })?;
            let peak = vm_hwm()?;
            eprintln!(
                "blob-rss-vs-skopeo-copy: ours peak RSS {:.1} MiB (push + pull of {blob_size} bytes)",
                peak as f64 / 1048576.0
            );
            std::fs::remove_file(&pulled)?;
            Ok(())
        }) as crate::harness::Job
    };
    let peer = {
        let (s, work, get) = (setup.clone(), work.clone(), get.clone());
        Box::new(move || {
            let image = get()?.image.clone();
            let server = s.kind.start_fs(&work, None)?;
            let pulled = work.join("pulled-skopeo");
            let _ = std::fs::remove_dir_all(&pulled);
            clear_skopeo_cache();
            let push = time_v_peak(&format!(
                "skopeo copy --dest-tls-verify=false dir:{} docker://{}/x1/blob:v1",
                quote(&image.to_string_lossy()),
                server.host
            ))?;
            let pull = time_v_peak(&format!(
                "skopeo copy --src-tls-verify=false docker://{}/x1/blob:v1 dir:{}",
                server.host,
                quote(&pulled.to_string_lossy())
            ))?;
            eprintln!(
                "blob-rss-vs-skopeo-copy: skopeo peak RSS {:.1} MiB (push {:.1} MiB, pull {:.1} MiB)",
                push.max(pull) as f64 / 1048576.0,
                push as f64 / 1048576.0,
                pull as f64 / 1048576.0
            );
            let _ = std::fs::remove_dir_all(&pulled);
            Ok(())
        }) as crate::harness::Job
    };
    Ok((ours, peer))
}
