//! Discovery renders charts with the values the install really passes (issue 22, points 1-3), through the
//! real binary (`sealos build --dry-run --format json`), with the real helm as the oracle:
//! - the CMD is evaluated as `sealos run` evaluates it (`$(HELM_OPTS)` from the image ENV and `--env`);
//! - scripts the CMD runs are followed (`-f values-prod.yaml`, `${VAR:-default}`, one level deeper);
//! - what cannot be resolved (`$(date)`) is a warning naming `script:line`, an error with `--strict`;
//! - `--chart-renderer=helm` gives the same images as the native renderer;
//! - a chart whose `kubeVersion` refuses the version is an error naming it; a rootfs label sets the version.

mod build_common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// Writes `files` (path, text) under a new temporary context.
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// `sealos build --dry-run --format json ARGS... CONTEXT`.
fn dry_run(ctx: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args([
            "build",
            "--dry-run",
            "--format",
            "json",
            "--platform",
            "linux/amd64",
        ])
        .args(args)
        .arg(ctx)
        .output()
        .expect("the sealos binary runs")
}

fn json_ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "sealos failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn images(plan: &serde_json::Value) -> BTreeSet<String> {
    plan["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| i["reference"].as_str().expect("reference").to_string())
        .collect()
}

fn warnings(plan: &serde_json::Value) -> Vec<String> {
    plan["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| {
            format!(
                "{}: {}",
                w["location"].as_str().unwrap(),
                w["message"].as_str().unwrap()
            )
        })
        .collect()
}

/// The images real helm's `helm template ARGS` renders in `ctx` (every `image:` value), normalised as
/// discovery writes them.
fn helm_images(ctx: &Path, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new("helm")
        .arg("template")
        .args(args)
        .current_dir(ctx)
        .output()
        .expect("helm runs (installed by .ci/helm)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(|v| {
            let v = v.trim().trim_matches('"');
            formats::reference::Reference::parse(v)
                .expect("a reference")
                .to_string()
        })
        .collect()
}

const INGRESS_CHART: &str = "apiVersion: v2\nname: ingress\nversion: 1.0.0\nappVersion: 1.10.0\n";
const INGRESS_VALUES: &str = "controller:
  image:
    registry: registry.k8s.io
    image: ingress-nginx/controller
    tag: \"\"
metrics:
  enabled: false
  image: quay.io/example/metrics-exporter:v2
";
const INGRESS_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-controller
  namespace: {{ .Release.Namespace }}
spec:
  template:
    spec:
      containers:
        - name: controller
          image: \"{{ .Values.controller.image.registry }}/{{ .Values.controller.image.image }}:{{ .Values.controller.image.tag | default (printf \"v%s\" .Chart.AppVersion) }}\"
        {{- if .Values.metrics.enabled }}
        - name: metrics
          image: {{ .Values.metrics.image }}
        {{- end }}
";

fn ingress_context(kubefile: &str) -> tempfile::TempDir {
    context(&[
        ("Kubefile", kubefile),
        ("charts/ingress-nginx/Chart.yaml", INGRESS_CHART),
        ("charts/ingress-nginx/values.yaml", INGRESS_VALUES),
        (
            "charts/ingress-nginx/templates/deployment.yaml",
            INGRESS_DEPLOYMENT,
        ),
    ])
}

