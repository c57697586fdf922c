//! The filesystem driver's appendable files (upload sessions' data), with its fast paths: batches written with
//! one vectored write that asks the kernel to drop the pages once written back (`RWF_DONTCACHE`), writeback
//! started every [`WRITEBACK_STEP`] and a background flush every [`FLUSH_STEP`], so the fsync at
//! [`Driver::seal`](super::Driver::seal) finds little left to do. A chunk is not fsynced by itself: once
//! committed it is in the page cache, which survives the server being killed; only a finished blob promises to
//! survive power loss (see the module docs of [`crate::storage`]). A cancelled chunk is cut off again
//! (`ftruncate` to where the writer started).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use formats::sys::{DontCacheWrite, start_writeback, write_at_dont_cache};

use super::UploadWriter;
use super::fs::{blocking, io_err, write_aside};
use crate::storage::Result;

/// Bytes written to an upload's data file between two requests to the kernel to start writing them to disk.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
/// Bytes of an upload's data file between two background flushes ([`BackgroundFlush`]).
const FLUSH_STEP: u64 = 64 * 1024 * 1024;

/// Writes batches at the end of an upload's data file. Every [`WRITEBACK_STEP`] it starts writeback of what it
/// wrote; every time the file grows past a multiple of [`FLUSH_STEP`] it asks for a [`BackgroundFlush`].
struct ChunkWriter {
    path: PathBuf,
    file: Arc<std::fs::File>,
    flush: BackgroundFlush,
    /// Where the next byte goes.
    end: u64,
    unflushed_from: u64,
}

impl ChunkWriter {
    /// Writes `frames` in order at the end (one write for them all, fewer and larger writebacks). Short and
    /// blocking.
    fn write(&mut self, frames: &[Bytes]) -> Result<()> {
        let len: u64 = frames.iter().map(|f| f.len() as u64).sum();
        write_dropping_cache(&self.file, frames, self.end).map_err(io_err("write", &self.path))?;
        let before = self.end;
        self.end += len;
        if self.end - self.unflushed_from >= WRITEBACK_STEP {
            start_writeback(
                &self.file,
                self.unflushed_from,
                self.end - self.unflushed_from,
            );
            self.unflushed_from = self.end;
        }
        if before / FLUSH_STEP != self.end / FLUSH_STEP {
            self.flush.request();
        }
        Ok(())
    }
}

/// An open upload data file: [`UploadWriter`] of the filesystem driver.
pub(super) struct FsWriter {
    /// Taken while a batch is written on a blocking thread.
    chunk: Option<ChunkWriter>,
    /// The data file, to cut a cancelled chunk off again.
    file: Arc<std::fs::File>,
    path: PathBuf,
    start: u64,
    state: PathBuf,
    saved: Option<Bytes>,
}

impl FsWriter {
    /// A writer adding to `file` (the data file at `path`, whose committed size is `start`); commits save the
    /// caller's state at `state`, whose last content was `saved`.
    pub(super) fn new(
        file: std::fs::File,
        path: PathBuf,
        start: u64,
        state: PathBuf,
        saved: Option<Bytes>,
    ) -> Self {
        let file = Arc::new(file);
        FsWriter {
            chunk: Some(ChunkWriter {
                flush: BackgroundFlush::new(file.clone()),
                path: path.clone(),
                file: file.clone(),
                end: start,
                unflushed_from: start,
            }),
            file,
            path,
            start,
            state,
            saved,
        }
    }

    fn chunk(&mut self) -> Result<ChunkWriter> {
        self.chunk
            .take()
            .ok_or_else(|| crate::storage::StorageError::Io {
                op: "write",
                path: self.path.display().to_string(),
                source: io::Error::other("an earlier write of this chunk failed"),
            })
    }
}

#[async_trait]
impl UploadWriter for FsWriter {
    fn start(&self) -> u64 {
        self.start
    }

    fn saved(&self) -> Option<Bytes> {
        self.saved.clone()
    }

    async fn write(&mut self, frames: Arc<[Bytes]>) -> Result<()> {
        let mut chunk = self.chunk()?;
        let (chunk, written) = tokio::task::spawn_blocking(move || {
            let written = chunk.write(&frames);
            (chunk, written)
        })
        .await
        .map_err(|e| crate::storage::StorageError::Io {
            op: "run upload writer",
            path: String::new(),
            source: io::Error::other(e),
        })?;
        self.chunk = Some(chunk);
        written
    }

