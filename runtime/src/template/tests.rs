//! Behaviour of the template engine, with expected outputs taken from Go text/template + sprig semantics.

use super::*;

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(template: &str, pairs: &[(&str, &str)]) -> String {
    render(template, &values(pairs)).unwrap_or_else(|e| panic!("{template:?} failed: {e}"))
}

fn err(template: &str, pairs: &[(&str, &str)]) -> TemplateError {
    match render(template, &values(pairs)) {
        Ok(out) => panic!("{template:?} rendered {out:?}, expected an error"),
        Err(e) => e,
    }
}

#[test]
fn text_without_actions_is_unchanged() {
    assert_eq!(
        ok("plain { text } with braces\n", &[]),
        "plain { text } with braces\n"
    );
    assert_eq!(ok("", &[]), "");
}

#[test]
fn keys_are_substituted() {
    assert_eq!(
        ok(
            "address: http://{{ .registryDomain }}:{{.registryPort}}\n",
            &[("registryDomain", "sealos.hub"), ("registryPort", "5000")]
        ),
        "address: http://sealos.hub:5000\n"
    );
}

#[test]
fn trim_markers_remove_adjacent_whitespace() {
    let t = "a:\n  {{- if .X }}\n  x: {{ .X }}\n  {{- end }}\nb";
    assert_eq!(ok(t, &[("X", "1")]), "a:\n  x: 1\nb");
    assert_eq!(ok(t, &[]), "a:\nb");
    assert_eq!(ok("a  {{- .X -}}  \n b", &[("X", "1")]), "a1b");
    // `{{-3}}` is the number -3, not a trim marker.
    assert_eq!(ok("a {{-3}} b", &[]), "a -3 b");
}

#[test]
fn comments_render_nothing() {
    assert_eq!(ok("a{{/* a comment {{ .X }} */}}b", &[]), "ab");
    assert_eq!(ok("a \n{{- /* trimmed */ -}}\n b", &[]), "ab");
    assert_eq!(ok("a{{/* multi\nline */}}b", &[]), "ab");
}

#[test]
fn missing_key_is_an_error_with_position_and_hint() {
    let e = err("line1\n  x: {{ .NOPE }}", &[]);
    assert_eq!((e.line, e.column), (2, 9));
    assert!(e.message.contains("`.NOPE`"), "{e}");
    assert!(e.message.contains("default"), "{e}");
    assert!(e.to_string().starts_with("2:9: "), "{e}");
    let e = err("{{ .NOPE | upper }}", &[]);
    assert!(e.message.contains("`.NOPE`"), "{e}");
}

#[test]
fn missing_key_is_falsy_defaultable_and_unequal() {
    assert_eq!(ok("{{ if .NOPE }}y{{ else }}n{{ end }}", &[]), "n");
    assert_eq!(ok("{{ .NOPE | default \"calico\" }}", &[]), "calico");
    assert_eq!(ok("{{ default \"calico\" .NOPE }}", &[]), "calico");
    assert_eq!(
        ok("{{ eq .NOPE \"x\" }} {{ ne .NOPE \"x\" }}", &[]),
        "false true"
    );
    assert_eq!(ok("{{ with .NOPE }}y{{ else }}n{{ end }}", &[]), "n");
    assert_eq!(ok("{{ empty .NOPE }}", &[]), "true");
}

#[test]
fn default_replaces_empty_strings_but_keeps_values() {
    assert_eq!(ok("{{ .X | default \"d\" }}", &[("X", "")]), "d");
    assert_eq!(ok("{{ .X | default \"d\" }}", &[("X", "v")]), "v");
    assert_eq!(ok("{{ default 5 .X }}", &[("X", "")]), "5");
}

#[test]
fn if_else_if_else_chains() {
    let t = "{{ if eq .M \"a\" }}A{{ else if eq .M \"b\" }}B{{ else if .N }}N{{ else }}Z{{ end }}";
    assert_eq!(ok(t, &[("M", "a")]), "A");
    assert_eq!(ok(t, &[("M", "b")]), "B");
    assert_eq!(ok(t, &[("M", "c"), ("N", "1")]), "N");
    assert_eq!(ok(t, &[("M", "c")]), "Z");
    assert_eq!(
        ok(
            "{{if .A}}{{if .B}}ab{{else}}a{{end}}{{end}}.",
            &[("A", "1")]
        ),
        "a."
    );
}

