//! Deterministic layer writer: the same files give the same tar, diff_id and blob digest on every machine.
//!
//! Entries are sorted bytewise by path (a parent is a prefix of its children, so it always comes first), missing
//! parent directories are added (mode 0755, owner 0), every header carries the same mtime (`SOURCE_DATE_EPOCH` or
//! 0), uid/gid 0 unless overridden, empty user and group names, and the permission bits of the source. Symlinks
//! stay symlinks, the second path of a hardlinked file becomes a hardlink entry, names longer than 100 bytes use
//! GNU long-name entries, and file contents are streamed. One pass produces both digests:
//! tar bytes -> sha256 (diff_id) -> compressor -> sha256 (blob digest) -> output.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::OCI_LAYER_MEDIA_TYPE;
use super::compression::{Compression, GzipBlocks};
use super::pgzip::PreviousBlob;
use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::walk::Walk;

const BLOCK: usize = 512;
const NAME_FIELD: usize = 100;
const DEFAULT_DIR_MODE: u32 = 0o755;
const DEFAULT_FILE_MODE: u32 = 0o644;

/// How a layer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// The mtime written into every header, in seconds since the epoch.
    pub mtime: u64,
}

impl Default for LayerOptions {
    /// gzip at its default level, mtime 0.
    fn default() -> Self {
        LayerOptions {
            compression: Compression::default(),
            mtime: 0,
        }
    }
}

impl LayerOptions {
    /// Default options with the mtime taken from the `SOURCE_DATE_EPOCH` environment variable (0 when unset).
    pub fn from_env() -> Result<Self, LayerError> {
        let value = std::env::var_os("SOURCE_DATE_EPOCH");
        Ok(LayerOptions {
            mtime: Self::parse_source_date_epoch(value.as_deref())?,
            ..LayerOptions::default()
        })
    }

    /// Parses a `SOURCE_DATE_EPOCH` value: absent or empty is 0, otherwise a decimal number of seconds.
    pub fn parse_source_date_epoch(value: Option<&OsStr>) -> Result<u64, LayerError> {
        let Some(value) = value else { return Ok(0) };
        let text = value.to_string_lossy();
        let text = text.trim();
        if text.is_empty() {
            return Ok(0);
        }
        text.parse::<u64>()
            .map_err(|_| LayerError::SourceDateEpoch(text.to_string()))
    }
}

/// What writing a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// Digest of the (compressed) blob as written to the output.
    pub blob_digest: Digest,
    /// Size of the blob in bytes.
    pub blob_size: u64,
    /// Digest of the uncompressed tar: the layer's `diff_id` in the image config.
    pub diff_id: Digest,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// The OCI layer media type, with the compression suffix.
    pub media_type: String,
    /// The blob's block index when it is gzip (for reuse by the next build of the same layer).
    pub blocks: Option<GzipBlocks>,
}

/// Where the content of a [`LayerEntry`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A path on disk. A directory brings its whole tree (symlinks inside are kept, not followed); the path
    /// itself is resolved like a COPY source, following a symlink at the top.
    Disk(PathBuf),
    /// An empty directory created from memory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symlink with this target.
    Symlink(String),
}

/// One item of a layer: a source and the path it gets in the tar, with optional `--chmod`/`--chown` overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path inside the tar (a leading `/` or `./` is dropped; `..` is refused). Empty means the tar's root,
    /// only meaningful for a directory source.
    pub path: String,
    /// Where the content comes from.
    pub source: EntrySource,
    /// Permission bits replacing the source's (applies to files and directories, not symlinks).
    pub mode: Option<u32>,
    /// `(uid, gid)` replacing 0/0.
    pub owner: Option<(u64, u64)>,
}

impl LayerEntry {
    /// Copies `source` from disk to `path` in the tar.
    pub fn from_disk(source: impl Into<PathBuf>, path: impl Into<String>) -> Self {
        Self::new(path, EntrySource::Disk(source.into()))
    }

    /// An empty directory at `path`.
    pub fn dir(path: impl Into<String>) -> Self {
        Self::new(path, EntrySource::Dir)
    }

    /// A regular file at `path` holding `contents`.
    pub fn file(path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self::new(path, EntrySource::File(contents.into()))
    }

