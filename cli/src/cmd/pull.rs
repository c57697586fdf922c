//! `sealos pull`: copy an image from a registry into the local store, tagged with its full reference.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use formats::manifest::Platform;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;
use registry::mirror::{Location, MirrorOptions, PlatformFilter, job_from_reference};

use super::mirror::{ClientArgs, Progress, fail_if_any, run_jobs, runtime};
use crate::output::outln;

/// Arguments of `sealos pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// The image (`nginx`, `quay.io/org/app:v1`, `name@sha256:...`).
    pub image: String,
    /// Pull this platform (`os/arch[/variant]`) of a multi-platform image; default: the host's.
    #[arg(long, conflicts_with = "all_platforms")]
    pub platform: Option<String>,
    /// Keep a multi-platform image whole.
    #[arg(long)]
    pub all_platforms: bool,
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
    outln!("{r}")?;
    Ok(())
}
