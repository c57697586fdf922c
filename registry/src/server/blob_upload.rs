//! The blob-upload endpoints under `/v2/<name>/blobs/uploads/`: `POST` starts a session (or mounts a blob from
//! another repository, or takes a whole blob in one request), `PATCH` appends a chunk, `PUT` finishes with the
//! digest, `GET` tells the offset, `DELETE` cancels. The bookkeeping of open sessions (caps, idle expiry) is
//! [`super::uploads`].

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use formats::digest::Algorithm;
use futures_util::StreamExt;

use super::error::{ApiError, range_value};
use super::headers::{blob_created, content_length, location, set};
use super::routes::{mount_of, param, parse_digest};
use super::uploads::Client;
use super::{ApiResult, App};
use crate::storage::{ByteStream, StorageError, UploadStatus};

fn body_stream(app: &App, body: Body) -> ByteStream {
    let counter = app.metrics.bytes_in.clone();
    Box::pin(body.into_data_stream().map(move |r| {
        r.inspect(|b| {
            counter.fetch_add(b.len() as u64, Ordering::Relaxed);
        })
        .map_err(io::Error::other)
    }))
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    set(
        h,
        header::LOCATION,
        &location(name, &format!("blobs/uploads/{id}")),
    );
    set(h, header::RANGE, &range_value(offset));
    set(h, header::CONTENT_LENGTH, "0");
    set(h, header::HeaderName::from_static("docker-upload-uuid"), id);
    resp
}

/// Checks the `digest-algorithm` hint of an upload start (`POST .../blobs/uploads/?digest-algorithm=sha512`, from
/// the distribution-spec's development version): the algorithm of the digest that will finish the upload. One we
/// cannot finish with is refused now (400 DIGEST_INVALID), not after the bytes are sent. A supported one changes
/// nothing else: storage checks a finished upload against the finishing digest's algorithm either way (the
/// filesystem store hashes sha256 as the bytes arrive and re-reads the upload once for sha512).
fn check_digest_algorithm(q: &[(String, String)]) -> Result<(), ApiError> {
    match param(q, "digest-algorithm") {
        Some(name) => name.parse::<Algorithm>().map(drop).map_err(|e| {
            ApiError::digest_invalid(format!(
                "the upload's `digest-algorithm` hint: {e}; start the upload without the hint or with a \
                 supported algorithm"
            ))
        }),
        None => Ok(()),
    }
}

pub(super) async fn start_upload(
    app: &App,
    name: &str,
    q: &[(String, String)],
    client: Client,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    check_digest_algorithm(q)?;
    if let Some((mount, from)) = mount_of(q) {
        let digest = parse_digest(mount)?;
        if formats::reference::Repository::is_valid(from)
            && app.storage.has_layer(from, &digest).await?
            && app.storage.blob_size(&digest).await?.is_some()
        {
            app.storage.link_layer(name, &digest).await?;
            return Ok(blob_created(name, &digest));
        }
        // Not mountable: fall through to a fresh session, as the spec allows.
    } else if let Some(d) = param(q, "digest") {
        let digest = parse_digest(d)?;
        let room = app.uploads.reserve(name, client)?;
        let session = app.storage.create_upload(name).await?;
        let _busy = room.open(&session.id);
        let expected_len = content_length(headers);
        let stored = match app
            .storage
            .append_upload(
                name,
                &session.id,
                Some(0),
                expected_len,
                body_stream(app, body),
            )
            .await
        {
            Ok(_) => app.storage.finish_upload(name, &session.id, &digest).await,
            Err(e) => Err(e),
        };
        if stored.is_err() {
            // The client never learnt this session's id: nothing could resume it.
            let _ignored = app.storage.cancel_upload(name, &session.id).await;
        }
        app.uploads.close(name, &session.id);
        stored?;
        app.storage.link_layer(name, &digest).await?;
        return Ok(blob_created(name, &digest));
    }
    let room = app.uploads.reserve(name, client)?;
    let session = app.storage.create_upload(name).await?;
    drop(room.open(&session.id));
    Ok(upload_response(StatusCode::ACCEPTED, name, &session.id, 0))
}

/// Parses an upload `Content-Range: <start>-<end>` (also accepting a `bytes ` or `bytes=` prefix):
/// the chunk's offset and length.
fn parse_content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bogus = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!(
                "bad Content-Range `{}`: expected `<start>-<end>` with start <= end",
                v.to_str().unwrap_or("?")
            ),
        )
    };
    let text = v.to_str().map_err(|_| bogus())?.trim();
    let text = text
        .strip_prefix("bytes ")
        .or_else(|| text.strip_prefix("bytes="))
        .unwrap_or(text);
    let text = text.split('/').next().unwrap_or(text);
    let (a, b) = text.split_once('-').ok_or_else(bogus)?;
    let start: u64 = a.trim().parse().map_err(|_| bogus())?;
    let end: u64 = b.trim().parse().map_err(|_| bogus())?;
    if end < start {
        return Err(bogus());
    }
    Ok(Some((start, end - start + 1)))
}

