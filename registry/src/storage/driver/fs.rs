//! The filesystem driver: files below a root directory.
//!
//! Nothing below the root is reached through a symlink: every path is checked component by component
//! ([`check_beneath`]) and files are opened with `O_NOFOLLOW` and checked to be regular files after opening
//! ([`open_beneath`]), so a tree that came from elsewhere (a cluster image's `registry/`) cannot make the
//! store read, list or write outside it; listings and walks never descend through a symlink. The root itself
//! may be a symlink.
//!
//! Fast paths the store gets through the ordinary methods: [`ReadMode::Mapped`] reads of large files are views of
//! a mapping (`storage::mapped`) that `server::sendfile` sends without reading; appendable files write with
//! the fast paths of [`super::fs_append`]; [`Driver::delete`] closes a large removed file off the caller's path.

use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use formats::fsutil::{BeneathError, atomic_write, check_beneath, open_beneath, unique_suffix};

use super::fs_append::FsWriter;
use super::{AppendState, Driver, Entry, FileInfo, Opened, ReadMode, UploadWriter, join};
use crate::storage::{ByteRange, ByteStream, Result, StorageError};

/// Bytes per frame of a read stream.
const READ_CHUNK: usize = 512 * 1024;
/// Files at least this large removed by [`Driver::delete`] are closed on another thread (freeing their extents
/// takes a while).
const RELEASE_LATER: u64 = 16 * 1024 * 1024;
/// A saved append state is read up to this many bytes.
const STATE_MAX: u64 = 64 * 1024;

/// Files below a directory (which holds, or will hold, `docker/registry/v2`).
#[derive(Debug, Clone)]
pub struct FsDriver {
    root: PathBuf,
}

impl FsDriver {
    /// The driver for files below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsDriver { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }

    /// Runs `f(root, full path)` on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        path: &str,
        f: impl FnOnce(&Path, &Path) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (root, full) = (self.root.clone(), self.full(path));
        blocking(move || f(&root, &full)).await
    }
}

pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// Runs blocking filesystem work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            op: "run filesystem task",
            path: String::new(),
            source: io::Error::other(e),
        })?
}