    /// A symlink at `path` pointing to `target`.
    pub fn symlink(path: impl Into<String>, target: impl Into<String>) -> Self {
        Self::new(path, EntrySource::Symlink(target.into()))
    }

    /// Sets the permission bits (like `COPY --chmod`).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o7777);
        self
    }

    /// Sets the owner (like `COPY --chown`).
    pub fn with_owner(mut self, uid: u64, gid: u64) -> Self {
        self.owner = Some((uid, gid));
        self
    }

    fn new(path: impl Into<String>, source: EntrySource) -> Self {
        LayerEntry {
            path: path.into(),
            source,
            mode: None,
            owner: None,
        }
    }
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A path inside the tar is not acceptable.
    #[error("invalid path `{path}` in layer: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The source tree holds a socket, fifo or device, which a layer cannot carry.
    #[error(
        "`{path}` is a {kind}: layers hold only files, directories and symlinks; remove it or exclude it"
    )]
    SpecialFile {
        /// The special file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A source file or directory could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The source path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file shrank while it was being written into the layer.
    #[error(
        "`{path}` changed while being read ({expected} bytes expected, {actual} read): retry when it is stable"
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Size from its metadata.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// Writing the layer output failed.
    #[error("cannot write layer: {0}")]
    Write(#[source] io::Error),
    /// `SOURCE_DATE_EPOCH` is not a number of seconds.
    #[error("SOURCE_DATE_EPOCH `{0}` is not a non-negative whole number of seconds")]
    SourceDateEpoch(String),
}

/// Writes `dir`'s tree under `prefix_in_tar` (empty: at the tar's root) as one layer to `out`.
pub fn write_dir_layer(
    dir: &Path,
    prefix_in_tar: &str,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerDigests, LayerError> {
    write_entries_layer([LayerEntry::from_disk(dir, prefix_in_tar)], opts, out)
}

/// Writes `entries` as one layer to `out`. When two entries give the same path, the later one wins.
pub fn write_entries_layer(
    entries: impl IntoIterator<Item = LayerEntry>,
    opts: &LayerOptions,
    out: impl Write,
) -> Result<LayerDigests, LayerError> {
    write_entries_layer_reusing(entries, opts, None, out)
}

/// Like [`write_entries_layer`]; a gzip layer copies the compressed blocks it finds in `previous` (an earlier
/// blob of the same layer and its index) instead of deflating them: the blob is byte for byte the same.
pub fn write_entries_layer_reusing(
    entries: impl IntoIterator<Item = LayerEntry>,
    opts: &LayerOptions,
    previous: Option<PreviousBlob>,
    out: impl Write,
) -> Result<LayerDigests, LayerError> {
    let tree = collect(entries)?;
    let media_type = format!(
        "{OCI_LAYER_MEDIA_TYPE}{}",
        opts.compression.media_type_suffix()
    );
    let out = BufWriter::with_capacity(1 << 16, out);
    if opts.compression == Compression::None {
        // Uncompressed: the blob is the tar, so one hash gives both the diff_id and the blob digest.
        let mut tar = DigestWriter::new(out, Algorithm::Sha256);
        emit(&tree, opts.mtime, &mut tar)?;
        let (out, diff_id, size) = tar.finish();
        out.into_inner()
            .map_err(|e| LayerError::Write(e.into_error()))?
            .flush()
            .map_err(LayerError::Write)?;
        return Ok(LayerDigests {
            blob_digest: diff_id.clone(),
            blob_size: size,
            diff_id,
            uncompressed_size: size,
            media_type,
            blocks: None,
        });
    }
    let blob = DigestWriter::new(out, Algorithm::Sha256);
    let compressor = opts
        .compression
        .compressing_writer_reusing(blob, previous)
        .map_err(LayerError::Write)?;
    let mut tar = DigestWriter::new(compressor, Algorithm::Sha256);
    emit(&tree, opts.mtime, &mut tar)?;
    let (compressor, diff_id, uncompressed_size) = tar.finish();
    let (blob, blocks) = compressor.finish_with_blocks().map_err(LayerError::Write)?;
    let (out, blob_digest, blob_size) = blob.finish();
    out.into_inner()
        .map_err(|e| LayerError::Write(e.into_error()))?
        .flush()
        .map_err(LayerError::Write)?;
    Ok(LayerDigests {
        blob_digest,
        blob_size,
        diff_id,
        uncompressed_size,
        media_type,
        blocks,
    })
}

#[derive(Debug)]
enum NodeKind {
    Dir,
    DiskFile {
        path: PathBuf,
        size: u64,
        /// (dev, inode) when the file has more than one link.
        link_id: Option<(u64, u64)>,
    },
    MemFile(Vec<u8>),
    Symlink(Vec<u8>),
}

#[derive(Debug)]
struct Node {
    kind: NodeKind,
    mode: u32,
    uid: u64,
    gid: u64,
}

type Tree = BTreeMap<Vec<u8>, Node>;

/// Turns a user-given tar path into its canonical bytes: no leading `/` or `./`, no empty or `.` components.
fn normalize_tar_path(path: &str) -> Result<Vec<u8>, LayerError> {
    let invalid = |reason| LayerError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if path.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let mut out = Vec::with_capacity(path.len());
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return Err(invalid("`..` would leave the layer's root")),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c.as_bytes());
            }
        }
    }
    Ok(out)
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(base.len() + 1 + name.len());
    key.extend_from_slice(base);
    if !base.is_empty() {
        key.push(b'/');
    }
    key.extend_from_slice(name);
    key
}

