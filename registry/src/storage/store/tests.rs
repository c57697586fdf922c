//! The store over the filesystem driver: uploads through every fast path, restarts, rollbacks.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use futures_util::StreamExt;

use super::uploads::HASH_STATE_FILE;
use crate::storage::{ByteRange, ByteStream, FsStorage, Result, Storage, StorageError};

/// Bytes per frame of a filesystem read stream.
const READ_CHUNK: usize = 512 * 1024;
/// Bytes between two background flushes of an upload.
const FLUSH_STEP: u64 = 64 * 1024 * 1024;

fn layout(storage: &FsStorage) -> DistributionPaths {
    DistributionPaths::new(storage.driver().root())
}

fn upload_dir(storage: &FsStorage, repo: &str, id: &str) -> PathBuf {
    layout(storage).uploads_dir(repo).join(id)
}

fn blob_data(storage: &FsStorage, digest: &Digest) -> PathBuf {
    layout(storage).blob_data(digest)
}

/// Deterministic bytes that differ at every offset, so a misplaced frame changes the digest.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8 ^ seed)
        .collect()
}

/// A body stream of `bytes` in frames of `frame` bytes, optionally ending in an error instead of its end.
fn frames(bytes: &[u8], frame: usize, cut: bool) -> ByteStream {
    let mut items: Vec<io::Result<Bytes>> = bytes
        .chunks(frame)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    if cut {
        items.push(Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )));
    }
    Box::pin(futures_util::stream::iter(items))
}

fn data_len(storage: &FsStorage, repo: &str, id: &str) -> u64 {
    std::fs::metadata(upload_dir(storage, repo, id).join("data"))
        .map(|m| m.len())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn chunks_spanning_many_writeback_steps_are_stored_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    // Two chunks of odd sizes (frames not aligned to anything), together over two writeback steps.
    let first = pattern(9 * 1024 * 1024 + 7, 1);
    let second = pattern(8 * 1024 * 1024 + 4093, 2);
    let session = storage.create_upload("a/b").await.unwrap();
    let after_first = storage
        .append_upload(
            "a/b",
            &session.id,
            Some(0),
            Some(first.len() as u64),
            frames(&first, 65_521, false),
        )
        .await
        .unwrap();
    assert_eq!(after_first.offset, first.len() as u64);
    let after_second = storage
        .append_upload(
            "a/b",
            &session.id,
            Some(after_first.offset),
            None,
            frames(&second, 300_007, false),
        )
        .await
        .unwrap();
    let whole = [first, second].concat();
    assert_eq!(after_second.offset, whole.len() as u64);
    let digest = Digest::sha256_of(&whole);
    let size = storage
        .finish_upload("a/b", &session.id, &digest)
        .await
        .unwrap();
    assert_eq!(size, whole.len() as u64);
    assert_eq!(std::fs::read(blob_data(&storage, &digest)).unwrap(), whole);
    assert!(!upload_dir(&storage, "a/b", &session.id).exists());
}

/// Uploads `bytes` to `repo` in one chunk and finishes the session; returns its id.
async fn upload_whole(storage: &FsStorage, repo: &str, bytes: &[u8]) -> Result<String> {
    let session = storage.create_upload(repo).await?;
    storage
        .append_upload(
            repo,
            &session.id,
            Some(0),
            None,
            frames(bytes, 1 << 20, false),
        )
        .await?;
    storage
        .finish_upload(repo, &session.id, &Digest::sha256_of(bytes))
        .await?;
    Ok(session.id)
}

#[tokio::test]
async fn whole_and_range_reads_span_several_frames_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let bytes = pattern(READ_CHUNK * 3 + 17, 5);
    upload_whole(&storage, "a/b", &bytes).await.unwrap();
    let digest = Digest::sha256_of(&bytes);
    let read = |range| {
        let (storage, digest) = (&storage, &digest);
        async move {
            let reader = storage.read_blob(digest, range).await.unwrap();
            let frames: Vec<Bytes> = reader.stream.map(|f| f.unwrap()).collect().await;
            (reader.size, frames.concat())
        }
    };
    let (size, whole) = read(None).await;
    assert_eq!(size, bytes.len() as u64);
    assert!(whole == bytes, "a whole read differs from the blob");
    let (start, end) = (100u64, (READ_CHUNK * 2 + 700) as u64);
    let (_, part) = read(Some(ByteRange { start, end })).await;
    assert!(
        part == bytes[start as usize..=end as usize],
        "a range read differs"
    );
    let (_, tail) = read(Some(ByteRange {
        start: size - 5,
        end: u64::MAX,
    }))
    .await;
    assert_eq!(tail, bytes[bytes.len() - 5..]);
}

