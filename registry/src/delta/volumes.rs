//! Volumes for removable media: a delivery directory written as one tar stream cut into files of at most a
//! given size (`PREFIX.vol001`, `PREFIX.vol002`, ...), described by `PREFIX.volumes.json`:
//!
//! ```json
//! { "version": 1, "kind": "sealos-volumes", "volumeSize": 4294967296,
//!   "volumes": [ { "name": "delivery.vol001", "size": 4294967296, "sha256": "sha256:…" } ],
//!   "size": 5000000000, "sha256": "sha256:…" }
//! ```
//!
//! `size` and `sha256` are those of the whole tar (the volumes joined in order). Volume names are file names
//! beside the `.volumes.json`, so the set can be moved as a whole. Before anything is unpacked every volume is
//! checked (present, its size, its sha256, then the whole's): a missing, truncated or corrupt volume is named.
//! Unpacking reads the volumes one after the other as one stream: no joined copy of the tar is made.
//!
//! The tar is deterministic (sorted entries, no owners or times) and holds only directories and regular files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest, Hasher};
use serde::{Deserialize, Serialize};

/// The `kind` of a volume set description.
pub const VOLUMES_KIND: &str = "sealos-volumes";
/// The version this build writes and reads.
pub const VOLUMES_VERSION: u32 = 1;
/// The description's file name suffix: `PREFIX.volumes.json`.
pub const VOLUMES_SUFFIX: &str = ".volumes.json";

/// One volume of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its file name, beside the description.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its sha256.
    pub sha256: Digest,
}

/// The description of a volume set (`PREFIX.volumes.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSet {
    /// Always [`VOLUMES_VERSION`] when written by this build.
    pub version: u32,
    /// Always [`VOLUMES_KIND`].
    pub kind: String,
    /// The largest size of one volume asked for (`--split`).
    pub volume_size: u64,
    /// The volumes, in order.
    pub volumes: Vec<Volume>,
    /// The size of the whole tar.
    pub size: u64,
    /// The sha256 of the whole tar.
    pub sha256: Digest,
}

