//! `sealos build`: builds a cluster image from a Kubefile into the local store (see [`builder::build`]).
//! `--dry-run` prints the plan the build would execute, writing nothing: it plans through the build's own
//! [`builder::build::plan::plan_platform`] (evaluation, sources, `.dockerignore`, base-image ENV from the
//! store).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use builder::build::{BuildOptions, BuildReport, Output, Progress};
use builder::discover::{
    ArchiveEntry, DiscoverOptions, DiscoveredImage, Discovery, Warning, discover,
};
use formats::kubefile::{self, BaseImage, BuildPlan, CopyFrom};
use formats::manifest::Platform;
use serde::Serialize;

use crate::GlobalArgs;
use crate::output::{Format, Hint, out, outln};

/// Arguments of `sealos build`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  sealos build -t myapp:v1 .                          build the Kubefile of the current directory
  sealos build -t myapp:v1 -f Kubefile.prod ./ctx     another Kubefile
  sealos build -t myapp:v1 --platform linux/amd64,linux/arm64 .
  sealos build -t myapp:v1 --build-arg VERSION=1.2 --compression zstd .
  sealos build --dry-run .                            print the plan and the images found, build nothing
  sealos build -q -t myapp:v1 .                       print only the digest, for scripts")]
pub struct BuildArgs {
    /// Parse and evaluate the Kubefile and print the build plan; build nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the plan (`json` is stable: see the README's "Kubefile support").
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The Kubefile. Default: the first of Sealfile, Kubefile, Dockerfile, Containerfile in the context.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Set a build-time ARG (`K=V`; a bare `K` takes the value of environment variable K). Repeatable.
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// Target platforms, comma separated (`linux/amd64,linux/arm64`). Default: this machine's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Add or override a label of the image (`K=V`). Repeatable.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Add or override an environment variable of the image (`K=V`). Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Add a manifest annotation (`K=V`). Repeatable.
    #[arg(long = "annotation", value_name = "K=V")]
    pub annotations: Vec<String>,
    /// Name the image (`NAME:TAG`). Repeatable.
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// Do not reuse cached layers (what is built is still recorded in the cache).
    #[arg(long)]
    pub no_cache: bool,
    /// Image creation time and every file mtime, in seconds since the epoch.
    /// Default: $SOURCE_DATE_EPOCH, else 0.
    #[arg(long, value_name = "SECS")]
    pub timestamp: Option<u64>,
    /// Layer compression: gzip, zstd or none.
    #[arg(long, value_name = "ALG", default_value = "gzip")]
    pub compression: String,
    /// Also write the result: `type=local,dest=DIR`, `type=tar,dest=FILE` or
    /// `type=oci-archive,dest=FILE`. Repeatable.
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = parse_output)]
    pub outputs: Vec<Output>,
    /// When to pull `FROM`/`COPY --from` registry images: `always`, `missing` (only when the store has no
    /// image of that name for the platform) or `never`. A local image of that name wins unless `always`.
    #[arg(long, value_name = "POLICY", default_value = "missing", value_parser = parse_pull)]
    pub pull: builder::build::PullPolicy,
    /// Registry access (for registry base images and embedded images).
    #[command(flatten)]
    pub client: super::mirror::ClientArgs,
    /// Fail when image discovery has any warning (template text, invalid YAML, a chart that did not render,
    /// a CMD or script value that cannot be resolved).
    #[arg(long)]
    pub strict: bool,
    /// How image discovery renders charts: `native` (built in, the default) or `helm` (a helm binary on PATH).
    #[arg(long, value_enum, value_name = "RENDERER", default_value_t = ChartRendererArg::Native)]
    pub chart_renderer: ChartRendererArg,
    /// The Kubernetes version charts are rendered for (`.Capabilities.KubeVersion`, checked against each
    /// chart's `kubeVersion`). Default: the `version` label of the rootfs image the build is (or is built
    /// on), else v1.35.0 (see docs/discovery.md).
    #[arg(long, value_name = "VERSION")]
    pub kube_version: Option<String>,
    /// Embedding of the context's images (see docs/embedding.md).
    #[command(flatten)]
    pub embed: EmbedArgs,
    /// Print only the digest of the image.
    #[arg(short, long)]
    pub quiet: bool,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

