//! Splits Kubefile text into logical lines (joining continuations, quoted values spanning lines and
//! here-documents) and logical lines into words, remembering the file position of every character.

use super::ast::HereDoc;
use super::error::{ParseError, ParseErrorKind};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One instruction's text after continuations were joined, with the position of each character.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    pub chars: Vec<char>,
    pub pos: Vec<Pos>,
    /// Where the line ends (used for errors about missing text).
    pub end: Pos,
    /// Here-documents whose bodies followed the line, in the order they are named.
    pub heredocs: Vec<(usize, HereDoc)>,
}

impl LogicalLine {
    pub fn pos_at(&self, index: usize) -> Pos {
        self.pos.get(index).copied().unwrap_or(self.end)
    }

    pub fn text(&self, start: usize, end: usize) -> String {
        let end = end.min(self.chars.len());
        let start = start.min(end);
        self.chars[start..end].iter().collect()
    }
}

/// A word of a logical line: its raw text and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim_start_matches([' ', '\t', '\r']);
    t.is_empty() || t.starts_with('#')
}

/// True when `chars` ends (ignoring trailing blanks) with an odd run of escape characters.
fn continuation_index(chars: &[char], escape: char) -> Option<usize> {
    let mut end = chars.len();
    while end > 0 && matches!(chars[end - 1], ' ' | '\t' | '\r') {
        end -= 1;
    }
    let mut run = 0;
    while run < end && chars[end - 1 - run] == escape {
        run += 1;
    }
    (run % 2 == 1).then(|| end - 1)
}

/// The quote left open at the end of `chars`, if any (single quotes are literal, escapes work elsewhere).
pub(crate) fn open_quote(chars: &[char], escape: char) -> Option<(char, usize)> {
    let mut quote: Option<(char, usize)> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(('\'', _)) => {
                if c == '\'' {
                    quote = None;
                }
            }
            Some((q, _)) => {
                if c == escape {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == escape {
                    i += 1;
                } else if c == '"' || c == '\'' {
                    quote = Some((c, i));
                }
            }
        }
        i += 1;
    }
    quote
}

