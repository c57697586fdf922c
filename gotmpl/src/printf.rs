//! Go's `fmt.Sprintf`, `fmt.Sprint` and `fmt.Sprintln` over template values: every verb Go has for
//! these types, flags `-+# 0`, width, precision, `*`, argument indexes `%[n]d`, and Go's error forms
//! (`%!d(string=x)`, `%!v(MISSING)`, `%!(EXTRA ...)`).

use std::fmt::Write as _;

use crate::value::{Value, go_quote};

/// Go's `fmt.Sprint`: operands are separated by a space when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && !is_str(arg) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        write_value(&mut out, arg, 'v', &Spec::default());
    }
    out
}

/// Go's `fmt.Sprintln`: operands separated by spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, arg, 'v', &Spec::default());
    }
    out.push('\n');
    out
}

/// Flags, width and precision of one verb.
#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go refuses widths and precisions beyond a million (`%!(BADWIDTH)`).
const TOO_LARGE: usize = 1_000_000;

/// Go's `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let bytes = format.as_bytes();
    let mut i = 0;
    let mut arg_num = 0usize;
    let mut reordered = false;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[start..i]);
        if i >= bytes.len() {
            break;
        }
        i += 1; // the '%'
        let mut spec = Spec::default();
        while i < bytes.len() {
            match bytes[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = !spec.minus,
                b'+' => spec.plus = true,
                b'-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut good_arg = true;
        // Argument index before the width.
        if let Some((n, next, ok)) = arg_index(format, i, args.len()) {
            i = next;
            reordered = true;
            good_arg = ok;
            if ok {
                arg_num = n;
            }
        }
        // Width.
        if bytes.get(i) == Some(&b'*') {
            i += 1;
            match args.get(arg_num) {
                Some(Value::Int(w) | Value::Int64(w)) if w.unsigned_abs() as usize <= TOO_LARGE => {
                    if *w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            arg_num += 1;
            reordered = false;
        } else {
            let (n, next) = parse_num(format, i);
            if let Some(n) = n {
                if n > TOO_LARGE {
                    out.push_str("%!(BADWIDTH)");
                } else {
                    spec.width = Some(n);
                }
            }
            i = next;
        }
        // Precision.
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if let Some((n, next, ok)) = arg_index(format, i, args.len()) {
                i = next;
                reordered = true;
                good_arg = ok;
                if ok {
                    arg_num = n;
                }
            }
            if bytes.get(i) == Some(&b'*') {
                i += 1;
                match args.get(arg_num) {
                    Some(Value::Int(p) | Value::Int64(p))
                        if *p >= 0 && (*p as usize) <= TOO_LARGE =>
                    {
                        spec.prec = Some(*p as usize);
                    }
                    Some(Value::Int(p) | Value::Int64(p)) if *p < 0 => spec.prec = None,
                    _ => out.push_str("%!(BADPREC)"),
                }
                arg_num += 1;
                reordered = false;
            } else {
                let (n, next) = parse_num(format, i);
                match n {
                    Some(n) if n > TOO_LARGE => out.push_str("%!(BADPREC)"),
                    Some(n) => spec.prec = Some(n),
                    None => spec.prec = Some(0),
                }
                i = next;
            }
        }
        if (!reordered || good_arg)
            && let Some((n, next, ok)) = arg_index(format, i, args.len())
        {
            i = next;
            reordered = true;
            good_arg = ok;
            if ok {
                arg_num = n;
            }
        }
        let Some(verb) = format[i..].chars().next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        if !good_arg {
            let _ = write!(out, "%!{verb}(BADINDEX)");
            continue;
        }
        let Some(arg) = args.get(arg_num) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        arg_num += 1;
        if verb == 'T' {
            pad(
                &mut out,
                arg.type_name(),
                &Spec {
                    zero: false,
                    ..spec
                },
            );
            continue;
        }
        if verb == 'v' {
            // `%+v` asks for field names (none here), not a sign.
            spec.plus = false;
        }
        if verb == 'v' && spec.sharp {
            let mut text = String::new();
            go_syntax(&mut text, arg, true);
            pad(&mut out, &text, &spec);
            continue;
        }
        write_value(&mut out, arg, verb, &spec);
    }
    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (n, arg) in args[arg_num..].iter().enumerate() {
            if n > 0 {
                out.push_str(", ");
            }
            if arg.is_nil() {
                out.push_str("<nil>");
            } else {
                out.push_str(arg.type_name());
                out.push('=');
                write_value(&mut out, arg, 'v', &Spec::default());
            }
        }
        out.push(')');
    }
    out
}

