//! The one directory walk of the workspace, with one policy: symlinks below the root are never followed
//! (a symlink is an entry like any other, reported as a symlink; the root itself may be one, a directory
//! given by the user), every error names the path it is about, and directories a caller skips are skipped
//! during the walk, never entered. Entries come depth first, each directory before its contents; with
//! [`Walk::sorted`] the entries of each directory come in file-name order, for outputs that must not depend
//! on the filesystem (layer digests, listings).

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A directory walk to set up, then iterate ([`IntoIterator`]) or iterate while skipping
/// ([`Walk::skipping`]).
#[derive(Debug)]
pub struct Walk {
    root: PathBuf,
    inner: walkdir::WalkDir,
}

/// Reading a directory or an entry's metadata failed while walking.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{path}`: {source}")]
pub struct WalkError {
    /// The directory or entry that could not be read.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl WalkError {
    /// True when the path does not exist (a missing root, or an entry removed during the walk).
    pub fn is_not_found(&self) -> bool {
        self.source.kind() == io::ErrorKind::NotFound
    }

    fn from_walkdir(e: walkdir::Error, fallback: &Path) -> WalkError {
        let path = e.path().unwrap_or(fallback).to_path_buf();
        let source = match e.into_io_error() {
            Some(source) => source,
            // Only a symlink loop has no I/O error, and symlinks are never followed; kept for completeness.
            None => io::Error::other("a symlink loop"),
        };
        WalkError { path, source }
    }
}

impl Walk {
    /// Walks `root` and everything below it; the root is the first entry (depth 0).
    pub fn new(root: impl AsRef<Path>) -> Walk {
        Walk {
            root: root.as_ref().to_path_buf(),
            inner: walkdir::WalkDir::new(root.as_ref())
                .follow_links(false)
                .follow_root_links(true),
        }
    }

    /// Lists the entries of directory `dir` only (depth 1), not `dir` itself nor anything deeper.
    pub fn children(dir: impl AsRef<Path>) -> Walk {
        Walk::new(dir).min_depth(1).max_depth(1)
    }

    /// Yields the entries of each directory in file-name order (byte order of the names).
    pub fn sorted(self) -> Walk {
        Walk {
            root: self.root,
            inner: self.inner.sort_by_file_name(),
        }
    }

    /// Leaves out entries less deep than `depth` (the root is depth 0); their contents are still walked.
    pub fn min_depth(self, depth: usize) -> Walk {
        Walk {
            root: self.root,
            inner: self.inner.min_depth(depth),
        }
    }

    /// Does not go deeper than `depth` (1: the root's entries, not theirs).
    pub fn max_depth(self, depth: usize) -> Walk {
        Walk {
            root: self.root,
            inner: self.inner.max_depth(depth),
        }
    }

    /// Walks, leaving out every entry `skip` is true for; a directory left out is not entered, so nothing
    /// below it is read (ignore rules apply during the walk, not after it). Entries the depth limits leave
    /// out are not passed to `skip`.
    pub fn skipping<P: FnMut(&WalkEntry) -> bool>(self, skip: P) -> Entries<P> {
        Entries {
            inner: self.inner.into_iter(),
            root: self.root,
            skip,
        }
    }
}

impl IntoIterator for Walk {
    type Item = Result<WalkEntry, WalkError>;
    type IntoIter = Entries<fn(&WalkEntry) -> bool>;

    fn into_iter(self) -> Self::IntoIter {
        self.skipping(|_| false)
    }
}

/// The entries of a [`Walk`], in walk order.
pub struct Entries<P> {
    inner: walkdir::IntoIter,
    root: PathBuf,
    skip: P,
}

impl<P: FnMut(&WalkEntry) -> bool> Iterator for Entries<P> {
    type Item = Result<WalkEntry, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.inner.next()? {
                Ok(entry) => WalkEntry { inner: entry },
                Err(e) => return Some(Err(WalkError::from_walkdir(e, &self.root))),
            };
            if !(self.skip)(&entry) {
                return Some(Ok(entry));
            }
            if entry.is_dir() {
                self.inner.skip_current_dir();
            }
        }
    }
}

/// One entry of a walk: a file, directory, symlink or special file, never followed.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    inner: walkdir::DirEntry,
}

