//! `ADD <http(s)://URL> DEST`: the file is downloaded into the build's work directory, streamed to disk and
//! hashed while written (never held whole in memory), checked against `--checksum=sha256:...` when given,
//! and then added like a context file with mode 0600 (Docker's rule; `--chmod` overrides it). The server's
//! `Last-Modified` is ignored: like every entry, the file gets the build's timestamp, so the layer depends on
//! the downloaded bytes only. A download that fails or does not match its checksum leaves nothing behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use formats::digest::{Algorithm, Digest, DigestWriter};
use tempfile::TempDir;

/// A downloaded file, removed when dropped.
#[derive(Debug)]
pub struct Download {
    _dir: TempDir,
    /// Where the file is.
    pub path: PathBuf,
    /// Its sha256 digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// The file name a URL's path ends with (`https://h/a/helm.tgz?x=1` gives `helm.tgz`), for a destination
/// ending in `/`; `None` when the path has no last segment.
pub fn file_name(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let (_, path) = path.split_once('/')?;
    let name = path.rsplit('/').next().unwrap_or("");
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// The value of `--checksum=` in an evaluated ADD instruction's text, parsed.
pub fn checksum_flag(instruction: &str) -> Result<Option<Digest>, String> {
    let Some(value) = instruction
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--checksum="))
    else {
        return Ok(None);
    };
    let value = value.trim_matches(['"', '\'']);
    Digest::parse(value)
        .map(Some)
        .map_err(|e| format!("--checksum={value}: {e}; write --checksum=sha256:<64 hex digits>"))
}

/// Downloads `url` into a new directory under `work`, verifying `expected` when given; `on_bytes` is told
/// the running total after every chunk.
pub fn download(
    url: &str,
    work: &Path,
    expected: Option<&Digest>,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Download, String> {
    let dir = tempfile::Builder::new()
        .prefix(".url-")
        .tempdir_in(work)
        .map_err(|e| {
            format!(
                "cannot make a download directory in {}: {e}",
                work.display()
            )
        })?;
    let path = dir.path().join("content");
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
    let mut writer = DigestWriter::new(BufWriter::with_capacity(256 * 1024, file), algorithm);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch it: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("the download broke off: {e}"))?
        {
            writer
                .write_all(&chunk)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            on_bytes(writer.len());
        }
        Ok(())
    })?;
    let (buf, digest, size) = writer.finish();
    buf.into_inner()
        .map_err(|e| format!("cannot write {}: {}", path.display(), e.error()))?;
    if let Some(expected) = expected {
        expected
            .expect(&digest)
            .map_err(|e| format!("the downloaded file does not match --checksum: {e}"))?;
    }
    let digest = if digest.algorithm() == Algorithm::Sha256 {
        digest
    } else {
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut w = DigestWriter::new(std::io::sink(), Algorithm::Sha256);
        std::io::copy(&mut std::io::BufReader::new(file), &mut w)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        w.finish().1
    };
    Ok(Download {
        _dir: dir,
        path,
        digest,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_come_from_the_last_path_segment_without_query() {
        assert_eq!(
            file_name("https://h.example/a/helm.tgz?x=1#f").as_deref(),
            Some("helm.tgz")
        );
        assert_eq!(file_name("http://h:8080/x").as_deref(), Some("x"));
        assert_eq!(file_name("http://h/dir/"), None);
        assert_eq!(file_name("http://h"), None);
    }

    #[test]
    fn checksum_flag_is_read_from_the_instruction_text() {
        let d = Digest::sha256_of(b"x");
        let text = format!("ADD --chmod=644 --checksum={d} https://h/x /x");
        assert_eq!(checksum_flag(&text), Ok(Some(d)));
        assert_eq!(checksum_flag("ADD https://h/x /x"), Ok(None));
        let err = checksum_flag("ADD --checksum=md5:abc https://h/x /x").unwrap_err();
        assert!(err.contains("sha256:<64 hex digits>"), "{err}");
    }
}
