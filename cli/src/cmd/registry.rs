//! `sealos registry`: serve a registry (filesystem in the Docker Distribution layout, or in memory).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use registry::server::auth::{AuthConfig, Htpasswd, TokenKey};
use registry::server::limits::{self, ConnectionLimits};
use registry::server::uploads::{self, UploadSessionLimits};
use registry::server::{self, ServerConfig, tls};
use registry::storage::{FsStorage, MemoryStorage, S3Config, S3Storage, Storage};

use crate::output::outln;

/// `sealos registry ...`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sealos registry serve fs ./registry --address 127.0.0.1 -p 5000
  sealos registry save --registry-dir registry .
  sealos registry sync ./registry 127.0.0.1:5000
  sealos registry copy quay.io/org/app:v1 127.0.0.1:5000/mirror
  sealos registry fsck ./registry
  sealos registry gc ./registry --dry-run")]
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
    /// Import a delivery (a delta or volumes) into a registry or directory, verified and resumable.
    ///
    /// A delivery is what `registry save --inventory` (or `registry save`) writes, or the volumes of `registry
    /// pack`. Refused before anything is written when the destination lacks what the delivery relies on.
    Import(super::delta::ImportArgs),
    /// Cut a delivery directory into volumes of at most `--split` bytes, for removable media.
    Pack(super::delta::PackArgs),
}

/// `sealos registry serve BACKEND`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  sealos registry serve filesystem /var/lib/registry -p 5000
  sealos registry serve fs ./registry --address 127.0.0.1 -p 0 --read-only
  sealos registry serve inmem -p 5000 --htpasswd ./htpasswd --tls-cert cert.pem --tls-key key.pem
  sealos registry serve s3 --bucket images --endpoint http://127.0.0.1:9000
  sealos registry serve fs ./cache -p 5000 --proxy registry-1.docker.io --proxy-max-size 20G")]
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
    #[command(
        visible_alias = "fs",
        after_help = "\
Examples:
  sealos registry serve filesystem /var/lib/registry -p 5000
  sealos registry serve fs ./registry --address 127.0.0.1 -p 0 --read-only
  sealos registry serve fs ./cluster/registry --verify-blobs --htpasswd ./htpasswd"
    )]
    Filesystem {
        /// The directory that holds (or will hold) `docker/registry/v2`. Nothing below it is reached through a
        /// symlink; the directory itself may be one.
        dir: PathBuf,
        /// Hash each blob against its digest before serving it the first time (a blob that does not match is
        /// refused and logged): for trees this registry did not write, such as a cluster image's `registry/`
        /// (`sealos run` serves it so). Costs one read of each blob, once.
        #[arg(long)]
        verify_blobs: bool,
        /// Server options.
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Serve from an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...), in the Distribution layout under
    /// `--prefix`. Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN).
    /// Several replicas may serve one bucket.
    #[command(after_help = "\
Examples:
  sealos registry serve s3 --bucket images --endpoint http://127.0.0.1:9000 -p 5000
  sealos registry serve s3 --config s3.toml --redirect")]
    S3 {
        /// The bucket (required unless the config file names it).
        #[arg(long, required_unless_present = "config")]
        bucket: Option<String>,
        /// The endpoint URL (e.g. `http://127.0.0.1:9000` for MinIO); default: AWS S3 itself.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// The region [default: us-east-1].
        #[arg(long, env = "AWS_REGION")]
        region: Option<String>,
        /// Key prefix under which `docker/registry/v2` lives.
        #[arg(long)]
        prefix: Option<String>,
        /// Answer blob GETs with a redirect to a presigned URL (clients then download from the bucket).
        #[arg(long)]
        redirect: bool,
        /// A TOML file with `bucket`, `endpoint`, `region`, `prefix`, `redirect`, `access_key_id`,
        /// `secret_access_key`; flags given on the command line win.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Server options.
        #[command(flatten)]
        options: ServeOptions,
    },
    /// Serve from memory; everything is lost on exit.
    #[command(after_help = "\
