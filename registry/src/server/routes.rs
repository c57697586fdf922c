//! The `/v2` path and query of a request, parsed once: the path from the right (so repository names may have any
//! depth) into a [`Route`], the query percent-decoded. The auth layer decides on the parsed [`V2Request`] and the
//! handlers serve it.

use axum::extract::Request;
use axum::http::Uri;
use formats::digest::Digest;

use super::error::ApiError;

/// What a `/v2/...` path asks for, parsed from the right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Catalog,
    Tags(String),
    UploadStart(String),
    Upload(String, String),
    Blob(String, String),
    Manifest(String, String),
    Referrers(String, String),
}

impl Route {
    /// The repository the route names (none for the catalog).
    pub(crate) fn repository(&self) -> Option<&str> {
        match self {
            Route::Catalog => None,
            Route::Tags(n)
            | Route::UploadStart(n)
            | Route::Upload(n, _)
            | Route::Blob(n, _)
            | Route::Manifest(n, _)
            | Route::Referrers(n, _) => Some(n),
        }
    }
}

/// Splits `path` (after `/v2/`) into the repository name and the endpoint.
pub(crate) fn parse_route(path: &str) -> Option<Route> {
    let path = path.trim_start_matches('/');
    if path == "_catalog" {
        return Some(Route::Catalog);
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let name_before = |suffix_segments: usize| -> Option<String> {
        let mut end = trimmed.len();
        for _ in 0..suffix_segments {
            end = trimmed[..end].rfind('/')?;
        }
        Some(trimmed[..end].to_string())
    };
    let segs: Vec<&str> = trimmed.rsplitn(4, '/').collect();
    // segs[0] is the last segment, segs[1] the one before, ...
    let last = *segs.first()?;
    let prev = segs.get(1).copied();
    let prev2 = segs.get(2).copied();
    if prev == Some("tags") && last == "list" {
        return name_before(2).map(Route::Tags);
    }
    if prev == Some("blobs") && last == "uploads" {
        return name_before(2).map(Route::UploadStart);
    }
    let last = last.to_string();
    if prev2 == Some("blobs") && prev == Some("uploads") {
        return name_before(3).map(|n| Route::Upload(n, last));
    }
    match prev {
        Some("blobs") => name_before(2).map(|n| Route::Blob(n, last)),
        Some("manifests") => name_before(2).map(|n| Route::Manifest(n, last)),
        Some("referrers") => name_before(2).map(|n| Route::Referrers(n, last)),
        _ => None,
    }
}

/// What a request's path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/v2` or `/v2/`: the API version check.
    Base,
    /// An endpoint under `/v2/`.
    Endpoint(Route),
    /// Anything else: no endpoint, or a path outside `/v2` (`/metrics`).
    Unknown,
}

/// A request parsed once, from its percent-decoded path and query: the auth layer decides on this value and the
/// handler serves it, so both see the same route, repository names and parameters (an encoded `m%6Funt` is
/// `mount` for both). The auth layer leaves it in the request's extensions for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct V2Request {
    /// The percent-decoded path after `/v2/` (the whole path outside `/v2`), for messages.
    pub(crate) path: String,
    /// What the path names.
    pub(crate) target: Target,
    /// Query parameters in order, percent-decoded.
    pub(crate) query: Vec<(String, String)>,
}

impl V2Request {
    /// Parses `uri`.
    pub(crate) fn parse(uri: &Uri) -> Self {
        let decoded = percent_decode(uri.path());
        let query = query_pairs(uri.query());
        let rest = decoded
            .strip_prefix("/v2")
            .filter(|r| r.is_empty() || r.starts_with('/'));
        let Some(rest) = rest else {
            return V2Request {
                path: decoded,
                target: Target::Unknown,
                query,
            };
        };
        let path = rest.strip_prefix('/').unwrap_or(rest).to_string();
        let target = if rest.is_empty() || rest == "/" {
            Target::Base
        } else {
            parse_route(&path).map_or(Target::Unknown, Target::Endpoint)
        };
        V2Request {
            path,
            target,
            query,
        }
    }

