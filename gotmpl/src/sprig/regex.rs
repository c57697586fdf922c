//! Regular expressions with Go's RE2 semantics: Perl classes (`\d`, `\w`, `\s`, `\b`) are ASCII-only as
//! in Go, replacements expand `$1`/`${name}` as Go's `Regexp.Expand` does, and `regexSplit` follows
//! `Regexp.Split`. Non-`must` variants fail on a bad pattern too (sprig uses `MustCompile`), except
//! `regexMatch`, which is false.

use crate::value::FuncResult;
use regex::Regex;

use super::args::{self, take};
use super::conversion::string_list;
use crate::value::Value;

/// Rewrites Go's ASCII-only Perl classes into explicit ASCII classes for the `regex` crate.
fn go_syntax(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    let mut in_class = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let class = match n {
                    'd' => Some(("0-9", false)),
                    'D' => Some(("0-9", true)),
                    'w' => Some(("0-9A-Za-z_", false)),
                    'W' => Some(("0-9A-Za-z_", true)),
                    's' => Some(("\\t\\n\\f\\r ", false)),
                    'S' => Some(("\\t\\n\\f\\r ", true)),
                    _ => None,
                };
                match (class, in_class > 0) {
                    (Some((set, false)), false) => out.push_str(&format!("[{set}]")),
                    (Some((set, true)), _) => out.push_str(&format!("[^{set}]")),
                    (Some((set, false)), true) => out.push_str(set),
                    (None, false) if n == 'b' || n == 'B' => out.push_str(&format!("(?-u:\\{n})")),
                    // \Q...\E: a literal run (a repetition after it applies to its last character).
                    (None, false) if n == 'Q' => {
                        let rest = chars.as_str();
                        let (literal, after) = rest.split_once("\\E").unwrap_or((rest, ""));
                        for lc in literal.chars() {
                            out.push_str(&regex::escape(lc.encode_utf8(&mut [0; 4])));
                        }
                        chars = after.chars();
                    }
                    (None, _) => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' => {
                out.push('[');
                if in_class > 0 {
                    // POSIX classes like [[:alpha:]] stay as they are.
                    if let Some(rest) = chars.as_str().strip_prefix(':')
                        && let Some(end) = rest.find(":]")
                    {
                        out.push(':');
                        out.push_str(&rest[..end + 2]);
                        chars = rest[end + 2..].chars();
                        continue;
                    }
                }
                in_class += 1;
                let rest = chars.as_str();
                if let Some(r) = rest.strip_prefix('^') {
                    out.push('^');
                    chars = r.chars();
                }
                // A leading ']' is a literal in a class.
                if let Some(r) = chars.as_str().strip_prefix(']') {
                    out.push_str("\\]");
                    chars = r.chars();
                }
            }
            ']' if in_class > 0 => {
                in_class -= 1;
                out.push(']');
            }
            // Go reads a '{' that does not start a counted repetition as a literal.
            '{' if in_class == 0 => {
                let at = pattern.len() - chars.as_str().len() - 1;
                if counted_repeat_len(&pattern[at..]).is_some() {
                    out.push('{');
                } else {
                    out.push_str("\\{");
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The length of a `{n}`, `{n,}` or `{n,m}` repeat at the start of `s`, if there is one.
fn counted_repeat_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix('{')?;
    let end = body.find('}')?;
    let inner = &body[..end];
    let (lo, hi) = inner.split_once(',').unwrap_or((inner, "0"));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    (digits(lo) && (hi.is_empty() || digits(hi))).then_some(end + 2)
}

/// Go rejects stacked repetition (`a**`, `a+*`, `a{2}*`), which the `regex` crate accepts; a single `?`
/// after a repetition makes it lazy and is allowed.
fn check_nested_repeats(pattern: &str) -> Result<(), String> {
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    // Where the repetition operator just before the current position began, and whether it is lazy.
    let mut last_repeat: Option<(usize, bool)> = None;
    while i < b.len() {
        let c = b[i];
        if in_class {
            match c {
                b'\\' => i += 1,
                b']' => in_class = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        let op_len = match c {
            b'*' | b'+' | b'?' => Some(1),
            b'{' => counted_repeat_len(&pattern[i..]),
            _ => None,
        };
        match op_len {
            Some(len) => {
                match last_repeat {
                    Some((start, false)) if c == b'?' => last_repeat = Some((start, true)),
                    Some((start, _)) => {
                        let ops = &pattern[start..i + len];
                        return Err(format!(
                            "error parsing regexp: invalid nested repetition operator: `{ops}`"
                        ));
                    }
                    None => last_repeat = Some((i, false)),
                }
                i += len;
            }
            None => {
                last_repeat = None;
                match c {
                    b'\\' => i += 2,
                    b'[' => {
                        in_class = true;
                        i += 1;
                        // A leading ']' (after an optional '^') is literal.
                        if b.get(i) == Some(&b'^') {
                            i += 1;
                        }
                        if b.get(i) == Some(&b']') {
                            i += 1;
                        }
                    }
                    _ => i += 1,
                }
            }
        }
    }
    Ok(())
}

/// Compiles a Go regular expression, with Go's error prefix.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    check_nested_repeats(pattern)?;
    regex::RegexBuilder::new(&go_syntax(pattern))
        .octal(true)
        .build()
        .map_err(|e| {
            let detail = e.to_string();
            let last = detail
                .lines()
                .rfind(|l| l.starts_with("error:"))
                .unwrap_or(&detail);
            let reason = last.trim_start_matches("error: ");
            // Go's words for the common mistakes.
            let reason = match reason {
                "unclosed group" => "missing closing )",
                "unopened group" => "unexpected )",
                "unclosed character class" => "missing closing ]",
                "repetition operator missing expression" => {
                    "missing argument to repetition operator"
                }
                other => other,
            };
            format!("error parsing regexp: {reason}: `{pattern}`")
        })
}

/// Compiles a pattern argument; the non-`must` functions use Go's `MustCompile`, whose panic message
/// names the pattern.
fn regex_arg(v: &Value, must: bool) -> FuncResult<Regex> {
    let pattern = args::string(v)?;
    compile(&pattern).map_err(|e| {
        if must {
            e
        } else {
            format!("regexp: Compile({}): {e}", go_backquote(&pattern))
        }
        .into()
    })
}

/// Go's `regexp` `quote`: backquotes when possible, else a Go-quoted string.
fn go_backquote(s: &str) -> String {
    if crate::value::can_backquote(s) {
        format!("`{s}`")
    } else {
        crate::value::go_quote(s)
    }
}

/// `regexMatch RE S`: false for a bad pattern.
pub(crate) fn regex_match(args: Vec<Value>) -> FuncResult {
    let [re, s] = take("regexMatch", args)?;
    let s = args::string(&s)?;
    Ok(Value::Bool(
        regex_arg(&re, true).is_ok_and(|r| r.is_match(&s)),
    ))
}

/// `mustRegexMatch RE S`.
pub(crate) fn must_regex_match(args: Vec<Value>) -> FuncResult {
    let [re, s] = take("mustRegexMatch", args)?;
    let s = args::string(&s)?;
    Ok(Value::Bool(regex_arg(&re, true)?.is_match(&s)))
}

fn find_all(name: &str, args: Vec<Value>, must: bool) -> FuncResult {
    let [re, s, n] = take(name, args)?;
    let (s, n) = (args::string(&s)?, args::int(&n)?);
    let re = regex_arg(&re, must)?;
    let limit = if n < 0 { usize::MAX } else { n as usize };
    let found: Vec<String> = re
        .find_iter(&s)
        .take(limit)
        .map(|m| m.as_str().to_string())
        .collect();
    // Go's `FindAllString` returns a nil slice when nothing matches (`toJson` prints `null`).
    Ok(if found.is_empty() {
        Value::nil_list()
    } else {
        string_list(found)
    })
}

/// `regexFindAll RE S N`: at most N matches (all when N < 0).
pub(crate) fn regex_find_all(args: Vec<Value>) -> FuncResult {
    find_all("regexFindAll", args, false)
}

/// `mustRegexFindAll RE S N`.
pub(crate) fn must_regex_find_all(args: Vec<Value>) -> FuncResult {
    find_all("mustRegexFindAll", args, true)
}

fn find(name: &str, args: Vec<Value>, must: bool) -> FuncResult {
    let [re, s] = take(name, args)?;
    let s = args::string(&s)?;
    Ok(Value::from(
        regex_arg(&re, must)?.find(&s).map_or("", |m| m.as_str()),
    ))
}

/// `regexFind RE S`: the first match or "".
pub(crate) fn regex_find(args: Vec<Value>) -> FuncResult {
    find("regexFind", args, false)
}

/// `mustRegexFind RE S`.
pub(crate) fn must_regex_find(args: Vec<Value>) -> FuncResult {
    find("mustRegexFind", args, true)
}

fn replace_all(name: &str, args: Vec<Value>, must: bool, literal: bool) -> FuncResult {
    let [re, s, repl] = take(name, args)?;
    let (s, repl) = (args::string(&s)?, args::string(&repl)?);
    let re = regex_arg(&re, must)?;
    let out = if literal {
        re.replace_all(&s, regex::NoExpand(&repl))
    } else {
        re.replace_all(&s, &*repl)
    };
    Ok(Value::from(out.into_owned()))
}

/// `regexReplaceAll RE S REPL`: `$1`, `${name}` expanded as Go's `Regexp.Expand` does.
pub(crate) fn regex_replace_all(args: Vec<Value>) -> FuncResult {
    replace_all("regexReplaceAll", args, false, false)
}

/// `mustRegexReplaceAll RE S REPL`.
pub(crate) fn must_regex_replace_all(args: Vec<Value>) -> FuncResult {
    replace_all("mustRegexReplaceAll", args, true, false)
}

/// `regexReplaceAllLiteral RE S REPL`: REPL inserted as is.
pub(crate) fn regex_replace_all_literal(args: Vec<Value>) -> FuncResult {
    replace_all("regexReplaceAllLiteral", args, false, true)
}

/// `mustRegexReplaceAllLiteral RE S REPL`.
pub(crate) fn must_regex_replace_all_literal(args: Vec<Value>) -> FuncResult {
    replace_all("mustRegexReplaceAllLiteral", args, true, true)
}

fn split(name: &str, args: Vec<Value>, must: bool) -> FuncResult {
    let [re, s, n] = take(name, args)?;
    let (s, n) = (args::string(&s)?, args::int(&n)?);
    let pattern = args::string(&re)?;
    let re = regex_arg(&re, must)?;
    if n == 0 {
        return Ok(Value::from(Vec::new()));
    }
    if !pattern.is_empty() && s.is_empty() {
        return Ok(string_list(vec![String::new()]));
    }
    let limit = if n < 0 { usize::MAX } else { n as usize };
    let mut parts = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in re.find_iter(&s).take(limit) {
        if n > 0 && parts.len() == limit - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            parts.push(s[beg..end].to_string());
        }
        beg = m.end();
    }
    if end != s.len() {
        parts.push(s[beg..].to_string());
    }
    Ok(string_list(parts))
}

/// `regexSplit RE S N`: Go's `Regexp.Split` (at most N parts; all when N < 0).
pub(crate) fn regex_split(args: Vec<Value>) -> FuncResult {
    split("regexSplit", args, false)
}

/// `mustRegexSplit RE S N`.
pub(crate) fn must_regex_split(args: Vec<Value>) -> FuncResult {
    split("mustRegexSplit", args, true)
}

/// `regexQuoteMeta S`: Go's `QuoteMeta` (escapes `\.+*?()|[]{}^$`).
pub(crate) fn regex_quote_meta(args: Vec<Value>) -> FuncResult {
    let [s] = take("regexQuoteMeta", args)?;
    let s = args::string(&s)?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_only_as_in_go() {
        let re = compile(r"^\d+$").expect("compiles");
        assert!(re.is_match("123"));
        assert!(!re.is_match("١٢٣"));
        assert!(compile(r"[\d\s]x[^\w]").expect("compiles").is_match("1x-"));
        assert!(compile(r"[[:alpha:]]+").expect("compiles").is_match("ab"));
    }
}
