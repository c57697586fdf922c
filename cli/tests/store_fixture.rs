//! Shared by the store tests: run the `sealos` binary against a temporary store, and write small real images
//! into it (with `testsupport::images`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use formats::manifest::Descriptor;
use formats::oci_layout::OciLayout;
use formats::reference::Reference;
use testsupport::images;

/// A temporary directory with a store in `<dir>/store`.
pub struct Env {
    /// Removed when the test ends.
    pub dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh temporary directory.
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The store the commands use by default.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// A path inside the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `sealos --root <store> ARGS`.
    pub fn sealos(&self, args: &[&str]) -> Output {
        self.sealos_in(&self.store(), args)
    }

    /// Runs `sealos --root STORE ARGS`.
    pub fn sealos_in(&self, store: &Path, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sealos"))
            .arg("--root")
            .arg(store)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs sealos and returns stdout, failing the test with stderr when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.sealos(args);
        assert!(
            out.status.success(),
            "sealos {args:?} failed: {}",
            stderr(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs sealos expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.sealos(args);
        assert!(!out.status.success(), "sealos {args:?} should have failed");
        stderr(&out)
    }
}

/// The stderr of a finished command.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes an image with `/hello.txt` = `content` (gzip layer) into the store at `store`, tagged with the
/// full form of `name`; returns the manifest descriptor.
pub fn make_image(store: &Path, name: &str, content: &str) -> Descriptor {
    let layout = OciLayout::create(store).unwrap();
    let desc = images::write_image(&layout, &images::TestImage::hello(content));
    let full = Reference::parse(name).unwrap().to_string();
    layout.set_tag(&full, desc.clone()).unwrap();
    desc
}

/// Saves `reference` from `store` as the oci-archive `dest` (`sealos save --format oci-archive`), as a
/// recipe's `images/skopeo/*.tar` is made; panics with sealos's stderr when it fails.
pub fn save_oci_archive(store: &Path, reference: &str, dest: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .arg("--root")
        .arg(store)
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(dest)
        .arg(reference)
        .output()
        .expect("run sealos save");
    assert!(out.status.success(), "sealos save: {}", stderr(&out));
}

/// The `sealos inspect --format json` document of an image.
pub fn inspect_json(env: &Env, store: &Path, image: &str) -> serde_json::Value {
    let out = env.sealos_in(store, &["inspect", "--format", "json", image]);
    assert!(out.status.success(), "inspect {image}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Fails the test, naming the tool, when it is not installed.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "missing tool `{tool}`: these interop tests need it installed (apt-get install -y {tool})"
    );
}

/// Runs a tool and returns stdout, failing the test with its stderr when it fails.
pub fn run_tool(tool: &str, args: &[&str]) -> String {
    require_tool(tool);
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One ustar member with exactly this name (no sanitising, for hostile archives), padded to 512 bytes.
pub fn tar_member(name: &str, data: &[u8]) -> Vec<u8> {
    let mut out = tar_header(name, data.len() as u64).to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// The ustar header of a regular file `name` of `size` bytes (its data and padding follow it).
pub fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |at: usize, len: usize, value: u64| {
        let text = format!("{value:0w$o}\0", w = len - 1);
        h[at..at + len].copy_from_slice(text.as_bytes());
    };
    field(100, 8, 0o644);
    field(108, 8, 0);
    field(116, 8, 0);
    field(124, 12, size);
    field(136, 12, 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}
