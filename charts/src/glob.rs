//! Path patterns as Helm matches them: Go's `filepath.Match` (`.helmignore`, `--show-only`) and the
//! gobwas/glob syntax of `.Files.Glob` (`**`, `{a,b}`), both with `/` as the separator.

/// Why a pattern does not compile; worded as Go's `filepath.ErrBadPattern` (`syntax error in pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    /// A malformed `[...]` class (unclosed, empty, or a range that runs backwards), or a `\` at the end of
    /// a class.
    #[error("syntax error in pattern")]
    BadClass,
    /// A `\` ends the pattern.
    #[error("syntax error in pattern: trailing `\\`")]
    TrailingEscape,
    /// A `{` without its `}` (glob syntax).
    #[error("syntax error in pattern: unclosed `{{`")]
    UnclosedAlternatives,
    /// A character that cannot start a pattern element here (a stray `,` or `}` in glob syntax).
    #[error("unexpected `{0}` in pattern")]
    Unexpected(char),
}

/// One element of a compiled pattern.
#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` (glob syntax only): any run of characters, `/` included.
    SuperStar,
    /// `?`: one character other than `/`.
    Single,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `{a,b}` (glob syntax only): any of the alternatives.
    Alternatives(Vec<Vec<Token>>),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

/// The pattern syntax: Go's `filepath.Match` or gobwas/glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    GoMatch,
    Glob,
}

impl Pattern {
    /// Compiles `pattern` with Go's `filepath.Match` syntax (`[^a]` negates; `**` is just two stars).
    pub(crate) fn go(pattern: &str) -> Result<Pattern, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let tokens = parse(&chars, &mut pos, Syntax::GoMatch, false)?;
        Ok(Pattern { tokens })
    }

    /// Compiles `pattern` with gobwas/glob syntax (`**`, `{a,b}`, `[!a]`).
    pub(crate) fn glob(pattern: &str) -> Result<Pattern, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let tokens = parse(&chars, &mut pos, Syntax::Glob, false)?;
        if pos != chars.len() {
            return Err(PatternError::Unexpected(chars[pos]));
        }
        Ok(Pattern { tokens })
    }

    /// True when the whole of `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        match_tokens(&self.tokens, &chars, &[])
    }
}

/// Go's `filepath.Match(pattern, name)` on `/`-separated paths; `Err` for a malformed pattern.
pub(crate) fn go_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    Ok(Pattern::go(pattern)?.matches(name))
}

fn parse(
    chars: &[char],
    pos: &mut usize,
    syntax: Syntax,
    in_alternative: bool,
) -> Result<Vec<Token>, PatternError> {
    let mut tokens = Vec::new();
    while *pos < chars.len() {
        let c = chars[*pos];
        match c {
            '*' => {
                if syntax == Syntax::Glob && chars.get(*pos + 1) == Some(&'*') {
                    tokens.push(Token::SuperStar);
                    *pos += 2;
                } else {
                    tokens.push(Token::Star);
                    *pos += 1;
                }
            }
            '?' => {
                tokens.push(Token::Single);
                *pos += 1;
            }
            '\\' => {
                let escaped = *chars.get(*pos + 1).ok_or(PatternError::TrailingEscape)?;
                tokens.push(Token::Literal(escaped));
                *pos += 2;
            }
            '[' => {
                *pos += 1;
                tokens.push(parse_class(chars, pos, syntax)?);
            }
            '{' if syntax == Syntax::Glob => {
                *pos += 1;
                let mut alternatives = Vec::new();
                loop {
                    alternatives.push(parse(chars, pos, syntax, true)?);
                    match chars.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err(PatternError::UnclosedAlternatives),
                    }
                }
                tokens.push(Token::Alternatives(alternatives));
            }
            ',' | '}' if in_alternative => return Ok(tokens),
            _ => {
                tokens.push(Token::Literal(c));
                *pos += 1;
            }
        }
    }
    Ok(tokens)
}

