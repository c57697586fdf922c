//! Argument checks shared by the sprig functions and by hosts' own template functions (Helm's `toYaml`,
//! `fromJson`, ...): Go's arity errors and the static parameter types that `text/template` enforces before
//! a function runs (`string`, `int`, `bool`, `map[string]interface {}`). The messages are Go's, and the
//! engine shows them without the `error calling NAME:` prefix, as Go does.
//!
//! A function receives nil for a missing value, so a nil argument is reported as Go reports a missing
//! map key (`got interface {}`).

use std::rc::Rc;

use crate::value::{FuncResult, Map, Value};

/// A value as a Go container stores it: a missing key becomes a plain nil.
pub fn stored(v: Value) -> Value {
    if v.is_nil() { Value::Nil } else { v }
}

/// Exactly `N` arguments, or Go's "wrong number of args" error.
pub fn take<const N: usize>(name: &str, args: Vec<Value>) -> FuncResult<[Value; N]> {
    let got = args.len();
    args.try_into()
        .map_err(|_| format!("wrong number of args for {name}: want {N} got {got}").into())
}

/// At least `min` arguments (a variadic Go function), or Go's "wrong number of args" error.
pub fn at_least(name: &str, args: &[Value], min: usize) -> FuncResult<()> {
    if args.len() < min {
        return Err(format!(
            "wrong number of args for {name}: want at least {min} got {}",
            args.len()
        )
        .into());
    }
    Ok(())
}

/// Go's message when a value does not fit a function's parameter type.
pub fn type_error(expected: &str, got: &Value) -> String {
    // A nil (a missing key under Helm's missingkey=zero, or a nil result) is a zero `interface {}` to Go.
    let got = if got.is_nil() {
        "interface {}"
    } else {
        got.type_name()
    };
    format!("wrong type for value; expected {expected}; got {got}")
}

/// A `string` parameter.
pub fn string(v: &Value) -> FuncResult<Rc<str>> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(type_error("string", other).into()),
    }
}

/// An `int` parameter. Template integer constants arrive as `Int`; an `int64` (sprig's arithmetic, `--set`
/// numbers) and a float64 (every number read from values files) are rejected as Go rejects them.
pub fn int(v: &Value) -> FuncResult<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(type_error("int", other).into()),
    }
}

/// A `bool` parameter.
pub fn boolean(v: &Value) -> FuncResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(type_error("bool", other).into()),
    }
}

/// A `map[string]interface {}` parameter. A nil is rejected as Go rejects a missing value (Helm's
/// missingkey=zero nil); Go would accept a literal `nil`, which the engine cannot tell apart.
pub fn map(v: &Value) -> FuncResult<Map> {
    match v {
        Value::Map(m) => Ok(m.clone()),
        other => Err(type_error("map[string]interface {}", other).into()),
    }
}

/// A list of strings from the variadic `...string` parameters.
pub fn strings(vs: &[Value]) -> FuncResult<Vec<Rc<str>>> {
    vs.iter().map(string).collect()
}
