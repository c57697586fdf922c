//! Real clients against `registry serve` on 127.0.0.1, with and without `--htpasswd`: `buildah push`/`pull`
//! (`--storage-driver vfs --tls-verify=false`, a tiny image from `buildah from scratch`) with and without
//! `--creds`, and `skopeo copy` in and out with `--dest-creds`/`--src-creds`. Each test fails naming
//! buildah or skopeo when it is missing.

mod auth_common;

use std::path::Path;

use auth_common::*;
use formats::digest::Digest;

/// `buildah --storage-driver vfs --root DIR/root --runroot DIR/runroot ARGS`.
fn buildah_args(storage: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--storage-driver".to_string(),
        "vfs".to_string(),
        "--root".to_string(),
        storage.join("root").display().to_string(),
        "--runroot".to_string(),
        storage.join("runroot").display().to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

async fn buildah(storage: &Path, args: &[&str]) -> std::process::Output {
    run("buildah", buildah_args(storage, args)).await
}

async fn buildah_ok(storage: &Path, args: &[&str]) -> String {
    let out = buildah(storage, args).await;
    assert!(
        out.status.success(),
        "buildah {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Commits a scratch image holding `/hello.txt` = `content` as `localhost/tiny:latest` in `storage`.
async fn tiny_image(storage: &Path, content: &str) {
    let file = storage.join("hello.txt");
    std::fs::create_dir_all(storage).unwrap();
    std::fs::write(&file, content).unwrap();
    let ctr = buildah_ok(storage, &["from", "scratch"])
        .await
        .trim()
        .to_string();
    buildah_ok(
        storage,
        &["copy", &ctr, file.to_str().unwrap(), "/hello.txt"],
    )
    .await;
    buildah_ok(
        storage,
        &["config", "--label", &format!("content={content}"), &ctr],
    )
    .await;
    buildah_ok(storage, &["commit", &ctr, "localhost/tiny:latest"]).await;
    buildah_ok(storage, &["rm", &ctr]).await;
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

/// The `content` label of an image in a buildah storage.
async fn label_of(storage: &Path, image: &str) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&buildah_ok(storage, &["inspect", "--type", "image", image]).await)
            .unwrap();
    info["OCIv1"]["config"]["Labels"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn buildah_push_and_pull_need_creds_when_htpasswd_is_on() {
    let s = start(Some(auth_config(false)), None).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_image(&src, "with creds").await;
    let dest = format!("docker://{}/buildah/tiny:v1", s.host);

    let refused = buildah(
        &src,
        &["push", "--tls-verify=false", "localhost/tiny:latest", &dest],
    )
    .await;
    assert!(!refused.status.success(), "push without --creds succeeded");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("authentication required"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(s.storage.list_repositories().await.unwrap().is_empty());

    buildah_ok(
        &src,
        &[
            "push",
            "--tls-verify=false",
            "--creds",
            &creds(),
            "localhost/tiny:latest",
            &dest,
        ],
    )
    .await;
    assert_eq!(
        s.storage.list_tags("buildah/tiny").await.unwrap(),
        vec!["v1"]
    );

    let dst = dir.path().join("dst");
    let image = format!("{}/buildah/tiny:v1", s.host);
    let refused = buildah(&dst, &["pull", "--tls-verify=false", &image]).await;
    assert!(!refused.status.success(), "pull without --creds succeeded");
    buildah_ok(
        &dst,
        &["pull", "--tls-verify=false", "--creds", &creds(), &image],
    )
    .await;
    assert_eq!(label_of(&dst, &image).await, "with creds");

    // A fresh storage, so nothing is served from a local copy.
    let wrong = buildah(
        &dir.path().join("dst-wrong"),
        &[
            "pull",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:nope"),
            &image,
        ],
    )
    .await;
    assert!(
        !wrong.status.success(),
        "pull with a wrong password succeeded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn buildah_pulls_anonymously_with_anonymous_pull_but_cannot_push() {
    let s = start(Some(auth_config(true)), None).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_image(&src, "public").await;
    let dest = format!("docker://{}/pub/tiny:v1", s.host);
    buildah_ok(
        &src,
        &[
            "push",
            "--tls-verify=false",
            "--creds",
            &creds(),
            "localhost/tiny:latest",
            &dest,
        ],
    )
    .await;
    let dst = dir.path().join("dst");
    let image = format!("{}/pub/tiny:v1", s.host);
    buildah_ok(&dst, &["pull", "--tls-verify=false", &image]).await;
    assert_eq!(label_of(&dst, &image).await, "public");
    let refused = buildah(
        &src,
        &[
            "push",
            "--tls-verify=false",
            "localhost/tiny:latest",
            &format!("docker://{}/pub/tiny:v2", s.host),
        ],
    )
    .await;
    assert!(!refused.status.success(), "anonymous push succeeded");
    assert_eq!(s.storage.list_tags("pub/tiny").await.unwrap(), vec!["v1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn buildah_pushes_and_pulls_without_creds_when_auth_is_off() {
    let s = start(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_image(&src, "open").await;
    buildah_ok(
        &src,
        &[
            "push",
            "--tls-verify=false",
            "localhost/tiny:latest",
            &format!("docker://{}/open/tiny:v1", s.host),
        ],
    )
    .await;
    let dst = dir.path().join("dst");
    let image = format!("{}/open/tiny:v1", s.host);
    buildah_ok(&dst, &["pull", "--tls-verify=false", &image]).await;
    assert_eq!(label_of(&dst, &image).await, "open");
}

/// Writes `image` as an OCI layout at `dir` tagged `v1`.
fn write_oci_layout(dir: &Path, image: &TestImage) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for blob in [&image.layer, &image.config, &image.manifest] {
        std::fs::write(blobs.join(Digest::sha256_of(blob).hex()), blob).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            image.digest(),
            image.manifest.len()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_in_and_out_with_creds_and_is_refused_without() {
    let s = start(Some(auth_config(false)), None).await;
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::new("skopeo");
    let layout = dir.path().join("in");
    write_oci_layout(&layout, &image);
    let src = format!("oci:{}:v1", layout.display());
    let remote = format!("docker://{}/skopeo/app:v1", s.host);

    let refused = run(
        "skopeo",
        vec![
            "copy".into(),
            "--dest-tls-verify=false".into(),
            src.clone(),
            remote.clone(),
        ],
    )
    .await;
    assert!(
        !refused.status.success(),
        "copy without --dest-creds succeeded"
    );
    assert!(s.storage.list_repositories().await.unwrap().is_empty());

    run_ok(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds(),
            &src,
            &remote,
        ],
    )
    .await;
    let pushed = s
        .storage
        .resolve_tag("skopeo/app", "v1")
        .await
        .unwrap()
        .expect("skopeo pushed the tag");

    let out = dir.path().join("out");
    let refused = run(
        "skopeo",
        vec![
            "copy".into(),
            "--src-tls-verify=false".into(),
            remote.clone(),
            format!("oci:{}:v1", out.display()),
        ],
    )
    .await;
    assert!(
        !refused.status.success(),
        "copy out without --src-creds succeeded"
    );
    run_ok(
        "skopeo",
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds(),
            &remote,
            &format!("oci:{}:v1", out.display()),
        ],
    )
    .await;
    // skopeo may compress the layer on the way in; whatever it pushed comes back out unchanged.
    let blobs = out.join("blobs/sha256");
    assert!(
        blobs.join(pushed.hex()).is_file(),
        "manifest {pushed} copied out"
    );
    let config = std::fs::read(blobs.join(Digest::sha256_of(&image.config).hex())).unwrap();
    assert_eq!(config, image.config);
}
