//! Rows B3 and B4: `sealos build` of a context whose `images/shim/list` names 20 images (`--size` bytes in
//! total, generated and pushed once into a local `docker-registry`, as for the mirror rows: one layer shared by
//! all, 10% of the size, and one of each image's own), against what sealos does today: `skopeo sync` of the
//! same images (one process, `--src yaml`) into a `docker-registry` whose storage is the context's `registry/`
//! directory, then `buildah bud --storage-driver vfs` of that context (`COPY . .`).
//!
//! - `embed-cold-vs-buildah-skopeo` (B3): ours builds into a fresh store with no lock; the peer starts from
//!   an empty `registry/` and a fresh buildah root.
//! - `embed-rebuild-vs-buildah-skopeo` (B4): nothing changed; ours rebuilds into the warm store with the lock
//!   (the row fails unless the build reports zero pulls, i.e. no request upstream); the peer re-runs the sync
//!   into the filled directory and `buildah bud --layers` into its warm root.
//!
//! Ours writes each image as its own uncompressed layer (a shared blob is in every layer that needs it, see
//! docs/embedding.md), so ours writes more bytes than the peer when images share layers, as here.
//! `SEALOS_BENCH_EMBED_IMAGES` changes the image count (default 20).

use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, bail};
use builder::build::{BuildOptions, BuildReport, Progress};
use builder::embed::EmbedOptions;
use registry::client::{ClientOptions, RegistryClient};

use super::Context;
use super::build::with_cleanup;
use super::mirror::populate;
use super::registry::{Server, ServerKind};
use crate::harness::{Job, Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "embed-cold-vs-buildah-skopeo",
    "embed-rebuild-vs-buildah-skopeo",
];

const KUBEFILE: &str = "FROM scratch\nCOPY . .\nCMD [\"kubectl apply -f manifests/\"]\n";

static RUN: AtomicU64 = AtomicU64::new(0);

struct Setup {
    upstream: Server,
    peer_registry: Server,
    client: RegistryClient,
    ours_ctx: PathBuf,
    peer_ctx: PathBuf,
    yaml: PathBuf,
    trash: PathBuf,
}

fn options(s: &Setup, store: &Path) -> BuildOptions {
    BuildOptions {
        tags: vec!["bench/embed:latest".into()],
        client: Some(s.client.clone()),
        embed: EmbedOptions::default(),
        ..super::build::options(&s.ours_ctx, store)
    }
}

impl Setup {
    fn aside(&self, path: &Path) -> anyhow::Result<()> {
        if path.exists() {
            let dest = self
                .trash
                .join(format!("run-{}", RUN.fetch_add(1, Ordering::Relaxed)));
            fs::rename(path, &dest).with_context(|| format!("moving {} aside", path.display()))?;
        }
        Ok(())
    }

    fn sync_and_bud(&self, root: &Path, layers: &str) -> anyhow::Result<()> {
        shell(&format!(
            "skopeo sync --src yaml --dest docker --dest-tls-verify=false {} {}",
            quote(&self.yaml.to_string_lossy()),
            self.peer_registry.host
        ))()?;
        let root = quote(&root.to_string_lossy());
        shell(&format!(
            "buildah --storage-driver vfs --root {root} --runroot {root}/run bud {layers} --quiet -f {} -t x {}",
            quote(&self.peer_ctx.join("Kubefile").to_string_lossy()),
            quote(&self.peer_ctx.to_string_lossy())
        ))()
    }
}