#[tokio::test]
async fn an_upload_crossing_flush_steps_is_stored_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let bytes = pattern((FLUSH_STEP * 2 + 12_345) as usize, 3);
    let id = upload_whole(&storage, "a/b", &bytes).await.unwrap();
    let digest = Digest::sha256_of(&bytes);
    let stored = std::fs::read(blob_data(&storage, &digest)).unwrap();
    assert!(
        stored == bytes,
        "the stored blob differs from what was sent"
    );
    assert!(!upload_dir(&storage, "a/b", &id).exists());
}

#[tokio::test]
async fn a_second_upload_of_a_stored_blob_is_accepted_and_leaves_the_stored_copy_alone() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let bytes = pattern(3 * 1024 * 1024 + 11, 4);
    let digest = Digest::sha256_of(&bytes);
    upload_whole(&storage, "a/b", &bytes).await.unwrap();
    let blob = blob_data(&storage, &digest);
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let first = inode(&blob);
    let id = upload_whole(&storage, "c/d", &bytes).await.unwrap();
    assert_eq!(inode(&blob), first, "the stored blob was replaced");
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    assert!(!upload_dir(&storage, "c/d", &id).exists());
    // A wrong digest for the same bytes is still refused, stored copy or not.
    let session = storage.create_upload("c/d").await.unwrap();
    storage
        .append_upload(
            "c/d",
            &session.id,
            Some(0),
            None,
            frames(&bytes, 4096, false),
        )
        .await
        .unwrap();
    let wrong = Digest::sha256_of(b"something else");
    let refused = storage.finish_upload("c/d", &session.id, &wrong).await;
    assert!(matches!(refused, Err(StorageError::DigestMismatch { .. })));
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
}

/// Starts a session under `root` holding `bytes`, in a storage value dropped at the end (a stopped server).
async fn session_holding(root: &Path, bytes: &[u8]) -> String {
    let storage = FsStorage::new(root);
    let session = storage.create_upload("a/b").await.unwrap();
    storage
        .append_upload(
            "a/b",
            &session.id,
            Some(0),
            None,
            frames(bytes, 4096, false),
        )
        .await
        .unwrap();
    session.id
}

/// Appends `bytes` to session `id` of repository `a/b` at `offset`.
async fn append_at(storage: &FsStorage, id: &str, offset: u64, bytes: &[u8]) {
    storage
        .append_upload("a/b", id, Some(offset), None, frames(bytes, 4096, false))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restarted_server_continues_a_session_from_its_saved_hash_state_and_rechecks_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let first = pattern(2 * 1024 * 1024 + 3, 5);
    let second = pattern(1024 * 1024 + 9, 6);
    let id = session_holding(dir.path(), &first).await;
    let session_dir = upload_dir(&FsStorage::new(dir.path()), "a/b", &id);
    let saved = std::fs::read(session_dir.join(HASH_STATE_FILE)).unwrap();
    assert!(saved.starts_with(format!("{}\n", first.len()).as_bytes()));

    // A new process (no in-memory state) continues from the saved state and finishes.
    let restarted = FsStorage::new(dir.path());
    assert_eq!(
        restarted.upload_status("a/b", &id).await.unwrap().offset,
        first.len() as u64
    );
    append_at(&restarted, &id, first.len() as u64, &second).await;
    let whole = [first.clone(), second.clone()].concat();
    let digest = Digest::sha256_of(&whole);
    assert_eq!(
        restarted.finish_upload("a/b", &id, &digest).await.unwrap(),
        whole.len() as u64
    );

    // A resumed session whose earlier bytes changed on disk (a power loss) fails its digest: the saved
    // state alone is never trusted.
    let id = session_holding(dir.path(), &first).await;
    let data = upload_dir(&FsStorage::new(dir.path()), "a/b", &id).join("data");
    let mut damaged = std::fs::read(&data).unwrap();
    damaged[10] ^= 0xff;
    std::fs::write(&data, &damaged).unwrap();
    let restarted = FsStorage::new(dir.path());
    append_at(&restarted, &id, first.len() as u64, &second).await;
    let refused = restarted.finish_upload("a/b", &id, &digest).await;
    assert!(
        matches!(refused, Err(StorageError::DigestMismatch { .. })),
        "{refused:?}"
    );
    // The blob stored by the first session is untouched.
    assert_eq!(
        std::fs::read(blob_data(&restarted, &digest)).unwrap(),
        whole
    );
}

