//! Safe unpacking of one untrusted, uncompressed layer tar onto a directory, applying OCI whiteouts.
//!
//! Unpacking an image's layers in order onto one directory yields its rootfs. The input must already be
//! decompressed: wrap a blob in [`super::decompressing_reader`] first. Rules, and why:
//! - A leading `/` is dropped, as docker does, so `/etc/passwd` lands at `TARGET/etc/passwd`. Any `..` component
//!   is refused: it has no legitimate use in a layer.
//! - Symlinks are never followed while creating entries: every existing component of an entry's parent path is
//!   checked with `symlink_metadata`, and a symlink there is refused ([`UnpackError::Unsafe`]). The entry's own
//!   path is removed (not written through) when it exists, like docker: a file replaces a directory, a symlink
//!   replaces a file, only a directory over a directory merges.
//! - Hardlinks must name an existing non-directory inside the target, reached without symlinks.
//! - Devices and fifos are refused unless [`UnpackOptions::allow_devices`] is set; then they are skipped and
//!   listed in [`UnpackReport::skipped`] (this unpacker never calls mknod, which needs root).
//! - Modes come from the headers, with setuid/setgid dropped unless [`UnpackOptions::allow_setuid`]. Directory
//!   modes and mtimes are applied at the end (so a read-only directory can still be filled), after checking again
//!   that the path is still a real directory. Symlink mtimes are not set.
//! - `.wh.NAME` removes `NAME` left by lower layers; `.wh..wh..opq` empties its directory of everything that
//!   did not come from this same layer.
//!
//! The checks assume no other process changes the target while unpacking (no defence against races).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::EntryType;

use crate::walk::Walk;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";

/// What an unpack may do beyond the safe defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Skip (and report) device nodes and fifos instead of refusing the layer.
    pub allow_devices: bool,
    /// Keep setuid and setgid bits.
    pub allow_setuid: bool,
    /// Set each entry's uid/gid from its header (needs root; otherwise files belong to the caller).
    pub preserve_ownership: bool,
}

/// What an unpack did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Tar entries read (long-name and PAX header entries not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hardlinks created.
    pub hardlinks: u64,
    /// Whiteouts (including opaque ones) applied.
    pub whiteouts: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries skipped because of the options (devices and fifos with `allow_devices`).
    pub skipped: Vec<String>,
}

