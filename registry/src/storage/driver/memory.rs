//! The in-memory driver (`registry serve inmem`): files live in process memory and are lost on exit. Each
//! operation takes one lock, so each is atomic; directories are the prefixes of file names.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::{AppendState, Driver, Entry, FileInfo, Opened, ReadMode, UploadWriter};
use crate::storage::{ByteRange, Result, StorageError};

/// Bytes per frame of a read stream.
const FRAME: usize = 256 * 1024;

type Files = BTreeMap<String, MemFile>;

/// Files held in memory.
#[derive(Default)]
pub struct MemoryDriver {
    files: Arc<Mutex<Files>>,
}

#[derive(Clone)]
struct MemFile {
    bytes: Bytes,
    modified: SystemTime,
    /// Bumped on every write, for [`FileInfo::stamp`].
    version: u64,
}

impl MemFile {
    fn info(&self) -> FileInfo {
        FileInfo {
            size: self.bytes.len() as u64,
            modified: Some(self.modified),
            stamp: self.version.to_string(),
        }
    }
}

/// The files below the directory `dir`, with their names relative to it.
fn below<'a>(files: &'a Files, dir: &str) -> impl Iterator<Item = (&'a str, &'a MemFile)> {
    let prefix = match dir.trim_end_matches('/') {
        "" => String::new(),
        dir => format!("{dir}/"),
    };
    files
        .range(prefix.clone()..)
        .map_while(move |(k, f)| k.strip_prefix(prefix.as_str()).map(|rest| (rest, f)))
}

/// Writes a file, refusing to put one where a directory is.
fn store(files: &mut Files, path: &str, bytes: Bytes) -> Result<()> {
    if below(files, path).next().is_some() {
        return Err(not_a_file(path));
    }
    let version = files.get(path).map_or(0, |f| f.version + 1);
    let modified = SystemTime::now();
    files.insert(
        path.to_string(),
        MemFile {
            bytes,
            modified,
            version,
        },
    );
    Ok(())
}

fn not_a_file(path: &str) -> StorageError {
    StorageError::Corrupt {
        what: path.to_string(),
        reason: "a directory, where a file belongs".into(),
    }
}

fn missing(op: &'static str, path: &str) -> StorageError {
    StorageError::Io {
        op,
        path: path.to_string(),
        source: std::io::ErrorKind::NotFound.into(),
    }
}

impl MemoryDriver {
    /// An empty driver.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Files) -> T) -> T {
        f(&mut self.files.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn file(&self, path: &str) -> Option<MemFile> {
        self.with(|f| f.get(path).cloned())
    }
}

#[async_trait]
impl Driver for MemoryDriver {
    async fn get(&self, path: &str, limit: u64) -> Result<Option<Bytes>> {
        match self.file(path) {
            Some(f) if f.bytes.len() as u64 > limit => Err(StorageError::TooLarge { limit }),
            found => Ok(found.map(|f| f.bytes)),
        }
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        self.with(|f| store(f, path, bytes))
    }

    async fn reader(
        &self,
        path: &str,
        range: Option<ByteRange>,
        _mode: ReadMode,
    ) -> Result<Option<Opened>> {
        let Some(file) = self.file(path) else {
            return Ok(None);
        };
        let info = file.info();
        let range = range.map(|r| r.within(info.size)).transpose()?;
        let part = match range {
            Some(r) => file.bytes.slice(r.start as usize..=r.end as usize),
            None => file.bytes,
        };
        let frames: Vec<std::io::Result<Bytes>> = (0..part.len())
            .step_by(FRAME)
            .map(|i| Ok(part.slice(i..(i + FRAME).min(part.len()))))
            .collect();
        Ok(Some(Opened {
            info,
            range,
            stream: Box::pin(futures_util::stream::iter(frames)),
        }))
    }

    async fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        self.with(|f| match f.get(path) {
            Some(file) => Ok(Some(file.info())),
            None if below(f, path).next().is_some() => Err(not_a_file(path)),
            None => Ok(None),
        })
    }

