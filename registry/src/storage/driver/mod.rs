//! Byte-level storage drivers: what [`DistributionStore`](super::store::DistributionStore) needs from a place to
//! keep files, and nothing about registries. Paths are relative, `/`-separated (`docker/registry/v2/...`); a
//! directory exists while something is below it.
//!
//! Every driver gives the same guarantees, which the store's safety rests on:
//! - [`Driver::put`] is atomic: a reader sees the old content or the new, never a torn file.
//! - [`Driver::move_file`] puts a complete file in place at once (rename, or copy then delete on an object store):
//!   a reader never sees a partial one at the destination.
//! - An [`UploadWriter`] adds nothing to its file until [`UploadWriter::commit`]; [`UploadWriter::cancel`], or a
//!   failure before the commit, leaves the file as it was.
//!
//! A driver may offer more (the filesystem's mapped reads for `sendfile`, its overlapped and cache-dropping
//! writes, background flushes); those hide behind the same methods or are options the store asks for
//! ([`ReadMode::Mapped`]), never a second implementation of the layout.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ByteRange, ByteStream, Result};

pub mod fs;
mod fs_append;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

/// What is known about a stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written, when the driver knows.
    pub modified: Option<SystemTime>,
    /// Identifies this version of the file: another value means the content may have changed (a file replaced
    /// or rewritten), so a hash of it must be taken again.
    pub stamp: String,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The entry's name (one path component).
    pub name: String,
    /// True for a directory, false for a file.
    pub is_dir: bool,
}

/// How a file is going to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// The bytes will be read: frames of memory.
    Copy,
    /// The frames go to a socket that sends file pages itself (`server::sendfile`): a driver that can map the
    /// file may hand out views of a mapping, which must not be read (a disk error there is a `SIGBUS`).
    Mapped,
}

/// An open file: what it is, and a stream of the requested bytes.
pub struct Opened {
    /// The file (its whole size, not the range's).
    pub info: FileInfo,
    /// The range being streamed, checked and clamped against the size; `None` for the whole file.
    pub range: Option<ByteRange>,
    /// The bytes.
    pub stream: ByteStream,
}

/// The committed state of an appendable file ([`Driver::writer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendState {
    /// Bytes committed so far.
    pub size: u64,
    /// The caller's state saved by the last commit ([`UploadWriter::commit`]), if any is readable.
    pub saved: Option<Bytes>,
}

/// A byte-level place to keep files: a directory, an object store bucket, memory.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// The whole content of the file at `path`, or `None` when it is missing; [`super::StorageError::TooLarge`]
    /// when it holds more than `limit` bytes.
    async fn get(&self, path: &str, limit: u64) -> Result<Option<Bytes>>;

    /// Writes the file at `path` atomically (replacing it), creating the directories on the way.
    async fn put(&self, path: &str, bytes: Bytes) -> Result<()>;

    /// Opens the file at `path` to read it whole or `range` of it (checked against its size:
    /// [`super::StorageError::RangeNotSatisfiable`] when it starts past the end; an end past the end is
    /// clamped); `None` when it is missing.
    async fn reader(
        &self,
        path: &str,
        range: Option<ByteRange>,
        mode: ReadMode,
    ) -> Result<Option<Opened>>;

    /// The file at `path`, or `None` when no file is there (a directory is no file: an error on drivers with
    /// real directories).
    async fn stat(&self, path: &str) -> Result<Option<FileInfo>>;

    /// The entries directly in the directory `path`, sorted by name; empty when it is missing.
    async fn list(&self, path: &str) -> Result<Vec<Entry>>;

    /// Every file below the directory `path` at any depth, as paths relative to it, sorted; empty when
    /// missing.
    async fn walk(&self, path: &str) -> Result<Vec<String>>;

    /// Moves the file `from` (durable already: written by [`Driver::put`] or sealed by [`Driver::seal`]) to `to`,
    /// replacing it; the destination appears whole or not at all, and the move is durable once this returns.
    async fn move_file(&self, from: &str, to: &str) -> Result<()>;

    /// Removes the file or directory (with everything below) at `path`; false when nothing was there.
    async fn delete(&self, path: &str) -> Result<bool>;

    /// A URL a client may fetch the file from directly, or `None` (the default) to stream it.
    async fn redirect_url(&self, path: &str) -> Result<Option<String>> {
        let _ = path;
        Ok(None)
    }

    /// The committed state of the appendable file `path` (its saved state kept at `state`), or `None` when
    /// there is no such file.
    async fn append_state(&self, path: &str, state: &str) -> Result<Option<AppendState>>;

    /// Creates the appendable file `path`, empty, with the caller's state `saved` kept at `state`.
    async fn create_append(&self, path: &str, state: &str, saved: Bytes) -> Result<()>;

    /// Opens the appendable file `path` (its saved state at `state`) to add bytes at its committed end; `None`
    /// when there is no such file.
    async fn writer(&self, path: &str, state: &str) -> Result<Option<Box<dyn UploadWriter>>>;

    /// Gives up the appendable file `path` before it is deleted: releases what the driver holds for it beyond
    /// its files (an object store's multipart upload). The default does nothing.
    async fn discard_append(&self, path: &str, state: &str) -> Result<()> {
        let _ = (path, state);
        Ok(())
    }

    /// Ends appending to `path` (state at `state`): from now on it is an ordinary, durable file that
    /// [`Driver::reader`] and [`Driver::move_file`] work on. Returns its size.
    async fn seal(&self, path: &str, state: &str) -> Result<u64>;

    /// True when a committed append survives any crash as it was acknowledged (an object store), false when a
    /// power loss may change or shorten it (a filesystem's page cache): then a session resumed by another process
    /// is hashed again before it becomes a blob.
    fn durable_appends(&self) -> bool;
}

/// Adds bytes at the end of an appendable file (an upload session's data).
#[async_trait]
pub trait UploadWriter: Send {
    /// The committed size the writer started from.
    fn start(&self) -> u64;

    /// The caller's state saved by the last commit, as [`AppendState::saved`].
    fn saved(&self) -> Option<Bytes>;

    /// Appends `frames`, in order. Not part of the file until [`UploadWriter::commit`].
    async fn write(&mut self, frames: Arc<[Bytes]>) -> Result<()>;

    /// Makes the written bytes part of the file, with `state` (the caller's, opaque) saved beside them. Returns
    /// the file's new committed size.
    async fn commit(self: Box<Self>, state: Bytes) -> Result<u64>;

    /// Drops the bytes written since the writer opened: the file stays at [`UploadWriter::start`].
    async fn cancel(self: Box<Self>) -> Result<()>;
}

/// The parent directory of a relative path (`""` for a top-level one).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `dir/name`, or `name` when `dir` is empty.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
pub(crate) mod suite;