const HELM_OPTS_KUBEFILE: &str = "FROM scratch
ENV NAME=ingress NAMESPACE=ingress-system CHARTS=./charts/ingress-nginx
ENV HELM_OPTS=\"--set controller.image.tag=v1.14.0 --set metrics.enabled=true\"
COPY . .
CMD [\"helm upgrade -i $(NAME) $(CHARTS) -n $(NAMESPACE) $(HELM_OPTS)\"]
";

#[test]
fn cmd_variables_from_env_give_the_chart_and_its_set_pairs() {
    let ctx = ingress_context(HELM_OPTS_KUBEFILE);
    let plan = json_ok(&dry_run(ctx.path(), &["--strict"]));
    let expected: BTreeSet<String> = [
        "quay.io/example/metrics-exporter:v2",
        "registry.k8s.io/ingress-nginx/controller:v1.14.0",
    ]
    .map(String::from)
    .into();
    assert_eq!(images(&plan), expected, "{:#?}", warnings(&plan));
    // The oracle: real helm with the command `sealos run` will run.
    assert_eq!(
        helm_images(
            ctx.path(),
            &[
                "ingress",
                "./charts/ingress-nginx",
                "-n",
                "ingress-system",
                "--set",
                "controller.image.tag=v1.14.0",
                "--set",
                "metrics.enabled=true"
            ]
        ),
        expected
    );
    let controller = &plan["images"][1]["sources"][0];
    assert_eq!(controller["kind"], "chart-rendered");
    assert_eq!(controller["template"], "ingress/templates/deployment.yaml");
    assert_eq!(controller["line"], 11);

    // `--env` overrides the image ENV, as `sealos run -e` would.
    let plan = json_ok(&dry_run(
        ctx.path(),
        &["--env", "HELM_OPTS=--set controller.image.tag=v1.15.1"],
    ));
    assert_eq!(
        images(&plan),
        ["registry.k8s.io/ingress-nginx/controller:v1.15.1".to_string()].into()
    );
}

#[test]
fn chart_renderer_helm_gives_the_same_images_as_native() {
    let ctx = ingress_context(HELM_OPTS_KUBEFILE);
    let native = json_ok(&dry_run(ctx.path(), &[]));
    let helm = json_ok(&dry_run(ctx.path(), &["--chart-renderer", "helm"]));
    assert_eq!(images(&native), images(&helm));
    assert_eq!(
        native["images"][1]["sources"][0], helm["images"][1]["sources"][0],
        "same template and line"
    );
    assert!(warnings(&helm).is_empty(), "{:#?}", warnings(&helm));
}

const APP_CHART: &str = "apiVersion: v2\nname: app\nversion: 0.1.0\nappVersion: \"3.0.0\"\n";
const APP_VALUES: &str = "image:
  repository: ghcr.io/example/app
  tag: \"\"
sidecar:
  enabled: false
  image: ghcr.io/example/sidecar:v1
";
const APP_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: app
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"
        {{- if .Values.sidecar.enabled }}
        - name: sidecar
          image: {{ .Values.sidecar.image }}
        {{- end }}
";
const INSTALL_SH: &str = "#!/bin/bash
set -e
# Installs the app.
NS=${NAMESPACE:-apps}
export VALUES=values-prod.yaml
helm upgrade --install app ./charts/app \\
  -n \"$NS\" \\
  -f ${VALUES} \\
  --set image.tag=${APP_TAG:-v3.1.0}
bash scripts/post.sh
";
const POST_SH: &str =
    "helm template extra charts/extra --set image=quay.io/example/extra:${EXTRA_TAG:-v9}\n";

fn script_context(install_sh: &str) -> tempfile::TempDir {
    context(&[
        (
            "Kubefile",
            "FROM scratch\nENV NAMESPACE=prod\nCOPY . .\nCMD [\"bash install.sh\"]\n",
        ),
        ("install.sh", install_sh),
        ("scripts/post.sh", POST_SH),
        ("values-prod.yaml", "sidecar:\n  enabled: true\n"),
        ("charts/app/Chart.yaml", APP_CHART),
        ("charts/app/values.yaml", APP_VALUES),
        ("charts/app/templates/deployment.yaml", APP_DEPLOYMENT),
        (
            "charts/extra/Chart.yaml",
            "apiVersion: v2\nname: extra\nversion: 0.1.0\n",
        ),
        ("charts/extra/values.yaml", "image: \"\"\n"),
        (
            "charts/extra/templates/pod.yaml",
            "{{- if .Values.image }}\napiVersion: v1\nkind: Pod\nmetadata:\n  name: extra\nspec:\n  containers:\n    - name: extra\n      image: {{ .Values.image }}\n{{- end }}\n",
        ),
    ])
}

#[test]
fn scripts_named_by_the_cmd_are_followed_with_their_values_and_defaults() {
    let ctx = script_context(INSTALL_SH);
    let plan = json_ok(&dry_run(ctx.path(), &["--strict"]));
    let expected: BTreeSet<String> = [
        "ghcr.io/example/app:v3.1.0",
        "ghcr.io/example/sidecar:v1",
        "quay.io/example/extra:v9",
    ]
    .map(String::from)
    .into();
    assert_eq!(images(&plan), expected, "{:#?}", warnings(&plan));
    // Each image says the chart was rendered as an install script installs it, and which line.
    for image in plan["images"].as_array().expect("images") {
        for source in image["sources"].as_array().expect("sources") {
            assert_eq!(source["found"], "script", "{source}");
            assert!(
                source["script"]
                    .as_str()
                    .is_some_and(|s| s.contains(".sh:")),
                "{source}"
            );
        }
    }
    let mut oracle = helm_images(
        ctx.path(),
        &[
            "app",
            "./charts/app",
            "-n",
            "prod",
            "-f",
            "values-prod.yaml",
            "--set",
            "image.tag=v3.1.0",
        ],
    );
    oracle.extend(helm_images(
        ctx.path(),
        &[
            "extra",
            "charts/extra",
            "--set",
            "image=quay.io/example/extra:v9",
        ],
    ));
    assert_eq!(oracle, expected);

    // The image ENV and --env reach the script's `${VAR:-default}`.
    let plan = json_ok(&dry_run(ctx.path(), &["--env", "APP_TAG=v4.0.0"]));
    assert!(
        images(&plan).contains("ghcr.io/example/app:v4.0.0"),
        "{plan}"
    );
    assert!(!images(&plan).contains("ghcr.io/example/app:v3.1.0"));
}

#[test]
fn an_unresolvable_command_substitution_is_a_warning_naming_the_script_line() {
    let script = INSTALL_SH.replace(
        "--set image.tag=${APP_TAG:-v3.1.0}",
        "--set image.tag=${APP_TAG:-v3.1.0} \\\n  --set stamp=$(date +%s)",
    );
    let ctx = script_context(&script);
    let plan = json_ok(&dry_run(ctx.path(), &[]));
    let warnings = warnings(&plan);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "install.sh:6: --set `stamp=$(date +%s)` of a helm command cannot be resolved statically ($(date +%s) not known at build time"
        ),
        "{warnings:#?}"
    );
    // The rest of the command still counts.
    assert!(images(&plan).contains("ghcr.io/example/sidecar:v1"));
    let out = dry_run(ctx.path(), &["--strict"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("  install.sh:6: --set `stamp=$(date +%s)`"),
        "{err}"
    );
}

