//! Writing values as go-yaml's encoder writes them (the libyaml emitter ported to Go): block style, keys in
//! go-yaml's natural order, strings plain unless they would read back as something else, `|` literal
//! blocks for multi-line strings, long plain and quoted scalars wrapped at 80 columns.

use std::cmp::Ordering;

use gotmpl::Value;
use gotmpl::encoding::json::json_float;
use gotmpl::value::go_float;

use super::resolve::{Scalar, plain_reads_back_differently, resolve_plain};

/// How the encoder lays out its output: Helm's `toYaml` (sigs.k8s.io/yaml over go-yaml v2) or
/// `toYamlPretty` (go-yaml v3 with a two-space indent).
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    /// go-yaml v2 writes a sequence under a mapping key at the key's indentation (`key:\n- a`).
    pub indentless_sequences: bool,
    /// Column after which long scalars are wrapped at a space (`None`: never).
    pub width: Option<usize>,
    /// Values pass through `json.Marshal` first (floats that are whole numbers print as integers).
    pub json_round_trip: bool,
    /// go-yaml v3 lets a tab into a `|` block (v2 double-quotes any string with a tab).
    pub tabs_in_blocks: bool,
    /// go-yaml v3's key order puts a letter before a non-letter right after a digit (`1a` < `1_`).
    pub letters_after_digits_first: bool,
}

enum Node {
    /// A scalar's text and the style the encoder asks for.
    Scalar(String, Requested),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

#[derive(Clone, Copy, PartialEq)]
enum Requested {
    Plain,
    DoubleQuoted,
    Literal,
}

/// Why a value cannot be written as YAML; worded as the Go encoders Helm uses word it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// A control character in a string, which go-yaml refuses when it reads back the JSON of `toYaml`.
    #[error("error converting JSON to YAML: yaml: control characters are not allowed ({0:?})")]
    ControlCharacter(char),
    /// A value Go's `json.Marshal` refuses (NaN, infinities), with its message.
    #[error("{0}")]
    Json(String),
}

fn build(value: &Value, layout: Layout) -> Result<Node, EmitError> {
    Ok(match value {
        Value::Missing(_) | Value::Nil => Node::Scalar("null".to_string(), Requested::Plain),
        Value::Bool(b) => Node::Scalar(b.to_string(), Requested::Plain),
        Value::Int(i) | Value::Int64(i) => Node::Scalar(i.to_string(), Requested::Plain),
        Value::Float(f) => Node::Scalar(float_text(*f, layout)?, Requested::Plain),
        Value::Str(s) => string_node(&round_trip_text(s, layout)?),
        Value::Object(obj) => match obj
            .json()
            .and_then(|text| gotmpl::encoding::json::from_json(&text).ok())
        {
            Some(data) => build(&data, layout)?,
            None => string_node(&round_trip_text(&obj.display(), layout)?),
        },
        // A Go nil slice: `json.Marshal` writes null; go-yaml itself writes an empty sequence.
        Value::List(_) if layout.json_round_trip && value.is_nil_list() => {
            Node::Scalar("null".to_string(), Requested::Plain)
        }
        Value::List(items) => Node::List(
            items
                .iter()
                .map(|v| build(v, layout))
                .collect::<Result<_, _>>()?,
        ),
        Value::Map(map) => {
            let map = map.borrow();
            let mut entries = map
                .iter()
                .map(|(k, v)| Ok((round_trip_text(k, layout)?, build(v, layout)?)))
                .collect::<Result<Vec<_>, EmitError>>()?;
            entries.sort_by(|a, b| natural_order(&a.0, &b.0, layout.letters_after_digits_first));
            Node::Map(entries)
        }
    })
}

/// A string as it comes back from the JSON text go-yaml reads in `toYaml`: Go's JSON leaves NEL (U+0085)
/// and C1 control characters raw, so go-yaml folds NEL like a line break in a double-quoted scalar and
/// rejects the control characters (Helm's `toYaml` then prints nothing).
fn round_trip_text(s: &str, layout: Layout) -> Result<String, EmitError> {
    if !layout.json_round_trip {
        return Ok(s.to_string());
    }
    if let Some(c) = s.chars().find(|&c| {
        let u = c as u32;
        u == 0x7F || (0x80..=0x9F).contains(&u) && u != 0x85 || u == 0xFFFE || u == 0xFFFF
    }) {
        return Err(EmitError::ControlCharacter(c));
    }
    if !s.contains('\u{85}') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{85}' {
            out.push(c);
            continue;
        }
        // Spaces around the break are dropped; one break folds to a space, n breaks to n-1 newlines.
        while out.ends_with(' ') {
            out.pop();
        }
        let mut breaks = 1;
        while let Some(&next) = chars.peek() {
            match next {
                ' ' => {
                    chars.next();
                }
                '\u{85}' => {
                    breaks += 1;
                    chars.next();
                }
                _ => break,
            }
        }
        if breaks == 1 {
            out.push(' ');
        } else {
            out.extend(std::iter::repeat_n('\n', breaks - 1));
        }
    }
    Ok(out)
}