Examples:
  sealos registry serve inmem -p 5000
  sealos registry serve inmem --address 127.0.0.1 -p 0 --htpasswd ./htpasswd")]
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
    /// Allow DELETE of manifests and blobs (off: 405 UNSUPPORTED, as in distribution). A blob that a manifest
    /// of its repository uses is still not deleted (409). See docs/registry-maintenance.md.
    #[arg(long)]
    pub enable_delete: bool,
    /// Cancel an upload session after this long without a request (`90s`, `15m`, `1h`).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = positive_duration)]
    pub upload_idle_timeout: Duration,
    /// Most open upload sessions of one client (a logged-in user, else a remote IP address); past it, 429.
    #[arg(long, value_name = "N", default_value_t = uploads::DEFAULT_PER_CLIENT, value_parser = at_least_one)]
    pub max_upload_sessions_per_client: usize,
    /// Most open upload sessions in one repository; past it, 429.
    #[arg(long, value_name = "N", default_value_t = uploads::DEFAULT_PER_REPOSITORY, value_parser = at_least_one)]
    pub max_upload_sessions_per_repository: usize,
    /// Most open upload sessions in all; past it, 429.
    #[arg(long, value_name = "N", default_value_t = uploads::DEFAULT_TOTAL, value_parser = at_least_one)]
    pub max_upload_sessions: usize,
    /// Most connections open at once (TLS handshakes included); more wait until one closes. Lowered to half
    /// the open-file limit (raised to its hard limit at start) when that is smaller. See docs/registry-limits.md.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONNECTIONS, value_parser = at_least_one)]
    pub max_connections: usize,
    /// How long a client may take to send a request's line and headers (`30s`, `1m`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub header_timeout: Duration,
    /// Close a kept-alive connection after this long without a request.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = positive_duration)]
    pub idle_timeout: Duration,
    /// End a request whose body sends nothing for this long, and a connection whose client takes nothing of
    /// a response for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub body_timeout: Duration,
    /// End a request whose body outside blob uploads (a manifest PUT) takes longer than this in all, however
    /// steadily it trickles.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = positive_duration)]
    pub body_deadline: Duration,
    /// Most blob uploads (requests streaming a chunk) receiving at once; past it, 429 with `Retry-After: 1`.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONCURRENT_UPLOADS, value_parser = at_least_one)]
    pub max_concurrent_uploads: usize,
    /// Most blob uploads receiving at once from one client (a logged-in user, else a remote address); past
    /// it, 429.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONCURRENT_UPLOADS_PER_CLIENT, value_parser = at_least_one)]
    pub max_concurrent_uploads_per_client: usize,
    /// Require credentials from this htpasswd file (bcrypt entries only: `htpasswd -B`). Clients log in
    /// with Basic or get bearer tokens from `/token`. See docs/registry-auth.md.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// With --htpasswd: let anyone pull (GET/HEAD of blobs, manifests, tags, referrers); pushes, deletes
    /// and the catalog still need credentials.
    #[arg(long, requires = "htpasswd")]
    pub anonymous_pull: bool,
    /// With --htpasswd: sign tokens with the secret in this file (at least 32 bytes, e.g. `openssl rand
    /// -hex 32`) so several replicas accept each other's tokens; default: a random key per process.
    #[arg(long, value_name = "FILE", requires = "htpasswd")]
    pub token_key_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (unencrypted PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only clients presenting a certificate signed by a CA in this PEM file (clients put
    /// theirs in certs.d/HOST:PORT/NAME.cert with NAME.key).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Pull-through cache.
    #[command(flatten)]
    pub proxy: super::registry_proxy::ProxyArgs,
    /// Serve the hub's web page and its JSON API under /ui/ on the same port, with the same auth: a user sees
    /// only the repositories they may pull. See docs/hub.md.
    #[arg(long)]
    pub ui: bool,
}

/// A duration flag that must not be zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match super::registry_maint::parse_duration(text)? {
        d if d.is_zero() => Err(format!("`{text}` is no time at all: give at least `1s`")),
        d => Ok(d),
    }
}

/// A count flag that must be at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{text}` is not a count of at least 1")),
    }
}

impl ServeOptions {
    /// The connection limits of the flags, fitted to the open-file limit (raised to its hard limit first).
    fn connection_limits(&self) -> ConnectionLimits {
        let mut limits = ConnectionLimits {
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_timeout: self.body_timeout,
            body_deadline: self.body_deadline,
            max_concurrent_uploads: self.max_concurrent_uploads,
            max_concurrent_uploads_per_client: self.max_concurrent_uploads_per_client,
        };
        match limits::raise_open_file_limit() {
            Ok(open_files) => {
                if let Some(asked) = limits.fit_open_files(open_files) {
                    tracing::warn!(
                        asked,
                        max_connections = limits.max_connections,
                        open_files,
                        "--max-connections lowered to half the open-file limit (raise `ulimit -n`)"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
        }
        limits
    }

    /// The authentication settings, loading the htpasswd and key files.
    fn auth_config(&self) -> anyhow::Result<Option<AuthConfig>> {
        let Some(path) = &self.htpasswd else {
            return Ok(None);
        };
        let htpasswd = Htpasswd::load(path).context("loading --htpasswd")?;
        let mut config = AuthConfig::new(htpasswd, self.anonymous_pull)?;
        if let Some(key) = &self.token_key_file {
            config.token_key = TokenKey::load(key).context("loading --token-key-file")?;
        }
        Ok(Some(config))
    }

    /// The TLS configuration, when --tls-cert and --tls-key are given.
    fn tls_config(&self) -> anyhow::Result<Option<tls::TlsConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(match &self.tls_client_ca {
                Some(ca) => tls::server_config_with_client_ca(cert, key, ca)
                    .context("loading --tls-cert/--tls-key/--tls-client-ca")?,
                None => tls::server_config(cert, key).context("loading --tls-cert/--tls-key")?,
            })),
            (None, None) => Ok(None),
            _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
        }
    }
}

