//! Helm's `--set` language (`helm.sh/helm/pkg/strvals`): `a.b=c,d[0].e=f`, lists `a={x,y}`, `\` escapes,
//! and the value rules of `--set` (typed), `--set-string`, `--set-json`, `--set-file` and
//! `--set-literal`, with Helm's error messages.
//!
//! ```
//! use charts::strvals::{SetKind, parse_set};
//! let values = gotmpl::Value::empty_map();
//! parse_set("a.b=1,c={x,true},d[1]=null", &values, SetKind::Typed).unwrap();
//! assert_eq!(gotmpl::encoding::json::to_json(&values, true, None).unwrap(), r#"{"a":{"b":1},"c":["x",true],"d":[null,null]}"#);
//! ```

use std::rc::Rc;

use gotmpl::Value;
use gotmpl::value::Map;

/// Helm's `strvals.MaxIndex`: the largest list index an assignment may use.
pub const MAX_INDEX: usize = 65536;

/// Helm's `strvals.MaxNestedNameLevel`: how many `.` a key path may have.
pub const MAX_NESTED_NAME_LEVEL: usize = 30;

/// Which flag the assignments come from: it decides how a value's text becomes a value.
#[derive(Clone, Copy)]
pub enum SetKind<'a> {
    /// `--set`: `true`/`false`/`null` (any case), integers without a leading zero as int64, else strings.
    Typed,
    /// `--set-string`: every value a string.
    String,
    /// `--set-json`: every value a JSON document (an empty value is null).
    Json,
    /// `--set-file`: every value is a path; the value is the file's content, read by the function.
    File(&'a dyn Fn(&str) -> std::io::Result<String>),
    /// `--set-literal`: everything after the first `=` is the string value, commas and backslashes included.
    Literal,
}

/// Which Helm's parser to follow where Helm 3.17 and Helm 4 differ: Helm 3 reports an index cut short
/// (`a[0`) as `error parsing index: EOF`, Helm 4 ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Helm 3.17.
    Helm3,
    /// Helm 4.
    Helm4,
}

/// Why a `--set`-style argument cannot be assigned; worded as Helm's `strvals` words it (without the
/// `failed parsing --set data: ` prefix).
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The values to assign into are not a map.
    #[error("values must be a map")]
    NotAMap,
    /// A `{...}` list was expected.
    #[error("not a list")]
    NotAList,
    /// The argument does not parse (Helm's message: a key without a value, a bad index, bad JSON...).
    #[error("{0}")]
    Syntax(String),
    /// A `--set-file` path cannot be read.
    #[error("open {path}: {}", crate::go_io_reason(source))]
    ReadFile {
        /// The path as given.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Parses one `--set`-style argument and assigns its values into the map `into` (Helm's `ParseInto`,
/// `ParseIntoString`, `ParseJSON`, `ParseIntoFile`, `ParseLiteralInto`) as Helm 4 does. Errors are
/// Helm's, without the `failed parsing --set data: ` prefix.
pub fn parse_set(spec: &str, into: &Value, kind: SetKind<'_>) -> Result<(), SetError> {
    parse_set_as(spec, into, kind, Dialect::Helm4)
}

/// [`parse_set`] following the given Helm's parser.
pub fn parse_set_as(
    spec: &str,
    into: &Value,
    kind: SetKind<'_>,
    dialect: Dialect,
) -> Result<(), SetError> {
    let Value::Map(map) = into else {
        return Err(SetError::NotAMap);
    };
    let mut parser = Parser {
        chars: spec.chars().collect(),
        pos: 0,
        kind,
        dialect,
    };
    loop {
        match parser.key(map, 0) {
            Ok(()) => {}
            Err(Stop::Eof) => return Ok(()),
            Err(Stop::NotList) => return Err(SetError::NotAList),
            Err(Stop::Error(message)) => return Err(SetError::Syntax(message)),
            Err(Stop::Read(path, source)) => return Err(SetError::ReadFile { path, source }),
        }
    }
}

/// Why parsing stopped: the end of the input (Go's `io.EOF`), a value that is not a `{...}` list, an
/// error, or a `--set-file` path that cannot be read.
enum Stop {
    Eof,
    NotList,
    Error(String),
    Read(String, std::io::Error),
}

fn fail<T>(message: String) -> Result<T, Stop> {
    Err(Stop::Error(message))
}

/// The panic Go's failed type assertion raises, as Helm's `recover` reports it.
fn conversion_error(found: &Value, wanted: &str) -> Stop {
    let found = if found.is_nil() {
        "nil"
    } else {
        found.type_name()
    };
    Stop::Error(format!(
        "unable to parse key: interface conversion: interface {{}} is {found}, not {wanted}"
    ))
}

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    kind: SetKind<'a>,
    dialect: Dialect,
}

