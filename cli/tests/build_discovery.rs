//! `sealos build --dry-run` lists the images a context references, with their sources: the `discovery`
//! example with its chart rendered natively (no helm on PATH; the lines are real helm's), rendered by a
//! stand-in helm with `--chart-renderer=helm` (its exact arguments asserted), in text and JSON, and
//! `--strict`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../Kubefile-examples/discovery")
}

/// Runs `sealos build --dry-run ARGS... <example>` with only `path` on PATH.
fn dry_run(path: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["build", "--dry-run", "--platform", "linux/amd64"])
        .args(args)
        .arg(".")
        .current_dir(example())
        .env("PATH", path)
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

/// A stand-in for helm in `dir`: records its arguments (one a line) in `dir/helm-args` and prints canned
/// `helm template` output for the example's chart and its redis subchart. Only shell builtins: PATH holds
/// nothing else.
fn fake_helm(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let args = dir.join("helm-args");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nprintf '%s' '{RENDERED}'\n",
        args.display()
    );
    let helm = dir.join("helm");
    std::fs::write(&helm, script).expect("write the stand-in helm");
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    args
}

const RENDERED: &str = "---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
        - name: app
          image: \"example/app:2.1.0\"
        - name: git-sync
          image: registry.k8s.io/git-sync/git-sync:v4.2.1
---
# Source: app/charts/redis/templates/statefulset.yaml
apiVersion: apps/v1
kind: StatefulSet
spec:
  template:
    spec:
      containers:
        - name: redis
          image: docker.io/bitnami/redis:7.2.5
";

const RENDERED_TABLE: &str = "
images (11):
  docker.io/bitnami/kubectl:1.29                                                                          manifests/cronjob.yml:14
  docker.io/bitnami/redis:7.2.5                                                                           app/charts/redis/templates/statefulset.yaml:10 (chart app, helm template)
  docker.io/example/app:2.1.0                                                                             app/templates/deployment.yaml:10 (chart app, helm template)
  docker.io/library/busybox:1.36@sha256:9d75f0d7c398df565d7ac04c6819b62d6d8f9560f5eb4672596ecd8f7e96ae91  manifests/deployment.yaml:10
  docker.io/library/nginx:1.25                                                                            manifests/deployment.yaml:13
                                                                                                          images/shim/extra-images:2
  ghcr.io/example/backup:v1                                                                               manifests/crd/database.yaml:31
  ghcr.io/example/postgres:16.1                                                                           manifests/crd/database.yaml:29
  quay.io/example/webhook:v2                                                                              manifests/deployment.yaml:16
  quay.io/prometheus/node-exporter:v1.7.0                                                                 manifests/monitor.yaml.tmpl:10
  registry.k8s.io/git-sync/git-sync:v4.2.1                                                                app/templates/deployment.yaml:12 (chart app, helm template)
  registry.k8s.io/pause:3.9                                                                               images/shim/extra-images:3
archive docker-archive images/skopeo/offline.tar -> example.com/team/offline:v1  [images/skopeo/tar.txt:1]
warning: manifests/monitor.yaml.tmpl:12: not valid YAML (while parsing a block mapping, did not find expected key); only its literal `image:` lines were read
warning: manifests/monitor.yaml.tmpl:12: `{{ .REGISTRY }}/agent:v1` is template text, not embedded (invalid reference `{{ .REGISTRY }}/agent:v1`: registry `{{ .REGISTRY }}` is not a valid `host[:port]` (letters, digits, `-` and `.`, or `[ipv6]`, then an optional numeric port))
";

#[test]
fn text_dry_run_without_helm_lists_every_image_with_its_sources_then_warnings() {
    let empty = tempfile::tempdir().expect("temp dir");
    let text = stdout_ok(&dry_run(empty.path(), &[]));
    let (_, images) = text.split_once("\nimages (").expect("an images section");
    assert_eq!(format!("\nimages ({images}"), RENDERED_TABLE);
}

