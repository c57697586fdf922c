//! String functions: Go's `strings` package as sprig exposes it, goutils' wrap/abbreviate/initials and
//! xstrings' case conversions.

use super::args::{self, take};
use super::conversion::{string_list, strslice, strval};
use crate::value::FuncResult;
use crate::value::{Entries, Value, go_quote};

/// A one-string-argument function from a `&str -> String` map.
macro_rules! unary {
    ($($(#[$doc:meta])* $fname:ident $tname:literal $body:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $fname(args: Vec<Value>) -> FuncResult {
            let [s] = take($tname, args)?;
            let s = args::string(&s)?;
            let f: fn(&str) -> String = $body;
            Ok(Value::from(f(&s)))
        }
    )*};
}

unary! {
    /// `trim`: `strings.TrimSpace`.
    trim "trim" |s| s.trim_matches(is_go_space).to_string();
    /// `upper`: `strings.ToUpper`.
    upper "upper" |s| s.chars().map(go_upper).collect();
    /// `lower`: `strings.ToLower`.
    lower "lower" |s| s.chars().map(go_lower).collect();
    /// `title`: Go's deprecated `strings.Title` (first letter of each word upper-cased, rest untouched).
    title "title" title_case;
    /// `untitle`: lower-cases the first letter of every white-space separated word (goutils'
    /// `Uncapitalize`).
    untitle "untitle" |s| {
        let mut gap = true;
        s.chars()
            .map(|c| {
                let out = if gap { go_lower(c) } else { c };
                gap = is_go_space(c);
                out
            })
            .collect()
    };
    /// `nospace`: removes white space. goutils works byte by byte: only ASCII and Latin-1 space bytes go
    /// (which can break a multi-byte character, as in Go).
    nospace "nospace" |s| {
        let kept: Vec<u8> = s.bytes().filter(|b| !is_go_space(char::from(*b))).collect();
        String::from_utf8_lossy(&kept).into_owned()
    };
    /// `initials`: the first byte of each white-space separated word, as goutils takes it (a byte read as
    /// a Latin-1 rune, so "é" gives "Ã").
    initials "initials" |s| {
        let mut out = String::new();
        let mut gap = true;
        for c in s.bytes().map(char::from) {
            if is_go_space(c) {
                gap = true;
            } else if gap {
                out.push(c);
                gap = false;
            }
        }
        out
    };
    /// `swapcase`: upper to lower and lower to upper.
    swapcase "swapcase" |s| {
        s.chars()
            .map(|c| {
                if c.is_uppercase() || is_title(c) {
                    go_lower(c)
                } else if c.is_lowercase() {
                    go_upper(c)
                } else {
                    c
                }
            })
            .collect()
    };
    /// `snakecase`: xstrings' `ToSnakeCase`.
    snakecase "snakecase" |s| to_lower_words(s, '_');
    /// `kebabcase`: xstrings' `ToKebabCase`.
    kebabcase "kebabcase" |s| to_lower_words(s, '-');
    /// `camelcase`: xstrings' `ToPascalCase` (upper camel case).
    camelcase "camelcase" pascal_case;
    /// `shuffle`: the runes in random order.
    shuffle "shuffle" |s| {
        let mut runes: Vec<char> = s.chars().collect();
        for i in (1..runes.len()).rev() {
            let j = super::random::below(i as u64 + 1) as usize;
            runes.swap(i, j);
        }
        runes.into_iter().collect()
    };
    /// `b64enc`: standard base64.
    b64enc "b64enc" |s| super::encoding::base64_encode(s.as_bytes());
    /// `b64dec`: standard base64 decoding; a bad input gives Go's error text as the result.
    b64dec "b64dec" super::encoding::base64_decode;
    /// `b32enc`: standard base32.
    b32enc "b32enc" |s| super::encoding::base32_encode(s.as_bytes());
    /// `b32dec`: standard base32 decoding; a bad input gives Go's error text as the result.
    b32dec "b32dec" super::encoding::base32_decode;
}

/// Go's `unicode.IsSpace`.
pub(crate) fn is_go_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    ) || (c as u32 > 0xff && c.is_whitespace())
}

