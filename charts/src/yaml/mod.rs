//! YAML as Helm reads and writes it.
//!
//! Reading follows sigs.k8s.io/yaml: go-yaml v2 decodes YAML 1.1 (`yes`/`no`/`on`/`off` are booleans,
//! `0777` is octal, `1_000` is 1000, anchors, aliases and `<<` merges work, a later duplicate key wins),
//! then a JSON round trip makes every number a float64 and every key a string (`1: a` has the key `"1"`,
//! `true: x` the key `"true"`).
//!
//! Writing follows Helm's `toYaml` (sigs.k8s.io/yaml `Marshal`: `json.Marshal`, then go-yaml v2): keys in
//! go-yaml's natural order, sequences not indented under their key, strings quoted only when they must be,
//! multi-line strings as `|` blocks, long scalars wrapped at 80 columns. [`to_yaml_pretty`] is Helm's
//! `toYamlPretty` (go-yaml v3, two-space indent, sequences indented, no wrapping).
//!
//! ```
//! let v = charts::yaml::parse("a: yes\nb: [1, 0x10]\n").unwrap();
//! assert_eq!(charts::yaml::to_yaml(&v).unwrap(), "a: true\nb:\n- 1\n- 16");
//! ```

mod emit;
mod load;
mod resolve;

use gotmpl::Value;

/// A YAML text Helm would refuse, with Helm's wording (`error converting YAML to JSON: yaml: line 3: ...`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// The 1-based line of the problem, when the parser knows it.
    pub line: Option<usize>,
    message: String,
}

impl YamlError {
    /// A syntax error from the YAML parser.
    pub(crate) fn syntax(line: Option<usize>, info: &str) -> YamlError {
        let message = match line {
            Some(line) => format!("error converting YAML to JSON: yaml: line {line}: {info}"),
            None => format!("error converting YAML to JSON: yaml: {info}"),
        };
        YamlError { line, message }
    }

    /// A document YAML accepts but JSON cannot carry (null keys, infinities).
    pub(crate) fn conversion(info: String) -> YamlError {
        YamlError {
            line: None,
            message: format!("error converting YAML to JSON: {info}"),
        }
    }

    /// A document of the wrong shape for its Go target (`cannot unmarshal array into Go value of type
    /// map[string]interface {}`).
    fn wrong_shape(found: &Value, target: &str) -> YamlError {
        let kind = match found {
            Value::List(_) => "array",
            Value::Map(_) => "object",
            Value::Str(_) => "string",
            Value::Bool(_) => "bool",
            _ => "number",
        };
        YamlError {
            line: None,
            message: format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {kind} into Go value of type {target}"
            ),
        }
    }

    /// Helm 4's wording for an error in one document of a values file.
    fn in_document(self) -> YamlError {
        YamlError {
            line: self.line,
            message: format!("cannot unmarshal yaml document: {}", self.message),
        }
    }

    /// Helm's message for the error.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// How a values file with several YAML documents is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuesDocuments {
    /// Helm 3: only the first document counts.
    First,
    /// Helm 4: every document is read and merged over the ones before it (maps merge deeply, anything
    /// else replaces); each must be a map. Errors start `cannot unmarshal yaml document: `.
    Merged,
}

