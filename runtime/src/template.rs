//! Go text/template rendering of `*.tmpl` files (`{{ .KEY }}`, `default`, `if`, `range`, ...) over the env.
//!
//! sealos renders the `*.tmpl` files of a cluster image with Go's `text/template` plus the sprig function
//! library, the env (a `map[string]string`) as the dot. This module implements the part of that language
//! public cluster images use, with Go's semantics:
//!
//! - Actions: `{{ pipeline }}`, `{{- ... -}}` whitespace trimming (the `-` must be followed / preceded by a
//!   space), comments `{{/* ... */}}`, `if` / `else if` / `else` / `end`, `with` / `else with`, `range`
//!   (over lists, `split` maps in sorted key order, integers; `{{ else }}` when empty; `break`, `continue`),
//!   variables `$x := pipeline`, `$x = pipeline`, `range $i, $v := ...`, `$` (the root), field chains
//!   `.a.b`, `$x.a`, `(pipeline).a`, pipelines `a | f b`, parentheses, string (`"..."`, `` `raw` ``),
//!   character, number, `true`, `false` and `nil` constants. `define`, `template` and `block` are refused.
//! - Go built-ins: `and or not eq ne lt le gt ge len index print printf println` (`and`/`or` short-circuit
//!   and return an operand, as in Go). `printf` knows `%v %s %d %q %t %x %X %f %%` with flags `-` `0` `+`,
//!   width and precision.
//! - sprig subset: `default empty coalesce ternary required fail quote squote upper lower title trim trimAll
//!   trimPrefix trimSuffix replace contains hasPrefix hasSuffix b64enc b64dec indent nindent split splitList
//!   join toString atoi int add add1 sub list first last`.
//!
//! Differences from sealos, on purpose:
//! - Output of a missing key (`{{ .NOPE }}`, or `upper .NOPE`) is an error naming the key and its
//!   line:column, where Go prints `<no value>` into the file. A missing key is still falsy in `if`/`with`,
//!   replaced by `default`, and unequal to everything in `eq`/`ne`, so `{{ if .X }}` and
//!   `{{ .X | default "v" }}` behave exactly as in sealos.
//! - `b64dec` of invalid base64 is an error (sprig returns the error text as the value); a function given
//!   the wrong type of value is an error rather than Go's `%!verb(...)` for a few `printf` cases.
//! - Rendering is bounded (nesting depth, steps, output size): a template that exceeds a bound fails with an
//!   error instead of exhausting the machine.
//!
//! Every error carries the 1-based line and column of the action at fault.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct TemplateError {
    /// 1-based line of the offending action.
    pub line: usize,
    /// 1-based column of the offending action.
    pub column: usize,
    /// What is wrong, with a hint.
    pub message: String,
}

/// Renders `template` with `values` as the dot (`{{ .KEY }}`).
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let nodes = parse(template).map_err(|fail| fail.locate(template))?;
    let root = Value::Map(
        values
            .iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    );
    let mut exec = Exec {
        out: String::new(),
        vars: vec![("$".to_string(), root.clone())],
        steps: 0,
        depth: 0,
    };
    exec.walk(&nodes, &root)
        .map_err(|fail| fail.locate(template))?;
    Ok(exec.out)
}

/// Deepest nesting of blocks and parentheses accepted.
const MAX_DEPTH: usize = 100;
/// Most evaluation steps (actions, calls, loop iterations) one render may take.
const MAX_STEPS: u64 = 1_000_000;
/// Largest output or intermediate string, in bytes.
const MAX_SIZE: usize = 16 << 20;
/// Largest `printf` width or precision and `indent` count.
const MAX_PAD: usize = 1 << 16;

/// An error at a byte offset, before line and column are known.
#[derive(Debug)]
struct Fail {
    pos: usize,
    message: String,
}

impl Fail {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        Fail {
            pos,
            message: message.into(),
        }
    }

    fn locate(self, text: &str) -> TemplateError {
        let pos = self.pos.min(text.len());
        let before = text.get(..pos).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        TemplateError {
            line,
            column,
            message: self.message,
        }
    }
}

type Res<T> = Result<T, Fail>;

// ---------------------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    LParen,
    RParen,
    Pipe,
    Comma,
    Declare,
    Assign,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
    /// Whitespace came right before this token.
    spaced: bool,
}

/// A piece of the template: literal text or one action's tokens.
enum Piece {
    Text(String),
    Action { pos: usize, tokens: Vec<Token> },
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lex(src: &str) -> Res<Vec<Piece>> {
    let bytes = src.as_bytes();
    let mut pieces = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos <= src.len() {
        let open = src[pos..].find("{{").map(|i| pos + i);
        let mut text = &src[pos..open.unwrap_or(src.len())];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = open else {
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_string()));
            }
            break;
        };
        let mut inner = open + 2;
        if bytes.get(inner) == Some(&b'-') && bytes.get(inner + 1).is_some_and(|c| is_space(*c)) {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            inner += 2;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        // A comment: `{{/* ... */}}`, optionally with trim markers.
        let after_space = inner + bytes[inner..].iter().take_while(|c| is_space(**c)).count();
        if src[after_space..].starts_with("/*") {
            let Some(end) = src[after_space + 2..].find("*/") else {
                return Err(Fail::new(open, "unclosed comment: end it with `*/}}`"));
            };
            let close = after_space + 2 + end + 2;
            let (next, trim) = right_delim(src, close).ok_or_else(|| {
                Fail::new(open, "comment ends before closing delimiter: write `*/}}`")
            })?;
            pos = next;
            trim_next = trim;
            continue;
        }
        let (tokens, next, trim) = lex_action(src, inner)?;
        pieces.push(Piece::Action { pos: open, tokens });
        pos = next;
        trim_next = trim;
    }
    Ok(pieces)
}

/// If `}}` or ` -}}` starts at `pos`, where the text resumes and whether to trim it.
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

