//! The filesystem backend, in the Docker Distribution layout (`docker/registry/v2/...`), so a distribution data
//! directory or a cluster image's `registry/` directory serves as is and distribution reads what we write.
//!
//! Upload sessions live in `repositories/<repo>/_uploads/<id>/` as a `data` file and a `startedat` file (RFC 3339
//! time, as distribution writes it) and a `sealos-hashstate` file: the running sha256 state saved after each
//! acknowledged chunk. After a restart the first request touching a session resumes the hash from that state,
//! reading only the bytes after it (all of them when the state is missing or describes more than the data), and
//! finishing such a session re-reads its data once, so bytes this process did not see are never trusted.
//!
//! A chunk is received on the request's task (a slow client holds no thread), hashed on one blocking thread and
//! written on another in short calls, frames gathered into writes of up to 2 MiB that ask the kernel to drop the
//! pages once written back (Linux `RWF_DONTCACHE`, where supported: see `write_dropping_cache`); it is not fsynced
//! by itself, but the kernel is asked to start writing it back every 8 MiB, and the file is flushed in the background every 64 MiB. Finishing a session fsyncs the data
//! file (by then nearly all durable already) and renames it to `blobs/<alg>/<xx>/<hex>/data`, so a blob appears
//! whole or not at all, and only once its digest is verified. When that blob is stored already, the upload is
//! verified and dropped unsynced, and the space it took is freed off the response path.

use std::collections::HashMap;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use formats::digest::{Algorithm, Digest, Hasher};
use formats::distribution::{DistributionPaths, link_text};
use formats::fsutil::{BeneathError, atomic_write, check_beneath, open_beneath};
use formats::time::rfc3339;
use futures_util::StreamExt;

use super::{BlobReader, ByteRange, ByteStream, Result, Storage, StorageError, UploadStatus};

/// Bytes per frame of a blob stream.
const READ_CHUNK: usize = 512 * 1024;

/// Storage in a directory holding (or to hold) `docker/registry/v2`.
///
/// Nothing below the directory is reached through a symlink: every path is checked component by component
/// ([`check_beneath`]) and files are opened with `O_NOFOLLOW` and checked to be regular files after opening
/// ([`open_beneath`]), so a tree that came from elsewhere (a cluster image's `registry/`) cannot make the
/// store read, list or write outside it. The directory itself may be a symlink.
pub struct FsStorage {
    paths: DistributionPaths,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    /// Blobs are hashed before they are first served ([`FsStorage::verify_on_first_read`]).
    verify: bool,
    /// Blobs hashed, with the identity of the file that was hashed and whether it matched (a blob found
    /// corrupt is refused at once until its file changes, not hashed again on every request).
    verified: Mutex<HashMap<Digest, (FileStamp, bool)>>,
    /// One verification at a time per blob: concurrent first reads wait for it instead of hashing again.
    verifying: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

/// What identifies the content of a blob file that was verified: a file replaced or changed since (another
/// inode, size, modification or change time) is hashed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// In-memory state of an upload session; `hasher` is `None` until loaded from disk.
#[derive(Default)]
struct Session {
    hasher: Option<Hasher>,
    offset: u64,
    /// The hash was resumed from a saved state after a restart: the bytes before that state were not seen by
    /// this process, so finishing re-reads the whole data once instead of trusting them (a power loss may have
    /// left them different from what was acknowledged).
    recheck_on_finish: bool,
}

pub(super) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

pub(super) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Runs blocking filesystem work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            op: "run filesystem task",
            path: String::new(),
            source: io::Error::other(e),
        })?
}

/// Upload ids are UUIDs; anything else (a `../`, say) names no session.
fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn write_link(path: &Path, digest: &Digest) -> Result<()> {
    atomic_write(path, link_text(digest).as_bytes()).map_err(|e| StorageError::Io {
        op: "write link",
        path: path.display().to_string(),
        source: io::Error::other(e),
    })
}

/// A refusal of the containment check as a storage error: a symlink or a file that is not regular is damage
/// the client cannot fix (`Corrupt`, naming the path; fsck reports it too).
pub(super) fn beneath_err(e: BeneathError) -> StorageError {
    match e {
        BeneathError::Symlink(path) => StorageError::Corrupt {
            what: path.display().to_string(),
            reason:
                "a symlink, which the store never follows (it could point outside its directory)"
                    .into(),
        },
        BeneathError::NotRegular(path) => StorageError::Corrupt {
            what: path.display().to_string(),
            reason: "not a regular file".into(),
        },
        BeneathError::Outside { path, .. } => StorageError::Io {
            op: "reach",
            path: path.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "outside the registry directory",
            ),
        },
        BeneathError::Io { op, path, source } => StorageError::Io {
            op,
            path: path.display().to_string(),
            source,
        },
    }
}

/// The metadata of `path` below `root`, reached without symlinks ([`check_beneath`]); `None` when missing.
pub(super) fn beneath(root: &Path, path: &Path) -> Result<Option<std::fs::Metadata>> {
    check_beneath(root, path).map_err(beneath_err)
}

/// True when `path` below `root` is a regular file reached without symlinks; an error when something else
/// is in its place (a symlink, a fifo).
fn is_stored_file(root: &Path, path: &Path) -> Result<bool> {
    match beneath(root, path)? {
        None => Ok(false),
        Some(m) if m.is_file() => Ok(true),
        Some(_) => Err(beneath_err(BeneathError::NotRegular(path.to_path_buf()))),
    }
}

/// True when the directory entry is a directory itself (not a symlink to one).
pub(super) fn is_real_dir(entry: &std::fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_dir())
}

/// Link files hold one digest; anything longer is not read past this.
const LINK_MAX: u64 = 1024;

/// Reads the link file at `path` below `root` (reached without symlinks, a regular file); `None` when missing.
fn read_link_file(root: &Path, path: &Path) -> Result<Option<Digest>> {
    let mut file = match open_beneath(root, path) {
        Ok((file, _)) => file,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(beneath_err(e)),
    };
    let mut text = String::new();
    (&mut file)
        .take(LINK_MAX)
        .read_to_string(&mut text)
        .map_err(io_err("read link", path))?;
    Digest::parse(text.trim())
        .map(Some)
        .map_err(|e| StorageError::Corrupt {
            what: path.display().to_string(),
            reason: e.to_string(),
        })
}

