//! Random access to the members of an untrusted tar archive or directory that holds an image (OCI layout
//! or docker archive): one pass over the tar headers records where each member's data lies, then members
//! are read in any order straight from the file, without unpacking anything.
//!
//! Member names are normalised (`./a//b` -> `a/b`); a name that is absolute or climbs out with `..` makes
//! the whole archive refused. Symlinks and hardlinks between members are followed inside the archive only.
//! A gzip- or zstd-compressed archive (`docker save | gzip`) is decompressed once into an unlinked scratch
//! file, since members can only be read in place from a plain tar.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use formats::digest::{Digest, DigestReader};
use formats::layer::{Compression, ExpansionLimit, decompressing_reader};
use formats::manifest::Descriptor;
use formats::oci_layout::MAX_JSON_BLOB;

use super::details::JsonBlobs;
use super::{StoreError, io_err, verify_err};

/// How many symlinks are followed when resolving one member.
const MAX_LINK_HOPS: usize = 8;

/// Normalises a member name, refusing absolute paths and `..`. Returns `None` for such names.
pub(crate) fn safe_name(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Resolves `target` of a symlink at `at` relative to the link's directory; `None` when it escapes.
fn link_target(at: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = at.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[derive(Debug, Clone)]
pub(crate) enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
    Other,
}

/// Where the image's files come from: a tar archive read in place, or a directory.
#[derive(Debug)]
pub(crate) enum ArchiveSource {
    /// A tar file and the position of each member's data.
    Tar {
        path: PathBuf,
        file: File,
        members: HashMap<String, Member>,
    },
    /// A directory.
    Dir { path: PathBuf },
}

/// A reader of `size` bytes at `offset` of a file, by positioned reads (no shared cursor).
pub(crate) struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl ArchiveSource {
    /// Opens a directory as is, or indexes a tar file's members. A gzip- or zstd-compressed tar is first
    /// decompressed within `limit`, streaming, into an anonymous temporary file in `scratch` (unlinked at
    /// once, so it vanishes with the process whatever happens).
    pub(crate) fn open(
        path: &Path,
        scratch: &Path,
        limit: ExpansionLimit,
    ) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(path).map_err(io_err("open", path))?;
        if meta.is_dir() {
            return Ok(ArchiveSource::Dir {
                path: path.to_path_buf(),
            });
        }
        let mut file = File::open(path).map_err(io_err("open", path))?;
        let mut magic = [0u8; 4];
        let n = file.read_at(&mut magic, 0).map_err(io_err("read", path))?;
        if Compression::detect(&magic[..n]) != Compression::None {
            file = decompress_to_scratch(path, file, meta.len(), scratch, limit)?;
        }
        let members = index_tar(path, &file)?;
        Ok(ArchiveSource::Tar {
            path: path.to_path_buf(),
            file,
            members,
        })
    }

    /// The archive or directory path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            ArchiveSource::Tar { path, .. } | ArchiveSource::Dir { path } => path,
        }
    }

    fn bad(&self, reason: String) -> StoreError {
        StoreError::BadArchive {
            path: self.path().to_path_buf(),
            reason,
        }
    }

    /// Resolves a member name through links to a regular file: `(offset, size)`.
    fn locate(&self, name: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let ArchiveSource::Tar { members, .. } = self else {
            return Ok(None);
        };
        let mut current = safe_name(name).ok_or_else(|| StoreError::UnsafeEntry {
            path: self.path().to_path_buf(),
            entry: name.to_string(),
        })?;
        for _ in 0..MAX_LINK_HOPS {
            match members.get(&current) {
                None => return Ok(None),
                Some(Member::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Member::Symlink(target)) => {
                    current =
                        link_target(&current, target).ok_or_else(|| StoreError::UnsafeEntry {
                            path: self.path().to_path_buf(),
                            entry: format!("{current} -> {target}"),
                        })?;
                }
                Some(Member::Hardlink(target)) => current = target.clone(),
                Some(Member::Other) => {
                    return Err(self.bad(format!("`{current}` is not a regular file")));
                }
            }
        }
        Err(self.bad(format!("`{name}`: too many levels of links")))
    }

    /// True when the member (or file in the directory) exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        match self {
            ArchiveSource::Tar { .. } => self.locate(name).is_ok_and(|l| l.is_some()),
            ArchiveSource::Dir { path } => safe_name(name).is_some_and(|n| path.join(n).is_file()),
        }
    }

    /// Opens a member for streaming; returns the reader and its size.
    pub(crate) fn open_member(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64), StoreError> {
        let missing = || self.bad(format!("`{name}` is missing"));
        match self {
            ArchiveSource::Tar { file, .. } => {
                let (offset, size) = self.locate(name)?.ok_or_else(missing)?;
                Ok((
                    Box::new(RangeReader {
                        file,
                        pos: offset,
                        end: offset + size,
                    }),
                    size,
                ))
            }
            ArchiveSource::Dir { path } => {
                let rel = safe_name(name).ok_or_else(|| StoreError::UnsafeEntry {
                    path: path.clone(),
                    entry: name.to_string(),
                })?;
                let full = path.join(rel);
                let file = match File::open(&full) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(io_err("open", &full)(e)),
                };
                let size = file.metadata().map_err(io_err("stat", &full))?.len();
                Ok((
                    Box::new(io::BufReader::with_capacity(256 * 1024, file)),
                    size,
                ))
            }
        }
    }

    /// Reads a small member (at most [`MAX_JSON_BLOB`] bytes) into memory.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let (reader, size) = self.open_member(name)?;
        if size > MAX_JSON_BLOB {
            return Err(self.bad(format!(
                "`{name}` is {size} bytes, more than the {MAX_JSON_BLOB} allowed for JSON"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON_BLOB)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", self.path()))?;
        Ok(bytes)
    }

    /// The path of a blob in an OCI layout: `blobs/<alg>/<hex>`.
    pub(crate) fn blob_name(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm().as_str(), d.hex())
    }

    /// Opens a blob of an OCI layout, checking its size; the caller verifies the digest while streaming.
    pub(crate) fn open_blob(&self, d: &Descriptor) -> Result<Box<dyn Read + '_>, StoreError> {
        let name = Self::blob_name(&d.digest);
        let (reader, size) = self.open_member(&name)?;
        if size != d.size {
            return Err(self.bad(format!(
                "blob {} is {size} bytes but its descriptor says {}",
                d.digest, d.size
            )));
        }
        Ok(reader)
    }
}

