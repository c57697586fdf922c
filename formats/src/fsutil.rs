//! Crash-safe file writing: content is staged in a temporary file beside its destination, hashed while it
//! streams, and made visible by an atomic rename only once it is complete and verified.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest, DigestError, DigestWriter};

/// Errors from staging and committing a file.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A filesystem operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The staged content did not match the expected digest or size; nothing was kept.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StageError + 'a {
    move |source| StageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A file being written under a temporary name; dropped without [`StagedFile::commit`], it is removed.
pub struct StagedFile {
    writer: Option<DigestWriter<io::BufWriter<File>>>,
    temp: PathBuf,
}

impl StagedFile {
    /// Starts a staged file in directory `dir` (created if missing), hashing with `algorithm`.
    pub fn new_in(dir: &Path, algorithm: Algorithm) -> Result<Self, StageError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let temp = dir.join(format!(".tmp-{}", unique_suffix()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        Ok(StagedFile {
            writer: Some(DigestWriter::new(
                io::BufWriter::with_capacity(256 * 1024, file),
                algorithm,
            )),
            temp,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.len())
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Syncs the content and returns its digest and size without making it visible yet.
    fn seal(&mut self) -> Result<(Digest, u64), StageError> {
        let w = self.writer.take().expect("staged file sealed twice");
        let (buf, digest, len) = w.finish();
        let file = buf.into_inner().map_err(|e| StageError::Io {
            op: "write",
            path: self.temp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err("sync", &self.temp))?;
        Ok((digest, len))
    }

    /// Verifies the content against `expected` (digest and, when given, size) and renames it to `dest`.
    /// On any mismatch the temporary file is removed and nothing appears at `dest`.
    pub fn commit_verified(
        mut self,
        expected: &Digest,
        size: Option<u64>,
        dest: &Path,
    ) -> Result<u64, StageError> {
        let (actual, len) = self.seal()?;
        expected.expect(&actual)?;
        if let Some(size) = size.filter(|s| *s != len) {
            return Err(DigestError::SizeMismatch {
                digest: expected.clone(),
                expected: size,
                actual: len,
            }
            .into());
        }
        self.rename_to(dest)?;
        Ok(len)
    }

    /// Renames the content to the path `dest_for(digest)` computes and returns the digest and size.
    pub fn commit_by_digest(
        mut self,
        dest_for: impl FnOnce(&Digest) -> PathBuf,
    ) -> Result<(Digest, u64), StageError> {
        let (digest, len) = self.seal()?;
        let dest = dest_for(&digest);
        self.rename_to(&dest)?;
        Ok((digest, len))
    }

    fn rename_to(&mut self, dest: &Path) -> Result<(), StageError> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        fs::rename(&self.temp, dest).map_err(io_err("rename into", dest))?;
        self.temp = PathBuf::new();
        Ok(())
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.writer.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("staged file already sealed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ignored = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` atomically: a temporary file in the same directory, fsync, then rename.
pub fn atomic_write(dest: &Path, bytes: &[u8]) -> Result<(), StageError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut staged = StagedFile::new_in(dir, Algorithm::Sha256)?;
    staged
        .write_all(bytes)
        .map_err(io_err("write", &staged.temp.clone()))?;
    staged.commit_by_digest(|_| dest.to_path_buf())?;
    Ok(())
}

/// A name suffix unique within this machine for the life of the process (pid, time and a counter).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_digest_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StagedFile::new_in(dir.path(), Algorithm::Sha256).unwrap();
        s.write_all(b"hello").unwrap();
        let dest = dir.path().join("out");
        let err = s
            .commit_verified(&Digest::sha256_of(b"bye"), None, &dest)
            .unwrap_err();
        assert!(matches!(
            err,
            StageError::Digest(DigestError::Mismatch { .. })
        ));
        assert!(!dest.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn verified_content_is_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StagedFile::new_in(dir.path(), Algorithm::Sha256).unwrap();
        s.write_all(b"hello").unwrap();
        let dest = dir.path().join("a/b/out");
        s.commit_verified(&Digest::sha256_of(b"hello"), Some(5), &dest)
            .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
    }

    #[test]
    fn dropped_stage_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = StagedFile::new_in(dir.path(), Algorithm::Sha256).unwrap();
            s.write_all(b"partial").unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
