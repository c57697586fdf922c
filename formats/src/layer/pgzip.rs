//! Block-parallel gzip whose bytes depend only on the input and the level, never on the thread count, and that
//! can take unchanged blocks from an earlier blob instead of deflating them again.
//!
//! The uncompressed stream is cut into blocks where a rolling (gear) hash of the last 64 bytes says so
//! (content-defined chunking: at least [`PGZIP_MIN_BLOCK`], about [`PGZIP_BLOCK_SIZE`] on average, at most
//! [`PGZIP_MAX_BLOCK`]), so an edit that shifts every later byte moves only the boundaries next to it: a little
//! after the edit the cuts fall on the same bytes again. Each block is deflated on its own (raw deflate, primed
//! with the last 32 KiB of the block before it, as pigz does) and ends with a sync flush, so it stops on a byte
//! boundary and the blocks concatenate into one valid deflate stream; the last block ends the stream. The CRC-32
//! of each block is computed beside its deflate and combined in order; the gzip header is fixed (mtime 0, no
//! name, OS byte 255). Since a block's bytes are a function of its own input and the previous block's tail, one
//! thread or sixteen give the same blob, and every gzip reader (gzip, Go's compress/gzip, flate2) sees one
//! ordinary member. zlib-rs picks SIMD code by CPU only to compare match lengths and slide its window, which
//! compute the same results, so the bytes do not depend on the CPU either.
//!
//! **Reuse.** The writer records a [`BlockIndex`]: per block the sha256 of (primer + block bytes + whether it
//! is the last), its length, CRC-32 and where its compressed bytes are in the blob. Given the previous blob of
//! the same build step and its index ([`PreviousBlob`]), a block whose key is in that index is copied from the
//! previous blob instead of deflated: the bytes are the ones deflate would produce, so the output is identical
//! to a compression from scratch.
//!
//! Blocks go to a pool of worker threads (one per core by default) through a bounded window, so memory stays at a
//! few blocks per worker; compressed blocks are written to the inner writer in order on the caller's thread, where
//! the layer writer also hashes (diff_id before, blob digest after), keeping the workers on deflate alone.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, Digest};

/// Average uncompressed bytes per independently deflated block (the content-defined cuts aim here).
pub const PGZIP_BLOCK_SIZE: usize = 1 << 20;
/// The shortest block (except the last).
pub const PGZIP_MIN_BLOCK: usize = PGZIP_BLOCK_SIZE / 4;
/// The longest block: a cut is forced here when the hash found none.
pub const PGZIP_MAX_BLOCK: usize = PGZIP_BLOCK_SIZE * 4;
/// Version of the block format recorded in a [`BlockIndex`]: an index of another version is never reused.
pub const PGZIP_INDEX_VERSION: u32 = 1;
/// How much of the previous block primes the next one's dictionary (deflate's whole window).
const DICTIONARY: usize = 32 * 1024;
/// The gear hash is shifted left by one per byte, so it depends on this many bytes only.
const GEAR_WINDOW: usize = 64;
/// Order-0 entropy (bits per byte) above which a block is stored rather than deflated: random or already
/// compressed bytes, where deflate at level 6 spends its time finding nothing (a 64 KiB window of matches can
/// save at most a few bytes at this entropy).
const STORE_ABOVE_BITS: f64 = 7.99;
/// Blocks shorter than this are always deflated: their entropy estimate is too noisy.
const STORE_MIN_BLOCK: usize = 64 * 1024;
/// Blocks in flight per worker: enough to keep every worker busy while the caller writes finished blocks.
const WINDOW_PER_WORKER: usize = 2;

/// The gear table: 256 fixed pseudo-random words (splitmix64 from a constant seed), part of the format.
const GEAR: [u64; 256] = gear_table();

const fn gear_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut state: u64 = 0x5EA1_05B1_0C6C_D0C5;
    let mut i = 0;
    while i < 256 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
}

/// A mask of the `bits` highest bits (the gear hash's high bits depend on the most bytes).
fn high_bits(bits: u32) -> u64 {
    match bits {
        0 => 0,
        b if b >= 64 => !0,
        b => !0u64 << (64 - b),
    }
}

/// Where blocks are cut, derived from the average size alone (FastCDC's normalized chunking: a harder mask
/// before the average, an easier one after).
#[derive(Debug, Clone, Copy)]
struct Chunking {
    min: usize,
    avg: usize,
    max: usize,
    hash_from: usize,
    hard: u64,
    easy: u64,
}

