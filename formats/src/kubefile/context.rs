//! File-system side of Kubefiles, kept apart from the pure parser and evaluator: finding the default Kubefile
//! of a context and listing the context files each COPY/ADD takes.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::{EvalError, EvalErrorKind};
use super::eval::{BuildPlan, ContextFile, CopyFrom, CopyPlan, FileKind};

/// File names looked for in a build context when no `-f` is given, in order; the first found is used.
pub const DEFAULT_NAMES: [&str; 4] = ["Sealfile", "Kubefile", "Dockerfile", "Containerfile"];

/// The first of [`DEFAULT_NAMES`] that is a file in `context`, if any.
///
/// Unlike sealos, which concatenates all of them, only one file is used.
pub fn find_default(context: &Path) -> Option<PathBuf> {
    DEFAULT_NAMES
        .iter()
        .map(|name| context.join(name))
        .find(|path| path.is_file())
}

/// Lists, for every COPY/ADD from the build context in `plan`, the context entries it takes (globs expanded,
/// directories walked) and where each lands. A source that matches nothing or leaves the context is an error
/// naming the Kubefile line. URLs of ADD are left for the builder to fetch.
pub fn resolve_sources(plan: &mut BuildPlan, context: &Path, file: &str) -> Result<(), EvalError> {
    for stage in &mut plan.stages {
        for step in &mut stage.steps {
            let line = step.line;
            let Some(copy) = step.copy.as_mut() else {
                continue;
            };
            if copy.from != CopyFrom::Context {
                continue;
            }
            let err = |kind| EvalError {
                file: file.to_string(),
                line,
                kind,
            };
            copy.files = files_for(copy, context).map_err(err)?;
        }
    }
    Ok(())
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://") || source.starts_with("git@")
}

fn files_for(copy: &CopyPlan, context: &Path) -> Result<Vec<ContextFile>, EvalErrorKind> {
    let mut files = Vec::new();
    let several = copy.destination_is_dir;
    for source in &copy.sources {
        if copy.add && is_url(source) {
            continue;
        }
        let Some(parts) = clean_relative(source) else {
            return Err(EvalErrorKind::OutsideContext {
                source_path: source.clone(),
            });
        };
        let matches = if parts.iter().any(|p| has_glob(p)) {
            glob(context, &parts)?
        } else {
            let rel = parts.join("/");
            let path = if rel.is_empty() {
                context.to_path_buf()
            } else {
                context.join(&rel)
            };
            if fs::symlink_metadata(&path).is_ok() {
                vec![rel]
            } else {
                Vec::new()
            }
        };
        if matches.is_empty() {
            return Err(EvalErrorKind::SourceNotFound {
                source_path: source.clone(),
                context: context.display().to_string(),
            });
        }
        let into_dir = several || matches.len() > 1;
        for rel in matches {
            let path = if rel.is_empty() {
                context.to_path_buf()
            } else {
                context.join(&rel)
            };
            let meta = fs::symlink_metadata(&path).map_err(|e| io_error(&path, &e))?;
            if meta.is_dir() {
                walk(context, &rel, &copy.destination, &mut files)?;
            } else {
                let name = rel.rsplit('/').next().unwrap_or(&rel);
                let destination = if into_dir {
                    join(&copy.destination, name)
                } else {
                    copy.destination.clone()
                };
                files.push(entry(&rel, destination, &meta));
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path).then(a.destination.cmp(&b.destination)));
    files.dedup();
    Ok(files)
}

fn io_error(path: &Path, e: &std::io::Error) -> EvalErrorKind {
    EvalErrorKind::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn entry(rel: &str, destination: String, meta: &fs::Metadata) -> ContextFile {
    let kind = if meta.file_type().is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else {
        FileKind::File
    };
    ContextFile {
        path: if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        },
        destination,
        kind,
        size: if kind == FileKind::File {
            meta.len()
        } else {
            0
        },
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The contents of directory `rel` go into `destination` (the directory itself is not recreated).
fn walk(
    context: &Path,
    rel: &str,
    destination: &str,
    out: &mut Vec<ContextFile>,
) -> Result<(), EvalErrorKind> {
    let dir = if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(rel)
    };
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| io_error(&dir, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_error(&dir, &e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let child_dest = join(destination, &name);
        let meta = fs::symlink_metadata(e.path()).map_err(|err| io_error(&e.path(), &err))?;
        out.push(entry(&child_rel, child_dest.clone(), &meta));
        if meta.is_dir() {
            walk(context, &child_rel, &child_dest, out)?;
        }
    }
    Ok(())
}

/// Splits a source into clean components relative to the context root; `None` when it climbs out.
fn clean_relative(source: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for part in source.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p.to_string()),
        }
    }
    Some(parts)
}

fn has_glob(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// Context paths (relative, `/`-separated, sorted) matching the pattern components.
fn glob(context: &Path, parts: &[String]) -> Result<Vec<String>, EvalErrorKind> {
    let mut current = vec![String::new()];
    for part in parts {
        let mut next = Vec::new();
        for base in &current {
            let dir = if base.is_empty() {
                context.to_path_buf()
            } else {
                context.join(base)
            };
            if !has_glob(part) {
                if fs::symlink_metadata(dir.join(part)).is_ok() {
                    next.push(join_rel(base, part));
                }
                continue;
            }
            if !dir.is_dir() {
                continue;
            }
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map_err(|e| io_error(&dir, &e))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|name| glob_match(part, name))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join_rel(base, n)));
        }
        current = next;
    }
    Ok(current)
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// Shell-style matching of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]` / `[^a]`, `\x`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class_at(&p[pi..], n[ni]),
            Some('\\') => (p.get(pi + 1) == Some(&n[ni])).then_some(2),
            Some(c) => (*c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the class starting at `p[0] == '['`; returns the class length when it matches.
fn class_at(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_questions_and_classes() {
        assert!(glob_match("*.yaml", "a.yaml"));
        assert!(!glob_match("*.yaml", "a.yml"));
        assert!(glob_match("tool-?", "tool-1"));
        assert!(glob_match("[ab]*", "bin"));
        assert!(!glob_match("[!ab]*", "bin"));
        assert!(glob_match("v[0-9].*", "v1.x"));
        assert!(!glob_match("[", "["));
        assert!(glob_match("a\\*", "a*"));
    }

    #[test]
    fn sources_climbing_out_of_the_context_are_refused() {
        assert_eq!(clean_relative("../etc"), None);
        assert_eq!(clean_relative("a/../../b"), None);
        assert_eq!(
            clean_relative("/abs/./x/"),
            Some(vec!["abs".to_string(), "x".to_string()])
        );
    }
}
