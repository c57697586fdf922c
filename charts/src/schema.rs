//! `values.schema.json` validation: the JSON Schema keywords charts use, checked against the coalesced
//! values, with errors laid out and worded as helm v4 (santhosh-tekuri/jsonschema v6) prints them.

use std::collections::BTreeSet;

use gotmpl::Value;
use serde_json::Value as Json;

use crate::chart::Chart;

/// One failed check, at an instance location, with the checks beneath it that explain it.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    location: String,
    message: String,
    causes: Vec<Failure>,
}

impl Failure {
    fn new(location: &str, message: String) -> Failure {
        Failure {
            location: location.to_string(),
            message,
            causes: Vec::new(),
        }
    }

    fn write(&self, depth: usize, out: &mut String) {
        out.push_str(&"  ".repeat(depth));
        out.push_str(&format!("- at '{}': {}\n", self.location, self.message));
        for cause in &self.causes {
            cause.write(depth + 1, out);
        }
    }
}

/// The errors of one subschema, as the parent reports them: one error as it is, several as a group.
fn grouped(location: &str, mut failures: Vec<Failure>) -> Option<Failure> {
    match failures.len() {
        0 => None,
        1 => failures.pop(),
        _ => Some(Failure {
            location: location.to_string(),
            message: "validation failed".to_string(),
            causes: failures,
        }),
    }
}

/// Validates `values` against the chart's schema and its subcharts' (each with its own values); the error
/// is Helm's text after `values don't meet the specifications of the schema(s) in the following chart(s):`.
pub(crate) fn validate_chart(chart: &Chart, values: &Value) -> Result<(), String> {
    let mut out = String::new();
    if let Some(schema) = &chart.schema
        && let Err(e) = validate_single(values, schema)
    {
        out.push_str(&format!("{}:\n{e}", chart.name()));
    }
    for sub in &chart.dependencies {
        let Value::Map(map) = values else { continue };
        let raw = map.borrow().get(sub.name()).cloned();
        match raw {
            None | Some(Value::Nil) => {}
            Some(sub_values @ Value::Map(_)) => {
                if let Err(e) = validate_chart(sub, &sub_values) {
                    out.push_str(&e);
                }
            }
            Some(other) => out.push_str(&format!(
                "{}:\ninvalid type for values: expected object (map), got {}\n",
                sub.name(),
                other.type_name()
            )),
        }
    }
    if out.is_empty() { Ok(()) } else { Err(out) }
}

/// Validates values against one schema document; the error lists the failures, one `- at` line each.
fn validate_single(values: &Value, schema: &[u8]) -> Result<(), String> {
    let schema: Json =
        serde_json::from_slice(schema).map_err(|e| format!("invalid values.schema.json: {e}\n"))?;
    let failures = Validator { root: &schema }.validate(&schema, values, "");
    if failures.is_empty() {
        return Ok(());
    }
    let mut out = String::new();
    for failure in &failures {
        failure.write(0, &mut out);
    }
    Err(out)
}

struct Validator<'a> {
    root: &'a Json,
}

