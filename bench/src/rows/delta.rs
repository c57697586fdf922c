//! Air-gap delta rows (D1 of benchmarks.md): deliver version 2 of a set of images to a site that holds version 1.
//!
//! A source registry (`sealos registry serve fs`) holds v1 and v2 of `SEALOS_BENCH_DELTA_IMAGES` images (default
//! 10): `--size` bytes per version, each image one layer shared by all (10%) and one of its own; v2 changes the
//! own layer of `SEALOS_BENCH_DELTA_CHANGED` images (default 1) and retags the others. Before timing, v1 is saved
//! whole into a site directory and `sealos registry inventory` taken of it. Every timed run writes into a fresh
//! directory (the previous one deleted outside the timing).
//!
//! - `delta-vs-whole-save` (D1): `sealos registry save` of v2 `--inventory` (the delta) vs the same save without
//!   it (the whole delivery).
//! - `delta-vs-skopeo-sync-dir` (D1s): the delta vs `skopeo sync --src yaml --dest dir` of v2.
//! - `cluster-delta-vs-whole-save` (D1c): a cluster image built by `sealos build` from a context of `--size`
//!   bytes of /usr files (`COPY usr/`, `COPY manifests`), v2 rebuilt after changing one manifest
//!   file; `sealos registry save --store-images` of v2 with `--inventory` (of v1 saved whole) vs without.
//!
//! Each run prints on stderr the bytes its delivery holds on disk (`delta-vs-whole-save: ours delivers N bytes`),
//! and the group prints the delivery's `delta:` summary line once.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use formats::digest::Digest;
use registry::client::{BlobSource, ClientOptions, RegistryClient};

