//! One module per `sealos` subcommand: its clap arguments and a `run` function.

pub mod completion;
pub mod login;
pub mod logout;
pub mod manifest;
pub mod mirror;
pub mod pull;
pub mod push;
pub mod version;
