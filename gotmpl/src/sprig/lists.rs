//! List functions. sprig reflects on its arguments: any Go slice works, anything else fails with
//! "Cannot <verb> on type <kind>"; non-`must` variants fail the same way (sprig v3 panics and
//! `text/template` turns the panic into an error).

use crate::value::FuncResult;
use std::rc::Rc;

use super::args::{self, at_least, take};
use super::conversion::to_int64;
use super::defaults::is_empty;
use crate::value::Value;

/// The items of a list argument, or sprig's error naming `verb` and the value's kind.
fn items<'a>(v: &'a Value, verb: &str) -> Result<&'a Rc<Vec<Value>>, String> {
    match v {
        Value::List(items) => Ok(items),
        v if v.is_nil() => Err(nil_kind()),
        other => Err(format!("Cannot {verb} on type {}", other.kind())),
    }
}

/// What Go's `reflect.TypeOf(nil).Kind()` does: a nil-pointer panic.
fn nil_kind() -> String {
    "runtime error: invalid memory address or nil pointer dereference".to_string()
}

/// `push LIST V` / `append`: a new list with V at the end.
pub(crate) fn push(args: Vec<Value>) -> FuncResult {
    let [list, v] = take("push", args)?;
    let mut out = items(&list, "push")?.to_vec();
    out.push(args::stored(v));
    Ok(Value::from(out))
}

/// `prepend LIST V`: a new list with V first.
pub(crate) fn prepend(args: Vec<Value>) -> FuncResult {
    let [list, v] = take("prepend", args)?;
    let mut out = vec![args::stored(v)];
    out.extend(items(&list, "prepend")?.iter().cloned());
    Ok(Value::from(out))
}

/// `first LIST`: the first item, nil for an empty list.
pub(crate) fn first(args: Vec<Value>) -> FuncResult {
    let [list] = take("first", args)?;
    Ok(items(&list, "find first")?
        .first()
        .cloned()
        .unwrap_or(Value::Nil))
}

/// `last LIST`: the last item, nil for an empty list.
pub(crate) fn last(args: Vec<Value>) -> FuncResult {
    let [list] = take("last", args)?;
    Ok(items(&list, "find last")?
        .last()
        .cloned()
        .unwrap_or(Value::Nil))
}

/// `rest LIST`: all but the first item.
pub(crate) fn rest(args: Vec<Value>) -> FuncResult {
    let [list] = take("rest", args)?;
    let l = items(&list, "find rest")?;
    // sprig returns a nil slice for an empty list (`toJson` prints `null`), `[]` for a one-item list.
    if l.is_empty() {
        return Ok(Value::nil_list());
    }
    Ok(Value::from(l[1..].to_vec()))
}

/// `initial LIST`: all but the last item.
pub(crate) fn initial(args: Vec<Value>) -> FuncResult {
    let [list] = take("initial", args)?;
    let l = items(&list, "find initial")?;
    // As `rest`: a nil slice for an empty list.
    if l.is_empty() {
        return Ok(Value::nil_list());
    }
    Ok(Value::from(l[..l.len() - 1].to_vec()))
}

/// `reverse LIST`: a reversed copy.
pub(crate) fn reverse(args: Vec<Value>) -> FuncResult {
    let [list] = take("reverse", args)?;
    Ok(Value::from(
        items(&list, "find reverse")?
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// `compact LIST`: the non-empty items.
pub(crate) fn compact(args: Vec<Value>) -> FuncResult {
    let [list] = take("compact", args)?;
    Ok(Value::from(
        items(&list, "compact")?
            .iter()
            .filter(|v| !is_empty(v))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// `uniq LIST`: the items without deep-equal repeats, first occurrence kept.
pub(crate) fn uniq(args: Vec<Value>) -> FuncResult {
    let [list] = take("uniq", args)?;
    let mut out: Vec<Value> = Vec::new();
    for v in items(&list, "find uniq")?.iter() {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(Value::from(out))
}

/// `without LIST V...`: the items not deep-equal to any V.
pub(crate) fn without(args: Vec<Value>) -> FuncResult {
    at_least("without", &args, 1)?;
    let omit = &args[1..];
    let l = items(&args[0], "find without")?;
    Ok(Value::from(
        l.iter()
            .filter(|v| !omit.contains(v))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// `has NEEDLE LIST`: whether LIST holds an item deep-equal to NEEDLE (false for a nil list).
pub(crate) fn has(args: Vec<Value>) -> FuncResult {
    let [needle, list] = take("has", args)?;
    if list.is_nil() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(items(&list, "find has")?.contains(&needle)))
}

/// `slice LIST [START [END]]`: Go's `list[start:end]`; out-of-range bounds fail.
pub(crate) fn slice(args: Vec<Value>) -> FuncResult {
    at_least("slice", &args, 1)?;
    let l = match &args[0] {
        Value::List(items) => items,
        v if v.is_nil() => return Err(nil_kind().into()),
        other => {
            return Err(
                format!("list should be type of slice or array but {}", other.kind()).into(),
            );
        }
    };
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    let start = args.get(1).map_or(0, to_int64);
    let end = args.get(2).map_or(l.len() as i64, to_int64);
    if start < 0 || end < start || end > l.len() as i64 {
        return Err("reflect.Value.Slice: slice index out of bounds"
            .to_string()
            .into());
    }
    Ok(Value::from(l[start as usize..end as usize].to_vec()))
}

/// `concat LIST...`: the lists joined.
pub(crate) fn concat(args: Vec<Value>) -> FuncResult {
    let mut out = Vec::new();
    for list in &args {
        match list {
            Value::List(items) => out.extend(items.iter().cloned()),
            v if v.is_nil() => return Err(nil_kind().into()),
            other => return Err(format!("Cannot concat type {} as list", other.kind()).into()),
        }
    }
    // sprig appends to a nil slice: nothing appended leaves it nil (`toJson` prints `null`).
    Ok(if out.is_empty() {
        Value::nil_list()
    } else {
        Value::from(out)
    })
}

/// `chunk SIZE LIST`: the list cut into lists of SIZE items (the last may be shorter).
pub(crate) fn chunk(args: Vec<Value>) -> FuncResult {
    let [size, list] = take("chunk", args)?;
    let size = args::int(&size)?;
    let l = items(&list, "chunk")?;
    if size <= 0 {
        return Err("runtime error: integer divide by zero".to_string().into());
    }
    let chunks: Vec<Value> = l
        .chunks(size as usize)
        .map(|c| Value::from(c.to_vec()))
        .collect();
    Ok(Value::from(chunks))
}
