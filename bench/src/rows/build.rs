//! Rows B1 and B2: `sealos build` of a realistic context (copies of /usr/bin and /usr/lib plus YAML manifests,
//! at most 300 MiB: `--size` caps it) against `buildah bud --storage-driver vfs`, with the Kubefile
//! `FROM scratch` + `COPY . .` that both understand.
//!
//! B1 (`build-cold-vs-buildah`) builds into a fresh store each run (buildah: a fresh `--root`). B2
//! (`build-touch-vs-buildah`) touches one small file, then rebuilds into a warm store (buildah with `--layers`).
//! Ours writes zstd-compressed layers into an OCI layout; buildah writes uncompressed layers into its vfs store.
//! The previous run's output is moved aside inside the timed job (a rename) and removed when the rows end.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::Context as _;
use builder::build::{BuildOptions, build};
use formats::layer::Compression;

use super::Context;
use crate::data;
use crate::harness::{Job, Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["build-cold-vs-buildah", "build-touch-vs-buildah"];

const MAX_CONTEXT: u64 = 300 << 20;
const KUBEFILE: &str = "FROM scratch\nCOPY . .\nCMD [\"kubectl apply -f manifests/\"]\n";

static RUN: AtomicU64 = AtomicU64::new(0);

/// Prepares the context and returns the two rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let size = ctx.size.min(MAX_CONTEXT);
    let context = ctx.work.join(format!("build-context-{size}-{}", ctx.seed));
    if !context.exists() {
        data::realistic_tree(&context.join("files"), size, ctx.seed)?;
        let manifests = context.join("manifests");
        fs::create_dir_all(&manifests)?;
        for i in 0..200 {
            fs::write(
                manifests.join(format!("app-{i:03}.yaml")),
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\nspec:\n  replicas: 1\n  \
                     template:\n    spec:\n      containers:\n        - name: app\n          image: \
                     docker.io/library/nginx:1.25.{i}\n"
                ),
            )?;
        }
        fs::write(context.join("Kubefile"), KUBEFILE)?;
    }
    let trash = ctx.work.join("build-trash");
    fs::create_dir_all(&trash)?;
    let touched = context.join("manifests/app-000.yaml");
    let warm_ours = ctx.work.join("build-warm-store");
    let warm_peer = ctx.work.join("build-warm-buildah");
    let q = |p: &Path| quote(&p.to_string_lossy());
    let peer_bud = |root: &str, layers: &str| {
        format!(
            "buildah --storage-driver vfs --root {root} --runroot {root}/run bud {layers} --quiet -f {} -t x {}",
            q(&context.join("Kubefile")),
            q(&context)
        )
    };
    let cold_peer_root = ctx.work.join("build-cold-buildah");
    let cold_peer = format!(
        "if [ -e {r} ]; then mv {r} {t}/buildah-$(date +%s%N); fi; {bud}",
        r = q(&cold_peer_root),
        t = q(&trash),
        bud = peer_bud(&q(&cold_peer_root), "")
    );
    let touch_peer = format!(
        "touch {} && {}",
        q(&touched),
        peer_bud(&q(&warm_peer), "--layers")
    );
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: cold_ours(&context, &ctx.work.join("build-cold-store"), &trash),
            peer_name: "buildah bud (vfs)".into(),
            peer: with_cleanup(shell(&cold_peer), trash.clone()),
        },
        Pair {
            id: ROWS[1].into(),
            ours: touch_ours(&context, &warm_ours, &touched),
            peer_name: "buildah bud --layers (vfs)".into(),
            peer: with_cleanup(shell(&touch_peer), warm_peer),
        },
    ])
}

/// The build options of these rows: `context` into `store`, zstd layers, timestamp 0, no registry.
pub(super) fn options(context: &Path, store: &Path) -> BuildOptions {
    BuildOptions {
        store: store.to_path_buf(),
        context: context.to_path_buf(),
        kubefile: None,
        tags: vec!["bench/x:latest".into()],
        build_args: Vec::new(),
        labels: Vec::new(),
        env: Vec::new(),
        annotations: Vec::new(),
        platforms: Vec::new(),
        no_cache: false,
        timestamp: 0,
        compression: Compression::Zstd { level: 3 },
        outputs: Vec::new(),
        client: None,
        embed: builder::embed::EmbedOptions::default(),
    }
}

/// Ours, B1: move the previous store aside, build into a fresh one.
fn cold_ours(context: &Path, store: &Path, trash: &Path) -> Job {
    let (context, store, trash) = (
        context.to_path_buf(),
        store.to_path_buf(),
        trash.to_path_buf(),
    );
    with_cleanup(
        Box::new(move || {
            if store.exists() {
                let aside = trash.join(format!("ours-{}", RUN.fetch_add(1, Ordering::Relaxed)));
                fs::rename(&store, &aside).context("moving the previous store aside")?;
            }
            build(&options(&context, &store), &mut |_| {})?;
            Ok(())
        }),
        PathBuf::new(),
    )
}

/// Ours, B2: touch one small file, rebuild into the warm store.
fn touch_ours(context: &Path, store: &Path, touched: &Path) -> Job {
    let (context, store, touched) = (
        context.to_path_buf(),
        store.to_path_buf(),
        touched.to_path_buf(),
    );
    Box::new(move || {
        fs::File::options()
            .write(true)
            .open(&touched)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .context("touching the small file")?;
        build(&options(&context, &store), &mut |_| {})?;
        Ok(())
    })
}

/// Removes `dir` (when not empty) once the row's jobs are dropped.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::process::Command::new("rm")
                .arg("-rf")
                .arg(&self.0)
                .status();
        }
    }
}

/// `job`, removing `dir` (when not empty) once the job is dropped.
pub(super) fn with_cleanup(mut job: Job, dir: PathBuf) -> Job {
    let guard = Cleanup(dir);
    Box::new(move || {
        let _ = &guard;
        job()
    })
}
