//! Builds that die: a `sealos build` killed with SIGKILL midway leaves no tag, `sealos images` unchanged and
//! only complete blobs; what it left in the store's temporary places is cleaned by the next writer.

mod build_common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use build_common::{build_ok, sealos, tagged, write_context};

fn images_json(store: &Path) -> String {
    let out = sealos()
        .arg("--root")
        .arg(store)
        .args(["images", "--format", "json"])
        .output()
        .expect("run sealos images");
    assert!(out.status.success(), "sealos images failed");
    String::from_utf8(out.stdout).unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A staged (`.tmp-*`) file with content in the store's blob directory, once one appears.
fn wait_for_staged_layer(store: &Path, deadline: Instant) -> bool {
    let blobs = store.join("blobs/sha256");
    while Instant::now() < deadline {
        let writing = fs::read_dir(&blobs).is_ok_and(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                e.file_name().to_string_lossy().starts_with(".tmp-")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        });
        if writing {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_build_killed_with_sigkill_midway_leaves_no_tag_and_images_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let small = tempfile::tempdir().unwrap();
    write_context(
        small.path(),
        &[("Kubefile", "FROM scratch\nCOPY a /a\n"), ("a", "a")],
    );
    build_ok(&store, &["-t", "keep:v1", small.path().to_str().unwrap()]);
    let before = images_json(&store);

    // A context with a 4 GiB (sparse) file: its layer takes far longer to write than the test waits.
    let big = tempfile::tempdir().unwrap();
    write_context(
        big.path(),
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY small /small\nCOPY big /big\n",
            ),
            ("small", "s"),
        ],
    );
    fs::File::create(big.path().join("big"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let mut child = sealos()
        .arg("--root")
        .arg(&store)
        .args(["build", "-t", "big:v1", big.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sealos build");
    let started = Instant::now();
    let writing = wait_for_staged_layer(&store, started + Duration::from_secs(60));
    child.kill().expect("SIGKILL the build");
    let status = child.wait().unwrap();
    assert!(writing, "the build never started writing its big layer");
    assert!(!status.success(), "the build was killed before finishing");

    assert!(tagged(&store, "docker.io/library/big:v1").is_none());
    assert_eq!(images_json(&store), before);
    assert!(
        entries(&store.join("tmp"))
            .iter()
            .any(|e| e.starts_with("work-")),
        "the killed build left its work directory (the scenario this test is about)"
    );
    // Every blob under its final name is complete and verified.
    for name in entries(&store.join("blobs/sha256")) {
        if name.starts_with(".tmp-") {
            continue;
        }
        let bytes = fs::read(store.join("blobs/sha256").join(&name)).unwrap();
        assert_eq!(
            formats::digest::Digest::sha256_of(&bytes).hex(),
            name,
            "blob {name} is complete"
        );
    }

    // The next build cleans the dead build's work directory (its lock died with it).
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    build_ok(&store, &["-t", "keep:v2", small.path().to_str().unwrap()]);
    assert_eq!(entries(&store.join("tmp")), Vec::<String>::new());
    assert!(tagged(&store, "docker.io/library/keep:v2").is_some());
}

#[test]
fn a_build_removes_staged_files_older_than_an_hour_and_keeps_fresh_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let ctx = tempfile::tempdir().unwrap();
    write_context(
        ctx.path(),
        &[("Kubefile", "FROM scratch\nCOPY a /a\n"), ("a", "a")],
    );
    build_ok(&store, &["-t", "one:v1", ctx.path().to_str().unwrap()]);
    let blobs = store.join("blobs/sha256");
    let (old, fresh) = (blobs.join(".tmp-killed"), blobs.join(".tmp-in-progress"));
    fs::write(&old, vec![7u8; 4096]).unwrap();
    fs::write(&fresh, b"partial").unwrap();
    fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    build_ok(&store, &["-t", "one:v2", ctx.path().to_str().unwrap()]);
    assert!(
        !old.exists(),
        "a staged file untouched for two hours is removed"
    );
    assert!(
        fresh.exists(),
        "a fresh staged file may belong to a live writer"
    );
}
