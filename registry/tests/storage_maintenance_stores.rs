//! `registry::storage::gc` and `registry::storage::fsck` on every store: one gc scenario and one fsck scenario,
//! each run against a directory (`gc`/`fsck` of the tree), the memory store and an S3 bucket (moto on
//! 127.0.0.1; `gc_store`/`fsck_store`). Content is written through the `Storage` trait, as the server writes
//! it; damage is done behind the store's back where the store has a back (a file, an object).

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::manifest::{Descriptor, ImageIndex, ImageManifest, RawManifest};
use formats::media_type;
use registry::storage::fsck::{FsckReport, ProblemKind, fsck, fsck_store};
use registry::storage::gc::{GcOptions, GcReport, gc, gc_store};
use registry::storage::{FsStorage, MemoryStorage, S3Config, S3Storage, Storage, StorageError};
use testsupport::moto::Moto;

/// A store under test, with what the scenarios need to know about it.
enum Backend {
    Dir {
        tmp: tempfile::TempDir,
        store: FsStorage,
    },
    Memory(MemoryStorage),
    S3 {
        moto: Moto,
        store: S3Storage,
    },
}

const BUCKET: &str = "maintenance";
const PREFIX: &str = "reg";

impl Backend {
    fn dir() -> Backend {
        let tmp = tempfile::tempdir().unwrap();
        let store = FsStorage::new(tmp.path());
        Backend::Dir { tmp, store }
    }

    fn s3() -> Backend {
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        let config = S3Config {
            bucket: BUCKET.into(),
            endpoint: Some(moto.endpoint()),
            region: "us-east-1".into(),
            prefix: PREFIX.into(),
            redirect: false,
            // moto accepts any credentials.
            credentials: Some(("test".into(), "test".into())),
        };
        let store = S3Storage::new(&config).unwrap();
        Backend::S3 { moto, store }
    }

    fn store(&self) -> &dyn Storage {
        match self {
            Backend::Dir { store, .. } => store,
            Backend::Memory(store) => store,
            Backend::S3 { store, .. } => store,
        }
    }

    /// Where the store keeps the Distribution layout: what problems are named after.
    fn layout(&self) -> DistributionPaths {
        match self {
            Backend::Dir { tmp, .. } => DistributionPaths::new(tmp.path()),
            Backend::Memory(_) => DistributionPaths::new(""),
            Backend::S3 { .. } => DistributionPaths::new(PREFIX),
        }
    }

    async fn fsck(&self) -> FsckReport {
        match self {
            Backend::Dir { tmp, .. } => fsck(tmp.path()).await.unwrap(),
            _ => fsck_store(self.store(), &self.layout()).await.unwrap(),
        }
    }

    async fn gc(&self, options: &GcOptions) -> GcReport {
        match self {
            Backend::Dir { tmp, .. } => gc(tmp.path(), options).await.unwrap(),
            _ => gc_store(self.store(), options).await.unwrap(),
        }
    }

    /// Replaces a blob's bytes behind the store's back; false when the store has no back to do it through.
    fn overwrite(&self, digest: &Digest, bytes: &[u8]) -> bool {
        let data = self.layout().blob_data(digest);
        match self {
            Backend::Dir { .. } => std::fs::write(data, bytes).unwrap(),
            Backend::Memory(_) => return false,
            Backend::S3 { moto, .. } => moto.put_object(BUCKET, &data.display().to_string(), bytes),
        }
        true
    }
}

/// Stores a blob and links it into `repo`.
async fn blob(store: &dyn Storage, repo: &str, media: &str, bytes: &[u8]) -> Descriptor {
    let digest = Digest::sha256_of(bytes);
    store
        .put_blob_bytes(&digest, Bytes::copy_from_slice(bytes))
        .await
        .unwrap();
    store.link_layer(repo, &digest).await.unwrap();
    Descriptor::new(media, digest, bytes.len() as u64)
}

/// Stores a manifest as a revision of `repo`, tagged when `tag` is given.
async fn put_manifest(store: &dyn Storage, repo: &str, raw: &RawManifest, tag: Option<&str>) {
    store
        .put_blob_bytes(&raw.digest, Bytes::from(raw.bytes.clone()))
        .await
        .unwrap();
    store.link_revision(repo, &raw.digest).await.unwrap();
    if let Some(tag) = tag {
        store.set_tag(repo, tag, &raw.digest).await.unwrap();
    }
}

/// An image with a config and one layer of `content`.
async fn image(
    store: &dyn Storage,
    repo: &str,
    content: &str,
    tag: Option<&str>,
    subject: Option<Descriptor>,
) -> RawManifest {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"x":"{content}"}}"#
    );
    let config = blob(store, repo, media_type::OCI_CONFIG, config.as_bytes()).await;
    let layer = blob(store, repo, media_type::OCI_LAYER_TAR, content.as_bytes()).await;
    let mut m = ImageManifest::new(config, vec![layer]);
    m.subject = subject;
    let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
    put_manifest(store, repo, &raw, tag).await;
    raw
}

