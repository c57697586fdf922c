//! The image check of `sealos run` (and the list `sealos create` prints): before any host is touched,
//! discovery runs over each unpacked image exactly as the run is about to apply it (its CMD after the run's
//! env substitution, its ENV plus `-e`), and every image the install will pull is looked up in the embedded
//! registry of the run (the `registry/` trees of the images being applied, plus the cluster's own registry
//! tree when the cluster is on this machine).
//!
//! The rule (docs/runtime.md, "The image check"): the embedded registry names an image by its path without
//! the registry host, as the build stores it, so `registry.k8s.io/pause:3.9` is embedded when the tree has
//! repository `pause` with tag `3.9` (a reference with a digest needs that manifest digest in the repository).
//! Every image that is not embedded is missing, wherever it would otherwise come from: an image named after
//! the cluster's own registry (`sealos.hub`, or the `registryDomain` ENV) can come from nowhere else, and one
//! of another registry would be pulled from that registry at install time, which an offline site cannot
//! reach. The report says which of the two.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use builder::discover::charts::rootfs_kube_version;
use builder::discover::{DiscoverError, DiscoverOptions, discover};
use formats::distribution::{DistributionError, DistributionLayout};
use formats::reference::Reference;
use formats::walk::Walk;

use crate::env::{Env, expand};
use crate::image::ClusterImage;
use crate::unpack::REGISTRY_DIR;

/// The registry host a cluster's own registry is known by, unless the `registryDomain` ENV names another.
pub const CLUSTER_REGISTRY_HOST: &str = "sealos.hub";

/// Where an image the install pulls will come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// In the embedded registry, carried by this cluster image (or `the cluster` for its existing registry).
    Embedded {
        /// The cluster image whose `registry/` holds it.
        by: String,
    },
    /// Not embedded; it would be pulled from this registry host at install time.
    Remote {
        /// The registry host (`registry.k8s.io`).
        host: String,
    },
    /// Not embedded, and named after the cluster's own registry, which serves only embedded images.
    Unavailable {
        /// The cluster registry's host as the reference writes it (`sealos.hub:5000`).
        host: String,
    },
}

impl Availability {
    /// True when the embedded registry holds the image.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Availability::Embedded { .. })
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Availability::Embedded { by } => write!(f, "embedded (in {by})"),
            Availability::Remote { host } => {
                write!(f, "not embedded: would be pulled from {host}")
            }
            Availability::Unavailable { host } => write!(
                f,
                "not embedded, and {host} is the cluster's own registry, which serves only embedded images"
            ),
        }
    }
}

/// One image an install will pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredImage {
    /// The normalised reference (`docker.io/example/app:v2`).
    pub reference: String,
    /// The cluster image whose charts, manifests or lists need it.
    pub image: String,
    /// Where in that image it was found (`app/templates/deployment.yaml:8 (chart app, helm template)`).
    pub sources: Vec<String>,
    /// Where it will come from.
    pub availability: Availability,
}

/// What the check found for every image of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageCheck {
    /// Every image the install pulls, per cluster image in run order, each sorted by reference.
    pub images: Vec<RequiredImage>,
    /// What discovery skipped or guessed (`cluster image: location: message`).
    pub warnings: Vec<String>,
}

impl ImageCheck {
    /// The images the embedded registry does not hold.
    pub fn missing(&self) -> Vec<&RequiredImage> {
        self.images
            .iter()
            .filter(|i| !i.availability.is_embedded())
            .collect()
    }

    /// The missing images, one block each: the reference and where it would come from, then each place
    /// that needs it. Empty when nothing is missing.
    pub fn missing_list(&self) -> String {
        let mut out = String::new();
        for image in self.missing() {
            out.push_str(&format!("  {} ({})\n", image.reference, image.availability));
            for source in &image.sources {
                out.push_str(&format!("    needed by {source} in {}\n", image.image));
            }
        }
        out
    }
}

