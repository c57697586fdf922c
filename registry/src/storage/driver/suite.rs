//! The behaviour every [`Driver`] promises, as one suite run against each driver (the S3 one in
//! `tests/s3_storage.rs`, which starts a server).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{Driver, Entry, ReadMode};
use crate::storage::{ByteRange, StorageError};

/// Deterministic bytes that differ at every offset, so a misplaced frame changes them.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8 ^ seed)
        .collect()
}

async fn read_all<D: Driver>(driver: &D, path: &str, range: Option<ByteRange>) -> Vec<u8> {
    let opened = driver
        .reader(path, range, ReadMode::Copy)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{path} is missing"));
    let frames: Vec<Bytes> = opened.stream.map(|f| f.unwrap()).collect().await;
    frames.concat()
}

/// Runs every check against `driver`, whose store must be empty.
pub(crate) async fn run<D: Driver>(driver: &D) {
    whole_files(driver).await;
    ranges(driver).await;
    listings(driver).await;
    moves_and_deletes(driver).await;
    appends(driver).await;
}

async fn whole_files<D: Driver>(d: &D) {
    assert_eq!(d.get("a/missing", 10).await.unwrap(), None);
    assert_eq!(d.stat("a/missing").await.unwrap(), None);
    d.put("a/b/file", Bytes::from_static(b"first"))
        .await
        .unwrap();
    let first = d.stat("a/b/file").await.unwrap().unwrap();
    assert_eq!(first.size, 5);
    d.put("a/b/file", Bytes::from_static(b"second"))
        .await
        .unwrap();
    assert_eq!(
        d.get("a/b/file", 100).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    let second = d.stat("a/b/file").await.unwrap().unwrap();
    assert_eq!(second.size, 6);
    assert_ne!(
        first.stamp, second.stamp,
        "a rewritten file keeps its stamp"
    );
    assert!(matches!(
        d.get("a/b/file", 5).await,
        Err(StorageError::TooLarge { limit: 5 })
    ));
    d.delete("a").await.unwrap();
}

async fn ranges<D: Driver>(d: &D) {
    let bytes = pattern(3 * 512 * 1024 + 17, 5);
    d.put("r/blob", Bytes::from(bytes.clone())).await.unwrap();
    assert!(read_all(d, "r/blob", None).await == bytes);
    let part = read_all(
        d,
        "r/blob",
        Some(ByteRange {
            start: 100,
            end: 600_000,
        }),
    )
    .await;
    assert!(part == bytes[100..=600_000]);
    let tail = read_all(
        d,
        "r/blob",
        Some(ByteRange {
            start: bytes.len() as u64 - 5,
            end: u64::MAX,
        }),
    )
    .await;
    assert_eq!(tail, bytes[bytes.len() - 5..]);
    let past = d
        .reader(
            "r/blob",
            Some(ByteRange {
                start: bytes.len() as u64,
                end: bytes.len() as u64 + 3,
            }),
            ReadMode::Copy,
        )
        .await;
    assert!(matches!(
        past,
        Err(StorageError::RangeNotSatisfiable { .. })
    ));
    let mapped = d
        .reader("r/blob", None, ReadMode::Mapped)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapped.info.size, bytes.len() as u64);
    assert!(
        d.reader("r/none", None, ReadMode::Copy)
            .await
            .unwrap()
            .is_none()
    );
    d.delete("r").await.unwrap();
}

async fn listings<D: Driver>(d: &D) {
    for path in ["l/x/1", "l/x/y/2", "l/z", "l/x/y/w/3"] {
        d.put(path, Bytes::from_static(b".")).await.unwrap();
    }
    let entry = |name: &str, is_dir| Entry {
        name: name.into(),
        is_dir,
    };
    assert_eq!(
        d.list("l").await.unwrap(),
        vec![entry("x", true), entry("z", false)]
    );
    assert_eq!(
        d.list("l/x").await.unwrap(),
        vec![entry("1", false), entry("y", true)]
    );
    assert_eq!(d.list("l/none").await.unwrap(), vec![]);
    assert_eq!(
        d.walk("l/x").await.unwrap(),
        vec!["1".to_string(), "y/2".into(), "y/w/3".into()]
    );
    assert_eq!(d.walk("l/none").await.unwrap(), Vec::<String>::new());
    assert!(
        !d.stat("l/x").await.is_ok_and(|i| i.is_some()),
        "a directory is not reported as a file"
    );
    d.delete("l").await.unwrap();
}

