//! Where images are copied from and to: a registry (`host[:port][/prefix]`), a registry store (a directory
//! in the Docker Distribution layout, an S3 bucket: [`Store`]), or an OCI image layout (the local store).
//! Each offers the same small set of operations (manifests by tag or digest, blob presence, blob transfer)
//! so the copy logic is written once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use formats::digest::Digest;
use formats::manifest::{Descriptor, RawManifest};
use formats::oci_layout::OciLayout;

use super::MirrorError;
use super::store::Store;
use crate::client::{BlobSource, DEFAULT_MANIFEST_ACCEPT, PushOutcome, RegistryClient};

/// A place images live in.
#[derive(Debug, Clone)]
pub enum Location {
    /// A registry reached through `client`; repositories are named `<prefix>/<repo>` there.
    Registry {
        /// The client (its options decide TLS, credentials and mirrors).
        client: RegistryClient,
        /// The registry host (`host[:port]`).
        host: String,
        /// A repository prefix (no leading or trailing `/`), empty for none.
        prefix: String,
    },
    /// A registry store: a directory in the Docker Distribution layout (what `docker-registry` serves), an
    /// S3 bucket; read and written through the store, which owns the layout.
    Store(Arc<Store>),
    /// An OCI image layout; images are named by the `org.opencontainers.image.ref.name` tag in `index.json`
    /// (for the local store: the full normalised reference string).
    Oci(Arc<OciLayout>),
}

/// Where the bytes of one blob can be read from.
#[derive(Debug, Clone)]
pub enum BlobOrigin {
    /// A repository of a registry.
    Remote {
        /// Client to fetch with.
        client: RegistryClient,
        /// Registry host.
        host: String,
        /// Full repository name at that registry.
        repository: String,
    },
    /// A local file holding exactly the blob.
    File(PathBuf),
    /// A registry store (a directory, a bucket), read through the store.
    Store(Store),
}

impl Location {
    /// Parses a `SRC`/`DST` argument: `dir:PATH`, a path (starts with `/` or `.`, or an existing
    /// directory), `s3://BUCKET[/PREFIX]` (settings from the AWS environment variables), or a registry
    /// `[docker://]host[:port][/prefix]`.
    pub fn parse(spec: &str, client: &RegistryClient) -> Result<Location, MirrorError> {
        Location::parse_with(spec, client, None)
    }

