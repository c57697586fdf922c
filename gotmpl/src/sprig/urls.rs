//! URLs as Go's `net/url` parses and prints them (`urlParse`, `urlJoin`), and `getHostByName`, which
//! needs the network and so answers "" here: renders must not depend on DNS.

use super::args::{self, take};
use crate::value::FuncResult;
use crate::value::{Entries, Value};

/// The parts of a URL Go's `url.Parse` finds.
#[derive(Default, Debug)]
struct Url {
    scheme: String,
    opaque: String,
    userinfo: Option<String>,
    host: String,
    path: String,
    raw_query: String,
    fragment: String,
}

fn unhex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Go's percent-unescaping (`+` stays `+` outside queries).
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| unhex(*c)),
                b.get(i + 2).and_then(|c| unhex(*c)),
            ) else {
                let bad: String = s[i..].chars().take(3).collect();
                return Err(format!("invalid URL escape {bad:?}"));
            };
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn escape(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn parse(raw: &str) -> Result<Url, String> {
    let mut u = Url::default();
    let (rest, frag) = raw.split_once('#').unwrap_or((raw, ""));
    u.fragment = unescape(frag)?;
    let mut rest = rest;
    // A scheme: a letter, then letters, digits, '+', '-', '.', up to ':'.
    for (i, c) in rest.char_indices() {
        if c.is_ascii_alphabetic() {
            continue;
        }
        if i > 0 && (c.is_ascii_digit() || "+-.".contains(c)) {
            continue;
        }
        if c == ':' {
            if i == 0 {
                return Err("missing protocol scheme".to_string());
            }
            u.scheme = rest[..i].to_ascii_lowercase();
            rest = &rest[i + 1..];
        }
        break;
    }
    if let Some((r, q)) = rest.split_once('?') {
        u.raw_query = q.to_string();
        rest = r;
    }
    if !rest.starts_with('/') && !u.scheme.is_empty() {
        u.opaque = rest.to_string();
        return Ok(u);
    }
    if rest.starts_with("//") && (!u.scheme.is_empty() || !rest.starts_with("///")) {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                u.userinfo = Some(unescape(user)?);
                u.host = unescape(host)?;
            }
            None => u.host = unescape(authority)?,
        }
        rest = path;
    }
    u.path = unescape(rest)?;
    Ok(u)
}

fn hostname(host: &str) -> String {
    if let Some(inner) = host.strip_prefix('[') {
        return inner.split(']').next().unwrap_or("").to_string();
    }
    match host.rfind(':') {
        Some(i) => host[..i].to_string(),
        None => host.to_string(),
    }
}

/// `urlParse URL`: a dict of scheme, host, hostname, path, query, opaque, fragment and userinfo.
pub(crate) fn url_parse(args: Vec<Value>) -> FuncResult {
    let [s] = take("urlParse", args)?;
    let s = args::string(&s)?;
    let u = parse(&s).map_err(|e| format!("unable to parse url: parse {:?}: {e}", &*s))?;
    let mut d = Entries::new();
    d.insert("scheme".into(), Value::from(u.scheme.as_str()));
    d.insert("hostname".into(), Value::from(hostname(&u.host)));
    d.insert("host".into(), Value::from(u.host));
    d.insert("path".into(), Value::from(u.path));
    d.insert("query".into(), Value::from(u.raw_query));
    d.insert("opaque".into(), Value::from(u.opaque));
    d.insert("fragment".into(), Value::from(u.fragment));
    d.insert(
        "userinfo".into(),
        Value::from(
            u.userinfo
                .map(|ui| escape_userinfo(&ui))
                .unwrap_or_default(),
        ),
    );
    Ok(Value::from(d))
}

fn escape_userinfo(ui: &str) -> String {
    match ui.split_once(':') {
        Some((user, pass)) => format!("{}:{}", escape(user, "$&+,;="), escape(pass, "$&+,;=")),
        None => escape(ui, "$&+,;="),
    }
}

/// `urlJoin DICT`: a URL from urlParse-style parts, escaped as Go's `URL.String` does.
pub(crate) fn url_join(args: Vec<Value>) -> FuncResult {
    let [d] = take("urlJoin", args)?;
    let map = args::map(&d)?;
    let get = |k: &str| -> Result<String, String> {
        match map.borrow().get(k) {
            None => Ok(String::new()),
            Some(Value::Str(s)) => Ok(s.to_string()),
            Some(other) => Err(format!(
                "unable to parse {k} key, must be of type string, but {} found",
                other.type_name()
            )),
        }
    };
    let (scheme, host, path, query, opaque, fragment, userinfo) = (
        get("scheme")?,
        get("host")?,
        get("path")?,
        get("query")?,
        get("opaque")?,
        get("fragment")?,
        get("userinfo")?,
    );
    let mut out = String::new();
    if !opaque.is_empty() {
        if !scheme.is_empty() {
            out.push_str(&scheme);
            out.push(':');
        }
        out.push_str(&opaque);
    } else {
        if !scheme.is_empty() {
            out.push_str(&scheme);
            out.push(':');
        }
        let has_user = !userinfo.is_empty();
        if !scheme.is_empty() || !host.is_empty() || has_user {
            if !host.is_empty() || !path.is_empty() || has_user {
                out.push_str("//");
            }
            if has_user {
                out.push_str(&escape_userinfo(
                    &unescape(&userinfo).unwrap_or(userinfo.clone()),
                ));
                out.push('@');
            }
            out.push_str(&escape(&host, "!$&'()*+,;=:[]<>\""));
        }
        let escaped_path = escape(&path, "$&+,/:;=@");
        if !escaped_path.is_empty() && !escaped_path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        if out.is_empty()
            && escaped_path
                .split('/')
                .next()
                .is_some_and(|seg| seg.contains(':'))
        {
            out.push_str("./");
        }
        out.push_str(&escaped_path);
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&escape(&fragment, "$&+,/:;=?@!()*"));
    }
    Ok(Value::from(out))
}

/// `getHostByName NAME`: "" (no network lookups during a render).
pub(crate) fn get_host_by_name(args: Vec<Value>) -> FuncResult {
    let [name] = take("getHostByName", args)?;
    args::string(&name)?;
    Ok(Value::from(""))
}
