//! `sealos version`: the version and git commit.

use crate::output::{Format, outln};

/// Arguments of `sealos version`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos version                     version and git commit
  sealos version --short             the version alone, for scripts
  sealos version --format json       {\"version\": ..., \"gitCommit\": ...}")]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the version alone (`5.0.1`), as `sealos version --short` does in sealos v4/v5.
    #[arg(long, conflicts_with = "format")]
    pub short: bool,
}

/// Prints the version.
pub fn run(args: &VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("SEALOS_GIT_COMMIT");
    if args.short {
        return outln!("{version}");
    }
    match args.format {
        Format::Text => outln!("sealos {version}\ngit commit: {commit}")?,
        Format::Json => outln!(
            "{}",
            serde_json::json!({"version": version, "gitCommit": commit})
        )?,
    }
    Ok(())
}
