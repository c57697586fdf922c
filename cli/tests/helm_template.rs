//! `sealos helm template` against `helm template` (v4.1.4, the `helm` on PATH): same arguments, same stdout;
//! failures name the same template file and line. The charts are the renderer's corpus
//! (testdata/charts); `.ci/helm` installs helm.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus(chart: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/charts")
        .join(chart)
}

fn sealos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["helm", "template"])
        .args(args)
        .output()
        .expect("run sealos")
}

fn helm(args: &[&str]) -> Output {
    Command::new("helm")
        .arg("template")
        .args(args)
        .env_remove("HELM_NAMESPACE")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("`helm` (v4.1.4) must be on PATH for this test: install it with .ci/helm")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs both with `args` and asserts both succeed with the same stdout.
fn assert_same_output(args: &[&str]) {
    let theirs = helm(args);
    assert!(
        theirs.status.success(),
        "helm failed: {}",
        text(&theirs.stderr)
    );
    let ours = sealos(args);
    assert!(
        ours.status.success(),
        "sealos failed: {}",
        text(&ours.stderr)
    );
    assert_eq!(
        text(&ours.stdout),
        text(&theirs.stdout),
        "sealos helm template {args:?} differs from helm"
    );
}

#[test]
fn template_of_a_chart_directory_prints_what_helm_prints() {
    let chart = corpus("webapp/chart");
    let prod = corpus("webapp/values-prod.yaml");
    assert_same_output(&[
        "web",
        chart.to_str().unwrap(),
        "-n",
        "prod",
        "-f",
        prod.to_str().unwrap(),
        "--set",
        "image.tag=9.9.9,replicaCount=2",
        "--kube-version",
        "1.30.0",
        "--api-versions",
        "networking.k8s.io/v1",
    ]);
}

#[test]
fn template_filters_hooks_tests_and_templates_as_helm_does() {
    let chart = corpus("certman/chart");
    let chart = chart.to_str().unwrap();
    assert_same_output(&[
        "cm",
        chart,
        "--include-crds",
        "--skip-tests",
        "--kube-version",
        "1.29.0",
    ]);
    assert_same_output(&[
        "cm",
        chart,
        "--no-hooks",
        "--is-upgrade",
        "--kube-version",
        "1.29.0",
    ]);
    assert_same_output(&[
        "cm",
        chart,
        "-s",
        "templates/rbac.yaml",
        "--kube-version",
        "1.29.0",
    ]);
}

#[test]
fn template_of_a_packed_chart_without_a_name_uses_release_name() {
    let dir = tempfile::tempdir().unwrap();
    let packed = Command::new("helm")
        .args(["package", corpus("webapp/chart").to_str().unwrap(), "-d"])
        .arg(dir.path())
        .output()
        .expect("helm package");
    assert!(packed.status.success(), "{}", text(&packed.stderr));
    let archive = dir.path().join("webapp-1.4.2.tgz");
    assert_same_output(&[archive.to_str().unwrap(), "--kube-version", "1.29.0"]);
}

#[test]
fn template_error_names_the_template_line_like_helm_and_adds_a_hint() {
    let chart = corpus("sprigbox/chart");
    let args = [
        "rel",
        chart.to_str().unwrap(),
        "--set",
        "strictCompare=true",
    ];
    let theirs = helm(&args);
    assert!(
        !theirs.status.success(),
        "helm rendered a chart that must fail"
    );
    assert!(text(&theirs.stderr).contains("sprigbox/templates/go-template.yaml:23:14"));
    let ours = sealos(&args);
    assert!(
        !ours.status.success(),
        "sealos rendered a chart that must fail"
    );
    assert!(
        ours.stdout.is_empty(),
        "nothing on stdout when rendering fails"
    );
    let stderr = text(&ours.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains("sprigbox/templates/go-template.yaml:23:14"),
        "{stderr}"
    );
    assert!(stderr.contains("\nhint: "), "{stderr}");
}

#[test]
fn template_of_a_missing_chart_fails_with_a_hint() {
    let ours = sealos(&["rel", "/nonexistent/chart-dir"]);
    assert!(!ours.status.success());
    let stderr = text(&ours.stderr);
    assert!(
        stderr.contains("hint: `/nonexistent/chart-dir` does not exist"),
        "{stderr}"
    );
}

#[test]
fn template_help_shows_examples() {
    let out = sealos(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("--kube-version"),
        "{help}"
    );
}
