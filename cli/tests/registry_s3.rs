//! `sealos registry serve s3 --config FILE` end to end: the binary serves a bucket of a real S3-compatible
//! server (moto, `python3 -m moto.server`, installed by `.ci/run`), `sealos push` writes through it, a second
//! replica started on the same bucket serves the image to `sealos pull`.

#[path = "store_fixture.rs"]
mod store_fixture;

use std::path::Path;
use std::process::Command;

use store_fixture::{Env, make_image};
use testsupport::SealosRegistry;
use testsupport::moto::Moto;

/// The `sealos` binary under test.
fn sealos() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

#[test]
fn two_s3_replicas_from_a_config_file_serve_what_sealos_pushed() {
    let env = Env::new();
    let moto = Moto::start();
    moto.create_bucket("images");
    let config = env.path("s3.toml");
    std::fs::write(
        &config,
        format!(
            "bucket = \"images\"\nendpoint = \"{}\"\nprefix = \"hub\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let replica_a = SealosRegistry::start_s3(sealos(), &config);
    let replica_b = SealosRegistry::start_s3(sealos(), &config);
    let (addr_a, addr_b) = (replica_a.host(), replica_b.host());
    let pushed = make_image(&env.store(), "example.com/apps/hello:v1", "from s3");
    env.ok(&[
        "push",
        "--tls-verify=false",
        "example.com/apps/hello:v1",
        &format!("{addr_a}/apps/hello:v1"),
    ]);
    let other = env.path("other-store");
    let out = env.sealos_in(
        &other,
        &[
            "pull",
            "--tls-verify=false",
            &format!("{addr_b}/apps/hello:v1"),
        ],
    );
    assert!(
        out.status.success(),
        "pull: {}",
        store_fixture::stderr(&out)
    );
    let out = env.sealos_in(
        &other,
        &[
            "inspect",
            "--format",
            "json",
            &format!("{addr_b}/apps/hello:v1"),
        ],
    );
    assert!(out.status.success(), "{}", store_fixture::stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&pushed.digest.to_string()), "{text}");
    assert!(text.contains("from s3"), "{text}");
}

#[test]
fn s3_serve_without_a_bucket_explains_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", "serve", "s3", "-p", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bucket"), "{err}");
}