fn lex_action(src: &str, mut pos: usize) -> Res<(Vec<Token>, usize, bool)> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut spaced = true;
    loop {
        if let Some((next, trim)) = right_delim(src, pos) {
            return Ok((tokens, next, trim));
        }
        let Some(&c) = bytes.get(pos) else {
            return Err(Fail::new(pos, "unclosed action: end it with `}}`"));
        };
        if is_space(c) {
            pos += 1;
            spaced = true;
            continue;
        }
        let start = pos;
        let tok = match c {
            b'(' => {
                pos += 1;
                Tok::LParen
            }
            b')' => {
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
            b':' if bytes.get(pos + 1) == Some(&b'=') => {
                pos += 2;
                Tok::Declare
            }
            b'"' => {
                let (s, next) = lex_quoted(src, pos, b'"')?;
                pos = next;
                Tok::Str(s)
            }
            b'\'' => {
                let (s, next) = lex_quoted(src, pos, b'\'')?;
                let mut chars = s.chars();
                let (Some(ch), None) = (chars.next(), chars.next()) else {
                    return Err(Fail::new(
                        start,
                        "a character constant holds exactly one character",
                    ));
                };
                pos = next;
                Tok::Int(i64::from(u32::from(ch)))
            }
            b'`' => {
                let Some(end) = src[pos + 1..].find('`') else {
                    return Err(Fail::new(
                        start,
                        "unterminated raw string: end it with a backquote",
                    ));
                };
                let s = src[pos + 1..pos + 1 + end].replace('\r', "");
                pos += end + 2;
                Tok::Str(s)
            }
            b'.' if bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, next) = lex_number(src, pos)?;
                pos = next;
                tok
            }
            b'.' => {
                let (chain, next) = lex_chain(src, pos);
                pos = next;
                if chain.is_empty() {
                    pos += 1;
                    Tok::Dot
                } else {
                    Tok::Field(chain)
                }
            }
            b'$' => {
                let len = src[pos + 1..]
                    .chars()
                    .take_while(|c| is_word(*c))
                    .map(char::len_utf8)
                    .sum::<usize>();
                let name = src[pos..pos + 1 + len].to_string();
                let (chain, next) = lex_chain(src, pos + 1 + len);
                pos = next;
                Tok::Var(name, chain)
            }
            b'0'..=b'9' => {
                let (tok, next) = lex_number(src, pos)?;
                pos = next;
                tok
            }
            b'+' | b'-' if bytes.get(pos + 1).is_some_and(u8::is_ascii_digit) => {
                let (tok, next) = lex_number(src, pos)?;
                pos = next;
                tok
            }
            _ => {
                let word: usize = src[pos..]
                    .chars()
                    .take_while(|c| is_word(*c))
                    .map(char::len_utf8)
                    .sum();
                if word == 0 {
                    let ch = src[pos..].chars().next().unwrap_or('?');
                    return Err(Fail::new(pos, format!("unexpected `{ch}` in action")));
                }
                let name = &src[pos..pos + word];
                pos += word;
                match name {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(name.to_string()),
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

/// `.a.b.c` starting at `pos` (which holds a `.`): the names and where the chain ends.
fn lex_chain(src: &str, mut pos: usize) -> (Vec<String>, usize) {
    let mut chain = Vec::new();
    while src.as_bytes().get(pos) == Some(&b'.') {
        let len: usize = src[pos + 1..]
            .chars()
            .take_while(|c| is_word(*c))
            .map(char::len_utf8)
            .sum();
        if len == 0 {
            break;
        }
        chain.push(src[pos + 1..pos + 1 + len].to_string());
        pos += 1 + len;
    }
    (chain, pos)
}

fn lex_number(src: &str, start: usize) -> Res<(Tok, usize)> {
    let bytes = src.as_bytes();
    let mut pos = start;
    if matches!(bytes.get(pos), Some(b'+' | b'-')) {
        pos += 1;
    }
    let hex = bytes.get(pos) == Some(&b'0') && matches!(bytes.get(pos + 1), Some(b'x' | b'X'));
    if hex {
        pos += 2;
        while bytes
            .get(pos)
            .is_some_and(|c| c.is_ascii_hexdigit() || *c == b'_')
        {
            pos += 1;
        }
    } else {
        let digits = |pos: &mut usize| {
            while bytes
                .get(*pos)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'_')
            {
                *pos += 1;
            }
        };
        digits(&mut pos);
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            digits(&mut pos);
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            digits(&mut pos);
        }
    }
    let text = &src[start..pos];
    let bad = || Fail::new(start, format!("bad number syntax: `{text}`"));
    if src[pos..]
        .chars()
        .next()
        .is_some_and(|c| is_word(c) || c == '.')
    {
        return Err(bad());
    }
    let clean = text.replace('_', "");
    let (negative, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let tok = if hex {
        let value = i64::from_str_radix(&digits[2..], 16).map_err(|_| bad())?;
        Tok::Int(if negative { -value } else { value })
    } else if digits.contains(['.', 'e', 'E']) {
        Tok::Float(clean.parse::<f64>().map_err(|_| bad())?)
    } else {
        Tok::Int(clean.parse::<i64>().map_err(|_| bad())?)
    };
    Ok((tok, pos))
}

/// A `"..."` or `'...'` literal with Go escapes, starting at `start`.
fn lex_quoted(src: &str, start: usize, quote: u8) -> Res<(String, usize)> {
    let bytes = src.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut pos = start + 1;
    let unterminated = || Fail::new(start, "unterminated quoted string");
    loop {
        let c = *bytes.get(pos).ok_or_else(unterminated)?;
        if c == b'\n' {
            return Err(unterminated());
        }
        if c == quote {
            pos += 1;
            break;
        }
        if c != b'\\' {
            out.push(c);
            pos += 1;
            continue;
        }
        let e = *bytes.get(pos + 1).ok_or_else(unterminated)?;
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
        let hex = |n: usize, pos: &mut usize| -> Res<u32> {
            let digits = src.get(*pos..*pos + n).ok_or_else(unterminated)?;
            let value = u32::from_str_radix(digits, 16)
                .map_err(|_| Fail::new(*pos, format!("bad escape `\\{}{digits}`", e as char)))?;
            *pos += n;
            Ok(value)
        };
        match e {
            b'x' => out.push(hex(2, &mut pos)? as u8),
            b'u' | b'U' => {
                let code = hex(if e == b'u' { 4 } else { 8 }, &mut pos)?;
                let ch = char::from_u32(code).ok_or_else(|| {
                    Fail::new(pos, format!("escape is not a valid character: {code:#x}"))
                })?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            b'0'..=b'7' => {
                let digits = src.get(pos - 1..pos + 2).ok_or_else(unterminated)?;
                let value = u32::from_str_radix(digits, 8)
                    .ok()
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or_else(|| Fail::new(pos, format!("bad octal escape `\\{digits}`")))?;
                out.push(value);
                pos += 2;
            }
            _ => {
                return Err(Fail::new(
                    pos - 2,
                    format!("unknown escape `\\{}` in string", e as char),
                ));
            }
        }
    }
    let text = String::from_utf8(out)
        .map_err(|_| Fail::new(start, "string escapes do not form valid UTF-8"))?;
    Ok((text, pos))
}

// ---------------------------------------------------------------------------------------------------------
// Parsing

#[derive(Debug)]
enum Operand {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Const(Value),
    Paren(Box<Pipeline>, Vec<String>),
}

#[derive(Debug)]
struct Arg {
    operand: Operand,
    pos: usize,
}

#[derive(Debug)]
struct Pipeline {
    pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) by this pipeline.
    vars: Vec<String>,
    assign: bool,
    commands: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BlockKind {
    If,
    With,
    Range,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    Block {
        kind: BlockKind,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Option<Vec<Node>>,
    },
    Break,
    Continue,
}

struct Frame {
    kind: BlockKind,
    pos: usize,
    pipe: Pipeline,
    body: Vec<Node>,
    otherwise: Option<Vec<Node>>,
    /// Opened by `else if` / `else with`: closed by its parent's `end`.
    chained: bool,
}

fn parse(src: &str) -> Res<Vec<Node>> {
    let mut root: Vec<Node> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    fn current<'a>(root: &'a mut Vec<Node>, stack: &'a mut [Frame]) -> &'a mut Vec<Node> {
        match stack.last_mut() {
            Some(frame) => frame.otherwise.as_mut().unwrap_or(&mut frame.body),
            None => root,
        }
    }
    for piece in lex(src)? {
        let (pos, tokens) = match piece {
            Piece::Text(text) => {
                current(&mut root, &mut stack).push(Node::Text(text));
                continue;
            }
            Piece::Action { pos, tokens } => (pos, tokens),
        };
        let keyword = match tokens.first() {
            Some(Token {
                tok: Tok::Ident(name),
                ..
            }) => name.as_str(),
            _ => "",
        };
        let rest = tokens.get(1..).unwrap_or_default();
        match keyword {
            "if" | "with" | "range" => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Fail::new(
                        pos,
                        format!("blocks nested deeper than {MAX_DEPTH}"),
                    ));
                }
                let kind = match keyword {
                    "if" => BlockKind::If,
                    "with" => BlockKind::With,
                    _ => BlockKind::Range,
                };
                let pipe = Parser::new(rest, pos).pipeline_action(kind == BlockKind::Range)?;
                stack.push(Frame {
                    kind,
                    pos,
                    pipe,
                    body: Vec::new(),
                    otherwise: None,
                    chained: false,
                });
            }
            "else" => {
                let Some(frame) = stack.last_mut() else {
                    return Err(Fail::new(pos, "`else` outside `if`, `with` or `range`"));
                };
                if frame.otherwise.is_some() {
                    return Err(Fail::new(
                        pos,
                        "second `else` in one block: close it with `{{ end }}`",
                    ));
                }
                frame.otherwise = Some(Vec::new());
                let chained_kind = match rest.first().map(|t| &t.tok) {
                    None => None,
                    Some(Tok::Ident(k)) if k == "if" => Some(BlockKind::If),
                    Some(Tok::Ident(k)) if k == "with" => Some(BlockKind::With),
                    Some(_) => {
                        return Err(Fail::new(
                            pos,
                            "unexpected words after `else`: write `{{ else }}`, `{{ else if ... }}` \
                             or `{{ else with ... }}`",
                        ));
                    }
                };
                if let Some(kind) = chained_kind {
                    if stack.len() >= MAX_DEPTH {
                        return Err(Fail::new(
                            pos,
                            format!("blocks nested deeper than {MAX_DEPTH}"),
                        ));
                    }
                    let pipe = Parser::new(&rest[1..], pos).pipeline_action(false)?;
                    stack.push(Frame {
                        kind,
                        pos,
                        pipe,
                        body: Vec::new(),
                        otherwise: None,
                        chained: true,
                    });
                }
            }
            "end" => {
                if !rest.is_empty() {
                    return Err(Fail::new(pos, "unexpected words after `end`"));
                }
                loop {
                    let Some(frame) = stack.pop() else {
                        return Err(Fail::new(pos, "`end` without `if`, `with` or `range`"));
                    };
                    let chained = frame.chained;
                    let node = Node::Block {
                        kind: frame.kind,
                        pipe: frame.pipe,
                        body: frame.body,
                        otherwise: frame.otherwise,
                    };
                    current(&mut root, &mut stack).push(node);
                    if !chained {
                        break;
                    }
                }
            }
            "break" | "continue" => {
                if !rest.is_empty() {
                    return Err(Fail::new(
                        pos,
                        format!("unexpected words after `{keyword}`"),
                    ));
                }
                if !stack.iter().any(|f| f.kind == BlockKind::Range) {
                    return Err(Fail::new(pos, format!("`{keyword}` outside `range`")));
                }
                let node = if keyword == "break" {
                    Node::Break
                } else {
                    Node::Continue
                };
                current(&mut root, &mut stack).push(node);
            }
            "define" | "template" | "block" => {
                return Err(Fail::new(
                    pos,
                    format!("`{keyword}` is not supported: a cluster image template is one file"),
                ));
            }
            _ => {
                let pipe = Parser::new(&tokens, pos).pipeline_action(false)?;
                current(&mut root, &mut stack).push(Node::Action(pipe));
            }
        }
    }
    if let Some(frame) = stack.iter().rev().find(|f| !f.chained) {
        return Err(Fail::new(
            frame.pos,
            "block is never closed: add `{{ end }}`",
        ));
    }
    Ok(root)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    action_pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(tokens: &'a [Token], action_pos: usize) -> Self {
        Parser {
            tokens,
            at: 0,
            action_pos,
            depth: 0,
        }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.at)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.action_pos, |t| t.pos)
    }

    /// The whole action as one pipeline, with optional declarations (`$i, $v :=` only in `range`).
    fn pipeline_action(mut self, range: bool) -> Res<Pipeline> {
        let pipe = self.pipeline(range)?;
        if let Some(t) = self.peek() {
            return Err(Fail::new(t.pos, "unexpected `)` in action"));
        }
        Ok(pipe)
    }

    fn declarations(&mut self, range: bool) -> Res<(Vec<String>, bool)> {
        let tokens = &self.tokens[self.at..];
        let var = |i: usize| match tokens.get(i).map(|t| &t.tok) {
            Some(Tok::Var(name, chain)) if chain.is_empty() && name != "$" => Some(name.clone()),
            _ => None,
        };
        let tok = |i: usize| tokens.get(i).map(|t| &t.tok);
        if let Some(first) = var(0) {
            match tok(1) {
                Some(Tok::Declare) => {
                    self.at += 2;
                    return Ok((vec![first], false));
                }
                Some(Tok::Assign) => {
                    self.at += 2;
                    return Ok((vec![first], true));
                }
                Some(Tok::Comma) if range => {
                    let Some(second) = var(2) else {
                        return Err(Fail::new(
                            self.pos(),
                            "expected a second variable after `,`",
                        ));
                    };
                    let assign = match tok(3) {
                        Some(Tok::Declare) => false,
                        Some(Tok::Assign) => true,
                        _ => {
                            return Err(Fail::new(
                                self.pos(),
                                "expected `:=` after `range $i, $v`",
                            ));
                        }
                    };
                    self.at += 4;
                    return Ok((vec![first, second], assign));
                }
                _ => {}
            }
        }
        Ok((Vec::new(), false))
    }

    fn pipeline(&mut self, decl_range: bool) -> Res<Pipeline> {
        let pos = self.pos();
        let (vars, assign) = self.declarations(decl_range)?;
        let mut commands = Vec::new();
        loop {
            let mut command = Vec::new();
            while let Some(t) = self.peek() {
                if matches!(t.tok, Tok::Pipe | Tok::RParen) {
                    break;
                }
                command.push(self.operand()?);
            }
            if command.is_empty() {
                return Err(Fail::new(
                    self.pos(),
                    "missing value for command: an action or `|` needs something to evaluate",
                ));
            }
            commands.push(command);
            match self.peek() {
                Some(Token { tok: Tok::Pipe, .. }) => self.at += 1,
                _ => break,
            }
        }
        Ok(Pipeline {
            pos,
            vars,
            assign,
            commands,
        })
    }

    fn operand(&mut self) -> Res<Arg> {
        let Some(token) = self.peek() else {
            return Err(Fail::new(self.action_pos, "unexpected end of action"));
        };
        self.at += 1;
        let pos = token.pos;
        let operand = match &token.tok {
            Tok::Dot => Operand::Dot,
            Tok::Field(chain) => Operand::Field(chain.clone()),
            Tok::Var(name, chain) => Operand::Var(name.clone(), chain.clone()),
            Tok::Ident(name) => Operand::Ident(name.clone()),
            Tok::Str(s) => Operand::Const(Value::Str(s.clone())),
            Tok::Int(i) => Operand::Const(Value::Int(*i)),
            Tok::Float(f) => Operand::Const(Value::Float(*f)),
            Tok::Bool(b) => Operand::Const(Value::Bool(*b)),
            Tok::Nil => Operand::Const(Value::Nil),
            Tok::LParen => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Fail::new(
                        pos,
                        format!("parentheses nested deeper than {MAX_DEPTH}"),
                    ));
                }
                let inner = self.pipeline(false)?;
                self.depth -= 1;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => self.at += 1,
                    _ => return Err(Fail::new(pos, "unclosed `(`: add `)`")),
                }
                let mut chain = Vec::new();
                while let Some(Token {
                    tok: Tok::Field(more),
                    spaced: false,
                    ..
                }) = self.peek()
                {
                    chain.extend(more.iter().cloned());
                    self.at += 1;
                }
                Operand::Paren(Box::new(inner), chain)
            }
            Tok::RParen => return Err(Fail::new(pos, "unexpected `)`")),
            Tok::Pipe | Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err(Fail::new(pos, "unexpected punctuation in command"));
            }
        };
        Ok(Arg { operand, pos })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Values