fn collect(entries: impl IntoIterator<Item = LayerEntry>) -> Result<Tree, LayerError> {
    let mut tree = Tree::new();
    for entry in entries {
        let key = normalize_tar_path(&entry.path)?;
        let (uid, gid) = entry.owner.unwrap_or((0, 0));
        let node = |kind, mode: u32| Node {
            kind,
            mode: entry.mode.unwrap_or(mode) & 0o7777,
            uid,
            gid,
        };
        let needs_name = || {
            if key.is_empty() {
                Err(LayerError::InvalidPath {
                    path: entry.path.clone(),
                    reason: "only a directory can be placed at the layer's root",
                })
            } else {
                Ok(())
            }
        };
        match &entry.source {
            EntrySource::Dir => {
                tree.insert(key.clone(), node(NodeKind::Dir, DEFAULT_DIR_MODE));
            }
            EntrySource::File(bytes) => {
                needs_name()?;
                tree.insert(
                    key.clone(),
                    node(NodeKind::MemFile(bytes.clone()), DEFAULT_FILE_MODE),
                );
            }
            EntrySource::Symlink(target) => {
                needs_name()?;
                let mut n = node(NodeKind::Symlink(target.as_bytes().to_vec()), 0o777);
                n.mode = 0o777;
                tree.insert(key.clone(), n);
            }
            EntrySource::Disk(source) => {
                let metadata = fs::metadata(source).map_err(|e| LayerError::Read {
                    path: source.clone(),
                    source: e,
                })?;
                if !metadata.is_dir() {
                    needs_name()?;
                }
                collect_disk(&mut tree, source, metadata, key.clone(), &entry)?;
            }
        }
    }
    add_missing_parents(&mut tree);
    Ok(tree)
}

fn collect_disk(
    tree: &mut Tree,
    root: &Path,
    root_metadata: fs::Metadata,
    root_key: Vec<u8>,
    entry: &LayerEntry,
) -> Result<(), LayerError> {
    let (uid, gid) = entry.owner.unwrap_or((0, 0));
    // The tree orders the entries, so the walk's order does not matter here. The root was looked at through
    // a symlink (a source given by the user); nothing below it is followed.
    let mut root_metadata = Some(root_metadata);
    for walked in Walk::new(root) {
        let walked = walked.map_err(|e| LayerError::Read {
            path: e.path,
            source: e.source,
        })?;
        let metadata = match root_metadata.take() {
            Some(m) if walked.depth() == 0 => m,
            _ => walked.metadata().map_err(|e| LayerError::Read {
                path: e.path,
                source: e.source,
            })?,
        };
        let mut key = root_key.clone();
        for part in walked.rel().components() {
            key = join(&key, part.as_os_str().as_bytes());
        }
        let path = walked.into_path();
        let read_error = |e| LayerError::Read {
            path: path.clone(),
            source: e,
        };
        let file_type = metadata.file_type();
        let mode = entry.mode.unwrap_or(metadata.mode()) & 0o7777;
        let kind = if file_type.is_dir() {
            NodeKind::Dir
        } else if file_type.is_file() {
            NodeKind::DiskFile {
                size: metadata.len(),
                link_id: (metadata.nlink() > 1).then(|| (metadata.dev(), metadata.ino())),
                path: path.clone(),
            }
        } else if file_type.is_symlink() {
            let target = fs::read_link(&path).map_err(read_error)?;
            NodeKind::Symlink(target.as_os_str().as_bytes().to_vec())
        } else {
            let kind = if file_type.is_socket() {
                "socket"
            } else if file_type.is_fifo() {
                "fifo"
            } else if file_type.is_char_device() {
                "character device"
            } else if file_type.is_block_device() {
                "block device"
            } else {
                "special file"
            };
            return Err(LayerError::SpecialFile { path, kind });
        };
        let mode = if matches!(kind, NodeKind::Symlink(_)) {
            0o777
        } else {
            mode
        };
        tree.insert(
            key,
            Node {
                kind,
                mode,
                uid,
                gid,
            },
        );
    }
    Ok(())
}