/// `--chart-renderer`: how image discovery renders charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChartRendererArg {
    /// The built-in renderer (no helm needed).
    Native,
    /// A `helm` binary on PATH.
    Helm,
}

impl From<ChartRendererArg> for builder::discover::ChartRenderer {
    fn from(arg: ChartRendererArg) -> Self {
        match arg {
            ChartRendererArg::Native => builder::discover::ChartRenderer::Native,
            ChartRendererArg::Helm => builder::discover::ChartRenderer::Helm,
        }
    }
}

/// Flags of `sealos build` that control embedded images.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// Pull at most N embedded images at once.
    #[arg(long, value_name = "N", default_value_t = builder::embed::DEFAULT_MAX_PULL_PROCS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub max_pull_procs: usize,
    /// Embed whole multi-platform indexes instead of only the build's platform(s).
    #[arg(long)]
    pub all: bool,
    /// Embed the images the context references; `--save-image=false` leaves them out.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub save_image: bool,
    /// Fail when the images to embed differ from the context's images.lock, and never rewrite it.
    #[arg(long)]
    pub locked: bool,
}

impl EmbedArgs {
    /// The builder's options for these flags.
    pub fn options(&self) -> builder::embed::EmbedOptions {
        builder::embed::EmbedOptions {
            save_image: self.save_image,
            all_platforms: self.all,
            max_pull_procs: self.max_pull_procs,
            locked: self.locked,
            ..builder::embed::EmbedOptions::default()
        }
    }
}

/// What `sealos build --dry-run --format json` prints. Stable: fields are only ever added.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// The Kubefile path, as given or found in the context.
    pub kubefile: String,
    /// The context directory, as given.
    pub context: String,
    /// The `-t` names.
    pub tags: Vec<String>,
    /// One plan per target platform, in `--platform` order.
    pub plans: Vec<BuildPlan>,
    /// The images the build embeds, sorted, each with where it was found (see docs/discovery.md).
    pub images: Vec<DiscoveredImage>,
    /// The archives of `images/skopeo/tar.txt`.
    pub archives: Vec<ArchiveEntry>,
    /// What image discovery skipped or could only guess.
    pub warnings: Vec<Warning>,
}

/// Runs `sealos build`.
pub fn run(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<()> {
    if !args.dry_run {
        return build_image(global, args);
    }
    let dry_run = dry_run(args, Some(&global.store_root()))?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&dry_run)?)?,
        Format::Text => out!("{}", render_text(&dry_run))?,
    }
    Ok(())
}

/// One `--platform` value: `os/arch[/variant]` with a known architecture.
fn target_platform(text: &str) -> anyhow::Result<Platform> {
    let platform = Platform::parse(text).context("--platform")?;
    platform.check_known().context("--platform")?;
    Ok(platform)
}

/// Parses, evaluates and resolves the Kubefile for every platform, without writing anything. Base images
/// found in the local store at `store` (or in an `oci:` layout) lend their ENV to substitution, as in a build.
pub fn dry_run(args: &BuildArgs, store: Option<&Path>) -> anyhow::Result<DryRun> {
    let context = &args.context;
    if !context.is_dir() {
        bail!("build context `{}` is not a directory", context.display());
    }
    let path = kubefile_path(args.file.as_deref(), context)?;
    let name = args.file.as_ref().unwrap_or(&path).display().to_string();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading Kubefile `{name}`"))?;
    let kubefile = kubefile::parse_named(&name, &text)?;
    // Planning reads no layer, so the expansion limit does not matter here.
    let opts = build_options(
        args,
        store.map(Path::to_path_buf).unwrap_or_default(),
        None,
        formats::layer::ExpansionLimit::default(),
    )?;
    let platforms = if opts.platforms.is_empty() {
        vec![Platform::host()]
    } else {
        opts.platforms.clone()
    };
    // The build's own planning: the same evaluation, sources, `.dockerignore` and base-image ENV (read
    // from the store only: a dry run pulls nothing).
    let ignore = builder::build::ignore::IgnoreRules::load(context)?;
    let mut plans = Vec::new();
    for platform in &platforms {
        let plan = builder::build::plan::plan_platform(
            &opts,
            &kubefile,
            &name,
            context,
            platform,
            &ignore,
            &mut |reference, platform, _| {
                Ok(store
                    .and_then(|store| builder::build::base::stored_env(store, reference, platform)))
            },
        )
        .map_err(|e| match e {
            builder::build::BuildError::Eval(e) => anyhow::Error::new(e),
            other => anyhow::Error::new(other),
        })?;
        plans.push(plan);
    }
    let discovery = discover_images(args, &plans)?;
    Ok(DryRun {
        kubefile: name,
        context: context.display().to_string(),
        tags: args.tags.clone(),
        plans,
        images: discovery.images,
        archives: discovery.archives,
        warnings: discovery.warnings,
    })
}