/// Why the check could not run, or refused the run.
#[derive(Debug, thiserror::Error)]
pub enum ImageCheckError {
    /// Discovery failed on an unpacked image.
    #[error("image check of `{image}`: {source}")]
    Discover {
        /// The cluster image.
        image: String,
        /// What went wrong.
        source: DiscoverError,
    },
    /// An embedded registry tree could not be read.
    #[error("image check: reading the embedded registry `{}`: {source}", path.display())]
    Registry {
        /// The `registry/` directory.
        path: std::path::PathBuf,
        /// What went wrong.
        source: DistributionError,
    },
    /// Images the install will pull are not embedded.
    #[error(
        "{} image(s) the install will pull are not in the embedded registry; nothing was run on any host:\n{}\
         rebuild the image with the values this run uses (the same -e values as ENV or in the CMD) so the \
         build embeds them, or pass --skip-image-check to run anyway (the hosts must then reach those \
         registries)",
        check.missing().len(),
        check.missing_list()
    )]
    Missing {
        /// The whole check.
        check: ImageCheck,
    },
}

/// The images an embedded registry holds: `(repository, tag)` and `(repository, manifest digest)`, with the
/// cluster image that carries them.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedImages {
    tags: BTreeMap<(String, String), String>,
    digests: BTreeMap<(String, String), String>,
}

impl EmbeddedImages {
    /// Adds everything the Distribution tree at `registry` (an image's `registry/` directory) holds, as
    /// carried by `by`. A missing directory adds nothing.
    pub fn add_tree(&mut self, registry: &Path, by: &str) -> Result<(), ImageCheckError> {
        if !registry.is_dir() {
            return Ok(());
        }
        let err = |source| ImageCheckError::Registry {
            path: registry.to_path_buf(),
            source,
        };
        let layout = DistributionLayout::new(registry);
        for repo in layout.repositories().map_err(err)? {
            for tag in layout.tags(&repo).map_err(err)? {
                self.tags
                    .entry((repo.clone(), tag))
                    .or_insert_with(|| by.to_string());
            }
            let revisions = layout
                .paths()
                .repository_dir(&repo)
                .join("_manifests/revisions/sha256");
            // Best effort, as the tags above: a repository without revisions has none to offer.
            for entry in Walk::children(&revisions).into_iter().flatten() {
                let Some(hex) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if entry.path().join("link").is_file() {
                    self.digests
                        .entry((repo.clone(), format!("sha256:{hex}")))
                        .or_insert_with(|| by.to_string());
                }
            }
        }
        Ok(())
    }

    /// The cluster image carrying `reference`, when embedded: by digest when it has one, else by tag.
    pub fn find(&self, reference: &Reference) -> Option<&str> {
        let repo = reference.repository().to_string();
        match (reference.digest(), reference.tag()) {
            (Some(digest), _) => self.digests.get(&(repo, digest.to_string())),
            (None, Some(tag)) => self.tags.get(&(repo, tag.to_string())),
            (None, None) => self.tags.get(&(repo, "latest".to_string())),
        }
        .map(String::as_str)
    }
}

/// One unpacked cluster image as the run is about to apply it.
#[derive(Debug, Clone, Copy)]
pub struct CheckedImage<'a> {
    /// The cluster image's name.
    pub name: &'a str,
    /// Where it is unpacked (templates rendered).
    pub dir: &'a Path,
    /// Its ENV overridden by `-e`: the env its commands run with.
    pub env: &'a Env,
    /// Its commands (ENTRYPOINT then CMD or `--cmd`), not yet expanded.
    pub commands: &'a [String],
}

