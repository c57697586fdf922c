//! `sealos registry save|sync|copy`: air-gap mirroring of images into Distribution-layout directories, S3
//! buckets and registries, plus the client options, progress display and failure reporting every image-moving command
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
use registry::delta::format::{DELIVERY_FILE, Delivery, Inventory, now_rfc3339};
use registry::delta::plan::{DeltaPlan, delivered_images};
use registry::mirror::tars::TarImage;
use registry::mirror::{
    ImageJob, ImageReport, Location, Mirror, MirrorOptions, Outcome, PlatformFilter, Summary,
};

use super::images::plural;
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
    destination: Option<String>,
    quiet: bool,
}

impl Progress {
    /// No bars and no lines, for `-q`.
    pub fn hidden() -> Self {
        Progress {
            live: None,
            destination: None,
            quiet: true,
        }
    }

    /// Bars when stderr is a terminal.
    pub fn new() -> Self {
        let live = std::io::stderr()
            .is_terminal()
            .then(|| Self::live(indicatif::MultiProgress::new()));
        Progress {
            live,
            destination: None,
            quiet: false,
        }
    }

    /// Names the destination `label` in each image's line (`copied SRC -> the local store DIR`) instead of
    /// the image's name there.
    pub fn with_destination(mut self, label: String) -> Self {
        self.destination = Some(label);
        self
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

    /// Prints a line above the bars (or plainly), ended by its own newline: the bars are cleared and drawn
    /// again below it (`MultiProgress::println` would pad it to the terminal width instead).
    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.live {
            Some(live) => live.multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// The per-image callback: one line per image on stderr, and a step of the total bar.
    pub fn image_callback(self: &Arc<Self>) -> registry::mirror::ImageCallback {
        let me = self.clone();
        Arc::new(move |r: &ImageReport| {
            match &me.destination {
                Some(label) => me.println(&image_line(&ImageReport {
                    destination: label.clone(),
                    ..r.clone()
                })),
                None => me.println(&image_line(r)),
            }
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
                format!(", {}", plural(*referrers, "referrer"))
            } else {
                String::new()
            };
            format!(
                // The bytes of blobs sent (what the destination lacked), not the image's size.
                "copied {} -> {} ({digest}, {} transferred{refs})",
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

/// The process's one tokio runtime ([`crate::runtime()`]).
pub use crate::runtime::runtime;

/// Runs `jobs` into `dest` and turns failures into an error naming each failed image.
pub fn run_jobs(
    rt: &tokio::runtime::Runtime,
    dest: Location,
    jobs: Vec<ImageJob>,
    opts: MirrorOptions,
    progress: &Arc<Progress>,
) -> Vec<ImageReport> {
    run_mirror(rt, |opts| Mirror::new(dest, opts), jobs, opts, progress)
}

/// [`run_jobs`] with the mirror made by `mirror` from the final options (a delta save adds its site).
fn run_mirror(
    rt: &tokio::runtime::Runtime,
    mirror: impl FnOnce(MirrorOptions) -> Mirror,
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
    let mirror = mirror(opts);
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
    /// Save images into a directory in the Docker Distribution layout (what a registry serves), or a bucket.
    Save(SaveArgs),
    /// Copy every repository and tag of one registry, directory or bucket into another.
    Sync(SyncArgs),
    /// Copy one image into a registry, a directory or a bucket.
    Copy(CopyArgs),
    /// Take the inventory of a registry, directory or bucket (what an air-gapped site holds), for
    /// `save --inventory`.
    Inventory(InventoryArgs),
}

/// Arguments of `sealos registry save`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos registry save --registry-dir registry .
      save every image the build context in . names (images/shim, manifests, charts)
  sealos registry save --images docker.io/library/nginx:1.27,registry.k8s.io/pause:3.9 --arch arm64
  sealos registry save --tars oci-archive:app.tar@app:v1 --registry-dir out
  sealos registry save --images 127.0.0.1:5000/app:v1 --src-tls-verify=false --format json
  sealos registry save --images 127.0.0.1:5000/app:v2 --inventory site.json --registry-dir delta
      only what the site (inventory taken there) lacks, plus delta/delivery.json
  sealos registry save --store-images mycluster:v2 --inventory site.json --registry-dir delta
      a cluster image built here: only the layers that changed since the one the site holds
  sealos registry save --images nginx:1.27 --registry-dir s3://images/registry --config s3.toml
      into a bucket (`registry serve s3 --config s3.toml --prefix registry` serves it)")]
pub struct SaveArgs {
    /// Build context whose images are saved: found as `sealos build` finds them (`images/shim/*` lists,
    /// `manifests/`, `charts/`; see docs/discovery.md), and its `images/skopeo/tar.txt` archives.
    pub context: Option<PathBuf>,
    /// Images to save (comma-separated), besides those of the context.
    #[arg(long, value_delimiter = ',')]
    pub images: Vec<String>,
    /// Image archives to save (comma-separated), besides the context's `images/skopeo/tar.txt`:
    /// `docker-archive:FILE[:REF]@NAME[:TAG]` or `oci-archive:FILE[:REF]@NAME[:TAG]`; saved as `NAME:TAG`
    /// (`latest` by default), or under the name stored in the archive when `@NAME` is left out; either
    /// without its registry host, as pulled images are saved.
    #[arg(long, value_delimiter = ',', value_name = "ARCHIVE")]
    pub tars: Vec<String>,
    /// Images of the local store to save (comma-separated): cluster images `sealos build` made, or images
    /// `sealos pull` brought; saved under their names without the registry host, as pulled images are.
    #[arg(long, value_delimiter = ',', value_name = "IMAGE")]
    pub store_images: Vec<String>,
    /// Output directory (Docker Distribution layout), or a bucket `s3://BUCKET[/PREFIX]` (the same layout
    /// under the prefix; see --config).
    #[arg(
        long,
        default_value = "registry",
        value_name = "DIR|s3://BUCKET/PREFIX"
    )]
    pub registry_dir: PathBuf,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
    /// Save a delta for an air-gapped site: write only the blobs and manifests this inventory (from
    /// `sealos registry inventory` on the site) lacks, plus `DIR/delivery.json` listing what is included
    /// and what the delivery relies on the site having. Every tag is still linked.
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
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
  sealos registry sync src.example.com dst.example.com --src-tls-verify=false --dry-run --format json
  sealos registry sync ./registry s3://images/registry --config s3.toml")]
pub struct SyncArgs {
    /// Source: a registry `host[:port][/prefix]`, a directory (Distribution layout) or a bucket
    /// `s3://BUCKET[/PREFIX]`.
    pub source: String,
    /// Destination: a registry `host[:port][/prefix]`, a directory or a bucket `s3://BUCKET[/PREFIX]`.
    pub dest: String,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
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
    /// Destination: a registry `host[:port][/prefix]`, a directory (Distribution layout) or a bucket
    /// `s3://BUCKET[/PREFIX]`.
    pub dest: String,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
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

/// Settings of `s3://` locations.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct S3Args {
    /// For `s3://BUCKET/PREFIX` locations: a TOML file with `endpoint`, `region`, `access_key_id`,
    /// `secret_access_key` (the file `registry serve s3 --config` takes; the bucket and prefix are the
    /// location's). Without it: AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl S3Args {
    /// The location `spec` names (see [`Location::parse_with`]).
    pub fn location(&self, spec: &str, client: &RegistryClient) -> anyhow::Result<Location> {
        Ok(Location::parse_with(spec, client, self.config.as_deref())?)
    }
}

/// True when `path` names a bucket (`s3://...`), not a directory.
fn is_bucket(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("s3://"))
}

/// Runs a `sealos registry` mirroring subcommand.
pub fn run_command(global: &GlobalArgs, command: &RegistryMirrorCommand) -> anyhow::Result<()> {
    match command {
        RegistryMirrorCommand::Save(a) => save(global, a),
        RegistryMirrorCommand::Sync(a) => sync(a),
        RegistryMirrorCommand::Copy(a) => copy(a),
        RegistryMirrorCommand::Inventory(a) => inventory(a),
    }
}

fn save(global: &GlobalArgs, args: &SaveArgs) -> anyhow::Result<()> {
    // A delta's inventory is read first: a wrong file fails before anything is fetched.
    let plan = match &args.inventory {
        Some(_) if is_bucket(&args.registry_dir) => bail!(
            "a delta (--inventory) is saved into a directory, for removable media; give --registry-dir DIR"
        ),
        Some(path) => Some(Arc::new(DeltaPlan::new(Inventory::load(path)?))),
        None => None,
    };
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
    if images.is_empty() && tars.is_empty() && args.store_images.is_empty() {
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
    // Read under the store's writer guard, as `sealos push` does: an `rmi` or `prune` meanwhile defers
    // collection rather than taking blobs out from under the save.
    let mut _store = None;
    if !args.store_images.is_empty() {
        let (writer, from_store) = store_jobs(global, &args.store_images)?;
        check_collisions(&jobs, &from_store)?;
        jobs.extend(from_store);
        _store = Some(writer);
    }
    let bucket = is_bucket(&args.registry_dir);
    let dest = if bucket {
        let spec = args.registry_dir.to_string_lossy();
        args.s3.location(&spec, &client)?
    } else {
        std::fs::create_dir_all(&args.registry_dir)
            .with_context(|| format!("cannot create {}", args.registry_dir.display()))?;
        Location::dir(&args.registry_dir)
    };
    // Archives are read into a scratch OCI layout beside the output (same file system), removed after.
    let mut scratch = None;
    if !tars.is_empty() {
        let dir = if bucket {
            tempfile::Builder::new()
                .prefix(".sealos-archives-")
                .tempdir()
                .context("cannot create a scratch directory")?
        } else {
            scratch_dir_beside(&args.registry_dir)?
        };
        let tar_jobs = archive_jobs(&tars, dir.path(), global.expansion_limit())?;
        check_collisions(&jobs, &tar_jobs)?;
        jobs.extend(tar_jobs);
        scratch = Some(dir);
    }
    let rt = runtime()?;
    let opts = MirrorOptions {
        platforms: args.platform.filter(),
        max_images: args.max_pull_procs,
        keep_pinned_index: true,
        // A delta records every image's content, so a rerun into the same directory skips none.
        skip_identical: plan.is_none(),
        ..MirrorOptions::default()
    };
    let delta_jobs = plan.as_ref().map(|_| jobs.clone());
    let site = plan.clone();
    let make = move |opts| match site {
        Some(site) => Mirror::new(dest, opts).with_site(site),
        None => Mirror::new(dest, opts),
    };
    let reports = run_mirror(rt, make, jobs, opts, &progress);
    if let Some(dir) = scratch {
        let path = dir.path().to_path_buf();
        dir.close()
            .with_context(|| format!("cannot remove the scratch directory {}", path.display()))?;
    }
    let s = Summary::of(&reports);
    // The delivery manifest is written only for a complete delta: an import must not trust a partial one.
    let delivery = match (&plan, &delta_jobs) {
        (Some(plan), Some(jobs)) if s.failed == 0 => {
            let d = plan.delivery(now_rfc3339(), delivered_images(jobs, &reports));
            d.store(&args.registry_dir)?;
            Some(d)
        }
        _ => None,
    };
    match args.format {
        Format::Json => {
            let mut doc = reports_json(&reports, false);
            if let Some(d) = &delivery {
                doc["delta"] = delta_json(d, &args.registry_dir);
            }
            outln!("{doc}")?
        }
        // A run where images failed does not end on a success-looking line: the error (printed next)
        // names each failure, and the line counts them.
        Format::Text if s.failed > 0 && s.copied + s.skipped == 0 => {}
        Format::Text => {
            eprintln!("{}", save_summary(&s, &args.registry_dir));
            if let Some(d) = &delivery {
                eprintln!("{}", delta_summary(d, &args.registry_dir));
            }
        }
    }
    fail_if_any(&reports)
}

/// The delta line of `registry save --inventory`: `delta: 3 blobs included (1.2 MiB), 5 relied on at the site
/// (40.1 MiB); the whole delivery would be 41.3 MiB; DIR/delivery.json lists them`. Manifests count as blobs.
fn delta_summary(d: &Delivery, dir: &Path) -> String {
    format!(
        "delta: {} included ({}), {} relied on at the site ({}); the whole delivery would be {}; {} lists them",
        plural(d.included.len(), "blob"),
        human_bytes(d.included_bytes()),
        d.relied.len(),
        human_bytes(d.relied_bytes()),
        human_bytes(d.included_bytes() + d.relied_bytes()),
        dir.join(DELIVERY_FILE).display()
    )
}

/// The `delta` member of `registry save --inventory --format json`.
fn delta_json(d: &Delivery, dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "delivery": dir.join(DELIVERY_FILE).display().to_string(),
        "included": d.included.len(),
        "includedBytes": d.included_bytes(),
        "relied": d.relied.len(),
        "reliedBytes": d.relied_bytes(),
        "wholeBytes": d.included_bytes() + d.relied_bytes(),
    })
}

/// The last line of `registry save`: `saved 2 images (1 already there) into DIR, 1.2 MiB transferred`, with
/// `; 1 failed` when some failed.
fn save_summary(s: &Summary, dir: &Path) -> String {
    let failed = if s.failed > 0 {
        format!("; {} failed", s.failed)
    } else {
        String::new()
    };
    format!(
        "saved {} ({} already there) into {}, {} transferred{failed}",
        plural(s.copied, "image"),
        s.skipped,
        dir.display(),
        human_bytes(s.bytes)
    )
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

/// The jobs saving `images` from the local store under their names without host, with the writer guard they
/// are read under.
fn store_jobs(
    global: &GlobalArgs,
    images: &[String],
) -> anyhow::Result<(builder::store::StoreWriter, Vec<ImageJob>)> {
    let root = global.store_root();
    let writer = builder::store::Store::open(&root)
        .and_then(|s| s.writer())
        .with_context(|| format!("cannot open the local store {}", root.display()))?;
    let source = Arc::new(Location::Oci(Arc::new(writer.layout().clone())));
    let mut jobs = Vec::new();
    for image in images.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let r = formats::reference::Reference::parse(image)
            .map_err(|e| anyhow!("`{image}` is not a valid image reference: {e}"))?;
        if writer.layout().resolve(&r.to_string())?.is_none() {
            bail!(
                "image `{r}` is not in the local store {}; build or pull it first",
                root.display()
            );
        }
        jobs.push(ImageJob {
            source: source.clone(),
            source_repository: String::new(),
            source_reference: r.to_string(),
            dest_repository: r.repository().to_string(),
            dest_tag: r.tag().map(str::to_string),
        });
    }
    Ok((writer, jobs))
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
    let source = args.s3.location(&args.source, &src_client)?;
    let dest = args.s3.location(&args.dest, &dest_client)?;
    let rt = runtime()?;
    if let Some(store) = source.store()
        && !rt.block_on(store.has_repositories())?
    {
        match store.root() {
            Some(root) => bail!(
                "source directory {} holds no repositories (no docker/registry/v2/repositories)",
                root.display()
            ),
            None => bail!("source {} holds no repositories", store.describe()),
        }
    }
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
    let reports = run_jobs(rt, dest, jobs, opts, &progress);
    let s = Summary::of(&reports);
    match args.format {
        Format::Json => outln!("{}", reports_json(&reports, args.dry_run))?,
        Format::Text => {
            outln!("{:<10} {:>8}", "IMAGES", "COUNT")?;
            let label = if args.dry_run { "to copy" } else { "copied" };
            outln!("{label:<10} {:>8}", s.copied)?;
            outln!("{:<10} {:>8}", "skipped", s.skipped)?;
            outln!("{:<10} {:>8}", "failed", s.failed)?;
            // Bytes are no image count: a line of their own under the table.
            outln!("{} transferred", human_bytes(s.bytes))?;
        }
    }
    fail_if_any(&reports)
}

fn copy(args: &CopyArgs) -> anyhow::Result<()> {
    let progress = Arc::new(Progress::new());
    let (client, dest_client) = args.tls.clients(&args.client, &progress)?;
    let r = formats::reference::Reference::parse(&args.image)
        .map_err(|e| anyhow!("`{}` is not a valid image reference: {e}", args.image))?;
    let dest = args.s3.location(&args.dest, &dest_client)?;
    let job = registry::mirror::job_from_reference(&r, &client, r.repository().to_string());
    let rt = runtime()?;
    let opts = MirrorOptions {
        platforms: args.platform.filter(),
        max_images: 1,
        keep_pinned_index: true,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(rt, dest, vec![job], opts, &progress);
    if args.format == Format::Json {
        let reference = reports
            .first()
            .map_or(String::new(), |r| r.destination.clone());
        print_image_json(&reports, &reference)?;
    }
    fail_if_any(&reports)
}

/// Arguments of `sealos registry inventory`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The inventory is one JSON document (format version 1, see docs/mirroring.md): every repository with its tags \
(tag -> manifest digest) and stored manifests, and every blob with its size. Take it on the site, carry it \
out, and give it to `sealos registry save --inventory FILE` to save only what the site lacks.

Examples:
  sealos registry inventory /var/lib/registry -o site.json
      a Distribution-layout directory (what `registry save` writes and docker-registry serves)
  sealos registry inventory 127.0.0.1:5000 > site.json
  sealos registry inventory registry.local:5000/mirror --tls-verify=false --authfile auth.json -o site.json
  sealos registry inventory s3://images/registry --config s3.toml -o site.json")]
pub struct InventoryArgs {
    /// What to take the inventory of: a registry `host[:port][/prefix]` (catalog, tags and manifests are
    /// read), a Distribution-layout directory (a path starting with `/` or `.`, an existing directory, or
    /// `dir:PATH`) or a bucket `s3://BUCKET[/PREFIX]` (both listed through the store).
    pub source: String,
    /// S3 settings.
    #[command(flatten)]
    pub s3: S3Args,
    /// Write the inventory to FILE instead of stdout (a summary line then goes to stderr).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format: `json`, the only one (the inventory is read back by `save --inventory`).
    #[arg(long, default_value = "json", value_parser = ["json"])]
    pub format: String,
    /// Registry requests for images at once.
    #[arg(long, default_value_t = 8)]
    pub max_procs: usize,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

fn inventory(args: &InventoryArgs) -> anyhow::Result<()> {
    let progress = Progress::hidden();
    let client = args.client.client(&progress)?;
    let location = args.s3.location(&args.source, &client)?;
    if let Some(root) = location.store().and_then(|s| s.root())
        && !formats::distribution::DistributionPaths::new(root)
            .v2()
            .is_dir()
    {
        bail!(
            "{}: not a Distribution-layout registry directory (no docker/registry/v2 inside); give the \
             directory `registry save --registry-dir` wrote or a registry serves",
            root.display()
        );
    }
    let rt = runtime()?;
    let inv = rt.block_on(registry::delta::inventory::take_inventory(
        &location,
        &args.source,
        args.max_procs,
    ))?;
    let text = inv.to_json();
    match &args.output {
        None => {
            crate::output::write_stdout(text.as_bytes())?;
        }
        Some(path) => {
            std::fs::write(path, &text)
                .with_context(|| format!("cannot write the inventory to {}", path.display()))?;
            let tags: usize = inv.repositories.values().map(|r| r.tags.len()).sum();
            eprintln!(
                "inventory of {}: {}, {}, {} ({}) -> {}",
                location.describe(),
                match inv.repositories.len() {
                    1 => "1 repository".to_string(),
                    n => format!("{n} repositories"),
                },
                plural(tags, "tag"),
                plural(inv.blobs.len(), "blob"),
                human_bytes(inv.blobs.values().sum()),
                path.display()
            );
        }
    }
    Ok(())
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
            destination: None,
            quiet: false,
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
