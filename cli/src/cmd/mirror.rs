//! `sealos registry save|sync|copy`: air-gap mirroring of images into Distribution-layout directories and
//! registries, plus the client options, progress display and failure reporting every image-moving command
//! (`pull`, `push`, `manifest push`) shares.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow, bail};
use formats::digest::Digest;
use formats::layer::ExpansionLimit;
use formats::manifest::Platform;
use formats::oci_layout::OciLayout;
use registry::client::{ClientOptions, ProgressCallback, RegistryClient};
use registry::mirror::tars::TarImage;
use registry::mirror::{
    ImageJob, ImageReport, Location, Mirror, MirrorOptions, Outcome, PlatformFilter, Summary,
};

use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Registry access options shared by every command that talks to a registry.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Verify TLS certificates and require HTTPS [default: true]. `--tls-verify=false` tries HTTPS without
    /// verifying the certificate first, then plain HTTP if the registry speaks it. Loopback registries
    /// (localhost, 127.0.0.0/8, ::1) are treated so unless --tls-verify is given, as docker and podman do.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_name = "BOOL")]
    pub tls_verify: Option<bool>,
    /// A directory of CA certificates (`*.crt`, PEM) to trust and a client certificate (`NAME.cert` with
    /// `NAME.key`) for every registry, instead of the per-registry `/etc/containers/certs.d/HOST:PORT/` (also
    /// `~/.config/containers/certs.d`, `/etc/docker/certs.d`).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// A registries.conf to use instead of /etc/containers/registries.conf.
    #[arg(long, value_name = "FILE")]
    pub registries_conf: Option<PathBuf>,
    /// Credentials file (containers auth.json format) searched before the standard ones.
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

impl ClientArgs {
    /// Client options from these flags and the environment.
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        let mut opts = ClientOptions::from_env()?;
        if let Some(conf) = &self.registries_conf {
            opts = opts.with_registries_conf(conf.clone())?;
        }
        if let Some(f) = &self.authfile {
            opts.credential_files.files.insert(0, f.clone());
        }
        match self.tls_verify {
            None => opts.insecure_loopback = true,
            Some(verify) => opts.tls_verify = verify,
        }
        if let Some(dir) = &self.cert_dir {
            if !dir.is_dir() {
                bail!(
                    "--cert-dir {}: not a directory (it should hold the registries' CA certificates as *.crt files)",
                    dir.display()
                );
            }
            opts.cert_dirs.explicit = Some(dir.clone());
        }
        Ok(opts)
    }

    /// A client with progress bars when stderr is a terminal.
    pub fn client(&self, progress: &Progress) -> anyhow::Result<RegistryClient> {
        let mut opts = self.options()?;
        opts.progress = progress.callback();
        Ok(RegistryClient::new(opts)?)
    }

    /// These flags with `--tls-verify` replaced by `side` when it is given (`--src-tls-verify`,
    /// `--dest-tls-verify`).
    pub fn with_tls_verify(&self, side: Option<bool>) -> ClientArgs {
        ClientArgs {
            tls_verify: side.or(self.tls_verify),
            ..self.clone()
        }
    }
}

/// `--src-tls-verify` and `--dest-tls-verify` of save, sync and copy (skopeo's names): `--tls-verify` for
/// one side only, when that side is a registry.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsSideArgs {
    /// Like --tls-verify, for the source registry only (wins over --tls-verify there).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_name = "BOOL")]
    pub src_tls_verify: Option<bool>,
    /// Like --tls-verify, for the destination registry only (wins over --tls-verify there).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_name = "BOOL")]
    pub dest_tls_verify: Option<bool>,
}

impl TlsSideArgs {
    /// The source's and the destination's clients; one shared client when both sides verify alike.
    fn clients(
        &self,
        client: &ClientArgs,
        progress: &Progress,
    ) -> anyhow::Result<(RegistryClient, RegistryClient)> {
        let src = client.with_tls_verify(self.src_tls_verify);
        let dest = client.with_tls_verify(self.dest_tls_verify);
        let src_client = src.client(progress)?;
        if src.tls_verify == dest.tls_verify {
            return Ok((src_client.clone(), src_client));
        }
        Ok((src_client, dest.client(progress)?))
    }
}

