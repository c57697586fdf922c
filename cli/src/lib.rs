//! The `sealos` command line: clap definitions and thin glue over the library crates.
//!
//! Each subcommand lives in its own module under [`cmd`]; this file only parses arguments, sets up
//! global options and reports errors the same way everywhere (`error: ...` then `hint: ...`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod cmd;
pub mod interrupt;
pub mod output;
pub mod runtime;

pub use runtime::runtime;

/// Build, ship, serve and run Kubernetes cluster images.
#[derive(Debug, Parser)]
#[command(name = "sealos", version = version_line(), propagate_version = true, max_term_width = 110)]
pub struct Cli {
    /// Global options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Directory of the local image store (an OCI image layout).
    /// Default: $SEALOS_ROOT, else /var/lib/sealos/store as root, else $XDG_DATA_HOME/sealos/store
    /// (~/.local/share/sealos/store).
    #[arg(long, global = true, env = "SEALOS_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print debug logs and full error chains.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Refuse a compressed layer or archive that decompresses to more than RATIO times its size, a
    /// decompression bomb (output up to 64 MiB always passes; 0 turns the bound off).
    #[arg(long, global = true, value_name = "RATIO", default_value_t = formats::layer::DEFAULT_MAX_EXPANSION)]
    pub max_layer_expansion: u64,
    /// Refuse a layer or archive that decompresses to more than SIZE bytes (`K`, `M`, `G`, `T` suffixes
    /// count in 1024s), whatever its ratio. Default: no cap.
    #[arg(long, global = true, value_name = "SIZE", value_parser = parse_size)]
    pub max_layer_size: Option<u64>,
}

impl GlobalArgs {
    /// The bound on decompression that `--max-layer-expansion` and `--max-layer-size` set.
    pub fn expansion_limit(&self) -> formats::layer::ExpansionLimit {
        formats::layer::ExpansionLimit {
            max_ratio: self.max_layer_expansion,
            max_size: self.max_layer_size,
            ..formats::layer::ExpansionLimit::default()
        }
    }

    /// The local store directory, from `--root`/`SEALOS_ROOT` or the documented default.
    pub fn store_root(&self) -> PathBuf {
        if let Some(root) = &self.root {
            return root.clone();
        }
        default_store_root()
    }
}

/// Parses a byte count with an optional binary suffix: `1048576`, `64M`, `64MiB`, `20G`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "`{s}` is not a size: use bytes or a number with K, M, G or T"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("`{s}` is not a size: use bytes or a number with K, M, G or T"))
}

/// The default store directory when neither `--root` nor `SEALOS_ROOT` is given.
pub fn default_store_root() -> PathBuf {
    if is_root_user() {
        return PathBuf::from("/var/lib/sealos/store");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("sealos/store");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/sealos/store")
}

fn is_root_user() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false)
}

/// All `sealos` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version and the git commit it was built from.
    Version(cmd::version::VersionArgs),
    /// Print a shell completion script.
    Completion(cmd::completion::CompletionArgs),
    /// Build a cluster image from a Kubefile into the local store (`--dry-run` prints the plan).
    Build(Box<cmd::build::BuildArgs>),
    /// List the images in the local store.
    Images(cmd::images::ImagesArgs),
    /// Show an image's config, layers, platforms and annotations.
    Inspect(cmd::inspect::InspectArgs),
    /// Give an image in the local store more names.
    Tag(cmd::tag::TagArgs),
    /// Merge images of the local store into one: layers, labels, env and commands, in order.
    Merge(cmd::merge::MergeArgs),
    /// Remove images from the local store and the blobs no image uses any more.
    Rmi(cmd::rmi::RmiArgs),
    /// Remove dangling blobs and stale temporary files from the local store.
    Prune(cmd::prune::PruneArgs),
    /// Export images as an OCI archive, a docker archive or an OCI layout directory.
    Save(cmd::save::SaveArgs),
    /// Import the images of an OCI archive, docker archive or OCI layout directory.
    Load(cmd::load::LoadArgs),
    /// Serve and maintain OCI registries.
    Registry(Box<cmd::registry::RegistryArgs>),
    /// Log in to a registry (credentials are checked, then stored).
    Login(cmd::login::LoginArgs),
    /// Log out of a registry.
    Logout(cmd::logout::LogoutArgs),
    /// Pull an image from a registry into the local store.
    Pull(cmd::pull::PullArgs),
    /// Push an image from the local store to a registry.
    Push(cmd::push::PushArgs),
    /// Build and push multi-arch manifest lists.
    Manifest(cmd::manifest::ManifestArgs),
    /// Unpack a cluster image into a directory and print the commands `run` would execute.
    Create(cmd::create::CreateArgs),
    /// Apply cluster images to this machine or to hosts over SSH.
    Run(Box<cmd::run::RunArgs>),
    /// Run the clean scripts of a cluster and remove what `run` placed.
    Reset(cmd::reset::ResetArgs),
    /// Render Helm charts without helm (`helm template`'s output).
    Helm(cmd::helm::HelmArgs),
}

fn version_line() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("SEALOS_GIT_COMMIT"),
        ")"
    )
}

/// Parses `args`, runs the command and turns its outcome into an exit code.
pub fn run_from_iter<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    let debug = cli.global.debug;
    if debug {
        init_debug_logging();
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) if output::is_stdout_closed(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::report_error(&err, debug);
            ExitCode::FAILURE
        }
    }
}

/// `--debug`: our crates' debug logs on stderr (each registry request and its response status among them).
fn init_debug_logging() {
    let filter = tracing_subscriber::EnvFilter::new(
        "warn,sealos=debug,registry=debug,builder=debug,runtime=debug,formats=debug",
    );
    // A subscriber already set (an embedding program's) stays.
    let _already = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Version(args) => cmd::version::run(&args),
        Command::Completion(args) => cmd::completion::run(&args),
        Command::Build(args) => cmd::build::run(&global, &args),
        Command::Images(args) => cmd::images::run(&global, &args),
        Command::Inspect(args) => cmd::inspect::run(&global, &args),
        Command::Tag(args) => cmd::tag::run(&global, &args),
        Command::Merge(args) => cmd::merge::run(&global, &args),
        Command::Rmi(args) => cmd::rmi::run(&global, &args),
        Command::Prune(args) => cmd::prune::run(&global, &args),
        Command::Save(args) => cmd::save::run(&global, &args),
        Command::Load(args) => cmd::load::run(&global, &args),
        Command::Registry(args) => cmd::registry::run(&global, &args),
        Command::Login(args) => cmd::login::run(&args),
        Command::Logout(args) => cmd::logout::run(&args),
        Command::Pull(args) => interrupt::guard_store_writes(&global.store_root())
            .and_then(|()| cmd::pull::run(&args, &global.store_root())),
        Command::Push(args) => cmd::push::run(&args, &global.store_root()),
        Command::Manifest(args) => cmd::manifest::run(&args, &global.store_root()),
        Command::Create(args) => cmd::create::run(&global, &args),
        Command::Run(args) => cmd::run::run(&global, &args),
        Command::Reset(args) => cmd::reset::run(&args),
        Command::Helm(args) => cmd::helm::run(&args),
    }
    .map(|()| ExitCode::SUCCESS)
}
