//! Image discovery in a build context: which container images a cluster image must carry, and where each
//! one was found. Shared by `sealos build` and `sealos registry save CONTEXT`; the rules are documented in
//! `docs/discovery.md`.
//!
//! Sources, in the order they are read: `images/shim/*` lists ([`lists`]), `images/skopeo/tar.txt` archives
//! ([`lists`]), `manifests/` ([`manifests`]) and `charts/` ([`charts`], rendered natively, or by a helm
//! binary with [`ChartRenderer::Helm`], with the values the install passes: the CMD is evaluated as `sealos
//! run` evaluates it ([`cmd`]) and the scripts it runs are followed). `.sealignore` ([`ignore`]) leaves out paths and images. Anything that looks like an
//! image but is not a valid reference becomes a [`Warning`], never an image; [`DiscoverOptions::strict`]
//! turns warnings into an error.

pub mod charts;
pub mod cmd;
pub mod ignore;
pub mod lists;
pub mod manifests;
mod scripts;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use formats::reference::Reference;
use serde::Serialize;

/// How [`discover`] runs.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// Turn every warning into an error.
    pub strict: bool,
    /// The helm binary for [`ChartRenderer::Helm`]; `None` looks `helm` up on `PATH`. Unused when rendering
    /// natively.
    pub helm: Option<PathBuf>,
    /// The Kubefile's CMD (and ENTRYPOINT) elements: `helm install|upgrade|template` commands in them give
    /// the `-f` values files and `--set` pairs a chart is installed with.
    pub cmd: Vec<String>,
    /// The image's final ENV plus `--env`: the values of `$(VAR)`, `${VAR}` and `$VAR` in the CMD and in the
    /// scripts it runs, as `sealos run` substitutes them.
    pub env: BTreeMap<String, String>,
    /// How charts are rendered: natively (the default) or with a helm binary.
    pub renderer: ChartRenderer,
    /// The Kubernetes version charts are rendered for (`.Capabilities.KubeVersion`, checked against a chart's
    /// `kubeVersion`); `None` renders for [`charts::capabilities::DEFAULT_KUBE_VERSION`].
    pub kube_version: Option<String>,
}

/// How discovery renders the charts of `charts/`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChartRenderer {
    /// In-process with the `charts` crate, as `helm template` renders (no helm binary needed).
    #[default]
    Native,
    /// With a helm binary ([`DiscoverOptions::helm`], else `helm` on `PATH`).
    Helm,
}

/// What [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// Images to pull and embed, sorted by reference, each once; images an archive provides are not here.
    pub images: Vec<DiscoveredImage>,
    /// Image archives listed in `images/skopeo/tar.txt`, in file order.
    pub archives: Vec<ArchiveEntry>,
    /// Everything that was skipped or guessed, in the order it was met.
    pub warnings: Vec<Warning>,
}

/// One image to embed and every place that references it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredImage {
    /// The normalised full reference (`docker.io/library/nginx:1.25`), digest kept when one was written.
    pub reference: String,
    /// Where it was found, sorted, each once. In JSON each source also says how it was found
    /// (`"found": "rendered-chart"`, see [`Found`]).
    #[serde(serialize_with = "sources_with_found")]
    pub sources: Vec<Provenance>,
}

/// How an image was found, the `found` field of each source in JSON (`sealos build --dry-run --format json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// In the output of a chart rendered with the install's values.
    RenderedChart,
    /// In a YAML file under `manifests/`.
    Manifest,
    /// In an `images/shim/*` list.
    List,
    /// Named by a script the CMD runs (reserved: a chart a script installs is [`Found::RenderedChart`]).
    Script,
    /// Read statically from a chart's values, `--set` pairs or literal template lines (the fallback when a
    /// chart could not be rendered).
    ChartValues,
    /// Provided by an archive of `images/skopeo/tar.txt`.
    Archive,
}

/// A source in JSON: its provenance fields and how it was found.
#[derive(Serialize)]
struct SourceJson<'a> {
    found: Found,
    #[serde(flatten)]
    place: &'a Provenance,
}