#[test]
fn logic_functions_follow_go() {
    let v = [("T", "yes"), ("F", "")];
    assert_eq!(
        ok("{{ and .T .F }}|{{ or .F .T }}|{{ not .F }}", &v),
        "|yes|true"
    );
    assert_eq!(ok("{{ and .T \"last\" }}|{{ or .F \"\" }}", &v), "last|");
    assert_eq!(ok("{{ if and .T (not .F) }}ok{{ end }}", &v), "ok");
    // `or` stops at the first true operand: the missing key after it is never shown.
    assert_eq!(ok("{{ or .T .NOPE }}", &v), "yes");
    assert_eq!(ok("{{ eq .T \"no\" \"yes\" }}", &v), "true");
    assert_eq!(
        ok(
            "{{ lt 1 2 }} {{ ge \"b\" \"a\" }} {{ le 2 2 }} {{ gt 1.5 2.5 }}",
            &v
        ),
        "true true true false"
    );
    assert!(err("{{ eq 1 \"1\" }}", &v).message.contains("incompatible"));
}

#[test]
fn range_over_split_list_and_split_map() {
    let v = [("HOSTS", "a,b,c")];
    assert_eq!(
        ok("{{ range splitList \",\" .HOSTS }}[{{ . }}]{{ end }}", &v),
        "[a][b][c]"
    );
    assert_eq!(
        ok(
            "{{ range $i, $h := splitList \",\" .HOSTS }}{{ $i }}={{ $h }} {{ end }}",
            &v
        ),
        "0=a 1=b 2=c "
    );
    assert_eq!(
        ok(
            "{{ range $k, $v := split \",\" .HOSTS }}{{ $k }}:{{ $v }} {{ end }}",
            &v
        ),
        "_0:a _1:b _2:c "
    );
    assert_eq!(ok("{{ (split \",\" .HOSTS)._1 }}", &v), "b");
    assert_eq!(ok("{{ $p := split \",\" .HOSTS }}{{ $p._2 }}", &v), "c");
}

#[test]
fn range_else_runs_for_empty_and_missing() {
    assert_eq!(
        ok(
            "{{ range splitList \",\" \"\" }}[{{.}}]{{ else }}none{{ end }}",
            &[]
        ),
        "[]"
    );
    assert_eq!(ok("{{ range .NOPE }}x{{ else }}none{{ end }}", &[]), "none");
    assert_eq!(ok("{{ range list }}x{{ else }}none{{ end }}", &[]), "none");
}

#[test]
fn range_break_continue_and_integers() {
    assert_eq!(
        ok(
            "{{ range $i := 5 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}",
            &[]
        ),
        "02"
    );
    assert!(
        err("{{ break }}", &[])
            .message
            .contains("{{break}} outside {{range}}")
    );
}

#[test]
fn range_over_a_string_is_an_error_with_a_hint() {
    let e = err("{{ range .X }}{{ end }}", &[("X", "a,b")]);
    assert!(e.message.contains("splitList"), "{e}");
}

#[test]
fn dot_and_root_inside_range_and_with() {
    let v = [("A", "x,y"), ("P", "-")];
    assert_eq!(
        ok(
            "{{ range splitList \",\" .A }}{{ . }}{{ $.P }}{{ end }}",
            &v
        ),
        "x-y-"
    );
    assert_eq!(ok("{{ with .A }}{{ . }}{{ end }}", &v), "x,y");
    assert_eq!(
        ok("{{ with .NOPE }}1{{ else with .P }}{{ . }}{{ end }}", &v),
        "-"
    );
}

#[test]
fn variables_declare_assign_and_scope() {
    assert_eq!(
        ok("{{ $x := \"a\" }}{{ $x }}{{ $x = \"b\" }}{{ $x }}", &[]),
        "ab"
    );
    assert_eq!(
        ok(
            "{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}",
            &[]
        ),
        "21"
    );
    assert_eq!(
        ok(
            "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
            &[]
        ),
        "2"
    );
    assert_eq!(ok("{{ if $v := .A }}{{ $v }}{{ end }}", &[("A", "q")]), "q");
}

