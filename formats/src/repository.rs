//! Repository names (`library/nginx`, `team/app`): the one rule for them, used by reference parsing, the
//! registry server's routes and every layout that stores images by repository.
//!
//! The grammar is the OCI distribution spec's:
//!
//! ```text
//! name      := component ( "/" component )*
//! component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! ```
//!
//! It excludes `..`, `.`, empty components and leading or trailing separators, so a valid name is always a
//! safe relative path.
//!
//! Length: the spec sets no hard bound on `<name>`; it notes that clients limit the host, `/` and name
//! together to 255 characters, and lets a registry refuse longer names with `NAME_INVALID`. A repository
//! longer than 255 characters can therefore never be named by a docker-compatible client whatever the
//! registry's host, so [`REPOSITORY_LENGTH_MAX`] is 255 for everyone (the server included: it used to accept
//! 1,024, which only admitted names no client could pull). A full reference is checked again with its host
//! ([`crate::reference::NAME_TOTAL_LENGTH_MAX`]).

use std::fmt;
use std::str::FromStr;

/// Longest repository name accepted anywhere (the path without the registry host).
pub const REPOSITORY_LENGTH_MAX: usize = 255;

/// Why a repository name was rejected. Every variant names the rejected input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The name is empty.
    #[error("invalid repository name ``: the name is empty; give one such as `library/nginx`")]
    Empty,
    /// The name is longer than [`REPOSITORY_LENGTH_MAX`].
    #[error("invalid repository name `{name}`: it is {len} characters long, the limit is 255")]
    TooLong {
        /// The rejected name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The name has upper-case letters.
    #[error("invalid repository name `{0}`: repository names must be lower-case")]
    Uppercase(String),
    /// A path component is empty (`a//b`, a leading or trailing `/`).
    #[error(
        "invalid repository name `{0}`: it has an empty path component (`//`, or a leading or trailing `/`)"
    )]
    EmptyComponent(String),
    /// A path component has characters or separators outside the grammar.
    #[error(
        "invalid repository name `{name}`: path component `{component}` must be lower-case letters and digits joined by single `.`, `_`, `__` or runs of `-`"
    )]
    InvalidComponent {
        /// The rejected name.
        name: String,
        /// The offending component.
        component: String,
    },
}

/// A valid repository name (see the module documentation for the rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(String);

impl Repository {
    /// Parses `name`, checking the grammar and [`REPOSITORY_LENGTH_MAX`].
    pub fn parse(name: &str) -> Result<Repository, RepositoryError> {
        check_grammar(name)?;
        if name.len() > REPOSITORY_LENGTH_MAX {
            return Err(RepositoryError::TooLong {
                name: name.to_string(),
                len: name.len(),
            });
        }
        Ok(Repository(name.to_string()))
    }

    /// True when `name` is a valid repository name.
    pub fn is_valid(name: &str) -> bool {
        Repository::parse(name).is_ok()
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks the grammar only (no length bound): what a reference checks before its total-length rule.
pub(crate) fn check_grammar(name: &str) -> Result<(), RepositoryError> {
    if name.is_empty() {
        return Err(RepositoryError::Empty);
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RepositoryError::Uppercase(name.to_string()));
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Err(RepositoryError::EmptyComponent(name.to_string()));
        }
        if !is_valid_component(component) {
            return Err(RepositoryError::InvalidComponent {
                name: name.to_string(),
                component: component.to_string(),
            });
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn is_valid_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Repository {
    type Err = RepositoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Repository::parse(s)
    }
}

impl AsRef<str> for Repository {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_distribution_spec_grammar() {
        for ok in [
            "a",
            "library/nginx",
            "a/b/c/d/e/f/g/h/i/j",
            "a.b_c__d---e",
            "0x/y9",
            "my-app.v2/x_y",
        ] {
            assert_eq!(Repository::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "A", "a//b", "../x", "a/../b", "a/.b", "_a", "a_", "a/", "a b", "/abs", "..",
            "a/.", "-a", "a-",
        ] {
            assert!(!Repository::is_valid(bad), "{bad}");
        }
    }

    /// The cases the three old copies disagreed on: the server allowed 1,024 characters, the distribution
    /// writer allowed any run of `.`, `_` and `-` inside a component.
    #[test]
    fn the_old_copies_disagreements_are_settled() {
        for loose in ["a..b", "a___b", "a._b", "a-.b", "a_-b"] {
            assert!(
                matches!(
                    Repository::parse(loose),
                    Err(RepositoryError::InvalidComponent { .. })
                ),
                "{loose}"
            );
        }
        assert!(Repository::is_valid(&"a".repeat(255)));
        let e = Repository::parse(&"a".repeat(256)).unwrap_err();
        assert_eq!(
            e,
            RepositoryError::TooLong {
                name: "a".repeat(256),
                len: 256
            }
        );
        // 799 characters: the server used to accept this.
        assert!(!Repository::is_valid(
            "a/".repeat(400).trim_end_matches('/')
        ));
        assert!(matches!(
            Repository::parse("Library/nginx"),
            Err(RepositoryError::Uppercase(_))
        ));
    }

    #[test]
    fn errors_name_the_input_and_the_fix() {
        let e = Repository::parse("a/B_/c").unwrap_err().to_string();
        assert!(e.contains("`a/B_/c`") && e.contains("lower-case"), "{e}");
        let e = Repository::parse("a/b__-c").unwrap_err().to_string();
        assert!(e.contains("`b__-c`"), "{e}");
    }
}