/// Lists every image the charts, manifests and image lists of `images` pull, rendered with each image's
/// run env and expanded commands, and looks each up in `embedded`.
/// Charts are rendered natively for `kube_version` (the cluster's Kubernetes version,
/// [`kube_version_of`]; `None`: discovery's default).
pub fn check_images(
    images: &[CheckedImage<'_>],
    embedded: &EmbeddedImages,
    kube_version: Option<&str>,
) -> Result<ImageCheck, ImageCheckError> {
    let mut check = ImageCheck::default();
    for image in images {
        let opts = DiscoverOptions {
            cmd: run_commands(image.commands, image.env),
            env: image.env.clone(),
            kube_version: kube_version.map(str::to_string),
            ..DiscoverOptions::default()
        };
        let found = discover(image.dir, &opts).map_err(|source| ImageCheckError::Discover {
            image: image.name.to_string(),
            source,
        })?;
        check.warnings.extend(
            found
                .warnings
                .iter()
                .map(|w| format!("{}: {w}", image.name)),
        );
        let own_hosts = cluster_hosts(image.env);
        // Images shipped as archives (`images/skopeo/tar.txt`) are pulled by the install too; discovery lists
        // them apart from the images it found in manifests and charts.
        for archive in &found.archives {
            let Some(reference) = archive.reference.as_deref() else {
                continue;
            };
            let Ok(parsed) = Reference::parse(reference) else {
                continue;
            };
            let availability = match embedded.find(&parsed) {
                Some(by) => Availability::Embedded { by: by.to_string() },
                None => Availability::Unavailable {
                    host: parsed.registry().to_string(),
                },
            };
            check.images.push(RequiredImage {
                reference: reference.to_string(),
                image: image.name.to_string(),
                sources: vec![format!("{} ({})", archive.source, archive.file)],
                availability,
            });
        }
        for discovered in found.images {
            let Ok(reference) = Reference::parse(&discovered.reference) else {
                continue;
            };
            let availability = match embedded.find(&reference) {
                Some(by) => Availability::Embedded { by: by.to_string() },
                None => {
                    let host = reference.registry().to_string();
                    let bare = host.split(':').next().unwrap_or(&host);
                    if own_hosts.contains(bare) {
                        Availability::Unavailable { host }
                    } else {
                        Availability::Remote { host }
                    }
                }
            };
            check.images.push(RequiredImage {
                reference: discovered.reference,
                image: image.name.to_string(),
                sources: discovered.sources.iter().map(ToString::to_string).collect(),
                availability,
            });
        }
    }
    Ok(check)
}

/// The Kubernetes version of the first of `images` that is a rootfs image with a Kubernetes `version`
/// label (as the build reads it, [`builder::discover::charts::rootfs_kube_version`]).
pub fn kube_version_of<'a>(images: impl IntoIterator<Item = &'a ClusterImage>) -> Option<String> {
    images
        .into_iter()
        .find_map(|i| rootfs_kube_version(&i.labels))
}

/// The commands as the run executes them: expanded with `env` (a command that does not expand is left as
/// written; the plan refuses it before the check runs). Every `$` of the result is written `$$`, so a
/// discovery that expands `$(VAR)` itself reads exactly the run's text and never expands a value again.
fn run_commands(commands: &[String], env: &Env) -> Vec<String> {
    commands
        .iter()
        .map(|c| expand(c, env).map_or_else(|_| c.clone(), |e| e.replace('$', "$$")))
        .collect()
}

/// The hosts (without port) the cluster's own registry is known by.
fn cluster_hosts(env: &Env) -> BTreeSet<String> {
    let mut hosts = BTreeSet::from([CLUSTER_REGISTRY_HOST.to_string()]);
    if let Some(domain) = env.get("registryDomain").filter(|d| !d.is_empty()) {
        hosts.insert(domain.clone());
    }
    hosts
}

