//! A loaded chart: its metadata (Chart.yaml), default values, schema, templates, other files and subcharts.

use std::collections::BTreeMap;
use std::rc::Rc;

use gotmpl::Value;
use gotmpl::value::Entries;

/// A file of a chart, by its path relative to the chart's root (`templates/x.yaml`, `files/a.txt`).
#[derive(Debug, Clone)]
pub struct File {
    /// The path relative to the chart root, `/`-separated.
    pub name: String,
    /// The file's bytes (a leading UTF-8 byte-order mark removed, as Helm does).
    pub data: Rc<[u8]>,
}

/// A chart and its subcharts, as Helm's loader builds it.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Chart.yaml (with requirements.yaml's dependencies for `apiVersion: v1` charts).
    pub metadata: Metadata,
    /// The chart's values.yaml (an empty map when it has none).
    pub values: Value,
    /// The chart's values.schema.json, if any.
    pub schema: Option<Rc<[u8]>>,
    /// The files under `templates/`.
    pub templates: Vec<File>,
    /// Every other file (`.Files`, `crds/`), except Chart.yaml, values.yaml, values.schema.json, Chart.lock
    /// and subcharts.
    pub files: Vec<File>,
    /// The subcharts, from `charts/` (after dependency processing: only the enabled ones, aliases applied).
    pub dependencies: Vec<Chart>,
}

/// A maintainer listed in Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Maintainer {
    /// The maintainer's name.
    pub name: String,
    /// The maintainer's email address.
    pub email: String,
    /// The maintainer's URL.
    pub url: String,
}

/// A dependency listed in Chart.yaml (`dependencies:`) or requirements.yaml.
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    /// The subchart's name (its alias, after dependency processing).
    pub name: String,
    /// The version constraint the subchart must satisfy.
    pub version: String,
    /// Where the subchart comes from (not used for rendering).
    pub repository: String,
    /// Comma-separated value paths; the first that resolves to a bool enables or disables the subchart.
    pub condition: String,
    /// Tags; `tags.<tag>` values enable or disable the subchart.
    pub tags: Vec<String>,
    /// Whether the subchart is rendered (set by dependency processing).
    pub enabled: bool,
    /// `import-values`: strings (`exports.<name>`) or `{child, parent}` maps.
    pub import_values: Vec<Value>,
    /// The name the subchart is rendered and configured under.
    pub alias: String,
}

/// Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// `apiVersion`: `v1` (Helm 2 charts, dependencies in requirements.yaml) or `v2`.
    pub api_version: String,
    /// `name`.
    pub name: String,
    /// `version` (SemVer 2).
    pub version: String,
    /// `appVersion`.
    pub app_version: String,
    /// `description`.
    pub description: String,
    /// `kubeVersion`: the SemVer constraint the Kubernetes version must satisfy.
    pub kube_version: String,
    /// `home`.
    pub home: String,
    /// `icon`.
    pub icon: String,
    /// `condition` (unused by Helm 3; kept for `.Chart.Condition`).
    pub condition: String,
    /// `tags` (unused by Helm 3; kept for `.Chart.Tags`).
    pub tags: String,
    /// `type`: `application` (or empty) or `library`.
    pub chart_type: String,
    /// `deprecated`.
    pub deprecated: bool,
    /// `keywords`.
    pub keywords: Vec<String>,
    /// `sources`.
    pub sources: Vec<String>,
    /// `annotations`; `None` when Chart.yaml has none.
    pub annotations: Option<BTreeMap<String, String>>,
    /// `maintainers`.
    pub maintainers: Vec<Maintainer>,
    /// `dependencies`.
    pub dependencies: Vec<Dependency>,
}

impl Chart {
    /// The chart's name (its alias when it is an aliased subchart).
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// True for a library chart: its templates define helpers and are never rendered themselves.
    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == "library"
    }
}

fn field<'a>(map: &'a Entries, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_nil())
}

/// A Chart.yaml (or requirements.yaml) value of the wrong kind for the Go struct Helm decodes it into;
/// worded as Go's `encoding/json` words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("json: cannot unmarshal {found} into Go {target}")]
pub struct UnmarshalError {
    /// The JSON kind found: `bool`, `number`, `array`, `object`, `string`.
    found: &'static str,
    /// What Go wanted: `value of type chart.Metadata`, `struct field Metadata.name of type string`...
    target: String,
}

