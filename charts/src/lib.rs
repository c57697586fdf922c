//! Helm charts rendered in-process, with `helm template`'s output.
//!
//! - [`yaml`]: YAML read as Helm reads values (sigs.k8s.io/yaml: YAML 1.1 scalars, numbers as float64)
//!   and written as Helm's `toYaml` writes it.
//! - [`strvals`]: `--set`, `--set-string`, `--set-json`, `--set-file` parsing, Helm's rules.
//! - [`values`]: coalescing chart defaults, subchart values, globals and user values.
//! - [`toml`]: `toToml` and `fromToml` as Helm has them.
//! - [`functions`]: Helm's data functions for templates (`toYaml`, `fromYaml`, `toJson`, `lookup`, ...).
//! - [`chart`] and [`load`]: a chart tree loaded from a directory (`.helmignore` honoured) or a packed `.tgz`
//!   (hostile archives refused), as Helm's loader sorts its files.
//! - [`capabilities`] and [`files`]: the host objects templates see as `.Capabilities` and `.Files`.
//! - [`render()`] and [`template()`]: a chart directory or packed `.tgz` rendered as `helm template` (v4.1)
//!   renders it: dependencies processed (conditions, tags, aliases, import-values), values coalesced and
//!   checked against `values.schema.json`, every template parsed once into one set, executed, split into
//!   documents, sorted by kind with hooks last, and printed with `# Source:` lines.
//!
//! ```no_run
//! let options = charts::TemplateOptions { chart: "./mychart".into(), ..Default::default() };
//! print!("{}", charts::template(&options).expect("renders"));
//! ```

mod bridge;
pub mod capabilities;
pub mod chart;
mod deps;
mod error;
pub mod files;
mod glob;
mod ignore;
pub mod load;
mod manifests;
mod render;
mod schema;

pub mod functions;
pub mod strvals;
pub mod toml;
pub mod values;
pub mod yaml;

use std::path::PathBuf;

pub use error::Error;

use crate::capabilities::KubeVersion;

/// What `helm template` is asked to do: the chart, the release, the values and the output filters.
#[derive(Debug, Clone)]
pub struct TemplateOptions {
    /// The release name (`helm template NAME`); Helm's default is `release-name`.
    pub release_name: String,
    /// The release namespace (`-n`); `default` when not given.
    pub namespace: String,
    /// The chart: a directory or a packed `.tgz`.
    pub chart: PathBuf,
    /// Values files (`-f`), in order; later files win (each may list several, comma-separated).
    pub value_files: Vec<PathBuf>,
    /// `--set` assignments, in order.
    pub set: Vec<String>,
    /// `--set-string` assignments, in order.
    pub set_string: Vec<String>,
    /// `--set-json` assignments, in order.
    pub set_json: Vec<String>,
    /// `--set-file` assignments, in order.
    pub set_file: Vec<String>,
    /// `--kube-version`; `None` renders with the Kubernetes version helm v4.1 defaults to (`v1.35.0`).
    pub kube_version: Option<String>,
    /// `--api-versions` (`-a`), added to the default API versions (each may list several, comma-separated).
    pub api_versions: Vec<String>,
    /// `--include-crds`: print the files under `crds/` first.
    pub include_crds: bool,
    /// `--skip-tests`: leave out test hooks.
    pub skip_tests: bool,
    /// `--no-hooks`: leave out every hook.
    pub no_hooks: bool,
    /// `--is-upgrade`: `.Release.IsUpgrade` true and `.Release.IsInstall` false.
    pub is_upgrade: bool,
    /// `--show-only` (`-s`): only the manifests from these template paths (globs allowed); applied by
    /// [`template()`] (as `helm template` applies it to its output), not by [`render()`].
    pub show_only: Vec<String>,
}

impl Default for TemplateOptions {
    fn default() -> TemplateOptions {
        TemplateOptions {
            release_name: "release-name".to_string(),
            namespace: "default".to_string(),
            chart: PathBuf::new(),
            value_files: Vec::new(),
            set: Vec::new(),
            set_string: Vec::new(),
            set_json: Vec::new(),
            set_file: Vec::new(),
            kube_version: None,
            api_versions: Vec::new(),
            include_crds: false,
            skip_tests: false,
            no_hooks: false,
            is_upgrade: false,
            show_only: Vec::new(),
        }
    }
}

/// One rendered YAML document and the template it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The template's path in the chart tree, as `# Source:` prints it (`chart/templates/x.yaml`).
    pub source: String,
    /// The document, without the `---` separator and trimmed of surrounding whitespace.
    pub content: String,
    /// True for a hook (a document annotated `helm.sh/hook`).
    pub hook: bool,
}

/// A rendered chart: its manifests in `helm template`'s output order, and its `NOTES.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// CRDs (with `include_crds`), then manifests in install order, then hooks.
    pub manifests: Vec<Manifest>,
    /// The rendered `NOTES.txt` of the top chart, if it has one.
    pub notes: Option<String>,
}

