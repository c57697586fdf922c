//! Bounded decompression: the one way a gzip, zstd or plain layer (or archive) becomes tar bytes, and the
//! defence against decompression bombs.
//!
//! gzip expands a run of zeros about 1030 times and zstd over 30000 times, so a 4 MiB layer can hide 4 GiB,
//! and neither an OCI manifest nor a docker archive says how large a layer is once decompressed. The bound
//! is therefore a policy, [`ExpansionLimit`]: a stream of `size` compressed bytes may decompress to
//! `max(allowance, max_ratio * size)` bytes, and never past `max_size`. Reading fails at the first byte
//! past that budget, so a bomb costs the budget, not its full size.
//!
//! Also refused while reading: more compressed bytes than the caller says the blob has (at the first extra
//! byte, so a blob larger than its descriptor cannot buy a larger budget), fewer, and data after the end of
//! the compressed stream that is not another gzip member or zstd frame. Concatenated gzip members and zstd
//! frames (as `pigz` and `zstd` write them, and containerd accepts) are read through. Call
//! [`Decompressed::finish`] when the consumer stops early (a tar reader stops at its end-of-archive
//! blocks) so that the rest of the stream is checked too.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use super::compression::Compression;

/// Default [`ExpansionLimit::max_ratio`]. Real layers measured 2 to 10 times (binaries, docs, headers), a
/// tar of 100000 empty files 57 times with zstd -3 and 96 with zstd -19; zeros reach 1030 (gzip) and
/// 32000 (zstd). 200 leaves real layers twice the headroom of the worst one seen and stops every bomb.
pub const DEFAULT_MAX_EXPANSION: u64 = 200;

/// Default [`ExpansionLimit::allowance`]: output this small is never refused by the ratio, since small
/// tars are mostly header and padding zeros and compress a hundred times or more.
pub const EXPANSION_ALLOWANCE: u64 = 64 << 20;

const GZIP_MAGIC_FIRST: u8 = 0x1f;
const ZSTD_MAGIC_FIRST: u8 = 0x28;
/// Skippable zstd frames start with 0x184D2A50..=0x184D2A5F, little-endian: first byte 0x50..=0x5f.
const ZSTD_SKIPPABLE_FIRST: std::ops::RangeInclusive<u8> = 0x50..=0x5f;

/// How far one layer or archive may expand when decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpansionLimit {
    /// Most decompressed bytes per compressed byte (`--max-layer-expansion`); 0 turns the ratio off.
    pub max_ratio: u64,
    /// Most decompressed bytes in all, whatever the ratio (`--max-layer-size`); `None` for no cap.
    pub max_size: Option<u64>,
    /// Decompressed bytes always allowed, whatever the ratio (still capped by `max_size`).
    pub allowance: u64,
}

impl Default for ExpansionLimit {
    fn default() -> Self {
        ExpansionLimit {
            max_ratio: DEFAULT_MAX_EXPANSION,
            max_size: None,
            allowance: EXPANSION_ALLOWANCE,
        }
    }
}

impl ExpansionLimit {
    /// The most bytes a stream of `compressed` bytes may decompress to.
    pub fn budget(&self, compressed: u64) -> u64 {
        let by_ratio = match self.max_ratio {
            0 => u64::MAX,
            r => compressed.saturating_mul(r).max(self.allowance),
        };
        by_ratio.min(self.max_size.unwrap_or(u64::MAX))
    }
}

/// Why a stream was refused while decompressing; carried inside the [`io::Error`] a read returns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressError {
    /// The stream expanded past the ratio bound.
    #[error(
        "decompresses to more than {budget} bytes, over {ratio} times its {compressed} compressed bytes \
         (a decompression bomb?); if it is trusted, raise the bound with `--max-layer-expansion`"
    )]
    Expansion {
        /// The compressed size.
        compressed: u64,
        /// The ratio bound.
        ratio: u64,
        /// The bytes allowed.
        budget: u64,
    },
    /// The stream expanded past the absolute cap.
    #[error(
        "decompresses to more than {max_size} bytes, the bound `--max-layer-size` sets; raise it if the \
         image is trusted"
    )]
    TooLarge {
        /// The cap.
        max_size: u64,
    },
    /// More compressed bytes than expected.
    #[error("is larger than the {expected} bytes its descriptor says")]
    Longer {
        /// The size expected.
        expected: u64,
    },
    /// Fewer compressed bytes than expected.
    #[error("ends after {actual} bytes, but its descriptor says {expected}")]
    Shorter {
        /// The bytes read.
        actual: u64,
        /// The size expected.
        expected: u64,
    },
    /// Bytes after the end of the compressed stream that start no further member or frame.
    #[error("has data after the end of its {format} stream that is not another {unit}")]
    Trailing {
        /// `gzip` or `zstd`.
        format: &'static str,
        /// `gzip member` or `zstd frame`.
        unit: &'static str,
    },
}

