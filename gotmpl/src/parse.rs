//! Parses lexed template text into trees of nodes, with Go's parse-time checks: functions must exist,
//! variables must be declared in an enclosing scope, `break`/`continue` only inside `range`.

use std::rc::Rc;

use crate::ast::{Branch, Cmd, Node, Pipe, Term, Tree};
use crate::builtins::Callee;
use crate::lex::{self, Piece, Tok, Token};
use crate::value::Value;

/// Deepest nesting of blocks and parentheses the parser accepts.
pub(crate) const MAX_DEPTH: usize = 100;

/// A parse failure at a byte offset.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub message: String,
}

type Res<T> = Result<T, ParseError>;

fn fail<T>(pos: usize, message: impl Into<String>) -> Res<T> {
    Err(ParseError {
        pos,
        message: message.into(),
    })
}

/// Why an item list stopped.
enum Stop {
    Eof,
    End,
    Else(usize, Vec<Token>),
}

/// Resolves a function name at parse time, as Go does (`function "x" not defined`).
pub(crate) type Resolver<'a> = &'a dyn Fn(&str) -> Option<Callee>;

struct Parser<'a> {
    src: &'a str,
    name: Rc<str>,
    source: Rc<str>,
    pieces: std::vec::IntoIter<Piece>,
    resolve: Resolver<'a>,
    vars: Vec<Rc<str>>,
    range_depth: usize,
    depth: usize,
    defines: Vec<Tree>,
    /// The current action's tokens and position in them.
    toks: Vec<Token>,
    at: usize,
    action_pos: usize,
}

/// A lexing error as Go's parser reports it: an error inside an action that began on an earlier line says
/// where (`unterminated quoted string in action started at NAME:LINE`; `unclosed action started at ...`).
fn lex_failure(name: &str, src: &str, e: lex::LexError) -> ParseError {
    let line = |pos: usize| src[..pos.min(src.len())].matches('\n').count() + 1;
    let mut message = e.message;
    if let Some(action) = e.action
        && line(action) != line(e.pos)
    {
        let context = if message.ends_with(" action") {
            ""
        } else {
            " in action"
        };
        message = format!("{message}{context} started at {name}:{}", line(action));
    }
    ParseError {
        pos: e.pos,
        message,
    }
}

/// Parses `src` as template `name`: its main tree first, then its `define`s and `block`s.
pub(crate) fn parse(name: &str, src: &str, resolve: Resolver<'_>) -> Res<Vec<Tree>> {
    let pieces = lex::lex(src).map_err(|e| lex_failure(name, src, e))?;
    let name: Rc<str> = name.into();
    let mut parser = Parser {
        src,
        name: name.clone(),
        source: src.into(),
        pieces: pieces.into_iter(),
        resolve,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
        defines: Vec::new(),
        toks: Vec::new(),
        at: 0,
        action_pos: 0,
    };
    let (root, stop) = parser.list(true)?;
    match stop {
        Stop::Eof => {}
        Stop::End => return fail(parser.action_pos, "unexpected {{end}}"),
        Stop::Else(pos, _) => return fail(pos, "unexpected {{else}}"),
    }
    let mut trees = vec![Tree {
        name: name.clone(),
        parse_name: name,
        source: parser.source.clone(),
        root,
    }];
    trees.append(&mut parser.defines);
    Ok(trees)
}

