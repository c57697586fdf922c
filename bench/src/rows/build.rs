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
//!
//! B1d is what users run: the default settings (gzip layers, block-parallel, see docs/build.md) against the
//! same buildah build, on the B1 context (`build-cold-default-vs-buildah`) and on a context of 50 MiB of
//! incompressible data (`build-cold-default-random-vs-buildah`), where deflate finds nothing and costs most.
//! B5 (`build-push-vs-buildah`) is a cold build with default settings then a push to a fresh
//! `docker-registry` (started untimed before each run, so every blob is sent), against `buildah bud` + `buildah push`;
//! after each run the bytes the pushed manifest references (config and layers) go to stderr for both sides.
//! B2d (`build-edit-default-vs-buildah`) is B2 with the default settings where it costs: one manifest's content
//! changes (a line appended, so no cache can skip it) and the one `COPY . .` layer is rebuilt with gzip, into a
//! warm store (buildah with `--layers`, its own warm root).
//! The previous run's output is moved aside inside the timed job (a rename into the trash directory, created
//! again if a dropped row's cleanup removed it: a run must never build into the previous run's store) and
//! removed when the rows end.
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
use super::registry::{ServerKind, sealos_binary};
use crate::data;
use crate::harness::{Job, Pair, Side, measured_shell, quote, shell, untimed};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "build-cold-vs-buildah",
    "build-cold-zstd-vs-buildah",
    "build-touch-vs-buildah",
    "build-cold-default-vs-buildah",
    "build-cold-default-random-vs-buildah",
    "build-push-vs-buildah",
    "build-edit-default-vs-buildah",
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
/// Size of the incompressible context of B1d.
const RANDOM_CONTEXT: u64 = 50 << 20;
/// Files the incompressible context is split into.
const RANDOM_FILES: u64 = 5;
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
    let random_context = ctx.work.join(format!(
        "build-context-random-{RANDOM_CONTEXT}-{}",
        ctx.seed
    ));
    if !random_context.exists() {
        let files = random_context.join("files");
        fs::create_dir_all(&files)?;
        for i in 0..RANDOM_FILES {
            data::random_file(&files, RANDOM_CONTEXT / RANDOM_FILES, ctx.seed + i)?;
        }
        fs::write(random_context.join("Kubefile"), KUBEFILE)?;
    }
    let trash = ctx.work.join("build-trash");
    fs::create_dir_all(&trash)?;
    let touched = context.join("manifests/app-000.yaml");
    let warm_ours = ctx.work.join("build-warm-store");
    let warm_peer = ctx.work.join("build-warm-buildah");
    let q = |p: &Path| quote(&p.to_string_lossy());
    let bud_of = |context: &Path, root: &str, layers: &str| {
        format!(
            "buildah --storage-driver vfs --root {root} --runroot {root}/run bud {layers} --quiet -f {} -t x {}",
            q(&context.join("Kubefile")),
            q(context)
        )
    };
    let peer_bud = |root: &str, layers: &str| bud_of(&context, root, layers);
    let cold_peer_of = |context: &Path, root: &str| {
        let root = ctx.work.join(root);
        format!(
            "if [ -e {r} ]; then mkdir -p {t} && mv {r} {t}/buildah-$(date +%s%N) || exit 1; fi; {bud}",
            r = q(&root),
            t = q(&trash),
            bud = bud_of(context, &q(&root), "")
        )
    };
    let cold_peer = cold_peer_of(&context, "build-cold-buildah");
    let touch_peer = format!(
        "touch {} && {}",
        q(&touched),
        peer_bud(&q(&warm_peer), "--layers")
    );
    let cold_ours_of = |context: &Path, compression: &str, store: &str| -> anyhow::Result<String> {
        let store = ctx.work.join(store);
        Ok(format!(
            "if [ -e {s} ]; then mkdir -p {t} && mv {s} {t}/ours-$(date +%s%N) || exit 1; fi; {build}",
            s = q(&store),
            t = q(&trash),
            build = ours_command(context, &store, compression)?
        ))
    };
    let cold_ours = |compression: &str, store: &str| cold_ours_of(&context, compression, store);
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
    let mut rows = vec![
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
        // B1d: the default compression (gzip), what `sealos build` does without flags.
        row(
            ROWS[3],
            &cold_ours("gzip", "build-cold-store-default")?,
            "buildah bud (vfs)",
            &cold_peer,
            Path::new(""),
        ),
        row(
            ROWS[4],
            &cold_ours_of(&random_context, "gzip", "build-cold-store-random")?,
            "buildah bud (vfs)",
            &cold_peer_of(&random_context, "build-cold-buildah-random"),
            Path::new(""),
        ),
    ];
    rows.push(build_push_pair(ctx, &context, &trash)?);
    // B2d: a content change in the one `COPY . .` layer, default settings, warm stores of their own.
    let edited = context.join("manifests/app-001.yaml");
    let edit = format!("echo \"# edit $(date +%s%N)\" >> {}", q(&edited));
    let edit_peer_root = ctx.work.join("build-warm-buildah-default");
    rows.push(row(
        ROWS[6],
        &format!(
            "{edit} && {}",
            ours_command(&context, &ctx.work.join("build-warm-store-default"), "gzip")?
        ),
        "buildah bud --layers (vfs)",
        &format!("{edit} && {}", peer_bud(&q(&edit_peer_root), "--layers")),
        &edit_peer_root,
    ));
    Ok(rows)
}