fn set(data: &Map, key: &str, value: Value) {
    if !key.is_empty() {
        data.borrow_mut().insert(key.to_string(), value);
    }
}

fn set_index(
    mut list: Vec<Value>,
    index: i64,
    value: Value,
) -> Result<Vec<Value>, (Vec<Value>, Stop)> {
    if index < 0 {
        return Err((
            list,
            Stop::Error(format!("negative {index} index not allowed")),
        ));
    }
    let index = index as usize;
    if index > MAX_INDEX {
        let message =
            format!("index of {index} is greater than maximum supported index of {MAX_INDEX}");
        return Err((list, Stop::Error(message)));
    }
    if list.len() <= index {
        list.resize(index + 1, Value::Nil);
    }
    list[index] = value;
    Ok(list)
}

/// Go's `%q` of a key.
fn quoted(s: &str) -> String {
    gotmpl::value::go_quote(s)
}

impl Parser<'_> {
    fn literal(&self) -> bool {
        matches!(self.kind, SetKind::Literal)
    }

    /// Reads up to one of `stop` (consumed and returned; `None` at the end), resolving `\x` escapes except
    /// in literal mode.
    fn runes_until(&mut self, stop: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            self.pos += 1;
            if stop.contains(&c) {
                return (out, Some(c));
            }
            if c == '\\' && !self.literal() {
                match self.chars.get(self.pos) {
                    Some(&next) => {
                        self.pos += 1;
                        out.push(next);
                    }
                    None => return (out, None),
                }
                continue;
            }
            out.push(c);
        }
        (out, None)
    }

    fn key(&mut self, data: &Map, level: usize) -> Result<(), Stop> {
        let stop: &[char] = if self.literal() {
            &['=', '[', '.']
        } else {
            &['=', '[', ',', '.']
        };
        let (key, last) = self.runes_until(stop);
        match last {
            None if key.is_empty() => Err(Stop::Eof),
            None => fail(format!("key {} has no value", quoted(&key))),
            Some('[') => {
                let index = self.key_index()?;
                let existing = data.borrow().get(&key).cloned();
                let list = match existing {
                    None => Vec::new(),
                    Some(Value::List(items)) => items.to_vec(),
                    Some(other) => return Err(conversion_error(&other, "[]interface {}")),
                };
                let (list, result) = match self.list_item(list, index, level) {
                    Ok(list) => (list, Ok(())),
                    Err((list, stop)) => (list, Err(stop)),
                };
                set(data, &key, Value::from(list));
                result
            }
            Some('=') => self.assign(data, &key),
            Some(',') => {
                set(data, &key, Value::from(""));
                fail(format!(
                    "key {} has no value (cannot end with ,)",
                    quoted(&key)
                ))
            }
            Some(_) => {
                let level = level + 1;
                if level > MAX_NESTED_NAME_LEVEL {
                    return fail(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTED_NAME_LEVEL}"
                    ));
                }
                let existing = data.borrow().get(&key).cloned();
                let inner: Map = match existing {
                    None => Map::default(),
                    Some(Value::Map(map)) => map,
                    Some(other) => return Err(conversion_error(&other, "map[string]interface {}")),
                };
                let result = self.key(&inner, level);
                let empty = inner.borrow().is_empty();
                if result.is_ok() && empty {
                    return fail(format!("key map {} has no value", quoted(&key)));
                }
                if !empty {
                    set(data, &key, Value::Map(inner));
                }
                result
            }
        }
    }

    /// The value after `key=`.
    fn assign(&mut self, data: &Map, key: &str) -> Result<(), Stop> {
        match self.kind {
            SetKind::Literal => {
                let value: String = self.chars[self.pos..].iter().collect();
                self.pos = self.chars.len();
                set(data, key, Value::from(value));
                Ok(())
            }
            SetKind::Json => {
                let value = self.json_value()?;
                set(data, key, value);
                Ok(())
            }
            _ => match self.val_list() {
                Ok(list) => {
                    set(data, key, Value::from(list));
                    Ok(())
                }
                Err(Stop::Eof) => {
                    set(data, key, Value::from(""));
                    Err(Stop::Eof)
                }
                Err(Stop::NotList) => {
                    let (text, _) = self.runes_until(&[',']);
                    let result = self.read(&text);
                    match result {
                        Ok(value) => {
                            set(data, key, value);
                            Ok(())
                        }
                        Err(stop) => {
                            set(data, key, Value::Nil);
                            Err(stop)
                        }
                    }
                }
                Err(other) => Err(other),
            },
        }
    }

    /// `--set-json`'s value: null when empty, else one JSON document, then an optional comma.
    fn json_value(&mut self) -> Result<Value, Stop> {
        if self.empty_val() {
            return Ok(Value::Nil);
        }
        let rest: String = self.chars[self.pos..].iter().collect();
        let (value, used) = gotmpl::encoding::json::from_json_prefix(&rest).map_err(Stop::Error)?;
        self.pos += rest[..used].chars().count();
        self.empty_val();
        Ok(value)
    }

    /// Skips spaces up to a comma or the end (true: the value is empty) or anything else (false, not
    /// consumed).
    fn empty_val(&mut self) -> bool {
        while let Some(&c) = self.chars.get(self.pos) {
            if c == ',' {
                self.pos += 1;
                return true;
            }
            if !c.is_whitespace() {
                return false;
            }
            self.pos += 1;
        }
        true
    }

    fn read(&self, text: &str) -> Result<Value, Stop> {
        match self.kind {
            SetKind::Typed => Ok(typed_value(text)),
            SetKind::String | SetKind::Literal => Ok(Value::from(text)),
            SetKind::Json => gotmpl::encoding::json::from_json(text).map_err(Stop::Error),
            SetKind::File(read) => read(text)
                .map(Value::from)
                .map_err(|e| Stop::Read(text.to_string(), e)),
        }
    }

    fn key_index(&mut self) -> Result<i64, Stop> {
        let (text, last) = self.runes_until(&[']']);
        if last.is_none() {
            // Helm 3 compares the wrapped io.EOF with `==`, so it surfaces as an error.
            return match self.dialect {
                Dialect::Helm3 => fail("error parsing index: EOF".to_string()),
                Dialect::Helm4 => Err(Stop::Eof),
            };
        }
        text.parse::<i64>().map_err(|_| {
            let reason = if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
                "value out of range"
            } else {
                "invalid syntax"
            };
            Stop::Error(format!(
                "error parsing index: strconv.Atoi: parsing {}: {reason}",
                quoted(&text)
            ))
        })
    }

    fn list_item(
        &mut self,
        list: Vec<Value>,
        index: i64,
        level: usize,
    ) -> Result<Vec<Value>, (Vec<Value>, Stop)> {
        if index < 0 {
            return Err((
                list,
                Stop::Error(format!("negative {index} index not allowed")),
            ));
        }
        let (rest, last) = self.runes_until(&['[', '.', '=']);
        if !rest.is_empty() {
            // Go's `%q` of a `[]rune` quotes each rune: `['x' 'y']`.
            let runes: Vec<String> = rest
                .chars()
                .map(|c| match c {
                    '\'' => "'\\''".to_string(),
                    c => {
                        let q = quoted(&c.to_string());
                        format!("'{}'", &q[1..q.len() - 1])
                    }
                })
                .collect();
            let message = format!(
                "unexpected data at end of array index: [{}]",
                runes.join(" ")
            );
            return Err((list, Stop::Error(message)));
        }
        match last {
            None => Err((list, Stop::Eof)),
            Some('=') => {
                let value = match self.kind {
                    SetKind::Literal => {
                        let value: String = self.chars[self.pos..].iter().collect();
                        self.pos = self.chars.len();
                        Value::from(value)
                    }
                    SetKind::Json => match self.json_value() {
                        Ok(value) => value,
                        Err(stop) => return Err((list, stop)),
                    },
                    _ => match self.val_list() {
                        Ok(items) => Value::from(items),
                        Err(Stop::Eof) => Value::from(""),
                        Err(Stop::NotList) => {
                            let (text, _) = self.runes_until(&[',']);
                            match self.read(&text) {
                                Ok(value) => value,
                                Err(stop) => return Err((list, stop)),
                            }
                        }
                        Err(stop) => return Err((list, stop)),
                    },
                };
                set_index(list, index, value)
            }
            Some('[') => {
                let next = match self.key_index() {
                    Ok(next) => next,
                    Err(stop) => return Err((list, stop)),
                };
                let current = match list.get(index as usize) {
                    None | Some(Value::Nil) => Vec::new(),
                    Some(Value::List(items)) => items.to_vec(),
                    Some(other) => {
                        let stop = conversion_error(other, "[]interface {}");
                        return Err((list, stop));
                    }
                };
                match self.list_item(current, next, level) {
                    Ok(inner) => set_index(list, index, Value::from(inner)),
                    Err((_, stop)) => Err((list, stop)),
                }
            }
            Some(_) => {
                let mut list = list;
                let inner: Map = match list.get(index as usize) {
                    Some(Value::Map(map)) => map.clone(),
                    Some(_) => {
                        let map = Map::default();
                        list[index as usize] = Value::Map(map.clone());
                        map
                    }
                    None => Map::default(),
                };
                if let Err(stop) = self.key(&inner, level) {
                    return Err((list, stop));
                }
                set_index(list, index, Value::Map(inner))
            }
        }
    }

    /// A `{a,b,c}` list value; `NotList` (nothing consumed) when the value does not start with `{`.
    fn val_list(&mut self) -> Result<Vec<Value>, Stop> {
        match self.chars.get(self.pos) {
            None => return Err(Stop::Eof),
            Some('{') => self.pos += 1,
            Some(_) => return Err(Stop::NotList),
        }
        let mut list = Vec::new();
        loop {
            let (text, last) = self.runes_until(&[',', '}']);
            match last {
                None => return fail("list must terminate with '}'".to_string()),
                Some('}') => {
                    if self.chars.get(self.pos) == Some(&',') {
                        self.pos += 1;
                    }
                    list.push(self.read(&text)?);
                    return Ok(list);
                }
                Some(_) => list.push(self.read(&text)?),
            }
        }
    }
}

