//! Type inspection: `typeOf`, `typeIs`, `typeIsLike`, `kindOf`, `kindIs`, `deepEqual`.

use super::args::{self, take};
use crate::value::FuncResult;
use crate::value::Value;

/// `typeOf V`: Go's `%T`.
pub(crate) fn type_of(args: Vec<Value>) -> FuncResult {
    let [v] = take("typeOf", args)?;
    Ok(Value::from(v.type_name()))
}

/// `typeIs TYPE V`.
pub(crate) fn type_is(args: Vec<Value>) -> FuncResult {
    let [t, v] = take("typeIs", args)?;
    Ok(Value::Bool(*args::string(&t)? == *v.type_name()))
}

/// `typeIsLike TYPE V`: like `typeIs`, also true when V is a pointer to TYPE.
pub(crate) fn type_is_like(args: Vec<Value>) -> FuncResult {
    let [t, v] = take("typeIsLike", args)?;
    let t = args::string(&t)?;
    let actual = v.type_name();
    Ok(Value::Bool(*t == *actual || format!("*{t}") == actual))
}

/// `kindOf V`: Go's `reflect.Kind` name.
pub(crate) fn kind_of(args: Vec<Value>) -> FuncResult {
    let [v] = take("kindOf", args)?;
    Ok(Value::from(v.kind()))
}

/// `kindIs KIND V`.
pub(crate) fn kind_is(args: Vec<Value>) -> FuncResult {
    let [k, v] = take("kindIs", args)?;
    Ok(Value::Bool(*args::string(&k)? == *v.kind()))
}

/// `deepEqual A B`: Go's `reflect.DeepEqual`.
pub(crate) fn deep_equal(args: Vec<Value>) -> FuncResult {
    let [a, b] = take("deepEqual", args)?;
    Ok(Value::Bool(a == b))
}
