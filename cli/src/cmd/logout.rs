//! `sealos logout`: remove stored credentials of one registry or all of them.

use anyhow::{Context as _, bail};
use registry::client::{Logout, default_auth_file, remove_credentials};

use crate::output::outln;

/// Arguments of `sealos logout`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  sealos logout registry.example.com
  sealos logout --all
  sealos logout 127.0.0.1:5000 --authfile ./auth.json")]
pub struct LogoutArgs {
    /// The registry to log out of.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub registry: Option<String>,
    /// Log out of every registry.
    #[arg(long)]
    pub all: bool,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json).
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<std::path::PathBuf>,
}

/// Removes the credentials.
pub fn run(args: &LogoutArgs) -> anyhow::Result<()> {
    let file = match &args.authfile {
        Some(f) => f.clone(),
        None => default_auth_file()
            .context("no credentials file: set REGISTRY_AUTH_FILE or pass --authfile")?,
    };
    match &args.registry {
        Some(host) if !args.all => {
            if remove_credentials(Logout::Host(host), &file)? == 0 {
                bail!("not logged in to `{host}` (no entry in {})", file.display());
            }
            outln!("Removed login credentials for {host}")?;
        }
        _ => {
            let n = remove_credentials(Logout::All, &file)?;
            outln!("Removed login credentials for {n} registries")?;
        }
    }
    Ok(())
}