/// Finds the images the context references; the first plan's ENTRYPOINT and CMD tell how charts are
/// installed.
fn discover_images(args: &BuildArgs, plans: &[BuildPlan]) -> anyhow::Result<Discovery> {
    let cmd = plans
        .first()
        .map(|p| {
            let c = &p.config;
            c.entrypoint
                .iter()
                .chain(&c.cmd)
                .flatten()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let opts = DiscoverOptions {
        strict: args.strict,
        helm: None,
        cmd,
        env: plans
            .first()
            .map(builder::discover::cmd::plan_env)
            .unwrap_or_default(),
        renderer: args.chart_renderer.into(),
        // A dry run pulls nothing: only the Kubefile's own labels can say it builds a rootfs image.
        kube_version: args.kube_version.clone().or_else(|| {
            plans
                .first()
                .and_then(|p| builder::discover::charts::rootfs_kube_version(&p.config.labels))
        }),
    };
    discover(&args.context, &opts)
        .with_context(|| format!("discovering the images of `{}`", args.context.display()))
}

/// Where the Kubefile is read from: [`kubefile::locate_kubefile`], the build's own rule.
fn kubefile_path(file: Option<&Path>, context: &Path) -> anyhow::Result<PathBuf> {
    kubefile::locate_kubefile(context, file)?.ok_or_else(|| {
        anyhow::Error::new(Hint(
            "add a Kubefile to the context or pass one with -f FILE".to_string(),
        ))
        .context(format!(
            "no Kubefile in `{}`: looked for {}",
            context.display(),
            kubefile::DEFAULT_NAMES.join(", ")
        ))
    })
}

fn split_pair<'a>(flag: &str, text: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => bail!("{flag} `{text}` must be KEY=VALUE"),
    }
}