    /// The parsed form of `req`, parsing it on first use and keeping it in the request's extensions.
    pub(crate) fn of(req: &mut Request) -> &mut V2Request {
        let (uri, extensions) = (req.uri().clone(), req.extensions_mut());
        extensions.get_or_insert_with(|| V2Request::parse(&uri))
    }

    /// The cross-repository mount a blob upload start asks for (see [`mount_of`]).
    pub(crate) fn mount(&self) -> Option<(&str, &str)> {
        mount_of(&self.query)
    }

    /// Turns a mount into a plain upload start (the caller may not read the source).
    pub(crate) fn drop_mount(&mut self) {
        self.query.retain(|(k, _)| k != "mount" && k != "from");
    }
}

/// The cross-repository mount in query `q`: `(digest, source repository)` when `mount` and `from` are both given
/// and not empty. A `mount` without `from` is a plain upload start, as in distribution.
pub(super) fn mount_of(q: &[(String, String)]) -> Option<(&str, &str)> {
    let digest = param(q, "mount").filter(|d| !d.is_empty())?;
    let from = param(q, "from").filter(|f| !f.is_empty())?;
    Some((digest, from))
}

/// Query parameters in order, percent-decoded.
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(super) fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::digest_invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right_at_any_depth() {
        let s = String::from;
        assert_eq!(
            parse_route("a/b/c/d/e/f/g/h/manifests/v1"),
            Some(Route::Manifest(s("a/b/c/d/e/f/g/h"), s("v1")))
        );
        assert_eq!(
            parse_route("x/blobs/uploads/"),
            Some(Route::UploadStart(s("x")))
        );
        assert_eq!(
            parse_route("x/y/blobs/uploads/abc-1"),
            Some(Route::Upload(s("x/y"), s("abc-1")))
        );
        assert_eq!(
            parse_route("x/blobs/sha256:00"),
            Some(Route::Blob(s("x"), s("sha256:00")))
        );
        assert_eq!(parse_route("x/tags/list"), Some(Route::Tags(s("x"))));
        assert_eq!(parse_route("_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse_route("x/referrers/sha256:00"),
            Some(Route::Referrers(s("x"), s("sha256:00")))
        );
        assert_eq!(parse_route("blobs/uploads/"), None);
    }

    #[test]
    fn a_request_is_parsed_once_from_its_decoded_path_and_query() {
        let parse = |uri: &str| V2Request::parse(&uri.parse().unwrap());
        let r = parse("/v2/a%2Fb/blobs/uploads/?m%6Funt=sha256%3A00&fr%6Fm=c%2Fd&x");
        assert_eq!(r.path, "a/b/blobs/uploads/");
        assert_eq!(r.target, Target::Endpoint(Route::UploadStart("a/b".into())));
        assert_eq!(r.mount(), Some(("sha256:00", "c/d")));
        let mut r = r;
        r.drop_mount();
        assert_eq!(r.mount(), None);
        assert_eq!(r.query, vec![("x".to_string(), String::new())]);
        assert_eq!(parse("/v2/x/blobs/uploads?mount=sha256:00").mount(), None);
        assert_eq!(parse("/v2/").target, Target::Base);
        assert_eq!(parse("/v2").target, Target::Base);
        assert_eq!(parse("/v2//").target, Target::Unknown);
        assert_eq!(parse("/metrics").target, Target::Unknown);
        assert_eq!(parse("/v2x/_catalog").target, Target::Unknown);
        assert_eq!(
            parse("/v2/_c%61talog").target,
            Target::Endpoint(Route::Catalog)
        );
    }

    #[test]
    fn percent_decoding_handles_escapes() {
        assert_eq!(percent_decode("sha256%3Aab"), "sha256:ab");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
