//! Unit tests of the local store: lookup, listing, inspection, tagging, removal, collection, save and load.

use std::fs;
use std::io::Read;
use std::path::Path;

use formats::digest::Digest;
use formats::layer::{Compression, ExpansionLimit};
use formats::manifest::{ImageConfig, Platform};

use super::testutil::{image, multi, simple};
use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_or_create(dir.path().join("store")).unwrap();
    (dir, s)
}

fn blob_count(s: &Store) -> usize {
    fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count()
}

/// Writes a tar whose members have exactly these names (no sanitising), for hostile archives.
fn raw_tar(path: &Path, members: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn open_or_create_makes_an_empty_store_and_adopts_an_existing_one() {
    let (dir, s) = store();
    assert!(s.list().unwrap().is_empty());
    simple(&s, "myapp:v1", "one");
    let again = Store::open_or_create(dir.path().join("store")).unwrap();
    assert_eq!(again.list().unwrap().len(), 1);
    assert!(Store::open(dir.path().join("absent")).is_err());
}

#[test]
fn resolve_finds_short_and_full_names_and_digests() {
    let (_d, s) = store();
    let desc = simple(&s, "myapp:v1", "one");
    for name in [
        "myapp:v1",
        "docker.io/library/myapp:v1",
        "library/myapp:v1",
        &desc.digest.to_string(),
        &format!("sha256:{}", &desc.digest.hex()[..10]),
        &desc.digest.hex()[..12],
        desc.digest.hex(),
        &format!("myapp@{}", desc.digest),
    ] {
        let img = s.resolve(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(img.descriptor.digest, desc.digest, "{name}");
        assert_eq!(img.name, "docker.io/library/myapp:v1");
        assert!(!img.descriptor.annotations.contains_key(ANNOTATION_REF_NAME));
    }
    simple(&s, "myapp", "latest");
    assert_eq!(
        s.resolve("myapp").unwrap().name,
        "docker.io/library/myapp:latest"
    );
}

#[test]
fn unknown_image_is_reported_as_not_found_in_the_local_store() {
    let (_d, s) = store();
    simple(&s, "myapp:v1", "one");
    for name in ["myapp:v2", "other", "sha256:ffff", "Bad Name"] {
        let e = s.resolve(name).unwrap_err();
        assert!(matches!(e, StoreError::NotFound(_)), "{name}: {e}");
        assert_eq!(
            e.to_string(),
            format!("image `{name}` not found in the local store")
        );
    }
}

#[test]
fn digest_prefix_matching_several_images_is_ambiguous() {
    let (_d, s) = store();
    // 17 images: two of them must share the first hex digit.
    let digests: Vec<Digest> = (0..17)
        .map(|i| simple(&s, &format!("app:v{i}"), &format!("c{i}")).digest)
        .collect();
    let shared = (0..16)
        .map(|c| format!("{c:x}"))
        .find(|p| {
            digests
                .iter()
                .filter(|d| d.hex().starts_with(p.as_str()))
                .count()
                > 1
        })
        .unwrap();
    let e = s.resolve(&format!("sha256:{shared}")).unwrap_err();
    assert!(matches!(e, StoreError::Ambiguous { .. }), "{e}");
    assert!(e.to_string().contains("more digits"), "{e}");
}

#[test]
fn list_shows_repository_tag_digest_created_size_and_platforms() {
    let (_d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let idx = multi(&s, "quay.io/org/multi:2");
    let rows = s.list().unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("docker.io/library/myapp", "v1")
    );
    assert_eq!(r.digest, one.digest);
    assert_eq!(r.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(r.platforms, vec!["linux/amd64"]);
    // manifest + config + layer
    let img = s.resolve("myapp:v1").unwrap();
    let formats::manifest::ParsedManifest::Image(m) = &img.manifest.parsed else {
        panic!()
    };
    assert_eq!(
        r.size,
        one.size + m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>()
    );
    let r = &rows[1];
    assert_eq!(r.repository, "quay.io/org/multi");
    assert_eq!(r.digest, idx.digest);
    assert_eq!(r.platforms, vec!["linux/amd64", "linux/arm64"]);
    assert!(r.error.is_none());
}

#[test]
fn list_reports_a_broken_image_without_failing() {
    let (_d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    simple(&s, "ok:v1", "two");
    fs::remove_file(s.layout().blob_path(&one.digest)).unwrap();
    let rows = s.list().unwrap();
    assert!(rows[0].error.is_some());
    assert!(rows[1].error.is_none());
}

#[test]
fn inspect_shows_config_labels_env_cmd_entrypoint_layers_and_annotations() {
    let (_d, s) = store();
    simple(&s, "myapp:v1", "one");
    let d = s.inspect("myapp:v1").unwrap();
    assert_eq!(d.name.as_deref(), Some("docker.io/library/myapp:v1"));
    assert_eq!(d.platforms(), vec!["linux/amd64"]);
    let i = &d.images[0];
    assert_eq!(i.labels["org.example.content"], "one");
    assert_eq!(i.env, vec!["PATH=/usr/bin", "CONTENT=one"]);
    assert_eq!(i.cmd, vec!["cat", "/hello.txt"]);
    assert_eq!(i.entrypoint, vec!["/bin/sh", "-c"]);
    assert_eq!(i.annotations["org.opencontainers.image.title"], "one");
    assert_eq!(i.layers.len(), 1);
    assert!(i.layers[0].size > 0);
    assert!(i.layers[0].diff_id.is_some());
    assert_eq!(i.layers[0].media_type, media_type_gzip());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["images"][0]["config"]["architecture"], "amd64");

    multi(&s, "multi:1");
    let d = s.inspect("multi:1").unwrap();
    assert_eq!(d.platforms(), vec!["linux/amd64", "linux/arm64"]);
    assert_eq!(d.images[1].labels["org.example.content"], "arm64");
}

fn media_type_gzip() -> &'static str {
    formats::media_type::OCI_LAYER_TAR_GZIP
}

#[test]
fn tag_adds_a_normalised_name_for_the_same_manifest() {
    let (_d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    assert_eq!(
        s.tag("myapp:v1", "registry.local:5000/team/app:prod")
            .unwrap(),
        "registry.local:5000/team/app:prod"
    );
    assert_eq!(
        s.resolve("registry.local:5000/team/app:prod")
            .unwrap()
            .descriptor
            .digest,
        one.digest
    );
    assert_eq!(
        s.tag("myapp:v1", "other").unwrap(),
        "docker.io/library/other:latest"
    );
    assert!(s.tag("myapp:v1", "Bad:Name").is_err());
    assert!(matches!(
        s.tag("nope:v1", "x:y"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn untag_removes_the_tag_but_keeps_blobs_until_gc() {
    let (_d, s) = store();
    simple(&s, "myapp:v1", "one");
    let before = blob_count(&s);
    assert_eq!(s.untag("myapp:v1").unwrap(), "docker.io/library/myapp:v1");
    assert!(s.list().unwrap().is_empty());
    assert_eq!(blob_count(&s), before);
    assert!(matches!(s.untag("myapp:v1"), Err(StoreError::NotFound(_))));
    let gc = s.gc().unwrap().unwrap();
    assert_eq!(gc.removed.len(), before);
    assert_eq!(blob_count(&s), 0);
}

#[test]
fn remove_untags_then_collects_only_blobs_no_image_uses() {
    let (_d, s) = store();
    simple(&s, "myapp:v1", "one");
    simple(&s, "keep:v1", "two");
    s.tag("myapp:v1", "alias:v1").unwrap();
    let before = blob_count(&s);
    let r = s.remove(&["myapp:v1"], false).unwrap();
    assert_eq!(r.untagged, vec!["docker.io/library/myapp:v1"]);
    // Still referenced by alias:v1.
    assert_eq!(r.gc.unwrap().removed.len(), 0);
    let r = s.remove(&["alias:v1"], false).unwrap();
    assert_eq!(r.gc.unwrap().removed.len(), 3);
    assert_eq!(blob_count(&s), before - 3);
    assert!(s.inspect("keep:v1").is_ok());
    assert!(s.layout().fsck().unwrap().is_clean());
}

#[test]
fn remove_by_digest_of_an_image_with_several_tags_needs_force() {
    let (_d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    s.tag("myapp:v1", "myapp:v2").unwrap();
    let id = &one.digest.hex()[..12];
    let e = s.remove(&[id], false).unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(s.list().unwrap().len(), 2);
    let r = s.remove(&[id], true).unwrap();
    assert_eq!(r.untagged.len(), 2);
    assert!(s.list().unwrap().is_empty());
    assert_eq!(blob_count(&s), 0);
}

#[test]
fn gc_is_deferred_while_a_writer_holds_the_guard() {
    let (_d, s) = store();
    let guard = s.write_guard().unwrap();
    s.layout().write_blob_bytes(b"fresh layer").unwrap();
    assert_eq!(s.gc().unwrap(), None);
    assert_eq!(blob_count(&s), 1);
    drop(guard);
    assert_eq!(s.gc().unwrap().unwrap().removed.len(), 1);
}

#[test]
fn a_store_writer_keeps_its_untagged_blobs_from_rmi_and_prune_until_dropped() {
    let (_d, s) = store();
    let other = simple(&s, "other:v1", "other");
    let writer = s.writer().unwrap();
    // What a pull does through the writer: blobs first, the tag last.
    let (staged, _) = writer.layout().write_blob_bytes(b"pulled layer").unwrap();
    let r = s.remove(&["other:v1"], false).unwrap();
    assert_eq!((r.untagged.len(), r.gc), (1, None), "collection deferred");
    assert_eq!(s.prune().unwrap().gc, None);
    assert!(s.layout().has_blob(&staged) && s.layout().has_blob(&other.digest));
    drop(writer);
    let gc = s.gc().unwrap().unwrap();
    assert!(gc.removed.contains(&staged) && gc.removed.contains(&other.digest));
    assert_eq!(blob_count(&s), 0);
}

#[test]
fn put_manifest_stores_and_tags_under_the_guard() {
    let (_d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let index = formats::manifest::ImageIndex::new(vec![one]);
    let raw = RawManifest::from_created(&index, formats::media_type::OCI_INDEX).unwrap();
    let desc = s.put_manifest("docker.io/library/list:v1", &raw).unwrap();
    assert_eq!(desc.digest, raw.digest);
    assert_eq!(s.resolve("list:v1").unwrap().descriptor.digest, raw.digest);
    assert!(s.layout().fsck().unwrap().is_clean());
}

#[test]
fn prune_removes_dangling_blobs_and_stale_temp_files_only() {
    let (_d, s) = store();
    simple(&s, "myapp:v1", "one");
    s.layout().write_blob_bytes(b"dangling").unwrap();
    let stale = s.root().join("blobs/sha256/.tmp-stale");
    fs::write(&stale, b"partial").unwrap();
    let r = s.prune().unwrap();
    assert_eq!(r.gc.unwrap().removed.len(), 1);
    // Fresh temp files belong to writes in progress: kept.
    assert!(stale.exists() && r.temp_files.is_empty());
    let r = s.prune_older_than(std::time::Duration::ZERO).unwrap();
    assert_eq!(r.temp_files, vec![stale.clone()]);
    assert_eq!(r.temp_bytes, 7);
    assert!(!stale.exists());
    assert!(s.inspect("myapp:v1").is_ok());
}

#[test]
fn oci_archive_round_trip_keeps_manifest_digests_and_names() {
    let (d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let idx = multi(&s, "multi:1");
    let out = d.path().join("out.tar");
    let r = s
        .save(&["myapp:v1", "multi:1"], ArchiveFormat::OciArchive, &out)
        .unwrap();
    assert_eq!(r.images.len(), 2);
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    let loaded = other.load(&out).unwrap();
    assert_eq!(
        loaded,
        vec![
            LoadedImage {
                name: "docker.io/library/myapp:v1".into(),
                digest: one.digest.clone()
            },
            LoadedImage {
                name: "docker.io/library/multi:1".into(),
                digest: idx.digest.clone()
            },
        ]
    );
    assert_eq!(
        other.resolve("myapp:v1").unwrap().descriptor.digest,
        one.digest
    );
    assert!(other.layout().fsck().unwrap().is_clean());
    assert_eq!(blob_count(&other), blob_count(&s));
    // Saving twice gives the same bytes.
    let again = d.path().join("again.tar");
    s.save(&["myapp:v1", "multi:1"], ArchiveFormat::OciArchive, &again)
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn oci_dir_round_trip_keeps_manifest_digests() {
    let (d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let out = d.path().join("layout");
    s.save(&["myapp:v1"], ArchiveFormat::OciDir, &out).unwrap();
    assert!(out.join("oci-layout").is_file());
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    let loaded = other.load(&out).unwrap();
    assert_eq!(loaded[0].digest, one.digest);
    let e = s
        .save(&["myapp:v1"], ArchiveFormat::OciDir, d.path())
        .unwrap_err();
    assert!(e.to_string().contains("not an OCI layout"), "{e}");
}

fn diff_ids(s: &Store, name: &str) -> Vec<Digest> {
    let d = s.inspect(name).unwrap();
    let c: &ImageConfig = d.images[0].config.as_ref().unwrap();
    c.rootfs.diff_ids.clone()
}

#[test]
fn docker_archive_round_trip_keeps_config_and_diff_ids() {
    let (d, s) = store();
    simple(&s, "myapp:v1", "gzip");
    image(
        &s,
        Some("docker.io/library/plain:v1"),
        "plain",
        Compression::None,
        &Platform::new("linux", "amd64"),
    );
    image(
        &s,
        Some("docker.io/library/zstd:v1"),
        "zstd",
        Compression::Zstd { level: 3 },
        &Platform::new("linux", "amd64"),
    );
    let names = ["myapp:v1", "plain:v1", "zstd:v1"];
    let out = d.path().join("docker.tar");
    s.save(&names, ArchiveFormat::DockerArchive, &out).unwrap();

    // The archive is in docker's layout with uncompressed layers whose hash is the diff_id.
    let src = archive::ArchiveSource::open(&out, d.path(), ExpansionLimit::default()).unwrap();
    let entries = transport::read_docker_manifest(&src).unwrap();
    assert_eq!(entries.len(), 3);
    for e in &entries {
        assert!(e.layers[0].ends_with("/layer.tar"));
        let (r, size) = src.open_member(&e.layers[0]).unwrap();
        let (digest, _) = transport::diff_id_of(r, size, ExpansionLimit::default()).unwrap();
        assert_eq!(format!("{}/layer.tar", digest.hex()), e.layers[0]);
    }

    let other = Store::open_or_create(d.path().join("second")).unwrap();
    let loaded = other.load(&out).unwrap();
    assert_eq!(loaded.len(), 3);
    for name in names {
        assert_eq!(diff_ids(&s, name), diff_ids(&other, name), "{name}");
        let a = s.inspect(name).unwrap();
        let b = other.inspect(name).unwrap();
        assert_eq!(a.images[0].config_digest, b.images[0].config_digest);
        assert_eq!(
            b.images[0].layers[0].media_type,
            formats::media_type::OCI_LAYER_TAR
        );
    }
    assert!(other.layout().fsck().unwrap().is_clean());
    // The uncompressed image's layer comes back as the very same blob.
    assert_eq!(
        s.inspect("plain:v1").unwrap().images[0].layers[0].digest,
        other.inspect("plain:v1").unwrap().images[0].layers[0].digest
    );
}

#[test]
fn docker_archive_of_a_multi_platform_image_holds_the_host_platform() {
    let (d, s) = store();
    multi(&s, "multi:1");
    let out = d.path().join("docker.tar");
    s.save(&["multi:1"], ArchiveFormat::DockerArchive, &out)
        .unwrap();
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    other.load(&out).unwrap();
    let details = other.inspect("multi:1").unwrap();
    let host = Platform::host();
    if ["amd64", "arm64"].contains(&host.architecture.as_str()) {
        assert_eq!(
            details.platforms(),
            vec![format!("linux/{}", host.architecture)]
        );
    }
}

#[test]
fn docker_archive_with_a_dotdot_entry_is_refused_and_nothing_is_stored() {
    let (d, s) = store();
    let bad = d.path().join("bad.tar");
    raw_tar(&bad, &[("manifest.json", b"[]"), ("../escape", b"evil")]);
    let e = s.load(&bad).unwrap_err();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e}");
    assert!(e.to_string().contains("../escape"), "{e}");
    let abs = d.path().join("abs.tar");
    raw_tar(&abs, &[("/etc/evil", b"x"), ("manifest.json", b"[]")]);
    assert!(matches!(s.load(&abs), Err(StoreError::UnsafeEntry { .. })));
    assert_eq!(blob_count(&s), 0);
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn docker_archive_manifest_naming_a_file_outside_the_archive_is_refused() {
    let (d, s) = store();
    let bad = d.path().join("bad.tar");
    let manifest = br#"[{"Config":"../../etc/passwd","RepoTags":["x:y"],"Layers":[]}]"#;
    raw_tar(&bad, &[("manifest.json", manifest)]);
    let e = s.load(&bad).unwrap_err();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e}");
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn docker_archive_layer_not_matching_its_diff_id_is_refused_and_not_tagged() {
    let (d, s) = store();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::sha256_of(b"the real layer")
    );
    let manifest = br#"[{"Config":"config.json","RepoTags":["evil:v1"],"Layers":["l/layer.tar"]}]"#;
    let bad = d.path().join("bad.tar");
    raw_tar(
        &bad,
        &[
            ("manifest.json", manifest),
            ("config.json", config.as_bytes()),
            ("l/layer.tar", b"a different layer"),
        ],
    );
    let e = s.load(&bad).unwrap_err();
    assert!(e.to_string().contains("diff_id"), "{e}");
    assert!(s.list().unwrap().is_empty());
    assert_eq!(blob_count(&s), 0);
}

#[test]
fn oci_archive_with_a_corrupt_blob_is_refused_and_not_tagged() {
    let (d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let out = d.path().join("out.tar");
    s.save(&["myapp:v1"], ArchiveFormat::OciArchive, &out)
        .unwrap();
    // Flip one byte of the config blob inside the archive.
    let cfg = s.inspect("myapp:v1").unwrap().images[0]
        .config_digest
        .clone();
    let mut bytes = fs::read(&out).unwrap();
    let config = s.layout().read_blob_bytes(&cfg).unwrap();
    let pos = bytes
        .windows(config.len())
        .position(|w| w == config.as_slice())
        .unwrap();
    bytes[pos + 1] ^= 0x20;
    fs::write(&out, bytes).unwrap();
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    let e = other.load(&out).unwrap_err();
    assert!(e.to_string().contains("mismatch"), "{e}");
    assert!(other.list().unwrap().is_empty());
    assert!(!other.layout().has_blob(&one.digest));
}

#[test]
fn gzip_and_zstd_compressed_archives_load_through_a_scratch_file() {
    let (d, s) = store();
    let one = simple(&s, "myapp:v1", "one");
    let plain = d.path().join("p.tar");
    s.save(&["myapp:v1"], ArchiveFormat::DockerArchive, &plain)
        .unwrap();
    let gz = d.path().join("p.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), Default::default());
    std::io::copy(&mut fs::File::open(&plain).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let zst = d.path().join("p.tar.zst");
    let mut w = Compression::Zstd { level: 3 }
        .compressing_writer(fs::File::create(&zst).unwrap())
        .unwrap();
    std::io::copy(&mut fs::File::open(&plain).unwrap(), &mut w).unwrap();
    w.finish().unwrap();
    for archive in [&gz, &zst] {
        let other = Store::open_or_create(d.path().join(format!("s-{}", one.size))).unwrap();
        let loaded = other.load(archive).unwrap();
        assert_eq!(loaded[0].name, "docker.io/library/myapp:v1");
        assert_eq!(diff_ids(&s, "myapp:v1"), diff_ids(&other, "myapp:v1"));
        // The scratch copy is gone.
        assert!(fs::read_dir(other.root()).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp-")
        }));
    }
    let junk = d.path().join("junk.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&junk).unwrap(), Default::default());
    std::io::Write::write_all(&mut enc, b"not a tar at all, just some words").unwrap();
    enc.finish().unwrap();
    assert!(matches!(
        s.load(&junk),
        Err(StoreError::BadArchive { .. } | StoreError::ArchiveIo { .. })
    ));
}

#[test]
fn unnamed_oci_images_are_named_after_the_archive() {
    let (d, s) = store();
    let src = Store::open_or_create(d.path().join("My_Layout")).unwrap();
    let desc = image(
        &src,
        Some("latest"),
        "x",
        Compression::None,
        &Platform::new("linux", "amd64"),
    );
    let loaded = s.load(src.root()).unwrap();
    assert_eq!(loaded[0].name, "localhost/my-layout:latest");
    assert_eq!(loaded[0].digest, desc.digest);
}

#[test]
fn inspect_reads_oci_dirs_oci_archives_and_docker_archives() {
    let (d, s) = store();
    simple(&s, "myapp:v1", "one");
    let oci = d.path().join("o.tar");
    let docker = d.path().join("d.tar");
    s.save(&["myapp:v1"], ArchiveFormat::OciArchive, &oci)
        .unwrap();
    s.save(&["myapp:v1"], ArchiveFormat::DockerArchive, &docker)
        .unwrap();
    let local = s.inspect("myapp:v1").unwrap();
    for spec in [
        format!("oci:{}:docker.io/library/myapp:v1", s.root().display()),
        format!("oci:{}:myapp:v1", s.root().display()),
        format!("oci-archive:{}", oci.display()),
        format!("oci-archive:{}:myapp:v1", oci.display()),
        format!("docker-archive:{}", docker.display()),
        format!("docker-archive:{}:myapp:v1", docker.display()),
    ] {
        let src = ImageSource::parse(&spec).unwrap();
        let got = s
            .inspect_source(&src)
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(got.images[0].env, local.images[0].env, "{spec}");
        assert_eq!(got.images[0].config_digest, local.images[0].config_digest);
        assert_eq!(
            got.name.as_deref(),
            Some("docker.io/library/myapp:v1"),
            "{spec}"
        );
    }
    let e = s
        .inspect_source(
            &ImageSource::parse(&format!("oci-archive:{}:nope:v9", oci.display())).unwrap(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("no image named `nope:v9`"), "{e}");
}

#[test]
fn rfc3339_times_parse_to_unix_seconds() {
    use super::details::parse_rfc3339;
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339("2024-01-02T03:04:05Z"), Some(1_704_164_645));
    assert_eq!(
        parse_rfc3339("2024-01-02T03:04:05.123456789Z"),
        Some(1_704_164_645)
    );
    assert_eq!(
        parse_rfc3339("2024-01-02T05:04:05+02:00"),
        Some(1_704_164_645)
    );
    assert_eq!(parse_rfc3339("yesterday"), None);
    assert_eq!(parse_rfc3339("2024-13-02T03:04:05Z"), None);
}

#[test]
fn archive_members_are_streamed_not_loaded() {
    // A member is read through a positioned reader bounded to its size.
    let (d, _s) = store();
    let t = d.path().join("t.tar");
    raw_tar(&t, &[("a", b"first"), ("b", b"second")]);
    let src = archive::ArchiveSource::open(&t, d.path(), ExpansionLimit::default()).unwrap();
    let (mut r, n) = src.open_member("./b").unwrap();
    let mut s = String::new();
    r.read_to_string(&mut s).unwrap();
    assert_eq!((s.as_str(), n), ("second", 6));
}

/// A docker archive whose second layer is a symlink to the first (as `docker save` writes repeated layers).
fn docker_archive_with_link(path: &Path, link_target: &str) {
    let layer = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f.txt", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let diff = Digest::sha256_of(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}","{diff}"]}}}}"#
    );
    let manifest =
        r#"[{"Config":"c.json","RepoTags":["linked:v1"],"Layers":["a/layer.tar","b/layer.tar"]}]"#;
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("c.json", config.as_bytes()),
        ("a/layer.tar", layer.as_slice()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.as_gnu_mut().unwrap().linkname[..link_target.len()].copy_from_slice(link_target.as_bytes());
    b.append_data(&mut h, "b/layer.tar", std::io::empty())
        .unwrap();
    b.finish().unwrap();
}

#[test]
fn docker_archive_layers_linked_inside_the_archive_are_followed() {
    let (d, s) = store();
    let a = d.path().join("linked.tar");
    docker_archive_with_link(&a, "../a/layer.tar");
    let loaded = s.load(&a).unwrap();
    assert_eq!(loaded[0].name, "docker.io/library/linked:v1");
    assert_eq!(s.inspect("linked:v1").unwrap().images[0].layers.len(), 2);
}

#[test]
fn docker_archive_symlink_pointing_outside_the_archive_is_refused() {
    let (d, s) = store();
    let a = d.path().join("escape.tar");
    docker_archive_with_link(&a, "../../../etc/passwd");
    let e = s.load(&a).unwrap_err();
    assert!(matches!(e, StoreError::UnsafeEntry { .. }), "{e}");
    assert!(s.list().unwrap().is_empty());
}

#[test]
fn an_unpacked_docker_archive_directory_loads_too() {
    let (d, s) = store();
    simple(&s, "myapp:v1", "one");
    let a = d.path().join("d.tar");
    s.save(&["myapp:v1"], ArchiveFormat::DockerArchive, &a)
        .unwrap();
    let dir = d.path().join("unpacked");
    tar::Archive::new(fs::File::open(&a).unwrap())
        .unpack(&dir)
        .unwrap();
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    assert_eq!(
        other.load(&dir).unwrap()[0].name,
        "docker.io/library/myapp:v1"
    );
    assert_eq!(diff_ids(&s, "myapp:v1"), diff_ids(&other, "myapp:v1"));
}

#[test]
fn one_image_saved_under_two_names_is_one_docker_archive_entry_with_both_names() {
    let (d, s) = store();
    simple(&s, "myapp:v1", "one");
    s.tag("myapp:v1", "alias:v2").unwrap();
    let a = d.path().join("d.tar");
    s.save(&["myapp:v1", "alias:v2"], ArchiveFormat::DockerArchive, &a)
        .unwrap();
    let src = archive::ArchiveSource::open(&a, d.path(), ExpansionLimit::default()).unwrap();
    let entries = transport::read_docker_manifest(&src).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].repo_tags,
        vec!["docker.io/library/myapp:v1", "docker.io/library/alias:v2"]
    );
    let other = Store::open_or_create(d.path().join("second")).unwrap();
    assert_eq!(other.load(&a).unwrap().len(), 2);
}

#[test]
fn loads_racing_with_garbage_collection_never_lose_blobs() {
    let (d, s) = store();
    let mut archives = Vec::new();
    for i in 0..6 {
        let src = Store::open_or_create(d.path().join(format!("src{i}"))).unwrap();
        simple(&src, &format!("app{i}:v1"), &format!("content {i}"));
        let a = d.path().join(format!("a{i}.tar"));
        src.save(&[&format!("app{i}:v1")], ArchiveFormat::OciArchive, &a)
            .unwrap();
        archives.push(a);
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                s.gc().unwrap();
            }
        });
        let loaders: Vec<_> = archives
            .chunks(3)
            .map(|chunk| {
                let s = s.clone();
                scope.spawn(move || {
                    for a in chunk {
                        s.load(a).unwrap();
                    }
                })
            })
            .collect();
        for l in loaders {
            l.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(s.list().unwrap().len(), 6);
    let report = s.layout().fsck().unwrap();
    assert!(report.is_clean(), "{report:?}");
}
