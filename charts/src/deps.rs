//! Helm's dependency processing (`ProcessDependencies`): which subcharts are enabled (`condition`, `tags`),
//! aliases, and `import-values` copied from subcharts into their parent's defaults.

use gotmpl::Value;
use gotmpl::value::Entries;

use crate::Error;
use crate::bridge;
use crate::chart::Chart;

/// `Values.Table`: the map at dotted `path`, if every step is a map.
pub(crate) fn table(values: &Value, path: &str) -> Option<Value> {
    let mut current = values.clone();
    for key in path.split('.') {
        let next = match &current {
            Value::Map(map) => map.borrow().get(key).cloned(),
            _ => None,
        };
        match next {
            Some(v @ Value::Map(_)) => current = v,
            _ => return None,
        }
    }
    Some(current)
}

/// `Values.PathValue`: the non-map value at dotted `path`.
fn path_value(values: &Value, path: &str) -> Option<Value> {
    let (parent, key) = match path.rsplit_once('.') {
        Some((parent, key)) => (table(values, parent)?, key),
        None => (values.clone(), path),
    };
    let Value::Map(map) = &parent else {
        return None;
    };
    match map.borrow().get(key) {
        Some(Value::Map(_)) | None => None,
        Some(v) => Some(v.clone()),
    }
}

/// Whether a subchart's version satisfies the dependency's version range (Helm's `IsCompatibleRange`:
/// false when either does not parse, an empty range included).
fn compatible(range: &str, version: &str) -> bool {
    gotmpl::sprig::semver::constraint_matches(range, version).unwrap_or(false)
}

/// Helm's `CheckDependencies`: every dependency Chart.yaml lists must be present under `charts/`.
pub(crate) fn check_dependencies(chart: &Chart) -> Result<(), Error> {
    let missing: Vec<&str> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|d| !chart.dependencies.iter().any(|c| c.name() == d.name))
        .map(|d| d.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(format!(
        "an error occurred while checking for chart dependencies. You may need to run `helm dependency build` to \
         fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: {}",
        missing.join(", ")
    )))
}

/// Helm's `ProcessDependencies`: drops disabled subcharts (recursively), applies aliases, and merges
/// `import-values` into each parent's default values.
pub(crate) fn process_dependencies(chart: &mut Chart, user_values: &Value) -> Result<(), Error> {
    process_enabled(chart, user_values, "")?;
    process_imports(chart);
    Ok(())
}

fn process_enabled(chart: &mut Chart, values: &Value, path: &str) -> Result<(), Error> {
    if chart.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let existing = std::mem::take(&mut chart.dependencies);
    // Subcharts Chart.yaml does not list stay as they are (and always enabled).
    let mut kept: Vec<Chart> = existing
        .iter()
        .filter(|c| {
            !chart
                .metadata
                .dependencies
                .iter()
                .any(|d| c.name() == d.name && compatible(&d.version, &c.metadata.version))
        })
        .cloned()
        .collect();
    for dep in &mut chart.metadata.dependencies {
        let found = existing
            .iter()
            .find(|c| c.name() == dep.name && compatible(&dep.version, &c.metadata.version));
        if let Some(found) = found {
            let mut copy = found.clone();
            if !dep.alias.is_empty() {
                copy.metadata.name = dep.alias.clone();
            }
            kept.push(copy);
        }
        if !dep.alias.is_empty() {
            dep.name = dep.alias.clone();
        }
        dep.enabled = true;
    }
    chart.dependencies = kept;
    let coalesced = bridge::coalesce_values(chart, values)?;
    apply_tags(chart, &coalesced);
    apply_conditions(chart, &coalesced, path);
    let disabled: Vec<String> = chart
        .metadata
        .dependencies
        .iter()
        .filter(|d| !d.enabled)
        .map(|d| d.name.clone())
        .collect();
    chart
        .dependencies
        .retain(|c| !disabled.iter().any(|n| n == c.name()));
    chart.metadata.dependencies.retain(|d| d.enabled);
    for child in &mut chart.dependencies {
        let child_path = format!("{path}{}.", child.name());
        process_enabled(child, &coalesced, &child_path)?;
    }
    Ok(())
}