/// Pushes the images, writes both contexts and returns the two rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let count: usize = std::env::var("SEALOS_BENCH_EMBED_IMAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .max(1);
    let work = ctx.work.join("embed");
    let trash = work.join("trash");
    fs::create_dir_all(&trash)?;
    let ours_ctx = work.join("ours-ctx");
    let peer_ctx = work.join("peer-ctx");
    for c in [&ours_ctx, &peer_ctx] {
        fs::create_dir_all(c.join("manifests"))?;
        fs::write(c.join("Kubefile"), KUBEFILE)?;
        fs::write(c.join("manifests/app.yaml"), "kind: Pod\n")?;
    }
    fs::create_dir_all(peer_ctx.join("registry"))?;
    let (upstream, client, repos) = upstream_with_images(ctx, &work, &ours_ctx, count, "embed")?;
    let peer_registry =
        ServerKind::DockerRegistry.start_fs(&work, Some(&peer_ctx.join("registry")))?;
    let mut yaml = format!("{}:\n  tls-verify: false\n  images:\n", upstream.host);
    for repo in &repos {
        yaml.push_str(&format!("    {repo}: [\"v1\"]\n"));
    }
    let yaml_path = work.join("sync.yaml");
    fs::write(&yaml_path, yaml)?;
    let setup = Rc::new(Setup {
        upstream,
        peer_registry,
        client,
        ours_ctx,
        peer_ctx,
        yaml: yaml_path,
        trash: trash.clone(),
    });

    // B4: both sides warmed once before timing.
    let warm_store = work.join("warm-store");
    let warm_root = work.join("warm-buildah");
    build(&options(&setup, &warm_store), &mut |_| {})?;
    setup.sync_and_bud(&warm_root, "--layers")?;

    let cold_store = work.join("cold-store");
    let cold_root = work.join("cold-buildah");
    let cold_ours = {
        let s = setup.clone();
        Box::new(move || {
            s.aside(&cold_store)?;
            let _ = fs::remove_file(s.ours_ctx.join(builder::embed::lock::LOCK_FILE));
            build(&options(&s, &cold_store), &mut |_| {})?;
            Ok(())
        }) as Job
    };
    let cold_peer = {
        let s = setup.clone();
        Box::new(move || {
            s.aside(&cold_root)?;
            let registry = s.peer_ctx.join("registry");
            s.aside(&registry)?;
            fs::create_dir_all(&registry)?;
            s.sync_and_bud(&cold_root, "")
        }) as Job
    };
    let warm_ours = {
        let s = setup.clone();
        Box::new(move || {
            let report = build(&options(&s, &warm_store), &mut |_| {})?;
            if report.pulled != 0 {
                bail!(
                    "the rebuild asked the upstream {} for {} images; it must ask nothing",
                    s.upstream.host,
                    report.pulled
                );
            }
            Ok(())
        }) as Job
    };
    let warm_peer = {
        let s = setup.clone();
        Box::new(move || s.sync_and_bud(&warm_root, "--layers")) as Job
    };
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: with_cleanup(cold_ours, trash),
            peer_name: "skopeo sync + buildah bud (vfs)".into(),
            peer: cold_peer,
        },
        Pair {
            id: ROWS[1].into(),
            ours: warm_ours,
            peer_name: "skopeo sync + buildah bud --layers (vfs)".into(),
            peer: warm_peer,
        },
    ])
}

/// The runtime the rows' registry clients run on, for as long as the benchmark runs (a client's connections
/// belong to the runtime that made them).
fn runtime() -> anyhow::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(RUNTIME.get_or_init(|| built))
}

/// [`builder::build::build`] with its pulls on [`runtime`], as the CLI runs it.
pub(super) fn build(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> anyhow::Result<BuildReport> {
    let _entered = runtime()?.enter();
    Ok(builder::build::build(opts, progress)?)
}

/// Starts a docker-registry under `work` holding `count` generated images of `ctx.size` bytes in all, and lists
/// them in `ours_ctx/images/shim/list` (the images a cluster image built from `ours_ctx` embeds). Returns the
/// registry, a client for it and the repositories.
pub(super) fn upstream_with_images(
    ctx: &Context,
    work: &Path,
    ours_ctx: &Path,
    count: usize,
    row: &str,
) -> anyhow::Result<(Server, RegistryClient, Vec<String>)> {
    let upstream = ServerKind::DockerRegistry.start_fs(work, None)?;
    let client = RegistryClient::new(ClientOptions {
        tls_verify: false,
        ..ClientOptions::default()
    })?;
    eprintln!(
        "{row}: pushing {count} images ({} bytes in total) into {}",
        ctx.size, upstream.host
    );
    let repos = runtime()?.block_on(populate(
        &client,
        &upstream.host,
        work,
        ctx.size,
        count,
        ctx.seed,
    ))?;
    let list: String = repos
        .iter()
        .map(|r| format!("{}/{r}:v1\n", upstream.host))
        .collect();
    fs::create_dir_all(ours_ctx.join("images/shim"))?;
    fs::write(ours_ctx.join("images/shim/list"), list)?;
    Ok((upstream, client, repos))
}