/// B5: a cold build with default settings, then a push of the image to a fresh local `docker-registry`, for
/// ours and for buildah.
fn build_push_pair(ctx: &Context, context: &Path, trash: &Path) -> anyhow::Result<Pair> {
    let sealos = sealos_binary()?;
    let q = |p: &Path| quote(&p.to_string_lossy());
    let store = ctx.work.join("build-push-store");
    let root = ctx.work.join("build-push-buildah");
    let build_ours = format!(
        "if [ -e {s} ]; then mkdir -p {t} && mv {s} {t}/ours-$(date +%s%N) || exit 1; fi; {build}",
        s = q(&store),
        t = q(trash),
        build = ours_command(context, &store, "gzip")?
    );
    let build_peer = format!(
        "if [ -e {r} ]; then mkdir -p {t} && mv {r} {t}/buildah-$(date +%s%N) || exit 1; fi; \
         buildah --storage-driver vfs --root {r} --runroot {r}/run bud --quiet -f {} -t x {}",
        q(&context.join("Kubefile")),
        q(context),
        r = q(&root),
        t = q(trash),
    );
    let work = ctx.work.clone();
    let ours = Box::new(move || {
        push_to_fresh_registry(&work, "build-push: ours", "b5/ours", |dest| {
            shell(&format!(
                "{build_ours} && {} --root {} push bench/x:latest {dest} --insecure",
                quote(&sealos.to_string_lossy()),
                q(&store)
            ))()
        })
    }) as Job;
    let work = ctx.work.clone();
    let peer = Box::new(move || {
        push_to_fresh_registry(&work, "build-push: buildah", "b5/buildah", |dest| {
            shell(&format!(
                "{build_peer} && buildah --storage-driver vfs --root {r} --runroot {r}/run push --quiet \
                 --tls-verify=false x docker://{dest}",
                r = q(&root)
            ))()
        })
    }) as Job;
    Ok(Pair {
        id: ROWS[5].into(),
        ours,
        peer_name: "buildah bud + buildah push (vfs)".into(),
        peer: with_cleanup(peer, trash.to_path_buf()),
    })
}

/// Starts a fresh `docker-registry` (untimed), runs `push` to `HOST/repo:latest` (timed), reports the bytes
/// pushed and stops the registry (untimed). A fresh registry per run, because a second push to the same one
/// is not the same work: containers/image remembers where it pushed a blob and mounts it from there instead.
pub(super) fn push_to_fresh_registry(
    work: &Path,
    side: &str,
    repo: &str,
    push: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let registry = untimed(|| ServerKind::DockerRegistry.start_fs(work, None))?;
    let dest = format!("{}/{repo}:latest", registry.host);
    push(&dest)?;
    untimed(|| {
        let reported = report_pushed(side, &dest);
        drop(registry);
        reported
    })
}

/// Prints to stderr the bytes the manifest at `dest` references (config and layers): what a push sent.
pub(super) fn report_pushed(side: &str, dest: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{dest}"))
        .output()
        .context("cannot run `skopeo inspect` (apt-get install skopeo)")?;
    if !out.status.success() {
        bail!(
            "`skopeo inspect --raw docker://{dest}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("the manifest of {dest} is not JSON"))?;
    let size = |v: &serde_json::Value| v["size"].as_u64().unwrap_or(0);
    let layers: Vec<u64> = manifest["layers"]
        .as_array()
        .map(|l| l.iter().map(size).collect())
        .unwrap_or_default();
    eprintln!(
        "{side} pushed {} bytes (config {} + {} layers {:?}) to {dest}",
        size(&manifest["config"]) + layers.iter().sum::<u64>(),
        size(&manifest["config"]),
        layers.len(),
        layers
    );
    Ok(())
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
