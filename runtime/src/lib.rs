//! The runtime side of cluster images: safe unpacking onto hosts, merging images, env expansion and
//! templates, the command plan, and executing it locally or over SSH.
//!
//! `sealos create` is [`create::create`], `sealos run` is [`run::run`], `sealos reset` is
//! [`reset::reset`]; docs/runtime.md describes the semantics.

pub mod clusterfile;
pub mod create;
pub mod env;
pub mod exec;
pub mod image;
pub mod image_check;
pub mod plan;
pub mod reset;
pub mod run;
pub mod template;
pub mod unpack;
