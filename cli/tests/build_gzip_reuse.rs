//! `sealos build` with the default gzip: a rebuild after a small edit copies the unchanged compressed blocks of
//! the step's previous layer, and the blob is byte for byte what a build from scratch writes.

mod build_common;

use std::fs;
use std::path::Path;

use build_common::*;

/// Twelve files of about 1 MiB of varied, compressible text: a 12 MiB `COPY . .` layer of about a dozen blocks.
fn big_context(dir: &Path) {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut files = vec![(
        "Kubefile".to_string(),
        "FROM scratch\nCOPY . .\n".to_string(),
    )];
    for f in 0..12 {
        let mut text = String::new();
        while text.len() < 1 << 20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!(
                "key-{}: value {} of file {f}\n",
                x % 10_007,
                x >> 40
            ));
        }
        files.push((format!("manifests/m{f:02}.yaml"), text));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_context(dir, &refs);
}

fn copy_step(report: &serde_json::Value) -> &serde_json::Value {
    report["images"][0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["layer"].is_string())
        .expect("a COPY step")
}

#[test]
fn an_edit_reuses_most_blocks_and_gives_the_same_blob_as_a_build_from_scratch() {
    let ctx = tempfile::tempdir().unwrap();
    big_context(ctx.path());
    let ctx_arg = ctx.path().to_str().unwrap();
    let store = tempfile::tempdir().unwrap();
    let first = build_json(store.path(), &["-t", "app:v1", ctx_arg]);
    let step = copy_step(&first);
    assert_eq!(step["blocksReused"], 0);
    let blocks = step["blocks"].as_u64().unwrap();
    assert!((4..=24).contains(&blocks), "{blocks} blocks");

    // Append a line to a file early in the tar: every later byte shifts.
    let edited = ctx.path().join("manifests/m02.yaml");
    let mut text = fs::read_to_string(&edited).unwrap();
    text.push_str("extra: appended line\n");
    fs::write(&edited, text).unwrap();
    age_tree(ctx.path());

    let second = build_json(store.path(), &["-t", "app:v2", ctx_arg]);
    let step = copy_step(&second);
    assert_eq!(step["cached"], false);
    let blocks = step["blocks"].as_u64().unwrap();
    let reused = step["blocksReused"].as_u64().unwrap();
    assert!(
        reused + 3 >= blocks && reused < blocks,
        "{reused} of {blocks} blocks reused"
    );

    // The same context from scratch, in a fresh store and with --no-cache in this one: the same layer.
    let fresh = tempfile::tempdir().unwrap();
    let scratch = build_json(fresh.path(), &["-t", "app:v2", ctx_arg]);
    assert_eq!(copy_step(&scratch)["blocksReused"], 0);
    assert_eq!(copy_step(&scratch)["layer"], step["layer"]);
    assert_eq!(scratch["digest"], second["digest"]);
    let no_cache = build_json(store.path(), &["--no-cache", "-t", "app:v3", ctx_arg]);
    assert_eq!(copy_step(&no_cache)["blocksReused"], 0);
    assert_eq!(no_cache["digest"], second["digest"]);

    // The blob is a valid gzip stream.
    let layer = step["layer"].as_str().unwrap();
    let blob = store
        .path()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    require_tool("gzip");
    let status = std::process::Command::new("gzip")
        .arg("-t")
        .arg("-c")
        .stdin(fs::File::open(&blob).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "gzip -t rejects {}", blob.display());
}
