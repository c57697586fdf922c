//! Blob frames that are views of a read-only mapping of the blob's file, registered process-wide so a socket
//! writer that recognises them (the server's plain-TCP connections, `server::sendfile`) sends them with
//! `sendfile(2)`: the bytes go from the page cache to the socket without passing through this process. They are
//! handed out only for that (`Storage::send_blob`): reading the bytes of a mapping works like reading memory, but
//! a disk error there is a `SIGBUS` instead of an error, so TLS connections and every other reader read files.
//!
//! Blob files are never changed once stored (content-addressed, put in place by rename, removed by unlink), so a
//! mapping stays valid as long as a frame of it lives. Reading the mapping of a file truncated behind the store's
//! back would fault (`SIGBUS`); the sendfile path never reads it, and stops with an error when the file turns
//! out shorter than it was.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use formats::sys::ReadOnlyMap;

use super::ByteStream;

/// Blobs smaller than this are read, not mapped: for a manifest or a config the mapping costs more than the copy.
pub(crate) const MAP_MIN: u64 = 1 << 20;

/// Bytes per frame: each frame is a view, so the size only sets how often a consumer is handed the next one.
const FRAME: u64 = 8 << 20;

/// Live mappings by start address: `(end address, the mapped file's descriptor)`.
static MAPPINGS: Mutex<BTreeMap<usize, (usize, RawFd)>> = Mutex::new(BTreeMap::new());

/// How many mappings are live: while none is, [`lookup`] answers without taking the lock (every write of every
/// connection asks, most of them headers and manifests).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Where `bytes` lie in a live mapping: the mapped file's descriptor and the offset of `bytes[0]` in it. The
/// descriptor stays open as long as `bytes` does, since a frame holds its mapping and the mapping its file.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) fn lookup(bytes: &[u8]) -> Option<(RawFd, u64)> {
    // A frame reaches a writer after its mapping was registered (through the task that handed it over), so a
    // relaxed read sees that registration.
    if bytes.is_empty() || LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let start = bytes.as_ptr() as usize;
    let map = MAPPINGS.lock().unwrap_or_else(|p| p.into_inner());
    let (&base, &(end, fd)) = map.range(..=start).next_back()?;
    (start + bytes.len() <= end).then_some((fd, (start - base) as u64))
}

/// A shared read-only mapping of a whole file ([`ReadOnlyMap`]), registered in [`MAPPINGS`] until dropped.
struct Mapping {
    map: ReadOnlyMap,
    _file: File,
}

impl Mapping {
    /// Maps the first `len` bytes of `file`, or gives the file back when that fails.
    fn new(file: File, len: u64) -> Result<Mapping, File> {
        let Some(map) = usize::try_from(len)
            .ok()
            .and_then(|len| ReadOnlyMap::new(&file, len).ok())
        else {
            return Err(file);
        };
        MAPPINGS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(map.addr(), (map.addr() + map.len(), file.as_raw_fd()));
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Mapping { map, _file: file })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        self.map.as_ref()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unregistered first (the map itself is unmapped after this), so no writer finds an address that is
        // about to be unmapped.
        MAPPINGS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.map.addr());
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes `from..from + len` of `file` (whose size is `size`) as frames viewing one mapping of it; the file is
/// given back when it cannot be mapped, for the caller to read it instead.
pub(crate) fn mapped_stream(
    file: File,
    size: u64,
    from: u64,
    len: u64,
) -> Result<ByteStream, File> {
    let Some(end) = from.checked_add(len).filter(|e| *e <= size) else {
        return Err(file);
    };
    let mapping = Mapping::new(file, size)?;
    let whole = Bytes::from_owner(mapping);
    let frames = (from..end).step_by(FRAME as usize).map(move |at| {
        let stop = (at + FRAME).min(end);
        Ok(whole.slice(at as usize..stop as usize))
    });
    Ok(Box::pin(futures_util::stream::iter(frames)))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::StreamExt;

    use super::*;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let reopened = File::open(f.path()).unwrap();
        (f, reopened)
    }

    #[tokio::test]
    async fn frames_are_the_requested_range_and_are_found_in_the_file() {
        let bytes: Vec<u8> = (0..(FRAME as usize * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let (_keep, file) = file_of(&bytes);
        let from = 1000u64;
        let len = bytes.len() as u64 - from - 7;
        let mut stream = mapped_stream(file, bytes.len() as u64, from, len).unwrap();
        let mut at = from as usize;
        let mut frames = 0;
        while let Some(frame) = stream.next().await {
            let frame = frame.unwrap();
            assert_eq!(&frame[..], &bytes[at..at + frame.len()]);
            let (_fd, offset) = lookup(&frame).expect("a frame is found in its mapping");
            assert_eq!(offset, at as u64);
            let (_fd, offset) = lookup(&frame[10..20]).expect("and so is a part of it");
            assert_eq!(offset, at as u64 + 10);
            at += frame.len();
            frames += 1;
        }
        assert_eq!(at as u64, from + len);
        assert_eq!(frames, 3);
    }

    #[tokio::test]
    async fn a_mapping_is_forgotten_when_its_last_frame_goes() {
        // An odd length, so no other test's mapping can match this one's start and end.
        let bytes = vec![7u8; 3 * 4096 + 5];
        let (_keep, file) = file_of(&bytes);
        let size = bytes.len() as u64;
        let mut stream = mapped_stream(file, size, 0, size).unwrap();
        let frame = stream.next().await.unwrap().unwrap();
        drop(stream);
        let (start, len) = (frame.as_ptr() as usize, frame.len());
        assert!(lookup(&frame).is_some());
        drop(frame);
        let map = MAPPINGS.lock().unwrap();
        assert!(
            map.get(&start).is_none_or(|(end, _)| *end != start + len),
            "the mapping is still registered"
        );
    }

    #[test]
    fn memory_outside_any_mapping_is_not_found() {
        let local = vec![1u8; 64];
        assert!(lookup(&local).is_none());
    }

    #[test]
    fn a_range_past_the_end_is_refused() {
        let (_keep, file) = file_of(b"abc");
        assert!(mapped_stream(file, 3, 2, 5).is_err());
    }
}
