//! Masterminds semver v3 as sprig and Helm use it: lenient version parsing (`v1.2` is 1.2.0), precedence,
//! and constraints (`>=1.19-0`, `^1.2`, `~1.2.3`, `1.2.x`, `*`, hyphen ranges, `,`/space for "and",
//! `||` for "or"). A prerelease version only satisfies an "and" group in which some version has a prerelease.

use crate::value::{FuncError, FuncResult};
use std::cmp::Ordering;
use std::fmt;
use std::rc::Rc;

use super::args::{self, take};
use crate::value::{Object, Value};

/// A parsed semantic version (Masterminds `semver.Version`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The major number.
    pub major: u64,
    /// The minor number (0 when the text left it out).
    pub minor: u64,
    /// The patch number (0 when the text left it out).
    pub patch: u64,
    /// The prerelease, without the `-` ("" for none).
    pub pre: String,
    /// The build metadata, without the `+` ("" for none).
    pub metadata: String,
    /// The text the version was parsed from.
    pub original: String,
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Version {
    /// Parses a version as Masterminds' `NewVersion` does: an optional `v`, one to three dot-separated
    /// numbers, an optional `-prerelease` and `+metadata`.
    pub fn parse(text: &str) -> Result<Version, String> {
        let invalid = || "invalid semantic version".to_string();
        let body = text.strip_prefix('v').unwrap_or(text);
        let (body, metadata) = match body.split_once('+') {
            Some((b, m)) if is_ident(m) => (b, m),
            Some(_) => return Err(invalid()),
            None => (body, ""),
        };
        let (core, pre) = match body.split_once('-') {
            Some((c, p)) if is_ident(p) => (c, p),
            Some(_) => return Err(invalid()),
            None => (body, ""),
        };
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty()
            || nums.len() > 3
            || nums
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid());
        }
        let num = |i: usize| -> Result<u64, String> {
            nums.get(i).map_or(Ok(0), |n| {
                n.parse::<u64>()
                    .map_err(|e| format!("Error parsing version segment: {e}"))
            })
        };
        for p in pre
            .split('.')
            .filter(|p| !pre.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        {
            if p.len() > 1 && p.starts_with('0') {
                return Err("version segment starts with 0".to_string());
            }
        }
        Ok(Version {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
            pre: pre.to_string(),
            metadata: metadata.to_string(),
            original: text.to_string(),
        })
    }

    /// Semver precedence (metadata ignored; a prerelease sorts before its release).
    pub fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| compare_pre(&self.pre, &other.pre))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(nx), Ok(ny)) => nx.cmp(&ny),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

/// One comparison of a constraint, with wildcard ("dirty") parts recorded.
#[derive(Clone, Debug)]
struct Comparison {
    op: Op,
    con: Version,
    dirty: bool,
    minor_dirty: bool,
    patch_dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_comparison(text: &str) -> Result<Comparison, String> {
    let improper = || format!("improper constraint: {text}");
    let t = text.trim();
    let ops = [
        ("!=", Op::NotEqual),
        (">=", Op::GreaterEqual),
        ("=>", Op::GreaterEqual),
        ("<=", Op::LessEqual),
        ("=<", Op::LessEqual),
        ("~>", Op::Tilde),
        ("=", Op::Equal),
        (">", Op::Greater),
        ("<", Op::Less),
        ("~", Op::Tilde),
        ("^", Op::Caret),
    ];
    let (op, rest) = ops
        .iter()
        .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r)))
        .unwrap_or((Op::Equal, t));
    let rest = rest.trim();
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (core, tail) = match rest.find(['-', '+']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if core.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !(is_x(p) || p.bytes().all(|b| b.is_ascii_digit())))
    {
        return Err(improper());
    }
    let (pre_tail, _meta) = match tail.split_once('+') {
        Some((p, m)) => (p, m),
        None => (tail, ""),
    };
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let ver = if is_x(parts[0]) {
        dirty = true;
        format!("0.0.0{pre_tail}")
    } else if parts.len() < 2 || is_x(parts[1]) {
        dirty = true;
        minor_dirty = true;
        format!("{}.0.0{pre_tail}", parts[0])
    } else if parts.len() < 3 || is_x(parts[2]) {
        dirty = true;
        patch_dirty = true;
        format!("{}.{}.0{pre_tail}", parts[0], parts[1])
    } else {
        rest.to_string()
    };
    let con = Version::parse(&ver).map_err(|_| improper())?;
    Ok(Comparison {
        op,
        con,
        dirty,
        minor_dirty,
        patch_dirty,
    })
}

