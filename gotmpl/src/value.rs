//! The values templates work on, shaped like the Go values Helm and sealos hand to `text/template`.
//!
//! Go's maps are references: sprig's `set`, `unset` and `merge` change a map in place and every holder of it
//! sees the change, so [`Value::Map`] is a shared, mutable map. Lists (Go slices) are never changed in place
//! by template functions, so [`Value::List`] is shared and immutable. Strings are shared too: templates copy
//! values far more often than they build them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::rc::Rc;

/// The entries of a template map, in Go's printing and `range` order (sorted keys).
pub type Entries = BTreeMap<String, Value>;

/// A Go map as templates see it: shared, changed in place by `set`/`unset`/`merge`.
pub type Map = Rc<RefCell<Entries>>;

/// A function callable from templates by name: sprig's and Helm's functions. Arguments arrive evaluated; an
/// `Err` stops the render with the message, located at the calling action.
pub type Function = fn(Vec<Value>) -> FuncResult;

/// What a template function returns: Go's `(T, error)` convention.
pub type FuncResult<T = Value> = Result<T, FuncError>;

/// Why a template function failed: the message Go's function returns as its `error` (sprig's and Helm's
/// wording), which the engine shows at the calling action. Made from a message with `?` or `.into()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FuncError {
    message: String,
}

impl FuncError {
    /// The message, as the function words it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message, owned.
    pub fn into_message(self) -> String {
        self.message
    }
}

impl From<String> for FuncError {
    fn from(message: String) -> FuncError {
        FuncError { message }
    }
}

impl From<&str> for FuncError {
    fn from(message: &str) -> FuncError {
        FuncError {
            message: message.to_string(),
        }
    }
}

/// A value in a template.
#[derive(Clone)]
pub enum Value {
    /// A key the data does not have (Go's invalid value); holds the reference (`.Values.a.b`) for messages.
    /// Prints as `<no value>`, is falsy, and is nil to functions.
    Missing(Rc<str>),
    /// Go's `nil`.
    Nil,
    /// A `bool`.
    Bool(bool),
    /// An `int`: template literals, `len`, `range N`, sprig's `int` and `atoi`.
    Int(i64),
    /// An `int64`: `--set` numbers, sprig's arithmetic (`add`, `mul`, `max`, ...), `int64`, `toDecimal`.
    /// Go tells the two apart in `%T`, `typeOf`, `kindOf` and type switches (sprig's `duration` takes
    /// only an `int64`); everything else treats them alike through [`Value::as_int`].
    Int64(i64),
    /// A `float64` (every number read from YAML or JSON values, as Helm reads them).
    Float(f64),
    /// A `string`.
    Str(Rc<str>),
    /// A `[]interface{}`.
    List(Rc<Vec<Value>>),
    /// A `map[string]interface{}`.
    Map(Map),
    /// A host object with fields and methods (Helm's `.Files`, `.Capabilities.APIVersions`, ...).
    Object(Rc<dyn Object>),
}

/// A host value with Go-struct behaviour: `.Field` access, method calls `.Method arg...`, and how `%v`
/// prints it (its `String()` method, if any).
pub trait Object {
    /// Go's type name, for `typeOf` and messages (`*chart.Metadata`, `chartutil.Files`, ...).
    fn type_name(&self) -> &str;
    /// The value of field `name`, or of method `name` called without arguments; `None` when the type has
    /// neither (an error in Go: "can't evaluate field").
    fn field(&self, name: &str) -> Option<Value>;
    /// Calls method `name` with `args`; `None` when the type has no such method.
    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        let _ = (name, args);
        None
    }
    /// What `%v` prints: the `String()` method's result for types that have one.
    fn display(&self) -> String;
    /// The (key, value) pairs `range` visits, for host objects that are Go maps (Helm's `.Files`);
    /// `None` when `range` cannot iterate over the object.
    fn entries(&self) -> Option<Vec<(Value, Value)>> {
        None
    }
    /// Go's `json.Marshal` of the object when it is plain data (a struct's fields in declaration order),
    /// for `toJson` and `toYaml`; `None` encodes what `%v` prints, as a string.
    fn json(&self) -> Option<String> {
        None
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing(key) => write!(f, "Missing({key})"),
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Int64(i) => write!(f, "Int64({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::List(items) => f.debug_list().entries(items.iter()).finish(),
            Value::Map(map) => f.debug_map().entries(map.borrow().iter()).finish(),
            Value::Object(obj) => write!(f, "Object({})", obj.type_name()),
        }
    }
}

impl PartialEq for Value {
    /// Deep equality of data (Go's `reflect.DeepEqual` on these types); objects are equal only to themselves.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Missing(_), Value::Missing(_)) | (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) | (Value::Int64(a), Value::Int64(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => Rc::ptr_eq(a, b) || *a.borrow() == *b.borrow(),
            (Value::Object(a), Value::Object(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.into())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }
}

impl From<Entries> for Value {
    fn from(entries: Entries) -> Value {
        Value::Map(Rc::new(RefCell::new(entries)))
    }
}

thread_local! {
    /// The one list that stands for Go's nil slice (see [`Value::nil_list`]), told apart by identity.
    static NIL_LIST: Rc<Vec<Value>> = Rc::new(Vec::new());
}

