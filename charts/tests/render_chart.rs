//! Charts of our own, written into temporary directories, rendered by `charts::template` and by the real
//! `helm` (v4.1.4, the oracle: a missing `helm` fails these tests): loading, dependencies, output order,
//! hooks and errors. Output must equal helm's stdout byte for byte; errors must equal helm's message.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use charts::TemplateOptions;

/// A chart (or several) written into a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// Writes `files` (path, content) under a new temporary directory.
    fn new(files: &[(&str, &str)]) -> Fixture {
        let fixture = Fixture {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        fixture.write(files);
        fixture
    }

    fn write(&self, files: &[(&str, &str)]) {
        for (path, content) in files {
            self.write_bytes(path, content.as_bytes());
        }
    }

    fn write_bytes(&self, path: &str, content: &[u8]) {
        let full = self.dir.path().join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("create directory");
        fs::write(full, content).expect("write fixture file");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `helm package DIR -d DEST` (paths relative to the fixture).
    fn package(&self, chart: &str, dest: &str) {
        fs::create_dir_all(self.path().join(dest)).expect("create directory");
        let out = Command::new(helm_binary())
            .args(["package", chart, "-d", dest])
            .current_dir(self.path())
            .output()
            .expect("run helm package");
        assert!(
            out.status.success(),
            "helm package failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// What helm prints for `helm template ARGS` run in the fixture: stdout, or the error after `Error: `.
    fn helm(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(helm_binary())
            .arg("template")
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("run helm template");
        if out.status.success() {
            return Ok(String::from_utf8(out.stdout).expect("utf-8 output"));
        }
        let stderr = String::from_utf8(out.stderr).expect("utf-8 error");
        // helm logs skipped hooks on stderr before any error; only the error is compared.
        let error: String = stderr
            .lines()
            .filter(|l| !l.starts_with("level="))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let error = error.strip_prefix("Error: ").unwrap_or(&error);
        Err(error.strip_suffix('\n').unwrap_or(error).to_string())
    }

    /// What we print for the same arguments.
    fn ours(&self, args: &[&str]) -> Result<String, String> {
        charts::template(&options(self.path(), args)).map_err(|e| e.to_string())
    }

    /// Asserts that we print exactly what helm prints (or fail with its message); returns the output.
    fn same(&self, args: &[&str]) -> Result<String, String> {
        let theirs = self.helm(args);
        let ours = self.ours(args);
        assert_eq!(
            ours,
            theirs,
            "`helm template {}` differs (left: ours, right: helm)",
            args.join(" ")
        );
        ours
    }
}

/// The `helm` binary: v4 is the oracle. A missing helm fails the test.
fn helm_binary() -> PathBuf {
    let out = Command::new("helm").arg("version").arg("--short").output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with("v4.") => PathBuf::from("helm"),
        Ok(out) => panic!(
            "`helm` is not helm v4: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) => panic!("`helm` (v4, the oracle for these tests) cannot run: {e}"),
    }
}

/// `helm template` arguments as options (paths relative to `dir`).
fn options(dir: &Path, args: &[&str]) -> TemplateOptions {
    let mut options = TemplateOptions::default();
    let mut positional = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().expect("flag value").to_string();
        match *arg {
            "-f" => options.value_files.push(dir.join(value())),
            "--set" => options.set.push(value()),
            "--set-string" => options.set_string.push(value()),
            "--set-json" => options.set_json.push(value()),
            "--kube-version" => options.kube_version = Some(value()),
            "-a" => options.api_versions.push(value()),
            "-s" => options.show_only.push(value()),
            "-n" => options.namespace = value(),
            "--include-crds" => options.include_crds = true,
            "--skip-tests" => options.skip_tests = true,
            "--no-hooks" => options.no_hooks = true,
            "--is-upgrade" => options.is_upgrade = true,
            other => positional.push(other.to_string()),
        }
    }
    let chart = positional.pop().expect("a chart argument");
    if let Some(name) = positional.pop() {
        options.release_name = name;
    }
    options.chart = dir.join(chart);
    options
}

fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\n")
}

// ---------------------------------------------------------------- loading

#[test]
fn directory_chart_skips_what_helmignore_names_and_dotfiles_under_templates() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        (
            "c/.helmignore",
            "# comment\n*.bak\nsecret/\n/top-only.txt\ntemplates/skip-*\n",
        ),
        (
            "c/templates/cm.yaml",
            "kind: ConfigMap\ndata:\n  files: {{ range $p, $_ := .Files }}{{ $p }} {{ end }}\n",
        ),
        ("c/templates/skip-me.yaml", "kind: Skipped\n"),
        ("c/templates/.hidden.yaml", "kind: Hidden\n"),
        ("c/old.bak", "x"),
        ("c/dir/nested.bak", "x"),
        ("c/secret/key", "x"),
        ("c/top-only.txt", "x"),
        ("c/dir/top-only.txt", "kept"),
        ("c/files/a.txt", "kept"),
    ]);
    let out = f.same(&["c"]).expect("renders");
    assert!(
        out.contains("files: .helmignore dir/top-only.txt files/a.txt\n"),
        "{out}"
    );
}

