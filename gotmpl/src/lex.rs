//! Splits template text into literal text and actions, and actions into tokens, as Go's `text/template`
//! lexer does: `{{- ` / ` -}}` trimming, `{{/* comments */}}`, quoted, raw and character constants, numbers.

/// A lexing failure at a byte offset.
#[derive(Debug)]
pub(crate) struct LexError {
    pub pos: usize,
    pub message: String,
    /// Where the action holding the error starts (`{{`), for errors inside one.
    pub action: Option<usize>,
}

/// A token inside an action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `.`
    Dot,
    /// `.name` (a chain `.a.b` is several tokens, not separated by space).
    Field(String),
    /// `$` or `$name`.
    Var(String),
    /// A function name or keyword.
    Ident(String),
    /// A quoted or raw string constant, unquoted; with its source text.
    Str(String, String),
    /// A number or character constant's source text.
    Number(String),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`
    Nil,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `|`
    Pipe,
    /// `,`
    Comma,
    /// `:=`
    Declare,
    /// `=`
    Assign,
    /// Any other printable ASCII character (Go reports it where the parser meets it).
    Char(char),
}

/// A token with its byte offset and whether space preceded it.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub spaced: bool,
}

/// A piece of template source.
#[derive(Debug)]
pub(crate) enum Piece {
    /// Literal text: a byte range of the source (already trimmed).
    Text(usize, usize),
    /// An action: where its `{{` is, and its tokens.
    Action { pos: usize, tokens: Vec<Token> },
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn trim_left(src: &str, start: usize, end: usize) -> usize {
    start + src[start..end].len()
        - src[start..end]
            .trim_start_matches([' ', '\t', '\r', '\n'])
            .len()
}

fn trim_right(src: &str, start: usize, end: usize) -> usize {
    start
        + src[start..end]
            .trim_end_matches([' ', '\t', '\r', '\n'])
            .len()
}

/// Lexes the whole source.
pub(crate) fn lex(src: &str) -> Result<Vec<Piece>, LexError> {
    let bytes = src.as_bytes();
    let mut pieces = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    loop {
        let open = src[pos..].find("{{").map(|i| pos + i);
        let mut text_start = pos;
        let mut text_end = open.unwrap_or(src.len());
        if trim_next {
            text_start = trim_left(src, text_start, text_end);
        }
        let Some(open) = open else {
            if text_start < text_end {
                pieces.push(Piece::Text(text_start, text_end));
            }
            break;
        };
        let mut inner = open + 2;
        if bytes.get(inner) == Some(&b'-') && bytes.get(inner + 1).is_some_and(|c| is_space(*c)) {
            text_end = trim_right(src, text_start, text_end);
            inner += 2;
        }
        if text_start < text_end {
            pieces.push(Piece::Text(text_start, text_end));
        }
        if src[inner..].starts_with("/*") {
            let Some(end) = src[inner + 2..].find("*/") else {
                return Err(LexError {
                    action: None,
                    pos: open,
                    message: "unclosed comment".into(),
                });
            };
            let close = inner + 2 + end + 2;
            let Some((next, trim)) = right_delim(src, close) else {
                return Err(LexError {
                    action: None,
                    pos: open,
                    message: "comment ends before closing delimiter".into(),
                });
            };
            pos = next;
            trim_next = trim;
            continue;
        }
        let (tokens, next, trim) = lex_action(src, inner).map_err(|e| LexError {
            action: Some(open),
            ..e
        })?;
        pieces.push(Piece::Action { pos: open, tokens });
        pos = next;
        trim_next = trim;
    }
    Ok(pieces)
}

/// If `}}` or ` -}}` (any space before the `-`) starts at `pos`: where text resumes and whether to trim it.
fn right_delim(src: &str, pos: usize) -> Option<(usize, bool)> {
    let rest = &src.as_bytes()[pos.min(src.len())..];
    if rest.starts_with(b"}}") {
        Some((pos + 2, false))
    } else if rest.len() >= 4 && is_space(rest[0]) && &rest[1..4] == b"-}}" {
        Some((pos + 4, true))
    } else {
        None
    }
}

fn word_len(src: &str, pos: usize) -> usize {
    src[pos..]
        .chars()
        .take_while(|c| is_alnum(*c))
        .map(char::len_utf8)
        .sum()
}

fn lex_action(src: &str, mut pos: usize) -> Result<(Vec<Token>, usize, bool), LexError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut spaced = true;
    let mut parens: Vec<usize> = Vec::new();
    loop {
        if let Some((next, trim)) = right_delim(src, pos) {
            // Go reports this where the lexer stands (the `}}`); the paren is more use to a reader, and
            // the two differ only when the action spans lines.
            if let Some(&open) = parens.last() {
                return Err(LexError {
                    action: None,
                    pos: open,
                    message: "unclosed left paren".into(),
                });
            }
            return Ok((tokens, next, trim));
        }
        let Some(&c) = bytes.get(pos) else {
            return Err(LexError {
                action: None,
                pos,
                message: "unclosed action".into(),
            });
        };
        if is_space(c) {
            pos += 1;
            spaced = true;
            continue;
        }
        let start = pos;
        let err = |pos: usize, message: String| LexError {
            action: None,
            pos,
            message,
        };
        let tok = match c {
            b'(' => {
                parens.push(pos);
                pos += 1;
                Tok::LParen
            }
            b')' => {
                if parens.pop().is_none() {
                    return Err(err(pos, "unexpected right paren".into()));
                }
                pos += 1;
                Tok::RParen
            }
            b'|' => {
                pos += 1;
                Tok::Pipe
            }
            b',' => {
                pos += 1;
                Tok::Comma
            }
            b'=' => {
                pos += 1;
                Tok::Assign
            }
            b':' => {
                if bytes.get(pos + 1) != Some(&b'=') {
                    return Err(err(pos, "expected :=".into()));
                }
                pos += 2;
                Tok::Declare
            }
            b'"' | b'\'' => {
                let end = quoted_end(src, pos, c)?;
                let text = &src[pos..end];
                pos = end;
                if c == b'"' {
                    let value = unquote(text).ok_or_else(|| err(start, "invalid syntax".into()))?;
                    Tok::Str(value, text.to_string())
                } else {
                    Tok::Number(text.to_string())
                }
            }
            b'`' => {
                let Some(end) = src[pos + 1..].find('`') else {
                    return Err(err(start, "unterminated raw quoted string".into()));
                };
                let text = &src[pos..pos + end + 2];
                pos += end + 2;
                Tok::Str(text[1..text.len() - 1].replace('\r', ""), text.to_string())
            }
            b'.' if bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
                let end = number_end(src, pos)?;
                let text = &src[pos..end];
                pos = end;
                Tok::Number(text.to_string())
            }
            b'.' => {
                let len = word_len(src, pos + 1);
                pos += 1 + len;
                if len == 0 {
                    Tok::Dot
                } else {
                    Tok::Field(src[start + 1..pos].to_string())
                }
            }
            b'$' => {
                let len = word_len(src, pos + 1);
                pos += 1 + len;
                Tok::Var(src[start..pos].to_string())
            }
            b'0'..=b'9' | b'+' | b'-' => {
                if !c.is_ascii_digit()
                    && !bytes
                        .get(pos + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == b'.')
                {
                    pos += 1;
                    Tok::Char(c as char)
                } else {
                    let end = number_end(src, pos)?;
                    let text = &src[pos..end];
                    pos = end;
                    Tok::Number(text.to_string())
                }
            }
            _ => {
                let len = word_len(src, pos);
                if len == 0 {
                    let ch = src[pos..].chars().next().unwrap_or('?');
                    if ch.is_ascii_graphic() {
                        pos += 1;
                        Tok::Char(ch)
                    } else {
                        return Err(err(
                            pos,
                            format!("unrecognized character in action: U+{:04X}", ch as u32),
                        ));
                    }
                } else {
                    let word = &src[pos..pos + len];
                    pos += len;
                    if let Some(next) = src[pos..].chars().next()
                        && !matches!(
                            next,
                            ' ' | '\t'
                                | '\r'
                                | '\n'
                                | '.'
                                | ','
                                | '|'
                                | ':'
                                | ')'
                                | '('
                                | '}'
                                | '='
                        )
                    {
                        return Err(err(
                            pos,
                            format!("bad character U+{:04X} '{next}'", next as u32),
                        ));
                    }
                    match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        _ => Tok::Ident(word.to_string()),
                    }
                }
            }
        };
        tokens.push(Token {
            tok,
            pos: start,
            spaced,
        });
        spaced = false;
    }
}

