//! One module per `sealos` subcommand: its clap arguments and a `run` function.

pub mod build;
pub mod completion;
pub mod images;
pub mod inspect;
pub mod load;
pub mod prune;
pub mod registry;
pub mod rmi;
pub mod save;
pub mod tag;
pub mod version;
