//! Downloads that survive the process: the bytes of a blob received so far are kept in a partial file with
//! a checkpoint beside it (how many bytes of the file count, and the hash state after them), so a later run
//! — after a crash, `kill -9` or a lost connection — asks only for the missing range with `Range` and
//! finishes the same hash instead of starting again.
//!
//! Layout: `PARTIAL` holds the bytes, `PARTIAL.state` the checkpoint: 8 bytes little-endian offset, then
//! [`Hasher::save_state`]. The checkpoint is written (renamed into place) only after the bytes it covers
//! were handed to the OS, so it never claims more than the file holds; bytes past it are cut off on resume.
//! A checkpoint that cannot be read (other version, other algorithm, file shorter than it says) starts the
//! download from byte 0.
//!
//! One download at a time owns a partial file: it holds an exclusive `flock` on it while it writes. A second
//! download of the same blob into the same place (another task, or another process saving into the same
//! directory) waits for the lock, then finds the blob in place and does nothing, or continues from the
//! first one's checkpoint when that one stopped early.

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest, DigestError, Hasher};

use super::{ClientError, RegistryClient};

/// Bytes received between two checkpoints.
const CHECKPOINT_EVERY: u64 = 4 * 1024 * 1024;

/// The checkpoint file of the partial file `partial`.
pub(crate) fn state_path(partial: &Path) -> PathBuf {
    let mut name = partial.file_name().unwrap_or_default().to_os_string();
    name.push(".state");
    partial.with_file_name(name)
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ClientError + 'a {
    move |source| ClientError::Io {
        op,
        what: path.display().to_string(),
        source,
    }
}

/// A partial blob file being appended to, hashed as it grows, with a checkpoint every few MiB.
struct PartialFile {
    file: io::BufWriter<File>,
    hasher: Hasher,
    /// Bytes in the file (written or buffered).
    len: u64,
    /// Bytes covered by the last checkpoint.
    checkpointed: u64,
    path: PathBuf,
    state: PathBuf,
}

