//! The build caches under `<store>/cache/`: a stat cache that remembers file content digests, and a layer
//! cache that maps a build step's key to the layer it produced.
//!
//! # The stat cache rule
//! `<store>/cache/stat.json` maps a context file's absolute path to `(size, mtime_ns, inode, sha256)`. When a
//! later build finds the file with the same size, mtime (nanoseconds) and inode, the recorded sha256 is used
//! and the file's content is not read. A file whose mtime is less than [`RACY_WINDOW_NS`] before the moment it
//! was hashed is not recorded (it could still change within the same mtime tick), so it is hashed again next
//! time. Touching a file (new mtime) makes it be read and hashed again, but if its content is unchanged the
//! step's key is unchanged and its layer is reused.
//!
//! # The layer cache
//! `<store>/cache/layers/<key>.json` records the layer a COPY/ADD produced. The key is the sha256 of the
//! parent chain id, the instruction text as evaluated, the layer options (compression, timestamp) and the
//! content digest of the step's sources (every entry's destination, kind, mode, owner, size and content
//! sha256 or link target). An entry is used only while its blob is still in the store.
//!
//! # Block indexes of gzip layers
//! `<store>/cache/layers/steps/<step key>.json` records, for the last gzip layer a COPY/ADD step wrote, the
//! blob and its block index ([`BlockIndex`]). The step key leaves out the content and the parent: the same
//! instruction in the same stage and platform with the same layer options. When the step's content changed,
//! the layer writer copies the blocks of that blob whose bytes are unchanged instead of deflating them (the
//! blob is byte for byte what a compression from scratch writes).
//!
//! Both files are written atomically; two builds running at once may each overwrite the other's stat cache
//! update, which only costs a re-hash later.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use formats::digest::{Algorithm, Digest};
use formats::fsutil::atomic_write;
use formats::layer::BlockIndex;
use serde::{Deserialize, Serialize};

/// A file whose mtime is this close to the time it was hashed is not recorded in the stat cache.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// One remembered file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatEntry {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// sha256 of the content.
    pub sha256: Digest,
}

/// The stat cache: absolute path -> what the file was when last hashed.
#[derive(Debug, Default)]
pub struct StatCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, StatEntry>,
    dirty: bool,
}

/// The modification time of `meta` in nanoseconds since the epoch.
pub fn mtime_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

impl StatCache {
    /// Loads `<cache_dir>/stat.json`; a missing or unreadable file is an empty cache.
    pub fn load(cache_dir: &Path) -> StatCache {
        let path = cache_dir.join("stat.json");
        let entries = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        StatCache {
            path: Some(path),
            entries,
            dirty: false,
        }
    }

    /// A cache that is never read from disk nor saved.
    pub fn disabled() -> StatCache {
        StatCache::default()
    }

    /// The recorded digest of `path` when its size, mtime and inode are unchanged.
    pub fn lookup(&self, path: &Path, meta: &fs::Metadata) -> Option<Digest> {
        let entry = self.entries.get(path.to_str()?)?;
        (entry.size == meta.len() && entry.mtime_ns == mtime_ns(meta) && entry.inode == meta.ino())
            .then(|| entry.sha256.clone())
    }

    /// Records `digest` for `path` unless its mtime is within [`RACY_WINDOW_NS`] of `hashed_at_ns`.
    pub fn record(&mut self, path: &Path, meta: &fs::Metadata, digest: Digest, hashed_at_ns: i128) {
        let mtime = mtime_ns(meta);
        if hashed_at_ns - mtime < RACY_WINDOW_NS {
            return;
        }
        let Some(key) = path.to_str() else {
            return;
        };
        self.entries.insert(
            key.to_string(),
            StatEntry {
                size: meta.len(),
                mtime_ns: mtime,
                inode: meta.ino(),
                sha256: digest,
            },
        );
        self.dirty = true;
    }

    /// Writes the cache back when it changed.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&self.entries).map_err(io::Error::other)?;
        atomic_write(path, &bytes).map_err(io::Error::other)?;
        self.dirty = false;
        Ok(())
    }
}

/// Hashes a file's content, streaming; returns the digest, the bytes read and the time hashing started.
pub fn hash_file(path: &Path) -> io::Result<(Digest, u64, i128)> {
    let started = now_ns();
    let mut file = File::open(path)?;
    let mut hasher = Algorithm::Sha256.hasher();
    let mut buf = vec![0u8; 1 << 17];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hasher.finish(), total, started))
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedLayer {
    /// Digest of the (compressed) blob.
    pub blob_digest: Digest,
    /// Size of the blob.
    pub blob_size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// Layer media type.
    pub media_type: String,
}

/// The layer cache directory `<store>/cache/layers`.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// The layer cache under `cache_dir`.
    pub fn new(cache_dir: &Path) -> LayerCache {
        LayerCache {
            dir: cache_dir.join("layers"),
        }
    }

    /// The recorded layer for `key`, if any and readable.
    pub fn lookup(&self, key: &Digest) -> Option<CachedLayer> {
        let bytes = fs::read(self.dir.join(format!("{}.json", key.hex()))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records `layer` under `key`.
    pub fn record(&self, key: &Digest, layer: &CachedLayer) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec(layer).map_err(io::Error::other)?;
        atomic_write(&self.dir.join(format!("{}.json", key.hex())), &bytes)
            .map_err(io::Error::other)
    }
}

/// The gzip blob a build step wrote last, and its block index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepBlocks {
    /// Digest of the blob.
    pub blob_digest: Digest,
    /// Size of the blob.
    pub blob_size: u64,
    /// Its blocks.
    pub index: BlockIndex,
}

impl LayerCache {
    /// The blob and block index the step `step_key` wrote last, if recorded and readable.
    pub fn previous_blocks(&self, step_key: &Digest) -> Option<StepBlocks> {
        let bytes = fs::read(self.step_path(step_key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records the blob and block index the step `step_key` just wrote.
    pub fn record_blocks(&self, step_key: &Digest, blocks: &StepBlocks) -> io::Result<()> {
        fs::create_dir_all(self.dir.join("steps"))?;
        let bytes = serde_json::to_vec(blocks).map_err(io::Error::other)?;
        atomic_write(&self.step_path(step_key), &bytes).map_err(io::Error::other)
    }

    fn step_path(&self, step_key: &Digest) -> PathBuf {
        self.dir
            .join("steps")
            .join(format!("{}.json", step_key.hex()))
    }
}

/// The OCI chain id of a parent chain extended by `diff_id` (`sha256(parent + " " + diff_id)`).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::sha256_of(format!("{p} {diff_id}").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cache_trusts_only_unchanged_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        fs::write(&file, b"hello").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let meta = fs::metadata(&file).unwrap();
        let (digest, read, at) = hash_file(&file).unwrap();
        assert_eq!(read, 5);
        let mut cache = StatCache::load(dir.path());
        cache.record(&file, &meta, digest.clone(), at);
        cache.save().unwrap();
        let cache = StatCache::load(dir.path());
        assert_eq!(cache.lookup(&file, &meta), Some(digest));
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(SystemTime::now())
            .unwrap();
        assert_eq!(cache.lookup(&file, &fs::metadata(&file).unwrap()), None);
    }

    #[test]
    fn freshly_modified_files_are_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a");
        fs::write(&file, b"x").unwrap();
        let meta = fs::metadata(&file).unwrap();
        let (digest, _, at) = hash_file(&file).unwrap();
        let mut cache = StatCache::load(dir.path());
        cache.record(&file, &meta, digest, at);
        assert_eq!(cache.lookup(&file, &meta), None);
    }
}
