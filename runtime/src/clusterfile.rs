//! The Clusterfile: a cluster's state as YAML, in the shape sealos users know (`apiVersion`, `kind`,
//! `metadata`, `spec` with hosts, images, ssh, env), with what the runtime applied recorded in `status`.
//!
//! ```yaml
//! apiVersion: apps.sealos.io/v1beta1
//! kind: Cluster
//! metadata:
//!   name: default
//! spec:
//!   hosts:                       # empty: the local machine, without SSH
//!   - ips: [192.168.0.2:22]
//!     roles: [master]
//!     env: [NODE_ROLE=first]     # per-host env, overrides spec.env
//!   image: [docker.io/labring/kubernetes:v1.27.7]
//!   ssh: {user: root, pk: /root/.ssh/id_rsa, port: 22}
//!   env: [KEY=value]             # the -e values
//!   command: []
//! status:
//!   dataDir: /var/lib/sealos/data
//!   registry: {port: 5050, address: 0.0.0.0}
//!   images:                      # what run applied, in order
//!   - name: docker.io/labring/kubernetes:v1.27.7
//!     digest: sha256:...
//!     type: rootfs
//!     directory: /var/lib/sealos/data/default/rootfs
//!     env: [KEY=value]
//!     clean: {clean: bash clean.sh}
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::image::ImageKind;

/// The `apiVersion` written.
pub const API_VERSION: &str = "apps.sealos.io/v1beta1";
/// The file name inside a cluster's directory.
pub const FILE_NAME: &str = "Clusterfile";

/// Why a Clusterfile could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ClusterfileError {
    /// Reading or writing failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The YAML is not a Clusterfile.
    #[error("`{path}` is not a valid Clusterfile: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The text is not YAML of a Clusterfile's shape, or the Clusterfile cannot be written as YAML.
    #[error("`{path}` is not a valid Clusterfile: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The YAML error.
        source: serde_norway::Error,
    },
    /// The file could not be written in place atomically.
    #[error("write `{path}`: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: formats::fsutil::StageError,
    },
}

/// A whole Clusterfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clusterfile {
    /// Always `apps.sealos.io/v1beta1`.
    pub api_version: String,
    /// Always `Cluster`.
    pub kind: String,
    /// The cluster's name.
    pub metadata: Metadata,
    /// What the user asked for.
    pub spec: Spec,
    /// What was done.
    #[serde(default)]
    pub status: Status,
}

/// `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The cluster's name.
    pub name: String,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The hosts; none means the local machine.
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
    /// The images applied, in order.
    #[serde(default)]
    pub image: Vec<String>,
    /// How to log in.
    #[serde(default)]
    pub ssh: SshSpec,
    /// `KEY=value` pairs from `-e`.
    #[serde(default)]
    pub env: Vec<String>,
    /// The `--cmd` override last used.
    #[serde(default)]
    pub command: Vec<String>,
}

/// One group of hosts with the same roles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// `IP:PORT` (the port defaults to the ssh port).
    pub ips: Vec<String>,
    /// `master` or `node` (and sealos' arch roles, ignored).
    #[serde(default)]
    pub roles: Vec<String>,
    /// `KEY=value` pairs for these hosts only, overriding every other env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

/// `spec.ssh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSpec {
    /// The login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The password (the file is written mode 0600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    /// The private key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    /// The default SSH port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// `status`: what the runtime did, so `run` is idempotent and `reset` knows what to undo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Where the runtime wrote on the hosts (`--data-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    /// The embedded registry served from the first master, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryStatus>,
    /// The images applied, in order.
    #[serde(default)]
    pub images: Vec<AppliedImage>,
}

/// The embedded registry's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStatus {
    /// Its port.
    pub port: u16,
    /// The address it listens on.
    pub address: String,
}

/// One applied image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedImage {
    /// Its full name.
    pub name: String,
    /// Its manifest digest: a later run skips an image with the same digest.
    pub digest: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ImageKind,
    /// Where it was unpacked on the hosts.
    pub directory: String,
    /// The env its commands ran with (image ENV overridden by `-e`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Its clean scripts by step name (`clean`, `clean-registry`, `clean-cri`), as run by `reset`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clean: BTreeMap<String, String>,
}

