//! Build-time word processing, as Dockerfile does it: quotes are removed, the escape character escapes the next
//! character, and `$V`, `${V}`, `${V:-word}`, `${V-word}`, `${V:+word}`, `${V+word}`, `${V:?message}` are
//! replaced by variables in scope. `\$` keeps a literal dollar (`check.sh \$registryData` stays `$registryData`).

/// Why a word could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstitutionError {
    /// Malformed text: an unclosed quote or `${`, or an unsupported modifier.
    Syntax(String),
    /// `${V:?message}` (or `${V?message}`) with V unset (or empty, with the colon).
    Required {
        /// The variable.
        name: String,
        /// The message after `?`.
        message: String,
    },
}

/// Processes one raw word: removes quotes and escapes and substitutes variables found by `lookup`.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstitutionError> {
    let mut lexer = WordLexer {
        chars: word.chars().collect(),
        i: 0,
        escape,
        lookup,
        depth: 0,
    };
    lexer.process(None)
}

struct WordLexer<'a> {
    chars: Vec<char>,
    i: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
}

/// Nesting limit of `${V:-${W:-...}}`, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 32;

fn syntax(message: impl Into<String>) -> SubstitutionError {
    SubstitutionError::Syntax(message.into())
}

impl WordLexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn process(&mut self, stop: Option<char>) -> Result<String, SubstitutionError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.i += 1;
                return Ok(out);
            }
            if c == '\'' {
                self.i += 1;
                loop {
                    match self.peek() {
                        None => return Err(syntax("unterminated ' quote")),
                        Some('\'') => {
                            self.i += 1;
                            break;
                        }
                        Some(ch) => {
                            out.push(ch);
                            self.i += 1;
                        }
                    }
                }
            } else if c == '"' {
                self.i += 1;
                loop {
                    match self.peek() {
                        None => return Err(syntax("unterminated \" quote")),
                        Some('"') => {
                            self.i += 1;
                            break;
                        }
                        Some('$') => out.push_str(&self.dollar()?),
                        Some(ch) if ch == self.escape => {
                            self.i += 1;
                            match self.peek() {
                                Some(next) if next == '"' || next == '$' || next == self.escape => {
                                    out.push(next);
                                    self.i += 1;
                                }
                                _ => out.push(ch),
                            }
                        }
                        Some(ch) => {
                            out.push(ch);
                            self.i += 1;
                        }
                    }
                }
            } else if c == self.escape {
                self.i += 1;
                if let Some(next) = self.peek() {
                    out.push(next);
                    self.i += 1;
                }
            } else if c == '$' {
                out.push_str(&self.dollar()?);
            } else {
                out.push(c);
                self.i += 1;
            }
        }
        match stop {
            Some(_) => Err(syntax("missing '}' to close '${'")),
            None => Ok(out),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        name
    }

    fn dollar(&mut self) -> Result<String, SubstitutionError> {
        self.i += 1;
        match self.peek() {
            Some('{') => {
                self.i += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(syntax(
                        "bad substitution: '${' must be followed by a variable name",
                    ));
                }
                let value = (self.lookup)(&name);
                match self.peek() {
                    Some('}') => {
                        self.i += 1;
                        Ok(value.unwrap_or_default())
                    }
                    Some(c @ (':' | '-' | '+' | '?')) => {
                        self.i += 1;
                        let colon = c == ':';
                        let op = if colon {
                            let op = self.peek();
                            self.i += 1;
                            op
                        } else {
                            Some(c)
                        };
                        if self.depth >= MAX_DEPTH {
                            return Err(syntax("substitutions nested too deeply"));
                        }
                        self.depth += 1;
                        let word = self.process(Some('}'));
                        self.depth -= 1;
                        let word = word?;
                        let set = match &value {
                            Some(v) => !colon || !v.is_empty(),
                            None => false,
                        };
                        match op {
                            Some('-') => Ok(if set { value.unwrap_or_default() } else { word }),
                            Some('+') => Ok(if set { word } else { String::new() }),
                            Some('?') if set => Ok(value.unwrap_or_default()),
                            Some('?') => Err(SubstitutionError::Required {
                                name,
                                message: if word.is_empty() {
                                    "parameter not set".to_string()
                                } else {
                                    word
                                },
                            }),
                            _ => Err(syntax(format!(
                                "unsupported modifier in '${{{name}:...}}': use :-, :+ or :?"
                            ))),
                        }
                    }
                    Some(c) => Err(syntax(format!(
                        "unsupported modifier {c:?} in '${{{name}...}}': use :-, :+ or :?"
                    ))),
                    None => Err(syntax("missing '}' to close '${'")),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                Ok((self.lookup)(&name).unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(word: &str) -> Result<String, SubstitutionError> {
        let lookup = |name: &str| match name {
            "NAME" => Some("calico".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        expand(word, '\\', &lookup)
    }

    #[test]
    fn default_with_quotes_inside_braces_loses_its_quotes() {
        assert_eq!(run(r#"${UNSET:-"calico"}"#).unwrap(), "calico");
        assert_eq!(run(r#"${NAME:-"other"}"#).unwrap(), "calico");
    }

    #[test]
    fn escaped_dollar_survives_in_and_out_of_quotes() {
        assert_eq!(
            run(r#""check.sh \$registryData""#).unwrap(),
            "check.sh $registryData"
        );
        assert_eq!(run(r"\$HOME").unwrap(), "$HOME");
    }

    #[test]
    fn colon_forms_treat_empty_as_unset_and_plain_forms_do_not() {
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${EMPTY:+a}").unwrap(), "");
        assert_eq!(run("${EMPTY+a}").unwrap(), "a");
        assert_eq!(run("${NAME:+set}").unwrap(), "set");
        assert_eq!(run("$NAME/$UNSET/${NAME}x").unwrap(), "calico//calicox");
    }

    #[test]
    fn single_quotes_are_literal_and_lonely_dollars_stay() {
        assert_eq!(run("'$NAME'").unwrap(), "$NAME");
        assert_eq!(run("a$ $1 $").unwrap(), "a$ $1 $");
    }

    #[test]
    fn required_variable_reports_its_message() {
        assert_eq!(
            run("${UNSET:?set UNSET first}"),
            Err(SubstitutionError::Required {
                name: "UNSET".into(),
                message: "set UNSET first".into()
            })
        );
    }

    #[test]
    fn deeply_nested_defaults_are_an_error_not_a_stack_overflow() {
        let deep = "${A:-".repeat(100_000);
        assert!(matches!(run(&deep), Err(SubstitutionError::Syntax(_))));
        assert_eq!(run("${A:-${B:-${NAME}}}").unwrap(), "calico");
    }

    #[test]
    fn malformed_substitutions_are_errors_not_panics() {
        for bad in [
            "${",
            "${NAME",
            "${NAME:-x",
            "${}",
            "${NAME%x}",
            "\"abc",
            "'abc",
            "${NAME:",
        ] {
            assert!(
                matches!(run(bad), Err(SubstitutionError::Syntax(_))),
                "{bad}"
            );
        }
    }
}
