//! An S3 bucket as the destination of `sealos registry save` and `sync` (the same store `registry serve s3`
//! serves): images saved from Debian's `docker-registry` into a bucket of a real S3-compatible server (moto,
//! installed by `.ci/run`), then served by `sealos registry serve s3 --config` on that bucket and read back
//! by `skopeo` with their original digests; a directory synced and imported, and an image copied, into a bucket.

mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use formats::digest::Digest;
use testsupport::DockerRegistry;
use testsupport::moto::Moto;
use upstream::{client, push_image_layers, push_multi_arch, skopeo};

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// `sealos registry serve s3 --config CONFIG` on a free port of 127.0.0.1, with its `host:port`.
fn serve(config: &Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", "serve", "s3", "--config"])
        .arg(config)
        .args(["-p", "0", "--address", "127.0.0.1", "--disable-logging"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, addr)
}

/// Deterministic bytes that do not compress (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The digest `skopeo inspect` reports for `image` (a `docker://` reference over plain HTTP).
fn inspected_digest(image: &str) -> Digest {
    let out = skopeo(&["inspect", "--tls-verify=false", "--raw", image]);
    Digest::sha256_of(&out)
}

/// The JSON summary of `sealos registry save|sync ... --format json`.
fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn save_into_a_bucket_then_serve_s3_gives_skopeo_the_original_digests() {
    let env = Env::new();
    let moto = Moto::start();
    moto.create_bucket("images");
    let source = DockerRegistry::start_fresh();
    let host = source.host();
    // A layer over one multipart part (8 MiB) and an index with two platforms.
    let big = noise(10 << 20, 3);
    let (app, _) = push_image_layers(
        &client(),
        &host,
        "team/app",
        Some("v1"),
        "amd64",
        &[big.clone(), b"small layer".to_vec()],
    );
    let (index, amd, arm) = push_multi_arch(&host, "lib/multi", "v2");
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
    let first = summary(&env.ok(&save));
    assert_eq!(
        (first["copied"].as_u64(), first["failed"].as_u64()),
        (Some(2), Some(0)),
        "{first}"
    );
    assert!(
        first["bytes"].as_u64().unwrap() >= big.len() as u64,
        "{first}"
    );

    let (_server, addr) = serve(&config);
    assert_eq!(
        inspected_digest(&format!("docker://{addr}/team/app:v1")),
        app
    );
    assert_eq!(
        inspected_digest(&format!("docker://{addr}/lib/multi:v2")),
        index
    );
    for child in [&amd, &arm] {
        assert_eq!(
            inspected_digest(&format!("docker://{addr}/lib/multi@{child}")),
            *child
        );
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
    let env = Env::new();
    let moto = Moto::start();
    moto.create_bucket("images");
    let source = DockerRegistry::start_fresh();
    let host = source.host();
    let (app, _) = push_image_layers(
        &client(),
        &host,
        "team/app",
        Some("v1"),
        "amd64",
        &[noise(3 << 20, 5)],
    );
    let (index, _, _) = push_multi_arch(&host, "lib/multi", "v2");
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
    let synced = summary(&env.ok(&sync));
    assert_eq!(
        (synced["copied"].as_u64(), synced["failed"].as_u64()),
        (Some(2), Some(0)),
        "{synced}"
    );
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

    let (_server, addr) = serve(Path::new(config));
    assert_eq!(
        inspected_digest(&format!("docker://{addr}/team/app:v1")),
        app
    );
    assert_eq!(
        inspected_digest(&format!("docker://{addr}/lib/multi:v2")),
        index
    );
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
