//! Helpers shared by the `build_*` integration tests: run the built `sealos` binary, make contexts, read stores.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

/// The `sealos` binary under test.
pub fn sealos() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealos"));
    cmd.env_remove("SEALOS_ROOT")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs `sealos --root STORE build ARGS...`.
pub fn build(store: &Path, args: &[&str]) -> Output {
    sealos()
        .arg("--root")
        .arg(store)
        .arg("build")
        .args(args)
        .output()
        .expect("run sealos")
}

/// Runs a build that must succeed and returns its stdout.
pub fn build_ok(store: &Path, args: &[&str]) -> String {
    let out = build(store, args);
    assert!(
        out.status.success(),
        "sealos build {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs a build with `--format json` and parses its report.
pub fn build_json(store: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&build_ok(store, &all)).expect("build report is JSON")
}

/// Writes `files` (path, content) under `dir`, with every mtime a minute in the past so the stat cache may
/// remember them.
pub fn write_context(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, content).expect("write");
    }
    age_tree(dir);
}

/// Sets every file's mtime a minute in the past.
pub fn age_tree(dir: &Path) {
    let old = SystemTime::now() - Duration::from_secs(60);
    for entry in walk(dir) {
        if entry.is_file() {
            fs::File::options()
                .write(true)
                .open(&entry)
                .and_then(|f| f.set_modified(old))
                .expect("set mtime");
        }
    }
}

/// Every path under `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in fs::read_dir(&d)
            .expect("read_dir")
            .map(|e| e.expect("entry"))
        {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                pending.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `index.json` of a store, parsed.
pub fn index(store: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(store.join("index.json")).expect("read index.json"))
        .expect("index JSON")
}

/// The descriptor tagged `tag` in a store.
pub fn tagged(store: &Path, tag: &str) -> Option<serde_json::Value> {
    index(store)["manifests"]
        .as_array()?
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
}

/// Reads a JSON blob of a store.
pub fn blob_json(store: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    serde_json::from_slice(&fs::read(store.join("blobs/sha256").join(hex)).expect("read blob"))
        .expect("blob JSON")
}

/// Fails with a clear message when an external tool is missing.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "required tool `{tool}` is missing: install it (see .ci/run)"
    );
}

/// The repository's `Kubefile-examples` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../Kubefile-examples")
}

/// Files of a directory tree as (relative path, kind, mode, content) for comparing trees.
pub fn tree_listing(root: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    walk(root)
        .into_iter()
        .map(|p| {
            let meta = fs::symlink_metadata(&p).expect("stat");
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let (kind, content) = if meta.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&p)
                        .expect("readlink")
                        .display()
                        .to_string()
                        .into_bytes(),
                )
            } else if meta.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&p).expect("read"))
            };
            let mode = if kind == "link" {
                0
            } else {
                meta.permissions().mode() & 0o7777
            };
            (rel, kind.to_string(), mode, content)
        })
        .collect()
}