impl UnmarshalError {
    /// `value` where a field `what.key` of Go type `go_type` belongs.
    fn field(value: &Value, what: &str, key: &str, go_type: &str) -> UnmarshalError {
        UnmarshalError {
            found: json_kind(value),
            target: format!("struct field {what}.{key} of type {go_type}"),
        }
    }
}

fn string_field(map: &Entries, key: &str, what: &str) -> Result<String, UnmarshalError> {
    match field(map, key) {
        None => Ok(String::new()),
        Some(Value::Str(s)) => Ok(s.to_string()),
        // sigs.k8s.io/yaml converts a scalar to the string a Go string field wants (`version: 1` is "1").
        Some(scalar @ (Value::Bool(_) | Value::Int(_) | Value::Int64(_) | Value::Float(_))) => {
            Ok(scalar_text(scalar))
        }
        Some(other) => Err(UnmarshalError::field(other, what, key, "string")),
    }
}

/// A YAML scalar as sigs.k8s.io/yaml turns it into a Go string field: YAML integers (read as whole floats)
/// in full, other numbers as Go's `%g`, booleans as `true`/`false`.
pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => format!("{}", *f as i64),
        other => other.to_go_string(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Int64(_) | Value::Float(_) => "number",
        Value::List(_) => "array",
        Value::Map(_) => "object",
        _ => "string",
    }
}

fn string_list(map: &Entries, key: &str, what: &str) -> Result<Vec<String>, UnmarshalError> {
    match field(map, key) {
        None => Ok(Vec::new()),
        Some(Value::List(items)) => items
            .iter()
            .map(|item| match item {
                Value::Str(s) => Ok(s.to_string()),
                Value::Nil => Ok(String::new()),
                scalar @ (Value::Bool(_) | Value::Int(_) | Value::Int64(_) | Value::Float(_)) => {
                    Ok(scalar_text(scalar))
                }
                other => Err(UnmarshalError::field(other, what, key, "string")),
            })
            .collect(),
        Some(other) => Err(UnmarshalError::field(other, what, key, "[]string")),
    }
}

fn entries_of(value: &Value) -> Option<Entries> {
    match value {
        Value::Map(m) => Some(m.borrow().clone()),
        _ => None,
    }
}

impl Metadata {
    /// Reads Chart.yaml's parsed document as Helm unmarshals it into `chart.Metadata`.
    pub fn from_value(doc: &Value) -> Result<Metadata, UnmarshalError> {
        let map = match doc {
            Value::Nil => Entries::new(),
            other => entries_of(other).ok_or_else(|| UnmarshalError {
                found: json_kind(other),
                target: "value of type chart.Metadata".to_string(),
            })?,
        };
        let what = "Metadata";
        let mut metadata = Metadata {
            api_version: string_field(&map, "apiVersion", what)?,
            name: string_field(&map, "name", what)?,
            version: string_field(&map, "version", what)?,
            app_version: string_field(&map, "appVersion", what)?,
            description: string_field(&map, "description", what)?,
            kube_version: string_field(&map, "kubeVersion", what)?,
            home: string_field(&map, "home", what)?,
            icon: string_field(&map, "icon", what)?,
            condition: string_field(&map, "condition", what)?,
            tags: string_field(&map, "tags", what)?,
            chart_type: string_field(&map, "type", what)?,
            deprecated: matches!(field(&map, "deprecated"), Some(Value::Bool(true))),
            keywords: string_list(&map, "keywords", what)?,
            sources: string_list(&map, "sources", what)?,
            annotations: None,
            maintainers: Vec::new(),
            dependencies: Vec::new(),
        };
        if let Some(annotations) = field(&map, "annotations") {
            let entries = entries_of(annotations).ok_or_else(|| {
                UnmarshalError::field(annotations, "Metadata", "annotations", "map[string]string")
            })?;
            let mut out = BTreeMap::new();
            for (k, v) in entries {
                match v {
                    Value::Str(s) => {
                        out.insert(k, s.to_string());
                    }
                    Value::Nil => {
                        out.insert(k, String::new());
                    }
                    // Scalars become the strings Go's field wants, as for the other string fields.
                    scalar @ (Value::Bool(_)
                    | Value::Int(_)
                    | Value::Int64(_)
                    | Value::Float(_)) => {
                        out.insert(k, scalar_text(&scalar));
                    }
                    other => {
                        return Err(UnmarshalError::field(
                            &other,
                            "Metadata",
                            "annotations",
                            "string",
                        ));
                    }
                }
            }
            metadata.annotations = Some(out);
        }
        if let Some(Value::List(items)) = field(&map, "maintainers") {
            for item in items.iter() {
                let m = entries_of(item).unwrap_or_default();
                metadata.maintainers.push(Maintainer {
                    name: string_field(&m, "name", "Maintainer")?,
                    email: string_field(&m, "email", "Maintainer")?,
                    url: string_field(&m, "url", "Maintainer")?,
                });
            }
        }
        metadata.dependencies = dependencies_from(&map)?;
        Ok(metadata)
    }

