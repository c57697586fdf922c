//! `sealos build --dry-run --format json` finds every image an install pulls, not only `image:` keys of pod
//! specs: env values named `*IMAGE*`, `args` items alone or as `--flag=REF`, `spec.image` and `baseImage` +
//! `version` of custom resources, and pod templates held in ConfigMap data (sidecar injectors). Each source
//! says how the image was found (`found`) and the key path of the value; plain words, references without a
//! registry host in flags, and template text in an injector's template are not images. The chart's images
//! are checked against the real helm's rendering: each reported template line holds the image.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

/// The chart `scanner` (one image of each class), shared with builder's recall measurement.
const SCANNER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../testdata/discovery-charts/scanner"
);

/// The same classes in a plain manifest, and a ConfigMap whose pod template is the data value itself.
const OPERATOR: &str = "apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - name: operator
        image: ghcr.example.io/org/operator:v2.0.0
        env:
        - name: RELATED_IMAGE_DB
          value: ghcr.example.io/org/postgres:16
        args: [\"--backup-image=ghcr.example.io/org/backup:v2.0.0\"]
---
apiVersion: v1
kind: ConfigMap
data:
  sidecar: |
    containers:
    - name: agent
      image: ghcr.example.io/org/agent:v1
";

/// Writes `files` (path, text) under `dir`.
fn write_tree(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create directory");
        std::fs::write(path, text).expect("write fixture");
    }
}

/// A context whose CMD installs the `scanner` chart, with a manifest, a shim list and an archive.
fn context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_tree(
        dir.path(),
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY . .\nCMD [\"kubectl apply -f manifests/\", \"helm install scanner charts/scanner\"]\n",
            ),
            ("manifests/operator.yaml", OPERATOR),
            ("images/shim/extra", "registry.example.io/pause:3.9\n"),
            (
                "images/skopeo/tar.txt",
                "docker-archive:app.tar@example.io/team/app:v1\n",
            ),
            ("images/skopeo/app.tar", ""),
        ],
    );
    copy_dir(Path::new(SCANNER), &dir.path().join("charts/scanner"));
    dir
}

fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("create directory");
    for entry in std::fs::read_dir(src).expect("read the chart") {
        let entry = entry.expect("directory entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy a chart file");
        }
    }
}

fn dry_run(context: &Path, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args([
            "build",
            "--dry-run",
            "--format",
            "json",
            "--platform",
            "linux/amd64",
        ])
        .args(extra)
        .arg(".")
        .current_dir(context)
        .env_remove("SEALOS_ROOT")
        .output()
        .expect("the sealos binary runs");
    serde_json::from_str(&stdout_ok(&out)).expect("dry-run prints JSON")
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// Each image's sources, by reference.
fn sources(plan: &Value) -> BTreeMap<String, Vec<Value>> {
    plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            (
                i["reference"].as_str().expect("reference").to_string(),
                i["sources"].as_array().expect("sources").clone(),
            )
        })
        .collect()
}

/// The chart's images: (reference, template, key path), as discovery must report them.
const RENDERED: [(&str, &str, &str); 8] = [
    (
        "docker.example.io/mesh/proxyv2:1.20.0",
        "scanner/templates/injector.yaml",
        "data[config].template.containers[0].image",
    ),
    (
        "example.io/prometheus/alertmanager:v0.27.0",
        "scanner/templates/monitoring.yaml",
        "spec.image",
    ),
    (
        "example.io/storage/engine:v1.6.0",
        "scanner/templates/manager.yaml",
        "spec.template.spec.containers[0].args[0]",
    ),
    (
        "example.io/storage/manager:1.6.0",
        "scanner/templates/manager.yaml",
        "spec.template.spec.containers[0].image",
    ),
    (
        "quay.example.io/certs/acmesolver:v1.6.0",
        "scanner/templates/manager.yaml",
        "spec.template.spec.containers[0].args[1]",
    ),
    (
        "quay.example.io/prometheus-operator/prometheus-config-reloader:v0.70.0",
        "scanner/templates/manager.yaml",
        "spec.template.spec.containers[0].args[3]",
    ),
    (
        "quay.example.io/prometheus/prometheus:v2.48.0",
        "scanner/templates/monitoring.yaml",
        "spec.baseImage",
    ),
    (
        "registry.example.io/sig-storage/csi-attacher:v4.5.0",
        "scanner/templates/manager.yaml",
        "spec.template.spec.containers[0].env[CSI_ATTACHER_IMAGE]",
    ),
];

/// The rendered text of each document by template, as `helm template` prints it (the lines after each
/// `# Source:` comment; a template rendering several documents has them in order).
fn helm_documents(context: &Path) -> Vec<(String, Vec<String>)> {
    let out = Command::new("helm")
        .args(["template", "dryrun", "charts/scanner"])
        .current_dir(context)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("this test needs the real `helm` on PATH (.ci/helm installs it)");
    let text = stdout_ok(&out);
    let mut docs: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(template) = line.strip_prefix("# Source: ") {
            docs.push((template.to_string(), Vec::new()));
        } else if let Some((_, lines)) = docs.last_mut() {
            lines.push(line.to_string());
        }
    }
    docs
}

