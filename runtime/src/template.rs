//! Go text/template rendering of `*.tmpl` files (`{{ .KEY }}`, `default`, `if`, `range`, ...) over the env.
//!
//! sealos renders the `*.tmpl` files of a cluster image with Go's `text/template` plus the sprig function
//! library, the env (a `map[string]string`) as the dot. The language, Go's built-ins and the sprig functions
//! come from the [`gotmpl`] engine, with Go's semantics and messages; this module adds what sealos image
//! templates need on top:
//!
//! - Output of a missing key (`{{ .NOPE }}`, or `upper .NOPE`) is an error naming the key, where Go prints
//!   `<no value>` into the file. A missing key is still falsy in `if`/`with`, replaced by `default`, and
//!   unequal to everything in `eq`/`ne`, so `{{ if .X }}` and `{{ .X | default "v" }}` behave exactly as in
//!   sealos ([`gotmpl::MissingKey::Strict`]).
//! - `required MSG VALUE` fails with MSG when VALUE is empty.
//! - `b64dec` of invalid base64 is an error (sprig returns the error text as the value), and `indent` /
//!   `nindent` counts are bounded.
//! - Errors carry the 1-based line and column of the action at fault, and hints for the common mistakes.
//! - Rendering is bounded (nesting depth, steps, output size): a template that exceeds a bound fails with an
//!   error instead of exhausting the machine.

use gotmpl::FuncResult;
use std::collections::BTreeMap;

use base64::Engine as _;
use gotmpl::value::Entries;
use gotmpl::{MissingKey, Options, Templates, Value};

#[cfg(test)]
use gotmpl::MAX_DEPTH;

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct TemplateError {
    /// 1-based line of the offending action.
    pub line: usize,
    /// 1-based column (in characters) of the offending action.
    pub column: usize,
    /// What is wrong, with a hint.
    pub message: String,
}

/// The name the template is parsed as (it appears in no message: errors show line and column).
const NAME: &str = "template";

/// Renders `template` with `values` as the dot (`{{ .KEY }}`).
pub fn render(template: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut set = Templates::new(Options {
        missing_key: MissingKey::Strict(missing_message),
        helm: false,
    });
    set.add_function("required", required);
    set.add_function("b64dec", b64dec);
    set.add_function("indent", |args| indent("indent", args));
    set.add_function("nindent", |args| indent("nindent", args));
    set.parse(NAME, template).map_err(|e| locate(template, e))?;
    let root: Entries = values
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    set.execute(NAME, &Value::from(root))
        .map_err(|e| locate(template, e))
}

/// sealos' `required MSG VALUE`: VALUE, or an error with MSG when it is empty.
fn required(args: Vec<Value>) -> FuncResult {
    let [message, value] = args.as_slice() else {
        return Err(format!(
            "wrong number of args for required: want 2 got {}",
            args.len()
        )
        .into());
    };
    if value.truth() {
        Ok(value.clone())
    } else {
        Err(format!("required value is empty: {}", message.to_go_string()).into())
    }
}

/// Largest `indent` count.
const MAX_PAD: i64 = 1 << 16;

/// sprig's `b64dec`, but invalid input is an error instead of the error's text as the value.
fn b64dec(args: Vec<Value>) -> FuncResult {
    let [Value::Str(text)] = args.as_slice() else {
        return Err("b64dec: wants one string".to_string().into());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("b64dec: not base64: {e}"))?;
    String::from_utf8(bytes)
        .map(Value::from)
        .map_err(|_| "b64dec: the decoded bytes are not UTF-8".into())
}

/// sprig's `indent COUNT TEXT` / `nindent`, with the count bounded.
fn indent(name: &str, args: Vec<Value>) -> FuncResult {
    let [count, text] = args.as_slice() else {
        return Err(format!("wrong number of args for {name}: want 2 got {}", args.len()).into());
    };
    let n = match count {
        Value::Int(n) | Value::Int64(n) => *n,
        Value::Float(f) => *f as i64,
        Value::Str(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    if !(0..=MAX_PAD).contains(&n) {
        return Err(format!("`{name}` count {n} is outside 0..={MAX_PAD}").into());
    }
    let pad = " ".repeat(n as usize);
    let text = text.to_go_string();
    let indented = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
    Ok(Value::from(if name == "nindent" {
        format!("\n{indented}")
    } else {
        indented
    }))
}

fn missing_message(key: &str) -> String {
    let name = key.trim_start_matches('.');
    format!(
        "no value for `{key}`: set {name} in the image ENV or with `-e {name}=VALUE`, or write \
         `{{{{ {key} | default \"VALUE\" }}}}`"
    )
}

/// The engine's error with a 1-based character column and a hint for the common mistakes.
fn locate(text: &str, error: gotmpl::TemplateError) -> TemplateError {
    // Go's column is a byte offset in the line; sealos users get characters, from 1.
    let line = error.line.max(1);
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum();
    let line_text = &text[line_start.min(text.len())..];
    let column = line_text
        .get(..error.column.min(line_text.len()))
        .map_or(error.column, |before| before.chars().count())
        + 1;
    let mut message = error.message;
    if message == "unexpected EOF" {
        message.push_str(": a block is never closed: add `{{ end }}`");
    } else if message.starts_with("range can't iterate over") {
        message.push_str(": use `splitList \",\" .KEY` to make a list");
    }
    TemplateError {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests;