impl Clusterfile {
    /// An empty Clusterfile for the cluster `name`.
    pub fn new(name: &str) -> Self {
        Clusterfile {
            api_version: API_VERSION.to_string(),
            kind: "Cluster".to_string(),
            metadata: Metadata {
                name: name.to_string(),
            },
            spec: Spec::default(),
            status: Status::default(),
        }
    }

    /// Parses Clusterfile YAML; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ClusterfileError> {
        let file: Clusterfile =
            serde_norway::from_str(text).map_err(|source| ClusterfileError::Yaml {
                path: path.to_path_buf(),
                source,
            })?;
        if file.kind != "Cluster" {
            return Err(ClusterfileError::Parse {
                path: path.to_path_buf(),
                reason: format!("`kind` is `{}`, expected `Cluster`", file.kind),
            });
        }
        Ok(file)
    }

    /// Loads `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, ClusterfileError> {
        match fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ClusterfileError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the file atomically, readable by its owner only (it may hold a password).
    pub fn save(&self, path: &Path) -> Result<(), ClusterfileError> {
        let io_err = |op, source| ClusterfileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let text = serde_norway::to_string(self).map_err(|source| ClusterfileError::Yaml {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err("create directory for", e))?;
        }
        formats::fsutil::atomic_write(path, text.as_bytes()).map_err(|source| {
            ClusterfileError::Write {
                path: path.to_path_buf(),
                source,
            }
        })?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err("set permissions of", e))
    }

    /// `spec.env` as a map.
    pub fn env(&self) -> Env {
        pairs_to_env(&self.spec.env)
    }
}

/// `KEY=value` strings to an env (a string without `=` is a key with an empty value).
pub fn pairs_to_env(pairs: &[String]) -> Env {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.clone(), String::new()),
        })
        .collect()
}

/// An env as sorted `KEY=value` strings.
pub fn env_to_pairs(env: &Env) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealos_clusterfile_loads_with_hosts_images_ssh_and_env() {
        let text = "apiVersion: apps.sealos.io/v1beta1\nkind: Cluster\nmetadata:\n  name: default\n\
spec:\n  hosts:\n  - ips: [192.168.0.2:22]\n    roles: [master, amd64]\n  - ips: [192.168.0.3:22]\n    \
roles: [node, amd64]\n  image: [labring/kubernetes:v1.27.7, labring/helm:v3.12.0]\n  ssh: {user: root, \
passwd: \"x\", pk: /root/.ssh/id_rsa, port: 22}\n  env: [KEY=value]\n  command: []\nstatus: {}\n";
        let file = Clusterfile::parse(text, Path::new("Clusterfile")).unwrap();
        assert_eq!(file.metadata.name, "default");
        assert_eq!(file.spec.hosts[1].ips, ["192.168.0.3:22"]);
        assert_eq!(file.spec.hosts[0].roles[0], "master");
        assert_eq!(file.spec.image.len(), 2);
        assert_eq!(file.spec.ssh.port, Some(22));
        assert_eq!(file.env().get("KEY").map(String::as_str), Some("value"));
        assert!(file.status.images.is_empty());
    }

    #[test]
    fn a_saved_clusterfile_reads_back_the_same_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/Clusterfile");
        let mut file = Clusterfile::new("c");
        file.spec.env = vec!["A=$(touch /tmp/x)".into()];
        file.status.images.push(AppliedImage {
            name: "docker.io/library/app:v1".into(),
            digest: "sha256:00".into(),
            kind: ImageKind::Rootfs,
            directory: "/data/c/rootfs".into(),
            env: vec![],
            clean: BTreeMap::from([("clean".into(), "bash clean.sh".into())]),
        });
        file.save(&path).unwrap();
        assert_eq!(Clusterfile::load(&path).unwrap(), Some(file));
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_yaml_of_another_kind_is_rejected() {
        let err = Clusterfile::parse(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
            Path::new("f"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("expected `Cluster`"), "{err}");
    }
}
