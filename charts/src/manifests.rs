//! Rendered template files to `helm template`'s manifests: split at `---` lines, sorted by Helm's install
//! order of kinds, hooks (`helm.sh/hook`) set apart, and the final text with `# Source:` lines.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use gotmpl::Value;
use regex::Regex;

use crate::{Error, Manifest, bridge};

/// Helm's `releaseutil.InstallOrder`: kinds installed (and printed) in this order; other kinds come after,
/// sorted by name.
const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// The hook events Helm knows; a hook naming any other is dropped.
const HOOK_EVENTS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-delete",
    "post-delete",
    "pre-upgrade",
    "post-upgrade",
    "pre-rollback",
    "post-rollback",
    "test",
    "test-success",
];

/// Helm's document separator: `---` after a newline (or at the start), with the whitespace around it. It
/// also splits `---foo` lines, as Helm does. `\s` spelled out: Go's `\s` is ASCII only.
static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\t\n\x0C\r ]*\n)---[\t\n\x0C\r ]*").expect("separator pattern")
});

/// Helm's `releaseutil.SplitManifests`: the YAML documents of a rendered file, trimmed, in order.
pub(crate) fn split_manifests(text: &str) -> Vec<&str> {
    SEPARATOR
        .split(text.trim())
        .filter(|d| !d.is_empty())
        .map(str::trim)
        .collect()
}

/// A rendered document that is a hook.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub(crate) manifest: Manifest,
    /// True for test hooks (`test`, `test-success`), which `--skip-tests` leaves out.
    pub(crate) test: bool,
}

/// The head of a manifest: what sorting and hook detection read.
struct Head {
    kind: String,
    annotations: BTreeMap<String, String>,
}

fn scalar_string(value: &Value) -> String {
    match value {
        Value::Str(s) => s.to_string(),
        Value::Nil | Value::Missing(_) => String::new(),
        other => other.to_go_string(),
    }
}

fn parse_head(path: &str, doc: &str) -> Result<Head, Error> {
    let parsed = bridge::parse_yaml(doc)
        .map_err(|e| Error::rendering(format!("YAML parse error on {path}: {e}")))?;
    let mut head = Head {
        kind: String::new(),
        annotations: BTreeMap::new(),
    };
    let map = match &parsed {
        Value::Map(map) => map.borrow(),
        Value::Nil => return Ok(head),
        other => {
            let kind = match other {
                Value::List(_) => "array",
                Value::Bool(_) => "bool",
                Value::Int(_) | Value::Int64(_) | Value::Float(_) => "number",
                _ => "string",
            };
            return Err(Error::rendering(format!(
                "YAML parse error on {path}: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal \
                 {kind} into Go value of type util.SimpleHead"
            )));
        }
    };
    if let Some(kind) = map.get("kind") {
        head.kind = scalar_string(kind);
    }
    if let Some(Value::Map(metadata)) = map.get("metadata")
        && let Some(Value::Map(annotations)) = metadata.borrow().get("annotations")
    {
        for (k, v) in annotations.borrow().iter() {
            head.annotations.insert(k.clone(), scalar_string(v));
        }
    }
    Ok(head)
}

fn kind_rank(kind: &str) -> Option<usize> {
    INSTALL_ORDER.iter().position(|k| *k == kind)
}

