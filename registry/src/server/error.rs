//! Distribution-spec error responses: `{"errors":[{"code","message","detail"}]}` with the right status.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::storage::StorageError;

/// An error the registry answers with, in the spec's JSON form.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The spec's error code (`BLOB_UNKNOWN`...).
    pub code: &'static str,
    /// A human-readable message.
    pub message: String,
    /// Extra headers (`Range` on 416 for uploads, `WWW-Authenticate` on 401).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 DIGEST_INVALID.
    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    /// 400 NAME_INVALID, saying what the one repository-name rule ([`formats::reference::Repository`])
    /// rejected.
    pub fn name_invalid(why: &formats::reference::RepositoryError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "NAME_INVALID", why.to_string())
    }

    /// 400 MANIFEST_INVALID.
    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }

    /// 405 UNSUPPORTED for writes to a read-only registry.
    pub fn read_only() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "the registry is read-only (started with --read-only)",
        )
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let msg = e.to_string();
        match e {
            StorageError::BlobUnknown(_) => Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", msg),
            StorageError::ManifestUnknown(_) => {
                Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", msg)
            }
            StorageError::NameUnknown(_) => Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", msg),
            StorageError::UploadUnknown(_) => {
                Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", msg)
            }
            StorageError::OutOfOrder { current, .. } => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "BLOB_UPLOAD_INVALID",
                msg,
            )
            .with_header(header::RANGE, range_value(current)),
            StorageError::ChunkLength { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", msg)
            }
            StorageError::DigestMismatch { .. } => Self::digest_invalid(msg),
            StorageError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", msg)
            }
            StorageError::RangeNotSatisfiable { size, .. } => {
                Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN", msg)
                    .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
            }
            StorageError::Denied(_) => Self::new(StatusCode::FORBIDDEN, "DENIED", msg),
            StorageError::Body(_) => Self::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", msg),
            StorageError::Corrupt { .. }
            | StorageError::Io { .. }
            | StorageError::InvalidConfig { .. } => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", msg)
            }
        }
    }
}

/// The `Range` header value of an upload holding `offset` bytes (`0-<offset-1>`, and `0-0` when empty, as
/// distribution writes it).
pub fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{"code": self.code, "message": self.message, "detail": null}]
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}