/// Reads the first YAML document of `text` as Helm reads it into `interface{}` (`Nil` when there is none).
pub fn parse(text: &str) -> Result<Value, YamlError> {
    Ok(load::documents(text, true)?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

/// Reads every YAML document of `text` (a rendered manifest stream); empty documents are `Nil`.
pub fn parse_all(text: &str) -> Result<Vec<Value>, YamlError> {
    load::documents(text, false)
}

/// Reads `text` into a map as `yaml.Unmarshal(text, &map[string]interface{}{})` does (Helm's `fromYaml`):
/// an empty document is an empty map, a list or scalar is an error.
pub fn parse_map(text: &str) -> Result<Value, YamlError> {
    match parse(text)? {
        Value::Nil => Ok(Value::empty_map()),
        map @ Value::Map(_) => Ok(map),
        other => Err(YamlError::wrong_shape(&other, "map[string]interface {}")),
    }
}

/// Reads `text` into a list as `yaml.Unmarshal(text, &[]interface{}{})` does (Helm's `fromYamlArray`).
pub fn parse_list(text: &str) -> Result<Value, YamlError> {
    match parse(text)? {
        Value::Nil => Ok(Value::from(Vec::new())),
        list @ Value::List(_) => Ok(list),
        other => Err(YamlError::wrong_shape(&other, "[]interface {}")),
    }
}

/// Reads a values file (`values.yaml`, `-f FILE`): a map, empty when the file has no content.
pub fn parse_values(text: &str, documents: ValuesDocuments) -> Result<Value, YamlError> {
    match documents {
        ValuesDocuments::First => parse_map(text),
        ValuesDocuments::Merged => {
            let merged = Value::empty_map();
            for chunk in split_documents(text).map_err(YamlError::in_document)? {
                match parse_map(chunk) {
                    Ok(doc) => merge_documents(&merged, &doc),
                    Err(err) => return Err(err.in_document()),
                }
            }
            Ok(merged)
        }
    }
}

/// Splits a stream at `---` lines as Kubernetes' `YAMLReader` does for Helm 4 (textually: a `---` line may
/// only be followed by spaces or a comment); empty chunks are dropped.
fn split_documents(text: &str) -> Result<Vec<&str>, YamlError> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("---") {
            let trimmed = rest.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                return Err(YamlError {
                    line: None,
                    message: format!(
                        "invalid Yaml document separator: {}",
                        line.trim_end_matches(['\n', '\r'])
                    ),
                });
            }
            if offset > start {
                chunks.push(&text[start..offset]);
            }
            start = offset + line.len();
        }
        offset += line.len();
    }
    if text.len() > start {
        chunks.push(&text[start..]);
    }
    Ok(chunks)
}

/// Merges map `src` into map `dst`: nested maps merge, anything else replaces.
fn merge_documents(dst: &Value, src: &Value) {
    let (Value::Map(dst), Value::Map(src)) = (dst, src) else {
        return;
    };
    for (key, value) in src.borrow().iter() {
        let existing = dst.borrow().get(key).cloned();
        match (existing, value) {
            (Some(existing @ Value::Map(_)), Value::Map(_)) => merge_documents(&existing, value),
            _ => {
                dst.borrow_mut().insert(key.clone(), value.clone());
            }
        }
    }
}

/// sigs.k8s.io/yaml `Marshal`: JSON first, then go-yaml v2 with its defaults.
const SIGS_YAML: emit::Layout = emit::Layout {
    indentless_sequences: true,
    width: Some(80),
    json_round_trip: true,
    tabs_in_blocks: false,
    letters_after_digits_first: false,
};

/// go-yaml v3's encoder with `SetIndent(2)`, as `toYamlPretty` uses it.
const GO_YAML_V3_PRETTY: emit::Layout = emit::Layout {
    indentless_sequences: false,
    width: None,
    json_round_trip: false,
    tabs_in_blocks: true,
    letters_after_digits_first: true,
};

pub use emit::EmitError;

/// Why sigs.k8s.io/yaml cannot marshal a value (it goes through JSON first), worded as it words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error marshaling into JSON: {0}")]
pub struct MarshalError(#[source] pub EmitError);

/// Helm's `toYaml`: sigs.k8s.io/yaml `Marshal` with the trailing newline removed.
pub fn to_yaml(value: &Value) -> Result<String, MarshalError> {
    let layout = SIGS_YAML;
    let text = emit::emit(value, layout).map_err(MarshalError)?;
    Ok(text.strip_suffix('\n').map(str::to_string).unwrap_or(text))
}

/// sigs.k8s.io/yaml `Marshal` as is, trailing newline included (what `helm get values` and `--set`
/// round trips print).
pub fn marshal(value: &Value) -> Result<String, MarshalError> {
    let layout = SIGS_YAML;
    emit::emit(value, layout).map_err(MarshalError)
}

/// Helm's `toYamlPretty`: go-yaml v3 with a two-space indent, trailing newline removed.
pub fn to_yaml_pretty(value: &Value) -> Result<String, EmitError> {
    let layout = GO_YAML_V3_PRETTY;
    let text = emit::emit(value, layout)?;
    Ok(text.strip_suffix('\n').map(str::to_string).unwrap_or(text))
}

#[cfg(test)]
mod tests;
