//! Scripts the CMD runs (`bash install.sh`, `sh scripts/install.sh`, `./install.sh`), read from the build
//! context (through its symlink rule) for their `helm install|upgrade|template` lines. Lines continued with
//! `\` are joined; shell variables come from the image's ENV and the script's own simple assignments
//! (`VAR=value`, `export VAR=value`), and `${VAR}`, `$VAR`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:=default}` are expanded as the shell expands them; `$1`, `$2`, ... are the arguments the script is
//! run with. What cannot be resolved statically (`$(date)`,
//! a backquoted command, a variable set by no one) is a warning naming `script:line`. A script the script
//! runs is followed too, one level deeper at most, never twice.

use std::path::Path;

use formats::cmdenv::{Env, is_name};

use super::charts::{HelmInstall, shell_words};
use super::cmd::{Expanded, commands, read_command};
use super::{Collector, DiscoverError, in_context, relative};

/// How deep scripts are followed: the CMD's scripts (0) and the scripts they run (1).
const MAX_DEPTH: usize = 1;

/// Reads the script `path` (as written, relative to the context) run from `origin`, adding its helm
/// installs to `installs`. `env` is what the script starts with: the image ENV (and the calling script's
/// variables), `$0` and the arguments it is run with that are known (`$1`, `$2`, ...).
#[allow(clippy::too_many_arguments)]
pub(crate) fn follow(
    context: &Path,
    path: &str,
    origin: &str,
    env: &Env,
    depth: usize,
    visited: &mut Vec<String>,
    installs: &mut Vec<HelmInstall>,
    found: &mut Collector,
) -> Result<(), DiscoverError> {
    let rel = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/");
    if visited.contains(&rel) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        found.warn(
            origin,
            format!(
                "the script `{rel}` is run by a script run by a script; scripts are followed {} levels \
                 deep only, so the charts it installs are read without its values",
                MAX_DEPTH + 1
            ),
        );
        return Ok(());
    }
    let file = match in_context(context, &context.join(&rel), found)? {
        Some(file) if file.is_file() => file,
        _ => {
            found.warn(
                origin,
                format!(
                    "the script `{path}` it runs is not a file in the build context; not read, so the \
                     charts it installs are read without its values"
                ),
            );
            return Ok(());
        }
    };
    let bytes = std::fs::read(&file).map_err(DiscoverError::io("read", file.as_path()))?;
    // `./tool` may be a program, not a script: only text is read.
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(());
    };
    let name = relative(context, &context.join(&rel));
    visited.push(rel);
    let mut vars = env.clone();
    for (line, text) in logical_lines(&text) {
        let at = format!("{name}:{line}");
        let expanded = expand_script(&text, &vars);
        let words: Vec<String> = shell_words(&expanded.text);
        let words = match words.iter().position(|w| w.starts_with('#')) {
            Some(comment) => words[..comment].to_vec(),
            None => words,
        };
        for command in commands(&words) {
            if assign(command, &expanded, &mut vars) {
                continue;
            }
            read_command(
                context,
                command,
                &expanded,
                &at,
                &vars,
                depth + 1,
                visited,
                installs,
                found,
            )?;
        }
    }
    Ok(())
}

/// The script's lines with `\`-continued lines joined, each with the 1-based number of its first line;
/// blank and comment lines left out.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let (start, mut joined) = current.take().unwrap_or((i + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
                current = Some((start, joined));
            }
            None => {
                joined.push_str(line);
                let trimmed = joined.trim();
                if !trimmed.is_empty() && !trimmed.starts_with('#') {
                    out.push((start, trimmed.to_string()));
                }
            }
        }
    }
    if let Some((start, joined)) = current
        && !joined.trim().is_empty()
    {
        out.push((start, joined.trim().to_string()));
    }
    out
}

/// Records a command made only of assignments (`A=1 B=$A`, `export A=1`, `readonly A`, `local A=1`) in
/// `vars`; a value holding an unresolved reference removes the variable (its uses are then unresolved).
/// False when the command does something else.
fn assign(command: &[String], expanded: &Expanded, vars: &mut Env) -> bool {
    let words = match command.first().map(String::as_str) {
        Some("export" | "readonly" | "local" | "declare" | "typeset") => &command[1..],
        _ => command,
    };
    let pairs: Vec<(&str, &str)> = words
        .iter()
        .filter_map(|w| w.split_once('='))
        .filter(|(k, _)| is_name(k))
        .collect();
    if pairs.is_empty() || pairs.len() != words.len() {
        return command.first().is_some_and(|w| {
            matches!(
                w.as_str(),
                "export" | "readonly" | "local" | "declare" | "typeset"
            )
        });
    }
    for (name, value) in pairs {
        if expanded.held_in(value).is_empty() {
            vars.insert(name.to_string(), value.to_string());
        } else {
            vars.remove(name);
        }
    }
    true
}

