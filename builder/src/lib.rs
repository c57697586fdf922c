//! Turns an evaluated Kubefile into an OCI image in the local store: build context, layer cache,
//! discovery and embedding of referenced container images, image config and manifest, and outputs.

pub mod blocking;
pub mod build;
pub mod discover;
pub mod embed;
pub mod store;
