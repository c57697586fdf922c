//! Parser behaviour: every instruction, directives, continuations, heredocs, quoting, and exact error positions.

use formats::kubefile::{
    ArgDecl, Command, Flag, Healthcheck, InstructionKind, KeyValue, Kubefile, ParseErrorKind,
    Source, parse, parse_named,
};

fn kinds(text: &str) -> Vec<InstructionKind> {
    match parse(text) {
        Ok(k) => k.instructions.into_iter().map(|i| i.kind).collect(),
        Err(e) => panic!("parse failed: {e}\n---\n{text}"),
    }
}

fn second(text: &str) -> InstructionKind {
    kinds(text).remove(1)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

fn error(text: &str) -> String {
    match parse_named("Kubefile", text) {
        Ok(k) => panic!("expected an error, parsed {k:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn keywords_are_case_insensitive_and_positions_are_recorded() {
    let k: Kubefile = parse("# a comment\n\nfrom scratch\n  Copy a b\n").unwrap();
    assert_eq!(k.instructions.len(), 2);
    assert_eq!((k.instructions[0].line, k.instructions[0].column), (3, 1));
    assert_eq!((k.instructions[1].line, k.instructions[1].column), (4, 3));
}

#[test]
fn from_takes_platform_and_stage_name() {
    assert_eq!(
        kinds("FROM --platform=$BUILDPLATFORM golang:1.22 as build\n")[0],
        InstructionKind::From {
            flags: vec![Flag {
                name: "platform".into(),
                value: Some("$BUILDPLATFORM".into())
            }],
            image: "golang:1.22".into(),
            alias: Some("build".into()),
        }
    );
}

#[test]
fn copy_and_add_take_every_flag_and_several_sources() {
    let InstructionKind::Copy(args) =
        second("FROM scratch\nCOPY --from=build --chmod=0755 --chown=1000:1000 --link a b* dir/\n")
    else {
        panic!("not a COPY")
    };
    assert_eq!(args.flags.len(), 4);
    assert_eq!(
        args.flags[3],
        Flag {
            name: "link".into(),
            value: None
        }
    );
    assert_eq!(
        args.sources,
        vec![Source::Path("a".into()), Source::Path("b*".into())]
    );
    assert_eq!(args.destination, "dir/");
    let InstructionKind::Add(args) = second("FROM scratch\nADD [\"a b\", \"/c d/\"]\n") else {
        panic!("not an ADD")
    };
    assert_eq!(args.sources, vec![Source::Path("a b".into())]);
    assert_eq!(args.destination, "/c d/");
}

#[test]
fn env_accepts_pairs_legacy_form_quotes_and_continuations() {
    assert_eq!(
        second("FROM scratch\nENV a=1 \"b\"=\"two words\" c='x y'\n"),
        InstructionKind::Env {
            pairs: vec![kv("a", "1"), kv("\"b\"", "\"two words\""), kv("c", "'x y'")],
            legacy: false
        }
    );
    assert_eq!(
        second("FROM scratch\nENV hostname rancher.my.org\n"),
        InstructionKind::Env {
            pairs: vec![kv("hostname", "rancher.my.org")],
            legacy: true
        }
    );
    assert_eq!(
        second("FROM scratch\nENV a=1 \\\n  # a comment inside\n\n  b=2\n"),
        InstructionKind::Env {
            pairs: vec![kv("a", "1"), kv("b", "2")],
            legacy: false
        }
    );
}

#[test]
fn quoted_values_may_span_lines() {
    assert_eq!(
        second(
            "FROM scratch\nLABEL description=\"first line\n# not a comment\nlast\" x=y\nCMD [\"a\"]\n"
        ),
        InstructionKind::Label {
            pairs: vec![
                kv("description", "\"first line\n# not a comment\nlast\""),
                kv("x", "y")
            ],
            legacy: false
        }
    );
}

#[test]
fn quoted_label_keys_and_escaped_dollars_are_kept_raw() {
    assert_eq!(
        second(
            "FROM scratch\nLABEL \"apps.sealos.io/type\"=rootfs check=\"check.sh \\$registryData\"\n"
        ),
        InstructionKind::Label {
            pairs: vec![
                kv("\"apps.sealos.io/type\"", "rootfs"),
                kv("check", "\"check.sh \\$registryData\"")
            ],
            legacy: false
        }
    );
}

#[test]
fn arg_declares_several_names_with_and_without_defaults() {
    assert_eq!(
        kinds("ARG A B=2\nFROM scratch\n")[0],
        InstructionKind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
        ])
    );
}

#[test]
fn exec_form_is_json_and_anything_else_is_shell_form() {
    assert_eq!(
        second(
            "FROM scratch\nCMD [\"helm upgrade -i $(NAME) charts/calico\", \"kubectl get po\"]\n"
        ),
        InstructionKind::Cmd(Command::Exec(vec![
            "helm upgrade -i $(NAME) charts/calico".into(),
            "kubectl get po".into()
        ]))
    );
    assert_eq!(
        second("FROM scratch\nENTRYPOINT [not json\n"),
        InstructionKind::Entrypoint(Command::Shell("[not json".into()))
    );
    assert_eq!(
        second("FROM scratch\nCMD bash   init.sh  \n"),
        InstructionKind::Cmd(Command::Shell("bash   init.sh".into()))
    );
}

#[test]
fn run_with_heredocs_keeps_their_bodies() {
    let InstructionKind::Run {
        command, heredocs, ..
    } = second("FROM scratch\nRUN <<EOF cat <<-'END'\necho $HOME\nEOF\n\tliteral\n\tEND\nCMD x\n")
    else {
        panic!("not RUN")
    };
    assert_eq!(command, Command::Shell("<<EOF cat <<-'END'".into()));
    assert_eq!(heredocs.len(), 2);
    assert_eq!(heredocs[0].body, "echo $HOME\n");
    assert!(!heredocs[0].quoted);
    assert_eq!(heredocs[1].body, "literal\n");
    assert!(heredocs[1].quoted && heredocs[1].strip_tabs);
}

#[test]
fn copy_heredoc_is_an_inline_source() {
    let InstructionKind::Copy(args) = second("FROM scratch\nCOPY <<EOF /etc/motd\nhello\nEOF\n")
    else {
        panic!("not COPY")
    };
    let [Source::HereDoc(doc)] = args.sources.as_slice() else {
        panic!("no heredoc: {args:?}")
    };
    assert_eq!(
        (doc.delimiter.as_str(), doc.body.as_str()),
        ("EOF", "hello\n")
    );
}

#[test]
fn escape_directive_switches_to_backtick() {
    let k = parse("# escape=`\nFROM scratch\nENV a=1 `\n  b=C:\\dir\n").unwrap();
    assert_eq!(k.directives.escape, '`');
    assert_eq!(
        k.instructions[1].kind,
        InstructionKind::Env {
            pairs: vec![kv("a", "1"), kv("b", "C:\\dir")],
            legacy: false
        }
    );
    let k = parse("# syntax=docker/dockerfile:1\nFROM scratch\n").unwrap();
    assert_eq!(k.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
}

#[test]
fn every_other_instruction_parses() {
    let all = kinds(
        "FROM scratch\nWORKDIR /app\nUSER 1000:1000\nMAINTAINER me <me@example.com>\nEXPOSE 80 443/udp\n\
         VOLUME [\"/data\"]\nVOLUME /a /b\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/bash\", \"-c\"]\n\
         HEALTHCHECK --interval=5s CMD curl -f localhost\nHEALTHCHECK NONE\nONBUILD COPY . /src\n",
    );
    assert_eq!(all[1], InstructionKind::Workdir("/app".into()));
    assert_eq!(
        all[3],
        InstructionKind::Maintainer("me <me@example.com>".into())
    );
    assert_eq!(
        all[4],
        InstructionKind::Expose(vec!["80".into(), "443/udp".into()])
    );
    assert_eq!(
        all[6],
        InstructionKind::Volume {
            paths: vec!["/a".into(), "/b".into()],
            json: false
        }
    );
    assert_eq!(
        all[8],
        InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(
        matches!(&all[9], InstructionKind::Healthcheck(Healthcheck::Cmd { flags, .. }) if flags.len() == 1)
    );
    assert_eq!(all[10], InstructionKind::Healthcheck(Healthcheck::None));
    assert!(
        matches!(&all[11], InstructionKind::Onbuild(inner) if matches!(**inner, InstructionKind::Copy(_)))
    );
}

#[test]
fn crlf_line_endings_are_accepted() {
    assert_eq!(kinds("FROM scratch\r\nCOPY a \\\r\n b\r\n").len(), 2);
}

/// (input, expected error message with its exact line and column)
const MALFORMED: &[(&str, &str)] = &[
    (
        "FROM scratch\nLABEL a=b\nENV x=1\n\n\n\nCOPPY . .\n",
        "Kubefile:7:1: unknown instruction \"COPPY\" (did you mean COPY?)",
    ),
    (
        "FROM scratch\n  EVN a=b\n",
        "Kubefile:2:3: unknown instruction \"EVN\" (did you mean ENV?)",
    ),
    (
        "FROM scratch\nBOGUS x\n",
        "Kubefile:2:1: unknown instruction \"BOGUS\"",
    ),
    (
        "FROM\n",
        "Kubefile:1:5: FROM requires a base image, like FROM scratch",
    ),
    (
        "FROM scratch\nCOPY\n",
        "Kubefile:2:5: COPY requires a source and a destination",
    ),
    (
        "FROM scratch\nCOPY onlyone\n",
        "Kubefile:2:13: COPY requires a source and a destination",
    ),
    (
        "FROM scratch\nADD [\"a\"]\n",
        "Kubefile:2:5: ADD requires a source and a destination",
    ),
    (
        "FROM scratch\nENV\n",
        "Kubefile:2:4: ENV requires at least one name=value pair",
    ),
    (
        "FROM scratch\nENV key\n",
        "Kubefile:2:8: ENV requires a value: write name=value",
    ),
    (
        "FROM scratch\nENV a=1 b\n",
        "Kubefile:2:9: ENV expects name=value pairs, but \"b\" has no \"=\"",
    ),
    (
        "FROM scratch\nLABEL a=1 =2\n",
        "Kubefile:2:11: LABEL has an empty name in \"=2\"",
    ),
    (
        "ARG =x\nFROM scratch\n",
        "Kubefile:1:5: ARG has an empty name in \"=x\"",
    ),
    (
        "FROM scratch\nENV a=\"open\n",
        "Kubefile:2:7: unterminated \" quote in \"a=\\\"open\": close it or escape it",
    ),
    (
        "FROM scratch\nCOPY 'a b /c\n",
        "Kubefile:2:6: unterminated ' quote in \"'a b /c\": close it or escape it",
    ),
    (
        "FROM scratch\nCOPY --form=x a b\n",
        "Kubefile:2:6: unknown flag \"--form=x\" for COPY (accepted: --from, --chmod, --chown, --link, --parents, --exclude)",
    ),
    (
        "FROM --plat=x scratch\n",
        "Kubefile:1:6: unknown flag \"--plat=x\" for FROM (accepted: --platform)",
    ),
    (
        "FROM scratch\nCOPY --chown a b\n",
        "Kubefile:2:6: flag \"--chown\" of COPY needs a value: write --name=value",
    ),
    (
        "FROM scratch\nADD --chmod= a b\n",
        "Kubefile:2:5: flag \"--chmod=\" of ADD has an empty value",
    ),
    (
        "FROM scratch AS\n",
        "Kubefile:1:6: FROM takes an image and an optional \"AS name\", got \"scratch AS\"",
    ),
    (
        "FROM scratch IS base\n",
        "Kubefile:1:6: FROM takes an image and an optional \"AS name\", got \"scratch IS base\"",
    ),
    (
        "FROM scratch AS 1st\n",
        "Kubefile:1:17: invalid stage name \"1st\": use letters, digits, '-', '_' and '.', starting with a letter",
    ),
    (
        "FROM scratch\nSHELL /bin/sh -c\n",
        "Kubefile:2:7: SHELL needs a JSON array of strings, like [\"/bin/sh\", \"-c\"], got \"/bin/sh -c\"",
    ),
    (
        "FROM scratch\nRUN cat <<EOF\nno end\n",
        "Kubefile:2:9: here-document <<EOF is never closed: add a line containing only \"EOF\"",
    ),
    (
        "# escape=x\nFROM scratch\n",
        "Kubefile:1:10: invalid parser directive \"# escape=x\": the escape character must be \\ or `",
    ),
    (
        "# escape=`\n# escape=\\\nFROM scratch\n",
        "Kubefile:2:10: invalid parser directive \"# escape=\\\\\": a directive may appear only once",
    ),
    (
        "FROM scratch\nONBUILD ONBUILD CMD x\n",
        "Kubefile:2:9: ONBUILD ONBUILD is not allowed",
    ),
    (
        "FROM scratch\nONBUILD FROM x\n",
        "Kubefile:2:9: ONBUILD FROM is not allowed",
    ),
    (
        "FROM scratch\nONBUILD MAINTAINER x\n",
        "Kubefile:2:9: ONBUILD MAINTAINER is not allowed",
    ),
    (
        "FROM scratch\nHEALTHCHECK --interval=1s curl x\n",
        "Kubefile:2:27: HEALTHCHECK takes NONE or [flags] CMD command, got \"--interval=1s curl x\"",
    ),
    (
        "ENV A=1\nFROM scratch\n",
        "Kubefile:1:1: ENV before the first FROM: only ARG may come before FROM",
    ),
    (
        "# only a comment\n",
        "Kubefile:1:1: no FROM instruction: a Kubefile starts with FROM (e.g. FROM scratch)",
    ),
    (
        "ARG A\n\nARG B\n",
        "Kubefile:3:1: no FROM instruction: a Kubefile starts with FROM (e.g. FROM scratch)",
    ),
    (
        "FROM scratch\nRUN --mount\n",
        "Kubefile:2:5: flag \"--mount\" of RUN needs a value: write --name=value",
    ),
    (
        "FROM scratch\nRUN --network=none\n",
        "Kubefile:2:19: RUN requires a command",
    ),
    (
        "FROM scratch\nWORKDIR\n",
        "Kubefile:2:8: WORKDIR requires an argument",
    ),
];

#[test]
fn malformed_inputs_report_their_exact_position_and_text() {
    assert!(MALFORMED.len() >= 25);
    let mut failures = Vec::new();
    for (input, expected) in MALFORMED {
        let got = error(input);
        if got != *expected {
            failures.push(format!(
                "input {input:?}\n  expected {expected}\n  got      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn error_position_points_into_continued_lines() {
    let got = error("FROM scratch\nENV a=1 \\\n    b=2 \\\n    c\n");
    assert_eq!(
        got,
        "Kubefile:4:5: ENV expects name=value pairs, but \"c\" has no \"=\""
    );
}

#[test]
fn custom_file_name_appears_in_messages() {
    let got = parse_named("apps/calico/Kubefile", "FROM scratch\nCOPPY . .\n").unwrap_err();
    assert_eq!(
        got.to_string(),
        "apps/calico/Kubefile:2:1: unknown instruction \"COPPY\" (did you mean COPY?)"
    );
    assert!(matches!(
        got.kind,
        ParseErrorKind::UnknownInstruction {
            suggestion: Some("COPY"),
            ..
        }
    ));
}
