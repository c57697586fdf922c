//! Variable expansion in image commands (`$(VAR)`, `${VAR}`, `$VAR`, `$$`) and shell quoting of values.
//!
//! Interface stub: the bodies are replaced by the real implementation; keep the signatures.

use std::collections::BTreeMap;

/// Variables visible to a command: image ENV, then `-e`, then per-host values (last wins).
pub type Env = BTreeMap<String, String>;

/// A variable a command uses but nobody defined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undefined variable `{variable}` in `{text}`")]
pub struct ExpandError {
    /// The variable's name.
    pub variable: String,
    /// The text (command) it appears in.
    pub text: String,
}

/// Expands every variable reference in `text` from `env`; `$$` is a literal `$`. Never runs anything.
pub fn expand(text: &str, env: &Env) -> Result<String, ExpandError> {
    let _ = env;
    Ok(text.to_string())
}

/// Quotes `value` for a POSIX shell so that it is passed literally.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}