fn parse_class(chars: &[char], pos: &mut usize, syntax: Syntax) -> Result<Token, PatternError> {
    let bad = || PatternError::BadClass;
    let negation = if syntax == Syntax::GoMatch { '^' } else { '!' };
    let negated = chars.get(*pos) == Some(&negation);
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(*pos).ok_or_else(bad)?;
        if c == ']' && (!first || syntax == Syntax::GoMatch) {
            if first {
                return Err(bad());
            }
            *pos += 1;
            break;
        }
        first = false;
        let lo = class_char(chars, pos)?;
        let hi = if chars.get(*pos) == Some(&'-') && chars.get(*pos + 1).is_some_and(|c| *c != ']')
        {
            *pos += 1;
            class_char(chars, pos)?
        } else {
            lo
        };
        if hi < lo {
            return Err(bad());
        }
        ranges.push((lo, hi));
    }
    Ok(Token::Class { negated, ranges })
}

fn class_char(chars: &[char], pos: &mut usize) -> Result<char, PatternError> {
    let c = *chars.get(*pos).ok_or(PatternError::BadClass)?;
    if c == '\\' {
        let escaped = *chars.get(*pos + 1).ok_or(PatternError::BadClass)?;
        *pos += 2;
        return Ok(escaped);
    }
    *pos += 1;
    Ok(c)
}

/// Matches `tokens` followed by `rest` (the tokens after an enclosing alternative) against `name`.
fn match_tokens(tokens: &[Token], name: &[char], rest: &[&[Token]]) -> bool {
    let Some((token, tail)) = tokens.split_first() else {
        return match rest.split_first() {
            Some((next, outer)) => match_tokens(next, name, outer),
            None => name.is_empty(),
        };
    };
    match token {
        Token::Literal(c) => name.first() == Some(c) && match_tokens(tail, &name[1..], rest),
        Token::Single => {
            name.first().is_some_and(|c| *c != '/') && match_tokens(tail, &name[1..], rest)
        }
        Token::Class { negated, ranges } => {
            name.first().is_some_and(|c| {
                let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                inside != *negated && *c != '/'
            }) && match_tokens(tail, &name[1..], rest)
        }
        Token::Star | Token::SuperStar => {
            let crosses = matches!(token, Token::SuperStar);
            for skip in 0..=name.len() {
                if match_tokens(tail, &name[skip..], rest) {
                    return true;
                }
                if skip < name.len() && name[skip] == '/' && !crosses {
                    return false;
                }
            }
            false
        }
        Token::Alternatives(alternatives) => {
            let mut outer: Vec<&[Token]> = Vec::with_capacity(rest.len() + 1);
            outer.push(tail);
            outer.extend_from_slice(rest);
            alternatives
                .iter()
                .any(|alternative| match_tokens(alternative, name, &outer))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_stars_stop_at_slashes() {
        assert!(go_match("templates/*.yaml", "templates/a.yaml").unwrap());
        assert!(!go_match("templates/*", "templates/x/a.yaml").unwrap());
        assert!(go_match("*.tgz", "a-1.0.tgz").unwrap());
        assert!(go_match("[^a]b", "xb").unwrap());
        assert!(!go_match("[^a]b", "ab").unwrap());
        assert!(go_match("a\\*", "a*").unwrap());
        assert!(go_match("[", "x").is_err());
    }

    #[test]
    fn glob_super_stars_and_alternatives() {
        let p = Pattern::glob("files/**.{yaml,json}").unwrap();
        assert!(p.matches("files/a/b.yaml"));
        assert!(p.matches("files/c.json"));
        assert!(!p.matches("files/c.txt"));
        let p = Pattern::glob("files/*").unwrap();
        assert!(p.matches("files/a"));
        assert!(!p.matches("files/a/b"));
        assert!(!Pattern::glob("[!a]*").unwrap().matches("b/c"));
        assert!(Pattern::glob("[!a]*").unwrap().matches("bc"));
    }
}