/// `[n]` at `i`: the 0-based argument, where the format resumes, and whether the index is valid.
fn arg_index(format: &str, i: usize, nargs: usize) -> Option<(usize, usize, bool)> {
    if format.as_bytes().get(i) != Some(&b'[') {
        return None;
    }
    let close = format[i..].find(']')?;
    let n = format[i + 1..i + close].parse::<usize>().ok();
    match n {
        Some(n) if n >= 1 && n <= nargs => Some((n - 1, i + close + 1, true)),
        _ => Some((0, i + close + 1, false)),
    }
}

fn parse_num(format: &str, mut i: usize) -> (Option<usize>, usize) {
    let mut n: Option<usize> = None;
    while let Some(d) = format.as_bytes().get(i).filter(|b| b.is_ascii_digit()) {
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(usize::from(d - b'0')),
        );
        i += 1;
    }
    (n, i)
}

/// Pads `text` to the width: spaces (or zeros with the `0` flag) on the left, or spaces on the right.
fn pad(out: &mut String, text: &str, spec: &Spec) {
    let len = text.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(len);
    if fill == 0 {
        out.push_str(text);
    } else if spec.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(if spec.zero { '0' } else { ' ' }, fill));
        out.push_str(text);
    }
}

/// Formats one value with one verb (Go's `printArg`/`printValue`).
fn write_value(out: &mut String, value: &Value, verb: char, spec: &Spec) {
    match value {
        Value::Missing(_) | Value::Nil => match verb {
            'v' => pad(out, "<nil>", spec),
            _ => {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
        },
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, spec),
            _ => bad_verb(out, value, verb, spec),
        },
        Value::Int(i) | Value::Int64(i) => fmt_int(out, *i, verb, spec, value),
        Value::Float(f) => fmt_float(out, *f, verb, spec, value),
        Value::Str(s) => fmt_str(out, s, verb, spec, value),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item, verb, spec);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, v)) in map.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_str(out, k, verb, spec, &Value::from(k.as_str()));
                out.push(':');
                write_value(out, v, verb, spec);
            }
            out.push(']');
        }
        Value::Object(obj) => match verb {
            'v' | 's' => pad(out, &obj.display(), spec),
            'q' => pad(out, &go_quote(&obj.display()), spec),
            _ => bad_verb(out, value, verb, spec),
        },
    }
}

/// Go's `%!verb(type=value)`, the value printed with `%v` and the verb's flags.
fn bad_verb(out: &mut String, value: &Value, verb: char, spec: &Spec) {
    let _ = write!(out, "%!{verb}(");
    if value.is_nil() {
        out.push_str("<nil>");
    } else {
        out.push_str(value.type_name());
        out.push('=');
        write_value(out, value, 'v', spec);
    }
    out.push(')');
}

