//! What a plain (unquoted, untagged) YAML scalar means to go-yaml v2, the YAML 1.1 reader Helm uses: the
//! booleans `yes`/`no`/`on`/`off`/`y`/`n`, nulls, Go-syntax integers (`0x1F`, `0o17`, `0777`, `0b101`,
//! `1_000`), floats, and the strings the encoder must therefore quote.

use gotmpl::sprig::conversion::parse_float;

/// A plain scalar's value as go-yaml v2 resolves it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// An integer that fits Go's `int`.
    Int(i64),
    /// An integer above `int64` that fits `uint64`.
    Uint(u64),
    Float(f64),
    /// A string (also timestamps, which go-yaml v2 hands to `interface{}` as their text).
    Str,
    /// The merge key `<<`.
    Merge,
}

/// Resolves a plain scalar as go-yaml v2's `resolve("", s)` does.
pub(crate) fn resolve_plain(s: &str) -> Scalar {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        ".nan" | ".NaN" | ".NAN" => return Scalar::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Scalar::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Scalar::Float(f64::NEG_INFINITY),
        "<<" => return Scalar::Merge,
        _ => {}
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => match parse_float(s) {
            Some(f) => Scalar::Float(f),
            None => Scalar::Str,
        },
        b'+' | b'-' | b'0'..=b'9' => resolve_number(s),
        _ => Scalar::Str,
    }
}

fn resolve_number(s: &str) -> Scalar {
    if is_timestamp(s) {
        return Scalar::Str;
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    match go_parse_int(&plain) {
        Ok(i) => return Scalar::Int(i),
        Err(IntError::Range) if !plain.starts_with(['-', '+']) => {
            if let Some(u) = go_parse_uint(&plain) {
                return Scalar::Uint(u);
            }
        }
        Err(_) => {}
    }
    if is_yaml_float(&plain)
        && let Some(f) = parse_float(&plain)
    {
        return Scalar::Float(f);
    }
    // Hexadecimal, octal and binary integers beyond 64 bits stay strings (decimal ones matched the float
    // pattern above).
    Scalar::Str
}

enum IntError {
    Syntax,
    Range,
}

/// Splits Go's base prefix (`strconv.ParseInt(s, 0, 64)` rules) off digits: `0x`, `0o`, `0b`, or a
/// leading `0` for octal.
fn base_and_digits(s: &str) -> (u32, &str) {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b'0' {
        match b[1] {
            b'x' | b'X' => return (16, &s[2..]),
            b'o' | b'O' => return (8, &s[2..]),
            b'b' | b'B' => return (2, &s[2..]),
            _ => return (8, &s[1..]),
        }
    }
    (10, s)
}

fn go_parse_uint(s: &str) -> Option<u64> {
    let (base, digits) = base_and_digits(s);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    u64::from_str_radix(digits, base).ok()
}

fn go_parse_int(s: &str) -> Result<i64, IntError> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (base, digits) = base_and_digits(body);
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(IntError::Syntax);
    }
    let magnitude = u128::from_str_radix(digits, base).map_err(|_| IntError::Range)?;
    let value = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    i64::try_from(value).map_err(|_| IntError::Range)
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// go-yaml's base-60 float test (`1:20`), which the encoder quotes for older readers.
pub(crate) fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 2 {
            i += 1;
        }
        let group = &b[start..i];
        let valid = match group {
            [d] => d.is_ascii_digit(),
            [t, _] => (b'0'..=b'5').contains(t),
            _ => false,
        };
        if !valid {
            return false;
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// go-yaml v2's timestamp forms: `2006-1-2`, with `T`/`t`/space and a time `15:4:5(.9*)` and for `T`/`t`
/// a zone (`Z` or `±07:00`).
pub(crate) fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let number = |i: &mut usize, max_len: usize| -> Option<u32> {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max_len {
            *i += 1;
        }
        if *i == start {
            None
        } else {
            s[start..*i].parse().ok()
        }
    };
    let Some(month) = number(&mut i, 2) else {
        return false;
    };
    if b.get(i) != Some(&b'-') {
        return false;
    }
    i += 1;
    let Some(day) = number(&mut i, 2) else {
        return false;
    };
    let year: u32 = s[..4].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if i == b.len() {
        return true;
    }
    let with_zone = match b[i] {
        b'T' | b't' => true,
        b' ' => false,
        _ => return false,
    };
    i += 1;
    let Some(hour) = number(&mut i, 2) else {
        return false;
    };
    if b.get(i) != Some(&b':') {
        return false;
    }
    i += 1;
    let Some(minute) = number(&mut i, 2) else {
        return false;
    };
    if b.get(i) != Some(&b':') {
        return false;
    }
    i += 1;
    let Some(second) = number(&mut i, 2) else {
        return false;
    };
    if hour > 23 || minute > 59 || second > 59 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if !with_zone {
        return i == b.len();
    }
    match &b[i..] {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// True when go-yaml's encoder must quote `s`: written plain it would read back as something other than
/// this string.
pub(crate) fn plain_reads_back_differently(s: &str) -> bool {
    !matches!(resolve_plain(s), Scalar::Str | Scalar::Merge)
        || is_base60_float(s)
        || is_timestamp(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans_and_nulls_resolve() {
        for s in ["yes", "Y", "on", "ON", "true"] {
            assert_eq!(resolve_plain(s), Scalar::Bool(true), "{s}");
        }
        for s in ["no", "n", "Off", "FALSE"] {
            assert_eq!(resolve_plain(s), Scalar::Bool(false), "{s}");
        }
        for s in ["~", "null", "", "NULL"] {
            assert_eq!(resolve_plain(s), Scalar::Null, "{s}");
        }
        assert_eq!(resolve_plain("yES"), Scalar::Str);
    }

    #[test]
    fn go_integer_syntax_resolves() {
        for (s, want) in [
            ("0x1F", 31),
            ("0o17", 15),
            ("0777", 511),
            ("1_000", 1000),
            ("+12", 12),
            ("-0o7", -7),
            ("0b101", 5),
            ("-0", 0),
            ("0x_1F", 31),
        ] {
            assert_eq!(resolve_plain(s), Scalar::Int(want), "{s}");
        }
        assert_eq!(
            resolve_plain("12345678901234567890"),
            Scalar::Uint(12345678901234567890)
        );
        assert_eq!(resolve_plain("09"), Scalar::Float(9.0));
        assert_eq!(resolve_plain("1e400"), Scalar::Str);
        assert_eq!(resolve_plain("1:20"), Scalar::Str);
        assert_eq!(resolve_plain("2001-12-14"), Scalar::Str);
    }

    #[test]
    fn floats_resolve() {
        for (s, want) in [
            (".5", 0.5),
            ("5.", 5.0),
            ("1e5", 1e5),
            ("+.5", 0.5),
            ("1_0.5", 10.5),
            ("1.0e+3", 1000.0),
        ] {
            assert_eq!(resolve_plain(s), Scalar::Float(want), "{s}");
        }
    }

    #[test]
    fn strings_that_need_quotes_are_recognised() {
        for s in [
            "yes",
            "1",
            "1:20",
            "2001-12-14",
            "2001-12-14T21:59:43.10Z",
            "",
            "~",
            ".inf",
            "0x10",
            "1e3",
        ] {
            assert!(plain_reads_back_differently(s), "{s}");
        }
        for s in ["abc", "<<", "1.2.3", "x1", "2001-13-14"] {
            assert!(!plain_reads_back_differently(s), "{s}");
        }
    }
}
