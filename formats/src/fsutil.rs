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
/// The writer holds an exclusive lock (`flock`) on it while it exists, which tells cleaners it is alive.
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
        // Held until the file is renamed or removed: a cleaner that can take it knows the writer is gone.
        // Best effort: where locks are unsupported, cleaners fall back to the file's age.
        let _unsupported = file.try_lock();
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

/// Why [`check_beneath`] or [`open_beneath`] refused a path inside a tree.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// A component of the path is a symlink: never followed, since it could point outside the tree.
    #[error(
        "`{0}` is a symlink; symlinks inside the directory are never followed (one could point outside it)"
    )]
    Symlink(PathBuf),
    /// The path names a device, fifo, socket or directory where a regular file belongs.
    #[error("`{0}` is not a regular file")]
    NotRegular(PathBuf),
    /// The path is not below the tree's root, or has a `..` component.
    #[error("`{path}` is not inside `{root}`")]
    Outside {
        /// The path asked for.
        path: PathBuf,
        /// The tree's root.
        root: PathBuf,
    },
    /// Looking at the path failed (`NotFound` when it does not exist; see [`BeneathError::is_not_found`]).
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl BeneathError {
    /// True when the path (or one of its directories) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, BeneathError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Checks that `path` (below `root`) is reached without a symlink: every component after `root` is looked at
/// with `symlink_metadata`, and a symlink anywhere, the last component included, is refused. The root itself
/// may be a symlink (a directory given by the user). Returns the metadata of `path`, or `None` when it (or a
/// directory on the way) does not exist yet, so writers can create the rest.
///
/// This is the one containment rule of directory trees read and written by path (the registry's filesystem
/// store, fsck, gc): it holds unless another process swaps a directory for a symlink between this check and
/// the use of the path, which needs write access to the tree. [`open_beneath`] also refuses a symlink in the
/// last component at open time (`O_NOFOLLOW`).
pub fn check_beneath(root: &Path, path: &Path) -> Result<Option<fs::Metadata>, BeneathError> {
    let outside = || BeneathError::Outside {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
    };
    let rel = path.strip_prefix(root).map_err(|_| outside())?;
    if rel.as_os_str().is_empty() {
        return match fs::metadata(root) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BeneathError::Io {
                op: "look up",
                path: root.to_path_buf(),
                source,
            }),
        };
    }
    let mut at = root.to_path_buf();
    let mut meta = None;
    for part in rel.components() {
        let std::path::Component::Normal(part) = part else {
            return Err(outside());
        };
        if meta.as_ref().is_some_and(|m: &fs::Metadata| !m.is_dir()) {
            return Err(BeneathError::Io {
                op: "look up",
                path: at,
                source: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(BeneathError::Symlink(at)),
            Ok(m) => meta = Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BeneathError::Io {
                    op: "look up",
                    path: at,
                    source,
                });
            }
        }
    }
    Ok(meta)
}

/// Opens the regular file `path` below `root` for reading, reached without symlinks ([`check_beneath`]),
/// with `O_NOFOLLOW` (a symlink put there since is refused too) and `O_NONBLOCK` (a fifo does not hang the
/// open). What was opened is checked with `fstat`: a device, fifo, socket or directory is refused as
/// [`BeneathError::NotRegular`], so `/dev/zero` never reads as an empty or endless file. Returns the file and
/// its metadata.
pub fn open_beneath(root: &Path, path: &Path) -> Result<(File, fs::Metadata), BeneathError> {
    let io = |op, source| BeneathError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    match check_beneath(root, path)? {
        None => return Err(io("open", io::Error::from(io::ErrorKind::NotFound))),
        Some(m) if !m.is_file() => return Err(BeneathError::NotRegular(path.to_path_buf())),
        Some(_) => {}
    }
    let file = crate::sys::open_read_no_follow(path).map_err(|e| {
        if crate::sys::is_symlink_refusal(&e) {
            BeneathError::Symlink(path.to_path_buf())
        } else {
            io("open", e)
        }
    })?;
    let meta = file.metadata().map_err(|e| io("stat", e))?;
    if !meta.is_file() {
        return Err(BeneathError::NotRegular(path.to_path_buf()));
    }
    Ok((file, meta))
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
    fn paths_through_symlinks_or_outside_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/file"), b"inside").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("a/b/host")).unwrap();
        assert!(
            check_beneath(&root, &root.join("a/b/file"))
                .unwrap()
                .unwrap()
                .is_file()
        );
        assert!(
            check_beneath(&root, &root.join("a/b/missing/x"))
                .unwrap()
                .is_none()
        );
        for refused in ["a/up", "a/up/hostname", "a/b/host"] {
            let err = check_beneath(&root, &root.join(refused)).unwrap_err();
            assert!(matches!(err, BeneathError::Symlink(_)), "{refused}: {err}");
            let err = open_beneath(&root, &root.join(refused)).unwrap_err();
            assert!(matches!(err, BeneathError::Symlink(_)), "{refused}: {err}");
        }
        for outside in [dir.path().join("elsewhere"), root.join("a/../../x")] {
            let err = check_beneath(&root, &outside).unwrap_err();
            assert!(matches!(err, BeneathError::Outside { .. }), "{err}");
        }
        let (mut file, meta) = open_beneath(&root, &root.join("a/b/file")).unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!((text.as_str(), meta.len()), ("inside", 6));
        assert!(
            open_beneath(&root, &root.join("a/b/gone"))
                .unwrap_err()
                .is_not_found()
        );
        // A root that is itself a symlink is the user's choice.
        let via = dir.path().join("via");
        std::os::unix::fs::symlink(&root, &via).unwrap();
        assert!(open_beneath(&via, &via.join("a/b/file")).is_ok());
    }

    #[test]
    fn directories_and_fifos_are_not_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        fs::create_dir(dir.path().join("d")).unwrap();
        for name in ["fifo", "d"] {
            let err = open_beneath(dir.path(), &dir.path().join(name)).unwrap_err();
            assert!(matches!(err, BeneathError::NotRegular(_)), "{name}: {err}");
            assert!(err.to_string().ends_with("is not a regular file"), "{err}");
        }
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
