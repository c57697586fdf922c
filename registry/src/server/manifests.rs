//! `GET`, `HEAD`, `PUT` and `DELETE` of `/v2/<name>/manifests/<reference>`: references resolved by tag or
//! digest, pushes checked (media type, referenced blobs and children present) before they are stored and tagged.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use formats::digest::{Algorithm, Digest};
use futures_util::StreamExt;

use super::error::ApiError;
use super::headers::{blob_created, content_length, digest_header, location, set};
use super::manifest_check;
use super::routes::parse_digest;
use super::{ApiResult, App};
use crate::storage::{MANIFEST_LIMIT, Storage, StorageError};

/// Resolves a manifest reference (tag or digest) to a revision digest in `name` (also for the hub's pages).
pub(super) async fn resolve(
    storage: &dyn Storage,
    name: &str,
    reference: &str,
) -> Result<Digest, ApiError> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest `{reference}` is not in repository `{name}`"),
        )
    };
    if reference.contains(':') {
        let digest = parse_digest(reference)?;
        if storage.has_revision(name, &digest).await? {
            return Ok(digest);
        }
        return Err(unknown());
    }
    if !formats::reference::is_valid_tag(reference) {
        // No manifest can be stored under a reference that is neither a digest nor a valid tag, so reads answer
        // 404 like any unknown manifest (the OCI conformance suite asks for exactly that).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!(
                "manifest `{reference}` is not in repository `{name}`: it is not a valid tag (up to 128 of \
                 [A-Za-z0-9_.-], not starting with `.` or `-`) nor a digest"
            ),
        ));
    }
    match storage.resolve_tag(name, reference).await? {
        Some(d) => Ok(d),
        None if !storage.repository_exists(name).await? => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository `{name}` does not exist"),
        )),
        None => Err(unknown()),
    }
}

pub(super) async fn get_manifest(
    app: &App,
    name: &str,
    reference: &str,
    with_body: bool,
) -> ApiResult {
    let digest = resolve(app.storage.as_ref(), name, reference).await?;
    let bytes = match app.storage.read_blob_bytes(&digest, MANIFEST_LIMIT).await {
        Ok(b) => b,
        Err(StorageError::BlobUnknown(_)) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                format!("manifest `{digest}` is linked in `{name}` but its content is missing"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let media_type = manifest_check::media_type_of(&bytes);
    let len = bytes.len();
    let mut resp = Response::new(if with_body {
        Body::from(bytes)
    } else {
        Body::empty()
    });
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, &media_type);
    set(h, header::CONTENT_LENGTH, &len.to_string());
    set(h, digest_header(), &digest.to_string());
    set(h, header::ETAG, &format!("\"{digest}\""));
    Ok(resp)
}

async fn read_limited(body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!(
                "manifest is larger than the {limit}-byte limit; split it or push the large parts as blobs"
            ),
        )
    };
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::manifest_invalid(format!("reading the body: {e}")))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

