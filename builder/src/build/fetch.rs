//! `ADD <http(s)://URL> DEST`: the file is downloaded into the build's work directory, streamed to disk and
//! hashed while written (never held whole in memory), checked against `--checksum=sha256:...` when given,
//! and then added like a context file with mode 0600 (Docker's rule; `--chmod` overrides it). The server's
//! `Last-Modified` is ignored: like every entry, the file gets the build's timestamp, so the layer depends on
//! the downloaded bytes only. A download that fails or does not match its checksum leaves nothing behind.
//! It goes through the registry client's transport, so `certs.d` CA certificates, `--tls-verify`, proxies,
//! timeouts and retries apply to it as to pulls.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use formats::digest::{Algorithm, Digest, DigestError, DigestWriter};
use registry::client::{ClientError, RegistryClient};
use tempfile::TempDir;

use crate::blocking::WaitError;

/// A `--checksum=` value that is not a digest.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--checksum={value}: {source}; write --checksum=sha256:<64 hex digits>")]
pub struct ChecksumError {
    /// The value as written.
    pub value: String,
    /// Why it is not a digest.
    #[source]
    pub source: DigestError,
}

/// Why an `ADD <URL>` download failed; shown after `ADD URL: `.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status (and the body's message, when it has one).
    #[error("the server answered {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's message; empty when none.
        message: String,
    },
    /// The request failed before an answer (connection, TLS, name resolution).
    #[error("cannot fetch it: {0}")]
    Fetch(#[source] ClientError),
    /// The body stopped before its end.
    #[error("the download broke off: {0}")]
    BrokeOff(#[source] ClientError),
    /// A local file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: `make a download directory in`, `create`, `write`, `read`.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The downloaded bytes do not have the `--checksum` digest.
    #[error("the downloaded file does not match --checksum: {0}")]
    Checksum(#[source] DigestError),
    /// The download could not be waited for (no suitable runtime).
    #[error(transparent)]
    Wait(#[from] WaitError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

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
pub fn checksum_flag(instruction: &str) -> Result<Option<Digest>, ChecksumError> {
    let Some(value) = instruction
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--checksum="))
    else {
        return Ok(None);
    };
    let value = value.trim_matches(['"', '\'']);
    Digest::parse(value)
        .map(Some)
        .map_err(|source| ChecksumError {
            value: value.to_string(),
            source,
        })
}

/// Downloads `url` through `client` (its TLS setup, `certs.d`, proxies, timeouts and retries; see
/// [`RegistryClient::fetch_url`]) into a new directory under `work`, verifying `expected` when given;
/// `on_bytes` is told the running total after every chunk. The file is written as the chunks come, on the
/// thread that polls this future (the build's own thread when it waits with [`crate::blocking::wait`]).
pub async fn download(
    client: &RegistryClient,
    url: &str,
    work: &Path,
    expected: Option<&Digest>,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<Download, FetchError> {
    let dir = tempfile::Builder::new()
        .prefix(".url-")
        .tempdir_in(work)
        .map_err(io_err("make a download directory in", work))?;
    let path = dir.path().join("content");
    let file = std::fs::File::create(&path).map_err(io_err("create", &path))?;
    let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
    let mut writer = DigestWriter::new(BufWriter::with_capacity(256 * 1024, file), algorithm);
    let mut body = client.fetch_url(url).await.map_err(|e| match e {
        ClientError::Registry {
            status, message, ..
        } => FetchError::Status { status, message },
        other => FetchError::Fetch(other),
    })?;
    while let Some(chunk) = body.chunk().await.map_err(FetchError::BrokeOff)? {
        writer.write_all(&chunk).map_err(io_err("write", &path))?;
        on_bytes(writer.len());
    }
    let (buf, digest, size) = writer.finish();
    buf.into_inner()
        .map_err(|e| io_err("write", &path)(e.into_error()))?;
    if let Some(expected) = expected {
        expected.expect(&digest).map_err(FetchError::Checksum)?;
    }
    let digest = if digest.algorithm() == Algorithm::Sha256 {
        digest
    } else {
        let file = std::fs::File::open(&path).map_err(io_err("read", &path))?;
        let mut w = DigestWriter::new(std::io::sink(), Algorithm::Sha256);
        std::io::copy(&mut std::io::BufReader::new(file), &mut w).map_err(io_err("read", &path))?;
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
        let err = checksum_flag("ADD --checksum=md5:abc https://h/x /x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sha256:<64 hex digits>"), "{err}");
    }
}
