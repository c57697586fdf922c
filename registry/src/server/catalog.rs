//! `GET /v2/_catalog`: the repositories, paginated.

use super::pagination::{json_page, next_link, paginate};
use super::{ApiResult, App};

pub(super) async fn catalog(app: &App, q: &[(String, String)]) -> ApiResult {
    let repos = app.storage.list_repositories().await?;
    let (page, n, more) = paginate(repos, q)?;
    let link = next_link("/v2/_catalog", n, &page, more);
    Ok(json_page(serde_json::json!({"repositories": page}), link))
}
