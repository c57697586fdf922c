use super::*;

fn yaml_round_trip(text: &str) -> String {
    to_yaml(&parse(text).unwrap()).unwrap()
}

#[test]
fn yaml_1_1_scalars_become_json_values() {
    let v = parse("a: yes\nb: off\nc: ~\nd: 0x1F\ne: 0777\nf: 1_000\ng: 1.5\nh: 2001-12-14\n1: one\ntrue: t\n").unwrap();
    let json = gotmpl::encoding::json::to_json(&v, true, None).unwrap();
    assert_eq!(
        json,
        r#"{"1":"one","a":true,"b":false,"c":null,"d":31,"e":511,"f":1000,"g":1.5,"h":"2001-12-14","true":"t"}"#
    );
}

#[test]
fn anchors_aliases_and_merge_keys_resolve() {
    let v = parse("a: &x {p: 1}\nb: *x\nc:\n  <<: *x\n  q: 2\n").unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "a:\n  p: 1\nb:\n  p: 1\nc:\n  p: 1\n  q: 2"
    );
}

#[test]
fn later_duplicate_keys_win() {
    assert_eq!(yaml_round_trip("a: 1\na: 2\n"), "a: 2");
}

#[test]
fn strings_are_quoted_only_when_they_must_be() {
    let v = parse(
        r##"
am: "yes"
an: "1"
al: ""
ai: " lead"
aj: "a: b"
ak: "#x"
au: "-"
ax: "x@"
bf: "'x"
at: "tab\there"
x: "1:20"
w: "2001-12-14"
ci: "<<"
bq: "\u0001"
"##,
    )
    .unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "ai: ' lead'\naj: 'a: b'\nak: '#x'\nal: \"\"\nam: \"yes\"\nan: \"1\"\nat: \"tab\\there\"\nau: '-'\nax: x@\nbf: '''x'\nbq: \"\\x01\"\nci: <<\nw: \"2001-12-14\"\nx: \"1:20\""
    );
}

#[test]
fn multi_line_strings_are_literal_blocks() {
    let v = parse("ag: \"line1\\nline2\"\nah: \"line1\\n\"\nbs: \"  a\\nb\"\nbt: \"a\\n\\n\\n\"\ncm: \"x \\n\"\n").unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "ag: |-\n  line1\n  line2\nah: |\n  line1\nbs: |2-\n    a\n  b\nbt: |+\n  a\n\n\ncm: \"x \\n\""
    );
}

#[test]
fn long_plain_strings_wrap_at_eighty_columns() {
    let long = "a very long string ".repeat(6);
    let v = parse(&format!("ar: {}\n", long.trim_end())).unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "ar: a very long string a very long string a very long string a very long string a\n  very long string a very long string"
    );
}

#[test]
fn numbers_print_as_the_json_round_trip_leaves_them() {
    let v = parse("a: 1.0\nb: 1e20\nc: 1e21\nd: 0.000001\ne: 12345678901234567890\nf: 1234567.5\n")
        .unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "a: 1\nb: 1e+20\nc: 1e+21\nd: 1e-06\ne: 12345678901234567000\nf: 1.2345675e+06"
    );
}

#[test]
fn sequences_sit_at_their_key_and_nest_compactly() {
    let v = parse("l:\n- a: 1\n  b: [x, y]\n- [p, q]\ne: {}\nf: []\n").unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "e: {}\nf: []\nl:\n- a: 1\n  b:\n  - x\n  - true\n- - p\n  - q"
    );
    assert_eq!(
        to_yaml_pretty(&v).unwrap(),
        "e: {}\nf: []\nl:\n  - a: 1\n    b:\n      - x\n      - true\n  - - p\n    - q"
    );
}

#[test]
fn keys_sort_in_go_yaml_natural_order() {
    let v =
        parse("a10: 1\na9: 1\nb: 1\nB: 1\n_x: 1\n\"10\": 1\n\"2\": 1\na01: 1\na1: 1\n").unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "_x: 1\n\"2\": 1\n\"10\": 1\nB: 1\na1: 1\na01: 1\na9: 1\na10: 1\nb: 1"
    );
}

#[test]
fn long_and_multi_line_keys_use_explicit_key_syntax() {
    let key = "k".repeat(130);
    let v = parse(&format!("{key}: v\n\"m\\nk\": v\n")).unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        format!("? {key}\n: v\n? |-\n  m\n  k\n: v")
    );
}

