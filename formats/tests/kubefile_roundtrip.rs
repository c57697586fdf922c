//! Printing is the inverse of parsing: parse(print(ast)) == ast for generated trees, and any text that parses
//! prints to text that parses to the same tree. Nothing panics on arbitrary input.

use formats::kubefile::{
    ArgDecl, Command, CopyArgs, Directives, Flag, Healthcheck, HereDoc, Instruction,
    InstructionKind, KeyValue, Kubefile, Source, check_round_trip, parse,
};
use proptest::prelude::*;

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_./-]{1,8}",
        "[a-z]{1,4}\\$[A-Z]{1,3}",
        "\\$\\{[A-Z]{1,3}:-[a-z]{0,3}\\}",
        "\"[a-z $]{0,6}\"",
        "'[a-z =]{0,6}'",
    ]
    .prop_filter("not a flag or JSON", |w| {
        !w.starts_with("--") && !w.starts_with('[')
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z_][A-Za-z0-9_.]{0,6}", "\"[a-z./]{1,8}\""]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        word(),
        "\"[a-z \\n]{0,8}\"",
        "\\$\\{[A-Z]{1,3}:-\"[a-z]{1,5}\"\\}"
    ]
}

/// Shell text: non-empty, no leading `[`/`--`, no heredoc markers, trimmed.
fn text() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9 $()=./-]{0,12}".prop_map(|s| s.trim_end().to_string())
}

fn exec() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("\\PC{0,6}", 0..3)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        exec().prop_map(Command::Exec),
        text().prop_map(Command::Shell)
    ]
}

fn flag(names: &'static [&'static str]) -> impl Strategy<Value = Flag> {
    (prop::sample::select(names), "[a-z0-9:]{1,5}").prop_map(|(name, v)| Flag {
        name: name.to_string(),
        value: if name == "link" { None } else { Some(v) },
    })
}

fn heredoc() -> impl Strategy<Value = HereDoc> {
    (
        "[A-Z]{2,4}",
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec("[a-z ]{0,6}", 0..3),
    )
        .prop_map(|(delimiter, quoted, strip_tabs, lines)| HereDoc {
            body: lines.iter().map(|l| format!("{l}\n")).collect(),
            delimiter,
            quoted,
            strip_tabs,
        })
}

fn copy_args() -> impl Strategy<Value = CopyArgs> {
    (
        prop::collection::vec(flag(&["from", "chmod", "chown", "link"]), 0..3),
        prop::collection::vec(
            prop_oneof![
                word().prop_map(Source::Path),
                heredoc().prop_map(Source::HereDoc)
            ],
            1..3,
        ),
        word(),
    )
        .prop_map(|(flags, sources, destination)| CopyArgs {
            flags,
            sources,
            destination,
        })
}

fn pairs() -> impl Strategy<Value = (Vec<KeyValue>, bool)> {
    prop_oneof![
        prop::collection::vec(
            (key(), value()).prop_map(|(key, value)| KeyValue { key, value }),
            1..4
        )
        .prop_map(|p| (p, false)),
        ("[a-z]{1,6}", "[a-z0-9.]{1,4}( [a-z0-9.]{1,4}){0,2}")
            .prop_map(|(key, value)| (vec![KeyValue { key, value }], true)),
    ]
}

fn stage_instruction() -> impl Strategy<Value = InstructionKind> {
    prop_oneof![
        copy_args().prop_map(InstructionKind::Copy),
        copy_args()
            .prop_map(|mut a| {
                a.flags.retain(|f| f.name != "from");
                a
            })
            .prop_map(InstructionKind::Add),
        pairs().prop_map(|(pairs, legacy)| InstructionKind::Env { pairs, legacy }),
        pairs().prop_map(|(pairs, legacy)| InstructionKind::Label { pairs, legacy }),
        prop::collection::vec(("[A-Z_]{1,5}", proptest::option::of(word())), 1..3).prop_map(|d| {
            InstructionKind::Arg(
                d.into_iter()
                    .map(|(name, default)| ArgDecl { name, default })
                    .collect(),
            )
        }),
        command().prop_map(InstructionKind::Cmd),
        command().prop_map(InstructionKind::Entrypoint),
        (prop::collection::vec(flag(&["network"]), 0..2), heredoc()).prop_map(|(flags, doc)| {
            InstructionKind::Run {
                flags,
                command: Command::Shell(format!(
                    "cat {}",
                    match (doc.strip_tabs, doc.quoted) {
                        (false, false) => format!("<<{}", doc.delimiter),
                        (true, false) => format!("<<-{}", doc.delimiter),
                        (false, true) => format!("<<\"{}\"", doc.delimiter),
                        (true, true) => format!("<<-\"{}\"", doc.delimiter),
                    }
                )),
                heredocs: vec![doc],
            }
        }),
        (prop::collection::vec(flag(&["network"]), 0..2), command()).prop_map(
            |(flags, command)| {
                InstructionKind::Run {
                    flags,
                    command,
                    heredocs: vec![],
                }
            }
        ),
        text().prop_map(InstructionKind::Workdir),
        text().prop_map(InstructionKind::User),
        text().prop_map(InstructionKind::Maintainer),
        text().prop_map(InstructionKind::StopSignal),
        prop::collection::vec(word(), 1..3).prop_map(InstructionKind::Expose),
        prop::collection::vec(word(), 1..3)
            .prop_map(|paths| InstructionKind::Volume { paths, json: false }),
        prop::collection::vec("\\PC{0,5}", 1..3)
            .prop_map(|paths| InstructionKind::Volume { paths, json: true }),
        prop::collection::vec("\\PC{0,5}", 1..3).prop_map(InstructionKind::Shell),
        Just(InstructionKind::Healthcheck(Healthcheck::None)),
        (
            prop::collection::vec(flag(&["interval", "retries"]), 0..2),
            command()
        )
            .prop_map(
                |(flags, command)| InstructionKind::Healthcheck(Healthcheck::Cmd {
                    flags,
                    command
                })
            ),
        command().prop_map(|c| InstructionKind::Onbuild(Box::new(InstructionKind::Cmd(c)))),
    ]
}