/// `tags:`: a dependency with any true tag is enabled; with only false tags, disabled.
fn apply_tags(chart: &mut Chart, values: &Value) {
    let Some(Value::Map(tags)) = table(values, "tags") else {
        return;
    };
    let tags = tags.borrow();
    for dep in &mut chart.metadata.dependencies {
        let (mut any_true, mut any_false) = (false, false);
        for tag in &dep.tags {
            match tags.get(tag) {
                Some(Value::Bool(true)) => any_true = true,
                Some(Value::Bool(false)) => any_false = true,
                _ => {}
            }
        }
        // Only false tags disable; any true tag (or none set) enables.
        dep.enabled = any_true || !any_false;
    }
}

/// `condition:`: the first comma-separated path that holds a bool decides.
fn apply_conditions(chart: &mut Chart, values: &Value, path: &str) {
    for dep in &mut chart.metadata.dependencies {
        for condition in dep.condition.trim().split(',') {
            if condition.is_empty() {
                continue;
            }
            if let Some(Value::Bool(b)) = path_value(values, &format!("{path}{condition}")) {
                dep.enabled = b;
                break;
            }
        }
    }
}

/// Helm's `processDependencyImportValues` (merge mode): children first, then this chart.
fn process_imports(chart: &mut Chart) {
    for child in &mut chart.dependencies {
        process_imports(child);
    }
    if chart.metadata.dependencies.is_empty() {
        return;
    }
    let merged = bridge::merge_values(chart);
    let mut imported = Value::empty_map();
    for dep in &mut chart.metadata.dependencies {
        let mut normalized = Vec::new();
        for import in &dep.import_values {
            let (child, parent) = match import {
                Value::Map(map) => {
                    let map = map.borrow();
                    let text = |k: &str| {
                        map.get(k)
                            .map(|v| v.to_go_string())
                            .unwrap_or_else(|| "<nil>".to_string())
                    };
                    (text("child"), text("parent"))
                }
                Value::Str(s) => (format!("exports.{s}"), ".".to_string()),
                _ => continue,
            };
            let mut entry = Entries::new();
            entry.insert("child".into(), Value::from(child.as_str()));
            entry.insert("parent".into(), Value::from(parent.as_str()));
            normalized.push(Value::from(entry));
            let Some(found) = table(&merged, &format!("{}.{child}", dep.name)) else {
                continue;
            };
            let placed = if parent == "." {
                found
            } else {
                nest(&parent, found)
            };
            imported = bridge::merge_tables(&imported, &placed);
        }
        dep.import_values = normalized;
    }
    // Imported values rank below the parent's own: the parent's values are merged over them.
    chart.values = bridge::merge_tables(&merged, &imported);
}

/// `pathToMap`: `value` placed under the dotted `path`.
fn nest(path: &str, value: Value) -> Value {
    let mut current = value;
    for key in path.split('.').rev() {
        let mut entries = Entries::new();
        entries.insert(key.to_string(), current);
        current = Value::from(entries);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(yaml: &str) -> Value {
        crate::yaml::parse(yaml).unwrap()
    }

    #[test]
    fn path_values_skip_maps_and_missing_keys() {
        let v = values("a: {b: {c: true}, d: 1}\n");
        assert_eq!(path_value(&v, "a.b.c"), Some(Value::Bool(true)));
        assert_eq!(path_value(&v, "a.b"), None);
        assert_eq!(path_value(&v, "a.x.c"), None);
        assert!(table(&v, "a.b").is_some());
        assert!(table(&v, "a.d").is_none());
    }

    #[test]
    fn nest_places_a_value_under_a_dotted_path() {
        let nested = nest("x.y", Value::from("v"));
        assert_eq!(path_value(&nested, "x.y"), Some(Value::from("v")));
    }
}
