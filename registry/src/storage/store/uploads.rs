//! Upload sessions: `repositories/<repo>/_uploads/<id>/` holds `data` (an appendable file of the driver),
//! `startedat` (RFC 3339, as distribution writes it) and `sealos-hashstate`, the running hash state saved by the
//! commit of each acknowledged chunk (`OFFSET\n` then [`Hasher::save_state`]; not distribution's `hashstates/`,
//! whose Go encoding `docker-registry` would misread). A restarted server, or another replica, continues a
//! session from that state, reading only bytes after it (all of them when it is missing); on a driver whose
//! appends a power loss may change ([`Driver::durable_appends`]), a session this process did not see whole is
//! re-read once when it is finished, so bytes this process did not see are never trusted.
//!
//! A chunk is received on the request's task (a slow client holds no thread), gathered into batches of up to
//! 2 MiB, each hashed on a blocking thread while the driver writes it and the next batch is received. A chunk
//! that fails (body cut, wrong length, write error) is cancelled: the session stays at its last offset.

use std::sync::Arc;

use bytes::Bytes;
use formats::digest::{Algorithm, Digest, Hasher};
use formats::time::rfc3339;
use futures_util::StreamExt;

use super::blobs::hash_stream;
use super::{DistributionStore, locked, rel};
use crate::storage::driver::{AppendState, Driver, ReadMode, UploadWriter, join};
use crate::storage::{ByteRange, ByteStream, Result, StorageError, UploadStatus};

/// The session file holding the running hash state.
pub(super) const HASH_STATE_FILE: &str = "sealos-hashstate";
/// Bytes of body frames gathered into one write.
const WRITE_BATCH: usize = 2 * 1024 * 1024;
/// Frames gathered into one write at most.
const BATCH_FRAMES: usize = 64;

/// Upload ids are UUIDs; anything else (a `../`, say) names no session.
fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The saved form of a running hash over a session's first `offset` bytes.
fn hash_state(offset: u64, hasher: &Hasher) -> Bytes {
    let mut bytes = format!("{offset}\n").into_bytes();
    bytes.extend_from_slice(&hasher.save_state());
    Bytes::from(bytes)
}

/// Reads back [`hash_state`] bytes.
fn parse_hash_state(bytes: &[u8]) -> Option<(u64, Hasher)> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let offset = std::str::from_utf8(&bytes[..newline]).ok()?.parse().ok()?;
    let hasher = Hasher::restore_state(&bytes[newline + 1..]).ok()?;
    (hasher.algorithm() == Algorithm::Sha256).then_some((offset, hasher))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Paths of one session.
struct SessionPaths {
    dir: String,
    data: String,
    state: String,
}

/// What one chunk did: the session's running hash including the chunk, and the chunk's length.
type Pumped = (Box<dyn UploadWriter>, Result<(Hasher, u64)>);

/// What a chunk's body has yielded so far: the frames not yet handed to the writer, every byte's count, and
/// how the body ended (its end, or the failure that stops the chunk).
#[derive(Default)]
struct Received {
    batch: Vec<Bytes>,
    batch_len: usize,
    received: u64,
    ended: bool,
    failure: Option<StorageError>,
}

impl Received {
    /// Takes what the body yielded next: a frame into the batch, an error as the failure, `None` as the end.
    fn take(&mut self, frame: Option<std::io::Result<Bytes>>) {
        match frame {
            Some(Ok(frame)) => {
                self.received += frame.len() as u64;
                self.batch_len += frame.len();
                self.batch.push(frame);
            }
            Some(Err(e)) => self.failure = Some(StorageError::Body(e)),
            None => self.ended = true,
        }
    }
}

