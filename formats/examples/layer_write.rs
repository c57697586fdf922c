//! Writes one layer of a directory, for profiling: `layer_write DIR OUT none|gzip|zstd[:LEVEL]`; prints the
//! digests and the time taken.

use std::time::Instant;

use formats::layer::{Compression, LayerOptions, write_dir_layer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, out, compression] = args.as_slice() else {
        return Err("usage: layer_write DIR OUT none|gzip|zstd[:LEVEL]".into());
    };
    let compression = match compression.strip_prefix("zstd:") {
        Some(level) => Compression::Zstd {
            level: level.parse()?,
        },
        None => compression.parse()?,
    };
    let opts = LayerOptions {
        compression,
        mtime: 0,
    };
    let start = Instant::now();
    let file = std::fs::File::create(out)?;
    let d = write_dir_layer(dir.as_ref(), "", &opts, file)?;
    println!(
        "{:.3} s  blob {} ({} bytes)  diff_id {} ({} bytes)",
        start.elapsed().as_secs_f64(),
        d.blob_digest,
        d.blob_size,
        d.diff_id,
        d.uncompressed_size
    );
    Ok(())
}
