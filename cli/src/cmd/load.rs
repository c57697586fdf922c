//! `sealos load -i FILE`: imports every image of an OCI archive, docker archive or OCI layout directory
//! (the format is detected) into the local store.

use std::path::PathBuf;

use super::images::{explain, open_store};
use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Arguments of `sealos load`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos load -i app.tar              an OCI archive or docker archive (gzip or zstd compressed too)
  sealos load -i ./layout             an OCI image layout directory
  sealos load -i app.tar --format json")]
pub struct LoadArgs {
    /// The archive or layout directory to load.
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Loads the images.
pub fn run(global: &GlobalArgs, args: &LoadArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    crate::interrupt::guard_store_writes(store.root())?;
    let loaded = store.load(&args.input).map_err(explain)?;
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&loaded)?)?,
        Format::Text => {
            for image in &loaded {
                outln!("Loaded image: {} ({})", image.name, image.digest)?;
            }
        }
    }
    Ok(())
}
