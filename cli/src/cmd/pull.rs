//! `sealos pull`: copy an image from a registry into the local store, tagged with its full reference.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use formats::manifest::Platform;
use formats::oci_layout::OciLayout;
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
  sealos pull registry.example.com/app@sha256:<digest> --format json")]
pub struct PullArgs {
    /// The image (`nginx`, `quay.io/org/app:v1`, `name@sha256:...`).
    pub image: String,
    /// Pull this platform (`os/arch[/variant]`) of a multi-platform image; default: the host's.
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Keep a multi-platform image whole.
    #[arg(long)]
    pub all_platforms: bool,
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
            Some(p) => Platform::parse(p).context("--platform")?,
            None => Platform::host(),
        };
        PlatformFilter::platform(&p)
    };
    let layout = OciLayout::create(store)
        .with_context(|| format!("cannot open the local store {}", store.display()))?;
    let progress = Arc::new(Progress::new());
    let client = args.client.client(&progress)?;
    let mut job = job_from_reference(&r, &client, r.repository().to_string());
    job.dest_tag = Some(r.to_string());
    let opts = MirrorOptions {
        platforms,
        max_images: 1,
        referrers: false,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(
        &runtime()?,
        Location::Oci(Arc::new(layout)),
        vec![job],
        opts,
        &progress,
    );
    fail_if_any(&reports)?;
    match args.format {
        Format::Json => print_image_json(&reports, &r.to_string()),
        Format::Text => outln!("{r}"),
    }
}