#[test]
fn a_negated_helmignore_rule_ignores_everything_else_as_helm_does() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        ("c/.helmignore", "!keep.txt\n"),
        ("c/templates/a.yaml", "a: 1\n"),
    ]);
    assert_eq!(
        f.same(&["c"]),
        Err("Chart.yaml file is missing".to_string())
    );
}

#[test]
fn packed_charts_and_packed_subcharts_render_like_directories() {
    let f = Fixture::new(&[
        ("sub/Chart.yaml", &chart_yaml("sub", "1.2.0")),
        ("sub/values.yaml", "who: sub\n"),
        (
            "sub/templates/p.yaml",
            "kind: Pod\nmetadata:\n  name: {{ .Values.who }}-{{ .Chart.Name }}\n",
        ),
        (
            "top/Chart.yaml",
            "apiVersion: v2\nname: top\nversion: 0.1.0\ndependencies:\n- name: sub\n  version: ~1.2.0\n",
        ),
        ("top/values.yaml", "sub:\n  who: parent\n"),
        (
            "top/templates/s.yaml",
            "kind: Service\nmetadata:\n  name: {{ .Release.Name }}\n",
        ),
    ]);
    f.package("sub", "top/charts");
    f.same(&["top"]).expect("renders");
    f.package("top", "packed");
    f.same(&["rel", "packed/top-0.1.0.tgz", "-n", "ns"])
        .expect("renders");
}

#[test]
fn v1_charts_take_dependencies_from_requirements_yaml() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", "name: c\nversion: 0.1.0\n"),
        (
            "c/requirements.yaml",
            "dependencies:\n- name: sub\n  version: 0.1.0\n  condition: sub.on\n",
        ),
        ("c/values.yaml", "sub:\n  on: true\n"),
        (
            "c/templates/a.yaml",
            "a: {{ .Chart.APIVersion }} {{ len (.Files.Get \"requirements.yaml\") }}\n",
        ),
        ("c/charts/sub/Chart.yaml", &chart_yaml("sub", "0.1.0")),
        ("c/charts/sub/templates/b.yaml", "b: {{ .Values.on }}\n"),
    ]);
    f.same(&["c"]).expect("renders");
    f.same(&["c", "--set", "sub.on=false"]).expect("renders");
}

#[test]
fn byte_order_marks_are_dropped_and_numbers_in_chart_yaml_are_strings() {
    let f = Fixture::new(&[(
        "c/templates/a.yaml",
        "v: {{ .Chart.Version }} {{ .Chart.AppVersion }}\n",
    )]);
    f.write_bytes(
        "c/Chart.yaml",
        b"\xEF\xBB\xBFapiVersion: v2\nname: c\nversion: 1\nappVersion: 1.10\n",
    );
    f.same(&["c"]).expect("renders");
}

#[test]
fn chart_yaml_problems_are_reported_as_helm_reports_them() {
    for chart in [
        "apiVersion: v2\nname: c\n",
        "apiVersion: v2\nversion: 1.0.0\n",
        "apiVersion: v2\nname: c\nversion: abc\n",
        "apiVersion: v2\nname: c\nversion: 1.0.0\ntype: tool\n",
        "apiVersion: v2\nname: c\nversion: [1]\n",
    ] {
        let f = Fixture::new(&[("c/Chart.yaml", chart), ("c/templates/a.yaml", "a: 1\n")]);
        assert!(f.same(&["c"]).is_err(), "{chart}");
    }
}