#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// A key the data does not have (Go's invalid value); holds the reference for messages.
    Missing(String),
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

impl Value {
    fn truth(&self) -> bool {
        match self {
            Value::Missing(_) | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Missing(_) => "no value",
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Go's `%v` (and sprig's `toString`); a missing key cannot be shown.
    fn text(&self) -> Result<String, String> {
        Ok(match self {
            Value::Missing(key) => return Err(missing_message(key)),
            Value::Nil => "<nil>".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => go_float(*f),
            Value::Str(s) => s.clone(),
            Value::List(items) => {
                let parts: Result<Vec<_>, _> = items.iter().map(Value::text).collect();
                format!("[{}]", parts?.join(" "))
            }
            Value::Map(map) => {
                let mut parts = Vec::new();
                for (k, v) in map {
                    parts.push(format!("{k}:{}", v.text()?));
                }
                format!("map[{}]", parts.join(" "))
            }
        })
    }
}

fn missing_message(key: &str) -> String {
    let name = key.trim_start_matches('.');
    format!(
        "no value for `{key}`: set {name} in the image ENV or with `-e {name}=VALUE`, or write \
         `{{{{ {key} | default \"VALUE\" }}}}`"
    )
}

/// Go's `%v` of a float64: shortest representation, exponent form outside 1e-4 <= |f| < 1e6.
fn go_float(f: f64) -> String {
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

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
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
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------------------
// Execution

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec {
    out: String,
    vars: Vec<(String, Value)>,
    steps: u64,
    depth: usize,
}

impl Exec {
    fn step(&mut self, pos: usize) -> Res<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Fail::new(
                pos,
                format!("rendering takes more than {MAX_STEPS} steps: is a `range` too large?"),
            ));
        }
        Ok(())
    }

    fn emit(&mut self, pos: usize, text: &str) -> Res<()> {
        if self.out.len() + text.len() > MAX_SIZE {
            return Err(Fail::new(
                pos,
                format!("output grows beyond {MAX_SIZE} bytes"),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Res<Flow> {
        for node in nodes {
            match self.node(node, dot)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    /// Runs `nodes` in a variable scope that ends with them.
    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Res<Flow> {
        let mark = self.vars.len();
        let flow = self.walk(nodes, dot);
        self.vars.truncate(mark);
        flow
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Res<Flow> {
        match node {
            Node::Text(text) => {
                self.emit(0, text)?;
                Ok(Flow::Normal)
            }
            Node::Action(pipe) => {
                self.step(pipe.pos)?;
                let value = self.pipeline(pipe, dot)?;
                if pipe.vars.is_empty() {
                    let text = value.text().map_err(|m| Fail::new(pipe.pos, m))?;
                    self.emit(pipe.pos, &text)?;
                }
                Ok(Flow::Normal)
            }
            Node::Break => Ok(Flow::Break),
            Node::Continue => Ok(Flow::Continue),
            Node::Block {
                kind,
                pipe,
                body,
                otherwise,
            } => {
                self.step(pipe.pos)?;
                self.depth += 1;
                let mark = self.vars.len();
                let flow = self.block(*kind, pipe, body, otherwise.as_deref(), dot);
                self.vars.truncate(mark);
                self.depth -= 1;
                flow
            }
        }
    }

    fn block(
        &mut self,
        kind: BlockKind,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: Option<&[Node]>,
        dot: &Value,
    ) -> Res<Flow> {
        if kind == BlockKind::Range {
            return self.range(pipe, body, otherwise, dot);
        }
        let value = self.pipeline(pipe, dot)?;
        if value.truth() {
            if kind == BlockKind::With {
                self.scoped(body, &value)
            } else {
                self.scoped(body, dot)
            }
        } else if let Some(otherwise) = otherwise {
            self.scoped(otherwise, dot)
        } else {
            Ok(Flow::Normal)
        }
    }

    fn range(
        &mut self,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: Option<&[Node]>,
        dot: &Value,
    ) -> Res<Flow> {
        let value = self.pipeline_value(&pipe.commands, pipe.pos, dot)?;
        let items: Vec<(Value, Value)> = match value {
            Value::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v))
                .collect(),
            Value::Map(map) => map.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
            Value::Int(n) => (0..n.max(0))
                .map(|i| (Value::Int(i), Value::Int(i)))
                .collect(),
            Value::Missing(_) | Value::Nil => Vec::new(),
            other => {
                return Err(Fail::new(
                    pipe.pos,
                    format!(
                        "range can't iterate over a {}: use `splitList \",\" .KEY` to make a list",
                        other.type_name()
                    ),
                ));
            }
        };
        if items.is_empty() {
            return match otherwise {
                Some(nodes) => self.scoped(nodes, dot),
                None => Ok(Flow::Normal),
            };
        }
        for (key, item) in items {
            self.step(pipe.pos)?;
            let mark = self.vars.len();
            match pipe.vars.as_slice() {
                [v] => self.bind(pipe, v, item.clone())?,
                [k, v] => {
                    self.bind(pipe, k, key)?;
                    self.bind(pipe, v, item.clone())?;
                }
                _ => {}
            }
            let flow = self.walk(body, &item);
            self.vars.truncate(mark);
            if let Flow::Break = flow? {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn bind(&mut self, pipe: &Pipeline, name: &str, value: Value) -> Res<()> {
        if pipe.assign {
            match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => {
                    return Err(Fail::new(
                        pipe.pos,
                        format!(
                            "undefined variable `{name}`: declare it with `{name} := ...` first"
                        ),
                    ));
                }
            }
        } else {
            self.vars.push((name.to_string(), value));
        }
        Ok(())
    }

    fn pipeline(&mut self, pipe: &Pipeline, dot: &Value) -> Res<Value> {
        let value = self.pipeline_value(&pipe.commands, pipe.pos, dot)?;
        if let Some(name) = pipe.vars.first() {
            self.bind(pipe, name, value.clone())?;
        }
        Ok(value)
    }

    fn pipeline_value(&mut self, commands: &[Vec<Arg>], pos: usize, dot: &Value) -> Res<Value> {
        let mut value: Option<Value> = None;
        for command in commands {
            value = Some(self.command(command, dot, value)?);
        }
        value.ok_or_else(|| Fail::new(pos, "empty pipeline"))
    }

    fn command(&mut self, args: &[Arg], dot: &Value, last: Option<Value>) -> Res<Value> {
        let Some(first) = args.first() else {
            return Err(Fail::new(0, "empty command"));
        };
        self.step(first.pos)?;
        if let Operand::Ident(name) = &first.operand {
            return self.call(name, first.pos, &args[1..], dot, last);
        }
        if args.len() > 1 || last.is_some() {
            let at = args.get(1).map_or(first.pos, |a| a.pos);
            return Err(Fail::new(
                at,
                "can't give an argument to a non-function: only a function name may be followed by \
                 arguments or receive a piped value",
            ));
        }
        if let Operand::Const(Value::Nil) = first.operand {
            return Err(Fail::new(first.pos, "nil is not a command"));
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, arg: &Arg, dot: &Value) -> Res<Value> {
        match &arg.operand {
            Operand::Dot => Ok(dot.clone()),
            Operand::Field(chain) => fields(dot, chain, "", arg.pos),
            Operand::Var(name, chain) => {
                let Some((_, value)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(Fail::new(
                        arg.pos,
                        format!("undefined variable `{name}`: declare it with `{name} := ...`"),
                    ));
                };
                fields(value, chain, name, arg.pos)
            }
            Operand::Ident(name) => self.call(name, arg.pos, &[], dot, None),
            Operand::Const(value) => Ok(value.clone()),
            Operand::Paren(pipe, chain) => {
                if self.depth > MAX_DEPTH * 2 {
                    return Err(Fail::new(arg.pos, "expression nested too deeply"));
                }
                self.depth += 1;
                let value = self.pipeline(pipe, dot);
                self.depth -= 1;
                fields(&value?, chain, "(...)", arg.pos)
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        pos: usize,
        args: &[Arg],
        dot: &Value,
        last: Option<Value>,
    ) -> Res<Value> {
        // `and` and `or` evaluate their operands lazily and return one of them.
        if name == "and" || name == "or" {
            if args.is_empty() && last.is_none() {
                return Err(Fail::new(
                    pos,
                    format!("`{name}` needs at least one argument"),
                ));
            }
            let mut value = Value::Nil;
            for arg in args {
                value = self.operand(arg, dot)?;
                if value.truth() == (name == "or") {
                    return Ok(value);
                }
            }
            return Ok(last.unwrap_or(value));
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        for arg in args {
            values.push(self.operand(arg, dot)?);
        }
        values.extend(last);
        let result = function(name, values).map_err(|message| Fail::new(pos, message))?;
        if let Value::Str(s) = &result
            && s.len() > MAX_SIZE
        {
            return Err(Fail::new(
                pos,
                format!("`{name}` result grows beyond {MAX_SIZE} bytes"),
            ));
        }
        Ok(result)
    }
}

/// Follows `.a.b` from `value`; `base` names where the chain starts, for messages. Only the value found
/// is cloned.
fn fields(value: &Value, chain: &[String], base: &str, pos: usize) -> Res<Value> {
    let mut current = value;
    for (i, name) in chain.iter().enumerate() {
        current = match current {
            Value::Map(map) => match map.get(name) {
                Some(v) => v,
                None => return Ok(Value::Missing(field_path(base, &chain[..=i]))),
            },
            Value::Missing(_) | Value::Nil => {
                return Ok(Value::Missing(field_path(base, &chain[..=i])));
            }
            other => {
                return Err(Fail::new(
                    pos,
                    format!("can't evaluate field `{name}` of a {}", other.type_name()),
                ));
            }
        };
    }
    Ok(current.clone())
}

fn field_path(base: &str, chain: &[String]) -> String {
    format!("{base}.{}", chain.join("."))
}

// ---------------------------------------------------------------------------------------------------------
// Functions

type FnResult = Result<Value, String>;

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!(
            "wrong number of arguments for `{name}`: want {want}, got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string(name: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => value.text(),
        Value::Missing(key) => Err(missing_message(key)),
        other => Err(format!(
            "`{name}` wants a string, got a {}",
            other.type_name()
        )),
    }
}

fn int(name: &str, value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Float(f) => Ok(*f as i64),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{name}` wants an integer, got \"{s}\"")),
        Value::Missing(key) => Err(missing_message(key)),
        other => Err(format!(
            "`{name}` wants an integer, got a {}",
            other.type_name()
        )),
    }
}

/// sprig's notion of empty: nil, missing, zero, "", false, empty list or map.
fn is_empty(value: &Value) -> bool {
    !value.truth()
}

fn pad_count(name: &str, n: i64) -> Result<usize, String> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_PAD)
        .ok_or_else(|| format!("`{name}` count {n} is outside 0..={MAX_PAD}"))
}

fn check_size(name: &str, size: usize) -> Result<(), String> {
    if size > MAX_SIZE {
        return Err(format!("`{name}` result grows beyond {MAX_SIZE} bytes"));
    }
    Ok(())
}

fn indent(n: usize, text: &str) -> Result<String, String> {
    let pad = " ".repeat(n);
    let lines = text.matches('\n').count() + 1;
    check_size("indent", text.len() + lines.saturating_mul(n))?;
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

/// Go's strings.Split: an empty separator splits into characters.
fn go_split(sep: &str, text: &str) -> Vec<String> {
    if sep.is_empty() {
        text.chars().map(String::from).collect()
    } else {
        text.split(sep).map(str::to_string).collect()
    }
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Equal)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Missing(key), _) | (_, Value::Missing(key)) => Err(missing_message(key)),
        _ => Err(format!(
            "incompatible types for comparison in `{name}`: {} and {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Missing(_), _) | (_, Value::Missing(_)) => Ok(false),
        (Value::Nil, Value::Nil) => Ok(true),
        (Value::Nil, _) | (_, Value::Nil) => Ok(false),
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::Int(x), Value::Int(y)) => Ok(x == y),
        (Value::Float(x), Value::Float(y)) => Ok(x == y),
        (Value::Str(x), Value::Str(y)) => Ok(x == y),
        (Value::List(_) | Value::Map(_), _) | (_, Value::List(_) | Value::Map(_)) => Err(format!(
            "cannot compare a {} with a {}: only strings, numbers and booleans compare",
            a.type_name(),
            b.type_name()
        )),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        )),
    }
}

fn function(name: &str, args: Vec<Value>) -> FnResult {
    let s = |i: usize| string(name, &args[i]);
    match name {
        "not" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "eq" | "ne" => {
            arity(name, &args, 2, usize::MAX)?;
            let mut any = false;
            for other in &args[1..] {
                any |= equal(&args[0], other)?;
            }
            Ok(Value::Bool(if name == "eq" { any } else { !any }))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2, 2)?;
            let order = compare(name, &args[0], &args[1])?;
            Ok(Value::Bool(match name {
                "lt" => order.is_lt(),
                "le" => order.is_le(),
                "gt" => order.is_gt(),
                _ => order.is_ge(),
            }))
        }
        "len" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::Str(s) => Ok(Value::Int(s.len() as i64)),
                Value::List(l) => Ok(Value::Int(l.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                Value::Missing(key) => Err(missing_message(key)),
                other => Err(format!("len of a {}", other.type_name())),
            }
        }
        "index" => {
            arity(name, &args, 1, usize::MAX)?;
            let mut value = args[0].clone();
            for key in &args[1..] {
                value = match (value, key) {
                    (Value::List(mut items), _) => {
                        let i = int(name, key)?;
                        let len = items.len();
                        usize::try_from(i)
                            .ok()
                            .filter(|i| *i < len)
                            .map(|i| items.swap_remove(i))
                            .ok_or_else(|| {
                                format!("index out of range: {i} (the list has {len})")
                            })?
                    }
                    (Value::Map(mut map), key) => {
                        let key = string(name, key)?;
                        map.remove(&key).unwrap_or(Value::Str(String::new()))
                    }
                    (Value::Missing(key), _) => return Err(missing_message(&key)),
                    (other, _) => return Err(format!("can't index a {}", other.type_name())),
                };
            }
            Ok(value)
        }
        "print" | "println" => {
            let mut out = String::new();
            for (i, arg) in args.iter().enumerate() {
                let is_str = |v: &Value| matches!(v, Value::Str(_));
                if i > 0 && (name == "println" || !(is_str(arg) || is_str(&args[i - 1]))) {
                    out.push(' ');
                }
                out.push_str(&arg.text()?);
                check_size(name, out.len())?;
            }
            if name == "println" {
                out.push('\n');
            }
            Ok(Value::Str(out))
        }
        "printf" => {
            arity(name, &args, 1, usize::MAX)?;
            Ok(Value::Str(printf(&s(0)?, &args[1..])?))
        }
        "default" => {
            arity(name, &args, 1, 2)?;
            match args.get(1) {
                Some(given) if !is_empty(given) => Ok(given.clone()),
                _ => Ok(args[0].clone()),
            }
        }
        "empty" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::Bool(is_empty(&args[0])))
        }
        "coalesce" => Ok(args
            .into_iter()
            .find(|v| !is_empty(v))
            .unwrap_or(Value::Nil)),
        "ternary" => {
            arity(name, &args, 3, 3)?;
            let mut args = args;
            let cond = args[2].truth();
            Ok(args.swap_remove(if cond { 0 } else { 1 }))
        }
        "required" => {
            arity(name, &args, 2, 2)?;
            if is_empty(&args[1]) {
                Err(format!("required value is empty: {}", s(0)?))
            } else {
                Ok(args[1].clone())
            }
        }
        "fail" => {
            arity(name, &args, 1, 1)?;
            Err(format!("template failed: {}", s(0)?))
        }
        "quote" | "squote" => {
            let mut parts = Vec::new();
            for arg in &args {
                if matches!(arg, Value::Nil) {
                    continue;
                }
                let text = string(name, arg).or_else(|_| arg.text())?;
                parts.push(if name == "quote" {
                    go_quote(&text)
                } else {
                    format!("'{text}'")
                });
            }
            Ok(Value::Str(parts.join(" ")))
        }
        "upper" | "lower" | "title" | "trim" | "b64enc" | "b64dec" | "toString" => {
            arity(name, &args, 1, 1)?;
            let text = match &args[0] {
                Value::List(_) | Value::Map(_) | Value::Nil if name == "toString" => {
                    args[0].text()?
                }
                _ => s(0)?,
            };
            Ok(Value::Str(match name {
                "upper" => text.to_uppercase(),
                "lower" => text.to_lowercase(),
                "title" => title(&text),
                "trim" => text.trim().to_string(),
                "b64enc" => base64::engine::general_purpose::STANDARD.encode(text),
                "b64dec" => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .map_err(|e| format!("b64dec: not base64: {e}"))?;
                    String::from_utf8(bytes)
                        .map_err(|_| "b64dec: the decoded bytes are not UTF-8".to_string())?
                }
                _ => text,
            }))
        }
        "trimAll" | "trimPrefix" | "trimSuffix" | "contains" | "hasPrefix" | "hasSuffix" => {
            arity(name, &args, 2, 2)?;
            let (pattern, text) = (s(0)?, s(1)?);
            Ok(match name {
                "trimAll" => Value::Str(text.trim_matches(|c| pattern.contains(c)).to_string()),
                "trimPrefix" => {
                    Value::Str(text.strip_prefix(&pattern).unwrap_or(&text).to_string())
                }
                "trimSuffix" => {
                    Value::Str(text.strip_suffix(&pattern).unwrap_or(&text).to_string())
                }
                "contains" => Value::Bool(text.contains(&pattern)),
                "hasPrefix" => Value::Bool(text.starts_with(&pattern)),
                _ => Value::Bool(text.ends_with(&pattern)),
            })
        }
        "replace" => {
            arity(name, &args, 3, 3)?;
            let (old, new, text) = (s(0)?, s(1)?, s(2)?);
            let count = if old.is_empty() {
                text.chars().count() + 1
            } else {
                text.matches(&old).count()
            };
            check_size(name, text.len() + count.saturating_mul(new.len()))?;
            Ok(Value::Str(if old.is_empty() {
                go_replace_empty(&text, &new)
            } else {
                text.replace(&old, &new)
            }))
        }
        "indent" | "nindent" => {
            arity(name, &args, 2, 2)?;
            let n = pad_count(name, int(name, &args[0])?)?;
            let text = indent(n, &s(1)?)?;
            Ok(Value::Str(if name == "nindent" {
                format!("\n{text}")
            } else {
                text
            }))
        }
        "split" | "splitList" => {
            arity(name, &args, 2, 2)?;
            let parts = go_split(&s(0)?, &s(1)?);
            Ok(if name == "split" {
                Value::Map(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("_{i}"), Value::Str(p)))
                        .collect(),
                )
            } else {
                Value::List(parts.into_iter().map(Value::Str).collect())
            })
        }
        "join" => {
            arity(name, &args, 2, 2)?;
            let sep = s(0)?;
            let items: Vec<String> = match &args[1] {
                Value::List(items) => items
                    .iter()
                    .filter(|v| !matches!(v, Value::Nil))
                    .map(Value::text)
                    .collect::<Result<_, _>>()?,
                other => vec![string(name, other)?],
            };
            let size = items.iter().map(String::len).sum::<usize>()
                + sep.len().saturating_mul(items.len());
            check_size(name, size)?;
            Ok(Value::Str(items.join(&sep)))
        }
        "atoi" | "int" => {
            arity(name, &args, 1, 1)?;
            Ok(Value::Int(int(name, &args[0]).unwrap_or(0)))
        }
        "add" | "sub" | "add1" => {
            let ints: Vec<i64> = args
                .iter()
                .map(|v| int(name, v))
                .collect::<Result<_, _>>()?;
            let overflow = || format!("`{name}` overflows");
            match name {
                "add1" => {
                    arity(name, &args, 1, 1)?;
                    ints[0].checked_add(1).map(Value::Int).ok_or_else(overflow)
                }
                "sub" => {
                    arity(name, &args, 2, 2)?;
                    ints[0]
                        .checked_sub(ints[1])
                        .map(Value::Int)
                        .ok_or_else(overflow)
                }
                _ => ints
                    .iter()
                    .try_fold(0i64, |a, b| a.checked_add(*b))
                    .map(Value::Int)
                    .ok_or_else(overflow),
            }
        }
        "list" => Ok(Value::List(args)),
        "first" | "last" => {
            arity(name, &args, 1, 1)?;
            match &args[0] {
                Value::List(items) => Ok((if name == "first" {
                    items.first()
                } else {
                    items.last()
                })
                .cloned()
                .unwrap_or(Value::Nil)),
                Value::Missing(key) => Err(missing_message(key)),
                other => Err(format!(
                    "`{name}` wants a list, got a {}",
                    other.type_name()
                )),
            }
        }
        "define" | "template" | "block" | "if" | "else" | "end" | "range" | "with" | "break"
        | "continue" => Err(format!("`{name}` can only start an action")),
        _ => Err(format!(
            "function `{name}` is not defined (supported: see the runtime-templates documentation)"
        )),
    }
}

/// Go's strings.Replace with an empty `old`: `new` before every character and at the end.
fn go_replace_empty(text: &str, new: &str) -> String {
    let mut out = String::with_capacity(text.len() + new.len() * (text.len() + 1));
    for c in text.chars() {
        out.push_str(new);
        out.push(c);
    }
    out.push_str(new);
    out
}

/// Go's (deprecated) strings.Title, as sprig uses it: upper-case the first letter of every word.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_letter = false;
    for c in text.chars() {
        if previous_letter {
            out.push(c);
        } else {
            out.extend(c.to_uppercase());
        }
        previous_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

/// Go's fmt.Sprintf for the verbs templates use.
fn printf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut zero, mut plus) = (false, false, false);
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => minus = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let number =
            |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<Option<usize>, String> {
                let mut n: Option<usize> = None;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    let value = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
                    if value > MAX_PAD {
                        return Err(format!("printf width or precision beyond {MAX_PAD}"));
                    }
                    n = Some(value);
                    chars.next();
                }
                Ok(n)
            };
        let width = number(&mut chars)?;
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars)?.unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        let bad = || -> Result<String, String> {
            Ok(format!("%!{verb}({}={})", arg.type_name(), arg.text()?))
        };
        let body = match (verb, arg) {
            (_, Value::Missing(key)) => return Err(missing_message(key)),
            ('v' | 's', _) => {
                let text = arg.text()?;
                match (verb, arg, precision) {
                    ('v', Value::Float(f), Some(p)) => format!("{f:.p$}"),
                    (_, _, Some(p)) => text.chars().take(p).collect(),
                    _ => text,
                }
            }
            ('d', Value::Int(i)) => {
                if plus && *i >= 0 {
                    format!("+{i}")
                } else {
                    i.to_string()
                }
            }
            ('t', Value::Bool(b)) => b.to_string(),
            ('q', Value::Str(s)) => go_quote(s),
            ('q', Value::Int(i)) => {
                format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{fffd}'))
            }
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('f' | 'F', Value::Float(f)) => format!("{f:.*}", precision.unwrap_or(6)),
            ('f' | 'F', Value::Int(_)) => bad()?,
            _ => bad()?,
        };
        let len = body.chars().count();
        let fill = width.unwrap_or(0).saturating_sub(len);
        if minus {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', fill));
        } else if zero && matches!(verb, 'd' | 'f' | 'F' | 'x' | 'X') {
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(rest) => (&body[..1], rest),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', fill));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(&body);
        }
        check_size("printf", out.len())?;
    }
    if next < args.len() {
        let extra: Result<Vec<String>, String> = args[next..]
            .iter()
            .map(|a| Ok(format!("{}={}", a.type_name(), a.text()?)))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra?.join(", "));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
