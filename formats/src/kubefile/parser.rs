//! Turns Kubefile text into a [`Kubefile`] syntax tree: directives, then one instruction per logical line.

use super::ast::{
    ArgDecl, Command, CopyArgs, Directives, Flag, Healthcheck, Instruction, InstructionKind,
    KEYWORDS, KeyValue, Kubefile, Source,
};
use super::error::{ParseError, ParseErrorKind};
use super::lexer::{
    Lines, LogicalLine, Pos, Word, heredoc_marker_at, is_space, split_words, unquoted_equals,
};

/// Parses a whole Kubefile; errors name the file `file`.
pub(crate) fn parse_file(file: &str, text: &str) -> Result<Kubefile, ParseError> {
    let mut lines = Lines::new(text, file);
    let directives = parse_directives(&mut lines)?;
    lines.escape = directives.escape;
    let mut instructions = Vec::new();
    while lines.skip_blank() {
        let line = lines.read_logical()?;
        let parser = InstructionParser {
            line: &line,
            lines: &lines,
            escape: directives.escape,
        };
        let start = line.chars.iter().take_while(|c| is_space(**c)).count();
        let pos = line.pos_at(start);
        let kind = parser.instruction(start, false)?;
        instructions.push(Instruction {
            line: pos.line,
            column: pos.column,
            kind,
        });
    }
    check_order(&lines, &instructions)?;
    Ok(Kubefile {
        directives,
        instructions,
    })
}

fn check_order(lines: &Lines<'_>, instructions: &[Instruction]) -> Result<(), ParseError> {
    for instruction in instructions {
        match instruction.kind {
            InstructionKind::Arg(_) => continue,
            InstructionKind::From { .. } => return Ok(()),
            ref other => {
                let pos = Pos {
                    line: instruction.line,
                    column: instruction.column,
                };
                return Err(lines.error(
                    pos,
                    ParseErrorKind::BeforeFrom {
                        instruction: other.keyword(),
                    },
                ));
            }
        }
    }
    let end = Pos {
        line: lines.lines.len().max(1),
        column: 1,
    };
    Err(lines.error(end, ParseErrorKind::NoFrom))
}

fn parse_directives(lines: &mut Lines<'_>) -> Result<Directives, ParseError> {
    let mut directives = Directives::default();
    let mut seen_escape = false;
    while lines.next < lines.lines.len() {
        let raw = lines.lines[lines.next];
        let Some((name, value, value_column)) = directive(raw) else {
            break;
        };
        let pos = Pos {
            line: lines.next + 1,
            column: value_column,
        };
        match name.as_str() {
            "escape" if !seen_escape => {
                seen_escape = true;
                directives.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(lines.error(
                            pos,
                            ParseErrorKind::BadDirective {
                                text: raw.trim().to_string(),
                                problem: "the escape character must be \\ or `",
                            },
                        ));
                    }
                };
            }
            "syntax" if directives.syntax.is_none() => directives.syntax = Some(value.to_string()),
            "check" => {}
            "escape" | "syntax" => {
                return Err(lines.error(
                    pos,
                    ParseErrorKind::BadDirective {
                        text: raw.trim().to_string(),
                        problem: "a directive may appear only once",
                    },
                ));
            }
            _ => break,
        }
        lines.next += 1;
    }
    Ok(directives)
}

/// `# name=value` → (lower-case name, value, 1-based column of the value).
fn directive(raw: &str) -> Option<(String, &str, usize)> {
    let rest = raw.trim_start_matches([' ', '\t']).strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim_matches([' ', '\t']);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value_trimmed = value.trim_matches([' ', '\t']);
    let offset =
        raw.len() - value.len() + (value.len() - value.trim_start_matches([' ', '\t']).len());
    let column = raw[..offset].chars().count() + 1;
    Some((name.to_ascii_lowercase(), value_trimmed, column))
}

const FROM_FLAGS: &[&str] = &["platform"];
const COPY_FLAGS: &[&str] = &["from", "chmod", "chown", "link", "parents", "exclude"];
const ADD_FLAGS: &[&str] = &[
    "chmod",
    "chown",
    "link",
    "keep-git-dir",
    "checksum",
    "exclude",
    "unpack",
];
const RUN_FLAGS: &[&str] = &["mount", "network", "security", "device"];
const HEALTHCHECK_FLAGS: &[&str] = &[
    "interval",
    "timeout",
    "start-period",
    "start-interval",
    "retries",
];
/// Flags that are switches (no `=value` needed).
const BOOL_FLAGS: &[&str] = &["link", "parents", "keep-git-dir", "unpack"];

struct InstructionParser<'a> {
    line: &'a LogicalLine,
    lines: &'a Lines<'a>,
    escape: char,
}