async fn index(
    store: &dyn Storage,
    repo: &str,
    children: &[&RawManifest],
    tag: &str,
) -> RawManifest {
    let idx = ImageIndex::new(children.iter().map(|c| c.descriptor()).collect());
    let raw = RawManifest::from_created(&idx, media_type::OCI_INDEX).unwrap();
    put_manifest(store, repo, &raw, Some(tag)).await;
    raw
}

fn layer_of(m: &RawManifest) -> Digest {
    m.referenced_blobs()[1].digest.clone()
}

/// A manifest's own blob and every blob it references.
fn blobs_of(m: &RawManifest) -> Vec<Digest> {
    let mut all = vec![m.digest.clone()];
    all.extend(m.referenced_blobs().iter().map(|d| d.digest.clone()));
    all
}

async fn stored(store: &dyn Storage, d: &Digest) -> bool {
    store.blob_size(d).await.unwrap().is_some()
}

fn digests<'a>(items: impl IntoIterator<Item = &'a Digest>) -> BTreeSet<String> {
    items.into_iter().map(ToString::to_string).collect()
}

/// Tagged images, an index with its children and a signature, a stale untagged image with its SBOM, an
/// unreferenced blob and an upload session: gc with a grace period keeps everything young; a dry run lists what
/// a real run then removes, exactly; what tags keep survives and fsck finds it clean.
async fn gc_scenario(backend: &Backend) {
    let s = backend.store();
    let kept = image(s, "team/app", "kept", Some("v1"), None).await;
    let amd = image(s, "team/app", "amd64", None, None).await;
    let arm = image(s, "team/app", "arm64", None, None).await;
    let idx = index(s, "team/app", &[&amd, &arm], "multi").await;
    let signature = image(s, "team/app", "signature", None, Some(idx.descriptor())).await;
    let stale = image(s, "team/app", "stale", None, None).await;
    let stale_sbom = image(s, "team/app", "stale-sbom", None, Some(stale.descriptor())).await;
    let other = image(s, "other", "other", Some("latest"), None).await;
    let orphan = blob(s, "team/app", media_type::OCI_LAYER_TAR, b"orphan").await;
    let session = s.create_upload("team/app").await.unwrap();
    let chunk: registry::storage::ByteStream = Box::pin(futures_util::stream::once(async {
        Ok(Bytes::from_static(b"partial"))
    }));
    s.append_upload("team/app", &session.id, None, None, chunk)
        .await
        .unwrap();

    // Everything was written just now: with the default grace period nothing goes.
    let young = backend.gc(&GcOptions::default()).await;
    assert!(young.blobs_removed.is_empty(), "{young:#?}");
    assert!(young.uploads_removed.is_empty(), "{young:#?}");
    assert!(
        young
            .young_blobs_kept
            .iter()
            .any(|b| b.digest == orphan.digest),
        "{young:#?}"
    );

    let everything = GcOptions {
        dry_run: true,
        delete_untagged: true,
        grace_period: Duration::ZERO,
    };
    let dry = backend.gc(&everything).await;
    assert!(dry.dry_run);
    let mut doomed = vec![orphan.digest.clone()];
    doomed.extend(blobs_of(&stale));
    doomed.extend(blobs_of(&stale_sbom));
    assert_eq!(
        digests(dry.blobs_removed.iter().map(|b| &b.digest)),
        digests(&doomed),
        "{dry:#?}"
    );
    assert_eq!(
        digests(dry.revisions_removed.iter().map(|r| &r.digest)),
        digests([&stale.digest, &stale_sbom.digest])
    );
    assert_eq!(dry.uploads_removed.len(), 1, "{dry:#?}");
    assert_eq!(dry.uploads_removed[0].id, session.id);
    assert_eq!(
        dry.bytes_freed,
        dry.blobs_removed.iter().map(|b| b.size).sum::<u64>()
    );
    for d in &doomed {
        assert!(stored(s, d).await, "the dry run removed {d}");
    }
    assert!(s.has_revision("team/app", &stale.digest).await.unwrap());
    assert!(s.upload_status("team/app", &session.id).await.is_ok());

    let real = backend
        .gc(&GcOptions {
            dry_run: false,
            ..everything.clone()
        })
        .await;
    assert!(!real.dry_run);
    assert_eq!(
        digests(real.blobs_removed.iter().map(|b| &b.digest)),
        digests(&doomed)
    );
    assert_eq!(
        digests(real.revisions_removed.iter().map(|r| &r.digest)),
        digests(dry.revisions_removed.iter().map(|r| &r.digest))
    );
    assert_eq!(
        real.layer_links_removed.len(),
        dry.layer_links_removed.len()
    );
    // The orphan, and the stale images' configs and layers, were linked into `team/app`.
    assert_eq!(real.layer_links_removed.len(), 5, "{real:#?}");
    for d in &doomed {
        assert!(!stored(s, d).await, "{d} is still stored");
        assert!(!s.has_layer("team/app", d).await.unwrap());
    }
    for m in [&stale, &stale_sbom] {
        assert!(!s.has_revision("team/app", &m.digest).await.unwrap());
    }
    for (repo, m) in [
        ("team/app", &kept),
        ("team/app", &amd),
        ("team/app", &arm),
        ("team/app", &idx),
        ("team/app", &signature),
        ("other", &other),
    ] {
        assert!(
            s.has_revision(repo, &m.digest).await.unwrap(),
            "{repo}@{}",
            m.digest
        );
        for d in blobs_of(m) {
            assert!(stored(s, &d).await, "{d} of {repo}@{}", m.digest);
        }
    }
    assert!(matches!(
        s.upload_status("team/app", &session.id).await,
        Err(StorageError::UploadUnknown(_))
    ));
    let report = backend.fsck().await;
    assert!(report.is_clean(), "{:#?}", report.problems);

    let again = backend.gc(&everything).await;
    assert!(
        again.blobs_removed.is_empty() && again.revisions_removed.is_empty(),
        "{again:#?}"
    );
}

