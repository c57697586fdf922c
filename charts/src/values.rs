//! The values a chart renders with, built as Helm builds them: user values merged from `-f` files and the
//! `--set` flags in Helm's order ([`merge_user_values`]), then coalesced over the chart's defaults and its
//! subcharts' defaults with `global` copied down ([`coalesce`], Helm's `chartutil.CoalesceValues`).
//!
//! ```
//! use charts::values::{ChartValues, coalesce};
//! let defaults = charts::yaml::parse("a: 1\nsub: {x: 1}\nglobal: {g: 1}\n").unwrap();
//! let sub = ChartValues { name: "sub".into(), defaults: charts::yaml::parse("x: 2\nz: 2\n").unwrap(), subcharts: vec![] };
//! let chart = ChartValues { name: "top".into(), defaults, subcharts: vec![sub] };
//! let user = charts::yaml::parse("a: null\n").unwrap();
//! let values = coalesce(&chart, &user).unwrap();
//! assert_eq!(charts::yaml::to_yaml(&values).unwrap(), "global:\n  g: 1\nsub:\n  global:\n    g: 1\n  x: 1\n  z: 2");
//! ```

use std::cell::RefCell;

use gotmpl::Value;
use gotmpl::value::{Entries, Map};

use crate::strvals::{Dialect, SetError, SetKind, parse_set_as};
use crate::yaml::{ValuesDocuments, YamlError, parse_values};

/// Helm's key for values shared with every subchart.
pub const GLOBAL_KEY: &str = "global";

/// A chart as coalescing sees it: the key its values live under in its parent (its alias, else its
/// name), its `values.yaml`, and its enabled subcharts (after conditions and tags).
#[derive(Debug, Clone)]
pub struct ChartValues {
    /// The chart's name, or its alias in the parent's `dependencies`.
    pub name: String,
    /// The chart's default values (its `values.yaml`, a map; `Nil` counts as empty).
    pub defaults: Value,
    /// The subcharts that render with this chart, in `dependencies` order.
    pub subcharts: Vec<ChartValues>,
}

/// The user's values options, as `helm template` takes them; each list in command-line order.
#[derive(Debug, Clone, Default)]
pub struct UserValueOptions {
    /// `-f`/`--values` files.
    pub value_files: Vec<String>,
    /// `--set-json` assignments (`a.b={"x":1}`, or with Helm 4 a whole JSON object).
    pub set_json: Vec<String>,
    /// `--set` assignments.
    pub set: Vec<String>,
    /// `--set-string` assignments.
    pub set_string: Vec<String>,
    /// `--set-file` assignments (`key=path`).
    pub set_file: Vec<String>,
    /// `--set-literal` assignments.
    pub set_literal: Vec<String>,
}

/// Why the user's values or their merge with a chart's fail; worded as Helm words it.
#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    /// A values file (`-f`) cannot be read.
    #[error("open {path}: {}", crate::go_io_reason(source))]
    Read {
        /// The path as given.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A values file is not valid YAML.
    #[error("failed to parse {path}: {source}")]
    Parse {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        #[source]
        source: YamlError,
    },
    /// A `--set-json` argument that is a whole JSON object (Helm 4) does not parse as one.
    #[error("failed parsing --set-json data JSON: {0}")]
    SetJsonObject(String),
    /// A `--set-json` argument does not parse (Helm does not say why).
    #[error("failed parsing --set-json data {spec}")]
    SetJson {
        /// The argument.
        spec: String,
        /// Why, kept for `--debug`.
        #[source]
        source: SetError,
    },
    /// A `--set`, `--set-string`, `--set-file` or `--set-literal` argument does not parse.
    #[error("failed parsing {flag} data: {source}")]
    Set {
        /// The flag: `--set`, `--set-string`...
        flag: &'static str,
        /// What is wrong with it.
        #[source]
        source: SetError,
    },
    /// The user's values are not a map.
    #[error("values must be a map, not {0}")]
    NotAMap(String),
    /// A subchart's values are not a map (Go's `%!t(...)` printing of the value).
    #[error("type mismatch on {name}: {shown}")]
    TypeMismatch {
        /// The subchart.
        name: String,
        /// The value as Go prints it with `%t`.
        shown: String,
    },
}

