//! Type conversions: spf13/cast's `ToInt64`/`ToFloat64` as sprig uses them (errors become 0), sprig's
//! `strval`, and Go's `strconv.ParseInt`/`ParseFloat` number syntax they rely on ([`parse_int`] and
//! [`parse_float`] are public: hosts read Go number syntax with them too, as Helm's YAML resolver does).

use super::args::{self, take};
use crate::value::FuncResult;
use crate::value::Value;

/// sprig's `strval`: strings as they are, everything else as Go's `%v` (nil prints `<nil>`).
pub(crate) fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        v if v.is_nil() => "<nil>".to_string(),
        other => other.to_go_string(),
    }
}

/// `cast.ToInt64`: numbers truncate toward zero, strings parse as Go integer literals (after trimming a
/// `.0` fraction), bools are 1/0, anything else is 0.
pub(crate) fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => float_to_int(*f),
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_int(trim_zero_decimal(s), 0).unwrap_or(0),
        _ => 0,
    }
}

/// Go's `int64(f)` conversion: truncation; out-of-range values give Go's amd64 result (min int64).
fn float_to_int(f: f64) -> i64 {
    // 2^63: the first float64 beyond i64's range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || !(-LIMIT..LIMIT).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// `cast.ToFloat64`: numbers as they are, strings parsed by `strconv.ParseFloat`, bools 1/0, else 0.
pub(crate) fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// cast's `trimZeroDecimal`: "3.00" becomes "3"; anything else is unchanged.
fn trim_zero_decimal(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut found_zero = false;
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'.' if found_zero => return &s[..i],
            b'.' => {}
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// Go's `strconv.ParseInt(s, base, 64)`; base 0 takes the base from a `0x`, `0o`, `0b` or `0` prefix and
/// allows `_` between digits.
pub fn parse_int(s: &str, base: u32) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits, prefixed) = if base == 0 {
        let lower = body.to_ascii_lowercase();
        if lower.starts_with("0x") {
            (16, &body[2..], true)
        } else if lower.starts_with("0b") {
            (2, &body[2..], true)
        } else if lower.starts_with("0o") {
            (8, &body[2..], true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..], true)
        } else {
            (10, body, false)
        }
    } else {
        (base, body, false)
    };
    let digits = if base == 0 && digits.contains('_') {
        if !underscores_ok(body, prefixed) {
            return None;
        }
        digits.replace('_', "")
    } else {
        digits.to_string()
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(&digits, radix).ok()?;
    if neg {
        if magnitude > i64::MAX as u64 + 1 {
            return None;
        }
        Some((magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `underscoreOK`: underscores only between digits, or between a base prefix and a digit.
fn underscores_ok(body: &str, prefixed: bool) -> bool {
    let bytes = body.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if prefixed && bytes.len() >= 2 && bytes[0] == b'0' && bytes[1].is_ascii_alphabetic() {
        i = 2;
        saw = b'0';
        hex = bytes[1].eq_ignore_ascii_case(&b'x');
    }
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal syntax (with `_` separators, `inf`, `nan`); out of range
/// is an error, as in Go.
pub fn parse_float(s: &str) -> Option<f64> {
    let cleaned;
    let text = if s.contains('_') {
        if !underscores_ok(s.trim_start_matches(['+', '-']), false) {
            return None;
        }
        cleaned = s.replace('_', "");
        cleaned.as_str()
    } else {
        s
    };
    let body = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    let special = matches!(body.as_str(), "inf" | "infinity" | "nan");
    if !special
        && !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    let f: f64 = text.parse().ok()?;
    if f.is_infinite() && !special {
        return None;
    }
    Some(f)
}

/// `toString`: sprig's `strval`.
pub(crate) fn to_string(args: Vec<Value>) -> FuncResult {
    let [v] = take("toString", args)?;
    Ok(Value::from(strval(&v)))
}

/// `int`: `cast.ToInt`.
pub(crate) fn int(args: Vec<Value>) -> FuncResult {
    let [v] = take("int", args)?;
    Ok(Value::Int(to_int64(&v)))
}

/// `int64`: `cast.ToInt64`.
pub(crate) fn int64(args: Vec<Value>) -> FuncResult {
    let [v] = take("int64", args)?;
    Ok(Value::Int64(to_int64(&v)))
}

/// `float64`: `cast.ToFloat64`.
pub(crate) fn float64(args: Vec<Value>) -> FuncResult {
    let [v] = take("float64", args)?;
    Ok(Value::Float(to_float64(&v)))
}

/// `atoi`: `strconv.Atoi`, errors give 0.
pub(crate) fn atoi(args: Vec<Value>) -> FuncResult {
    let [s] = take("atoi", args)?;
    Ok(Value::Int(parse_int(&args::string(&s)?, 10).unwrap_or(0)))
}

/// `toDecimal`: reads the value's `%v` text as an octal number (`"0777"` is 511); errors give 0.
pub(crate) fn to_decimal(args: Vec<Value>) -> FuncResult {
    let [v] = take("toDecimal", args)?;
    Ok(Value::Int64(parse_int(&strval(&v), 8).unwrap_or(0)))
}

/// `toStrings`: every non-nil item of a list as a string; a non-list becomes a one-item list.
pub(crate) fn to_strings(args: Vec<Value>) -> FuncResult {
    let [v] = take("toStrings", args)?;
    Ok(string_list(strslice(&v)))
}

/// sprig's `strslice`: list items as strings, nils dropped; nil is empty; any other value is one item.
pub(crate) fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items.iter().filter(|i| !i.is_nil()).map(strval).collect(),
        v if v.is_nil() => Vec::new(),
        other => vec![strval(other)],
    }
}

/// A Go `[]string` as a template list.
pub(crate) fn string_list(items: Vec<String>) -> Value {
    Value::from(items.into_iter().map(Value::from).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_parses_strings_like_go_base_zero() {
        for (s, want) in [
            ("3.5", 0),
            ("3.0", 3),
            ("0x10", 16),
            ("010", 8),
            (" 3", 0),
            ("1e3", 0),
            ("08", 0),
            ("0b11", 3),
            ("1_000", 1000),
            ("-12", -12),
        ] {
            assert_eq!(to_int64(&Value::from(s)), want, "{s}");
        }
    }

    #[test]
    fn parse_float_accepts_go_syntax_only() {
        assert_eq!(parse_float("1_0"), Some(10.0));
        assert_eq!(parse_float("0x10"), None);
        assert_eq!(parse_float(" 1"), None);
        assert_eq!(parse_float("inf"), Some(f64::INFINITY));
        assert_eq!(parse_float("1e400"), None);
    }
}