/// Expands the shell variables of one script line from `vars` (nothing inside single quotes); a command
/// substitution, a backquoted command or a variable no one set is held as written.
pub(crate) fn expand_script(text: &str, vars: &Env) -> Expanded {
    let mut out = Expanded::default();
    let mut chars = text.char_indices().peekable();
    let mut single = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                single = !single;
                out.text.push(c);
            }
            _ if single => out.text.push(c),
            '\\' => {
                out.text.push(c);
                if let Some((_, next)) = chars.next() {
                    out.text.push(next);
                }
            }
            '`' => {
                let end = text[i + 1..]
                    .find('`')
                    .map_or(text.len(), |e| i + 1 + e + 1);
                out.hold(&text[i..end]);
                while chars.peek().is_some_and(|(j, _)| *j < end) {
                    chars.next();
                }
            }
            '$' => {
                let rest = &text[i + 1..];
                let (len, value) = parameter(rest, vars);
                match value {
                    Some(Ok(value)) => out.text.push_str(&value),
                    Some(Err(())) => out.hold(&text[i..i + 1 + len]),
                    None => out.text.push('$'),
                }
                while chars.peek().is_some_and(|(j, _)| *j < i + 1 + len) {
                    chars.next();
                }
            }
            c => out.text.push(c),
        }
    }
    out
}

/// The parameter after a `$` in `rest`: how many bytes it takes, and its value (`Err` when it cannot be
/// resolved statically; `None` when the `$` starts no parameter and stays as written).
#[allow(clippy::type_complexity)]
fn parameter(rest: &str, vars: &Env) -> (usize, Option<Result<String, ()>>) {
    let name_len = |s: &str| {
        let bytes = s.as_bytes();
        match bytes.first() {
            Some(b) if *b == b'_' || b.is_ascii_alphabetic() => bytes
                .iter()
                .take_while(|b| **b == b'_' || b.is_ascii_alphanumeric())
                .count(),
            _ => 0,
        }
    };
    match rest.as_bytes().first() {
        Some(b'(') => {
            // `$(...)` with nesting: a command substitution (or `$((...))` arithmetic).
            let mut depth = 0usize;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return (j + 1, Some(Err(())));
                        }
                    }
                    _ => {}
                }
            }
            (rest.len(), Some(Err(())))
        }
        Some(b'{') => {
            let Some(end) = rest.find('}') else {
                return (rest.len(), Some(Err(())));
            };
            let inner = &rest[1..end];
            let len = match name_len(inner) {
                0 => inner.bytes().take_while(u8::is_ascii_digit).count(),
                len => len,
            };
            let name = &inner[..len];
            let value = vars.get(name).filter(|_| len > 0);
            let op = &inner[len..];
            let result = if op.is_empty() && len > 0 {
                value.cloned().ok_or(())
            } else if let Some(default) = op.strip_prefix(":-").or_else(|| op.strip_prefix(":=")) {
                match value.filter(|v| !v.is_empty()) {
                    Some(v) => Ok(v.clone()),
                    None => default_value(default, vars),
                }
            } else if let Some(default) = op.strip_prefix('-').or_else(|| op.strip_prefix('=')) {
                match value {
                    Some(v) => Ok(v.clone()),
                    None => default_value(default, vars),
                }
            } else {
                Err(())
            };
            (end + 1, Some(result))
        }
        Some(b'0'..=b'9') => (1, Some(vars.get(&rest[..1]).cloned().ok_or(()))),
        _ => {
            let len = name_len(rest);
            if len == 0 {
                return (0, None);
            }
            (len, Some(vars.get(&rest[..len]).cloned().ok_or(())))
        }
    }
}

/// A `${VAR:-default}` default, itself expanded; quotes around it removed.
fn default_value(text: &str, vars: &Env) -> Result<String, ()> {
    let expanded = expand_script(text, vars);
    if !expanded.held.is_empty() {
        return Err(());
    }
    Ok(expanded
        .text
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shell_parameters_expand_with_defaults() {
        let v = vars(&[("A", "x"), ("EMPTY", ""), ("1", "first")]);
        let e = expand_script(
            "$A ${A} ${B:-dflt} ${EMPTY:-d2} ${EMPTY-d3} ${B-$A} '$A' $1 ${1} ${2:-two} ${A:-no} $? $",
            &v,
        );
        assert_eq!(e.text, "x x dflt d2  x '$A' first first two x $? $");
        assert!(e.held.is_empty());
        assert_eq!(expand_script("-n $2", &v).held, ["$2"]);
    }

    #[test]
    fn unresolvable_parts_are_held_as_written() {
        let e = expand_script(
            "--set t=$(date +%s) --set u=`id -u` $UNSET ${X:?bad}",
            &Env::new(),
        );
        assert_eq!(e.held, ["$(date +%s)", "`id -u`", "$UNSET", "${X:?bad}"]);
    }

    #[test]
    fn continued_lines_are_joined_with_their_first_line_number() {
        let text = "#!/bin/sh\n# comment\nA=1\nhelm install x \\\n  charts/a \\\n  -f v.yaml\n\necho done\n";
        assert_eq!(
            logical_lines(text),
            vec![
                (3, "A=1".to_string()),
                (4, "helm install x    charts/a    -f v.yaml".to_string()),
                (8, "echo done".to_string())
            ]
        );
    }
}