/// A gzipped tar holding `entries`: (path, content, symlink target).
fn tarball(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, content, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match link {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                header.set_link_name(target).expect("link name");
                set_raw_path(&mut header, path);
                header.set_cksum();
                builder
                    .append(&header, std::io::empty())
                    .expect("append link");
            }
            None => {
                header.set_size(content.len() as u64);
                set_raw_path(&mut header, path);
                header.set_cksum();
                builder
                    .append(&header, content.as_bytes())
                    .expect("append file");
            }
        }
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// Writes a path into the header as is (`..` and absolute paths included, which `set_path` refuses).
fn set_raw_path(header: &mut tar::Header, path: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
}

#[test]
fn hostile_archives_are_refused() {
    let chart = (
        "x/Chart.yaml",
        "apiVersion: v2\nname: x\nversion: 0.1.0\n",
        None,
    );
    let template = ("x/templates/a.yaml", "a: 1\n", None);
    for (entry, want) in [
        (
            ("x/../../evil.yaml", "e: 1\n", None),
            "chart illegally references parent directory",
        ),
        (
            ("x//etc/evil.yaml", "e: 1\n", None),
            "chart illegally contains absolute paths",
        ),
        (
            ("x/templates/link.yaml", "", Some("/etc/passwd")),
            "chart illegally contains a link",
        ),
    ] {
        let f = Fixture::new(&[]);
        f.write_bytes("bad.tgz", &tarball(&[chart, template, entry]));
        let err = f.ours(&["bad.tgz"]).expect_err(want);
        assert!(err.contains(want), "{err}");
    }
    let f = Fixture::new(&[("not.tgz", "plain text\n")]);
    assert!(f.same(&["not.tgz"]).is_err());
}

#[test]
fn oversized_files_are_refused() {
    let f = Fixture::new(&[("c/Chart.yaml", &chart_yaml("c", "0.1.0"))]);
    f.write_bytes("c/files/big.bin", &vec![b'x'; 5 * 1024 * 1024 + 1]);
    let err = f.ours(&["c"]).expect_err("refused");
    assert!(
        err.contains("is larger than the maximum file size"),
        "{err}"
    );
}

#[test]
fn files_outside_templates_are_available_with_helms_methods() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        ("c/files/conf/app.properties", "a=1\nb=2\n"),
        ("c/files/conf/hello.txt", "hello\n"),
        ("c/files/conf/deeper/x.json", "{}\n"),
        ("c/files/lines.txt", "line1\nline2\n"),
        (
            "c/templates/cm.yaml",
            "kind: ConfigMap\ndata:\n{{ (.Files.Glob \"files/conf/*\").AsConfig | indent 2 }}\n\
             \x20 lines: {{ .Files.Lines \"files/lines.txt\" | join \",\" | quote }}\n\
             \x20 get: {{ .Files.Get \"files/conf/hello.txt\" | trim | quote }}\n\
             \x20 missing: {{ .Files.Get \"nope\" | quote }}\n\
             \x20 glob: {{ range $path, $_ := .Files.Glob \"files/**.{json,txt}\" }}{{ $path }} {{ end }}\n\
             ---\nkind: Secret\ndata:\n{{ (.Files.Glob \"files/conf/*\").AsSecrets | indent 2 }}\n",
        ),
    ]);
    f.same(&["c"]).expect("renders");
}

// ---------------------------------------------------------------- dependencies

