//! `charts/`: every subdirectory and `*.tgz` directly under it is a chart, rendered as the install will render
//! it: with `charts/<chart>.values.yaml`, every values file the install passes to that chart with
//! `-f`/`--values`, and its `--set`-style pairs, so subcharts enabled only on the command line are found. The
//! install's helm commands come from the Kubefile's CMD, evaluated as `sealos run` evaluates it, and from the
//! scripts it runs ([`super::cmd`], [`super::scripts`]).
//!
//! Charts are rendered natively ([`charts::render`]) unless [`ChartRenderer::Helm`] asks for a helm binary,
//! for the Kubernetes version of [`DiscoverOptions::kube_version`]; a chart whose `kubeVersion` refuses it is
//! an error. Only when rendering fails are images read statically, from the merged values and literal
//! `image:` lines of templates, and a warning names the chart and the render error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ignore::SealIgnore;
use super::manifests::{files_with_extensions, scan_yaml_file};
use super::yaml::{self, LineImage, Node, ScanOptions, Value};
use super::{
    ChartRenderer, Collector, DiscoverError, DiscoverOptions, Provenance, context_entries,
    in_context, read_text, relative,
};

/// Release name used for rendering, as sealos does.
pub const RELEASE_NAME: &str = "dryrun";
/// Flags of `helm install` whose value is passed on to `helm template` as it is.
const SET_FLAGS: [&str; 5] = [
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--set-literal",
];
/// Deepest subchart nesting scanned statically.
const MAX_SUBCHART_DEPTH: usize = 8;

/// A `helm install`, `helm upgrade` or `helm template` command found in the Kubefile's CMD or a script it
/// runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmInstall {
    /// Every argument that is not a flag or a flag's value (release name, chart).
    pub positional: Vec<String>,
    /// `-f`/`--values` files, in order.
    pub values: Vec<String>,
    /// `--set`-style flags and their `key=value` text, in order (`("--set", "a.enabled=true")`).
    pub sets: Vec<(String, String)>,
    /// `-n`/`--namespace`, when given.
    pub namespace: Option<String>,
    /// Where the command is: `CMD` or `script:line`.
    pub origin: String,
}

/// Splits shell text into words: whitespace separates, `'…'` and `"…"` quote, `\` escapes.
pub fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, ';' | '|' | '&') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                words.push(c.to_string());
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The helm install a command is (`command[0]` is its command word: `helm` or a path ending in `/helm`,
/// then `install`, `upgrade` or `template`); `None` for any other command.
pub(crate) fn helm_command(command: &[String]) -> Option<HelmInstall> {
    let word = command.first()?;
    if word != "helm" && !word.ends_with("/helm") {
        return None;
    }
    let args = &command[1..];
    if !args
        .first()
        .is_some_and(|s| matches!(s.as_str(), "install" | "upgrade" | "template"))
    {
        return None;
    }
    Some(parse_helm_args(&args[1..]))
}

/// Flags of `helm install`/`upgrade` that take a value (so the value is not read as the chart).
const VALUE_FLAGS: [&str; 14] = [
    "-n",
    "--namespace",
    "--version",
    "--timeout",
    "--kube-context",
    "--kubeconfig",
    "--repo",
    "--username",
    "--password",
    "--post-renderer",
    "--description",
    "--name-template",
    "--output",
    "-o",
];

fn parse_helm_args(args: &[String]) -> HelmInstall {
    let mut install = HelmInstall::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let takes_value = flag == "-f"
            || flag == "--values"
            || SET_FLAGS.contains(&flag)
            || VALUE_FLAGS.contains(&flag);
        let value = if takes_value && inline.is_none() {
            i += 1;
            args.get(i).cloned()
        } else {
            inline
        };
        if flag == "-f" || flag == "--values" {
            install.values.extend(value);
        } else if flag == "-n" || flag == "--namespace" {
            install.namespace = value;
        } else if SET_FLAGS.contains(&flag) {
            install.sets.extend(value.map(|v| (flag.to_string(), v)));
        } else if !flag.starts_with('-') {
            install.positional.push(arg.clone());
        }
        i += 1;
    }
    install
}

/// One chart of `charts/`.
#[derive(Debug, Clone)]
struct Chart {
    /// `calico` for `charts/calico` and `charts/calico.tgz`.
    name: String,
    /// `charts/calico` or `charts/calico.tgz`.
    rel: String,
    /// Where it is read: `rel` resolved inside the context.
    path: PathBuf,
}

