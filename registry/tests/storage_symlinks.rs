//! The filesystem store over a tree it did not write (a cluster image's `registry/`), served on 127.0.0.1:
//! symlinks anywhere below its directory (a blob's `data` to a host file, a repository's `_layers`, a
//! repository, a tag's `current/link`, the `blobs` directory) are never followed, so nothing outside the
//! directory is served, listed or written; a blob that is a fifo or `/dev/zero` is refused, never read as empty;
//! with `verify_on_first_read` a blob whose bytes do not match its digest is not served. fsck reports the same
//! tree's symlinks without hashing what they point to, and gc refuses to run on it, deleting nothing.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use formats::digest::{Algorithm, Digest};
use formats::distribution::DistributionPaths;
use formats::manifest::{Descriptor, ImageManifest, RawManifest};
use formats::media_type;
use registry::server::{self, ServerConfig};
use registry::storage::FsStorage;
use registry::storage::fsck::{ProblemKind, fsck};
use registry::storage::gc::{GcOptions, gc};
use testsupport::distribution::RawTree;

/// What the host file outside the tree holds: no response may carry it or its sha256.
const SECRET: &[u8] = b"host secret: not for the registry\n";

/// A distribution tree at `root` holding `lib/app:v1` (a config and one layer), beside a directory `outside`
/// holding a host file `secret.txt`.
struct Tree {
    tmp: tempfile::TempDir,
    layer: Digest,
    config: Digest,
    manifest: RawManifest,
}

impl Tree {
    fn new() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret.txt"), SECRET).unwrap();
        let layout = RawTree::new(tmp.path().join("root"));
        let blob = |bytes: &[u8], media: &str| {
            let (digest, size) = layout.write_blob(bytes, None, None).unwrap();
            layout.link_layer("lib/app", &digest).unwrap();
            Descriptor::new(media, digest, size)
        };
        let config = blob(
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
            media_type::OCI_CONFIG,
        );
        let layer = blob(&[7u8; 3000], media_type::OCI_LAYER_TAR);
        let m = ImageManifest::new(config.clone(), vec![layer.clone()]);
        let manifest = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
        layout
            .put_manifest("lib/app", &manifest, Some("v1"))
            .unwrap();
        Tree {
            tmp,
            layer: layer.digest,
            config: config.digest,
            manifest,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    fn paths(&self) -> DistributionPaths {
        DistributionPaths::new(self.root())
    }

    /// Replaces `path` (a file or directory in the tree) with a symlink to `target`.
    fn replace_with_symlink(&self, path: &Path, target: &Path) {
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    /// A directory outside the tree laid out like a repository linking the layer and tagging the manifest.
    fn outside_repository(&self, name: &str) -> PathBuf {
        let dir = self.outside().join(name);
        let link = |rel: String, d: &Digest| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, d.to_string()).unwrap();
        };
        let m = &self.manifest.digest;
        link(
            format!("_layers/sha256/{}/link", self.layer.hex()),
            &self.layer,
        );
        link(format!("_manifests/revisions/sha256/{}/link", m.hex()), m);
        link("_manifests/tags/v1/current/link".into(), m);
        dir
    }

