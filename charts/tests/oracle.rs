//! The chart corpus rendered by us and by two real helms (`helm` v4.1.4 and `helm3` v3.17.2), compared.
//!
//! Each `testdata/charts/<name>/` holds a chart of our own in `chart/`, values files, and `cases.txt`: one case a
//! line, `name: ARGS`, where ARGS are `helm template` arguments (`-f`, `--set`, `--kube-version`, ...; paths
//! relative to the case directory; `--release NAME` gives the release name, `rel` by default). A name starting
//! with `!` is a case that must fail. `pack.txt` lists pieces built into the chart copy before rendering:
//! `SRC -> charts/NAME.tgz` packs the chart directory `SRC` (relative to `testdata/charts/`), `SRC -> charts/NAME/`
//! copies it.
//!
//! A passing case: our text equals helm v4's byte for byte, and our documents (parsed as YAML) equal both
//! helms' documents (helm v3's in any order: it orders kinds it does not know differently; where the two
//! helms' documents differ, as for `.Capabilities.KubeVersion` of `v1.30.0-gke.1`, v4 is the reference).
//! A failing case: both helms and we fail, and our message names the same template file and line as helm's.
//!
//! Every case runs, then one summary prints; `ORACLE_CASE=substring` runs only the matching cases.
//! `ORACLE_OURS=helm3` puts helm v3's output in our place, to check the comparison itself.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use charts::TemplateOptions;
use gotmpl::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/charts");

/// One line of a `cases.txt`.
struct Case {
    chart: String,
    name: String,
    must_fail: bool,
    /// Arguments for both helms after `template NAME CHART`.
    helm_args: Vec<String>,
    options: TemplateOptions,
}

/// What a renderer printed: its stdout, or its error message.
type Outcome = Result<String, String>;

#[test]
fn corpus_renders_as_both_helms_render_it() {
    let helm4 = Helm::find("helm", "v4.");
    let helm3 = Helm::find("helm3", "v3.");
    let filter = std::env::var("ORACLE_CASE").unwrap_or_default();
    let ours_is_helm3 = std::env::var("ORACLE_OURS").is_ok_and(|v| v == "helm3");
    let scratch = tempfile::tempdir().expect("temporary directory");

    let mut report = String::new();
    let mut failures = Vec::new();
    let mut total = 0;
    for chart in corpus_charts() {
        let chart_dir = prepare_chart(&chart, scratch.path());
        for mut case in read_cases(&chart) {
            let label = format!("{}/{}", case.chart, case.name);
            if !label.contains(&filter) {
                continue;
            }
            total += 1;
            case.options.chart = chart_dir.clone();
            let case_dir = Path::new(CORPUS).join(&chart);
            let v4 = helm4.template(&case, &chart_dir, &case_dir);
            let v3 = helm3.template(&case, &chart_dir, &case_dir);
            let ours = if ours_is_helm3 {
                v3.clone()
            } else {
                charts::template(&case.options).map_err(|e| e.to_string())
            };
            let verdict = if case.must_fail {
                judge_failure(&ours, &v4, &v3)
            } else {
                judge_success(&ours, &v4, &v3)
            };
            let _ = writeln!(report, "{label}: {}", verdict.summary);
            if let Some(detail) = verdict.failure {
                failures.push(format!("=== {label} ===\n{detail}"));
            }
        }
    }
    let passed = total - failures.len();
    println!("{report}");
    for failure in &failures {
        println!("{failure}\n");
    }
    println!("oracle: {passed}/{total} cases pass");
    assert!(total > 0, "no case matched ORACLE_CASE={filter:?}");
    assert!(
        failures.is_empty(),
        "{} of {total} corpus cases differ from helm (listed above)",
        failures.len()
    );
}

