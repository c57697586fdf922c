//! What sealos v4/v5 users type, through the binary: `images --json`/`-a`/`--digests`, `version --short`,
//! `run --single`, `--format json` on rmi, create and run, examples in every local command's `--help`, a
//! clear refusal of podman's `docker-dir` format by `load`; and habits of output: a timestamp-0 image's
//! creation time is unknown, sizes are in binary units, and no ANSI colour codes reach a pipe.

mod build_common;

use std::path::Path;
use std::process::Output;

use build_common::{sealos, write_context};

fn run(store: &Path, args: &[&str]) -> Output {
    sealos()
        .arg("--root")
        .arg(store)
        .args(args)
        .output()
        .expect("run sealos")
}

fn ok(store: &Path, args: &[&str]) -> String {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "sealos {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "no ANSI codes when output is not a terminal: sealos {args:?}"
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Builds `name` from a one-file context; `extra` are more build flags.
fn build(store: &Path, name: &str, extra: &[&str]) {
    let ctx = tempfile::tempdir().unwrap();
    // Letters that do not compress much: the image is over a KiB.
    let mut seed = 7u64;
    let noise: String = (0..3000)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            char::from(b'a' + ((seed >> 33) % 26) as u8)
        })
        .collect();
    write_context(
        ctx.path(),
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY a /a\nCMD [\"echo hello\"]\n",
            ),
            ("a", &noise),
        ],
    );
    let mut args = vec!["build", "-t", name];
    args.extend_from_slice(extra);
    args.push(ctx.path().to_str().unwrap());
    ok(store, &args);
}

#[test]
fn images_accepts_json_all_and_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    build(&store, "habits:v1", &[]);
    assert_eq!(
        ok(&store, &["images", "--json"]),
        ok(&store, &["images", "--format", "json"])
    );
    assert_eq!(ok(&store, &["images", "-a"]), ok(&store, &["images"]));
    assert_eq!(ok(&store, &["images", "--all"]), ok(&store, &["images"]));
    let digest = ok(&store, &["images", "-q"]).trim().to_string();
    let table = ok(&store, &["images", "--digests"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.contains("   DIGEST   "), "{header}");
    let row = lines.next().unwrap();
    assert!(row.contains(&format!("   {digest}   ")), "{table}");
    assert!(!ok(&store, &["images"]).contains("DIGEST"));
}

#[test]
fn version_short_prints_the_version_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let short = ok(tmp.path(), &["version", "--short"]);
    assert_eq!(short, format!("{}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn run_accepts_single_and_refuses_it_with_masters() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let missing = tmp.path().join("missing.tar");
    let image = format!("oci-archive:{}", missing.display());
    // Accepted: the run gets as far as the image, which does not exist.
    let out = run(
        &store,
        &[
            "run",
            "--single",
            "--clusters-dir",
            tmp.path().join("clusters").to_str().unwrap(),
            &image,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("missing.tar"), "{stderr}");
    let out = run(&store, &["run", "--single", "-m", "10.0.0.2", &image]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--single") && stderr.contains("--masters"),
        "{stderr}"
    );
}

#[test]
fn rmi_and_create_print_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    build(&store, "one:v1", &[]);
    let dir = tmp.path().join("created");
    let created: serde_json::Value = serde_json::from_str(&ok(
        &store,
        &[
            "create",
            "one:v1",
            "--dir",
            dir.to_str().unwrap(),
            "--format",
            "json",
        ],
    ))
    .expect("create --format json prints JSON");
    assert_eq!(created["image"], "docker.io/library/one:v1");
    assert_eq!(created["dir"], dir.to_str().unwrap());
    assert_eq!(created["commands"][0]["command"], "echo hello");

    let removed: serde_json::Value =
        serde_json::from_str(&ok(&store, &["rmi", "one:v1", "--format", "json"]))
            .expect("rmi --format json prints JSON");
    assert_eq!(removed["untagged"][0], "docker.io/library/one:v1");
    assert!(removed["deletedBlobs"].as_u64().unwrap() >= 3, "{removed}");
    assert!(removed["bytesFreed"].as_u64().unwrap() > 0, "{removed}");
}

#[test]
fn every_local_command_shows_examples_in_its_help() {
    let tmp = tempfile::tempdir().unwrap();
    for cmd in [
        "build",
        "images",
        "inspect",
        "version",
        "prune",
        "load",
        "save",
        "rmi",
        "run",
        "create",
        "tag",
        "reset",
        "merge",
        "completion",
    ] {
        for flag in ["-h", "--help"] {
            let help = ok(tmp.path(), &[cmd, flag]);
            assert!(
                help.contains("Example") && help.contains(&format!("  sealos {cmd} ")),
                "sealos {cmd} {flag} shows no example:\n{help}"
            );
        }
    }
    let run_help = ok(tmp.path(), &["run", "--help"]);
    assert!(run_help.contains("--single") && run_help.contains("--format"));
}

#[test]
fn load_names_the_docker_dir_format_and_the_formats_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    // What `podman save --format docker-dir` writes: containers/image's directory transport.
    let dir = tmp.path().join("image-dir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
        "{}",
    )
    .unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let out = run(
        &tmp.path().join("store"),
        &["load", "-i", dir.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "`dir:` directory",
        "docker-dir",
        "OCI archives",
        "OCI layout directories",
        "docker archives",
        "skopeo copy dir:",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}:\n{stderr}");
    }
    assert_eq!(stderr.lines().count(), 1, "one error line: {stderr}");
}

#[test]
fn a_timestamp_zero_image_has_an_unknown_creation_time_and_sizes_are_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    build(&store, "epoch:v1", &["--timestamp", "0"]);
    build(&store, "dated:v1", &["--timestamp", "1700000000"]);
    let table = ok(&store, &["images"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} in {table}"))
            .to_string()
    };
    let epoch = row("library/epoch");
    assert!(epoch.contains("   unknown   "), "{table}");
    assert!(!epoch.contains("ago"), "{table}");
    assert!(row("library/dated").contains(" years ago"), "{table}");
    // One unit system: binary units, never decimal ones.
    assert!(epoch.ends_with(" KiB"), "{table}");
    for decimal in ["kB", "MB", "GB"] {
        assert!(!table.contains(decimal), "{table}");
    }
    let inspect = ok(&store, &["inspect", "epoch:v1"]);
    assert!(inspect.contains("Created:     unknown"), "{inspect}");
    assert!(inspect.contains(" KiB ("), "{inspect}");
    let dated = ok(&store, &["inspect", "dated:v1"]);
    assert!(
        dated.contains("Created:     2023-11-14T22:13:20Z"),
        "{dated}"
    );
    let pruned = ok(&store, &["prune"]);
    assert!(pruned.contains("0 B freed"), "{pruned}");
}
