//! The hub end to end: a cluster image built by `sealos build` (a Kubefile with type and version labels, ENV and
//! CMD, and two images embedded from OCI archives listed in `tar.txt`, so no network), pushed with `sealos push` to
//! `sealos registry serve --ui`, then read in a real browser (headless `chromium` through `chromedriver`): it
//! appears in the list, and its page shows its type, version, command and embedded images.

mod build_common;
mod store_fixture;

use std::path::Path;

use build_common::write_context;
use serde_json::json;
use store_fixture::{Env, make_image};
use testsupport::SealosRegistry;
use testsupport::webdriver::Browser;

#[test]
fn a_built_cluster_image_pushed_to_the_hub_shows_its_embedded_images_in_a_browser() {
    let env = Env::new();
    make_image(&env.store(), "example.com/team/app:v1", "app");
    make_image(&env.store(), "quay.io/tools/cli:2", "cli");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("images/skopeo")).unwrap();
    for (file, image) in [
        ("app.tar", "example.com/team/app:v1"),
        ("cli.tar", "quay.io/tools/cli:2"),
    ] {
        let out = ctx.join("images/skopeo").join(file);
        env.ok(&[
            "save",
            "--format",
            "oci-archive",
            "-o",
            out.to_str().unwrap(),
            image,
        ]);
    }
    write_context(
        &ctx,
        &[
            (
                "Kubefile",
                "FROM scratch\nLABEL sealos.io.type=application sealos.io.version=v1beta1\nENV NAMESPACE=hub\n\
                 COPY . .\nCMD [\"kubectl apply -f manifests/\"]\n",
            ),
            ("manifests/app.yaml", "kind: Pod\n"),
            (
                "images/skopeo/tar.txt",
                "oci-archive:app.tar\noci-archive:cli.tar\n",
            ),
        ],
    );
    env.ok(&[
        "build",
        "--timestamp",
        "0",
        "-t",
        "apps/hub-demo:v1",
        ctx.to_str().unwrap(),
    ]);

    let hub = SealosRegistry::start(
        Path::new(env!("CARGO_BIN_EXE_sealos")),
        &env.path("registry"),
        &["--ui"],
    );
    let host = hub.host().to_string();
    env.ok(&[
        "push",
        "apps/hub-demo:v1",
        &format!("{host}/apps/hub-demo:v1"),
        "--tls-verify=false",
    ]);

    let browser = Browser::start();
    browser.goto(&format!("http://{host}/ui/"));
    browser.wait_until("the pushed repository", |b| {
        b.text("#repositories")
            .filter(|t| t.contains("apps/hub-demo"))
    });
    browser.goto(&format!(
        "http://{host}/ui/image?repository=apps/hub-demo&reference=v1"
    ));
    let embedded = browser.wait_until("the embedded images", |b| b.text("#embedded tbody"));
    let rows: Vec<&str> = embedded.lines().collect();
    assert_eq!(rows.len(), 2, "{embedded}");
    assert!(rows.iter().any(|r| r.contains("app:v1")), "{embedded}");
    assert!(rows.iter().any(|r| r.contains("cli:2")), "{embedded}");
    assert!(rows.iter().all(|r| r.contains("sha256:")), "{embedded}");
    assert_eq!(
        browser.text("#cluster-type").as_deref(),
        Some("application")
    );
    let page = browser.text("main").unwrap_or_default();
    assert!(page.contains("v1beta1"), "{page}");
    assert!(page.contains("kubectl apply -f manifests/"), "{page}");
    assert!(page.contains("NAMESPACE"), "{page}");
    browser.save_screenshot_if_asked("hub-cluster-image.png");
    let run = browser.execute(
        "return document.getElementById('run-command').value;",
        json!([]),
    );
    assert_eq!(run, json!(format!("sealos run {host}/apps/hub-demo:v1")));
}