/// The corpus directories that hold a chart, sorted.
fn corpus_charts() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(CORPUS)
        .expect("testdata/charts")
        .map(|e| {
            e.expect("corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| Path::new(CORPUS).join(n).join("cases.txt").is_file())
        .collect();
    names.sort();
    names
}

/// Copies the chart to `scratch/<name>/<chart name>` and builds what `pack.txt` asks for; returns the copy.
fn prepare_chart(name: &str, scratch: &Path) -> PathBuf {
    let case_dir = Path::new(CORPUS).join(name);
    let dest = scratch.join(name).join(chart_name(&case_dir.join("chart")));
    copy_dir(&case_dir.join("chart"), &dest);
    let Ok(pack) = fs::read_to_string(case_dir.join("pack.txt")) else {
        return dest;
    };
    for line in pack.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (src, target) = line
            .split_once("->")
            .unwrap_or_else(|| panic!("{name}/pack.txt: `{line}` is not `SRC -> TARGET`"));
        let src = Path::new(CORPUS).join(src.trim());
        let target = target.trim();
        if let Some(dir) = target.strip_suffix('/') {
            copy_dir(&src, &dest.join(dir));
        } else {
            pack_chart(&src, &dest.join(target));
        }
    }
    dest
}

/// The `name:` of a chart's Chart.yaml.
fn chart_name(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("Chart.yaml")).expect("Chart.yaml");
    text.lines()
        .find_map(|l| l.strip_prefix("name:"))
        .map(|n| n.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{}: Chart.yaml has no name", dir.display()))
}

fn copy_dir(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).expect("create chart copy");
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let entry = entry.expect("dir entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copy chart file");
        }
    }
}

/// Packs a chart directory as `helm package` lays it out: every file under `<chart name>/`.
fn pack_chart(src: &Path, archive: &Path) {
    fs::create_dir_all(archive.parent().expect("archive parent")).expect("charts/ directory");
    let file = fs::File::create(archive).expect("create archive");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(chart_name(src), src)
        .expect("pack chart");
    tar.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip");
}

fn read_cases(chart: &str) -> Vec<Case> {
    let case_dir = Path::new(CORPUS).join(chart);
    let text = fs::read_to_string(case_dir.join("cases.txt")).expect("cases.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (name, args) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{chart}/cases.txt: `{line}` is not `name: ARGS`"));
            let (must_fail, name) = match name.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, name),
            };
            parse_case(chart, name.trim(), must_fail, &split_args(args), &case_dir)
        })
        .collect()
}

/// Splits like a shell without expansions: whitespace separates, single quotes group.
fn split_args(s: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

fn parse_case(chart: &str, name: &str, must_fail: bool, args: &[String], dir: &Path) -> Case {
    let mut options = TemplateOptions {
        release_name: "rel".to_string(),
        ..TemplateOptions::default()
    };
    let mut helm_args = Vec::new();
    let mut it = args.iter();
    let absolute = |p: &str| dir.join(p).to_string_lossy().into_owned();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{chart}/{name}: {flag} needs a value"))
                .clone()
        };
        match flag.as_str() {
            "--release" => options.release_name = value(),
            "-n" | "--namespace" => options.namespace = value(),
            "-f" | "--values" => {
                let path = absolute(&value());
                helm_args.extend(["-f".to_string(), path.clone()]);
                options.value_files.push(path.into());
            }
            "--set-file" => {
                let v = value();
                let (key, path) = v.split_once('=').expect("--set-file KEY=PATH");
                let v = format!("{key}={}", absolute(path));
                helm_args.extend([flag.clone(), v.clone()]);
                options.set_file.push(v);
            }
            "--set" | "--set-string" | "--set-json" | "--kube-version" | "--api-versions"
            | "-a" | "-s" | "--show-only" => {
                let v = value();
                helm_args.extend([flag.clone(), v.clone()]);
                match flag.as_str() {
                    "--set" => options.set.push(v),
                    "--set-string" => options.set_string.push(v),
                    "--set-json" => options.set_json.push(v),
                    "--kube-version" => options.kube_version = Some(v),
                    "-s" | "--show-only" => options.show_only.push(v),
                    _ => options.api_versions.push(v),
                }
            }
            "--include-crds" => options.include_crds = true,
            "--skip-tests" => options.skip_tests = true,
            "--no-hooks" => options.no_hooks = true,
            "--is-upgrade" => options.is_upgrade = true,
            other => panic!("{chart}/{name}: unknown argument `{other}` in cases.txt"),
        }
        if matches!(
            flag.as_str(),
            "--include-crds" | "--skip-tests" | "--no-hooks" | "--is-upgrade"
        ) {
            helm_args.push(flag.clone());
        }
    }
    // Always explicit: helm would otherwise take the namespace from a kubeconfig or $HELM_NAMESPACE.
    helm_args.extend(["--namespace".to_string(), options.namespace.clone()]);
    Case {
        chart: chart.to_string(),
        name: name.to_string(),
        must_fail,
        helm_args,
        options,
    }
}