/// Helm's `lessByKind` as a total order for a stable sort: known kinds by install order, then unknown
/// kinds by name.
fn kind_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (kind_rank(a), kind_rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Helm's `releaseutil.SortManifests`: the rendered files (by template path) to manifests in install order
/// and hooks in install order. Partials (`_*`) and files that render to whitespace are skipped.
pub(crate) fn sort_manifests(
    files: &BTreeMap<String, String>,
) -> Result<(Vec<Manifest>, Vec<Hook>), Error> {
    let mut generic: Vec<(String, Manifest)> = Vec::new();
    let mut hooks: Vec<(String, Hook)> = Vec::new();
    for (path, content) in files {
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') || content.trim().is_empty() {
            continue;
        }
        for doc in split_manifests(content) {
            let head = parse_head(path, doc)?;
            let manifest = Manifest {
                source: path.clone(),
                content: doc.to_string(),
                hook: false,
            };
            let Some(events) = head.annotations.get("helm.sh/hook") else {
                generic.push((head.kind, manifest));
                continue;
            };
            let events: Vec<String> = events.split(',').map(|e| e.trim().to_lowercase()).collect();
            if events.iter().any(|e| !HOOK_EVENTS.contains(&e.as_str())) {
                // Helm logs "skipping unknown hooks" and leaves the document out altogether.
                continue;
            }
            let test = events.iter().any(|e| e == "test" || e == "test-success");
            hooks.push((
                head.kind,
                Hook {
                    manifest: Manifest {
                        hook: true,
                        ..manifest
                    },
                    test,
                },
            ));
        }
    }
    generic.sort_by(|a, b| kind_order(&a.0, &b.0));
    hooks.sort_by(|a, b| kind_order(&a.0, &b.0));
    Ok((
        generic.into_iter().map(|(_, m)| m).collect(),
        hooks.into_iter().map(|(_, h)| h).collect(),
    ))
}

/// `helm template`'s stdout for these manifests (CRDs and manifests, then hooks), before `--show-only`.
pub(crate) fn output(manifests: &[Manifest]) -> String {
    let mut body = String::new();
    for m in manifests.iter().filter(|m| !m.hook) {
        body.push_str("---\n# Source: ");
        body.push_str(&m.source);
        body.push('\n');
        body.push_str(&m.content);
        body.push('\n');
    }
    let mut out = body.trim().to_string();
    out.push('\n');
    for m in manifests.iter().filter(|m| m.hook) {
        out.push_str("---\n# Source: ");
        out.push_str(&m.source);
        out.push('\n');
        out.push_str(&m.content);
        out.push('\n');
    }
    out
}

static SOURCE_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"# Source: [^/]+/(.+)").expect("source pattern"));

/// `--show-only`: the documents of `output` whose template path (without the chart name) matches a
/// pattern, pattern by pattern, as `helm template` prints them.
pub(crate) fn show_only(output: &str, patterns: &[String]) -> Result<String, Error> {
    let docs = split_manifests(output);
    let mut out = String::new();
    for pattern in patterns {
        let mut found = false;
        for doc in &docs {
            let Some(path) = SOURCE_LINE.captures(doc).and_then(|c| c.get(1)) else {
                continue;
            };
            // A malformed pattern matches nothing, as Go's `filepath.Match` error is ignored there.
            if crate::glob::go_match(pattern, path.as_str()).unwrap_or(false) {
                out.push_str("---\n");
                out.push_str(doc);
                out.push('\n');
                found = true;
            }
        }
        if !found {
            return Err(Error::new(format!(
                "could not find template {pattern} in chart"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_split_at_separator_lines_like_helm() {
        assert_eq!(split_manifests("a: 1\n---\nb: 2\n"), vec!["a: 1", "b: 2"]);
        // The first separator swallows the blank lines the second one needed: Helm keeps a `---` document.
        assert_eq!(
            split_manifests("---\na: 1\n---   \n\n---\n"),
            vec!["a: 1", "---"]
        );
        assert_eq!(split_manifests("a: 1\n---x: 2"), vec!["a: 1", "x: 2"]);
        assert_eq!(split_manifests("a: '---'\n"), vec!["a: '---'"]);
        assert_eq!(split_manifests("--- # c\nk: v"), vec!["# c\nk: v"]);
    }

    #[test]
    fn kinds_sort_by_install_order_then_name() {
        let mut kinds = vec!["Foo", "Deployment", "", "Bar", "Namespace", "Service"];
        kinds.sort_by(|a, b| kind_order(a, b));
        assert_eq!(
            kinds,
            vec!["Namespace", "Service", "Deployment", "", "Bar", "Foo"]
        );
    }
}
