//! Row H1: `sealos helm template` of a large generated chart (a parent with 20 subcharts of 15 templates each,
//! written like popular charts: `_helpers.tpl` includes with `nindent`, `toYaml` of resources, `range` over
//! maps and lists, `tpl` of values, checksum annotations, `semverCompare` on the cluster version) against
//! `helm template` v4 (`helm`) and v3 (`helm3`). Every side is a child process doing the whole job: load,
//! values, render, sort, print to /dev/null, under `/usr/bin/time` for peak memory. Before timing, ours must
//! print exactly what helm v4 prints.
//!
//! `SEALOS_BENCH_CHART_SUBCHARTS=N` changes the number of subcharts (default 20).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use super::Context;
use super::registry::sealos_binary;
use crate::harness::{Pair, Side, measured_shell, quote};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["helm-template-vs-helm4", "helm-template-vs-helm3"];

/// Templates per subchart, `_helpers.tpl` included.
const TEMPLATES: usize = 15;

/// Generates the chart, checks that ours renders it as helm v4 does, and returns the two rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let subcharts = match std::env::var("SEALOS_BENCH_CHART_SUBCHARTS") {
        Ok(n) => n
            .parse()
            .context("SEALOS_BENCH_CHART_SUBCHARTS must be a number")?,
        Err(_) => 20,
    };
    let chart = chart_dir(&ctx.work, subcharts, ctx.seed);
    if !chart.exists() {
        write_chart(&chart, subcharts, ctx.seed)?;
    }
    let sealos = sealos_binary()?;
    let args = format!(
        "template bench {} --kube-version 1.29.0 -n bench -f {}",
        quote(&chart.to_string_lossy()),
        quote(&chart.join("values-bench.yaml").to_string_lossy())
    );
    let ours_cmd = format!(
        "{} helm {args} > /dev/null",
        quote(&sealos.to_string_lossy())
    );
    check_same_output(&sealos, &chart)?;
    let scratch = &ctx.work;
    let pair = |row: &str, peer_name: &str, peer: &str| Pair {
        id: row.into(),
        ours: measured_shell(row, Side::Ours, &ours_cmd, scratch),
        peer_name: peer_name.into(),
        peer: measured_shell(
            row,
            Side::Peer,
            &format!("{peer} {args} > /dev/null"),
            scratch,
        ),
    };
    Ok(vec![
        pair(ROWS[0], "helm v4", "helm"),
        pair(ROWS[1], "helm v3", "helm3"),
    ])
}