/// The physical lines of a file, `\r` endings removed.
pub(crate) struct Lines<'a> {
    pub lines: Vec<&'a str>,
    pub next: usize,
    pub escape: char,
    pub file: &'a str,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str, file: &'a str) -> Self {
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        if text.ends_with('\n') {
            lines.pop();
        }
        Lines {
            lines,
            next: 0,
            escape: '\\',
            file,
        }
    }

    pub fn error(&self, pos: Pos, kind: ParseErrorKind) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            kind,
        }
    }

    /// Skips blank and comment lines; true when an instruction line follows.
    pub fn skip_blank(&mut self) -> bool {
        while self.next < self.lines.len() && is_blank_or_comment(self.lines[self.next]) {
            self.next += 1;
        }
        self.next < self.lines.len()
    }

    fn push_line(&self, index: usize, chars: &mut Vec<char>, pos: &mut Vec<Pos>) -> Pos {
        let mut column = 0;
        for c in self.lines[index].chars() {
            column += 1;
            chars.push(c);
            pos.push(Pos {
                line: index + 1,
                column,
            });
        }
        Pos {
            line: index + 1,
            column: column + 1,
        }
    }

    /// Reads the next logical line. `first_word` decides whether quotes may span lines and which here-documents
    /// are read.
    pub fn read_logical(&mut self) -> Result<LogicalLine, ParseError> {
        let escape = self.escape;
        let mut chars = Vec::new();
        let mut pos = Vec::new();
        let mut end = self.push_line(self.next, &mut chars, &mut pos);
        self.next += 1;
        loop {
            if let Some(cut) = continuation_index(&chars, escape) {
                chars.truncate(cut);
                pos.truncate(cut);
                while self.next < self.lines.len() && is_blank_or_comment(self.lines[self.next]) {
                    self.next += 1;
                }
                if self.next >= self.lines.len() {
                    break;
                }
                end = self.push_line(self.next, &mut chars, &mut pos);
                self.next += 1;
                continue;
            }
            let quotes_span = matches!(first_keyword(&chars).as_str(), "ENV" | "LABEL" | "ARG");
            if quotes_span && self.next < self.lines.len() && open_quote(&chars, escape).is_some() {
                chars.push('\n');
                pos.push(end);
                end = self.push_line(self.next, &mut chars, &mut pos);
                self.next += 1;
                continue;
            }
            break;
        }
        normalize_end(&mut chars, &mut pos, escape);
        // The keyword is known only once continuations are joined (a first line may be a lone `\`).
        let keyword = first_keyword(&chars);
        let mut line = LogicalLine {
            chars,
            pos,
            end,
            heredocs: Vec::new(),
        };
        let heredoc_keyword = if keyword == "ONBUILD" {
            second_keyword(&line.chars)
        } else {
            keyword
        };
        if matches!(heredoc_keyword.as_str(), "RUN" | "COPY" | "ADD") {
            // A COPY/ADD here-document is a source word of its own (as BuildKit reads it); RUN's shell text
            // may also write `cat<<EOF`.
            self.read_heredocs(&mut line, heredoc_keyword != "RUN")?;
        }
        Ok(line)
    }

    fn read_heredocs(
        &mut self,
        line: &mut LogicalLine,
        whole_words: bool,
    ) -> Result<(), ParseError> {
        for (start, mut doc) in find_heredoc_markers(&line.chars, self.escape, whole_words) {
            let mut body = String::new();
            let mut closed = false;
            while self.next < self.lines.len() {
                let raw = self.lines[self.next];
                self.next += 1;
                let text = if doc.strip_tabs {
                    raw.trim_start_matches('\t')
                } else {
                    raw
                };
                if text == doc.delimiter {
                    closed = true;
                    break;
                }
                body.push_str(text);
                body.push('\n');
            }
            if !closed {
                return Err(self.error(
                    line.pos_at(start),
                    ParseErrorKind::UnterminatedHereDoc {
                        delimiter: doc.delimiter,
                    },
                ));
            }
            doc.body = body;
            line.heredocs.push((start, doc));
        }
        Ok(())
    }
}

/// Removes trailing blanks and a dangling escape character that escapes nothing (an escaped blank at the very
/// end is dropped too: written back it would read as a line continuation).
fn normalize_end(chars: &mut Vec<char>, pos: &mut Vec<Pos>, escape: char) {
    loop {
        while chars.last().is_some_and(|c| is_space(*c)) {
            chars.pop();
            pos.pop();
        }
        let n = chars.len();
        if n > 0 && chars[n - 1] == escape && escape_run_before(chars, n, escape) % 2 == 1 {
            chars.pop();
            pos.pop();
            continue;
        }
        break;
    }
}

fn escape_run_before(chars: &[char], index: usize, escape: char) -> usize {
    chars[..index]
        .iter()
        .rev()
        .take_while(|c| **c == escape)
        .count()
}

fn first_keyword(chars: &[char]) -> String {
    chars
        .iter()
        .skip_while(|c| is_space(**c))
        .take_while(|c| !is_space(**c))
        .collect::<String>()
        .to_ascii_uppercase()
}

fn second_keyword(chars: &[char]) -> String {
    let rest: Vec<char> = chars
        .iter()
        .skip_while(|c| is_space(**c))
        .skip_while(|c| !is_space(**c))
        .copied()
        .collect();
    first_keyword(&rest)
}

