//! Where images are copied from and to: a registry (`host[:port][/prefix]`), a directory in the Docker
//! Distribution layout, or an OCI image layout (the local store). Each offers the same small set of
//! operations (manifests by tag or digest, blob presence, blob transfer) so the copy logic is written once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use formats::digest::Digest;
use formats::distribution::DistributionLayout;
use formats::manifest::{Descriptor, RawManifest};
use formats::oci_layout::OciLayout;

use super::MirrorError;
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
    /// A directory in the Docker Distribution layout (what `docker-registry` serves).
    Dir(Arc<DistributionLayout>),
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
}

impl Location {
    /// Parses a `SRC`/`DST` argument: `dir:PATH`, a path (starts with `/` or `.`, or an existing
    /// directory), or a registry `[docker://]host[:port][/prefix]`.
    pub fn parse(spec: &str, client: &RegistryClient) -> Result<Location, MirrorError> {
        if let Some(p) = spec.strip_prefix("dir:") {
            return Ok(Location::Dir(Arc::new(DistributionLayout::new(p))));
        }
        if spec.starts_with('/') || spec.starts_with('.') || Path::new(spec).is_dir() {
            return Ok(Location::Dir(Arc::new(DistributionLayout::new(spec))));
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
            Location::Dir(d) => format!("directory {}", d.paths().root().display()),
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
            Location::Dir(d) => format!("{}/{repo}{sep}{reference}", d.paths().root().display()),
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
            Location::Dir(layout) => {
                let layout = layout.clone();
                let (repo, reference) = (repo.to_string(), reference.to_string());
                blocking(move || {
                    let d = match digest {
                        Some(d) => d,
                        None => layout.resolve_tag(&repo, &reference)?.ok_or_else(|| {
                            MirrorError::NotFound(format!(
                                "tag `{repo}:{reference}` in {}",
                                layout.paths().root().display()
                            ))
                        })?,
                    };
                    Ok(layout.read_manifest(&repo, &d)?)
                })
                .await
            }
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
            Location::Dir(layout) => {
                let (layout, repo, tag) = (layout.clone(), repo.to_string(), tag.to_string());
                blocking(move || match layout.resolve_tag(&repo, &tag) {
                    Ok(d) => Ok(d),
                    Err(_) => Ok(None),
                })
                .await
            }
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
            Location::Dir(layout) => {
                let p = layout.paths();
                Ok(p.revision_link(repo, digest).is_file() && p.blob_data(digest).is_file())
            }
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
            Location::Dir(layout) => BlobOrigin::File(layout.paths().blob_data(digest)),
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
            Location::Dir(layout) => {
                let dest = layout.paths().blob_data(digest);
                let partial = partial_path(layout, digest);
                let n = fetch_to_file(origin, desc, &dest, Some(&partial), {
                    let layout = layout.clone();
                    move |file: std::fs::File, d: Digest, size: u64| {
                        layout
                            .write_blob(std::io::BufReader::new(file), Some(&d), Some(size))
                            .map(|_| ())
                            .map_err(MirrorError::from)
                    }
                })
                .await?;
                let (layout, repo, d) = (layout.clone(), repo.to_string(), digest.clone());
                blocking(move || Ok(layout.link_layer(&repo, &d)?)).await?;
                Ok(n)
            }
            Location::Oci(layout) => {
                let dest = layout.blob_path(digest);
                let layout = layout.clone();
                fetch_to_file(origin, desc, &dest, None, move |file, d, size| {
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
            Location::Dir(layout) => {
                let (layout, repo, raw) = (layout.clone(), repo.to_string(), raw.clone());
                let tag = tag.map(str::to_string);
                blocking(move || Ok(layout.put_manifest(&repo, &raw, tag.as_deref())?)).await
            }
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
            Location::Dir(layout) => {
                let layout = layout.clone();
                blocking(move || {
                    let mut out = Vec::new();
                    for repo in layout.repositories()? {
                        for tag in layout.tags(&repo)? {
                            if !crate::client::is_referrers_tag(&tag) {
                                out.push((repo.clone(), tag));
                            }
                        }
                    }
                    Ok(out)
                })
                .await
            }
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
    /// its tag fallback); a Distribution-layout directory is searched through the repository's stored
    /// manifests; an OCI layout has none.
    pub async fn referrers(&self, repo: &str, digest: &Digest) -> Result<Vec<Digest>, MirrorError> {
        use crate::storage::Storage as _;
        match self {
            Location::Registry { client, host, .. } => Ok(client
                .referrers(host, &self.full_repository(repo), digest, None)
                .await?
                .into_iter()
                .map(|r| r.digest)
                .collect()),
            Location::Dir(layout) => {
                let storage = crate::storage::FsStorage::new(layout.paths().root());
                Ok(storage
                    .referrers(repo, digest)
                    .await?
                    .into_iter()
                    .map(|r| r.digest)
                    .collect())
            }
            Location::Oci(_) => Ok(Vec::new()),
        }
    }
}

/// Where a download into a Distribution-layout directory keeps the bytes received so far, so a rerun after
/// an interruption continues it: `<root>/.staging/<algorithm>-<hex>.partial` (outside `docker/`, so a
/// registry serving the directory never sees it; on the same filesystem, so the final rename is atomic).
fn partial_path(layout: &DistributionLayout, digest: &Digest) -> PathBuf {
    layout.paths().root().join(".staging").join(format!(
        "{}-{}.partial",
        digest.algorithm(),
        digest.hex()
    ))
}

/// Brings a blob to `dest` (a content-addressed path in a local layout): fetched from a registry through a
/// verified download — resumable through `partial` when given, else staged beside `dest` — or copied from
/// a local file by `copy_local` (which verifies too). Returns the bytes transferred (0 when it was already
/// there).
async fn fetch_to_file<F>(
    origin: &BlobOrigin,
    desc: &Descriptor,
    dest: &Path,
    partial: Option<&Path>,
    copy_local: F,
) -> Result<u64, MirrorError>
where
    F: FnOnce(std::fs::File, Digest, u64) -> Result<(), MirrorError> + Send + 'static,
{
    if dest.is_file() {
        return Ok(0);
    }
    match origin {
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
            let size = Some(desc.size);
            Ok(match partial {
                Some(p) => {
                    client
                        .fetch_blob_resumable(host, repository, &desc.digest, size, dest, p)
                        .await?
                }
                None => {
                    client
                        .fetch_blob(host, repository, &desc.digest, size, dest)
                        .await?
                }
            })
        }
        BlobOrigin::File(path) => {
            let file = std::fs::File::open(path).map_err(|source| MirrorError::Io {
                op: "open blob",
                path: path.clone(),
                source,
            })?;
            let (d, size) = (desc.digest.clone(), desc.size);
            blocking(move || copy_local(file, d, size)).await?;
            Ok(size)
        }
    }
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
