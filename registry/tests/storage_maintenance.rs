//! `registry::storage::fsck` and `registry::storage::gc` on Docker Distribution trees built with
//! `testsupport::distribution::RawTree`: what fsck reports, what gc removes and what it must keep.

use std::path::Path;
use std::time::{Duration, SystemTime};

use formats::digest::Digest;
use formats::distribution::DistributionPaths;
use formats::manifest::{Descriptor, ImageIndex, ImageManifest, RawManifest};
use formats::media_type;
use registry::storage::fsck::{ProblemKind, fsck};
use registry::storage::gc::{GcOptions, gc};
use testsupport::distribution::RawTree;

/// Writes a blob and links it into `repo`; returns its descriptor.
fn blob(layout: &RawTree, repo: &str, media: &str, bytes: &[u8]) -> Descriptor {
    let (digest, size) = layout.write_blob(bytes, None, None).unwrap();
    layout.link_layer(repo, &digest).unwrap();
    Descriptor::new(media, digest, size)
}

/// An image with a config and one layer of `content`; the manifest is stored, tagged when `tag` is given.
fn image(
    layout: &RawTree,
    repo: &str,
    content: &str,
    tag: Option<&str>,
    subject: Option<Descriptor>,
) -> RawManifest {
    let config = blob(
        layout,
        repo,
        media_type::OCI_CONFIG,
        format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"x":"{content}"}}"#).as_bytes(),
    );
    let layer = blob(layout, repo, media_type::OCI_LAYER_TAR, content.as_bytes());
    let mut m = ImageManifest::new(config, vec![layer]);
    m.subject = subject;
    let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
    layout.put_manifest(repo, &raw, tag).unwrap();
    raw
}

fn index(layout: &RawTree, repo: &str, children: &[&RawManifest], tag: &str) -> RawManifest {
    let idx = ImageIndex::new(children.iter().map(|c| c.descriptor()).collect());
    let raw = RawManifest::from_created(&idx, media_type::OCI_INDEX).unwrap();
    layout.put_manifest(repo, &raw, Some(tag)).unwrap();
    raw
}

fn blob_exists(root: &Path, d: &Digest) -> bool {
    DistributionPaths::new(root).blob_data(d).is_file()
}

fn make_old(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn no_grace() -> GcOptions {
    GcOptions {
        grace_period: Duration::ZERO,
        ..GcOptions::default()
    }
}

fn layer_of(m: &RawManifest) -> Digest {
    m.referenced_blobs()[1].digest.clone()
}

#[tokio::test]
async fn a_tree_written_by_the_layout_writer_is_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let a = image(&layout, "team/app", "a", None, None);
    let b = image(&layout, "team/app", "b", None, None);
    index(&layout, "team/app", &[&a, &b], "v1");
    image(&layout, "other", "c", Some("latest"), None);
    let report = fsck(tmp.path()).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.repositories, 2);
    assert_eq!(report.manifests, 4);
    assert_eq!(report.blobs, 10);
}

#[tokio::test]
async fn a_flipped_byte_in_a_blob_is_reported_as_corrupt_at_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let m = image(&layout, "app", "hello world", Some("v1"), None);
    let data = layout.paths().blob_data(&layer_of(&m));
    std::fs::write(&data, b"hello wOrld").unwrap();
    let report = fsck(tmp.path()).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
    assert_eq!(report.problems[0].kind, ProblemKind::CorruptBlob);
    assert_eq!(report.problems[0].path, data);
}