impl From<DecompressError> for io::Error {
    fn from(e: DecompressError) -> Self {
        let kind = match e {
            DecompressError::Shorter { .. } => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Reads exactly `expected` bytes from `inner`, failing at the first byte more or at an early end.
struct SizeGuard<R> {
    inner: R,
    read: u64,
    expected: u64,
}

impl<R: Read> Read for SizeGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // One byte past the end is asked for so that a longer stream shows itself.
        let room = self.expected.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.expected {
            return Err(DecompressError::Longer {
                expected: self.expected,
            }
            .into());
        }
        if n == 0 && self.read < self.expected {
            return Err(DecompressError::Shorter {
                actual: self.read,
                expected: self.expected,
            }
            .into());
        }
        Ok(n)
    }
}

type Source<'a> = Box<dyn BufRead + 'a>;

/// gzip members one after the other; anything after a member that does not start another is refused.
struct GzipMembers<'a> {
    current: Option<flate2::bufread::GzDecoder<Source<'a>>>,
}

impl Read for GzipMembers<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(member) = self.current.take() else {
                return Ok(0);
            };
            let mut rest = member.into_inner();
            match rest.fill_buf()?.first() {
                None => return Ok(0),
                Some(&GZIP_MAGIC_FIRST) => {
                    self.current = Some(flate2::bufread::GzDecoder::new(rest));
                }
                Some(_) => {
                    return Err(DecompressError::Trailing {
                        format: "gzip",
                        unit: "gzip member",
                    }
                    .into());
                }
            }
        }
    }
}

/// zstd frames (skippable ones included) one after the other; anything else after a frame is refused.
struct ZstdFrames<'a> {
    current: Option<zstd::stream::read::Decoder<'static, Source<'a>>>,
}

impl<'a> ZstdFrames<'a> {
    fn frame(source: Source<'a>) -> io::Result<zstd::stream::read::Decoder<'static, Source<'a>>> {
        Ok(zstd::stream::read::Decoder::with_buffer(source)?.single_frame())
    }
}

impl Read for ZstdFrames<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(frame) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = frame.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(frame) = self.current.take() else {
                return Ok(0);
            };
            let mut rest = frame.finish();
            match rest.fill_buf()?.first() {
                None => return Ok(0),
                Some(&b) if b == ZSTD_MAGIC_FIRST || ZSTD_SKIPPABLE_FIRST.contains(&b) => {
                    self.current = Some(Self::frame(rest)?);
                }
                Some(_) => {
                    return Err(DecompressError::Trailing {
                        format: "zstd",
                        unit: "zstd frame",
                    }
                    .into());
                }
            }
        }
    }
}

/// The decompressed bytes of one layer or archive, bounded by an [`ExpansionLimit`]; see the module docs.
pub struct Decompressed<'a> {
    decoder: Box<dyn Read + 'a>,
    compression: Compression,
    compressed: u64,
    limit: ExpansionLimit,
    budget: u64,
    out: u64,
}

impl Decompressed<'_> {
    /// The compression detected (with default levels).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Decompressed bytes read so far.
    pub fn bytes_out(&self) -> u64 {
        self.out
    }

    /// Reads (and checks) the rest of the stream, for consumers that stop early, and returns the total
    /// decompressed size.
    pub fn finish(mut self) -> io::Result<u64> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.out)
    }

    fn over_budget(&self) -> DecompressError {
        match self.limit.max_size {
            Some(max_size) if max_size == self.budget => DecompressError::TooLarge { max_size },
            _ => DecompressError::Expansion {
                compressed: self.compressed,
                ratio: self.limit.max_ratio,
                budget: self.budget,
            },
        }
    }
}

impl Read for Decompressed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out > self.budget {
            return Err(self.over_budget().into());
        }
        let n = self.decoder.read(buf)?;
        self.out += n as u64;
        if self.out > self.budget {
            return Err(self.over_budget().into());
        }
        Ok(n)
    }
}

