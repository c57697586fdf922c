//! `.dockerignore` of a build context: which context paths COPY and ADD never see.
//!
//! Rules follow Docker: one pattern a line, `#` starts a comment line, blank lines are skipped, patterns are
//! relative to the context root (a leading `/` is dropped, paths are cleaned), `*`, `?` and `[...]` match within
//! one path component, `**` matches any number of components, and `!pattern` re-includes what an earlier
//! pattern excluded. The last pattern that matches a path decides; a pattern that matches a directory also
//! matches everything under it.

use std::fs;
use std::io;
use std::path::Path;

use formats::kubefile::context::{ContextPathError, glob_match, resolve_in_context};

/// The parsed patterns of one `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    parts: Vec<String>,
    exclude: bool,
}

impl IgnoreRules {
    /// Reads `<context>/.dockerignore` (a symlink is followed inside the context only); no file means no
    /// rules.
    pub fn load(context: &Path) -> Result<IgnoreRules, ContextPathError> {
        let found = resolve_in_context(context, ".dockerignore")?;
        match fs::read_to_string(&found.path) {
            Ok(text) => Ok(IgnoreRules::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match found.outside_error(".dockerignore") {
                    Some(e) => Err(e),
                    None => Ok(IgnoreRules::default()),
                }
            }
            Err(source) => Err(ContextPathError::Io {
                path: found.path,
                source,
            }),
        }
    }

    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> IgnoreRules {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, body) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            let parts: Vec<String> = body
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .map(str::to_string)
                .collect();
            if parts.is_empty() {
                continue;
            }
            patterns.push(Pattern { parts, exclude });
        }
        IgnoreRules { patterns }
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True when the context path `rel` (`/`-separated, relative to the context root) is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        let components: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if components.is_empty() {
            return false;
        }
        let mut excluded = false;
        for pattern in &self.patterns {
            // The pattern matches the path itself or one of its parent directories.
            let matched =
                (1..=components.len()).any(|n| match_parts(&pattern.parts, &components[..n]));
            if matched {
                excluded = pattern.exclude;
            }
        }
        excluded
    }

    /// True when the directory `rel` is excluded and no exception (`!pattern`) can re-include anything
    /// below it: a walk need not enter it. Like Docker, which walks into an excluded directory only when an
    /// exception may match below it; a `**` in an exception counts as one that may.
    pub fn excludes_all_below(&self, rel: &str) -> bool {
        let components: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        self.is_excluded(rel)
            && !self
                .patterns
                .iter()
                .any(|p| !p.exclude && may_match_below(&p.parts, &components))
    }
}

/// True when `pattern` may match a path strictly below `dir` that none of `dir`'s own prefixes matches
/// (conservatively true for `**`).
fn may_match_below(pattern: &[String], dir: &[&str]) -> bool {
    match pattern.split_first() {
        None => false,
        Some((first, _)) if first == "**" => true,
        Some((first, rest)) => match dir.split_first() {
            None => true,
            Some((name, dir_rest)) => glob_match(first, name) && may_match_below(rest, dir_rest),
        },
    }
}

fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => glob_match(first, name) && match_parts(rest, path_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_patterns_exclude_everything_below() {
        let rules = IgnoreRules::parse("# comment\n\n.git\nbuild/\n");
        assert!(rules.is_excluded(".git"));
        assert!(rules.is_excluded(".git/config"));
        assert!(rules.is_excluded("build/out/a.o"));
        assert!(!rules.is_excluded("src/build.rs"));
    }

    #[test]
    fn double_star_and_exceptions_follow_docker() {
        let rules = IgnoreRules::parse("**/*.md\n!README.md\n*/tmp*\n");
        assert!(rules.is_excluded("docs/guide.md"));
        assert!(rules.is_excluded("CHANGES.md"));
        assert!(!rules.is_excluded("README.md"));
        assert!(rules.is_excluded("charts/tmpfile"));
        assert!(!rules.is_excluded("tmpfile"));
    }

    #[test]
    fn only_directories_no_exception_reaches_are_skipped_whole() {
        let rules = IgnoreRules::parse(".git\nbuild\n!build/keep\nsrc/*.o\n");
        assert!(rules.excludes_all_below(".git"));
        assert!(rules.excludes_all_below(".git/objects"));
        // An exception may re-include something below: walked, and paths left out one by one.
        assert!(!rules.excludes_all_below("build"));
        assert!(rules.excludes_all_below("build/other"));
        // Not excluded at all.
        assert!(!rules.excludes_all_below("src"));
        assert!(!rules.excludes_all_below("build/keep"));
        // An exception with `**` may match anywhere: nothing is skipped whole.
        let rules = IgnoreRules::parse(".git\nlogs\n!**/important\n");
        assert!(!rules.excludes_all_below(".git"));
        assert!(!rules.excludes_all_below("logs"));
    }

    #[test]
    fn leading_slash_and_dot_are_ignored() {
        let rules = IgnoreRules::parse("/secret\n./keys/*.pem\n");
        assert!(rules.is_excluded("secret"));
        assert!(rules.is_excluded("keys/a.pem"));
        assert!(!rules.is_excluded("keys/a.pub"));
    }
}
