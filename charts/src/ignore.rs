//! `.helmignore`: which files of a chart directory the loader skips, with Helm's rules (gitignore-like, but
//! each pattern is Go's `filepath.Match`, `**` is refused, and any negative match keeps a file).

use crate::glob::{Pattern, PatternError};

/// Why a `.helmignore` cannot be used; worded as Helm words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IgnoreError {
    /// A rule uses `**`, which Helm refuses.
    #[error("double-star (**) syntax is not supported")]
    DoubleStar,
    /// A rule is not a valid pattern.
    #[error(transparent)]
    Pattern(#[from] PatternError),
}

/// A parsed `.helmignore`, plus Helm's default rule (dotfiles under `templates/` are ignored).
#[derive(Debug, Clone, Default)]
pub(crate) struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: Pattern,
    negate: bool,
    directory_only: bool,
    /// Where the pattern is matched: the whole path (`/` in it) or only the base name.
    whole_path: bool,
}

impl IgnoreRules {
    /// Parses a `.helmignore` file's text; Helm's default rule is added after the file's rules.
    pub(crate) fn parse(text: &str) -> Result<IgnoreRules, IgnoreError> {
        let mut rules = IgnoreRules::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for line in text.lines() {
            rules.add(line)?;
        }
        rules.add("templates/.?*")?;
        Ok(rules)
    }

    /// Only Helm's default rule.
    pub(crate) fn defaults() -> IgnoreRules {
        IgnoreRules::parse("").unwrap_or_default()
    }

    fn add(&mut self, line: &str) -> Result<(), IgnoreError> {
        let mut rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err(IgnoreError::DoubleStar);
        }
        Pattern::go(rule)?;
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let directory_only = rule.ends_with('/');
        let rule = rule.trim_end_matches('/');
        let rooted = rule.strip_prefix('/');
        let whole_path = rooted.is_some() || rule.contains('/');
        let pattern = Pattern::go(rooted.unwrap_or(rule))?;
        self.rules.push(Rule {
            pattern,
            negate,
            directory_only,
            whole_path,
        });
        Ok(())
    }

    /// True when `path` (relative, `/`-separated) is ignored. Rules apply in order and the first that
    /// decides wins. As in helm v4.1 (and v3), a negated rule ignores every path it does NOT match, so
    /// `!x` alone ignores the whole chart but `x`.
    pub(crate) fn ignored(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        let base = path.rsplit('/').next().unwrap_or(path);
        for rule in &self.rules {
            let subject = if rule.whole_path { path } else { base };
            if rule.negate {
                if (rule.directory_only && !is_dir) || !rule.pattern.matches(subject) {
                    return true;
                }
                continue;
            }
            if rule.directory_only && !is_dir {
                continue;
            }
            if rule.pattern.matches(subject) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helmignore_rules_match_as_helm_matches_them() {
        let rules =
            IgnoreRules::parse("# comment\n*.bak\n/top.txt\ndocs/\nsecret/*.key\n").unwrap();
        assert!(rules.ignored("a/b/c.bak", false));
        assert!(rules.ignored("top.txt", false));
        assert!(rules.ignored("docs", true));
        assert!(!rules.ignored("docs", false));
        assert!(rules.ignored("secret/a.key", false));
        assert!(!rules.ignored("x/secret/a.key", false));
        assert!(rules.ignored("templates/.hidden", false));
        assert!(!rules.ignored("templates/visible.yaml", false));
        assert!(IgnoreRules::parse("a/**/b").is_err());
        // Helm's negation quirk: a negated rule ignores whatever it does not match.
        let negated = IgnoreRules::parse("!keep.txt\n").unwrap();
        assert!(negated.ignored("Chart.yaml", false));
        assert!(!negated.ignored("keep.txt", false));
    }
}