/// Go's `unicode.ToUpper`: a simple one-rune mapping (`ß` stays `ß`).
pub(crate) fn go_upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `unicode.ToLower`: a simple one-rune mapping.
pub(crate) fn go_lower(c: char) -> char {
    let mut low = c.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

fn title_case(s: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            is_go_space(c)
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(prev) { go_upper(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || is_go_space(c)
}

/// xstrings' `ToPascalCase`: connectors (`-`, `_`, spaces) removed, the rune after each upper-cased, runs
/// of upper case after a leading upper-case rune lowered.
fn pascal_case(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    let mut first_upper = false;
    let mut r0 = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            first_upper = c.is_uppercase();
            r0 = Some(go_upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else { return out };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = go_upper(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = go_lower(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Word {
    Invalid,
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// Go's `unicode.IsPunct` (Unicode category P): exact for ASCII (`$+<=>^`|~` are symbols) and Latin-1,
/// and covering the general, CJK and full-width punctuation blocks.
fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    matches!(c,
        '\u{a1}' | '\u{a7}' | '\u{ab}' | '\u{b6}' | '\u{b7}' | '\u{bb}' | '\u{bf}'
        | '\u{2010}'..='\u{2027}'
        | '\u{2030}'..='\u{2043}'
        | '\u{2045}'..='\u{2051}'
        | '\u{2053}'..='\u{205e}'
        | '\u{3001}'..='\u{3003}'
        | '\u{3008}'..='\u{3011}'
        | '\u{3014}'..='\u{301f}'
        | '\u{ff01}'..='\u{ff03}'
        | '\u{ff05}'..='\u{ff0a}'
        | '\u{ff0c}'..='\u{ff0f}'
        | '\u{ff1a}' | '\u{ff1b}' | '\u{ff1f}' | '\u{ff20}'
        | '\u{ff3b}'..='\u{ff3d}'
        | '\u{ff3f}' | '\u{ff5b}' | '\u{ff5d}'
        | '\u{ff5f}'..='\u{ff65}')
}

/// Go's `unicode.IsTitle`: the title-case letters (category Lt).
fn is_title(c: char) -> bool {
    matches!(c,
        '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}'
        | '\u{1f88}'..='\u{1f8f}'
        | '\u{1f98}'..='\u{1f9f}'
        | '\u{1fa8}'..='\u{1faf}'
        | '\u{1fbc}' | '\u{1fcc}' | '\u{1ffc}')
}

/// xstrings' `nextWord`: the type and text of the next word and the rest.
fn next_word(s: &str) -> (Word, &str, &str) {
    let Some(first) = s.chars().next() else {
        return (Word::Invalid, "", "");
    };
    let mut end = first.len_utf8();
    let rest_from = |end: usize| s[end..].chars();
    let wt;
    if is_connector(first) {
        wt = Word::Connector;
        end += rest_from(end)
            .take_while(|c| is_connector(*c))
            .map(char::len_utf8)
            .sum::<usize>();
    } else if is_punct(first) {
        wt = Word::Punct;
        end += rest_from(end)
            .take_while(|c| is_punct(*c))
            .map(char::len_utf8)
            .sum::<usize>();
    } else if first.is_uppercase() {
        wt = Word::Upper;
        if let Some(next) = rest_from(end).next() {
            if next.is_uppercase() {
                let mut prev_size = next.len_utf8();
                end += prev_size;
                let mut stopped_on = None;
                for c in rest_from(end) {
                    if !c.is_uppercase() {
                        stopped_on = Some(c);
                        break;
                    }
                    prev_size = c.len_utf8();
                    end += prev_size;
                }
                // "HTTPStatus" splits into "HTTP" and "Status".
                if stopped_on.is_some_and(char::is_alphabetic) {
                    end -= prev_size;
                }
            } else if next.is_alphabetic() {
                end += rest_from(end)
                    .take_while(|c| c.is_alphabetic() && !c.is_uppercase())
                    .map(char::len_utf8)
                    .sum::<usize>();
            }
        }
    } else if first.is_alphabetic() {
        wt = Word::Alphabet;
        end += rest_from(end)
            .take_while(|c| c.is_alphabetic() && !c.is_uppercase())
            .map(char::len_utf8)
            .sum::<usize>();
    } else if first.is_numeric() {
        wt = Word::Number;
        end += rest_from(end)
            .take_while(|c| c.is_numeric())
            .map(char::len_utf8)
            .sum::<usize>();
    } else {
        wt = Word::Other;
        end += rest_from(end)
            .take_while(|c| {
                !(is_connector(*c) || c.is_alphabetic() || c.is_numeric() || is_punct(*c))
            })
            .map(char::len_utf8)
            .sum::<usize>();
    }
    (wt, &s[..end], &s[end..])
}

fn push_lower(out: &mut String, wt: Word, word: &str, connector: char) {
    if wt != Word::Upper && wt != Word::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if is_connector(c) {
            out.push(connector);
        } else {
            out.push(go_lower(c));
        }
    }
}

/// xstrings' `camelCaseToLowerCase`: words joined by `connector`, lower-cased, numbers kept with the word
/// before them unless lower-case letters follow.
fn to_lower_words(s: &str, connector: char) -> String {
    let mut out = String::new();
    if s.is_empty() {
        return out;
    }
    let (mut wt, mut word, mut remaining) = next_word(s);
    while !remaining.is_empty() {
        if wt != Word::Connector {
            push_lower(&mut out, wt, word, connector);
        }
        let prev = wt;
        let last = word;
        (wt, word, remaining) = next_word(remaining);
        match prev {
            Word::Number => {
                while wt == Word::Alphabet || wt == Word::Number {
                    push_lower(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if !matches!(wt, Word::Invalid | Word::Punct | Word::Connector) {
                    out.push(connector);
                }
            }
            Word::Connector => push_lower(&mut out, prev, last, connector),
            Word::Punct => {}
            _ => {
                if wt != Word::Number {
                    if wt != Word::Connector && wt != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if remaining.is_empty() {
                    continue;
                }
                let last = word;
                (wt, word, remaining) = next_word(remaining);
                if wt != Word::Alphabet {
                    push_lower(&mut out, Word::Number, last, connector);
                    if wt != Word::Connector && wt != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                push_lower(&mut out, Word::Number, last, connector);
                while wt == Word::Alphabet || wt == Word::Number {
                    push_lower(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if !matches!(wt, Word::Invalid | Word::Connector | Word::Punct) {
                    out.push(connector);
                }
            }
        }
    }
    push_lower(&mut out, wt, word, connector);
    out
}

/// `abbrev WIDTH S`: truncates with "..." to at most WIDTH bytes (widths under 4 leave S alone).
pub(crate) fn abbrev(args: Vec<Value>) -> FuncResult {
    let [w, s] = take("abbrev", args)?;
    let (w, s) = (args::int(&w)?, args::string(&s)?);
    if w < 4 {
        return Ok(Value::Str(s));
    }
    Ok(Value::from(abbreviate_full(&s, 0, w).unwrap_or_default()))
}

/// `abbrevboth LEFT RIGHT S`: abbreviates on both sides.
pub(crate) fn abbrevboth(args: Vec<Value>) -> FuncResult {
    let [l, r, s] = take("abbrevboth", args)?;
    let (l, r, s) = (args::int(&l)?, args::int(&r)?, args::string(&s)?);
    if r < 4 || l > 0 && r < 7 {
        return Ok(Value::Str(s));
    }
    Ok(Value::from(abbreviate_full(&s, l, r).unwrap_or_default()))
}

/// goutils' `AbbreviateFull` (byte offsets, as Go's).
fn abbreviate_full(s: &str, offset: i64, max_width: i64) -> Option<String> {
    let b = s.as_bytes();
    let len = b.len() as i64;
    if s.is_empty() {
        return Some(String::new());
    }
    if max_width < 4 {
        return None;
    }
    if len <= max_width {
        return Some(s.to_string());
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    let cut =
        |from: i64, to: i64| String::from_utf8_lossy(&b[from as usize..to as usize]).into_owned();
    if offset <= 4 {
        return Some(cut(0, max_width - 3) + "...");
    }
    if max_width < 7 {
        return None;
    }
    if offset + max_width - 3 < len {
        let inner = abbreviate_full(&cut(offset, len), 0, max_width - 3)?;
        return Some(format!("...{inner}"));
    }
    Some(format!("...{}", cut(len - (max_width - 3), len)))
}

/// `wrap WIDTH S`: goutils' `Wrap` (long words are not broken).
pub(crate) fn wrap(args: Vec<Value>) -> FuncResult {
    let [w, s] = take("wrap", args)?;
    Ok(Value::from(wrap_custom(
        &args::string(&s)?,
        args::int(&w)?,
        "\n",
        false,
    )))
}

/// `wrapWith WIDTH SEP S`: goutils' `WrapCustom` with long words broken.
pub(crate) fn wrap_with(args: Vec<Value>) -> FuncResult {
    let [w, sep, s] = take("wrapWith", args)?;
    Ok(Value::from(wrap_custom(
        &args::string(&s)?,
        args::int(&w)?,
        &args::string(&sep)?,
        true,
    )))
}

fn wrap_custom(s: &str, width: i64, newline: &str, wrap_long: bool) -> String {
    if s.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline };
    let width = width.max(1) as usize;
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut offset = 0;
    while b.len() - offset > width {
        if b[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = (width + offset + 1).min(b.len());
        let space = b[offset..end].iter().rposition(|c| *c == b' ');
        if let Some(space) = space {
            out.extend_from_slice(&b[offset..offset + space]);
            out.extend_from_slice(newline.as_bytes());
            offset += space + 1;
        } else if wrap_long {
            out.extend_from_slice(&b[offset..offset + width]);
            out.extend_from_slice(newline.as_bytes());
            offset += width;
        } else {
            let end = width + offset;
            match b[end..].iter().position(|c| *c == b' ') {
                None => {
                    out.extend_from_slice(&b[offset..]);
                    offset = b.len();
                }
                Some(i) => {
                    out.extend_from_slice(&b[offset..end + i]);
                    out.extend_from_slice(newline.as_bytes());
                    offset = end + i + 1;
                }
            }
        }
    }
    out.extend_from_slice(&b[offset..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// `trunc N S`: the first N bytes, or for negative N the last -N bytes.
pub(crate) fn trunc(args: Vec<Value>) -> FuncResult {
    let [c, s] = take("trunc", args)?;
    let (c, s) = (args::int(&c)?, args::string(&s)?);
    let len = s.len() as i64;
    let out = if c < 0 && len + c > 0 {
        byte_slice(&s, (len + c) as usize, s.len())
    } else if c >= 0 && len > c {
        byte_slice(&s, 0, c as usize)
    } else {
        s.to_string()
    };
    Ok(Value::from(out))
}

fn byte_slice(s: &str, from: usize, to: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()
}

/// `substr START END S`: Go byte slicing with sprig's bounds rules; out-of-range bounds fail like Go's.
pub(crate) fn substr(args: Vec<Value>) -> FuncResult {
    let [a, b, s] = take("substr", args)?;
    let (start, end, s) = (args::int(&a)?, args::int(&b)?, args::string(&s)?);
    let len = s.len() as i64;
    let range = if start < 0 {
        (0, end)
    } else if end < 0 || end > len {
        (start, len)
    } else {
        (start, end)
    };
    if range.0 < 0 || range.1 < range.0 || range.1 > len {
        return Err(format!(
            "runtime error: slice bounds out of range [{}:{}]",
            range.0, range.1
        )
        .into());
    }
    Ok(Value::from(byte_slice(
        &s,
        range.0 as usize,
        range.1 as usize,
    )))
}

/// `repeat COUNT S`.
pub(crate) fn repeat(args: Vec<Value>) -> FuncResult {
    let [c, s] = take("repeat", args)?;
    let (c, s) = (args::int(&c)?, args::string(&s)?);
    if c < 0 {
        return Err("strings: negative Repeat count".to_string().into());
    }
    if s.len()
        .checked_mul(c as usize)
        .is_none_or(|n| n > isize::MAX as usize)
    {
        return Err("strings: Repeat output length overflow".to_string().into());
    }
    Ok(Value::from(s.repeat(c as usize)))
}

/// A `func(a, b string) string` taking its arguments in template order.
fn two_strings(name: &str, args: Vec<Value>) -> FuncResult<(std::rc::Rc<str>, std::rc::Rc<str>)> {
    let [a, b] = take(name, args)?;
    Ok((args::string(&a)?, args::string(&b)?))
}

/// `trimAll CUTSET S`: `strings.Trim`.
pub(crate) fn trim_all(args: Vec<Value>) -> FuncResult {
    let (cut, s) = two_strings("trimAll", args)?;
    Ok(Value::from(s.trim_matches(|c| cut.contains(c))))
}

/// `trimall`: the deprecated spelling of `trimAll`.
pub(crate) fn trimall(args: Vec<Value>) -> FuncResult {
    let (cut, s) = two_strings("trimall", args)?;
    Ok(Value::from(s.trim_matches(|c| cut.contains(c))))
}

/// `trimPrefix PREFIX S`.
pub(crate) fn trim_prefix(args: Vec<Value>) -> FuncResult {
    let (p, s) = two_strings("trimPrefix", args)?;
    Ok(Value::from(s.strip_prefix(&*p).unwrap_or(&s)))
}

/// `trimSuffix SUFFIX S`.
pub(crate) fn trim_suffix(args: Vec<Value>) -> FuncResult {
    let (p, s) = two_strings("trimSuffix", args)?;
    Ok(Value::from(s.strip_suffix(&*p).unwrap_or(&s)))
}

/// `contains SUBSTR S`.
pub(crate) fn contains(args: Vec<Value>) -> FuncResult {
    let (sub, s) = two_strings("contains", args)?;
    Ok(Value::Bool(s.contains(&*sub)))
}

/// `hasPrefix PREFIX S`.
pub(crate) fn has_prefix(args: Vec<Value>) -> FuncResult {
    let (p, s) = two_strings("hasPrefix", args)?;
    Ok(Value::Bool(s.starts_with(&*p)))
}

/// `hasSuffix SUFFIX S`.
pub(crate) fn has_suffix(args: Vec<Value>) -> FuncResult {
    let (p, s) = two_strings("hasSuffix", args)?;
    Ok(Value::Bool(s.ends_with(&*p)))
}

/// `quote ARGS...`: each non-nil argument as a Go-quoted string, joined by spaces.
pub(crate) fn quote(args: Vec<Value>) -> FuncResult {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(|v| go_quote(&strval(v)))
        .collect();
    Ok(Value::from(parts.join(" ")))
}

/// `squote ARGS...`: each non-nil argument in single quotes, joined by spaces.
pub(crate) fn squote(args: Vec<Value>) -> FuncResult {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(|v| format!("'{}'", v.to_go_string()))
        .collect();
    Ok(Value::from(parts.join(" ")))
}

/// `cat ARGS...`: non-nil arguments printed with `%v`, joined by spaces.
pub(crate) fn cat(args: Vec<Value>) -> FuncResult {
    let parts: Vec<String> = args
        .iter()
        .filter(|v| !v.is_nil())
        .map(Value::to_go_string)
        .collect();
    Ok(Value::from(parts.join(" ")))
}

fn indent_by(spaces: i64, s: &str) -> Result<String, String> {
    if spaces < 0 {
        return Err("strings: negative Repeat count".to_string());
    }
    if spaces > i64::from(i32::MAX) {
        return Err("strings: Repeat output length overflow".to_string());
    }
    let pad = " ".repeat(spaces as usize);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// `indent N S`: N spaces before every line.
pub(crate) fn indent(args: Vec<Value>) -> FuncResult {
    let [n, s] = take("indent", args)?;
    Ok(Value::from(indent_by(args::int(&n)?, &args::string(&s)?)?))
}

/// `nindent N S`: a newline, then `indent N S`.
pub(crate) fn nindent(args: Vec<Value>) -> FuncResult {
    let [n, s] = take("nindent", args)?;
    Ok(Value::from(format!(
        "\n{}",
        indent_by(args::int(&n)?, &args::string(&s)?)?
    )))
}

/// `replace OLD NEW S`: every OLD replaced (an empty OLD inserts NEW around every rune, as Go does).
pub(crate) fn replace(args: Vec<Value>) -> FuncResult {
    let [old, new, s] = take("replace", args)?;
    let (old, new, s) = (args::string(&old)?, args::string(&new)?, args::string(&s)?);
    if old.is_empty() {
        let mut out = String::from(&*new);
        for c in s.chars() {
            out.push(c);
            out.push_str(&new);
        }
        return Ok(Value::from(out));
    }
    Ok(Value::from(s.replace(&*old, &new)))
}

/// `plural ONE MANY COUNT`.
pub(crate) fn plural(args: Vec<Value>) -> FuncResult {
    let [one, many, n] = take("plural", args)?;
    let (one, many, n) = (args::string(&one)?, args::string(&many)?, args::int(&n)?);
    Ok(Value::Str(if n == 1 { one } else { many }))
}

/// Go's `strings.Split` (an empty separator splits into runes; `n` < 0 means all, as `SplitN`).
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if n > 0 && chars.len() > n as usize {
            let mut head: Vec<String> = chars[..n as usize - 1].to_vec();
            let used: usize = head.iter().map(String::len).sum();
            head.push(s[used..].to_string());
            return head;
        }
        return chars;
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn indexed_map(parts: Vec<String>) -> Value {
    let entries: Entries = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (format!("_{i}"), Value::from(p)))
        .collect();
    Value::from(entries)
}

/// `splitList SEP S`: a list of the parts.
pub(crate) fn split_list(args: Vec<Value>) -> FuncResult {
    let (sep, s) = two_strings("splitList", args)?;
    Ok(string_list(go_split(&s, &sep, -1)))
}

/// `split SEP S`: a map `_0`, `_1`... of the parts.
pub(crate) fn split(args: Vec<Value>) -> FuncResult {
    let (sep, s) = two_strings("split", args)?;
    Ok(indexed_map(go_split(&s, &sep, -1)))
}

/// `splitn SEP N S`: a map of at most N parts.
pub(crate) fn splitn(args: Vec<Value>) -> FuncResult {
    let [sep, n, s] = take("splitn", args)?;
    let (sep, n, s) = (args::string(&sep)?, args::int(&n)?, args::string(&s)?);
    Ok(indexed_map(go_split(&s, &sep, n)))
}

/// `join SEP LIST`: the list's non-nil items as strings, joined.
pub(crate) fn join(args: Vec<Value>) -> FuncResult {
    let [sep, list] = take("join", args)?;
    Ok(Value::from(strslice(&list).join(&args::string(&sep)?)))
}

/// `sortAlpha LIST`: the items as strings, sorted; a non-list becomes a one-item list.
pub(crate) fn sort_alpha(args: Vec<Value>) -> FuncResult {
    let [list] = take("sortAlpha", args)?;
    let mut items = match &list {
        Value::List(_) => strslice(&list),
        other => vec![strval(other)],
    };
    items.sort();
    Ok(string_list(items))
}

/// `hello`: sprig's greeting.
pub(crate) fn hello(args: Vec<Value>) -> FuncResult {
    let [] = take("hello", args)?;
    Ok(Value::from("Hello!"))
}

/// `fail MSG`: stops the render with MSG.
pub(crate) fn fail(args: Vec<Value>) -> FuncResult {
    let [msg] = take("fail", args)?;
    Err(args::string(&msg)?.to_string().into())
}

/// `list ARGS...` and `tuple ARGS...`.
pub(crate) fn list(args: Vec<Value>) -> FuncResult {
    Ok(Value::from(
        args.into_iter().map(args::stored).collect::<Vec<_>>(),
    ))
}

/// `seq [START [STEP]] END`: the numbers as a space-separated string.
pub(crate) fn seq(args: Vec<Value>) -> FuncResult {
    let p: Vec<i64> = args.iter().map(args::int).collect::<Result<_, _>>()?;
    let nums = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            super::math::until_step(1, end.saturating_add(inc), inc)
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            super::math::until_step(*start, end.saturating_add(step), step)
        }
        [start, step, end] => {
            let mut inc = 1;
            if end < start {
                inc = -1;
                if *step > 0 {
                    return Ok(Value::from(""));
                }
            }
            super::math::until_step(*start, end.saturating_add(inc), *step)
        }
        _ => Vec::new(),
    };
    let text: Vec<String> = nums.iter().map(i64::to_string).collect();
    Ok(Value::from(text.join(" ")))
}