impl Chunking {
    fn new(avg: usize) -> Chunking {
        let avg = avg.max(1);
        let min = (avg / 4).max(1);
        let bits = avg.ilog2();
        Chunking {
            min,
            avg,
            max: avg.saturating_mul(4),
            hash_from: min.saturating_sub(GEAR_WINDOW),
            hard: high_bits(bits + 1),
            easy: high_bits(bits.saturating_sub(1)),
        }
    }
}

/// One block of a gzip blob, as recorded in its [`BlockIndex`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockRecord {
    /// sha256 of the primer (the previous block's last 32 KiB), the block's bytes and a last-block flag byte.
    pub key: Digest,
    /// Uncompressed length.
    pub len: u64,
    /// CRC-32 of the uncompressed bytes.
    pub crc: u32,
    /// Offset of the compressed bytes in the blob.
    pub offset: u64,
    /// Length of the compressed bytes.
    pub compressed_len: u64,
}

/// The blocks of one gzip blob written by [`ParallelGzipWriter`], in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockIndex {
    /// [`PGZIP_INDEX_VERSION`] when written.
    pub version: u32,
    /// The deflate level of every block.
    pub level: u32,
    /// The blocks in stream order.
    pub blocks: Vec<BlockRecord>,
}

/// An earlier blob and its index, whose blocks a new stream may copy instead of deflating them.
#[derive(Debug)]
pub struct PreviousBlob {
    file: File,
    index: BlockIndex,
}

impl PreviousBlob {
    /// The blob open for reading and the index it was written with. Returns `None` when the index does not
    /// describe the file (another version, or blocks beyond its end): such a blob is never reused.
    pub fn new(file: File, index: BlockIndex) -> Option<PreviousBlob> {
        let size = file.metadata().ok()?.len();
        let fits = index.blocks.iter().all(|b| {
            b.offset
                .checked_add(b.compressed_len)
                .is_some_and(|end| end <= size)
        });
        (index.version == PGZIP_INDEX_VERSION && fits).then_some(PreviousBlob { file, index })
    }
}

/// What a finished stream wrote: the inner writer back, the blob's block index, and how many blocks were
/// copied from a [`PreviousBlob`].
#[derive(Debug)]
pub struct FinishedGzip<W> {
    /// The inner writer.
    pub inner: W,
    /// The blocks of the blob just written.
    pub index: BlockIndex,
    /// Blocks copied from the previous blob rather than deflated.
    pub reused: u64,
}

/// The blocks of a previous blob by key, shared with the workers.
struct Reusable {
    file: File,
    by_key: HashMap<Digest, BlockRecord>,
}

/// One block to compress.
struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    level: flate2::Compression,
    reusable: Option<Arc<Reusable>>,
    reply: mpsc::Sender<io::Result<Deflated>>,
}

/// A compressed block, the CRC-32 and key of its input, and whether it was copied.
struct Deflated {
    output: Vec<u8>,
    crc: Crc,
    key: Digest,
    len: u64,
    reused: bool,
}

/// Where a block's result will come from: a worker, or computed inline when there is one thread.
enum Pending {
    Worker(mpsc::Receiver<io::Result<Deflated>>),
    Ready(io::Result<Deflated>),
}

