//! `sealos registry serve ... --proxy UPSTREAM`: the pull-through cache flags, and the storage they wrap
//! around the backend (see `registry::proxy` and docs/hub.md, "Pull-through cache").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use registry::client::{ClientOptions, RegistryClient};
use registry::proxy::{DEFAULT_TAG_TTL, ProxyOptions, ProxyStorage, Upstream, Upstreams};
use registry::storage::Storage;

/// Pull-through cache flags of `registry serve`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Serve as a pull-through cache of this registry (`registry-1.docker.io`, `https://quay.io`,
    /// `http://127.0.0.1:5000` for plain HTTP): a pull of anything not stored is fetched from it, verified,
    /// stored and served. Pushes into cached repositories are refused. See docs/hub.md.
    #[arg(long, value_name = "UPSTREAM", conflicts_with = "proxy_config")]
    pub proxy: Option<String>,
    /// A pull-through cache of several upstreams by repository prefix (TOML `[[upstream]]` tables with
    /// `prefix` and `registry`, e.g. `docker.io/` -> `registry-1.docker.io`); repositories outside every
    /// prefix are ordinary local ones. See docs/hub.md.
    #[arg(long, value_name = "FILE")]
    pub proxy_config: Option<PathBuf>,
    /// With --proxy: how long a tag is trusted before one HEAD re-checks it upstream (`30s`, `5m`, `1h`).
    #[arg(long, value_name = "DURATION", value_parser = super::registry_maint::parse_duration)]
    pub proxy_tag_ttl: Option<Duration>,
    /// With --proxy: the most the cache keeps (`20G`); past it, least recently used images are evicted.
    /// Default: unbounded.
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size)]
    pub proxy_max_size: Option<u64>,
    /// With --proxy: where downloads in progress are spooled while they stream to their first clients
    /// (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    pub proxy_spool_dir: Option<PathBuf>,
}

impl ProxyArgs {
    /// The upstreams the flags name, or `None` when the registry is no cache.
    fn upstreams(&self) -> anyhow::Result<Option<Upstreams>> {
        match (&self.proxy, &self.proxy_config) {
            (Some(url), None) => Ok(Some(Upstreams::single(Upstream::parse_url(url)?))),
            (None, Some(file)) => Ok(Some(Upstreams::load(file)?)),
            (None, None) => {
                if self.proxy_tag_ttl.is_some()
                    || self.proxy_max_size.is_some()
                    || self.proxy_spool_dir.is_some()
                {
                    bail!(
                        "--proxy-tag-ttl, --proxy-max-size and --proxy-spool-dir need --proxy or --proxy-config"
                    );
                }
                Ok(None)
            }
            (Some(_), Some(_)) => bail!("give --proxy or --proxy-config, not both"),
        }
    }

    /// `storage` as a pull-through cache when the flags ask for one (reading back what an earlier run
    /// cached), else unchanged. The upstream client uses the system `registries.conf`, credentials and
    /// `certs.d`, as `sealos pull` does.
    pub async fn wrap(&self, storage: Arc<dyn Storage>) -> anyhow::Result<Arc<dyn Storage>> {
        let Some(upstreams) = self.upstreams()? else {
            return Ok(storage);
        };
        let mut client_options = ClientOptions::from_env()?;
        client_options.insecure_loopback = true;
        upstreams.allow_insecure(&mut client_options);
        let client = RegistryClient::new(client_options)?;
        let spool_dir = self
            .proxy_spool_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("sealos-proxy-spool"));
        let proxy = ProxyStorage::new(
            storage,
            client,
            ProxyOptions {
                upstreams: upstreams.clone(),
                tag_ttl: self.proxy_tag_ttl.unwrap_or(DEFAULT_TAG_TTL),
                max_size: self.proxy_max_size,
                spool_dir,
            },
        );
        let held = proxy
            .adopt()
            .await
            .context("reading what the pull-through cache holds")?;
        for u in &upstreams.upstreams {
            tracing::info!(
                prefix = %u.prefix,
                upstream = %u.registry,
                cached_bytes = held,
                "pull-through cache"
            );
        }
        Ok(Arc::new(proxy))
    }
}