    async fn list(&self, path: &str) -> Result<Vec<Entry>> {
        let mut out: Vec<Entry> = self.with(|f| {
            below(f, path)
                .map(|(rest, _)| match rest.split_once('/') {
                    Some((dir, _)) => Entry {
                        name: dir.to_string(),
                        is_dir: true,
                    },
                    None => Entry {
                        name: rest.to_string(),
                        is_dir: false,
                    },
                })
                .collect()
        });
        out.dedup();
        Ok(out)
    }

    async fn walk(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.with(|f| below(f, path).map(|(rest, _)| rest.to_string()).collect()))
    }

    async fn move_file(&self, from: &str, to: &str) -> Result<()> {
        self.with(|f| {
            let file = f.get(from).cloned().ok_or_else(|| missing("move", from))?;
            store(f, to, file.bytes)?;
            f.remove(from);
            Ok(())
        })
    }

    async fn delete(&self, path: &str) -> Result<bool> {
        Ok(self.with(|f| {
            let doomed: Vec<String> = below(f, path)
                .map(|(rest, _)| format!("{}/{rest}", path.trim_end_matches('/')))
                .chain([path.to_string()])
                .collect();
            let removed = doomed.iter().filter(|k| f.remove(k.as_str()).is_some());
            removed.count() > 0
        }))
    }

    async fn append_state(&self, path: &str, state: &str) -> Result<Option<AppendState>> {
        Ok(self.with(|f| {
            Some(AppendState {
                size: f.get(path)?.bytes.len() as u64,
                saved: f.get(state).map(|s| s.bytes.clone()),
            })
        }))
    }

    async fn create_append(&self, path: &str, state: &str, saved: Bytes) -> Result<()> {
        self.with(|f| {
            store(f, path, Bytes::new())?;
            store(f, state, saved)
        })
    }

    async fn writer(&self, path: &str, state: &str) -> Result<Option<Box<dyn UploadWriter>>> {
        let Some(now) = self.append_state(path, state).await? else {
            return Ok(None);
        };
        Ok(Some(Box::new(MemoryWriter {
            files: self.files.clone(),
            path: path.to_string(),
            state: state.to_string(),
            now,
            pending: Vec::new(),
        })))
    }

    async fn seal(&self, path: &str, _state: &str) -> Result<u64> {
        self.file(path)
            .map(|f| f.bytes.len() as u64)
            .ok_or_else(|| missing("seal", path))
    }

    fn durable_appends(&self) -> bool {
        true
    }
}

/// Gathers frames, appended to the file (one copy) under the lock at commit.
struct MemoryWriter {
    files: Arc<Mutex<Files>>,
    path: String,
    state: String,
    now: AppendState,
    pending: Vec<Bytes>,
}

#[async_trait]
impl UploadWriter for MemoryWriter {
    fn start(&self) -> u64 {
        self.now.size
    }

    fn saved(&self) -> Option<Bytes> {
        self.now.saved.clone()
    }

    async fn write(&mut self, frames: Arc<[Bytes]>) -> Result<()> {
        self.pending.extend(frames.iter().cloned());
        Ok(())
    }

    async fn commit(self: Box<Self>, state: Bytes) -> Result<u64> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let old = files
            .get(&self.path)
            .filter(|f| f.bytes.len() as u64 == self.now.size)
            .ok_or_else(|| missing("append to", &self.path))?
            .bytes
            .clone();
        let mut whole =
            Vec::with_capacity(old.len() + self.pending.iter().map(Bytes::len).sum::<usize>());
        whole.extend_from_slice(&old);
        self.pending.iter().for_each(|f| whole.extend_from_slice(f));
        let size = whole.len() as u64;
        store(&mut files, &self.path, Bytes::from(whole))?;
        store(&mut files, &self.state, state)?;
        Ok(size)
    }

    async fn cancel(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