/// A real helm binary, checked at start: the oracle is not optional.
struct Helm {
    program: String,
}

impl Helm {
    fn find(program: &str, version_prefix: &str) -> Helm {
        let out = Command::new(program).args(["version", "--short"]).output();
        let version = match out {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            _ => panic!(
                "the chart oracle needs `{program}` ({version_prefix}x) on PATH and could not run it: \
                 install both helms with `.ci/helm` (HELM_INSTALL_DIR=DIR to choose where)"
            ),
        };
        assert!(
            version.starts_with(version_prefix),
            "`{program} version` says {version}, the oracle wants {version_prefix}x"
        );
        Helm {
            program: program.to_string(),
        }
    }

    fn template(&self, case: &Case, chart: &Path, cwd: &Path) -> Outcome {
        let out = Command::new(&self.program)
            .arg("template")
            .arg(&case.options.release_name)
            .arg(chart)
            .args(&case.helm_args)
            .current_dir(cwd)
            .env_remove("HELM_NAMESPACE")
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program));
        if out.status.success() {
            Ok(String::from_utf8(out.stdout).expect("helm prints UTF-8"))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

struct Verdict {
    summary: String,
    failure: Option<String>,
}

fn judge_success(ours: &Outcome, v4: &Outcome, v3: &Outcome) -> Verdict {
    let (v4, v3) = match (v4, v3) {
        (Ok(v4), Ok(v3)) => (v4, v3),
        (v4, v3) => {
            return Verdict {
                summary: "CORPUS ERROR: a helm failed".into(),
                failure: Some(format!(
                    "a success case failed in helm, fix the corpus:\nhelm v4: {}\nhelm v3: {}",
                    v4.as_ref().err().map_or("ok", |e| e.as_str()),
                    v3.as_ref().err().map_or("ok", |e| e.as_str())
                )),
            };
        }
    };
    // Where the helms disagree on the documents themselves (not only their order), v4 is the reference.
    let helms_agree = if v4 == v3 {
        "v3 = v4 text"
    } else if sorted_documents(v3).ok() == sorted_documents(v4).ok() {
        "v3 != v4 text, same documents"
    } else {
        "v3 != v4 documents: v4 is the reference"
    };
    let ours = match ours {
        Ok(ours) => ours,
        Err(e) => {
            return Verdict {
                summary: format!("FAIL, we failed ({helms_agree})"),
                failure: Some(format!("helm rendered it, we failed:\n{e}")),
            };
        }
    };
    let text_v4 = ours == v4;
    let docs_v4 = text_v4 || documents(ours).ok() == documents(v4).ok() && documents(v4).is_ok();
    let docs_v3 = if v3 == v4 || helms_agree.ends_with("reference") {
        docs_v4
    } else {
        sorted_documents(ours).ok() == sorted_documents(v3).ok() && documents(v3).is_ok()
    };
    let mark = |ok: bool| if ok { "ok" } else { "DIFF" };
    let summary = format!(
        "{}: text v4 {}, documents v4 {} v3 {} ({helms_agree})",
        if text_v4 && docs_v3 { "pass" } else { "FAIL" },
        mark(text_v4),
        mark(docs_v4),
        if helms_agree.ends_with("reference") {
            "n/a"
        } else {
            mark(docs_v3)
        }
    );
    let failure = (!text_v4 || !docs_v3).then(|| {
        let mut detail = first_difference(ours, v4);
        if let Err(e) = documents(ours) {
            let _ = write!(detail, "\nour output is not YAML: {e}");
        }
        if !docs_v3 && docs_v4 {
            detail.push_str(
                "\n(and our documents differ from helm v3's, which differ from v4's in text)",
            );
        }
        detail
    });
    Verdict { summary, failure }
}

fn judge_failure(ours: &Outcome, v4: &Outcome, v3: &Outcome) -> Verdict {
    let (v4, v3) = match (v4, v3) {
        (Err(v4), Err(v3)) => (v4, v3),
        _ => {
            return Verdict {
                summary: "CORPUS ERROR: a helm succeeded".into(),
                failure: Some("a `!` case rendered in helm: fix the corpus".into()),
            };
        }
    };
    let ours = match ours {
        Ok(_) => {
            return Verdict {
                summary: "FAIL, we rendered it".into(),
                failure: Some(format!("helm failed, we rendered it; helm v4 said:\n{v4}")),
            };
        }
        Err(e) => e,
    };
    let wanted = expected_mentions(v4, v3);
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|w| !ours.contains(w.as_str()))
        .collect();
    if missing.is_empty() {
        // Informational: helm v4's exact wording (log lines such as `level=WARN ...` left out).
        let helm_message: Vec<&str> = v4.lines().filter(|l| !l.starts_with("level=")).collect();
        let wording = if format!("Error: {ours}").trim_end() == helm_message.join("\n").trim_end() {
            "same wording as v4"
        } else {
            "wording differs from v4"
        };
        Verdict {
            summary: format!("pass: all fail, ours names {wanted:?}, {wording}"),
            failure: None,
        }
    } else {
        Verdict {
            summary: format!("FAIL: our error lacks {missing:?}"),
            failure: Some(format!(
                "our error:\n{ours}\nhelm v4's:\n{v4}\nit should contain {missing:?}"
            )),
        }
    }
}