fn fmt_int(out: &mut String, i: i64, verb: char, spec: &Spec, value: &Value) {
    let (base, upper) = match verb {
        'd' | 'v' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = char::from_u32(i as u32)
                .filter(|_| (0..=0x10FFFF).contains(&i))
                .unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), spec);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32)
                .filter(|_| (0..=0x10FFFF).contains(&i))
                .unwrap_or('\u{FFFD}');
            let quoted = go_quote(c.encode_utf8(&mut [0; 4]));
            let inner = &quoted[1..quoted.len() - 1];
            let inner = if inner == "\\\"" {
                "\""
            } else if inner == "'" {
                "\\'"
            } else {
                inner
            };
            pad(out, &format!("'{inner}'"), spec);
            return;
        }
        'U' => {
            let mut text = format!("U+{:04X}", i);
            if spec.sharp
                && let Some(c) =
                    char::from_u32(i as u32).filter(|&c| crate::value::is_go_printable(c))
            {
                let _ = write!(text, " '{c}'");
            }
            pad(out, &text, spec);
            return;
        }
        _ => {
            bad_verb(out, value, verb, spec);
            return;
        }
    };
    let magnitude = i.unsigned_abs();
    let mut digits = match base {
        2 => format!("{magnitude:b}"),
        8 => format!("{magnitude:o}"),
        16 if upper => format!("{magnitude:X}"),
        16 => format!("{magnitude:x}"),
        _ => magnitude.to_string(),
    };
    // Precision is the minimum number of digits; `%.0d` of 0 prints nothing.
    if let Some(prec) = spec.prec {
        if prec == 0 && magnitude == 0 {
            digits.clear();
        } else if digits.len() < prec {
            digits = "0".repeat(prec - digits.len()) + &digits;
        }
    }
    let mut prefix = String::new();
    if i < 0 {
        prefix.push('-');
    } else if spec.plus {
        prefix.push('+');
    } else if spec.space {
        prefix.push(' ');
    }
    if verb == 'O' {
        prefix.push_str("0o");
    } else if spec.sharp {
        match base {
            8 if !digits.starts_with('0') => prefix.push('0'),
            16 => prefix.push_str(if upper { "0X" } else { "0x" }),
            2 => prefix.push_str("0b"),
            _ => {}
        }
    }
    // Zero padding goes between the sign and the digits, and only without an explicit precision.
    if spec.zero && spec.prec.is_none() && !spec.minus {
        let width = spec.width.unwrap_or(0);
        let len = prefix.len() + digits.len();
        if width > len {
            digits = "0".repeat(width - len) + &digits;
        }
    }
    let text = prefix + &digits;
    pad(
        out,
        &text,
        &Spec {
            zero: false,
            ..spec.clone()
        },
    );
}

/// The shortest decimal digits of `f` (no trailing zeros) and its decimal exponent: `f = d.ddd × 10^exp`.
fn decimal_digits(f: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exp)
}

fn exponent(exp: i32, upper: bool) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!(
        "{}{sign}{:02}",
        if upper { 'E' } else { 'e' },
        exp.unsigned_abs()
    )
}

/// Go's `%g` (shortest when `prec` is `None`), on the absolute value.
fn fmt_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    let prec = prec.map(|p| p.max(1));
    let (digits, exp) = decimal_digits(f, prec);
    let nd = digits.len() as i32;
    let dp = exp + 1;
    let mut eprec = prec.map_or(6, |p| p as i32);
    if let Some(p) = prec
        && p as i32 > nd
        && nd >= dp
    {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    if f == 0.0 {
        return "0".into();
    }
    if exp < -4 || exp >= eprec {
        let mut text = digits[..1].to_string();
        if digits.len() > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        text + &exponent(exp, upper)
    } else if exp >= 0 {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            digits.clone() + &"0".repeat(int_len - digits.len())
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    }
}

/// The mantissa (with its implicit top bit) and unbiased binary exponent of a finite `f`.
fn float_parts(f: f64) -> (u64, i32) {
    let bits = f.to_bits();
    let mut exp = ((bits >> 52) & 0x7ff) as i32;
    let mut mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        exp += 1; // subnormal
    } else {
        mant |= 1 << 52;
    }
    (mant, exp - 1023)
}

/// Go's `%b` of a float: `MANTISSAp±EXP`, an integer mantissa and a power of two.
fn binary_float(f: f64) -> String {
    let (mant, exp) = float_parts(f);
    let exp = exp - 52;
    format!(
        "{mant}p{}{}",
        if exp < 0 { '-' } else { '+' },
        exp.unsigned_abs()
    )
}

