//! Errors of the Kubefile parser and evaluator, each naming the file, line and column and quoting the text.

use std::fmt;
use std::sync::Arc;

/// A syntax error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {kind}")]
pub struct ParseError {
    /// The file name used in messages (`Kubefile` unless [`super::parse_named`] was given one).
    pub file: String,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What a [`ParseError`] is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The first word of an instruction is not an instruction.
    #[error("unknown instruction {word:?}{}", Suggestion(suggestion))]
    UnknownInstruction {
        /// The word as written.
        word: String,
        /// The closest instruction, when one is close.
        suggestion: Option<&'static str>,
    },
    /// An instruction has no arguments or too few.
    #[error("{instruction} {expected}")]
    MissingArguments {
        /// The instruction keyword.
        instruction: &'static str,
        /// What it needs, e.g. "requires a source and a destination".
        expected: &'static str,
    },
    /// A quote is opened and never closed.
    #[error("unterminated {quote} quote in {text:?}: close it or escape it")]
    UnterminatedQuote {
        /// The quote character.
        quote: char,
        /// The word it starts.
        text: String,
    },
    /// A `--flag` the instruction does not accept.
    #[error("unknown flag {flag:?} for {instruction} (accepted: {accepted})")]
    UnknownFlag {
        /// The instruction keyword.
        instruction: &'static str,
        /// The flag as written.
        flag: String,
        /// The accepted flags, comma separated.
        accepted: &'static str,
    },
    /// A flag that needs `=value` was given without one (or the reverse).
    #[error("flag {flag:?} of {instruction} {problem}")]
    BadFlagValue {
        /// The instruction keyword.
        instruction: &'static str,
        /// The flag as written.
        flag: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A word of ENV/LABEL has no `=`.
    #[error("{instruction} expects name=value pairs, but {text:?} has no \"=\"")]
    MissingEquals {
        /// The instruction keyword.
        instruction: &'static str,
        /// The word.
        text: String,
    },
    /// A `=value` with nothing before it.
    #[error("{instruction} has an empty name in {text:?}")]
    EmptyName {
        /// The instruction keyword.
        instruction: &'static str,
        /// The word.
        text: String,
    },
    /// `FROM` arguments other than `image [AS name]`.
    #[error("FROM takes an image and an optional \"AS name\", got {text:?}")]
    BadFrom {
        /// The arguments as written.
        text: String,
    },
    /// A stage name that is not lower-case letters, digits, `-`, `_` and `.`.
    #[error(
        "invalid stage name {name:?}: use letters, digits, '-', '_' and '.', starting with a letter"
    )]
    BadStageName {
        /// The name.
        name: String,
    },
    /// An instruction needs the JSON form but did not get a valid JSON array of strings.
    #[error(
        "{instruction} needs a JSON array of strings, like [\"/bin/sh\", \"-c\"], got {text:?}"
    )]
    NeedsJson {
        /// The instruction keyword.
        instruction: &'static str,
        /// The arguments as written.
        text: String,
    },
    /// A here-document whose delimiter line never comes.
    #[error(
        "here-document <<{delimiter} is never closed: add a line containing only {delimiter:?}"
    )]
    UnterminatedHereDoc {
        /// The delimiter.
        delimiter: String,
    },
    /// A COPY/ADD whose destination is a here-document marker (`COPY <<A <<B`): the body was read, but a
    /// here-document can only be a source.
    #[error(
        "{instruction} cannot take a here-document as its destination ({text:?}): add the destination path after the last source"
    )]
    HereDocDestination {
        /// The instruction keyword.
        instruction: &'static str,
        /// The marker as written.
        text: String,
    },
    /// A bad parser directive value.
    #[error("invalid parser directive {text:?}: {problem}")]
    BadDirective {
        /// The directive line.
        text: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// ONBUILD of an instruction that cannot be a trigger.
    #[error("ONBUILD {instruction} is not allowed")]
    BadOnbuild {
        /// The instruction after ONBUILD.
        instruction: String,
    },
    /// HEALTHCHECK that is neither `NONE` nor `CMD ...`.
    #[error("HEALTHCHECK takes NONE or [flags] CMD command, got {text:?}")]
    BadHealthcheck {
        /// The arguments as written.
        text: String,
    },
    /// An instruction other than ARG before the first FROM.
    #[error("{instruction} before the first FROM: only ARG may come before FROM")]
    BeforeFrom {
        /// The instruction keyword.
        instruction: &'static str,
    },
    /// A file without any FROM.
    #[error("no FROM instruction: a Kubefile starts with FROM (e.g. FROM scratch)")]
    NoFrom,
}

