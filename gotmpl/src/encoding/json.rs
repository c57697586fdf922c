//! Go's `encoding/json` for template values: `json.Marshal` (map keys sorted, `<`, `>`, `&` escaped as
//! `\u003c`... unless raw), `json.MarshalIndent`, and `json.Unmarshal` into `interface{}` (numbers become
//! float64).

use std::fmt::Write as _;

use crate::value::{Entries, Value};

/// Go's `json.Marshal(v)` (`escape_html` true) or an encoder with `SetEscapeHTML(false)` (without the
/// trailing newline); `indent` is `Some("  ")` for `json.MarshalIndent(v, "", "  ")`.
///
/// Errors are Go's: `json: unsupported value: +Inf` for infinities and NaN.
pub fn to_json(value: &Value, escape_html: bool, indent: Option<&str>) -> Result<String, String> {
    let mut writer = JsonWriter {
        out: String::new(),
        escape_html,
        indent,
        depth: 0,
    };
    writer.value(value)?;
    Ok(writer.out)
}

/// Go's `json.Unmarshal` into `interface{}`: objects become maps, arrays lists, numbers float64.
///
/// Errors read as Go's (`invalid character 'x' looking for beginning of value`, `unexpected end of JSON
/// input`).
pub fn from_json(text: &str) -> Result<Value, String> {
    let mut parser = JsonParser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    parser.skip_space();
    if parser.pos >= parser.bytes.len() {
        return Err("unexpected end of JSON input".to_string());
    }
    let value = parser.value()?;
    parser.skip_space();
    if let Some(&c) = parser.bytes.get(parser.pos) {
        return Err(format!(
            "invalid character {} after top-level value",
            quote_char(parser.char_at(c))
        ));
    }
    Ok(value)
}

/// Go's `json.Decoder.Decode` of the first JSON value in `text`: the value and how many bytes it used
/// (`InputOffset`); what follows is left alone.
pub fn from_json_prefix(text: &str) -> Result<(Value, usize), String> {
    let mut parser = JsonParser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    parser.skip_space();
    if parser.pos >= parser.bytes.len() {
        return Err("EOF".to_string());
    }
    let value = parser.value()?;
    Ok((value, parser.pos))
}

/// Go's JSON text of a float64: shortest digits, `%f` form between 1e-6 and 1e21, exponent form outside
/// it with a one-digit negative exponent where Go trims it (`1e-7`, `1e+21`).
pub fn json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "json: unsupported value: {}",
            crate::value::go_float(f)
        ));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        let exp = exp.abs();
        // Go prints two exponent digits then trims `e-07` to `e-7` (but keeps `e+21`).
        if exp < 10 && sign == '-' {
            return Ok(format!("{mantissa}e-{exp}"));
        }
        return Ok(format!("{mantissa}e{sign}{exp:02}"));
    }
    if f == 0.0 && f.is_sign_negative() {
        return Ok("-0".to_string());
    }
    Ok(format!("{f}"))
}

struct JsonWriter<'a> {
    out: String,
    escape_html: bool,
    indent: Option<&'a str>,
    depth: usize,
}

impl JsonWriter<'_> {
    fn newline(&mut self) {
        if let Some(indent) = self.indent {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str(indent);
            }
        }
    }

    fn value(&mut self, value: &Value) -> Result<(), String> {
        match value {
            Value::Missing(_) | Value::Nil => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Int64(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Float(f) => self.out.push_str(&json_float(*f)?),
            Value::Str(s) => write_json_string(&mut self.out, s, self.escape_html),
            Value::Object(obj) => match obj.json() {
                Some(text) => self.out.push_str(&text),
                None => write_json_string(&mut self.out, &obj.display(), self.escape_html),
            },
            Value::List(_) if value.is_nil_list() => self.out.push_str("null"),
            Value::List(items) => {
                if items.is_empty() {
                    self.out.push_str("[]");
                    return Ok(());
                }
                self.out.push('[');
                self.depth += 1;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline();
                    self.value(item)?;
                }
                self.depth -= 1;
                self.newline();
                self.out.push(']');
            }
            Value::Map(map) => {
                let map = map.borrow();
                if map.is_empty() {
                    self.out.push_str("{}");
                    return Ok(());
                }
                self.out.push('{');
                self.depth += 1;
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline();
                    write_json_string(&mut self.out, key, self.escape_html);
                    self.out.push(':');
                    if self.indent.is_some() {
                        self.out.push(' ');
                    }
                    self.value(item)?;
                }
                self.depth -= 1;
                self.newline();
                self.out.push('}');
            }
        }
        Ok(())
    }
}