fn charts(
    context: &Path,
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<Vec<Chart>, DiscoverError> {
    let mut out = Vec::new();
    for listed in context_entries(context, &context.join("charts"), found)? {
        let rel = relative(context, &listed);
        let Some(file_name) = listed.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if ignore.ignores_path(&rel) || file_name.starts_with('.') {
            continue;
        }
        let Some(path) = in_context(context, &listed, found)? else {
            continue;
        };
        let name = if path.is_dir() {
            file_name.to_string()
        } else if let Some(stem) = file_name.strip_suffix(".tgz").filter(|_| path.is_file()) {
            stem.to_string()
        } else {
            continue;
        };
        out.push(Chart { name, rel, path });
    }
    Ok(out)
}

/// Normalises a path as written in a CMD (`./charts/x/`) to a context-relative one (`charts/x`).
fn clean_path(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Finds `helm` on `PATH`.
fn helm_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("helm"))
        .find(|candidate| candidate.is_file())
}

/// Values files (context-relative), `--set` pairs and namespace a chart is rendered with.
#[derive(Debug, Default)]
struct ChartValues {
    files: Vec<String>,
    sets: Vec<(String, String)>,
    namespace: Option<String>,
    /// The first install script line that installs the chart (see [`HelmInstall::origin`]).
    script: Option<String>,
}

fn chart_values(
    context: &Path,
    chart: &Chart,
    installs: &[HelmInstall],
    ignore: &SealIgnore,
    found: &mut Collector,
) -> Result<ChartValues, DiscoverError> {
    let mut values = ChartValues::default();
    let default_values = format!("charts/{}.values.yaml", chart.name);
    if !ignore.ignores_path(&default_values)
        && let Some(path) = in_context(context, &context.join(&default_values), found)?
        && path.is_file()
    {
        values.files.push(relative(context, &path));
    }
    for install in installs {
        if !install
            .positional
            .iter()
            .any(|p| clean_path(p) == chart.rel)
        {
            continue;
        }
        for file in &install.values {
            let file = clean_path(file);
            if ignore.ignores_path(&file) {
                continue;
            }
            // Helm is given the file resolved inside the context, so it reads no other.
            if let Some(path) = in_context(context, &context.join(&file), found)?
                && path.is_file()
            {
                let resolved = relative(context, &path);
                if !values.files.contains(&resolved) {
                    values.files.push(resolved);
                }
            } else {
                let origin = match install.origin.as_str() {
                    "CMD" | "" => "the CMD",
                    script => script,
                };
                found.warn(
                    chart.rel.clone(),
                    format!("values file `{file}` passed with -f in {origin} is not in the context; not used for discovery"),
                );
            }
        }
        values.sets.extend(install.sets.iter().cloned());
        if values.script.is_none() && !matches!(install.origin.as_str(), "CMD" | "") {
            values.script = Some(install.origin.clone());
        }
        if values.namespace.is_none() {
            values.namespace.clone_from(&install.namespace);
        }
    }
    Ok(values)
}

/// Scans `charts/`.
pub(crate) fn scan_charts(
    context: &Path,
    ignore: &SealIgnore,
    opts: &DiscoverOptions,
    found: &mut Collector,
) -> Result<(), DiscoverError> {
    let installs = super::cmd::helm_installs(context, opts, found)?;
    let charts = charts(context, ignore, found)?;
    let helm = match opts.renderer {
        ChartRenderer::Native => None,
        ChartRenderer::Helm => opts.helm.clone().or_else(helm_on_path),
    };
    for chart in &charts {
        let values = chart_values(context, chart, &installs, ignore, found)?;
        let failure = match links_out_of_context(context, chart)? {
            Some(why) => RenderFailure::EscapingLink(why),
            None => {
                let rendered = match (opts.renderer, &helm) {
                    (ChartRenderer::Native, _) => {
                        render_native(context, chart, &values, opts, found)?
                    }
                    (ChartRenderer::Helm, Some(helm)) => {
                        match render_with_helm(context, helm, chart, &values, opts, found) {
                            Err(why) if why.to_string().contains("chart requires kubeVersion") => {
                                return Err(refused(chart, &why.to_string(), opts));
                            }
                            other => other,
                        }
                    }
                    (ChartRenderer::Helm, None) => Err(RenderFailure::NoHelm),
                };
                match rendered {
                    Ok(()) => continue,
                    Err(why) => why,
                }
            }
        };
        if chart.path.is_dir() {
            found.warn(
                chart.rel.clone(),
                format!("chart not rendered: {failure}; images were read from its values and literal `image:` lines only, so some may be missing"),
            );
            let mut origins = Origins::default();
            let top = TopValues {
                files: &values.files,
                sets: &values.sets,
            };
            static_chart(
                context,
                &chart.path,
                &chart.name,
                Some(top),
                None,
                &mut origins,
                ignore,
                found,
                0,
            )?;
        } else {
            found.warn(
                chart.rel.clone(),
                format!("chart not rendered: {failure}; a packed chart is not read statically, so its images are missing (fix the chart, or unpack it into charts/{})", chart.name),
            );
        }
    }
    Ok(())
}