#[test]
fn scalars_at_the_root() {
    assert_eq!(to_yaml(&Value::from("abc")).unwrap(), "abc");
    assert_eq!(to_yaml(&Value::from("a\nb")).unwrap(), "|-\n  a\n  b");
    assert_eq!(to_yaml(&Value::Nil).unwrap(), "null");
    assert_eq!(to_yaml(&Value::from("😀 x")).unwrap(), "\"\\U0001F600 x\"");
}

#[test]
fn values_files_must_be_maps() {
    assert_eq!(
        parse_values("", ValuesDocuments::First).unwrap(),
        Value::empty_map()
    );
    assert_eq!(
        parse_values("- 1\n", ValuesDocuments::First)
            .unwrap_err()
            .message(),
        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert!(
        parse("a: 1\n  b: 2\n")
            .unwrap_err()
            .message()
            .starts_with("error converting YAML to JSON: yaml: line 2")
    );
}

#[test]
fn helm_4_merges_every_document_of_a_values_file() {
    let text = "a: 1\n---\nb: {x: 1, y: 2}\n---\nb: {x: 3}\na: null\n";
    let v = parse_values(text, ValuesDocuments::Merged).unwrap();
    assert_eq!(to_yaml(&v).unwrap(), "a: null\nb:\n  \"true\": 2\n  x: 3");
    let v = parse_values(text, ValuesDocuments::First).unwrap();
    assert_eq!(to_yaml(&v).unwrap(), "a: 1");
}

#[test]
fn null_keys_and_infinities_are_errors() {
    assert_eq!(
        parse("null: nn\n").unwrap_err().message(),
        "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>, value: \"nn\""
    );
    assert_eq!(
        parse("p: .inf\n").unwrap_err().message(),
        "error converting YAML to JSON: json: unsupported value: +Inf"
    );
}

#[test]
fn syntax_errors_are_worded_and_located_as_go_yaml_reports_them() {
    for (text, want) in [
        ("a: [", "yaml: line 1: did not find expected node content"),
        (
            "a: 1\n  b: 2",
            "yaml: line 2: mapping values are not allowed in this context",
        ),
        ("a: [1, 2", "yaml: line 1: did not find expected ',' or ']'"),
        (
            "x:\n  - a\n y: 1",
            "yaml: line 2: did not find expected key",
        ),
        ("a: *y", "yaml: unknown anchor 'y' referenced"),
        (
            "a: 1\n\tb: 2",
            "yaml: line 2: found a tab character that violates indentation",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(
            err.message(),
            format!("error converting YAML to JSON: {want}"),
            "{text:?}"
        );
    }
}

#[test]
fn every_document_of_a_stream_is_read() {
    let docs = parse_all("a: 1\n---\n# only a comment\n---\n- x\n---\nplain\n...\n").unwrap();
    assert_eq!(docs.len(), 4);
    assert_eq!(to_yaml(&docs[0]).unwrap(), "a: 1");
    assert_eq!(docs[1], Value::Nil);
    assert_eq!(to_yaml(&docs[2]).unwrap(), "- x");
    assert_eq!(docs[3], Value::from("plain"));
    assert_eq!(parse_all("").unwrap(), Vec::<Value>::new());
    assert_eq!(parse("---\n").unwrap(), Value::Nil);
}

#[test]
fn non_string_keys_become_strings_as_sigs_yaml_writes_them() {
    let v = parse("1.0: a\n0x10: b\n1e3: c\n.5: d\n-1: e\n0.1: g\n123456789: h\n1.23456789: i\nyes: j\n2001-12-14: k\n").unwrap();
    assert_eq!(
        gotmpl::encoding::json::to_json(&v, true, None).unwrap(),
        r#"{"-1":"e","0.1":"g","0.5":"d","1":"a","1.2345679":"i","1000":"c","123456789":"h","16":"b","2001-12-14":"k","true":"j"}"#
    );
    assert_eq!(
        parse("12345678901234567890: f").unwrap_err().message(),
        "error converting YAML to JSON: unsupported map key of type: uint64, key: 0xab54a98ceb1f0ad2, value: \"f\""
    );
}

#[test]
fn json_round_trip_folds_next_line_and_rejects_control_characters() {
    let v = parse("a: \"x \\N  y\"\nb: \"p\\N\\Nq\"\nc: \"t\\t\\Nz\"\n").unwrap();
    assert_eq!(
        to_yaml(&v).unwrap(),
        "a: x y\nb: |-\n  p\n  q\nc: \"t\\t z\""
    );
    assert!(to_yaml(&Value::from("a\u{7f}b")).is_err());
}
