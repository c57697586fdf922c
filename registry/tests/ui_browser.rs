//! The hub's page (`registry serve --ui`) in a real browser: Debian's headless `chromium` driven through
//! `chromedriver` (WebDriver), against a registry on 127.0.0.1. A cluster image appears, its embedded images are
//! listed, search narrows the list, and a browser without credentials sees nothing of a registry that wants them
//! until it signs in. With `SCREENSHOT_DIR=DIR` the main pages are saved as PNGs there (how docs/hub-*.png are
//! made).

mod auth_common;
mod ui_common;

use auth_common::{PASSWORD, USER, auth_config};
use serde_json::{Value, json};
use testsupport::webdriver::Browser;
use ui_common::{seeded, serve};

/// The repository names the page lists, once it has loaded them.
fn listed(browser: &Browser) -> Option<Vec<String>> {
    let names = browser.execute(
        "const s = document.getElementById('status');
         if (!s || s.textContent.startsWith('Loading')) return null;
         return [...document.querySelectorAll('#repositories a')].map(a => a.textContent);",
        json!([]),
    );
    names.as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().unwrap_or("").to_string())
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_image_appears_with_its_embedded_images_and_search_narrows_the_list() {
    let server = serve(seeded().await, None).await;
    let base = server.base.clone();
    let host = server.host.clone();
    tokio::task::spawn_blocking(move || {
        let browser = Browser::start();
        browser.goto(&format!("{base}/ui/"));
        let all = browser.wait_until("three repositories", |b| listed(b).filter(|l| l.len() == 3));
        assert_eq!(all, ["apps/demo", "library/nginx", "private/secret"]);
        browser.save_screenshot_if_asked("hub-repositories.png");

        browser.type_into("#search", "demo");
        browser.wait_until("only apps/demo after searching `demo`", |b| {
            listed(b).filter(|l| l == &["apps/demo"])
        });
        // The search is in the address, so the narrowed list can be shared and reloaded.
        let url = browser.execute("return location.search;", json!([]));
        assert_eq!(url, "?q=demo");

        browser.goto(&format!("{base}/ui/repository?name=apps/demo"));
        let tags = browser.wait_until("the tags table", |b| b.text("#tags tbody"));
        assert!(
            tags.contains("v1") && tags.contains("linux/amd64, linux/arm64"),
            "{tags}"
        );
        browser.save_screenshot_if_asked("hub-tags.png");

        browser.goto(&format!(
            "{base}/ui/image?repository=apps/demo&reference=v1"
        ));
        let embedded = browser.wait_until("the embedded images", |b| b.text("#embedded tbody"));
        let rows: Vec<&str> = embedded.lines().collect();
        assert_eq!(rows.len(), 3, "{embedded}");
        assert!(
            rows[0].starts_with("docker.io/library/nginx:1.25"),
            "{embedded}"
        );
        assert!(rows[0].contains("linux/amd64, linux/arm64"), "{embedded}");
        assert!(
            rows[1].starts_with("registry.k8s.io/pause:3.9"),
            "{embedded}"
        );
        assert_eq!(
            browser.text("#cluster-type").as_deref(),
            Some("application")
        );
        let pull = browser.execute(
            "return document.getElementById('pull-command').value;",
            json!([]),
        );
        assert_eq!(
            pull,
            Value::String(format!("sealos pull {host}/apps/demo:v1"))
        );
        let env = browser.text("#env").unwrap_or_default();
        assert!(env.contains("NAMESPACE") && env.contains("demo"), "{env}");
        // Values are shown as text, never parsed as markup.
        let labels = browser.text("#labels").unwrap_or_default();
        assert!(labels.contains("<b>not markup</b>"), "{labels}");
        let referrers = browser.text("#referrers").unwrap_or_default();
        assert!(
            referrers.contains("application/vnd.dev.cosign.artifact.sig.v1+json"),
            "{referrers}"
        );
        browser.save_screenshot_if_asked("hub-image.png");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_without_credentials_sees_nothing_private_until_it_signs_in() {
    let server = serve(seeded().await, Some(auth_config(false))).await;
    let base = server.base.clone();
    let host = server.host.clone();
    tokio::task::spawn_blocking(move || {
        let browser = Browser::start();
        browser.goto(&format!("{base}/ui/"));
        let status = browser.wait_until("the sign-in message", |b| {
            b.text("#status").filter(|s| s.contains("sign in"))
        });
        assert!(status.contains("sign in"), "{status}");
        assert_eq!(listed(&browser).unwrap_or_default(), Vec::<String>::new());
        let page = browser.text("body").unwrap_or_default();
        assert!(
            !page.contains("private/secret") && !page.contains("apps/demo"),
            "{page}"
        );
        browser.save_screenshot_if_asked("hub-signed-out.png");

        browser.goto(&format!(
            "{base}/ui/image?repository=private/secret&reference=v1"
        ));
        browser.wait_until("the refusal", |b| {
            b.text("#status").filter(|s| s.contains("may not pull"))
        });
        let page = browser.text("body").unwrap_or_default();
        assert!(
            !page.contains("sha256") && !page.contains("sealos pull"),
            "{page}"
        );

        // Signing in (the browser's Basic prompt, answered through the URL) shows everything.
        browser.goto(&format!("http://{USER}:{PASSWORD}@{host}/ui/login"));
        browser.goto(&format!("{base}/ui/"));
        let all = browser.wait_until("the repositories after signing in", |b| {
            listed(b).filter(|l| !l.is_empty())
        });
        assert_eq!(all, ["apps/demo", "library/nginx", "private/secret"]);
        assert_eq!(browser.text("#who").as_deref(), Some("Signed in as alice"));
    })
    .await
    .unwrap();
}