async fn moves_and_deletes<D: Driver>(d: &D) {
    d.put("m/from", Bytes::from_static(b"moved")).await.unwrap();
    d.move_file("m/from", "m/deep/to").await.unwrap();
    assert_eq!(d.stat("m/from").await.unwrap(), None);
    assert_eq!(
        d.get("m/deep/to", 10).await.unwrap().as_deref(),
        Some(&b"moved"[..])
    );
    assert!(d.move_file("m/none", "m/x").await.is_err());
    assert!(d.delete("m/deep/to").await.unwrap());
    assert!(!d.delete("m/deep/to").await.unwrap());
    d.put("m/d/1", Bytes::from_static(b"1")).await.unwrap();
    d.put("m/d/e/2", Bytes::from_static(b"2")).await.unwrap();
    assert!(d.delete("m/d").await.unwrap());
    assert_eq!(d.walk("m").await.unwrap(), Vec::<String>::new());
    assert!(!d.delete("m/d").await.unwrap());
}

/// Frames of `bytes`, `frame` bytes each.
fn frames(bytes: &[u8], frame: usize) -> Arc<[Bytes]> {
    bytes.chunks(frame).map(Bytes::copy_from_slice).collect()
}

async fn appends<D: Driver>(d: &D) {
    let (data, state) = ("u/s/data", "u/s/state");
    assert!(d.writer(data, state).await.unwrap().is_none());
    assert_eq!(d.append_state(data, state).await.unwrap(), None);
    d.create_append(data, state, Bytes::from_static(b"s0"))
        .await
        .unwrap();
    let now = d.append_state(data, state).await.unwrap().unwrap();
    assert_eq!((now.size, now.saved.as_deref()), (0, Some(&b"s0"[..])));

    // Two commits of odd sizes, crossing a multipart part on object stores.
    let first = pattern(9 * 1024 * 1024 + 7, 1);
    let second = pattern(1024 * 1024 + 4093, 2);
    let mut w = d.writer(data, state).await.unwrap().unwrap();
    assert_eq!(w.start(), 0);
    w.write(frames(&first, 65_521)).await.unwrap();
    assert_eq!(
        w.commit(Bytes::from_static(b"s1")).await.unwrap(),
        first.len() as u64
    );

    // A cancelled chunk leaves the file and its state as they were.
    let mut w = d.writer(data, state).await.unwrap().unwrap();
    assert_eq!(w.start(), first.len() as u64);
    assert_eq!(w.saved().as_deref(), Some(&b"s1"[..]));
    w.write(frames(&pattern(3 * 1024 * 1024, 9), 100_000))
        .await
        .unwrap();
    w.cancel().await.unwrap();
    let now = d.append_state(data, state).await.unwrap().unwrap();
    assert_eq!(
        (now.size, now.saved.as_deref()),
        (first.len() as u64, Some(&b"s1"[..]))
    );

    let mut w = d.writer(data, state).await.unwrap().unwrap();
    w.write(frames(&second, 300_007)).await.unwrap();
    let whole = [first, second].concat();
    assert_eq!(
        w.commit(Bytes::from_static(b"s2")).await.unwrap(),
        whole.len() as u64
    );
    assert_eq!(d.seal(data, state).await.unwrap(), whole.len() as u64);
    assert!(
        read_all(d, data, None).await == whole,
        "the sealed file differs"
    );
    d.move_file(data, "u/blob").await.unwrap();
    assert!(
        read_all(d, "u/blob", None).await == whole,
        "the moved file differs"
    );
    d.discard_append(data, state).await.unwrap();
    d.delete("u").await.unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::fs::FsDriver;
    use crate::storage::driver::memory::MemoryDriver;

    #[tokio::test]
    async fn the_memory_driver_keeps_the_driver_promises() {
        run(&MemoryDriver::new()).await;
    }

    #[tokio::test]
    async fn the_filesystem_driver_keeps_the_driver_promises() {
        let dir = tempfile::tempdir().unwrap();
        run(&FsDriver::new(dir.path())).await;
    }
}

#[cfg(all(test, feature = "s3"))]
pub(crate) mod s3_tests {
    use testsupport::moto::Moto;

    use super::run;
    use crate::storage::driver::s3::{S3Config, S3Driver};

    /// Starts moto (testsupport's) and returns it with a driver on a fresh bucket of it.
    pub(crate) async fn moto_driver() -> (Moto, S3Driver) {
        let moto = Moto::start();
        moto.create_bucket("suite");
        let endpoint = moto.endpoint();
        let driver = S3Driver::new(&S3Config {
            bucket: "suite".into(),
            endpoint: Some(endpoint),
            region: "us-east-1".into(),
            prefix: "p".into(),
            redirect: false,
            credentials: Some(("test".into(), "test".into())),
        })
        .unwrap();
        (moto, driver)
    }

    #[tokio::test]
    async fn the_s3_driver_keeps_the_driver_promises() {
        let (_moto, driver) = moto_driver().await;
        run(&driver).await;
    }
}