/// Here-document markers (`<<EOF`, `<<-EOF`, `<<"EOF"`) outside quotes, with their start index. With
/// `whole_words`, only a marker that is a whole word counts (`a<<EOF` and `<<EOF>f` are not markers).
pub(crate) fn find_heredoc_markers(
    chars: &[char],
    escape: char,
    whole_words: bool,
) -> Vec<(usize, HereDoc)> {
    let mut found = Vec::new();
    let mut quote: Option<char> = None;
    // True where a word may start: at the beginning and after an unescaped blank outside quotes.
    let mut word_start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if q != '\'' && c == escape {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if is_space(c) {
            word_start = true;
            i += 1;
            continue;
        }
        let at_word_start = std::mem::replace(&mut word_start, false);
        if c == escape {
            i += 2;
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == '<' && chars.get(i + 1) == Some(&'<') && (i == 0 || chars[i - 1] != '<') {
            if let Some((doc, len)) = heredoc_marker_at(&chars[i..]) {
                let word_ends = chars.get(i + len).is_none_or(|c| is_space(*c));
                if !whole_words || (at_word_start && word_ends) {
                    found.push((i, doc));
                    i += len;
                    continue;
                }
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    found
}

/// Parses a marker at the start of `chars`; returns it and its length.
pub(crate) fn heredoc_marker_at(chars: &[char]) -> Option<(HereDoc, usize)> {
    if chars.len() < 3 || chars[0] != '<' || chars[1] != '<' {
        return None;
    }
    let mut i = 2;
    let strip_tabs = chars.get(i) == Some(&'-');
    if strip_tabs {
        i += 1;
    }
    let quote = match chars.get(i) {
        Some(q @ ('"' | '\'')) => {
            i += 1;
            Some(*q)
        }
        _ => None,
    };
    let start = i;
    while i < chars.len()
        && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
    {
        i += 1;
    }
    if i == start {
        return None;
    }
    let delimiter: String = chars[start..i].iter().collect();
    if let Some(q) = quote {
        if chars.get(i) != Some(&q) {
            return None;
        }
        i += 1;
    }
    if i < chars.len() && !is_space(chars[i]) && !matches!(chars[i], '>' | '|' | ';' | '&' | ')') {
        return None;
    }
    Some((
        HereDoc {
            delimiter,
            quoted: quote.is_some(),
            strip_tabs,
            body: String::new(),
        },
        i,
    ))
}

/// Splits `chars[start..]` into at most `limit` words at blanks outside quotes; quotes and escapes stay in the words.
pub(crate) fn split_words(
    line: &LogicalLine,
    start: usize,
    escape: char,
    lines: &Lines<'_>,
    limit: usize,
) -> Result<Vec<Word>, ParseError> {
    let chars = &line.chars;
    let mut words = Vec::new();
    let mut i = start;
    while i < chars.len() && words.len() < limit {
        if is_space(chars[i]) {
            i += 1;
            continue;
        }
        let word_start = i;
        let mut quote: Option<(char, usize)> = None;
        while i < chars.len() {
            let c = chars[i];
            match quote {
                Some(('\'', _)) => {
                    if c == '\'' {
                        quote = None;
                    }
                }
                Some((q, _)) => {
                    if c == escape {
                        i += 1;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => {
                    if is_space(c) {
                        break;
                    }
                    if c == escape {
                        i += 1;
                    } else if c == '"' || c == '\'' {
                        quote = Some((c, i));
                    }
                }
            }
            i += 1;
        }
        let i_end = i.min(chars.len());
        if let Some((q, at)) = quote {
            return Err(lines.error(
                line.pos_at(at),
                ParseErrorKind::UnterminatedQuote {
                    quote: q,
                    text: line.text(word_start, i_end),
                },
            ));
        }
        words.push(Word {
            text: line.text(word_start, i_end),
            start: word_start,
            end: i_end,
        });
        i = i_end;
    }
    Ok(words)
}

/// Index of the first `=` outside quotes and escapes in a raw word.
pub(crate) fn unquoted_equals(word: &str, escape: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in word.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some('\'') => {
                if c == '\'' {
                    quote = None;
                }
            }
            Some(q) => {
                if c == escape {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == escape {
                    escaped = true;
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == '=' {
                    return Some(i);
                }
            }
        }
    }
    None
}
