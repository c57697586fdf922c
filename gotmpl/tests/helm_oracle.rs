//! Compares the engine with a real Helm: snippets using Go built-ins, `printf`, control flow and
//! `define`/`include`/`tpl` are rendered by `helm template` in one throwaway chart and by the engine, and
//! the outputs must match exactly. Error cases run one chart each and compare Go's error text (Helm 3
//! prints execution errors as Go words them).
//!
//! `helm` and `helm3` must be on PATH (CI installs them): without them these tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use gotmpl::value::Entries;
use gotmpl::{ErrorKind, MissingKey, Options, Templates, Value};

const CHART: &str = "oracle";

const VALUES_YAML: &str = r#"s: str
empty: ""
num: 3
flt: 1.5
big: 1000000
t: true
f: false
nul: null
list: [1, "two", 3.5]
strs: [b, a, c]
emptylist: []
m: {b: 2, a: 1, c: {d: deep}}
html: "<a href='x'>&\"</a>"
"#;

const HELPERS: &str = r#"{{- define "helper" -}}h:{{ .s }}{{- end -}}
{{- define "nested" -}}[{{ include "helper" . }}|{{ template "leaf" .m }}]{{- end -}}
{{- define "leaf" -}}{{ .a }}{{ .missing }}{{- end -}}
"#;

/// The values of `VALUES_YAML` as Helm reads them (every number a float64).
fn values() -> Value {
    fn map(pairs: Vec<(&str, Value)>) -> Value {
        Value::from(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<Entries>(),
        )
    }
    map(vec![
        ("s", Value::from("str")),
        ("empty", Value::from("")),
        ("num", Value::Float(3.0)),
        ("flt", Value::Float(1.5)),
        ("big", Value::Float(1e6)),
        ("t", Value::Bool(true)),
        ("f", Value::Bool(false)),
        ("nul", Value::Nil),
        (
            "list",
            Value::from(vec![
                Value::Float(1.0),
                Value::from("two"),
                Value::Float(3.5),
            ]),
        ),
        (
            "strs",
            Value::from(vec![Value::from("b"), Value::from("a"), Value::from("c")]),
        ),
        ("emptylist", Value::from(Vec::new())),
        (
            "m",
            map(vec![
                ("b", Value::Float(2.0)),
                ("a", Value::Float(1.0)),
                ("c", map(vec![("d", Value::from("deep"))])),
            ]),
        ),
        ("html", Value::from("<a href='x'>&\"</a>")),
    ])
}

