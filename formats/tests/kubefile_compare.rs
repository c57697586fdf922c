//! Our parser against an independent one (the `parse-dockerfile` crate) on plain Dockerfiles: both must see the
//! same instructions with the same arguments.

use formats::kubefile::{Command, Healthcheck, InstructionKind, Source, parse};
use parse_dockerfile as pd;

const DOCKERFILES: &[&str] = &[
    "FROM scratch\nCOPY . .\nCMD [\"helm upgrade -i calico charts/calico -n tigera-operator\"]\n",
    "# syntax=docker/dockerfile:1\nARG VERSION=1.22\nFROM --platform=$BUILDPLATFORM golang:${VERSION} AS build\n\
     WORKDIR /src\nCOPY --chown=1000:1000 --chmod=0644 go.mod go.sum ./\nENV CGO_ENABLED=0 GOOS=linux\n\
     RUN go build -o /out/app ./cmd/app\nFROM scratch\nCOPY --from=build /out/app /usr/bin/app\n\
     ENTRYPOINT [\"/usr/bin/app\"]\nCMD --help\n",
    "FROM alpine:3.19\nLABEL maintainer=\"me\" version=\"1.0\" description=\"a long \\\n    description\"\n\
     EXPOSE 80 443/udp\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /cache\nUSER nobody\nSTOPSIGNAL SIGQUIT\n\
     SHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nHEALTHCHECK --interval=30s CMD wget -q localhost || exit 1\n\
     ONBUILD COPY . /app\nMAINTAINER someone <someone@example.com>\n",
    "FROM scratch\nENV hostname rancher.my.org\nCOPY charts charts\nCOPY registry registry\n\
     CMD [\"helm upgrade -i rancher charts/rancher -n cattle-system --set hostname=$(hostname)\"]\n",
    "FROM scratch\nLABEL sealos.io.type=\"patch\"\nCOPY opt opt\nCMD [\"cp -f ./opt/skopeo /usr/local/bin/skopeo\"]\n",
    "from busybox as base\nenv A=1 \\\n    B=2\n\nadd https://example.com/a.tgz /tmp/\ncopy [\"a\", \"b\", \"/dest/\"]\n\
     healthcheck none\nentrypoint echo hi\nworkdir /a/b\nrun echo \\\n  two lines\n",
    "FROM scratch\nARG A B=2\nARG C\nCOPY --link a* b? /x/\nEXPOSE 8080\nCMD echo \"quoted arg\"\n",
];

