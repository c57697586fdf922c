//! `sealos reset`: run the clean scripts on every host of a cluster and remove what `run` placed.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context as _, bail};
use runtime::reset::ResetOptions;
use runtime::run::Reporter;

use super::run::{ClusterArgs, SshArgs, print_announcement, print_line};
use crate::output::outln;

/// Arguments of `sealos reset`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos reset                         reset the default cluster (asks to type its name)
  sealos reset --cluster prod -f       without asking, for scripts")]
pub struct ResetArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// SSH login (overrides the Clusterfile's).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Reset without asking to type the cluster's name (needed when stdin is not a terminal), and remove the
    /// cluster's files even when a clean script fails.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Asks on the terminal to type the cluster's name; refuses when stdin is not a terminal.
fn confirm(cluster: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "reset of cluster `{cluster}` needs confirmation and stdin is not a terminal: pass --force \
             (-f) to reset without asking"
        );
    }
    eprint!(
        "reset cluster `{cluster}`: its clean scripts run and its data is removed from every host. \
         Type the cluster's name to continue: "
    );
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the confirmation from standard input")?;
    if line.trim() != cluster {
        bail!("reset of cluster `{cluster}` cancelled: the name typed was not `{cluster}`");
    }
    Ok(())
}

/// Resets the cluster.
pub fn run(args: &ResetArgs) -> anyhow::Result<()> {
    if !args.force {
        confirm(&args.cluster.cluster)?;
    }
    let opts = ResetOptions {
        paths: args.cluster.paths(),
        ssh: args.ssh.login(),
        force: args.force,
    };
    let reporter = Reporter {
        announce: &print_announcement,
        output: &print_line,
    };
    let report = runtime::reset::reset(&opts, &reporter)?;
    for failure in &report.failed {
        eprintln!("warning: {failure}");
    }
    outln!(
        "cluster `{}` reset on {}",
        args.cluster.cluster,
        report.hosts.join(", ")
    )?;
    Ok(())
}