async fn read_link(root: &Path, path: PathBuf) -> Result<Option<Digest>> {
    let root = root.to_path_buf();
    blocking(move || read_link_file(&root, &path)).await
}

pub(super) fn remove_dir_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Lists `<dir>/<alg>/<hex>` entries (the shape of `_layers` and `_manifests/revisions`) as digests, never
/// descending through a symlink.
fn list_digest_dirs(root: &Path, dir: &Path) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    if beneath(root, dir)?.is_none() {
        return Ok(out);
    }
    let algs = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if is_not_found(&e) => return Ok(out),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for alg in algs.flatten().filter(is_real_dir) {
        let Ok(algorithm) = alg.file_name().to_string_lossy().parse::<Algorithm>() else {
            continue;
        };
        let Ok(hexes) = std::fs::read_dir(alg.path()) else {
            continue;
        };
        for hex in hexes.flatten().filter(is_real_dir) {
            let link = hex.path().join("link");
            if let Ok(d) = Digest::from_parts(algorithm, &hex.file_name().to_string_lossy())
                && std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_file())
            {
                out.push(d);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Hashes a file with `algorithm` in one pass.
pub(super) fn hash_file(path: &Path, algorithm: Algorithm) -> Result<(Hasher, u64)> {
    continue_hash(path, algorithm.hasher(), 0)
}

/// Continues `hasher` (the hash of the file's first `offset` bytes) over the rest of the file at `path`; returns
/// it and the file's length.
fn continue_hash(path: &Path, mut hasher: Hasher, offset: u64) -> Result<(Hasher, u64)> {
    let mut file = std::fs::File::open(path).map_err(io_err("open", path))?;
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset))
            .map_err(io_err("seek", path))?;
    }
    let mut buf = vec![0u8; 1024 * 1024];
    let mut len = offset;
    loop {
        let n = file.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            return Ok((hasher, len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Hashes the whole of the open `file` (at `path`) with positioned reads, leaving its offset alone; returns the
/// hasher and the bytes read.
pub(super) fn hash_at(
    file: &std::fs::File,
    path: &Path,
    mut hasher: Hasher,
) -> Result<(Hasher, u64)> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut len = 0u64;
    loop {
        let n = match file.read_at(&mut buf, len) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("read", path)(e)),
        };
        if n == 0 {
            return Ok((hasher, len));
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
}

/// Bytes of body frames gathered into one write of an upload's data file.
const WRITE_BATCH: usize = 2 * 1024 * 1024;
/// Frames gathered into one write at most (each is one `iovec`).
const BATCH_FRAMES: usize = 64;
/// Bytes written to an upload's data file between two requests to the kernel to start writing them to disk.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;
/// Bytes of an upload's data file between two background flushes ([`BackgroundFlush`]).
const FLUSH_STEP: u64 = 64 * 1024 * 1024;

/// What appending one chunk produced: the session's running hash including the chunk, and the chunk's length.
struct Appended {
    hasher: Hasher,
    len: u64,
}

/// One batch being hashed and written on two blocking threads: the writer and the hasher come back with it.
type InFlight = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = (
                    std::result::Result<(ChunkWriter, Result<()>), tokio::task::JoinError>,
                    std::result::Result<Hasher, tokio::task::JoinError>,
                ),
            > + Send,
    >,
>;

/// Appends `body` to the session data file `path` at byte `start`, continuing `hasher`.
///
/// Frames (reference counted, never copied) are received on the request's task, never on a blocking thread:
/// a client that sends slowly, or not at all, holds no thread. Received frames are gathered into a batch of up to
/// [`WRITE_BATCH`] bytes, which is hashed on one blocking thread and written on another, each a short call, while
/// the next batch is received; so receiving, hashing and writing run at once, and one upload holds two batches
/// at most. Every [`WRITEBACK_STEP`] bytes the writer asks the kernel to start writing the new range to disk, so
/// the fsync at commit ([`Storage::finish_upload`]) finds little left to do. A chunk is not fsynced by itself:
/// when it is acknowledged it is in the page cache, which survives the server being killed; only a finished blob
/// promises to survive power loss (see the module docs of [`super`]).
///
/// On any failure (body cut, wrong length, write error) the file is cut back to `start`, so the session stays at
/// its last acknowledged offset and the caller keeps the hash state that matches it.
async fn append_chunk(
    path: PathBuf,
    start: u64,
    hasher: Hasher,
    expected_len: Option<u64>,
    mut body: ByteStream,
) -> Result<Appended> {
    let target = path.clone();
    let writer = blocking(move || ChunkWriter::open(target, start)).await?;
    let mut idle = Some((writer, hasher));
    let mut in_flight: Option<InFlight> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0usize;
    let mut received = 0u64;
    let mut ended = false;
    let mut failure: Option<StorageError> = None;
    let joined = |e: tokio::task::JoinError| StorageError::Io {
        op: "run upload writer",
        path: path.display().to_string(),
        source: io::Error::other(e),
    };
    loop {
        // Hand the gathered frames over as soon as the previous batch is done.
        if failure.is_none()
            && !batch.is_empty()
            && let Some((mut writer, mut hasher)) = idle.take()
        {
            let frames: Arc<[Bytes]> = std::mem::take(&mut batch).into();
            batch_len = 0;
            let to_hash = frames.clone();
            let write = tokio::task::spawn_blocking(move || {
                let written = writer.write(&frames);
                (writer, written)
            });
            let hash = tokio::task::spawn_blocking(move || {
                for frame in to_hash.iter() {
                    hasher.update(frame);
                }
                hasher
            });
            in_flight = Some(Box::pin(async move { tokio::join!(write, hash) }));
        }
        let Some(step) = in_flight.as_mut() else {
            if ended || failure.is_some() {
                break;
            }
            // Nothing in flight and nothing gathered: wait for the client.
            match body.next().await {
                Some(Ok(frame)) => {
                    received += frame.len() as u64;
                    batch_len += frame.len();
                    batch.push(frame);
                }
                Some(Err(e)) => failure = Some(StorageError::Body(e)),
                None => ended = true,
            }
            continue;
        };
        let receiving =
            !ended && failure.is_none() && batch_len < WRITE_BATCH && batch.len() < BATCH_FRAMES;
        tokio::select! {
            frame = body.next(), if receiving => match frame {
                Some(Ok(frame)) => {
                    received += frame.len() as u64;
                    batch_len += frame.len();
                    batch.push(frame);
                }
                Some(Err(e)) => failure = Some(StorageError::Body(e)),
                None => ended = true,
            },
            (written, hashed) = step => {
                in_flight = None;
                match (written, hashed) {
                    (Ok((writer, Ok(()))), Ok(hasher)) => idle = Some((writer, hasher)),
                    (Ok((_, Err(e))), _) => failure = Some(e),
                    (Err(e), _) | (_, Err(e)) => failure = Some(joined(e)),
                }
            }
        }
    }
    let outcome = match (failure, idle) {
        (None, Some((writer, hasher))) => match expected_len.filter(|e| *e != received) {
            None => {
                return Ok(Appended {
                    hasher,
                    len: writer.end - start,
                });
            }
            Some(expected) => StorageError::ChunkLength {
                expected,
                actual: received,
            },
        },
        (Some(e), _) => e,
        (None, None) => joined_lost(&path),
    };
    // Roll the chunk back so the session stays at its last acknowledged offset.
    let _ignored = blocking(move || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.set_len(start).map_err(io_err("truncate", &path))
    })
    .await;
    Err(outcome)
}

/// The error for an upload whose writer was lost (cannot happen: every path keeps or reports it).
fn joined_lost(path: &Path) -> StorageError {
    StorageError::Io {
        op: "run upload writer",
        path: path.display().to_string(),
        source: io::Error::other("the upload writer was lost"),
    }
}

/// The writing side of [`append_chunk`]: writes batches at the end of the data file. Every [`WRITEBACK_STEP`]
/// it starts writeback of what it wrote; every time the file grows past a multiple of [`FLUSH_STEP`] it asks
/// for a [`BackgroundFlush`]. Each call is short and blocking.
struct ChunkWriter {
    path: PathBuf,
    file: Arc<std::fs::File>,
    flush: BackgroundFlush,
    /// Where the next byte goes.
    end: u64,
    unflushed_from: u64,
}

impl ChunkWriter {
    /// Opens the data file `path` to write from `start`.
    fn open(path: PathBuf, start: u64) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let file = Arc::new(file);
        Ok(ChunkWriter {
            flush: BackgroundFlush::new(file.clone()),
            path,
            file,
            end: start,
            unflushed_from: start,
        })
    }

    /// Writes `frames` in order at the end (one write for them all, fewer and larger writebacks).
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

/// Set once the kernel refused `RWF_DONTCACHE`: later writes go through the page cache as usual.
static DONTCACHE_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes all of `frames` in order from `offset` (one `pwritev2` for them all when it takes them), asking the
/// kernel to drop the pages from its cache once they are on disk (Linux 6.14+ `RWF_DONTCACHE`). Why: on
/// virtual machines whose balloon device reports free pages to the host, every fresh page-cache page faults on
/// the host, and writing uploads into an ever-growing page cache cost 1.2 to 2.5 CPU-s per GiB here; with the
/// written pages recycled it cost a third of that, and the disk finished sooner (50 fsynced files of 40 MiB, 5
/// at a time: 3.2 to 4.0 s against 4.3 to 4.7 s). The price: the first read of a blob after its upload comes
/// from disk. Kernels or filesystems without the flag get ordinary writes, and later writes do not ask again.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn write_dropping_cache(file: &std::fs::File, frames: &[Bytes], mut offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::Ordering;
    // Where the unwritten bytes start: frame index and bytes of it already written.
    let (mut first, mut skip) = (0usize, 0usize);
    while first < frames.len() && !DONTCACHE_REFUSED.load(Ordering::Relaxed) {
        let iov: Vec<libc::iovec> = frames[first..]
            .iter()
            .enumerate()
            .map(|(k, f)| {
                let part = if k == 0 { &f[skip..] } else { &f[..] };
                libc::iovec {
                    iov_base: part.as_ptr() as *mut libc::c_void,
                    iov_len: part.len(),
                }
            })
            .collect();
        let at = i64::try_from(offset).map_err(|_| io::Error::other("offset past i64"))?;
        let count = libc::c_int::try_from(iov.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: every iovec points into a frame of `frames`, alive and unchanged for the call; the kernel only
        // reads them. The descriptor stays open while `file` is borrowed.
        let n = unsafe {
            libc::pwritev2(
                file.as_raw_fd(),
                iov.as_ptr(),
                count,
                at,
                libc::RWF_DONTCACHE,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) => {
                    DONTCACHE_REFUSED.store(true, Ordering::Relaxed);
                }
                _ => return Err(e),
            }
            continue;
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
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

/// Elsewhere: ordinary positioned writes.
#[cfg(not(target_os = "linux"))]
fn write_dropping_cache(file: &std::fs::File, frames: &[Bytes], offset: u64) -> io::Result<()> {
    write_plainly(file, frames, 0, offset)
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

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk, without waiting (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Best effort: it only makes a later fsync shorter, so a failure is
/// ignored.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range takes no pointers; the descriptor stays open while `file` is borrowed.
    let _ignored = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Elsewhere the fsync at commit does all the writing.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// Streams `len` bytes of `file` from its current position, [`READ_CHUNK`] at a time. Each frame is read on a
/// blocking thread straight into its own buffer (one copy, out of the page cache; tokio's file reads add a
/// second through their buffer), and no thread is held between frames, so a slow reader costs no thread.
/// Also the client's reader for files it uploads.
pub(crate) fn read_stream(file: std::fs::File, len: u64) -> ByteStream {
    let ended_early = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the blob's file is shorter than its size",
        )
    };
    Box::pin(futures_util::stream::unfold(
        (Some(file), len),
        move |(file, left)| async move {
            let mut file = file?;
            if left == 0 {
                return None;
            }
            let want = left.min(READ_CHUNK as u64) as usize;
            let read = tokio::task::spawn_blocking(move || {
                // Read into the spare capacity: the buffer is never zeroed first.
                let mut buf = Vec::with_capacity(want);
                let n = (&mut file).take(want as u64).read_to_end(&mut buf);
                (file, buf, n)
            })
            .await;
            let failed = |e| Some((Err(e), (None, 0)));
            match read {
                Ok((file, buf, Ok(n))) if n > 0 => {
                    Some((Ok(Bytes::from(buf)), (Some(file), left - n as u64)))
                }
                Ok((_, _, Ok(_))) => failed(ended_early()),
                Ok((_, _, Err(e))) => failed(e),
                Err(e) => failed(io::Error::other(e)),
            }
        },
    ))
}

/// Closes `file`, already unlinked, on another blocking thread: closing the last handle of a removed file
/// frees its extents, which for a blob of a few GiB takes most of a second.
fn release_in_background(file: std::fs::File) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(file))),
        Err(_) => drop(file),
    }
}

