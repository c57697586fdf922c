//! TOML as Helm's `toToml` and `fromToml` see it: the BurntSushi/toml encoder's layout (plain keys first,
//! then `[table]`s indented two spaces per level, `[[arrays.of.tables]]`, nulls left out) and decoding into
//! values (integers stay int64).

use std::fmt::Write as _;

use gotmpl::Value;
use gotmpl::value::{Entries, go_float};

/// How floats are printed: BurntSushi/toml changed from `%f` to `%g` digits between the versions Helm 3.17
/// and Helm 4 ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TomlFloats {
    /// Helm 3.17: `1000000000000000000000.0`, `0.0000001`.
    Helm3,
    /// Helm 4: `1e+21`, `1e-07`, `1.2345675e+06`.
    Helm4,
}

/// Why a value has no TOML encoding, or a text is no TOML document; worded as BurntSushi/toml words it
/// (Helm prints the message in place of the document).
#[derive(Debug, thiserror::Error)]
pub enum TomlError {
    /// A list of tables at the top: TOML's top level is one table.
    #[error("toml: top-level values must be Go maps or structs")]
    TopLevelNotTable,
    /// A list holding a nil.
    #[error("toml: cannot encode array with nil element")]
    NilElement,
    /// A nil value where one must be written.
    #[error("toml: cannot encode a nil value")]
    NilValue,
    /// The text is not a TOML document.
    #[error("toml: {}", .0.message())]
    Parse(#[source] ::toml::de::Error),
}

/// Helm's `toToml`: the TOML encoding of `value`, or the encoder's error (Helm prints its message in place
/// of the document).
pub fn to_toml(value: &Value, floats: TomlFloats) -> Result<String, TomlError> {
    let mut encoder = Encoder {
        out: String::new(),
        floats,
    };
    match value {
        Value::Nil | Value::Missing(_) => {}
        Value::Map(_) => encoder.table_body(&[], value)?,
        Value::List(items) if is_table_array(items)? => {
            return Err(TomlError::TopLevelNotTable);
        }
        other => encoder.element(other)?,
    }
    Ok(encoder.out)
}

/// Helm's `fromToml`: a TOML document as a map (integers int64, floats float64, dates as their text).
pub fn from_toml(text: &str) -> Result<Value, TomlError> {
    let table: ::toml::Table = text.parse().map_err(TomlError::Parse)?;
    Ok(from_toml_table(&table))
}

fn from_toml_table(table: &::toml::Table) -> Value {
    Value::from(
        table
            .iter()
            .map(|(k, v)| (k.clone(), from_toml_value(v)))
            .collect::<Entries>(),
    )
}

fn from_toml_value(value: &::toml::Value) -> Value {
    match value {
        ::toml::Value::String(s) => Value::from(s.as_str()),
        ::toml::Value::Integer(i) => Value::Int64(*i),
        ::toml::Value::Float(f) => Value::Float(*f),
        ::toml::Value::Boolean(b) => Value::Bool(*b),
        ::toml::Value::Datetime(d) => Value::from(go_time_json(d)),
        ::toml::Value::Array(items) => {
            Value::from(items.iter().map(from_toml_value).collect::<Vec<_>>())
        }
        ::toml::Value::Table(table) => from_toml_table(table),
    }
}

/// How Go's `json.Marshal` prints the `time.Time` BurntSushi/toml decodes a datetime into (RFC 3339 with
/// nanoseconds, trailing zeros trimmed); local dates and times are in UTC, a bare time on 0000-01-01.
fn go_time_json(d: &::toml::value::Datetime) -> String {
    let (year, month, day) = d
        .date
        .map_or((0, 1, 1), |date| (date.year, date.month, date.day));
    let (hour, minute, second, nanos) = d
        .time
        .map_or((0, 0, 0, 0), |t| (t.hour, t.minute, t.second, t.nanosecond));
    let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    match d.offset {
        Some(::toml::value::Offset::Custom { minutes }) if minutes != 0 => {
            let sign = if minutes < 0 { '-' } else { '+' };
            let minutes = minutes.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
        }
        _ => out.push('Z'),
    }
    out
}

struct Encoder {
    out: String,
    floats: TomlFloats,
}

/// True for a non-empty list of maps (a TOML array of tables); a nil element is an error, as in
/// BurntSushi/toml.
fn is_table_array(items: &[Value]) -> Result<bool, TomlError> {
    if items.is_empty() {
        return Ok(false);
    }
    let mut all_maps = true;
    for item in items {
        if item.is_nil() {
            return Err(TomlError::NilElement);
        }
        if !matches!(item, Value::Map(_)) {
            all_maps = false;
        }
    }
    Ok(all_maps)
}

fn is_table(value: &Value) -> Result<bool, TomlError> {
    Ok(match value {
        Value::Map(_) => true,
        Value::List(items) => is_table_array(items)?,
        _ => false,
    })
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn quoted_key(key: &str) -> String {
    if is_bare_key(key) {
        key.to_string()
    } else {
        quote(key)
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn header(path: &[String]) -> String {
    path.iter()
        .map(|k| quoted_key(k))
        .collect::<Vec<_>>()
        .join(".")
}

impl Encoder {
    fn newline(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(&mut self, path: &[String]) {
        for _ in 1..path.len() {
            self.out.push_str("  ");
        }
    }

    /// The keys of a table: plain values first, then sub-tables, each group in key order.
    fn table_body(&mut self, path: &[String], value: &Value) -> Result<(), TomlError> {
        let Value::Map(map) = value else {
            return Ok(());
        };
        let map = map.borrow();
        let mut direct = Vec::new();
        let mut tables = Vec::new();
        for (key, item) in map.iter() {
            if is_table(item)? {
                tables.push((key, item));
            } else {
                direct.push((key, item));
            }
        }
        for (key, item) in direct.into_iter().chain(tables) {
            if item.is_nil() {
                continue;
            }
            let mut child = path.to_vec();
            child.push(key.clone());
            self.encode(&child, item)?;
        }
        Ok(())
    }

    fn encode(&mut self, path: &[String], value: &Value) -> Result<(), TomlError> {
        match value {
            Value::Map(_) => {
                if path.len() == 1 {
                    self.newline();
                }
                self.indent(path);
                let _ = write!(self.out, "[{}]", header(path));
                self.newline();
                self.table_body(path, value)
            }
            Value::List(items) if is_table_array(items)? => {
                for item in items.iter() {
                    self.newline();
                    self.indent(path);
                    let _ = write!(self.out, "[[{}]]", header(path));
                    self.newline();
                    self.table_body(path, item)?;
                }
                Ok(())
            }
            other => {
                self.indent(path);
                let key = path.last().map(|k| quoted_key(k)).unwrap_or_default();
                let _ = write!(self.out, "{key} = ");
                self.element(other)?;
                self.newline();
                Ok(())
            }
        }
    }

    fn float(&self, f: f64) -> String {
        if f.is_nan() {
            return if f.is_sign_negative() { "-nan" } else { "nan" }.to_string();
        }
        if f.is_infinite() {
            return if f < 0.0 { "-inf" } else { "inf" }.to_string();
        }
        let text = match self.floats {
            TomlFloats::Helm3 => format!("{f}"),
            TomlFloats::Helm4 => go_float(f),
        };
        if text.contains('.') || text.contains('e') {
            text
        } else {
            format!("{text}.0")
        }
    }

    /// An inline value: scalars, `[a, b]` arrays and `{k = v}` inline tables.
    fn element(&mut self, value: &Value) -> Result<(), TomlError> {
        match value {
            Value::Missing(_) | Value::Nil => {
                return Err(TomlError::NilValue);
            }
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Int64(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Float(f) => {
                let text = self.float(*f);
                self.out.push_str(&text);
            }
            Value::Str(s) => self.out.push_str(&quote(s)),
            Value::Object(obj) => self.out.push_str(&quote(&obj.display())),
            Value::List(items) => {
                is_table_array(items)?;
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.element(item)?;
                }
                self.out.push(']');
            }
            Value::Map(map) => {
                let map = map.borrow();
                let mut direct = Vec::new();
                let mut tables = Vec::new();
                for (key, item) in map.iter() {
                    if is_table(item)? {
                        tables.push((key, item));
                    } else {
                        direct.push((key, item));
                    }
                }
                self.out.push('{');
                let has_tables = !tables.is_empty();
                for (group, trailing_comma) in [(direct, has_tables), (tables, false)] {
                    let last = group.len();
                    for (i, (key, item)) in group.into_iter().enumerate() {
                        if item.is_nil() {
                            continue;
                        }
                        let _ = write!(self.out, "{} = ", quoted_key(key));
                        self.element(item)?;
                        if trailing_comma || i + 1 != last {
                            self.out.push_str(", ");
                        }
                    }
                }
                self.out.push('}');
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn toml_of(yaml: &str) -> String {
        to_toml(&parse(yaml).unwrap(), TomlFloats::Helm4).unwrap()
    }

    #[test]
    fn plain_keys_come_before_tables() {
        assert_eq!(
            toml_of("z: 1\ni: {j: 1, k: {l: deep}, kk: {}}\nn: null\n"),
            "z = 1.0\n\n[i]\n  j = 1.0\n  [i.k]\n    l = \"deep\"\n  [i.kk]\n"
        );
    }

    #[test]
    fn arrays_of_tables_and_inline_tables() {
        assert_eq!(
            toml_of("m: {x: [{z: 1}]}\n"),
            "[m]\n\n  [[m.x]]\n    z = 1.0\n"
        );
        assert_eq!(toml_of("l: [{a: 1}, 2]\n"), "l = [{a = 1.0}, 2.0]\n");
        assert_eq!(
            to_toml(&parse("l: [1, null]\n").unwrap(), TomlFloats::Helm4)
                .unwrap_err()
                .to_string(),
            "toml: cannot encode array with nil element"
        );
    }

    #[test]
    fn keys_and_strings_are_quoted_as_burntsushi_quotes_them() {
        assert_eq!(
            toml_of("\"\": 1\n\"a\\nb\": 2\nA-b_9: 3\ns: \"q\\\" b\\\\ t\\t \\u0001 é\"\n"),
            "\"\" = 1.0\nA-b_9 = 3.0\n\"a\\nb\" = 2.0\ns = \"q\\\" b\\\\ t\\t \\u0001 é\"\n"
        );
    }

    #[test]
    fn floats_follow_the_helm_version() {
        let v = parse("big: 1e21\nsmall: 0.0000001\nw: 100\n").unwrap();
        assert_eq!(
            to_toml(&v, TomlFloats::Helm4).unwrap(),
            "big = 1e+21\nsmall = 1e-07\nw = 100.0\n"
        );
        assert_eq!(
            to_toml(&v, TomlFloats::Helm3).unwrap(),
            "big = 1000000000000000000000.0\nsmall = 0.0000001\nw = 100.0\n"
        );
    }

    #[test]
    fn from_toml_dates_read_as_go_times_print() {
        let v = from_toml(
            "a = 1979-05-27T07:32:00Z\nb = 1979-05-27\nc = 07:32:00\nd = 1979-05-27T07:32:00.5\ne = 1979-05-27T07:32:00-07:00\n",
        )
        .unwrap();
        assert_eq!(
            gotmpl::encoding::json::to_json(&v, true, None).unwrap(),
            r#"{"a":"1979-05-27T07:32:00Z","b":"1979-05-27T00:00:00Z","c":"0000-01-01T07:32:00Z","d":"1979-05-27T07:32:00.5Z","e":"1979-05-27T07:32:00-07:00"}"#
        );
    }

    #[test]
    fn from_toml_keeps_integers() {
        let v = from_toml("a = 1\nb = 'x'\n[t]\nc = 1.5\n").unwrap();
        assert_eq!(
            gotmpl::encoding::json::to_json(&v, true, None).unwrap(),
            r#"{"a":1,"b":"x","t":{"c":1.5}}"#
        );
    }
}
