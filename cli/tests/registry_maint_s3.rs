//! `sealos registry fsck --config FILE` and `sealos registry gc --config FILE` on a bucket of a real
//! S3-compatible server (moto on 127.0.0.1, installed by `.ci/run`), with the config file `registry serve s3`
//! takes: fsck finds the bucket clean, then a changed blob; gc's dry run lists the unreferenced blob, the real
//! run removes it and nothing an image uses.

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageManifest, RawManifest};
use formats::media_type;
use registry::storage::{S3Config, S3Storage, Storage};
use testsupport::moto::Moto;

const BUCKET: &str = "images";
const PREFIX: &str = "hub";

fn sealos(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry"])
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn blob(store: &S3Storage, repo: &str, media: &str, bytes: &[u8]) -> Descriptor {
    let digest = Digest::sha256_of(bytes);
    store
        .put_blob_bytes(&digest, Bytes::copy_from_slice(bytes))
        .await
        .unwrap();
    store.link_layer(repo, &digest).await.unwrap();
    Descriptor::new(media, digest, bytes.len() as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn fsck_and_gc_run_on_the_bucket_a_serve_config_names() {
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("s3.toml");
    std::fs::write(
        &config,
        format!(
            "bucket = \"{BUCKET}\"\nendpoint = \"{}\"\nprefix = \"{PREFIX}\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let store = S3Storage::new(&S3Config {
        bucket: BUCKET.into(),
        endpoint: Some(moto.endpoint()),
        region: "us-east-1".into(),
        prefix: PREFIX.into(),
        redirect: false,
        credentials: Some(("test".into(), "test".into())),
    })
    .unwrap();
    let repo = "apps/hello";
    let config_blob = blob(
        &store,
        repo,
        media_type::OCI_CONFIG,
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    )
    .await;
    let layer = blob(&store, repo, media_type::OCI_LAYER_TAR, b"from s3").await;
    let manifest = ImageManifest::new(config_blob, vec![layer.clone()]);
    let manifest = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    store
        .put_blob_bytes(&manifest.digest, Bytes::from(manifest.bytes.clone()))
        .await
        .unwrap();
    store.link_revision(repo, &manifest.digest).await.unwrap();
    store.set_tag(repo, "v1", &manifest.digest).await.unwrap();
    let orphan = blob(&store, repo, media_type::OCI_LAYER_TAR, b"nobody uses this").await;

    let out = sealos(&["fsck"], &config);
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.starts_with("checked 4 blobs (")
            && report.contains("1 repository")
            && report.contains("0 problems"),
        "{report}"
    );

    let out = sealos(&["gc", "--dry-run", "--grace-period", "0s"], &config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("would remove blob {} (16 bytes)", orphan.digest)),
        "{}",
        text(&out)
    );
    assert!(store.blob_size(&orphan.digest).await.unwrap().is_some());

    let out = sealos(&["gc", "--grace-period", "0s", "--format", "json"], &config);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["blobs_removed"],
        serde_json::json!([{"digest": orphan.digest.to_string(), "size": 16}]),
        "{report:#}"
    );
    assert_eq!(report["layer_links_removed"].as_array().unwrap().len(), 1);
    assert!(store.blob_size(&orphan.digest).await.unwrap().is_none());
    for d in [&manifest.digest, &layer.digest] {
        assert!(store.blob_size(d).await.unwrap().is_some(), "{d}");
    }
    let out = sealos(&["fsck"], &config);
    assert!(out.status.success(), "{}", text(&out));

    // A layer changed behind the registry's back: fsck names the object and fails.
    let key = format!(
        "{PREFIX}/docker/registry/v2/blobs/sha256/{}/{}/data",
        &layer.digest.hex()[..2],
        layer.digest.hex()
    );
    moto.put_object(BUCKET, &key, b"from S3");
    let out = sealos(&["fsck"], &config);
    assert!(!out.status.success());
    let report = text(&out);
    assert!(
        report.contains(&format!(
            "corrupt blob: s3://{BUCKET}/{key}: content hashes to"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "1 problem in bucket `{BUCKET}` (prefix `{PREFIX}`)"
        )),
        "{report}"
    );
}

#[test]
fn gc_and_fsck_need_a_directory_or_a_config_file_and_say_so() {
    for command in ["gc", "fsck"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args(["registry", command])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("<DIR>"), "{err}");
        let help = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args(["registry", command, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains(&format!("sealos registry {command} --config s3.toml")),
            "{help}"
        );
    }
}