/// A float's text: through JSON, go-yaml reads the JSON number back as an int when it can.
fn float_text(f: f64, layout: Layout) -> Result<String, EmitError> {
    if !layout.json_round_trip {
        return Ok(match f {
            f if f.is_nan() => ".nan".to_string(),
            f if f == f64::INFINITY => ".inf".to_string(),
            f if f == f64::NEG_INFINITY => "-.inf".to_string(),
            f => go_float(f),
        });
    }
    let json = json_float(f).map_err(EmitError::Json)?;
    Ok(match resolve_plain(&json) {
        Scalar::Int(i) => i.to_string(),
        Scalar::Uint(u) => u.to_string(),
        _ => go_float(json.parse::<f64>().unwrap_or(f)),
    })
}

fn string_node(s: &str) -> Node {
    let style = if s.contains('\n') {
        Requested::Literal
    } else if plain_reads_back_differently(s) {
        Requested::DoubleQuoted
    } else {
        Requested::Plain
    };
    Node::Scalar(s.to_string(), style)
}

/// go-yaml's key order: numbers inside keys compare by value, letters sort before other characters.
pub(crate) fn natural_order(a: &str, b: &str, letters_after_digits_first: bool) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    if natural_less(a, b, letters_after_digits_first) {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

fn natural_less(a: &str, b: &str, letters_after_digits_first: bool) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    let mut after_digit = false;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            after_digit = ar[i].is_ascii_digit();
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return if letters_after_digits_first && after_digit {
                al
            } else {
                bl
            };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.wrapping_mul(10).wrapping_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.wrapping_mul(10).wrapping_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Writes `value` as a YAML document (with the trailing newline go-yaml writes).
pub(crate) fn emit(value: &Value, layout: Layout) -> Result<String, EmitError> {
    let node = build(value, layout)?;
    let mut e = Emitter {
        out: String::new(),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
        layout,
        best_width: layout.width.unwrap_or(usize::MAX),
    };
    e.node(
        &node,
        Context {
            mapping: false,
            simple_key: false,
        },
    )?;
    // Document end: go-yaml finishes the last line.
    e.write_indent();
    Ok(e.out)
}

#[derive(Clone, Copy)]
struct Context {
    mapping: bool,
    simple_key: bool,
}

struct Emitter {
    out: String,
    column: usize,
    indent: i64,
    indents: Vec<i64>,
    whitespace: bool,
    indention: bool,
    layout: Layout,
    best_width: usize,
}

const BEST_INDENT: i64 = 2;

/// What the libyaml analyser learns about a scalar before choosing its style.
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn analyze(value: &str, tabs_in_blocks: bool) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let (mut block_indicators, mut line_breaks, mut special) = (false, false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut tabs = false;
    if value.starts_with("---") || value.starts_with("...") {
        block_indicators = true;
    }
    let mut preceded_by_whitespace = true;
    let blank = |c: Option<&char>| matches!(c, None | Some(' ' | '\t'));
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = blank(chars.get(i + 1));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    block_indicators = true;
                }
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if tabs_in_blocks && c == '\t' {
            tabs = true;
        } else if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == chars.len() {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if i == 0 {
                leading_break = true;
            }
            if i + 1 == chars.len() {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = matches!(c, ' ' | '\t') || is_break(c);
    }
    let mut a = Analysis {
        multiline: line_breaks,
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if tabs {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if line_breaks || block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// A line break inside a scalar: `\n` as a new line, other breaks (U+2028, U+2029) written as they are.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
        self.indention = true;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in indicator.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn pop_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn node(&mut self, node: &Node, ctx: Context) -> Result<(), EmitError> {
        match node {
            Node::Scalar(text, requested) => self.scalar(text, *requested, ctx),
            Node::List(items) if items.is_empty() => {
                self.write_indicator("[", true, true, false);
                self.write_indicator("]", false, false, false);
                Ok(())
            }
            Node::Map(entries) if entries.is_empty() => {
                self.write_indicator("{", true, true, false);
                self.write_indicator("}", false, false, false);
                Ok(())
            }
            Node::List(items) => {
                let indentless = self.layout.indentless_sequences && ctx.mapping && !self.indention;
                self.increase_indent(false, indentless);
                for item in items {
                    self.write_indent();
                    self.write_indicator("-", true, false, true);
                    self.node(
                        item,
                        Context {
                            mapping: false,
                            simple_key: false,
                        },
                    )?;
                }
                self.pop_indent();
                Ok(())
            }
            Node::Map(entries) => {
                self.increase_indent(false, false);
                for (key, value) in entries {
                    self.write_indent();
                    let key_node = string_node(key);
                    let analysis = analyze(key, self.layout.tabs_in_blocks);
                    if !analysis.multiline && key.len() <= 128 {
                        self.node(
                            &key_node,
                            Context {
                                mapping: true,
                                simple_key: true,
                            },
                        )?;
                        self.write_indicator(":", false, false, false);
                    } else {
                        self.write_indicator("?", true, false, true);
                        self.node(
                            &key_node,
                            Context {
                                mapping: true,
                                simple_key: false,
                            },
                        )?;
                        self.write_indent();
                        self.write_indicator(":", true, false, true);
                    }
                    self.node(
                        value,
                        Context {
                            mapping: true,
                            simple_key: false,
                        },
                    )?;
                }
                self.pop_indent();
                Ok(())
            }
        }
    }

    fn scalar(&mut self, text: &str, requested: Requested, ctx: Context) -> Result<(), EmitError> {
        let a = analyze(text, self.layout.tabs_in_blocks);
        let mut style = match requested {
            Requested::Plain => Style::Plain,
            Requested::DoubleQuoted => Style::DoubleQuoted,
            Requested::Literal => Style::Literal,
        };
        if ctx.simple_key && a.multiline {
            style = Style::DoubleQuoted;
        }
        if style == Style::Plain && (!a.block_plain_allowed || (text.is_empty() && ctx.simple_key))
        {
            style = Style::SingleQuoted;
        }
        if style == Style::SingleQuoted && !a.single_quoted_allowed {
            style = Style::DoubleQuoted;
        }
        if style == Style::Literal && (!a.block_allowed || ctx.simple_key) {
            style = Style::DoubleQuoted;
        }
        self.increase_indent(true, false);
        let allow_breaks = !ctx.simple_key;
        match style {
            Style::Plain => self.write_plain(text, allow_breaks),
            Style::SingleQuoted => self.write_single_quoted(text, allow_breaks),
            Style::DoubleQuoted => self.write_double_quoted(text, allow_breaks),
            Style::Literal => self.write_literal(text),
        }
        self.pop_indent();
        Ok(())
    }

    fn write_plain(&mut self, text: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = text.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn write_single_quoted(&mut self, text: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut spaces = false;
        let mut breaks = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && i > 0
                    && i + 1 < chars.len()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                if !breaks && c == '\n' {
                    self.put_break();
                }
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
                breaks = false;
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_double_quoted(&mut self, text: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        let chars: Vec<char> = text.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let short = match c {
                    '\0' => Some('0'),
                    '\u{7}' => Some('a'),
                    '\u{8}' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\u{b}' => Some('v'),
                    '\u{c}' => Some('f'),
                    '\r' => Some('r'),
                    '\u{1b}' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{a0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match short {
                    Some(s) => self.put(s),
                    None => {
                        let u = c as u32;
                        let escaped = if u <= 0xFF {
                            format!("x{u:02X}")
                        } else if u <= 0xFFFF {
                            format!("u{u:04X}")
                        } else {
                            format!("U{u:08X}")
                        };
                        for e in escaped.chars() {
                            self.put(e);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > self.best_width
                    && i != 0
                    && i + 1 != chars.len()
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn write_literal(&mut self, text: &str) {
        self.write_indicator("|", true, false, false);
        // Block scalar hints: an indentation indicator when the text starts with a space or break, then
        // the chomping indicator for the trailing line breaks.
        let chars: Vec<char> = text.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            let hint = BEST_INDENT.to_string();
            self.write_indicator(&hint, false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.write_indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}