fn dependency_fixture() -> Fixture {
    Fixture::new(&[
        (
            "top/Chart.yaml",
            "apiVersion: v2\nname: top\nversion: 1.0.0\ndependencies:\n\
             - name: sa\n  version: \">=0.1.0\"\n  condition: sa.enabled,global.saOn\n\
             - name: sb\n  version: 0.2.x\n  alias: bee\n  tags: [backend]\n  import-values:\n  - child: info\n    parent: fromBee\n  - shared\n\
             - name: sb\n  version: 0.2.x\n  alias: bee2\n  condition: bee2.enabled\n\
             - name: sc\n  version: \"*\"\n  tags: [frontend, backend]\n\
             - name: lib\n  version: 0.1.0\n",
        ),
        (
            "top/values.yaml",
            "sa:\n  enabled: true\ntags:\n  frontend: false\nfromBee:\n  keep: parent\nglobal:\n  region: eu\n",
        ),
        (
            "top/templates/cm.yaml",
            "kind: ConfigMap\ndata:\n  imported: {{ .Values.fromBee | toJson | quote }}\n  shared: {{ .Values.sharedKey | quote }}\n\
             \x20 subcharts: {{ keys .Subcharts | sortAlpha | join \",\" }}\n\
             \x20 deps: {{ range .Chart.Dependencies }}{{ .Name }}={{ .Enabled }} {{ end }}\n\
             \x20 lib: {{ include \"lib.hello\" . }}\n  label: {{ include \"shared.label\" . }}\n",
        ),
        (
            "top/templates/_helpers.tpl",
            "{{- define \"shared.label\" -}}from-top{{- end -}}\n",
        ),
        ("top/charts/sa/Chart.yaml", &chart_yaml("sa", "0.1.0")),
        (
            "top/charts/sa/values.yaml",
            "enabled: false\nmsg: from-sa\n",
        ),
        (
            "top/charts/sa/templates/d.yaml",
            "kind: Deployment\nmetadata:\n  name: {{ .Values.msg }}-{{ .Values.global.region }}\n  labels:\n    l: {{ include \"shared.label\" . }}\n",
        ),
        (
            "top/charts/sa/templates/_h.tpl",
            "{{- define \"shared.label\" -}}from-sa{{- end -}}\n",
        ),
        ("top/charts/sb/Chart.yaml", &chart_yaml("sb", "0.2.3")),
        (
            "top/charts/sb/values.yaml",
            "info: {a: 1, keep: child}\nexports:\n  shared: {sharedKey: exported}\nenabled: false\n",
        ),
        (
            "top/charts/sb/templates/svc.yaml",
            "kind: Service\nmetadata:\n  name: {{ .Chart.Name }}\n  path: {{ .Template.Name }}\n",
        ),
        ("top/charts/sc/Chart.yaml", &chart_yaml("sc", "9.0.0")),
        (
            "top/charts/sc/templates/p.yaml",
            "kind: Pod\nmetadata:\n  name: sc\n",
        ),
        (
            "top/charts/lib/Chart.yaml",
            "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
        ),
        (
            "top/charts/lib/templates/_lib.tpl",
            "{{- define \"lib.hello\" -}}hello-{{ .Chart.Name }}{{- end -}}\n",
        ),
        (
            "top/charts/lib/templates/ignored.yaml",
            "kind: NeverRendered\n",
        ),
    ])
}

#[test]
fn conditions_tags_and_aliases_choose_the_subcharts_as_helm_does() {
    let f = dependency_fixture();
    f.same(&["top"]).expect("renders");
    f.same(&[
        "top",
        "--set",
        "sa.enabled=false",
        "--set",
        "bee2.enabled=true",
    ])
    .expect("renders");
    // The first condition that resolves to a bool wins; null leaves the next one to decide.
    f.same(&[
        "top",
        "--set",
        "sa.enabled=null",
        "--set",
        "global.saOn=true",
    ])
    .expect("renders");
    f.same(&["top", "--set", "tags.backend=false"])
        .expect("renders");
    f.same(&[
        "top",
        "--set",
        "tags.frontend=true",
        "--set",
        "tags.backend=false",
    ])
    .expect("renders");
}

