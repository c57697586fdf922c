//! `sealos reset`: run the clean scripts on every host of a cluster and remove what `run` placed.

use runtime::reset::ResetOptions;
use runtime::run::Reporter;

use super::run::{ClusterArgs, SshArgs, print_announcement, print_line};
use crate::output::outln;

/// Arguments of `sealos reset`.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// SSH login (overrides the Clusterfile's).
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Remove the cluster's files even when a clean script fails.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// Resets the cluster.
pub fn run(args: &ResetArgs) -> anyhow::Result<()> {
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