/// What is drawn on a terminal: one bar per blob in flight and, for save/sync/copy, a total bar at the
/// bottom (images done of all, bytes moved).
struct Live {
    multi: indicatif::MultiProgress,
    /// The bar of each blob in flight and the bytes of it already counted in the total.
    blobs: Mutex<HashMap<Digest, (indicatif::ProgressBar, u64)>>,
    /// The total bar, once [`Progress::start_total`] was called.
    total: std::sync::OnceLock<indicatif::ProgressBar>,
    /// Blob bytes moved so far.
    bytes: std::sync::atomic::AtomicU64,
}

impl Live {
    fn blob_event(&self, ev: &registry::client::ProgressEvent, style: &indicatif::ProgressStyle) {
        use std::sync::atomic::Ordering;
        let mut map = self.blobs.lock().unwrap_or_else(|p| p.into_inner());
        let (bar, counted) = map.entry(ev.digest.clone()).or_insert_with(|| {
            let b = indicatif::ProgressBar::new(ev.total.unwrap_or(0));
            let b = match self.total.get() {
                Some(total) => self.multi.insert_before(total, b),
                None => self.multi.add(b),
            };
            b.set_style(style.clone());
            let hex = ev.digest.hex();
            let dir = match ev.direction {
                registry::client::Direction::Pull => "pull",
                registry::client::Direction::Push => "push",
            };
            b.set_prefix(format!("{dir} {}", &hex[..hex.len().min(12)]));
            (b, 0)
        });
        bar.set_position(ev.bytes_done);
        // A resumed or restarted transfer may report fewer bytes than before: count only growth.
        let delta = ev.bytes_done.saturating_sub(*counted);
        *counted = (*counted).max(ev.bytes_done);
        let moved = self.bytes.fetch_add(delta, Ordering::Relaxed) + delta;
        if let Some(total) = self.total.get() {
            total.set_message(format!("{} moved", human_bytes(moved)));
        }
        if ev.total.is_some_and(|t| ev.bytes_done >= t) {
            bar.finish_and_clear();
            map.remove(&ev.digest);
        }
    }
}

/// Progress on a terminal (per-blob bars and a total bar); one line per image otherwise.
pub struct Progress {
    live: Option<Arc<Live>>,
}

impl Progress {
    /// No bars and no lines, for `-q`.
    pub fn hidden() -> Self {
        Progress { live: None }
    }

    /// Bars when stderr is a terminal.
    pub fn new() -> Self {
        let live = std::io::stderr()
            .is_terminal()
            .then(|| Self::live(indicatif::MultiProgress::new()));
        Progress { live }
    }