/// A clean registry, then one kind of damage at a time: a blob whose bytes changed (where the store has a back
/// to change them through), a tag naming no revision, a layer that went away, a layer linked only into another
/// repository. Each problem names where the item lives in the layout.
async fn fsck_scenario(backend: &Backend) {
    let s = backend.store();
    let layout = backend.layout();
    let m = image(s, "app", "hello world", Some("v1"), None).await;
    let amd = image(s, "team/multi", "amd64", None, None).await;
    let arm = image(s, "team/multi", "arm64", None, None).await;
    index(s, "team/multi", &[&amd, &arm], "v1").await;

    let clean = backend.fsck().await;
    assert!(clean.is_clean(), "{:#?}", clean.problems);
    assert_eq!(clean.repositories, 2);
    assert_eq!(clean.manifests, 4);
    assert_eq!(clean.blobs, 10);
    // 6 layer links, 4 revisions, 2 tags (a directory also counts the tags' history links).
    assert!(clean.links >= 12, "{clean:#?}");
    assert!(clean.bytes > 0);

    let layer = layer_of(&m);
    if backend.overwrite(&layer, b"hello wOrld") {
        let report = backend.fsck().await;
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert_eq!(report.problems[0].kind, ProblemKind::CorruptBlob);
        assert_eq!(report.problems[0].path, layout.blob_data(&layer));
        assert!(backend.overwrite(&layer, b"hello world"));
        assert!(backend.fsck().await.is_clean());
    }

    let ghost = Digest::sha256_of(b"never pushed");
    s.set_tag("app", "ghost", &ghost).await.unwrap();
    let report = backend.fsck().await;
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::DanglingLink);
    assert_eq!(
        report.problems[0].path,
        layout.tag_current_link("app", "ghost")
    );
    s.delete_tag("app", "ghost").await.unwrap();

    s.remove_blob(&layer).await.unwrap();
    let report = backend.fsck().await;
    let found = |kind: ProblemKind, path: &std::path::Path| {
        report
            .problems
            .iter()
            .any(|p| p.kind == kind && p.path == path)
    };
    assert_eq!(report.problems.len(), 2, "{:#?}", report.problems);
    assert!(found(
        ProblemKind::DanglingLink,
        &layout.layer_link("app", &layer)
    ));
    assert!(found(
        ProblemKind::BadReference,
        &layout.revision_link("app", &m.digest)
    ));
    s.put_blob_bytes(&layer, Bytes::from_static(b"hello world"))
        .await
        .unwrap();

    // A manifest in `app` using a layer that only `team/multi` links.
    let config = blob(s, "app", media_type::OCI_CONFIG, b"{}").await;
    let foreign = layer_of(&amd);
    let borrowed = ImageManifest::new(
        config,
        vec![Descriptor::new(media_type::OCI_LAYER_TAR, foreign, 5)],
    );
    let borrowed = RawManifest::from_created(&borrowed, media_type::OCI_MANIFEST).unwrap();
    put_manifest(s, "app", &borrowed, Some("borrowed")).await;
    let report = backend.fsck().await;
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::BadReference);
    assert_eq!(
        report.problems[0].path,
        layout.revision_link("app", &borrowed.digest)
    );
    assert!(
        report.problems[0].message.contains("not linked into `app`"),
        "{}",
        report.problems[0].message
    );
}

#[tokio::test]
async fn gc_on_a_directory() {
    gc_scenario(&Backend::dir()).await;
}

#[tokio::test]
async fn gc_in_memory() {
    gc_scenario(&Backend::Memory(MemoryStorage::new())).await;
}

#[tokio::test]
async fn gc_on_s3() {
    gc_scenario(&Backend::s3()).await;
}

#[tokio::test]
async fn fsck_on_a_directory() {
    fsck_scenario(&Backend::dir()).await;
}

#[tokio::test]
async fn fsck_in_memory() {
    fsck_scenario(&Backend::Memory(MemoryStorage::new())).await;
}

#[tokio::test]
async fn fsck_on_s3() {
    fsck_scenario(&Backend::s3()).await;
}
