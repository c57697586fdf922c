//! Leftovers of killed writers, and the locks that let a cleaner tell a dead writer's files from a live
//! one's.
//!
//! Two kinds of temporary files live in the store. Staged blobs and index files (`.tmp-*` beside their
//! destination, see [`formats::fsutil::StagedFile`]) are written and renamed within one command; their
//! writer holds an exclusive lock on the file while it writes, so one whose lock can be taken belongs to a
//! writer that is gone (interrupted, killed, crashed) and is removed at once, whatever its age. Work
//! directories (`tmp/work-*`, made by [`WorkDir`]) hold unpacked root file systems and downloads for a whole
//! build; each holds an exclusive lock on its `.lock` file for as long as its build lives, and is removed
//! the same way. The kernel drops a lock when its process dies, even by SIGKILL. A file or directory
//! younger than a short grace period is always kept (its writer may not have locked it yet); one whose lock
//! cannot be checked is removed only when older than the age the caller gives.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use formats::walk::{Walk, WalkEntry};
use tempfile::TempDir;

/// The store's directory for work directories.
pub const WORK_ROOT: &str = "tmp";
/// The lock file inside a work directory.
const LOCK_FILE: &str = ".lock";
/// A lock file or staged file younger than this is left alone even when unlocked: its writer may not have
/// locked it yet.
pub const LOCK_GRACE: Duration = Duration::from_secs(2);

/// A build's private directory under `<store>/tmp`, removed when dropped; locked while it exists.
#[derive(Debug)]
pub struct WorkDir {
    // Field order matters: the directory goes first, then the lock is released.
    dir: TempDir,
    _lock: File,
}

impl WorkDir {
    /// Makes and locks a new work directory in the store at `store_root`.
    pub fn create(store_root: &Path) -> io::Result<WorkDir> {
        let root = store_root.join(WORK_ROOT);
        fs::create_dir_all(&root)?;
        let dir = tempfile::Builder::new().prefix("work-").tempdir_in(&root)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.path().join(LOCK_FILE))?;
        lock.lock()?;
        Ok(WorkDir { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What a cleaning removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaleReport {
    /// Files and directories removed.
    pub paths: Vec<PathBuf>,
    /// Bytes of file content they held.
    pub bytes: u64,
}

fn older_than(meta: &fs::Metadata, age: Duration, now: SystemTime) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|a| a >= age)
}

/// Bytes of the files under `path` (a file or directory; symlinks count as their own size); unreadable parts
/// count as 0.
fn tree_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(meta) => return meta.len(),
        Err(_) => return 0,
    }
    Walk::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| !e.file_type().is_dir())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// True when the work directory `dir` belongs to no live build: its lock can be taken (and the lock file is
/// not brand new), or it has no lock file and is older than `age`.
fn work_dir_is_dead(dir: &Path, age: Duration, now: SystemTime) -> bool {
    let lock_path = dir.join(LOCK_FILE);
    match File::options().write(true).open(&lock_path) {
        Ok(file) => {
            let young = file
                .metadata()
                .map(|m| !older_than(&m, LOCK_GRACE, now))
                .unwrap_or(true);
            !young && file.try_lock().is_ok()
        }
        Err(_) => fs::metadata(dir).is_ok_and(|m| older_than(&m, age, now)),
    }
}

