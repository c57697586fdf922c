//! `n`/`last` pagination of the tag list and the catalog, with the `Link` header to the next page.

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;

use super::error::ApiError;
use super::headers::set;
use super::routes::param;

/// Applies `n`/`last` pagination (`last` exclusive) and returns the page and whether more follow.
pub(super) fn paginate(
    all: Vec<String>,
    q: &[(String, String)],
) -> Result<(Vec<String>, Option<usize>, bool), ApiError> {
    let last = param(q, "last");
    let n = match param(q, "n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                format!("`n` must be a non-negative integer, not `{v}`"),
            )
        })?),
    };
    let mut rest: Vec<String> = all
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l))
        .collect();
    let more = n.is_some_and(|n| rest.len() > n);
    if let Some(n) = n {
        rest.truncate(n);
    }
    Ok((rest, n, more))
}

pub(super) fn json_page(body: serde_json::Value, link: Option<String>) -> Response {
    let text = body.to_string();
    let mut resp = Response::new(Body::from(text.clone()));
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, "application/json");
    set(h, header::CONTENT_LENGTH, &text.len().to_string());
    if let Some(l) = link {
        set(h, header::LINK, &l);
    }
    resp
}

pub(super) fn next_link(
    path: &str,
    n: Option<usize>,
    page: &[String],
    more: bool,
) -> Option<String> {
    match (more, n, page.last()) {
        (true, Some(n), Some(last)) => Some(format!("<{path}?n={n}&last={last}>; rel=\"next\"")),
        _ => None,
    }
}