/// Snippets that render without error under Helm.
const CASES: &[&str] = &[
    // Printing values.
    r#"{{ .Values.s }} {{ .Values.num }} {{ .Values.flt }} {{ .Values.big }} {{ .Values.t }} [{{ .Values.nul }}] [{{ .Values.missing }}]"#,
    r#"{{ .Values.list }} {{ .Values.m }} {{ .Values.strs }} {{ .Values.emptylist }}"#,
    r#"{{ 0x1F }} {{ -3 }} {{ 1_000 }} {{ 2.5 }} {{ 1e6 }} {{ 'a' }} {{ 0755 }} {{ 0o17 }} {{ 0b101 }} {{ "\u00e9\x41\101\t|" }} {{ `raw\n` }} {{ true }} {{ 1.0 }} {{ 1e-7 }} {{ '\n' }}"#,
    // Control flow.
    r#"{{ if .Values.t }}T{{ else }}F{{ end }} {{ if .Values.empty }}x{{ else if .Values.num }}num{{ end }} {{ if not .Values.missing }}nm{{ end }} {{ if .Values.emptylist }}x{{ else }}el{{ end }}"#,
    r#"{{ with .Values.m }}{{ .a }}{{ $.Values.s }}{{ end }} {{ with .Values.missing }}x{{ else with .Values.s }}{{ . }}{{ end }} {{ with $x := .Values.num }}{{ $x }}{{ . }}{{ end }}"#,
    r#"{{ range $i, $v := .Values.list }}{{ $i }}:{{ $v }},{{ end }} {{ range .Values.strs }}{{ . }}{{ end }} {{ range $v := .Values.strs }}{{ $v }}{{ end }}"#,
    r#"{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }} {{ range .Values.m }}<{{ . }}>{{ end }}"#,
    r#"{{ range $i := 6 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 4 }}{{ break }}{{ end }}{{ $i }}{{ end }} {{ range 3 }}{{ . }}{{ end }} {{ range 0 }}x{{ else }}zero{{ end }}"#,
    r#"{{ range .Values.missing }}x{{ else }}none{{ end }} {{ range .Values.emptylist }}x{{ else }}empty{{ end }} {{ range .Values.nul }}x{{ end }}"#,
    r#"{{ range $i, $s := .Values.strs }}{{ range $.Values.strs }}{{ if eq . "a" }}{{ break }}{{ end }}{{ . }}{{ end }}{{ $i }}{{ end }}"#,
    r#"{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ $y := 3 }}{{ $y }}{{ end }}{{ $x }} {{ $z := .Values.m }}{{ $z.c.d }} {{ range .Values.strs }}{{ $x = . }}{{ end }}{{ $x }}"#,
    "a  {{- .Values.s -}}  b\n  {{- /* comment */ -}}\n c {{/* another */}}|{{- \"x\" }}\n  {{ \"y\" -}}\n  z",
    // Built-ins.
    r#"{{ eq .Values.s "str" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 .Values.flt }} {{ eq .Values.num 3.0 }} {{ eq 1 2 3 1 }} {{ eq .Values.missing "x" }} {{ eq .Values.nul nil }} {{ ne .Values.s "x" }}"#,
    r#"{{ and 1 0 2 }} {{ or 0 "" "x" }} {{ and .Values.t .Values.s }} [{{ or .Values.missing .Values.nul }}] {{ not 0 }} {{ not .Values.list }} {{ not .Values.emptylist }} {{ and 0 .Values.missing.x }} {{ or 1 .Values.nul.x }}"#,
    r#"{{ len .Values.list }} {{ len .Values.s }} {{ len .Values.m }} {{ index .Values.list 1 }} {{ index .Values.m "c" "d" }} [{{ index .Values.m "zz" }}] {{ index "abc" 1 }}"#,
    r#"{{ print "a" 1 2 "b" .Values.nul }}|{{ println 1 "x" }}|{{ print .Values.missing }}|{{ print }}|{{ print 1.0 2.5e10 .Values.list }}"#,
    r#"{{ html .Values.html }} {{ js .Values.html }} {{ urlquery "a b&c=d/é~" }} {{ html .Values.missing }} {{ html 1 "<" }} {{ js "x\ny" }}"#,
    // printf.
    r#"{{ printf "%d|%5d|%-5d|%05d|%x|%X|%o|%b|%#x|%+d|%c|%q|%U|%#o|%O" 255 255 255 255 255 255 255 255 255 255 65 65 65 8 8 }}"#,
    r#"{{ printf "%.2f|%f|%e|%E|%g|%G|%v|%8.3f|%-8.2f|%+.1e|%v|%g|%.3g|%.10g|%v" 3.14159 3.14159 3.14159 314159.0 0.000012 1e21 .Values.big -3.14159 2.5 12345.678 100000.0 1e-5 1234.5678 0.1 .Values.flt }}"#,
    r#"{{ printf "%s|%q|%.2s|%7s|%-7s|%x|%X|% x|%#q|%+q|%v|%08.3f|%+d" "héllo" "héllo" "héllo" "héllo" "héllo" "hi" "hi" "hi" "a\"b" "é" true -3.14159 5 }}"#,
    r#"{{ printf "%d %s" "x" }} {{ printf "%s" 1 2 }} {{ printf "%z" 3 }} {{ printf "%v %v %s" .Values.nul .Values.missing .Values.nul }} {{ printf "%T %T %T %T %T %T" .Values.num .Values.list .Values.m .Values.s .Values.nul 1 }} {{ printf "%d" .Values.num }} {{ printf "100%%" }} {{ printf "%" }} {{ printf "%!" }}"#,
    r#"{{ printf "%v|%d|%s|%q|%#v|%+v" .Values.list .Values.list .Values.strs .Values.strs .Values.list .Values.m }} {{ printf "%#v %#v %#v" .Values.s .Values.num .Values.m }}"#,
    r#"{{ printf "%*d|%-*d|%[2]d %[1]d|%.*f|%[3]s" 4 7 3 7 }} {{ printf "%[2]d %[1]d" 1 2 }} {{ printf "%[5]d" 1 }} {{ printf "%.*f" 2 3.14159 }} {{ printf "%6.2v|%t|%5t" 3.14159 true false }}"#,
    // Pipelines.
    r#"{{ .Values.s | printf "%s!" }} {{ (index .Values.m "c").d }} {{ .Values.num | printf "%v-%v" 1 }} {{ "x" | print "a" }} {{ .Values.s | }} {{ (printf "%s" "p") | len }} {{ $ := 1 }}"#,
    // Missing and nil values.
    r#"[{{ $x := index .Values.m "zz" }}{{ $x.q }}] [{{ $y := .Values.nul }}{{ $y }}{{ $y.q }}] [{{ (index .Values.m "zz").q }}]"#,
    // More edge cases.
    "{{- \"a\" -}}\t\r\n {{- \"b\" }}  {{- /* c */}} x {{/* d */ -}}\n\ny{{ \"-\" }}{{-3}}",
    r#"{{ 1e21 }} {{ 0.000001 }} {{ 123456789.0 }} {{ 1e20 }} {{ -0.0 }} {{ 1.5e300 }} {{ '\x41' }} {{ '\u00e9' }} {{ "\u2028\U0001F600" }} {{ 07 }} {{ 0x_1F }} {{ 1_2.3_4 }}"#,
    r#"{{ printf "%05s|%-5s|%.0d|%+.2e|%x|%X|% d|%+q|%#U|%c|%08b|%3c|%-4q" "ab" "ab" 0 12345.678 -255 "héllo" 5 "é" 233 233 5 65 66 }}"#,
    r#"{{ printf "%v %v %v %v" .Values.m.c .Values.list 1.0 true }} {{ printf "%6.2f|%-8.3v|%08.2f|%.0f|%.1f|%.1f" 3.14159 3.14159 -1.5 2.5 0.05 0.25 }}"#,
    r#"{{ printf "%g %g %g %g %g %G %e" 1e-4 1e-5 123456.0 1234567.0 0.1 1e-10 0.0 }} {{ printf "%.2g %.3e %10.4g|%-10.1e|" 123456.0 0.00012345 3.14159 12345.0 }}"#,
    r#"{{ .Values.s | and 1 }} {{ .Values.empty | or "dflt" }} {{ 0 | not }} {{ .Values.s | eq "str" }} {{ "b" | lt "a" }} {{ .Values.num | printf "%v" }}"#,
    r#"{{ range $k, $v := .Values.m }}{{ if eq $k "c" }}{{ range $k2, $v2 := $v }}{{ $k }}.{{ $k2 }}={{ $v2 }}{{ end }}{{ else }}{{ $k }}={{ $v }} {{ end }}{{ end }}"#,
    r#"{{ $v := "outer" }}{{ range .Values.strs }}{{ $v := . }}{{ $v }}{{ end }}{{ $v }} {{ with .Values.s }}{{ $v = . }}{{ end }}{{ $v }} {{ range $i, $v := .Values.strs }}{{ end }}{{ $v }}"#,
    r#"{{ range .Values.strs }}{{ with $.Values.m }}{{ if .a }}{{ end }}{{ end }}{{ if eq . "a" }}{{ continue }}{{ end }}{{ . }}{{ end }} {{ range $i, $e := .Values.list }}{{ with $e }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ . }}{{ end }}{{ end }}"#,
    r#"{{ define "case-args" }}{{ $ }}|{{ . }}|{{ $.a }}{{ end }}{{ template "case-args" .Values.m }} {{ include "case-args" (index .Values.m "c") }}"#,
    r#"{{ len "héllo" }} {{ index .Values.list 2 }} {{ index .Values.strs 0 }} {{ len .Values.m.c }} {{ print (index .Values.m "c") }} {{ print 1 2 "x" 3 "y" "z" 4.5 nil }}"#,
    r#"{{ "a\tb" }}|{{ `a\tb` }}|{{ "\x41\102\u0043" }}|{{ print "\"" }}|{{ js "é\u2028<" }}|{{ html "\x00x" }}|{{ urlquery "~._-" "x y" }}"#,
    r#"{{ printf "%x|%X|%b" 3.5 -0.75 5.0 }} {{ printf "%e|%s|%d|%q|%c|%t|%t" 0 true true 3.5 "x" 1 true }}"#,
    r#"{{ printf "%10.3s|%-10v|%x|%#x|%08.3e|%+v|%.2v|%5t|%5.1f%%" "abcdef" .Values.list .Values.strs "abc" -1.5 .Values.nul "abc" true 99.44 }}"#,
    r#"{{ .Values }} {{ print .Values.m }} {{ 9007199254740993 }} {{ printf "%v" .Values.emptylist }} {{ printf "%d" .Values.emptylist }}"#,
    r#"{{ with $x := .Values.missing }}{{ else }}[{{ $x }}]{{ end }} {{ range $i, $v := .Values.list }}{{ $i }}{{ else }}none{{ end }} {{ "a" }}{{/* */}}{{ "b" }} {{- /* x */}} {{/* y */ -}} z"#,
    r#"{{ printf "%6.2f|%-6.1f|%06d|%-06d|%+06d|% 6d|%x|%o|%#o|%#b" 3.14159 2.5 -42 42 42 42 -255 -8 8 5 }}"#,
    r#"{{ printf "%3c|%-3c|%q|%q|%q|%U|%#U" 65 66 10 39 0x1F600 0x1F600 0x1F600 }}"#,
    r#"{{ printf "%s %v" .Values.m.c .Values.m.c }} {{ printf "%q" .Values.m }} {{ printf "%5s|" .Values.strs }}"#,
    // Templates.
    r#"{{ define "case-local" }}<{{ . }}>{{ end }}{{ template "case-local" .Values.s }} {{ include "helper" .Values }} {{ block "case-blk" .Values.num }}[{{ . }}]{{ end }} {{ include "nested" .Values }} {{ template "leaf" }}"#,
    r#"{{ tpl "{{ .Values.s }}-{{ include \"helper\" .Values }}" . }} [{{ tpl "{{ .missing }}" .Values }}] {{ tpl "{{ define \"tpl-def\" }}d{{ end }}{{ template \"tpl-def\" }}" . }} {{ required "need s" .Values.s }} {{ include "helper" .Values | len }}"#,
];

