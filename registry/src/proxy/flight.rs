//! One upstream download of a blob shared by every client that asks for it meanwhile: the bytes go to an
//! unlinked spool file as they arrive, and each client reads that file behind the download ([`tail`]). The last
//! byte is handed out only once the download's digest is verified, so no client takes unverified bytes for a
//! complete blob: a failed download ends every reader's stream with an error before its last byte.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::hash::Hash;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::watch;

use crate::storage::ByteStream;

/// How far a download got.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Bytes in the spool file.
    pub written: u64,
    /// `None` while running; then verified (`Ok`) or failed with a message.
    pub end: Option<Result<(), Arc<str>>>,
}

/// A blob being downloaded from upstream.
pub(crate) struct Flight {
    /// The blob's size (from the manifest that listed it, or the upstream's `HEAD`).
    pub size: u64,
    spool: Arc<File>,
    progress: watch::Receiver<Progress>,
    /// Repositories to link the blob into once stored; `None` once that happened (link it yourself then).
    repos: Mutex<Option<BTreeSet<String>>>,
}

/// The writing side of a [`Flight`], for the download task.
pub(crate) struct SpoolWriter {
    spool: Arc<File>,
    written: u64,
    progress: watch::Sender<Progress>,
}

impl Flight {
    /// A flight for a blob of `size` bytes with an anonymous spool file in `dir`, and its writer.
    pub(crate) fn start(
        dir: &Path,
        size: u64,
        repo: &str,
    ) -> io::Result<(Arc<Flight>, SpoolWriter)> {
        let spool = Arc::new(anonymous_file(dir)?);
        let (tx, rx) = watch::channel(Progress::default());
        let flight = Arc::new(Flight {
            size,
            spool: spool.clone(),
            progress: rx,
            repos: Mutex::new(Some(BTreeSet::from([repo.to_string()]))),
        });
        let writer = SpoolWriter {
            spool,
            written: 0,
            progress: tx,
        };
        Ok((flight, writer))
    }

    /// Asks for the blob to be linked into `repo` once stored; false when it is stored already (the caller
    /// links it).
    pub(crate) fn link_later(&self, repo: &str) -> bool {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        match repos.as_mut() {
            Some(set) => {
                set.insert(repo.to_string());
                true
            }
            None => false,
        }
    }

    /// The repositories to link into, taken once the blob is stored (later askers link it themselves).
    pub(crate) fn take_repos(&self) -> BTreeSet<String> {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos.take().unwrap_or_default()
    }

    /// Waits for the download's end: `Ok` once verified.
    pub(crate) async fn finished(&self) -> Result<(), Arc<str>> {
        let mut rx = self.progress.clone();
        loop {
            if let Some(end) = rx.borrow_and_update().end.clone() {
                return end;
            }
            if rx.changed().await.is_err() {
                return Err("the download stopped without an answer".into());
            }
        }
    }

    /// The whole spool file as a stream (for storing it once the download is verified).
    pub(crate) fn spool_stream(self: &Arc<Flight>) -> ByteStream {
        tail(self.clone(), ())
    }
}

impl SpoolWriter {
    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Ends the download: verified or failed. Readers waiting for the last byte learn it now.
    pub(crate) fn finish(self, end: Result<(), String>) {
        self.progress
            .send_modify(|p| p.end = Some(end.map_err(Arc::from)));
    }
}

impl Write for SpoolWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.spool.write_all_at(buf, self.written)?;
        self.written += buf.len() as u64;
        let written = self.written;
        self.progress.send_modify(|p| p.written = written);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file in `dir` that no path names: it goes away with its last handle.
fn anonymous_file(dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(".spool-{}", uuid::Uuid::new_v4()));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// How much one read of the spool hands out.
const CHUNK: u64 = 1024 * 1024;

/// The least a reader takes from a spool that is still growing.
const MIN_READ: u64 = 256 * 1024;