/// Takes an exclusive advisory lock on `file`, waiting while another descriptor holds it (a wait cut short by a
/// signal is resumed).
fn lock_exclusive(file: &File) -> io::Result<()> {
    loop {
        match file.lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether `file` is still the file at `path` (not renamed away or removed while we waited for its lock).
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What opening a partial file found.
enum Opened {
    /// The partial file, locked, at its checkpoint.
    Partial(PartialFile),
    /// While this call waited for the lock, another download put the blob at its destination.
    Done(u64),
}

impl PartialFile {
    /// Opens `path` locked, where its checkpoint says it stopped (or empty when there is no usable
    /// checkpoint). Blocks while another download holds it; when that one has finished the blob into `dest`
    /// meanwhile, returns [`Opened::Done`] with the blob's size.
    fn open(path: &Path, algorithm: Algorithm, dest: &Path) -> Result<Opened, ClientError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        let state = state_path(path);
        let mut file = loop {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_error("open partial blob", path))?;
            lock_exclusive(&file).map_err(io_error("lock partial blob", path))?;
            if let Ok(done) = fs::metadata(dest) {
                return Ok(Opened::Done(done.len()));
            }
            // The holder renamed or removed the file it held: open the path again.
            if still_at(&file, path) {
                break file;
            }
        };
        let on_disk = file
            .metadata()
            .map_err(io_error("read partial blob", path))?
            .len();
        let (offset, hasher) = fs::read(&state)
            .ok()
            .and_then(|bytes| read_checkpoint(&bytes, algorithm).ok())
            .filter(|(offset, _)| *offset <= on_disk)
            .unwrap_or_else(|| (0, algorithm.hasher()));
        file.set_len(offset)
            .map_err(io_error("truncate partial blob", path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error("seek partial blob", path))?;
        Ok(Opened::Partial(PartialFile {
            file: io::BufWriter::with_capacity(256 * 1024, file),
            hasher,
            len: offset,
            checkpointed: offset,
            path: path.to_path_buf(),
            state,
        }))
    }

    /// Hands the buffered bytes to the OS and records them (and the hash state) in the checkpoint.
    fn checkpoint(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let mut bytes = self.len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.hasher.save_state());
        let mut tmp = self.state.as_os_str().to_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        fs::write(&tmp, &bytes)?;
        fs::rename(&tmp, &self.state)?;
        self.checkpointed = self.len;
        Ok(())
    }

    /// Removes the partial file and its checkpoint.
    fn discard(self) {
        // Removed before the lock goes with the descriptor, so a waiting download starts a new file.
        let _ignored = fs::remove_file(&self.path);
        let _ignored = fs::remove_file(&self.state);
        drop(self.file);
    }

    /// Syncs the bytes, checks digest and size, and renames the file to `dest`; on a mismatch the partial
    /// file and its checkpoint are removed.
    fn finish(
        mut self,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
    ) -> Result<u64, ClientError> {
        let path = self.path.clone();
        self.file
            .flush()
            .map_err(io_error("write partial blob", &path))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(io_error("sync partial blob", &path))?;
        let len = self.len;
        let actual = self.hasher.clone().finish();
        let mismatch = match digest.expect(&actual) {
            Err(e) => Some(e),
            Ok(()) => size
                .filter(|s| *s != len)
                .map(|expected| DigestError::SizeMismatch {
                    digest: digest.clone(),
                    expected,
                    actual: len,
                }),
        };
        if let Some(source) = mismatch {
            self.discard();
            return Err(ClientError::Verification {
                what: format!("blob {digest} (resumed in {})", path.display()),
                source,
            });
        }
        if let Some(dir) = dest.parent() {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        fs::rename(&path, dest).map_err(io_error("rename partial blob into", dest))?;
        let _ignored = fs::remove_file(&self.state);
        Ok(len)
    }
}

/// Reads a checkpoint: the offset and the hash state after it.
fn read_checkpoint(bytes: &[u8], algorithm: Algorithm) -> Result<(u64, Hasher), DigestError> {
    let bad = || DigestError::State(format!("checkpoint of {} bytes", bytes.len()));
    let (offset, state) = bytes.split_at_checked(8).ok_or_else(bad)?;
    let offset = u64::from_le_bytes(offset.try_into().map_err(|_| bad())?);
    let hasher = Hasher::restore_state(state)?;
    if hasher.algorithm() != algorithm {
        return Err(bad());
    }
    Ok((offset, hasher))
}

impl Write for PartialFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        if self.len - self.checkpointed >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl RegistryClient {
    /// Downloads a blob to `dest` (mirrors first, as [`RegistryClient::fetch_blob`]) through the partial
    /// file `partial`, which keeps what was received with a checkpoint beside it (`PARTIAL.state`): when
    /// a download is interrupted — an error, or the process killed — a later call with the same `partial`
    /// requests only the missing bytes (`Range: bytes=N-`) and continues the hash. The blob is verified
    /// (digest, and `size` when given) before it is renamed to `dest`; one that does not match is deleted
    /// with its partial file. `partial` must be on the same filesystem as `dest`; a second download through
    /// the same `partial` (this process or another) waits for the first and then uses what it left (see the
    /// module docs). Returns the blob's size.
    pub async fn fetch_blob_resumable(
        &self,
        host: &str,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
        dest: &Path,
        partial: &Path,
    ) -> Result<u64, ClientError> {
        let eps = self.inner.endpoints(host, repository, true, true)?;
        let mut last = None;
        for ep in &eps {
            let (path, alg, to) = (
                partial.to_path_buf(),
                digest.algorithm(),
                dest.to_path_buf(),
            );
            // Waiting for another download's lock blocks: off the async threads.
            let opened = tokio::task::spawn_blocking(move || PartialFile::open(&path, alg, &to))
                .await
                .map_err(|e| {
                    ClientError::InvalidInput(format!("partial blob open panicked: {e}"))
                })??;
            let mut file = match opened {
                Opened::Partial(file) => file,
                Opened::Done(size) => return Ok(size),
            };
            let start = file.len;
            if start > 0 {
                tracing::debug!(%digest, start, "continuing a partial download");
            }
            let complete = size.is_some_and(|s| s == start);
            let got = if complete {
                Ok(start)
            } else {
                self.download(ep, digest, size, start, &mut file, None)
                    .await
            };
            match got {
                Ok(_) => {
                    let (want, dest) = (digest.clone(), dest.to_path_buf());
                    // Syncing and renaming touch the disk: keep them off the async threads.
                    return tokio::task::spawn_blocking(move || file.finish(&want, size, &dest))
                        .await
                        .map_err(|e| {
                            ClientError::InvalidInput(format!("blob commit panicked: {e}"))
                        })?;
                }
                Err(e) => {
                    // Keep what arrived for the next attempt (or the next run).
                    let _ignored = file.checkpoint();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            ClientError::InvalidInput(format!("no source for `{host}/{repository}`"))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `path` as a partial file whose destination `dest` does not exist yet.
    fn open_partial_for(path: &Path, dest: &Path) -> PartialFile {
        match PartialFile::open(path, Algorithm::Sha256, dest).unwrap() {
            Opened::Partial(f) => f,
            Opened::Done(_) => panic!("no destination was expected"),
        }
    }

    /// Opens `path` as a partial file for a destination that never exists.
    fn open_partial(path: &Path) -> PartialFile {
        open_partial_for(path, &path.with_extension("absent"))
    }

    /// Opens `path` on another thread; the receiver gets the outcome once the lock is free.
    fn open_elsewhere(path: &Path, dest: &Path) -> std::sync::mpsc::Receiver<Opened> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, dest) = (path.to_path_buf(), dest.to_path_buf());
        std::thread::spawn(move || {
            let opened = PartialFile::open(&path, Algorithm::Sha256, &dest).unwrap();
            let _ignored = tx.send(opened);
        });
        rx
    }

    fn still_waiting(rx: &std::sync::mpsc::Receiver<Opened>) -> bool {
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err()
    }

    #[test]
    fn a_second_download_waits_for_the_first_and_finds_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let (path, dest) = (dir.path().join("blob.partial"), dir.path().join("data"));
        let mut first = open_partial_for(&path, &dest);
        let second = open_elsewhere(&path, &dest);
        first.write_all(b"shared blob").unwrap();
        assert!(
            still_waiting(&second),
            "the second download did not wait for the lock"
        );
        first
            .finish(&Digest::sha256_of(b"shared blob"), Some(11), &dest)
            .unwrap();
        match second.recv().unwrap() {
            Opened::Done(size) => assert_eq!(size, 11),
            Opened::Partial(_) => panic!("the finished blob was downloaded again"),
        }
        assert_eq!(fs::read(&dest).unwrap(), b"shared blob");
        assert!(!path.exists());
    }

    #[test]
    fn a_waiting_download_continues_from_a_stopped_one_and_restarts_after_a_discarded_one() {
        let dir = tempfile::tempdir().unwrap();
        let (path, dest) = (dir.path().join("blob.partial"), dir.path().join("data"));
        let mut first = open_partial(&path);
        let second = open_elsewhere(&path, &dest);
        first.write_all(b"first half").unwrap();
        first.checkpoint().unwrap();
        assert!(still_waiting(&second));
        drop(first); // stopped early (lost connection, say)
        let mut second = match second.recv().unwrap() {
            Opened::Partial(f) => f,
            Opened::Done(_) => panic!("nothing was finished"),
        };
        assert_eq!(
            second.len, 10,
            "the checkpoint of the stopped download was not used"
        );
        // This one fails verification and is discarded: a third starts from nothing, on a new file.
        let third = open_elsewhere(&path, &dest);
        assert!(still_waiting(&third));
        second.write_all(b"!").unwrap();
        assert!(
            second
                .finish(&Digest::sha256_of(b"other"), None, &dest)
                .is_err()
        );
        match third.recv().unwrap() {
            Opened::Partial(f) => assert_eq!(f.len, 0),
            Opened::Done(_) => panic!("a discarded blob counted as done"),
        }
        assert!(path.exists(), "the third download has its own partial file");
    }

    #[test]
    fn a_partial_file_reopens_at_its_checkpoint_and_drops_bytes_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        let mut f = open_partial(&path);
        f.write_all(b"hello ").unwrap();
        f.checkpoint().unwrap();
        // Written but never checkpointed: must not count.
        f.write_all(b"garbage").unwrap();
        f.file.flush().unwrap();
        drop(f);
        let mut f = open_partial(&path);
        assert_eq!(f.len, 6);
        f.write_all(b"world").unwrap();
        let dest = dir.path().join("out/data");
        let want = Digest::sha256_of(b"hello world");
        assert_eq!(f.finish(&want, Some(11), &dest).unwrap(), 11);
        assert_eq!(fs::read(&dest).unwrap(), b"hello world");
        assert!(!path.exists() && !state_path(&path).exists());
    }

    #[test]
    fn an_unreadable_checkpoint_starts_from_zero_and_a_mismatch_removes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob.partial");
        fs::write(&path, b"stale bytes").unwrap();
        fs::write(state_path(&path), b"not a checkpoint").unwrap();
        let mut f = open_partial(&path);
        assert_eq!(f.len, 0);
        f.write_all(b"other").unwrap();
        let dest = dir.path().join("data");
        let err = f
            .finish(&Digest::sha256_of(b"wanted"), None, &dest)
            .unwrap_err();
        assert!(matches!(err, ClientError::Verification { .. }), "{err}");
        assert!(!dest.exists() && !path.exists() && !state_path(&path).exists());
    }
}
