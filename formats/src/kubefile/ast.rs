//! The syntax tree of a Kubefile: what was written, before any substitution.
//!
//! Words keep their source text (quotes and escapes included) because Dockerfile semantics remove quotes and
//! substitute variables in one pass at evaluation time (`ENV NAME=${NAME:-"calico"}` needs both at once).

use serde::Serialize;

/// A parsed Kubefile: its parser directives and its instructions in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kubefile {
    /// The `# escape=` and `# syntax=` directives at the top of the file.
    pub directives: Directives,
    /// The instructions, in file order.
    pub instructions: Vec<Instruction>,
}

impl Kubefile {
    /// True when both files say the same thing, ignoring where each instruction was written.
    pub fn same_content(&self, other: &Kubefile) -> bool {
        self.directives == other.directives
            && self.instructions.len() == other.instructions.len()
            && self
                .instructions
                .iter()
                .zip(&other.instructions)
                .all(|(a, b)| a.kind == b.kind)
    }
}

/// Parser directives: comments of the form `# name=value` before the first instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// The escape character (`\` unless `# escape=` chose the backtick).
    pub escape: char,
    /// The `# syntax=` frontend image, kept for information only.
    pub syntax: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
        }
    }
}

/// One instruction and where it starts in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// 1-based line of the instruction keyword.
    pub line: usize,
    /// 1-based column (in characters) of the instruction keyword.
    pub column: usize,
    /// What the instruction says.
    pub kind: InstructionKind,
}

/// A `--name` or `--name=value` flag of FROM, COPY, ADD, RUN or HEALTHCHECK, as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The flag name without the leading `--`.
    pub name: String,
    /// The raw value after `=`, when there is one.
    pub value: Option<String>,
}

/// A `name=value` pair of ENV or LABEL, both raw (quotes and `$` references still in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The raw key.
    pub key: String,
    /// The raw value.
    pub value: String,
}

/// One `ARG name[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The raw name.
    pub name: String,
    /// The raw default value, when one is given.
    pub default: Option<String>,
}

/// A here-document (`<<EOF` ... `EOF`) attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HereDoc {
    /// The delimiter word (without quotes).
    pub delimiter: String,
    /// True when the delimiter was quoted (`<<"EOF"`): the body is then taken literally.
    pub quoted: bool,
    /// True for `<<-EOF`: leading tabs were stripped from every body line.
    pub strip_tabs: bool,
    /// The body: every line between the instruction and the delimiter line, each ending in `\n`.
    pub body: String,
}

/// A source of COPY or ADD: a raw path (or URL, or glob) or a here-document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// A raw path, glob or URL word.
    Path(String),
    /// An inline file given as a here-document.
    HereDoc(HereDoc),
}

/// A command of RUN, CMD, ENTRYPOINT or HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// The JSON (exec) form: `["helm", "install"]`, run without a shell.
    Exec(Vec<String>),
    /// The shell form: the text as written, run with the SHELL (`/bin/sh -c` by default).
    Shell(String),
}

/// The arguments of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyArgs {
    /// `--from`, `--chmod`, `--chown`, `--link` and the like, as written.
    pub flags: Vec<Flag>,
    /// One or more sources.
    pub sources: Vec<Source>,
    /// The raw destination.
    pub destination: String,
}

/// The arguments of HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [flags] CMD command`.
    Cmd {
        /// `--interval`, `--timeout`, `--start-period`, `--start-interval`, `--retries`.
        flags: Vec<Flag>,
        /// The check command.
        command: Command,
    },
}

/// What an instruction says; every Dockerfile instruction has a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum InstructionKind {
    /// `FROM [--platform=P] image [AS name]`.
    From {
        /// Flags (only `--platform` is accepted).
        flags: Vec<Flag>,
        /// The raw base image (or `scratch`, or an earlier stage name).
        image: String,
        /// The raw stage name after `AS`.
        alias: Option<String>,
    },
    /// `COPY [flags] src... dest`.
    Copy(CopyArgs),
    /// `ADD [flags] src... dest`.
    Add(CopyArgs),
    /// `ENV a=1 b=2`, or the legacy `ENV key value` (then `legacy` is true and there is one pair).
    Env {
        /// The pairs in order.
        pairs: Vec<KeyValue>,
        /// True for the legacy `ENV key value with spaces` form.
        legacy: bool,
    },
    /// `LABEL a=1 b=2` (or the legacy `LABEL key value`).
    Label {
        /// The pairs in order.
        pairs: Vec<KeyValue>,
        /// True for the legacy `LABEL key value` form.
        legacy: bool,
    },
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `RUN [flags] command` with its here-documents.
    Run {
        /// `--mount`, `--network`, `--security`.
        flags: Vec<Flag>,
        /// The command.
        command: Command,
        /// Here-documents named in the command, in order.
        heredocs: Vec<HereDoc>,
    },
    /// `WORKDIR path` (raw).
    Workdir(String),
    /// `USER user[:group]` (raw).
    User(String),
    /// `MAINTAINER name` (raw, deprecated: prefer a label).
    Maintainer(String),
    /// `EXPOSE port[/proto]...` (raw words).
    Expose(Vec<String>),
    /// `VOLUME ["/a", "/b"]` or `VOLUME /a /b`.
    Volume {
        /// The paths: decoded JSON strings, or raw words in the plain form.
        paths: Vec<String>,
        /// True when written as a JSON array.
        json: bool,
    },
    /// `STOPSIGNAL signal` (raw).
    StopSignal(String),
    /// `SHELL ["executable", "params"]` (JSON form only).
    Shell(Vec<String>),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `ONBUILD instruction`: a trigger for images built FROM this one.
    Onbuild(Box<InstructionKind>),
}

impl InstructionKind {
    /// The instruction keyword in upper case (`COPY`, `ENV`...).
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::From { .. } => "FROM",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Env { .. } => "ENV",
            InstructionKind::Label { .. } => "LABEL",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Volume { .. } => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Onbuild(_) => "ONBUILD",
        }
    }
}

/// Every instruction keyword, upper case.
pub const KEYWORDS: [&str; 18] = [
    "FROM",
    "COPY",
    "ADD",
    "ENV",
    "LABEL",
    "ARG",
    "CMD",
    "ENTRYPOINT",
    "RUN",
    "WORKDIR",
    "USER",
    "MAINTAINER",
    "EXPOSE",
    "VOLUME",
    "STOPSIGNAL",
    "SHELL",
    "HEALTHCHECK",
    "ONBUILD",
];