#[tokio::test]
async fn malformed_mismatched_and_dangling_links_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let paths = layout.paths().clone();
    let m = image(&layout, "app", "x", Some("v1"), None);
    let ghost = Digest::sha256_of(b"never stored");
    // Garbage in a layer link; another digest in a revision link; a tag pointing at nothing stored.
    let layer_link = paths.layer_link("app", &layer_of(&m));
    std::fs::write(&layer_link, "sha256:nothex").unwrap();
    let other = image(&layout, "app", "y", None, None);
    let rev_link = paths.revision_link("app", &other.digest);
    std::fs::write(&rev_link, m.digest.to_string()).unwrap();
    std::fs::write(paths.tag_current_link("app", "v1"), ghost.to_string()).unwrap();
    let ghost_layer = paths.layer_link("app", &ghost);
    std::fs::create_dir_all(ghost_layer.parent().unwrap()).unwrap();
    std::fs::write(&ghost_layer, ghost.to_string()).unwrap();

    let report = fsck(tmp.path()).await.unwrap();
    let found = |kind: ProblemKind, path: &Path| {
        report
            .problems
            .iter()
            .any(|p| p.kind == kind && p.path == path)
    };
    assert!(
        found(ProblemKind::BadLink, &layer_link),
        "{:#?}",
        report.problems
    );
    assert!(
        found(ProblemKind::BadLink, &rev_link),
        "{:#?}",
        report.problems
    );
    assert!(found(
        ProblemKind::DanglingLink,
        &paths.tag_current_link("app", "v1")
    ));
    assert!(found(ProblemKind::DanglingLink, &ghost_layer));
    // The manifest's layer link is broken, so its layer no longer counts as in the repository.
    assert!(found(
        ProblemKind::BadReference,
        &paths.revision_link("app", &m.digest)
    ));
}

#[tokio::test]
async fn missing_layers_and_children_are_bad_references_except_non_distributable_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let paths = layout.paths().clone();
    let config = blob(&layout, "app", media_type::OCI_CONFIG, b"{}");
    let foreign = Descriptor::new(
        media_type::OCI_LAYER_NONDISTRIBUTABLE_TAR_GZIP,
        Digest::sha256_of(b"foreign"),
        7,
    );
    let missing = Descriptor::new(media_type::OCI_LAYER_TAR, Digest::sha256_of(b"gone"), 4);
    let m = ImageManifest::new(config, vec![foreign, missing.clone()]);
    let raw = RawManifest::from_created(&m, media_type::OCI_MANIFEST).unwrap();
    layout.put_manifest("app", &raw, Some("v1")).unwrap();
    let child = image(&layout, "app", "child", None, None);
    let idx = index(&layout, "app", &[&child], "multi");
    std::fs::remove_dir_all(paths.revision_link("app", &child.digest).parent().unwrap()).unwrap();

    let report = fsck(tmp.path()).await.unwrap();
    let messages: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(report.problems.len(), 2, "{messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains(&missing.digest.to_string()))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains(&idx.digest.to_string()) && m.contains(&child.digest.to_string()))
    );
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.kind == ProblemKind::BadReference)
    );
}

#[tokio::test]
async fn an_index_keeping_some_of_its_platforms_is_counted_as_partial_not_a_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let paths = layout.paths().clone();
    let kept = image(&layout, "app", "arm64", None, None);
    let left_out = image(&layout, "app", "amd64", None, None);
    index(&layout, "app", &[&kept, &left_out], "pinned");
    std::fs::remove_dir_all(
        paths
            .revision_link("app", &left_out.digest)
            .parent()
            .unwrap(),
    )
    .unwrap();

    let report = fsck(tmp.path()).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.partial_indexes, 1);
}

#[tokio::test]
async fn a_directory_without_a_distribution_tree_is_a_problem_not_a_clean_report() {
    let tmp = tempfile::tempdir().unwrap();
    let report = fsck(tmp.path()).await.unwrap();
    assert!(!report.is_clean());
    assert!(
        report.problems[0]
            .message
            .contains("not a Docker Distribution tree")
    );
    assert!(gc(tmp.path(), &GcOptions::default()).await.is_err());
}

#[tokio::test]
async fn gc_removes_old_unreferenced_blobs_with_their_layer_links_and_keeps_what_manifests_use() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let paths = layout.paths().clone();
    let kept = image(&layout, "app", "kept", Some("v1"), None);
    let orphan = blob(&layout, "app", media_type::OCI_LAYER_TAR, b"orphan");
    make_old(&paths.blob_data(&orphan.digest));

    let report = gc(tmp.path(), &no_grace()).await.unwrap();
    assert_eq!(report.blobs_removed.len(), 1, "{report:#?}");
    assert_eq!(report.blobs_removed[0].digest, orphan.digest);
    assert_eq!(report.bytes_freed, 6);
    assert_eq!(report.layer_links_removed.len(), 1);
    assert!(!blob_exists(tmp.path(), &orphan.digest));
    assert!(!paths.layer_link("app", &orphan.digest).exists());
    for d in kept.referenced_blobs() {
        assert!(blob_exists(tmp.path(), &d.digest));
    }
    assert!(blob_exists(tmp.path(), &kept.digest));
    assert!(fsck(tmp.path()).await.unwrap().is_clean());
}