pub(super) async fn put_manifest(
    app: &App,
    name: &str,
    reference: &str,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    if content_length(headers).is_some_and(|l| l > MANIFEST_LIMIT) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("manifest is larger than the {MANIFEST_LIMIT}-byte limit"),
        ));
    }
    let (by_digest, path_tag) = if reference.contains(':') {
        (Some(parse_digest(reference)?), None)
    } else if formats::reference::is_valid_tag(reference) {
        (None, Some(reference))
    } else {
        return Err(ApiError::manifest_invalid(format!(
            "invalid tag `{reference}`"
        )));
    };
    let extra_tags = query_tags(q)?;
    let bytes = read_limited(body, MANIFEST_LIMIT).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let facts = manifest_check::check(&bytes, content_type)
        .map_err(|e| ApiError::manifest_invalid(e.to_string()))?;
    let digest = match by_digest {
        Some(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if actual != expected {
                return Err(ApiError::digest_invalid(format!(
                    "manifest content has digest `{actual}`, not `{expected}` as in the URL"
                )));
            }
            expected
        }
        None => Digest::of(Algorithm::Sha256, &bytes),
    };
    for blob in &facts.blobs {
        let present = app.storage.has_layer(name, blob).await?
            && app.storage.blob_size(blob).await?.is_some();
        if !present {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "manifest references blob `{blob}`, which is not in repository `{name}`; push it first"
                ),
            ));
        }
    }
    for child in &facts.children {
        if !app.storage.has_revision(name, child).await? {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!(
                    "index references manifest `{child}`, which is not in repository `{name}`; push it first"
                ),
            ));
        }
    }
    app.storage.put_blob_bytes(&digest, bytes).await?;
    app.storage.link_revision(name, &digest).await?;
    for tag in path_tag
        .into_iter()
        .chain(extra_tags.iter().map(String::as_str))
    {
        app.storage.set_tag(name, tag, &digest).await?;
    }
    let mut resp = blob_created(name, &digest);
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("manifests/{digest}")),
    );
    for tag in &extra_tags {
        // One header per tag (RFC 9110 5.3: a client may also read them joined by commas).
        if let Ok(v) = HeaderValue::from_str(tag) {
            h.append(oci_tag_header(), v);
        }
    }
    if let Some(subject) = &facts.subject {
        set(
            h,
            header::HeaderName::from_static("oci-subject"),
            &subject.to_string(),
        );
    }
    Ok(resp)
}

/// Most `tag` parameters one manifest push may carry: the spec asks for at least 10 and lets a registry answer
/// 414 above that. 50 keeps one request's tag writes bounded and the answer's one `OCI-Tag` header per tag well
/// under the 100 response headers hyper-based clients (reqwest, our own client) accept.
const MAX_TAGS_PER_PUSH: usize = 50;

/// The `OCI-Tag` response header: one per tag a push set from its `tag` query parameters.
fn oci_tag_header() -> header::HeaderName {
    header::HeaderName::from_static("oci-tag")
}

/// The tags a manifest push sets from its `tag` query parameters (`PUT /v2/<name>/manifests/<digest>?tag=A&tag=B`,
/// from the distribution-spec's development version): in the order given, each once. One tag outside the tag
/// grammar refuses the whole push (400 MANIFEST_INVALID, as an invalid tag in the path is), before anything is
/// stored; more than [`MAX_TAGS_PER_PUSH`] is 414.
fn query_tags(q: &[(String, String)]) -> Result<Vec<String>, ApiError> {
    let mut tags: Vec<String> = Vec::new();
    for (_, tag) in q.iter().filter(|(k, _)| k == "tag") {
        if !formats::reference::is_valid_tag(tag) {
            return Err(ApiError::manifest_invalid(format!(
                "invalid tag `{tag}` in the `tag` query parameter: a tag is 1 to 128 of [A-Za-z0-9_.-], not \
                 starting with `.` or `-`"
            )));
        }
        if tags.contains(tag) {
            continue;
        }
        if tags.len() == MAX_TAGS_PER_PUSH {
            return Err(ApiError::new(
                StatusCode::URI_TOO_LONG,
                "UNSUPPORTED",
                format!(
                    "more than {MAX_TAGS_PER_PUSH} tags in one manifest push; push the manifest by digest \
                     several times, with at most {MAX_TAGS_PER_PUSH} `tag` parameters each"
                ),
            ));
        }
        tags.push(tag.clone());
    }
    Ok(tags)
}

pub(super) async fn delete_manifest(app: &App, name: &str, reference: &str) -> ApiResult {
    if reference.contains(':') {
        let digest = parse_digest(reference)?;
        app.storage.unlink_revision(name, &digest).await?;
    } else {
        if !formats::reference::is_valid_tag(reference) {
            return Err(ApiError::manifest_invalid(format!(
                "invalid tag `{reference}`"
            )));
        }
        app.storage.delete_tag(name, reference).await?;
    }
    let mut resp = StatusCode::ACCEPTED.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    Ok(resp)
}
