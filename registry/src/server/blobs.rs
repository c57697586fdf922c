//! `GET`, `HEAD` and `DELETE` of `/v2/<name>/blobs/<digest>`: whole or ranged reads (sendfile on plain TCP, a
//! redirect when the store hands out URLs) and unlinks that never break a manifest.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use formats::digest::Digest;

use super::error::ApiError;
use super::headers::{digest_header, set};
use super::manifest_check;
use super::routes::parse_digest;
use super::{ApiResult, App};
use crate::storage::{BlobReader, ByteRange, MANIFEST_LIMIT, StorageError};

/// Parses a `Range: bytes=a-b` request header. `Ok(None)` when absent; `Err` when not satisfiable or malformed.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let unsatisfiable = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UNKNOWN",
            format!(
                "range `{}` cannot be served from a blob of {size} bytes",
                value.to_str().unwrap_or("?")
            ),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
    };
    let text = value.to_str().map_err(|_| unsatisfiable())?;
    let spec = text
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(unsatisfiable());
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let suffix: u64 = b.parse().map_err(|_| unsatisfiable())?;
        if suffix == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        ByteRange {
            start: size.saturating_sub(suffix),
            end: size - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| unsatisfiable())?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse().map_err(|_| unsatisfiable())?
        };
        if start >= size || end < start {
            return Err(unsatisfiable());
        }
        ByteRange {
            start,
            end: end.min(size - 1),
        }
    };
    Ok(Some(range))
}

pub(super) async fn get_blob(
    app: &App,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    with_body: bool,
) -> ApiResult {
    let digest = parse_digest(digest)?;
    let whole = with_body && !headers.contains_key(header::RANGE);
    if whole && let Some(url) = app.storage.blob_redirect(&digest).await? {
        // The URL is only handed out once the repository is known to link the blob.
        if !app.storage.has_layer(name, &digest).await? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let h = resp.headers_mut();
        set(h, header::LOCATION, &url);
        set(h, digest_header(), &digest.to_string());
        return Ok(resp);
    }
    // The link check runs beside the open (whole GET) or the size lookup (HEAD, ranged GET), so a remote store
    // costs one round trip before the bytes flow: the open answers with the size.
    let (size, range, stream) = if whole {
        let (linked, reader) = tokio::join!(
            app.storage.has_layer(name, &digest),
            open_blob_body(app, &digest, None)
        );
        if !linked? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let reader = reader?;
        (reader.size, None, Some(reader.stream))
    } else {
        let (linked, size) = tokio::join!(
            app.storage.has_layer(name, &digest),
            app.storage.blob_size(&digest)
        );
        if !linked? {
            return Err(StorageError::BlobUnknown(digest).into());
        }
        let size = size?.ok_or_else(|| StorageError::BlobUnknown(digest.clone()))?;
        let range = parse_range(headers, size)?;
        let stream = if with_body {
            Some(open_blob_body(app, &digest, range).await?.stream)
        } else {
            None
        };
        (size, range, stream)
    };
    let (status, len) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, size),
    };
    let body = match stream {
        Some(stream) => Body::from_stream(stream),
        None => Body::empty(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, "application/octet-stream");
    set(h, header::CONTENT_LENGTH, &len.to_string());
    set(h, header::ACCEPT_RANGES, "bytes");
    set(h, digest_header(), &digest.to_string());
    set(h, header::ETAG, &format!("\"{digest}\""));
    if let Some(r) = range {
        set(
            h,
            header::CONTENT_RANGE,
            &format!("bytes {}-{}/{size}", r.start, r.end),
        );
    }
    Ok(resp)
}

/// Opens a blob for a response body: for plain-TCP connections (which [`super::serve`] sends with sendfile(2))
/// as [`crate::storage::Storage::send_blob`], over TLS (which reads the bytes to encrypt them) as
/// [`crate::storage::Storage::read_blob`].
async fn open_blob_body(
    app: &App,
    digest: &Digest,
    range: Option<ByteRange>,
) -> Result<BlobReader, StorageError> {
    if app.config.tls {
        app.storage.read_blob(digest, range).await
    } else {
        app.storage.send_blob(digest, range).await
    }
}

/// Unlinks a blob from `name`, unless a manifest of `name` uses it: deleting it would leave that image
/// unpullable (and fsck failing), so the answer is 409 naming the manifest.
pub(super) async fn delete_blob(app: &App, name: &str, digest: &str) -> ApiResult {
    let digest = parse_digest(digest)?;
    if let Some(manifest) = manifest_using(app, name, &digest).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "DENIED",
            format!(
                "blob `{digest}` is used by manifest `{manifest}` of repository `{name}`; delete the manifest first"
            ),
        ));
    }
    app.storage.unlink_layer(name, &digest).await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    set(resp.headers_mut(), digest_header(), &digest.to_string());
    Ok(resp)
}

/// A manifest revision of `name` that references blob `digest` (as its config or a distributable layer). Reads
/// every revision of the repository: blob deletes are rare, repositories of cluster images hold few manifests.
async fn manifest_using(
    app: &App,
    name: &str,
    digest: &Digest,
) -> Result<Option<Digest>, ApiError> {
    for revision in app.storage.list_revisions(name).await? {
        let bytes = match app.storage.read_blob_bytes(&revision, MANIFEST_LIMIT).await {
            Ok(b) => b,
            // A revision without readable content cannot be pulled anyway; it keeps nothing.
            Err(StorageError::BlobUnknown(_) | StorageError::TooLarge { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let uses = manifest_check::check(&bytes, None).is_ok_and(|f| f.blobs.contains(digest));
        if uses {
            return Ok(Some(revision));
        }
    }
    Ok(None)
}
