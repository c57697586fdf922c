//! Variable expansion in image commands, as `sealos run` does it: `$(VAR)`, `${VAR}`, `$VAR`, `$$`.
//!
//! Shared by the runtime (which expands a command before any shell sees it) and by build-time image
//! discovery (which reads the command the same way to find the charts and values it installs):
//!
//! - `$(NAME)`, `${NAME}` and `$NAME` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) are replaced by the value of NAME.
//!   A name nobody defined is an error naming it and the command ([`ExpandError`]).
//! - `$$` is a literal `$`: write `$$f` to hand `$f` to the shell (a loop variable, say).
//! - `$(...)` or `${...}` around anything that is not a name (`$(touch /tmp/pwned)`, `${V:-x}`), or left
//!   unclosed, is an error with the hint to write `$$(` / `$${`: the text is never run as a command
//!   substitution and never guessed at.
//! - A `$` followed by anything else (`$1`, `$?`, `$@`, a space, the end) stays as written.
//! - Values are inserted verbatim and never expanded again: a value `$(touch /tmp/pwned)` stays that text.

use std::collections::BTreeMap;

/// Variables visible to a command: image ENV, then `-e`, then per-host values (last wins).
pub type Env = BTreeMap<String, String>;

/// A variable reference that cannot be expanded.
///
/// `variable` is a bare name when nobody defined it ([`ExpandError::is_undefined_variable`]); otherwise it
/// is the reference as written (`$(touch /tmp/pwned)`, `${V:-x}`, an unclosed `$(V`), which is refused
/// because it is not a variable reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ExpandError {
    /// The variable's name, or the refused reference as written.
    pub variable: String,
    /// The text (command) it appears in.
    pub text: String,
}

impl ExpandError {
    /// True when `variable` is a well-formed name that has no value (as opposed to a refused reference).
    pub fn is_undefined_variable(&self) -> bool {
        is_name(&self.variable)
    }

    fn describe(&self) -> String {
        let (variable, text) = (&self.variable, &self.text);
        if self.is_undefined_variable() {
            format!(
                "undefined variable `{variable}` in `{text}`: set it in the image ENV or with \
                 `-e {variable}=VALUE`, or write `$${variable}` to pass `${variable}` to the shell"
            )
        } else if variable.starts_with("${") {
            format!(
                "`{variable}` in `{text}` is not a variable reference (only `${{NAME}}` is expanded; \
                 shell parameter expansion is not): write `$${{` to pass `${{` to the shell"
            )
        } else {
            // `$$` is the only escape: `\$(` would keep the backslash and still be refused.
            let escaped = format!("${variable}");
            format!(
                "`{variable}` in `{text}` is shell command substitution, not a variable, and is not run: \
                 write `{escaped}` to hand `{variable}` to the shell as written (the shell then runs it), \
                 or `$(NAME)` for a variable NAME set in the image ENV or with `-e NAME=VALUE`"
            )
        }
    }
}

/// True when `name` is a shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn name_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b) if *b == b'_' || b.is_ascii_alphabetic() => bytes
            .iter()
            .take_while(|b| **b == b'_' || b.is_ascii_alphanumeric())
            .count(),
        _ => 0,
    }
}

/// Expands every variable reference in `text` from `env`; `$$` is a literal `$`. Never runs anything.
///
/// See the module documentation for the exact rules.
pub fn expand(text: &str, env: &Env) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let lookup = |name: &str| {
        env.get(name).ok_or_else(|| ExpandError {
            variable: name.to_string(),
            text: text.to_string(),
        })
    };
    let refused = |reference: &str| ExpandError {
        variable: reference.to_string(),
        text: text.to_string(),
    };
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let close = match after.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
                continue;
            }
            Some(b'(') => ')',
            Some(b'{') => '}',
            _ => {
                let len = name_len(after);
                if len == 0 {
                    out.push('$');
                } else {
                    out.push_str(lookup(&after[..len])?);
                }
                rest = &after[len..];
                continue;
            }
        };
        let inner = &after[1..];
        let len = name_len(inner);
        if len > 0 && inner[len..].starts_with(close) {
            out.push_str(lookup(&inner[..len])?);
            rest = &inner[len + 1..];
            continue;
        }
        let reference = match inner.find(close) {
            Some(end) => &rest[dollar..dollar + 2 + end + 1],
            None => &rest[dollar..],
        };
        return Err(refused(reference));
    }
    out.push_str(rest);
    Ok(out)
}