#[test]
fn string_functions() {
    let v = [("S", "  Hello World  "), ("P", "v1.27.7")];
    assert_eq!(ok("{{ .S | trim | upper }}", &v), "HELLO WORLD");
    assert_eq!(ok("{{ .S | trim | lower }}", &v), "hello world");
    assert_eq!(
        ok("{{ \"hello wide world\" | title }}", &v),
        "Hello Wide World"
    );
    assert_eq!(ok("{{ .P | trimPrefix \"v\" }}", &v), "1.27.7");
    assert_eq!(ok("{{ trimSuffix \".7\" .P }}", &v), "v1.27");
    assert_eq!(ok("{{ trimAll \"v7\" .P }}", &v), "1.27.");
    assert_eq!(ok("{{ .P | replace \".\" \"-\" }}", &v), "v1-27-7");
    assert_eq!(ok("{{ replace \"\" \"-\" \"ab\" }}", &v), "-a-b-");
    assert_eq!(
        ok(
            "{{ contains \"27\" .P }} {{ hasPrefix \"v1\" .P }} {{ hasSuffix \"8\" .P }}",
            &v
        ),
        "true true false"
    );
    assert_eq!(
        ok("{{ .P | quote }} {{ squote .P }}", &v),
        "\"v1.27.7\" 'v1.27.7'"
    );
    assert_eq!(ok("{{ quote \"a\\\"b\\n\" }}", &v), "\"a\\\"b\\n\"");
    assert_eq!(ok("{{ join \"-\" (splitList \".\" .P) }}", &v), "v1-27-7");
    assert_eq!(ok("{{ len .P }}", &v), "7");
    assert_eq!(ok("{{ index (splitList \".\" .P) 1 }}", &v), "27");
    assert_eq!(ok("{{ first (list 1 2) }}{{ last (list 1 2) }}", &v), "12");
    assert_eq!(ok("{{ ternary \"y\" \"n\" (eq .P \"v1.27.7\") }}", &v), "y");
    assert_eq!(ok("{{ coalesce .NOPE \"\" \"c\" }}", &v), "c");
    assert_eq!(
        ok(
            "{{ add 1 2 3 }} {{ add1 .N }} {{ sub 5 2 }} {{ atoi \"42\" }}",
            &[("N", "9")]
        ),
        "6 10 3 42"
    );
}

#[test]
fn base64_round_trips_and_bad_input_is_an_error() {
    assert_eq!(
        ok("{{ .X | b64enc }}", &[("X", "user:pass")]),
        "dXNlcjpwYXNz"
    );
    assert_eq!(ok("{{ .X | b64enc | b64dec }}", &[("X", "héllo")]), "héllo");
    assert!(err("{{ b64dec \"!!\" }}", &[]).message.contains("base64"));
}

#[test]
fn indent_and_nindent_follow_sprig() {
    let v = [("Y", "a: 1\nb: 2")];
    assert_eq!(ok("x:{{ .Y | nindent 2 }}", &v), "x:\n  a: 1\n  b: 2");
    assert_eq!(ok("{{ indent 4 .Y }}", &v), "    a: 1\n    b: 2");
    assert!(
        err("{{ indent 99999999 .Y }}", &v)
            .message
            .contains("outside")
    );
}

#[test]
fn printf_formats_go_verbs() {
    let v = [("H", "node1"), ("P", "6443")];
    assert_eq!(ok("{{ printf \"%s:%s\" .H .P }}", &v), "node1:6443");
    assert_eq!(
        ok("{{ printf \"%d|%5d|%-5d|%05d|%x|%%\" 7 7 7 7 255 }}", &v),
        "7|    7|7    |00007|ff|%"
    );
    assert_eq!(
        ok("{{ printf \"%q %v %t %.2f\" .H 1.5 true 3.14159 }}", &v),
        "\"node1\" 1.5 true 3.14"
    );
    assert_eq!(ok("{{ printf \"%d\" .H }}", &v), "%!d(string=node1)");
    assert_eq!(ok("{{ printf \"%s %s\" .H }}", &v), "node1 %!s(MISSING)");
    assert_eq!(ok("{{ .H | printf \"<%s>\" }}", &v), "<node1>");
    assert_eq!(
        ok("{{ print \"a\" 1 2 \"b\" }}|{{ println 1 2 }}", &v),
        "a1 2b|1 2\n"
    );
}