/// JSON Schema's name for the type of a value.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Nil | Value::Missing(_) => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::Int64(_) | Value::Float(_) => "number",
        Value::Str(_) => "string",
        Value::List(_) => "array",
        Value::Map(_) | Value::Object(_) => "object",
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Int(i) | Value::Int64(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn is_integer(value: &Value) -> bool {
    number(value).is_some_and(|n| n.fract() == 0.0)
}

fn matches_type(value: &Value, name: &str) -> bool {
    match name {
        "integer" => is_integer(value),
        other => type_of(value) == other,
    }
}

/// A number as the validator's English printer writes it: thousands grouped with commas.
fn show_number(n: f64) -> String {
    let text = format!("{n}");
    let (sign, digits) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |d| ("-", d));
    let (int, frac) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn json_number(json: &Json) -> Option<f64> {
    json.as_f64()
}

/// A JSON value quoted as the validator quotes wanted values: strings in single quotes.
fn show_json(json: &Json) -> String {
    match json {
        Json::String(s) => format!("'{s}'"),
        Json::Number(n) => n.as_f64().map(show_number).unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// Whether a value equals a JSON value (numbers by value).
fn equals(value: &Value, json: &Json) -> bool {
    match (value, json) {
        (Value::Nil | Value::Missing(_), Json::Null) => true,
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Str(a), Json::String(b)) => **a == **b,
        (v, Json::Number(n)) => number(v).is_some_and(|x| Some(x) == n.as_f64()),
        (Value::List(items), Json::Array(wanted)) => {
            items.len() == wanted.len() && items.iter().zip(wanted).all(|(a, b)| equals(a, b))
        }
        (Value::Map(map), Json::Object(wanted)) => {
            let map = map.borrow();
            map.len() == wanted.len()
                && wanted
                    .iter()
                    .all(|(k, w)| map.get(k).is_some_and(|v| equals(v, w)))
        }
        _ => false,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn pointer(location: &str, key: &str) -> String {
    format!("{location}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn quoted_list<'s>(items: impl Iterator<Item = &'s str>) -> String {
    items
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Validator<'_> {
    /// Resolves a local `$ref` (`#`, `#/definitions/x`, `#/$defs/x`).
    fn resolve(&self, reference: &str) -> Option<&Json> {
        let path = reference.strip_prefix('#')?;
        if path.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(path)
    }

    /// The failures of `value` against `schema` at `location`, in the validator's keyword order.
    fn validate(&self, schema: &Json, value: &Value, location: &str) -> Vec<Failure> {
        let mut out = Vec::new();
        let s = match schema {
            Json::Bool(true) => return out,
            Json::Bool(false) => return vec![Failure::new(location, "false schema".to_string())],
            Json::Object(s) => s,
            _ => return out,
        };
        if let Some(Json::String(reference)) = s.get("$ref")
            && let Some(target) = self.resolve(reference)
        {
            out.extend(self.validate(target, value, location));
        }
        if let Some(types) = s.get("type") {
            let wanted: Vec<&str> = match types {
                Json::String(t) => vec![t.as_str()],
                Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            if !wanted.is_empty() && !wanted.iter().any(|t| matches_type(value, t)) {
                const ORDER: [&str; 7] = [
                    "null", "boolean", "number", "integer", "string", "array", "object",
                ];
                let want: Vec<&str> = ORDER
                    .iter()
                    .copied()
                    .filter(|t| wanted.contains(t))
                    .collect();
                out.push(Failure::new(
                    location,
                    format!("got {}, want {}", type_of(value), want.join(" or ")),
                ));
                return out;
            }
        }
        if let Some(wanted) = s.get("const")
            && !equals(value, wanted)
        {
            out.push(Failure::new(
                location,
                format!("value must be {}", show_json(wanted)),
            ));
        }
        if let Some(Json::Array(allowed)) = s.get("enum")
            && !allowed.iter().any(|a| equals(value, a))
        {
            let simple = allowed.iter().all(|a| a.is_string() || a.is_number());
            let message = match allowed.as_slice() {
                [one] if simple => format!("value must be {}", show_json(one)),
                _ if simple => {
                    format!(
                        "value must be one of {}",
                        allowed.iter().map(show_json).collect::<Vec<_>>().join(", ")
                    )
                }
                _ => "'enum' failed".to_string(),
            };
            out.push(Failure::new(location, message));
        }
        if let Some(n) = number(value) {
            self.numeric(s, n, location, &mut out);
        }
        if let Value::Str(text) = value {
            self.string(s, text, location, &mut out);
        }
        if let Value::List(items) = value {
            self.array(s, items, location, &mut out);
        }
        if let Value::Map(map) = value {
            let entries: Vec<(String, Value)> = map
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.object(s, &entries, location, &mut out);
        }
        self.combinators(s, value, location, &mut out);
        out
    }

    fn numeric(
        &self,
        s: &serde_json::Map<String, Json>,
        n: f64,
        location: &str,
        out: &mut Vec<Failure>,
    ) {
        let bound = |key: &str| s.get(key).and_then(json_number);
        let fail = |key: &str, want: f64| {
            Failure::new(
                location,
                format!("{key}: got {}, want {}", show_number(n), show_number(want)),
            )
        };
        if let Some(min) = bound("minimum")
            && n < min
        {
            out.push(fail("minimum", min));
        }
        if let Some(max) = bound("maximum")
            && n > max
        {
            out.push(fail("maximum", max));
        }
        if let Some(min) = bound("exclusiveMinimum")
            && n <= min
        {
            out.push(fail("exclusiveMinimum", min));
        }
        if let Some(max) = bound("exclusiveMaximum")
            && n >= max
        {
            out.push(fail("exclusiveMaximum", max));
        }
        if let Some(divisor) = bound("multipleOf")
            && divisor != 0.0
            && (n / divisor).fract() != 0.0
        {
            out.push(fail("multipleOf", divisor));
        }
    }

    fn string(
        &self,
        s: &serde_json::Map<String, Json>,
        text: &str,
        location: &str,
        out: &mut Vec<Failure>,
    ) {
        let length = text.chars().count() as f64;
        count_bounds(
            s,
            [("minLength", true), ("maxLength", false)],
            length,
            location,
            out,
        );
        if let Some(Json::String(pattern)) = s.get("pattern")
            && let Ok(re) = regex::Regex::new(pattern)
            && !re.is_match(text)
        {
            out.push(Failure::new(
                location,
                format!("'{text}' does not match pattern '{pattern}'"),
            ));
        }
    }

    fn array(
        &self,
        s: &serde_json::Map<String, Json>,
        items: &[Value],
        location: &str,
        out: &mut Vec<Failure>,
    ) {
        let count = items.len() as f64;
        count_bounds(
            s,
            [("minItems", true), ("maxItems", false)],
            count,
            location,
            out,
        );
        if s.get("uniqueItems") == Some(&Json::Bool(true)) {
            'outer: for i in 0..items.len() {
                for j in i + 1..items.len() {
                    if values_equal(&items[i], &items[j]) {
                        out.push(Failure::new(
                            location,
                            format!("items at {i} and {j} are equal"),
                        ));
                        break 'outer;
                    }
                }
            }
        }
        match s.get("items") {
            Some(Json::Array(tuple)) => {
                for (i, item) in items.iter().enumerate() {
                    let here = pointer(location, &i.to_string());
                    let schema = match tuple.get(i) {
                        Some(schema) => schema,
                        None => match s.get("additionalItems") {
                            Some(extra) => extra,
                            None => continue,
                        },
                    };
                    out.extend(grouped(&here, self.validate(schema, item, &here)));
                }
            }
            Some(schema) => {
                for (i, item) in items.iter().enumerate() {
                    let here = pointer(location, &i.to_string());
                    out.extend(grouped(&here, self.validate(schema, item, &here)));
                }
            }
            None => {}
        }
        if let Some(contains) = s.get("contains")
            && !items.iter().enumerate().any(|(i, item)| {
                self.validate(contains, item, &pointer(location, &i.to_string()))
                    .is_empty()
            })
        {
            out.push(Failure::new(
                location,
                "no items match contains schema".to_string(),
            ));
        }
    }

    fn object(
        &self,
        s: &serde_json::Map<String, Json>,
        entries: &[(String, Value)],
        location: &str,
        out: &mut Vec<Failure>,
    ) {
        let count = entries.len() as f64;
        count_bounds(
            s,
            [("maxProperties", false), ("minProperties", true)],
            count,
            location,
            out,
        );
        let has = |key: &str| entries.iter().any(|(k, _)| k == key);
        if let Some(Json::Array(required)) = s.get("required") {
            let missing: Vec<&str> = required
                .iter()
                .filter_map(Json::as_str)
                .filter(|k| !has(k))
                .collect();
            match missing.len() {
                0 => {}
                1 => out.push(Failure::new(
                    location,
                    format!("missing property '{}'", missing[0]),
                )),
                _ => out.push(Failure::new(
                    location,
                    format!("missing properties {}", quoted_list(missing.into_iter())),
                )),
            }
        }
        if let Some(Json::Object(dependencies)) = s.get("dependencies") {
            for (key, dependency) in dependencies {
                if !has(key) {
                    continue;
                }
                match dependency {
                    Json::Array(needed) => {
                        let missing: Vec<&str> = needed
                            .iter()
                            .filter_map(Json::as_str)
                            .filter(|k| !has(k))
                            .collect();
                        if !missing.is_empty() {
                            out.push(Failure::new(
                                location,
                                format!(
                                    "properties {} required, if '{key}' exists",
                                    quoted_list(missing.into_iter())
                                ),
                            ));
                        }
                    }
                    schema => {
                        let value = Value::from(
                            entries.iter().cloned().collect::<gotmpl::value::Entries>(),
                        );
                        out.extend(self.validate(schema, &value, location));
                    }
                }
            }
        }
        let properties = s.get("properties").and_then(Json::as_object);
        let patterns: Vec<(regex::Regex, &Json)> = s
            .get("patternProperties")
            .and_then(Json::as_object)
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| regex::Regex::new(k).ok().map(|re| (re, v)))
                    .collect()
            })
            .unwrap_or_default();
        let mut additional: BTreeSet<&str> = BTreeSet::new();
        for (key, value) in entries {
            let here = pointer(location, key);
            let mut matched = false;
            if let Some(schema) = properties.and_then(|p| p.get(key)) {
                matched = true;
                out.extend(grouped(&here, self.validate(schema, value, &here)));
            }
            for (re, schema) in &patterns {
                if re.is_match(key) {
                    matched = true;
                    out.extend(grouped(&here, self.validate(schema, value, &here)));
                }
            }
            if !matched {
                match s.get("additionalProperties") {
                    Some(Json::Bool(false)) => {
                        additional.insert(key);
                    }
                    Some(schema @ Json::Object(_)) => {
                        out.extend(grouped(&here, self.validate(schema, value, &here)))
                    }
                    _ => {}
                }
            }
        }
        if !additional.is_empty() {
            out.push(Failure::new(
                location,
                format!(
                    "additional properties {} not allowed",
                    quoted_list(additional.into_iter())
                ),
            ));
        }
        if let Some(names) = s.get("propertyNames") {
            for (key, _) in entries {
                let here = pointer(location, key);
                out.extend(grouped(
                    &here,
                    self.validate(names, &Value::from(key.as_str()), &here),
                ));
            }
        }
    }

    fn combinators(
        &self,
        s: &serde_json::Map<String, Json>,
        value: &Value,
        location: &str,
        out: &mut Vec<Failure>,
    ) {
        let subschemas = |key: &str| {
            s.get(key)
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let all = subschemas("allOf");
        if !all.is_empty() {
            let causes: Vec<Failure> = all
                .iter()
                .filter_map(|sub| grouped(location, self.validate(sub, value, location)))
                .collect();
            if !causes.is_empty() {
                out.push(Failure {
                    location: location.to_string(),
                    message: "'allOf' failed".to_string(),
                    causes,
                });
            }
        }
        let any = subschemas("anyOf");
        if !any.is_empty() {
            let results: Vec<Vec<Failure>> = any
                .iter()
                .map(|sub| self.validate(sub, value, location))
                .collect();
            if results.iter().all(|r| !r.is_empty()) {
                let causes = results
                    .into_iter()
                    .filter_map(|r| grouped(location, r))
                    .collect();
                out.push(Failure {
                    location: location.to_string(),
                    message: "'anyOf' failed".to_string(),
                    causes,
                });
            }
        }
        let one = subschemas("oneOf");
        if !one.is_empty() {
            let results: Vec<Vec<Failure>> = one
                .iter()
                .map(|sub| self.validate(sub, value, location))
                .collect();
            let matched: Vec<String> = results
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_empty())
                .map(|(i, _)| i.to_string())
                .collect();
            if matched.is_empty() {
                let causes = results
                    .into_iter()
                    .filter_map(|r| grouped(location, r))
                    .collect();
                out.push(Failure {
                    location: location.to_string(),
                    message: "'oneOf' failed, none matched".to_string(),
                    causes,
                });
            } else if matched.len() > 1 {
                out.push(Failure::new(
                    location,
                    format!("'oneOf' failed, subschemas {} matched", matched.join(", ")),
                ));
            }
        }
        if let Some(not) = s.get("not")
            && self.validate(not, value, location).is_empty()
        {
            out.push(Failure::new(location, "'not' failed".to_string()));
        }
        if let Some(condition) = s.get("if") {
            let branch = if self.validate(condition, value, location).is_empty() {
                s.get("then")
            } else {
                s.get("else")
            };
            if let Some(branch) = branch {
                out.extend(self.validate(branch, value, location));
            }
        }
    }
}

/// Size keywords (`minLength`/`maxLength`, `minItems`/`maxItems`, `minProperties`/`maxProperties`), checked in the
/// order given: `(keyword, true)` fails when `count` is below its bound, `(keyword, false)` when above.
fn count_bounds(
    s: &serde_json::Map<String, Json>,
    keywords: [(&str, bool); 2],
    count: f64,
    location: &str,
    out: &mut Vec<Failure>,
) {
    for (keyword, is_minimum) in keywords {
        if let Some(bound) = s.get(keyword).and_then(json_number)
            && (if is_minimum {
                count < bound
            } else {
                count > bound
            })
        {
            out.push(Failure::new(
                location,
                format!(
                    "{keyword}: got {}, want {}",
                    show_number(count),
                    show_number(bound)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schema: &str, values: &str) -> String {
        let values = crate::yaml::parse(values).unwrap();
        match validate_single(&values, schema.as_bytes()) {
            Ok(()) => String::new(),
            Err(e) => e,
        }
    }

    #[test]
    fn failures_are_worded_as_helm_v4_words_them() {
        let schema = r#"{"type":"object","required":["name","port"],"properties":{
            "port":{"type":"integer","maximum":65535},
            "mode":{"enum":["a","b"]},
            "extra":{"type":"object","additionalProperties":false,"properties":{"x":{"type":"boolean"}}}}}"#;
        assert_eq!(
            check(schema, "{}"),
            "- at '': missing properties 'name', 'port'\n"
        );
        assert_eq!(
            check(schema, "name: n\nport: 70000\nmode: c\n"),
            "- at '/mode': value must be one of 'a', 'b'\n- at '/port': maximum: got 70,000, want 65,535\n"
        );
        assert_eq!(
            check(schema, "name: n\nport: 1\nextra: {x: s, z: 1}\n"),
            "- at '/extra': validation failed\n  - at '/extra/x': got string, want boolean\n  - at '/extra': additional properties 'z' not allowed\n"
        );
        assert_eq!(
            check(
                r#"{"properties":{"h":{"type":["integer","null"]}}}"#,
                "h: 1.5"
            ),
            "- at '/h': got number, want null or integer\n"
        );
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(show_number(70000.0), "70,000");
        assert_eq!(show_number(1234567.5), "1,234,567.5");
        assert_eq!(show_number(-1000.0), "-1,000");
        assert_eq!(show_number(3.0), "3");
    }
}