/// Why a layer could not be unpacked. Entries before the failing one may already be on disk.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry would write outside the target, through a symlink, or create something dangerous.
    #[error("refusing layer entry `{entry}`: {reason}")]
    Unsafe {
        /// The entry's name as written in the tar.
        entry: String,
        /// What makes it unsafe.
        reason: String,
    },
    /// The entry is malformed or conflicts with what is already there.
    #[error("cannot unpack layer entry `{entry}`: {reason}")]
    Invalid {
        /// The entry's name as written in the tar.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A numeric field of the entry's tar header does not parse.
    #[error("cannot unpack layer entry `{entry}`: bad {field}: {source}")]
    BadHeader {
        /// The entry's name as written in the tar.
        entry: String,
        /// The field (`mode field`, `mtime field`, `uid`, `gid`).
        field: &'static str,
        /// The tar crate's error.
        source: io::Error,
    },
    /// A file-system operation failed.
    #[error("cannot unpack layer entry `{entry}` to `{path}`: {source}")]
    Io {
        /// The entry's name as written in the tar.
        entry: String,
        /// The path being written.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The tar stream itself could not be read (truncated or corrupt; is it still compressed?).
    #[error("cannot read layer tar: {0}")]
    Read(#[source] io::Error),
    /// The target is not an existing directory.
    #[error("unpack target `{0}` is not an existing directory")]
    Target(PathBuf),
}

/// Unpacks one uncompressed layer tar from `reader` onto `target`, which must be an existing directory.
pub fn unpack(
    reader: impl Read,
    target: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    if !fs::metadata(target).is_ok_and(|m| m.is_dir()) {
        return Err(UnpackError::Target(target.to_path_buf()));
    }
    let mut unpacker = Unpacker {
        target,
        opts,
        written: HashSet::new(),
        dirs: Vec::new(),
        report: UnpackReport::default(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        unpacker.apply(&mut entry)?;
    }
    unpacker.finish_dirs()?;
    Ok(unpacker.report)
}

struct DirAttributes {
    entry: String,
    rel: Vec<Vec<u8>>,
    mode: u32,
    mtime: u64,
}

struct Unpacker<'a> {
    target: &'a Path,
    opts: &'a UnpackOptions,
    /// Relative paths created by this layer: an opaque whiteout keeps them.
    written: HashSet<PathBuf>,
    dirs: Vec<DirAttributes>,
    report: UnpackReport,
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Unsafe {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

fn bad_header<'a>(
    entry: &'a str,
    field: &'static str,
) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::BadHeader {
        entry: entry.to_string(),
        field,
        source,
    }
}

fn invalid_entry(entry: &str, reason: impl Into<String>) -> UnpackError {
    UnpackError::Invalid {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// Splits a tar path into its components, dropping a leading `/`, empty and `.` parts; refuses `..`.
fn components(raw: &[u8], entry: &str, what: &str) -> Result<Vec<Vec<u8>>, UnpackError> {
    let mut parts = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(unsafe_entry(
                    entry,
                    format!("{what} contains `..`, which could leave the target"),
                ));
            }
            p => parts.push(p.to_vec()),
        }
    }
    Ok(parts)
}

fn relative(parts: &[Vec<u8>]) -> PathBuf {
    parts.iter().map(|p| OsStr::from_bytes(p)).collect()
}

fn display(parts: &[Vec<u8>]) -> String {
    String::from_utf8_lossy(&parts.join(&b'/')).into_owned()
}

impl Unpacker<'_> {
    fn io(&self, entry: &str, path: &Path) -> impl FnOnce(io::Error) -> UnpackError {
        let entry = entry.to_string();
        let path = path.to_path_buf();
        move |source| UnpackError::Io {
            entry,
            path,
            source,
        }
    }

    /// Walks `parts` from the target, refusing symlinks; creates missing directories when `create` is set.
    /// Returns `None` when a component is missing and `create` is not set.
    fn walk_dirs(
        &mut self,
        parts: &[Vec<u8>],
        entry: &str,
        create: bool,
        what: &str,
    ) -> Result<Option<PathBuf>, UnpackError> {
        let mut path = self.target.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            path.push(OsStr::from_bytes(part));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(unsafe_entry(
                        entry,
                        format!(
                            "{what} goes through the symlink `{}`; entries are never created through symlinks",
                            display(&parts[..=i])
                        ),
                    ));
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(invalid_entry(
                        entry,
                        format!(
                            "{what} goes through `{}`, which is not a directory",
                            display(&parts[..=i])
                        ),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !create {
                        return Ok(None);
                    }
                    fs::create_dir(&path).map_err(self.io(entry, &path))?;
                    self.written.insert(relative(&parts[..=i]));
                }
                Err(e) => return Err(self.io(entry, &path)(e)),
            }
        }
        Ok(Some(path))
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let header = entry.header();
        let entry_type = header.entry_type();
        if matches!(
            entry_type,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        self.report.entries += 1;
        let parts = components(&raw, &name, "the path")?;
        let Some((last, parents)) = parts.split_last() else {
            if entry_type.is_dir() {
                return Ok(());
            }
            return Err(invalid_entry(
                &name,
                "a non-directory entry names the target itself",
            ));
        };
        if last.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(&name, parents, last);
        }
        let header_mode = header.mode().map_err(bad_header(&name, "mode field"))?;
        let mut mode = header_mode & 0o7777;
        if !self.opts.allow_setuid {
            mode &= !0o6000;
        }
        let mtime = header.mtime().map_err(bad_header(&name, "mtime field"))?;
        let owner = if self.opts.preserve_ownership {
            let uid = header.uid().map_err(bad_header(&name, "uid"))?;
            let gid = header.gid().map_err(bad_header(&name, "gid"))?;
            Some((
                u32::try_from(uid).map_err(|_| invalid_entry(&name, "uid too large"))?,
                u32::try_from(gid).map_err(|_| invalid_entry(&name, "gid too large"))?,
            ))
        } else {
            None
        };
        if matches!(
            entry_type,
            EntryType::Char | EntryType::Block | EntryType::Fifo
        ) {
            if self.opts.allow_devices {
                self.report.skipped.push(name);
                return Ok(());
            }
            return Err(unsafe_entry(
                &name,
                "device nodes and fifos are refused (set UnpackOptions::allow_devices to skip them)",
            ));
        }
        let link = entry.link_name_bytes().map(|l| l.into_owned());

        let parent = self
            .walk_dirs(parents, &name, true, "the path")?
            .unwrap_or_else(|| self.target.to_path_buf());
        let dest = parent.join(OsStr::from_bytes(last));
        let existing = match fs::symlink_metadata(&dest) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(&name, &dest)(e)),
        };
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|m| m.is_dir() && !m.file_type().is_symlink());

        match entry_type {
            EntryType::Directory => {
                if !existing_is_dir {
                    if existing.is_some() {
                        fs::remove_file(&dest).map_err(self.io(&name, &dest))?;
                    }
                    fs::create_dir(&dest).map_err(self.io(&name, &dest))?;
                }
                self.dirs.push(DirAttributes {
                    entry: name.clone(),
                    rel: parts.clone(),
                    mode,
                    mtime,
                });
                self.report.dirs += 1;
            }
            EntryType::Regular | EntryType::Continuous => {
                self.remove(&name, &dest, existing.as_ref())?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dest)
                    .map_err(self.io(&name, &dest))?;
                let written = copy(entry, &mut file, &name, &dest)?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(self.io(&name, &dest))?;
                if let Some(time) = system_time(mtime) {
                    file.set_modified(time).map_err(self.io(&name, &dest))?;
                }
                self.report.files += 1;
                self.report.bytes += written;
            }
            EntryType::Symlink => {
                let link = link
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| invalid_entry(&name, "symlink without a target"))?;
                self.remove(&name, &dest, existing.as_ref())?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &dest)
                    .map_err(self.io(&name, &dest))?;
                self.report.symlinks += 1;
            }
            EntryType::Link => {
                let link = link.unwrap_or_default();
                let link_parts = components(&link, &name, "the hardlink target")?;
                let Some((link_last, link_parents)) = link_parts.split_last() else {
                    return Err(unsafe_entry(
                        &name,
                        "hardlink to the target directory itself",
                    ));
                };
                if link_parts == parts {
                    return Err(invalid_entry(&name, "hardlink to itself"));
                }
                let missing = || {
                    unsafe_entry(
                        &name,
                        format!(
                            "hardlink target `{}` does not exist inside the target",
                            display(&link_parts)
                        ),
                    )
                };
                let source_dir = self
                    .walk_dirs(link_parents, &name, false, "the hardlink target")?
                    .ok_or_else(missing)?;
                let source = source_dir.join(OsStr::from_bytes(link_last));
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_dir() => {
                        return Err(unsafe_entry(&name, "hardlink to a directory"));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(self.io(&name, &source)(e)),
                }
                self.remove(&name, &dest, existing.as_ref())?;
                // std's hard_link uses linkat without AT_SYMLINK_FOLLOW: a symlink source is linked, not followed.
                fs::hard_link(&source, &dest).map_err(self.io(&name, &dest))?;
                self.report.hardlinks += 1;
            }
            other => {
                return Err(invalid_entry(
                    &name,
                    format!("unsupported tar entry type {:?}", other.as_byte() as char),
                ));
            }
        }
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&dest, Some(uid), Some(gid))
                .map_err(self.io(&name, &dest))?;
        }
        self.written.insert(relative(&parts));
        Ok(())
    }

    /// Removes whatever is at `dest` without following it.
    fn remove(
        &self,
        entry: &str,
        dest: &Path,
        existing: Option<&fs::Metadata>,
    ) -> Result<(), UnpackError> {
        match existing {
            None => Ok(()),
            Some(m) if m.is_dir() && !m.file_type().is_symlink() => {
                fs::remove_dir_all(dest).map_err(self.io(entry, dest))
            }
            Some(_) => fs::remove_file(dest).map_err(self.io(entry, dest)),
        }
    }

    fn whiteout(
        &mut self,
        name: &str,
        parents: &[Vec<u8>],
        last: &[u8],
    ) -> Result<(), UnpackError> {
        let victim = &last[WHITEOUT_PREFIX.len()..];
        if victim.is_empty() || victim == b"." || victim == b".." {
            return Err(unsafe_entry(name, "whiteout names `.` or `..`"));
        }
        self.report.whiteouts += 1;
        let Some(dir) = self.walk_dirs(parents, name, false, "the whiteout")? else {
            return Ok(()); // nothing below to hide
        };
        if last == OPAQUE_WHITEOUT {
            return self.clear_lower(name, &dir, relative(parents));
        }
        if victim.starts_with(WHITEOUT_PREFIX) {
            return Ok(()); // aufs metadata such as `.wh..wh.plnk`: not part of the rootfs
        }
        let path = dir.join(OsStr::from_bytes(victim));
        match fs::symlink_metadata(&path) {
            Ok(m) => self.remove(name, &path, Some(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(name, &path)(e)),
        }
    }

    /// Removes everything under `dir` that this layer did not write (an opaque directory hides lower layers).
    fn clear_lower(&self, name: &str, dir: &Path, rel: PathBuf) -> Result<(), UnpackError> {
        // What this layer did not write is collected (and not entered), then removed after the walk.
        let mut lower = Vec::new();
        let walk = Walk::new(dir).min_depth(1).skipping(|e| {
            let ours = self.written.contains(&rel.join(e.rel()));
            if !ours {
                lower.push(e.path().to_path_buf());
            }
            !ours
        });
        for entry in walk {
            entry.map_err(|e| self.io(name, &e.path)(e.source))?;
        }
        for path in lower {
            let m = fs::symlink_metadata(&path).map_err(self.io(name, &path))?;
            self.remove(name, &path, Some(&m))?;
        }
        Ok(())
    }

    /// Applies directory modes and mtimes, deepest first, to paths that are still real directories.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            let Some((last, parents)) = dir.rel.split_last() else {
                continue;
            };
            let parent = match self.walk_dirs(parents, &dir.entry, false, "the path") {
                Ok(Some(p)) => p,
                // Replaced by a later entry or removed by a whiteout: its attributes no longer apply.
                Ok(None) | Err(UnpackError::Unsafe { .. } | UnpackError::Invalid { .. }) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let path = parent.join(OsStr::from_bytes(last));
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
                _ => continue,
            }
            if let Some(time) = system_time(dir.mtime) {
                let handle = fs::File::open(&path).map_err(self.io(&dir.entry, &path))?;
                handle
                    .set_modified(time)
                    .map_err(self.io(&dir.entry, &path))?;
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(dir.mode))
                .map_err(self.io(&dir.entry, &path))?;
        }
        Ok(())
    }
}

fn system_time(mtime: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(mtime))
}

/// Streams an entry's content to `file`, telling read errors (the tar) from write errors (the disk).
fn copy(
    entry: &mut impl Read,
    file: &mut fs::File,
    name: &str,
    dest: &Path,
) -> Result<u64, UnpackError> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Read(e)),
        };
        file.write_all(&buf[..n])
            .map_err(|source| UnpackError::Io {
                entry: name.to_string(),
                path: dest.to_path_buf(),
                source,
            })?;
        total += n as u64;
    }
}
