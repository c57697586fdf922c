//! Friction a new user hit on the final build (issue 20's walk-through), through the real binary: build
//! lines on a terminal each end up as their own line, every command's `--help` ends with examples, `pull`
//! names the local store as its destination, "already there" is said one way, and counts are plural-aware.

mod build_common;
mod runtime_common;
mod upstream;

use std::path::Path;
use std::process::Command;

use build_common::{sealos, write_context};

/// What a terminal shows after `raw` is written to it, line by line: a `\r` returns to the line's start and
/// later text overwrites earlier text; ANSI escape sequences (cursor moves, line clears) are dropped.
fn terminal_lines(raw: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line: Vec<char> = Vec::new();
    let mut col = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                lines.push(line.iter().collect::<String>().trim_end().to_string());
                line.clear();
                col = 0;
            }
            '\r' => col = 0,
            '\x1b' => {
                // CSI: ESC [ params final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            c => {
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    if !line.is_empty() {
        lines.push(line.iter().collect::<String>().trim_end().to_string());
    }
    lines
}

#[test]
fn build_step_lines_on_a_terminal_are_each_their_own_line() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    write_context(
        &ctx,
        &[
            ("Kubefile", "FROM scratch\nCOPY a.txt a.txt\nCMD [\"x\"]\n"),
            ("a.txt", "hello\n"),
        ],
    );
    let store = tmp.path().join("store");
    let command = format!(
        "stty cols 120; '{}' --root '{}' build -t example/tty:v1 '{}'",
        env!("CARGO_BIN_EXE_sealos"),
        store.display(),
        ctx.display()
    );
    // `script` runs the build on a pseudo-terminal, so stderr is a terminal as a user's is.
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("SEALOS_ROOT")
        .output()
        .expect("run script (util-linux)");
    assert!(out.status.success(), "build under script failed: {out:?}");
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = terminal_lines(&raw);
    for wanted in [
        "STEP 1/3: FROM scratch",
        "STEP 2/3: COPY a.txt a.txt",
        "STEP 3/3: CMD [\"x\"]",
    ] {
        assert!(
            lines.iter().any(|l| l == wanted),
            "`{wanted}` is not a line of its own on the terminal; lines: {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("--> wrote ") && l.ends_with('s')),
        "the layer line is a line of its own: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("sha256:") && l.len() == 71),
        "the digest is on its own line: {lines:#?}"
    );
    assert!(
        !raw.contains("          "),
        "no line is padded with spaces to the terminal width: {raw:?}"
    );
}

#[test]
fn terminal_lines_resolves_carriage_returns() {
    assert_eq!(terminal_lines("abc\rX\n"), vec!["Xbc"]);
    assert_eq!(terminal_lines("a\x1b[2Kb\n\nc"), vec!["ab", "", "c"]);
}

/// Runs `sealos --root STORE ARGS` and returns (status ok, stdout, stderr).
fn run(store: &Path, args: &[&str]) -> (bool, String, String) {
    let out = sealos()
        .arg("--root")
        .arg(store)
        .args(args)
        .output()
        .expect("run sealos");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every command and subcommand, as the argument paths to it (`["registry", "serve", "fs"]`), walked from
/// clap's own definition so a command added later is covered too.
fn every_command_path() -> Vec<Vec<String>> {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&sealos::Cli::command(), Vec::new(), &mut out);
    out
}

#[test]
fn every_command_and_subcommand_help_ends_with_examples() {
    let store = tempfile::tempdir().unwrap();
    let paths = every_command_path();
    assert!(
        paths.len() > 30,
        "the walk found the command tree: {paths:?}"
    );
    for wanted in [
        vec!["manifest", "create"],
        vec!["registry", "serve", "s3"],
        vec!["registry", "gc"],
        vec!["helm", "template"],
    ] {
        assert!(
            paths.iter().any(|p| p == &wanted),
            "{wanted:?} is in the tree: {paths:?}"
        );
    }
    let mut missing = Vec::new();
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (ok, stdout, stderr) = run(store.path(), &args);
        assert!(ok, "sealos {args:?} failed: {stderr}");
        let examples = stdout.find("\nExamples:\n");
        // At least one example line under the heading, naming the command itself.
        let has_example = examples.is_some_and(|at| {
            stdout[at..]
                .lines()
                .skip(2)
                .any(|l| l.trim_start().starts_with(&format!("sealos {}", path[0])))
        });
        if !has_example {
            missing.push(path.join(" "));
        }
    }
    assert!(
        missing.is_empty(),
        "`sealos CMD --help` has no `Examples:` section with a `sealos CMD ...` line for: {missing:#?}"
    );
}