fn sources_with_found<S: serde::Serializer>(
    sources: &[Provenance],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(sources.iter().map(|place| SourceJson {
        found: place.found(),
        place,
    }))
}

fn archive_source<S: serde::Serializer>(
    place: &Provenance,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    SourceJson {
        found: Found::Archive,
        place,
    }
    .serialize(serializer)
}

/// Where an image was found. Paths are relative to the build context, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Provenance {
    /// A YAML file under `manifests/`.
    Manifest {
        /// The file.
        file: String,
        /// 1-based line of the value.
        line: usize,
        /// The key path of the value in its document (`spec.template.spec.containers[0].env[CSI_IMAGE]`);
        /// empty when unknown (a line read from text that is not YAML), and then left out of JSON.
        #[serde(skip_serializing_if = "String::is_empty")]
        key: String,
    },
    /// A line of an image list (`images/shim/*`) or of `images/skopeo/tar.txt`.
    List {
        /// The list file.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// A value in a chart's values (static discovery, helm not run).
    ChartValues {
        /// The chart (`calico`, or `app/redis` for a subchart).
        chart: String,
        /// The values file that set the value.
        file: String,
        /// 1-based line in that file.
        line: usize,
        /// The key path of the image in the values (`controller.image`).
        key: String,
    },
    /// A `--set` pair of the Kubefile's CMD (static discovery).
    ChartSet {
        /// The chart.
        chart: String,
        /// The pair, as written (`image.tag=v2`).
        set: String,
    },
    /// A literal `image:` line in a chart template (static discovery).
    ChartTemplate {
        /// The chart.
        chart: String,
        /// The template file.
        file: String,
        /// 1-based line.
        line: usize,
    },
    /// The output of `helm template` for a chart.
    ChartRendered {
        /// The chart.
        chart: String,
        /// The template that produced the document (helm's `# Source:` comment, like
        /// `calico/templates/deployment.yaml`).
        template: String,
        /// 1-based line within that template's rendered output.
        line: usize,
        /// The key path of the value in its document (`spec.template.spec.containers[0].image`); empty when
        /// unknown, and then left out of JSON.
        #[serde(skip_serializing_if = "String::is_empty")]
        key: String,
        /// The install script line whose `helm install|upgrade` rendered the chart (`install.sh:7`); `None`
        /// when the CMD itself installs it or nothing does.
        #[serde(skip_serializing_if = "Option::is_none")]
        script: Option<String>,
    },
}

impl Provenance {
    /// How the image was found: the kind of source, for `--format json`.
    pub fn found(&self) -> Found {
        match self {
            Provenance::Manifest { .. } => Found::Manifest,
            Provenance::List { .. } => Found::List,
            Provenance::ChartValues { .. }
            | Provenance::ChartSet { .. }
            | Provenance::ChartTemplate { .. } => Found::ChartValues,
            Provenance::ChartRendered {
                script: Some(_), ..
            } => Found::Script,
            Provenance::ChartRendered { script: None, .. } => Found::RenderedChart,
        }
    }

    /// This provenance with the key path of the value (for the kinds that keep one).
    pub(crate) fn with_key(mut self, path: &str) -> Provenance {
        match &mut self {
            Provenance::Manifest { key, .. } | Provenance::ChartRendered { key, .. } => {
                *key = path.to_string();
            }
            _ => {}
        }
        self
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Manifest { file, line, .. } | Provenance::List { file, line } => {
                write!(f, "{file}:{line}")
            }
            Provenance::ChartValues {
                chart,
                file,
                line,
                key,
            } => write!(f, "{file}:{line} (chart {chart}, values {key})"),
            Provenance::ChartSet { chart, set } => write!(f, "CMD --set {set} (chart {chart})"),
            Provenance::ChartTemplate { chart, file, line } => {
                write!(f, "{file}:{line} (chart {chart})")
            }
            Provenance::ChartRendered {
                chart,
                template,
                line,
                ..
            } => write!(f, "{template}:{line} (chart {chart}, helm template)"),
        }
    }
}