    fn live(multi: indicatif::MultiProgress) -> Arc<Live> {
        Arc::new(Live {
            multi,
            blobs: Mutex::new(HashMap::new()),
            total: std::sync::OnceLock::new(),
            bytes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Shows the total bar (images done of `images`, bytes moved) below the blob bars; only on a terminal.
    pub fn start_total(&self, images: usize) {
        let Some(live) = &self.live else { return };
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {pos}/{len} images, {msg} [{elapsed_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = live.multi.add(indicatif::ProgressBar::new(images as u64));
        bar.set_style(style);
        bar.set_prefix("total");
        bar.set_message(format!(
            "{} moved",
            human_bytes(live.bytes.load(std::sync::atomic::Ordering::Relaxed))
        ));
        let _already = live.total.set(bar);
    }

    /// Ends the total bar, leaving its last state on screen.
    pub fn finish_total(&self) {
        if let Some(total) = self.live.as_ref().and_then(|l| l.total.get()) {
            total.finish();
        }
    }

    fn callback(&self) -> Option<ProgressCallback> {
        let live = self.live.clone()?;
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        Some(Arc::new(move |ev: registry::client::ProgressEvent| {
            live.blob_event(&ev, &style);
        }))
    }

    /// Prints a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match &self.live {
            Some(live) => {
                if live.multi.println(line).is_err() {
                    eprintln!("{line}");
                }
            }
            None => eprintln!("{line}"),
        }
    }

    /// The per-image callback: one line per image on stderr, and a step of the total bar.
    pub fn image_callback(self: &Arc<Self>) -> registry::mirror::ImageCallback {
        let me = self.clone();
        Arc::new(move |r: &ImageReport| {
            me.println(&image_line(r));
            if let Some(total) = me.live.as_ref().and_then(|l| l.total.get()) {
                total.inc(1);
            }
        })
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// One line describing what happened to an image.
pub fn image_line(r: &ImageReport) -> String {
    match &r.outcome {
        Outcome::Copied {
            digest,
            bytes,
            referrers,
        } => {
            let refs = if *referrers > 0 {
                format!(", {referrers} referrers")
            } else {
                String::new()
            };
            format!(
                "copied {} -> {} ({digest}, {}{refs})",
                r.source,
                r.destination,
                human_bytes(*bytes)
            )
        }
        Outcome::Skipped { digest } => {
            format!(
                "skipped {} (identical at {}: {digest})",
                r.source, r.destination
            )
        }
        Outcome::WouldCopy { digest } => {
            format!("would copy {} -> {} ({digest})", r.source, r.destination)
        }
        Outcome::Failed(cause) => format!("FAILED {}: {cause}", r.source),
    }
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A multi-threaded tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `jobs` into `dest` and turns failures into an error naming each failed image.
pub fn run_jobs(
    rt: &tokio::runtime::Runtime,
    dest: Location,
    jobs: Vec<ImageJob>,
    mut opts: MirrorOptions,
    progress: &Arc<Progress>,
) -> Vec<ImageReport> {
    let line = progress.image_callback();
    // A single image's failure is the command's error, printed once by `fail_if_any`.
    opts.on_image = Some(if jobs.len() == 1 {
        Arc::new(move |r: &ImageReport| {
            if !matches!(r.outcome, Outcome::Failed(_)) {
                line(r)
            }
        })
    } else {
        line
    });
    progress.start_total(jobs.len());
    let mirror = Mirror::new(dest, opts);
    let reports = rt.block_on(mirror.run(jobs));
    progress.finish_total();
    reports
}

/// An error when any report failed, naming every failed image with its cause.
pub fn fail_if_any(reports: &[ImageReport]) -> anyhow::Result<()> {
    let failed: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(cause) => Some(format!("{}: {cause}", r.source)),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    if let [only] = &failed[..]
        && reports.len() == 1
    {
        bail!("{only}");
    }
    bail!(
        "{} of {} images failed:\n  {}",
        failed.len(),
        reports.len(),
        failed.join("\n  ")
    )
}

/// Platform selection flags of save, sync and copy.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlatformArgs {
    /// Copy only this architecture of multi-arch images (the single platform manifest is copied and
    /// tagged). Default: the host's architecture.
    #[arg(long, conflicts_with_all = ["all", "override_arch"])]
    pub arch: Option<String>,
    /// Copy whole multi-arch indexes, every platform.
    #[arg(long)]
    pub all: bool,
    /// Pick this architecture from multi-arch images instead of the host's (as skopeo's
    /// `--override-arch`).
    #[arg(long, conflicts_with = "all", value_name = "ARCH")]
    pub override_arch: Option<String>,
    /// Pick this operating system from multi-arch images instead of the host's (`linux`).
    #[arg(long, conflicts_with = "all", value_name = "OS")]
    pub override_os: Option<String>,
    /// Pick this variant (`v7`, `v8`) from multi-arch images; default: the first entry of the architecture.
    #[arg(long, conflicts_with = "all", value_name = "VARIANT")]
    pub override_variant: Option<String>,
}

impl PlatformArgs {
    /// The filter these flags ask for: every platform with `--all`, else the one platform from
    /// `--override-*`/`--arch`, the host's for what is not given.
    pub fn filter(&self) -> PlatformFilter {
        if self.all {
            return PlatformFilter::All;
        }
        let host = Platform::host();
        fn pick(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        PlatformFilter::Only {
            architecture: Some(
                pick(&self.override_arch)
                    .or(pick(&self.arch))
                    .unwrap_or(&host.architecture)
                    .to_string(),
            ),
            os: Some(pick(&self.override_os).unwrap_or(&host.os).to_string()),
            variant: pick(&self.override_variant).map(str::to_string),
        }
    }
}

/// The mirroring subcommands of `sealos registry`.
#[derive(Debug, clap::Subcommand)]
pub enum RegistryMirrorCommand {
    /// Save images into a directory in the Docker Distribution layout (what a registry serves).
    Save(SaveArgs),
    /// Copy every repository and tag of one registry or directory into another.
    Sync(SyncArgs),
    /// Copy one image into a registry.
    Copy(CopyArgs),
}

/// Arguments of `sealos registry save`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry save --registry-dir registry .
      save every image the build context in . names (images/shim, manifests, charts)
  sealos registry save --images docker.io/library/nginx:1.27,registry.k8s.io/pause:3.9 --arch arm64
  sealos registry save --tars oci-archive:app.tar@app:v1 --registry-dir out
  sealos registry save --images 127.0.0.1:5000/app:v1 --src-tls-verify=false --format json")]
pub struct SaveArgs {
    /// Build context whose images are saved: found as `sealos build` finds them (`images/shim/*` lists,
    /// `manifests/`, `charts/`; see docs/discovery.md), and its `images/skopeo/tar.txt` archives.
    pub context: Option<PathBuf>,
    /// Images to save (comma-separated), besides those of the context.
    #[arg(long, value_delimiter = ',')]
    pub images: Vec<String>,
    /// Image archives to save (comma-separated), besides the context's `images/skopeo/tar.txt`:
    /// `docker-archive:FILE[:REF]@NAME[:TAG]` or `oci-archive:FILE[:REF]@NAME[:TAG]`; saved as `NAME:TAG`
    /// (`latest` by default), or under the name stored in the archive (without its host) when `@NAME`
    /// is left out.
    #[arg(long, value_delimiter = ',', value_name = "ARCHIVE")]
    pub tars: Vec<String>,
    /// Output directory (Docker Distribution layout).
    #[arg(long, default_value = "registry", value_name = "DIR")]
    pub registry_dir: PathBuf,
    /// Platform selection.
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Images pulled at once.
    #[arg(long, default_value_t = 5)]
    pub max_pull_procs: usize,
    /// Output: `text` (a summary line on stderr) or `json` (one JSON document on stdout: the totals and
    /// one entry per image with `source`, `destination`, `status`, `digest`, `bytes`, `error`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// TLS verification of one side.
    #[command(flatten)]
    pub tls: TlsSideArgs,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `sealos registry sync`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry sync ./registry 127.0.0.1:5000
      push a saved directory into a registry
  sealos registry sync quay.io/org registry.local:5000/mirror --all --include '^app:'
  sealos registry sync src.example.com dst.example.com --src-tls-verify=false --dry-run --format json")]
pub struct SyncArgs {
    /// Source: a registry `host[:port][/prefix]` or a directory (Distribution layout).
    pub source: String,
    /// Destination: a registry `host[:port][/prefix]` or a directory.
    pub dest: String,
    /// Platform selection.
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Only `repo:tag` names matching one of these regular expressions.
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip `repo:tag` names matching any of these regular expressions.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// List what would be copied, copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Images copied at once.
    #[arg(long, default_value_t = 5)]
    pub max_procs: usize,
    /// Summary format: `text` (a table) or `json` (one JSON document: the totals and one entry per image
    /// with `source`, `destination`, `status`, `digest`, `bytes`, `error`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// TLS verification of one side.
    #[command(flatten)]
    pub tls: TlsSideArgs,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Arguments of `sealos registry copy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry copy docker.io/library/nginx:1.27 registry.local:5000
  sealos registry copy quay.io/org/app:v1 127.0.0.1:5000/mirror --all
  sealos registry copy 10.0.0.5:5000/app:v1 registry.local --src-tls-verify=false --format json")]
pub struct CopyArgs {
    /// The image to copy.
    pub image: String,
    /// Destination registry `host[:port][/prefix]`.
    pub dest: String,
    /// Platform selection.
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Output: `text` (a line on stderr) or `json` (one JSON object on stdout: `reference`, `source`,
    /// `destination`, `status`, `digest`, `bytes`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// TLS verification of one side.
    #[command(flatten)]
    pub tls: TlsSideArgs,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a `sealos registry` mirroring subcommand.
pub fn run_command(global: &GlobalArgs, command: &RegistryMirrorCommand) -> anyhow::Result<()> {
    match command {
        RegistryMirrorCommand::Save(a) => save(global, a),
        RegistryMirrorCommand::Sync(a) => sync(a),
        RegistryMirrorCommand::Copy(a) => copy(a),
    }
}

fn save(global: &GlobalArgs, args: &SaveArgs) -> anyhow::Result<()> {
    let mut images = Vec::new();
    let mut tars = Vec::new();
    if let Some(ctx) = &args.context {
        // The same discovery as `sealos build`: lists, manifests and charts, with `.sealignore` applied.
        let found =
            builder::discover::discover(ctx, &builder::discover::DiscoverOptions::default())
                .with_context(|| format!("discovering the images of `{}`", ctx.display()))?;
        // Read before the warnings are printed: an archive of tar.txt outside the context is an error here,
        // not discovery's "skipped".
        tars.extend(registry::mirror::tars::context_tars(ctx)?);
        for warning in &found.warnings {
            eprintln!("warning: {warning}");
        }
        images.extend(found.images.into_iter().map(|i| i.reference));
    }
    images.extend(
        args.images
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
    );
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    for spec in args.tars.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let t = registry::mirror::tars::parse_tar_spec(spec, &cwd)?;
        if !tars.contains(&t) {
            tars.push(t);
        }
    }
    if images.is_empty() && tars.is_empty() {
        bail!(
            "no images to save: give --images A,B, --tars ARCHIVE@NAME:TAG, or a context with \
             images/shim/* lists or images/skopeo/tar.txt"
        );
    }
    let progress = Arc::new(Progress::new());
    let client = args
        .client
        .with_tls_verify(args.tls.src_tls_verify)
        .client(&progress)?;
    let mut jobs = registry::mirror::save_jobs(&images, &client)?;
    std::fs::create_dir_all(&args.registry_dir)
        .with_context(|| format!("cannot create {}", args.registry_dir.display()))?;
    // Archives are read into a scratch OCI layout beside the output (same file system), removed after.
    let mut scratch = None;
    if !tars.is_empty() {
        let dir = scratch_dir_beside(&args.registry_dir)?;
        let tar_jobs = archive_jobs(&tars, dir.path(), global.expansion_limit())?;
        check_collisions(&jobs, &tar_jobs)?;
        jobs.extend(tar_jobs);
        scratch = Some(dir);
    }
    let dest = Location::Dir(Arc::new(formats::distribution::DistributionLayout::new(
        &args.registry_dir,
    )));
    let rt = runtime()?;
    let opts = MirrorOptions {
        platforms: args.platform.filter(),
        max_images: args.max_pull_procs,
        keep_pinned_index: true,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(&rt, dest, jobs, opts, &progress);
    if let Some(dir) = scratch {
        let path = dir.path().to_path_buf();
        dir.close()
            .with_context(|| format!("cannot remove the scratch directory {}", path.display()))?;
    }
    let s = Summary::of(&reports);
    match args.format {
        Format::Json => outln!("{}", reports_json(&reports, false))?,
        Format::Text => eprintln!(
            "saved {} images ({} already there) into {}, {} transferred",
            s.copied,
            s.skipped,
            args.registry_dir.display(),
            human_bytes(s.bytes)
        ),
    }
    fail_if_any(&reports)
}

/// One image's report as JSON: `source`, `destination`, `status` (`copied`, `skipped`, `would-copy`,
/// `failed`), `digest`, `bytes`, `referrers`, `error`.
pub fn report_json(r: &ImageReport) -> serde_json::Value {
    let (status, digest, bytes, referrers, error) = match &r.outcome {
        Outcome::Copied {
            digest,
            bytes,
            referrers,
        } => ("copied", Some(digest.to_string()), *bytes, *referrers, None),
        Outcome::WouldCopy { digest } => ("would-copy", Some(digest.to_string()), 0, 0, None),
        Outcome::Skipped { digest } => ("skipped", Some(digest.to_string()), 0, 0, None),
        Outcome::Failed(e) => ("failed", None, 0, 0, Some(e.clone())),
    };
    serde_json::json!({"source": r.source, "destination": r.destination, "status": status,
        "digest": digest, "bytes": bytes, "referrers": referrers, "error": error})
}

/// The JSON document of save and sync: the totals, and [`report_json`] of every image.
fn reports_json(reports: &[ImageReport], dry_run: bool) -> serde_json::Value {
    let s = Summary::of(reports);
    let images: Vec<serde_json::Value> = reports.iter().map(report_json).collect();
    serde_json::json!({"copied": s.copied, "skipped": s.skipped, "failed": s.failed,
        "bytes": s.bytes, "dryRun": dry_run, "images": images})
}

/// Prints the one image of push, pull or copy as a JSON object (stdout): [`report_json`] plus
/// `reference`, the image's name where it now is. Nothing when it failed (the error says why).
pub fn print_image_json(reports: &[ImageReport], reference: &str) -> anyhow::Result<()> {
    for r in reports {
        if matches!(r.outcome, Outcome::Failed(_)) {
            continue;
        }
        let mut v = report_json(r);
        v["reference"] = serde_json::Value::String(reference.to_string());
        outln!("{v}")?;
    }
    Ok(())
}

/// A scratch directory next to `dir` (on the same file system), removed when dropped.
fn scratch_dir_beside(dir: &Path) -> anyhow::Result<tempfile::TempDir> {
    let abs =
        std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?;
    let parent = abs.parent().unwrap_or(&abs);
    tempfile::Builder::new()
        .prefix(".sealos-archives-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a scratch directory in {}", parent.display()))
}

/// Reads each archive (once, however many entries name it; a compressed one decompressed within `limit`)
/// into the OCI layout at `scratch` and returns one job per entry, copying the image the entry selects to
/// the name it gives.
fn archive_jobs(
    tars: &[TarImage],
    scratch: &Path,
    limit: ExpansionLimit,
) -> anyhow::Result<Vec<ImageJob>> {
    use builder::store::{ImageSource, Store};
    let store = Store::open_or_create(scratch)
        .with_context(|| format!("cannot create {}", scratch.display()))?
        .with_expansion_limit(limit);
    let layout =
        OciLayout::open(scratch).with_context(|| format!("cannot open {}", scratch.display()))?;
    let source = Arc::new(Location::Oci(Arc::new(layout)));
    let mut loaded = std::collections::HashSet::new();
    let mut jobs = Vec::new();
    for t in tars {
        let src = ImageSource::parse(&t.source).map_err(|e| anyhow!("`{}`: {e}", t.spec))?;
        let path = match &src {
            ImageSource::DockerArchive { path, .. } | ImageSource::OciArchive { path, .. } => {
                path.clone()
            }
            _ => bail!(
                "`{}` is not a docker-archive: or oci-archive: entry",
                t.spec
            ),
        };
        let details = builder::store::inspect_transport(&src, limit)
            .with_context(|| format!("cannot read the archive of `{}`", t.spec))?;
        if loaded.insert(path.clone()) {
            store
                .load(&path)
                .with_context(|| format!("cannot read the archive {}", path.display()))?;
        }
        let (repository, tag) = match (&t.repository, &t.tag) {
            (Some(r), Some(tag)) => (r.clone(), tag.clone()),
            _ => {
                let name = details.name.clone().ok_or_else(|| {
                    anyhow!(
                        "`{}` holds an image without a name; say what to save it as: `{}@NAME:TAG`",
                        t.spec,
                        t.spec
                    )
                })?;
                let r = formats::reference::Reference::parse(&name).map_err(|e| {
                    anyhow!("`{}`: the archive names its image `{name}`: {e}", t.spec)
                })?;
                (
                    r.repository().to_string(),
                    r.tag().unwrap_or("latest").to_string(),
                )
            }
        };
        jobs.push(ImageJob {
            source: source.clone(),
            source_repository: String::new(),
            source_reference: details.digest.to_string(),
            dest_repository: repository,
            dest_tag: Some(tag),
        });
    }
    Ok(jobs)
}

/// Refuses two different sources saved under one `repository:tag`.
fn check_collisions(images: &[ImageJob], archives: &[ImageJob]) -> anyhow::Result<()> {
    let mut seen: HashMap<(String, Option<String>), String> = HashMap::new();
    for j in images.iter().chain(archives) {
        let key = (j.dest_repository.clone(), j.dest_tag.clone());
        let name = match j.source.as_ref() {
            Location::Oci(_) => format!("archive image {}", j.source_reference),
            _ => j.source_name(),
        };
        if let Some(prev) = seen.get(&key)
            && *prev != name
        {
            bail!(
                "`{prev}` and `{name}` would both be saved as `{}:{}`; give one of them another name",
                key.0,
                key.1.as_deref().unwrap_or("latest")
            );
        }
        seen.insert(key, name);
    }
    Ok(())
}

fn compile(patterns: &[String], flag: &str) -> anyhow::Result<Vec<regex::Regex>> {
    patterns
        .iter()
        .map(|p| {
            regex::Regex::new(p)
                .with_context(|| format!("{flag} `{p}` is not a valid regular expression"))
        })
        .collect()
}

fn sync(args: &SyncArgs) -> anyhow::Result<()> {
    let include = compile(&args.include, "--include")?;
    let exclude = compile(&args.exclude, "--exclude")?;
    let progress = Arc::new(Progress::new());
    let (src_client, dest_client) = args.tls.clients(&args.client, &progress)?;
    let source = Location::parse(&args.source, &src_client)?;
    let dest = Location::parse(&args.dest, &dest_client)?;
    if let Location::Dir(d) = &source
        && !d.paths().repositories_dir().is_dir()
    {
        bail!(
            "source directory {} holds no repositories (no docker/registry/v2/repositories)",
            d.paths().root().display()
        );
    }
    let rt = runtime()?;
    let jobs = rt
        .block_on(registry::mirror::sync_jobs(
            source,
            &include,
            &exclude,
            args.max_procs.max(1) * 2,
        ))
        .with_context(|| format!("cannot list the images of `{}`", args.source))?;
    let opts = MirrorOptions {
        platforms: args.platform.filter(),
        max_images: args.max_procs,
        dry_run: args.dry_run,
        keep_pinned_index: true,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(&rt, dest, jobs, opts, &progress);
    let s = Summary::of(&reports);
    match args.format {
        Format::Json => outln!("{}", reports_json(&reports, args.dry_run))?,
        Format::Text => {
            outln!("{:<10} {:>8}", "IMAGES", "COUNT")?;
            let label = if args.dry_run { "to copy" } else { "copied" };
            outln!("{label:<10} {:>8}", s.copied)?;
            outln!("{:<10} {:>8}", "skipped", s.skipped)?;
            outln!("{:<10} {:>8}", "failed", s.failed)?;
            outln!("{:<10} {:>8}", "bytes", human_bytes(s.bytes))?;
        }
    }
    fail_if_any(&reports)
}

fn copy(args: &CopyArgs) -> anyhow::Result<()> {
    let progress = Arc::new(Progress::new());
    let (client, dest_client) = args.tls.clients(&args.client, &progress)?;
    let r = formats::reference::Reference::parse(&args.image)
        .map_err(|e| anyhow!("`{}` is not a valid image reference: {e}", args.image))?;
    let dest = Location::parse(&args.dest, &dest_client)?;
    if !matches!(dest, Location::Registry { .. }) {
        bail!(
            "`{}` is not a registry; use `sealos registry save --images {} --registry-dir DIR` for a directory",
            args.dest,
            args.image
        );
    }
    let job = registry::mirror::job_from_reference(&r, &client, r.repository().to_string());
    let rt = runtime()?;
    let opts = MirrorOptions {
        platforms: args.platform.filter(),
        max_images: 1,
        keep_pinned_index: true,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(&rt, dest, vec![job], opts, &progress);
    if args.format == Format::Json {
        let reference = reports
            .first()
            .map_or(String::new(), |r| r.destination.clone());
        print_image_json(&reports, &reference)?;
    }
    fail_if_any(&reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::client::{Direction, ProgressEvent};

    #[test]
    fn override_flags_pick_one_platform_and_default_to_the_host() {
        let host = Platform::host();
        let args = PlatformArgs {
            override_arch: Some("arm64".into()),
            override_variant: Some("v8".into()),
            ..PlatformArgs::default()
        };
        assert_eq!(
            args.filter(),
            PlatformFilter::Only {
                architecture: Some("arm64".into()),
                os: Some(host.os.clone()),
                variant: Some("v8".into()),
            }
        );
        let args = PlatformArgs {
            arch: Some("s390x".into()),
            override_os: Some("windows".into()),
            ..PlatformArgs::default()
        };
        let PlatformFilter::Only {
            architecture, os, ..
        } = args.filter()
        else {
            panic!("expected one platform");
        };
        assert_eq!(
            (architecture.as_deref(), os.as_deref()),
            (Some("s390x"), Some("windows"))
        );
        let all = PlatformArgs {
            all: true,
            ..PlatformArgs::default()
        };
        assert_eq!(all.filter(), PlatformFilter::All);
    }

    #[test]
    fn total_bar_counts_images_and_bytes_once_even_when_a_transfer_restarts() {
        let multi =
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden());
        let progress = Arc::new(Progress {
            live: Some(Progress::live(multi)),
        });
        progress.start_total(2);
        let cb = progress.callback().unwrap();
        let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
        let ev = |d: &Digest, done: u64| ProgressEvent {
            digest: d.clone(),
            bytes_done: done,
            total: Some(100),
            direction: Direction::Pull,
        };
        cb(ev(&a, 40));
        cb(ev(&b, 10));
        cb(ev(&a, 20)); // restarted from a lower offset: nothing counted twice
        cb(ev(&a, 100));
        cb(ev(&b, 100));
        let live = progress.live.as_ref().unwrap();
        assert_eq!(live.bytes.load(std::sync::atomic::Ordering::Relaxed), 200);
        assert!(live.blobs.lock().unwrap().is_empty(), "finished bars stay");
        let report = ImageReport {
            source: "s".into(),
            destination: "d".into(),
            outcome: Outcome::Skipped { digest: a },
        };
        let on_image = progress.image_callback();
        on_image(&report);
        on_image(&report);
        let total = live.total.get().unwrap();
        assert_eq!((total.position(), total.length()), (2, Some(2)));
        assert_eq!(total.message(), "200 B moved");
    }
}