/// Pushes a signature of `subject` (an OCI artifact manifest whose `subject` is it) to `host/repo` by
/// digest; returns its digest.
fn push_signature(
    host: &str,
    repo: &str,
    subject: &(formats::digest::Digest, Vec<u8>),
    who: &str,
) -> String {
    let c = upstream::client();
    let empty = bytes::Bytes::from_static(b"{}");
    let empty_digest = formats::digest::Digest::sha256_of(&empty);
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": upstream::OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": upstream::OCI_MANIFEST, "digest": subject.0.to_string(), "size": subject.1.len()},
        "annotations": {"org.example.signed-by": who},
    })
    .to_string();
    let digest = formats::digest::Digest::sha256_of(sig.as_bytes());
    upstream::rt().block_on(async {
        c.push_blob(
            host,
            repo,
            &empty_digest,
            2,
            registry::client::BlobSource::Bytes(empty),
            None,
        )
        .await
        .expect("push the empty config");
        c.put_manifest(
            host,
            repo,
            &digest.to_string(),
            bytes::Bytes::from(sig),
            upstream::OCI_MANIFEST,
        )
        .await
        .expect("push the signature");
    });
    digest.to_string()
}

/// The digests the referrers tag `sha256-<hex>` of `subject` lists at `host/repo` (empty when there is no
/// such tag).
fn referrers_tag_lists(host: &str, repo: &str, subject: &formats::digest::Digest) -> Vec<String> {
    let tag = format!("sha256-{}", subject.hex());
    let got = upstream::rt().block_on(upstream::client().get_manifest(
        host,
        repo,
        &tag,
        &[upstream::OCI_INDEX],
    ));
    match got {
        Ok(m) => {
            let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
            v["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["digest"].as_str().unwrap().to_string())
                .collect()
        }
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => panic!("GET {host}/{repo}:{tag}: {e}"),
    }
}

#[test]
fn registry_copy_to_a_registry_without_the_referrers_api_writes_the_referrers_tag() {
    let source = testsupport::DockerRegistry::start_fresh();
    let dest = testsupport::DockerRegistry::start_fresh();
    let (src, dst) = (source.host(), dest.host());
    let image = upstream::push_image(&src, "team/web", Some("v1"), "amd64", "signed ");
    let first = push_signature(&src, "team/web", &image, "alice");
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let copy = |store: &Path| {
        let (ok, stdout, stderr) = run(
            store,
            &[
                "registry",
                "copy",
                "--tls-verify=false",
                "--registries-conf",
                conf.to_str().unwrap(),
                &format!("{src}/team/web:v1"),
                &format!("{dst}/mirror"),
            ],
        );
        assert!(ok, "registry copy failed:\n{stdout}{stderr}");
        stderr
    };
    let store = tmp.path().join("store");
    let said = copy(&store);
    assert!(
        said.contains("1 referrer"),
        "the copy reports the signature: {said}"
    );
    assert_eq!(
        referrers_tag_lists(&dst, "mirror/team/web", &image.0),
        vec![first.clone()],
        "the destination lists the signature under its referrers tag"
    );
    // Another signature at the source: a rerun copies it and extends the list.
    let second = push_signature(&src, "team/web", &image, "bob");
    let said = copy(&store);
    assert!(
        said.contains("1 referrer"),
        "the rerun copies the new signature: {said}"
    );
    assert_eq!(
        referrers_tag_lists(&dst, "mirror/team/web", &image.0),
        vec![first, second]
    );
    // Nothing new: skipped.
    let said = copy(&store);
    assert!(said.starts_with("skipped "), "nothing left to copy: {said}");
    // Syncing the whole destination back out: the referrers tag is not an image of its own, it travels
    // with its subject's referrers.
    let out_dir = tmp.path().join("synced");
    let (ok, stdout, stderr) = run(
        &store,
        &[
            "registry",
            "sync",
            "--tls-verify=false",
            "--registries-conf",
            conf.to_str().unwrap(),
            &dst,
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(
        ok,
        "a whole-registry sync after the copy fails:\n{stdout}{stderr}"
    );
    assert!(
        !format!("{stdout}{stderr}").contains(":sha256-"),
        "the referrers tag was taken for an image:\n{stdout}{stderr}"
    );
}

/// Copies the repository's example `name` (Kubefile-examples/NAME) into `dir`, mtimes aged.
fn copy_example(name: &str, dir: &Path) -> std::path::PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../Kubefile-examples")
        .join(name);
    let to = dir.join(name);
    let status = Command::new("cp")
        .arg("-r")
        .arg(&from)
        .arg(&to)
        .status()
        .expect("cp");
    assert!(status.success());
    build_common::age_tree(&to);
    to
}

#[test]
fn an_archive_image_is_embedded_without_its_host_as_pulled_images_are_and_is_no_store_image() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = copy_example("offline-tars", tmp.path());
    let store = tmp.path().join("store");
    let rootfs = tmp.path().join("rootfs");
    let (ok, stdout, stderr) = run(
        &store,
        &[
            "build",
            "-t",
            "example/offline:v1",
            "-o",
            &format!("type=local,dest={}", rootfs.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(ok, "build failed:\n{stdout}{stderr}");
    // `example.com/team/app:v1.0.0` is served as `team/app`: the path containerd's mirror request uses.
    let repos = rootfs.join("registry/docker/registry/v2/repositories");
    assert!(
        repos.join("team/app/_manifests/tags/v1.0.0").is_dir(),
        "embedded as team/app:v1.0.0: {:?}",
        build_common::walk(&repos)
    );
    assert!(
        !repos.join("example.com").exists(),
        "no host in the embedded name"
    );
    // Like an image pulled to be embedded, the archive's image is not an image of the store.
    let (ok, images, stderr) = run(&store, &["images"]);
    assert!(ok, "{stderr}");
    assert!(
        !images.contains("team/app"),
        "the embedded archive image is not listed as a store image:\n{images}"
    );
    assert!(images.contains("docker.io/example/offline"), "{images}");
    // The example's committed lock already says so: a build does not change it.
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Kubefile-examples/offline-tars/images.lock"),
    )
    .unwrap();
    let written = std::fs::read_to_string(ctx.join("images.lock")).unwrap();
    assert_eq!(
        written, committed,
        "Kubefile-examples/offline-tars/images.lock is up to date"
    );
    assert!(
        written.contains("reference = \"team/app:v1.0.0\""),
        "{written}"
    );
}

#[test]
fn an_archive_image_does_not_take_a_store_tag_the_user_had() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = copy_example("offline-tars", tmp.path());
    let store = tmp.path().join("store");
    let other = tmp.path().join("other");
    write_context(
        &other,
        &[("Kubefile", "FROM scratch\nCOPY a a\n"), ("a", "mine\n")],
    );
    let (ok, _, stderr) = run(
        &store,
        &[
            "build",
            "-t",
            "example.com/team/app:v1.0.0",
            other.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    let before = run(&store, &["images", "--format", "json"]).1;
    let (ok, _, stderr) = run(
        &store,
        &["build", "-t", "example/offline:v1", ctx.to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    let after = run(&store, &["images", "--format", "json"]).1;
    let id = |json: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|i| i.to_string().contains("example.com/team/app"))
            .map(|i| i.to_string())
            .unwrap_or_default()
    };
    assert!(!id(&before).is_empty(), "{before}");
    assert_eq!(
        id(&before),
        id(&after),
        "the user's own tag still names the user's image"
    );
}

/// `sealos ARGS --tls-verify=false --registries-conf EMPTY` (registry commands), checked to succeed;
/// returns (stdout, stderr).
fn net_ok(store: &Path, args: &[&str]) -> (String, String) {
    let conf = store.with_extension("registries.conf");
    std::fs::write(&conf, "").unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--tls-verify=false",
        "--registries-conf",
        conf.to_str().unwrap(),
    ]);
    let (ok, stdout, stderr) = run(store, &all);
    assert!(ok, "sealos {all:?} failed:\n{stdout}{stderr}");
    (stdout, stderr)
}

#[test]
fn pull_names_the_local_store_and_push_of_an_identical_image_is_skipped() {
    let reg = testsupport::DockerRegistry::start_fresh();
    let host = reg.host();
    let (digest, _) = upstream::push_image(&host, "team/web", Some("v1"), "amd64", "web ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{host}/team/web:v1");

    let (stdout, stderr) = net_ok(&store, &["pull", &image]);
    assert_eq!(stdout.trim(), image);
    assert!(
        stderr.starts_with(&format!(
            "copied {image} -> the local store {} (",
            store.display()
        )),
        "pull names the local store as its destination: {stderr}"
    );
    let (stdout, _) = net_ok(&store, &["pull", &image, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["source"], image, "{v}");
    assert_eq!(
        v["destination"],
        format!("local store {}", store.display()),
        "{v}"
    );

    // Pushed twice: the second time the destination has it, said as copy, sync and save say it.
    let dest = format!("{host}/copies/web:v1");
    let (_, first) = net_ok(&store, &["push", &image, &dest]);
    assert!(first.starts_with("copied "), "{first}");
    let (stdout, second) = net_ok(&store, &["push", &image, &dest, "--format", "json"]);
    assert!(
        second.starts_with(&format!("skipped {image} (identical at {dest}: {digest})")),
        "{second}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["status"], "skipped", "{v}");
    assert_eq!(v["bytes"], 0, "{v}");
}

#[test]
fn counts_are_plural_aware_and_a_failed_save_ends_on_its_error_with_a_mirror_hint() {
    let reg = testsupport::DockerRegistry::start_fresh();
    let host = reg.host();
    upstream::push_image(&host, "team/web", Some("v1"), "amd64", "counted ");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dir = tmp.path().join("registry");
    let image = format!("{host}/team/web:v1");
    let (_, stderr) = net_ok(
        &store,
        &[
            "registry",
            "save",
            "--images",
            &image,
            "--registry-dir",
            dir.to_str().unwrap(),
        ],
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "saved 1 image (0 already there) into {}",
            dir.display()
        )),
        "{stderr}"
    );
    let (ok, fsck, err) = run(&store, &["registry", "fsck", dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        fsck.starts_with("checked 3 blobs (")
            && fsck.contains(" KiB), 1 repository, ")
            && fsck.contains("0 problems"),
        "fsck counts in words and binary units: {fsck}"
    );

    // `registry sync`: the table counts images; the bytes are a line of their own.
    let (table, _) = net_ok(
        &store,
        &[
            "registry",
            "sync",
            dir.to_str().unwrap(),
            &format!("{host}/synced"),
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["IMAGES", "COUNT"],
        "{table}"
    );
    assert!(!table.contains("bytes"), "{table}");
    assert!(
        lines.last().is_some_and(|l| l.ends_with(" transferred")),
        "{table}"
    );

    // `sealos save`: `1 image`.
    net_ok(&store, &["pull", &image]);
    let archive = tmp.path().join("web.tar");
    let (ok, _, stderr) = run(&store, &["save", "-o", archive.to_str().unwrap(), &image]);
    assert!(ok, "{stderr}");
    assert!(stderr.starts_with("saved 1 image as "), "{stderr}");

    // A host that does not resolve: no summary, one error, and the hint an air-gapped user needs.
    let conf = tmp.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let (ok, _, stderr) = run(
        &store,
        &[
            "registry",
            "save",
            "--images",
            "nosuchhost.invalid/team/web:v1",
            "--registry-dir",
            dir.to_str().unwrap(),
            "--registries-conf",
            conf.to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        !stderr.contains("saved "),
        "no success-looking summary: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("cannot resolve host `nosuchhost.invalid`")
            && stderr.contains("--registries-conf"),
        "{stderr}"
    );
}

#[test]
fn reset_names_the_data_directory_and_hosts_it_removes_before_asking_and_while_removing() {
    let c = runtime_common::Cluster::new();
    c.sealos_ok("run", &[runtime_common::ROOTFS, "-e", &c.marker_env()]);
    let command = format!(
        "'{}' --root '{}' reset",
        env!("CARGO_BIN_EXE_sealos"),
        c.store().display()
    );
    let on_terminal = |answer: &str| {
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("SEALOS_CLUSTERS_DIR", c.clusters())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run script(1) from util-linux");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{answer}").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).replace('\r', ""),
        )
    };
    let data = c.data().join("default");
    let (ok, text) = on_terminal("nope");
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("`{}` on localhost is removed", data.display())),
        "the question names the directory and the hosts: {text}"
    );
    let (ok, text) = on_terminal("default");
    assert!(ok, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("==> [remove] cluster data ")
                && l.contains(&data.display().to_string())),
        "the remove step names the directory: {text}"
    );
    assert!(!data.exists());
}