/// What our error must contain, taken from helm's: the template file and line (`chart/templates/x.yaml:12`),
/// else the file, else the kind of check that refused.
fn expected_mentions(v4: &str, v3: &str) -> Vec<String> {
    let located =
        regex::Regex::new(r"([\w.-]+/(?:templates|charts)/[^\s:()]+)(?::(\d+))?").expect("regex");
    if let Some(m) = located.captures(v4) {
        let file = m[1].to_string();
        return vec![match m.get(2) {
            Some(line) => format!("{file}:{}", line.as_str()),
            None => file,
        }];
    }
    if v4.contains("values don't meet the specifications") {
        let chart = v4
            .lines()
            .skip_while(|l| !l.contains("following chart(s)"))
            .nth(1)
            .unwrap_or("")
            .trim_end_matches(':');
        return vec![
            "values don't meet the specifications".into(),
            chart.to_string(),
        ];
    }
    if v4.contains("kubeVersion") && v3.contains("kubeVersion") {
        return vec!["kubeVersion".into()];
    }
    let first = v4
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("Error: ");
    vec![first.to_string()]
}

/// The documents of a manifest stream, canonical (sorted keys), empty documents left out.
fn documents(text: &str) -> Result<Vec<String>, String> {
    let docs = charts::yaml::parse_all(text).map_err(|e| e.to_string())?;
    Ok(docs
        .iter()
        .filter(|d| !matches!(d, Value::Nil))
        .map(canonical)
        .collect())
}

