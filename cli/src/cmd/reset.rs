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

/// What a reset of the cluster removes, for the confirmation: `/var/lib/sealos/data/default on localhost`
/// (the data directory the Clusterfile records, and its hosts); `None` when the Clusterfile cannot be read
/// (the reset then says why).
fn what_is_removed(paths: &runtime::run::ClusterPaths) -> Option<String> {
    let file = runtime::clusterfile::Clusterfile::load(&paths.clusterfile()).ok()??;
    let data = paths.with_recorded_data_dir(&file).ok()?.cluster_data();
    let hosts: Vec<&str> = file
        .spec
        .hosts
        .iter()
        .flat_map(|h| h.ips.iter().map(String::as_str))
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(", ")
    };
    Some(format!("`{}` on {hosts}", data.display()))
}

/// Asks on the terminal to type the cluster's name; refuses when stdin is not a terminal.
fn confirm(cluster: &str, removed: Option<&str>) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "reset of cluster `{cluster}` needs confirmation and stdin is not a terminal: pass --force \
             (-f) to reset without asking"
        );
    }
    let data = removed.map_or_else(
        || "its data is removed from every host".to_string(),
        |what| format!("its embedded registry is stopped and {what} is removed"),
    );
    eprint!(
        "reset cluster `{cluster}`: its clean scripts run, {data}. Type the cluster's name to continue: "
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
        let removed = what_is_removed(&args.cluster.paths());
        confirm(&args.cluster.cluster, removed.as_deref())?;
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