struct Suggestion<'a>(&'a Option<&'static str>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean {s}?)"),
            None => Ok(()),
        }
    }
}

/// An error of evaluation: a valid file that cannot be turned into a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct EvalError {
    /// The file name used in messages.
    pub file: String,
    /// 1-based line of the instruction.
    pub line: usize,
    /// What is wrong.
    pub kind: EvalErrorKind,
}

/// What an [`EvalError`] is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalErrorKind {
    /// RUN cannot be honoured for cluster images.
    #[error(
        "RUN is not supported: cluster images are built without executing commands; put the command in CMD \
         (run at install time) or prepare the files in the build context"
    )]
    RunNotSupported,
    /// A substitution error in a word.
    #[error("in {text:?}: {problem}")]
    Substitution {
        /// The word as written.
        text: String,
        /// What is wrong.
        problem: String,
    },
    /// `${V:?message}` with V unset or empty.
    #[error("{name} is required: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The message written after `:?`.
        message: String,
    },
    /// `COPY --from` naming a stage that does not exist yet.
    #[error(
        "COPY --from={name}: no earlier stage has that name or index; name a stage with FROM ... AS {name}"
    )]
    UnknownStage {
        /// The stage reference.
        name: String,
    },
    /// A stage name used twice.
    #[error("stage name {name:?} is used twice")]
    DuplicateStage {
        /// The name.
        name: String,
    },
    /// A FROM `--platform` that is not `os/arch[/variant]`.
    #[error(transparent)]
    BadPlatform(crate::manifest::PlatformError),
    /// A substituted name (ENV/LABEL key, ARG name) that came out empty.
    #[error("{instruction} name {text:?} is empty after substitution")]
    EmptyName {
        /// The instruction.
        instruction: &'static str,
        /// The raw name.
        text: String,
    },
    /// A destination or source path that came out empty.
    #[error("{instruction} {what} {text:?} is empty after substitution")]
    EmptyPath {
        /// The instruction.
        instruction: &'static str,
        /// "source" or "destination" or "path".
        what: &'static str,
        /// The raw word.
        text: String,
    },
    /// COPY with several sources to a destination that is not a directory.
    #[error("COPY with several sources needs a destination ending in \"/\", got {destination:?}")]
    DestinationNotDirectory {
        /// The destination.
        destination: String,
    },
    /// A source that leaves the build context.
    #[error("source {source_path:?} is outside the build context")]
    OutsideContext {
        /// The source.
        source_path: String,
    },
    /// A source that matches nothing because a symlink on its way leads out of the build context.
    #[error(
        "source {source_path:?} is not in the build context: {link:?} is a symlink to {target:?}, which leads \
         out of it (symlinks are followed only inside the context: an absolute target starts at the context \
         root, `..` stops there)"
    )]
    SymlinkOutsideContext {
        /// The source as written after substitution.
        source_path: String,
        /// The symlink, relative to the context.
        link: String,
        /// Its target.
        target: String,
    },
    /// A second `COPY registry` to another destination than the first, which decided where the embedded
    /// registry is written.
    #[error(
        "`COPY registry` to `{destination}`: line {first_line} already writes the embedded images at \
         `{first}`; they are written in one place only, so copy `registry` to `{first}` here too or drop \
         one of the lines"
    )]
    RegistryDestination {
        /// The line of the first `COPY registry`.
        first_line: usize,
        /// Where the first one writes the embedded registry.
        first: String,
        /// Where this one would.
        destination: String,
    },
    /// `COPY registry` in a stage other than the final one, which alone gets the embedded images.
    #[error(
        "`COPY registry` in stage {stage}: the embedded images are added to the final stage only; move the \
         line into the last stage"
    )]
    RegistryNotFinalStage {
        /// The stage index.
        stage: usize,
    },
    /// A source that matches nothing in the build context.
    #[error("source {source_path:?} not found in the build context {context}")]
    SourceNotFound {
        /// The source as written after substitution.
        source_path: String,
        /// The context directory.
        context: String,
    },
    /// Reading the build context failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: SharedError,
    },
}

/// An error kept as the source of an error that is cloned and compared (as evaluation errors are): clones
/// share it, and two are equal when their messages are.
#[derive(Debug, Clone)]
pub struct SharedError(Arc<dyn std::error::Error + Send + Sync>);

impl SharedError {
    /// Keeps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> SharedError {
        SharedError(Arc::new(error))
    }
}

impl PartialEq for SharedError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for SharedError {}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
