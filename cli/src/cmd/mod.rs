//! One module per `sealos` subcommand: its clap arguments and a `run` function.

pub mod completion;
pub mod registry;
pub mod version;
