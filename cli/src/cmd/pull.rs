//! `sealos pull`: copy an image from a registry into the local store, tagged with its full reference.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use builder::store::Store;
use formats::manifest::Platform;
use formats::reference::Reference;
use registry::mirror::{Location, MirrorOptions, PlatformFilter, job_from_reference};

use super::mirror::{ClientArgs, Progress, fail_if_any, print_image_json, run_jobs, runtime};
use crate::output::{Format, outln};

/// Arguments of `sealos pull`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos pull docker.io/labring/kubernetes:v1.29.9
  sealos pull quay.io/org/app:v1 --platform linux/arm64
  sealos pull 127.0.0.1:5000/app:v1 --all-platforms
  sealos pull -q quay.io/org/app:v1
  sealos pull registry.example.com/app@sha256:<digest> --format json")]
pub struct PullArgs {
    /// The image (`nginx`, `quay.io/org/app:v1`, `name@sha256:...`).
    pub image: String,
    /// Pull this platform (`os/arch[/variant]`) of a multi-platform image; default: the host's.
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Keep a multi-platform image whole (`--all`, as build and registry save/sync/copy spell it).
    #[arg(long, visible_alias = "all")]
    pub all_platforms: bool,
    /// Print only the image's name (stdout): no progress and no `copied` line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Output: `text` (the image's name) or `json` (one JSON object on stdout: `reference`, `source`,
    /// `destination`, `status`, `digest`, `bytes`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Pulls into the store at `store`.
pub fn run(args: &PullArgs, store: &std::path::Path) -> anyhow::Result<()> {
    let r = Reference::parse(&args.image)
        .map_err(|e| anyhow!("`{}` is not a valid image reference: {e}", args.image))?;
    let platforms = if args.all_platforms {
        PlatformFilter::All
    } else {
        let p = match &args.platform {
            Some(p) => {
                let p = Platform::parse(p).context("--platform")?;
                // An unknown architecture (`linux/amd65`) would only ever find no manifest.
                p.check_known().context("--platform")?;
                p
            }
            None => Platform::host(),
        };
        PlatformFilter::platform(&p)
    };
    // Every blob is written, and the tag set, under the store's writer guard: an `rmi` or `prune` meanwhile
    // defers collection rather than taking blobs not tagged yet (or present ones the pull will not fetch).
    let writer = Store::open_or_create(store)
        .and_then(|s| s.writer())
        .with_context(|| format!("cannot open the local store {}", store.display()))?;
    // The destination is the local store, not a name: `copied SRC -> the local store DIR`.
    let progress = if args.quiet {
        Progress::hidden()
    } else {
        Progress::new()
    };
    let progress =
        Arc::new(progress.with_destination(format!("the local store {}", store.display())));
    let client = args.client.client(&progress)?;
    let mut job = job_from_reference(&r, &client, r.repository().to_string());
    job.dest_tag = Some(r.to_string());
    let opts = MirrorOptions {
        platforms,
        max_images: 1,
        referrers: false,
        ..MirrorOptions::default()
    };
    let mut reports = run_jobs(
        runtime()?,
        Location::Oci(Arc::new(writer.layout().clone())),
        vec![job],
        opts,
        &progress,
    );
    for report in &mut reports {
        report.destination = format!("local store {}", store.display());
    }
    fail_if_any(&reports)?;
    match args.format {
        Format::Json => print_image_json(&reports, &r.to_string()),
        Format::Text => outln!("{r}"),
    }
}