impl InstructionParser<'_> {
    fn err(&self, index: usize, kind: ParseErrorKind) -> ParseError {
        self.lines.error(self.line.pos_at(index), kind)
    }

    fn skip_space(&self, mut i: usize) -> usize {
        while i < self.line.chars.len() && is_space(self.line.chars[i]) {
            i += 1;
        }
        i
    }

    fn instruction(&self, start: usize, in_onbuild: bool) -> Result<InstructionKind, ParseError> {
        let chars = &self.line.chars;
        let mut end = start;
        while end < chars.len() && !is_space(chars[end]) {
            end += 1;
        }
        let word = self.line.text(start, end);
        let upper = word.to_ascii_uppercase();
        let Some(keyword) = KEYWORDS.iter().copied().find(|k| *k == upper) else {
            return Err(self.err(
                start,
                ParseErrorKind::UnknownInstruction {
                    suggestion: suggest(&upper),
                    word,
                },
            ));
        };
        let args = self.skip_space(end);
        let missing = |expected| {
            Err(self.err(
                args,
                ParseErrorKind::MissingArguments {
                    instruction: keyword,
                    expected,
                },
            ))
        };
        if args >= chars.len() {
            return missing(match keyword {
                "COPY" | "ADD" => "requires a source and a destination",
                "ENV" | "LABEL" => "requires at least one name=value pair",
                "ARG" => "requires a name, like ARG VERSION or ARG VERSION=v1",
                "FROM" => "requires a base image, like FROM scratch",
                _ => "requires an argument",
            });
        }
        let rest = || self.line.text(args, chars.len());
        Ok(match keyword {
            "FROM" => self.from(args)?,
            "COPY" => InstructionKind::Copy(self.copy_args(keyword, args, COPY_FLAGS)?),
            "ADD" => InstructionKind::Add(self.copy_args(keyword, args, ADD_FLAGS)?),
            "ENV" => {
                let (pairs, legacy) = self.key_values(keyword, args)?;
                InstructionKind::Env { pairs, legacy }
            }
            "LABEL" => {
                let (pairs, legacy) = self.key_values(keyword, args)?;
                InstructionKind::Label { pairs, legacy }
            }
            "ARG" => self.arg(args)?,
            "CMD" => InstructionKind::Cmd(self.command(args)),
            "ENTRYPOINT" => InstructionKind::Entrypoint(self.command(args)),
            "RUN" => {
                let (flags, rest_at) = self.flags(keyword, args, RUN_FLAGS)?;
                if rest_at >= chars.len() {
                    return Err(self.err(
                        rest_at,
                        ParseErrorKind::MissingArguments {
                            instruction: keyword,
                            expected: "requires a command",
                        },
                    ));
                }
                let heredocs = self.line.heredocs.iter().map(|(_, d)| d.clone()).collect();
                InstructionKind::Run {
                    flags,
                    command: self.command(rest_at),
                    heredocs,
                }
            }
            "WORKDIR" => InstructionKind::Workdir(rest()),
            "USER" => InstructionKind::User(rest()),
            "MAINTAINER" => {
                if in_onbuild {
                    return Err(self.bad_onbuild(start, keyword));
                }
                InstructionKind::Maintainer(rest())
            }
            "STOPSIGNAL" => InstructionKind::StopSignal(rest()),
            "EXPOSE" => {
                InstructionKind::Expose(self.words(args)?.into_iter().map(|w| w.text).collect())
            }
            "VOLUME" => match self.json_array(args) {
                Some(paths) if !paths.is_empty() => InstructionKind::Volume { paths, json: true },
                Some(_) => return missing("requires at least one path"),
                None => InstructionKind::Volume {
                    paths: self.words(args)?.into_iter().map(|w| w.text).collect(),
                    json: false,
                },
            },
            "SHELL" => match self.json_array(args) {
                Some(shell) if !shell.is_empty() => InstructionKind::Shell(shell),
                _ => {
                    return Err(self.err(
                        args,
                        ParseErrorKind::NeedsJson {
                            instruction: keyword,
                            text: rest(),
                        },
                    ));
                }
            },
            "HEALTHCHECK" => self.healthcheck(args)?,
            "ONBUILD" => {
                if in_onbuild {
                    return Err(self.bad_onbuild(start, "ONBUILD"));
                }
                let inner = self.instruction(args, true)?;
                if matches!(inner, InstructionKind::From { .. }) {
                    return Err(self.bad_onbuild(args, "FROM"));
                }
                InstructionKind::Onbuild(Box::new(inner))
            }
            _ => {
                return Err(self.err(
                    start,
                    ParseErrorKind::UnknownInstruction {
                        word: self.line.text(start, end),
                        suggestion: None,
                    },
                ));
            }
        })
    }

    fn bad_onbuild(&self, at: usize, instruction: &str) -> ParseError {
        self.err(
            at,
            ParseErrorKind::BadOnbuild {
                instruction: instruction.to_string(),
            },
        )
    }

    fn words(&self, start: usize) -> Result<Vec<Word>, ParseError> {
        split_words(self.line, start, self.escape, self.lines, usize::MAX)
    }

    /// The word starting at or after `start`, if any.
    fn next_word(&self, start: usize) -> Result<Option<Word>, ParseError> {
        Ok(split_words(self.line, start, self.escape, self.lines, 1)?.pop())
    }

    fn json_array(&self, start: usize) -> Option<Vec<String>> {
        let text = self.line.text(start, self.line.chars.len());
        if !text.starts_with('[') {
            return None;
        }
        serde_json::from_str::<Vec<String>>(&text).ok()
    }

    fn command(&self, start: usize) -> Command {
        match self.json_array(start) {
            Some(args) => Command::Exec(args),
            None => Command::Shell(self.line.text(start, self.line.chars.len())),
        }
    }

    /// Leading `--flag[=value]` words; returns them and the index where the rest starts.
    fn flags(
        &self,
        instruction: &'static str,
        start: usize,
        accepted: &'static [&'static str],
    ) -> Result<(Vec<Flag>, usize), ParseError> {
        let mut flags = Vec::new();
        let mut at = self.skip_space(start);
        while self.line.chars.get(at) == Some(&'-') && self.line.chars.get(at + 1) == Some(&'-') {
            let Some(word) = self.next_word(at)? else {
                break;
            };
            let body = word.text.strip_prefix("--").unwrap_or(&word.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            };
            if !accepted.contains(&name.as_str()) {
                return Err(self.err(
                    word.start,
                    ParseErrorKind::UnknownFlag {
                        instruction,
                        flag: word.text.clone(),
                        accepted: accepted_list(accepted),
                    },
                ));
            }
            let is_bool = BOOL_FLAGS.contains(&name.as_str());
            if value.is_none() && !is_bool {
                return Err(self.err(
                    word.start,
                    ParseErrorKind::BadFlagValue {
                        instruction,
                        flag: word.text.clone(),
                        problem: "needs a value: write --name=value",
                    },
                ));
            }
            if value.as_deref() == Some("") {
                return Err(self.err(
                    word.start,
                    ParseErrorKind::BadFlagValue {
                        instruction,
                        flag: word.text.clone(),
                        problem: "has an empty value",
                    },
                ));
            }
            flags.push(Flag { name, value });
            at = self.skip_space(word.end);
        }
        Ok((flags, at))
    }

    fn from(&self, args: usize) -> Result<InstructionKind, ParseError> {
        let (flags, rest) = self.flags("FROM", args, FROM_FLAGS)?;
        let words = self.words(rest)?;
        let bad = || {
            Err(self.err(
                rest,
                ParseErrorKind::BadFrom {
                    text: self.line.text(rest, self.line.chars.len()),
                },
            ))
        };
        match words.as_slice() {
            [] => Err(self.err(
                rest,
                ParseErrorKind::MissingArguments {
                    instruction: "FROM",
                    expected: "requires a base image, like FROM scratch",
                },
            )),
            [image] => Ok(InstructionKind::From {
                flags,
                image: image.text.clone(),
                alias: None,
            }),
            [image, as_, name] if as_.text.eq_ignore_ascii_case("as") => {
                let valid = name
                    .text
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                    && name
                        .text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !valid {
                    return Err(self.err(
                        name.start,
                        ParseErrorKind::BadStageName {
                            name: name.text.clone(),
                        },
                    ));
                }
                Ok(InstructionKind::From {
                    flags,
                    image: image.text.clone(),
                    alias: Some(name.text.clone()),
                })
            }
            _ => bad(),
        }
    }

    fn copy_args(
        &self,
        instruction: &'static str,
        args: usize,
        accepted: &'static [&'static str],
    ) -> Result<CopyArgs, ParseError> {
        let (flags, rest) = self.flags(instruction, args, accepted)?;
        let too_few = |at| {
            Err(self.err(
                at,
                ParseErrorKind::MissingArguments {
                    instruction,
                    expected: "requires a source and a destination",
                },
            ))
        };
        if let Some(mut all) = self.json_array(rest) {
            if all.len() < 2 {
                return too_few(rest);
            }
            let destination = all.pop().unwrap_or_default();
            return Ok(CopyArgs {
                flags,
                sources: all.into_iter().map(Source::Path).collect(),
                destination,
            });
        }
        let words = self.words(rest)?;
        if words.len() < 2 {
            return too_few(words.first().map_or(rest, |w| w.end));
        }
        let mut sources = Vec::new();
        let mut docs = self.line.heredocs.iter();
        let last = words.len() - 1;
        for word in &words[..last] {
            let chars: Vec<char> = word.text.chars().collect();
            let is_doc = heredoc_marker_at(&chars).is_some_and(|(_, len)| len == chars.len());
            match docs.clone().next() {
                Some((start, doc)) if is_doc && *start == word.start => {
                    docs.next();
                    sources.push(Source::HereDoc(doc.clone()));
                }
                _ => sources.push(Source::Path(word.text.clone())),
            }
        }
        // The lexer read a body for every marker; one left over is the destination, which cannot be one.
        if let Some((start, _)) = docs.next() {
            return Err(self.err(
                *start,
                ParseErrorKind::HereDocDestination {
                    instruction,
                    text: words[last].text.clone(),
                },
            ));
        }
        Ok(CopyArgs {
            flags,
            sources,
            destination: words[last].text.clone(),
        })
    }

    fn key_values(
        &self,
        instruction: &'static str,
        args: usize,
    ) -> Result<(Vec<KeyValue>, bool), ParseError> {
        let words = self.words(args)?;
        let Some(first) = words.first() else {
            return Ok((Vec::new(), false));
        };
        if unquoted_equals(&first.text, self.escape).is_none() {
            // Legacy `ENV key value with spaces`.
            let value_at = self.skip_space(first.end);
            if value_at >= self.line.chars.len() {
                return Err(self.err(
                    first.end,
                    ParseErrorKind::MissingArguments {
                        instruction,
                        expected: "requires a value: write name=value",
                    },
                ));
            }
            let pair = KeyValue {
                key: first.text.clone(),
                value: self.line.text(value_at, self.line.chars.len()),
            };
            return Ok((vec![pair], true));
        }
        let mut pairs = Vec::new();
        for word in words {
            let Some(eq) = unquoted_equals(&word.text, self.escape) else {
                return Err(self.err(
                    word.start,
                    ParseErrorKind::MissingEquals {
                        instruction,
                        text: word.text.clone(),
                    },
                ));
            };
            if eq == 0 {
                return Err(self.err(
                    word.start,
                    ParseErrorKind::EmptyName {
                        instruction,
                        text: word.text.clone(),
                    },
                ));
            }
            pairs.push(KeyValue {
                key: word.text[..eq].to_string(),
                value: word.text[eq + 1..].to_string(),
            });
        }
        Ok((pairs, false))
    }

    fn arg(&self, args: usize) -> Result<InstructionKind, ParseError> {
        let mut decls = Vec::new();
        for word in self.words(args)? {
            let decl = match unquoted_equals(&word.text, self.escape) {
                Some(0) => {
                    return Err(self.err(
                        word.start,
                        ParseErrorKind::EmptyName {
                            instruction: "ARG",
                            text: word.text.clone(),
                        },
                    ));
                }
                Some(eq) => ArgDecl {
                    name: word.text[..eq].to_string(),
                    default: Some(word.text[eq + 1..].to_string()),
                },
                None => ArgDecl {
                    name: word.text.clone(),
                    default: None,
                },
            };
            decls.push(decl);
        }
        Ok(InstructionKind::Arg(decls))
    }

    fn healthcheck(&self, args: usize) -> Result<InstructionKind, ParseError> {
        if let Some(first) = self.next_word(args)?
            && first.text.eq_ignore_ascii_case("none")
            && self.skip_space(first.end) >= self.line.chars.len()
        {
            return Ok(InstructionKind::Healthcheck(Healthcheck::None));
        }
        let (flags, rest) = self.flags("HEALTHCHECK", args, HEALTHCHECK_FLAGS)?;
        let bad = || {
            self.err(
                rest,
                ParseErrorKind::BadHealthcheck {
                    text: self.line.text(args, self.line.chars.len()),
                },
            )
        };
        match self.next_word(rest)? {
            Some(w) if w.text.eq_ignore_ascii_case("cmd") => {
                let command_at = self.skip_space(w.end);
                if command_at >= self.line.chars.len() {
                    return Err(bad());
                }
                Ok(InstructionKind::Healthcheck(Healthcheck::Cmd {
                    flags,
                    command: self.command(command_at),
                }))
            }
            _ => Err(bad()),
        }
    }
}

fn accepted_list(accepted: &'static [&'static str]) -> &'static str {
    match accepted.first() {
        Some(&"platform") => "--platform",
        Some(&"from") => "--from, --chmod, --chown, --link, --parents, --exclude",
        Some(&"chmod") => {
            "--chmod, --chown, --link, --keep-git-dir, --checksum, --exclude, --unpack"
        }
        Some(&"mount") => "--mount, --network, --security, --device",
        _ => "--interval, --timeout, --start-period, --start-interval, --retries",
    }
}

/// The instruction closest to `word` (edit distance at most 2), for "did you mean".
fn suggest(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