#[tokio::test]
async fn cut_or_miscounted_chunk_is_rolled_back_and_the_session_continues_from_its_last_offset() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let first = pattern(3 * 1024 * 1024 + 11, 3);
    let second = pattern(10 * 1024 * 1024 + 5, 4);
    let session = storage.create_upload("a/b").await.unwrap();
    let id = session.id.as_str();
    let at = storage
        .append_upload("a/b", id, Some(0), None, frames(&first, 100_000, false))
        .await
        .unwrap()
        .offset;

    // The client goes away in the middle of the second chunk (after more than a writeback step).
    let cut = storage
        .append_upload("a/b", id, Some(at), None, frames(&second, 131_072, true))
        .await;
    assert!(matches!(cut, Err(StorageError::Body(_))), "{cut:?}");
    assert_eq!(storage.upload_status("a/b", id).await.unwrap().offset, at);
    assert_eq!(data_len(&storage, "a/b", id), at);

    // A chunk shorter than announced is refused and rolled back too.
    let short = storage
        .append_upload(
            "a/b",
            id,
            Some(at),
            Some(second.len() as u64 + 1),
            frames(&second, 131_072, false),
        )
        .await;
    assert!(
        matches!(short, Err(StorageError::ChunkLength { expected, actual })
            if expected == second.len() as u64 + 1 && actual == second.len() as u64),
        "{short:?}"
    );
    assert_eq!(data_len(&storage, "a/b", id), at);

    // Sent again in full, the chunk continues the same hash: the blob is exactly first + second.
    storage
        .append_upload("a/b", id, Some(at), None, frames(&second, 131_072, false))
        .await
        .unwrap();
    let whole = [first, second].concat();
    let digest = Digest::sha256_of(&whole);
    storage.finish_upload("a/b", id, &digest).await.unwrap();
    assert_eq!(std::fs::read(blob_data(&storage, &digest)).unwrap(), whole);
}

/// Sessions are listed with their repository and a small age, on every driver.
async fn sessions_are_listed<S: Storage>(storage: &S) {
    let a = storage.create_upload("x/y").await.unwrap();
    let b = storage.create_upload("z").await.unwrap();
    let mut listed = storage.list_uploads().await.unwrap();
    listed.sort();
    let mut want = vec![("x/y".to_string(), a.id.clone()), ("z".to_string(), b.id)];
    want.sort();
    assert_eq!(
        listed
            .iter()
            .map(|(r, i, _)| (r.clone(), i.clone()))
            .collect::<Vec<_>>(),
        want
    );
    assert!(listed.iter().all(|(_, _, age)| *age < 60), "{listed:?}");
    storage.cancel_upload("x/y", &a.id).await.unwrap();
    assert_eq!(storage.list_uploads().await.unwrap().len(), 1);
    assert!(matches!(
        storage.cancel_upload("x/y", &a.id).await,
        Err(StorageError::UploadUnknown(_))
    ));
}

#[tokio::test]
async fn upload_sessions_are_listed_and_cancelled_on_the_filesystem_and_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    sessions_are_listed(&FsStorage::new(dir.path())).await;
    sessions_are_listed(&crate::storage::MemoryStorage::new()).await;
}

#[tokio::test]
async fn blob_modified_is_the_time_the_blob_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(dir.path());
    let bytes = pattern(1000, 7);
    let digest = Digest::sha256_of(&bytes);
    assert_eq!(storage.blob_modified(&digest).await.unwrap(), None);
    let before = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    upload_whole(&storage, "a/b", &bytes).await.unwrap();
    let modified = storage.blob_modified(&digest).await.unwrap().unwrap();
    assert!(modified >= before, "{modified:?}");
}