/// The `registry/` directory of an unpacked image.
pub fn registry_dir(dir: &Path) -> std::path::PathBuf {
    dir.join(REGISTRY_DIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::digest::Digest;
    use formats::distribution::DistributionPaths;
    use std::fs;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn tree(root: &Path, repo: &str, tag: &str, digest: &Digest) {
        let paths = DistributionPaths::new(root);
        write(&paths.tag_current_link(repo, tag), &digest.to_string());
        write(&paths.revision_link(repo, digest), &digest.to_string());
    }

    #[test]
    fn embedded_images_are_found_by_path_without_host_and_by_tag_or_digest() {
        let dir = tempfile::tempdir().unwrap();
        let digest = Digest::sha256_of(b"manifest");
        tree(dir.path(), "example/app", "v1", &digest);
        tree(dir.path(), "pause", "3.9", &Digest::sha256_of(b"pause"));
        let mut embedded = EmbeddedImages::default();
        embedded.add_tree(dir.path(), "cluster:v1").unwrap();
        let find = |r: &str| embedded.find(&Reference::parse(r).unwrap());
        assert_eq!(find("example/app:v1"), Some("cluster:v1"));
        assert_eq!(find("quay.io/example/app:v1"), Some("cluster:v1"));
        assert_eq!(find("registry.k8s.io/pause:3.9"), Some("cluster:v1"));
        assert_eq!(find("example/app:v2"), None);
        assert_eq!(find(&format!("example/app@{digest}")), Some("cluster:v1"));
        assert_eq!(
            find(&format!("example/app:v9@{}", Digest::sha256_of(b"other"))),
            None,
            "a digest must match, whatever the tag"
        );
        assert_eq!(find("example/app"), None, "`latest` is not embedded");
    }

    #[test]
    fn missing_images_say_where_they_would_come_from_and_what_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("manifests/pod.yaml"),
            "kind: Pod\nspec:\n  containers:\n  - image: registry.k8s.io/pause:3.9\n  - image: sealos.hub:5000/app:v1\n  - image: hub.local/tools/x:1\n  - image: example/ok:1\n",
        );
        tree(
            &dir.path().join("registry"),
            "example/ok",
            "1",
            &Digest::sha256_of(b"ok"),
        );
        let mut embedded = EmbeddedImages::default();
        embedded
            .add_tree(&registry_dir(dir.path()), "me:v1")
            .unwrap();
        let env = Env::from([("registryDomain".to_string(), "hub.local".to_string())]);
        let commands = Vec::new();
        let check = check_images(
            &[CheckedImage {
                name: "me:v1",
                dir: dir.path(),
                env: &env,
                commands: &commands,
            }],
            &embedded,
            None,
        )
        .unwrap();
        let table: Vec<(String, String)> = check
            .images
            .iter()
            .map(|i| (i.reference.clone(), i.availability.to_string()))
            .collect();
        assert_eq!(
            table,
            [
                ("docker.io/example/ok:1".to_string(), "embedded (in me:v1)".to_string()),
                (
                    "hub.local/tools/x:1".to_string(),
                    "not embedded, and hub.local is the cluster's own registry, which serves only embedded images".to_string()
                ),
                (
                    "registry.k8s.io/pause:3.9".to_string(),
                    "not embedded: would be pulled from registry.k8s.io".to_string()
                ),
                (
                    "sealos.hub:5000/app:v1".to_string(),
                    "not embedded, and sealos.hub:5000 is the cluster's own registry, which serves only embedded images".to_string()
                ),
            ]
        );
        assert_eq!(check.missing().len(), 3);
        let list = check.missing_list();
        assert!(
            list.contains(
                "  registry.k8s.io/pause:3.9 (not embedded: would be pulled from registry.k8s.io)\n    needed by manifests/pod.yaml:4 in me:v1\n"
            ),
            "{list}"
        );
        let message = ImageCheckError::Missing { check }.to_string();
        assert!(
            message.starts_with("3 image(s) the install will pull"),
            "{message}"
        );
        assert!(message.contains("--skip-image-check"), "{message}");
    }

    #[test]
    fn the_kube_version_is_the_first_rootfs_image_version_label() {
        let image = |labels: &[(&str, &str)]| ClusterImage {
            name: "x".into(),
            digest: Digest::sha256_of(b"x"),
            kind: crate::image::ImageKind::Rootfs,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            env: Env::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            layers: Vec::new(),
        };
        let app = image(&[("version", "v9.9.9")]);
        let rootfs = image(&[("sealos.io.type", "rootfs"), ("version", "v1.27.7")]);
        assert_eq!(kube_version_of([&app, &rootfs]), Some("v1.27.7".into()));
        assert_eq!(kube_version_of([&app]), None);
    }

    #[test]
    fn commands_are_expanded_once_and_their_dollars_kept_for_a_second_reader() {
        let env = Env::from([("OPTS".to_string(), "--set a=$x".to_string())]);
        assert_eq!(
            run_commands(&["helm install x c $(OPTS) $$HOME".into()], &env),
            ["helm install x c --set a=$$x $$HOME"]
        );
        assert_eq!(
            expand(&run_commands(&["a $(OPTS)".into()], &env)[0], &Env::new()).unwrap(),
            "a --set a=$x"
        );
        assert_eq!(run_commands(&["a $(UNSET)".into()], &env), ["a $(UNSET)"]);
    }
}