use super::Context;
use super::mirror::digest_file;
use super::registry::{Server, ServerKind, sealos_binary};
use crate::data;
use crate::harness::{Job, Pair, quote, untimed};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "delta-vs-whole-save",
    "delta-vs-skopeo-sync-dir",
    "cluster-delta-vs-whole-save",
];

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A number from the environment variable `name`, or `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A layer file with its digest and size.
struct Layer {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

fn layer(work: &Path, size: u64, seed: u64) -> anyhow::Result<Layer> {
    let path = data::random_file(work, size, seed)?;
    let digest = digest_file(&path)?;
    Ok(Layer { path, digest, size })
}

/// Pushes `repo:tag` made of `layers` (a config naming them is generated).
async fn push_image(
    client: &RegistryClient,
    host: &str,
    repo: &str,
    tag: &str,
    layers: &[&Layer],
) -> anyhow::Result<()> {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.digest)).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_d = Digest::sha256_of(&config);
    for l in layers {
        client
            .push_blob(
                host,
                repo,
                &l.digest,
                l.size,
                BlobSource::File(l.path.clone()),
                None,
            )
            .await?;
    }
    client
        .push_blob(
            host,
            repo,
            &config_d,
            config.len() as u64,
            BlobSource::Bytes(Bytes::from(config.clone())),
            None,
        )
        .await?;
    let descs: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                l.digest, l.size
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_d}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descs.join(",")
    );
    client
        .put_manifest(host, repo, tag, Bytes::from(manifest), OCI_MANIFEST)
        .await?;
    Ok(())
}

/// Pushes v1 and v2 of `count` images into `host`; returns the repositories.
fn populate(
    host: &str,
    work: &Path,
    size: u64,
    count: usize,
    changed: usize,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared_size = (size / 10).max(1024);
    let own_size = ((size - shared_size.min(size)) / count as u64).max(1024);
    let shared = layer(work, shared_size, seed)?;
    let mut repos = Vec::new();
    for i in 0..count {
        let repo = format!("delta/img{i}");
        let own = layer(work, own_size, seed + 1 + i as u64)?;
        rt.block_on(push_image(&client, host, &repo, "v1", &[&shared, &own]))?;
        if i < changed {
            let own2 = layer(work, own_size, seed + 10_000 + i as u64)?;
            rt.block_on(push_image(&client, host, &repo, "v2", &[&shared, &own2]))?;
        } else {
            rt.block_on(push_image(&client, host, &repo, "v2", &[&shared, &own]))?;
        }
        repos.push(repo);
    }
    Ok(repos)
}

/// Runs `sealos ARGS` with the local store `store`, failing with its stderr; returns its stderr.
fn sealos_in(store: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(sealos_binary()?)
        .args(args)
        .env("SEALOS_ROOT", store)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .context("cannot run sealos")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("sealos {args:?} failed with {}: {stderr}", out.status);
    }
    Ok(stderr)
}

/// Bytes of the regular files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

struct Setup {
    /// Kept running for the rows.
    src: Server,
    /// The local store the cluster images are built into.
    store: PathBuf,
    /// The inventory of the site holding cluster image v1.
    cluster_inventory: PathBuf,
    /// `host/repo:v2` of every image.
    v2: Vec<String>,
    inventory: PathBuf,
    yaml: PathBuf,
    work: PathBuf,
}

impl Setup {
    fn sealos(&self, args: &[&str]) -> anyhow::Result<String> {
        sealos_in(&self.store, args)
    }

    /// A timed `sealos registry save` of v2 into a fresh `name` directory (`--inventory` when `delta`); the
    /// cluster image from the local store when `cluster`.
    fn save(&self, row: &str, name: &str, delta: bool, cluster: bool) -> anyhow::Result<()> {
        let dir = self.work.join(name);
        untimed(|| std::fs::remove_dir_all(&dir).ok());
        let images = self.v2.join(",");
        let mut args = if cluster {
            vec!["registry", "save", "--store-images", CLUSTER_V2]
        } else {
            vec![
                "registry",
                "save",
                "--images",
                &images,
                "--tls-verify=false",
            ]
        };
        let dir_s = dir.to_string_lossy().into_owned();
        args.extend(["--registry-dir", &dir_s]);
        let inv = if cluster {
            &self.cluster_inventory
        } else {
            &self.inventory
        };
        let inv = inv.to_string_lossy().into_owned();
        if delta {
            args.extend(["--inventory", &inv]);
        }
        self.sealos(&args)?;
        let what = if delta { "ours (delta)" } else { "whole" };
        untimed(|| eprintln!("{row}: {what} delivers {} bytes", bytes_under(&dir)));
        Ok(())
    }
}

const CLUSTER_V1: &str = "bench/cluster:v1";
const CLUSTER_V2: &str = "bench/cluster:v2";

/// Builds cluster image v1 and v2 (one manifest file changed) into `store` from a context of `size` bytes of
/// /usr files, saves v1 whole as a site and takes its inventory; returns the inventory's path.
fn cluster_site(work: &Path, store: &Path, size: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let ctx = work.join("cluster-ctx");
    if !ctx.join("Kubefile").is_file() {
        let _ = std::fs::remove_dir_all(&ctx);
        data::realistic_tree(&ctx.join("usr"), size, seed)?;
        std::fs::create_dir_all(ctx.join("manifests"))?;
        std::fs::write(
            ctx.join("Kubefile"),
            "FROM scratch\nCOPY usr/ /opt/usr/\nCOPY manifests manifests/\nCMD [\"kubectl apply -f manifests\"]\n",
        )?;
    }
    let manifest = ctx.join("manifests/app.yaml");
    let ctx_s = ctx.to_string_lossy().into_owned();
    for (tag, version) in [(CLUSTER_V1, "1"), (CLUSTER_V2, "2")] {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  version: \"{version}\"\n"
            ),
        )?;
        sealos_in(store, &["build", "-q", "-t", tag, &ctx_s])?;
    }
    let site = work.join("cluster-site");
    let _ = std::fs::remove_dir_all(&site);
    let site_s = site.to_string_lossy().into_owned();
    sealos_in(
        store,
        &[
            "registry",
            "save",
            "--store-images",
            CLUSTER_V1,
            "--registry-dir",
            &site_s,
        ],
    )?;
    let inventory = work.join("cluster-site-inventory.json");
    sealos_in(
        store,
        &[
            "registry",
            "inventory",
            &site_s,
            "-o",
            &inventory.to_string_lossy(),
        ],
    )?;
    Ok(inventory)
}

/// Starts the source, pushes v1 and v2, saves v1 as the site, takes its inventory, and builds the rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let count = env_count("SEALOS_BENCH_DELTA_IMAGES", 10).max(1);
    let changed = env_count("SEALOS_BENCH_DELTA_CHANGED", 1).min(count);
    let work = ctx.work.join("delta");
    std::fs::create_dir_all(&work)?;
    let src = ServerKind::Sealos.start_fs(&work, None)?;
    eprintln!(
        "delta: pushing v1 and v2 of {count} images ({} bytes each version, {changed} changed in v2) into {}",
        ctx.size, src.host
    );
    let repos = populate(&src.host, &work, ctx.size, count, changed, ctx.seed)?;
    let store = work.join("store");
    eprintln!(
        "delta: building cluster image v1 and v2 from {} bytes of /usr files",
        ctx.size
    );
    let cluster_inventory = cluster_site(&work, &store, ctx.size, ctx.seed)?;
    let sealos = |args: &[&str]| sealos_in(&store, args);
    let site = work.join("site");
    let _ = std::fs::remove_dir_all(&site);
    let v1: Vec<String> = repos
        .iter()
        .map(|r| format!("{}/{r}:v1", src.host))
        .collect();
    let site_s = site.to_string_lossy().into_owned();
    sealos(&[
        "registry",
        "save",
        "--images",
        &v1.join(","),
        "--tls-verify=false",
        "--registry-dir",
        &site_s,
    ])?;
    let inventory = work.join("site-inventory.json");
    sealos(&[
        "registry",
        "inventory",
        &site_s,
        "-o",
        &inventory.to_string_lossy(),
    ])?;
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", src.host);
    for repo in &repos {
        yaml.push_str(&format!("    {repo}: [\"v2\"]\n"));
    }
    let yaml_path = work.join("sync-v2.yaml");
    std::fs::write(&yaml_path, yaml)?;
    let v2 = repos
        .iter()
        .map(|r| format!("{}/{r}:v2", src.host))
        .collect();
    let setup = Rc::new(Setup {
        src,
        store: store.clone(),
        cluster_inventory,
        v2,
        inventory,
        yaml: yaml_path,
        work: work.clone(),
    });
    // The delivery's own summary, once.
    {
        let dir = work.join("delta-probe");
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = sealos(&[
            "registry",
            "save",
            "--images",
            &setup.v2.join(","),
            "--tls-verify=false",
            "--registry-dir",
            &dir.to_string_lossy(),
            "--inventory",
            &setup.inventory.to_string_lossy(),
        ])?;
        for line in stderr.lines().filter(|l| l.starts_with("delta:")) {
            eprintln!("delta (images of {}): {line}", setup.src.host);
        }
        std::fs::remove_dir_all(&dir)?;
        let stderr = sealos(&[
            "registry",
            "save",
            "--store-images",
            CLUSTER_V2,
            "--registry-dir",
            &dir.to_string_lossy(),
            "--inventory",
            &setup.cluster_inventory.to_string_lossy(),
        ])?;
        for line in stderr.lines().filter(|l| l.starts_with("delta:")) {
            eprintln!("delta (cluster image {CLUSTER_V2}): {line}");
        }
        std::fs::remove_dir_all(&dir)?;
    }
    let delta_job = |row: &'static str| {
        let s = setup.clone();
        Box::new(move || s.save(row, "out-delta", true, false)) as Job
    };
    let whole = {
        let s = setup.clone();
        Box::new(move || s.save(ROWS[0], "out-whole", false, false)) as Job
    };
    let cluster_delta = {
        let s = setup.clone();
        Box::new(move || s.save(ROWS[2], "out-cluster-delta", true, true)) as Job
    };
    let cluster_whole = {
        let s = setup.clone();
        Box::new(move || s.save(ROWS[2], "out-cluster-whole", false, true)) as Job
    };
    let skopeo = {
        let s = setup.clone();
        Box::new(move || {
            let dir = s.work.join("out-skopeo");
            untimed(|| std::fs::remove_dir_all(&dir).ok());
            std::fs::create_dir_all(&dir)?;
            crate::harness::shell(&format!(
                "skopeo sync --src yaml --dest dir {} {}",
                quote(&s.yaml.to_string_lossy()),
                quote(&dir.to_string_lossy())
            ))()?;
            untimed(|| {
                eprintln!(
                    "{}: skopeo sync delivers {} bytes",
                    ROWS[1],
                    bytes_under(&dir)
                )
            });
            Ok(())
        }) as Job
    };
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: delta_job(ROWS[0]),
            peer_name: "whole save".into(),
            peer: whole,
        },
        Pair {
            id: ROWS[1].into(),
            ours: delta_job(ROWS[1]),
            peer_name: "skopeo sync".into(),
            peer: skopeo,
        },
        Pair {
            id: ROWS[2].into(),
            ours: cluster_delta,
            peer_name: "whole save".into(),
            peer: cluster_whole,
        },
    ])
}