fn add_missing_parents(tree: &mut Tree) {
    let mut missing = Vec::new();
    for key in tree.keys() {
        for (i, byte) in key.iter().enumerate() {
            if *byte == b'/' && !tree.contains_key(&key[..i]) {
                missing.push(key[..i].to_vec());
            }
        }
    }
    for key in missing {
        tree.entry(key).or_insert(Node {
            kind: NodeKind::Dir,
            mode: DEFAULT_DIR_MODE,
            uid: 0,
            gid: 0,
        });
    }
}

fn emit(tree: &Tree, mtime: u64, w: &mut impl Write) -> Result<(), LayerError> {
    let mut first_links: HashMap<(u64, u64), &[u8]> = HashMap::new();
    for (key, node) in tree {
        if key.is_empty() {
            continue;
        }
        let meta = HeaderFields {
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime,
        };
        match &node.kind {
            NodeKind::Dir => {
                let mut name = key.clone();
                name.push(b'/');
                write_header(w, &name, None, EntryType::Directory, 0, &meta)
                    .map_err(LayerError::Write)?;
            }
            NodeKind::Symlink(target) => {
                write_header(w, key, Some(target), EntryType::Symlink, 0, &meta)
                    .map_err(LayerError::Write)?;
            }
            NodeKind::MemFile(bytes) => {
                write_header(w, key, None, EntryType::Regular, bytes.len() as u64, &meta)
                    .map_err(LayerError::Write)?;
                w.write_all(bytes).map_err(LayerError::Write)?;
                pad(w, bytes.len() as u64).map_err(LayerError::Write)?;
            }
            NodeKind::DiskFile {
                path,
                size,
                link_id,
            } => {
                if let Some(id) = link_id {
                    if let Some(first) = first_links.get(id) {
                        write_header(w, key, Some(first), EntryType::Link, 0, &meta)
                            .map_err(LayerError::Write)?;
                        continue;
                    }
                    first_links.insert(*id, key);
                }
                write_header(w, key, None, EntryType::Regular, *size, &meta)
                    .map_err(LayerError::Write)?;
                stream_file(path, *size, w)?;
                pad(w, *size).map_err(LayerError::Write)?;
            }
        }
    }
    w.write_all(&[0u8; 2 * BLOCK]).map_err(LayerError::Write)
}