/// The blob of `flight` from its first byte, read behind the download; `guard` is held until the stream is
/// dropped (it marks the blob in use). The last byte waits for the digest check; a failed download ends the
/// stream with an error.
pub(crate) fn tail<G: Send + 'static>(flight: Arc<Flight>, guard: G) -> ByteStream {
    let rx = flight.progress.clone();
    let state = (flight, rx, 0u64, guard, false);
    Box::pin(futures_util::stream::unfold(
        state,
        |(flight, mut rx, pos, guard, done)| async move {
            if done || pos >= flight.size && flight.size > 0 {
                return None;
            }
            loop {
                let p = rx.borrow_and_update().clone();
                if let Some(Err(why)) = &p.end {
                    let e = io::Error::other(format!("upstream download failed: {why}"));
                    return Some((Err(e), (flight, rx, pos, guard, true)));
                }
                let verified = matches!(p.end, Some(Ok(())));
                if verified && flight.size == 0 {
                    return None;
                }
                // Hold back the last byte until the digest is checked.
                let limit = if verified {
                    flight.size
                } else {
                    p.written.min(flight.size.saturating_sub(1))
                };
                // While the download runs, wait for a worthwhile read rather than waking per network chunk.
                let worthwhile = p.end.is_some() || limit - pos.min(limit) >= MIN_READ;
                if pos < limit && worthwhile {
                    let len = (limit - pos).min(CHUNK);
                    let spool = flight.spool.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buf = vec![0u8; len as usize];
                        spool.read_exact_at(&mut buf, pos).map(|()| buf)
                    })
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e)));
                    return Some(match read {
                        Ok(buf) => {
                            let next = pos + buf.len() as u64;
                            (Ok(Bytes::from(buf)), (flight, rx, next, guard, false))
                        }
                        Err(e) => (Err(e), (flight, rx, pos, guard, true)),
                    });
                }
                if rx.changed().await.is_err() && rx.borrow().end.is_none() {
                    let e = io::Error::other("upstream download stopped without an answer");
                    return Some((Err(e), (flight, rx, pos, guard, true)));
                }
            }
        },
    ))
}

/// Runs one future per key at a time: callers asking for a key while its future runs share its result.
pub(crate) struct SingleFlight<K, V: Clone> {
    running: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone + Send + Sync + 'static> SingleFlight<K, V> {
    /// Nothing running.
    pub(crate) fn new() -> Self {
        SingleFlight {
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The result of the future running for `key`, or of `make()` started now.
    pub(crate) async fn run(&self, key: K, make: impl FnOnce() -> BoxFuture<'static, V>) -> V {
        let fut = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running
                .entry(key.clone())
                .or_insert_with(|| make().shared())
                .clone()
        };
        let value = fut.clone().await;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&key).is_some_and(|f| f.ptr_eq(&fut)) {
            running.remove(&key);
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn collect(mut s: ByteStream) -> Result<Vec<u8>, io::Error> {
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn readers_get_every_byte_but_the_last_waits_for_verification() {
        let dir = tempfile::tempdir().unwrap();
        let (flight, mut w) = Flight::start(dir.path(), 6, "r").unwrap();
        // The spool has no name in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let early = tokio::spawn(collect(tail(flight.clone(), ())));
        w.write_all(b"hello!").unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!early.is_finished(), "the last byte went out unverified");
        w.finish(Ok(()));
        assert_eq!(early.await.unwrap().unwrap(), b"hello!");
        // A reader arriving after the end reads it all from the spool.
        assert_eq!(collect(flight.spool_stream()).await.unwrap(), b"hello!");
        assert!(flight.finished().await.is_ok());
    }

    #[tokio::test]
    async fn a_failed_download_ends_readers_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (flight, mut w) = Flight::start(dir.path(), 6, "r").unwrap();
        let reader = tokio::spawn(collect(tail(flight.clone(), ())));
        w.write_all(b"hel").unwrap();
        w.finish(Err("digest mismatch".into()));
        let err = reader.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert!(flight.finished().await.is_err());
    }

    #[tokio::test]
    async fn single_flight_runs_one_future_for_concurrent_callers() {
        let sf: Arc<SingleFlight<&'static str, u32>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (sf, runs) = (sf.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                sf.run("k", || {
                    async move {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        7
                    }
                    .boxed()
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
