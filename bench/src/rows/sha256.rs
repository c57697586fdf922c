//! sha256 of one incompressible file, streamed: `formats::digest::DigestReader` under a 1 MiB buffered reader,
//! copied to a sink, against `sha256sum FILE` and `openssl dgst -sha256 FILE`.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};
use formats::digest::{Algorithm, Digest, DigestReader};

use super::Context;
use crate::data;
use crate::harness::{Pair, quote, shell};

/// Row ids, in the order [`pairs`] returns them.
pub const ROWS: &[&str] = &["sha256-vs-sha256sum", "sha256-vs-openssl"];

/// Generates the random file and checks that ours and `sha256sum` agree on its digest before timing anything.
pub fn pairs(ctx: &Context) -> anyhow::Result<Vec<Pair>> {
    let file = data::random_file(&ctx.work, ctx.size, ctx.seed)?;
    let ours = hash_file(&file)?;
    let theirs = sha256sum(&file)?;
    if ours != theirs {
        bail!(
            "sha256 of {} disagrees: ours {ours}, sha256sum {theirs}",
            file.display()
        );
    }
    let quoted = quote(&file.to_string_lossy());
    let ours_job = || {
        let file = file.clone();
        Box::new(move || hash_file(&file).map(drop)) as crate::harness::Job
    };
    Ok(vec![
        Pair {
            id: ROWS[0].into(),
            ours: ours_job(),
            peer_name: "sha256sum".into(),
            peer: shell(&format!("sha256sum {quoted}")),
        },
        Pair {
            id: ROWS[1].into(),
            ours: ours_job(),
            peer_name: "openssl".into(),
            peer: shell(&format!("openssl dgst -sha256 {quoted}")),
        },
    ])
}

/// Ours: hash while streaming through a 1 MiB buffer, one pass, nothing held in memory.
fn hash_file(path: &Path) -> anyhow::Result<Digest> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, DigestReader::new(file, Algorithm::Sha256));
    io::copy(&mut reader, &mut io::sink())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let (_, digest, _) = reader.into_inner().finish();
    Ok(digest)
}

fn sha256sum(path: &Path) -> anyhow::Result<Digest> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("cannot run `sha256sum` (GNU coreutils): is it installed?")?;
    if !out.status.success() {
        bail!(
            "sha256sum {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split_whitespace().next().unwrap_or_default();
    Digest::from_parts(Algorithm::Sha256, hex)
        .with_context(|| format!("unexpected sha256sum output `{text}`"))
}