    async fn commit(mut self: Box<Self>, state: Bytes) -> Result<u64> {
        let end = self.chunk()?.end;
        let at = self.state.clone();
        blocking(move || write_aside(&at, &state)).await?;
        Ok(end)
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        let (file, path, start) = (self.file, self.path, self.start);
        blocking(move || file.set_len(start).map_err(io_err("truncate", &path))).await
    }
}

/// Set once the kernel refused `RWF_DONTCACHE`: later writes go through the page cache as usual.
static DONTCACHE_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes all of `frames` in order from `offset` (one `pwritev2` for them all when it takes them), asking the
/// kernel to drop the pages from its cache once they are on disk (Linux 6.14+ `RWF_DONTCACHE`). Why: on
/// virtual machines whose balloon device reports free pages to the host, every fresh page-cache page faults on
/// the host, and writing uploads into an ever-growing page cache cost 1.2 to 2.5 CPU-s per GiB here; with the
/// written pages recycled it cost a third of that, and the disk finished sooner (50 fsynced files of 40 MiB, 5
/// at a time: 3.2 to 4.0 s against 4.3 to 4.7 s). The price: the first read of a blob after its upload comes
/// from disk. Kernels or filesystems without the flag get ordinary writes, and later writes do not ask again.
fn write_dropping_cache(file: &std::fs::File, frames: &[Bytes], mut offset: u64) -> io::Result<()> {
    use std::sync::atomic::Ordering;
    // Where the unwritten bytes start: frame index and bytes of it already written.
    let (mut first, mut skip) = (0usize, 0usize);
    while first < frames.len() && !DONTCACHE_REFUSED.load(Ordering::Relaxed) {
        let bufs: Vec<io::IoSlice<'_>> = frames[first..]
            .iter()
            .enumerate()
            .map(|(k, f)| io::IoSlice::new(if k == 0 { &f[skip..] } else { &f[..] }))
            .collect();
        let mut n = match write_at_dont_cache(file, &bufs, offset)? {
            DontCacheWrite::Written(0) => return Err(io::ErrorKind::WriteZero.into()),
            DontCacheWrite::Written(n) => n,
            DontCacheWrite::Unsupported => {
                DONTCACHE_REFUSED.store(true, Ordering::Relaxed);
                break;
            }
        };
        offset += n as u64;
        while first < frames.len() && n > 0 {
            let rest = frames[first].len() - skip;
            if n >= rest {
                (first, skip, n) = (first + 1, 0, n - rest);
            } else {
                (skip, n) = (skip + n, 0);
            }
        }
    }
    write_plainly(file, &frames[first..], skip, offset)
}

/// Writes `frames` (the first without its first `skip` bytes) in order from `offset`, through the page cache.
fn write_plainly(
    file: &std::fs::File,
    frames: &[Bytes],
    skip: usize,
    mut offset: u64,
) -> io::Result<()> {
    for (k, f) in frames.iter().enumerate() {
        let part = if k == 0 { &f[skip..] } else { &f[..] };
        std::os::unix::fs::FileExt::write_all_at(file, part, offset)?;
        offset += part.len() as u64;
    }
    Ok(())
}

/// Makes an upload's data durable while it is still arriving: `fdatasync` on a blocking thread of the runtime,
/// at most one at a time (a request while one runs is dropped; the next step asks again). On virtual disks the
/// fsync at commit otherwise waits for the host to write the whole blob from its cache (about 1.2 s per GiB
/// measured here, after the last byte); flushing as the data arrives overlaps that with the transfer, so the
/// commit waits for the last [`FLUSH_STEP`] at most. Best effort: errors surface at the commit's own fsync.
struct BackgroundFlush {
    file: Arc<std::fs::File>,
    running: Arc<std::sync::atomic::AtomicBool>,
    runtime: Option<tokio::runtime::Handle>,
}

impl BackgroundFlush {
    fn new(file: Arc<std::fs::File>) -> Self {
        BackgroundFlush {
            file,
            running: Arc::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Starts a flush unless one is running.
    fn request(&self) {
        use std::sync::atomic::Ordering;
        let Some(runtime) = &self.runtime else {
            return;
        };
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (file, running) = (self.file.clone(), self.running.clone());
        drop(runtime.spawn_blocking(move || {
            let _ignored = file.sync_data();
            running.store(false, Ordering::Release);
        }));
    }
}
