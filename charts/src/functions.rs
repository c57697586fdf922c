//! Helm's own data functions for chart templates (`helm.sh/helm/pkg/engine/funcs.go`): YAML, JSON and TOML
//! in and out, and `lookup`, which `helm template` answers with an empty map. Like Helm's, the `from*`
//! functions do not fail the render: a parse error comes back as `{"Error": message}` (maps) or
//! `[message]` (lists), and the `to*` functions give `""`.

use gotmpl::FuncResult;
use gotmpl::encoding::json::{from_json, to_json};
use gotmpl::sprig::args;
use gotmpl::value::Entries;
use gotmpl::{Function, Value};

use crate::toml::{TomlFloats, from_toml, to_toml};
use crate::yaml::{parse_list, parse_map, to_yaml, to_yaml_pretty};

/// Helm's data functions by template name: `toYaml`, `toYamlPretty`, `fromYaml`, `fromYamlArray`,
/// `toJson`, `fromJson`, `fromJsonArray`, `toToml`, `fromToml`, `lookup`.
pub fn helm_functions() -> Vec<(&'static str, Function)> {
    vec![
        ("toYaml", to_yaml_fn as Function),
        ("toYamlPretty", to_yaml_pretty_fn),
        ("fromYaml", from_yaml_fn),
        ("fromYamlArray", from_yaml_array_fn),
        ("toJson", to_json_fn),
        ("fromJson", from_json_fn),
        ("fromJsonArray", from_json_array_fn),
        ("toToml", to_toml_fn),
        ("fromToml", from_toml_fn),
        ("lookup", lookup_fn),
    ]
}

/// The one argument of a one-parameter function.
fn one(name: &str, args: Vec<Value>) -> FuncResult {
    let [value] = args::take(name, args)?;
    Ok(value)
}

/// The `string` argument of a one-parameter function.
fn string_arg(name: &str, args: Vec<Value>) -> FuncResult<String> {
    Ok(args::string(&one(name, args)?)?.to_string())
}

fn error_map(message: String) -> Value {
    let mut entries = Entries::new();
    entries.insert("Error".to_string(), Value::from(message));
    Value::from(entries)
}

/// `toYaml V`: sigs.k8s.io/yaml, trailing newline trimmed; `""` on error.
fn to_yaml_fn(args: Vec<Value>) -> FuncResult {
    let value = one("toYaml", args)?;
    Ok(Value::from(to_yaml(&value).unwrap_or_default()))
}

/// `toYamlPretty V`: go-yaml v3 with a two-space indent; `""` on error.
fn to_yaml_pretty_fn(args: Vec<Value>) -> FuncResult {
    let value = one("toYamlPretty", args)?;
    Ok(Value::from(to_yaml_pretty(&value).unwrap_or_default()))
}

/// `fromYaml S`: a map, or `{"Error": message}`.
fn from_yaml_fn(args: Vec<Value>) -> FuncResult {
    let text = string_arg("fromYaml", args)?;
    Ok(parse_map(&text).unwrap_or_else(|e| error_map(e.message().to_string())))
}

/// `fromYamlArray S`: a list, or `[message]`.
fn from_yaml_array_fn(args: Vec<Value>) -> FuncResult {
    let text = string_arg("fromYamlArray", args)?;
    Ok(parse_list(&text).unwrap_or_else(|e| Value::from(vec![Value::from(e.message())])))
}

/// `toJson V`: `json.Marshal`; `""` on error.
fn to_json_fn(args: Vec<Value>) -> FuncResult {
    let value = one("toJson", args)?;
    Ok(Value::from(to_json(&value, true, None).unwrap_or_default()))
}

/// Why `fromJson` or `fromJsonArray` gives its error value instead of data; worded as Go's `encoding/json`.
#[derive(Debug, thiserror::Error)]
enum FromJsonError {
    /// The text is not JSON (the decoder's message).
    #[error("{0}")]
    Syntax(String),
    /// Valid JSON of another kind than asked for.
    #[error("json: cannot unmarshal {found} into Go value of type {target}")]
    WrongKind {
        /// What the text holds: `array`, `object`, `string`, `bool`, `number`.
        found: &'static str,
        /// The Go type asked for.
        target: &'static str,
    },
}