impl Comparison {
    /// Whether `v` passes; `include_pre` says whether the comparison's "and" group mentions a prerelease
    /// (only then can a prerelease version pass).
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        let c = &self.con;
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let cmp = v.compare(c);
        match self.op {
            Op::Equal => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    cmp == Ordering::Equal
                }
            }
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_pre(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                cmp != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                cmp == Ordering::Greater
            }
            Op::Less => cmp == Ordering::Less,
            Op::GreaterEqual => cmp != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return cmp != Ordering::Greater;
                }
                if v.major > c.major {
                    return false;
                }
                !(v.major == c.major && v.minor > c.minor && !self.minor_dirty)
            }
            Op::Tilde => self.tilde(v),
            Op::Caret => {
                if cmp == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                v.patch == c.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// A parsed constraint: alternatives (`||`) of conjunctions.
#[derive(Clone, Debug)]
pub struct Constraints {
    any_of: Vec<Vec<Comparison>>,
}

/// Rewrites hyphen ranges `A - B` into `>= A, <= B`.
fn rewrite_ranges(group: &str) -> String {
    let tokens: Vec<&str> = group.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 2 < tokens.len() && tokens[i + 1] == "-" {
            out.push(format!(">= {},", tokens[i]));
            out.push(format!("<= {}", tokens[i + 2]));
            i += 3;
        } else {
            out.push(tokens[i].to_string());
            i += 1;
        }
    }
    out.join(" ")
}

impl Constraints {
    /// Parses a constraint string.
    pub fn parse(text: &str) -> Result<Constraints, String> {
        let mut any_of = Vec::new();
        for group in text.split("||") {
            let group = rewrite_ranges(group);
            // Operators may be separated from their versions by spaces ("> 1.2"): glue them first.
            let mut items: Vec<String> = Vec::new();
            let mut pending = String::new();
            for tok in group.split([',', ' ']).filter(|t| !t.is_empty()) {
                if tok.bytes().all(|b| b"<>=!~^".contains(&b)) {
                    pending.push_str(tok);
                    continue;
                }
                items.push(format!("{pending}{tok}"));
                pending.clear();
            }
            if !pending.is_empty() || items.is_empty() {
                return Err(format!("improper constraint: {}", text.trim()));
            }
            any_of.push(
                items
                    .iter()
                    .map(|i| parse_comparison(i))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(Constraints { any_of })
    }

    /// Whether `v` satisfies the constraint.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| {
            let include_pre = all.iter().any(|c| !c.con.pre.is_empty());
            all.iter().all(|c| c.check(v, include_pre))
        })
    }
}

/// Whether `version` satisfies `constraint` (Masterminds semantics; Helm's `semverCompare`, Chart.yaml
/// `kubeVersion` and dependency version ranges).
pub fn constraint_matches(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.matches(&v))
}

/// `semverCompare CONSTRAINT VERSION`.
pub(crate) fn semver_compare(args: Vec<Value>) -> FuncResult {
    let [c, v] = take("semverCompare", args)?;
    Ok(Value::Bool(constraint_matches(
        &args::string(&c)?,
        &args::string(&v)?,
    )?))
}

/// `semver VERSION`: a `*semver.Version` with its methods (`Major`, `Prerelease`, `Compare`...).
pub(crate) fn semver(args: Vec<Value>) -> FuncResult {
    let [v] = take("semver", args)?;
    Ok(Value::Object(Rc::new(Version::parse(&args::string(&v)?)?)))
}

fn version_arg(v: &Value) -> Result<Version, String> {
    match v {
        Value::Object(o) if o.type_name() == "*semver.Version" => Version::parse(&o.display()),
        other => Err(args::type_error("*semver.Version", other)),
    }
}

