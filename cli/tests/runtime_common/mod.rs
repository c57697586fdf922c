//! Helpers shared by the runtime tests: a temporary cluster (store, data dir, clusters dir, marker dir)
//! with the toy images of `Kubefile-examples/runtime-*` built into its store, and `sealos` runs against it.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::build_common::{build_ok, examples_dir, sealos};

/// The rootfs toy image's name in the store.
pub const ROOTFS: &str = "runtime-rootfs:v1";
/// The application toy image's name in the store.
pub const APP: &str = "runtime-app:v1";

/// A temporary cluster workspace.
pub struct Cluster {
    /// Holds everything; removed on drop.
    pub tmp: tempfile::TempDir,
}

impl Cluster {
    /// A workspace with both toy images built into its store.
    pub fn new() -> Self {
        let cluster = Cluster {
            tmp: tempfile::tempdir().expect("tempdir"),
        };
        for (tag, dir) in [(ROOTFS, "runtime-rootfs"), (APP, "runtime-app")] {
            let context = examples_dir().join(dir);
            build_ok(&cluster.store(), &["-t", tag, context.to_str().unwrap()]);
        }
        cluster
    }
    pub fn store(&self) -> PathBuf {
        self.tmp.path().join("store")
    }
    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }
    pub fn clusters(&self) -> PathBuf {
        self.tmp.path().join("clusters")
    }
    pub fn markers(&self) -> PathBuf {
        self.tmp.path().join("markers")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.data().join("default/rootfs")
    }
    pub fn clusterfile(&self) -> PathBuf {
        self.clusters().join("default/Clusterfile")
    }

    /// Runs `sealos --root STORE CMD ARGS... --data-dir DATA` with the clusters dir in the environment.
    pub fn sealos(&self, command: &str, args: &[&str]) -> Output {
        sealos()
            .env("SEALOS_CLUSTERS_DIR", self.clusters())
            .arg("--root")
            .arg(self.store())
            .arg(command)
            .args(args)
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .expect("run sealos")
    }

    /// Like [`Cluster::sealos`], asserting success; returns stdout.
    pub fn sealos_ok(&self, command: &str, args: &[&str]) -> String {
        let out = self.sealos(command, args);
        assert!(
            out.status.success(),
            "sealos {command} {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `-e MARKER_DIR=<markers>`, which every toy script writes to.
    pub fn marker_env(&self) -> String {
        format!("MARKER_DIR={}", self.markers().display())
    }

    /// The lines the toy scripts appended to `markers/order`.
    pub fn order(&self) -> Vec<String> {
        read_lines(&self.markers().join("order"))
    }
}

/// The lines of a file (none when it does not exist).
pub fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|t| t.lines().map(|l| l.trim_end().to_string()).collect())
        .unwrap_or_default()
}

/// A tar holding one regular file named `name` (which may try to escape).
pub fn tar_with_entry(name: &str, content: &[u8]) -> Vec<u8> {
    tar_with_header(name, content, b'0', "")
}

/// A tar holding one symlink named `name` pointing to `target`.
pub fn tar_with_symlink(name: &str, target: &str) -> Vec<u8> {
    tar_with_header(name, b"", b'2', target)
}

/// A tar of one entry of type `kind` (`0` file, `2` symlink).
fn tar_with_header(name: &str, content: &[u8], kind: u8, link: &str) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[157..157 + link.len()].copy_from_slice(link.as_bytes());
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    header[136..148].copy_from_slice(b"00000000000\0");
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}