/// Streams `body` into `writer`, continuing `hasher`; hands back the writer (to commit or cancel) with the
/// outcome. Frames are received here while the previous batch is hashed on a blocking thread and written by the
/// driver, so receiving, hashing and writing overlap and one chunk holds two batches at most.
async fn pump(
    writer: Box<dyn UploadWriter>,
    hasher: Hasher,
    expected_len: Option<u64>,
    mut body: ByteStream,
) -> Pumped {
    type InFlight = std::pin::Pin<
        Box<dyn Future<Output = (Box<dyn UploadWriter>, Result<()>, Result<Hasher>)> + Send>,
    >;
    let mut idle = Some((writer, hasher));
    let mut in_flight: Option<InFlight> = None;
    let mut got = Received::default();
    loop {
        if got.failure.is_none()
            && !got.batch.is_empty()
            && let Some((mut writer, mut hasher)) = idle.take()
        {
            let frames: Arc<[Bytes]> = std::mem::take(&mut got.batch).into();
            got.batch_len = 0;
            let to_hash = frames.clone();
            in_flight = Some(Box::pin(async move {
                let hashing = tokio::task::spawn_blocking(move || {
                    to_hash.iter().for_each(|f| hasher.update(f));
                    hasher
                });
                let written = writer.write(frames).await;
                let hashed = hashing.await.map_err(|e| StorageError::Io {
                    op: "hash upload",
                    path: String::new(),
                    source: std::io::Error::other(e),
                });
                (writer, written, hashed)
            }));
        }
        let Some(step) = in_flight.as_mut() else {
            if got.ended || got.failure.is_some() {
                break;
            }
            got.take(body.next().await);
            continue;
        };
        let receiving = !got.ended
            && got.failure.is_none()
            && got.batch_len < WRITE_BATCH
            && got.batch.len() < BATCH_FRAMES;
        tokio::select! {
            frame = body.next(), if receiving => got.take(frame),
            (writer, written, hashed) = step => {
                in_flight = None;
                match (written, hashed) {
                    (Ok(()), Ok(hasher)) => idle = Some((writer, hasher)),
                    (Err(e), _) | (_, Err(e)) => {
                        got.failure = Some(e);
                        idle = Some((writer, Algorithm::Sha256.hasher()));
                    }
                }
            }
        }
    }
    let Some((writer, hasher)) = idle else {
        unreachable!("the writer comes back from every batch")
    };
    let outcome = match (got.failure, expected_len.filter(|e| *e != got.received)) {
        (Some(e), _) => Err(e),
        (None, Some(expected)) => Err(StorageError::ChunkLength {
            expected,
            actual: got.received,
        }),
        (None, None) => Ok((hasher, got.received)),
    };
    (writer, outcome)
}

impl<D: Driver> DistributionStore<D> {
    fn session_paths(&self, repo: &str, id: &str) -> SessionPaths {
        let dir = join(&rel(self.paths.uploads_dir(repo)), id);
        SessionPaths {
            data: join(&dir, "data"),
            state: join(&dir, HASH_STATE_FILE),
            dir,
        }
    }

    /// The per-session lock, holding the size this process last committed (when it saw every byte).
    fn session_lock(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<Option<u64>>>> {
        if !valid_upload_id(id) {
            return Err(StorageError::UploadUnknown(id.to_string()));
        }
        Ok(locked(&self.sessions)
            .entry(id.to_string())
            .or_default()
            .clone())
    }

    fn forget_session(&self, id: &str) {
        locked(&self.sessions).remove(id);
    }

    /// The running sha256 of a session's first `now.size` bytes: from its saved state, continued over the bytes
    /// after it when the state lags, else by reading the whole data.
    async fn resume_hasher(&self, p: &SessionPaths, now: &AppendState) -> Result<Hasher> {
        let saved = now.saved.as_deref().and_then(parse_hash_state);
        let (from, hasher) = match saved {
            Some((offset, hasher)) if offset == now.size => return Ok(hasher),
            Some((offset, hasher)) if offset < now.size => (offset, hasher),
            _ => (0, Algorithm::Sha256.hasher()),
        };
        let lost = || {
            StorageError::Corrupt {
            what: p.dir.clone(),
            reason: "the upload's hash state is lost and its data cannot be read back; start the upload again"
                .into(),
        }
        };
        let range = ByteRange {
            start: from,
            end: now.size - 1,
        };
        let part = self
            .driver
            .reader(&p.data, Some(range), ReadMode::Copy)
            .await
            .ok()
            .flatten()
            .ok_or_else(lost)?;
        Ok(hash_stream(part.stream, hasher, &p.data).await?.0)
    }

    pub(super) async fn start_session(&self, repo: &str) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().to_string();
        let p = self.session_paths(repo, &id);
        let lock = self.session_lock(&id)?;
        let mut seen = lock.lock().await;
        self.driver
            .create_append(
                &p.data,
                &p.state,
                hash_state(0, &Algorithm::Sha256.hasher()),
            )
            .await?;
        self.driver
            .put(&join(&p.dir, "startedat"), Bytes::from(rfc3339(now_secs())))
            .await?;
        *seen = Some(0);
        Ok(UploadStatus { id, offset: 0 })
    }

    pub(super) async fn session_status(&self, repo: &str, id: &str) -> Result<UploadStatus> {
        let lock = self.session_lock(id)?;
        let _turn = lock.lock().await;
        let p = self.session_paths(repo, id);
        match self.driver.append_state(&p.data, &p.state).await? {
            Some(now) => Ok(UploadStatus {
                id: id.to_string(),
                offset: now.size,
            }),
            None => {
                self.forget_session(id);
                Err(StorageError::UploadUnknown(id.to_string()))
            }
        }
    }

