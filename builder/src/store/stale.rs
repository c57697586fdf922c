//! Leftovers of killed writers, and the locked work directories that let a cleaner tell a dead build's
//! files from a live one's.
//!
//! Two kinds of temporary files live in the store. Staged blobs and index files (`.tmp-*` beside their
//! destination, see [`formats::fsutil::StagedFile`]) are written and renamed within one command; one whose
//! mtime is older than the given age (one hour for [`super::Store::write_guard`]) belongs to a writer that
//! died, since a live writer keeps touching it. Work directories (`tmp/work-*`, made by [`WorkDir`]) hold
//! unpacked root file systems and downloads for a whole build; each holds an exclusive lock on its
//! `.lock` file for as long as its build lives, so one whose lock can be taken is removed at once, whatever
//! its age (the kernel drops the lock when the process dies, even by SIGKILL).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

/// The store's directory for work directories.
pub const WORK_ROOT: &str = "tmp";
/// The lock file inside a work directory.
const LOCK_FILE: &str = ".lock";
/// A lock file younger than this is left alone even when unlocked: its build may not have locked it yet.
const LOCK_GRACE: Duration = Duration::from_secs(2);

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

/// Bytes of the files under `path` (a file or directory); unreadable parts count as 0.
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| tree_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
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
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot remove stale {}: {e}", path.display()),
        )),
    }
}

/// Removes from the store at `store_root` the `.tmp-*` files older than `age` (in the store directory,
/// `blobs/*` and `cache`) and the work directories of dead builds (see the module documentation).
pub fn clean_stale(store_root: &Path, age: Duration) -> io::Result<StaleReport> {
    let now = SystemTime::now();
    let mut report = StaleReport::default();
    let mut dirs = vec![store_root.to_path_buf(), store_root.join("cache")];
    if let Ok(rd) = fs::read_dir(store_root.join("blobs")) {
        dirs.extend(
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    for dir in dirs {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.filter_map(Result::ok) {
            if !entry.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && older_than(&meta, age, now) {
                remove(&entry.path(), false, &mut report)?;
            }
        }
    }
    let work_root = store_root.join(WORK_ROOT);
    if let Ok(rd) = fs::read_dir(&work_root) {
        for entry in rd.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let dead = if meta.is_dir() {
                work_dir_is_dead(&path, age, now)
            } else {
                older_than(&meta, age, now)
            };
            if dead {
                remove(&path, meta.is_dir(), &mut report)?;
            }
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
