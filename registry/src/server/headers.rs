//! Request and response headers the endpoints share.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use formats::digest::Digest;

pub(super) fn location(name: &str, rest: &str) -> String {
    format!("/v2/{name}/{rest}")
}

pub(super) fn set(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

pub(super) fn digest_header() -> header::HeaderName {
    header::HeaderName::from_static("docker-content-digest")
}

pub(super) fn blob_created(name: &str, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("blobs/{digest}")),
    );
    set(h, digest_header(), &digest.to_string());
    set(h, header::CONTENT_LENGTH, "0");
    resp
}

pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
