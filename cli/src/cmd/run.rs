//! `sealos run IMAGE...`: apply cluster images to the local machine or to hosts over SSH (see
//! docs/runtime.md). Also the options `create` and `reset` share: the cluster, where it lives, how to log in.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use builder::store::{ImageSource, Store, StoreError};
use runtime::env::Env;
use runtime::exec::{Line, Stream};
use runtime::run::{
    ClusterPaths, DEFAULT_CLUSTER, DEFAULT_DATA_DIR, DEFAULT_REGISTRY_PORT, RegistryOptions,
    Reporter, RunOptions, SshLogin,
};

use super::images::{explain, open_store};
use super::mirror::ClientArgs;
use crate::GlobalArgs;
use crate::output::{Format, outln};

/// Which cluster, and where its files live.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// The cluster's name.
    #[arg(long, default_value = DEFAULT_CLUSTER)]
    pub cluster: String,
    /// Where everything is placed on the hosts (the rootfs is `<DIR>/<cluster>/rootfs`) [default: the one
    /// the cluster's Clusterfile records, else /var/lib/sealos/data]. Another one than recorded is refused.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where each cluster's Clusterfile is kept (`<DIR>/<cluster>/Clusterfile`). Default: ~/.sealos.
    #[arg(long, value_name = "DIR", env = "SEALOS_CLUSTERS_DIR")]
    pub clusters_dir: Option<PathBuf>,
}

impl ClusterArgs {
    /// The paths these flags name.
    pub fn paths(&self) -> ClusterPaths {
        let clusters_dir = self.clusters_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
                .join(".sealos")
        });
        ClusterPaths {
            cluster: self.cluster.clone(),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            data_dir_given: self.data_dir.is_some(),
            clusters_dir,
        }
    }
}

/// How to log in to the hosts.
#[derive(Debug, Clone, clap::Args)]
pub struct SshArgs {
    /// SSH password (needs `sshpass`); prefer a key.
    #[arg(
        short = 'p',
        long = "passwd",
        value_name = "PASSWORD",
        env = "SEALOS_SSH_PASSWORD"
    )]
    pub password: Option<String>,
    /// SSH private key file.
    #[arg(short = 'i', long = "pk", value_name = "KEYFILE")]
    pub key: Option<PathBuf>,
    /// SSH port for hosts given without one (default 22).
    #[arg(long)]
    pub port: Option<u16>,
    /// SSH user (default root).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
}

impl SshArgs {
    /// The login these flags give.
    pub fn login(&self) -> SshLogin {
        SshLogin {
            user: self.user.clone(),
            key: self.key.clone(),
            password: self.password.clone(),
            port: self.port,
        }
    }
}

/// Arguments of `sealos run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  sealos run labring/kubernetes:v1.29.0 labring/calico:v3.26.1      this machine, as a one-node cluster
  sealos run myimage:v1 --single                                     the same (sealos v4 spelling)
  sealos run k8s:v1 -m 192.168.0.2,192.168.0.3 -n 192.168.0.4 -p PW  masters and nodes over SSH
  sealos run app:v1 -e NAMESPACE=prod --cmd 'kubectl apply -f .'     override ENV and CMD
  sealos run app:v1 --format json                                    what was applied, as JSON")]
pub struct RunArgs {
    /// The images, applied in order (store names, `oci-archive:FILE`, `docker-archive:FILE`, or registry
    /// references, pulled when not in the store).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// `KEY=VALUE` for the images' commands and templates (overrides image ENV); repeatable.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Replaces the CMD of the images applied; repeatable, one shell command each.
    #[arg(long = "cmd", value_name = "CMD")]
    pub cmd: Vec<String>,
    /// Master hosts (`IP[:PORT]`, comma-separated); the first is the first master. None: this machine.
    #[arg(short = 'm', long, value_name = "HOSTS")]
    pub masters: Vec<String>,
    /// Worker hosts (`IP[:PORT]`, comma-separated).
    #[arg(short = 'n', long, value_name = "HOSTS")]
    pub nodes: Vec<String>,
    /// Accepted as sealos v4/v5 users type it: a run without --masters and --nodes is already on this
    /// machine alone, a single-node cluster, so this changes nothing (it refuses --masters and --nodes).
    #[arg(long, conflicts_with_all = ["masters", "nodes"])]
    pub single: bool,
    /// Output format: `json` prints `{"applied": [{"name", "digest"}], "skipped": [...], "hosts": [...],
    /// "images": [{"reference", "embedded", "availability", "sources"}]}` at the end, and the hosts'
    /// output goes to stderr.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Apply images again even when the cluster already has them.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Port of the embedded registry served from the first master.
    #[arg(long, default_value_t = DEFAULT_REGISTRY_PORT)]
    pub registry_port: u16,
    /// Address the embedded registry listens on [default: the first master's address; 127.0.0.1 when the run
    /// is on this machine]. It serves without authentication: `0.0.0.0` exposes it on every interface.
    #[arg(long, value_name = "ADDR", alias = "registry-address")]
    pub registry_listen: Option<String>,
    /// Run even when images the install will pull are not in the embedded registry (they are listed as a
    /// warning). Without it such a run stops before any host is touched.
    #[arg(long)]
    pub skip_image_check: bool,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// SSH login.
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Registry access, for images pulled from a registry.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses `-e KEY=VALUE` values.
pub fn parse_env(values: &[String]) -> anyhow::Result<Env> {
    values
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("-e `{v}`: expected KEY=VALUE"))
        })
        .collect()
}