/// A neutral description of an instruction: keyword and argument strings.
fn ours(kind: &InstructionKind) -> Vec<String> {
    let mut out = vec![kind.keyword().to_string()];
    match kind {
        InstructionKind::From {
            flags,
            image,
            alias,
        } => {
            out.extend(
                flags
                    .iter()
                    .map(|f| format!("--{}={}", f.name, f.value.clone().unwrap_or_default())),
            );
            out.push(image.clone());
            out.extend(alias.clone());
        }
        InstructionKind::Copy(a) | InstructionKind::Add(a) => {
            out.extend(
                a.flags
                    .iter()
                    .map(|f| format!("--{}={}", f.name, f.value.clone().unwrap_or_default())),
            );
            for s in &a.sources {
                match s {
                    Source::Path(p) => out.push(p.clone()),
                    Source::HereDoc(d) => out.push(d.body.clone()),
                }
            }
            out.push(a.destination.clone());
        }
        InstructionKind::Env { .. } | InstructionKind::Label { .. } | InstructionKind::Arg(_) => {
            let printed = kind.to_string();
            let args = printed.split_once(' ').map(|(_, a)| a).unwrap_or_default();
            out.push(args.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        InstructionKind::Cmd(c)
        | InstructionKind::Entrypoint(c)
        | InstructionKind::Run { command: c, .. } => {
            out.extend(command(c));
        }
        InstructionKind::Workdir(t)
        | InstructionKind::User(t)
        | InstructionKind::Maintainer(t)
        | InstructionKind::StopSignal(t) => out.push(t.clone()),
        InstructionKind::Expose(w)
        | InstructionKind::Volume { paths: w, .. }
        | InstructionKind::Shell(w) => out.extend(w.iter().cloned()),
        InstructionKind::Healthcheck(Healthcheck::None) => out.push("NONE".into()),
        InstructionKind::Healthcheck(Healthcheck::Cmd { flags, command: c }) => {
            out.extend(
                flags
                    .iter()
                    .map(|f| format!("--{}={}", f.name, f.value.clone().unwrap_or_default())),
            );
            out.extend(command(c));
        }
        InstructionKind::Onbuild(inner) => out.extend(ours(inner)),
    }
    out
}

fn command(c: &Command) -> Vec<String> {
    match c {
        Command::Exec(args) => args.iter().map(|a| format!("exec:{a}")).collect(),
        Command::Shell(text) => vec![format!(
            "shell:{}",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        )],
    }
}

fn flag(f: &pd::Flag<'_>) -> String {
    format!(
        "--{}={}",
        f.name.value,
        f.value
            .as_ref()
            .map(|v| v.value.to_string())
            .unwrap_or_default()
    )
}

fn their_command(c: &pd::Command<'_>) -> Vec<String> {
    match c {
        pd::Command::Exec(args) => args
            .value
            .iter()
            .map(|a| format!("exec:{}", a.value))
            .collect(),
        pd::Command::Shell(text) => {
            // Continuations are kept in its shell text; join them as our lexer does.
            let joined = text.value.replace("\\\n", "");
            vec![format!(
                "shell:{}",
                joined.split_whitespace().collect::<Vec<_>>().join(" ")
            )]
        }
        _ => vec!["unknown command form".into()],
    }
}

fn theirs(instruction: &pd::Instruction<'_>) -> Vec<String> {
    use pd::Instruction as I;
    let mut out = Vec::new();
    match instruction {
        I::From(i) => {
            out.push("FROM".into());
            out.extend(i.options.iter().map(flag));
            out.push(i.image.value.to_string());
            out.extend(i.as_.as_ref().map(|(_, n)| n.value.to_string()));
        }
        I::Copy(i) => {
            out.push("COPY".into());
            out.extend(i.options.iter().map(flag));
            out.extend(i.src.iter().map(source));
            out.push(i.dest.value.to_string());
        }
        I::Add(i) => {
            out.push("ADD".into());
            out.extend(i.options.iter().map(flag));
            out.extend(i.src.iter().map(source));
            out.push(i.dest.value.to_string());
        }
        I::Env(i) => raw(&mut out, "ENV", &i.arguments.value),
        I::Label(i) => raw(&mut out, "LABEL", &i.arguments.value),
        I::Arg(i) => raw(&mut out, "ARG", &i.arguments.value),
        I::Cmd(i) => {
            out.push("CMD".into());
            out.extend(their_command(&i.arguments));
        }
        I::Entrypoint(i) => {
            out.push("ENTRYPOINT".into());
            out.extend(their_command(&i.arguments));
        }
        I::Run(i) => {
            out.push("RUN".into());
            out.extend(their_command(&i.arguments));
        }
        I::Workdir(i) => out.extend(["WORKDIR".to_string(), i.arguments.value.to_string()]),
        I::User(i) => out.extend(["USER".to_string(), i.arguments.value.to_string()]),
        I::Maintainer(i) => out.extend(["MAINTAINER".to_string(), i.name.value.to_string()]),
        I::Stopsignal(i) => out.extend(["STOPSIGNAL".to_string(), i.arguments.value.to_string()]),
        I::Expose(i) => {
            out.push("EXPOSE".into());
            out.extend(i.arguments.iter().map(|a| a.value.to_string()));
        }
        I::Volume(i) => {
            out.push("VOLUME".into());
            match &i.arguments {
                pd::JsonOrStringArray::Json(a) => {
                    out.extend(a.value.iter().map(|a| a.value.to_string()))
                }
                pd::JsonOrStringArray::String(a) => {
                    out.extend(a.iter().map(|a| a.value.to_string()))
                }
            }
        }
        I::Shell(i) => {
            out.push("SHELL".into());
            out.extend(i.arguments.iter().map(|a| a.value.to_string()));
        }
        I::Healthcheck(i) => {
            out.push("HEALTHCHECK".into());
            match &i.arguments {
                pd::HealthcheckArguments::None { .. } => out.push("NONE".into()),
                pd::HealthcheckArguments::Cmd { arguments, .. } => {
                    out.extend(i.options.iter().map(flag));
                    out.extend(their_command(arguments));
                }
                _ => out.push("?".into()),
            }
        }
        I::Onbuild(i) => {
            out.push("ONBUILD".into());
            out.extend(theirs(&i.instruction));
        }
        _ => out.push("unknown".into()),
    }
    out
}

fn source(s: &pd::Source<'_>) -> String {
    match s {
        pd::Source::Path(p) => p.value.to_string(),
        pd::Source::HereDoc(d) => d.value.to_string(),
        _ => "?".into(),
    }
}

fn raw(out: &mut Vec<String>, keyword: &str, args: &str) {
    out.push(keyword.into());
    let joined = args.replace("\\\n", "");
    out.push(joined.split_whitespace().collect::<Vec<_>>().join(" "));
}

#[test]
fn instruction_lists_and_arguments_match_an_independent_parser() {
    for text in DOCKERFILES {
        let mine = parse(text).unwrap_or_else(|e| panic!("ours failed: {e}\n{text}"));
        let other =
            pd::parse(text).unwrap_or_else(|e| panic!("parse-dockerfile failed: {e}\n{text}"));
        let mine: Vec<Vec<String>> = mine.instructions.iter().map(|i| ours(&i.kind)).collect();
        let other: Vec<Vec<String>> = other.instructions.iter().map(theirs).collect();
        assert_eq!(mine, other, "\n---\n{text}");
    }
}

#[test]
fn directives_match_an_independent_parser() {
    let text = "# syntax=docker/dockerfile:1.7\n# escape=`\nFROM scratch\nCOPY a `\n  b\n";
    let mine = parse(text).unwrap();
    let other = pd::parse(text).unwrap();
    assert_eq!(
        mine.directives.syntax.as_deref(),
        other.parser_directives.syntax.map(|s| s.value.value)
    );
    assert_eq!(
        Some(mine.directives.escape),
        other.parser_directives.escape.map(|s| s.value.value)
    );
    assert_eq!(mine.instructions.len(), other.instructions.len());
}