/// A gzip encoder that deflates content-defined blocks in parallel; see the module docs. End it with
/// [`ParallelGzipWriter::finish`] (or [`ParallelGzipWriter::finish_with_index`]): dropping it loses the end of
/// the stream.
///
/// [`Write::flush`] writes the blocks already compressed but never cuts the current block short, so flushing
/// does not change the output bytes.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: flate2::Compression,
    chunking: Chunking,
    block: Vec<u8>,
    hash: u64,
    dictionary: Vec<u8>,
    in_flight: VecDeque<Pending>,
    threads: usize,
    window: usize,
    /// Started with the first block that is not the last: a layer of one block never starts a thread.
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    crc: Crc,
    header_written: bool,
    reusable: Option<Arc<Reusable>>,
    index: BlockIndex,
    written: u64,
    reused: u64,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// An encoder at `level` (0..=9) with blocks of [`PGZIP_BLOCK_SIZE`] on average and one worker per
    /// available core.
    pub fn new(inner: W, level: u32) -> Self {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(inner, level, PGZIP_BLOCK_SIZE, threads)
    }

    /// An encoder with an explicit average block size (at least 1 byte; blocks are a quarter to four times
    /// it) and worker count (1 deflates on the caller's thread). The output depends on `block_size` and
    /// `level`, never on `threads`.
    pub fn with_threads(inner: W, level: u32, block_size: usize, threads: usize) -> Self {
        let chunking = Chunking::new(block_size);
        let threads = threads.max(1);
        let level = level.min(9);
        ParallelGzipWriter {
            inner,
            level: flate2::Compression::new(level),
            chunking,
            block: Vec::with_capacity(chunking.avg.min(PGZIP_MAX_BLOCK)),
            hash: 0,
            dictionary: Vec::new(),
            in_flight: VecDeque::new(),
            threads,
            window: threads * WINDOW_PER_WORKER,
            jobs: None,
            workers: Vec::new(),
            crc: Crc::new(),
            header_written: false,
            reusable: None,
            index: BlockIndex {
                version: PGZIP_INDEX_VERSION,
                level,
                blocks: Vec::new(),
            },
            written: 0,
            reused: 0,
        }
    }

    /// Copies blocks found in `previous` instead of deflating them. An index written at another level is
    /// ignored. The output bytes are the same with or without it.
    pub fn reusing(mut self, previous: PreviousBlob) -> Self {
        if previous.index.level == self.index.level {
            let by_key = previous
                .index
                .blocks
                .into_iter()
                .map(|b| (b.key.clone(), b))
                .collect();
            self.reusable = Some(Arc::new(Reusable {
                file: previous.file,
                by_key,
            }));
        }
        self
    }

    /// Compresses what is left, writes the end of the stream (CRC-32 and length) and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.finish_with_index()?.inner)
    }

    /// Like [`ParallelGzipWriter::finish`], also returning the blob's block index and the count of blocks
    /// copied from the previous blob.
    pub fn finish_with_index(mut self) -> io::Result<FinishedGzip<W>> {
        self.submit(true)?;
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.inner.write_all(&trailer)?;
        self.jobs = None;
        for worker in self.workers.drain(..) {
            worker
                .join()
                .map_err(|_| io::Error::other("a gzip worker thread panicked"))?;
        }
        Ok(FinishedGzip {
            inner: self.inner,
            index: self.index,
            reused: self.reused,
        })
    }

    /// Looks for a cut point in `chunk`, the bytes about to be appended to the current block: the count of
    /// bytes of `chunk` that end the block, or `None` when the whole chunk belongs to it.
    fn find_cut(&mut self, chunk: &[u8]) -> Option<usize> {
        let c = self.chunking;
        let start = self.block.len();
        let mut hash = self.hash;
        for (i, &byte) in chunk
            .iter()
            .enumerate()
            .skip(c.hash_from.saturating_sub(start))
        {
            hash = (hash << 1).wrapping_add(GEAR[usize::from(byte)]);
            let len = start + i + 1;
            if len >= c.min {
                let mask = if len < c.avg { c.hard } else { c.easy };
                if hash & mask == 0 {
                    return Some(i + 1);
                }
            }
        }
        self.hash = hash;
        None
    }

    /// Hands the current block to a worker (or compresses it here with one thread).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight.len() >= self.window {
            self.write_oldest()?;
        }
        self.hash = 0;
        let input = std::mem::replace(
            &mut self.block,
            Vec::with_capacity(self.chunking.avg.min(PGZIP_MAX_BLOCK)),
        );
        let dictionary = std::mem::take(&mut self.dictionary);
        if !last {
            self.dictionary = input[input.len().saturating_sub(DICTIONARY)..].to_vec();
            if self.jobs.is_none() && self.threads > 1 {
                self.start_workers();
            }
        }
        let job = Job {
            input,
            dictionary,
            last,
            level: self.level,
            reusable: self.reusable.clone(),
            reply: mpsc::channel().0,
        };
        let pending = match &self.jobs {
            None => Pending::Ready(compress_block(&job)),
            Some(jobs) => {
                let (reply, result) = mpsc::channel();
                jobs.send(Job { reply, ..job })
                    .map_err(|_| io::Error::other("the gzip worker threads stopped"))?;
                Pending::Worker(result)
            }
        };
        self.in_flight.push_back(pending);
        Ok(())
    }

    /// Starts the worker threads.
    fn start_workers(&mut self) {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        self.workers = (0..self.threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                thread::spawn(move || work(&rx))
            })
            .collect();
        self.jobs = Some(tx);
    }

    /// Waits for the oldest block in flight, writes it out and records it in the index.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(pending) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let block = match pending {
            Pending::Ready(result) => result?,
            Pending::Worker(rx) => rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread stopped mid-block"))??,
        };
        if !self.header_written {
            let header = header(self.level);
            self.inner.write_all(&header)?;
            self.written = header.len() as u64;
            self.header_written = true;
        }
        self.inner.write_all(&block.output)?;
        self.crc.combine(&block.crc);
        self.index.blocks.push(BlockRecord {
            key: block.key,
            len: block.len,
            crc: block.crc.sum(),
            offset: self.written,
            compressed_len: block.output.len() as u64,
        });
        self.written += block.output.len() as u64;
        self.reused += u64::from(block.reused);
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let room = self.chunking.max - self.block.len();
            let chunk = &rest[..rest.len().min(room)];
            match self.find_cut(chunk) {
                Some(n) => {
                    self.block.extend_from_slice(&chunk[..n]);
                    rest = &rest[n..];
                    self.submit(false)?;
                }
                None => {
                    self.block.extend_from_slice(chunk);
                    rest = &rest[chunk.len()..];
                    if self.block.len() == self.chunking.max {
                        self.submit(false)?;
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        while matches!(self.in_flight.front(), Some(Pending::Ready(_))) {
            self.write_oldest()?;
        }
        self.inner.flush()
    }
}

/// A worker: compresses blocks until the job channel closes.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        let result = compress_block(&job);
        // The writer may have been dropped mid-stream; nobody is waiting for this block then.
        let _ = job.reply.send(result);
    }
}

