//! `sealos build --dry-run`: every example context's plan (snapshots), the text form, overrides, and the errors a
//! user meets (missing source, RUN, unknown instruction, no Kubefile, no --dry-run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../Kubefile-examples")
}

fn sealos(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(args)
        .current_dir(dir)
        // No helm: charts are discovered statically, the same on every machine.
        .env_remove("PATH")
        .output()
        .expect("the sealos binary runs")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sealos failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn stderr_failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "sealos unexpectedly succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).expect("utf-8 errors")
}

/// Replaces the BUILD* args (they describe the machine running the test) so snapshots hold everywhere.
fn without_host(mut plan: serde_json::Value) -> serde_json::Value {
    if let Some(plans) = plan["plans"].as_array_mut() {
        for p in plans {
            if let Some(args) = p["globalArgs"].as_object_mut() {
                for (k, v) in args.iter_mut() {
                    if k.starts_with("BUILD") {
                        *v = serde_json::Value::String("[host]".to_string());
                    }
                }
            }
        }
    }
    plan
}

fn plan_json(example: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "build",
        "--dry-run",
        "--format",
        "json",
        "--platform",
        "linux/amd64",
    ];
    args.extend_from_slice(extra);
    args.push(example);
    let out = sealos(&examples_dir(), &args);
    serde_json::from_str(&stdout_ok(&out)).expect("dry-run prints JSON")
}

const EXAMPLES: &[&str] = &[
    "calico",
    "cilium-manifests",
    "discovery",
    "ingress-nginx",
    "multi-stage",
    "offline-tars",
    "rancher",
    "rootfs-kubernetes",
    "runtime-app",
    "runtime-rootfs",
    "skopeo-patch",
];

#[test]
fn every_example_context_has_a_readme_and_a_snapshot_tested_plan() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("Kubefile-examples exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut tested: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    tested.push("multi-arch".to_string());
    tested.sort();
    assert_eq!(found, tested, "each example directory must be listed here");
    for name in &found {
        let readme = std::fs::read_to_string(examples_dir().join(name).join("README.md"))
            .expect("README.md");
        assert_eq!(
            readme.trim().lines().count(),
            1,
            "{name}/README.md is one line"
        );
    }
}

#[test]
fn example_plans_match_their_snapshots() {
    for example in EXAMPLES {
        let plan = plan_json(example, &[]);
        insta::assert_json_snapshot!(format!("plan_{example}"), without_host(plan));
    }
}

#[test]
fn multi_arch_example_copies_the_binary_of_each_platform() {
    let out = sealos(
        &examples_dir(),
        &[
            "build",
            "--dry-run",
            "--format",
            "json",
            "--platform",
            "linux/amd64,linux/arm64",
            "multi-arch",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    let files: Vec<&str> = plan["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .map(|p| {
            p["stages"][0]["steps"][2]["copy"]["files"][0]["path"]
                .as_str()
                .expect("a file")
        })
        .collect();
    assert_eq!(files, ["bin/amd64/helm", "bin/arm64/helm"]);
    insta::assert_json_snapshot!("plan_multi-arch", without_host(plan));
}

#[test]
fn chart_example_defaults_env_at_build_time_and_keeps_cmd_references() {
    let plan = plan_json("calico", &[]);
    let config = &plan["plans"][0]["config"];
    assert_eq!(
        config["Env"],
        serde_json::json!([
            format!("PATH={}", formats::kubefile::SCRATCH_PATH),
            "NAME=calico",
            "NAMESPACE=tigera-operator"
        ]),
        "FROM scratch starts with buildah's default PATH"
    );
    assert!(
        config["Cmd"][0]
            .as_str()
            .expect("cmd")
            .contains("helm upgrade -i $(NAME) charts/calico")
    );
    let files = plan["plans"][0]["stages"][0]["steps"][2]["copy"]["files"]
        .as_array()
        .expect("files")
        .clone();
    assert!(
        files
            .iter()
            .any(|f| f["path"] == "charts/calico/templates/deployment.yaml"
                && f["destination"] == "/charts/calico/templates/deployment.yaml")
    );
}

#[test]
fn rootfs_example_keeps_escaped_dollars_in_labels() {
    let plan = plan_json("rootfs-kubernetes", &[]);
    let labels = &plan["plans"][0]["config"]["Labels"];
    assert_eq!(labels["check"], "check.sh $registryData");
    assert_eq!(labels["sealos.io.type"], "rootfs");
    assert_eq!(
        plan["plans"][0]["config"]["Env"]
            .as_array()
            .expect("env")
            .len(),
        11,
        "ten ENV entries after FROM scratch's default PATH"
    );
}

#[test]
fn text_plan_of_the_chart_example_matches_its_snapshot() {
    let out = sealos(
        &examples_dir(),
        &["build", "--dry-run", "--platform", "linux/amd64", "calico"],
    );
    insta::assert_snapshot!("text_calico", stdout_ok(&out));
}

#[test]
fn command_line_labels_env_annotations_and_build_args_override_the_kubefile() {
    let plan = plan_json(
        "multi-stage",
        &[
            "--build-arg",
            "VERSION=v9",
            "--build-arg",
            "UNUSED=1",
            "--label",
            "version=cli",
            "--env",
            "EXTRA=1",
            "--annotation",
            "org.opencontainers.image.source=example",
            "-t",
            "example.com/app:v9",
        ],
    );
    let p = &plan["plans"][0];
    assert_eq!(
        p["config"]["Env"],
        serde_json::json!([
            format!("PATH={}", formats::kubefile::SCRATCH_PATH),
            "VERSION=v9",
            "EXTRA=1"
        ])
    );
    assert_eq!(p["config"]["Labels"]["version"], "cli");
    assert_eq!(
        p["annotations"]["org.opencontainers.image.source"],
        "example"
    );
    assert_eq!(p["unusedBuildArgs"], serde_json::json!(["UNUSED"]));
    assert_eq!(plan["tags"], serde_json::json!(["example.com/app:v9"]));
}

fn context_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    dir
}