struct HeaderFields {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

fn write_header(
    w: &mut impl Write,
    name: &[u8],
    link: Option<&[u8]>,
    entry_type: EntryType,
    size: u64,
    fields: &HeaderFields,
) -> io::Result<()> {
    if let Some(link) = link.filter(|l| l.len() > NAME_FIELD) {
        write_long_name(w, b'K', link)?;
    }
    if name.len() > NAME_FIELD {
        write_long_name(w, b'L', name)?;
    }
    let mut header = Header::new_gnu();
    {
        let old = header.as_old_mut();
        let n = name.len().min(NAME_FIELD);
        old.name[..n].copy_from_slice(&name[..n]);
        if let Some(link) = link {
            let n = link.len().min(NAME_FIELD);
            old.linkname[..n].copy_from_slice(&link[..n]);
        }
    }
    header.set_mode(fields.mode);
    header.set_uid(fields.uid);
    header.set_gid(fields.gid);
    header.set_mtime(fields.mtime);
    header.set_size(size);
    header.set_entry_type(entry_type);
    header.set_cksum();
    w.write_all(header.as_bytes())
}

/// A GNU `././@LongLink` entry carrying a name (`L`) or link target (`K`) longer than the 100-byte field.
fn write_long_name(w: &mut impl Write, kind: u8, data: &[u8]) -> io::Result<()> {
    let mut header = Header::new_gnu();
    let marker = b"././@LongLink";
    header.as_old_mut().name[..marker.len()].copy_from_slice(marker);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(data.len() as u64 + 1);
    header.set_entry_type(EntryType::new(kind));
    header.set_cksum();
    w.write_all(header.as_bytes())?;
    w.write_all(data)?;
    w.write_all(&[0])?;
    pad(w, data.len() as u64 + 1)
}

fn pad(w: &mut impl Write, size: u64) -> io::Result<()> {
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 {
        Ok(())
    } else {
        w.write_all(&[0u8; BLOCK][..BLOCK - rest])
    }
}

/// Copies exactly `size` bytes of `path` (its size when listed) so the header stays true even if it grows.
fn stream_file(path: &Path, size: u64, w: &mut impl Write) -> Result<(), LayerError> {
    let read_error = |e| LayerError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let mut file = File::open(path).map_err(read_error)?.take(size);
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e)),
        };
        w.write_all(&buf[..n]).map_err(LayerError::Write)?;
        copied += n as u64;
    }
    if copied != size {
        return Err(LayerError::FileChanged {
            path: path.to_path_buf(),
            expected: size,
            actual: copied,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{ExpansionLimit, UnpackOptions, decompressing_reader, unpack};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, SystemTime};

    fn plain() -> LayerOptions {
        LayerOptions {
            compression: Compression::None,
            mtime: 0,
        }
    }

    /// (path, type byte, link name, mode, uid, gid, mtime) of one entry, as the `tar` crate reads it.
    type Listed = (String, u8, Option<String>, u32, u64, u64, u64);

    fn list(tar_bytes: &[u8]) -> Vec<Listed> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                    h.entry_type().as_byte(),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8(l.into_owned()).unwrap()),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>, reverse: bool, mtime: u64) {
        let mut items: Vec<_> = files.iter().collect();
        if reverse {
            items.reverse();
        }
        for (path, contents) in items {
            let full = root.join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, contents).unwrap();
            let f = File::options().write(true).open(&full).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
                .unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn same_tree_created_in_different_orders_and_times_gives_the_same_digests(
            files in proptest::collection::btree_map(
                ("(|d/|d/e/|x/)", "f[a-z0-9._-]{0,6}").prop_map(|(dir, name)| format!("{dir}{name}")),
                proptest::collection::vec(any::<u8>(), 0..2000),
                1..8,
            ),
            mtime_a in 0u64..2_000_000_000,
            mtime_b in 0u64..2_000_000_000,
        ) {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            write_tree(a.path(), &files, false, mtime_a);
            write_tree(b.path(), &files, true, mtime_b);
            for compression in [Compression::None, Compression::Zstd { level: 3 }] {
                let opts = LayerOptions { compression, mtime: 7 };
                let da = write_dir_layer(a.path(), "", &opts, io::sink()).unwrap();
                let db = write_dir_layer(b.path(), "", &opts, io::sink()).unwrap();
                prop_assert_eq!(da, db);
            }
        }
    }

    #[test]
    fn digests_are_computed_in_one_pass_over_the_bytes_written() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello"), b"hello world").unwrap();
        for compression in [
            Compression::None,
            Compression::Gzip { level: 6 },
            Compression::Zstd { level: 3 },
        ] {
            let mut blob = Vec::new();
            let opts = LayerOptions {
                compression,
                mtime: 0,
            };
            let d = write_dir_layer(dir.path(), "app", &opts, &mut blob).unwrap();
            assert_eq!(d.blob_digest, Digest::sha256_of(&blob));
            assert_eq!(d.blob_size, blob.len() as u64);
            let mut tar_bytes = Vec::new();
            decompressing_reader(&blob[..], blob.len() as u64, ExpansionLimit::default())
                .unwrap()
                .read_to_end(&mut tar_bytes)
                .unwrap();
            assert_eq!(d.diff_id, Digest::sha256_of(&tar_bytes));
            assert_eq!(d.uncompressed_size, tar_bytes.len() as u64);
            assert_eq!(
                d.media_type,
                format!(
                    "application/vnd.oci.image.layer.v1.tar{}",
                    compression.media_type_suffix()
                )
            );
            let names: Vec<_> = list(&tar_bytes).into_iter().map(|e| e.0).collect();
            assert_eq!(names, ["app/", "app/hello"]);
        }
    }

    #[test]
    fn headers_are_sorted_owned_by_root_with_fixed_mtime_and_source_modes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("b")).unwrap();
        fs::write(dir.path().join("b/run.sh"), b"#!/bin/sh").unwrap();
        fs::set_permissions(
            dir.path().join("b/run.sh"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        fs::write(dir.path().join("a-c"), b"x").unwrap();
        fs::set_permissions(dir.path().join("a-c"), fs::Permissions::from_mode(0o600)).unwrap();
        let mut out = Vec::new();
        let opts = LayerOptions {
            compression: Compression::None,
            mtime: 1_700_000_000,
        };
        write_dir_layer(dir.path(), "", &opts, &mut out).unwrap();
        let entries = list(&out);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a-c", "b/", "b/run.sh"]);
        assert_eq!(entries[0].3, 0o600);
        assert_eq!(entries[2].3, 0o750);
        for e in &entries {
            assert_eq!((e.4, e.5, e.6), (0, 0, 1_700_000_000), "{}", e.0);
        }
        let mut archive = tar::Archive::new(&out[..]);
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            assert_eq!(e.header().groupname_bytes(), Some(&b""[..]));
        }
    }

    #[test]
    fn long_names_and_long_link_targets_round_trip() {
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(150));
        let long_target = format!("/{}", "t".repeat(200));
        let mut out = Vec::new();
        write_entries_layer(
            [
                LayerEntry::file(long_file.clone(), b"content".to_vec()),
                LayerEntry::symlink("short-link", long_target.clone()),
            ],
            &plain(),
            &mut out,
        )
        .unwrap();
        let entries = list(&out);
        assert_eq!(entries[0].0, format!("{long_dir}/"));
        assert_eq!(entries[1].0, long_file);
        assert_eq!(entries[2].0, "short-link");
        assert_eq!(entries[2].2.as_deref(), Some(long_target.as_str()));
        let target = tempfile::tempdir().unwrap();
        unpack(&out[..], target.path(), &UnpackOptions::default()).unwrap();
        assert_eq!(
            fs::read(target.path().join(&long_file)).unwrap(),
            b"content"
        );
    }

    #[test]
    fn symlinks_and_hardlinks_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), b"data").unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("c")).unwrap();
        std::os::unix::fs::symlink("/nowhere", dir.path().join("dangling")).unwrap();
        let mut out = Vec::new();
        write_dir_layer(dir.path(), "", &plain(), &mut out).unwrap();
        let entries = list(&out);
        let summary: Vec<_> = entries
            .iter()
            .map(|e| (e.0.as_str(), e.1, e.2.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", b'0', None),
                ("b", b'1', Some("a")),
                ("c", b'2', Some("a")),
                ("dangling", b'2', Some("/nowhere")),
            ]
        );
        let target = tempfile::tempdir().unwrap();
        unpack(&out[..], target.path(), &UnpackOptions::default()).unwrap();
        let a = fs::metadata(target.path().join("a")).unwrap();
        let b = fs::metadata(target.path().join("b")).unwrap();
        assert_eq!(a.ino(), b.ino());
        assert_eq!(
            fs::read_link(target.path().join("c")).unwrap(),
            Path::new("a")
        );
    }

    #[test]
    fn gnu_tar_lists_what_we_wrote() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/conf"), b"k=v\n").unwrap();
        fs::hard_link(dir.path().join("etc/conf"), dir.path().join("etc/conf2")).unwrap();
        std::os::unix::fs::symlink("conf", dir.path().join("etc/link")).unwrap();
        let long = format!("etc/{}", "n".repeat(130));
        fs::write(dir.path().join(&long), b"").unwrap();
        let layer = dir.path().join("layer.tar");
        let src = dir.path().join("etc");
        write_entries_layer(
            [LayerEntry::from_disk(&src, "etc")],
            &plain(),
            File::create(&layer).unwrap(),
        )
        .unwrap();
        let output = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&layer)
            .output()
            .expect("GNU `tar` is required for this test but could not be run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listing = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<_> = listing.lines().collect();
        assert_eq!(lines.len(), 5, "{listing}");
        assert!(
            lines[0].starts_with("drwxr-xr-x 0/0") && lines[0].ends_with(" etc/"),
            "{listing}"
        );
        assert!(
            lines[1].contains(" 0/0 ") && lines[1].ends_with(" etc/conf"),
            "{listing}"
        );
        assert!(
            lines[2].ends_with(" etc/conf2 link to etc/conf"),
            "{listing}"
        );
        assert!(lines[3].ends_with(" etc/link -> conf"), "{listing}");
        assert!(lines[4].ends_with(&long), "{listing}");
        assert!(
            lines.iter().all(|l| l.contains(" 1970-01-01 ")),
            "{listing}"
        );
    }

    #[test]
    fn source_date_epoch_sets_the_mtime_of_every_entry() {
        assert_eq!(LayerOptions::parse_source_date_epoch(None).unwrap(), 0);
        assert_eq!(
            LayerOptions::parse_source_date_epoch(Some(OsStr::new(""))).unwrap(),
            0
        );
        assert_eq!(
            LayerOptions::parse_source_date_epoch(Some(OsStr::new("1700000000"))).unwrap(),
            1_700_000_000
        );
        let err = LayerOptions::parse_source_date_epoch(Some(OsStr::new("yesterday"))).unwrap_err();
        assert!(err.to_string().contains("`yesterday`"), "{err}");
        // from_env reads the variable this process actually has.
        let from_env = LayerOptions::from_env().unwrap();
        let expected =
            LayerOptions::parse_source_date_epoch(std::env::var_os("SOURCE_DATE_EPOCH").as_deref())
                .unwrap();
        assert_eq!(from_env.mtime, expected);
        let mut out = Vec::new();
        let opts = LayerOptions {
            compression: Compression::None,
            mtime: 1_234_567,
        };
        write_entries_layer([LayerEntry::file("a/b", b"x".to_vec())], &opts, &mut out).unwrap();
        assert!(list(&out).iter().all(|e| e.6 == 1_234_567));
    }

    #[test]
    fn memory_entries_with_chmod_and_chown_get_implied_parents() {
        let mut out = Vec::new();
        write_entries_layer(
            [
                LayerEntry::file("/etc/app/conf.yaml", b"a: 1".to_vec())
                    .with_mode(0o600)
                    .with_owner(1000, 1001),
                LayerEntry::dir("var/lib/app").with_owner(5, 5),
                LayerEntry::symlink("./etc/app/current", "conf.yaml"),
            ],
            &plain(),
            &mut out,
        )
        .unwrap();
        let entries: Vec<_> = list(&out)
            .into_iter()
            .map(|e| (e.0, e.3, e.4, e.5))
            .collect();
        let expected = [
            ("etc/", 0o755, 0, 0),
            ("etc/app/", 0o755, 0, 0),
            ("etc/app/conf.yaml", 0o600, 1000, 1001),
            ("etc/app/current", 0o777, 0, 0),
            ("var/", 0o755, 0, 0),
            ("var/lib/", 0o755, 0, 0),
            ("var/lib/app/", 0o755, 5, 5),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(p, m, u, g)| (p.to_string(), *m, *u, *g))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn paths_leaving_the_root_are_refused() {
        let err = write_entries_layer(
            [LayerEntry::file("a/../../x", b"".to_vec())],
            &plain(),
            io::sink(),
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::InvalidPath { .. }), "{err}");
        assert!(err.to_string().contains("a/../../x"), "{err}");
    }

    #[test]
    fn a_socket_in_the_source_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("control.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let err = write_dir_layer(dir.path(), "", &plain(), io::sink()).unwrap_err();
        match &err {
            LayerError::SpecialFile { path, kind } => {
                assert_eq!(path, &socket);
                assert_eq!(*kind, "socket");
            }
            other => panic!("unexpected error {other}"),
        }
        assert!(err.to_string().contains("control.sock"), "{err}");
    }
}
