//! `sealos prune`: removes dangling content from the local store (blobs no image references) and temporary
//! files older than an hour left by interrupted writes.

use super::images::{explain, human_size, open_store};
use crate::GlobalArgs;
use crate::output::outln;

/// Arguments of `sealos prune`.
#[derive(Debug, clap::Args)]
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
            "note: a build or load is writing to the store, so unreferenced blobs were kept; try again later"
        ),
    }
    outln!(
        "deleted {} stale temporary files, {} freed",
        report.temp_files.len(),
        human_size(report.temp_bytes)
    )?;
    Ok(())
}