fn sync_dir(dir: &Path) {
    // Best effort: makes the rename durable on filesystems that need it; failure does not undo the rename.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ignored = d.sync_all();
    }
}

impl FsStorage {
    /// Storage rooted at `root` (the directory that holds, or will hold, `docker/registry/v2`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage {
            paths: DistributionPaths::new(root),
            sessions: Mutex::new(HashMap::new()),
            verify: false,
            verified: Mutex::new(HashMap::new()),
            verifying: Mutex::new(HashMap::new()),
        }
    }

    /// With `on`, every blob is hashed against its digest before it is first served (a whole read before the
    /// response starts); the file's identity is remembered, so later reads cost nothing until the file
    /// changes. A blob that does not match is refused ([`StorageError::Corrupt`]) and logged. For trees this
    /// registry did not write itself (a cluster image's `registry/`, which `sealos run` serves): blobs it
    /// stores are verified as they are uploaded.
    pub fn verify_on_first_read(mut self, on: bool) -> Self {
        self.verify = on;
        self
    }

    /// Hashes the blob file `file` (whose metadata is `meta`) against `digest` unless this very file was
    /// verified before; concurrent first reads of one blob hash it once. The bytes hashed are read from the
    /// open file (positioned reads, its offset untouched), the file then served.
    async fn verify_once(
        &self,
        digest: &Digest,
        path: &Path,
        file: &std::fs::File,
        meta: &std::fs::Metadata,
    ) -> Result<()> {
        let stamp = FileStamp::of(meta);
        let corrupt = || StorageError::Corrupt {
            what: path.display().to_string(),
            reason: format!(
                "its content does not match its digest `{digest}`, so it is not served"
            ),
        };
        // Whether this very file was hashed before, and matched.
        let known = |s: &FsStorage| {
            let map = s.verified.lock().unwrap_or_else(|p| p.into_inner());
            map.get(digest)
                .filter(|(known, _)| *known == stamp)
                .map(|(_, matched)| *matched)
        };
        match known(self) {
            Some(true) => return Ok(()),
            Some(false) => return Err(corrupt()),
            None => {}
        }
        let gate = {
            let mut map = self.verifying.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(digest.clone()).or_default().clone()
        };
        let _turn = gate.lock().await;
        match known(self) {
            Some(true) => return Ok(()),
            Some(false) => return Err(corrupt()),
            None => {}
        }
        let reader = file.try_clone().map_err(io_err("open", path))?;
        let (alg, at) = (digest.algorithm(), path.to_path_buf());
        let hashed = blocking(move || hash_at(&reader, &at, alg.hasher())).await;
        self.verifying
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        let (hasher, _len) = hashed?;
        let matched = hasher.finish() == *digest;
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone(), (stamp, matched));
        if !matched {
            #[cfg(any(feature = "client", feature = "server"))]
            tracing::error!(
                blob = %digest,
                path = %path.display(),
                "corrupt blob: its content does not match its digest; refusing to serve it"
            );
            // The computed digest is left out: it says nothing useful and would hash any file for the asker.
            return Err(corrupt());
        }
        Ok(())
    }

    /// The layout this storage reads and writes.
    pub fn paths(&self) -> &DistributionPaths {
        &self.paths
    }

    /// Opens a blob or a range of it: as views of a mapping of its file when `mapped` (see
    /// [`Storage::send_blob`]) and it is large enough to be worth it, else read in frames.
    async fn open_blob(
        &self,
        digest: &Digest,
        range: Option<ByteRange>,
        mapped: bool,
    ) -> Result<BlobReader> {
        let path = self.paths.blob_data(digest);
        let (root, at) = (self.paths.root().to_path_buf(), path.clone());
        let (mut file, meta) = match blocking(move || Ok(open_beneath(&root, &at))).await? {
            Ok(opened) => opened,
            Err(e) if e.is_not_found() => return Err(StorageError::BlobUnknown(digest.clone())),
            Err(e) => return Err(beneath_err(e)),
        };
        if self.verify {
            self.verify_once(digest, &path, &file, &meta).await?;
        }
        let size = meta.len();
        let range = range.map(|r| r.within(size)).transpose()?;
        let (from, len) = range.map_or((0, size), |r| (r.start, r.len()));
        if mapped && len >= super::mapped::MAP_MIN {
            match super::mapped::mapped_stream(file, size, from, len) {
                Ok(stream) => {
                    return Ok(BlobReader {
                        size,
                        range,
                        stream,
                    });
                }
                Err(unmapped) => file = unmapped,
            }
        }
        if from > 0 {
            // A seek moves the file offset only: no I/O to wait for.
            file.seek(io::SeekFrom::Start(from))
                .map_err(io_err("seek", &path))?;
        }
        let stream = read_stream(file, len);
        Ok(BlobReader {
            size,
            range,
            stream,
        })
    }

    fn upload_dir(&self, repo: &str, id: &str) -> PathBuf {
        self.paths.uploads_dir(repo).join(id)
    }

    fn session(&self, id: &str) -> Arc<tokio::sync::Mutex<Session>> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    fn forget_session(&self, id: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id);
    }

    /// Makes sure the session exists on disk and its hash state is loaded (re-reading the data after a restart).
    async fn load_session(&self, repo: &str, id: &str, s: &mut Session) -> Result<()> {
        if !valid_upload_id(id) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        let data = self.upload_dir(repo, id).join("data");
        // The session's data is a regular file reached without symlinks, or there is no session.
        let (root, at) = (self.paths.root().to_path_buf(), data.clone());
        if !blocking(move || is_stored_file(&root, &at)).await? {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        if s.hasher.is_some() {
            return Ok(());
        }
        let state = self.upload_dir(repo, id).join(HASH_STATE_FILE);
        let (hasher, len) = blocking(move || resume_hash(&data, &state)).await?;
        s.hasher = Some(hasher);
        s.offset = len;
        s.recheck_on_finish = true;
        Ok(())
    }
}

