//! The calls this crate's loader and renderer make into the YAML and values modules, in one place.

use gotmpl::{Function, Value};

use crate::Error;
use crate::chart::Chart;
use crate::values::{self, ChartValues};
use crate::yaml::{self, ValuesDocuments, YamlError};

/// Parses one YAML document (Chart.yaml, a manifest's head) as Helm reads it; an empty document is `Nil`.
/// Errors are worded as Helm's (`error converting YAML to JSON: yaml: line 2: ...`).
pub(crate) fn parse_yaml(text: &str) -> Result<Value, YamlError> {
    yaml::parse(text)
}

/// Parses a values file (values.yaml, `-f`) as helm v4 does: every document merged in order; a map.
pub(crate) fn parse_values(text: &str) -> Result<Value, YamlError> {
    yaml::parse_values(text, ValuesDocuments::Merged)
}

/// Helm's `toYaml` of a value, without the trailing newline.
pub(crate) fn to_yaml(value: &Value) -> String {
    yaml::to_yaml(value).unwrap_or_default()
}

/// The chart tree as the values module sees it: names (aliases applied), defaults, subcharts.
pub(crate) fn chart_values(chart: &Chart) -> ChartValues {
    ChartValues {
        name: chart.name().to_string(),
        defaults: chart.values.clone(),
        subcharts: chart.dependencies.iter().map(chart_values).collect(),
    }
}

/// Helm's `CoalesceValues(chart, values)`: `values` over the defaults of the chart and its subcharts.
pub(crate) fn coalesce_values(chart: &Chart, values: &Value) -> Result<Value, Error> {
    values::coalesce(&chart_values(chart), values).map_err(|e| Error::new(e.to_string()))
}

/// Helm's `MergeValues(chart, nil)`: the defaults of the chart and its subcharts, together.
/// (Helm keeps `null` defaults here; the values module's coalescing drops them.)
pub(crate) fn merge_values(chart: &Chart) -> Value {
    values::coalesce(&chart_values(chart), &Value::empty_map())
        .unwrap_or_else(|_| Value::empty_map())
}

/// Helm's `MergeTables(dst, src)` as a new map: `dst` wins, `src` fills in, `null`s kept.
pub(crate) fn merge_tables(dst: &Value, src: &Value) -> Value {
    values::merge_tables(dst, src)
}

/// The functions Helm adds to the engine's (`toYaml`, `fromYaml`, `toJson`, `lookup`, ...).
pub(crate) fn helm_functions() -> Vec<(&'static str, Function)> {
    crate::functions::helm_functions()
}
