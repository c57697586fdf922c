//! S3 backend rows (R1-s3, R2-s3, X1-s3 of benchmarks.md): `sealos registry serve s3` against Debian's
//! `docker-registry` (CNCF distribution 2.8) with its own `s3` storage driver, each on its own bucket of one
//! moto server (`python3 -m moto.server`, `pip install 'moto[server]'`) on 127.0.0.1, driven by the same client
//! and jobs as the `registry` group ([`super::registry`]). Both registries stream blob GETs through themselves:
//! the peer's default, a redirect to a presigned URL (so that the client downloads from moto directly), is
//! turned off (`storage.redirect.disable`), as `sealos registry serve s3` without `--redirect` does.
//!
//! - `push-monolithic-s3-vs-docker-registry-s3`, `push-chunked-8m-s3-vs-docker-registry-s3` (R1-s3): one random
//!   blob of `--size`, at most 256 MiB, pushed into a fresh repository each run.
//! - `pull-s3-vs-docker-registry-s3` (R2-s3): GET of that blob, verified by the client, into a sink.
//! - `stream-rss-s3-{256m,1g,4g}-vs-docker-registry-s3` (X1-s3): push then pull generated zeros of that size,
//!   each row with its own pair of freshly started servers (and buckets); each server's peak RSS (VmHWM, reset
//!   before the push and before the pull) is printed on stderr per phase, and the larger one is in the table.
//!
//! # Knobs
//! The group is short by default (1 warm-up and 2 pairs, X1-s3 at 256 MiB only: about 3 minutes on 2 cores),
//! because moto, a Python server, dominates every time here.
//! - `--pairs N`: more measured pairs per row (the group's default is 2).
//! - `BENCH_S3_SIZES=256M,1G,4G`: the X1-s3 blob sizes to run, any of 256M, 1G and 4G (default `256M`).
//!   A row selected by id on the command line also needs its size here. Through moto, 1 GiB takes about
//!   30 s per side and run (idle machine); 4 GiB about 5 minutes per side and run (loaded machine), and moto,
//!   which assembles a multipart upload, copies an object and answers a GET from whole in-memory copies, reached
//!   17 GiB of RSS and about 12 GiB of temporary files: run 4G only where that much memory and disk are free.
//!
use std::ffi::OsString;
use std::rc::Rc;

use anyhow::{Context as _, bail};
use testsupport::moto::Moto;

use super::Context;
use super::registry::{
    Blob, Servers, blob_pairs, start_docker_registry, start_sealos, stream_pair,
};
use crate::harness::{Job, Pair};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &[
    "push-monolithic-s3-vs-docker-registry-s3",
    "push-chunked-8m-s3-vs-docker-registry-s3",
    "pull-s3-vs-docker-registry-s3",
    "stream-rss-s3-256m-vs-docker-registry-s3",
    "stream-rss-s3-1g-vs-docker-registry-s3",
    "stream-rss-s3-4g-vs-docker-registry-s3",
];

/// Measured pairs per row unless `--pairs` says otherwise.
pub const DEFAULT_PAIRS: usize = 2;

/// The peer's name in the table.
const PEER_S3: &str = "docker-registry-s3";
/// Largest blob for R1-s3 and R2-s3, whatever `--size` says.
const BLOB_CAP: u64 = 256 << 20;
/// Blob sizes of the X1-s3 rows, in the order of their ids in [`ROWS`].
const STREAM_SIZES: [u64; 3] = [256 << 20, 1 << 30, 4 << 30];
/// Environment variable naming the X1-s3 sizes to run.
const SIZES_VAR: &str = "BENCH_S3_SIZES";

/// The X1-s3 rows to run: `(row id, blob size)` for each size `BENCH_S3_SIZES` names (default 256M).
fn stream_rows() -> anyhow::Result<Vec<(&'static str, u64)>> {
    let wanted = std::env::var(SIZES_VAR).unwrap_or_else(|_| "256M".into());
    let mut rows = Vec::new();
    for item in wanted.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let size = crate::data::parse_size(item)
            .with_context(|| format!("{SIZES_VAR}: `{item}` is not a size"))?;
        let Some(i) = STREAM_SIZES.iter().position(|s| *s == size) else {
            bail!("{SIZES_VAR}: no X1-s3 row for `{item}`; the sizes are 256M, 1G and 4G");
        };
        let row = (ROWS[3 + i], size);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Our server on bucket `{name}-sealos` and the peer on bucket `{name}-distribution`, both new, of `moto`.
fn start_servers(ctx: &Context, moto: &Moto, name: &str) -> anyhow::Result<Rc<Servers>> {
    let endpoint = moto.endpoint();
    let ours_bucket = format!("{name}-sealos");
    moto.try_create_bucket(&ours_bucket)
        .map_err(anyhow::Error::msg)?;
    let root = tempfile::tempdir_in(&ctx.work).context("cannot create a registry directory")?;
    let config = root.path().join("s3.toml");
    std::fs::write(
        &config,
        format!(
            "bucket = \"{ours_bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nprefix = \"bench\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n"
        ),
    )?;
    let ours = start_sealos(
        root,
        &["s3".into(), "--config".into(), OsString::from(&config)],
    )?;
    let peer_bucket = format!("{name}-distribution");
    moto.try_create_bucket(&peer_bucket)
        .map_err(anyhow::Error::msg)?;
    let root = tempfile::tempdir_in(&ctx.work).context("cannot create a registry directory")?;
    let storage = format!(
        "  s3:\n    region: us-east-1\n    bucket: {peer_bucket}\n    regionendpoint: {endpoint}\n    \
         accesskey: test\n    secretkey: test\n    secure: false\n    v4auth: true\n  redirect:\n    \
         disable: true\n"
    );
    let peer = start_docker_registry(root, &storage)?;
    Servers::new(ours, peer)
}

/// `job`, keeping moto running as long as the job exists.
fn keeping_moto(moto: &Rc<Moto>, mut job: Job) -> Job {
    let moto = moto.clone();
    Box::new(move || {
        let _running = &moto;
        job()
    })
}

/// Starts moto and the servers, generates the blob and returns the rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let moto = Rc::new(Moto::try_start().map_err(anyhow::Error::msg)?);
    let blob = Blob::generate(&ctx.work, ctx.size.min(BLOB_CAP), ctx.seed)?;
    let servers = start_servers(ctx, &moto, "blob")?;
    let mut rows = blob_pairs(&servers, &blob, [ROWS[0], ROWS[1], ROWS[2]], PEER_S3, false)?;
    for (id, size) in stream_rows()? {
        let servers = start_servers(ctx, &moto, &format!("stream-{}m", size >> 20))?;
        rows.push(stream_pair(&servers, id, PEER_S3, size)?);
    }
    for row in &mut rows {
        let ours = std::mem::replace(&mut row.ours, Box::new(|| Ok(())));
        row.ours = keeping_moto(&moto, ours);
    }
    Ok(rows)
}
