//! Mirroring rows (M1, M2, M3 of benchmarks.md): N images with random layers in a source `docker-registry`,
//! copied by `registry::mirror` against `skopeo sync --src yaml` run as one process over all images.
//!
//! - `mirror-vs-skopeo-sync` (M1): registry -> registry into a fresh repository prefix each run.
//! - `remirror-vs-skopeo-sync` (M2): the same into a prefix that already holds everything.
//! - `save-vs-skopeo-sync-dir` (M3): into a fresh directory (ours: Docker Distribution layout, blobs shared;
//!   skopeo: `--dest dir`, one directory per image); disk usage of both is printed on stderr.
//!
//! Caveat on M1: the destination `docker-registry` is shared by all runs (each run gets a fresh prefix), and
//! skopeo's blob-info cache remembers where blobs already are, so from its second run on skopeo mounts them
//! across repositories instead of uploading; ours uploads every run. M1 therefore favours skopeo; a fair M1
//! needs a fresh destination registry per run (not done yet).
//!
//! Data: `--size` bytes in total over `SEALOS_BENCH_MIRROR_IMAGES` images (default 20): each image has one
//! layer shared by all (10% of the size) and one of its own. `--size 400M` runs in a few minutes.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient};
use registry::mirror::{ImageJob, Location, Mirror, MirrorOptions, Outcome, PlatformFilter};

use super::Context;
use crate::data;
use crate::harness::{Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "mirror-vs-skopeo-sync",
    "remirror-vs-skopeo-sync",
    "save-vs-skopeo-sync-dir",
];

/// A `docker-registry` process, killed when dropped.
pub(super) struct Server {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub(super) host: String,
    _root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(work: &Path) -> anyhow::Result<Server> {
    start_server_at(work, None)
}

/// Starts `docker-registry` storing into `data` (a fresh directory under `work` when `None`).
pub(super) fn start_server_at(work: &Path, data: Option<&Path>) -> anyhow::Result<Server> {
    let root = tempfile::tempdir_in(work).context("cannot create a registry directory")?;
    let data = data.map_or_else(|| root.path().join("data"), Path::to_path_buf);
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = root.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            data.display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start `docker-registry` (apt-get install docker-registry)")?;
    let server = Server {
        child,
        host: format!("127.0.0.1:{port}"),
        _root: root,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("docker-registry did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

struct Setup {
    src: Server,
    dst: Server,
    rt: tokio::runtime::Runtime,
    client: RegistryClient,
    images: Vec<String>,
    yaml: PathBuf,
    work: PathBuf,
    run: Cell<u32>,
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

fn digest_file(path: &Path) -> anyhow::Result<Digest> {
    let file = std::fs::File::open(path)?;
    let mut r = formats::digest::DigestReader::new(file, formats::digest::Algorithm::Sha256);
    std::io::copy(&mut r, &mut std::io::sink())?;
    Ok(r.finish().1)
}

impl Setup {
    fn next_run(&self) -> u32 {
        let n = self.run.get() + 1;
        self.run.set(n);
        n
    }

    /// Ours: every image from the source into `dest`, 5 images in flight, as `sealos registry sync` does.
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
                max_images: 5,
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

/// Starts both registries, fills the source and builds the three rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let count: usize = std::env::var("SEALOS_BENCH_MIRROR_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let work = ctx.work.join("mirror");
    std::fs::create_dir_all(&work)?;
    let src = start_server(&work)?;
    let dst = start_server(&work)?;
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
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", src.host);
    for repo in &images {
        yaml.push_str(&format!("    {repo}: [\"v1\"]\n"));
    }
    let yaml_path = work.join("sync.yaml");
    std::fs::write(&yaml_path, yaml)?;
    let setup = Rc::new(Setup {
        src,
        dst,
        rt,
        client,
        images,
        yaml: yaml_path,
        work: work.clone(),
        run: Cell::new(0),
    });
    let skopeo_to = |setup: &Setup, prefix: &str| {
        format!(
            "skopeo sync --src yaml --dest docker --dest-tls-verify=false {} {}/{prefix}",
            quote(&setup.yaml.to_string_lossy()),
            setup.dst.host
        )
    };
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
            let n = s.next_run();
            s.mirror(Location::Registry {
                client: s.client.clone(),
                host: s.dst.host.clone(),
                prefix: format!("ours{n}"),
            })
        }) as crate::harness::Job
    };
    let m1_peer = {
        let s = setup.clone();
        Box::new(move || {
            let n = s.next_run();
            shell(&skopeo_to(&s, &format!("skopeo{n}")))()
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
            s.mirror(Location::Dir(Arc::new(
                formats::distribution::DistributionLayout::new(&dir),
            )))?;
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
    ])
}