fn remove(path: &Path, is_dir: bool, report: &mut StaleReport) -> io::Result<()> {
    let size = tree_size(path);
    let result = if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match result {
        Ok(()) => {
            report.bytes += size;
            report.paths.push(path.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io::Error::new(
            source.kind(),
            RemoveFailed {
                path: path.to_path_buf(),
                source,
            },
        )),
    }
}

/// A stale file or directory that could not be removed (kept as an [`io::Error`] of the same kind).
#[derive(Debug, thiserror::Error)]
#[error("cannot remove stale {}: {source}", path.display())]
struct RemoveFailed {
    path: PathBuf,
    source: io::Error,
}

/// True when the staged file at `path` belongs to no live writer: past the grace period (`grace`) and its
/// lock can be taken, or its lock cannot be checked and it is older than `age`.
fn staged_file_is_dead(
    path: &Path,
    meta: &fs::Metadata,
    grace: Duration,
    age: Duration,
    now: SystemTime,
) -> bool {
    if !older_than(meta, grace, now) {
        return false;
    }
    match File::open(path).map(|f| f.try_lock()) {
        Ok(Ok(())) => true,
        Ok(Err(fs::TryLockError::WouldBlock)) => false,
        Ok(Err(fs::TryLockError::Error(_))) | Err(_) => older_than(meta, age, now),
    }
}

/// The directories staged files are written in: the store directory, `cache` and `blobs/*`.
fn staging_dirs(store_root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![store_root.to_path_buf(), store_root.join("cache")];
    dirs.extend(
        Walk::children(store_root.join("blobs"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_dir())
            .map(WalkEntry::into_path),
    );
    dirs
}

/// The staged (`.tmp-*`) files this process is writing in the store at `store_root`, found by the process
/// id their names start with (see [`formats::fsutil::unique_suffix`]).
pub fn own_staged_files(store_root: &Path) -> Vec<PathBuf> {
    let prefix = format!(".tmp-{}-", std::process::id());
    staging_dirs(store_root)
        .iter()
        .flat_map(|dir| Walk::children(dir).into_iter().filter_map(Result::ok))
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(WalkEntry::into_path)
        .collect()
}

/// Removes this process's staged files (see [`own_staged_files`]) and reports them: for an interrupted
/// command about to exit, which will never finish them.
pub fn remove_own_staged_files(store_root: &Path) -> StaleReport {
    let mut report = StaleReport::default();
    for path in own_staged_files(store_root) {
        // Best effort: the process is exiting, and what stays is removed by the next cleaning.
        let _ignored = remove(&path, false, &mut report);
    }
    report
}

/// Removes from the store at `store_root` what writers that are gone left behind: `.tmp-*` files (in the
/// store directory, `blobs/*` and `cache`) that no writer holds locked, and the work directories of dead
/// builds (see the module documentation). Anything younger than `age` or [`LOCK_GRACE`], whichever is
/// less, is kept; so is anything whose lock cannot be checked and is younger than `age`.
pub fn clean_stale(store_root: &Path, age: Duration) -> io::Result<StaleReport> {
    let now = SystemTime::now();
    let grace = age.min(LOCK_GRACE);
    let mut report = StaleReport::default();
    // Best effort: what cannot be listed or looked at now is left for a later cleaning.
    for dir in staging_dirs(store_root) {
        for entry in Walk::children(&dir).into_iter().filter_map(Result::ok) {
            if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let path = entry.path();
            if meta.is_file() && staged_file_is_dead(path, &meta, grace, age, now) {
                remove(path, false, &mut report)?;
            }
        }
    }
    let work_root = store_root.join(WORK_ROOT);
    for entry in Walk::children(&work_root)
        .into_iter()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let dead = if meta.is_dir() {
            work_dir_is_dead(path, age, now)
        } else {
            older_than(&meta, age, now)
        };
        if dead {
            remove(path, meta.is_dir(), &mut report)?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age_path(path: &Path, by: Duration) {
        let when = SystemTime::now() - by;
        let file = File::options().read(true).open(path).unwrap();
        file.set_modified(when).unwrap();
    }

    #[test]
    fn old_staged_files_and_dead_work_dirs_are_removed_live_and_fresh_ones_kept() {
        let store = tempfile::tempdir().unwrap();
        let blobs = store.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let old_tmp = blobs.join(".tmp-old");
        let fresh_tmp = blobs.join(".tmp-fresh");
        let blob = blobs.join("ab".repeat(32));
        for p in [&old_tmp, &fresh_tmp, &blob] {
            fs::write(p, b"12345").unwrap();
        }
        age_path(&old_tmp, Duration::from_secs(7200));
        age_path(&blob, Duration::from_secs(7200));
        let old_index_tmp = store.path().join(".tmp-index");
        fs::write(&old_index_tmp, b"{}").unwrap();
        age_path(&old_index_tmp, Duration::from_secs(7200));

        // A work directory whose build died: unlocked, lock file past the grace period.
        let dead = store.path().join("tmp/work-dead");
        fs::create_dir_all(dead.join("rootfs")).unwrap();
        fs::write(dead.join("rootfs/big"), vec![0u8; 1000]).unwrap();
        fs::write(dead.join(LOCK_FILE), b"").unwrap();
        age_path(&dead.join(LOCK_FILE), Duration::from_secs(60));
        // A live one.
        let live = WorkDir::create(store.path()).unwrap();
        age_path(&live.path().join(LOCK_FILE), Duration::from_secs(60));
        fs::write(live.path().join("download"), b"x").unwrap();

        let report = clean_stale(store.path(), Duration::from_secs(3600)).unwrap();
        assert!(!old_tmp.exists() && !old_index_tmp.exists() && !dead.exists());
        assert!(
            fresh_tmp.exists() && blob.exists(),
            "fresh or complete files kept"
        );
        assert!(
            live.path().join("download").exists(),
            "a live build's files kept"
        );
        assert_eq!(report.paths.len(), 3, "{report:?}");
        assert_eq!(report.bytes, 5 + 2 + 1000);
        let live_path = live.path().to_path_buf();
        drop(live);
        assert!(
            !live_path.exists(),
            "a work directory is removed when dropped"
        );
    }

    #[test]
    fn a_staged_file_is_kept_while_its_writer_holds_it_and_removed_at_once_when_it_is_gone() {
        let store = tempfile::tempdir().unwrap();
        let blobs = store.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let partial = blobs.join(".tmp-1-2-3");
        fs::write(&partial, vec![1u8; 300]).unwrap();
        let writer = File::open(&partial).unwrap();
        writer.lock().unwrap();
        age_path(&partial, Duration::from_secs(7200));
        let report = clean_stale(store.path(), Duration::from_secs(3600)).unwrap();
        assert!(
            partial.exists(),
            "a locked staged file is kept, however old"
        );
        assert!(report.paths.is_empty());
        drop(writer);
        // Past the grace period but well under an hour: the writer is gone, so it goes now.
        age_path(&partial, Duration::from_secs(10));
        let report = clean_stale(store.path(), Duration::from_secs(3600)).unwrap();
        assert!(!partial.exists());
        assert_eq!(report.bytes, 300);
    }

    #[test]
    fn a_live_staged_file_is_locked_by_its_writer() {
        use std::io::Write as _;
        let store = tempfile::tempdir().unwrap();
        let blobs = store.path().join("blobs/sha256");
        let mut staged =
            formats::fsutil::StagedFile::new_in(&blobs, formats::digest::Algorithm::Sha256)
                .unwrap();
        staged.write_all(b"partial").unwrap();
        staged.flush().unwrap();
        let own = own_staged_files(store.path());
        assert_eq!(own.len(), 1, "{own:?}");
        age_path(&own[0], Duration::from_secs(7200));
        let report = clean_stale(store.path(), Duration::ZERO).unwrap();
        assert!(own[0].exists() && report.paths.is_empty());
        drop(staged);
        assert!(!own[0].exists());
    }

    #[test]
    fn only_this_processs_staged_files_are_removed_on_interrupt() {
        let store = tempfile::tempdir().unwrap();
        let blobs = store.path().join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        let ours = blobs.join(format!(".tmp-{}-5-6", std::process::id()));
        let theirs = blobs.join(".tmp-1-5-6");
        fs::write(&ours, b"abc").unwrap();
        fs::write(&theirs, b"abc").unwrap();
        let report = remove_own_staged_files(store.path());
        assert_eq!(report.paths, vec![ours.clone()]);
        assert_eq!(report.bytes, 3);
        assert!(!ours.exists() && theirs.exists());
    }

    #[test]
    fn an_unlocked_work_dir_younger_than_the_grace_period_is_kept() {
        let store = tempfile::tempdir().unwrap();
        let young = store.path().join("tmp/work-young");
        fs::create_dir_all(&young).unwrap();
        fs::write(young.join(LOCK_FILE), b"").unwrap();
        let report = clean_stale(store.path(), Duration::from_secs(3600)).unwrap();
        assert!(young.exists());
        assert!(report.paths.is_empty());
    }
}