/// The end of a `"..."` or `'...'` literal starting at `start`.
fn quoted_end(src: &str, start: usize, quote: u8) -> Result<usize, LexError> {
    let bytes = src.as_bytes();
    let mut pos = start + 1;
    loop {
        match bytes.get(pos) {
            None | Some(b'\n') => {
                return Err(LexError {
                    action: None,
                    pos: start,
                    message: if quote == b'"' {
                        "unterminated quoted string".into()
                    } else {
                        "unterminated character constant".into()
                    },
                });
            }
            Some(b'\\') => pos += 2,
            Some(c) if *c == quote => return Ok(pos + 1),
            Some(_) => pos += 1,
        }
    }
}

/// Where a number starting at `start` ends (Go's scanNumber); a letter right after it is an error.
fn number_end(src: &str, start: usize) -> Result<usize, LexError> {
    let bytes = src.as_bytes();
    let mut pos = start;
    if matches!(bytes.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exponent: &[u8] = b"eE";
    if bytes.get(pos) == Some(&b'0') {
        match bytes.get(pos + 1) {
            Some(b'x' | b'X') => {
                pos += 2;
                digits = b"0123456789abcdefABCDEF_";
                exponent = b"pP";
            }
            Some(b'o' | b'O') => {
                pos += 2;
                digits = b"01234567_";
                exponent = b"";
            }
            Some(b'b' | b'B') => {
                pos += 2;
                digits = b"01_";
                exponent = b"";
            }
            _ => {}
        }
    }
    let run = |pos: &mut usize, set: &[u8]| {
        while bytes.get(*pos).is_some_and(|c| set.contains(c)) {
            *pos += 1;
        }
    };
    run(&mut pos, digits);
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        run(&mut pos, digits);
    }
    if !exponent.is_empty() && bytes.get(pos).is_some_and(|c| exponent.contains(c)) {
        pos += 1;
        if matches!(bytes.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        run(&mut pos, b"0123456789_");
    }
    if let Some(next) = src[pos..].chars().next()
        && is_alnum(next)
    {
        let end = pos + next.len_utf8();
        return Err(LexError {
            action: None,
            pos: start,
            message: format!("bad number syntax: \"{}\"", &src[start..end]),
        });
    }
    Ok(pos)
}

/// Go's `strconv.Unquote` of a double-quoted literal (`None`: invalid syntax).
pub(crate) fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let (value, rest) = unquote_chars(inner, b'"')?;
    rest.is_empty().then_some(value)
}

