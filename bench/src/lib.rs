//! Side-by-side benchmarks of sealos against its peers: [`harness`] times ours and a peer alternately,
//! [`data`] generates the inputs deterministically from a seed, and [`rows`] holds one file per group of rows.

pub mod data;
pub mod harness;
pub mod rows;
