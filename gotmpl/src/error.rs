//! Errors of parsing and executing templates, printed the way Go's `text/template` prints them.

use std::fmt;

/// Whether a template failed to parse or failed while executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The template text is malformed (Go's `template: NAME:LINE: MESSAGE`).
    Parse,
    /// Executing the template failed (Go's `template: NAME:LINE:COL: executing "NAME" at <...>: MESSAGE`).
    Exec,
}

/// A template that cannot be parsed or executed, located in the source it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The name the faulty source was parsed as (a chart's file path, `gotpl` for `tpl` text).
    pub template: String,
    /// 1-based line of the fault in that source (0 when the error has no location).
    pub line: usize,
    /// Go's column: the byte offset of the fault within its line, counted from 0.
    pub column: usize,
    /// Go's text of the node at fault (`.Values.x`, `include "a" .`), shown as `at <...>`; may be empty.
    pub context: String,
    /// What went wrong, in Go's words.
    pub message: String,
    /// Parse or execution error.
    pub kind: ErrorKind,
    /// The name of the template that was executing (differs from `template` inside a `define`).
    pub executing: String,
}

impl TemplateError {
    /// An error at byte `offset` of `source` (parsed as `template`); line and column are computed.
    pub(crate) fn at(
        kind: ErrorKind,
        template: &str,
        source: &str,
        offset: usize,
        message: String,
    ) -> TemplateError {
        let offset = offset.min(source.len());
        let before = source.get(..offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1);
        TemplateError {
            template: template.to_string(),
            line,
            column,
            context: String::new(),
            message,
            kind,
            executing: template.to_string(),
        }
    }

    /// An execution error without a location (Go's errors from `ExecuteTemplate` itself).
    pub(crate) fn unlocated(message: String) -> TemplateError {
        TemplateError {
            template: String::new(),
            line: 0,
            column: 0,
            context: String::new(),
            message,
            kind: ErrorKind::Exec,
            executing: String::new(),
        }
    }
}

/// Helm marks the messages of `required` and `fail` so that it can show them alone.
pub(crate) const HELM_ERR_START: &str = "HELM_ERR_START";
/// The end of Helm's mark.
pub(crate) const HELM_ERR_END: &str = "HELM_ERR_END";

impl TemplateError {
    /// The error as Helm prints it: `parse error at (FILE:LINE): MESSAGE` for parse errors (the last part
    /// of Go's message), `execution error at (FILE:LINE:COL): MESSAGE` for `required` and `fail` (also
    /// inside `include` and `tpl`; the location is the outermost one), Go's text for other errors.
    pub fn helm_text(&self) -> String {
        let text = self.to_string();
        match self.kind {
            ErrorKind::Parse => {
                let tokens: Vec<&str> = text.split(": ").collect();
                match tokens.as_slice() {
                    [_, location, .., last] => format!("parse error at ({location}): {last}"),
                    _ => format!("parse error in ({}): {text}", self.template),
                }
            }
            ErrorKind::Exec => {
                let tokens: Vec<&str> = text.splitn(3, ": ").collect();
                let [_, location, rest] = tokens.as_slice() else {
                    return format!("execution error in ({}): {text}", self.template);
                };
                let marked = rest.find(HELM_ERR_START).and_then(|start| {
                    let inner = &rest[start + HELM_ERR_START.len()..];
                    inner.rfind(HELM_ERR_END).map(|end| &inner[..end])
                });
                match marked {
                    Some(message) => format!("execution error at ({location}): {message}"),
                    None => text,
                }
            }
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            _ if self.line == 0 && self.template.is_empty() => {
                write!(f, "template: {}", self.message)
            }
            _ if self.line == 0 => write!(f, "template: {}: {}", self.template, self.message),
            ErrorKind::Parse => {
                write!(
                    f,
                    "template: {}:{}: {}",
                    self.template, self.line, self.message
                )
            }
            ErrorKind::Exec => write!(
                f,
                "template: {}:{}:{}: executing \"{}\" at <{}>: {}",
                self.template, self.line, self.column, self.executing, self.context, self.message
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_as_go_prints_them() {
        let src = "a\n  {{ .Values.x.y }}";
        let mut e = TemplateError::at(ErrorKind::Exec, "c/t.yaml", src, 12, "boom".into());
        e.context = ".Values.x.y".into();
        assert_eq!(
            e.to_string(),
            "template: c/t.yaml:2:10: executing \"c/t.yaml\" at <.Values.x.y>: boom"
        );
        let e = TemplateError::at(ErrorKind::Parse, "t", src, 12, "unexpected EOF".into());
        assert_eq!(e.to_string(), "template: t:2: unexpected EOF");
    }
}
