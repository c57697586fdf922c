//! Benchmark input data, generated at run time and deterministic from a seed: incompressible random files from
//! a small fast PRNG, and realistic compressible data copied from /usr/lib and /usr/bin.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// SplitMix64: tiny, fast, and good enough to make data no compressor can shrink.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Writes `size` random bytes from `seed` to `out`.
pub fn write_random(out: &mut impl Write, size: u64, seed: u64) -> io::Result<()> {
    let mut rng = SplitMix64::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Returns `dir/random-s<seed>-<size>.bin`, creating it if needed: `size` incompressible bytes from `seed`.
///
/// The file is written beside its final name and renamed into place, so an interrupted run never leaves a
/// short file that a later run would reuse.
pub fn random_file(dir: &Path, size: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("random-s{seed}-{size}.bin"));
    cached(&path, size, |out| write_random(out, size, seed))
}

/// Returns `dir/usr-s<seed>-<size>.bin`, creating it if needed: the contents of regular files under /usr/lib
/// and /usr/bin, concatenated up to exactly `size` bytes (repeated if the system has less).
///
/// Files are taken in sorted path order, starting at an index chosen by `seed`, so the same seed on the same
/// machine gives the same bytes.
pub fn realistic_file(dir: &Path, size: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("usr-s{seed}-{size}.bin"));
    let files = system_files()?;
    cached(&path, size, |out| {
        let start = (SplitMix64::new(seed).next_u64() % files.len() as u64) as usize;
        let mut left = size;
        for file in files.iter().cycle().skip(start) {
            if left == 0 {
                break;
            }
            // Files can vanish or be unreadable; skipping them keeps the run going.
            let Ok(f) = File::open(file) else { continue };
            left -= io::copy(&mut f.take(left), out)?;
        }
        Ok(())
    })
}

/// Copies regular files from /usr/lib and /usr/bin into `dest` (keeping their relative paths under `lib/` and
/// `bin/`) until `size` bytes are copied; returns the bytes copied. A realistic build context.
pub fn realistic_tree(dest: &Path, size: u64, seed: u64) -> anyhow::Result<u64> {
    let files = system_files()?;
    let start = (SplitMix64::new(seed).next_u64() % files.len() as u64) as usize;
    let mut copied = 0;
    for file in files.iter().cycle().skip(start).take(files.len()) {
        if copied >= size {
            break;
        }
        let Ok(meta) = fs::metadata(file) else {
            continue;
        };
        if copied + meta.len() > size {
            continue;
        }
        let rel = file.strip_prefix("/usr").unwrap_or(file);
        let target = dest.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        if let Ok(n) = fs::copy(file, &target) {
            copied += n;
        }
    }
    Ok(copied)
}

/// Regular, non-empty files under /usr/lib and /usr/bin (symlinks not followed), in sorted order.
fn system_files() -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for root in ["/usr/bin", "/usr/lib"] {
        walk(Path::new(root), &mut files);
    }
    files.sort();
    if files.is_empty() {
        anyhow::bail!("no readable files under /usr/bin or /usr/lib to build realistic data from");
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out);
        } else if kind.is_file() && entry.metadata().is_ok_and(|m| m.len() > 0) {
            out.push(path);
        }
    }
}

/// Returns `path` if it already holds `size` bytes; otherwise writes it with `fill` through a temporary file.
fn cached(
    path: &Path,
    size: u64,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> anyhow::Result<PathBuf> {
    if fs::metadata(path).is_ok_and(|m| m.len() == size) {
        return Ok(path.to_path_buf());
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write benchmark data {}", path.display()));
    }
    Ok(path.to_path_buf())
}

/// Parses a size such as `1073741824`, `64M`, `512K`, `1G` or `1GiB` (binary units).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("invalid size `{s}`: use bytes or a K, M, G or T suffix, e.g. `64M`"),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("invalid size `{s}`: expected a number such as `64M`"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size `{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_suffixes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn random_data_is_deterministic_from_the_seed_and_incompressible_looking() {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        write_random(&mut a, 100_003, 7).unwrap();
        write_random(&mut b, 100_003, 7).unwrap();
        write_random(&mut c, 100_003, 8).unwrap();
        assert_eq!(a.len(), 100_003);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut seen = [0u32; 256];
        for byte in &a {
            seen[*byte as usize] += 1;
        }
        assert!(
            seen.iter().all(|n| *n > 250),
            "byte values are not spread out"
        );
    }

    #[test]
    fn cached_files_have_the_requested_size_and_are_reused() {
        let dir = std::env::temp_dir().join(format!("bench-data-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = random_file(&dir, 4096, 1).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 4096);
        let before = fs::read(&p).unwrap();
        assert_eq!(random_file(&dir, 4096, 1).unwrap(), p);
        assert_eq!(fs::read(&p).unwrap(), before);
        let r = realistic_file(&dir, 10_000, 1).unwrap();
        assert_eq!(fs::metadata(&r).unwrap().len(), 10_000);
        let tree = dir.join("tree");
        let copied = realistic_tree(&tree, 1 << 20, 1).unwrap();
        assert!(copied > 0 && copied <= 1 << 20, "{copied}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
