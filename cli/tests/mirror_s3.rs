//! An S3 bucket as the destination of `sealos registry save` and `sync` (the same store `registry serve s3`
//! serves): images saved from Debian's `docker-registry` into a bucket of a real S3-compatible server (moto,
//! installed by `.ci/run`), then served by `sealos registry serve s3 --config` on that bucket and read back
//! by `skopeo` with their original digests; a directory synced and imported, and an image copied, into a bucket.

mod upstream;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use formats::digest::Digest;
use testsupport::images::noise;
use testsupport::moto::Moto;
use testsupport::{DockerRegistry, SealosRegistry};
use upstream::{client, push_image_layers, push_multi_arch, skopeo};

/// A scratch directory with a private store and an empty registries.conf.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("registries.conf"), "").unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sealos ARGS --tls-verify=false`, which must succeed; its output.
    fn ok(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args(args)
            .arg("--tls-verify=false")
            .arg("--registries-conf")
            .arg(self.path("registries.conf"))
            .env("SEALOS_ROOT", self.path("root"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sealos {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// An S3 settings file for bucket `images` under `prefix` at `moto`.
    fn s3_config(&self, moto: &Moto, prefix: &str) -> PathBuf {
        let path = self.path(&format!("s3-{prefix}.toml"));
        std::fs::write(
            &path,
            format!(
                "bucket = \"images\"\nendpoint = \"{}\"\nprefix = \"{prefix}\"\n\
                 access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
                moto.endpoint()
            ),
        )
        .unwrap();
        path
    }
}

/// Asserts that the registry at `addr` serves `reference` (`REPO:TAG` or `REPO@DIGEST`) with `digest`, as
/// `skopeo inspect` over plain HTTP sees it.
fn assert_serves(addr: &str, reference: &str, digest: &Digest) {
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{addr}/{reference}"),
    ]);
    assert_eq!(Digest::sha256_of(&out), *digest, "{addr}/{reference}");
}

/// The JSON summary of `sealos registry save|sync ... --format json`.
fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The JSON summary of a `save|sync` that copied `images` images and failed none (asserted).
fn copied_all(out: &Output, images: u64) -> serde_json::Value {
    let v = summary(out);
    assert_eq!(
        (v["copied"].as_u64(), v["failed"].as_u64()),
        (Some(images), Some(0)),
        "{v}"
    );
    v
}

/// The `sealos` binary under test.
fn sealos() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

/// A scratch environment, moto with an empty bucket `images`, and an empty Debian `docker-registry` to save
/// images from.
fn start() -> (Env, Moto, DockerRegistry) {
    let moto = Moto::start();
    moto.create_bucket("images");
    (Env::new(), moto, DockerRegistry::start_fresh())
}

/// Pushes `team/app:v1` (amd64, of `layers`) and the two-platform index `lib/multi:v2` to `host`; the app
/// manifest's digest, and the index's with its amd64 and arm64 manifests'.
fn push_images(host: &str, layers: &[Vec<u8>]) -> (Digest, (Digest, Digest, Digest)) {
    let (app, _) = push_image_layers(&client(), host, "team/app", Some("v1"), "amd64", layers);
    (app, push_multi_arch(host, "lib/multi", "v2"))
}

#[test]
fn save_into_a_bucket_then_serve_s3_gives_skopeo_the_original_digests() {
    let (env, moto, source) = start();
    let host = source.host();
    // A layer over one multipart part (8 MiB) and an index with two platforms.
    let big = noise(10 << 20, 3);
    let (app, (index, amd, arm)) = push_images(&host, &[big.clone(), b"small layer".to_vec()]);
    let config = env.s3_config(&moto, "hub");
    let images = format!("{host}/team/app:v1,{host}/lib/multi:v2");
    let save = [
        "registry",
        "save",
        "--images",
        images.as_str(),
        "--all",
        "--registry-dir",
        "s3://images/hub",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ];
    let first = copied_all(&env.ok(&save), 2);
    assert!(
        first["bytes"].as_u64().unwrap() >= big.len() as u64,
        "{first}"
    );

    let server = SealosRegistry::start_s3(sealos(), &config);
    let addr = server.host();
    assert_serves(addr, "team/app:v1", &app);
    assert_serves(addr, "lib/multi:v2", &index);
    for child in [&amd, &arm] {
        assert_serves(addr, &format!("lib/multi@{child}"), child);
    }
    // skopeo copies the image out of the bucket as it is (every blob verified), the big layer byte for byte.
    let out = env.path("copied");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{addr}/team/app:v1"),
        &format!("dir:{}", out.display()),
    ]);
    assert_eq!(
        Digest::sha256_of(&std::fs::read(out.join("manifest.json")).unwrap()),
        app
    );
    let layer = out.join(Digest::sha256_of(&big).hex());
    assert!(
        std::fs::read(&layer).unwrap() == big,
        "the layer read back differs"
    );

    // A second save finds everything there and transfers nothing.
    let again = summary(&env.ok(&save));
    assert_eq!(
        (again["skipped"].as_u64(), again["bytes"].as_u64()),
        (Some(2), Some(0)),
        "{again}"
    );
}

#[test]
fn sync_of_a_directory_into_a_bucket_keeps_every_tag_blob_and_digest() {
    let (env, moto, source) = start();
    let host = source.host();
    let (app, (index, _, _)) = push_images(&host, &[noise(3 << 20, 5)]);
    let dir = env.path("saved");
    let images = format!("{host}/team/app:v1,{host}/lib/multi:v2");
    env.ok(&[
        "registry",
        "save",
        "--images",
        images.as_str(),
        "--all",
        "--registry-dir",
        dir.to_str().unwrap(),
    ]);
    let config = env.s3_config(&moto, "mirror");
    let config = config.to_str().unwrap();
    let sync = [
        "registry",
        "sync",
        dir.to_str().unwrap(),
        "s3://images/mirror",
        "--all",
        "--config",
        config,
        "--format",
        "json",
    ];
    copied_all(&env.ok(&sync), 2);
    // The bucket holds what the directory holds: the same inventory, read through the store.
    let inventory = |location: &str| -> serde_json::Value {
        let out = env.ok(&["registry", "inventory", location, "--config", config]);
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for volatile in ["source", "created"] {
            v.as_object_mut().unwrap().remove(volatile);
        }
        v
    };
    let of_dir = inventory(dir.to_str().unwrap());
    assert_eq!(inventory("s3://images/mirror"), of_dir);
    assert!(
        of_dir.to_string().contains(&app.to_string()),
        "the inventory misses the image: {of_dir}"
    );

    let server = SealosRegistry::start_s3(sealos(), Path::new(config));
    let addr = server.host();
    assert_serves(addr, "team/app:v1", &app);
    assert_serves(addr, "lib/multi:v2", &index);
    // Synced again: nothing to do.
    let again = summary(&env.ok(&sync));
    assert_eq!(again["skipped"].as_u64(), Some(2), "{again}");

    // The directory imported as a whole delivery, and one image copied, into other prefixes of the bucket.
    env.ok(&[
        "registry",
        "import",
        dir.to_str().unwrap(),
        "s3://images/imported",
        "--config",
        config,
    ]);
    assert_eq!(inventory("s3://images/imported"), of_dir);
    let image = format!("{host}/team/app:v1");
    env.ok(&[
        "registry",
        "copy",
        &image,
        "s3://images/copied",
        "--config",
        config,
    ]);
    let copied = inventory("s3://images/copied");
    assert_eq!(
        copied["repositories"]["team/app"]["tags"]["v1"].as_str(),
        Some(app.to_string().as_str()),
        "{copied}"
    );
}