#[test]
fn constants_parse_like_go() {
    assert_eq!(
        ok(
            "{{ 0x1F }} {{ -3 }} {{ 1_000 }} {{ 2.5 }} {{ 1e6 }} {{ 'a' }} {{ true }}",
            &[]
        ),
        "31 -3 1000 2.5 1e+06 97 true"
    );
    assert_eq!(ok("{{ `raw \\n {{ }}` }}", &[]), "raw \\n {{ }}");
    assert_eq!(ok("{{ \"\\u00e9\\x41\\101\\t\" }}", &[]), "éAA\t");
}

#[test]
fn lists_and_maps_print_like_go() {
    assert_eq!(
        ok(
            "{{ splitList \",\" \"a,b\" }} {{ split \",\" \"a,b\" }}",
            &[]
        ),
        "[a b] map[_0:a _1:b]"
    );
}

#[test]
fn parse_errors_carry_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("ab\n{{ if .X }}", (2, 12), "never closed"),
        ("{{ end }}", (1, 1), "unexpected {{end}}"),
        ("x {{ .X", (1, 8), "unclosed action"),
        ("{{ }}", (1, 1), "missing value"),
        ("{{ \"abc }}", (1, 4), "unterminated"),
        ("{{ (.A }}", (1, 4), "unclosed left paren"),
        ("{{ .A ) }}", (1, 7), "unexpected right paren"),
        ("{{ else }}", (1, 1), "unexpected {{else}}"),
        (
            "{{ if 1 }}{{ else }}{{ else }}{{ end }}",
            (1, 21),
            "expected end; found {{else}}",
        ),
        (
            "{{ template \"x\" }}",
            (1, 13),
            "template \"x\" not defined",
        ),
        ("{{/* open", (1, 1), "unclosed comment"),
        ("{{/* c */ x}}", (1, 1), "comment ends"),
        ("{{ 12ab }}", (1, 4), "bad number"),
        ("{{ # }}", (1, 4), "unexpected \"#\""),
        ("é{{ \"\\q\" }}", (1, 5), "invalid syntax"),
        (
            "{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}",
            (1, 39),
            "undefined variable \"$y\"",
        ),
    ];
    for (template, (line, column), needle) in cases {
        let e = err(template, &[]);
        assert_eq!((e.line, e.column), (*line, *column), "{template:?}: {e}");
        assert!(e.message.contains(needle), "{template:?}: {e}");
    }
}

#[test]
fn execution_errors_carry_line_and_column() {
    let e = err("a\nb {{ nosuch .X }}", &[("X", "1")]);
    assert_eq!((e.line, e.column), (2, 6));
    assert!(e.message.contains("function \"nosuch\" not defined"), "{e}");
    let e = err("{{ .X 1 }}", &[("X", "1")]);
    assert!(e.message.contains("not a method but has arguments"), "{e}");
    let e = err("{{ $nope }}", &[]);
    assert!(e.message.contains("undefined variable"), "{e}");
    let e = err("{{ .X.Y }}", &[("X", "1")]);
    assert!(e.message.contains("can't evaluate field Y"), "{e}");
    let e = err("{{ required \"set REGISTRY\" .REGISTRY }}", &[]);
    assert!(e.message.contains("set REGISTRY"), "{e}");
}

#[test]
fn values_are_never_evaluated_as_templates() {
    let v = [("X", "{{ .Y }} $(touch /tmp/pwned)"), ("Y", "no")];
    assert_eq!(ok("{{ .X }}", &v), "{{ .Y }} $(touch /tmp/pwned)");
}