/// Prints each host's output line as `[host] line` (stderr lines to stderr). A closed stdout drops the
/// line: the cluster operation goes on rather than stopping half-way.
pub fn print_line(line: &Line<'_>) {
    match line.stream {
        Stream::Stdout => {
            let _ = outln!("[{}] {}", line.host, line.text);
        }
        Stream::Stderr => eprintln!("[{}] {}", line.host, line.text),
    }
}

/// Prints an announcement of what comes next (dropped when stdout is closed, like [`print_line`]).
pub fn print_announcement(text: &str) {
    let _ = outln!("==> {text}");
}

/// Pulls images that are registry references missing from the store.
fn pull_missing(args: &RunArgs, store: &Store, root: &std::path::Path) -> anyhow::Result<()> {
    for image in &args.images {
        let name = match ImageSource::parse(image).map_err(explain)? {
            ImageSource::Local(n) | ImageSource::Registry(n) => n,
            _ => continue,
        };
        match store.resolve(&name) {
            Err(StoreError::NotFound(_)) => {
                eprintln!("pulling {name}");
                let pull = super::pull::PullArgs {
                    image: name.clone(),
                    platform: None,
                    all_platforms: false,
                    quiet: false,
                    format: crate::output::Format::Text,
                    client: args.client.clone(),
                };
                match super::pull::run(&pull, root) {
                    // The pull is done; only its closing line was lost. The run goes on, as print_line does.
                    Err(e) if crate::output::is_stdout_closed(&e) => {}
                    pulled => pulled.with_context(|| {
                        format!("`{name}` is not in the local store and could not be pulled")
                    })?,
                }
            }
            Err(e) => return Err(explain(e)),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Runs the images.
pub fn run(global: &GlobalArgs, args: &RunArgs) -> anyhow::Result<()> {
    let store = open_store(global)?;
    pull_missing(args, &store, &global.store_root())?;
    let binary = std::env::current_exe().context("finding the sealos binary to copy to hosts")?;
    let opts = RunOptions {
        paths: args.cluster.paths(),
        images: args.images.clone(),
        env: parse_env(&args.env)?,
        cmd: (!args.cmd.is_empty()).then(|| args.cmd.clone()),
        masters: args.masters.clone(),
        nodes: args.nodes.clone(),
        ssh: args.ssh.login(),
        force: args.force,
        registry: RegistryOptions {
            port: args.registry_port,
            address: args.registry_listen.clone(),
            binary,
        },
        skip_image_check: args.skip_image_check,
    };
    let json = args.format == Format::Json;
    let reporter = if json {
        Reporter {
            announce: &|text: &str| eprintln!("==> {text}"),
            output: &|line: &Line<'_>| eprintln!("[{}] {}", line.host, line.text),
        }
    } else {
        Reporter {
            announce: &print_announcement,
            output: &print_line,
        }
    };
    let report = runtime::run::run(&store, &opts, &reporter)?;
    if json {
        let applied: Vec<_> = report
            .applied
            .iter()
            .map(|(name, digest)| serde_json::json!({"name": name, "digest": digest}))
            .collect();
        let images = image_check_json(&report.image_check);
        let out = serde_json::json!({
            "images": images,
            "cluster": args.cluster.cluster,
            "applied": applied,
            "skipped": report.skipped,
            "hosts": report.hosts,
        });
        return outln!("{}", serde_json::to_string_pretty(&out)?);
    }
    for name in &report.skipped {
        outln!(
            "skipped {name}: already applied to cluster `{}` (use -f to apply it again)",
            args.cluster.cluster
        )?;
    }
    for (name, digest) in &report.applied {
        outln!("applied {name} ({digest})")?;
    }
    Ok(())
}

/// The image check as `run --format json` and `create --format json` print it: one object per image the
/// install pulls (`reference`, `embedded`, `availability`, `sources`).
pub(crate) fn image_check_json(check: &runtime::image_check::ImageCheck) -> Vec<serde_json::Value> {
    check
        .images
        .iter()
        .map(|i| {
            serde_json::json!({
                "reference": i.reference,
                "embedded": i.availability.is_embedded(),
                "availability": i.availability.to_string(),
                "sources": i.sources,
            })
        })
        .collect()
}