/// A refusal of the containment check as a storage error: a symlink or a file that is not regular is damage
/// the client cannot fix (`Corrupt`, naming the path; fsck reports it too).
pub(crate) fn beneath_err(e: BeneathError) -> StorageError {
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
pub(crate) fn beneath(root: &Path, path: &Path) -> Result<Option<std::fs::Metadata>> {
    check_beneath(root, path).map_err(beneath_err)
}

/// The metadata of the regular file `path` below `root`; `None` when missing, an error when something else is
/// there.
fn file_beneath(root: &Path, path: &Path) -> Result<Option<std::fs::Metadata>> {
    match beneath(root, path)? {
        Some(m) if !m.is_file() => Err(beneath_err(BeneathError::NotRegular(path.to_path_buf()))),
        found => Ok(found),
    }
}

/// Opens the regular file `path` below `root`; `None` when missing.
fn open_file(root: &Path, path: &Path) -> Result<Option<(std::fs::File, std::fs::Metadata)>> {
    match open_beneath(root, path) {
        Ok(opened) => Ok(Some(opened)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(beneath_err(e)),
    }
}

/// True when the directory entry is a directory itself (not a symlink to one).
pub(crate) fn is_real_dir(entry: &std::fs::DirEntry) -> bool {
    entry.file_type().is_ok_and(|t| t.is_dir())
}

pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<bool> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// What identifies the content of a file: a file replaced or changed since (another inode, size, modification
/// or change time) has another stamp.
fn info_of(meta: &std::fs::Metadata) -> FileInfo {
    use std::os::unix::fs::MetadataExt;
    FileInfo {
        size: meta.len(),
        modified: meta.modified().ok(),
        stamp: format!(
            "{}:{}:{}:{}.{}:{}.{}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        ),
    }
}

/// Writes `bytes` to `dest` aside and renames it into place (a reader sees the old content or the new), without
/// fsync: for state that describes unsynced data anyway.
pub(crate) fn write_aside(dest: &Path, bytes: &[u8]) -> Result<()> {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let aside = dest.with_file_name(format!(".{name}.{}.tmp", unique_suffix()));
    std::fs::write(&aside, bytes).map_err(io_err("write", &aside))?;
    std::fs::rename(&aside, dest).map_err(|e| {
        let _ignored = std::fs::remove_file(&aside);
        io_err("rename", dest)(e)
    })
}

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

/// Reads at most `limit` bytes of the regular file `path` below `root`; `None` when missing.
fn read_limited(root: &Path, path: &Path, limit: u64) -> Result<Option<Bytes>> {
    let Some((file, meta)) = open_file(root, path)? else {
        return Ok(None);
    };
    if meta.len() > limit {
        return Err(StorageError::TooLarge { limit });
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(io_err("read", path))?;
    if out.len() as u64 > limit {
        return Err(StorageError::TooLarge { limit });
    }
    Ok(Some(Bytes::from(out)))
}

/// Every regular file below `dir` (relative to `base`), never through a symlink.
fn walk_into(dir: &Path, base: &str, out: &mut Vec<String>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = join(base, &entry.file_name().to_string_lossy());
        if kind.is_dir() {
            walk_into(&entry.path(), &name, out)?;
        } else if kind.is_file() {
            out.push(name);
        }
    }
    Ok(())
}

#[async_trait]
impl Driver for FsDriver {
    async fn get(&self, path: &str, limit: u64) -> Result<Option<Bytes>> {
        self.run(path, move |root, full| read_limited(root, full, limit))
            .await
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.run(path, move |root, full| {
            // A rename never writes through a symlink in its place; the directories on the way are checked.
            if beneath(root, full)?.is_some_and(|m| m.is_dir()) {
                return Err(beneath_err(BeneathError::NotRegular(full.to_path_buf())));
            }
            atomic_write(full, &bytes).map_err(|e| StorageError::Io {
                op: "write",
                path: full.display().to_string(),
                source: io::Error::other(e),
            })
        })
        .await
    }

    async fn reader(
        &self,
        path: &str,
        range: Option<ByteRange>,
        mode: ReadMode,
    ) -> Result<Option<Opened>> {
        let Some((mut file, meta)) = self.run(path, open_file).await? else {
            return Ok(None);
        };
        let info = info_of(&meta);
        let range = range.map(|r| r.within(info.size)).transpose()?;
        let (from, len) = range.map_or((0, info.size), |r| (r.start, r.len()));
        if mode == ReadMode::Mapped && len >= crate::storage::mapped::MAP_MIN {
            match crate::storage::mapped::mapped_stream(file, info.size, from, len) {
                Ok(stream) => {
                    return Ok(Some(Opened {
                        info,
                        range,
                        stream,
                    }));
                }
                Err(unmapped) => file = unmapped,
            }
        }
        if from > 0 {
            // A seek moves the file offset only: no I/O to wait for.
            file.seek(io::SeekFrom::Start(from))
                .map_err(io_err("seek", &self.full(path)))?;
        }
        Ok(Some(Opened {
            info,
            range,
            stream: read_stream(file, len),
        }))
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        self.run(path, |root, full| {
            Ok(file_beneath(root, full)?.map(|m| info_of(&m)))
        })
        .await
    }

    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        self.run(path, |root, full| {
            if !beneath(root, full)?.is_some_and(|m| m.is_dir()) {
                return Ok(Vec::new());
            }
            let entries = match std::fs::read_dir(full) {
                Ok(e) => e,
                Err(e) if is_not_found(&e) => return Ok(Vec::new()),
                Err(e) => return Err(io_err("list", full)(e)),
            };
            let mut out: Vec<Entry> = entries
                .flatten()
                .filter_map(|e| {
                    let kind = e.file_type().ok()?;
                    (kind.is_dir() || kind.is_file()).then(|| Entry {
                        name: e.file_name().to_string_lossy().into_owned(),
                        is_dir: kind.is_dir(),
                    })
                })
                .collect();
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn walk(&self, path: &str) -> Result<Vec<String>> {
        self.run(path, |root, full| {
            let mut out = Vec::new();
            if beneath(root, full)?.is_some_and(|m| m.is_dir()) {
                walk_into(full, "", &mut out)?;
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    async fn move_file(&self, from: &str, to: &str) -> Result<()> {
        let dest = self.full(to);
        self.run(from, move |root, full| {
            if file_beneath(root, full)?.is_none() {
                return Err(io_err("move", full)(io::ErrorKind::NotFound.into()));
            }
            beneath(root, &dest)?;
            let parent = dest.parent().unwrap_or(Path::new("/"));
            std::fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            std::fs::rename(full, &dest).map_err(io_err("rename into", &dest))?;
            sync_dir(parent);
            Ok(())
        })
        .await
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        self.run(path, |root, full| {
            let Some(meta) = beneath(root, full)? else {
                return Ok(false);
            };
            if !meta.is_dir() {
                return match std::fs::remove_file(full) {
                    Ok(()) => Ok(true),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(io_err("remove", full)(e)),
                };
            }
            // Large files directly inside (an upload's data) are held open across the removal and closed on
            // another thread, so freeing their space is off the caller's path.
            let held: Vec<std::fs::File> = std::fs::read_dir(full)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| t.is_file())
                        && e.metadata().is_ok_and(|m| m.len() >= RELEASE_LATER)
                })
                .filter_map(|e| std::fs::File::open(e.path()).ok())
                .collect();
            let removed = remove_dir_if_exists(full);
            held.into_iter().for_each(release_in_background);
            removed
        })
        .await
    }

    async fn append_state(&self, path: &str, state: &str) -> Result<Option<AppendState>> {
        let state = self.full(state);
        self.run(path, move |root, full| {
            let Some(meta) = file_beneath(root, full)? else {
                return Ok(None);
            };
            let saved = read_limited(root, &state, STATE_MAX).ok().flatten();
            Ok(Some(AppendState {
                size: meta.len(),
                saved,
            }))
        })
        .await
    }

    async fn create_append(&self, path: &str, state: &str, saved: Bytes) -> Result<()> {
        let state = self.full(state);
        self.run(path, move |root, full| {
            beneath(root, full)?;
            beneath(root, &state)?;
            let dir = full.parent().unwrap_or(Path::new("/"));
            std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
            std::fs::File::create_new(full).map_err(io_err("create", full))?;
            write_aside(&state, &saved)
        })
        .await
    }

    async fn writer(&self, path: &str, state: &str) -> Result<Option<Box<dyn UploadWriter>>> {
        let state = self.full(state);
        self.run(path, move |root, full| {
            use std::os::unix::fs::OpenOptionsExt;
            if file_beneath(root, full)?.is_none() {
                return Ok(None);
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(full);
            let file = match file {
                Ok(f) => f,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(io_err("open", full)(e)),
            };
            let start = file.metadata().map_err(io_err("stat", full))?.len();
            let saved = read_limited(root, &state, STATE_MAX).ok().flatten();
            let writer: Box<dyn UploadWriter> =
                Box::new(FsWriter::new(file, full.to_path_buf(), start, state, saved));
            Ok(Some(writer))
        })
        .await
    }

    async fn seal(&self, path: &str, _state: &str) -> Result<u64> {
        self.run(path, |root, full| {
            let (file, meta) = open_file(root, full)?
                .ok_or_else(|| io_err("open", full)(io::ErrorKind::NotFound.into()))?;
            file.sync_all().map_err(io_err("sync", full))?;
            Ok(meta.len())
        })
        .await
    }

    fn durable_appends(&self) -> bool {
        false
    }
}