/// The file in an upload session's directory holding the running hash state saved after the last acknowledged
/// chunk: `OFFSET\n` then the [`Hasher::save_state`] bytes. Not distribution's `hashstates/` (Go's encoding),
/// so `docker-registry` serving the same tree never misreads it.
const HASH_STATE_FILE: &str = "sealos-hashstate";

/// Saves `hasher` (the hash of the session's first `offset` bytes) beside the session's data: written aside and
/// renamed, so a reader sees the old state or the new one. Not fsynced: the data it describes is not either
/// (see the module's durability notes), and [`resume_hash`] checks it against the data's length.
fn save_hash_state(dir: &Path, offset: u64, hasher: &Hasher) -> Result<()> {
    let mut bytes = format!("{offset}\n").into_bytes();
    bytes.extend_from_slice(&hasher.save_state());
    let dest = dir.join(HASH_STATE_FILE);
    let aside = dir.join(format!(".{HASH_STATE_FILE}.tmp"));
    std::fs::write(&aside, &bytes).map_err(io_err("write", &aside))?;
    std::fs::rename(&aside, &dest).map_err(io_err("rename", &dest))
}

/// Rebuilds a session's running sha256 after a restart: from its saved hash state when one is present and
/// describes a prefix of the data (then only the bytes after it are read), else by hashing the whole data file.
/// Returns the hasher and the data's length.
fn resume_hash(data: &Path, state: &Path) -> Result<(Hasher, u64)> {
    let len = std::fs::metadata(data).map_err(io_err("stat", data))?.len();
    let saved = std::fs::read(state).ok().and_then(|bytes| {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let offset: u64 = std::str::from_utf8(&bytes[..newline]).ok()?.parse().ok()?;
        let hasher = Hasher::restore_state(&bytes[newline + 1..]).ok()?;
        (offset <= len && hasher.algorithm() == Algorithm::Sha256).then_some((hasher, offset))
    });
    match saved {
        Some((hasher, offset)) => continue_hash(data, hasher, offset),
        None => hash_file(data, Algorithm::Sha256),
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.paths.blob_data(digest);
        let root = self.paths.root().to_path_buf();
        blocking(move || match beneath(&root, &path)? {
            Some(m) if m.is_file() => Ok(Some(m.len())),
            Some(_) => Err(beneath_err(BeneathError::NotRegular(path))),
            None => Ok(None),
        })
        .await
    }

    async fn read_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.open_blob(digest, range, false).await
    }

    async fn send_blob(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobReader> {
        self.open_blob(digest, range, true).await
    }

    async fn put_blob_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let actual = Digest::of(digest.algorithm(), &bytes);
        if &actual != digest {
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let dest = self.paths.blob_data(digest);
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            if is_stored_file(&root, &dest)? {
                return Ok(());
            }
            atomic_write(&dest, &bytes).map_err(|e| StorageError::Io {
                op: "write blob",
                path: dest.display().to_string(),
                source: io::Error::other(e),
            })
        })
        .await
    }

    async fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.paths.blobs_dir();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            let mut out = Vec::new();
            if beneath(&root, &dir)?.is_none() {
                return Ok(out);
            }
            let Ok(algs) = std::fs::read_dir(&dir) else {
                return Ok(out);
            };
            for alg in algs.flatten().filter(is_real_dir) {
                let Ok(algorithm) = alg.file_name().to_string_lossy().parse::<Algorithm>() else {
                    continue;
                };
                for prefix in std::fs::read_dir(alg.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(is_real_dir)
                {
                    for hex in std::fs::read_dir(prefix.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(is_real_dir)
                    {
                        let name = hex.file_name().to_string_lossy().into_owned();
                        if let Ok(d) = Digest::from_parts(algorithm, &name)
                            && std::fs::symlink_metadata(hex.path().join("data"))
                                .is_ok_and(|m| m.is_file())
                        {
                            out.push(d);
                        }
                    }
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<()> {
        let dir = self.paths.blob_dir(digest);
        let d = digest.clone();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            if beneath(&root, &dir)?.is_some() && remove_dir_if_exists(&dir)? {
                Ok(())
            } else {
                Err(StorageError::BlobUnknown(d))
            }
        })
        .await
    }

    async fn create_upload(&self, repo: &str) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.upload_dir(repo, &id);
        let (root, at) = (self.paths.root().to_path_buf(), dir.clone());
        blocking(move || beneath(&root, &at)).await?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err("create upload directory", &dir))?;
        let data = dir.join("data");
        tokio::fs::File::create(&data)
            .await
            .map_err(io_err("create", &data))?;
        let started = dir.join("startedat");
        tokio::fs::write(&started, rfc3339(now_secs()))
            .await
            .map_err(io_err("write", &started))?;
        let session = self.session(&id);
        let mut s = session.lock().await;
        s.hasher = Some(Algorithm::Sha256.hasher());
        s.offset = 0;
        Ok(UploadStatus { id, offset: 0 })
    }

    async fn upload_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        let session = self.session(id);
        let mut s = session.lock().await;
        if let Err(e) = self.load_session(repo, id, &mut s).await {
            drop(s);
            self.forget_session(id);
            return Err(e);
        }
        Ok(UploadStatus {
            id: id.to_string(),
            offset: s.offset,
        })
    }

    async fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        let session = self.session(id);
        let mut s = session.lock().await;
        if let Err(e) = self.load_session(repo, id, &mut s).await {
            drop(s);
            self.forget_session(id);
            return Err(e);
        }
        if let Some(given) = offset.filter(|o| *o != s.offset) {
            return Err(StorageError::OutOfOrder {
                current: s.offset,
                given,
            });
        }
        let path = self.upload_dir(repo, id).join("data");
        let Some(saved) = s.hasher.clone() else {
            return Err(StorageError::UploadUnknown(id.to_string()));
        };
        let start = s.offset;
        let written = append_chunk(path, start, saved, expected_len, body).await?;
        let offset = start + written.len;
        let dir = self.upload_dir(repo, id);
        let hasher = written.hasher.clone();
        blocking(move || save_hash_state(&dir, offset, &hasher)).await?;
        s.hasher = Some(written.hasher);
        s.offset = offset;
        Ok(UploadStatus {
            id: id.to_string(),
            offset: s.offset,
        })
    }

    async fn finish_upload(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64> {
        let session = self.session(id);
        let mut s = session.lock().await;
        if let Err(e) = self.load_session(repo, id, &mut s).await {
            drop(s);
            self.forget_session(id);
            return Err(e);
        }
        let dir = self.upload_dir(repo, id);
        let data = dir.join("data");
        let size = s.offset;
        let actual = match s.hasher.take() {
            Some(h) if h.algorithm() == digest.algorithm() && !s.recheck_on_finish => h.finish(),
            _ => {
                // The running hash is sha256 and trusted only if this process saw every byte; otherwise
                // (another algorithm, or a session resumed after a restart) the data is read once more.
                let alg = digest.algorithm();
                let p = data.clone();
                blocking(move || hash_file(&p, alg)).await?.0.finish()
            }
        };
        let dest = self.paths.blob_data(digest);
        let expected = digest.clone();
        let root = self.paths.root().to_path_buf();
        let result = blocking(move || {
            if actual != expected {
                remove_dir_if_exists(&dir)?;
                return Err(StorageError::DigestMismatch { expected, actual });
            }
            let file = std::fs::File::open(&data).map_err(io_err("open", &data))?;
            if is_stored_file(&root, &dest)? {
                // Stored already (blobs are content-addressed): nothing of this upload is kept, so it is
                // not synced, and its space is given back off the response path.
                remove_dir_if_exists(&dir)?;
                release_in_background(file);
                return Ok(());
            }
            file.sync_all().map_err(io_err("sync", &data))?;
            let parent = dest.parent().unwrap_or(Path::new("/"));
            std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            std::fs::rename(&data, &dest).map_err(io_err("rename into", &dest))?;
            sync_dir(parent);
            remove_dir_if_exists(&dir)?;
            Ok(())
        })
        .await;
        drop(s);
        self.forget_session(id);
        result.map(|()| size)
    }

    async fn cancel_upload(&self, repo: &str, id: &str) -> Result<()> {
        if !valid_upload_id(id) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        let session = self.session(id);
        let s = session.lock().await;
        let dir = self.upload_dir(repo, id);
        let root = self.paths.root().to_path_buf();
        let removed =
            blocking(move || Ok(beneath(&root, &dir)?.is_some() && remove_dir_if_exists(&dir)?))
                .await;
        drop(s);
        self.forget_session(id);
        if removed? {
            Ok(())
        } else {
            Err(StorageError::UploadUnknown(id.to_string()))
        }
    }

    async fn list_uploads(&self) -> Result<Vec<(String, String, u64)>> {
        let repos = self.paths.repositories_dir();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            let mut out = Vec::new();
            let now = std::time::SystemTime::now();
            if beneath(&root, &repos)?.is_none() {
                return Ok(out);
            }
            walk_repositories(&repos, "", &mut |name, dir| {
                let uploads = dir.join("_uploads");
                if !std::fs::symlink_metadata(&uploads).is_ok_and(|m| m.is_dir()) {
                    return;
                }
                for entry in std::fs::read_dir(&uploads).into_iter().flatten().flatten() {
                    let age = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .map_or(0, |d| d.as_secs());
                    out.push((
                        name.to_string(),
                        entry.file_name().to_string_lossy().into_owned(),
                        age,
                    ));
                }
            });
            Ok(out)
        })
        .await
    }

    async fn link_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        ensure_link(
            self.paths.root(),
            self.paths.layer_link(repo, digest),
            digest,
        )
        .await
    }

    async fn has_layer(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(
            read_link(self.paths.root(), self.paths.layer_link(repo, digest))
                .await?
                .is_some(),
        )
    }

    async fn unlink_layer(&self, repo: &str, digest: &Digest) -> Result<()> {
        let link = self.paths.layer_link(repo, digest);
        let d = digest.clone();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            let dir = link.parent().unwrap_or(Path::new("/")).to_path_buf();
            if is_stored_file(&root, &link)? && remove_dir_if_exists(&dir)? {
                Ok(())
            } else {
                Err(StorageError::BlobUnknown(d))
            }
        })
        .await
    }

    async fn list_layers(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.paths.repository_dir(repo).join("_layers");
        let root = self.paths.root().to_path_buf();
        blocking(move || list_digest_dirs(&root, &dir)).await
    }

    async fn link_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        ensure_link(
            self.paths.root(),
            self.paths.revision_link(repo, digest),
            digest,
        )
        .await
    }

    async fn has_revision(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(
            read_link(self.paths.root(), self.paths.revision_link(repo, digest))
                .await?
                .is_some(),
        )
    }

    async fn unlink_revision(&self, repo: &str, digest: &Digest) -> Result<()> {
        let link = self.paths.revision_link(repo, digest);
        let tags_dir = self.paths.tags_dir(repo);
        let d = digest.clone();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            let dir = link.parent().unwrap_or(Path::new("/")).to_path_buf();
            if !(is_stored_file(&root, &link)? && remove_dir_if_exists(&dir)?) {
                return Err(StorageError::ManifestUnknown(d.to_string()));
            }
            if beneath(&root, &tags_dir)?.is_none() {
                return Ok(());
            }
            // Tags pointing at a deleted manifest go with it, as in distribution.
            for tag in std::fs::read_dir(&tags_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(is_real_dir)
            {
                let current = tag.path().join("current/link");
                let points_here = read_link_file(&root, &current)
                    .ok()
                    .flatten()
                    .is_some_and(|t| t == d);
                if points_here {
                    remove_dir_if_exists(&tag.path())?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_revisions(&self, repo: &str) -> Result<Vec<Digest>> {
        let dir = self.paths.repository_dir(repo).join("_manifests/revisions");
        let root = self.paths.root().to_path_buf();
        blocking(move || list_digest_dirs(&root, &dir)).await
    }

    async fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        let index = self.paths.tag_index_link(repo, tag, digest);
        let current = self.paths.tag_current_link(repo, tag);
        let d = digest.clone();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            if !is_stored_file(&root, &index)? {
                write_link(&index, &d)?;
            }
            // `current` is replaced by a rename, which never writes through a symlink in its place; the
            // directories on the way are checked.
            beneath(&root, &current)?;
            write_link(&current, &d)
        })
        .await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        read_link(self.paths.root(), self.paths.tag_current_link(repo, tag)).await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let dir = self.paths.tags_dir(repo).join(tag);
        let t = tag.to_string();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            if is_stored_file(&root, &dir.join("current/link"))? && remove_dir_if_exists(&dir)? {
                Ok(())
            } else {
                Err(StorageError::ManifestUnknown(t))
            }
        })
        .await
    }

    async fn list_tags(&self, repo: &str) -> Result<Vec<String>> {
        let repo_dir = self.paths.repository_dir(repo);
        let tags_dir = self.paths.tags_dir(repo);
        let name = repo.to_string();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            if !beneath(&root, &repo_dir)?.is_some_and(|m| m.is_dir()) {
                return Err(StorageError::NameUnknown(name));
            }
            if beneath(&root, &tags_dir)?.is_none() {
                return Ok(Vec::new());
            }
            let mut tags: Vec<String> = std::fs::read_dir(&tags_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(is_real_dir)
                .filter(|e| is_stored_file(&root, &e.path().join("current/link")).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            tags.sort();
            Ok(tags)
        })
        .await
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        let repos = self.paths.repositories_dir();
        let root = self.paths.root().to_path_buf();
        blocking(move || {
            let mut out = Vec::new();
            if beneath(&root, &repos)?.is_none() {
                return Ok(out);
            }
            walk_repositories(&repos, "", &mut |name, dir| {
                if std::fs::symlink_metadata(dir.join("_manifests")).is_ok_and(|m| m.is_dir()) {
                    out.push(name.to_string());
                }
            });
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn repository_exists(&self, repo: &str) -> Result<bool> {
        let dir = self.paths.repository_dir(repo);
        let root = self.paths.root().to_path_buf();
        blocking(move || Ok(beneath(&root, &dir)?.is_some_and(|m| m.is_dir()))).await
    }
}

/// Calls `visit(name, dir)` for every directory under `dir` that is a repository candidate (any depth), skipping
/// the `_`-prefixed internal directories distribution uses, and never descending through a symlink.
fn walk_repositories(dir: &Path, prefix: &str, visit: &mut dyn FnMut(&str, &Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        visit(&full, &path);
        walk_repositories(&path, &full, visit);
    }
}

/// Writes the link file at `path` (below `root`) naming `digest` unless it already exists (links are
/// idempotent); never through a symlink.
async fn ensure_link(root: &Path, path: PathBuf, digest: &Digest) -> Result<()> {
    let digest = digest.clone();
    let root = root.to_path_buf();
    blocking(move || {
        if is_stored_file(&root, &path)? {
            return Ok(());
        }
        write_link(&path, &digest)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ at every offset, so a misplaced frame changes the digest.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8 ^ seed)
            .collect()
    }

    /// A body stream of `bytes` in frames of `frame` bytes, optionally ending in an error instead of its end.
    fn frames(bytes: &[u8], frame: usize, cut: bool) -> ByteStream {
        let mut items: Vec<io::Result<Bytes>> = bytes
            .chunks(frame)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        if cut {
            items.push(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            )));
        }
        Box::pin(futures_util::stream::iter(items))
    }

    fn data_len(storage: &FsStorage, repo: &str, id: &str) -> u64 {
        std::fs::metadata(storage.upload_dir(repo, id).join("data"))
            .map(|m| m.len())
            .unwrap_or(u64::MAX)
    }

    #[tokio::test]
    async fn chunks_spanning_many_writeback_steps_are_stored_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        // Two chunks of odd sizes (frames not aligned to anything), together over two writeback steps.
        let first = pattern(9 * 1024 * 1024 + 7, 1);
        let second = pattern(8 * 1024 * 1024 + 4093, 2);
        let session = storage.create_upload("a/b").await.unwrap();
        let after_first = storage
            .append_upload(
                "a/b",
                &session.id,
                Some(0),
                Some(first.len() as u64),
                frames(&first, 65_521, false),
            )
            .await
            .unwrap();
        assert_eq!(after_first.offset, first.len() as u64);
        let after_second = storage
            .append_upload(
                "a/b",
                &session.id,
                Some(after_first.offset),
                None,
                frames(&second, 300_007, false),
            )
            .await
            .unwrap();
        let whole = [first, second].concat();
        assert_eq!(after_second.offset, whole.len() as u64);
        let digest = Digest::sha256_of(&whole);
        let size = storage
            .finish_upload("a/b", &session.id, &digest)
            .await
            .unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(
            std::fs::read(storage.paths.blob_data(&digest)).unwrap(),
            whole
        );
        assert!(!storage.upload_dir("a/b", &session.id).exists());
    }

    /// Uploads `bytes` to `repo` in one chunk and finishes the session; returns its id.
    async fn upload_whole(storage: &FsStorage, repo: &str, bytes: &[u8]) -> Result<String> {
        let session = storage.create_upload(repo).await?;
        storage
            .append_upload(
                repo,
                &session.id,
                Some(0),
                None,
                frames(bytes, 1 << 20, false),
            )
            .await?;
        storage
            .finish_upload(repo, &session.id, &Digest::sha256_of(bytes))
            .await?;
        Ok(session.id)
    }

    #[tokio::test]
    async fn whole_and_range_reads_span_several_frames_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let bytes = pattern(READ_CHUNK * 3 + 17, 5);
        upload_whole(&storage, "a/b", &bytes).await.unwrap();
        let digest = Digest::sha256_of(&bytes);
        let read = |range| {
            let (storage, digest) = (&storage, &digest);
            async move {
                let reader = storage.read_blob(digest, range).await.unwrap();
                let frames: Vec<Bytes> = reader.stream.map(|f| f.unwrap()).collect().await;
                (reader.size, frames.concat())
            }
        };
        let (size, whole) = read(None).await;
        assert_eq!(size, bytes.len() as u64);
        assert!(whole == bytes, "a whole read differs from the blob");
        let (start, end) = (100u64, (READ_CHUNK * 2 + 700) as u64);
        let (_, part) = read(Some(ByteRange { start, end })).await;
        assert!(
            part == bytes[start as usize..=end as usize],
            "a range read differs"
        );
        let (_, tail) = read(Some(ByteRange {
            start: size - 5,
            end: u64::MAX,
        }))
        .await;
        assert_eq!(tail, bytes[bytes.len() - 5..]);
    }

    #[tokio::test]
    async fn an_upload_crossing_flush_steps_is_stored_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let bytes = pattern((FLUSH_STEP * 2 + 12_345) as usize, 3);
        let id = upload_whole(&storage, "a/b", &bytes).await.unwrap();
        let digest = Digest::sha256_of(&bytes);
        let stored = std::fs::read(storage.paths.blob_data(&digest)).unwrap();
        assert!(
            stored == bytes,
            "the stored blob differs from what was sent"
        );
        assert!(!storage.upload_dir("a/b", &id).exists());
    }

    #[tokio::test]
    async fn a_second_upload_of_a_stored_blob_is_accepted_and_leaves_the_stored_copy_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let bytes = pattern(3 * 1024 * 1024 + 11, 4);
        let digest = Digest::sha256_of(&bytes);
        upload_whole(&storage, "a/b", &bytes).await.unwrap();
        let blob = storage.paths.blob_data(&digest);
        let inode = |p: &Path| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(p).unwrap().ino()
        };
        let first = inode(&blob);
        let id = upload_whole(&storage, "c/d", &bytes).await.unwrap();
        assert_eq!(inode(&blob), first, "the stored blob was replaced");
        assert_eq!(std::fs::read(&blob).unwrap(), bytes);
        assert!(!storage.upload_dir("c/d", &id).exists());
        // A wrong digest for the same bytes is still refused, stored copy or not.
        let session = storage.create_upload("c/d").await.unwrap();
        storage
            .append_upload(
                "c/d",
                &session.id,
                Some(0),
                None,
                frames(&bytes, 4096, false),
            )
            .await
            .unwrap();
        let wrong = Digest::sha256_of(b"something else");
        let refused = storage.finish_upload("c/d", &session.id, &wrong).await;
        assert!(matches!(refused, Err(StorageError::DigestMismatch { .. })));
        assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    }

    /// Starts a session under `root` holding `bytes`, in a storage value dropped at the end (a stopped server).
    async fn session_holding(root: &Path, bytes: &[u8]) -> String {
        let storage = FsStorage::new(root);
        let session = storage.create_upload("a/b").await.unwrap();
        storage
            .append_upload(
                "a/b",
                &session.id,
                Some(0),
                None,
                frames(bytes, 4096, false),
            )
            .await
            .unwrap();
        session.id
    }

    /// Appends `bytes` to session `id` of repository `a/b` at `offset`.
    async fn append_at(storage: &FsStorage, id: &str, offset: u64, bytes: &[u8]) {
        storage
            .append_upload("a/b", id, Some(offset), None, frames(bytes, 4096, false))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_restarted_server_continues_a_session_from_its_saved_hash_state_and_rechecks_the_bytes()
     {
        let dir = tempfile::tempdir().unwrap();
        let first = pattern(2 * 1024 * 1024 + 3, 5);
        let second = pattern(1024 * 1024 + 9, 6);
        let id = session_holding(dir.path(), &first).await;
        let session_dir = FsStorage::new(dir.path()).upload_dir("a/b", &id);
        let saved = std::fs::read(session_dir.join(HASH_STATE_FILE)).unwrap();
        assert!(saved.starts_with(format!("{}\n", first.len()).as_bytes()));

        // A new process (no in-memory state) continues from the saved state and finishes.
        let restarted = FsStorage::new(dir.path());
        assert_eq!(
            restarted.upload_status("a/b", &id).await.unwrap().offset,
            first.len() as u64
        );
        append_at(&restarted, &id, first.len() as u64, &second).await;
        let whole = [first.clone(), second.clone()].concat();
        let digest = Digest::sha256_of(&whole);
        assert_eq!(
            restarted.finish_upload("a/b", &id, &digest).await.unwrap(),
            whole.len() as u64
        );

        // A resumed session whose earlier bytes changed on disk (a power loss) fails its digest: the saved
        // state alone is never trusted.
        let id = session_holding(dir.path(), &first).await;
        let data = FsStorage::new(dir.path())
            .upload_dir("a/b", &id)
            .join("data");
        let mut damaged = std::fs::read(&data).unwrap();
        damaged[10] ^= 0xff;
        std::fs::write(&data, &damaged).unwrap();
        let restarted = FsStorage::new(dir.path());
        append_at(&restarted, &id, first.len() as u64, &second).await;
        let refused = restarted.finish_upload("a/b", &id, &digest).await;
        assert!(
            matches!(refused, Err(StorageError::DigestMismatch { .. })),
            "{refused:?}"
        );
        // The blob stored by the first session is untouched.
        assert_eq!(
            std::fs::read(restarted.paths.blob_data(&digest)).unwrap(),
            whole
        );
    }

    #[tokio::test]
    async fn cut_or_miscounted_chunk_is_rolled_back_and_the_session_continues_from_its_last_offset()
    {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let first = pattern(3 * 1024 * 1024 + 11, 3);
        let second = pattern(10 * 1024 * 1024 + 5, 4);
        let session = storage.create_upload("a/b").await.unwrap();
        let id = session.id.as_str();
        let at = storage
            .append_upload("a/b", id, Some(0), None, frames(&first, 100_000, false))
            .await
            .unwrap()
            .offset;

        // The client goes away in the middle of the second chunk (after more than a writeback step).
        let cut = storage
            .append_upload("a/b", id, Some(at), None, frames(&second, 131_072, true))
            .await;
        assert!(matches!(cut, Err(StorageError::Body(_))), "{cut:?}");
        assert_eq!(storage.upload_status("a/b", id).await.unwrap().offset, at);
        assert_eq!(data_len(&storage, "a/b", id), at);

        // A chunk shorter than announced is refused and rolled back too.
        let short = storage
            .append_upload(
                "a/b",
                id,
                Some(at),
                Some(second.len() as u64 + 1),
                frames(&second, 131_072, false),
            )
            .await;
        assert!(
            matches!(short, Err(StorageError::ChunkLength { expected, actual })
                if expected == second.len() as u64 + 1 && actual == second.len() as u64),
            "{short:?}"
        );
        assert_eq!(data_len(&storage, "a/b", id), at);

        // Sent again in full, the chunk continues the same hash: the blob is exactly first + second.
        storage
            .append_upload("a/b", id, Some(at), None, frames(&second, 131_072, false))
            .await
            .unwrap();
        let whole = [first, second].concat();
        let digest = Digest::sha256_of(&whole);
        storage.finish_upload("a/b", id, &digest).await.unwrap();
        assert_eq!(
            std::fs::read(storage.paths.blob_data(&digest)).unwrap(),
            whole
        );
    }
}