    pub(super) async fn append_session(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        expected_len: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadStatus> {
        let lock = self.session_lock(id)?;
        let mut seen = lock.lock().await;
        let p = self.session_paths(repo, id);
        let Some(writer) = self.driver.writer(&p.data, &p.state).await? else {
            drop(seen);
            self.forget_session(id);
            return Err(StorageError::UploadUnknown(id.to_string()));
        };
        let start = writer.start();
        if let Some(given) = offset.filter(|o| *o != start) {
            return Err(StorageError::OutOfOrder {
                current: start,
                given,
            });
        }
        let now = AppendState {
            size: start,
            saved: writer.saved(),
        };
        let hasher = self.resume_hasher(&p, &now).await?;
        let (writer, outcome) = pump(writer, hasher, expected_len, body).await;
        let (hasher, len) = match outcome {
            Ok(done) => done,
            Err(e) => {
                // Best effort: the writer's own failure is the one to report.
                let _ignored = writer.cancel().await;
                return Err(e);
            }
        };
        let size = writer.commit(hash_state(start + len, &hasher)).await?;
        *seen = (*seen == Some(start)).then_some(size);
        Ok(UploadStatus {
            id: id.to_string(),
            offset: size,
        })
    }

    pub(super) async fn finish_session(
        &self,
        repo: &str,
        id: &str,
        digest: &Digest,
    ) -> Result<u64> {
        let lock = self.session_lock(id)?;
        let seen = lock.lock().await;
        let p = self.session_paths(repo, id);
        let result = self.finish_locked(&p, id, *seen, digest).await;
        drop(seen);
        self.forget_session(id);
        result
    }

    async fn finish_locked(
        &self,
        p: &SessionPaths,
        id: &str,
        seen: Option<u64>,
        digest: &Digest,
    ) -> Result<u64> {
        let now = self
            .driver
            .append_state(&p.data, &p.state)
            .await?
            .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))?;
        let size = now.size;
        let recheck = !self.driver.durable_appends() && seen != Some(size);
        let mut sealed = false;
        let actual = if !recheck && digest.algorithm() == Algorithm::Sha256 {
            self.resume_hasher(p, &now).await?.finish()
        } else {
            // The running hash is sha256 and trusted only if this process saw every byte (or the driver
            // keeps them as acknowledged); otherwise the data is read once more.
            self.driver.seal(&p.data, &p.state).await?;
            sealed = true;
            let whole = self
                .driver
                .reader(&p.data, None, ReadMode::Copy)
                .await?
                .ok_or_else(|| StorageError::UploadUnknown(id.to_string()))?;
            hash_stream(whole.stream, digest.algorithm().hasher(), &p.data)
                .await?
                .0
                .finish()
        };
        if &actual != digest {
            self.driver.discard_append(&p.data, &p.state).await?;
            self.driver.delete(&p.dir).await?;
            return Err(StorageError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let dest = self.blob_path(digest);
        if self.driver.stat(&dest).await?.is_some() {
            // Stored already (blobs are content-addressed): nothing of this upload is kept.
            self.driver.discard_append(&p.data, &p.state).await?;
            self.driver.delete(&p.dir).await?;
            return Ok(size);
        }
        if !sealed {
            self.driver.seal(&p.data, &p.state).await?;
        }
        self.driver.move_file(&p.data, &dest).await?;
        self.driver.delete(&p.dir).await?;
        Ok(size)
    }

    pub(super) async fn cancel_session(&self, repo: &str, id: &str) -> Result<()> {
        let lock = self.session_lock(id)?;
        let turn = lock.lock().await;
        let p = self.session_paths(repo, id);
        self.driver.discard_append(&p.data, &p.state).await?;
        let removed = self.driver.delete(&p.dir).await;
        drop(turn);
        self.forget_session(id);
        if removed? {
            Ok(())
        } else {
            Err(StorageError::UploadUnknown(id.to_string()))
        }
    }

    /// `(repo, id, seconds since the session last changed)` of every session.
    pub(super) async fn list_sessions(&self) -> Result<Vec<(String, String, u64)>> {
        let mut found = Vec::new();
        self.walk_repositories(&mut |name, entries| {
            if entries.iter().any(|e| e.is_dir && e.name == "_uploads") {
                found.push(name.to_string());
            }
        })
        .await?;
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for repo in found {
            let uploads = rel(self.paths.uploads_dir(&repo));
            let sessions = self.driver.list(&uploads).await?;
            for session in sessions.into_iter().filter(|e| e.is_dir) {
                let p = self.session_paths(&repo, &session.name);
                let mut changed = None;
                for file in [&p.state, &join(&p.dir, "startedat"), &p.data] {
                    if let Ok(Some(info)) = self.driver.stat(file).await
                        && let Some(m) = info.modified
                    {
                        changed = Some(m);
                        break;
                    }
                }
                let age = changed
                    .and_then(|t| now.duration_since(t).ok())
                    .map_or(0, |d| d.as_secs());
                out.push((repo.clone(), session.name, age));
            }
        }
        Ok(out)
    }
}
