//! Kubefiles: Dockerfiles for cluster images.
//!
//! [`parse`] turns text into a [`Kubefile`] syntax tree (pure, never panics, errors with line and column);
//! printing a [`Kubefile`] (`to_string()`) gives text that parses back to the same tree. [`evaluate`] turns the
//! tree into a [`BuildPlan`] for one platform: stages, ARG/ENV substitution, every COPY/ADD and the final image
//! config. The only file-system code is in [`context`]: [`find_default`] and [`resolve_sources`].
//!
//! ```
//! use formats::kubefile::{EvalOptions, evaluate, parse};
//! use formats::manifest::Platform;
//!
//! let kubefile = parse("FROM scratch\nENV NAME=${NAME:-\"calico\"}\nCOPY . .\nCMD [\"helm install $(NAME)\"]\n")?;
//! let options = EvalOptions { platform: Platform::parse("linux/amd64").unwrap(), ..EvalOptions::default() };
//! let plan = evaluate(&kubefile, &options)?;
//! assert_eq!(plan.config.env, vec!["NAME=calico".to_string()]);
//! assert_eq!(plan.config.cmd, Some(vec!["helm install $(NAME)".to_string()]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod ast;
pub mod context;
pub mod error;
pub mod eval;
mod lexer;
mod parser;
mod print;
pub mod substitute;

pub use ast::{
    ArgDecl, Command, CopyArgs, Directives, Flag, Healthcheck, HereDoc, Instruction,
    InstructionKind, KEYWORDS, KeyValue, Kubefile, Source,
};
pub use context::{DEFAULT_NAMES, find_default, resolve_sources};
pub use error::{EvalError, EvalErrorKind, ParseError, ParseErrorKind};
pub use eval::{
    BaseImage, BuildPlan, ContextFile, CopyFrom, CopyPlan, EvalOptions, FileKind, ImageConfig,
    InlineFile, Stage, Step, evaluate,
};

/// Parses a Kubefile; errors are reported against the name `Kubefile`.
pub fn parse(text: &str) -> Result<Kubefile, ParseError> {
    parse_named("Kubefile", text)
}

/// Parses a Kubefile; errors are reported as `name:line:column: message`.
pub fn parse_named(name: &str, text: &str) -> Result<Kubefile, ParseError> {
    parser::parse_file(name, text)
}
