//! `sealos tag SRC NEW...`: gives an image in the local store more names.

use super::images::{explain, open_store};
use crate::GlobalArgs;

/// Arguments of `sealos tag`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos tag myapp:v1 myapp:latest                    another name for the same image
  sealos tag myapp:v1 registry.local:5000/myapp:v1    the name to push it under")]
pub struct TagArgs {
    /// The image to tag (a name or digest in the local store).
    pub source: String,
    /// The new names (`name[:tag]`, normalised like `docker.io/library/name:latest`).
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Adds the names.
pub fn run(global: &GlobalArgs, args: &TagArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    for name in &args.names {
        store.tag(&args.source, name).map_err(explain)?;
    }
    Ok(())
}
