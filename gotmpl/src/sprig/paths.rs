//! Slash-separated path functions (Go's `path`; `filepath` on Linux is the same): `base`, `dir`,
//! `clean`, `ext`, `isAbs` and their `os*` twins.

use super::args::{self, take};
use crate::value::FuncResult;
use crate::value::Value;

/// Go's `path.Clean`: the shortest equivalent path (`.` for empty).
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`: the last element, trailing slashes removed (`.` for empty, `/` for all slashes).
pub(crate) fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `path.Dir`: everything but the last element, cleaned.
pub(crate) fn dir(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    clean(&path[..cut])
}

/// Go's `path.Ext`: the suffix from the last dot in the last element.
pub(crate) fn ext(path: &str) -> String {
    for (i, c) in path.char_indices().rev() {
        match c {
            '/' => return String::new(),
            '.' => return path[i..].to_string(),
            _ => {}
        }
    }
    String::new()
}

macro_rules! path_fn {
    ($($(#[$doc:meta])* $fname:ident $tname:literal $body:expr;)*) => {$(
        $(#[$doc])*
        pub(crate) fn $fname(args: Vec<Value>) -> FuncResult {
            let [p] = take($tname, args)?;
            let p = args::string(&p)?;
            let f: fn(&str) -> Value = $body;
            Ok(f(&p))
        }
    )*};
}

path_fn! {
    /// `base PATH`.
    base_fn "base" |p| Value::from(base(p));
    /// `dir PATH`.
    dir_fn "dir" |p| Value::from(dir(p));
    /// `clean PATH`.
    clean_fn "clean" |p| Value::from(clean(p));
    /// `ext PATH`.
    ext_fn "ext" |p| Value::from(ext(p));
    /// `isAbs PATH`.
    is_abs_fn "isAbs" |p| Value::Bool(p.starts_with('/'));
    /// `osBase PATH`.
    os_base "osBase" |p| Value::from(base(p));
    /// `osDir PATH`.
    os_dir "osDir" |p| Value::from(dir(p));
    /// `osClean PATH`.
    os_clean "osClean" |p| Value::from(clean(p));
    /// `osExt PATH`.
    os_ext "osExt" |p| Value::from(ext(p));
    /// `osIsAbs PATH`.
    os_is_abs "osIsAbs" |p| Value::Bool(p.starts_with('/'));
}