/// Appends `s` as a JSON string the way Go's encoder writes it: `\n`, `\r`, `\t`, `\b`, `\f` short escapes,
/// other control characters as `\u00XX`, U+2028/U+2029 always escaped, `<`, `>`, `&` when `escape_html`.
pub fn write_json_string(out: &mut String, s: &str, escape_html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if escape_html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

/// Go's `quoteChar`: `'x'`, with `'\''` and `'"'` spelled as Go spells them.
fn quote_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let q = crate::value::go_quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

impl JsonParser<'_> {
    fn char_at(&self, _byte: u8) -> char {
        self.text
            .get(self.pos..)
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{fffd}')
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn unexpected(&self, context: &str) -> String {
        match self.bytes.get(self.pos) {
            None => "unexpected end of JSON input".to_string(),
            Some(&b) => format!(
                "invalid character {} {context}",
                quote_char(self.char_at(b))
            ),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        match self.bytes.get(self.pos) {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Value::from(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Nil),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.unexpected("looking for beginning of value")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        for expected in word.bytes() {
            match self.bytes.get(self.pos) {
                Some(&b) if b == expected => self.pos += 1,
                None => return Err("unexpected end of JSON input".to_string()),
                Some(_) => {
                    let what = format!(
                        "in literal {word} (expecting {})",
                        quote_char(expected as char)
                    );
                    return Err(self.unexpected(&what));
                }
            }
        }
        Ok(value)
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos > s
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        if self.bytes.get(self.pos) == Some(&b'0') {
            self.pos += 1;
        } else if !digits(self) {
            return Err(self.unexpected("in numeric literal"));
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.unexpected("after decimal point in numeric literal"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.unexpected("in exponent of numeric literal"));
            }
        }
        let text = &self.text[start..self.pos];
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!(
                "json: cannot unmarshal number {text} into Go value of type float64"
            )),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err("unexpected end of JSON input".to_string());
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(&e) = self.bytes.get(self.pos) else {
                        return Err("unexpected end of JSON input".to_string());
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            if (0xD800..0xDC00).contains(&first)
                                && self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let second = self.hex4()?;
                                if (0xDC00..0xE000).contains(&second) {
                                    let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                    continue;
                                }
                                self.pos = save;
                            }
                            out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.unexpected("in string escape code"));
                        }
                    }
                }
                b if b < 0x20 => return Err(self.unexpected("in string literal")),
                _ => {
                    let rest = &self.text[self.pos..];
                    let end = rest.find(['"', '\\']).unwrap_or(rest.len());
                    let chunk = &rest[..end];
                    if let Some(i) = chunk.bytes().position(|b| b < 0x20) {
                        self.pos += i;
                        return Err(self.unexpected("in string literal"));
                    }
                    out.push_str(chunk);
                    self.pos += end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err("unexpected end of JSON input".to_string());
            };
            let d = (b as char)
                .to_digit(16)
                .ok_or_else(|| self.unexpected("in \\u hexadecimal character escape"))?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::from(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_space();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::from(items));
                }
                _ => return Err(self.unexpected("after array element")),
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pos += 1;
        let mut entries = Entries::new();
        self.skip_space();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::from(entries));
        }
        loop {
            self.skip_space();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("looking for beginning of object key string"));
            }
            let key = self.string()?;
            self.skip_space();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("after object key"));
            }
            self.pos += 1;
            let value = self.value()?;
            entries.insert(key, value);
            self.skip_space();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::from(entries));
                }
                _ => return Err(self.unexpected("after object key:value pair")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<Entries>(),
        )
    }

    #[test]
    fn marshal_sorts_keys_and_escapes_html() {
        let v = map(&[
            ("b", Value::from("<a&b>")),
            (
                "a",
                Value::from(vec![
                    Value::Int(1),
                    Value::Float(1.5),
                    Value::Nil,
                    Value::Bool(true),
                ]),
            ),
        ]);
        assert_eq!(
            to_json(&v, true, None).unwrap(),
            r#"{"a":[1,1.5,null,true],"b":"\u003ca\u0026b\u003e"}"#
        );
        assert_eq!(
            to_json(&v, false, None).unwrap(),
            r#"{"a":[1,1.5,null,true],"b":"<a&b>"}"#
        );
    }

    #[test]
    fn marshal_indent_matches_go_layout() {
        let v = map(&[
            ("a", Value::from(vec![Value::Int(1)])),
            ("e", Value::empty_map()),
            ("l", Value::from(vec![])),
        ]);
        assert_eq!(
            to_json(&v, true, Some("  ")).unwrap(),
            "{\n  \"a\": [\n    1\n  ],\n  \"e\": {},\n  \"l\": []\n}"
        );
    }

    #[test]
    fn floats_print_as_go_json_prints_them() {
        for (f, want) in [
            (3.0, "3"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (1234567.5, "1234567.5"),
            (1.2345678901234567e19, "12345678901234567000"),
        ] {
            assert_eq!(json_float(f).unwrap(), want, "{f}");
        }
        assert_eq!(
            to_json(&Value::Float(f64::INFINITY), true, None).unwrap_err(),
            "json: unsupported value: +Inf"
        );
    }

    #[test]
    fn control_characters_and_line_separators_are_escaped() {
        let s = Value::from("\u{1}\u{8}\u{c}\t\u{2028}\"\\");
        assert_eq!(
            to_json(&s, false, None).unwrap(),
            r#""\u0001\b\f\t\u2028\"\\""#
        );
    }

    #[test]
    fn unmarshal_reads_numbers_as_floats() {
        let v = from_json(r#" {"a": [1, -2.5e3, "x\u00e9\ud83d\ude00", true, null], "b": {}} "#)
            .unwrap();
        assert_eq!(
            v,
            map(&[
                (
                    "a",
                    Value::from(vec![
                        Value::Float(1.0),
                        Value::Float(-2500.0),
                        Value::from("xé😀"),
                        Value::Bool(true),
                        Value::Nil
                    ])
                ),
                ("b", Value::empty_map()),
            ])
        );
        assert_eq!(
            from_json("12345678901234567890").unwrap(),
            Value::Float(12345678901234567000.0)
        );
    }

    #[test]
    fn decoding_a_prefix_reports_how_much_was_read() {
        let (value, used) = from_json_prefix(r#" {"a":1},b=2"#).unwrap();
        assert_eq!(value, map(&[("a", Value::Float(1.0))]));
        assert_eq!(used, 8);
        assert_eq!(from_json_prefix("  ").unwrap_err(), "EOF");
    }

    #[test]
    fn unmarshal_errors_read_as_go_errors() {
        assert_eq!(
            from_json("{x").unwrap_err(),
            "invalid character 'x' looking for beginning of object key string"
        );
        assert_eq!(from_json("").unwrap_err(), "unexpected end of JSON input");
        assert_eq!(
            from_json("[1,").unwrap_err(),
            "unexpected end of JSON input"
        );
        assert_eq!(
            from_json("[1] x").unwrap_err(),
            "invalid character 'x' after top-level value"
        );
        assert_eq!(
            from_json("tru").unwrap_err(),
            "unexpected end of JSON input"
        );
    }
}