/// An archive to embed from `images/skopeo/tar.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveEntry {
    /// The archive format.
    pub transport: ArchiveTransport,
    /// The archive, relative to the context (`images/skopeo/app.tar`).
    pub file: String,
    /// The normalised name it is embedded under, when the line gives one.
    pub reference: Option<String>,
    /// The `NAME[:TAG]` after `@` exactly as the line writes it (sealos names the embedded image from this
    /// text, not from the normalised `reference`). Not part of the dry-run JSON, which has `reference`.
    #[serde(skip)]
    pub written_name: Option<String>,
    /// The line of `tar.txt` (in JSON with `"found": "archive"`).
    #[serde(serialize_with = "archive_source")]
    pub source: Provenance,
}

/// The format of an archive in `images/skopeo/tar.txt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveTransport {
    /// `docker-archive:` (`docker save` output).
    DockerArchive,
    /// `oci-archive:` (a tar of an OCI image layout).
    OciArchive,
}

impl fmt::Display for ArchiveTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArchiveTransport::DockerArchive => "docker-archive",
            ArchiveTransport::OciArchive => "oci-archive",
        })
    }
}

/// Something discovery skipped or could only guess: a value that is not a valid reference, a file that is
/// not YAML, a chart that was not rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Where (`manifests/app.yaml:12`, `charts/calico`).
    pub location: String,
    /// What happened and what it means.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// `.sealignore` leads out of the context through a symlink, or a path could not be resolved.
    #[error(transparent)]
    Context(#[from] formats::kubefile::ContextPathError),
    /// A file or directory of the context could not be read.
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A chart's `kubeVersion` refuses the Kubernetes version it is rendered for.
    #[error("chart `{chart}` cannot be installed: {message}")]
    ChartRefused {
        /// The chart (`charts/app`).
        chart: String,
        /// Why, with the version and what to do.
        message: String,
    },
    /// `--strict` and there were warnings.
    #[error(
        "image discovery found {} problem(s) and --strict makes them errors:{}\nfix them, or build without --strict",
        warnings.len(),
        warnings.iter().map(|w| format!("\n  {w}")).collect::<String>()
    )]
    Strict {
        /// Every warning.
        warnings: Vec<Warning>,
    },
}

impl DiscoverError {
    fn io<'p>(
        op: &'static str,
        path: &'p Path,
    ) -> impl FnOnce(std::io::Error) -> DiscoverError + 'p {
        move |source| DiscoverError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Collects images and warnings while the sources are read.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    images: BTreeMap<String, Vec<Provenance>>,
    warnings: Vec<Warning>,
}

impl Collector {
    /// Records `text` found at `source` when it is a valid reference, else a warning at `location`.
    pub(crate) fn image(&mut self, text: &str, source: Provenance) {
        match Reference::parse(text) {
            Ok(reference) => self
                .images
                .entry(reference.to_string())
                .or_default()
                .push(source),
            Err(e) => {
                let what = if text.contains("{{") || text.contains("${") || text.contains("$(") {
                    "template text"
                } else {
                    "not an image reference"
                };
                self.warn(
                    source.to_string(),
                    format!("`{text}` is {what}, not embedded ({e})"),
                );
            }
        }
    }

    pub(crate) fn warn(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            location: location.into(),
            message: message.into(),
        });
    }
}