impl Value {
    /// Go's nil slice (`[]interface {}(nil)`): an empty list everywhere (`%v` prints `[]`, `len` is 0, it
    /// is empty) except in `toJson`/`toYaml`, which encode it as `null`. sprig's `rest` and `initial` of an
    /// empty list, `concat` of nothing and `regexFindAll` without a match return one.
    pub fn nil_list() -> Value {
        Value::List(NIL_LIST.with(Rc::clone))
    }

    /// True for [`Value::nil_list`] and its clones (not for other empty lists).
    pub fn is_nil_list(&self) -> bool {
        matches!(self, Value::List(items) if NIL_LIST.with(|nil| Rc::ptr_eq(items, nil)))
    }

    /// A new, empty map.
    pub fn empty_map() -> Value {
        Value::from(Entries::new())
    }

    /// Go's truth in `if`, `with`, `and`, `or`, `not`: false for nil, missing, zero numbers, "", false, and
    /// empty lists and maps (also sprig's notion of `empty`, negated).
    pub fn truth(&self) -> bool {
        match self {
            Value::Missing(_) | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Object(_) => true,
        }
    }

    /// True for nil and missing values.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Missing(_) | Value::Nil)
    }

    /// Nil for a missing value, else the value itself: what a function receives for an argument (Go
    /// passes the zero value, nil, for a missing key).
    pub fn nil_if_missing(self) -> Value {
        match self {
            Value::Missing(_) => Value::Nil,
            other => other,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A copy with new maps and lists all the way down (sprig's `deepCopy`, Go's `copystructure.Copy`):
    /// changing the copy in place never changes the original. Scalars and host objects are shared.
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::Map(map) => Value::from(
                map.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect::<Entries>(),
            ),
            Value::List(_) if self.is_nil_list() => self.clone(),
            Value::List(items) => {
                Value::from(items.iter().map(Value::deep_copy).collect::<Vec<_>>())
            }
            other => other.clone(),
        }
    }

    /// The integer, if this is one of either width (`int` or `int64`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Int64(i) => Some(*i),
            _ => None,
        }
    }

    /// Go's type name as `printf "%T"` and sprig's `typeOf` print it.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Missing(_) | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Object(obj) => obj.type_name(),
        }
    }

    /// Go's `reflect.Kind` name as sprig's `kindOf` prints it (`invalid` for nil).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Missing(_) | Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Object(_) => "ptr",
        }
    }

    /// Go's `fmt.Sprint(v)` / `%v`: `<nil>` for nil, `[a b]` for lists, `map[k:v]` for maps (sorted keys),
    /// floats in `%g` shortest form. A missing value prints `<no value>` (what `text/template` prints).
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write_go(&mut out);
        out
    }

    fn write_go(&self, out: &mut String) {
        match self {
            Value::Missing(_) => out.push_str("<no value>"),
            Value::Nil => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Int64(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&go_float(*f)),
            Value::Str(s) => out.push_str(s),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    item.write_go_nested(out);
                }
                out.push(']');
            }
            Value::Map(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.borrow().iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go_nested(out);
                }
                out.push(']');
            }
            Value::Object(obj) => out.push_str(&obj.display()),
        }
    }

    /// Inside a list or map Go prints a nil interface as `<nil>`, never `<no value>`.
    fn write_go_nested(&self, out: &mut String) {
        match self {
            Value::Missing(_) => out.push_str("<nil>"),
            other => other.write_go(out),
        }
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest digits, exponent form when
/// the decimal exponent is below -4 or at least 6 (`1e+06`, `1.234567e+06`, `1e-05`), `+Inf`, `NaN`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space (not U+00A0,
/// U+200B, format characters, private use or unassigned code points).
pub fn is_go_printable(c: char) -> bool {
    crate::printable::is_print(c)
}

/// Go's `strconv.Quote`: double quotes; `\n`-style escapes, `\xNN` for other ASCII controls, and `\uNNNN` /
/// `\UNNNNNNNN` for every other rune that is not [`is_go_printable`].
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.CanBackquote`: `s` fits in a raw string literal (no control characters but tab, no
/// backquote, no DEL, no byte order mark). `%#q` and regexp messages use backquotes when this holds.
pub fn can_backquote(s: &str) -> bool {
    !s.chars()
        .any(|c| (c < ' ' && c != '\t') || c == '`' || c == '\u{7f}' || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_prints_them() {
        for (f, want) in [
            (3.0, "3"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (12345678.0, "1.2345678e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn lists_and_maps_print_as_go_prints_them() {
        let mut entries = Entries::new();
        entries.insert("b".into(), Value::Nil);
        entries.insert(
            "a".into(),
            Value::from(vec![Value::Int(1), Value::from("x")]),
        );
        assert_eq!(Value::from(entries).to_go_string(), "map[a:[1 x] b:<nil>]");
        assert_eq!(Value::Missing("x".into()).to_go_string(), "<no value>");
    }

    #[test]
    fn maps_are_shared_references() {
        let map = Value::empty_map();
        let alias = map.clone();
        if let Value::Map(m) = &alias {
            m.borrow_mut().insert("k".into(), Value::Bool(true));
        }
        assert!(map.truth());
    }
}
