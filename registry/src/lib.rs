//! OCI Distribution for cluster images: a storage trait with filesystem (Docker Distribution layout) and
//! in-memory backends, and the `registry serve` HTTP server.
//!
//! The server lives behind the `server` feature so the builder can use the client without compiling it.

pub mod allocator;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "client")]
pub mod delta;

#[cfg(feature = "client")]
pub mod mirror;

#[cfg(feature = "client")]
pub mod proxy;

pub mod storage;

#[cfg(feature = "server")]
pub mod server;
