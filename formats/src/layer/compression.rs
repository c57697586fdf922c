//! Layer compression: deterministic gzip and zstd encoders, and the detection of a format by its magic bytes
//! (decoding is [`super::decompressing_reader`]'s, which bounds it).
//!
//! Output depends only on the input and the chosen level: gzip is block-parallel ([`ParallelGzipWriter`]:
//! blocks cut where the content says, a header with no mtime or file name and OS byte 255, "unknown"), and zstd
//! always runs through its multithread API with [`ZSTD_WORKERS`] workers, a constant that does not depend on
//! the machine, so the same layer compresses to the same blob everywhere.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use super::pgzip::{BlockIndex, ParallelGzipWriter, PreviousBlob};

/// Default gzip level (the one `gzip` and docker use).
pub const DEFAULT_GZIP_LEVEL: u32 = 6;
/// Default zstd level (the one the `zstd` CLI and containerd use).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Number of zstd worker threads. Fixed, never derived from the host's cores: zstd's multithreaded format is
/// decided by job splitting, so a constant count keeps blobs identical on every machine.
pub const ZSTD_WORKERS: u32 = 2;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952) at `level` 0..=9.
    Gzip {
        /// Compression level, 0 (store) to 9 (best).
        level: u32,
    },
    /// zstd at `level` (1..=22; negative levels are the fast modes).
    Zstd {
        /// Compression level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip {
            level: DEFAULT_GZIP_LEVEL,
        }
    }
}

impl Compression {
    /// The suffix this compression adds to a layer media type: `""`, `"+gzip"` or `"+zstd"`.
    pub fn media_type_suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip { .. } => "+gzip",
            Compression::Zstd { .. } => "+zstd",
        }
    }

    /// The short name accepted by [`FromStr`]: `none`, `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip { .. } => "gzip",
            Compression::Zstd { .. } => "zstd",
        }
    }

    /// Detects the compression of a stream from its first bytes (at least 4 for zstd). Anything else is
    /// reported as [`Compression::None`] with default levels for the others.
    pub fn detect(magic: &[u8]) -> Compression {
        if magic.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            }
        } else if magic.starts_with(&GZIP_MAGIC) {
            Compression::Gzip {
                level: DEFAULT_GZIP_LEVEL,
            }
        } else {
            Compression::None
        }
    }

    /// Wraps `inner` in an encoder. Call [`CompressingWriter::finish`] to write the trailer and get `inner`
    /// back: dropping the writer loses the end of the stream.
    pub fn compressing_writer<W: Write>(self, inner: W) -> io::Result<CompressingWriter<W>> {
        self.compressing_writer_reusing(inner, None)
    }

    /// Like [`Compression::compressing_writer`]; a gzip encoder copies the blocks it finds in `previous`
    /// instead of deflating them again (same output bytes). Other compressions ignore `previous`.
    pub fn compressing_writer_reusing<W: Write>(
        self,
        inner: W,
        previous: Option<PreviousBlob>,
    ) -> io::Result<CompressingWriter<W>> {
        Ok(match self {
            Compression::None => CompressingWriter::None(inner),
            Compression::Gzip { level } => {
                let writer = ParallelGzipWriter::new(inner, level);
                CompressingWriter::Gzip(match previous {
                    Some(previous) => writer.reusing(previous),
                    None => writer,
                })
            }
            Compression::Zstd { level } => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, level)?;
                encoder.include_checksum(true)?;
                encoder.multithread(ZSTD_WORKERS)?;
                CompressingWriter::Zstd(encoder)
            }
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compression name that is not `none`, `gzip` or `zstd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression `{0}`: use `none`, `gzip` or `zstd`")]
pub struct ParseCompressionError(pub String);

impl FromStr for Compression {
    type Err = ParseCompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip {
                level: DEFAULT_GZIP_LEVEL,
            }),
            "zstd" => Ok(Compression::Zstd {
                level: DEFAULT_ZSTD_LEVEL,
            }),
            _ => Err(ParseCompressionError(s.to_string())),
        }
    }
}

/// An encoder for one [`Compression`]; must be ended with [`CompressingWriter::finish`].
pub enum CompressingWriter<W: Write> {
    /// Bytes pass through unchanged.
    None(W),
    /// A block-parallel gzip encoder (one worker per core, output independent of the core count).
    Gzip(ParallelGzipWriter<W>),
    /// A multithreaded zstd encoder.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

/// The blocks of a gzip blob just written, for [`Compression::compressing_writer_reusing`] next time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GzipBlocks {
    /// The blob's block index.
    pub index: BlockIndex,
    /// Blocks copied from the previous blob rather than deflated.
    pub reused: u64,
}

impl<W: Write> CompressingWriter<W> {
    /// Writes the end of the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.finish_with_blocks()?.0)
    }

    /// Like [`CompressingWriter::finish`], also returning the block index of a gzip stream (`None` for the
    /// other compressions).
    pub fn finish_with_blocks(self) -> io::Result<(W, Option<GzipBlocks>)> {
        match self {
            CompressingWriter::None(w) => Ok((w, None)),
            CompressingWriter::Gzip(e) => {
                let done = e.finish_with_index()?;
                let blocks = GzipBlocks {
                    index: done.index,
                    reused: done.reused,
                };
                Ok((done.inner, Some(blocks)))
            }
            CompressingWriter::Zstd(e) => Ok((e.finish()?, None)),
        }
    }
}

impl<W: Write> Write for CompressingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressingWriter::None(w) => w.write(buf),
            CompressingWriter::Gzip(e) => e.write(buf),
            CompressingWriter::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressingWriter::None(w) => w.flush(),
            CompressingWriter::Gzip(e) => e.flush(),
            CompressingWriter::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut w = c.compressing_writer(Vec::new()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn names_parse_with_default_levels_and_unknown_names_are_rejected() {
        assert_eq!("none".parse(), Ok(Compression::None));
        assert_eq!("gzip".parse(), Ok(Compression::Gzip { level: 6 }));
        assert_eq!("ZSTD".parse(), Ok(Compression::Zstd { level: 3 }));
        let err = "lz4".parse::<Compression>().unwrap_err();
        assert!(err.to_string().contains("`lz4`"), "{err}");
    }

    #[test]
    fn media_type_suffixes_match_the_oci_names() {
        assert_eq!(Compression::None.media_type_suffix(), "");
        assert_eq!(Compression::Gzip { level: 1 }.media_type_suffix(), "+gzip");
        assert_eq!(Compression::Zstd { level: 1 }.media_type_suffix(), "+zstd");
    }

    #[test]
    fn gzip_and_zstd_output_is_identical_across_runs() {
        let data = sample();
        for c in [
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            assert_eq!(compress(c, &data), compress(c, &data), "{c}");
        }
        let gz = compress(Compression::Gzip { level: 6 }, b"x");
        // mtime (bytes 4..8) is zero and the OS byte says "unknown": nothing from the host.
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
        assert_eq!(gz[9], 255);
    }

    #[test]
    fn zstd_multithread_output_does_not_depend_on_the_worker_count() {
        let data = sample();
        let with = |workers: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.include_checksum(true).unwrap();
            e.multithread(workers).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        assert_eq!(with(1), with(4));
        assert_eq!(
            with(ZSTD_WORKERS),
            compress(Compression::Zstd { level: 3 }, &data)
        );
    }
}