#[test]
fn sealos_style_rootfs_templates_render() {
    let template = r#"version = 2
root = "{{ .criData }}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{ .registryDomain }}:{{ .registryPort }}/{{ .sandboxImage | default "pause:3.9" }}"
{{- if .SEALOS_SYS_CRI_ENDPOINT }}
  endpoint = {{ .SEALOS_SYS_CRI_ENDPOINT | quote }}
{{- end }}
mirrors:
{{- range $i, $m := splitList "," .mirrors }}
  - {{ $m | trim }}
{{- end }}
"#;
    let v = [
        ("criData", "/var/lib/containerd"),
        ("registryDomain", "sealos.hub"),
        ("registryPort", "5000"),
        ("mirrors", "a.io, b.io"),
    ];
    assert_eq!(
        ok(template, &v),
        "version = 2\nroot = \"/var/lib/containerd\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  \
         sandbox_image = \"sealos.hub:5000/pause:3.9\"\nmirrors:\n  - a.io\n  - b.io\n"
    );
}

#[test]
fn runaway_templates_are_stopped_by_bounds() {
    let deep = "{{ if 1 }}".repeat(MAX_DEPTH + 1);
    assert!(err(&deep, &[]).message.contains("deeper"));
    let parens = format!(
        "{{{{ {}1{} }}}}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    assert!(err(&parens, &[]).message.contains("deeper"));
    let loops = "{{ range 1000 }}{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}{{ end }}";
    assert!(err(loops, &[]).message.contains("steps"));
    let grow = format!(
        "{}\"x\"{}",
        "replace \"\" \"xxxxxxxx\" (".repeat(12),
        ")".repeat(12)
    );
    assert!(
        err(&format!("{{{{ {grow} }}}}"), &[])
            .message
            .contains("grows beyond")
    );
}

proptest::proptest! {
    #[test]
    fn render_never_panics(template in "\\PC*") {
        let _ = render(&template, &values(&[("A", "a,b"), ("B", "")]));
    }

    #[test]
    fn errors_point_inside_the_template(template in "(\\{\\{|\\}\\}| |-|\\.A|if|end|\"|\n|é|\\(|\\)|x)*") {
        if let Err(e) = render(&template, &values(&[("A", "a,b")])) {
            let line = template.split('\n').nth(e.line - 1);
            proptest::prop_assert!(line.is_some(), "line {} outside the template: {e}", e.line);
            let chars = line.map_or(0, |l| l.chars().count());
            proptest::prop_assert!(e.column >= 1 && e.column <= chars + 1, "column outside line: {e}");
        }
    }

    #[test]
    fn render_never_panics_on_action_soup(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("{{".to_string()),
                proptest::strategy::Just("}}".to_string()),
                proptest::strategy::Just("{{- ".to_string()),
                proptest::strategy::Just(" -}}".to_string()),
                proptest::strategy::Just(" if ".to_string()),
                proptest::strategy::Just(" else ".to_string()),
                proptest::strategy::Just(" end ".to_string()),
                proptest::strategy::Just(" range ".to_string()),
                proptest::strategy::Just(" with ".to_string()),
                proptest::strategy::Just(" .A ".to_string()),
                proptest::strategy::Just(" $x := ".to_string()),
                proptest::strategy::Just(" $x ".to_string()),
                proptest::strategy::Just(" | ".to_string()),
                proptest::strategy::Just("(".to_string()),
                proptest::strategy::Just(")".to_string()),
                proptest::strategy::Just(" splitList \",\" ".to_string()),
                proptest::strategy::Just(" default \"d\" ".to_string()),
                proptest::strategy::Just(" printf \"%5.2q%d\" ".to_string()),
                proptest::strategy::Just(" index ".to_string()),
                proptest::strategy::Just(" 1 ".to_string()),
                proptest::strategy::Just("/*".to_string()),
                proptest::strategy::Just("*/".to_string()),
                proptest::strategy::Just("\"".to_string()),
                proptest::strategy::Just("x\n".to_string()),
            ],
            0..40,
        )
    ) {
        let _ = render(&parts.concat(), &values(&[("A", "a,b"), ("B", "")]));
    }

    #[test]
    fn text_without_braces_renders_unchanged(text in "[^{]*") {
        proptest::prop_assert_eq!(render(&text, &BTreeMap::new()).unwrap(), text);
    }
}

#[test]
fn define_and_template_work_as_in_go() {
    let t = "{{ define \"host\" }}{{ .registryDomain }}:{{ .registryPort }}{{ end }}\
             registry: {{ template \"host\" . }}";
    let v = [("registryDomain", "sealos.hub"), ("registryPort", "5000")];
    assert_eq!(ok(t, &v), "registry: sealos.hub:5000");
}