/// Reads an S3 config file (TOML: `bucket`, `endpoint`, `region`, `prefix`, `redirect`, `access_key_id`,
/// `secret_access_key`), as `registry serve s3 --config` and `registry gc|fsck --config` take it.
pub(super) fn read_s3_config(file: &std::path::Path) -> anyhow::Result<S3Config> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(S3Config::from_toml(&text, &file.display().to_string())?)
}

/// Runs `sealos registry ...`.
pub fn run(global: &crate::GlobalArgs, args: &RegistryArgs) -> anyhow::Result<()> {
    match &args.command {
        RegistryCommand::Serve(serve) => run_serve(serve),
        RegistryCommand::Fsck(fsck) => super::registry_maint::run_fsck(fsck),
        RegistryCommand::Gc(gc) => super::registry_maint::run_gc(gc),
        RegistryCommand::Mirror(command) => super::mirror::run_command(global, command),
        RegistryCommand::Import(import) => super::delta::run_import(import),
        RegistryCommand::Pack(pack) => super::delta::run_pack(pack),
    }
}

fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let (storage, options): (Arc<dyn Storage>, &ServeOptions) = match &args.backend {
        Backend::Filesystem {
            dir,
            verify_blobs,
            options,
        } => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating registry directory `{}`", dir.display()))?;
            let storage = FsStorage::new(dir).verify_on_first_read(*verify_blobs);
            (Arc::new(storage), options)
        }
        Backend::Inmem { options } => (Arc::new(MemoryStorage::new()), options),
        Backend::S3 {
            bucket,
            endpoint,
            region,
            prefix,
            redirect,
            config,
            options,
        } => {
            let mut s3 = match config {
                Some(file) => read_s3_config(file)?,
                None => S3Config {
                    region: "us-east-1".into(),
                    ..S3Config::default()
                },
            };
            if let Some(b) = bucket {
                s3.bucket = b.clone();
            }
            if endpoint.is_some() {
                s3.endpoint = endpoint.clone();
            }
            if let Some(r) = region {
                s3.region = r.clone();
            }
            if let Some(p) = prefix {
                s3.prefix = p.clone();
            }
            s3.redirect |= *redirect;
            let storage = S3Storage::new(&s3)
                .with_context(|| format!("cannot use bucket `{}`", s3.bucket))?;
            (Arc::new(storage), options)
        }
    };
    // Bad auth or TLS files stop the server before it listens.
    let auth = options.auth_config()?;
    let tls = options.tls_config()?;
    if !options.disable_logging {
        let filter = tracing_subscriber::EnvFilter::try_new(&options.log_level)
            .with_context(|| format!("invalid --log-level `{}`", options.log_level))?;
        // With --debug, logging is already set up (at debug level) and stays so.
        let _already = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
    registry::allocator::tune_for_serving();
    crate::runtime()?.block_on(serve_until_signal(storage, options, auth, tls))
}

async fn serve_until_signal(
    storage: Arc<dyn Storage>,
    options: &ServeOptions,
    auth: Option<AuthConfig>,
    tls: Option<tls::TlsConfig>,
) -> anyhow::Result<()> {
    let storage = options.proxy.wrap(storage).await?;
    let addr = format!("{}:{}", options.address, options.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("listening on `{addr}` (is the port in use? try `-p 0`)"))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    match outln!("listening on {bound}") {
        // A server whose stdout is gone still serves; only the announcement is lost.
        Err(e) if crate::output::is_stdout_closed(&e) => {}
        printed => printed?,
    }
    if let Some(pid_file) = &options.pid_file {
        std::fs::write(pid_file, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing pid file `{}`", pid_file.display()))?;
    }
    tracing::info!(
        address = %bound,
        tls = tls.is_some(),
        htpasswd = auth.is_some(),
        anonymous_pull = options.anonymous_pull,
        "serving"
    );
    let config = ServerConfig {
        read_only: options.read_only,
        log_requests: !options.disable_logging,
        auth,
        tls: tls.is_some(),
        enable_delete: options.enable_delete,
        upload_sessions: UploadSessionLimits {
            per_client: options.max_upload_sessions_per_client,
            per_repository: options.max_upload_sessions_per_repository,
            total: options.max_upload_sessions,
            idle_timeout: options.upload_idle_timeout,
        },
        limits: options.connection_limits(),
        ui: options.ui,
    };
    let limits = config.limits.clone();
    let router = server::router(storage, config);
    let result = match tls {
        Some(tls) => tls::serve_tls_with(listener, tls, router, &limits, shutdown_signal()).await,
        None => server::serve_with(listener, router, &limits, shutdown_signal()).await,
    };
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