    /// `.Chart` as helm v4 gives it to templates: a map with Go's field names.
    pub fn to_value(&self, is_root: bool) -> Value {
        let mut m = Entries::new();
        let s = |v: &str| Value::from(v);
        let list = |v: &[String]| {
            Value::from(
                v.iter()
                    .map(|x| Value::from(x.as_str()))
                    .collect::<Vec<_>>(),
            )
        };
        m.insert("APIVersion".into(), s(&self.api_version));
        m.insert(
            "Annotations".into(),
            match &self.annotations {
                None => Value::Nil,
                Some(a) => Value::from(
                    a.iter()
                        .map(|(k, v)| (k.clone(), s(v)))
                        .collect::<Entries>(),
                ),
            },
        );
        m.insert("AppVersion".into(), s(&self.app_version));
        m.insert("Condition".into(), s(&self.condition));
        let dependencies = self
            .dependencies
            .iter()
            .map(Dependency::to_value)
            .collect::<Vec<_>>();
        m.insert("Dependencies".into(), Value::from(dependencies));
        m.insert("Deprecated".into(), Value::Bool(self.deprecated));
        m.insert("Description".into(), s(&self.description));
        m.insert("Home".into(), s(&self.home));
        m.insert("Icon".into(), s(&self.icon));
        m.insert("IsRoot".into(), Value::Bool(is_root));
        m.insert("Keywords".into(), list(&self.keywords));
        m.insert("KubeVersion".into(), s(&self.kube_version));
        let maintainers = self
            .maintainers
            .iter()
            .map(|mt| {
                let mut e = Entries::new();
                e.insert("Email".into(), s(&mt.email));
                e.insert("Name".into(), s(&mt.name));
                e.insert("URL".into(), s(&mt.url));
                Value::from(e)
            })
            .collect::<Vec<_>>();
        m.insert("Maintainers".into(), Value::from(maintainers));
        m.insert("Name".into(), s(&self.name));
        m.insert("Sources".into(), list(&self.sources));
        m.insert("Tags".into(), s(&self.tags));
        m.insert("Type".into(), s(&self.chart_type));
        m.insert("Version".into(), s(&self.version));
        Value::from(m)
    }
}

/// The `dependencies:` list of Chart.yaml or requirements.yaml.
pub(crate) fn dependencies_from(map: &Entries) -> Result<Vec<Dependency>, UnmarshalError> {
    let mut out = Vec::new();
    let Some(Value::List(items)) = field(map, "dependencies") else {
        return Ok(out);
    };
    for item in items.iter() {
        let d = entries_of(item).unwrap_or_default();
        let what = "Dependency";
        out.push(Dependency {
            name: string_field(&d, "name", what)?,
            version: string_field(&d, "version", what)?,
            repository: string_field(&d, "repository", what)?,
            condition: string_field(&d, "condition", what)?,
            tags: string_list(&d, "tags", what)?,
            enabled: matches!(field(&d, "enabled"), Some(Value::Bool(true))),
            import_values: match field(&d, "import-values") {
                Some(Value::List(items)) => items.to_vec(),
                _ => Vec::new(),
            },
            alias: string_field(&d, "alias", what)?,
        });
    }
    Ok(out)
}

impl Dependency {
    fn to_value(&self) -> Value {
        let mut e = Entries::new();
        e.insert("Alias".into(), Value::from(self.alias.as_str()));
        e.insert("Condition".into(), Value::from(self.condition.as_str()));
        e.insert("Enabled".into(), Value::Bool(self.enabled));
        e.insert(
            "ImportValues".into(),
            Value::from(self.import_values.clone()),
        );
        e.insert("Name".into(), Value::from(self.name.as_str()));
        e.insert("Repository".into(), Value::from(self.repository.as_str()));
        e.insert(
            "Tags".into(),
            Value::from(
                self.tags
                    .iter()
                    .map(|t| Value::from(t.as_str()))
                    .collect::<Vec<_>>(),
            ),
        );
        e.insert("Version".into(), Value::from(self.version.as_str()));
        Value::from(e)
    }
}
