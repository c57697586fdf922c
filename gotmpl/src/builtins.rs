//! Go's built-in template functions (`and or not eq ne lt le gt ge len index slice print printf println
//! html js urlquery call`) and Helm's engine functions (`include tpl required fail`), with Go's rules and
//! error messages. `and`, `or`, `include` and `tpl` need the executor and are run there.

use std::fmt;
use std::fmt::Write as _;

use crate::printf;
use crate::value::{Function, Value};

/// A function the engine itself provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    And,
    Or,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Html,
    Js,
    Urlquery,
    Call,
    Include,
    Tpl,
    Required,
    Fail,
}

/// What a function name in a template resolves to.
#[derive(Clone, Copy)]
pub(crate) enum Callee {
    Builtin(Builtin),
    Func(Function),
}

impl fmt::Debug for Callee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Callee::Builtin(b) => write!(f, "Builtin({b:?})"),
            Callee::Func(_) => f.write_str("Func"),
        }
    }
}

impl Builtin {
    /// The built-in called `name`; Helm's functions only when `helm`.
    pub fn lookup(name: &str, helm: bool) -> Option<Builtin> {
        Some(match name {
            "and" => Builtin::And,
            "or" => Builtin::Or,
            "not" => Builtin::Not,
            "eq" => Builtin::Eq,
            "ne" => Builtin::Ne,
            "lt" => Builtin::Lt,
            "le" => Builtin::Le,
            "gt" => Builtin::Gt,
            "ge" => Builtin::Ge,
            "len" => Builtin::Len,
            "index" => Builtin::Index,
            "slice" => Builtin::Slice,
            "print" => Builtin::Print,
            "printf" => Builtin::Printf,
            "println" => Builtin::Println,
            "html" => Builtin::Html,
            "js" => Builtin::Js,
            "urlquery" => Builtin::Urlquery,
            "call" => Builtin::Call,
            "include" if helm => Builtin::Include,
            "tpl" if helm => Builtin::Tpl,
            "required" if helm => Builtin::Required,
            "fail" if helm => Builtin::Fail,
            _ => return None,
        })
    }

    /// One of Helm's engine functions (they take precedence over sprig's).
    pub fn is_helm(self) -> bool {
        matches!(
            self,
            Builtin::Include | Builtin::Tpl | Builtin::Required | Builtin::Fail
        )
    }

    /// How many arguments Go's signature takes: the fixed count, and whether more may follow.
    pub fn arity(self) -> (usize, bool) {
        match self {
            Builtin::And | Builtin::Or | Builtin::Eq | Builtin::Index | Builtin::Slice => (1, true),
            Builtin::Printf | Builtin::Call => (1, true),
            Builtin::Print | Builtin::Println | Builtin::Html | Builtin::Js | Builtin::Urlquery => {
                (0, true)
            }
            Builtin::Not | Builtin::Len | Builtin::Fail => (1, false),
            Builtin::Ne
            | Builtin::Lt
            | Builtin::Le
            | Builtin::Gt
            | Builtin::Ge
            | Builtin::Include
            | Builtin::Tpl
            | Builtin::Required => (2, false),
        }
    }
}

/// Go's check of the argument count, with its message.
pub(crate) fn check_arity(
    name: &str,
    (fixed, variadic): (usize, bool),
    got: usize,
) -> Result<(), String> {
    if variadic && got < fixed {
        return Err(format!(
            "wrong number of args for {name}: want at least {fixed} got {got}"
        ));
    }
    if !variadic && got != fixed {
        return Err(format!(
            "wrong number of args for {name}: want {fixed} got {got}"
        ));
    }
    Ok(())
}

/// Runs a built-in that needs no executor. Arguments are already counted.
pub(crate) fn call(builtin: Builtin, args: &[Value]) -> Result<Value, String> {
    match builtin {
        Builtin::Not => Ok(Value::Bool(!args[0].truth())),
        Builtin::Eq => eq(&args[0], &args[1..]).map(Value::Bool),
        Builtin::Ne => eq(&args[0], &args[1..2]).map(|b| Value::Bool(!b)),
        Builtin::Lt => less(&args[0], &args[1]).map(Value::Bool),
        Builtin::Le => Ok(Value::Bool(
            less(&args[0], &args[1])? || eq(&args[0], &args[1..2])?,
        )),
        Builtin::Gt => Ok(Value::Bool(
            !(less(&args[0], &args[1])? || eq(&args[0], &args[1..2])?),
        )),
        Builtin::Ge => less(&args[0], &args[1]).map(|b| Value::Bool(!b)),
        Builtin::Len => len(&args[0]).map(Value::Int),
        Builtin::Index => index(&args[0], &args[1..]),
        Builtin::Slice => slice(&args[0], &args[1..]),
        Builtin::Print => Ok(Value::from(printf::sprint(args))),
        Builtin::Println => Ok(Value::from(printf::sprintln(args))),
        Builtin::Printf => match &args[0] {
            Value::Str(format) => Ok(Value::from(printf::sprintf(format, &args[1..]))),
            other => Err(wrong_type("string", other)),
        },
        Builtin::Html => Ok(Value::from(html_escape(&eval_args(args)))),
        Builtin::Js => Ok(Value::from(js_escape(&eval_args(args)))),
        Builtin::Urlquery => Ok(Value::from(query_escape(&eval_args(args)))),
        Builtin::Call => match &args[0] {
            v if v.is_nil() => Err("call of nil".into()),
            other => Err(format!("non-function of type {}", other.type_name())),
        },
        Builtin::Required => {
            let empty = match &args[1] {
                v if v.is_nil() => true,
                Value::Str(s) => s.is_empty(),
                _ => false,
            };
            if empty {
                Err(helm_mark(&text_arg(&args[0])?))
            } else {
                Ok(args[1].clone())
            }
        }
        Builtin::Fail => Err(helm_mark(&text_arg(&args[0])?)),
        Builtin::And | Builtin::Or | Builtin::Include | Builtin::Tpl => {
            Err("internal error: this built-in runs in the executor".into())
        }
    }
}

