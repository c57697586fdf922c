//! `sealos prune`: removes dangling content from the local store (blobs no image references) and the
//! temporary files interrupted writes left (a pull or build that was killed), at once.

use super::images::{explain, human_size, open_store, plural};
use crate::GlobalArgs;
use crate::output::outln;

/// Arguments of `sealos prune`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos prune        remove blobs no image uses and what interrupted pulls and builds left")]
pub struct PruneArgs {}

/// Prunes the store.
pub fn run(global: &GlobalArgs, _args: &PruneArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    let report = store.prune().map_err(explain)?;
    match report.gc {
        Some(gc) => outln!(
            "deleted {} unreferenced blobs, {} freed",
            gc.removed.len(),
            human_size(gc.bytes_freed)
        )?,
        None => eprintln!(
            "note: a build, load, pull or push is using the store, so unreferenced blobs were kept; try again later"
        ),
    }
    outln!(
        "deleted {}, {} freed",
        plural(report.temp_files.len(), "stale temporary file"),
        human_size(report.temp_bytes)
    )?;
    Ok(())
}
