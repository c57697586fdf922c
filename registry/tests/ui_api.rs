//! The hub's JSON API (`registry serve --ui`) over TCP on 127.0.0.1: repositories and search, tags, a cluster
//! image's facts (type, version, CMD/ENTRYPOINT, ENV, labels, embedded images from its layers' annotations),
//! layers, referrers and command lines, and who sees what under `--htpasswd` (the `/v2/` pull rule).

mod auth_common;
mod ui_common;

use auth_common::*;
use formats::digest::Digest;
use registry::server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use ui_common::*;

async fn get(url: &str, auth: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn names(list: &Value) -> Vec<&str> {
    list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn repositories_are_listed_with_tag_counts_and_searched_by_name() {
    let server = serve(seeded().await, None).await;
    let (status, all) = get(&server.url("/ui/api/repositories"), None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        all["repositories"],
        json!([
            {"name": "apps/demo", "tags": 2},
            {"name": "library/nginx", "tags": 1},
            {"name": "private/secret", "tags": 1},
        ])
    );
    assert_eq!(all["auth"], false);
    let (_, found) = get(&server.url("/ui/api/repositories?q=DEM"), None).await;
    assert_eq!(names(&found), ["apps/demo"]);
    let (_, found) = get(&server.url("/ui/api/repositories?q=library%2F"), None).await;
    assert_eq!(names(&found), ["library/nginx"]);
    let (_, none) = get(&server.url("/ui/api/repositories?q=zzz"), None).await;
    assert_eq!(none["repositories"], json!([]));
}

#[tokio::test]
async fn tags_have_digest_size_platforms_and_created_time() {
    let storage = seeded().await;
    let server = serve(storage.clone(), None).await;
    let (status, tags) = get(&server.url("/ui/api/tags?repository=apps/demo"), None).await;
    assert_eq!(status, StatusCode::OK, "{tags}");
    let v1 = &tags["tags"][1];
    assert_eq!(tags["tags"][0]["tag"], "amd64");
    assert_eq!(v1["tag"], "v1");
    let index = storage
        .resolve_tag("apps/demo", "v1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v1["digest"], index.to_string());
    assert_eq!(v1["mediaType"], INDEX);
    assert_eq!(v1["platforms"], json!(["linux/amd64", "linux/arm64"]));
    // The newest config of the two platforms.
    assert_eq!(v1["created"], "2025-02-01T00:00:00Z");
    // Both platforms' configs and layers: 300 + 2000 + 500 + 500 bytes of layers plus the two configs.
    let amd64 = &tags["tags"][0];
    assert_eq!(amd64["platforms"], json!(["linux/amd64"]));
    let amd64_size = amd64["size"].as_u64().unwrap();
    assert!(amd64_size > 300 + 2000 + 500, "{amd64}");
    assert!(
        v1["size"].as_u64().unwrap() > 2 * (300 + 2000 + 500),
        "{v1}"
    );
}

#[tokio::test]
async fn a_cluster_image_shows_its_type_commands_env_labels_embedded_images_layers_and_referrers() {
    let storage = seeded().await;
    let server = serve(storage.clone(), None).await;
    let resp = reqwest::Client::new()
        .get(server.url("/ui/api/image?repository=apps/demo&reference=v1"))
        .header("Host", "hub.example:5000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let img: Value = resp.json().await.unwrap();
    assert_eq!(img["kind"], "index");
    assert_eq!(img["platforms"], json!(["linux/amd64", "linux/arm64"]));
    assert_eq!(img["cluster"]["type"], "application");
    assert_eq!(
        img["cluster"]["version"], "v1.2.3",
        "the version label wins over the format version"
    );
    let nginx = format!("sha256:{}", "a".repeat(64));
    let pause_amd64 = Digest::sha256_of(b"pause amd64").to_string();
    let pause_arm64 = Digest::sha256_of(b"pause arm64").to_string();
    assert_eq!(
        img["cluster"]["embedded"],
        json!([
            {"name": "docker.io/library/nginx:1.25", "digest": nginx, "platforms": ["linux/amd64", "linux/arm64"], "size": 2000},
            {"name": "registry.k8s.io/pause:3.9", "digest": pause_amd64, "platforms": ["linux/amd64"], "size": 500},
            {"name": "registry.k8s.io/pause:3.9", "digest": pause_arm64, "platforms": ["linux/arm64"], "size": 500},
        ])
    );
    let config = &img["config"];
    assert_eq!(config["platform"], "linux/amd64");
    assert_eq!(config["entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(config["cmd"], json!(["kubectl apply -f manifests/"]));
    assert_eq!(config["env"], json!(["PATH=/usr/bin", "NAMESPACE=demo"]));
    assert_eq!(config["labels"]["team"], "hub");
    assert_eq!(img["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(img["manifests"][1]["platform"], "linux/arm64");
    assert_eq!(img["manifests"][1]["present"], true);
    assert_eq!(
        img["commands"],
        json!({
            "pull": "sealos pull hub.example:5000/apps/demo:v1",
            "run": "sealos run hub.example:5000/apps/demo:v1",
        })
    );
    let referrers = img["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{img}");
    assert_eq!(
        referrers[0]["artifactType"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );

    // One platform's manifest, by digest: its layers with the instruction that made each.
    let child = img["manifests"][0]["digest"].as_str().unwrap();
    let (status, one) = get(
        &server.url(&format!(
            "/ui/api/image?repository=apps/demo&reference={child}"
        )),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["kind"], "image");
    let made_by: Vec<&str> = one["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["createdBy"].as_str().unwrap())
        .collect();
    assert_eq!(
        made_by,
        [
            "COPY . .",
            "EMBED docker.io/library/nginx:1.25@sha256:aa",
            "EMBED registry.k8s.io/pause:3.9"
        ]
    );
    assert_eq!(
        one["layers"][1]["annotations"][EMBEDDED].as_str().unwrap(),
        format!("docker.io/library/nginx:1.25@{nginx}")
    );
    assert_eq!(one["cluster"]["embedded"].as_array().unwrap().len(), 2);
    assert!(
        one["commands"]["pull"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/apps/demo@{child}")),
        "{one}"
    );

    // A plain image is no cluster image.
    let (_, plain) = get(
        &server.url("/ui/api/image?repository=library/nginx&reference=1.25"),
        None,
    )
    .await;
    assert_eq!(plain["cluster"], Value::Null);
    assert_eq!(plain["config"]["cmd"], json!(["nginx"]));
}

#[tokio::test]
async fn bad_requests_and_unknown_images_are_json_errors() {
    let server = serve(seeded().await, None).await;
    for (path, status, code) in [
        ("/ui/api/tags", StatusCode::BAD_REQUEST, "NAME_INVALID"),
        (
            "/ui/api/tags?repository=UPPER",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
        (
            "/ui/api/tags?repository=no/such",
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
        ),
        (
            "/ui/api/image?repository=apps/demo",
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "/ui/api/image?repository=apps/demo&reference=v9",
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (
            "/ui/api/image?repository=apps/demo&reference=sha256:00",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
    ] {
        let (got, body) = get(&server.url(path), None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["errors"][0]["code"], code, "{path}: {body}");
    }
}

#[tokio::test]
async fn pages_and_assets_are_served_only_with_the_ui_flag() {
    let storage = seeded().await;
    let on = serve(storage.clone(), None).await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/ui/", "text/html"),
        ("/ui/repository?name=apps/demo", "text/html"),
        ("/ui/image?repository=apps/demo&reference=v1", "text/html"),
        ("/ui/assets/hub.js", "text/javascript"),
        ("/ui/assets/hub.css", "text/css"),
    ] {
        let resp = client.get(on.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        if kind == "text/html" {
            let csp = resp.headers()["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'self'"), "{csp}");
        }
    }
    let off = start_on(storage, ServerConfig::default(), None).await;
    for path in ["/ui/", "/ui/api/repositories"] {
        let resp = client.get(off.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn without_anonymous_pull_an_anonymous_caller_sees_nothing_and_a_user_everything() {
    let server = serve(seeded().await, Some(auth_config(false))).await;
    let (status, body) = get(&server.url("/ui/api/repositories"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    for path in [
        "/ui/api/tags?repository=private/secret",
        "/ui/api/tags?repository=does/not-exist",
        "/ui/api/image?repository=private/secret&reference=v1",
    ] {
        let (status, body) = get(&server.url(path), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(!body.to_string().contains("sha256"), "{path}: {body}");
    }
    let (status, _) = get(
        &server.url("/ui/api/repositories"),
        Some(&basic(USER, "wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let alice = basic(USER, PASSWORD);
    let (status, all) = get(&server.url("/ui/api/repositories"), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        names(&all),
        ["apps/demo", "library/nginx", "private/secret"]
    );
    assert_eq!(all["user"], USER);
    assert_eq!(all["auth"], true);
    let (status, _) = get(
        &server.url("/ui/api/image?repository=private/secret&reference=v1"),
        Some(&alice),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The login page challenges for Basic credentials, and sends a signed-in user back to the hub.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(server.url("/ui/login")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let resp = client
        .get(server.url("/ui/login"))
        .header("Authorization", &alice)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(resp.headers()["location"], "/ui/");
}

#[tokio::test]
async fn a_token_for_one_repository_sees_that_repository_only() {
    let server = serve(seeded().await, Some(auth_config(false))).await;
    let (status, token) = get(
        &server.url("/token?service=sealos-registry&scope=repository:apps/demo:pull"),
        Some(&basic(USER, PASSWORD)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let (status, list) = get(&server.url("/ui/api/repositories"), Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["apps/demo"]);
    let (status, _) = get(
        &server.url("/ui/api/tags?repository=apps/demo"),
        Some(&bearer),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The same answer as /v2/ gives this token for a pull of the other repository.
    let (v2_status, _) = get(&server.url("/v2/private/secret/tags/list"), Some(&bearer)).await;
    let (status, body) = get(
        &server.url("/ui/api/tags?repository=private/secret"),
        Some(&bearer),
    )
    .await;
    assert_eq!(v2_status, StatusCode::UNAUTHORIZED);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn with_anonymous_pull_an_anonymous_caller_sees_what_it_may_pull() {
    let server = serve(seeded().await, Some(auth_config(true))).await;
    let (status, list) = get(&server.url("/ui/api/repositories"), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        names(&list),
        ["apps/demo", "library/nginx", "private/secret"]
    );
    assert_eq!(list["user"], Value::Null);
    let (status, _) = get(
        &server.url("/ui/api/image?repository=apps/demo&reference=v1"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
