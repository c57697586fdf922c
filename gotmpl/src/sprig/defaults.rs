//! Defaults and flow helpers: `default`, `empty`, `coalesce`, `all`, `any`, `ternary`, and the JSON
//! functions (through [`crate::encoding::json`]).

use super::args::{self, at_least, take};
use crate::encoding::json;
use crate::value::FuncResult;
use crate::value::Value;

/// sprig's `empty`: nil, zero numbers, false, and empty strings, lists and maps; host objects (Go structs)
/// are never empty.
pub(crate) fn is_empty(v: &Value) -> bool {
    !v.truth()
}

/// `default DEFAULT [GIVEN]`: GIVEN unless it is empty (or absent).
pub(crate) fn default(args: Vec<Value>) -> FuncResult {
    at_least("default", &args, 1)?;
    let mut args = args.into_iter();
    let d = args.next().unwrap_or(Value::Nil);
    match args.next() {
        Some(given) if !is_empty(&given) => Ok(given),
        _ => Ok(d),
    }
}

/// `empty V`.
pub(crate) fn empty(args: Vec<Value>) -> FuncResult {
    let [v] = take("empty", args)?;
    Ok(Value::Bool(is_empty(&v)))
}

/// `coalesce V...`: the first non-empty value, or nil.
pub(crate) fn coalesce(args: Vec<Value>) -> FuncResult {
    Ok(args
        .into_iter()
        .find(|v| !is_empty(v))
        .unwrap_or(Value::Nil))
}

/// `all V...`: whether every value is non-empty.
pub(crate) fn all(args: Vec<Value>) -> FuncResult {
    Ok(Value::Bool(args.iter().all(|v| !is_empty(v))))
}

/// `any V...`: whether some value is non-empty.
pub(crate) fn any(args: Vec<Value>) -> FuncResult {
    Ok(Value::Bool(args.iter().any(|v| !is_empty(v))))
}

/// `ternary IF_TRUE IF_FALSE COND`.
pub(crate) fn ternary(args: Vec<Value>) -> FuncResult {
    let [t, f, cond] = take("ternary", args)?;
    Ok(if args::boolean(&cond)? { t } else { f })
}

/// `toJson V`: `json.Marshal`; errors give "".
pub(crate) fn to_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("toJson", args)?;
    Ok(Value::from(
        json::to_json(&v, true, None).unwrap_or_default(),
    ))
}

/// `mustToJson V`.
pub(crate) fn must_to_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("mustToJson", args)?;
    Ok(Value::from(json::to_json(&v, true, None)?))
}

/// `toPrettyJson V`: `json.MarshalIndent(v, "", "  ")`; errors give "".
pub(crate) fn to_pretty_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("toPrettyJson", args)?;
    Ok(Value::from(
        json::to_json(&v, true, Some("  ")).unwrap_or_default(),
    ))
}

/// `mustToPrettyJson V`.
pub(crate) fn must_to_pretty_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("mustToPrettyJson", args)?;
    Ok(Value::from(json::to_json(&v, true, Some("  "))?))
}

/// `toRawJson V`: JSON without HTML escaping; errors give "".
pub(crate) fn to_raw_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("toRawJson", args)?;
    Ok(Value::from(
        json::to_json(&v, false, None).unwrap_or_default(),
    ))
}

/// `mustToRawJson V`.
pub(crate) fn must_to_raw_json(args: Vec<Value>) -> FuncResult {
    let [v] = take("mustToRawJson", args)?;
    Ok(Value::from(json::to_json(&v, false, None)?))
}

/// `fromJson S`: the decoded value; errors give nil.
pub(crate) fn from_json(args: Vec<Value>) -> FuncResult {
    let [s] = take("fromJson", args)?;
    Ok(json::from_json(&args::string(&s)?).unwrap_or(Value::Nil))
}

/// `mustFromJson S`.
pub(crate) fn must_from_json(args: Vec<Value>) -> FuncResult {
    let [s] = take("mustFromJson", args)?;
    Ok(json::from_json(&args::string(&s)?)?)
}