/// Returns the decompressed stream of `reader`, a blob of exactly `size` bytes, detecting gzip, zstd or
/// plain data by its magic bytes and bounded by `limit`.
///
/// Errors here only when the first bytes cannot be read or the zstd decoder cannot be created; every other
/// refusal (see the module docs) is an [`io::Error`] from a read, carrying a [`DecompressError`].
pub fn decompressing_reader<'a, R: Read + 'a>(
    reader: R,
    size: u64,
    limit: ExpansionLimit,
) -> io::Result<Decompressed<'a>> {
    let mut guard = SizeGuard {
        inner: reader,
        read: 0,
        expected: size,
    };
    let mut magic = [0u8; 4];
    let mut filled = 0;
    while filled < magic.len() {
        match guard.read(&mut magic[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let prefix = &magic[..filled];
    let compression = Compression::detect(prefix);
    let source: Source<'a> = Box::new(BufReader::with_capacity(
        64 * 1024,
        Cursor::new(prefix.to_vec()).chain(guard),
    ));
    let decoder: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(source),
        Compression::Gzip { .. } => Box::new(GzipMembers {
            current: Some(flate2::bufread::GzDecoder::new(source)),
        }),
        Compression::Zstd { .. } => Box::new(ZstdFrames {
            current: Some(ZstdFrames::frame(source)?),
        }),
    };
    Ok(Decompressed {
        decoder,
        compression,
        compressed: size,
        limit,
        budget: limit.budget(size),
        out: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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

    fn read_all(blob: &[u8], limit: ExpansionLimit) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decompressing_reader(blob, blob.len() as u64, limit)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn inner(e: &io::Error) -> Option<&DecompressError> {
        e.get_ref()
            .and_then(|e| e.downcast_ref::<DecompressError>())
    }

    /// `members` gzip members of 1 MiB of zeros each: `members` MiB out of about `members` KiB, made in
    /// milliseconds by repeating one member (a bomb needs no gigabytes to build).
    fn gzip_bomb(members: usize) -> Vec<u8> {
        let one = compress(Compression::Gzip { level: 9 }, &vec![0u8; 1 << 20]);
        one.repeat(members)
    }

    const GZ: Compression = Compression::Gzip { level: 6 };
    const ZST: Compression = Compression::Zstd { level: 3 };

    #[test]
    fn every_compression_round_trips_through_the_detecting_reader() {
        let data = sample();
        for c in [Compression::None, GZ, ZST] {
            let blob = compress(c, &data);
            let d = decompressing_reader(&blob[..], blob.len() as u64, ExpansionLimit::default())
                .unwrap();
            assert_eq!(d.compression().name(), c.name());
            assert!(d.finish().unwrap() == data.len() as u64, "{c}");
            assert!(
                read_all(&blob, ExpansionLimit::default()).unwrap() == data,
                "{c}"
            );
        }
    }

    #[test]
    fn short_and_empty_plain_streams_are_passed_through() {
        for data in [&b""[..], b"a", b"abc"] {
            assert_eq!(read_all(data, ExpansionLimit::default()).unwrap(), data);
        }
    }

    #[test]
    fn budget_is_the_ratio_times_the_size_with_an_allowance_and_a_cap() {
        let l = ExpansionLimit {
            max_ratio: 10,
            max_size: None,
            allowance: 1000,
        };
        assert_eq!(l.budget(50), 1000);
        assert_eq!(l.budget(500), 5000);
        let capped = ExpansionLimit {
            max_size: Some(2000),
            ..l
        };
        assert_eq!(capped.budget(500), 2000);
        let off = ExpansionLimit {
            max_ratio: 0,
            ..ExpansionLimit::default()
        };
        assert_eq!(off.budget(1), u64::MAX);
        assert_eq!(ExpansionLimit::default().budget(1 << 20), 200 << 20);
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_ratio_bound_without_decompressing_it_all() {
        // 4 MiB of gzip that expands to 4 GiB: refused once 40 times its size has come out.
        let bomb = gzip_bomb(4096);
        assert!(bomb.len() < 5 << 20, "{}", bomb.len());
        let limit = ExpansionLimit {
            max_ratio: 10,
            max_size: None,
            allowance: 1 << 20,
        };
        let mut d = decompressing_reader(&bomb[..], bomb.len() as u64, limit).unwrap();
        let err = io::copy(&mut d, &mut io::sink()).unwrap_err();
        assert!(
            matches!(
                inner(&err),
                Some(DecompressError::Expansion { ratio: 10, .. })
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("--max-layer-expansion"), "{msg}");
        assert!(d.bytes_out() <= limit.budget(bomb.len() as u64) + (1 << 20));
        assert!(d.bytes_out() < 64 << 20, "{}", d.bytes_out());
    }

    #[test]
    fn a_zstd_bomb_is_refused_at_the_ratio_bound() {
        let bomb = compress(ZST, &vec![0u8; 32 << 20]);
        let limit = ExpansionLimit {
            max_ratio: 100,
            max_size: None,
            allowance: 1 << 20,
        };
        let err = read_all(&bomb, limit).unwrap_err();
        assert!(
            matches!(inner(&err), Some(DecompressError::Expansion { .. })),
            "{err}"
        );
        // The default bound stops it too: 32 MiB from about 1 KiB is far past 200 times.
        let default = ExpansionLimit {
            allowance: 1 << 20,
            ..ExpansionLimit::default()
        };
        assert!(read_all(&bomb, default).is_err());
    }

    #[test]
    fn the_absolute_cap_refuses_even_a_modest_ratio_and_names_its_flag() {
        let data = sample();
        let blob = compress(GZ, &data);
        let limit = ExpansionLimit {
            max_size: Some(1 << 20),
            ..ExpansionLimit::default()
        };
        let err = read_all(&blob, limit).unwrap_err();
        assert_eq!(
            inner(&err),
            Some(&DecompressError::TooLarge { max_size: 1 << 20 })
        );
        assert!(err.to_string().contains("--max-layer-size"), "{err}");
        // A plain stream is held to the cap as well.
        assert!(read_all(&data, limit).is_err());
    }

    /// Text-like bytes that compress about as well as a real layer (a few times).
    fn text() -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b"etaoin shrdlu\n"[(x % 14) as usize]
            })
            .collect()
    }

    #[test]
    fn a_real_layer_and_a_turned_off_ratio_pass() {
        let data = text();
        let blob = compress(GZ, &data);
        let strict = ExpansionLimit {
            max_ratio: 20,
            max_size: None,
            allowance: 0,
        };
        assert!(read_all(&blob, strict).unwrap() == data);
        let bomb = gzip_bomb(8);
        let off = ExpansionLimit {
            max_ratio: 0,
            max_size: None,
            allowance: 0,
        };
        assert_eq!(read_all(&bomb, off).unwrap().len(), 8 << 20);
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_are_read_through() {
        for c in [GZ, ZST] {
            let mut blob = compress(c, b"hello ");
            blob.extend(compress(c, b"world"));
            assert_eq!(
                read_all(&blob, ExpansionLimit::default()).unwrap(),
                b"hello world",
                "{c}"
            );
        }
        // A skippable zstd frame (magic 0x184D2A50, 4-byte length) between two frames is skipped.
        let mut blob = compress(ZST, b"a");
        blob.extend([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        blob.extend(compress(ZST, b"b"));
        assert_eq!(read_all(&blob, ExpansionLimit::default()).unwrap(), b"ab");
    }

    #[test]
    fn trailing_garbage_after_a_gzip_stream_or_a_zstd_frame_is_refused() {
        for (c, format) in [(GZ, "gzip"), (ZST, "zstd")] {
            for garbage in [&b"garbage"[..], &[0u8; 512][..]] {
                let mut blob = compress(c, &sample()[..4096]);
                blob.extend_from_slice(garbage);
                let err = read_all(&blob, ExpansionLimit::default()).unwrap_err();
                assert!(
                    matches!(inner(&err), Some(DecompressError::Trailing { format: f, .. }) if *f == format),
                    "{c}: {err}"
                );
                // A consumer that stops early learns it from finish().
                let mut d =
                    decompressing_reader(&blob[..], blob.len() as u64, ExpansionLimit::default())
                        .unwrap();
                d.read_exact(&mut [0u8; 100]).unwrap();
                assert!(d.finish().is_err(), "{c}");
            }
        }
    }

    #[test]
    fn a_blob_larger_or_smaller_than_its_descriptor_is_refused() {
        let bomb = gzip_bomb(64);
        // Told it is 1 KiB, the reader stops at byte 1025 having decompressed at most a member's worth.
        let mut d = decompressing_reader(&bomb[..], 1024, ExpansionLimit::default()).unwrap();
        let err = io::copy(&mut d, &mut io::sink()).unwrap_err();
        assert_eq!(
            inner(&err),
            Some(&DecompressError::Longer { expected: 1024 })
        );
        assert!(d.bytes_out() <= 2 << 20, "{}", d.bytes_out());
        let data = b"plain bytes";
        let d = decompressing_reader(&data[..], 100, ExpansionLimit::default()).unwrap();
        let err = d.finish().unwrap_err();
        assert_eq!(
            inner(&err),
            Some(&DecompressError::Shorter {
                actual: data.len() as u64,
                expected: 100
            })
        );
    }
}
