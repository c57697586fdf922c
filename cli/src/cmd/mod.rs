//! One module per `sealos` subcommand: its clap arguments and a `run` function.

pub mod build;
pub mod build_progress;
pub mod completion;
pub mod create;
pub mod delta;
pub mod helm;
pub mod images;
pub mod inspect;
pub mod load;
pub mod login;
pub mod logout;
pub mod manifest;
pub mod merge;
pub mod mirror;
pub mod prune;
pub mod pull;
pub mod push;
pub mod registry;
pub mod registry_maint;
pub mod registry_proxy;
pub mod reset;
pub mod rmi;
pub mod run;
pub mod save;
pub mod tag;
pub mod version;
