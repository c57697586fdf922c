//! The benchmark rows, one file per group. To add a group (gzip, zstd, tar, registry...): write
//! `rows/<group>.rs` with a `pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>>` that prepares its data
//! under `ctx.work` (see [`crate::data`]) and returns one [`Pair`] per row, then add a [`Group`] entry to
//! [`GROUPS`]. Row ids are `<what>-vs-<peer>`.

use std::path::PathBuf;

use crate::harness::Pair;

mod build;
mod charts;
mod delta;
mod embed;
mod layers;
mod mirror;
mod proxy;
mod push;
mod registry;
mod registry_s3;
mod registry_slow;
mod sha256;

pub use build::child_main as build_child;

/// Measured pairs per row of a group that does not set its own default.
pub const DEFAULT_PAIRS: usize = 5;

/// What every group gets from the command line.
#[derive(Debug, Clone)]
pub struct Context {
    /// Seed for all generated data.
    pub seed: u64,
    /// Size of the main input in bytes.
    pub size: u64,
    /// Directory for generated data and scratch output.
    pub work: PathBuf,
}

/// A named group of rows that share their input data.
pub struct Group {
    /// Name given on the command line (`sha256`).
    pub name: &'static str,
    /// One line for `bench list`.
    pub about: &'static str,
    /// Ids of the rows the group produces, for `bench list` and selecting one row.
    pub rows: &'static [&'static str],
    /// Prepares the data and builds the rows.
    pub pairs: fn(&Context) -> anyhow::Result<Vec<Pair>>,
    /// Measured pairs per row when `--pairs` is not given.
    pub default_pairs: usize,
}

/// Every group, in the order `bench all` runs them.
pub const GROUPS: &[Group] = &[
    Group {
        name: "sha256",
        about: "stream-hash a random file (formats::digest, 1 MiB reads) vs sha256sum and openssl",
        rows: sha256::ROWS,
        pairs: sha256::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "layers",
        about: "gzip -6, zstd -3 of a compressible file and a deterministic tar of a tree vs gzip, zstd, GNU tar",
        rows: layers::ROWS,
        pairs: layers::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "build",
        about: "B1/B1z/B2/B2d/B1d/B5: sealos build of a 300 MiB context, cold (uncompressed, zstd, default gzip; and 50 MiB of random data), after touching one file (B2d: default settings, one `COPY . .`), and build + push to docker-registry, vs buildah bud (+ push) (vfs)",
        rows: build::ROWS,
        pairs: build::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "embed",
        about: "B3/B4: sealos build embedding 20 images from a local registry, cold and rebuilt, vs skopeo sync + buildah bud",
        rows: embed::ROWS,
        pairs: embed::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "push",
        about: "B6: sealos push of a cluster image embedding 20 images (B3's context) to docker-registry vs buildah push of the same image built by buildah (vfs); bytes sent on stderr",
        rows: push::ROWS,
        pairs: push::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "mirror",
        about: "M1/M2/M3/X1: mirror N images registry->registry, re-mirror, save to a dir (registry::mirror) vs skopeo sync; registries: SEALOS_BENCH_MIRROR_REGISTRY=docker-registry (default) or sealos",
        rows: mirror::ROWS,
        pairs: mirror::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "delta",
        about: "D1/D1s/D1c: deliver v2 of 10 images to a site holding v1: sealos registry save --inventory (the delta) vs the whole save, and vs skopeo sync --dest dir of v2; and v2 of a cluster image built with one file changed; bytes of each on stderr",
        rows: delta::ROWS,
        pairs: delta::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "registry",
        about: "R1/R2/R3/X1: blob push (monolithic, 8 MiB chunks), pull, manifest GET with wrk, peak RSS: sealos registry serve vs docker-registry",
        rows: registry::ROWS,
        pairs: registry::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "registry-slow",
        about: "R4: manifest GET latency (p50/p99 on stderr) while 300 uploads trickle a byte a second: sealos registry serve vs docker-registry",
        rows: registry_slow::ROWS,
        pairs: registry_slow::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "proxy",
        about: "P1: pull an image (4 random layers, --size in all) through the pull-through cache, cold (a new cache each run) and warm: sealos registry serve --proxy vs docker-registry in proxy mode, same local upstream; P1 rows verify every blob in the client (hashing dominates warm), P1c/P1w (-curl-) fetch blobs with one curl --parallel to /dev/null (the caches' own cost)",
        rows: proxy::ROWS,
        pairs: proxy::pairs,
        default_pairs: proxy::DEFAULT_PAIRS,
    },
    Group {
        name: "charts",
        about: "H1: sealos helm template of a parent chart with 20 subcharts (15 templates each) vs helm template v4 and v3",
        rows: charts::ROWS,
        pairs: charts::pairs,
        default_pairs: DEFAULT_PAIRS,
    },
    Group {
        name: "registry-s3",
        about: "R1-s3/R2-s3/X1-s3: blob push (monolithic, 8 MiB chunks), pull, peak RSS at 256 MiB and 1 GiB: sealos registry serve s3 vs docker-registry's s3 driver, both on moto",
        rows: registry_s3::ROWS,
        pairs: registry_s3::pairs,
        default_pairs: registry_s3::DEFAULT_PAIRS,
    },
];