/// Pushes a small image the way clients do: a chunked layer, a manifest, links, two tags, one deleted.
async fn push_sample<S: Storage>(storage: &S) -> (Digest, Digest) {
    let layer = pattern(100_000, 8);
    let layer_digest = Digest::sha256_of(&layer);
    let session = storage.create_upload("lib/app").await.unwrap();
    for (k, part) in layer.chunks(30_000).enumerate() {
        storage
            .append_upload(
                "lib/app",
                &session.id,
                Some(k as u64 * 30_000),
                Some(part.len() as u64),
                frames(part, 7_000, false),
            )
            .await
            .unwrap();
    }
    storage
        .finish_upload("lib/app", &session.id, &layer_digest)
        .await
        .unwrap();
    storage.link_layer("lib/app", &layer_digest).await.unwrap();
    let manifest = Bytes::from(format!(
        "{{\"schemaVersion\":2,\"layers\":[{{\"digest\":\"{layer_digest}\",\"size\":{}}}]}}",
        layer.len()
    ));
    let manifest_digest = Digest::sha256_of(&manifest);
    storage
        .put_blob_bytes(&manifest_digest, manifest)
        .await
        .unwrap();
    storage
        .link_revision("lib/app", &manifest_digest)
        .await
        .unwrap();
    for tag in ["v1", "gone"] {
        storage
            .set_tag("lib/app", tag, &manifest_digest)
            .await
            .unwrap();
    }
    storage.delete_tag("lib/app", "gone").await.unwrap();
    (layer_digest, manifest_digest)
}

/// Every file a driver holds, with its content.
async fn tree<D: crate::storage::driver::Driver>(driver: &D) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for path in driver.walk("").await.unwrap() {
        let bytes = driver.get(&path, 1 << 20).await.unwrap().unwrap();
        out.push((path, bytes));
    }
    out
}

/// The files distribution itself writes for [`push_sample`], byte for byte.
fn distribution_tree(layer: &Digest, manifest: &Digest) -> Vec<(String, String)> {
    let v2 = "docker/registry/v2";
    let blob = |d: &Digest| format!("{v2}/blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex());
    let repo = format!("{v2}/repositories/lib/app");
    let mut want = vec![
        (
            format!("{repo}/_layers/sha256/{}/link", layer.hex()),
            layer.to_string(),
        ),
        (
            format!("{repo}/_manifests/revisions/sha256/{}/link", manifest.hex()),
            manifest.to_string(),
        ),
        (
            format!("{repo}/_manifests/tags/v1/current/link"),
            manifest.to_string(),
        ),
        (
            format!(
                "{repo}/_manifests/tags/v1/index/sha256/{}/link",
                manifest.hex()
            ),
            manifest.to_string(),
        ),
        (blob(layer), String::new()),
        (blob(manifest), String::new()),
    ];
    want.sort();
    want
}

/// The tree matches [`distribution_tree`]: the same paths, links with the same text (blob data is checked by
/// its digest).
fn assert_distribution_layout(files: &[(String, Bytes)], layer: &Digest, manifest: &Digest) {
    let want = distribution_tree(layer, manifest);
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    let wanted: Vec<&str> = want.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, wanted);
    for ((path, bytes), (_, text)) in files.iter().zip(&want) {
        if path.ends_with("/data") {
            assert!(path.contains(Digest::sha256_of(bytes).hex()), "{path}");
        } else {
            assert_eq!(String::from_utf8_lossy(bytes), *text, "{path}");
        }
    }
}

#[tokio::test]
async fn the_filesystem_and_memory_stores_write_the_distribution_layout_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStorage::new(dir.path());
    let (layer, manifest) = push_sample(&fs).await;
    assert_distribution_layout(&tree(fs.driver()).await, &layer, &manifest);
    let memory = crate::storage::MemoryStorage::new();
    push_sample(&memory).await;
    assert_distribution_layout(&tree(memory.driver()).await, &layer, &manifest);
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn the_s3_store_writes_the_distribution_layout_byte_for_byte() {
    let (_moto, driver) = crate::storage::driver::suite::s3_tests::moto_driver().await;
    let s3 = super::DistributionStore::with_driver(driver);
    let (layer, manifest) = push_sample(&s3).await;
    assert_distribution_layout(&tree(s3.driver()).await, &layer, &manifest);
}