/// Helm's marking of `required` and `fail` messages (see [`crate::TemplateError::helm_text`]).
fn helm_mark(message: &str) -> String {
    format!(
        "{}{message}{}",
        crate::error::HELM_ERR_START,
        crate::error::HELM_ERR_END
    )
}

/// A `string` parameter: Go refuses other types before the call.
pub(crate) fn text_arg(value: &Value) -> Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.to_string()),
        other => Err(wrong_type("string", other)),
    }
}

/// Go's message for an argument of the wrong type (not prefixed by "error calling").
pub(crate) fn wrong_type(want: &str, got: &Value) -> String {
    if got.is_nil() {
        format!("invalid value; expected {want}")
    } else {
        format!(
            "wrong type for value; expected {want}; got {}",
            got.type_name()
        )
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Missing(_) | Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

/// Go's `eq`: true when `a` equals any of `others`; basic kinds only, int and float never equal.
fn eq(a: &Value, others: &[Value]) -> Result<bool, String> {
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in others {
        let k2 = basic_kind(b);
        let truth = if k1 != k2 {
            if k1 != Kind::Invalid && k2 != Kind::Invalid {
                return Err(format!(
                    "incompatible types for comparison: {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                _ if basic_kind(a) == Kind::Int => a.as_int() == b.as_int(),
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Object(x), Value::Object(y)) => std::rc::Rc::ptr_eq(x, y),
                _ if a.is_nil() || b.is_nil() => a.is_nil() == b.is_nil(),
                (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        printf::sprintf("%s", std::slice::from_ref(b)),
                        b.type_name()
                    ));
                }
                _ => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        printf::sprintf("%s", std::slice::from_ref(a)),
                        a.type_name(),
                        b.type_name(),
                        b.to_go_string()
                    ));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
fn less(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (basic_kind(a), basic_kind(b));
    let bad_type = || "invalid type for comparison".to_string();
    if matches!(k1, Kind::Invalid | Kind::Other) || matches!(k2, Kind::Invalid | Kind::Other) {
        return Err(bad_type());
    }
    if k1 != k2 {
        return Err(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        ));
    }
    match (a, b) {
        _ if k1 == Kind::Int => Ok(a.as_int() < b.as_int()),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err(bad_type()),
    }
}

fn len(v: &Value) -> Result<i64, String> {
    match v {
        Value::Str(s) => Ok(s.len() as i64),
        Value::List(l) => Ok(l.len() as i64),
        Value::Map(m) => Ok(m.borrow().len() as i64),
        v if v.is_nil() => Err("len of nil pointer".into()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

/// An index argument: an integer within `0..=cap` (`cap` is the length for `index` minus one).
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x = match index {
        Value::Int(i) | Value::Int64(i) => *i,
        v if v.is_nil() => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    usize::try_from(x)
        .ok()
        .filter(|x| *x <= cap)
        .ok_or_else(|| format!("index out of range: {x}"))
}

fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("index of untyped nil".into());
    }
    let mut item = item.clone();
    for index in indexes {
        item = match &item {
            Value::List(list) => {
                if list.is_empty() {
                    index_arg(index, 0)?;
                    return Err(format!("index out of range: {}", index.to_go_string()));
                }
                let i = index_arg(index, list.len() - 1)?;
                list[i].clone()
            }
            Value::Str(s) => {
                if s.is_empty() {
                    index_arg(index, 0)?;
                    return Err(format!("index out of range: {}", index.to_go_string()));
                }
                let i = index_arg(index, s.len() - 1)?;
                Value::Int(i64::from(s.as_bytes()[i]))
            }
            Value::Map(map) => match index {
                Value::Str(key) => map.borrow().get(&**key).cloned().unwrap_or(Value::Nil),
                v if v.is_nil() => return Err("value is nil; should be of type string".into()),
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ));
                }
            },
            v if v.is_nil() => return Err("index of nil pointer".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if item.is_nil() {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let cap = match item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, cap];
    for (i, index) in indexes.iter().enumerate() {
        let x = index_arg(index, cap)?;
        if i < 2 {
            idx[i] = x;
        } else if idx[1] > x {
            return Err("reflect.Value.Slice3: slice index out of bounds".into());
        }
    }
    if idx[0] > idx[1] {
        // Go checks no order and reflect panics; the panic's text is the error.
        return Err(match item {
            Value::Str(_) => "reflect.Value.Slice: string slice index out of bounds".into(),
            _ => "reflect.Value.Slice: slice index out of bounds".into(),
        });
    }
    Ok(match item {
        Value::Str(s) => {
            Value::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::List(l) => Value::from(l[idx[0]..idx[1]].to_vec()),
        _ => unreachable!("checked above"),
    })
}

/// The text `html`, `js` and `urlquery` escape: a lone string as is, else `fmt.Sprint` of the arguments
/// (nil printing as `<no value>`, as Go's `printableValue` does).
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|a| {
            if a.is_nil() {
                Value::from("<no value>")
            } else {
                a.clone()
            }
        })
        .collect();
    printf::sprint(&printable)
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if c.is_ascii() => out.push(c),
            c if !crate::value::is_go_printable(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}
