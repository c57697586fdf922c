//! The runtime side of cluster images: safe unpacking onto hosts, merging images, env expansion and
//! templates, the command plan, and executing it locally or over SSH.

pub mod env;
pub mod template;