impl Object for Version {
    fn type_name(&self) -> &str {
        "*semver.Version"
    }

    fn field(&self, name: &str) -> Option<Value> {
        // Go's uint64; numbers beyond int64 keep their digits as text.
        let int = |n: u64| i64::try_from(n).map_or_else(|_| Value::from(n.to_string()), Value::Int);
        Some(match name {
            "Major" => int(self.major),
            "Minor" => int(self.minor),
            "Patch" => int(self.patch),
            "Prerelease" => Value::from(self.pre.as_str()),
            "Metadata" => Value::from(self.metadata.as_str()),
            "Original" => Value::from(self.original.as_str()),
            "String" => Value::from(self.to_string()),
            "IncMajor" => Value::Object(Rc::new(
                Version::parse(&format!("{}.0.0", self.major + 1)).ok()?,
            )),
            "IncMinor" => Value::Object(Rc::new(
                Version::parse(&format!("{}.{}.0", self.major, self.minor + 1)).ok()?,
            )),
            "IncPatch" => {
                let patch = if self.pre.is_empty() {
                    self.patch + 1
                } else {
                    self.patch
                };
                Value::Object(Rc::new(
                    Version::parse(&format!("{}.{}.{patch}", self.major, self.minor)).ok()?,
                ))
            }
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        let other = || -> Result<Version, String> {
            match args.as_slice() {
                [v] => version_arg(v),
                _ => Err(format!(
                    "wrong number of args for {name}: want 1 got {}",
                    args.len()
                )),
            }
        };
        Some(
            match name {
                "Compare" => other().map(|o| Value::Int(self.compare(&o) as i64)),
                "LessThan" => other().map(|o| Value::Bool(self.compare(&o) == Ordering::Less)),
                "GreaterThan" => {
                    other().map(|o| Value::Bool(self.compare(&o) == Ordering::Greater))
                }
                "Equal" => other().map(|o| Value::Bool(self.compare(&o) == Ordering::Equal)),
                _ if args.is_empty() => return self.field(name).map(Ok),
                _ => return None,
            }
            .map_err(FuncError::from),
        )
    }

    fn display(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_leniently_and_order_by_precedence() {
        let v = Version::parse("v1.2-rc.1+build.7").expect("parses");
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 0));
        assert_eq!((v.pre.as_str(), v.metadata.as_str()), ("rc.1", "build.7"));
        assert_eq!(v.to_string(), "1.2.0-rc.1+build.7");
        assert_eq!(v.original, "v1.2-rc.1+build.7");
        let parse = |s| Version::parse(s).expect("parses");
        assert_eq!(parse("1.2.0-rc.1").compare(&parse("1.2.0")), Ordering::Less);
        assert_eq!(
            parse("1.2.0-rc.2").compare(&parse("1.2.0-rc.10")),
            Ordering::Less
        );
        assert_eq!(
            parse("1.2.0-alpha").compare(&parse("1.2.0-1")),
            Ordering::Greater
        );
        assert_eq!(parse("1.2.0+a").compare(&parse("1.2.0+b")), Ordering::Equal);
        for bad in ["", "1.2.3.4", "x", "1.2.3-", "1.2.3-01", " 1.2.3"] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn constraints_follow_masterminds_rules() {
        for (c, v, want) in [
            (">=1.19-0", "1.20.0-gke.1", true),
            ("^1.2", "1.9.0", true),
            ("~1.2.3", "1.3.0", false),
            ("1.2.x", "1.2.9", true),
            (">1.0 <2.0 || =3.0", "3.0.0", true),
            ("1.0 - 2.0", "2.0.5", true),
            (">=1.19", "1.20.0-gke.1", false),
            ("*", "0.0.1", true),
            ("!=1.2.x", "1.3.0", true),
            ("<=1.2", "1.2.5", true),
            (">1.2", "1.2.5", false),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.3", true),
            (">= 1.2, < 2", "1.5.0", true),
        ] {
            assert_eq!(constraint_matches(c, v), Ok(want), "{c} {v}");
        }
        assert!(constraint_matches("nope", "1.0.0").is_err());
        assert!(constraint_matches(">1", "x.y").is_err());
    }
}