#[tokio::test]
async fn gc_never_removes_a_blob_written_within_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let just_uploaded = blob(&layout, "app", media_type::OCI_LAYER_TAR, b"fresh");
    let report = gc(tmp.path(), &GcOptions::default()).await.unwrap();
    assert!(report.blobs_removed.is_empty());
    assert_eq!(report.young_blobs_kept.len(), 1);
    assert!(blob_exists(tmp.path(), &just_uploaded.digest));
    assert!(
        layout
            .paths()
            .layer_link("app", &just_uploaded.digest)
            .is_file()
    );
}

#[tokio::test]
async fn dry_run_reports_but_removes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let orphan = blob(&layout, "app", media_type::OCI_LAYER_TAR, b"orphan");
    let options = GcOptions {
        dry_run: true,
        ..no_grace()
    };
    let report = gc(tmp.path(), &options).await.unwrap();
    assert_eq!(report.blobs_removed.len(), 1);
    assert!(report.dry_run);
    assert!(blob_exists(tmp.path(), &orphan.digest));
    assert!(layout.paths().layer_link("app", &orphan.digest).is_file());
}

#[tokio::test]
async fn untagged_manifests_stay_without_delete_untagged() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let untagged = image(&layout, "app", "untagged", None, None);
    let report = gc(tmp.path(), &no_grace()).await.unwrap();
    assert!(report.blobs_removed.is_empty() && report.revisions_removed.is_empty());
    assert!(blob_exists(tmp.path(), &layer_of(&untagged)));
}

#[tokio::test]
async fn delete_untagged_keeps_children_of_tagged_indexes_and_referrers_of_kept_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let paths = layout.paths().clone();
    let amd = image(&layout, "app", "amd64", None, None);
    let arm = image(&layout, "app", "arm64", None, None);
    let idx = index(&layout, "app", &[&amd, &arm], "v1");
    let signature = image(&layout, "app", "signature", None, Some(idx.descriptor()));
    let stale = image(&layout, "app", "stale", None, None);
    let stale_sbom = image(&layout, "app", "stale-sbom", None, Some(stale.descriptor()));
    // A tag that once pointed at `stale` keeps that history entry until the revision goes.
    layout.put_manifest("app", &stale, Some("old")).unwrap();
    layout.put_manifest("app", &idx, Some("old")).unwrap();

    let options = GcOptions {
        delete_untagged: true,
        ..no_grace()
    };
    let report = gc(tmp.path(), &options).await.unwrap();
    let removed: Vec<&Digest> = report.revisions_removed.iter().map(|r| &r.digest).collect();
    assert_eq!(removed.len(), 2, "{report:#?}");
    assert!(removed.contains(&&stale.digest) && removed.contains(&&stale_sbom.digest));
    for m in [&amd, &arm, &idx, &signature] {
        assert!(paths.revision_link("app", &m.digest).is_file());
        assert!(blob_exists(tmp.path(), &m.digest));
        for d in m.referenced_blobs() {
            assert!(blob_exists(tmp.path(), &d.digest), "{d:?} of {}", m.digest);
        }
    }
    for m in [&stale, &stale_sbom] {
        assert!(!blob_exists(tmp.path(), &m.digest));
        assert!(!blob_exists(tmp.path(), &layer_of(m)));
    }
    assert!(!paths.tag_index_link("app", "old", &stale.digest).exists());
    assert!(fsck(tmp.path()).await.unwrap().is_clean());
}

#[tokio::test]
async fn idle_upload_sessions_go_and_active_ones_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    image(&layout, "app", "x", Some("v1"), None);
    let uploads = layout.paths().uploads_dir("app");
    for id in ["idle", "active"] {
        std::fs::create_dir_all(uploads.join(id)).unwrap();
        std::fs::write(uploads.join(id).join("data"), b"partial").unwrap();
        std::fs::write(uploads.join(id).join("startedat"), "2020-01-01T00:00:00Z").unwrap();
    }
    for p in ["data", "startedat", ""] {
        make_old(&uploads.join("idle").join(p));
    }
    let report = gc(tmp.path(), &GcOptions::default()).await.unwrap();
    assert_eq!(report.uploads_removed.len(), 1, "{report:#?}");
    assert_eq!(report.uploads_removed[0].id, "idle");
    assert!(!uploads.join("idle").exists());
    assert!(uploads.join("active/data").is_file());
}

