//! One module per `sealos` subcommand: its clap arguments and a `run` function.

pub mod build;
pub mod completion;
pub mod version;
