//! `sealos push`: copy an image (or manifest list, with every image it lists) from the local store to a
//! registry.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use builder::store::Store;
use formats::reference::Reference;
use registry::mirror::{ImageJob, Location, MirrorOptions, PlatformFilter};

use super::mirror::{ClientArgs, Progress, fail_if_any, print_image_json, run_jobs, runtime};
use crate::output::Format;

/// Arguments of `sealos push`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos push registry.example.com/org/app:v1
  sealos push app:v1 registry.example.com/org/app:v1
  sealos push app:v1 127.0.0.1:5000/app:v1 --tls-verify=false     (or --insecure)
  sealos push app:v1 registry.example.com/app:v1 --authfile auth.json --format json")]
pub struct PushArgs {
    /// The image in the local store.
    pub image: String,
    /// Where to push it (default: IMAGE itself).
    pub dest: Option<String>,
    /// Push every image a manifest list names as well (always done: a registry refuses a list whose
    /// images it lacks; accepted for compatibility).
    #[arg(long)]
    pub all: bool,
    /// The same as --tls-verify=false (sealos v4's flag).
    #[arg(long, conflicts_with = "tls_verify")]
    pub insecure: bool,
    /// Output: `text` or `json` (one JSON object on stdout: `reference`, `source`, `destination`,
    /// `status`, `digest`, `bytes`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Registry access.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Pushes `image` from the store at `store` to `dest` (a full image reference).
pub fn push_from_store(
    store: &std::path::Path,
    image: &str,
    dest: &str,
    client_args: &ClientArgs,
) -> anyhow::Result<()> {
    push_reporting(store, image, dest, client_args, Format::Text)
}

/// [`push_from_store`], printing the pushed image as JSON with `Format::Json`.
fn push_reporting(
    store: &std::path::Path,
    image: &str,
    dest: &str,
    client_args: &ClientArgs,
    format: Format,
) -> anyhow::Result<()> {
    let src = Reference::parse(image)
        .map_err(|e| anyhow!("`{image}` is not a valid image reference: {e}"))?;
    let dst = Reference::parse(dest)
        .map_err(|e| anyhow!("`{dest}` is not a valid image reference: {e}"))?;
    // Read under the store's writer guard: an `rmi` or `prune` meanwhile defers collection rather than
    // taking blobs out from under the push.
    let pinned = Store::open(store)
        .and_then(|s| s.writer())
        .with_context(|| format!("cannot open the local store {}", store.display()))?;
    let layout = pinned.layout().clone();
    if layout.resolve(&src.to_string())?.is_none() {
        return Err(anyhow!(
            "image `{src}` is not in the local store {}; pull or build it first (`sealos pull {image}`)",
            store.display()
        ));
    }
    let progress = Arc::new(Progress::new());
    let client = client_args.client(&progress)?;
    let job = ImageJob {
        source: Arc::new(Location::Oci(Arc::new(layout))),
        source_repository: String::new(),
        source_reference: src.to_string(),
        dest_repository: dst.repository().to_string(),
        dest_tag: dst.tag().map(str::to_string),
    };
    let opts = MirrorOptions {
        platforms: PlatformFilter::All,
        max_images: 1,
        referrers: false,
        // An image the destination tag already names is `skipped (identical at ...)`, as copy, sync and
        // save say it, not copied again.
        skip_identical: true,
        ..MirrorOptions::default()
    };
    let reports = run_jobs(
        runtime()?,
        Location::registry(&client, dst.registry()),
        vec![job],
        opts,
        &progress,
    );
    if format == Format::Json {
        print_image_json(&reports, &dst.to_string())?;
    }
    fail_if_any(&reports)
}

/// Pushes from the store at `store`.
pub fn run(args: &PushArgs, store: &std::path::Path) -> anyhow::Result<()> {
    let dest = args.dest.as_deref().unwrap_or(&args.image);
    let dest = dest.strip_prefix("docker://").unwrap_or(dest);
    let client = if args.insecure {
        args.client.with_tls_verify(Some(false))
    } else {
        args.client.clone()
    };
    push_reporting(store, &args.image, dest, &client, args.format)
}