    /// [`Location::parse`], an `s3://` location reached with the settings of `s3_config` (the TOML file
    /// `registry serve s3 --config` takes) when given.
    pub fn parse_with(
        spec: &str,
        client: &RegistryClient,
        s3_config: Option<&Path>,
    ) -> Result<Location, MirrorError> {
        if let Some(p) = spec.strip_prefix("dir:") {
            return Ok(Location::dir(p));
        }
        if spec.starts_with("s3://") {
            return s3_location(spec, s3_config);
        }
        if spec.starts_with('/') || spec.starts_with('.') || Path::new(spec).is_dir() {
            return Ok(Location::dir(spec));
        }
        let rest = spec.strip_prefix("docker://").unwrap_or(spec);
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (rest, ""),
        };
        if host.is_empty() {
            return Err(MirrorError::BadLocation {
                spec: spec.to_string(),
                reason: "no registry host".into(),
            });
        }
        if !prefix.is_empty() && !formats::reference::Repository::is_valid(prefix) {
            return Err(MirrorError::BadLocation {
                spec: spec.to_string(),
                reason: format!("`{prefix}` is not a valid repository prefix"),
            });
        }
        Ok(Location::Registry {
            client: client.clone(),
            host: host.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The directory `root` in the Docker Distribution layout.
    pub fn dir(root: impl Into<PathBuf>) -> Location {
        Location::Store(Arc::new(Store::dir(root)))
    }

    /// The registry store of this location, if it is one.
    pub fn store(&self) -> Option<&Store> {
        match self {
            Location::Store(s) => Some(s),
            _ => None,
        }
    }

    /// A registry location without prefix.
    pub fn registry(client: &RegistryClient, host: &str) -> Location {
        Location::Registry {
            client: client.clone(),
            host: host.to_string(),
            prefix: String::new(),
        }
    }

    /// A short description for messages (`registry 127.0.0.1:5000/mirror`, `directory /srv/reg`).
    pub fn describe(&self) -> String {
        match self {
            Location::Registry { host, prefix, .. } if prefix.is_empty() => {
                format!("registry {host}")
            }
            Location::Registry { host, prefix, .. } => format!("registry {host}/{prefix}"),
            Location::Store(s) => s.describe(),
            Location::Oci(o) => format!("OCI layout {}", o.root().display()),
        }
    }

    /// The full repository name at this location for a repository `repo` (adds the prefix).
    pub fn full_repository(&self, repo: &str) -> String {
        match self {
            Location::Registry { prefix, .. } if !prefix.is_empty() => format!("{prefix}/{repo}"),
            _ => repo.to_string(),
        }
    }

    /// A human name for `repo:reference` at this location.
    pub fn image_name(&self, repo: &str, reference: &str) -> String {
        let sep = if Digest::parse(reference).is_ok() {
            "@"
        } else {
            ":"
        };
        match self {
            Location::Registry { host, .. } => {
                format!("{host}/{}{sep}{reference}", self.full_repository(repo))
            }
            Location::Store(s) => format!("{}/{repo}{sep}{reference}", s.place()),
            Location::Oci(_) if sep == ":" => reference.to_string(),
            Location::Oci(_) => format!("{repo}{sep}{reference}"),
        }
    }

    /// Reads a manifest by tag or digest (`sha256:...`), byte-exact and verified.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<RawManifest, MirrorError> {
        let digest = Digest::parse(reference).ok();
        match self {
            Location::Registry { client, host, .. } => {
                let full = self.full_repository(repo);
                let m = client
                    .get_manifest(host, &full, reference, DEFAULT_MANIFEST_ACCEPT)
                    .await?;
                let raw = RawManifest::from_bytes(m.bytes.to_vec(), Some(&m.media_type)).map_err(
                    |source| MirrorError::Manifest {
                        what: format!("{host}/{full}:{reference}"),
                        source,
                    },
                )?;
                Ok(raw)
            }
            Location::Store(s) => s.manifest(repo, reference).await,
            Location::Oci(layout) => {
                let layout = layout.clone();
                let reference = reference.to_string();
                blocking(move || {
                    let desc = match digest {
                        Some(d) => Descriptor::new("", d, 0),
                        None => layout.resolve(&reference)?.ok_or_else(|| {
                            MirrorError::NotFound(format!(
                                "image `{reference}` in the local store {}",
                                layout.root().display()
                            ))
                        })?,
                    };
                    Ok(layout.read_manifest(&desc)?)
                })
                .await
            }
        }
    }

    /// The digest `repo:tag` points to here, `None` when the tag does not exist.
    pub async fn tag_digest(&self, repo: &str, tag: &str) -> Result<Option<Digest>, MirrorError> {
        match self {
            Location::Registry { client, host, .. } => Ok(client
                .head_manifest(
                    host,
                    &self.full_repository(repo),
                    tag,
                    DEFAULT_MANIFEST_ACCEPT,
                )
                .await?
                .and_then(|h| h.digest)),
            Location::Store(s) => match s.tag(repo, tag).await {
                Err(MirrorError::Distribution(_)) => Ok(None),
                other => other,
            },
            Location::Oci(layout) => {
                let (layout, tag) = (layout.clone(), tag.to_string());
                blocking(move || Ok(layout.resolve(&tag)?.map(|d| d.digest))).await
            }
        }
    }

    /// True when the manifest `digest` is in `repo` here (and with it, everything it references).
    pub async fn has_manifest(&self, repo: &str, digest: &Digest) -> Result<bool, MirrorError> {
        match self {
            Location::Registry { client, host, .. } => Ok(client
                .head_manifest(
                    host,
                    &self.full_repository(repo),
                    &digest.to_string(),
                    DEFAULT_MANIFEST_ACCEPT,
                )
                .await?
                .is_some()),
            Location::Store(s) => s.has_manifest(repo, digest).await,
            Location::Oci(layout) => Ok(layout.has_blob(digest)),
        }
    }

    /// Where a blob of `repo` can be read from.
    pub fn blob_origin(&self, repo: &str, digest: &Digest) -> BlobOrigin {
        match self {
            Location::Registry { client, host, .. } => BlobOrigin::Remote {
                client: client.clone(),
                host: host.clone(),
                repository: self.full_repository(repo),
            },
            Location::Store(s) => s.blob_origin(),
            Location::Oci(layout) => BlobOrigin::File(layout.blob_path(digest)),
        }
    }

    /// Makes blob `desc` part of `repo` here, taking its bytes from `origin` unless they are already here
    /// (then nothing is read). `mount_from` names a repository here known to hold it. Returns the bytes
    /// transferred.
    pub async fn put_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        origin: &BlobOrigin,
        mount_from: Option<&str>,
    ) -> Result<u64, MirrorError> {
        let digest = &desc.digest;
        match self {
            Location::Registry { client, host, .. } => {
                let full = self.full_repository(repo);
                let mount = mount_from.map(|m| self.full_repository(m));
                let source = match origin {
                    BlobOrigin::Remote {
                        host, repository, ..
                    } => BlobSource::Remote {
                        host: host.clone(),
                        repository: repository.clone(),
                    },
                    BlobOrigin::File(p) => BlobSource::File(p.clone()),
                    BlobOrigin::Store(s) => match s.blob_file(digest) {
                        Some(path) => BlobSource::File(path),
                        None => BlobSource::Stream(s.lazy_stream(digest, desc.size)),
                    },
                };
                let outcome = client
                    .push_blob(host, &full, digest, desc.size, source, mount.as_deref())
                    .await?;
                Ok(if outcome == PushOutcome::Uploaded {
                    desc.size
                } else {
                    0
                })
            }
            Location::Store(s) => s.put_blob(repo, desc, origin).await,
            Location::Oci(layout) => {
                let dest = layout.blob_path(digest);
                let layout = layout.clone();
                fetch_to_file(origin, desc, &dest, move |file, d, size| {
                    layout
                        .write_blob(std::io::BufReader::new(file), Some(&d), Some(size))
                        .map(|_| ())
                        .map_err(MirrorError::from)
                })
                .await
            }
        }
    }

