//! Rows B1 and B2: `sealos build` of a realistic context (copies of /usr/bin and /usr/lib plus YAML manifests,
//! at most 300 MiB: `--size` caps it) against `buildah bud --storage-driver vfs`, with the Kubefile
//! `FROM scratch` + `COPY . .` that both understand.
//!
//! B1 (`build-cold-vs-buildah`) builds into a fresh store each run (buildah: a fresh `--root`). Buildah's vfs
//! store keeps layers uncompressed, so B1 builds ours with `--compression none` too: the same work (tar,
//! digests, layer on disk). B1z (`build-cold-zstd-vs-buildah`) is the same build with zstd level 3 layers,
//! what `--compression zstd` gives, which also compresses (about 2.5x smaller here). B2
//! (`build-touch-vs-buildah`) touches one small file, then rebuilds into a warm store (zstd; buildah with
//! `--layers`).
//! The previous run's output is moved aside inside the timed job (a rename) and removed when the rows end.
//!
//! Both sides run as child processes under `/usr/bin/time`, so the table shows their peak memory (VmHWM):
//! ours re-executes this benchmark binary with [`CHILD_ENV`] set, which runs exactly one build through
//! [`builder::build::build`] (see [`child_main`]).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use builder::build::{BuildOptions, build};
use formats::layer::Compression;

use super::Context;
use crate::data;
use crate::harness::{Job, Pair, Side, measured_shell, quote};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "build-cold-vs-buildah",
    "build-cold-zstd-vs-buildah",
    "build-touch-vs-buildah",
];

/// Set to `CONTEXT\nSTORE\nCOMPRESSION`, makes the benchmark binary run one build and exit.
pub const CHILD_ENV: &str = "SEALOS_BENCH_BUILD";

/// In a child started with [`CHILD_ENV`]: runs that one build. `None` when not a child.
pub fn child_main() -> Option<anyhow::Result<()>> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    Some((|| {
        let parts: Vec<&str> = spec.split('\n').collect();
        let [context, store, compression] = parts.as_slice() else {
            bail!("{CHILD_ENV} must be CONTEXT\\nSTORE\\nCOMPRESSION, got {spec:?}");
        };
        let mut opts = options(Path::new(context), Path::new(store));
        opts.compression = match compression.strip_prefix("zstd:") {
            Some(level) => Compression::Zstd {
                level: level.parse().context("zstd level")?,
            },
            None => compression.parse()?,
        };
        build(&opts, &mut |_| {})?;
        Ok(())
    })())
}

/// The shell command running one build of ours as a child.
fn ours_command(context: &Path, store: &Path, compression: &str) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the benchmark binary to re-execute")?;
    let spec = format!("{}\n{}\n{compression}", context.display(), store.display());
    Ok(format!(
        "{CHILD_ENV}={} {}",
        quote(&spec),
        quote(&exe.to_string_lossy())
    ))
}

const MAX_CONTEXT: u64 = 300 << 20;
const KUBEFILE: &str = "FROM scratch\nCOPY . .\nCMD [\"kubectl apply -f manifests/\"]\n";

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
    let cold_ours = |compression: &str, store: &str| -> anyhow::Result<String> {
        let store = ctx.work.join(store);
        Ok(format!(
            "if [ -e {s} ]; then mv {s} {t}/ours-$(date +%s%N); fi; {build}",
            s = q(&store),
            t = q(&trash),
            build = ours_command(&context, &store, compression)?
        ))
    };
    let touch_ours = format!(
        "touch {} && {}",
        q(&touched),
        ours_command(&context, &warm_ours, "zstd")?
    );
    let scratch = &ctx.work;
    let row = |id: &str, ours: &str, peer_name: &str, peer: &str, cleanup: &Path| Pair {
        id: id.into(),
        ours: measured_shell(id, Side::Ours, ours, scratch),
        peer_name: peer_name.into(),
        peer: with_cleanup(
            measured_shell(id, Side::Peer, peer, scratch),
            cleanup.to_path_buf(),
        ),
    };
    Ok(vec![
        row(
            ROWS[0],
            &cold_ours("none", "build-cold-store")?,
            "buildah bud (vfs)",
            &cold_peer,
            Path::new(""),
        ),
        row(
            ROWS[1],
            &cold_ours("zstd", "build-cold-store-zstd")?,
            "buildah bud (vfs)",
            &cold_peer,
            &trash,
        ),
        row(
            ROWS[2],
            &touch_ours,
            "buildah bud --layers (vfs)",
            &touch_peer,
            &warm_peer,
        ),
    ])
}

/// The build options of these rows: `context` into `store`, zstd layers, timestamp 0, no registry and no
/// image embedding (buildah does not embed the manifests' images either).
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
        pull: builder::build::PullPolicy::Never,
        embed: builder::embed::EmbedOptions {
            save_image: false,
            ..builder::embed::EmbedOptions::default()
        },
        expansion_limit: formats::layer::ExpansionLimit::default(),
    }
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