/// Renders once with each and refuses to time two programs that do not produce the same manifests.
fn check_same_output(sealos: &Path, chart: &Path) -> anyhow::Result<()> {
    let run = |program: &Path, prefix: &[&str]| -> anyhow::Result<Vec<u8>> {
        let out = Command::new(program)
            .args(prefix)
            .args(["template", "bench"])
            .arg(chart)
            .args(["--kube-version", "1.29.0", "-n", "bench", "-f"])
            .arg(chart.join("values-bench.yaml"))
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        if !out.status.success() {
            bail!(
                "{} failed on the benchmark chart: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    };
    let ours = run(sealos, &["helm"])?;
    let theirs = run(Path::new("helm"), &[])?;
    if ours != theirs {
        let line = ours
            .split(|b| *b == b'\n')
            .zip(theirs.split(|b| *b == b'\n'))
            .position(|(a, b)| a != b)
            .map_or(0, |i| i + 1);
        bail!(
            "sealos helm template and helm template print different manifests for {} (first difference \
             at line {line}; {} vs {} bytes): fix the renderer before timing it",
            chart.display(),
            ours.len(),
            theirs.len()
        );
    }
    Ok(())
}

/// Writes the parent chart and its subcharts under `dir`.
fn write_chart(dir: &Path, subcharts: usize, seed: u64) -> anyhow::Result<()> {
    let names: Vec<String> = (0..subcharts).map(|i| format!("svc{i:02}")).collect();
    let mut chart_yaml = String::from(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\nappVersion: \"2024.1\"\nkubeVersion: \">=1.23.0-0\"\n\
         dependencies:\n",
    );
    for (i, name) in names.iter().enumerate() {
        let _ = write!(
            chart_yaml,
            "  - name: {name}\n    version: 0.{i}.0\n    condition: {name}.enabled\n"
        );
        if i % 5 == 4 {
            chart_yaml.push_str("    tags:\n      - optional\n");
        }
    }
    write(&dir.join("Chart.yaml"), &chart_yaml)?;
    let mut values = String::from(
        "global:\n  imageRegistry: \"\"\n  domain: example.invalid\n  labels:\n    platform: bench\ntags:\n  optional: true\n",
    );
    for name in &names {
        let _ = write!(values, "{name}:\n  enabled: true\n");
    }
    write(&dir.join("values.yaml"), &values)?;
    write(
        &dir.join("values-bench.yaml"),
        "global:\n  imageRegistry: mirror.example.invalid\n  env: bench\n",
    )?;
    write(
        &dir.join("templates/namespace-config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-platform\ndata:\n\
         {{- range $k, $v := .Values }}\n{{- if and (kindIs \"map\" $v) (hasKey $v \"enabled\") }}\n  \
         {{ $k }}: {{ $v.enabled | quote }}\n{{- end }}\n{{- end }}\n",
    )?;
    for (i, name) in names.iter().enumerate() {
        write_subchart(&dir.join("charts").join(name), name, i, seed)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A small deterministic generator (xorshift) so every seed gives the same chart.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn write_subchart(dir: &Path, name: &str, index: usize, seed: u64) -> anyhow::Result<()> {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64 + 1);
    write(
        &dir.join("Chart.yaml"),
        &format!(
            "apiVersion: v2\nname: {name}\nversion: 0.{index}.0\nappVersion: \"1.{index}.3\"\n"
        ),
    )?;
    let mut values = format!(
        "enabled: true\nreplicaCount: {}\nimage:\n  registry: registry.example.invalid\n  repository: bench/{name}\n  tag: \"\"\n  digest: \"\"\n\
         service:\n  type: ClusterIP\n  ports:\n",
        1 + next(&mut rng) % 3
    );
    for p in 0..(2 + next(&mut rng) % 3) {
        let _ = write!(values, "    - name: port{p}\n      port: {}\n", 8000 + p);
    }
    values.push_str("env:\n");
    for e in 0..(4 + next(&mut rng) % 6) {
        let _ = writeln!(values, "  VAR_{e}: \"value-{}\"", next(&mut rng) % 1000);
    }
    values.push_str(
        "config:\n  greeting: \"hello from {{ .Release.Name }} in {{ .Release.Namespace }}\"\n  logLevel: info\n  \
         features:\n    - alpha\n    - beta\n    - gamma\nresources:\n  limits:\n    cpu: 500m\n    memory: 256Mi\n  \
         requests:\n    cpu: 100m\n    memory: 128Mi\nnodeSelector:\n  kubernetes.io/os: linux\ntolerations:\n  - key: dedicated\n    \
         operator: Equal\n    value: bench\n    effect: NoSchedule\naffinity: {}\npodAnnotations:\n  team: bench\n\
         autoscaling:\n  enabled: true\n  minReplicas: 1\n  maxReplicas: 5\n  targetCPU: 80\ningress:\n  enabled: true\n  \
         hosts:\n    - host: a\n      paths: [/, /api]\n    - host: b\n      paths: [/]\nrbac:\n  rules:\n    - apiGroups: [\"\"]\n      \
         resources: [configmaps, secrets]\n      verbs: [get, list, watch]\n    - apiGroups: [apps]\n      resources: [deployments]\n      \
         verbs: [get]\n",
    );
    write(&dir.join("values.yaml"), &values)?;
    let helpers = HELPERS.replace("SUB", name);
    write(&dir.join("templates/_helpers.tpl"), &helpers)?;
    for (file, body) in SUBCHART_TEMPLATES {
        write(
            &dir.join("templates").join(file),
            &body.replace("SUB", name),
        )?;
    }
    debug_assert_eq!(SUBCHART_TEMPLATES.len() + 1, TEMPLATES);
    Ok(())
}

const HELPERS: &str = r#"{{- define "SUB.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "SUB.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- define "SUB.selectorLabels" -}}
app.kubernetes.io/name: {{ include "SUB.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "SUB.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "SUB.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- define "SUB.image" -}}
{{- $registry := .Values.global.imageRegistry | default .Values.image.registry -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if .Values.image.digest -}}
{{- printf "%s/%s@%s" $registry .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s/%s:%s" $registry .Values.image.repository $tag -}}
{{- end -}}
{{- end }}
"#;

const SUBCHART_TEMPLATES: &[(&str, &str)] = &[
    (
        "deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "SUB.fullname" . }}
  labels:
    {{- include "SUB.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "SUB.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      annotations:
        checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "SUB.labels" . | nindent 8 }}
    spec:
      serviceAccountName: {{ include "SUB.fullname" . }}
      containers:
        - name: {{ .Chart.Name }}
          image: {{ include "SUB.image" . | quote }}
          env:
            {{- range $k, $v := .Values.env }}
            - name: {{ $k }}
              value: {{ $v | quote }}
            {{- end }}
          ports:
            {{- range .Values.service.ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
            {{- end }}
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
"#,
    ),
    (
        "service.yaml",
        r#"apiVersion: v1
kind: Service
metadata:
  name: {{ include "SUB.fullname" . }}
  labels:
    {{- include "SUB.labels" . | nindent 4 }}
spec:
  type: {{ .Values.service.type }}
  ports:
    {{- range .Values.service.ports }}
    - port: {{ .port }}
      targetPort: {{ .name }}
      name: {{ .name }}
    {{- end }}
  selector:
    {{- include "SUB.selectorLabels" . | nindent 4 }}
"#,
    ),
    (
        "configmap.yaml",
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "SUB.fullname" . }}
  labels:
    {{- include "SUB.labels" . | nindent 4 }}
data:
  greeting: {{ tpl .Values.config.greeting . | quote }}
  level: {{ .Values.config.logLevel | upper | quote }}
  features: {{ join "," .Values.config.features | quote }}
  settings.json: {{ dict "env" .Values.env "replicas" .Values.replicaCount | toJson | quote }}
"#,
    ),
    (
        "secret.yaml",
        r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ include "SUB.fullname" . }}
type: Opaque
data:
  token: {{ printf "%s-%s" .Release.Name .Chart.Name | sha256sum | trunc 32 | b64enc | quote }}
"#,
    ),
    (
        "serviceaccount.yaml",
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "SUB.fullname" . }}
  labels:
    {{- include "SUB.labels" . | nindent 4 }}
"#,
    ),
    (
        "role.yaml",
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "SUB.fullname" . }}
rules:
  {{- toYaml .Values.rbac.rules | nindent 2 }}
"#,
    ),
    (
        "rolebinding.yaml",
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "SUB.fullname" . }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "SUB.fullname" . }}
subjects:
  - kind: ServiceAccount
    name: {{ include "SUB.fullname" . }}
    namespace: {{ .Release.Namespace }}
"#,
    ),
    (
        "hpa.yaml",
        r#"{{- if .Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "SUB.fullname" . }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "SUB.fullname" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .Values.autoscaling.targetCPU }}
{{- end }}
"#,
    ),
    (
        "pdb.yaml",
        r#"apiVersion: {{ if semverCompare ">=1.21-0" .Capabilities.KubeVersion.GitVersion }}policy/v1{{ else }}policy/v1beta1{{ end }}
kind: PodDisruptionBudget
metadata:
  name: {{ include "SUB.fullname" . }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      {{- include "SUB.selectorLabels" . | nindent 6 }}
"#,
    ),
    (
        "ingress.yaml",
        r#"{{- if .Values.ingress.enabled }}
{{- $fullName := include "SUB.fullname" . }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ $fullName }}
spec:
  rules:
    {{- range .Values.ingress.hosts }}
    - host: {{ printf "%s.%s" .host $.Values.global.domain | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ . }}
            pathType: Prefix
            backend:
              service:
                name: {{ $fullName }}
                port:
                  number: {{ (first $.Values.service.ports).port }}
          {{- end }}
    {{- end }}
{{- end }}
"#,
    ),
    (
        "networkpolicy.yaml",
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "SUB.fullname" . }}
spec:
  podSelector:
    matchLabels:
      {{- include "SUB.selectorLabels" . | nindent 6 }}
  ingress:
    - ports:
        {{- range .Values.service.ports }}
        - port: {{ .port }}
        {{- end }}
"#,
    ),
    (
        "servicemonitor.yaml",
        r#"{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "SUB.fullname" . }}
spec:
  endpoints:
    - port: port0
{{- end }}
"#,
    ),
    (
        "cronjob.yaml",
        r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ include "SUB.fullname" . }}-cleanup
spec:
  schedule: {{ printf "%d * * * *" (len .Values.env) | quote }}
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: cleanup
              image: {{ include "SUB.image" . | quote }}
              args: {{ toJson .Values.config.features }}
"#,
    ),
    (
        "hook-job.yaml",
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "SUB.fullname" . }}-migrate
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "-5"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: {{ include "SUB.image" . | quote }}
          env:
            {{- range $k, $v := .Values.env }}
            - name: {{ $k | lower | replace "_" "-" }}
              value: {{ $v | quote }}
            {{- end }}
"#,
    ),
];

/// Where the chart for these parameters is generated (kept across runs with `--work`).
fn chart_dir(work: &Path, subcharts: usize, seed: u64) -> PathBuf {
    work.join(format!("chart-{subcharts}-{seed}"))
}