/// Finds every image the context at `context` references (see the module docs and `docs/discovery.md`).
pub fn discover(context: &Path, opts: &DiscoverOptions) -> Result<Discovery, DiscoverError> {
    let ignore = ignore::SealIgnore::load(context)?;
    let mut found = Collector::default();
    lists::shim_lists(context, &ignore, &mut found)?;
    let archives = lists::archives(context, &ignore, &mut found)?;
    manifests::scan_manifests(context, &ignore, &mut found)?;
    charts::scan_charts(context, &ignore, opts, &mut found)?;

    let archives: Vec<ArchiveEntry> = archives
        .into_iter()
        .filter(|a| {
            !a.reference
                .as_deref()
                .is_some_and(|r| ignore.ignores_image(r))
        })
        .collect();
    // An image an archive provides is embedded from the archive, never pulled.
    let from_archive = |reference: &str| {
        archives
            .iter()
            .any(|a| a.reference.as_deref() == Some(reference))
    };
    let images = found
        .images
        .into_iter()
        .filter(|(reference, _)| !ignore.ignores_image(reference) && !from_archive(reference))
        .map(|(reference, mut sources)| {
            sources.sort();
            sources.dedup();
            DiscoveredImage { reference, sources }
        })
        .collect();
    if opts.strict && !found.warnings.is_empty() {
        return Err(DiscoverError::Strict {
            warnings: found.warnings,
        });
    }
    Ok(Discovery {
        images,
        archives,
        warnings: found.warnings,
    })
}