#[test]
fn an_unset_cmd_variable_is_a_warning_naming_the_cmd() {
    let ctx = ingress_context(
        "FROM scratch\nCOPY . .\nCMD [\"helm upgrade -i ingress charts/ingress-nginx $(HELM_OPTS)\"]\n",
    );
    let plan = json_ok(&dry_run(ctx.path(), &[]));
    let warnings = warnings(&plan);
    assert_eq!(
        warnings,
        [
            "CMD: argument `$(HELM_OPTS)` of a helm command cannot be resolved statically ($(HELM_OPTS) not known at build time: set it with ENV in the Kubefile or with --env); left out of discovery"
        ]
    );
    assert_eq!(
        images(&plan),
        ["registry.k8s.io/ingress-nginx/controller:v1.10.0".to_string()].into()
    );
}

fn kube_context(kubefile: &str) -> tempfile::TempDir {
    context(&[
        ("Kubefile", kubefile),
        (
            "charts/future/Chart.yaml",
            "apiVersion: v2\nname: future\nversion: 0.1.0\nkubeVersion: \">=1.99.0-0\"\n",
        ),
        (
            "charts/future/templates/pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: ghcr.io/example/future:{{ .Capabilities.KubeVersion.Minor }}\n",
        ),
    ])
}

#[test]
fn a_chart_whose_kube_version_refuses_the_cluster_is_an_error_naming_it() {
    let ctx = kube_context("FROM scratch\nCOPY . .\n");
    for renderer in ["native", "helm"] {
        let out = dry_run(ctx.path(), &["--chart-renderer", renderer]);
        assert!(!out.status.success(), "{renderer}: refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("chart `charts/future` cannot be installed:")
                && err.contains("chart requires kubeVersion: >=1.99.0-0 which is incompatible with Kubernetes v1.35.0")
                && err.contains("--kube-version"),
            "{renderer}: {err}"
        );
    }
    let plan = json_ok(&dry_run(ctx.path(), &["--kube-version", "v1.99.2"]));
    assert_eq!(
        images(&plan),
        ["ghcr.io/example/future:99".to_string()].into()
    );
}