/// The value of a character constant `'x'`.
pub(crate) fn unquote_char(text: &str) -> Option<char> {
    let inner = text.strip_prefix('\'')?.strip_suffix('\'')?;
    let (value, rest) = unquote_chars(inner, b'\'')?;
    let mut chars = value.chars();
    match (chars.next(), chars.next(), rest.is_empty()) {
        (Some(c), None, true) => Some(c),
        _ => None,
    }
}

/// Decodes Go escapes until the end of `s`.
fn unquote_chars(s: &str, quote: u8) -> Option<(String, &str)> {
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c == quote {
            return None;
        }
        if c != b'\\' {
            out.push(c);
            pos += 1;
            continue;
        }
        let e = *bytes.get(pos + 1)?;
        pos += 2;
        let simple = match e {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' => Some(b'\\'),
            b'\'' | b'"' if e == quote => Some(e),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let hex = |n: usize, pos: &mut usize| -> Option<u32> {
            let digits = s.get(*pos..*pos + n)?;
            if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            *pos += n;
            u32::from_str_radix(digits, 16).ok()
        };
        match e {
            b'x' => out.push(u8::try_from(hex(2, &mut pos)?).ok()?),
            b'u' | b'U' => {
                let ch = char::from_u32(hex(if e == b'u' { 4 } else { 8 }, &mut pos)?)?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            b'0'..=b'7' => {
                let digits = s.get(pos - 1..pos + 2)?;
                if !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
                    return None;
                }
                out.push(u8::try_from(u32::from_str_radix(digits, 8).ok()?).ok()?);
                pos += 2;
            }
            _ => return None,
        }
    }
    Some((String::from_utf8(out).ok()?, ""))
}
