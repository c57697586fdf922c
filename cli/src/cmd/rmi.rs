//! `sealos rmi IMAGE...`: removes names from the local store, then the blobs no image uses any more.

use super::images::{explain, human_size, open_store};
use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Arguments of `sealos rmi`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos rmi myapp:v1                remove a name (and the blobs no other image uses)
  sealos rmi -f sha256:1a2b3c        remove every name of an image given by digest
  sealos rmi a:v1 b:v2 --format json report what was removed as JSON")]
pub struct RmiArgs {
    /// Names or digests of the images to remove.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Given a digest, remove every name of that image, however many there are.
    #[arg(short, long)]
    pub force: bool,
    /// Output format (`json`: `{"untagged": [...], "deletedBlobs": N, "bytesFreed": N}`).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

const GC_DEFERRED: &str = "note: a build, load, pull or push is using the store, so unused blobs were kept; run `sealos prune` later";

/// Removes the images.
pub fn run(global: &GlobalArgs, args: &RmiArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let report = store.remove(&names, args.force).map_err(explain)?;
    if args.format == Format::Json {
        if report.gc.is_none() {
            eprintln!("{GC_DEFERRED}");
        }
        let json = serde_json::json!({
            "untagged": report.untagged,
            "deletedBlobs": report.gc.as_ref().map_or(0, |g| g.removed.len()),
            "bytesFreed": report.gc.as_ref().map_or(0, |g| g.bytes_freed),
        });
        return outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    for name in &report.untagged {
        outln!("untagged: {name}")?;
    }
    match report.gc {
        Some(gc) => outln!(
            "deleted {} blobs, {} freed",
            gc.removed.len(),
            human_size(gc.bytes_freed)
        )?,
        None => eprintln!("{GC_DEFERRED}"),
    }
    Ok(())
}
