//! The engine's behaviour: Go's `text/template` semantics (expected outputs checked against Go/Helm), the
//! missing-key modes, host objects, template sets, Helm's functions, and bounds on hostile templates.

use gotmpl::FuncResult;
use std::rc::Rc;

use gotmpl::value::Entries;
use gotmpl::{ErrorKind, MissingKey, Object, Options, Templates, Value};

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Entries>(),
    )
}

fn data() -> Value {
    map(vec![
        ("s", Value::from("str")),
        ("i", Value::Int(3)),
        ("f", Value::Float(1.5)),
        ("t", Value::Bool(true)),
        ("nul", Value::Nil),
        (
            "list",
            Value::from(vec![Value::Int(1), Value::from("two"), Value::Nil]),
        ),
        ("m", map(vec![("b", Value::Int(2)), ("a", Value::Int(1))])),
        ("Files", Value::Object(Rc::new(Files))),
    ])
}

/// A host object like Helm's `.Files`.
struct Files;

impl Object for Files {
    fn type_name(&self) -> &str {
        "chartutil.Files"
    }
    fn field(&self, name: &str) -> Option<Value> {
        (name == "Count").then_some(Value::Int(2))
    }
    fn call(&self, name: &str, args: Vec<Value>) -> Option<FuncResult> {
        match (name, args.as_slice()) {
            ("Get", [Value::Str(path)]) => Some(Ok(Value::from(format!("content of {path}")))),
            ("Get", _) => Some(Err("wrong number of args for Get: want 1 got 0".into())),
            ("Fail", _) => Some(Err("it failed".into())),
            _ => None,
        }
    }
    fn display(&self) -> String {
        "files".into()
    }
}

fn set_with(options: Options, source: &str) -> Result<Templates, gotmpl::TemplateError> {
    let mut set = Templates::new(options);
    set.parse("t", source)?;
    Ok(set)
}

fn run(options: Options, source: &str) -> Result<String, String> {
    let set = set_with(options, source).map_err(|e| e.to_string())?;
    set.execute("t", &data()).map_err(|e| e.to_string())
}

fn err(options: Options, source: &str) -> String {
    match run(options, source) {
        Ok(out) => panic!("{source:?} rendered {out:?}, expected an error"),
        Err(e) => e,
    }
}

