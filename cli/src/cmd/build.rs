//! `sealos build`: build a cluster image from a Kubefile into the local store (or, with `--dry-run`, print
//! the evaluated plan without building).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use builder::build::{BuildOptions, BuildReport, Output, Progress};
use formats::kubefile::{EvalOptions, Platform};
use formats::layer::Compression;

use crate::GlobalArgs;
use crate::output::{Format, Hint};

/// Arguments of `sealos build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The Kubefile (default: Sealfile, Kubefile, Dockerfile or Containerfile in CONTEXT).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Tag the image NAME[:TAG] (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME:TAG")]
    pub tags: Vec<String>,
    /// Set a build argument (repeatable).
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = key_value)]
    pub build_args: Vec<(String, String)>,
    /// Add or override a label of the image (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Add a manifest annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE", value_parser = key_value)]
    pub annotations: Vec<(String, String)>,
    /// Add or override an environment variable of the image (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
    pub env: Vec<(String, String)>,
    /// Target platforms, comma-separated (`linux/amd64,linux/arm64`); several give an image index.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Do not reuse cached layers.
    #[arg(long)]
    pub no_cache: bool,
    /// Image creation time and file mtimes, in seconds since the epoch (default: $SOURCE_DATE_EPOCH, else 0).
    #[arg(long, value_name = "SECS")]
    pub timestamp: Option<u64>,
    /// Layer compression: gzip, zstd or none.
    #[arg(long, value_name = "ALG", default_value = "gzip")]
    pub compression: String,
    /// Also write the result: type=local,dest=DIR | type=tar,dest=FILE | type=oci-archive,dest=FILE.
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = parse_output)]
    pub outputs: Vec<Output>,
    /// Print only the image digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the evaluated plan instead of building.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of the result (or of the plan with --dry-run).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// The build context directory.
    #[arg(value_name = "CONTEXT", default_value = ".")]
    pub context: PathBuf,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_output(text: &str) -> Result<Output, String> {
    text.parse()
}

fn platforms(args: &BuildArgs) -> anyhow::Result<Vec<Platform>> {
    args.platform
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            Platform::parse(p).with_context(|| {
                format!("invalid platform {p:?}: write os/arch[/variant], like linux/amd64")
            })
        })
        .collect()
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

/// Runs `sealos build`.
pub fn run(global: &GlobalArgs, args: &BuildArgs) -> anyhow::Result<()> {
    if args.dry_run {
        return dry_run(args);
    }
    if args.tags.is_empty() && args.outputs.is_empty() {
        return Err(anyhow::Error::new(Hint(
            "add -t NAME:TAG to tag the image (or -o to write it somewhere)".into(),
        ))
        .context("nothing would name the built image"));
    }
    let compression: Compression = args.compression.parse()?;
    let opts = BuildOptions {
        store: global.store_root(),
        context: args.context.clone(),
        kubefile: args.file.clone(),
        tags: args.tags.clone(),
        build_args: args.build_args.clone(),
        labels: args.labels.clone(),
        env: args.env.clone(),
        annotations: args.annotations.clone(),
        platforms: platforms(args)?,
        no_cache: args.no_cache,
        timestamp: timestamp(args)?,
        compression,
        outputs: args.outputs.clone(),
    };
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let mut progress = |event: Progress<'_>| {
        if !show_progress {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match event {
            Progress::StepStarted {
                platform,
                line,
                text,
            } => writeln!(err, "[{platform}] line {line}: {text}"),
            Progress::StepFinished { platform, report } => writeln!(
                err,
                "[{platform}] line {}: {} ({} files, {} hashed, {} compressed)",
                report.line,
                if report.cached { "cached" } else { "done" },
                report.files,
                human(report.bytes_hashed),
                human(report.bytes_written),
            ),
        };
    };
    let report = builder::build::build(&opts, &mut progress).context("build failed")?;
    print_report(args, &report)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_report(args: &BuildArgs, report: &BuildReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{}", report.digest)?;
        return Ok(());
    }
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
        Format::Text => {
            writeln!(out, "{}", report.digest)?;
            for tag in &report.tags {
                writeln!(out, "tagged {tag}")?;
            }
        }
    }
    Ok(())
}

fn dry_run(args: &BuildArgs) -> anyhow::Result<()> {
    let file = match &args.file {
        Some(f) => f.clone(),
        None => match formats::kubefile::find_default(&args.context) {
            Some(f) => f,
            None => bail!(
                "no Kubefile in {}: add one named Sealfile, Kubefile, Dockerfile or Containerfile, or pass -f FILE",
                args.context.display()
            ),
        },
    };
    let name = file.display().to_string();
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {name}"))?;
    let kubefile = formats::kubefile::parse_named(&name, &text)?;
    let platforms = match platforms(args)? {
        p if p.is_empty() => vec![Platform::host()],
        p => p,
    };
    let mut plans = Vec::new();
    for platform in platforms {
        let options = EvalOptions {
            file: name.clone(),
            build_args: args.build_args.clone(),
            platform,
            build_platform: Platform::host(),
            labels: args.labels.clone(),
            env: args.env.clone(),
            annotations: args.annotations.clone(),
        };
        let mut plan = formats::kubefile::evaluate(&kubefile, &options)?;
        formats::kubefile::resolve_sources(&mut plan, &args.context, &name)?;
        plans.push(plan);
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &plans)?;
            writeln!(out)?;
        }
        Format::Text => {
            for plan in &plans {
                writeln!(out, "platform {}", plan.platform)?;
                for stage in &plan.stages {
                    writeln!(out, "stage {} (line {})", stage.index, stage.line)?;
                    for step in &stage.steps {
                        let files = step.copy.as_ref().map_or(0, |c| c.files.len());
                        writeln!(out, "  {:>4}: {} [{files} entries]", step.line, step.text)?;
                    }
                }
            }
        }
    }
    Ok(())
}