impl Parser<'_> {
    /// Nodes until `{{end}}`, `{{else}}` or the end of the text.
    fn list(&mut self, top: bool) -> Res<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let (pos, tokens) = match piece {
                Piece::Text(a, b) => {
                    nodes.push(Node::Text(a, b));
                    continue;
                }
                Piece::Action { pos, tokens } => (pos, tokens),
            };
            self.action_pos = pos;
            let keyword = match tokens.first() {
                Some(Token {
                    tok: Tok::Ident(word),
                    ..
                }) => word.as_str(),
                _ => "",
            };
            match keyword {
                "end" => {
                    self.start(tokens, pos, 1);
                    self.expect_end("end")?;
                    return Ok((nodes, Stop::End));
                }
                "else" => return Ok((nodes, Stop::Else(pos, tokens))),
                "define" if top => {
                    let keyword_pos = tokens[0].pos;
                    self.start(tokens, pos, 1);
                    self.definition(keyword_pos)?;
                }
                _ => {
                    let node = self.action(tokens, pos)?;
                    nodes.push(node);
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn start(&mut self, tokens: Vec<Token>, pos: usize, at: usize) {
        self.toks = tokens;
        self.at = at;
        self.action_pos = pos;
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    /// The offset of the next token, or of the action's end.
    fn pos(&self) -> usize {
        self.peek().map_or(self.action_pos, |t| t.pos)
    }

    fn deeper(&mut self, pos: usize) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail(
                pos,
                format!("blocks or parentheses nested deeper than {MAX_DEPTH}"),
            );
        }
        Ok(())
    }

    fn expect_end(&mut self, context: &str) -> Res<()> {
        match self.peek() {
            None => Ok(()),
            Some(t) => fail(
                t.pos,
                format!("unexpected {} in {context}", describe(&t.tok)),
            ),
        }
    }

    fn action(&mut self, tokens: Vec<Token>, pos: usize) -> Res<Node> {
        let keyword = match tokens.first() {
            Some(Token {
                tok: Tok::Ident(word),
                ..
            }) => word.clone(),
            _ => String::new(),
        };
        match keyword.as_str() {
            "if" | "with" | "range" => {
                self.start(tokens, pos, 1);
                self.control(&keyword)
            }
            "break" | "continue" => {
                let at = tokens[0].pos;
                self.start(tokens, pos, 1);
                if self.range_depth == 0 {
                    return fail(at, format!("{{{{{keyword}}}}} outside {{{{range}}}}"));
                }
                self.expect_end(&format!("{{{{{keyword}}}}}"))?;
                Ok(if keyword == "break" {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            "template" => {
                self.start(tokens, pos, 1);
                let (name, name_pos) = self.template_name("template clause")?;
                let pipe = if self.peek().is_some() {
                    Some(self.pipeline("template clause", false)?)
                } else {
                    None
                };
                Ok(Node::Template {
                    pos: name_pos,
                    name,
                    pipe,
                })
            }
            "block" => {
                self.start(tokens, pos, 1);
                let (name, name_pos) = self.template_name("block clause")?;
                let pipe = self.pipeline("block clause", false)?;
                let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let range_depth = std::mem::take(&mut self.range_depth);
                self.deeper(pos)?;
                let (root, stop) = self.list(false)?;
                self.depth -= 1;
                self.vars = saved;
                self.range_depth = range_depth;
                self.close_definition(stop, "block clause")?;
                self.defines.push(Tree {
                    name: name.clone(),
                    parse_name: self.name.clone(),
                    source: self.source.clone(),
                    root,
                });
                Ok(Node::Template {
                    pos: name_pos,
                    name,
                    pipe: Some(pipe),
                })
            }
            _ => {
                self.start(tokens, pos, 0);
                Ok(Node::Action(self.pipeline("command", false)?))
            }
        }
    }

    fn close_definition(&self, stop: Stop, context: &str) -> Res<()> {
        match stop {
            Stop::End => Ok(()),
            Stop::Eof => fail(self.src.len(), "unexpected EOF"),
            Stop::Else(pos, _) => fail(pos, format!("unexpected {{{{else}}}} in {context}")),
        }
    }

    fn definition(&mut self, pos: usize) -> Res<()> {
        let (name, _) = self.template_name("define clause")?;
        self.expect_end("define clause")?;
        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
        self.deeper(pos)?;
        let (root, stop) = self.list(false)?;
        self.depth -= 1;
        self.vars = saved;
        self.close_definition(stop, "define clause")?;
        self.defines.push(Tree {
            name,
            parse_name: self.name.clone(),
            source: self.source.clone(),
            root,
        });
        Ok(())
    }

    fn template_name(&mut self, context: &str) -> Res<(Rc<str>, usize)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(name, _),
                pos,
                ..
            }) => {
                let out = (Rc::from(name.as_str()), *pos);
                self.at += 1;
                Ok(out)
            }
            Some(t) => fail(
                t.pos,
                format!("unexpected {} in {context}", describe(&t.tok)),
            ),
            None => fail(self.action_pos, format!("unexpected \"}}}}\" in {context}")),
        }
    }

    /// `if`, `with`, `range`: the pipeline was started after the keyword.
    fn control(&mut self, keyword: &str) -> Res<Node> {
        self.deeper(self.action_pos)?;
        let mark = self.vars.len();
        let pipe = self.pipeline(keyword, false)?;
        if keyword == "range" {
            self.range_depth += 1;
        }
        let (list, stop) = self.list(false)?;
        if keyword == "range" {
            self.range_depth -= 1;
        }
        let else_list = match stop {
            Stop::End => None,
            Stop::Eof => return fail(self.src.len(), "unexpected EOF"),
            Stop::Else(pos, tokens) => {
                let chained = matches!(tokens.get(1).map(|t| &t.tok), Some(Tok::Ident(k)) if k == keyword && keyword != "range");
                if chained {
                    self.start(tokens, pos, 2);
                    Some(vec![self.control(keyword)?])
                } else {
                    self.start(tokens, pos, 1);
                    self.expect_end("else")?;
                    let (list, stop) = self.list(false)?;
                    match stop {
                        Stop::End => {}
                        Stop::Eof => return fail(self.src.len(), "unexpected EOF"),
                        Stop::Else(pos, _) => return fail(pos, "expected end; found {{else}}"),
                    }
                    Some(list)
                }
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        let branch = Branch {
            pipe,
            list,
            else_list,
        };
        Ok(match keyword {
            "if" => Node::If(branch),
            "with" => Node::With(branch),
            _ => Node::Range(branch),
        })
    }

    /// A pipeline up to the end of the action (or, in parentheses, up to the `)`).
    fn pipeline(&mut self, context: &str, paren: bool) -> Res<Pipe> {
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut assign = false;
        while let Some(Token {
            tok: Tok::Var(name),
            ..
        }) = self.peek()
        {
            let name: Rc<str> = name.as_str().into();
            match self.toks.get(self.at + 1).map(|t| &t.tok) {
                Some(Tok::Declare | Tok::Assign) => {
                    assign = matches!(self.toks[self.at + 1].tok, Tok::Assign);
                    self.at += 2;
                    decl.push(name.clone());
                    self.vars.push(name);
                    break;
                }
                Some(Tok::Comma) => {
                    let at = self.toks[self.at + 1].pos;
                    self.at += 2;
                    decl.push(name.clone());
                    self.vars.push(name);
                    if context == "range" && decl.len() < 2 {
                        if matches!(self.peek().map(|t| &t.tok), Some(Tok::Var(_))) {
                            continue;
                        }
                        return fail(at, "range can only initialize variables");
                    }
                    return fail(at, format!("too many declarations in {context}"));
                }
                _ => break,
            }
        }
        if decl.len() > 1
            && !matches!(
                self.toks.get(self.at - 1).map(|t| &t.tok),
                Some(Tok::Declare | Tok::Assign)
            )
        {
            return fail(self.pos(), "range can only initialize variables");
        }
        let mut cmds = Vec::new();
        loop {
            match self.peek() {
                None => break,
                Some(Token {
                    tok: Tok::RParen, ..
                }) if paren => break,
                Some(_) => cmds.push(self.command(context)?),
            }
        }
        if cmds.is_empty() {
            return fail(self.pos(), format!("missing value for {context}"));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args[0],
                Term::Const { .. } | Term::Dot(_) | Term::Nil(_)
            ) {
                return fail(
                    cmd.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(Pipe {
            pos,
            decl,
            assign,
            cmds,
        })
    }

    fn command(&mut self, context: &str) -> Res<Cmd> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            let took = match self.operand()? {
                Some(term) => {
                    args.push(term);
                    true
                }
                None => false,
            };
            match self.peek() {
                None => break,
                Some(Token {
                    tok: Tok::RParen, ..
                }) => break,
                Some(Token { tok: Tok::Pipe, .. }) => {
                    self.at += 1;
                    break;
                }
                Some(t) if took && t.spaced => continue,
                Some(t) => {
                    let what = if args.is_empty() { context } else { "operand" };
                    return fail(t.pos, format!("unexpected {} in {what}", describe(&t.tok)));
                }
            }
        }
        if args.is_empty() {
            return fail(pos, "empty command");
        }
        Ok(Cmd { pos, args })
    }

    fn operand(&mut self) -> Res<Option<Term>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields: Vec<Rc<str>> = Vec::new();
        let mut chain_pos = None;
        while let Some(Token {
            tok: Tok::Field(name),
            spaced: false,
            pos,
        }) = self.peek()
        {
            chain_pos.get_or_insert(*pos);
            fields.push(name.as_str().into());
            self.at += 1;
        }
        let Some(chain_pos) = chain_pos else {
            return Ok(Some(term));
        };
        // Go places a chain at its first added field (`.Values.x.y` is located at `.x`).
        Ok(Some(match term {
            Term::Field { mut names, .. } => {
                names.extend(fields);
                Term::Field {
                    pos: chain_pos,
                    names,
                }
            }
            Term::Var {
                name,
                fields: mut base,
                ..
            } => {
                base.extend(fields);
                Term::Var {
                    pos: chain_pos,
                    name,
                    fields: base,
                }
            }
            Term::Const { .. } | Term::Nil(_) | Term::Dot(_) => {
                return fail(chain_pos, format!("unexpected . after term \"{term}\""));
            }
            base => Term::Chain {
                pos: chain_pos,
                base: Box::new(base),
                fields,
            },
        }))
    }

    fn term(&mut self) -> Res<Option<Term>> {
        let Some(token) = self.peek().cloned() else {
            return Ok(None);
        };
        let pos = token.pos;
        let term = match token.tok {
            Tok::Ident(name) => {
                if is_keyword(&name) {
                    return Ok(None);
                }
                let Some(callee) = (self.resolve)(&name) else {
                    return fail(pos, format!("function \"{name}\" not defined"));
                };
                Term::Func {
                    pos,
                    name: name.into(),
                    callee,
                }
            }
            Tok::Dot => Term::Dot(pos),
            Tok::Nil => Term::Nil(pos),
            Tok::Var(name) => {
                if !self.vars.iter().any(|v| **v == *name) {
                    return fail(pos, format!("undefined variable \"{name}\""));
                }
                Term::Var {
                    pos,
                    name: name.into(),
                    fields: Vec::new(),
                }
            }
            Tok::Field(name) => Term::Field {
                pos,
                names: vec![name.into()],
            },
            Tok::Bool(b) => Term::Const {
                pos,
                value: Value::Bool(b),
                text: if b { "true" } else { "false" }.into(),
            },
            Tok::Number(text) => Term::Const {
                pos,
                value: number(&text).ok_or_else(|| ParseError {
                    pos,
                    message: format!("bad number syntax: \"{text}\""),
                })?,
                text: text.into(),
            },
            Tok::Str(value, text) => Term::Const {
                pos,
                value: Value::from(value),
                text: text.into(),
            },
            Tok::LParen => {
                self.at += 1;
                self.deeper(pos)?;
                let pipe = self.pipeline("parenthesized pipeline", true)?;
                self.depth -= 1;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => self.at += 1,
                    _ => return fail(pos, "unclosed left paren"),
                }
                return Ok(Some(Term::Pipe(pos, Box::new(pipe))));
            }
            _ => return Ok(None),
        };
        self.at += 1;
        Ok(Some(term))
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "if" | "else"
            | "end"
            | "range"
            | "with"
            | "define"
            | "template"
            | "block"
            | "break"
            | "continue"
    )
}