/// `path` relative to `context`, `/`-separated (for provenance and `.sealignore` matching).
pub(crate) fn relative(context: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(context).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` (below `context`) resolved inside the context by the build's own rule
/// ([`formats::kubefile::resolve_in_context`]: symlinks are followed only inside it): where discovery reads
/// it. `None` when it is not in the context; when a symlink on the way leads out of the context, that is a
/// warning at `path`.
pub(crate) fn in_context(
    context: &Path,
    path: &Path,
    found: &mut Collector,
) -> Result<Option<PathBuf>, DiscoverError> {
    use formats::kubefile::ContextPathError;
    let rel = relative(context, path);
    let resolved = match formats::kubefile::resolve_in_context(context, &rel) {
        Ok(resolved) => resolved,
        Err(ContextPathError::Outside { .. }) => return Ok(None),
        Err(e @ ContextPathError::Loop { .. }) => {
            found.warn(rel, format!("{e}; not read"));
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if resolved.metadata().is_some() {
        return Ok(Some(resolved.path));
    }
    if let Some(e) = resolved.outside_error(&rel) {
        found.warn(rel, format!("{e}; not read"));
    }
    Ok(None)
}

/// The entries of the context directory `dir` (resolved with [`in_context`]) sorted by name; a missing
/// directory has none. Each is listed below the resolved directory, not yet resolved itself.
pub(crate) fn context_entries(
    context: &Path,
    dir: &Path,
    found: &mut Collector,
) -> Result<Vec<PathBuf>, DiscoverError> {
    match in_context(context, dir, found)? {
        Some(dir) => sorted_entries(&dir),
        None => Ok(Vec::new()),
    }
}

/// The entries of `dir` sorted by name; a missing directory has none.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DiscoverError> {
    let mut out = Vec::new();
    for entry in formats::walk::Walk::children(dir).sorted() {
        match entry {
            Ok(entry) => out.push(entry.into_path()),
            Err(e) if e.is_not_found() && e.path == dir => return Ok(Vec::new()),
            Err(e) => return Err(DiscoverError::io("list", &e.path)(e.source)),
        }
    }
    Ok(out)
}

/// Reads a text file of the context.
pub(crate) fn read_text(path: &Path) -> Result<String, DiscoverError> {
    std::fs::read_to_string(path).map_err(DiscoverError::io("read", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../Kubefile-examples")
            .join(name)
    }

    fn table(d: &Discovery) -> Vec<(String, Vec<String>)> {
        d.images
            .iter()
            .map(|i| {
                (
                    i.reference.clone(),
                    i.sources.iter().map(ToString::to_string).collect(),
                )
            })
            .collect()
    }

    const EXAMPLE_CMD: &str = "helm upgrade -i $(NAME) charts/app -f charts/app.values.yaml -f values/prod.yaml --set redis.enabled=true -n app --create-namespace";

    fn expected_static() -> Vec<(String, Vec<String>)> {
        [
            ("docker.io/bitnami/kubectl:1.29", vec!["manifests/cronjob.yml:14"]),
            (
                "docker.io/bitnami/redis:7.2.5",
                vec!["values/prod.yaml:3 (chart app/redis, values image)"],
            ),
            (
                "docker.io/example/app:2.1.0",
                vec!["charts/app.values.yaml:3 (chart app, values image)"],
            ),
            (
                "docker.io/library/busybox:1.36@sha256:9d75f0d7c398df565d7ac04c6819b62d6d8f9560f5eb4672596ecd8f7e96ae91",
                vec!["manifests/deployment.yaml:10"],
            ),
            (
                "docker.io/library/nginx:1.25",
                vec!["manifests/deployment.yaml:13", "images/shim/extra-images:2"],
            ),
            ("ghcr.io/example/backup:v1", vec!["manifests/crd/database.yaml:31"]),
            ("ghcr.io/example/postgres:16.1", vec!["manifests/crd/database.yaml:29"]),
            ("quay.io/example/webhook:v2", vec!["manifests/deployment.yaml:16"]),
            (
                "quay.io/prometheus/node-exporter:v1.7.0",
                vec!["manifests/monitor.yaml.tmpl:10"],
            ),
            (
                "registry.k8s.io/git-sync/git-sync:v4.2.1",
                vec!["charts/app/templates/deployment.yaml:12 (chart app)"],
            ),
            ("registry.k8s.io/pause:3.9", vec!["images/shim/extra-images:3"]),
        ]
        .into_iter()
        .map(|(r, s)| (r.to_string(), s.into_iter().map(str::to_string).collect()))
        .collect()
    }

    fn without_helm() -> DiscoverOptions {
        DiscoverOptions {
            renderer: ChartRenderer::Helm,
            helm: Some(PathBuf::from("/nonexistent/helm")),
            cmd: vec![EXAMPLE_CMD.to_string()],
            ..DiscoverOptions::default()
        }
    }

    #[test]
    fn example_context_without_helm_lists_every_image_with_its_sources() {
        let d = discover(&example("discovery"), &without_helm()).unwrap();
        assert_eq!(table(&d), expected_static());
        assert_eq!(
            d.archives,
            vec![ArchiveEntry {
                transport: ArchiveTransport::DockerArchive,
                file: "images/skopeo/offline.tar".into(),
                reference: Some("example.com/team/offline:v1".into()),
                written_name: Some("example.com/team/offline:v1".into()),
                source: Provenance::List {
                    file: "images/skopeo/tar.txt".into(),
                    line: 1
                },
            }]
        );
        assert!(
            !d.images
                .iter()
                .any(|i| i.reference == "example.com/team/offline:v1"),
            "an image an archive provides is not pulled"
        );
        let warnings: Vec<String> = d.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(warnings[0].starts_with("manifests/monitor.yaml.tmpl:12: not valid YAML"));
        assert!(
            warnings[1].starts_with(
                "manifests/monitor.yaml.tmpl:12: `{{ .REGISTRY }}/agent:v1` is template text, not embedded"
            ),
            "{}",
            warnings[1]
        );
        assert!(
            warnings[2]
                .starts_with("charts/app: chart not rendered: cannot run `/nonexistent/helm`")
        );
    }

    #[test]
    fn sealignore_leaves_out_listed_images_and_paths() {
        let d = discover(&example("discovery"), &without_helm()).unwrap();
        let all: Vec<&str> = d.images.iter().map(|i| i.reference.as_str()).collect();
        assert!(
            !all.iter()
                .any(|r| r.contains("busybox:debug") || r.contains("busybox:test"))
        );
        let plain = DiscoverOptions::default();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("images/shim")).unwrap();
        std::fs::write(dir.path().join("images/shim/list"), "busybox:debug\n").unwrap();
        let d = discover(dir.path(), &plain).unwrap();
        assert_eq!(d.images[0].reference, "docker.io/library/busybox:debug");
    }

    #[test]
    fn strict_turns_every_warning_into_one_error_listing_them() {
        let opts = DiscoverOptions {
            strict: true,
            ..without_helm()
        };
        let err = discover(&example("discovery"), &opts).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("image discovery found 3 problem(s) and --strict makes them errors:"),
            "{text}"
        );
        assert!(
            text.contains("\n  charts/app: chart not rendered"),
            "{text}"
        );
        let DiscoverError::Strict { warnings } = err else {
            panic!("not a strict error: {err}");
        };
        assert_eq!(warnings.len(), 3);
    }

    #[test]
    fn invalid_references_are_warnings_never_images() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        std::fs::write(
            dir.path().join("manifests/a.yaml"),
            "image: \"{{ .Values.image }}\"\n---\nimage: app:has space\n---\nimage: ok:1\n",
        )
        .unwrap();
        let d = discover(dir.path(), &DiscoverOptions::default()).unwrap();
        assert_eq!(
            table(&d),
            vec![(
                "docker.io/library/ok:1".to_string(),
                vec!["manifests/a.yaml:5".to_string()]
            )]
        );
        let locations: Vec<&str> = d.warnings.iter().map(|w| w.location.as_str()).collect();
        assert_eq!(locations, ["manifests/a.yaml:1", "manifests/a.yaml:3"]);
        assert!(d.warnings[0].message.contains("is template text"));
        assert!(d.warnings[1].message.contains("is not an image reference"));
    }

    #[test]
    fn provenance_serializes_with_a_kind_tag() {
        let p = Provenance::ChartValues {
            chart: "app".into(),
            file: "charts/app/values.yaml".into(),
            line: 2,
            key: "image".into(),
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"kind": "chart-values", "chart": "app", "file": "charts/app/values.yaml", "line": 2, "key": "image"})
        );
    }

    /// A context `ctx/` whose symlinks lead to `host/` beside it (standing in for the host's files), which
    /// holds images discovery must never report, and one symlink that stays inside the context.
    fn context_with_links_out() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let (ctx, host) = (dir.path().join("ctx"), dir.path().join("host"));
        for (file, text) in [
            ("host/pod.yaml", "image: host/manifest:1\n"),
            ("host/list", "host/shim:1\n"),
            ("host/values.yaml", "image: host/values:1\n"),
            ("host/app.tar", ""),
            ("ctx/shared/pod.yaml", "image: inside/linked:1\n"),
            ("ctx/charts/app/Chart.yaml", "name: app\n"),
            (
                "ctx/charts/app/templates/t.yaml",
                "image: inside/template:1\n",
            ),
            (
                "ctx/images/skopeo/tar.txt",
                "docker-archive:../../../host/app.tar@a:1\ndocker-archive:/host/app.tar@b:1\ndocker-archive:linked.tar@c:1\n",
            ),
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        std::fs::create_dir_all(ctx.join("manifests")).unwrap();
        std::fs::create_dir_all(ctx.join("images/shim")).unwrap();
        symlink(host.join("pod.yaml"), ctx.join("manifests/host.yaml")).unwrap();
        symlink("../../host/pod.yaml", ctx.join("manifests/up.yaml")).unwrap();
        symlink("/shared/pod.yaml", ctx.join("manifests/inside.yaml")).unwrap();
        symlink(host.join("list"), ctx.join("images/shim/host")).unwrap();
        symlink(host.join("app.tar"), ctx.join("images/skopeo/linked.tar")).unwrap();
        symlink(host.join("values.yaml"), ctx.join("charts/app/values.yaml")).unwrap();
        symlink(&host, ctx.join("charts/host")).unwrap();
        (dir, ctx)
    }

    #[test]
    fn discovery_reads_nothing_through_a_symlink_out_of_the_context() {
        let (dir, ctx) = context_with_links_out();
        let (helm, args) = fake_helm(dir.path());
        let opts = DiscoverOptions {
            helm: Some(helm),
            cmd: vec!["helm install x charts/app -f ../host/values.yaml".into()],
            ..DiscoverOptions::default()
        };
        let d = discover(&ctx, &opts).unwrap();
        let images: Vec<&str> = d.images.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(
            images,
            ["docker.io/inside/linked:1", "docker.io/inside/template:1"],
            "{:#?}",
            d.warnings
        );
        assert!(d.archives.is_empty(), "{:?}", d.archives);
        assert!(
            !args.exists(),
            "helm was run on a chart with a symlink out of the context"
        );
        let warnings: Vec<String> = d.warnings.iter().map(ToString::to_string).collect();
        for expected in [
            "manifests/host.yaml: `manifests/host.yaml` is not in the build context: `manifests/host.yaml` is a symlink to",
            "manifests/up.yaml: `manifests/up.yaml` is not in the build context: `manifests/up.yaml` is a symlink to `../../host/pod.yaml`",
            "images/shim/host: `images/shim/host` is not in the build context",
            "images/skopeo/tar.txt:1: archive `images/skopeo/../../../host/app.tar` is not in the context; skipped",
            "images/skopeo/tar.txt:2: archive `host/app.tar` is not in the context; skipped",
            "images/skopeo/tar.txt:3: archive `images/skopeo/linked.tar` is not in the context; skipped",
            "charts/app: values file `../host/values.yaml` passed with -f in the CMD is not in the context",
            "charts/app: chart not rendered: `charts/app/values.yaml` is a symlink to",
        ] {
            assert!(
                warnings.iter().any(|w| w.starts_with(expected)),
                "no warning starting {expected:?} in {warnings:#?}"
            );
        }
    }

    /// A stand-in for helm: records its arguments (one a line) in `args` and prints canned `helm template`
    /// output.
    fn fake_helm(dir: &Path) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let args = dir.join("helm-args");
        let helm = dir.join("helm");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\ncat <<'YAML'\n{}YAML\n",
            args.display(),
            RENDERED
        );
        std::fs::write(&helm, script).unwrap();
        std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        (helm, args)
    }

    const RENDERED: &str = "---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: app
          image: \"example/app:2.1.0\"
        - name: git-sync
          image: registry.k8s.io/git-sync/git-sync:v4.2.1
---
# Source: app/charts/redis/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      containers:
        - name: redis
          image: docker.io/bitnami/redis:7.2.5
";

    #[test]
    fn helm_renders_each_chart_with_its_values_files_and_cmd_set_pairs() {
        let tmp = tempfile::tempdir().unwrap();
        let (helm, args) = fake_helm(tmp.path());
        let opts = DiscoverOptions {
            helm: Some(helm),
            ..without_helm()
        };
        let d = discover(&example("discovery"), &opts).unwrap();
        assert_eq!(
            std::fs::read_to_string(&args).unwrap(),
            "template\ndryrun\ncharts/app\n--namespace\napp\n--values\ncharts/app.values.yaml\n--values\nvalues/prod.yaml\n--set\nredis.enabled=true\n"
        );
        let charts: Vec<(String, Vec<String>)> = table(&d)
            .into_iter()
            .filter(|(_, s)| s.iter().any(|s| s.contains("chart")))
            .collect();
        assert_eq!(
            charts,
            vec![
                (
                    "docker.io/bitnami/redis:7.2.5".to_string(),
                    vec![
                        "app/charts/redis/templates/statefulset.yaml:8 (chart app, helm template)"
                            .to_string()
                    ]
                ),
                (
                    "docker.io/example/app:2.1.0".to_string(),
                    vec!["app/templates/deployment.yaml:8 (chart app, helm template)".to_string()]
                ),
                (
                    "registry.k8s.io/git-sync/git-sync:v4.2.1".to_string(),
                    vec!["app/templates/deployment.yaml:10 (chart app, helm template)".to_string()]
                ),
            ]
        );
        assert!(
            d.warnings
                .iter()
                .all(|w| !w.location.starts_with("charts/")),
            "{:?}",
            d.warnings
        );
    }
}
