//! `sealos build` reads its context the way buildah and BuildKit do: a symlink in the context is followed only
//! inside it (an absolute target starts at the context root, `..` stops there), so no COPY, glob, directory
//! walk, dry-run listing, Kubefile, `.dockerignore` or image discovery reads a host file through one. A
//! source that leads out of the context is an error naming the Kubefile line.

mod build_common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use build_common::{build, build_ok, index, write_context};

/// A sandbox with a context `ctx/` and, beside it, `host/` standing in for host files (`host/secret` holds
/// `HOST-SECRET`, `host/sub/x` too).
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(kubefile: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        write_context(
            dir.path(),
            &[
                ("ctx/Kubefile", kubefile),
                ("ctx/real/file", "inside"),
                ("ctx/real/sub/x", "inside-x"),
                ("host/secret", "HOST-SECRET"),
                ("host/sub/x", "HOST-SECRET"),
            ],
        );
        Sandbox { dir }
    }

    fn ctx(&self) -> PathBuf {
        self.dir.path().join("ctx")
    }

    fn host(&self) -> PathBuf {
        self.dir.path().join("host")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn link(&self, target: impl AsRef<Path>, name: &str) {
        symlink(target, self.ctx().join(name)).unwrap();
    }

    /// Runs `sealos build` (with `extra` args before the context), which must fail; its stderr.
    fn build_fails(&self, extra: &[&str]) -> String {
        let ctx = self.ctx();
        let mut args = vec!["-t", "app:v1", "--save-image=false"];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let out = build(&self.store(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "the build succeeded:\n{stderr}");
        assert!(!stderr.contains("HOST-SECRET"), "{stderr}");
        stderr
    }

    /// Builds into a local output directory; the directory.
    fn build_local(&self) -> PathBuf {
        let out = self.dir.path().join("out");
        let ctx = self.ctx();
        build_ok(
            &self.store(),
            &[
                "-t",
                "app:v1",
                "--save-image=false",
                "-o",
                &format!("type=local,dest={}", out.display()),
                ctx.to_str().unwrap(),
            ],
        );
        out
    }

    fn tags(&self) -> usize {
        if !self.store().join("index.json").exists() {
            return 0;
        }
        index(&self.store())["manifests"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

fn refusal(source: &str, link: &str, target: &str) -> String {
    format!(
        "Kubefile:2: source {source:?} is not in the build context: {link:?} is a symlink to {target:?}, which \
         leads out of it"
    )
}

#[test]
fn copy_through_a_symlink_to_etc_fails_naming_the_line_and_tags_nothing() {
    for source in ["d/hostname", "d/*", "d/ssl", "d"] {
        let s = Sandbox::new(&format!("FROM scratch\nCOPY {source} /x/\n"));
        s.link("/etc", "d");
        let stderr = s.build_fails(&[]);
        assert!(
            stderr.contains(&refusal(source, "d", "/etc")),
            "{source}: {stderr}"
        );
        assert_eq!(s.tags(), 0, "{source}: a failed build tags nothing");
        // The dry run lists nothing from there either: the same error.
        let stderr = s.build_fails(&["--dry-run"]);
        assert!(
            stderr.contains(&refusal(source, "d", "/etc")),
            "{source}: {stderr}"
        );
    }
}

#[test]
fn relative_links_climbing_out_and_chains_of_links_are_refused() {
    let s = Sandbox::new("FROM scratch\nCOPY real/up/secret /x\n");
    s.link("../../host", "real/up");
    let stderr = s.build_fails(&[]);
    assert!(
        stderr.contains(&refusal("real/up/secret", "real/up", "../../host")),
        "{stderr}"
    );

    let s = Sandbox::new("FROM scratch\nCOPY hop/sub/x /x\n");
    s.link(s.host(), "out");
    s.link("real/../out", "hop");
    let stderr = s.build_fails(&["--dry-run"]);
    let host = s.host().display().to_string();
    assert!(
        stderr.contains(&refusal("hop/sub/x", "out", &host)),
        "{stderr}"
    );
}

#[test]
fn an_absolute_link_and_a_chain_are_resolved_inside_the_context() {
    let s = Sandbox::new(
        "FROM scratch\nCOPY abs/file /a\nCOPY chain /c/\nCOPY real/sub/top/file /t\nCOPY real /r/\n\
         COPY nam* /n/\n",
    );
    s.link("/real", "abs");
    s.link("real/file", "named");
    s.link("abs/sub", "chain");
    // `..` stops at the context root: this names `real`, not the host's.
    s.link("../../../../real", "real/sub/top");
    let out = s.build_local();
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "inside");
    assert_eq!(fs::read_to_string(out.join("c/x")).unwrap(), "inside-x");
    assert_eq!(fs::read_to_string(out.join("t")).unwrap(), "inside");
    // A source that is a symlink is followed, and keeps its own name in a directory, as buildah does.
    assert_eq!(fs::read_to_string(out.join("n/named")).unwrap(), "inside");
    // A symlink inside a copied directory stays a symlink, as buildah keeps it.
    assert_eq!(
        fs::read_link(out.join("r/sub/top")).unwrap(),
        Path::new("../../../../real")
    );
}

#[test]
fn a_symlinked_kubefile_or_dockerignore_leading_out_is_refused_without_reading_it() {
    let s = Sandbox::new("FROM scratch\n");
    fs::remove_file(s.ctx().join("Kubefile")).unwrap();
    s.link(s.host().join("secret"), "Kubefile");
    let stderr = s.build_fails(&[]);
    assert!(
        stderr.contains("`Kubefile` is not in the build context: `Kubefile` is a symlink to"),
        "{stderr}"
    );
    // `-f` naming it inside the context is resolved there too, in a build and in a dry run.
    let given = s.ctx().join("Kubefile");
    for extra in [
        &["-f", given.to_str().unwrap()][..],
        &["--dry-run", "-f", given.to_str().unwrap()],
    ] {
        let stderr = s.build_fails(extra);
        assert!(stderr.contains("is a symlink to"), "{stderr}");
    }

    let s = Sandbox::new("FROM scratch\nCOPY real /r/\n");
    s.link(s.host().join("secret"), ".dockerignore");
    let stderr = s.build_fails(&[]);
    assert!(
        stderr.contains(
            "`.dockerignore` is not in the build context: `.dockerignore` is a symlink to"
        ),
        "{stderr}"
    );
}

#[test]
fn image_discovery_reads_no_manifest_through_a_symlink_out_of_the_context() {
    let s = Sandbox::new("FROM scratch\nCOPY real /r/\n");
    write_context(
        s.dir.path(),
        &[
            ("host/pod.yaml", "image: host/secret-image:1\n"),
            ("ctx/manifests/app.yaml", "image: inside/app:1\n"),
        ],
    );
    s.link(s.host().join("pod.yaml"), "manifests/host.yaml");
    s.link(s.host(), "manifests/hostdir");
    let ctx = s.ctx();
    let out = build_common::sealos()
        .args(["build", "--dry-run", "--format", "json"])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images: Vec<&str> = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["docker.io/inside/app:1"]);
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("`manifests/host.yaml` is not in the build context"),
        "{warnings}"
    );
}

#[test]
fn an_images_lock_symlinked_out_of_the_context_is_neither_read_nor_written_through() {
    let s = Sandbox::new("FROM scratch\nCOPY real /r/\n");
    s.link(s.host().join("secret"), "images.lock");
    let ctx = s.ctx();
    let out = build(&s.store(), &["-t", "app:v1", ctx.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("HOST-SECRET"), "{stderr}");
    assert_eq!(
        fs::read_to_string(s.host().join("secret")).unwrap(),
        "HOST-SECRET"
    );
}
