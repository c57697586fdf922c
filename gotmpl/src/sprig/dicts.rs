//! Dictionary functions. Maps are shared references (Go maps): `set`, `unset`, `merge` and
//! `mergeOverwrite` change the destination in place and return it; `merge` follows mergo's rules as
//! sprig calls them (checked against Helm).

use crate::value::FuncResult;
use std::cell::RefCell;
use std::rc::Rc;

use super::args::{self, at_least, take};
use super::conversion::{string_list, strval};
use super::defaults::is_empty;
use crate::value::{Entries, Map, Value};

fn new_map(entries: Entries) -> Value {
    Value::Map(Rc::new(RefCell::new(entries)))
}

/// `dict K V K V...`: keys printed with `%v`; a key without a value maps to "".
pub(crate) fn dict(args: Vec<Value>) -> FuncResult {
    let mut entries = Entries::new();
    let mut it = args.into_iter();
    while let Some(k) = it.next() {
        entries.insert(
            strval(&k),
            it.next().map_or_else(|| Value::from(""), args::stored),
        );
    }
    Ok(new_map(entries))
}

/// `get MAP KEY`: the value, or "" when the key is absent.
pub(crate) fn get(args: Vec<Value>) -> FuncResult {
    let [m, k] = take("get", args)?;
    let (m, k) = (args::map(&m)?, args::string(&k)?);
    let v = m.borrow().get(&*k).cloned();
    Ok(v.unwrap_or_else(|| Value::from("")))
}

/// `set MAP KEY VALUE`: sets the key in place and returns the map.
pub(crate) fn set(args: Vec<Value>) -> FuncResult {
    let [m, k, v] = take("set", args)?;
    let (map, k) = (args::map(&m)?, args::string(&k)?);
    map.borrow_mut().insert(k.to_string(), args::stored(v));
    Ok(Value::Map(map))
}

/// `unset MAP KEY`: removes the key in place and returns the map.
pub(crate) fn unset(args: Vec<Value>) -> FuncResult {
    let [m, k] = take("unset", args)?;
    let (map, k) = (args::map(&m)?, args::string(&k)?);
    map.borrow_mut().remove(&*k);
    Ok(Value::Map(map))
}

/// `hasKey MAP KEY`.
pub(crate) fn has_key(args: Vec<Value>) -> FuncResult {
    let [m, k] = take("hasKey", args)?;
    let (map, k) = (args::map(&m)?, args::string(&k)?);
    Ok(Value::Bool(map.borrow().contains_key(&*k)))
}

/// `pluck KEY MAP...`: the values KEY has in each map that has it.
pub(crate) fn pluck(args: Vec<Value>) -> FuncResult {
    at_least("pluck", &args, 1)?;
    let key = args::string(&args[0])?;
    let mut out = Vec::new();
    for m in &args[1..] {
        if let Some(v) = args::map(m)?.borrow().get(&*key) {
            out.push(v.clone());
        }
    }
    Ok(Value::from(out))
}

/// `keys MAP...`: all keys. Go's order is random; ours is sorted per map (charts sort them anyway).
pub(crate) fn keys(args: Vec<Value>) -> FuncResult {
    let mut out = Vec::new();
    for m in &args {
        out.extend(args::map(m)?.borrow().keys().cloned());
    }
    Ok(string_list(out))
}

/// `values MAP`: the values (in key order; Go's is random).
pub(crate) fn values(args: Vec<Value>) -> FuncResult {
    let [m] = take("values", args)?;
    let map = args::map(&m)?;
    let out: Vec<Value> = map.borrow().values().cloned().collect();
    Ok(Value::from(out))
}

