//! Serialisations of [`crate::Value`] with Go's exact output: `encoding/json`.

pub mod json;
