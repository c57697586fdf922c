//! What `sealos build` prints, through the binary and without a terminal (as in CI): one `STEP n/N:` line
//! per instruction on stderr as buildah prints them, a line after each COPY/ADD saying cache hit or bytes
//! written (in binary units) and the time, then the result on stdout on lines of its own.

mod build_common;

use std::path::Path;
use std::process::Output;

use build_common::{build, write_context};

fn ok(out: Output) -> (String, String) {
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(out.status.success(), "build failed:\n{stderr}");
    (String::from_utf8(out.stdout).expect("utf-8 stdout"), stderr)
}

fn context(dir: &Path) {
    write_context(
        dir,
        &[
            (
                "Kubefile",
                "FROM scratch\nLABEL purpose=test\nCOPY a.txt /a.txt\nCOPY dir /dir\nCMD [\"true\"]\n",
            ),
            ("a.txt", "hello"),
            ("dir/one", "1"),
            ("dir/two", "22"),
        ],
    );
}

/// The lines of `text` that start with `prefix`.
fn lines_starting<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_instruction_gets_a_step_line_and_every_layer_a_result_line_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx);
    let store = tmp.path().join("store");
    let (stdout, stderr) = ok(build(&store, &["-t", "steps:v1", ctx.to_str().unwrap()]));
    assert_eq!(
        lines_starting(&stderr, "STEP "),
        [
            "STEP 1/5: FROM scratch",
            "STEP 2/5: LABEL purpose=test",
            "STEP 3/5: COPY a.txt /a.txt",
            "STEP 4/5: COPY dir /dir",
            "STEP 5/5: CMD [\"true\"]",
        ],
        "{stderr}"
    );
    let results = lines_starting(&stderr, "--> ");
    assert_eq!(results.len(), 2, "{stderr}");
    // Each result line follows its COPY's STEP line.
    let all: Vec<&str> = stderr.lines().collect();
    for (step, result) in [("STEP 3/5", results[0]), ("STEP 4/5", results[1])] {
        let at = all.iter().position(|l| l.starts_with(step)).unwrap();
        assert_eq!(all[at + 1], result, "{stderr}");
    }
    assert!(
        results[0].starts_with("--> wrote ")
            && results[0].contains(" B layer sha256:")
            && results[0].contains("(gzip-compressed; 1 entry, 5 B read) in "),
        "{}",
        results[0]
    );
    assert!(
        results[1].contains("(gzip-compressed; 2 entries, 3 B read)"),
        "{}",
        results[1]
    );
    assert!(
        results.iter().all(|l| l.ends_with('s')),
        "a time closes each result line: {results:?}"
    );

    // The result, each on its own line: the digest, then the names.
    let out: Vec<&str> = stdout.lines().collect();
    assert_eq!(out.len(), 2, "{stdout}");
    assert!(
        out[0].starts_with("sha256:") && out[0].len() == 71,
        "{stdout}"
    );
    assert_eq!(out[1], "tagged docker.io/library/steps:v1");
    // What was built and what to try next, naming the store used.
    let root = store.display().to_string();
    assert!(
        stderr.contains(&format!("next: sealos --root {root} images; sealos --root {root} inspect docker.io/library/steps:v1")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no ANSI codes without a terminal: {stderr:?}"
    );

    // Built again: every layer is a cache hit.
    let (_, again) = ok(build(&store, &["-t", "steps:v1", ctx.to_str().unwrap()]));
    let results = lines_starting(&again, "--> ");
    assert_eq!(results.len(), 2, "{again}");
    assert!(
        results
            .iter()
            .all(|l| l.starts_with("--> cache hit: layer sha256:")),
        "{again}"
    );
}

#[test]
fn uncompressed_layers_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx);
    let (_, stderr) = ok(build(
        &tmp.path().join("store"),
        &[
            "-t",
            "raw:v1",
            "--compression",
            "none",
            ctx.to_str().unwrap(),
        ],
    ));
    let results = lines_starting(&stderr, "--> wrote ");
    assert_eq!(results.len(), 2, "{stderr}");
    // A tar of one file: a 512-byte header, the content padded to 512, and two zero blocks, as KiB.
    assert!(
        results[0].starts_with("--> wrote 2.00 KiB layer ")
            && results[0].contains("(uncompressed;"),
        "{}",
        results[0]
    );
}

#[test]
fn quiet_prints_only_the_digest_and_json_keeps_stdout_for_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    context(&ctx);
    let store = tmp.path().join("store");
    let (stdout, stderr) = ok(build(&store, &["-q", "-t", "q:v1", ctx.to_str().unwrap()]));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("sha256:"));
    assert!(!stderr.contains("STEP"), "{stderr}");

    let (stdout, stderr) = ok(build(
        &store,
        &["--format", "json", "-t", "j:v1", ctx.to_str().unwrap()],
    ));
    let report: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is the JSON report");
    assert_eq!(report["tags"][0], "docker.io/library/j:v1");
    assert_eq!(lines_starting(&stderr, "STEP ").len(), 5, "{stderr}");
}

#[test]
fn stages_and_platforms_prefix_their_step_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_context(
        &ctx,
        &[
            (
                "Kubefile",
                "FROM scratch AS files\nCOPY a.txt /a.txt\nFROM scratch\nCOPY --from=files /a.txt /b.txt\n",
            ),
            ("a.txt", "hello"),
        ],
    );
    let (_, stderr) = ok(build(
        &tmp.path().join("store"),
        &[
            "-t",
            "multi:v1",
            "--platform",
            "linux/amd64,linux/arm64",
            ctx.to_str().unwrap(),
        ],
    ));
    for platform in ["linux/amd64", "linux/arm64"] {
        let steps = lines_starting(&stderr, &format!("[{platform}] [")).join("\n");
        assert_eq!(
            steps,
            format!(
                "[{platform}] [1/2] STEP 1/2: FROM scratch AS files\n\
                 [{platform}] [1/2] STEP 2/2: COPY a.txt /a.txt\n\
                 [{platform}] [2/2] STEP 1/2: FROM scratch\n\
                 [{platform}] [2/2] STEP 2/2: COPY --from=files /a.txt /b.txt"
            ),
            "{stderr}"
        );
    }
}

/// The staged (`.tmp-*`) files in the store's blob directory.
fn staged(store: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.join("blobs/sha256"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_build_interrupted_with_sigint_removes_its_partial_layer_and_exits_130() {
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_context(&ctx, &[("Kubefile", "FROM scratch\nCOPY big /big\n")]);
    // 4 GiB (sparse): its layer takes far longer to write than the test waits.
    std::fs::File::create(ctx.join("big"))
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let store = tmp.path().join("store");
    let child = build_common::sealos()
        .arg("--root")
        .arg(&store)
        .args(["build", "-t", "big:v1", ctx.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sealos build");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staged(&store)
        .iter()
        .any(|p| p.metadata().is_ok_and(|m| m.len() > 0))
    {
        assert!(Instant::now() < deadline, "the build never wrote its layer");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: removed "), "{stderr}");
    assert_eq!(staged(&store), Vec::<std::path::PathBuf>::new());
    assert!(out.stdout.is_empty(), "nothing was built");
}
