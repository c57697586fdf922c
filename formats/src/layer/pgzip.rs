//! Block-parallel gzip whose bytes depend only on the input and the level, never on the thread count.
//!
//! The uncompressed stream is cut into fixed blocks of [`PGZIP_BLOCK_SIZE`] bytes. Each block is deflated on its
//! own (raw deflate, primed with the last 32 KiB of the block before it, as pigz does) and ends with a sync flush,
//! so it stops on a byte boundary and the blocks concatenate into one valid deflate stream; the last block ends
//! the stream. The CRC-32 of each block is computed beside its deflate and combined in order; the gzip header is
//! fixed (mtime 0, no name, OS byte 255). Since a block's bytes are a function of its own input and the previous
//! block's tail, one thread or sixteen give the same blob, and every gzip reader (gzip, Go's compress/gzip,
//! flate2) sees one ordinary member. zlib-rs picks SIMD code by CPU only to compare match lengths and slide its
//! window, which compute the same results, so the bytes do not depend on the CPU either.
//!
//! Blocks go to a pool of worker threads (one per core by default) through a bounded window, so memory stays at a
//! few blocks per worker; compressed blocks are written to the inner writer in order on the caller's thread, where
//! the layer writer also hashes (diff_id before, blob digest after), keeping the workers on deflate alone.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Crc, FlushCompress, Status};

/// Uncompressed bytes per independently deflated block.
pub const PGZIP_BLOCK_SIZE: usize = 1 << 20;
/// How much of the previous block primes the next one's dictionary (deflate's whole window).
const DICTIONARY: usize = 32 * 1024;
/// Order-0 entropy (bits per byte) above which a block is stored rather than deflated: random or already
/// compressed bytes, where deflate at level 6 spends its time finding nothing (a 64 KiB window of matches can
/// save at most a few bytes at this entropy).
const STORE_ABOVE_BITS: f64 = 7.99;
/// Blocks shorter than this are always deflated: their entropy estimate is too noisy.
const STORE_MIN_BLOCK: usize = 64 * 1024;
/// Blocks in flight per worker: enough to keep every worker busy while the caller writes finished blocks.
const WINDOW_PER_WORKER: usize = 2;

/// One block to deflate.
struct Job {
    input: Vec<u8>,
    dictionary: Vec<u8>,
    last: bool,
    level: flate2::Compression,
    reply: mpsc::Sender<io::Result<Deflated>>,
}

/// A deflated block and the CRC-32 of its input.
struct Deflated {
    output: Vec<u8>,
    crc: Crc,
}

/// Where a block's result will come from: a worker, or computed inline when there is one thread.
enum Pending {
    Worker(mpsc::Receiver<io::Result<Deflated>>),
    Ready(io::Result<Deflated>),
}

/// A gzip encoder that deflates fixed blocks in parallel; see the module docs. End it with
/// [`ParallelGzipWriter::finish`]: dropping it loses the end of the stream.
///
/// [`Write::flush`] writes the blocks already compressed but never cuts the current block short, so flushing
/// does not change the output bytes.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: flate2::Compression,
    block_size: usize,
    block: Vec<u8>,
    dictionary: Vec<u8>,
    in_flight: VecDeque<Pending>,
    threads: usize,
    window: usize,
    /// Started with the first block that is not the last: a layer of one block never starts a thread.
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    crc: Crc,
    header_written: bool,
}

impl<W: Write> ParallelGzipWriter<W> {
    /// An encoder at `level` (0..=9) with [`PGZIP_BLOCK_SIZE`] blocks and one worker per available core.
    pub fn new(inner: W, level: u32) -> Self {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(inner, level, PGZIP_BLOCK_SIZE, threads)
    }

    /// An encoder with an explicit block size (at least 1 byte) and worker count (1 deflates on the caller's
    /// thread). The output depends on `block_size` and `level`, never on `threads`.
    pub fn with_threads(inner: W, level: u32, block_size: usize, threads: usize) -> Self {
        let block_size = block_size.max(1);
        let threads = threads.max(1);
        ParallelGzipWriter {
            inner,
            level: flate2::Compression::new(level.min(9)),
            block_size,
            block: Vec::with_capacity(block_size),
            dictionary: Vec::new(),
            in_flight: VecDeque::new(),
            threads,
            window: threads * WINDOW_PER_WORKER,
            jobs: None,
            workers: Vec::new(),
            crc: Crc::new(),
            header_written: false,
        }
    }

    /// Compresses what is left, writes the end of the stream (CRC-32 and length) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
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
        Ok(self.inner)
    }

    /// Hands the current block to a worker (or deflates it here with one thread).
    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight.len() >= self.window {
            self.write_oldest()?;
        }
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(self.block_size));
        let dictionary = std::mem::take(&mut self.dictionary);
        if !last {
            self.dictionary = input[input.len().saturating_sub(DICTIONARY)..].to_vec();
            if self.jobs.is_none() && self.threads > 1 {
                self.start_workers();
            }
        }
        let pending = match &self.jobs {
            None => Pending::Ready(deflate_block(&input, &dictionary, last, self.level)),
            Some(jobs) => {
                let (reply, result) = mpsc::channel();
                jobs.send(Job {
                    input,
                    dictionary,
                    last,
                    level: self.level,
                    reply,
                })
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

    /// Waits for the oldest block in flight and writes it out.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(pending) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let deflated = match pending {
            Pending::Ready(result) => result?,
            Pending::Worker(rx) => rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread stopped mid-block"))??,
        };
        if !self.header_written {
            self.inner.write_all(&header(self.level))?;
            self.header_written = true;
        }
        self.inner.write_all(&deflated.output)?;
        self.crc.combine(&deflated.crc);
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.len() == self.block_size {
            self.submit(false)?;
        }
        let n = buf.len().min(self.block_size - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        while matches!(self.in_flight.front(), Some(Pending::Ready(_))) {
            self.write_oldest()?;
        }
        self.inner.flush()
    }
}

/// A worker: deflates blocks until the job channel closes.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        let result = deflate_block(&job.input, &job.dictionary, job.last, job.level);
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

/// Deflates one block primed with `dictionary`: a sync flush at the end, or the end of the stream when `last`.
fn deflate_block(
    input: &[u8],
    dictionary: &[u8],
    last: bool,
    level: flate2::Compression,
) -> io::Result<Deflated> {
    let mut crc = Crc::new();
    crc.update(input);
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
            return Ok(Deflated { output, crc });
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
