//! `sealos version`: the version and git commit.

use crate::output::{Format, outln};

/// Arguments of `sealos version`.
#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Prints the version.
pub fn run(args: &VersionArgs) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("SEALOS_GIT_COMMIT");
    match args.format {
        Format::Text => outln!("sealos {version}\ngit commit: {commit}")?,
        Format::Json => outln!(
            "{}",
            serde_json::json!({"version": version, "gitCommit": commit})
        )?,
    }
    Ok(())
}
