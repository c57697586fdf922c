//! Layer writing: gzip level 6 and zstd level 3 of a realistic compressible file (copies of /usr/bin and
//! /usr/lib), and a deterministic tar of a realistic tree, each against the standard tool doing the same work.
//! Ours also hashes what it writes (the blob digest, and the diff_id for tar), which the peers do not.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use formats::layer::{Compression, LayerOptions, write_dir_layer};

use super::Context;
use crate::data;
use crate::harness::{Job, Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["gzip6-vs-gzip", "zstd3-vs-zstd", "tar-vs-gnu-tar"];

/// Prepares a compressible file and a tree of `ctx.size` bytes and returns the three rows.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let input = data::realistic_file(&ctx.work, ctx.size, ctx.seed)?;
    let tree = ctx.work.join(format!("tree-{}-{}", ctx.size, ctx.seed));
    if !tree.exists() {
        data::realistic_tree(&tree, ctx.size, ctx.seed)?;
    }
    let out = ctx.work.join("out");
    let (qi, qo, qt) = (
        quote(&input.to_string_lossy()),
        quote(&out.to_string_lossy()),
        quote(&tree.to_string_lossy()),
    );
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: compress_job(&input, &out, Compression::Gzip { level: 6 }),
            peer_name: "gzip -6".into(),
            peer: shell(&format!("gzip -6 -n -c {qi} > {qo}")),
        },
        Pair {
            id: ROWS[1].into(),
            ours: compress_job(&input, &out, Compression::Zstd { level: 3 }),
            peer_name: "zstd -3 -T0".into(),
            peer: shell(&format!("zstd -q -f -3 -T0 -c {qi} > {qo}")),
        },
        Pair {
            id: ROWS[2].into(),
            ours: tar_job(&tree, &out),
            peer_name: "GNU tar".into(),
            peer: shell(&format!(
                "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf {qo} -C {qt} ."
            )),
        },
    ])
}

/// Ours: stream the file through the layer compressor (hashing the compressed bytes) into `out`.
fn compress_job(input: &Path, out: &Path, compression: Compression) -> Job {
    let (input, out) = (input.to_path_buf(), out.to_path_buf());
    Box::new(move || compress(&input, &out, compression))
}

fn compress(input: &Path, out: &Path, compression: Compression) -> anyhow::Result<()> {
    let mut reader = BufReader::with_capacity(
        1 << 20,
        File::open(input).with_context(|| format!("cannot open {}", input.display()))?,
    );
    let sink = BufWriter::with_capacity(
        1 << 20,
        File::create(out).with_context(|| format!("cannot create {}", out.display()))?,
    );
    let blob = formats::digest::DigestWriter::new(sink, formats::digest::Algorithm::Sha256);
    let mut writer = compression.compressing_writer(blob)?;
    io::copy(&mut reader, &mut writer)?;
    let blob = writer.finish()?;
    let (mut sink, _digest, _len) = blob.finish();
    sink.flush()?;
    Ok(())
}

/// Ours: a deterministic uncompressed layer of the tree, with its diff_id computed in the same pass.
fn tar_job(tree: &Path, out: &Path) -> Job {
    let (tree, out): (PathBuf, PathBuf) = (tree.to_path_buf(), out.to_path_buf());
    Box::new(move || {
        let opts = LayerOptions {
            compression: Compression::None,
            mtime: 0,
        };
        let file =
            File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
        write_dir_layer(&tree, "", &opts, file)?;
        Ok(())
    })
}