#[tokio::test]
async fn gc_refuses_to_run_when_a_kept_manifest_is_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let m = image(&layout, "app", "x", Some("v1"), None);
    std::fs::write(layout.paths().blob_data(&m.digest), b"{not json").unwrap();
    let err = gc(tmp.path(), &no_grace()).await.unwrap_err().to_string();
    assert!(err.contains("gc refuses to run"), "{err}");
    assert!(blob_exists(tmp.path(), &layer_of(&m)));
}

#[tokio::test]
async fn staging_debris_of_an_interrupted_blob_write_is_not_a_problem_and_gc_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    image(&layout, "app", "x", Some("v1"), None);
    let debris = layout.paths().blob_dir(&Digest::sha256_of(b"half written"));
    std::fs::create_dir_all(&debris).unwrap();
    std::fs::write(debris.join(".tmp-123-456-0"), b"half").unwrap();
    let report = fsck(tmp.path()).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
    assert_eq!(report.leftovers.len(), 1);
    assert_eq!(report.leftovers[0], debris);
    // Too fresh: it may be a write in progress.
    assert!(
        gc(tmp.path(), &GcOptions::default())
            .await
            .unwrap()
            .leftovers_removed
            .is_empty()
    );
    make_old(&debris.join(".tmp-123-456-0"));
    make_old(&debris);
    let report = gc(tmp.path(), &GcOptions::default()).await.unwrap();
    assert_eq!(report.leftovers_removed.len(), 1);
    assert_eq!(report.leftovers_removed[0], debris);
    assert!(!debris.exists());
    assert!(fsck(tmp.path()).await.unwrap().leftovers.is_empty());
}

#[tokio::test]
async fn a_blob_older_than_the_grace_period_goes_and_a_younger_one_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    let kept = image(&layout, "app", "kept", Some("v1"), None);
    let old = blob(&layout, "app", media_type::OCI_LAYER_TAR, b"old");
    let young = blob(&layout, "app", media_type::OCI_LAYER_TAR, b"young");
    make_old(&layout.paths().blob_data(&old.digest));
    let report = gc(tmp.path(), &GcOptions::default()).await.unwrap();
    let removed: Vec<&Digest> = report.blobs_removed.iter().map(|b| &b.digest).collect();
    let spared: Vec<&Digest> = report.young_blobs_kept.iter().map(|b| &b.digest).collect();
    assert_eq!(removed, [&old.digest], "{report:#?}");
    assert_eq!(spared, [&young.digest], "{report:#?}");
    assert!(!blob_exists(tmp.path(), &old.digest));
    assert!(blob_exists(tmp.path(), &young.digest));
    assert!(blob_exists(tmp.path(), &layer_of(&kept)));
}

#[tokio::test]
async fn an_untagged_manifest_gc_cannot_read_is_kept_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    image(&layout, "app", "tagged", Some("v1"), None);
    let broken = image(&layout, "app", "broken", None, None);
    std::fs::write(layout.paths().blob_data(&broken.digest), b"{not json").unwrap();
    let options = GcOptions {
        delete_untagged: true,
        ..no_grace()
    };
    let report = gc(tmp.path(), &options).await.unwrap();
    assert!(report.revisions_removed.is_empty(), "{report:#?}");
    assert_eq!(report.warnings.len(), 1, "{report:#?}");
    assert!(report.warnings[0].contains(&broken.digest.to_string()));
    assert!(
        layout
            .paths()
            .revision_link("app", &broken.digest)
            .is_file()
    );
    assert!(blob_exists(tmp.path(), &broken.digest));
}

#[tokio::test]
async fn a_repository_holding_only_layer_links_loses_the_links_of_removed_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = RawTree::new(tmp.path());
    image(&layout, "app", "x", Some("v1"), None);
    let orphan = blob(&layout, "lonely", media_type::OCI_LAYER_TAR, b"orphan");
    let report = gc(tmp.path(), &no_grace()).await.unwrap();
    assert_eq!(
        report.layer_links_removed,
        [registry::storage::gc::InRepository {
            repository: "lonely".into(),
            digest: orphan.digest.clone()
        }]
    );
    assert!(!layout.paths().layer_link("lonely", &orphan.digest).exists());
    let report = fsck(tmp.path()).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.problems);
}
