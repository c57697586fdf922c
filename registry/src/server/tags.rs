//! `GET /v2/<name>/tags/list`: a repository's tags, paginated.

use super::headers::location;
use super::pagination::{json_page, next_link, paginate};
use super::{ApiResult, App};

pub(super) async fn tags_list(app: &App, name: &str, q: &[(String, String)]) -> ApiResult {
    let tags = app.storage.list_tags(name).await?;
    let (page, n, more) = paginate(tags, q)?;
    let link = next_link(&location(name, "tags/list"), n, &page, more);
    Ok(json_page(
        serde_json::json!({"name": name, "tags": page}),
        link,
    ))
}