#[test]
fn pull_takes_all_and_q_and_errors_carry_no_raw_json_or_tls_library_text() {
    let reg = testsupport::DockerRegistry::start_fresh();
    let host = reg.host();
    upstream::push_multi_arch(&host, "team/multi", "v1");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let image = format!("{host}/team/multi:v1");
    // `--all` keeps the index whole, as `--all-platforms` does; `-q` prints the name alone.
    let (stdout, stderr) = net_ok(&store, &["pull", "-q", "--all", &image]);
    assert_eq!(stdout.trim(), image);
    assert_eq!(stderr, "", "-q prints nothing on stderr");
    let (ok, inspect, err) = run(&store, &["inspect", &image, "--format", "json"]);
    assert!(ok, "{err}");
    assert!(
        inspect.contains("application/vnd.oci.image.index.v1+json"),
        "the whole index was kept: {inspect}"
    );

    // docker-registry's 404 carries `"detail":{"Tag":"v1"}`: said without JSON.
    let conf = tmp.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let conf = conf.to_str().unwrap();
    let (ok, _, stderr) = run(
        &store,
        &[
            "pull",
            "--tls-verify=false",
            "--registries-conf",
            conf,
            &format!("{host}/team/nope:v1"),
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("404") && stderr.contains("Tag=v1"),
        "{stderr}"
    );
    assert!(!stderr.contains('{'), "no raw JSON: {stderr}");
    // HTTPS to a plain-HTTP registry: one line, no rustls/hyper text, the hint kept.
    let (ok, _, stderr) = run(
        &store,
        &[
            "pull",
            "--tls-verify=true",
            "--registries-conf",
            conf,
            &image,
        ],
    );
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains("InvalidContentType") && !stderr.contains("error sending request"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plain HTTP") && stderr.contains("--tls-verify=false"),
        "{stderr}"
    );

    // `inspect --raw`: byte-exact into a pipe, a newline after it on a terminal.
    let docker = format!("docker://{image}");
    let (piped, _) = net_ok(&store, &["inspect", "--raw", &docker]);
    let served = upstream::remote_digest(&host, "team/multi", "v1").unwrap();
    assert_eq!(
        formats::digest::Digest::sha256_of(piped.as_bytes()),
        served,
        "byte-exact into a pipe"
    );
    let command = format!(
        "'{}' --root '{}' inspect --raw '{docker}' --tls-verify=false --registries-conf '{conf}'",
        env!("CARGO_BIN_EXE_sealos"),
        store.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("run script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.ends_with("}\n"),
        "a newline ends the manifest on a terminal: {shown:?}"
    );
}