/// The Kubernetes version of a rootfs image from its labels: the `version` label (`v1.27.7`) of an image
/// labelled `sealos.io.type` or `apps.sealos.io/type` = `rootfs`, when it is a Kubernetes version.
pub fn rootfs_kube_version(labels: &BTreeMap<String, String>) -> Option<String> {
    let rootfs = formats::cluster_image::image_type(labels) == Some("rootfs");
    let version = labels.get(formats::cluster_image::VERSION_LABEL)?.trim();
    let numbers = version.strip_prefix('v').unwrap_or(version);
    let parts: Vec<&str> = numbers.split(['.', '-', '+']).take(3).collect();
    let numeric = parts.len() >= 2
        && parts
            .iter()
            .take(2)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    (rootfs && numeric).then(|| version.to_string())
}

/// Why a chart was not rendered (discovery then reads it statically and warns).
#[derive(Debug, thiserror::Error)]
enum RenderFailure {
    /// A symlink of the chart leads out of the build context.
    #[error("{0}")]
    EscapingLink(String),
    /// `--chart-renderer=helm` and no `helm` was found.
    #[error(
        "`helm` is not on PATH (--chart-renderer=helm; the default native renderer needs none)"
    )]
    NoHelm,
    /// `helm` could not be started.
    #[error("cannot run `{}`: {source}", helm.display())]
    HelmNotRun {
        /// The helm binary.
        helm: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `helm template` exited with an error.
    #[error("`helm template` failed ({status}): {stderr}")]
    HelmFailed {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// `helm template` printed something that is not text.
    #[error("`helm template` printed text that is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// The native renderer failed.
    #[error("rendering failed: {}", .0.message())]
    Native(#[source] charts::Error),
}

/// The error for a chart whose `kubeVersion` refuses the Kubernetes version it is rendered for.
fn refused(chart: &Chart, message: &str, opts: &DiscoverOptions) -> DiscoverError {
    let version = opts
        .kube_version
        .clone()
        .unwrap_or_else(|| charts::capabilities::DEFAULT_KUBE_VERSION.to_string());
    DiscoverError::ChartRefused {
        chart: chart.rel.clone(),
        message: format!(
            "{message} (rendered for Kubernetes {version}: pass the cluster's version with --kube-version, or \
             build on the rootfs image it needs)"
        ),
    }
}

/// Renders a chart in-process and scans the output. `Ok(Err(why))`: it could not be rendered.
fn render_native(
    context: &Path,
    chart: &Chart,
    values: &ChartValues,
    opts: &DiscoverOptions,
    found: &mut Collector,
) -> Result<Result<(), RenderFailure>, DiscoverError> {
    let mut options = charts::TemplateOptions {
        release_name: RELEASE_NAME.to_string(),
        chart: chart.path.clone(),
        value_files: values.files.iter().map(|f| context.join(f)).collect(),
        kube_version: opts.kube_version.clone(),
        ..charts::TemplateOptions::default()
    };
    if let Some(namespace) = &values.namespace {
        options.namespace.clone_from(namespace);
    }
    for (flag, pair) in &values.sets {
        match flag.as_str() {
            "--set" => options.set.push(pair.clone()),
            "--set-string" => options.set_string.push(pair.clone()),
            "--set-json" => options.set_json.push(pair.clone()),
            "--set-literal" => match pair.split_once('=') {
                // The value exactly as written: a JSON string.
                Some((key, value)) => options
                    .set_json
                    .push(format!("{key}={}", serde_json::Value::from(value))),
                None => options.set.push(pair.clone()),
            },
            "--set-file" => {
                if let Some(pair) = set_file_in_context(context, chart, pair, found)? {
                    options.set_file.push(pair);
                }
            }
            _ => {}
        }
    }
    let rendered = match charts::render(&options) {
        Ok(rendered) => rendered,
        Err(e) if e.message().starts_with("chart requires kubeVersion") => {
            return Err(refused(chart, e.message(), opts));
        }
        Err(e) => return Ok(Err(RenderFailure::Native(e))),
    };
    for manifest in &rendered.manifests {
        let at = |line: usize| Provenance::ChartRendered {
            chart: chart.name.clone(),
            template: manifest.source.clone(),
            line,
            key: String::new(),
            script: values.script.clone(),
        };
        scan_yaml_file(&manifest.source, &manifest.content, found, at);
    }
    Ok(Ok(()))
}

/// A `--set-file key=path` pair with `path` resolved inside the context; `None` (and a warning) when the
/// file is not in it.
fn set_file_in_context(
    context: &Path,
    chart: &Chart,
    pair: &str,
    found: &mut Collector,
) -> Result<Option<String>, DiscoverError> {
    let Some((key, file)) = pair.split_once('=') else {
        return Ok(Some(pair.to_string()));
    };
    match in_context(context, &context.join(clean_path(file)), found)? {
        Some(path) if path.is_file() => Ok(Some(format!("{key}={}", path.display()))),
        _ => {
            found.warn(
                chart.rel.clone(),
                format!("file `{file}` passed with --set-file in the CMD is not in the context; not used for discovery"),
            );
            Ok(None)
        }
    }
}

/// Why helm must not read `chart`: helm follows symlinks on the host, so a chart holding one that leads out of
/// the context (see [`formats::kubefile::ContextPath::escaping_link`]) would render host files into the
/// discovery output. `None` when every symlink of the chart stays inside the context.
fn links_out_of_context(context: &Path, chart: &Chart) -> Result<Option<String>, DiscoverError> {
    let escaping = |path: &Path| -> Result<Option<String>, DiscoverError> {
        let resolved = formats::kubefile::resolve_in_context(context, &relative(context, path))?;
        Ok(resolved.escaping_link.map(|(link, target)| {
            format!(
                "`{link}` is a symlink to `{target}`, which leads out of the build context, and helm would \
                 follow it"
            )
        }))
    };
    // The chart's own path, then every symlink below it (real directories only lead to real directories).
    if let Some(why) = escaping(&context.join(&chart.rel))? {
        return Ok(Some(why));
    }
    if !std::fs::symlink_metadata(&chart.path).is_ok_and(|m| m.is_dir()) {
        return Ok(None);
    }
    let walk = formats::walk::Walk::new(&chart.path)
        .min_depth(1)
        .max_depth(MAX_WALK_DEPTH);
    for entry in walk {
        let entry = entry.map_err(|e| DiscoverError::io("list", &e.path)(e.source))?;
        if entry.file_type().is_symlink()
            && let Some(why) = escaping(entry.path())?
        {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Deepest directory nesting of a chart checked for symlinks before helm reads it.
const MAX_WALK_DEPTH: usize = 64;

/// The arguments of `helm template` for a chart (run in the context directory).
fn template_args(chart: &Chart, values: &ChartValues, opts: &DiscoverOptions) -> Vec<String> {
    let mut args = vec![
        "template".to_string(),
        RELEASE_NAME.to_string(),
        chart.rel.clone(),
    ];
    if let Some(namespace) = &values.namespace {
        args.push("--namespace".to_string());
        args.push(namespace.clone());
    }
    if let Some(version) = &opts.kube_version {
        args.push("--kube-version".to_string());
        args.push(version.clone());
    }
    for file in &values.files {
        args.push("--values".to_string());
        args.push(file.clone());
    }
    for (flag, pair) in &values.sets {
        args.push(flag.clone());
        args.push(pair.clone());
    }
    args
}

/// Renders a chart with helm and scans the output. `Err` says why it could not be rendered.
fn render_with_helm(
    context: &Path,
    helm: &Path,
    chart: &Chart,
    values: &ChartValues,
    opts: &DiscoverOptions,
    found: &mut Collector,
) -> Result<(), RenderFailure> {
    let output = Command::new(helm)
        .args(template_args(chart, values, opts))
        .current_dir(context)
        .output()
        .map_err(|source| RenderFailure::HelmNotRun {
            helm: helm.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(RenderFailure::HelmFailed {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8(output.stdout).map_err(RenderFailure::NotUtf8)?;
    let sources = source_comments(&text);
    let at = |line: usize| {
        let (template, start) = sources
            .iter()
            .rev()
            .find(|(start, _)| *start < line)
            .map_or(("(helm output)", 0), |(start, t)| (t.as_str(), *start));
        Provenance::ChartRendered {
            chart: chart.name.clone(),
            template: template.to_string(),
            line: line - start,
            key: String::new(),
            script: values.script.clone(),
        }
    };
    scan_yaml_file(&format!("{} (helm template)", chart.rel), &text, found, at);
    Ok(())
}

/// Helm's `# Source: <template>` comments: (1-based line, template).
fn source_comments(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            l.strip_prefix("# Source: ")
                .map(|t| (i + 1, t.trim().to_string()))
        })
        .collect()
}

/// Where a value of a statically read chart came from.
#[derive(Debug, Clone)]
enum Origin {
    File(String),
    Set(String),
}

/// Every origin of a static chart scan and its precedence (a chart's own `values.yaml` lowest, then the
/// values files in order, then `--set` pairs), indexed by [`Node::origin`].
#[derive(Debug, Default)]
struct Origins {
    origins: Vec<Origin>,
    ranks: Vec<usize>,
}

impl Origins {
    fn push(&mut self, origin: Origin, rank: usize) -> usize {
        self.origins.push(origin);
        self.ranks.push(rank);
        self.origins.len() - 1
    }
}

/// Rank of `--set` pairs: above every values file.
const SET_RANK: usize = 1 << 20;

/// The values a top-level chart is installed with.
#[derive(Debug, Clone, Copy)]
struct TopValues<'a> {
    files: &'a [String],
    sets: &'a [(String, String)],
}

fn load_values(
    context: &Path,
    path: &Path,
    rank: usize,
    origins: &mut Origins,
    found: &mut Collector,
) -> Result<Option<Node>, DiscoverError> {
    let rel = relative(context, path);
    let Some(path) = in_context(context, path, found)?.filter(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = read_text(&path)?;
    let origin = origins.push(Origin::File(rel.clone()), rank);
    match yaml::load_documents(&text, origin) {
        Ok(mut docs) if !docs.is_empty() => Ok(Some(docs.remove(0))),
        Ok(_) => Ok(None),
        Err(e) => {
            found.warn(
                format!("{rel}:{}", e.line),
                format!("not valid YAML ({}); values not read", e.message),
            );
            Ok(None)
        }
    }
}

/// Splits `a=1,b=2` (helm's `--set` syntax; `\,` keeps a comma) into pairs.
fn set_pairs(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ',' => pairs.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    pairs.push(current);
    pairs
        .into_iter()
        .filter_map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn static_chart(
    context: &Path,
    dir: &Path,
    name: &str,
    top: Option<TopValues<'_>>,
    from_parent: Option<Node>,
    origins: &mut Origins,
    ignore: &SealIgnore,
    found: &mut Collector,
    depth: usize,
) -> Result<(), DiscoverError> {
    let mut tree = load_values(context, &dir.join("values.yaml"), 0, origins, found)?
        .unwrap_or_else(|| Node::scalar("", 0, 0));
    if let Some(over) = from_parent {
        tree.merge(over);
    }
    if let Some(top) = top {
        for (i, file) in top.files.iter().enumerate() {
            let path = context.join(file);
            if let Some(over) = load_values(context, &path, i + 1, origins, found)? {
                tree.merge(over);
            }
        }
        for (flag, text) in top.sets {
            if flag != "--set" && flag != "--set-string" {
                continue;
            }
            for (key, value) in set_pairs(text) {
                let origin = origins.push(Origin::Set(format!("{key}={value}")), SET_RANK);
                let path: Vec<&str> = key.split('.').collect();
                tree.set_path(&path, Node::scalar(&value, origin, 0));
            }
        }
    }
    let app_version = in_context(context, &dir.join("Chart.yaml"), found)?
        .and_then(|path| chart_app_version(&path));
    let mut subcharts: Vec<PathBuf> = Vec::new();
    for listed in context_entries(context, &dir.join("charts"), found)? {
        if ignore.ignores_path(&relative(context, &listed)) {
            continue;
        }
        if let Some(path) = in_context(context, &listed, found)?.filter(|p| p.is_dir()) {
            subcharts.push(path);
        }
    }
    let sub_names: Vec<String> = subcharts
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .collect();
    let scan_opts = ScanOptions {
        default_tag: app_version.as_deref(),
        skip_top_level: &sub_names,
        ranks: &origins.ranks,
    };
    if matches!(tree.value, Value::Map(_)) {
        for c in yaml::scan(&tree, &scan_opts) {
            let source = match origins.origins.get(c.origin) {
                Some(Origin::Set(set)) => Provenance::ChartSet {
                    chart: name.to_string(),
                    set: set.clone(),
                },
                Some(Origin::File(file)) => Provenance::ChartValues {
                    chart: name.to_string(),
                    file: file.clone(),
                    line: c.line,
                    key: c.path,
                },
                None => continue,
            };
            found.image(&c.text, source);
        }
    }
    let templates = dir.join("templates");
    for (path, read) in files_with_extensions(
        context,
        &templates,
        &[".yaml", ".yml", ".tpl"],
        ignore,
        found,
    )? {
        let file = relative(context, &path);
        for (line, image) in yaml::image_lines(&read_text(&read)?) {
            if let LineImage::Literal(text) = image {
                let source = Provenance::ChartTemplate {
                    chart: name.to_string(),
                    file: file.clone(),
                    line,
                };
                found.image(&text, source);
            }
        }
    }
    if depth >= MAX_SUBCHART_DEPTH {
        return Ok(());
    }
    for (sub, sub_name) in subcharts.iter().zip(&sub_names) {
        let over = tree.get(sub_name).cloned();
        let sub_chart = format!("{name}/{sub_name}");
        static_chart(
            context,
            sub,
            &sub_chart,
            None,
            over,
            origins,
            ignore,
            found,
            depth + 1,
        )?;
    }
    Ok(())
}

/// The `appVersion` of a `Chart.yaml`, which most charts use as the default image tag.
fn chart_app_version(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let docs = yaml::load_documents(&text, 0).ok()?;
    let version = docs.first()?.get("appVersion")?.as_str()?.trim();
    (!version.is_empty()).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_commands_give_values_files_set_pairs_and_namespace() {
        let words = shell_words(
            "helm upgrade -i $(NAME) ./charts/app -f charts/app.values.yaml --values=extra.yaml -n ns --set redis.enabled=true --set-string 'a=b c'",
        );
        assert_eq!(
            helm_command(&words),
            Some(HelmInstall {
                positional: vec!["$(NAME)".into(), "./charts/app".into()],
                values: vec!["charts/app.values.yaml".into(), "extra.yaml".into()],
                sets: vec![
                    ("--set".into(), "redis.enabled=true".into()),
                    ("--set-string".into(), "a=b c".into())
                ],
                namespace: Some("ns".into()),
                origin: String::new(),
            })
        );
        assert!(helm_command(&shell_words("echo helm install x")).is_none());
        assert!(helm_command(&shell_words("helm list")).is_none());
        assert_eq!(
            helm_command(&shell_words("/usr/bin/helm template r charts/other"))
                .unwrap()
                .positional,
            ["r", "charts/other"]
        );
    }

    #[test]
    fn rootfs_images_give_their_kubernetes_version() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            rootfs_kube_version(&labels(&[
                ("sealos.io.type", "rootfs"),
                ("version", "v1.27.7")
            ])),
            Some("v1.27.7".into())
        );
        assert_eq!(
            rootfs_kube_version(&labels(&[
                ("apps.sealos.io/type", "rootfs"),
                ("version", "1.30")
            ])),
            Some("1.30".into())
        );
        assert_eq!(
            rootfs_kube_version(&labels(&[("version", "v1.27.7")])),
            None
        );
        assert_eq!(
            rootfs_kube_version(&labels(&[
                ("sealos.io.type", "rootfs"),
                ("version", "latest")
            ])),
            None
        );
    }

    #[test]
    fn set_text_splits_on_unescaped_commas() {
        assert_eq!(
            set_pairs("a=1,b.c=x\\,y,novalue"),
            vec![("a".into(), "1".into()), ("b.c".into(), "x,y".into())]
        );
    }

    #[test]
    fn source_comments_map_rendered_lines_to_templates() {
        let text = "---\n# Source: app/templates/a.yaml\nkind: A\n---\n# Source: app/charts/redis/templates/b.yaml\nkind: B\n";
        assert_eq!(
            source_comments(text),
            vec![
                (2, "app/templates/a.yaml".into()),
                (5, "app/charts/redis/templates/b.yaml".into())
            ]
        );
    }
}