/// The error of executing `source` in Helm mode, as Helm prints it.
fn helm_err(source: &str) -> String {
    let set = set_with(helm(), source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
    set.execute("t", &data()).expect_err(source).helm_text()
}

fn helm() -> Options {
    Options {
        missing_key: MissingKey::Zero,
        helm: true,
    }
}

#[test]
fn go_semantics_table() {
    let cases: &[(&str, &str)] = &[
        ("plain {text}", "plain {text}"),
        (
            "{{ .s }}|{{ .i }}|{{ .f }}|{{ .t }}|{{ .nul }}|{{ .nope }}",
            "str|3|1.5|true|<no value>|<no value>",
        ),
        ("{{ .list }} {{ .m }}", "[1 two <nil>] map[a:1 b:2]"),
        (
            "{{ .nope.deeper }}|{{ $x := .nope }}{{ $x.y }}",
            "<no value>|<no value>",
        ),
        ("{{ range $k, $v := .m }}{{ $k }}{{ $v }}{{ end }}", "a1b2"),
        ("{{ range $i, $v := .list }}{{ $i }}{{ end }}", "012"),
        (
            "{{ range $v := .list }}{{ $v }},{{ end }}",
            "1,two,<no value>,",
        ),
        (
            "{{ range 3 }}{{ . }}{{ end }}{{ range 0 }}x{{ else }}none{{ end }}",
            "012none",
        ),
        (
            "{{ $x := 1 }}{{ range .list }}{{ $x = . }}{{ end }}{{ $x }}",
            "<no value>",
        ),
        (
            "{{ $x := 1 }}{{ with .s }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}",
            "21",
        ),
        (
            "{{ if $v := .s }}{{ $v }}{{ else }}{{ $v }}!{{ end }}",
            "str",
        ),
        (
            "{{ with $v := .nope }}x{{ else }}{{ $v }}{{ end }}",
            "<no value>",
        ),
        ("{{ with .nope }}x{{ else with .s }}{{ . }}{{ end }}", "str"),
        ("{{ if .nope }}a{{ else if .t }}b{{ else }}c{{ end }}", "b"),
        (
            "{{ and .s .i }} {{ or .nope 0 }} {{ and .nope .s }}",
            "3 0 <no value>",
        ),
        (
            "{{ eq .i 3 }} {{ eq .s \"x\" \"str\" }} {{ ne .f 1.5 }} {{ lt \"a\" \"b\" }}",
            "true true false true",
        ),
        (
            "{{ len .list }} {{ index .list 1 }} {{ index .m \"a\" }} {{ index .m \"zz\" }}",
            "3 two 1 <no value>",
        ),
        ("{{ slice .list 1 }}", "[two <nil>]"),
        (
            "{{ print .nope }} {{ printf \"%v|%s\" .nope .s }}",
            "<nil> <nil>|str",
        ),
        (
            "{{ html \"<b>\" }} {{ js \"'\" }} {{ urlquery \"a b\" }}",
            "&lt;b&gt; \\' a+b",
        ),
        (
            "{{ .s | printf \"%s-%s\" \"a\" }} {{ (.m).a }} {{ (index .m \"b\") }}",
            "a-str 1 2",
        ),
        (
            "{{ 0x10 }} {{ 0o10 }} {{ 010 }} {{ 0b10 }} {{ 1_0 }} {{ 1e3 }} {{ 1.0 }} {{ 'x' }} {{ -2 }} {{ +2 }}",
            "16 8 8 2 10 1000 1 120 -2 2",
        ),
        ("{{ \"\\t\\\"q\\\"\" }} {{ `a\\nb` }}", "\t\"q\" a\\nb"),
        ("a {{- /* c */ -}} b {{- \" x \" -}} c", "ab x c"),
        (
            "{{ .Files.Get \"a.txt\" }} {{ .Files.Count }} {{ .Files }}",
            "content of a.txt 2 files",
        ),
        ("{{ \"a.txt\" | .Files.Get }}", "content of a.txt"),
        (
            "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .s }}{{ template \"x\" }}",
            "[str][<no value>]",
        ),
        ("{{ block \"b\" .i }}<{{ . }}>{{ end }}", "<3>"),
        (
            "{{ range $i, $x := .list }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $x }}{{ end }}",
            "1",
        ),
    ];
    let mut failures = Vec::new();
    for (source, want) in cases {
        match run(Options::default(), source) {
            Ok(got) if got == *want => {}
            Ok(got) => failures.push(format!("{source:?}: got {got:?}, want {want:?}")),
            Err(e) => failures.push(format!("{source:?}: error {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn execution_errors_read_as_go() {
    let cases: &[(&str, &str)] = &[
        (
            "{{ .nul.x }}",
            "template: t:1:7: executing \"t\" at <.nul.x>: nil pointer evaluating interface {}.x",
        ),
        (
            "{{ .s.x }}",
            "template: t:1:5: executing \"t\" at <.s.x>: can't evaluate field x in type interface {}",
        ),
        (
            "{{ $v := .s }}{{ $v.x }}",
            "template: t:1:19: executing \"t\" at <$v.x>: can't evaluate field x in type string",
        ),
        (
            "{{ .s 1 }}",
            "template: t:1:3: executing \"t\" at <.s>: s is not a method but has arguments",
        ),
        (
            "{{ eq .s 1 }}",
            "template: t:1:3: executing \"t\" at <eq .s 1>: error calling eq: incompatible types for comparison: string and int",
        ),
        (
            "{{ index .list 9 }}",
            "template: t:1:3: executing \"t\" at <index .list 9>: error calling index: index out of range: 9",
        ),
        (
            "{{ .Files.Nope }}",
            "template: t:1:9: executing \"t\" at <.Files.Nope>: can't evaluate field Nope in type chartutil.Files",
        ),
        (
            "{{ .Files.Fail 1 }}",
            "template: t:1:9: executing \"t\" at <.Files.Fail>: error calling Fail: it failed",
        ),
        (
            "{{ .Files.Count 1 }}",
            "template: t:1:9: executing \"t\" at <.Files.Count>: Count has arguments but cannot be invoked as function",
        ),
        (
            "{{ range .s }}{{ end }}",
            "template: t:1:9: executing \"t\" at <.s>: range can't iterate over str",
        ),
        (
            "{{ template \"nope\" }}",
            "template: t:1:12: executing \"t\" at <{{template \"nope\"}}>: template \"nope\" not defined",
        ),
        (
            "{{ define \"d\" }}\n {{ .x.y }}{{ end }}{{ template \"d\" .m }}",
            "template: t:2:6: executing \"d\" at <.x.y>: nil pointer evaluating interface {}.y",
        ),
    ];
    for (source, want) in cases {
        assert_eq!(&err(helm(), source), want, "{source:?}");
    }
    // An element being ranged over is an `interface {}` to Go; passed to `include` it is concrete again.
    let e = err(
        helm(),
        r#"{{ define "d" }}{{ .x }}{{ end }}{{ range .list }}{{ include "d" . }}{{ end }}"#,
    );
    assert!(e.ends_with("can't evaluate field x in type int"), "{e}");
    let e = err(helm(), "{{ range .list }}{{ .x }}{{ end }}");
    assert!(
        e.ends_with("can't evaluate field x in type interface {}"),
        "{e}"
    );
}

#[test]
fn parse_errors_read_as_go() {
    let cases: &[(&str, &str)] = &[
        ("a\n{{ if .x }}", "template: t:2: unexpected EOF"),
        ("{{ end }}", "template: t:1: unexpected {{end}}"),
        (
            "{{ nosuch }}",
            "template: t:1: function \"nosuch\" not defined",
        ),
        ("{{ $x }}", "template: t:1: undefined variable \"$x\""),
        (
            "{{ .x | 3 }}",
            "template: t:1: non executable command in pipeline stage 2",
        ),
        ("{{ break }}", "template: t:1: {{break}} outside {{range}}"),
        ("{{ 3x }}", "template: t:1: bad number syntax: \"3x\""),
        // A lexing error inside an action begun on an earlier line says where it began (Go 1.25).
        (
            "line1\n{{\"x\"\n\"y\"\n",
            "template: t:4: unclosed action started at t:2",
        ),
        (
            "{{\n\n\n\n\n",
            "template: t:6: unclosed action started at t:1",
        ),
        ("line1\n{{", "template: t:2: unclosed action"),
        (
            "{{ 1\n \"abc }}\n",
            "template: t:2: unterminated quoted string in action started at t:1",
        ),
        (
            "{{ 1\n (2 }}",
            "template: t:2: unclosed left paren in action started at t:1",
        ),
        ("{{ 1 }}\n{{/* x }}\n", "template: t:2: unclosed comment"),
        (
            "{{ define \"a\" }}1{{ end }}{{ define \"a\" }}2{{ end }}",
            "template: t:1: template: multiple definition of template \"a\"",
        ),
    ];
    for (source, want) in cases {
        let e = set_with(Options::default(), source)
            .err()
            .unwrap_or_else(|| panic!("{source:?} parsed"));
        assert_eq!(e.kind, ErrorKind::Parse);
        assert_eq!(e.to_string(), *want, "{source:?}");
    }
}

#[test]
fn missing_keys_follow_the_option() {
    let source = "{{ .nope }}|{{ .nope.deeper }}";
    assert_eq!(
        run(Options::default(), source).unwrap(),
        "<no value>|<no value>"
    );
    let zero = Options {
        missing_key: MissingKey::Zero,
        helm: false,
    };
    assert_eq!(run(zero, "{{ .nope }}").unwrap(), "<no value>");
    assert!(err(zero, source).ends_with("nil pointer evaluating interface {}.deeper"));
    let error = Options {
        missing_key: MissingKey::Error,
        helm: false,
    };
    assert!(err(error, source).ends_with("map has no entry for key \"nope\""));
    let strict = Options {
        missing_key: MissingKey::Strict(|key| format!("set {key}")),
        helm: false,
    };
    assert!(err(strict, "x {{ .nope.a }}").ends_with("set .nope.a"));
    assert!(err(strict, "{{ .nope | printf \"%s\" }}").ends_with("set .nope"));
    assert_eq!(
        run(
            strict,
            "{{ if .nope }}y{{ else }}n{{ end }}{{ eq .nope \"x\" }}"
        )
        .unwrap(),
        "nfalse"
    );
    // Helm mode is missingkey=zero even when the option is left at its default.
    let helm_default = Options {
        missing_key: MissingKey::Default,
        helm: true,
    };
    assert!(err(helm_default, "{{ .nope.x }}").contains("nil pointer"));
}

#[test]
fn helm_functions_include_tpl_required_fail() {
    let source = r#"{{ define "lbl" }}app: {{ .s }}{{ end }}{{ include "lbl" . | printf "%q" }} {{ tpl "{{ include \"lbl\" . }}/{{ .i }}" . }} {{ required "x" .s }}"#;
    assert_eq!(run(helm(), source).unwrap(), "\"app: str\" app: str/3 str");
    assert_eq!(
        helm_err(r#"{{ required "set s2" .s2 }}"#),
        "execution error at (t:1:3): set s2"
    );
    assert_eq!(
        helm_err(r#"x {{ required "set e" "" }}"#),
        "execution error at (t:1:5): set e"
    );
    assert_eq!(
        helm_err(r#"{{ define "f" }}{{ fail "boom: now" }}{{ end }}{{ include "f" . }}"#),
        "execution error at (t:1:50): boom: now"
    );
    // Go's own text keeps Helm's marks, as Go's error does.
    assert!(
        err(helm(), r#"{{ fail "boom" }}"#)
            .ends_with("error calling fail: HELM_ERR_STARTboomHELM_ERR_END")
    );
    assert_eq!(helm_err("{{ .s.x }}"), err(helm(), "{{ .s.x }}"));
    let parse = set_with(helm(), "{{ if }}").err().unwrap();
    assert_eq!(
        parse.helm_text(),
        "parse error at (t:1): missing value for if"
    );
    // A `define` inside `tpl` text stays in tpl's copy of the set.
    let set = set_with(
        helm(),
        r#"{{ tpl "{{ define \"inner\" }}i{{ end }}{{ template \"inner\" }}" . }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("t", &data()).unwrap(), "i");
    assert!(!set.has("inner"));
    // Helm's functions exist only in Helm mode.
    assert!(
        err(Options::default(), "{{ include \"x\" . }}")
            .contains("function \"include\" not defined")
    );
    let e = err(
        helm(),
        r#"{{ define "e" }}{{ .a.b }}{{ end }}{{ include "e" .m }}"#,
    );
    assert_eq!(
        e,
        "template: t:1:38: executing \"t\" at <include \"e\" .m>: error calling include: \
         template: t:1:21: executing \"e\" at <.a.b>: can't evaluate field b in type interface {}"
    );
}

#[test]
fn template_sets_share_defines_and_later_definitions_win() {
    let mut set = Templates::new(helm());
    set.parse(
        "a/_helpers.tpl",
        r#"{{ define "name" }}first{{ end }}{{ define "kept" }}kept{{ end }}"#,
    )
    .unwrap();
    set.parse(
        "a/b.yaml",
        r#"{{ include "name" . }} {{ template "kept" }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("a/b.yaml", &data()).unwrap(), "first kept");
    set.parse(
        "a/c.tpl",
        r#"{{ define "name" }}second{{ end }}{{ define "kept" }}  {{ end }}"#,
    )
    .unwrap();
    assert_eq!(set.execute("a/b.yaml", &data()).unwrap(), "second kept");
    assert!(set.has("a/_helpers.tpl") && set.has("name") && !set.has("nope"));
    assert_eq!(
        set.execute("nope", &data()).unwrap_err().to_string(),
        "template: no template \"nope\" associated with template \"gotpl\""
    );
    // Parse once, execute many times with different data.
    let other = map(vec![("s", Value::from("other"))]);
    set.parse("a/d.yaml", "{{ .s }}").unwrap();
    assert_eq!(set.execute("a/d.yaml", &data()).unwrap(), "str");
    assert_eq!(set.execute("a/d.yaml", &other).unwrap(), "other");
}

#[test]
fn added_functions_replace_builtins_and_see_nil_for_missing() {
    let mut set = Templates::new(Options::default());
    set.add_function("len", |_| Ok(Value::from("mine")));
    set.add_function("kind", |args| Ok(Value::from(args[0].type_name())));
    set.parse("t", "{{ len .list }} {{ kind .nope }} {{ .nope | kind }}")
        .unwrap();
    assert_eq!(set.execute("t", &data()).unwrap(), "mine <nil> <nil>");
}

#[test]
fn recursion_is_bounded_without_overflowing_the_stack() {
    let e = err(
        helm(),
        r#"{{ define "r" }}{{ if true }}{{ (include "r" .) }}{{ end }}{{ end }}{{ include "r" . }}"#,
    );
    assert!(e.contains("exceeded maximum template depth"), "{e}");
    let e = err(
        helm(),
        r#"{{ define "r" }}{{ with . }}{{ template "r" . }}{{ end }}{{ end }}{{ template "r" . }}"#,
    );
    assert!(e.contains("exceeded maximum template depth"), "{e}");
    let e = err(
        helm(),
        r#"{{ define "r" }}{{ tpl "{{ include \"r\" . }}" . }}{{ end }}{{ include "r" . }}"#,
    );
    assert!(e.contains("exceeded maximum template depth"), "{e}");
}

#[test]
fn runaway_templates_are_stopped_by_bounds() {
    let deep = "{{ if 1 }}".repeat(gotmpl::MAX_DEPTH + 1);
    assert!(err(Options::default(), &deep).contains("nested deeper"));
    let parens = format!(
        "{{{{ {}1{} }}}}",
        "(".repeat(gotmpl::MAX_DEPTH + 1),
        ")".repeat(gotmpl::MAX_DEPTH + 1)
    );
    assert!(err(Options::default(), &parens).contains("nested deeper"));
    let loops = "{{ range 10000 }}{{ range 10000 }}{{ end }}{{ end }}";
    assert!(err(Options::default(), loops).contains("steps"));
    let grow = r#"{{ define "g" }}{{ . }}{{ . }}{{ end }}{{ $x := "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }}{{ range 30 }}{{ $x = include "g" $x }}{{ end }}"#;
    assert!(err(helm(), grow).contains("grows beyond"));
}

proptest::proptest! {
    #[test]
    fn parsing_and_executing_never_panic(source in "\\PC{0,60}") {
        let _ = run(helm(), &source);
        let _ = run(Options::default(), &source);
    }

    #[test]
    fn action_soup_never_panics(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("{{"), proptest::strategy::Just("}}"), proptest::strategy::Just("{{- "),
                proptest::strategy::Just(" -}}"), proptest::strategy::Just(" if "), proptest::strategy::Just(" else "),
                proptest::strategy::Just(" end "), proptest::strategy::Just(" range "), proptest::strategy::Just(" with "),
                proptest::strategy::Just(" define \"d\" "), proptest::strategy::Just(" template \"d\" "),
                proptest::strategy::Just(" include \"d\" "), proptest::strategy::Just(" tpl "), proptest::strategy::Just(" .s "),
                proptest::strategy::Just(" .list "), proptest::strategy::Just(" $x := "), proptest::strategy::Just(" $x "),
                proptest::strategy::Just(" | "), proptest::strategy::Just("("), proptest::strategy::Just(")"),
                proptest::strategy::Just(" printf \"%5.2q%d%[3]*v\" "), proptest::strategy::Just(" index "),
                proptest::strategy::Just(" slice "), proptest::strategy::Just(" 1 "), proptest::strategy::Just("/*"),
                proptest::strategy::Just("*/"), proptest::strategy::Just("\""), proptest::strategy::Just("x\n"),
                proptest::strategy::Just(" break "), proptest::strategy::Just(" . "), proptest::strategy::Just(","),
            ],
            0..40,
        )
    ) {
        let _ = run(helm(), &parts.concat());
    }
}