/// The fixed gzip header: no mtime, no name, XFL as gzip sets it for the level, OS 255 ("unknown").
fn header(level: flate2::Compression) -> [u8; 10] {
    let xfl = match level.level() {
        9 => 2,
        1 => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// The reuse key of a block: sha256 of its primer, its bytes and whether it ends the stream.
fn block_key(dictionary: &[u8], input: &[u8], last: bool) -> Digest {
    let mut h = Algorithm::Sha256.hasher();
    h.update(dictionary);
    h.update(input);
    h.update(&[u8::from(last)]);
    h.finish()
}

/// Compresses one block: copied from the previous blob when its key, length and CRC are there, deflated
/// otherwise.
fn compress_block(job: &Job) -> io::Result<Deflated> {
    let mut crc = Crc::new();
    crc.update(&job.input);
    let key = block_key(&job.dictionary, &job.input, job.last);
    let len = job.input.len() as u64;
    if let Some(reusable) = &job.reusable
        && let Some(record) = reusable.by_key.get(&key)
        && record.len == len
        && record.crc == crc.sum()
    {
        let mut output =
            vec![0u8; usize::try_from(record.compressed_len).map_err(io::Error::other)?];
        reusable.file.read_exact_at(&mut output, record.offset)?;
        return Ok(Deflated {
            output,
            crc,
            key,
            len,
            reused: true,
        });
    }
    let output = deflate_block(&job.input, &job.dictionary, job.last, job.level)?;
    Ok(Deflated {
        output,
        crc,
        key,
        len,
        reused: false,
    })
}

/// Deflates one block primed with `dictionary`: a sync flush at the end, or the end of the stream when `last`.
fn deflate_block(
    input: &[u8],
    dictionary: &[u8],
    last: bool,
    level: flate2::Compression,
) -> io::Result<Vec<u8>> {
    let level = if looks_incompressible(input) {
        flate2::Compression::none()
    } else {
        level
    };
    let mut deflate = Compress::new(level, false);
    if !dictionary.is_empty() && level.level() > 0 {
        deflate
            .set_dictionary(dictionary)
            .map_err(io::Error::other)?;
    }
    // zlib's bound for one call, plus room for the flush marker: usually one pass suffices.
    let mut output = Vec::with_capacity(input.len() + input.len() / 1000 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if output.len() == output.capacity() {
            output.reserve(64 * 1024);
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&input[consumed..], &mut output, flush)
            .map_err(io::Error::other)?;
        let all_in = deflate.total_in() as usize == input.len();
        let done = if last {
            status == Status::StreamEnd
        } else {
            all_in && output.len() < output.capacity()
        };
        if done {
            return Ok(output);
        }
    }
}

/// True when `block` is long enough and its byte histogram is flat enough that deflate would not shrink it.
/// The decision depends on the bytes alone, so it keeps the output independent of the machine.
fn looks_incompressible(block: &[u8]) -> bool {
    if block.len() < STORE_MIN_BLOCK {
        return false;
    }
    let mut counts = [0u64; 256];
    for &b in block {
        counts[usize::from(b)] += 1;
    }
    let n = block.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    bits > STORE_ABOVE_BITS
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::{Command, Stdio};

    use proptest::prelude::*;

    use super::*;

    fn compress(data: &[u8], block: usize, threads: usize) -> Vec<u8> {
        let mut w = ParallelGzipWriter::with_threads(Vec::new(), 6, block, threads);
        // Odd write sizes: block boundaries must not depend on how the caller slices its writes.
        for chunk in data.chunks(7919) {
            w.write_all(chunk).unwrap();
            w.flush().unwrap();
        }
        w.finish().unwrap()
    }

    fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Alternate text-like runs and noise so both matches and literals cross block boundaries.
            if (out.len() / 50_000) % 2 == 0 {
                out.extend_from_slice(format!("line {} of a manifest\n", x % 97).as_bytes());
            } else {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn output_is_the_same_for_one_two_and_sixteen_threads() {
        let data = mixed(3_500_000, 7);
        let one = compress(&data, PGZIP_BLOCK_SIZE, 1);
        assert_eq!(one, compress(&data, PGZIP_BLOCK_SIZE, 2));
        assert_eq!(one, compress(&data, PGZIP_BLOCK_SIZE, 16));
        assert_eq!(gunzip(&one), data);
        // Priming each block with its predecessor's tail keeps the ratio within 1% of one zlib stream.
        let mut single = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len();
        assert!(
            one.len() <= single + single / 100,
            "{} vs {single} bytes",
            one.len()
        );
    }

    #[test]
    fn header_is_fixed_and_trailer_holds_crc_and_length() {
        let gz = compress(b"hello", 4, 3);
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut crc = Crc::new();
        crc.update(b"hello");
        let n = gz.len();
        assert_eq!(&gz[n - 8..n - 4], &crc.sum().to_le_bytes());
        assert_eq!(&gz[n - 4..], &5u32.to_le_bytes());
    }

    #[test]
    fn empty_and_block_multiple_inputs_make_valid_streams() {
        for data in [Vec::new(), vec![b'a'; 4096], mixed(8192, 3)] {
            let gz = compress(&data, 4096, 2);
            assert_eq!(gunzip(&gz), data);
            let mut multi = Vec::new();
            flate2::read::MultiGzDecoder::new(gz.as_slice())
                .read_to_end(&mut multi)
                .unwrap();
            assert_eq!(multi, data);
        }
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn random_blocks_are_stored_and_text_blocks_deflated() {
        let random = noise(PGZIP_BLOCK_SIZE, 9);
        let text: Vec<u8> = (0..)
            .flat_map(|i: u64| format!("line {} of a manifest\n", i % 997).into_bytes())
            .take(PGZIP_BLOCK_SIZE)
            .collect();
        assert!(looks_incompressible(&random));
        assert!(!looks_incompressible(&text));
        assert!(!looks_incompressible(&random[..STORE_MIN_BLOCK - 1]));
        let data = [random.as_slice(), text.as_slice()].concat();
        let gz = compress(&data, PGZIP_BLOCK_SIZE, 2);
        assert_eq!(gunzip(&gz), data);
        // Stored: the random block costs 5 bytes per 64 KiB; the text shrinks several times.
        assert!(gz.len() > random.len(), "{}", gz.len());
        assert!(gz.len() < random.len() + text.len() / 4, "{}", gz.len());
    }

    #[test]
    fn gnu_gzip_accepts_the_stream() {
        let data = mixed(2_300_000, 11);
        let gz = compress(&data, 256 * 1024, 3);
        let mut child = Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip is installed");
        let mut stdin = child.stdin.take().unwrap();
        let feeder = thread::spawn(move || stdin.write_all(&gz));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data);
    }

    #[test]
    fn the_layer_decompressor_reads_the_stream() {
        let data = mixed(600_000, 5);
        let gz = compress(&data, 100_000, 2);
        let mut r = crate::layer::decompressing_reader(
            gz.as_slice(),
            gz.len() as u64,
            crate::layer::ExpansionLimit::default(),
        )
        .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    fn compress_indexed(
        data: &[u8],
        threads: usize,
        previous: Option<(&[u8], &BlockIndex)>,
    ) -> FinishedGzip<Vec<u8>> {
        let mut w = ParallelGzipWriter::with_threads(Vec::new(), 6, PGZIP_BLOCK_SIZE, threads);
        if let Some((blob, index)) = previous {
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(blob).unwrap();
            w = w.reusing(PreviousBlob::new(file, index.clone()).expect("the index fits the blob"));
        }
        for chunk in data.chunks(65_537) {
            w.write_all(chunk).unwrap();
        }
        w.finish_with_index().unwrap()
    }

    #[test]
    fn blocks_are_cut_by_content_within_the_bounds() {
        let data = mixed(12_000_000, 21);
        let done = compress_indexed(&data, 2, None);
        let lens: Vec<u64> = done.index.blocks.iter().map(|b| b.len).collect();
        assert_eq!(lens.iter().sum::<u64>(), data.len() as u64);
        let (last, body) = lens.split_last().unwrap();
        assert!(*last <= PGZIP_MAX_BLOCK as u64);
        for len in body {
            assert!(
                (PGZIP_MIN_BLOCK as u64..=PGZIP_MAX_BLOCK as u64).contains(len),
                "{lens:?}"
            );
        }
        // Content-defined, not fixed: the lengths vary, and average near the target.
        assert!(lens.iter().any(|&l| l != lens[0]), "{lens:?}");
        assert!((4..=24).contains(&lens.len()), "{lens:?}");
        // The index points at each block's compressed bytes, back to back after the 10-byte header.
        let mut at = 10;
        for b in &done.index.blocks {
            assert_eq!(b.offset, at);
            at += b.compressed_len;
        }
        assert_eq!(at + 8, done.inner.len() as u64);
        assert_eq!(done.reused, 0);
    }

    #[test]
    fn an_insert_shifts_few_blocks_and_reuse_gives_the_same_bytes_as_from_scratch() {
        let data = mixed(20_000_000, 33);
        let before = compress_indexed(&data, 2, None);
        let mut edited = data.clone();
        edited.splice(7_000_000..7_000_000, b"one more line\n".iter().copied());
        let scratch = compress_indexed(&edited, 1, None);
        for threads in [1, 2, 16] {
            let reused = compress_indexed(&edited, threads, Some((&before.inner, &before.index)));
            assert_eq!(reused.inner, scratch.inner, "{threads} threads");
            assert_eq!(reused.index, scratch.index);
            let total = scratch.index.blocks.len() as u64;
            // The block holding the insert and at most one or two after it are new; the rest are copied.
            assert!(
                reused.reused + 3 >= total && reused.reused < total,
                "{} of {total} reused",
                reused.reused
            );
        }
        assert_eq!(gunzip(&scratch.inner), edited);
        // An index of another level is ignored: nothing reused, same bytes.
        let mut w = ParallelGzipWriter::with_threads(Vec::new(), 1, PGZIP_BLOCK_SIZE, 2);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&before.inner).unwrap();
        w = w.reusing(PreviousBlob::new(file, before.index.clone()).unwrap());
        w.write_all(&data).unwrap();
        let other = w.finish_with_index().unwrap();
        assert_eq!(other.reused, 0);
        assert_eq!(gunzip(&other.inner), data);
    }

    #[test]
    fn an_index_that_does_not_fit_its_blob_is_refused() {
        let done = compress_indexed(&mixed(3_000_000, 2), 1, None);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&done.inner[..done.inner.len() / 2]).unwrap();
        assert!(PreviousBlob::new(file, done.index.clone()).is_none());
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&done.inner).unwrap();
        let mut index = done.index;
        index.version += 1;
        assert!(PreviousBlob::new(file, index).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn bytes_do_not_depend_on_threads_and_round_trip(
            data in proptest::collection::vec(prop_oneof![Just(b'a'), any::<u8>()], 0..20_000),
            block in 1usize..3000,
            threads in 2usize..6,
        ) {
            let one = compress(&data, block, 1);
            prop_assert_eq!(&one, &compress(&data, block, threads));
            prop_assert_eq!(gunzip(&one), data);
        }
    }
}