#[test]
fn missing_copy_source_is_an_error_naming_the_kubefile_line() {
    let dir = context_with(&[
        (
            "Kubefile",
            "FROM scratch\nCOPY present.txt /\nCOPY charts/* /charts/\n",
        ),
        ("present.txt", "x"),
    ]);
    let err = stderr_failed(&sealos(dir.path(), &["build", "--dry-run", "."]));
    assert!(
        err.contains("error: ./Kubefile:3: source \"charts/*\" not found in the build context ."),
        "{err}"
    );
}

#[test]
fn run_is_refused_with_its_line() {
    let dir = context_with(&[("Kubefile", "FROM scratch\nRUN echo hi\n")]);
    let err = stderr_failed(&sealos(dir.path(), &["build", "--dry-run", "."]));
    assert!(
        err.contains(
            "error: ./Kubefile:2: RUN is not supported: cluster images are built without executing commands"
        ),
        "{err}"
    );
}

#[test]
fn syntax_errors_show_line_column_and_suggestion() {
    let dir = context_with(&[("Kubefile", "FROM scratch\nCOPPY . .\n")]);
    let err = stderr_failed(&sealos(dir.path(), &["build", "--dry-run", "."]));
    assert!(
        err.contains("error: ./Kubefile:2:1: unknown instruction \"COPPY\" (did you mean COPY?)"),
        "{err}"
    );
}

#[test]
fn default_kubefile_is_the_first_of_sealfile_kubefile_dockerfile_containerfile() {
    let dir = context_with(&[
        ("Dockerfile", "FROM scratch\nLABEL from=dockerfile\n"),
        ("Kubefile", "FROM scratch\nLABEL from=kubefile\n"),
        ("Containerfile", "FROM scratch\nLABEL from=containerfile\n"),
    ]);
    let out = sealos(dir.path(), &["build", "--dry-run", "--format", "json", "."]);
    let plan: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    assert_eq!(plan["kubefile"], "./Kubefile");
    assert_eq!(plan["plans"][0]["config"]["Labels"]["from"], "kubefile");

    let out = sealos(
        dir.path(),
        &[
            "build",
            "--dry-run",
            "--format",
            "json",
            "-f",
            "Containerfile",
            ".",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    assert_eq!(
        plan["plans"][0]["config"]["Labels"]["from"],
        "containerfile"
    );
}

#[test]
fn context_without_kubefile_says_which_names_were_looked_for() {
    let dir = context_with(&[("README.md", "nothing")]);
    let err = stderr_failed(&sealos(dir.path(), &["build", "--dry-run", "."]));
    assert!(
        err.contains(
            "no Kubefile in `.`: looked for Sealfile, Kubefile, Dockerfile, Containerfile"
        ),
        "{err}"
    );
    assert!(err.contains("hint: add a Kubefile"), "{err}");
}

#[test]
fn build_without_tag_or_output_asks_for_one() {
    let err = stderr_failed(&sealos(&examples_dir(), &["build", "calico"]));
    assert!(
        err.contains("error: nothing would name the built image"),
        "{err}"
    );
    assert!(err.contains("hint: add -t NAME:TAG"), "{err}");
}

/// The files a plan's context COPY/ADD steps write, as image paths.
fn planned_destinations(plan: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for stage in plan["plans"][0]["stages"].as_array().expect("stages") {
        for step in stage["steps"].as_array().expect("steps") {
            for f in step["copy"]["files"].as_array().into_iter().flatten() {
                out.push(f["destination"].as_str().expect("destination").to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every file under `root`, as `/`-rooted paths.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let path = e.expect("entry").path();
            let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
            out.push(rel);
            if path.is_dir() {
                dirs.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dry_run_leaves_out_what_dockerignore_excludes_exactly_as_the_build_does() {
    let dir = context_with(&[
        ("Kubefile", "FROM scratch\nCOPY . /\n"),
        (".dockerignore", "secret.txt\nlogs/*.log\n!logs/keep.log\n"),
        ("secret.txt", "password"),
        ("app.yaml", "a: 1\n"),
        ("logs/x.log", "x"),
        ("logs/keep.log", "k"),
    ]);
    let out = sealos(dir.path(), &["build", "--dry-run", "--format", "json", "."]);
    let plan: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON plan");
    let planned = planned_destinations(&plan);
    assert_eq!(
        planned,
        [
            "/.dockerignore",
            "/Kubefile",
            "/app.yaml",
            "/logs",
            "/logs/keep.log"
        ],
        "{plan:#}"
    );

    let store = tempfile::tempdir().expect("store");
    let built = tempfile::tempdir().expect("output");
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .arg("--root")
        .arg(store.path())
        .args(["build", "-q", "-o"])
        .arg(format!("type=local,dest={}", built.path().display()))
        .arg(dir.path())
        .env_remove("PATH")
        .output()
        .expect("the sealos binary runs");
    stdout_ok(&out);
    assert_eq!(
        files_under(built.path()),
        planned,
        "the build wrote another plan"
    );
}