fn pairs(flag: &str, values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|v| split_pair(flag, v).map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn build_args(values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for v in values {
        if v.contains('=') {
            let (k, val) = split_pair("--build-arg", v)?;
            out.push((k.to_string(), val.to_string()));
        } else if let Ok(val) = std::env::var(v) {
            // Docker's rule: a bare name takes its value from the environment, and is ignored when unset.
            out.push((v.clone(), val));
        }
    }
    Ok(out)
}

fn quote_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// The human-readable plan.
pub fn render_text(dry_run: &DryRun) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Kubefile: {}", dry_run.kubefile);
    let _ = writeln!(out, "context:  {}", dry_run.context);
    if !dry_run.tags.is_empty() {
        let _ = writeln!(out, "tags:     {}", dry_run.tags.join(", "));
    }
    for plan in &dry_run.plans {
        let _ = writeln!(out, "\nplatform {}", plan.platform);
        for stage in &plan.stages {
            let base = match &stage.base {
                BaseImage::Scratch => "scratch".to_string(),
                BaseImage::Image { reference } => reference.clone(),
                BaseImage::Stage { index } => format!("stage {index}"),
            };
            let name = stage
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "stage {}{name}: FROM {base}  [line {}]",
                stage.index, stage.line
            );
            for step in &stage.steps {
                let _ = writeln!(out, "  {:>4}  {}", step.line, step.text);
                if let Some(note) = &step.note {
                    let _ = writeln!(out, "        note: {note}");
                }
                let Some(copy) = &step.copy else { continue };
                match &copy.from {
                    CopyFrom::Context => {}
                    CopyFrom::Stage { index } => {
                        let _ = writeln!(
                            out,
                            "        from stage {index}: {} -> {}",
                            copy.sources.join(" "),
                            copy.destination
                        );
                    }
                    CopyFrom::Image { reference } => {
                        let _ = writeln!(
                            out,
                            "        from image {reference}: {} -> {}",
                            copy.sources.join(" "),
                            copy.destination
                        );
                    }
                }
                for file in &copy.inline {
                    let _ = writeln!(
                        out,
                        "        <<{} ({} bytes) -> {}",
                        file.name,
                        file.content.len(),
                        copy.destination
                    );
                }
                for file in &copy.files {
                    let _ = writeln!(out, "        {} -> {}", file.path, file.destination);
                }
            }
        }
        let c = &plan.config;
        let _ = writeln!(out, "config:");
        for e in &c.env {
            let _ = writeln!(out, "  Env:          {e}");
        }
        if let Some(v) = &c.entrypoint {
            let _ = writeln!(out, "  Entrypoint:   {}", quote_list(v));
        }
        if let Some(v) = &c.cmd {
            let _ = writeln!(out, "  Cmd:          {}", quote_list(v));
        }
        for (k, v) in &c.labels {
            let _ = writeln!(out, "  Label:        {k}={v}");
        }
        if let Some(v) = &c.working_dir {
            let _ = writeln!(out, "  WorkingDir:   {v}");
        }
        if let Some(v) = &c.user {
            let _ = writeln!(out, "  User:         {v}");
        }
        if !c.exposed_ports.is_empty() {
            let _ = writeln!(
                out,
                "  ExposedPorts: {}",
                c.exposed_ports
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if !c.volumes.is_empty() {
            let _ = writeln!(
                out,
                "  Volumes:      {}",
                c.volumes.iter().cloned().collect::<Vec<_>>().join(" ")
            );
        }
        if let Some(v) = &c.stop_signal {
            let _ = writeln!(out, "  StopSignal:   {v}");
        }
        for (k, v) in &plan.annotations {
            let _ = writeln!(out, "  Annotation:   {k}={v}");
        }
        if !plan.unused_build_args.is_empty() {
            let _ = writeln!(
                out,
                "warning: build args not used by any ARG: {}",
                plan.unused_build_args.join(", ")
            );
        }
    }
    render_images(&mut out, dry_run);
    out
}

/// The discovered images as a table (reference, then each source on its own line), archives and warnings.
fn render_images(out: &mut String, dry_run: &DryRun) {
    use std::fmt::Write;
    let _ = writeln!(out, "\nimages ({}):", dry_run.images.len());
    let width = dry_run
        .images
        .iter()
        .map(|i| i.reference.len())
        .max()
        .unwrap_or(0);
    for image in &dry_run.images {
        for (i, source) in image.sources.iter().enumerate() {
            let reference = if i == 0 { image.reference.as_str() } else { "" };
            let _ = writeln!(out, "  {reference:<width$}  {source}");
        }
    }
    for archive in &dry_run.archives {
        let name = archive
            .reference
            .as_deref()
            .unwrap_or("(names from the archive)");
        let _ = writeln!(
            out,
            "archive {} {} -> {name}  [{}]",
            archive.transport, archive.file, archive.source
        );
    }
    for warning in &dry_run.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
}

fn parse_output(text: &str) -> Result<Output, builder::build::OutputSyntaxError> {
    text.parse()
}

fn parse_pull(text: &str) -> Result<builder::build::PullPolicy, builder::build::UnknownPullPolicy> {
    text.parse()
}

fn timestamp(args: &BuildArgs) -> anyhow::Result<u64> {
    if let Some(t) = args.timestamp {
        return Ok(t);
    }
    let value = std::env::var_os("SOURCE_DATE_EPOCH");
    Ok(formats::layer::LayerOptions::parse_source_date_epoch(
        value.as_deref(),
    )?)
}

/// The build's options from the command line; `build` and `build --dry-run` both plan from them.
fn build_options(
    args: &BuildArgs,
    store: PathBuf,
    client: Option<registry::client::RegistryClient>,
    expansion_limit: formats::layer::ExpansionLimit,
) -> anyhow::Result<BuildOptions> {
    Ok(BuildOptions {
        store,
        context: args.context.clone(),
        kubefile: args.file.clone(),
        tags: args.tags.clone(),
        build_args: build_args(&args.build_args)?,
        labels: pairs("--label", &args.labels)?,
        env: pairs("--env", &args.env)?,
        annotations: pairs("--annotation", &args.annotations)?,
        platforms: args
            .platform
            .iter()
            .map(|p| target_platform(p))
            .collect::<anyhow::Result<_>>()?,
        no_cache: args.no_cache,
        timestamp: timestamp(args)?,
        compression: args.compression.parse()?,
        outputs: args.outputs.clone(),
        client,
        pull: args.pull,
        embed: builder::embed::EmbedOptions {
            strict: args.strict,
            chart_renderer: args.chart_renderer.into(),
            kube_version: args.kube_version.clone(),
            ..args.embed.options()
        },
        expansion_limit,
    })
}

/// Builds the image into the store at `--root` and prints its digest (and tags, unless `-q`).
fn build_image(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<()> {
    if args.tags.is_empty() && args.outputs.is_empty() {
        return Err(anyhow::Error::new(Hint(
            "add -t NAME:TAG to tag the image, or -o to write it somewhere".to_string(),
        ))
        .context("nothing would name the built image"));
    }
    crate::interrupt::guard_store_writes(&global.store_root())?;
    let client = args.client.client(&if args.quiet {
        super::mirror::Progress::hidden()
    } else {
        super::mirror::Progress::new()
    })?;
    let opts = build_options(
        args,
        global.store_root(),
        Some(client),
        global.expansion_limit(),
    )?;
    let mut display = super::build_progress::BuildProgress::new(
        !args.quiet,
        std::io::stderr().is_terminal(),
        &args.compression,
        args.platform.len(),
    );
    let mut progress = |event: Progress<'_>| display.event(event);
    // The build blocks this thread; its pulls and ADD downloads run on the process's runtime.
    let _runtime = crate::runtime()?.enter();
    let report = builder::build::build(&opts, &mut progress).context("build failed")?;
    print_report(args, &report)?;
    if !args.quiet && args.format == Format::Text {
        eprintln!("{}", next_steps(global, &report));
    }
    Ok(())
}

/// What was built and the commands to look at it, for stderr after a build:
/// `Built docker.io/example/calico:v1 (...)` then `next: sealos images; sealos inspect NAME`.
fn next_steps(global: &GlobalArgs, report: &BuildReport) -> String {
    let root = match &global.root {
        Some(root) => format!(
            " --root {}",
            crate::cmd::images::shell_word(&root.display().to_string())
        ),
        None => String::new(),
    };
    let name = report
        .tags
        .first()
        .cloned()
        .unwrap_or_else(|| report.digest.to_string());
    let layers: usize = report.images.iter().map(|i| i.steps.len()).sum();
    let platforms: Vec<&str> = report.images.iter().map(|i| i.platform.as_str()).collect();
    let embedded = match report.embedded.len() {
        0 => String::new(),
        1 => ", 1 embedded image".to_string(),
        n => format!(", {n} embedded images"),
    };
    format!(
        "Built {name} ({}; {} COPY/ADD layer{}{embedded}) in the store {}\n\
         next: sealos{root} images; sealos{root} inspect {name}",
        platforms.join(", "),
        layers,
        if layers == 1 { "" } else { "s" },
        global.store_root().display(),
    )
}

fn print_report(args: &BuildArgs, report: &BuildReport) -> anyhow::Result<()> {
    if args.quiet {
        return outln!("{}", report.digest);
    }
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(report)?),
        Format::Text => {
            outln!("{}", report.digest)?;
            for tag in &report.tags {
                outln!("tagged {tag}")?;
            }
            Ok(())
        }
    }
}
