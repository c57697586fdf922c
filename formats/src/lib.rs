//! Pure data formats for cluster images, with no network and no async.
//!
//! Everything here is content-addressed and verified while streaming: [`digest`] hashes bytes as they pass,
//! [`reference`] parses image names the way docker does, [`manifest`] keeps manifests byte-exact,
//! [`oci_layout`] and [`distribution`] read and write the two on-disk layouts, [`layer`] writes deterministic
//! tar layers and unpacks untrusted ones safely, and [`kubefile`] parses and evaluates Kubefiles. [`walk`] is
//! the workspace's one directory walk and [`sys`] its one module of system calls (the only `unsafe` code).
#![deny(missing_docs)]

pub mod archive_list;
pub mod cluster_image;
pub mod cmdenv;
pub mod digest;
pub mod distribution;
pub mod fsutil;
pub mod kubefile;
pub mod layer;
pub mod manifest;
pub mod media_type;
pub mod oci_layout;
mod platform;
pub mod reference;
pub mod repository;
pub mod sys;
pub mod time;
pub mod walk;

pub use digest::{Algorithm, Digest, DigestError};
