//! `sealos rmi IMAGE...`: removes names from the local store, then the blobs no image uses any more.

use super::images::{explain, human_size, open_store};
use crate::GlobalArgs;
use crate::output::outln;

/// Arguments of `sealos rmi`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Names or digests of the images to remove.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Given a digest, remove every name of that image, however many there are.
    #[arg(short, long)]
    pub force: bool,
}

/// Removes the images.
pub fn run(global: &GlobalArgs, args: &RmiArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let report = store.remove(&names, args.force).map_err(explain)?;
    for name in &report.untagged {
        outln!("untagged: {name}")?;
    }
    match report.gc {
        Some(gc) => outln!(
            "deleted {} blobs, {} freed",
            gc.removed.len(),
            human_size(gc.bytes_freed)
        )?,
        None => eprintln!(
            "note: a build or load is writing to the store, so unused blobs were kept; run `sealos prune` later"
        ),
    }
    Ok(())
}
