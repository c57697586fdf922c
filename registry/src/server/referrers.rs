//! `GET /v2/<name>/referrers/<digest>`: the manifests whose `subject` is the digest, as an image index,
//! optionally filtered by `artifactType`.

use axum::body::Body;
use axum::http::header;
use axum::response::Response;

use super::headers::set;
use super::manifest_check;
use super::routes::{param, parse_digest};
use super::{ApiResult, App};

pub(super) async fn referrers(
    app: &App,
    name: &str,
    digest: &str,
    q: &[(String, String)],
) -> ApiResult {
    let subject = parse_digest(digest)?;
    let filter = param(q, "artifactType");
    let found = if app.storage.repository_exists(name).await? {
        app.storage.referrers(name, &subject).await?
    } else {
        Vec::new()
    };
    let manifests: Vec<serde_json::Value> = found
        .into_iter()
        .filter(|r| filter.is_none_or(|f| r.artifact_type.as_deref() == Some(f)))
        .map(|r| {
            let mut d = serde_json::json!({
                "mediaType": r.media_type,
                "digest": r.digest.to_string(),
                "size": r.size,
            });
            if let Some(at) = r.artifact_type {
                d["artifactType"] = at.into();
            }
            if let Some(a) = r.annotations {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_check::OCI_INDEX,
        "manifests": manifests,
    })
    .to_string();
    let mut resp = Response::new(Body::from(body.clone()));
    let h = resp.headers_mut();
    set(h, header::CONTENT_TYPE, manifest_check::OCI_INDEX);
    set(h, header::CONTENT_LENGTH, &body.len().to_string());
    if filter.is_some() {
        set(
            h,
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType",
        );
    }
    Ok(resp)
}