/// Go's `%x` of a float: `0x1.8p+01`, shortest or with `prec` hexadecimal digits (rounded to even).
fn hex_float(f: f64, prec: Option<usize>, upper: bool) -> String {
    let (mut mant, mut exp) = float_parts(f);
    if mant == 0 {
        exp = 0;
    }
    // Put the leading 1 (if any) at bit 60.
    mant <<= 60 - 52;
    while mant != 0 && mant & (1 << 60) == 0 {
        mant <<= 1;
        exp -= 1;
    }
    if let Some(p) = prec.filter(|p| *p < 15) {
        let shift = (p * 4) as u32;
        let extra = (mant << shift) & ((1 << 60) - 1);
        mant >>= 60 - shift;
        if extra | (mant & 1) > 1 << 59 {
            mant += 1;
        }
        mant <<= 60 - shift;
        if mant & (1 << 61) != 0 {
            mant >>= 1;
            exp += 1;
        }
    }
    let digits: &[u8] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::from(if upper { "0X" } else { "0x" });
    out.push(if (mant >> 60) & 1 == 1 { '1' } else { '0' });
    mant <<= 4;
    match prec {
        None if mant != 0 => {
            out.push('.');
            while mant != 0 {
                out.push(digits[((mant >> 60) & 15) as usize] as char);
                mant <<= 4;
            }
        }
        Some(p) if p > 0 => {
            out.push('.');
            for _ in 0..p {
                out.push(digits[((mant >> 60) & 15) as usize] as char);
                mant <<= 4;
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.unsigned_abs());
    out
}

fn fmt_e(f: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    mantissa.to_string() + &exponent(exp.parse().unwrap_or(0), upper)
}

fn fmt_float(out: &mut String, f: f64, verb: char, spec: &Spec, value: &Value) {
    let body = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        "Inf".to_string()
    } else {
        match verb {
            'v' | 'g' => fmt_g(f, spec.prec, false),
            'G' => fmt_g(f, spec.prec, true),
            'e' => fmt_e(f, spec.prec.unwrap_or(6), false),
            'E' => fmt_e(f, spec.prec.unwrap_or(6), true),
            'f' | 'F' => format!("{:.*}", spec.prec.unwrap_or(6), f.abs()),
            'x' | 'X' => hex_float(f.abs(), spec.prec, verb == 'X'),
            'b' => binary_float(f.abs()),
            _ => {
                bad_verb(out, value, verb, spec);
                return;
            }
        }
    };
    let sign = if f.is_nan() {
        if spec.plus {
            "+"
        } else if spec.space {
            " "
        } else {
            ""
        }
    } else if f.is_sign_negative() {
        "-"
    } else if spec.plus || f.is_infinite() {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    let finite = f.is_finite();
    let len = sign.len() + body.len();
    let width = spec.width.unwrap_or(0);
    if spec.zero && !spec.minus && finite && width > len {
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', width - len));
        out.push_str(&body);
    } else {
        pad(
            out,
            &format!("{sign}{body}"),
            &Spec {
                zero: false,
                ..spec.clone()
            },
        );
    }
}

fn fmt_str(out: &mut String, s: &str, verb: char, spec: &Spec, value: &Value) {
    match verb {
        'v' | 's' => match spec.prec {
            Some(p) => {
                let cut: String = s.chars().take(p).collect();
                pad(out, &cut, spec);
            }
            None => pad(out, s, spec),
        },
        'q' => {
            let s: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            let quoted = if spec.sharp && crate::value::can_backquote(&s) {
                format!("`{s}`")
            } else if spec.plus {
                ascii_quote(&s)
            } else {
                go_quote(&s)
            };
            pad(out, &quoted, spec);
        }
        'x' | 'X' => {
            let bytes = match spec.prec {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut text = String::with_capacity(bytes.len() * 3);
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    text.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    text.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(text, "{b:02x}");
                } else {
                    let _ = write!(text, "{b:02X}");
                }
            }
            pad(out, &text, spec);
        }
        _ => bad_verb(out, value, verb, spec),
    }
}

/// Go's `strconv.QuoteToASCII` (`%+q`).
fn ascii_quote(s: &str) -> String {
    let quoted = go_quote(s);
    let mut out = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if (c as u32) < 0x10000 {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
    out
}

/// Go's `%#v`: Go syntax for the value (`[]interface {}{1, "a"}`, `map[string]interface {}{"k":1}`).
fn go_syntax(out: &mut String, value: &Value, top: bool) {
    match value {
        Value::Missing(_) | Value::Nil => {
            out.push_str(if top { "<nil>" } else { "interface {}(nil)" })
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&crate::value::go_float(*f)),
        Value::Str(s) => out.push_str(&go_quote(s)),
        Value::List(items) => {
            out.push_str("[]interface {}{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                go_syntax(out, item, false);
            }
            out.push('}');
        }
        Value::Map(map) => {
            out.push_str("map[string]interface {}{");
            for (i, (k, v)) in map.borrow().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&go_quote(k));
                out.push(':');
                go_syntax(out, v, false);
            }
            out.push('}');
        }
        Value::Object(obj) => out.push_str(&obj.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        sprintf(format, args)
    }

    #[test]
    fn integers() {
        let v = vec![Value::Int(255); 10];
        assert_eq!(
            f("%d|%5d|%-5d|%05d|%x|%X|%o|%b|%#x|%+d", &v),
            "255|  255|255  |00255|ff|FF|377|11111111|0xff|+255"
        );
        assert_eq!(f("%05d", &[Value::Int(-42)]), "-0042");
        assert_eq!(
            f(
                "%.3d|%c|%q|%U",
                &[
                    Value::Int(7),
                    Value::Int(65),
                    Value::Int(65),
                    Value::Int(65)
                ]
            ),
            "007|A|'A'|U+0041"
        );
    }

    #[test]
    fn floats() {
        let x = Value::Float(2.54321);
        assert_eq!(
            f(
                "%.2f|%f|%e|%g|%v",
                &[x.clone(), x.clone(), x.clone(), x.clone(), x]
            ),
            "2.54|2.543210|2.543210e+00|2.54321|2.54321"
        );
        assert_eq!(
            f(
                "%g|%g|%.3g|%G",
                &[
                    Value::Float(1e6),
                    Value::Float(1e-5),
                    Value::Float(1234.5678),
                    Value::Float(1e21)
                ]
            ),
            "1e+06|1e-05|1.23e+03|1E+21"
        );
        assert_eq!(
            f(
                "%08.3f|%+.1f|%6.2f",
                &[
                    Value::Float(-2.54321),
                    Value::Float(2.0),
                    Value::Float(1.005)
                ]
            ),
            "-002.543|+2.0|  1.00"
        );
        assert_eq!(
            f("%.3g|%.10g", &[Value::Float(100.0), Value::Float(0.1)]),
            "100|0.1"
        );
    }

    #[test]
    fn strings_and_errors() {
        let s = Value::from("héllo");
        assert_eq!(
            f(
                "%s|%q|%.2s|%7s|%-7s|%x",
                &[
                    s.clone(),
                    s.clone(),
                    s.clone(),
                    s.clone(),
                    s.clone(),
                    Value::from("hi")
                ]
            ),
            "héllo|\"héllo\"|hé|  héllo|héllo  |6869"
        );
        assert_eq!(f("%d", std::slice::from_ref(&s)), "%!d(string=héllo)");
        assert_eq!(f("%s %s", std::slice::from_ref(&s)), "héllo %!s(MISSING)");
        assert_eq!(
            f("%s", &[s.clone(), Value::Int(1), Value::Nil]),
            "héllo%!(EXTRA int=1, <nil>)"
        );
        assert_eq!(
            f("%v %s %d", &[Value::Nil, Value::Nil, Value::Nil]),
            "<nil> %!s(<nil>) %!d(<nil>)"
        );
        assert_eq!(f("%", &[]), "%!(NOVERB)");
        assert_eq!(f("%[2]d %[1]d", &[Value::Int(1), Value::Int(2)]), "2 1");
        assert_eq!(
            f(
                "%*d|%-*d|",
                &[Value::Int(4), Value::Int(7), Value::Int(3), Value::Int(7)]
            ),
            "   7|7  |"
        );
        assert_eq!(
            f("%T %T %T", &[s, Value::Float(1.0), Value::Nil]),
            "string float64 <nil>"
        );
    }

    #[test]
    fn lists_and_maps_format_elementwise() {
        let list = Value::from(vec![Value::Int(1), Value::from("a")]);
        assert_eq!(
            f("%v|%d|%#v", &[list.clone(), list.clone(), list]),
            "[1 a]|[1 %!d(string=a)]|[]interface {}{1, \"a\"}"
        );
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        assert_eq!(
            sprint(&[
                Value::from("a"),
                Value::Int(1),
                Value::Int(2),
                Value::from("b")
            ]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[Value::Int(1), Value::from("x")]), "1 x\n");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_format_with_any_arguments_never_panics(
            format in "[%a-zA-Z0-9 .*#+\\-\\[\\]é]{0,24}",
            ints in proptest::collection::vec(proptest::num::i64::ANY, 0..4),
            floats in proptest::collection::vec(proptest::num::f64::ANY, 0..3),
            text in "\\PC{0,6}",
        ) {
            let mut args: Vec<Value> = ints.into_iter().map(Value::Int).collect();
            args.extend(floats.into_iter().map(Value::Float));
            args.push(Value::from(text));
            args.push(Value::Nil);
            args.push(Value::from(vec![Value::Int(1), Value::Nil]));
            let _ = sprintf(&format, &args);
            let _ = sprint(&args);
        }
    }
}