fn check_chart_images(plan: &Value, context: &Path) {
    let found = sources(plan);
    let chart: BTreeMap<&String, &Vec<Value>> = found
        .iter()
        .filter(|(_, s)| s.iter().any(|s| s["found"] == "rendered-chart"))
        .collect();
    let references: Vec<&str> = chart.keys().map(|r| r.as_str()).collect();
    let expected: Vec<&str> = RENDERED.iter().map(|r| r.0).collect();
    assert_eq!(references, expected, "{plan:#}");
    let docs = helm_documents(context);
    for (reference, template, key) in RENDERED {
        let [source] = chart[&reference.to_string()].as_slice() else {
            panic!(
                "{reference}: not one source: {:?}",
                chart[&reference.to_string()]
            );
        };
        assert_eq!(source["kind"], "chart-rendered", "{source}");
        assert_eq!(source["chart"], "scanner", "{source}");
        assert_eq!(source["template"], template, "{source}");
        assert_eq!(source["key"], key, "{source}");
        // Helm's rendering of that template holds the image on that line (for `baseImage` + `version`,
        // the line of the version, the field that completes it).
        let line = source["line"].as_u64().expect("line") as usize;
        let written = if key.ends_with("baseImage") {
            reference.rsplit_once(':').expect("tag").1
        } else {
            reference
        };
        assert!(
            docs.iter()
                .filter(|(t, _)| t == template)
                .any(|(_, lines)| lines.get(line - 1).is_some_and(|l| l.contains(written))),
            "helm's {template} has no `{written}` on line {line}: {docs:#?}"
        );
    }
}

#[test]
fn rendered_charts_give_images_from_env_args_custom_resources_and_injector_templates() {
    let ctx = context();
    let plan = dry_run(ctx.path(), &[]);
    check_chart_images(&plan, ctx.path());
    let all = sources(&plan);
    for not_an_image in [
        "docker.io/library/nginx:1.25",
        "docker.io/library/localhost:8080",
        "ignored.example.io/not/a-pod:v1",
        "docker.io/library/always:latest",
    ] {
        assert!(
            !all.contains_key(not_an_image),
            "{not_an_image} found: {plan:#}"
        );
    }
    assert_eq!(
        plan["warnings"],
        json!([]),
        "no warning for what is not an image"
    );
}

#[test]
fn the_helm_binary_renderer_finds_the_same_images() {
    let ctx = context();
    let plan = dry_run(ctx.path(), &["--chart-renderer", "helm"]);
    check_chart_images(&plan, ctx.path());
}

#[test]
fn every_source_says_how_the_image_was_found() {
    let ctx = context();
    let plan = dry_run(ctx.path(), &[]);
    let all = sources(&plan);
    assert_eq!(
        all["ghcr.example.io/org/postgres:16"],
        [
            json!({"found": "manifest", "kind": "manifest", "file": "manifests/operator.yaml", "line": 11,
                "key": "spec.template.spec.containers[0].env[RELATED_IMAGE_DB]"})
        ]
    );
    assert_eq!(
        all["ghcr.example.io/org/backup:v2.0.0"],
        [
            json!({"found": "manifest", "kind": "manifest", "file": "manifests/operator.yaml", "line": 12,
                "key": "spec.template.spec.containers[0].args[0]"})
        ]
    );
    assert_eq!(
        all["ghcr.example.io/org/agent:v1"],
        [
            json!({"found": "manifest", "kind": "manifest", "file": "manifests/operator.yaml", "line": 20,
                "key": "data[sidecar].containers[0].image"})
        ]
    );
    assert_eq!(
        all["registry.example.io/pause:3.9"],
        [json!({"found": "list", "kind": "list", "file": "images/shim/extra", "line": 1})]
    );
    assert_eq!(
        plan["archives"][0]["source"],
        json!({"found": "archive", "kind": "list", "file": "images/skopeo/tar.txt", "line": 1})
    );
    assert_eq!(all.len(), 5 + RENDERED.len(), "{plan:#}");
}

#[test]
fn a_chart_read_statically_says_so_in_found() {
    let ctx = context();
    // The helm renderer with no helm to run falls back to reading the chart's values.
    let empty = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args([
            "build",
            "--dry-run",
            "--format",
            "json",
            "--chart-renderer",
            "helm",
            ".",
        ])
        .current_dir(ctx.path())
        .env("PATH", empty.path())
        .env_remove("SEALOS_ROOT")
        .output()
        .expect("the sealos binary runs");
    let plan: Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    let all = sources(&plan);
    assert_eq!(
        all["docker.example.io/mesh/proxyv2:1.20.0"],
        [
            json!({"found": "chart-values", "kind": "chart-values", "chart": "scanner",
                "file": "charts/scanner/values.yaml", "line": 13, "key": "proxy.image"})
        ]
    );
}