/// Runs `op` on upload session `id` of `name` with the session marked busy (it does not expire meanwhile);
/// forgets the session when storage no longer has it, or when `done` says `op` ended it.
async fn on_session<T>(
    app: &App,
    name: &str,
    id: &str,
    op: impl Future<Output = Result<T, StorageError>>,
    done: impl FnOnce(&Result<T, StorageError>) -> bool,
) -> Result<T, StorageError> {
    let busy = app.uploads.begin(name, id)?;
    let result = op.await;
    if done(&result) || matches!(result, Err(StorageError::UploadUnknown(_))) {
        app.uploads.close(name, id);
    }
    drop(busy);
    result
}

/// Where upload session `id` of `name` stands (forgotten when storage no longer has it).
async fn session_status(app: &App, name: &str, id: &str) -> Result<UploadStatus, StorageError> {
    on_session(
        app,
        name,
        id,
        app.storage.upload_status(name, id),
        keeps_session,
    )
    .await
}

/// An upload request that keeps the session: only storage's "no such session" ends it.
fn keeps_session<T>(_: &Result<T, StorageError>) -> bool {
    false
}

pub(super) async fn patch_upload(
    app: &App,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let range = match parse_content_range(headers) {
        Ok(r) => r,
        Err(e) => {
            // A bogus range still tells the client where the session stands.
            let status = session_status(app, name, id).await?;
            return Err(e
                .with_header(header::RANGE, range_value(status.offset))
                .with_header(
                    header::LOCATION,
                    location(name, &format!("blobs/uploads/{id}")),
                ));
        }
    };
    let (offset, expected_len) = match range {
        Some((start, len)) => (Some(start), Some(len)),
        None => (None, content_length(headers)),
    };
    let append = app
        .storage
        .append_upload(name, id, offset, expected_len, body_stream(app, body));
    match on_session(app, name, id, append, keeps_session).await {
        Ok(status) => {
            app.uploads.grew(name, id, status.offset);
            Ok(upload_response(
                StatusCode::ACCEPTED,
                name,
                id,
                status.offset,
            ))
        }
        Err(e @ StorageError::OutOfOrder { .. }) => Err(ApiError::from(e).with_header(
            header::LOCATION,
            location(name, &format!("blobs/uploads/{id}")),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn put_upload(
    app: &App,
    name: &str,
    id: &str,
    q: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
) -> ApiResult {
    let digest = param(q, "digest")
        .ok_or_else(|| {
            ApiError::digest_invalid("finishing an upload needs `?digest=<algorithm>:<hex>`")
        })
        .and_then(parse_digest)?;
    let range = parse_content_range(headers)?;
    let has_body = content_length(headers).is_none_or(|l| l > 0) || range.is_some();
    let finish = async {
        if has_body {
            let (offset, expected_len) = match range {
                Some((start, len)) => (Some(start), Some(len)),
                None => (None, content_length(headers)),
            };
            app.storage
                .append_upload(name, id, offset, expected_len, body_stream(app, body))
                .await?;
        } else {
            // Make sure the session exists before reporting anything about the digest.
            app.storage.upload_status(name, id).await?;
        }
        app.storage.finish_upload(name, id, &digest).await
    };
    // Finished, or refused for its digest (which removes the session): either way it is over.
    let over = |r: &Result<u64, StorageError>| {
        matches!(r, Ok(_) | Err(StorageError::DigestMismatch { .. }))
    };
    on_session(app, name, id, finish, over).await?;
    app.storage.link_layer(name, &digest).await?;
    Ok(blob_created(name, &digest))
}

pub(super) async fn upload_status(app: &App, name: &str, id: &str) -> ApiResult {
    let status = session_status(app, name, id).await?;
    Ok(upload_response(
        StatusCode::NO_CONTENT,
        name,
        id,
        status.offset,
    ))
}

pub(super) async fn cancel_upload(app: &App, name: &str, id: &str) -> ApiResult {
    on_session(app, name, id, app.storage.cancel_upload(name, id), |r| {
        r.is_ok()
    })
    .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    set(resp.headers_mut(), header::CONTENT_LENGTH, "0");
    Ok(resp)
}