/// What is wrong while writing or reading volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file operation failed.
    #[error("cannot {op} `{}`: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The description is not a volume set this build reads.
    #[error("`{}` is not a volume set description: {reason}", path.display())]
    BadDescription {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A volume is absent, truncated, too long or corrupt.
    #[error("volume `{}` {problem}; nothing was imported: copy this volume again from the original media", path.display())]
    BadVolume {
        /// The volume file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The volumes are each right but do not join into the recorded whole.
    #[error("the volumes of `{}` do not join into the recorded whole ({problem})", path.display())]
    BadWhole {
        /// The description.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// The directory holds something that cannot be carried (a symlink, a device).
    #[error("`{}` is not a regular file or directory: a delivery holds only those", path.display())]
    Unsupported {
        /// The entry.
        path: PathBuf,
    },
    /// The tar inside the volumes has an entry that cannot be unpacked safely.
    #[error("the volumes hold an entry that is not allowed: {0}")]
    BadEntry(String),
    /// `--split` of zero.
    #[error("a volume size must be at least 1 byte")]
    ZeroSize,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The description's path for `prefix` (`out/delivery` -> `out/delivery.volumes.json`).
pub fn description_path(prefix: &Path) -> PathBuf {
    let mut name = prefix.as_os_str().to_os_string();
    name.push(VOLUMES_SUFFIX);
    PathBuf::from(name)
}

/// The description named by `arg` when it is one: the `.volumes.json` itself, or a `PREFIX` whose
/// `PREFIX.volumes.json` exists. `None` for anything else (a delivery directory, say).
pub fn find_description(arg: &Path) -> Option<PathBuf> {
    if arg.is_file() && arg.to_string_lossy().ends_with(VOLUMES_SUFFIX) {
        return Some(arg.to_path_buf());
    }
    let described = description_path(arg);
    described.is_file().then_some(described)
}

/// Writes consecutive volumes of at most `limit` bytes each, hashing each and the whole.
struct SplitWriter {
    prefix: PathBuf,
    limit: u64,
    current: Option<(BufWriter<File>, PathBuf, Hasher, u64)>,
    volumes: Vec<Volume>,
    whole: Hasher,
    size: u64,
}

impl SplitWriter {
    fn volume_path(&self, n: usize) -> PathBuf {
        let mut name = self.prefix.as_os_str().to_os_string();
        name.push(format!(".vol{n:03}"));
        PathBuf::from(name)
    }

    fn close_current(&mut self) -> std::io::Result<()> {
        if let Some((mut file, path, hasher, size)) = self.current.take() {
            file.flush()?;
            file.get_ref().sync_all()?;
            self.volumes.push(Volume {
                name: file_name(&path),
                size,
                sha256: hasher.finish(),
            });
        }
        Ok(())
    }

    fn finish(mut self) -> std::io::Result<(Vec<Volume>, u64, Digest)> {
        self.close_current()?;
        Ok((self.volumes, self.size, self.whole.finish()))
    }
}

impl Write for SplitWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.current.as_ref().is_some_and(|c| c.3 >= self.limit) {
            self.close_current()?;
        }
        if self.current.is_none() {
            let path = self.volume_path(self.volumes.len() + 1);
            let file = File::create(&path)?;
            self.current = Some((
                BufWriter::with_capacity(1 << 20, file),
                path,
                Algorithm::Sha256.hasher(),
                0,
            ));
        }
        let Some((file, _, hasher, size)) = self.current.as_mut() else {
            return Ok(0);
        };
        let room = usize::try_from(self.limit - *size).unwrap_or(usize::MAX);
        let n = file.write(&buf[..buf.len().min(room)])?;
        hasher.update(&buf[..n]);
        self.whole.update(&buf[..n]);
        *size += n as u64;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.current.as_mut() {
            Some((file, ..)) => file.flush(),
            None => Ok(()),
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Writes directory `dir` as a tar cut into volumes of at most `volume_size` bytes: `PREFIX.vol001`... and
/// `PREFIX.volumes.json` (returned too). Upload sessions of half-brought blobs are left out: `.staging` at the
/// root (their claims) and every repository's `_uploads` (no repository name starts with `_`).
pub fn pack(dir: &Path, prefix: &Path, volume_size: u64) -> Result<VolumeSet, VolumeError> {
    if volume_size == 0 {
        return Err(VolumeError::ZeroSize);
    }
    let writer = SplitWriter {
        prefix: prefix.to_path_buf(),
        limit: volume_size,
        current: None,
        volumes: Vec::new(),
        whole: Algorithm::Sha256.hasher(),
        size: 0,
    };
    let mut tar = tar::Builder::new(writer);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    append_tree(&mut tar, dir, Path::new(""))?;
    let writer = tar.into_inner().map_err(io("write volumes of", prefix))?;
    let (volumes, size, sha256) = writer.finish().map_err(io("write volumes of", prefix))?;
    let set = VolumeSet {
        version: VOLUMES_VERSION,
        kind: VOLUMES_KIND.to_string(),
        volume_size,
        volumes,
        size,
        sha256,
    };
    let description = description_path(prefix);
    let mut text = serde_json::to_string_pretty(&set).map_err(|e| VolumeError::BadDescription {
        path: description.clone(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    std::fs::write(&description, text).map_err(io("write", &description))?;
    Ok(set)
}

/// Appends the entries of `dir` (named `rel` inside the tar) in sorted order.
fn append_tree(
    tar: &mut tar::Builder<SplitWriter>,
    dir: &Path,
    rel: &Path,
) -> Result<(), VolumeError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io("read directory", dir))?
        .collect::<Result<_, _>>()
        .map_err(io("read directory", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if (rel.as_os_str().is_empty() && name == ".staging") || name == "_uploads" {
            continue;
        }
        let path = entry.path();
        let inner = rel.join(&name);
        let kind = entry.file_type().map_err(io("read", &path))?;
        if kind.is_dir() {
            tar.append_dir(&inner, &path)
                .map_err(io("add to the volumes", &path))?;
            append_tree(tar, &path, &inner)?;
        } else if kind.is_file() {
            let mut file = File::open(&path).map_err(io("open", &path))?;
            tar.append_file(&inner, &mut file)
                .map_err(io("add to the volumes", &path))?;
        } else {
            return Err(VolumeError::Unsupported { path });
        }
    }
    Ok(())
}

/// Reads and checks a volume set description.
pub fn load(description: &Path) -> Result<VolumeSet, VolumeError> {
    let text = std::fs::read_to_string(description).map_err(io("read", description))?;
    let bad = |reason: String| VolumeError::BadDescription {
        path: description.to_path_buf(),
        reason,
    };
    let set: VolumeSet = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if set.kind != VOLUMES_KIND {
        return Err(bad(format!(
            "kind is `{}`, expected `{VOLUMES_KIND}`",
            set.kind
        )));
    }
    if set.version != VOLUMES_VERSION {
        return Err(bad(format!(
            "version {} is not supported (this sealos reads {VOLUMES_VERSION}); upgrade sealos",
            set.version
        )));
    }
    for v in &set.volumes {
        if v.name.is_empty() || v.name.contains('/') || v.name == ".." {
            return Err(bad(format!("volume name `{}` is not a file name", v.name)));
        }
    }
    Ok(set)
}

fn volume_path(description: &Path, volume: &Volume) -> PathBuf {
    description
        .parent()
        .unwrap_or(Path::new("."))
        .join(&volume.name)
}

/// Checks every volume of `set` (described by `description`): present, of its recorded size, with its
/// recorded sha256; then that they join into the recorded whole. Reads every volume once.
pub fn verify(description: &Path, set: &VolumeSet) -> Result<(), VolumeError> {
    let mut whole = Algorithm::Sha256.hasher();
    let mut total = 0u64;
    // Sizes first: a missing or truncated volume is named without reading gigabytes first.
    for v in &set.volumes {
        let path = volume_path(description, v);
        let bad = |problem: String| VolumeError::BadVolume {
            path: path.clone(),
            problem,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad("is missing".to_string()));
            }
            Err(e) => return Err(bad(format!("cannot be read: {e}"))),
        };
        if len < v.size {
            return Err(bad(format!(
                "is truncated: {len} bytes, {} expected",
                v.size
            )));
        }
        if len > v.size {
            return Err(bad(format!("is {len} bytes, {} expected", v.size)));
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    for v in &set.volumes {
        let path = volume_path(description, v);
        let mut file = File::open(&path).map_err(io("open", &path))?;
        let mut hasher = Algorithm::Sha256.hasher();
        loop {
            let n = file.read(&mut buf).map_err(io("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            whole.update(&buf[..n]);
            total += n as u64;
        }
        let got = hasher.finish();
        if got != v.sha256 {
            return Err(VolumeError::BadVolume {
                path,
                problem: format!("is corrupt: its sha256 is {got}, {} expected", v.sha256),
            });
        }
    }
    let got = whole.finish();
    if total != set.size || got != set.sha256 {
        return Err(VolumeError::BadWhole {
            path: description.to_path_buf(),
            problem: format!(
                "{total} bytes with {got}, recorded {} bytes with {}",
                set.size, set.sha256
            ),
        });
    }
    Ok(())
}

/// The volumes of a set read one after another as one stream.
struct Joined {
    paths: std::vec::IntoIter<PathBuf>,
    current: Option<BufReader<File>>,
}

impl Read for Joined {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current.is_none() {
                match self.paths.next() {
                    Some(p) => {
                        self.current = Some(BufReader::with_capacity(1 << 20, File::open(&p)?))
                    }
                    None => return Ok(0),
                }
            }
            if let Some(r) = self.current.as_mut() {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
            }
            self.current = None;
        }
    }
}

/// Unpacks the (verified) volume set into directory `into`, reading the volumes in order as one stream.
/// Only directories and regular files are accepted, each inside `into`.
pub fn unpack(description: &Path, set: &VolumeSet, into: &Path) -> Result<(), VolumeError> {
    std::fs::create_dir_all(into).map_err(io("create", into))?;
    let joined = Joined {
        paths: set
            .volumes
            .iter()
            .map(|v| volume_path(description, v))
            .collect::<Vec<_>>()
            .into_iter(),
        current: None,
    };
    let mut archive = tar::Archive::new(joined);
    archive.set_preserve_permissions(false);
    let entries = archive
        .entries()
        .map_err(io("read volumes of", description))?;
    for entry in entries {
        let mut entry = entry.map_err(io("read volumes of", description))?;
        let kind = entry.header().entry_type();
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory) {
            return Err(VolumeError::BadEntry(format!("`{name}` ({kind:?})")));
        }
        let inside = entry.unpack_in(into).map_err(io("unpack into", into))?;
        if !inside {
            return Err(VolumeError::BadEntry(format!(
                "`{name}` points outside the delivery"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("docker/registry/v2/blobs")).unwrap();
        std::fs::write(root.join("delivery.json"), b"{}").unwrap();
        let big: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(root.join("docker/registry/v2/blobs/data"), &big).unwrap();
    }

    #[test]
    fn packs_into_volumes_no_larger_than_asked_and_unpacks_the_same_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        tree(&src);
        let prefix = tmp.path().join("out/delivery");
        std::fs::create_dir_all(prefix.parent().unwrap()).unwrap();
        let set = pack(&src, &prefix, 16 * 1024).unwrap();
        assert!(set.volumes.len() >= 4, "{set:?}");
        assert!(set.volumes.iter().all(|v| v.size <= 16 * 1024));
        assert_eq!(set.volumes[0].name, "delivery.vol001");
        assert_eq!(set.size, set.volumes.iter().map(|v| v.size).sum::<u64>());
        let desc = find_description(&prefix).unwrap();
        let loaded = load(&desc).unwrap();
        assert_eq!(loaded, set);
        verify(&desc, &loaded).unwrap();
        let dest = tmp.path().join("dest");
        unpack(&desc, &loaded, &dest).unwrap();
        assert_eq!(
            std::fs::read(dest.join("docker/registry/v2/blobs/data")).unwrap(),
            std::fs::read(src.join("docker/registry/v2/blobs/data")).unwrap()
        );
        assert_eq!(std::fs::read(dest.join("delivery.json")).unwrap(), b"{}");
        // Sessions of half-brought blobs stay behind.
        let session = src.join("docker/registry/v2/repositories/app/_uploads/u1");
        std::fs::create_dir_all(&session).unwrap();
        std::fs::write(session.join("data"), b"half").unwrap();
        std::fs::create_dir_all(src.join(".staging")).unwrap();
        std::fs::write(src.join(".staging/sha256-ab.upload"), b"app\nu1\n").unwrap();
        let with_sessions = pack(&src, &tmp.path().join("out/sessions"), 16 * 1024).unwrap();
        let unpacked = tmp.path().join("dest-sessions");
        let desc2 = find_description(&tmp.path().join("out/sessions")).unwrap();
        unpack(&desc2, &with_sessions, &unpacked).unwrap();
        assert!(!unpacked.join(".staging").exists());
        assert!(
            unpacked
                .join("docker/registry/v2/repositories/app")
                .is_dir()
        );
        assert!(
            !unpacked
                .join("docker/registry/v2/repositories/app/_uploads")
                .exists()
        );
        std::fs::remove_dir_all(src.join("docker/registry/v2/repositories")).unwrap();
        std::fs::remove_dir_all(src.join(".staging")).unwrap();
        // Deterministic: the same tree gives the same whole.
        let again = pack(&src, &tmp.path().join("out/again"), 16 * 1024).unwrap();
        assert_eq!(again.sha256, set.sha256);
    }

    #[test]
    fn truncated_and_corrupt_volumes_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        tree(&src);
        let prefix = tmp.path().join("d");
        let set = pack(&src, &prefix, 16 * 1024).unwrap();
        let desc = description_path(&prefix);
        let second = tmp.path().join("d.vol002");
        let bytes = std::fs::read(&second).unwrap();
        std::fs::write(&second, &bytes[..bytes.len() - 10]).unwrap();
        let err = verify(&desc, &set).unwrap_err().to_string();
        assert!(
            err.contains("d.vol002") && err.contains("truncated"),
            "{err}"
        );
        let mut flipped = bytes.clone();
        flipped[100] ^= 1;
        std::fs::write(&second, &flipped).unwrap();
        let err = verify(&desc, &set).unwrap_err().to_string();
        assert!(err.contains("d.vol002") && err.contains("corrupt"), "{err}");
        std::fs::remove_file(&second).unwrap();
        let err = verify(&desc, &set).unwrap_err().to_string();
        assert!(err.contains("d.vol002") && err.contains("missing"), "{err}");
    }
}