fn kubefile() -> impl Strategy<Value = Kubefile> {
    (
        any::<bool>(),
        proptest::option::of("[a-z/:]{1,10}"),
        prop::collection::vec(word(), 1..3),
        prop::collection::vec(stage_instruction(), 0..8),
    )
        .prop_map(|(backtick, syntax, from, body)| {
            let mut kinds = vec![InstructionKind::From {
                flags: vec![],
                image: from[0].clone(),
                alias: from.get(1).map(|_| "stage".to_string()),
            }];
            kinds.extend(body);
            Kubefile {
                directives: Directives {
                    escape: if backtick { '`' } else { '\\' },
                    syntax,
                },
                instructions: kinds
                    .into_iter()
                    .map(|kind| Instruction {
                        line: 0,
                        column: 0,
                        kind,
                    })
                    .collect(),
            }
        })
}

/// Dockerfile-ish token soup, to reach odd corners of the lexer.
fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("FROM scratch".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("\\".to_string()),
        Just("`".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("=".to_string()),
        Just("#".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'X'".to_string()),
        Just("EOF".to_string()),
        Just("[\"a\"]".to_string()),
        Just("--from=a".to_string()),
        Just("# escape=`\n".to_string()),
        Just("\t".to_string()),
        Just("\r".to_string()),
        prop::sample::select(&formats::kubefile::KEYWORDS[..]).prop_map(|k| format!("\n{k} ")),
        "[a-z$]{1,4}",
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| format!("FROM scratch\n{}", t.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_tree_parses_back_to_the_same_tree(ast in kubefile()) {
        let text = ast.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n---\n{text}")))?;
        prop_assert!(back.same_content(&ast), "text:\n{}\nback:\n{:#?}\nast:\n{:#?}", text, back, ast);
    }

    #[test]
    fn anything_that_parses_prints_to_the_same_tree(input in soup()) {
        check_round_trip(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }

    #[test]
    fn arbitrary_text_never_panics(input in "\\PC{0,200}") {
        let _ = parse(&input);
    }
}

/// Every input of `fuzz/corpus/kubefile` (the seeds, and the regressions the fuzzer found) goes through the
/// fuzz target's own check in a normal `cargo test`.
#[test]
fn every_fuzz_corpus_input_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/kubefile");
    let mut failures = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/kubefile exists") {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("read a corpus input");
        // The fuzz target skips input that is not UTF-8, and so does this test.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        if let Err(e) = check_round_trip(text) {
            failures.push(format!("{}: {e}", path.display()));
        }
        seen += 1;
    }
    assert!(seen >= 14, "only {seen} corpus inputs in {}", dir.display());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_cr_ending_a_line_of_a_quoted_value_or_here_document_prints_back_the_same() {
    for input in [
        "FROM h\nENV N=\"\r\r\n\"",
        "FROM h\nCOPY <<EOF /x\nbody\r\r\nEOF\n",
        "FROM h\nLABEL a=\"x\r\r\ny\r\" b=1\r\n",
    ] {
        let ast = parse(input).expect("parses");
        check_round_trip(input).unwrap();
        assert!(ast.to_string().contains("\r\r\n"), "{:?}", ast.to_string());
    }
}

#[test]
fn copy_markers_count_only_as_whole_words_and_never_as_the_destination() {
    let err = parse("FROM h\nCOPY <<EOF cat <<-\"END\"\nbody\nEOF\nb2\nEND\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Kubefile:2:16: COPY cannot take a here-document as its destination (\"<<-\\\"END\\\"\"): add the \
         destination path after the last source"
    );
    // `a<<EOF` is a path, as BuildKit reads it; the next line is then an instruction of its own.
    let err = parse("FROM h\nCOPY a<<EOF /x\nbody\nEOF\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Kubefile:3:1: unknown instruction"),
        "{err}"
    );
    let ast = parse("FROM h\nADD a<<EOF /x\n").unwrap();
    let InstructionKind::Add(args) = &ast.instructions[1].kind else {
        panic!("not ADD")
    };
    assert_eq!(args.sources, [Source::Path("a<<EOF".into())]);
    // RUN keeps reading markers inside shell words.
    let ast = parse("FROM h\nRUN cat<<EOF\nx\nEOF\n").unwrap();
    let InstructionKind::Run { heredocs, .. } = &ast.instructions[1].kind else {
        panic!("not RUN")
    };
    assert_eq!(heredocs[0].body, "x\n");
}