impl JsonBlobs for ArchiveSource {
    fn json_blob(&self, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
        let name = Self::blob_name(&d.digest);
        let bytes = self.read_small(&name)?;
        let reader = DigestReader::new(bytes.as_slice(), d.digest.algorithm());
        reader
            .verify_to_end(&d.digest, Some(d.size))
            .map_err(|e| verify_err(format!("`{name}` in the archive"), e, self.path()))?;
        Ok(bytes)
    }
}

/// Decompresses `file` (`size` bytes) within `limit` into a new, already unlinked file in `scratch` and
/// returns that file.
fn decompress_to_scratch(
    path: &Path,
    file: File,
    size: u64,
    scratch: &Path,
    limit: ExpansionLimit,
) -> Result<File, StoreError> {
    std::fs::create_dir_all(scratch).map_err(io_err("create directory", scratch))?;
    let temp = scratch.join(format!(".tmp-archive-{}", formats::fsutil::unique_suffix()));
    let mut out = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(io_err("create", &temp))?;
    let removed = std::fs::remove_file(&temp);
    removed.map_err(io_err("remove", &temp))?;
    let mut reader = decompressing_reader(file, size, limit).map_err(io_err("decompress", path))?;
    let mut writer = io::BufWriter::with_capacity(256 * 1024, &mut out);
    io::copy(&mut reader, &mut writer).map_err(|source| StoreError::ArchiveIo {
        path: path.to_path_buf(),
        what: "cannot decompress the archive".into(),
        source,
    })?;
    writer.flush().map_err(io_err("write", scratch))?;
    drop(writer);
    out.seek(io::SeekFrom::Start(0))
        .map_err(io_err("rewind", scratch))?;
    Ok(out)
}

/// One pass over the tar headers (data skipped by seeking): member name -> where its data lies.
fn index_tar(path: &Path, file: &File) -> Result<HashMap<String, Member>, StoreError> {
    let bad = |what: &str| {
        let what = what.to_string();
        move |source| StoreError::ArchiveIo {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let mut archive = tar::Archive::new(file);
    let entries = archive
        .entries_with_seek()
        .map_err(bad("not a tar archive"))?;
    let mut members = HashMap::new();
    for entry in entries {
        let entry = entry.map_err(bad("not a valid tar archive"))?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = safe_name(&raw_name).ok_or_else(|| StoreError::UnsafeEntry {
            path: path.to_path_buf(),
            entry: raw_name.clone(),
        })?;
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let kind = entry.header().entry_type();
        let member = if kind.is_file() || kind == tar::EntryType::Continuous {
            Member::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if kind.is_symlink() {
            Member::Symlink(link.unwrap_or_default())
        } else if kind.is_hard_link() {
            let target = link.unwrap_or_default();
            Member::Hardlink(safe_name(&target).ok_or_else(|| StoreError::UnsafeEntry {
                path: path.to_path_buf(),
                entry: format!("{raw_name} => {target}"),
            })?)
        } else {
            Member::Other
        };
        if name.is_empty() {
            continue;
        }
        members.insert(name, member);
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_name_normalises_and_refuses_escapes() {
        assert_eq!(safe_name("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(safe_name("manifest.json").as_deref(), Some("manifest.json"));
        assert_eq!(safe_name("../x"), None);
        assert_eq!(safe_name("a/../../x"), None);
        assert_eq!(safe_name("a/../b"), None);
        assert_eq!(safe_name("/etc/passwd"), None);
    }

    #[test]
    fn symlink_targets_resolve_inside_the_archive_only() {
        assert_eq!(
            link_target("abc/layer.tar", "../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(link_target("layer.tar", "../x"), None);
        assert_eq!(link_target("a/l", "/etc/passwd"), None);
    }
}