    /// Stores manifest `raw` byte-exact in `repo`, and points `tag` at it when given.
    pub async fn put_manifest(
        &self,
        repo: &str,
        raw: &RawManifest,
        tag: Option<&str>,
    ) -> Result<(), MirrorError> {
        match self {
            Location::Registry { client, host, .. } => {
                let full = self.full_repository(repo);
                let digest = raw.digest.to_string();
                client
                    .put_manifest(
                        host,
                        &full,
                        tag.unwrap_or(&digest),
                        Bytes::from(raw.bytes.clone()),
                        &raw.media_type,
                    )
                    .await?;
                Ok(())
            }
            Location::Store(s) => s.put_manifest(repo, raw, tag).await,
            Location::Oci(layout) => {
                let (layout, raw) = (layout.clone(), raw.clone());
                let tag = tag.map(str::to_string);
                blocking(move || {
                    let desc = layout.write_manifest(&raw)?;
                    if let Some(tag) = tag {
                        layout.set_tag(&tag, desc)?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// Every `(repository, tag)` here (repositories without the prefix), for `sync`; referrers-tag-schema tags
    /// (`sha256-<hex>`) are not images and travel with their subjects' referrers instead.
    pub async fn list_images(
        &self,
        max_parallel: usize,
    ) -> Result<Vec<(String, String)>, MirrorError> {
        match self {
            Location::Registry {
                client,
                host,
                prefix,
            } => {
                use futures_util::StreamExt;
                let repos: Vec<String> = client
                    .catalog(host)
                    .await?
                    .into_iter()
                    .filter_map(|r| {
                        if prefix.is_empty() {
                            Some(r)
                        } else {
                            r.strip_prefix(&format!("{prefix}/")).map(str::to_string)
                        }
                    })
                    .collect();
                let lists: Vec<Result<Vec<(String, String)>, MirrorError>> =
                    futures_util::stream::iter(repos)
                        .map(|repo| async move {
                            let tags = client.tags(host, &self.full_repository(&repo)).await?;
                            Ok(tags
                                .into_iter()
                                .filter(|t| !crate::client::is_referrers_tag(t))
                                .map(|t| (repo.clone(), t))
                                .collect())
                        })
                        .buffered(max_parallel.max(1))
                        .collect()
                        .await;
                let mut out = Vec::new();
                for l in lists {
                    out.extend(l?);
                }
                Ok(out)
            }
            Location::Store(s) => s.images().await,
            Location::Oci(layout) => {
                let layout = layout.clone();
                blocking(move || {
                    Ok(layout
                        .tags()?
                        .into_iter()
                        .map(|(t, _)| (String::new(), t))
                        .collect())
                })
                .await
            }
        }
    }

    /// Manifests here whose subject is `digest` (signatures, SBOMs): a registry is asked (referrers API or
    /// its tag fallback); a store is searched through the repository's stored manifests; an OCI layout has
    /// none.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Digest>, MirrorError> {
        match self {
            Location::Registry { client, host, .. } => Ok(client
                .referrers(host, &self.full_repository(repo), digest, None)
                .await?
                .into_iter()
                .map(|r| r.digest)
                .collect()),
            Location::Store(s) => s.referrers(repo, digest).await,
            Location::Oci(_) => Ok(Vec::new()),
        }
    }
}

/// Brings a blob to `dest` (a content-addressed path in an OCI layout): fetched from a registry through a
/// verified download staged beside `dest`, or copied from a local file by `copy_local` (which verifies
/// too). Returns the bytes transferred (0 when it was already there).
async fn fetch_to_file<F>(
    origin: &BlobOrigin,
    desc: &Descriptor,
    dest: &Path,
    copy_local: F,
) -> Result<u64, MirrorError>
where
    F: FnOnce(std::fs::File, Digest, u64) -> Result<(), MirrorError> + Send + 'static,
{
    if dest.is_file() {
        return Ok(0);
    }
    let path = match origin {
        BlobOrigin::Remote {
            client,
            host,
            repository,
        } => {
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).map_err(|source| MirrorError::Io {
                    op: "create directory",
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            return Ok(client
                .fetch_blob(host, repository, &desc.digest, Some(desc.size), dest)
                .await?);
        }
        BlobOrigin::File(path) => path.clone(),
        BlobOrigin::Store(s) => s.blob_file(&desc.digest).ok_or_else(|| MirrorError::BadLocation {
            spec: s.place().to_string(),
            reason: format!(
                "blob {} is not a file there: images are copied into an OCI layout from registries \
                 and directories",
                desc.digest
            ),
        })?,
    };
    let file = std::fs::File::open(&path).map_err(|source| MirrorError::Io {
        op: "open blob",
        path,
        source,
    })?;
    let (d, size) = (desc.digest.clone(), desc.size);
    blocking(move || copy_local(file, d, size)).await?;
    Ok(size)
}

/// An `s3://BUCKET[/PREFIX]` location.
#[cfg(feature = "s3")]
fn s3_location(spec: &str, config: Option<&Path>) -> Result<Location, MirrorError> {
    Ok(Location::Store(Arc::new(Store::s3(spec, config)?)))
}

/// An `s3://` location in a build without the S3 backend.
#[cfg(not(feature = "s3"))]
fn s3_location(spec: &str, _config: Option<&Path>) -> Result<Location, MirrorError> {
    Err(MirrorError::BadLocation {
        spec: spec.to_string(),
        reason: "this build has no S3 support (the registry crate's `s3` feature)".into(),
    })
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, MirrorError>
where
    F: FnOnce() -> Result<T, MirrorError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MirrorError::Internal(format!("blocking task failed: {e}")))?
}
