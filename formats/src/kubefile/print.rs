//! Writes a [`Kubefile`] back as text that parses to the same tree (comments and layout are not kept).

use std::fmt::{self, Write};

use super::ast::{
    Command, CopyArgs, Flag, Healthcheck, HereDoc, InstructionKind, KeyValue, Kubefile, Source,
};

impl fmt::Display for Kubefile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = &mut CarriageReturns {
            inner: f,
            after_cr: false,
        };
        if let Some(syntax) = &self.directives.syntax {
            writeln!(f, "# syntax={syntax}")?;
        }
        if self.directives.escape != '\\' {
            writeln!(f, "# escape={}", self.directives.escape)?;
        }
        for instruction in &self.instructions {
            let mut bodies = Vec::new();
            write_instruction(f, &instruction.kind, &mut bodies)?;
            f.write_char('\n')?;
            for doc in bodies {
                writeln!(f, "{}{}", doc.body, doc.delimiter)?;
            }
        }
        Ok(())
    }
}

/// Writes through, doubling a `\r` that ends a line: the parser drops one `\r` before every `\n` (CRLF line
/// ends), so a value or here-document line that really ends in `\r` needs a second one to read back the same.
struct CarriageReturns<'a, W: Write> {
    inner: &'a mut W,
    after_cr: bool,
}

impl<W: Write> Write for CarriageReturns<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find('\n') {
            let line = &rest[..i];
            self.inner.write_str(line)?;
            if line.ends_with('\r') || (line.is_empty() && self.after_cr) {
                self.inner.write_char('\r')?;
            }
            self.inner.write_char('\n')?;
            self.after_cr = false;
            rest = &rest[i + 1..];
        }
        self.inner.write_str(rest)?;
        if !rest.is_empty() {
            self.after_cr = rest.ends_with('\r');
        }
        Ok(())
    }
}

impl fmt::Display for InstructionKind {
    /// The instruction on one line, without here-document bodies.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bodies = Vec::new();
        write_instruction(f, self, &mut bodies)
    }
}

fn write_flags(f: &mut dyn Write, flags: &[Flag]) -> fmt::Result {
    for flag in flags {
        match &flag.value {
            Some(v) => write!(f, " --{}={v}", flag.name)?,
            None => write!(f, " --{}", flag.name)?,
        }
    }
    Ok(())
}

fn json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_string())
}

fn write_command(f: &mut dyn Write, command: &Command) -> fmt::Result {
    match command {
        Command::Exec(args) => write!(f, " {}", json(args)),
        Command::Shell(text) => write!(f, " {text}"),
    }
}

fn write_pairs(f: &mut dyn Write, pairs: &[KeyValue], legacy: bool) -> fmt::Result {
    if legacy && let [pair] = pairs {
        return write!(f, " {} {}", pair.key, pair.value);
    }
    for pair in pairs {
        write!(f, " {}={}", pair.key, pair.value)?;
    }
    Ok(())
}

fn marker(doc: &HereDoc) -> String {
    let dash = if doc.strip_tabs { "-" } else { "" };
    if doc.quoted {
        format!("<<{dash}\"{}\"", doc.delimiter)
    } else {
        format!("<<{dash}{}", doc.delimiter)
    }
}

fn write_copy<'a>(
    f: &mut dyn Write,
    args: &'a CopyArgs,
    bodies: &mut Vec<&'a HereDoc>,
) -> fmt::Result {
    write_flags(f, &args.flags)?;
    let has_doc = args.sources.iter().any(|s| matches!(s, Source::HereDoc(_)));
    let needs_json = !has_doc
        && (args.sources.iter().any(|s| matches!(s, Source::Path(p) if p.is_empty() || p.contains([' ', '\t', '\n']) || p.starts_with('[')))
            || args.destination.is_empty()
            || args.destination.contains([' ', '\t', '\n']));
    if needs_json {
        let mut all: Vec<String> = args
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Path(p) => Some(p.clone()),
                Source::HereDoc(_) => None,
            })
            .collect();
        all.push(args.destination.clone());
        return write!(f, " {}", json(&all));
    }
    for source in &args.sources {
        match source {
            Source::Path(p) => write!(f, " {p}")?,
            Source::HereDoc(doc) => {
                write!(f, " {}", marker(doc))?;
                bodies.push(doc);
            }
        }
    }
    write!(f, " {}", args.destination)
}

fn write_instruction<'a>(
    f: &mut dyn Write,
    kind: &'a InstructionKind,
    bodies: &mut Vec<&'a HereDoc>,
) -> fmt::Result {
    f.write_str(kind.keyword())?;
    match kind {
        InstructionKind::From {
            flags,
            image,
            alias,
        } => {
            write_flags(f, flags)?;
            write!(f, " {image}")?;
            if let Some(alias) = alias {
                write!(f, " AS {alias}")?;
            }
            Ok(())
        }
        InstructionKind::Copy(args) | InstructionKind::Add(args) => write_copy(f, args, bodies),
        InstructionKind::Env { pairs, legacy } | InstructionKind::Label { pairs, legacy } => {
            write_pairs(f, pairs, *legacy)
        }
        InstructionKind::Arg(decls) => {
            for decl in decls {
                match &decl.default {
                    Some(d) => write!(f, " {}={d}", decl.name)?,
                    None => write!(f, " {}", decl.name)?,
                }
            }
            Ok(())
        }
        InstructionKind::Cmd(c) | InstructionKind::Entrypoint(c) => write_command(f, c),
        InstructionKind::Run {
            flags,
            command,
            heredocs,
        } => {
            write_flags(f, flags)?;
            write_command(f, command)?;
            bodies.extend(heredocs.iter());
            Ok(())
        }
        InstructionKind::Workdir(t)
        | InstructionKind::User(t)
        | InstructionKind::Maintainer(t)
        | InstructionKind::StopSignal(t) => write!(f, " {t}"),
        InstructionKind::Expose(words) => {
            for w in words {
                write!(f, " {w}")?;
            }
            Ok(())
        }
        InstructionKind::Volume { paths, json: true } | InstructionKind::Shell(paths) => {
            write!(f, " {}", json(paths))
        }
        InstructionKind::Volume { paths, json: false } => {
            for p in paths {
                write!(f, " {p}")?;
            }
            Ok(())
        }
        InstructionKind::Healthcheck(Healthcheck::None) => f.write_str(" NONE"),
        InstructionKind::Healthcheck(Healthcheck::Cmd { flags, command }) => {
            write_flags(f, flags)?;
            f.write_str(" CMD")?;
            write_command(f, command)
        }
        InstructionKind::Onbuild(inner) => {
            f.write_char(' ')?;
            write_instruction(f, inner, bodies)
        }
    }
}