/// `pick MAP KEY...`: a new map of the listed keys that exist.
pub(crate) fn pick(args: Vec<Value>) -> FuncResult {
    at_least("pick", &args, 1)?;
    let map = args::map(&args[0])?;
    let keys = args::strings(&args[1..])?;
    let src = map.borrow();
    let out: Entries = keys
        .iter()
        .filter_map(|k| src.get(&**k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Ok(new_map(out))
}

/// `omit MAP KEY...`: a new map without the listed keys.
pub(crate) fn omit(args: Vec<Value>) -> FuncResult {
    at_least("omit", &args, 1)?;
    let map = args::map(&args[0])?;
    let keys = args::strings(&args[1..])?;
    let out: Entries = map
        .borrow()
        .iter()
        .filter(|(k, _)| !keys.iter().any(|o| **o == ***k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(new_map(out))
}

/// mergo's `Merge` (or `MergeWithOverwrite`) of `src` into `dst`, in place.
fn merge_into(dst: &Map, src: &Map, overwrite: bool) {
    if Rc::ptr_eq(dst, src) {
        return;
    }
    let src = src.borrow().clone();
    for (k, sv) in src {
        if sv.is_nil() {
            if overwrite {
                dst.borrow_mut().insert(k, Value::Nil);
            }
            continue;
        }
        let dv = dst.borrow().get(&k).cloned();
        if let (Value::Map(sm), Some(Value::Map(dm))) = (&sv, &dv) {
            merge_into(dm, sm, overwrite);
            continue;
        }
        let dst_unset = dv.as_ref().is_none_or(is_empty);
        if overwrite || dst_unset {
            dst.borrow_mut().insert(k, sv);
        }
    }
}

fn merge_all(name: &str, args: Vec<Value>, overwrite: bool) -> FuncResult {
    at_least(name, &args, 1)?;
    let dst = args::map(&args[0])?;
    for src in &args[1..] {
        merge_into(&dst, &args::map(src)?, overwrite);
    }
    Ok(Value::Map(dst))
}

/// `merge DST SRC...`: fills DST's missing and empty keys from each SRC, recursing into maps.
pub(crate) fn merge(args: Vec<Value>) -> FuncResult {
    merge_all("merge", args, false)
}

/// `mustMerge DST SRC...`.
pub(crate) fn must_merge(args: Vec<Value>) -> FuncResult {
    merge_all("mustMerge", args, false)
}

/// `mergeOverwrite DST SRC...`: like `merge`, but SRC values win (even empty ones).
pub(crate) fn merge_overwrite(args: Vec<Value>) -> FuncResult {
    merge_all("mergeOverwrite", args, true)
}

/// `mustMergeOverwrite DST SRC...`.
pub(crate) fn must_merge_overwrite(args: Vec<Value>) -> FuncResult {
    merge_all("mustMergeOverwrite", args, true)
}

/// `deepCopy V`.
pub(crate) fn deep_copy(args: Vec<Value>) -> FuncResult {
    let [v] = take("deepCopy", args)?;
    if v.is_nil() {
        return Err("reflect: call of reflect.Value.Type on zero Value"
            .to_string()
            .into());
    }
    Ok(v.deep_copy())
}

/// `mustDeepCopy V`.
pub(crate) fn must_deep_copy(args: Vec<Value>) -> FuncResult {
    let [v] = take("mustDeepCopy", args)?;
    Ok(v.deep_copy())
}

/// `dig KEY... DEFAULT MAP`: the value at the key path, or DEFAULT when a key is absent.
pub(crate) fn dig(args: Vec<Value>) -> FuncResult {
    if args.len() < 3 {
        return Err("dig needs at least three arguments".to_string().into());
    }
    let n = args.len();
    let mut current = match &args[n - 1] {
        Value::Map(m) => m.clone(),
        other => {
            return Err(format!(
                "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                other.type_name()
            )
            .into());
        }
    };
    let default = &args[n - 2];
    let keys = &args[..n - 2];
    for (i, k) in keys.iter().enumerate() {
        let k = match k {
            Value::Str(s) => s.clone(),
            other => {
                return Err(format!(
                    "interface conversion: interface {{}} is {}, not string",
                    other.type_name()
                )
                .into());
            }
        };
        let step = current.borrow().get(&*k).cloned();
        let Some(step) = step else {
            return Ok(default.clone());
        };
        if i == keys.len() - 1 {
            return Ok(step);
        }
        current = match step {
            Value::Map(m) => m,
            other => {
                return Err(format!(
                    "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                    other.type_name()
                )
                .into());
            }
        };
    }
    Ok(default.clone())
}