/// Renders the chart as `helm template` does, to separate manifests.
pub fn render(options: &TemplateOptions) -> Result<Rendered, Error> {
    let kube = match &options.kube_version {
        Some(v) => KubeVersion::parse(v)
            .map_err(|e| Error::new(format!("invalid kube version '{v}': {e}")))?,
        None => KubeVersion::parse(capabilities::DEFAULT_KUBE_VERSION)
            .map_err(|e| Error::new(e.to_string()))?,
    };
    let chart_path = &options.chart;
    if !chart_path.exists() {
        return Err(missing_chart(chart_path));
    }
    let user = user_values(options)?;
    let mut chart = load::load(chart_path)?;
    if !matches!(chart.metadata.chart_type.as_str(), "" | "application") {
        return Err(Error::new(format!(
            "{} charts are not installable",
            chart.metadata.chart_type
        )));
    }
    deps::check_dependencies(&chart)?;
    check_release_name(&options.release_name)?;
    deps::process_dependencies(&mut chart, &user)?;
    let values = bridge::coalesce_values(&chart, &user)?;
    schema::validate_chart(&chart, &values).map_err(|e| {
        Error::new(format!(
            "values don't meet the specifications of the schema(s) in the following chart(s):\n{e}"
        ))
    })?;
    let required = &chart.metadata.kube_version;
    if !required.is_empty()
        && !gotmpl::sprig::semver::constraint_matches(required, &kube.normalized).unwrap_or(false)
    {
        return Err(Error::rendering(format!(
            "chart requires kubeVersion: {required} which is incompatible with Kubernetes {}",
            kube.normalized
        )));
    }
    let scope = render::Scope {
        release: release(options),
        capabilities: capabilities::capabilities(&kube, &options.api_versions),
    };
    let mut files = render::render_templates(&chart, &values, &scope)?;
    let notes_path = format!("{}/templates/NOTES.txt", chart.name());
    let notes = files.get(&notes_path).cloned();
    files.retain(|path, _| !path.ends_with("NOTES.txt"));
    let (sorted, hooks) = manifests::sort_manifests(&files)?;
    let mut out = Vec::new();
    if options.include_crds {
        crds(&chart, chart.name(), &mut out);
    }
    out.extend(sorted);
    if !options.no_hooks {
        out.extend(
            hooks
                .into_iter()
                .filter(|h| !(options.skip_tests && h.test))
                .map(|h| h.manifest),
        );
    }
    Ok(Rendered {
        manifests: out,
        notes,
    })
}

/// Renders the chart and returns exactly what `helm template` prints on stdout.
pub fn template(options: &TemplateOptions) -> Result<String, Error> {
    let rendered = render(options)?;
    let text = manifests::output(&rendered.manifests);
    if options.show_only.is_empty() {
        return Ok(text);
    }
    manifests::show_only(&text, &options.show_only)
}

/// Helm's release name rule: a DNS-1123 subdomain of at most 53 characters.
fn check_release_name(name: &str) -> Result<(), Error> {
    const PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    let problem = if name.is_empty() {
        "no name provided".to_string()
    } else if name.len() > 53 || !regex::Regex::new(PATTERN).is_ok_and(|re| re.is_match(name)) {
        format!(
            "invalid release name, must match regex {PATTERN} and the length must not be longer than 53"
        )
    } else {
        return Ok(());
    };
    Err(Error::new(format!(
        "release name check failed: release name {name:?}: {problem}"
    )))
}

/// Helm's error for a chart argument that is not a local path: it would be looked up in a repository.
fn missing_chart(path: &std::path::Path) -> Error {
    let text = path.to_string_lossy();
    if path.is_absolute() || text.starts_with('.') {
        return Error::new(format!("path {text:?} not found"));
    }
    match text.split_once('/') {
        Some((repo, _)) => Error::new(format!("repo {repo} not found")),
        None => Error::new(format!(
            "non-absolute URLs should be in form of repo_name/path_to_chart, got: {text}"
        )),
    }
}

/// The user's values: `-f` files, then `--set-json`, `--set`, `--set-string`, `--set-file`.
fn user_values(options: &TemplateOptions) -> Result<gotmpl::Value, Error> {
    let user_options = values::UserValueOptions {
        // `-f` is a list flag: `-f a.yaml,b.yaml` names two files.
        value_files: options
            .value_files
            .iter()
            .flat_map(|p| {
                p.to_string_lossy()
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect(),
        set_json: options.set_json.clone(),
        set: options.set.clone(),
        set_string: options.set_string.clone(),
        set_file: options.set_file.clone(),
        ..Default::default()
    };
    let read = |path: &str| std::fs::read(path);
    values::merge_user_values(&user_options, &read, yaml::ValuesDocuments::Merged)
        .map_err(|e| Error::new(e.to_string()))
}

/// Go's wording of common I/O errors.
pub(crate) fn go_io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// `.Release` for `helm template`: revision 1, installing unless `--is-upgrade`.
fn release(options: &TemplateOptions) -> gotmpl::Value {
    let mut e = gotmpl::value::Entries::new();
    e.insert(
        "Name".into(),
        gotmpl::Value::from(options.release_name.as_str()),
    );
    e.insert(
        "Namespace".into(),
        gotmpl::Value::from(options.namespace.as_str()),
    );
    e.insert("IsUpgrade".into(), gotmpl::Value::Bool(options.is_upgrade));
    e.insert("IsInstall".into(), gotmpl::Value::Bool(!options.is_upgrade));
    e.insert("Revision".into(), gotmpl::Value::Int(1));
    e.insert("Service".into(), gotmpl::Value::from("Helm"));
    gotmpl::Value::from(e)
}

/// The chart's `crds/` files (`.yaml`, `.yml`, `.json`), then its subcharts', printed as they are.
fn crds(chart: &chart::Chart, full_path: &str, out: &mut Vec<Manifest>) {
    for file in &chart.files {
        let is_manifest = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| file.name.ends_with(ext));
        if file.name.starts_with("crds/") && is_manifest {
            out.push(Manifest {
                source: format!("{full_path}/{}", file.name),
                content: String::from_utf8_lossy(&file.data).into_owned(),
                hook: false,
            });
        }
    }
    for sub in &chart.dependencies {
        crds(sub, &format!("{full_path}/charts/{}", sub.name()), out);
    }
}