#[test]
fn import_values_copy_child_tables_and_exports_below_the_parents_values() {
    let f = dependency_fixture();
    let out = f
        .same(&["top", "-s", "templates/cm.yaml"])
        .expect("renders");
    assert!(
        out.contains(r#"imported: "{\"a\":1,\"keep\":\"parent\"}""#),
        "{out}"
    );
    assert!(out.contains(r#"shared: "exported""#), "{out}");
}

#[test]
fn nested_subcharts_get_conditions_by_full_path_and_globals() {
    let f = Fixture::new(&[
        (
            "top/Chart.yaml",
            "apiVersion: v2\nname: top\nversion: 0.1.0\ndependencies:\n- name: mid\n  version: \"*\"\n",
        ),
        (
            "top/values.yaml",
            "global:\n  g: top\nmid:\n  deep:\n    enabled: true\n",
        ),
        (
            "top/templates/a.yaml",
            "mid: {{ .Subcharts.mid.Values.v }} {{ .Values.mid.deep.v }}\n",
        ),
        (
            "top/charts/mid-dir/Chart.yaml",
            "apiVersion: v2\nname: mid\nversion: 0.3.0\ndependencies:\n- name: deep\n  version: \"*\"\n  condition: deep.enabled\n",
        ),
        (
            "top/charts/mid-dir/values.yaml",
            "v: midv\ndeep:\n  enabled: false\n  v: fromMid\nglobal:\n  g: mid\n  m: mid\n",
        ),
        (
            "top/charts/mid-dir/templates/s.yaml",
            "kind: Service\nmetadata: {name: \"{{ .Values.global.g }}-{{ .Values.global.m }}-{{ .Values.deep.v }}\"}\n",
        ),
        (
            "top/charts/mid-dir/charts/deep/Chart.yaml",
            &chart_yaml("deep", "0.1.0"),
        ),
        ("top/charts/mid-dir/charts/deep/values.yaml", "v: deepv\n"),
        (
            "top/charts/mid-dir/charts/deep/templates/p.yaml",
            "kind: Pod\nmetadata: {name: \"{{ .Values.global.g }}-{{ .Values.v }}-{{ .Chart.IsRoot }}\"}\n",
        ),
    ]);
    f.same(&["top"]).expect("renders");
    f.same(&["top", "--set", "mid.deep.enabled=false"])
        .expect("renders");
}

#[test]
fn a_dependency_missing_from_charts_is_refused() {
    let f = Fixture::new(&[
        (
            "c/Chart.yaml",
            "apiVersion: v2\nname: c\nversion: 0.1.0\ndependencies:\n- name: gone\n  version: 1.0.0\n- name: gone2\n  version: 1.0.0\n",
        ),
        ("c/templates/a.yaml", "a: 1\n"),
    ]);
    let err = f.same(&["c"]).expect_err("refused");
    assert!(
        err.ends_with("missing in charts/ directory: gone, gone2"),
        "{err}"
    );
}

#[test]
fn a_library_chart_cannot_be_rendered_itself() {
    let f = Fixture::new(&[(
        "lib/Chart.yaml",
        "apiVersion: v2\nname: lib\nversion: 0.1.0\ntype: library\n",
    )]);
    assert_eq!(
        f.same(&["lib"]),
        Err("library charts are not installable".to_string())
    );
}

// ---------------------------------------------------------------- output order and hooks

fn hooks_fixture() -> Fixture {
    Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        (
            "c/crds/crd.yaml",
            "# a crd\nkind: CustomResourceDefinition\nmetadata:\n  name: top\n\n",
        ),
        ("c/crds/notes.txt", "not a manifest"),
        ("c/templates/NOTES.txt", "Installed {{ .Release.Name }}.\n"),
        (
            "c/templates/0.yaml",
            "kind: Namespace\nmetadata:\n  name: ns\n",
        ),
        (
            "c/templates/a.yaml",
            "kind: Deployment\nmetadata:\n  name: d\n---\nkind: Foo\nmetadata: {name: f}\n--- # comment\nkind: Service\nmetadata:\n  name: s\n\
             ---\nkind: ConfigMap\n---\nkind: Bar\nmetadata:\n  name: hk\n  annotations:\n    helm.sh/hook: post-install\n\
             ---\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\n\
             ---\nkind: ConfigMap\nmetadata:\n  name: unknown-event\n  annotations:\n    helm.sh/hook: pre-install,weird\n\
             ---\nkind: Secret\nmetadata:\n  name: hk3\n  annotations:\n    \"helm.sh/hook\": pre-install\n    \"helm.sh/hook-weight\": \"-5\"\n",
        ),
        ("c/templates/b.yaml", "\n   \n"),
        (
            "c/templates/c.yaml",
            "kind: Job\nmetadata:\n  name: j\n---kind: Job\nmetadata:\n  name: glued\n---\na: 1\n---   \n\n---\n",
        ),
        (
            "c/templates/tests/t.yaml",
            "kind: Pod\nmetadata:\n  name: ts\n  annotations:\n    helm.sh/hook: test-success\n",
        ),
        ("c/charts/sub/Chart.yaml", &chart_yaml("sub", "0.1.0")),
        (
            "c/charts/sub/crds/sub.yaml",
            "kind: CustomResourceDefinition\nmetadata:\n  name: sub\n",
        ),
        ("c/charts/sub/templates/NOTES.txt", "sub notes\n"),
        (
            "c/charts/sub/templates/r.yaml",
            "kind: Role\nmetadata:\n  name: r\n",
        ),
    ])
}

#[test]
fn manifests_print_in_install_order_with_hooks_last() {
    let f = hooks_fixture();
    let out = f.same(&["c"]).expect("renders");
    assert!(
        !out.contains("unknown-event") && !out.contains("Installed"),
        "{out}"
    );
    f.same(&["c", "--skip-tests"]).expect("renders");
    f.same(&["c", "--no-hooks"]).expect("renders");
    f.same(&["c", "--include-crds"]).expect("renders");
}

#[test]
fn show_only_selects_documents_by_template_path() {
    let f = hooks_fixture();
    f.same(&["c", "-s", "templates/a.yaml"]).expect("renders");
    f.same(&[
        "c",
        "-s",
        "templates/*",
        "-s",
        "charts/sub/templates/r.yaml",
    ])
    .expect("renders");
    f.same(&["c", "-s", "crds/crd.yaml", "--include-crds"])
        .expect("renders");
    assert_eq!(
        f.same(&["c", "-s", "templates/nope.yaml"]),
        Err("could not find template templates/nope.yaml in chart".into())
    );
}

#[test]
fn notes_of_the_top_chart_are_rendered_but_not_printed() {
    let f = hooks_fixture();
    let rendered = charts::render(&options(f.path(), &["rel", "c"])).expect("renders");
    assert_eq!(rendered.notes.as_deref(), Some("Installed rel.\n"));
    let hooks: Vec<&str> = rendered
        .manifests
        .iter()
        .filter(|m| m.hook)
        .map(|m| m.source.as_str())
        .collect();
    // Hooks sort by kind too: the Secret, the two test Pods (in file order), then the unknown kind.
    assert_eq!(
        hooks,
        [
            "c/templates/a.yaml",
            "c/templates/a.yaml",
            "c/templates/tests/t.yaml",
            "c/templates/a.yaml"
        ]
    );
}

#[test]
fn release_and_capabilities_follow_the_options() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        (
            "c/templates/a.yaml",
            "release: {{ .Release | toJson }}\nkube: {{ .Capabilities.KubeVersion }} {{ .Capabilities.KubeVersion.Version }} {{ .Capabilities.KubeVersion.Major }}.{{ .Capabilities.KubeVersion.Minor }}\n\
             apis: {{ .Capabilities.APIVersions.Has \"apps/v1\" }} {{ .Capabilities.APIVersions.Has \"x.io/v1\" }} {{ .Capabilities.APIVersions.Has \"x.io/v1/Thing\" }}\n\
             helm: {{ .Capabilities.HelmVersion.Version }}\nchart: {{ .Chart | toJson }}\ntemplate: {{ .Template | toJson }}\n\
             caps: {{ .Capabilities | toJson }}\nkube-yaml: {{ .Capabilities.KubeVersion | toYaml | nindent 2 }}\n\
             files: {{ .Files | toJson }}\nranged: {{ range .Capabilities.APIVersions }}{{ . }} {{ end }}\n",
        ),
        ("c/files/a.txt", "hello\n"),
        ("c/templates/none.yaml", "# nothing\n"),
    ]);
    f.same(&["c"]).expect("renders");
    f.same(&[
        "myrel",
        "c",
        "-n",
        "team",
        "--is-upgrade",
        "--kube-version",
        "v1.28.3-gke.100",
        "-a",
        "x.io/v1/Thing,y.io/v2",
    ])
    .expect("renders");
    f.same(&["c", "--kube-version", "1.29"]).expect("renders");
    assert!(f.same(&["c", "--kube-version", "abc"]).is_err());
    let err = f
        .same(&["Bad_Name", "c"])
        .expect_err("release names are DNS names");
    assert!(
        err.starts_with("release name check failed: release name \"Bad_Name\""),
        "{err}"
    );
}

