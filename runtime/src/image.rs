//! Opening a cluster image for the runtime: from the local store by name or digest, or from an
//! `oci-archive:`/`docker-archive:`/`oci:` source (loaded into the store first), and reading what the
//! runtime needs from its config: type, labels, env and command.

use std::collections::BTreeMap;

use builder::store::{ImageSource, Store, StoreError};
use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageConfig, ParsedManifest, Platform, RawManifest};

use crate::env::Env;

pub use builder::store::{ImageKind, TYPE_LABELS, UnknownImageKind};

/// Why an image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The store could not find, load or read it.
    #[error("image `{image}`: {source}")]
    Store {
        /// The image as given.
        image: String,
        /// What went wrong.
        source: Box<StoreError>,
    },
    /// The image exists but is not usable by the runtime.
    #[error("image `{image}`: {reason}")]
    Invalid {
        /// The image as given.
        image: String,
        /// What is wrong, with a hint.
        reason: String,
    },
    /// The image's config blob is not an image config.
    #[error("image `{image}`: its config {digest} is not an image config: {source}")]
    Config {
        /// The image as given.
        image: String,
        /// The config blob's digest.
        digest: Digest,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// A cluster image ready to be unpacked and run.
#[derive(Debug, Clone)]
pub struct ClusterImage {
    /// The name it is known by in the store (the full reference).
    pub name: String,
    /// The digest of the manifest (or index) the name points at; this is what the Clusterfile records.
    pub digest: Digest,
    /// Its type.
    pub kind: ImageKind,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its ENV; `PATH` is not exported as is, its directories a host's `PATH` lacks are prepended to it.
    pub env: Env,
    /// Its ENTRYPOINT.
    pub entrypoint: Vec<String>,
    /// Its CMD.
    pub cmd: Vec<String>,
    /// Its layers for this host's platform, base first.
    pub layers: Vec<Descriptor>,
}

impl ClusterImage {
    /// The shell commands the image runs: ENTRYPOINT then CMD (or `cmd_override`, from `--cmd`), with
    /// literal `/bin/sh` and `-c` elements dropped so shell form and JSON form behave the same.
    pub fn commands(&self, cmd_override: Option<&[String]>) -> Vec<String> {
        let cmd = cmd_override.unwrap_or(&self.cmd);
        self.entrypoint
            .iter()
            .chain(cmd)
            .filter(|c| !matches!(c.trim(), "" | "/bin/sh" | "-c"))
            .cloned()
            .collect()
    }

    /// A directory name for this image: its name with every character outside `[A-Za-z0-9._-]` as `_`.
    pub fn dir_name(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// Opens `image` (a store name or digest, or `oci-archive:`, `docker-archive:`, `oci:` sources, which are
/// loaded into `store` first). Registry references not in the store are the caller's to pull first.
pub fn open(store: &Store, image: &str) -> Result<ClusterImage, ImageError> {
    let store_err = |source| ImageError::Store {
        image: image.to_string(),
        source: Box::new(source),
    };
    let source = ImageSource::parse(image).map_err(store_err)?;
    let found = match &source {
        ImageSource::Local(name) => store.resolve(name).map_err(store_err)?,
        ImageSource::Registry(name) => store.resolve(name).map_err(store_err)?,
        ImageSource::OciDir { path, reference }
        | ImageSource::OciArchive { path, reference }
        | ImageSource::DockerArchive { path, reference } => {
            let loaded = store.load(path).map_err(store_err)?;
            let pick = match (reference, loaded.as_slice()) {
                (Some(r), _) => loaded
                    .iter()
                    .find(|l| l.name == *r || l.name.ends_with(&format!("/{r}")))
                    .map(|l| l.digest.to_string())
                    .unwrap_or_else(|| r.clone()),
                (None, [one]) => one.digest.to_string(),
                (None, many) => {
                    return Err(ImageError::Invalid {
                        image: image.to_string(),
                        reason: format!(
                            "the archive holds {} images ({}); name one as `{}:NAME`",
                            many.len(),
                            many.iter()
                                .map(|l| l.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            image
                        ),
                    });
                }
            };
            store.resolve(&pick).map_err(store_err)?
        }
    };
    let manifest = platform_manifest(store, image, &found.manifest)?;
    let ParsedManifest::Image(m) = &manifest.parsed else {
        return Err(invalid(
            image,
            "the platform manifest is an index, not an image",
        ));
    };
    let config_bytes = store
        .layout()
        .read_blob_bytes(&m.config.digest)
        .map_err(|e| store_err(StoreError::Layout(e)))?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|source| ImageError::Config {
            image: image.to_string(),
            digest: m.config.digest.clone(),
            source,
        })?;
    let container = config.config.unwrap_or_default();
    let kind = ImageKind::from_labels(&container.labels).map_err(|UnknownImageKind(value)| {
        invalid(
            image,
            &format!(
                "unknown image type `{value}`: the type label must be `rootfs`, `patch` or `application`"
            ),
        )
    })?;
    let env = container
        .env
        .iter()
        .filter_map(|e| e.split_once('=').or(Some((e.as_str(), ""))))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(ClusterImage {
        name: found.name,
        digest: found.descriptor.digest,
        kind,
        labels: container.labels,
        env,
        entrypoint: container.entrypoint,
        cmd: container.cmd,
        layers: m.layers.clone(),
    })
}

fn invalid(image: &str, reason: &str) -> ImageError {
    ImageError::Invalid {
        image: image.to_string(),
        reason: reason.to_string(),
    }
}

/// The manifest for this host: the image manifest itself, or the host platform's child of an index.
fn platform_manifest(
    store: &Store,
    image: &str,
    manifest: &RawManifest,
) -> Result<RawManifest, ImageError> {
    let ParsedManifest::Index(index) = &manifest.parsed else {
        return Ok(manifest.clone());
    };
    let Some(child) = Platform::select_host(index) else {
        let host = Platform::host();
        return Err(invalid(
            image,
            &format!("the image has no {host} manifest; run it on a host of one of its platforms"),
        ));
    };
    store
        .layout()
        .read_manifest(child)
        .map_err(|e| ImageError::Store {
            image: image.to_string(),
            source: Box::new(StoreError::Layout(e)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ClusterImage {
        ClusterImage {
            name: "docker.io/labring/app:v1".into(),
            digest: Digest::sha256_of(b"x"),
            kind: ImageKind::Application,
            labels: BTreeMap::new(),
            env: Env::new(),
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            layers: Vec::new(),
        }
    }

    #[test]
    fn shell_form_and_json_form_give_the_same_commands() {
        let shell = image(&[], &["/bin/sh", "-c", "helm install x"]);
        let json = image(&[], &["helm install x"]);
        assert_eq!(shell.commands(None), json.commands(None));
        assert_eq!(json.commands(None), ["helm install x"]);
    }

    #[test]
    fn cmd_override_replaces_cmd_and_keeps_the_entrypoint() {
        let i = image(&["bash pre.sh"], &["bash old.sh"]);
        let over = vec!["bash new.sh".to_string()];
        assert_eq!(i.commands(Some(&over)), ["bash pre.sh", "bash new.sh"]);
    }

    #[test]
    fn the_type_label_is_read_from_either_spelling_and_absent_means_application() {
        let labels = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            ImageKind::from_labels(&labels("sealos.io.type", "rootfs")),
            Ok(ImageKind::Rootfs)
        );
        assert_eq!(
            ImageKind::from_labels(&labels("apps.sealos.io/type", "patch")),
            Ok(ImageKind::Patch)
        );
        assert_eq!(
            ImageKind::from_labels(&BTreeMap::new()),
            Ok(ImageKind::Application)
        );
        assert!(ImageKind::from_labels(&labels("sealos.io.type", "kernel")).is_err());
    }

    #[test]
    fn the_directory_name_keeps_only_safe_characters() {
        assert_eq!(image(&[], &[]).dir_name(), "docker.io_labring_app_v1");
    }
}