impl WalkEntry {
    /// The entry's path: the root joined with [`WalkEntry::rel`].
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The entry's path, owned.
    pub fn into_path(self) -> PathBuf {
        self.inner.into_path()
    }

    /// The entry's path relative to the walk's root (empty for the root itself).
    pub fn rel(&self) -> &Path {
        let path = self.inner.path();
        match path.ancestors().nth(self.inner.depth()) {
            Some(root) => path.strip_prefix(root).unwrap_or(path),
            None => path,
        }
    }

    /// [`WalkEntry::rel`] as `/`-separated text (non-UTF-8 bytes replaced), as build contexts and layers
    /// name their paths.
    pub fn rel_string(&self) -> String {
        let mut out = String::new();
        for part in self.rel().components() {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(&part.as_os_str().to_string_lossy());
        }
        out
    }

    /// The last component of the path.
    pub fn file_name(&self) -> &OsStr {
        self.inner.file_name()
    }

    /// How deep the entry is: 0 for the root, 1 for its entries, and so on.
    pub fn depth(&self) -> usize {
        self.inner.depth()
    }

    /// The entry's type, not following a symlink (except for a root given as a symlink: see
    /// [`Walk::new`]; its type here is the link's).
    pub fn file_type(&self) -> fs::FileType {
        self.inner.file_type()
    }

    /// True for a directory that is walked into: a real directory, or a root symlink to one.
    pub fn is_dir(&self) -> bool {
        self.inner.file_type().is_dir()
            || self.inner.depth() == 0 && fs::metadata(self.inner.path()).is_ok_and(|m| m.is_dir())
    }

    /// The entry's metadata, not following a symlink.
    pub fn metadata(&self) -> Result<fs::Metadata, WalkError> {
        fs::symlink_metadata(self.inner.path()).map_err(|source| WalkError {
            path: self.inner.path().to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/deep/er")).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/one"), b"1").unwrap();
        fs::write(root.join("b/deep/er/two"), b"22").unwrap();
        fs::write(root.join("c"), b"333").unwrap();
        symlink("/etc", root.join("b/etc")).unwrap();
        dir
    }

    fn rels(walk: impl IntoIterator<Item = Result<WalkEntry, WalkError>>) -> Vec<String> {
        walk.into_iter().map(|e| e.unwrap().rel_string()).collect()
    }

    #[test]
    fn sorted_walks_are_depth_first_in_name_order_and_never_follow_symlinks() {
        let dir = tree();
        assert_eq!(
            rels(Walk::new(dir.path()).sorted()),
            [
                "",
                "a",
                "a/one",
                "b",
                "b/deep",
                "b/deep/er",
                "b/deep/er/two",
                "b/etc",
                "c"
            ]
        );
        let link = Walk::new(dir.path())
            .into_iter()
            .map(Result::unwrap)
            .find(|e| e.rel_string() == "b/etc")
            .unwrap();
        assert!(link.file_type().is_symlink() && !link.is_dir());
        assert!(link.metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn children_lists_one_level() {
        let dir = tree();
        assert_eq!(rels(Walk::children(dir.path()).sorted()), ["a", "b", "c"]);
        assert_eq!(
            rels(Walk::children(dir.path().join("b")).sorted()),
            ["deep", "etc"]
        );
    }

    #[test]
    fn skipped_directories_are_not_entered() {
        let dir = tree();
        let mut asked = Vec::new();
        let walked = rels(Walk::new(dir.path()).sorted().min_depth(1).skipping(|e| {
            asked.push(e.rel_string());
            e.rel_string() == "b/deep"
        }));
        assert_eq!(walked, ["a", "a/one", "b", "b/etc", "c"]);
        assert!(!asked.iter().any(|p| p.starts_with("b/deep/")), "{asked:?}");
    }

    #[test]
    fn a_root_symlink_is_followed_and_errors_name_their_path() {
        let dir = tree();
        let via = dir.path().join("via");
        symlink(dir.path().join("b"), &via).unwrap();
        assert_eq!(
            rels(Walk::new(&via).sorted().min_depth(1)),
            ["deep", "deep/er", "deep/er/two", "etc"]
        );
        let missing = dir.path().join("missing");
        let err = Walk::new(&missing).into_iter().next().unwrap().unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.path, missing);
        assert!(err.to_string().starts_with("cannot read `"), "{err}");
    }
}