#[test]
fn a_parents_define_wins_over_a_subcharts() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        ("c/templates/_a.tpl", "{{ define \"x\" }}parent-a{{ end }}"),
        ("c/templates/_b.tpl", "{{ define \"x\" }}parent-b{{ end }}"),
        ("c/templates/use.yaml", "x: {{ include \"x\" . }}\n"),
        ("c/charts/s/Chart.yaml", &chart_yaml("s", "0.1.0")),
        (
            "c/charts/s/templates/_s.tpl",
            "{{ define \"x\" }}sub{{ end }}",
        ),
        (
            "c/charts/s/templates/use.yaml",
            "x: {{ include \"x\" . }}\n",
        ),
    ]);
    f.same(&["c"]).expect("renders");
}

// ---------------------------------------------------------------- errors

#[test]
fn template_errors_name_the_file_line_and_column_as_helm_does() {
    for template in [
        "a: {{ .Values.x.y.z }}\n",
        "a: {{ required \"need x\" .Values.x }}\n",
        "a: {{ fail \"boom\" }}\n",
        "{{ include \"nope\" . }}\n",
        "a: {{ tpl \"{{ .Values.q.w }}\" . }}\n",
        "a: {{ tpl \"{{ fail \\\"inner\\\" }}\" . }}\n",
        "a: {{ index .Values 1 }}\n",
        "{{ define \"x\" }}{{ .Values.a.b }}{{ end }}a: {{ include \"x\" . }}\n",
        "{{ define \"y\" }}{{ .Values.q.r }}{{ end }}{{ define \"x\" }}{{ include \"y\" . }}{{ end }}a: {{ include \"x\" . }}\n",
        "{{ define \"x\" }}{{ index .Values 1 }}{{ end }}a: {{ include \"x\" . }}\n",
        "a: {{ include \"x\" . | indent 2 }}{{ define \"x\" }}{{ required \"deep\" .Values.none }}{{ end }}\n",
        "a: {{ toYaml }}\n",
        "{{ end }}\n",
        "a: {{ .Values.foo | nosuchfunc }}\n",
    ] {
        let f = Fixture::new(&[
            ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
            ("c/templates/t.yaml", template),
        ]);
        assert!(f.same(&["c"]).is_err(), "{template}");
    }
}