fn sorted_documents(text: &str) -> Result<Vec<String>, String> {
    let mut docs = documents(text)?;
    docs.sort();
    Ok(docs)
}

fn canonical(v: &Value) -> String {
    match v {
        Value::Map(m) => {
            let entries: Vec<String> = m
                .borrow()
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", canonical(v)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        Value::List(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) | Value::Int64(i) => format!("{}", *i as f64),
        Value::Float(f) => format!("{f}"),
        Value::Bool(b) => b.to_string(),
        Value::Nil | Value::Missing(_) => "null".into(),
        Value::Object(_) => "<object>".into(),
    }
}

/// The first document whose text differs, shown as a line diff (`-` helm v4, `+` ours).
fn first_difference(ours: &str, helm: &str) -> String {
    let ours_docs = split_documents(ours);
    let helm_docs = split_documents(helm);
    let n = ours_docs.len().max(helm_docs.len());
    for i in 0..n {
        let a = helm_docs.get(i).copied().unwrap_or("");
        let b = ours_docs.get(i).copied().unwrap_or("");
        if a != b {
            return format!(
                "document {} of {} (helm v4 has {}): --- helm v4, +++ ours\n{}",
                i + 1,
                ours_docs.len(),
                helm_docs.len(),
                line_diff(a, b)
            );
        }
    }
    "the texts differ only in the separators between documents".into()
}

fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices("---\n") {
        if i == 0 || text.as_bytes()[i - 1] == b'\n' {
            if i > start {
                docs.push(&text[start..i]);
            }
            start = i;
        }
    }
    if start < text.len() {
        docs.push(&text[start..]);
    }
    docs
}

/// A unified-style diff of two short texts (longest common subsequence of lines), with 3 lines of context.
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!("(too long to diff)\n--- helm v4\n{old}\n+++ ours\n{new}");
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| {
        let lo = k.saturating_sub(3);
        let hi = (k + 3).min(ops.len() - 1);
        ops[lo..=hi].iter().any(|(op, _)| *op != ' ')
    };
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line)) in ops.iter().enumerate() {
        if near_change(k) {
            if skipped {
                out.push_str("@@\n");
                skipped = false;
            }
            let _ = writeln!(out, "{op}{line}");
        } else {
            skipped = true;
        }
    }
    out
}

#[test]
fn comparison_sees_changed_values_but_not_key_order() {
    let helm = "---\n# Source: c/templates/a.yaml\na: 1\nb: [x]\n---\n# Source: c/templates/b.yaml\nc: d\n";
    let reordered = "---\n# Source: c/templates/a.yaml\nb: [x]\na: 1\n---\n# Source: c/templates/b.yaml\nc: d\n";
    let changed = "---\n# Source: c/templates/a.yaml\na: 1\nb: [x]\n---\n# Source: c/templates/b.yaml\nc: e\n";
    assert_eq!(documents(helm), documents(reordered));
    assert_ne!(documents(helm), documents(changed));
    let diff = first_difference(changed, helm);
    assert!(diff.starts_with("document 2 of 2"), "{diff}");
    assert!(diff.contains("-c: d\n+c: e\n"), "{diff}");
}

#[test]
fn error_locations_are_taken_from_helm_messages() {
    let exec = "Error: execution error at (web/templates/x.yaml:12:5): boom\n";
    assert_eq!(expected_mentions(exec, exec), ["web/templates/x.yaml:12"]);
    let parse = "Error: parse error at (bad/templates/broken.yaml:8): unexpected EOF";
    assert_eq!(
        expected_mentions(parse, parse),
        ["bad/templates/broken.yaml:8"]
    );
    let yaml = "Error: YAML parse error on box/templates/g.yaml: error converting YAML to JSON";
    assert_eq!(expected_mentions(yaml, yaml), ["box/templates/g.yaml"]);
    assert_eq!(
        split_args("--set 'a=b c' -f x"),
        ["--set", "a=b c", "-f", "x"]
    );
}
