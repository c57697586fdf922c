//! Kubefiles: Dockerfiles for cluster images.
//!
//! [`parse`] turns text into a [`Kubefile`] syntax tree (pure, never panics, errors with line and column);
//! printing a [`Kubefile`] (`to_string()`) gives text that parses back to the same tree. [`evaluate`] turns the
//! tree into a [`BuildPlan`] for one platform: stages, ARG/ENV substitution, every COPY/ADD and the final image
//! config. The only file-system code is in [`context`]: [`locate_kubefile`], [`resolve_sources`] and the rule both
//! follow, [`resolve_in_context`] (symlinks are followed only inside the build context).
//!
//! ```
//! use formats::kubefile::{EvalOptions, evaluate, parse};
//! use formats::manifest::Platform;
//!
//! let kubefile = parse("FROM scratch\nENV NAME=${NAME:-\"calico\"}\nCOPY . .\nCMD [\"helm install $(NAME)\"]\n")?;
//! let options = EvalOptions { platform: Platform::parse("linux/amd64").unwrap(), ..EvalOptions::default() };
//! let plan = evaluate(&kubefile, &options)?;
//! assert_eq!(plan.config.env_value("NAME"), Some("calico"));
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
pub use context::{
    ContextPath, ContextPathError, DEFAULT_NAMES, EMBEDDED_REGISTRY, IMAGES_LOCK, SavedImages,
    SourceRules, locate_kubefile, registry_destination, resolve_in_context, resolve_sources,
};
pub use error::{EvalError, EvalErrorKind, ParseError, ParseErrorKind, SharedError};
pub use eval::{
    BaseImage, BuildPlan, ContextFile, CopyFrom, CopyPlan, EvalOptions, FileKind, ImageConfig,
    InlineFile, RegistryCopy, SCRATCH_PATH, Stage, Step, base_images, evaluate,
};

/// Parses a Kubefile; errors are reported against the name `Kubefile`.
pub fn parse(text: &str) -> Result<Kubefile, ParseError> {
    parse_named("Kubefile", text)
}

/// Parses a Kubefile; errors are reported as `name:line:column: message`.
pub fn parse_named(name: &str, text: &str) -> Result<Kubefile, ParseError> {
    parser::parse_file(name, text)
}

/// The round-trip property the fuzz target (`fuzz/fuzz_targets/kubefile.rs`) and the corpus test check: text
/// that parses prints to text that parses back to the same tree. Text that does not parse passes. `Err`
/// shows the input, the printed text and what went wrong.
pub fn check_round_trip(text: &str) -> Result<(), RoundTripError> {
    let Ok(kubefile) = parse(text) else {
        return Ok(());
    };
    let printed = kubefile.to_string();
    match parse(&printed) {
        Ok(back) if back.same_content(&kubefile) => Ok(()),
        Ok(back) => Err(RoundTripError::Changed {
            input: text.to_string(),
            printed,
            parsed: format!("{:#?}", kubefile.instructions),
            reparsed: format!("{:#?}", back.instructions),
        }),
        Err(source) => Err(RoundTripError::Unparsable {
            input: text.to_string(),
            printed,
            source: Box::new(source),
        }),
    }
}

/// A Kubefile that does not survive printing and parsing again (see [`check_round_trip`]).
#[derive(Debug, thiserror::Error)]
pub enum RoundTripError {
    /// The printed text parses to another tree.
    #[error(
        "round trip changed the tree\ninput: {input:?}\nprinted: {printed:?}\nparsed: {parsed}\nreparsed: {reparsed}"
    )]
    Changed {
        /// The input.
        input: String,
        /// The input parsed and printed.
        printed: String,
        /// The input's instructions (`{:#?}`).
        parsed: String,
        /// The printed text's instructions (`{:#?}`).
        reparsed: String,
    },
    /// The printed text does not parse.
    #[error("printed text does not parse: {source}\ninput: {input:?}\nprinted: {printed:?}")]
    Unparsable {
        /// The input.
        input: String,
        /// The input parsed and printed.
        printed: String,
        /// Why the printed text does not parse.
        #[source]
        source: Box<ParseError>,
    },
}