#[test]
fn json_dry_run_has_images_with_typed_sources_archives_and_warnings() {
    let empty = tempfile::tempdir().expect("temp dir");
    let out = stdout_ok(&dry_run(empty.path(), &["--format", "json"]));
    let plan: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let references: Vec<&str> = plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["reference"].as_str().expect("reference"))
        .collect();
    assert_eq!(
        references,
        [
            "docker.io/bitnami/kubectl:1.29",
            "docker.io/bitnami/redis:7.2.5",
            "docker.io/example/app:2.1.0",
            "docker.io/library/busybox:1.36@sha256:9d75f0d7c398df565d7ac04c6819b62d6d8f9560f5eb4672596ecd8f7e96ae91",
            "docker.io/library/nginx:1.25",
            "ghcr.io/example/backup:v1",
            "ghcr.io/example/postgres:16.1",
            "quay.io/example/webhook:v2",
            "quay.io/prometheus/node-exporter:v1.7.0",
            "registry.k8s.io/git-sync/git-sync:v4.2.1",
            "registry.k8s.io/pause:3.9",
        ]
    );
    // Only the fields asserted here: others (how each image was found) are added beside them.
    let fields = |source: &serde_json::Value, keys: &[&str]| -> serde_json::Value {
        keys.iter()
            .map(|k| (k.to_string(), source[*k].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let sources = |i: usize, keys: &[&str]| -> Vec<serde_json::Value> {
        plan["images"][i]["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .map(|s| fields(s, keys))
            .collect()
    };
    assert_eq!(
        sources(4, &["kind", "file", "line"]),
        [
            serde_json::json!({"kind": "manifest", "file": "manifests/deployment.yaml", "line": 13}),
            serde_json::json!({"kind": "list", "file": "images/shim/extra-images", "line": 2}),
        ]
    );
    assert_eq!(
        sources(1, &["kind", "chart", "template", "line"]),
        [serde_json::json!({
            "kind": "chart-rendered", "chart": "app",
            "template": "app/charts/redis/templates/statefulset.yaml", "line": 10
        })]
    );
    assert_eq!(
        plan["archives"],
        serde_json::json!([{
            "transport": "docker-archive",
            "file": "images/skopeo/offline.tar",
            "reference": "example.com/team/offline:v1",
            "source": {"found": "archive", "kind": "list", "file": "images/skopeo/tar.txt", "line": 1},
        }])
    );
    let locations: Vec<&str> = plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w["location"].as_str().expect("location"))
        .collect();
    assert_eq!(
        locations,
        [
            "manifests/monitor.yaml.tmpl:12",
            "manifests/monitor.yaml.tmpl:12"
        ]
    );
}

#[test]
fn helm_on_path_renders_the_chart_with_cmd_values_files_and_set_pairs() {
    let bin = tempfile::tempdir().expect("temp dir");
    let args = fake_helm(bin.path());
    let out = stdout_ok(&dry_run(
        bin.path(),
        &["--format", "json", "--chart-renderer", "helm"],
    ));
    assert_eq!(
        std::fs::read_to_string(&args).expect("the stand-in helm ran"),
        "template\ndryrun\ncharts/app\n--namespace\napp\n--values\ncharts/app.values.yaml\n--values\nvalues/prod.yaml\n--set\nredis.enabled=true\n"
    );
    let plan: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let redis = plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .find(|i| i["reference"] == "docker.io/bitnami/redis:7.2.5")
        .expect("the subchart enabled by --set is found");
    assert_eq!(redis["sources"][0]["kind"], "chart-rendered");
    assert_eq!(
        redis["sources"][0]["template"],
        "app/charts/redis/templates/statefulset.yaml"
    );
    assert_eq!(redis["sources"][0]["line"], 8);
    assert_eq!(plan["images"].as_array().expect("images").len(), 11);
    assert_eq!(plan["warnings"].as_array().expect("warnings").len(), 2);
}

#[test]
fn strict_fails_on_discovery_warnings_and_names_each() {
    let empty = tempfile::tempdir().expect("temp dir");
    let out = dry_run(empty.path(), &["--strict"]);
    assert!(!out.status.success(), "--strict must fail with warnings");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("image discovery found 2 problem(s) and --strict makes them errors:"),
        "{err}"
    );
    assert!(
        !err.contains("charts/app"),
        "the chart renders natively: {err}"
    );
    assert!(
        err.contains(
            "  manifests/monitor.yaml.tmpl:12: `{{ .REGISTRY }}/agent:v1` is template text"
        ),
        "{err}"
    );
}

/// Own fixtures for YAML shapes go-yaml (kubectl, helm) loads: a CRD-style description continued at its
/// key's column next to a split image, merge keys, several documents, a BOM with CRLF line ends, tabs.
const KUBECTL_YAML: [(&str, &str); 5] = [
    (
        "manifests/crd.yaml",
        "kind: Operator\nspec:\n  versions:\n  - description: 'Operator settings, as the\n    upstream CRD writes them: continued at the key''s column\n    twice'\n    images:\n      envoy:\n        repository: example/envoy\n        tag: v1.30.1\n  - description: \"Second \\\"form\\\"\n    continued\"\n    args: [--a,\n    --b]\n    image: example/contour:v1.23.0\n",
    ),
    (
        "manifests/merge.yaml",
        "defaults: &defaults\n  registry: ghcr.io\n  repository: example/base\n  tag: v1\nworker:\n  image:\n    <<: *defaults\n    tag: v2\n",
    ),
    (
        "manifests/multi.yaml",
        "---\nkind: A\nimage: example/first:1\n...\n---\n# only a comment\n---\nkind: B\nimage: &img example/second:2\nsidecar:\n  image: *img\n",
    ),
    (
        "manifests/bom-crlf.yaml",
        "\u{feff}image: example/bom:1\r\n---\r\nspec:\r\n  containers:\r\n  - name: a\r\n    image: 'example/crlf:1'\r\n    description: 'x\r\n    y'\r\n",
    ),
    (
        "manifests/tabs.yaml",
        "kind: Pod\nspec:\n  containers:\n  - name: a\tb\n    note: 'tab\tinside\n\tand tab-indented'\n    image:\texample/tabs:1\n",
    ),
];

#[test]
fn yaml_that_kubectl_accepts_is_walked_and_passes_strict() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Kubefile"), "FROM scratch\nCOPY . .\n").expect("write");
    for (name, content) in KUBECTL_YAML {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args([
            "build",
            "--dry-run",
            "--strict",
            "--platform",
            "linux/amd64",
        ])
        .args(["--format", "json", "."])
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .output()
        .expect("the sealos binary runs");
    let plan: serde_json::Value = serde_json::from_str(&stdout_ok(&out)).expect("JSON");
    let found: Vec<String> = plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            let source = &i["sources"][0];
            format!(
                "{} {}:{}",
                i["reference"].as_str().expect("reference"),
                source["file"].as_str().expect("file"),
                source["line"]
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "docker.io/example/bom:1 manifests/bom-crlf.yaml:1",
            "docker.io/example/contour:v1.23.0 manifests/crd.yaml:15",
            "docker.io/example/crlf:1 manifests/bom-crlf.yaml:6",
            "docker.io/example/envoy:v1.30.1 manifests/crd.yaml:10",
            "docker.io/example/first:1 manifests/multi.yaml:3",
            "docker.io/example/second:2 manifests/multi.yaml:9",
            "docker.io/example/tabs:1 manifests/tabs.yaml:7",
            "ghcr.io/example/base:v1 manifests/merge.yaml:4",
            "ghcr.io/example/base:v2 manifests/merge.yaml:8",
        ]
    );
    assert_eq!(plan["warnings"], serde_json::json!([]));
}