/// Helm's `values.Options.MergeValues`: `-f` files merged in order (maps deeply, later files win), then
/// `--set-json`, `--set`, `--set-string`, `--set-file`, `--set-literal` assigned in that order.
/// `read_file` reads a values file or a `--set-file` path (errors as the caller words them);
/// `documents` picks the Helm version: how a file with several YAML documents is read, and (Helm 4) whether
/// `--set-json` also takes a whole JSON object.
pub fn merge_user_values(
    options: &UserValueOptions,
    read_file: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
    documents: ValuesDocuments,
) -> Result<Value, ValuesError> {
    let dialect = match documents {
        ValuesDocuments::First => Dialect::Helm3,
        ValuesDocuments::Merged => Dialect::Helm4,
    };
    let mut base = Value::empty_map();
    for path in &options.value_files {
        let bytes = read_file(path).map_err(|source| ValuesError::Read {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let current = parse_values(&text, documents).map_err(|source| ValuesError::Parse {
            path: path.clone(),
            source,
        })?;
        base = merge_maps(&base, &current);
    }
    for spec in &options.set_json {
        let trimmed = spec.trim();
        if documents == ValuesDocuments::Merged && trimmed.starts_with('{') {
            let object = gotmpl::encoding::json::from_json(trimmed)
                .ok()
                .filter(|v| matches!(v, Value::Map(_)))
                .ok_or_else(|| ValuesError::SetJsonObject(spec.clone()))?;
            base = merge_maps(&base, &object);
        } else {
            parse_set_as(spec, &base, SetKind::Json, dialect).map_err(|source| {
                ValuesError::SetJson {
                    spec: spec.clone(),
                    source,
                }
            })?;
        }
    }
    for spec in &options.set {
        parse_set_as(spec, &base, SetKind::Typed, dialect).map_err(|source| ValuesError::Set {
            flag: "--set",
            source,
        })?;
    }
    for spec in &options.set_string {
        parse_set_as(spec, &base, SetKind::String, dialect).map_err(|source| ValuesError::Set {
            flag: "--set-string",
            source,
        })?;
    }
    let read_text = |path: &str| -> std::io::Result<String> {
        read_file(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    };
    for spec in &options.set_file {
        parse_set_as(spec, &base, SetKind::File(&read_text), dialect).map_err(|source| {
            ValuesError::Set {
                flag: "--set-file",
                source,
            }
        })?;
    }
    for spec in &options.set_literal {
        parse_set_as(spec, &base, SetKind::Literal, dialect).map_err(|source| {
            ValuesError::Set {
                flag: "--set-literal",
                source,
            }
        })?;
    }
    Ok(base)
}

/// Helm's `mergeMaps` for values files: a new map with `b` over `a`, nested maps merged.
fn merge_maps(a: &Value, b: &Value) -> Value {
    let mut out: Entries = match a {
        Value::Map(m) => m.borrow().clone(),
        _ => Entries::new(),
    };
    if let Value::Map(b) = b {
        for (key, value) in b.borrow().iter() {
            let merged = match (out.get(key), value) {
                (Some(existing @ Value::Map(_)), Value::Map(_)) => merge_maps(existing, value),
                _ => value.clone(),
            };
            out.insert(key.clone(), merged);
        }
    }
    Value::from(out)
}

/// Helm's `chartutil.CoalesceValues`: `user` values over the chart's defaults, each subchart's values
/// (under its name) over its defaults, `global` copied into every subchart (parent globals win), a `null`
/// user value deleting the default it overrides. Neither input is changed.
pub fn coalesce(chart: &ChartValues, user: &Value) -> Result<Value, ValuesError> {
    let dest = match user.deep_copy() {
        Value::Map(map) => map,
        Value::Nil | Value::Missing(_) => Map::default(),
        other => return Err(ValuesError::NotAMap(other.type_name().to_string())),
    };
    coalesce_chart(chart, &dest, false)?;
    Ok(Value::Map(dest))
}

/// Helm's `chartutil.CoalesceTables`: `dst` over `src` (both maps, deep copies are taken), a `null` in
/// `dst` deleting the key.
pub fn coalesce_tables(dst: &Value, src: &Value) -> Value {
    tables(dst, src, false)
}

/// Helm's `chartutil.MergeTables`: like [`coalesce_tables`] but a `null` in `dst` is kept.
pub fn merge_tables(dst: &Value, src: &Value) -> Value {
    tables(dst, src, true)
}

fn tables(dst: &Value, src: &Value, merge: bool) -> Value {
    let (Value::Map(dst), Value::Map(src)) = (dst.deep_copy(), src.deep_copy()) else {
        return dst.deep_copy();
    };
    coalesce_tables_into(&dst, &src, merge);
    Value::Map(dst)
}

fn coalesce_chart(chart: &ChartValues, dest: &Map, merge: bool) -> Result<(), ValuesError> {
    coalesce_defaults(chart, dest, merge);
    coalesce_subcharts(chart, dest, merge)
}

fn coalesce_subcharts(chart: &ChartValues, dest: &Map, merge: bool) -> Result<(), ValuesError> {
    for sub in &chart.subcharts {
        let existing = dest.borrow().get(&sub.name).cloned();
        let sub_values = match existing {
            None => {
                let map = Map::default();
                dest.borrow_mut()
                    .insert(sub.name.clone(), Value::Map(map.clone()));
                map
            }
            Some(Value::Map(map)) => map,
            Some(other) => {
                let shown = if other.is_nil() {
                    "%!t(<nil>)".to_string()
                } else {
                    format!("%!t({}={})", other.type_name(), other.to_go_string())
                };
                return Err(ValuesError::TypeMismatch {
                    name: sub.name.clone(),
                    shown,
                });
            }
        };
        coalesce_globals(&sub_values, dest);
        coalesce_chart(sub, &sub_values, merge)?;
    }
    Ok(())
}

/// Copies the parent's `global` map into the subchart's: parent scalars replace, parent maps are merged
/// over the subchart's.
fn coalesce_globals(dest: &Map, src: &Map) {
    let dest_global = match dest.borrow().get(GLOBAL_KEY).cloned() {
        None => Map::default(),
        Some(Value::Map(map)) => map,
        Some(_) => return, // Helm warns: skipping globals because destination global is not a table.
    };
    let src_global = match src.borrow().get(GLOBAL_KEY).cloned() {
        None => Map::default(),
        Some(Value::Map(map)) => map,
        Some(_) => return,
    };
    let entries: Vec<(String, Value)> = src_global
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in entries {
        let existing = dest_global.borrow().get(&key).cloned();
        match (&value, existing) {
            (Value::Map(table), existing) => {
                let copy: Map = Map::new(RefCell::new(table.borrow().clone()));
                match existing {
                    None => {
                        dest_global.borrow_mut().insert(key, Value::Map(copy));
                    }
                    Some(Value::Map(sub_table)) => {
                        coalesce_tables_into(&copy, &sub_table, true);
                        dest_global.borrow_mut().insert(key, Value::Map(copy));
                    }
                    Some(_) => {} // Helm: cannot merge map onto non-map; skipped.
                }
            }
            (_, Some(Value::Map(_))) => {} // Helm: key is a table; skipped.
            (_, _) => {
                dest_global.borrow_mut().insert(key, value);
            }
        }
    }
    dest.borrow_mut()
        .insert(GLOBAL_KEY.to_string(), Value::Map(dest_global));
}

/// Helm's `coalesceValues`: the chart's defaults (a deep copy) fill what `values` lacks.
fn coalesce_defaults(chart: &ChartValues, values: &Map, merge: bool) {
    let Value::Map(defaults) = chart.defaults.deep_copy() else {
        return;
    };
    let defaults: Vec<(String, Value)> = defaults
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, default) in defaults {
        let current = values.borrow().get(&key).cloned();
        match current {
            None => {
                values.borrow_mut().insert(key, default);
            }
            Some(value) if value.is_nil() && !merge => {
                values.borrow_mut().remove(&key);
            }
            Some(Value::Map(dest)) => {
                if let Value::Map(src) = &default {
                    let merge = merge || chart.subcharts.iter().any(|sub| sub.name == key);
                    coalesce_tables_into(&dest, src, merge);
                }
                // Helm warns when the default is not a table; the user's map is kept.
            }
            Some(_) => {}
        }
    }
}

/// Helm's `coalesceTablesFullKey`: `dst` is authoritative, `src` fills in; with `merge` false a `null` in
/// `dst` deletes the key. A table never replaces a non-table or the reverse (Helm prints a warning).
fn coalesce_tables_into(dst: &Map, src: &Map, merge: bool) {
    let nulls: Vec<String> = dst
        .borrow()
        .iter()
        .filter(|(_, v)| v.is_nil())
        .map(|(k, _)| k.clone())
        .collect();
    for key in nulls {
        src.borrow_mut().insert(key, Value::Nil);
    }
    let entries: Vec<(String, Value)> = src
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in entries {
        let existing = dst.borrow().get(&key).cloned();
        match existing {
            Some(current) if current.is_nil() && !merge => {
                dst.borrow_mut().remove(&key);
            }
            None => {
                dst.borrow_mut().insert(key, value);
            }
            Some(Value::Map(dst_table)) => {
                if let Value::Map(src_table) = &value {
                    coalesce_tables_into(&dst_table, src_table, merge);
                }
                // Helm: destination is a table, ignoring the non-table value.
            }
            Some(_) => {} // Helm: cannot overwrite table with non table; the user's value stays.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse, to_yaml};

    fn chart(name: &str, defaults: &str, subcharts: Vec<ChartValues>) -> ChartValues {
        ChartValues {
            name: name.to_string(),
            defaults: parse(defaults).unwrap(),
            subcharts,
        }
    }

    fn coalesced(chart: &ChartValues, user: &str) -> String {
        to_yaml(&coalesce(chart, &parse(user).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn user_values_override_defaults_and_null_deletes() {
        let top = chart("top", "a: 1\nb: {c: 2, d: 3}\ne: x\n", vec![]);
        assert_eq!(
            coalesced(&top, "b: {c: 5, d: null}\ne: null\nf: null\n"),
            "a: 1\nb:\n  c: 5\nf: null"
        );
    }

    #[test]
    fn tables_and_scalars_do_not_replace_each_other() {
        let top = chart("top", "a: {x: 1}\nb: 2\n", vec![]);
        assert_eq!(coalesced(&top, "a: 3\nb: {z: 1}\n"), "a: 3\nb:\n  z: 1");
    }

    #[test]
    fn subcharts_get_their_values_and_globals() {
        let leaf = chart("leaf", "l: 1\nglobal: {g: leaf, only: leaf}\n", vec![]);
        let sub = chart(
            "sub",
            "s: 1\nglobal: {g: sub, m: {a: sub, b: sub}}\n",
            vec![leaf],
        );
        let top = chart(
            "top",
            "sub: {s: 2}\nglobal: {g: top, m: {a: top}}\n",
            vec![sub],
        );
        assert_eq!(
            coalesced(&top, "sub: {leaf: {l: 3}}\n"),
            "global:\n  g: top\n  m:\n    a: top\nsub:\n  global:\n    g: top\n    m:\n      a: top\n      b: sub\n  leaf:\n    global:\n      g: top\n      m:\n        a: top\n        b: sub\n      only: leaf\n    l: 3\n  s: 2"
        );
    }

    #[test]
    fn user_values_merge_files_then_flags_in_helm_order() {
        let files = |path: &str| -> std::io::Result<Vec<u8>> {
            match path {
                "one.yaml" => Ok(b"a: {x: 1, z: 1}\nb: file\n".to_vec()),
                "two.yaml" => Ok(b"a: {z: 2}\n".to_vec()),
                "content.txt" => Ok(b"from file".to_vec()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        };
        let options = UserValueOptions {
            value_files: vec!["one.yaml".into(), "two.yaml".into()],
            set_json: vec![r#"c={"j":1}"#.into()],
            set: vec!["b=set,d=1".into()],
            set_string: vec!["d=2".into()],
            set_file: vec!["e=content.txt".into()],
            set_literal: vec!["f=a,b".into()],
        };
        let values = merge_user_values(&options, &files, ValuesDocuments::First).unwrap();
        assert_eq!(
            to_yaml(&values).unwrap(),
            "a:\n  x: 1\n  z: 2\nb: set\nc:\n  j: 1\nd: \"2\"\ne: from file\nf: a,b"
        );
        let bad = UserValueOptions {
            set: vec!["x".into()],
            ..UserValueOptions::default()
        };
        assert_eq!(
            merge_user_values(&bad, &files, ValuesDocuments::First)
                .unwrap_err()
                .to_string(),
            r#"failed parsing --set data: key "x" has no value"#
        );
    }
}