/// `--set`'s reading of a value: `true`/`false`/`null` in any case, `0`, integers that do not start with
/// `0`, anything else a string.
pub fn typed_value(text: &str) -> Value {
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if text.eq_ignore_ascii_case("null") {
        return Value::Nil;
    }
    if text == "0" {
        return Value::Int64(0);
    }
    if !text.is_empty()
        && !text.starts_with('0')
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int64(i);
    }
    Value::Str(Rc::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gotmpl::encoding::json::to_json;

    fn set_json(spec: &str, kind: SetKind<'_>) -> Result<String, String> {
        let values = Value::empty_map();
        parse_set(spec, &values, kind).map_err(|e| e.to_string())?;
        Ok(to_json(&values, true, None).unwrap())
    }

    #[test]
    fn typed_values_follow_helm() {
        assert_eq!(
            set_json(
                "a=1,b=true,c=null,d=0,e=007,f=1.5,g=TRUE,h=-3,i=9223372036854775808,j=",
                SetKind::Typed
            )
            .unwrap(),
            r#"{"a":1,"b":true,"c":null,"d":0,"e":"007","f":"1.5","g":true,"h":-3,"i":"9223372036854775808","j":""}"#
        );
        assert_eq!(
            set_json("a=1,b=true", SetKind::String).unwrap(),
            r#"{"a":"1","b":"true"}"#
        );
    }

    #[test]
    fn lists_indexes_and_escapes() {
        for (spec, want) in [
            ("a={x,y,1}", r#"{"a":["x","y",1]}"#),
            ("a[1]=x", r#"{"a":[null,"x"]}"#),
            ("a[0].b=c,a[2].d=e", r#"{"a":[{"b":"c"},null,{"d":"e"}]}"#),
            (r"a\.b=c", r#"{"a.b":"c"}"#),
            (r"a=x\,y", r#"{"a":"x,y"}"#),
            ("a=b=c", r#"{"a":"b=c"}"#),
            ("name={a,b},x.y[0]=1", r#"{"name":["a","b"],"x":{"y":[1]}}"#),
            ("a.b=2,a=1", r#"{"a":1}"#),
            ("a.b[1][2]=z", r#"{"a":{"b":[null,[null,null,"z"]]}}"#),
            ("a={}", r#"{"a":[""]}"#),
            ("a=,b=2", r#"{"a":"","b":2}"#),
            ("a=x,", r#"{"a":"x"}"#),
            (" a = b ", r#"{" a ":" b "}"#),
        ] {
            assert_eq!(set_json(spec, SetKind::Typed).unwrap(), want, "{spec}");
        }
    }

    #[test]
    fn errors_read_as_helm_errors() {
        for (spec, want) in [
            ("a", r#"key "a" has no value"#),
            ("a,", r#"key "a" has no value (cannot end with ,)"#),
            ("a.b", r#"key "b" has no value"#),
            (
                "a=1,a.b=2",
                "unable to parse key: interface conversion: interface {} is int64, not map[string]interface {}",
            ),
            (
                "a[0]=1,a.b=2",
                "unable to parse key: interface conversion: interface {} is []interface {}, not map[string]interface {}",
            ),
            (
                "a[70000]=1",
                "index of 70000 is greater than maximum supported index of 65536",
            ),
            (
                "a[x]=1",
                r#"error parsing index: strconv.Atoi: parsing "x": invalid syntax"#,
            ),
            ("a[-1]=1", "negative -1 index not allowed"),
            ("a=[1,2]", r#"key "2]" has no value"#),
            ("a={x", "list must terminate with '}'"),
        ] {
            assert_eq!(set_json(spec, SetKind::Typed).unwrap_err(), want, "{spec}");
        }
    }

    #[test]
    fn json_values_are_json_documents() {
        assert_eq!(
            set_json(r#"a={"x":[1,"y"]},b=,c=null, d = "s""#, SetKind::Json).unwrap(),
            r#"{" d ":"s","a":{"x":[1,"y"]},"b":null,"c":null}"#
        );
    }

    #[test]
    fn literal_values_keep_commas_and_backslashes() {
        assert_eq!(
            set_json(r"a.b=x,y\z=1", SetKind::Literal).unwrap(),
            r#"{"a":{"b":"x,y\\z=1"}}"#
        );
    }

    #[test]
    fn file_values_are_file_contents() {
        let read = |path: &str| -> std::io::Result<String> { Ok(format!("content of {path}")) };
        assert_eq!(
            set_json("a=/x", SetKind::File(&read)).unwrap(),
            r#"{"a":"content of /x"}"#
        );
    }
}