    /// Every file under the outside directory, with its content.
    fn outside_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.outside()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((path.clone(), std::fs::read(path).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

/// Our server over `root` on a free port of 127.0.0.1; stopped on drop.
struct Registry {
    base: String,
    http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Registry {
    async fn start(root: &Path, verify: bool) -> Registry {
        let storage = Arc::new(FsStorage::new(root).verify_on_first_read(verify));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = server::router(storage, ServerConfig::default());
        tokio::spawn(server::serve(listener, router, async move {
            let _ = rx.await;
        }));
        Registry {
            base: format!("http://{addr}"),
            // A fifo opened without O_NONBLOCK would hang the request: fail instead of hanging the test.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            shutdown: Some(tx),
        }
    }

    /// `METHOD /v2/PATH` with `body`; the status and the body as text.
    async fn call(&self, method: reqwest::Method, path: &str, body: Vec<u8>) -> (u16, String) {
        let resp = self
            .http
            .request(method, format!("{}/v2/{path}", self.base))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            String::from_utf8_lossy(&resp.bytes().await.unwrap()).into_owned(),
        )
    }

    async fn get(&self, path: &str) -> (u16, String) {
        self.call(reqwest::Method::GET, path, Vec::new()).await
    }

    async fn head(&self, path: &str) -> u16 {
        self.call(reqwest::Method::HEAD, path, Vec::new()).await.0
    }

    /// Pushes `bytes` as a blob of `repo` (POST, then one PUT); the PUT's status.
    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> u16 {
        let resp = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() != 202 {
            return resp.status().as_u16();
        }
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let digest = Digest::sha256_of(bytes);
        self.http
            .put(format!("{url}{sep}digest={digest}"))
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts `text` carries neither the host file nor its digest.
fn leaks_nothing(text: &str) {
    let hash = Digest::sha256_of(SECRET);
    assert!(
        !text.contains("host secret") && !text.contains(hash.hex()),
        "the host file or its sha256 leaked: {text}"
    );
}

#[tokio::test]
async fn a_blob_whose_data_is_a_symlink_to_a_host_file_is_not_served_sized_or_hashed() {
    let tree = Tree::new();
    let data = tree.paths().blob_data(&tree.layer);
    tree.replace_with_symlink(&data, &tree.outside().join("secret.txt"));
    let registry = Registry::start(&tree.root(), false).await;
    let blob = format!("lib/app/blobs/{}", tree.layer);
    let (status, body) = registry.get(&blob).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("a symlink"), "{body}");
    leaks_nothing(&body);
    assert_eq!(registry.head(&blob).await, 500);
    // Other blobs of the repository are served as ever.
    let (status, _) = registry
        .get(&format!("lib/app/blobs/{}", tree.config))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn symlinked_layer_links_repositories_and_tags_are_not_followed() {
    let tree = Tree::new();
    let paths = tree.paths();
    // `lib/other` has manifests of its own, but its `_layers` is a host directory linking the layer.
    std::fs::create_dir_all(paths.repository_dir("lib/other").join("_manifests")).unwrap();
    let layers = tree.outside_repository("other").join("_layers");
    tree.replace_with_symlink(&paths.repository_dir("lib/other").join("_layers"), &layers);
    // `lib/evil` is a host directory laid out as a repository.
    let evil = tree.outside_repository("evil");
    tree.replace_with_symlink(&paths.repository_dir("lib/evil"), &evil);
    // Tag `host` of `lib/app` is a host file.
    let current = paths.tag_current_link("lib/app", "host");
    tree.replace_with_symlink(&current, &tree.outside().join("secret.txt"));
    let registry = Registry::start(&tree.root(), false).await;

    let (status, body) = registry
        .get(&format!("lib/other/blobs/{}", tree.layer))
        .await;
    assert_ne!(
        status, 200,
        "a blob linked through a symlinked _layers was served"
    );
    leaks_nothing(&body);
    for path in [
        "lib/evil/tags/list".to_string(),
        "lib/evil/manifests/v1".to_string(),
        format!("lib/evil/blobs/{}", tree.layer),
    ] {
        let (status, body) = registry.get(&path).await;
        assert_ne!(
            status, 200,
            "{path} answered through a symlinked repository: {body}"
        );
    }
    let (status, body) = registry.get("lib/app/manifests/host").await;
    assert_ne!(status, 200, "{body}");
    leaks_nothing(&body);
    let (status, body) = registry.get("lib/app/tags/list").await;
    assert_eq!(
        (status, body.contains("\"v1\""), body.contains("host")),
        (200, true, false),
        "{body}"
    );
    let (status, body) = registry.get("_catalog").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("lib/app") && !body.contains("lib/evil"),
        "{body}"
    );
}

#[tokio::test]
async fn pushes_through_symlinked_directories_are_refused_and_write_nothing_outside() {
    let tree = Tree::new();
    let paths = tree.paths();
    let evil = tree.outside_repository("evil");
    tree.replace_with_symlink(&paths.repository_dir("lib/evil"), &evil);
    std::fs::create_dir_all(paths.repository_dir("lib/other").join("_manifests")).unwrap();
    let layers = tree.outside_repository("other").join("_layers");
    tree.replace_with_symlink(&paths.repository_dir("lib/other").join("_layers"), &layers);
    let before = tree.outside_files();
    let registry = Registry::start(&tree.root(), false).await;

    assert_ne!(
        registry
            .push_blob("lib/evil", b"pushed into a host dir")
            .await,
        201
    );
    assert_ne!(
        registry
            .push_blob("lib/other", b"linked into a host dir")
            .await,
        201
    );
    assert_eq!(
        tree.outside_files(),
        before,
        "a push wrote outside the registry"
    );
    assert!(
        !evil.join("_uploads").exists(),
        "an upload session was created in the host directory"
    );

    // With the whole `blobs` directory a symlink, no blob is read or written through it.
    let blobs = tree.outside().join("blobs");
    std::fs::rename(paths.blobs_dir(), &blobs).unwrap();
    tree.replace_with_symlink(&paths.blobs_dir(), &blobs);
    let before = tree.outside_files();
    let (status, _) = registry.get(&format!("lib/app/blobs/{}", tree.layer)).await;
    assert_ne!(status, 200);
    assert_ne!(registry.push_blob("lib/app", b"a new blob").await, 201);
    let manifest = registry
        .http
        .put(format!("{}/v2/lib/app/manifests/v2", registry.base))
        .header("content-type", media_type::OCI_MANIFEST)
        .body(tree.manifest.bytes.clone())
        .send()
        .await
        .unwrap();
    assert_ne!(manifest.status().as_u16(), 201);
    assert_eq!(
        tree.outside_files(),
        before,
        "a push wrote through the symlinked blobs directory"
    );
}

#[tokio::test]
async fn a_blob_that_is_a_fifo_or_dev_zero_is_refused_never_read_as_empty() {
    let tree = Tree::new();
    let paths = tree.paths();
    let data = paths.blob_data(&tree.layer);
    std::fs::remove_file(&data).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&data)
        .status()
        .unwrap();
    assert!(made.success());
    tree.replace_with_symlink(&paths.blob_data(&tree.config), Path::new("/dev/zero"));
    let registry = Registry::start(&tree.root(), false).await;

    let fifo = format!("lib/app/blobs/{}", tree.layer);
    let (status, body) = registry.get(&fifo).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("not a regular file"), "{body}");
    assert_eq!(registry.head(&fifo).await, 500);
    let (status, body) = registry
        .get(&format!("lib/app/blobs/{}", tree.config))
        .await;
    assert_eq!(status, 500, "/dev/zero was served: {body}");
}

#[tokio::test]
async fn with_verify_on_first_read_a_blob_that_does_not_match_its_digest_is_not_served() {
    let tree = Tree::new();
    let data = tree.paths().blob_data(&tree.layer);
    let good = std::fs::read(&data).unwrap();
    let mut bad = good.clone();
    bad[1234] ^= 0xff;
    std::fs::write(&data, &bad).unwrap();
    let registry = Registry::start(&tree.root(), true).await;

    let blob = format!("lib/app/blobs/{}", tree.layer);
    let (status, body) = registry.get(&blob).await;
    assert_eq!(status, 500, "a corrupt blob was served");
    assert!(body.contains("does not match its digest"), "{body}");
    assert!(
        !body.contains(Digest::sha256_of(&bad).hex()),
        "the message prints what the file hashes to: {body}"
    );
    let ranged = registry
        .http
        .get(format!("{}/v2/{blob}", registry.base))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.status().as_u16(),
        500,
        "a range of a corrupt blob was served"
    );

    // Sound blobs and manifests are served, again and again.
    for _ in 0..2 {
        let (status, _) = registry
            .get(&format!("lib/app/blobs/{}", tree.config))
            .await;
        assert_eq!(status, 200);
        let (status, _) = registry.get("lib/app/manifests/v1").await;
        assert_eq!(status, 200);
    }
    // A corrupt blob is refused from memory until its file changes; repaired (another file renamed in place),
    // it is hashed again and served.
    let (status, _) = registry.get(&blob).await;
    assert_eq!(status, 500);
    let repaired = data.with_file_name("repaired");
    std::fs::write(&repaired, &good).unwrap();
    std::fs::rename(&repaired, &data).unwrap();
    let resp = registry
        .http
        .get(format!("{}/v2/{blob}", registry.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.bytes().await.unwrap() == good);
}

/// The tree with every kind of hostile symlink: a blob's data to a host file, a `_layers` and a repository to
/// host directories, and a `blobs/sha512` directory to a host directory holding an unreferenced "blob".
fn hostile_tree() -> Tree {
    let tree = Tree::new();
    let paths = tree.paths();
    tree.replace_with_symlink(
        &paths.blob_data(&tree.layer),
        &tree.outside().join("secret.txt"),
    );
    std::fs::create_dir_all(paths.repository_dir("lib/other").join("_manifests")).unwrap();
    let layers = tree.outside_repository("other").join("_layers");
    tree.replace_with_symlink(&paths.repository_dir("lib/other").join("_layers"), &layers);
    let evil = tree.outside_repository("evil");
    tree.replace_with_symlink(&paths.repository_dir("lib/evil"), &evil);
    let unreferenced = Digest::of(Algorithm::Sha512, b"an unreferenced blob");
    let outside_blob = tree
        .outside()
        .join("sha512")
        .join(&unreferenced.hex()[..2])
        .join(unreferenced.hex());
    std::fs::create_dir_all(&outside_blob).unwrap();
    std::fs::write(outside_blob.join("data"), b"an unreferenced blob").unwrap();
    tree.replace_with_symlink(
        &paths.blobs_dir().join("sha512"),
        &tree.outside().join("sha512"),
    );
    tree
}

#[tokio::test]
async fn fsck_reports_symlinks_without_hashing_what_they_point_to() {
    let tree = hostile_tree();
    let report = fsck(&tree.root()).await.unwrap();
    let paths = tree.paths();
    for symlinked in [
        paths.blob_data(&tree.layer),
        paths.repository_dir("lib/other").join("_layers"),
        paths.repository_dir("lib/evil"),
        paths.blobs_dir().join("sha512"),
    ] {
        assert!(
            report.problems.iter().any(|p| p.path == symlinked
                && p.kind == ProblemKind::UnexpectedEntry
                && p.message.contains("a symlink")),
            "{} not reported: {:#?}",
            symlinked.display(),
            report.problems
        );
    }
    for problem in &report.problems {
        leaks_nothing(&problem.to_string());
    }
    assert_eq!(
        report.repositories, 2,
        "lib/evil is not a repository of the tree"
    );
}

#[tokio::test]
async fn gc_refuses_a_tree_with_symlinks_and_deletes_nothing_outside_it() {
    let tree = hostile_tree();
    let before = tree.outside_files();
    let options = GcOptions {
        grace_period: Duration::ZERO,
        delete_untagged: true,
        ..GcOptions::default()
    };
    let err = gc(&tree.root(), &options).await.unwrap_err().to_string();
    assert!(
        err.contains("a symlink") && err.contains("gc refuses to run"),
        "{err}"
    );
    assert_eq!(
        tree.outside_files(),
        before,
        "gc changed files outside the tree"
    );
    assert!(tree.paths().blob_data(&tree.config).is_file());
}