#[test]
fn a_rootfs_version_label_is_the_kubernetes_version_charts_see() {
    let ctx = kube_context("FROM scratch\nLABEL sealos.io.type=rootfs version=v1.99.0\nCOPY . .\n");
    let plan = json_ok(&dry_run(ctx.path(), &[]));
    assert_eq!(
        images(&plan),
        ["ghcr.io/example/future:99".to_string()].into()
    );
}

/// A real build (not a dry run) renders for the Kubernetes version of the rootfs image it is built on: the
/// base image's `version` label, read from the store.
#[test]
fn a_build_on_a_rootfs_image_renders_for_its_kubernetes_version() {
    let store = tempfile::tempdir().expect("temp dir");
    let chart = [
        (
            "charts/future/Chart.yaml",
            "apiVersion: v2\nname: future\nversion: 0.1.0\nkubeVersion: \">=1.99.0-0\"\n",
        ),
        (
            "charts/future/templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v{{ .Capabilities.KubeVersion.Minor }}\n",
        ),
    ];
    for (tag, labels) in [
        (
            "rootfs:v1.99",
            "LABEL sealos.io.type=rootfs version=v1.99.0\n",
        ),
        ("plain:v1", ""),
    ] {
        let base = context(&[
            ("Kubefile", &format!("FROM scratch\n{labels}COPY a a\n")),
            ("a", "a"),
        ]);
        build_common::build_ok(
            store.path(),
            &["-t", tag, base.path().to_str().expect("utf-8")],
        );
    }
    let app = |base: &str| {
        let mut files = vec![(
            "Kubefile".to_string(),
            format!("FROM {base}\nCOPY charts charts\n"),
        )];
        files.extend(chart.iter().map(|(p, t)| (p.to_string(), t.to_string())));
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        context(&files)
    };
    let on_rootfs = app("rootfs:v1.99");
    build_common::build_ok(
        store.path(),
        &[
            "--pull",
            "never",
            "-t",
            "app:v1",
            on_rootfs.path().to_str().expect("utf-8"),
        ],
    );
    let on_plain = app("plain:v1");
    let out = build_common::build(
        store.path(),
        &[
            "--pull",
            "never",
            "-t",
            "app:v2",
            on_plain.path().to_str().expect("utf-8"),
        ],
    );
    assert!(
        !out.status.success(),
        "no rootfs label: the default version is refused"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chart `charts/future` cannot be installed") && err.contains("v1.35.0"),
        "{err}"
    );
    build_common::build_ok(
        store.path(),
        &[
            "--pull",
            "never",
            "--kube-version",
            "1.99.1",
            "-t",
            "app:v3",
            on_plain.path().to_str().expect("utf-8"),
        ],
    );
}
