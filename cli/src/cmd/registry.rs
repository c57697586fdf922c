//! `sealos registry`: serve a registry (filesystem in the Docker Distribution layout, or in memory).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use registry::server::{self, ServerConfig};
use registry::storage::{FsStorage, MemoryStorage, Storage};

/// `sealos registry ...`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RegistryCommand,
}

/// Registry subcommands.
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve an OCI Distribution v1.1 registry.
    Serve(ServeArgs),
    /// Verify every blob, link and manifest of a registry directory; exit 1 when anything is wrong.
    Fsck(super::registry_maint::FsckArgs),
    /// Remove unreferenced blobs, untagged manifests (`--delete-untagged`) and stale upload sessions.
    Gc(super::registry_maint::GcArgs),
    /// Mirroring: `save`, `sync`, `copy`.
    #[command(flatten)]
    Mirror(super::mirror::RegistryMirrorCommand),
}

/// `sealos registry serve BACKEND`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the registry keeps its data.
    #[command(subcommand)]
    pub backend: Backend,
}

/// Storage backends.
#[derive(Debug, Subcommand)]
pub enum Backend {
    /// Serve a directory in the Docker Distribution layout (a distribution data directory or a cluster
    /// image's `registry/` directory); created if missing.
    #[command(visible_alias = "fs")]
    Filesystem {
        /// The directory that holds (or will hold) `docker/registry/v2`.
        dir: PathBuf,
        /// Server options.
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Serve from memory; everything is lost on exit.
    Inmem {
        /// Server options.
        #[command(flatten)]
        options: ServeOptions,
    },
}

/// Options shared by every backend.
#[derive(Debug, Clone, Args)]
pub struct ServeOptions {
    /// TCP port to listen on; 0 picks a free one. The bound address is printed as `listening on ADDR:PORT`.
    #[arg(short = 'p', long, default_value_t = 5000)]
    pub port: u16,
    /// Address to listen on. The default, 0.0.0.0, listens on every IPv4 interface; use 127.0.0.1 for local only.
    #[arg(long, default_value = "0.0.0.0")]
    pub address: String,
    /// Write the server's process id to this file (removed on clean exit).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (or a tracing filter such as `registry=debug`).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Do not log anything (not even requests).
    #[arg(long)]
    pub disable_logging: bool,
    /// Refuse every write (push, delete) with 405 UNSUPPORTED.
    #[arg(long)]
    pub read_only: bool,
}

/// Runs `sealos registry ...`.
pub fn run(args: &RegistryArgs) -> anyhow::Result<()> {
    match &args.command {
        RegistryCommand::Serve(serve) => run_serve(serve),
        RegistryCommand::Fsck(fsck) => super::registry_maint::run_fsck(fsck),
        RegistryCommand::Gc(gc) => super::registry_maint::run_gc(gc),
        RegistryCommand::Mirror(command) => super::mirror::run_command(command),
    }
}

fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let (storage, options): (Arc<dyn Storage>, &ServeOptions) = match &args.backend {
        Backend::Filesystem { dir, options } => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating registry directory `{}`", dir.display()))?;
            (Arc::new(FsStorage::new(dir)), options)
        }
        Backend::Inmem { options } => (Arc::new(MemoryStorage::new()), options),
    };
    if !options.disable_logging {
        let filter = tracing_subscriber::EnvFilter::try_new(&options.log_level)
            .with_context(|| format!("invalid --log-level `{}`", options.log_level))?;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| anyhow::anyhow!("setting up logging: {e}"))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_until_signal(storage, options))
}

async fn serve_until_signal(
    storage: Arc<dyn Storage>,
    options: &ServeOptions,
) -> anyhow::Result<()> {
    let addr = format!("{}:{}", options.address, options.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on `{addr}` (is the port in use? try `-p 0`)"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    println!("listening on {bound}");
    use std::io::Write;
    std::io::stdout().flush().context("writing to stdout")?;
    if let Some(pid_file) = &options.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing pid file `{}`", pid_file.display()))?;
    }
    let config = ServerConfig {
        read_only: options.read_only,
        log_requests: !options.disable_logging,
    };
    let router = server::router(storage, config);
    let result = server::serve(listener, router, shutdown_signal()).await;
    if let Some(pid_file) = &options.pid_file {
        let _ignored = std::fs::remove_file(pid_file);
    }
    result.context("serving")
}

/// Completes on SIGTERM or SIGINT; in-flight requests then finish before the server exits.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ignored = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