/// Snippets that fail; the engine's error must read as Go's.
const ERROR_CASES: &[&str] = &[
    "{{ .Values.nul.b }}",
    "x\n  {{ .Values.missing.b }}",
    "{{ .Values.s.y }}",
    r#"{{ eq 1 "1" }}"#,
    "{{ lt 1 1.5 }}",
    "{{ index .Values.list 5 }}",
    "{{ len 3 }}",
    r#"{{ include "nope" . }}"#,
    r#"{{ tpl "{{ .x.y }}" .Values }}"#,
    r#"{{ tpl "{{ nosuch }}" .Values }}"#,
    "{{ .Values.s 1 }}",
    r#"{{ template "nope" }}"#,
    "{{ range $i, $v := 3 }}{{ end }}",
    "{{ range .Values.s }}{{ end }}",
    "{{ index .Values.nul 1 }}",
    "{{ not }}",
    "{{ eq .Values.m .Values.m }}",
    "{{ .Values.list.x }}",
    "{{ $x := .Values.list }}{{ $x.a }}",
    "{{ index .Values.m 1 }}",
    "{{ index .Values.list \"a\" }}",
    "{{ len .Values.nul }}",
    "{{ printf }}",
    "{{ index .Values.missing \"a\" }}",
    "{{ and }}",
    "{{ call .Values.s }}",
    "{{ call .Values.missing }}",
    "{{ .Values.nul 1 }}",
    "{{ $x := 1 }}{{ $x.y }}",
    "{{ (1).y }}",
    "{{ (index .Values.m \"c\").d.e }}",
    "{{ (.Values.s).e }}",
    "{{ with .Values.list }}{{ .x }}{{ end }}",
    "{{ range .Values.list }}{{ .x }}{{ end }}",
    "{{ range $i := 2 }}{{ $i.x }}{{ end }}",
    "{{ define \"case-d\" }}{{ .x }}{{ end }}{{ range .Values.list }}{{ template \"case-d\" . }}{{ end }}",
    "{{ .Values.s | .Values.t }}",
    "{{ range $i, $e := .Values.m }}{{ $i | len }}{{ $e.q }}{{ end }}",
    r#"{{ required "set it" .Values.missing }}"#,
    r#"{{ required "set empty" .Values.empty }}"#,
    r#"{{ fail "boom: with colon" }}"#,
    r#"{{ define "case-req" }}{{ required "inner" .x }}{{ end }}{{ include "case-req" .Values }}"#,
    r#"{{ tpl "{{ fail \"in tpl\" }}" . }}"#,
    "{{ eq .Values.list .Values.m }}",
    "{{ ne 1 }}",
    "{{ 1 2 }}",
    "{{ nil }}",
    r#"{{ define "case-err2" }}{{ .a.b }}{{ end }}{{ template "case-err2" .Values }}"#,
    // Parse errors (Helm shortens them to the last part of Go's message).
    "{{ nosuch 1 }}",
    "{{ if 1 }}",
    "{{ end }}",
    "{{ $x }}",
    "{{ \"abc }}",
    "{{ (1 }}",
    "{{ 1 ) }}",
    "{{ else }}",
    "{{ 12ab }}",
    "{{ # }}",
    "{{ \"\\q\" }}",
    "{{ break }}",
    "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
    "{{ .a | \"x\" }}",
    "{{ }}",
];

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gotmpl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("templates")).expect("create scratch chart");
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {CHART}\nversion: 0.1.0\n"),
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), VALUES_YAML).unwrap();
    std::fs::write(dir.join("templates/_helpers.tpl"), HELPERS).unwrap();
    dir
}