#[test]
fn values_that_break_the_schema_are_reported_per_chart() {
    let f = Fixture::new(&[
        (
            "c/Chart.yaml",
            "apiVersion: v2\nname: c\nversion: 0.1.0\ndependencies:\n- name: s\n  version: 0.1.0\n",
        ),
        (
            "c/values.schema.json",
            r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string","minLength":3},"port":{"type":"integer","maximum":65535},"mode":{"enum":["a","b"]}}}"#,
        ),
        ("c/templates/a.yaml", "a: 1\n"),
        ("c/charts/s/Chart.yaml", &chart_yaml("s", "0.1.0")),
        (
            "c/charts/s/values.schema.json",
            r#"{"properties":{"level":{"type":"string","pattern":"^[a-z]+$"}}}"#,
        ),
    ]);
    f.same(&["c"]).expect_err("name is required");
    f.same(&["c", "--set", "name=abc", "--set", "port=70000"])
        .expect_err("port too large");
    f.same(&["c", "--set", "name=ab"])
        .expect_err("name too short");
    f.same(&[
        "c",
        "--set",
        "name=abc",
        "--set",
        "mode=c",
        "--set",
        "s.level=ABC",
    ])
    .expect_err("two charts");
    f.same(&["c", "--set", "name=abc", "--set", "port=8080"])
        .expect("valid");
}

#[test]
fn a_kube_version_outside_the_charts_range_is_refused() {
    let f = Fixture::new(&[
        (
            "c/Chart.yaml",
            "apiVersion: v2\nname: c\nversion: 0.1.0\nkubeVersion: \">=1.20.0-0 <1.30.0-0\"\n",
        ),
        ("c/templates/a.yaml", "a: 1\n"),
    ]);
    f.same(&["c"])
        .expect_err("the default kube version is too new");
    f.same(&["c", "--kube-version", "1.29.3"])
        .expect("within the range");
}

#[test]
fn a_document_that_is_not_a_mapping_fails_like_helm() {
    let f = Fixture::new(&[
        ("c/Chart.yaml", &chart_yaml("c", "0.1.0")),
        ("c/templates/a.yaml", "- a\n- b\n"),
    ]);
    f.same(&["c"]).expect_err("not a mapping");
}