/// Go's text for a token in "unexpected X" messages.
fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(word) if is_keyword(word) => format!("<{word}>"),
        Tok::Ident(word) | Tok::Field(word) | Tok::Var(word) | Tok::Number(word) => {
            go_short_quote(word)
        }
        Tok::Str(_, text) => go_short_quote(text),
        Tok::Dot => "<.>".into(),
        Tok::Bool(b) => go_short_quote(&b.to_string()),
        Tok::Nil => "<nil>".into(),
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Pipe => "\"|\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Declare => "\":=\"".into(),
        Tok::Assign => "\"=\"".into(),
        Tok::Char(c) => format!("\"{c}\""),
    }
}

/// Go's `%q` of a token, shortened to 10 characters as Go's `item.String` does.
fn go_short_quote(text: &str) -> String {
    if text.chars().count() > 10 {
        let short: String = text.chars().take(10).collect();
        format!("{}...", crate::value::go_quote(&short))
    } else {
        crate::value::go_quote(text)
    }
}

/// A number constant as Go's parser and `idealConstant` read it: an integer is `Int`, a constant with a
/// `.`, exponent or out of `int` range is `Float`, a character constant is its code point.
pub(crate) fn number(text: &str) -> Option<Value> {
    if text.starts_with('\'') {
        return lex::unquote_char(text).map(|c| Value::Int(i64::from(u32::from(c))));
    }
    if let Some(i) = go_int(text) {
        return Some(Value::Int(i));
    }
    let clean = text.replace('_', "");
    let body = clean.trim_start_matches(['+', '-']);
    if body.starts_with("0x") || body.starts_with("0X") {
        return None;
    }
    clean.parse::<f64>().ok().map(Value::Float)
}

/// Go's `strconv.ParseInt(text, 0, 64)`: base prefixes, a leading `0` for octal, `_` separators.
fn go_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_') && radix == 10
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean = digits.replace('_', "");
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(&clean, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}