/// Runs `helm template` on the chart; stdout and stderr.
fn helm(binary: &str, dir: &Path) -> (String, String) {
    let output = Command::new(binary)
        .args(["template", "--debug"])
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{binary}` ({e}): these tests compare the engine with Helm; install Helm and put `{binary}` on PATH")
        });
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn file_name(n: usize) -> String {
    format!("{CHART}/templates/case-{n}.yaml")
}

/// The engine's set: the helpers, then the given files, as Helm parses a chart.
fn engine(files: &[(String, String)]) -> Result<Templates, gotmpl::TemplateError> {
    let mut set = Templates::new(Options {
        missing_key: MissingKey::Zero,
        helm: true,
    });
    set.parse(&format!("{CHART}/templates/_helpers.tpl"), HELPERS)?;
    for (name, text) in files {
        set.parse(name, text)?;
    }
    Ok(set)
}

fn dot() -> Value {
    let mut top = Entries::new();
    top.insert("Values".into(), values());
    Value::from(top)
}

/// The body of each `# Source:` section of Helm's output, by file name.
fn sections(stdout: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for doc in stdout.split("---\n# Source: ").skip(1) {
        let (name, body) = doc.split_once('\n').unwrap_or((doc, ""));
        out.insert(name.to_string(), body.trim_end().to_string());
    }
    out
}

#[test]
fn helm_oracle() {
    let dir = scratch_dir("oracle");
    let files: Vec<(String, String)> = CASES
        .iter()
        .enumerate()
        .map(|(n, snippet)| (file_name(n), format!("# case {n}\n{snippet}")))
        .collect();
    for (n, (_, text)) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("templates/case-{n}.yaml")), text).unwrap();
    }
    let (stdout, stderr) = helm("helm", &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let helm_out = sections(&stdout);
    assert!(!helm_out.is_empty(), "helm rendered nothing: {stderr}");
    let set = engine(&files).unwrap_or_else(|e| panic!("engine parse: {e}"));
    let mut failures = Vec::new();
    for (n, (name, _)) in files.iter().enumerate() {
        let Some(want) = helm_out.get(name) else {
            failures.push(format!(
                "case {n}: helm printed no output (stderr: {stderr})"
            ));
            continue;
        };
        let got = match set.execute(name, &dot()) {
            Ok(out) => out.replace("<no value>", "").trim().to_string(),
            Err(e) => format!("ERROR {e}"),
        };
        if &got != want {
            failures.push(format!(
                "case {n} {:?}:\n  helm:   {want:?}\n  engine: {got:?}",
                CASES[n]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Helm 4's error as one line: it prints Go's execution errors over several lines
/// (`Error: FILE:L:C` / `executing "..." at <...>:` / `MESSAGE`).
fn helm_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("Error: "))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("level=") && !l.starts_with("Use --debug"))
        .collect();
    let Some(first) = lines.first().and_then(|l| l.strip_prefix("Error: ")) else {
        return "(no error)".into();
    };
    if first.starts_with("template: ") || first.starts_with("parse error") || lines.len() == 1 {
        return first.to_string();
    }
    format!("template: {first}: {}", lines[1..].join(" "))
}

#[test]
fn helm_oracle_errors() {
    let mut failures = Vec::new();
    for (n, snippet) in ERROR_CASES.iter().enumerate() {
        let dir = scratch_dir(&format!("oracle-err-{n}"));
        std::fs::write(dir.join("templates/case-0.yaml"), snippet).unwrap();
        let (_, stderr) = helm("helm", &dir);
        let _ = std::fs::remove_dir_all(&dir);
        let want = helm_error(&stderr);
        let got = match engine(&[(file_name(0), snippet.to_string())]) {
            Err(e) if e.kind == ErrorKind::Parse => e.helm_text(),
            Err(e) => format!("unexpected error kind: {e}"),
            Ok(set) => match set.execute(&file_name(0), &dot()) {
                Ok(out) => format!("(no error: {out:?})"),
                Err(e) => e.helm_text(),
            },
        };
        if got != want {
            failures.push(format!("{snippet:?}:\n  helm3:  {want}\n  engine: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} error cases differ:\n{}",
        failures.len(),
        ERROR_CASES.len(),
        failures.join("\n")
    );
}