/// Go's `json.Unmarshal` of `text` into a `map[string]interface{}` or `[]interface{}` (`want_list`).
fn json_into(text: &str, want_list: bool) -> Result<Value, FromJsonError> {
    let value = from_json(text).map_err(FromJsonError::Syntax)?;
    let (target, kind) = if want_list {
        ("[]interface {}", "list")
    } else {
        ("map[string]interface {}", "map")
    };
    match (&value, kind) {
        (Value::Map(_), "map") | (Value::List(_), "list") => Ok(value),
        // JSON null leaves Go's map or slice nil, which prints as `null`.
        (Value::Nil, _) => Ok(Value::Nil),
        (other, _) => {
            let found = match other {
                Value::List(_) => "array",
                Value::Map(_) => "object",
                Value::Str(_) => "string",
                Value::Bool(_) => "bool",
                _ => "number",
            };
            Err(FromJsonError::WrongKind { found, target })
        }
    }
}

/// `fromJson S`: a map, or `{"Error": message}`.
fn from_json_fn(args: Vec<Value>) -> FuncResult {
    let text = string_arg("fromJson", args)?;
    Ok(json_into(&text, false).unwrap_or_else(|e| error_map(e.to_string())))
}

/// `fromJsonArray S`: a list, or `[message]`.
fn from_json_array_fn(args: Vec<Value>) -> FuncResult {
    let text = string_arg("fromJsonArray", args)?;
    Ok(json_into(&text, true).unwrap_or_else(|e| Value::from(vec![Value::from(e.to_string())])))
}

/// `toToml V`: the TOML document, or the encoder's error message in its place.
fn to_toml_fn(args: Vec<Value>) -> FuncResult {
    let value = one("toToml", args)?;
    Ok(Value::from(
        to_toml(&value, TomlFloats::Helm4).unwrap_or_else(|e| e.to_string()),
    ))
}

/// `fromToml S`: a map, or `{"Error": message}`.
fn from_toml_fn(args: Vec<Value>) -> FuncResult {
    let text = string_arg("fromToml", args)?;
    Ok(from_toml(&text).unwrap_or_else(|e| error_map(e.to_string())))
}

/// `lookup APIVERSION KIND NAMESPACE NAME`: `helm template` has no cluster, so always an empty map.
fn lookup_fn(args: Vec<Value>) -> FuncResult {
    let params: [Value; 4] = args::take("lookup", args)?;
    args::strings(&params)?;
    Ok(Value::empty_map())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Value>) -> FuncResult {
        let (_, f) = helm_functions()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        f(args)
    }

    fn json(v: &Value) -> String {
        to_json(v, true, None).unwrap()
    }

    #[test]
    fn from_functions_report_errors_in_the_result() {
        let v = call("fromYaml", vec![Value::from("a: [")]).unwrap();
        assert!(
            json(&v).starts_with(r#"{"Error":"error converting YAML to JSON: yaml: line "#),
            "{}",
            json(&v)
        );
        let v = call("fromYaml", vec![Value::from("- a")]).unwrap();
        assert_eq!(
            json(&v),
            r#"{"Error":"error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"}"#
        );
        let v = call("fromYamlArray", vec![Value::from("a: 1")]).unwrap();
        assert_eq!(
            json(&v),
            r#"["error unmarshaling JSON: while decoding JSON: json: cannot unmarshal object into Go value of type []interface {}"]"#
        );
        let v = call("fromJson", vec![Value::from("{x")]).unwrap();
        assert_eq!(
            json(&v),
            r#"{"Error":"invalid character 'x' looking for beginning of object key string"}"#
        );
        let v = call("fromJsonArray", vec![Value::from("{x")]).unwrap();
        assert_eq!(
            json(&v),
            r#"["invalid character 'x' looking for beginning of object key string"]"#
        );
    }

    #[test]
    fn to_functions_write_text() {
        let v = call("fromToml", vec![Value::from("a = 1\nb = 'x'")]).unwrap();
        assert_eq!(json(&v), r#"{"a":1,"b":"x"}"#);
        assert_eq!(
            call("toToml", vec![v.clone()]).unwrap(),
            Value::from("a = 1\nb = \"x\"\n")
        );
        assert_eq!(
            call("toYaml", vec![v.clone()]).unwrap(),
            Value::from("a: 1\nb: x")
        );
        assert_eq!(
            call("toJson", vec![v]).unwrap(),
            Value::from(r#"{"a":1,"b":"x"}"#)
        );
        assert_eq!(
            call("toYaml", vec![Value::Float(f64::NAN)]).unwrap(),
            Value::from("")
        );
    }

    #[test]
    fn lookup_finds_nothing() {
        let args = ["v1", "Pod", "", ""].map(Value::from).to_vec();
        assert_eq!(call("lookup", args).unwrap(), Value::empty_map());
        assert_eq!(
            call("fromYaml", vec![Value::Int(1)]).unwrap_err().message(),
            "wrong type for value; expected string; got int"
        );
    }
}
