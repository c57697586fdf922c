#![no_main]
//! Fuzz target: arbitrary bytes as a layer tar unpacked into `SANDBOX/target`; whatever happens (success or
//! error), nothing may appear beside the target and the sentinel file beside it must stay untouched.

use formats::layer::{UnpackOptions, unpack};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let sandbox = tempfile::tempdir().expect("create a temporary directory");
    let target = sandbox.path().join("target");
    std::fs::create_dir(&target).expect("create the target");
    let sentinel = sandbox.path().join("outside");
    std::fs::write(&sentinel, b"precious").expect("write the sentinel");

    let _ = unpack(data, &target, &UnpackOptions::default());

    let mut names: Vec<_> = std::fs::read_dir(sandbox.path())
        .expect("list the sandbox")
        .map(|e| e.expect("read a sandbox entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["outside", "target"], "an entry escaped the target");
    assert_eq!(std::fs::read(&sentinel).expect("read the sentinel"), b"precious");
    let meta = std::fs::symlink_metadata(&sentinel).expect("stat the sentinel");
    assert_eq!(std::os::unix::fs::MetadataExt::nlink(&meta), 1, "the sentinel was hardlinked");
    assert!(std::fs::symlink_metadata(&target).expect("stat the target").is_dir());

    // Make the tree removable even if the layer set read-only modes.
    for entry in walk(&target) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755));
    }
});

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(path.clone());
                out.push(path);
            }
        }
    }
    out
}
