//! `sealos registry import` and `sealos registry pack` against real `sealos registry serve` processes on
//! 127.0.0.1: v1 delivered whole, v2 delivered as a delta (only the changed layer, the new config and the new
//! manifest) and imported, every v2 image read back with skopeo at its original digest; a delta refused before
//! anything is written when the site lacks a relied blob; volumes joined, and a truncated one named; a partial
//! import completed by running it again.

mod dist_fixture;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dist_fixture::DistDir;
use formats::digest::Digest;
use formats::distribution::{DistributionLayout, link_text};
use formats::manifest::RawManifest;
use testsupport::{SealosRegistry, require_tool};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn sealos_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sealos"))
}

fn sealos(args: &[&str]) -> Output {
    let out = Command::new(sealos_bin())
        .args(args)
        .env(
            "SEALOS_ROOT",
            std::env::temp_dir().join("sealos-delta-import-store"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run sealos");
    eprintln!(
        "sealos {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(args: &[&str]) -> String {
    let out = sealos(args);
    assert!(out.status.success(), "sealos {args:?} failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// One image: its layers' bytes; the config names them.
struct Image {
    repo: &'static str,
    tag: &'static str,
    layers: Vec<Vec<u8>>,
}

struct Built {
    manifest: RawManifest,
    config: (Digest, u64),
    layers: Vec<(Digest, u64)>,
}

fn build(image: &Image) -> Built {
    let layers: Vec<(Digest, u64)> = image
        .layers
        .iter()
        .map(|l| (Digest::sha256_of(l), l.len() as u64))
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Labels":{{"tag":"{}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        arch(),
        image.tag,
        diff_ids.join(",")
    );
    let config_d = Digest::sha256_of(config.as_bytes());
    let layer_json: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"{OCI_LAYER}","digest":"{d}","size":{n}}}"#))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{config_d}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        layer_json.join(",")
    );
    let manifest = RawManifest::from_bytes(manifest.into_bytes(), Some(OCI_MANIFEST)).unwrap();
    Built {
        manifest,
        config: (config_d, config.len() as u64),
        layers,
    }
}

fn config_bytes(image: &Image) -> Vec<u8> {
    let diff_ids: Vec<String> = image
        .layers
        .iter()
        .map(|l| format!("\"{}\"", Digest::sha256_of(l)))
        .collect();
    format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Labels":{{"tag":"{}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        arch(),
        image.tag,
        diff_ids.join(",")
    )
    .into_bytes()
}

fn layer(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32 * 31 + seed as u32 * 17) as u8)
        .collect()
}

/// v1: `lib/app:v1` (base layer + app layer) and `lib/base:v1` (base layer). v2: `lib/app:v2` (same base
/// layer and app layer, one new layer) and `lib/base:v2` (the very same manifest as `lib/base:v1`).
fn versions() -> (Vec<Image>, Vec<Image>) {
    let base = layer(1, 40_000);
    let app1 = layer(2, 30_000);
    let app2 = layer(3, 20_000);
    let v1 = vec![
        Image {
            repo: "lib/app",
            tag: "v1",
            layers: vec![base.clone(), app1.clone()],
        },
        Image {
            repo: "lib/base",
            tag: "v1",
            layers: vec![base.clone()],
        },
    ];
    let v2 = vec![
        Image {
            repo: "lib/app",
            tag: "v2",
            layers: vec![base.clone(), app1, app2],
        },
        Image {
            repo: "lib/base",
            // Same config label as v1, so the same manifest.
            tag: "v1",
            layers: vec![base],
        },
    ];
    (v1, v2)
}

/// Writes a delivery into `dir`: every image tagged (as `registry save` does), the blobs and manifests the
/// site (`site_has`) lacks written, the rest listed as relied on. `retag` renames tags (v2 of `lib/base` is
/// its v1 manifest under tag `v2`).
fn write_delivery(
    dir: &Path,
    images: &[Image],
    retag: &[(&str, &str)],
    site_has: &BTreeMap<Digest, u64>,
) -> BTreeMap<String, Digest> {
    let layout = DistDir::new(dir);
    let paths = formats::distribution::DistributionPaths::new(dir);
    let mut included = BTreeMap::new();
    let mut relied = BTreeMap::new();
    let mut entries = Vec::new();
    let mut digests = BTreeMap::new();
    for image in images {
        let built = build(image);
        let tag = retag
            .iter()
            .find(|(r, _)| *r == image.repo)
            .map_or(image.tag, |(_, t)| *t);
        let mut blobs: Vec<(Digest, Vec<u8>)> = image
            .layers
            .iter()
            .map(|l| (Digest::sha256_of(l), l.clone()))
            .collect();
        blobs.push((built.config.0.clone(), config_bytes(image)));
        for (d, bytes) in blobs {
            if site_has.contains_key(&d) {
                relied.insert(d.to_string(), bytes.len() as u64);
            } else {
                layout.blob(image.repo, &bytes);
                included.insert(d.to_string(), bytes.len() as u64);
            }
        }
        let m = &built.manifest;
        if site_has.contains_key(&m.digest) {
            relied.insert(m.digest.to_string(), m.bytes.len() as u64);
            // The tag is still linked, to a manifest the delivery does not hold.
            let link = paths.tag_current_link(image.repo, tag);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::fs::write(link, link_text(&m.digest)).unwrap();
        } else {
            layout.manifest(image.repo, m, Some(tag));
            included.insert(m.digest.to_string(), m.bytes.len() as u64);
        }
        entries.push(format!(
            r#"{{"repository":"{}","tag":"{tag}","digest":"{}"}}"#,
            image.repo, m.digest
        ));
        digests.insert(format!("{}:{tag}", image.repo), m.digest.clone());
    }
    let doc = format!(
        r#"{{"version":1,"kind":"sealos-delivery","created":"2026-12-04T23:00:00Z","images":[{}],"included":{},"relied":{}}}"#,
        entries.join(","),
        serde_json::to_string(&included).unwrap(),
        serde_json::to_string(&relied).unwrap()
    );
    std::fs::write(dir.join("delivery.json"), doc).unwrap();
    digests
}

/// Everything v1 holds: blob and manifest digests with sizes (what an inventory of the site lists).
fn site_inventory(images: &[Image]) -> BTreeMap<Digest, u64> {
    let mut out = BTreeMap::new();
    for image in images {
        let built = build(image);
        for (d, n) in built.layers.iter().chain([&built.config]) {
            out.insert(d.clone(), *n);
        }
        out.insert(
            built.manifest.digest.clone(),
            built.manifest.bytes.len() as u64,
        );
    }
    out
}

/// The digest skopeo reads for `host/name`.
fn skopeo_digest(host: &str, name: &str) -> String {
    require_tool("skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{host}/{name}"))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every file under `dir` with its size, for "nothing was written" checks.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push((p.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
    out.sort();
    out
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    v1_dir: PathBuf,
    v2_dir: PathBuf,
    v2_digests: BTreeMap<String, Digest>,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (v1, v2) = versions();
    let v1_dir = root.join("v1");
    write_delivery(&v1_dir, &v1, &[], &BTreeMap::new());
    let v2_dir = root.join("v2");
    let v2_digests = write_delivery(&v2_dir, &v2, &[("lib/base", "v2")], &site_inventory(&v1));
    Setup {
        _tmp: tmp,
        root,
        v1_dir,
        v2_dir,
        v2_digests,
    }
}

fn site_with_v1(s: &Setup, name: &str) -> (SealosRegistry, PathBuf) {
    let dir = s.root.join(name);
    let site = SealosRegistry::start(sealos_bin(), &dir, &[]);
    let text = ok(&[
        "registry",
        "import",
        s.v1_dir.to_str().unwrap(),
        site.host(),
    ]);
    assert!(
        text.contains("imported 2 images (0 already there)"),
        "{text}"
    );
    (site, dir)
}

#[test]
fn delta_of_v2_imported_over_v1_pulls_every_image_with_its_original_digest() {
    let s = setup();
    // The delta holds only the new layer, the new config and the new manifest of lib/app:v2.
    let delivery: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.v2_dir.join("delivery.json")).unwrap()).unwrap();
    assert_eq!(
        delivery["included"].as_object().unwrap().len(),
        3,
        "{delivery}"
    );
    let (site, _dir) = site_with_v1(&s, "site");
    let text = ok(&[
        "registry",
        "import",
        s.v2_dir.to_str().unwrap(),
        site.host(),
    ]);
    assert!(text.contains("2 blobs added"), "{text}");
    for (name, digest) in &s.v2_digests {
        assert_eq!(
            skopeo_digest(site.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
    // v1 is still there.
    skopeo_digest(site.host(), "lib/app:v1");
    // Imported into a directory too (a site registry's storage, say), then served.
    let dir_site = s.root.join("dir-site");
    ok(&[
        "registry",
        "import",
        s.v1_dir.to_str().unwrap(),
        dir_site.to_str().unwrap(),
    ]);
    ok(&[
        "registry",
        "import",
        s.v2_dir.to_str().unwrap(),
        dir_site.to_str().unwrap(),
    ]);
    let served = SealosRegistry::start(sealos_bin(), &dir_site, &["--read-only"]);
    for (name, digest) in &s.v2_digests {
        assert_eq!(
            skopeo_digest(served.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
}

#[test]
fn delta_into_a_site_lacking_a_relied_blob_is_refused_before_anything_is_written() {
    let s = setup();
    // The site holds lib/base:v1 only: the app layer of v1 and the app's v1 config are missing.
    let base_only = s.root.join("base-only");
    let (v1, _) = versions();
    write_delivery(&base_only, &v1[1..], &[], &BTreeMap::new());
    let dir = s.root.join("site");
    let site = SealosRegistry::start(sealos_bin(), &dir, &[]);
    ok(&[
        "registry",
        "import",
        base_only.to_str().unwrap(),
        site.host(),
    ]);
    let before = tree(&dir);
    let out = sealos(&[
        "registry",
        "import",
        s.v2_dir.to_str().unwrap(),
        site.host(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let app1 = Digest::sha256_of(&layer(2, 30_000));
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        err.contains(&format!("{app1} (blob, 30000 bytes) needed by lib/app:v2")),
        "{err}"
    );
    assert_eq!(tree(&dir), before, "the site changed");
    // The relied base layer is found in lib/base and is not reported missing.
    let base = Digest::sha256_of(&layer(1, 40_000));
    assert!(!err.contains(&base.to_string()), "{err}");
}

#[test]
fn volumes_are_joined_on_import_and_a_truncated_one_is_named_before_anything_is_written() {
    let s = setup();
    let prefix = s.root.join("media/v2");
    let text = ok(&[
        "registry",
        "pack",
        s.v2_dir.to_str().unwrap(),
        "--split",
        "8K",
        "-o",
        prefix.to_str().unwrap(),
    ]);
    assert!(text.contains("v2.vol001"), "{text}");
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.root.join("media/v2.volumes.json")).unwrap())
            .unwrap();
    let vols = desc["volumes"].as_array().unwrap();
    assert!(vols.len() >= 3, "{desc}");
    assert!(
        vols.iter().all(|v| v["size"].as_u64().unwrap() <= 8192),
        "{desc}"
    );
    // A truncated copy of volume 2 is named, and the site is left as it was.
    let broken = s.root.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    for e in std::fs::read_dir(s.root.join("media")).unwrap().flatten() {
        std::fs::copy(e.path(), broken.join(e.file_name())).unwrap();
    }
    let vol2 = broken.join("v2.vol002");
    let bytes = std::fs::read(&vol2).unwrap();
    std::fs::write(&vol2, &bytes[..bytes.len() / 2]).unwrap();
    let (site, dir) = site_with_v1(&s, "site");
    let before = tree(&dir);
    let out = sealos(&[
        "registry",
        "import",
        broken.join("v2.volumes.json").to_str().unwrap(),
        site.host(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("v2.vol002") && err.contains("truncated"),
        "{err}"
    );
    assert_eq!(tree(&dir), before, "the site changed");
    // The intact set (named by its prefix) imports.
    let text = ok(&["registry", "import", prefix.to_str().unwrap(), site.host()]);
    assert!(text.contains("2 blobs added"), "{text}");
    for (name, digest) in &s.v2_digests {
        assert_eq!(
            skopeo_digest(site.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
}

#[test]
fn a_partial_import_is_completed_by_running_it_again() {
    let s = setup();
    let (site, _dir) = site_with_v1(&s, "site");
    // A first run that stopped after one of the two new blobs: the new layer is already at the site.
    let new_layer = layer(3, 20_000);
    let d = Digest::sha256_of(&new_layer);
    let client = registry::client::RegistryClient::new(registry::client::ClientOptions {
        insecure_loopback: true,
        ..registry::client::ClientOptions::default()
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blob = s.root.join("new-layer");
    std::fs::write(&blob, &new_layer).unwrap();
    rt.block_on(client.push_blob(
        site.host(),
        "lib/app",
        &d,
        new_layer.len() as u64,
        registry::client::BlobSource::File(blob),
        None,
    ))
    .unwrap();
    let text = ok(&[
        "registry",
        "import",
        s.v2_dir.to_str().unwrap(),
        site.host(),
    ]);
    assert!(
        text.contains("1 blob added") && text.contains("1 blob already there"),
        "{text}"
    );
    for (name, digest) in &s.v2_digests {
        assert_eq!(
            skopeo_digest(site.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
    // Run again: nothing left to add.
    let text = ok(&[
        "registry",
        "import",
        s.v2_dir.to_str().unwrap(),
        site.host(),
    ]);
    assert!(
        text.contains("imported 0 images (2 already there)")
            && text.contains("0 blobs added")
            && text.contains("2 blobs already there"),
        "{text}"
    );
}

/// The whole chain with the real commands: v1 saved whole and imported, the site's inventory taken, v2 saved as
/// a delta against it (`registry save --inventory`), imported, read back with skopeo at its source digests.
#[test]
fn save_inventory_delta_then_import_round_trips_with_the_real_commands() {
    let s = setup();
    let (v1, v2) = versions();
    let src_dir = s.root.join("source");
    write_delivery(&src_dir, &v1, &[], &BTreeMap::new());
    write_delivery(&src_dir, &v2, &[("lib/base", "v2")], &BTreeMap::new());
    let src = SealosRegistry::start(sealos_bin(), &src_dir, &["--read-only"]);
    let whole = s.root.join("whole");
    let images_v1 = format!("{0}/lib/app:v1,{0}/lib/base:v1", src.host());
    ok(&[
        "registry",
        "save",
        "--images",
        &images_v1,
        "--registry-dir",
        whole.to_str().unwrap(),
    ]);
    let site_dir = s.root.join("site");
    let site = SealosRegistry::start(sealos_bin(), &site_dir, &[]);
    // A directory saved whole (no delivery.json) is a delivery of every tag it holds.
    let text = ok(&["registry", "import", whole.to_str().unwrap(), site.host()]);
    assert!(
        text.contains("imported 2 images (0 already there)"),
        "{text}"
    );
    let inventory = s.root.join("site.json");
    ok(&[
        "registry",
        "inventory",
        site.host(),
        "-o",
        inventory.to_str().unwrap(),
    ]);
    let delta = s.root.join("delta");
    let images_v2 = format!("{0}/lib/app:v2,{0}/lib/base:v2", src.host());
    ok(&[
        "registry",
        "save",
        "--images",
        &images_v2,
        "--inventory",
        inventory.to_str().unwrap(),
        "--registry-dir",
        delta.to_str().unwrap(),
    ]);
    let text = ok(&[
        "registry",
        "import",
        delta.to_str().unwrap(),
        site.host(),
        "--format",
        "json",
    ]);
    let out = sealos(&[
        "registry",
        "import",
        delta.to_str().unwrap(),
        site.host(),
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The second run finds everything there.
    assert_eq!(json["added"]["blobs"], 0, "{json}\n{text}");
    for (name, digest) in &s.v2_digests {
        assert_eq!(
            skopeo_digest(site.host(), name),
            digest.to_string(),
            "{name}"
        );
        assert_eq!(
            skopeo_digest(src.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
}

/// A new repository whose layer the site holds only in other repositories: the layer is relied on, found
/// there and mounted, not refused.
#[test]
fn a_relied_blob_held_by_another_repository_of_the_site_is_mounted() {
    let s = setup();
    let (v1, _) = versions();
    let other = vec![Image {
        repo: "lib/other",
        tag: "x1",
        layers: vec![layer(1, 40_000)],
    }];
    let delta = s.root.join("other");
    let digests = write_delivery(&delta, &other, &[], &site_inventory(&v1));
    let (site, _dir) = site_with_v1(&s, "site");
    let text = ok(&["registry", "import", delta.to_str().unwrap(), site.host()]);
    assert!(
        text.contains("1 blob added") && text.contains("1 relied on found there"),
        "{text}"
    );
    for (name, digest) in &digests {
        assert_eq!(
            skopeo_digest(site.host(), name),
            digest.to_string(),
            "{name}"
        );
    }
}

/// An import killed (SIGKILL) mid-way leaves no tag pointing at missing content; run again, it sends only
/// what had not arrived and completes.
#[test]
fn an_import_killed_mid_way_is_completed_by_running_it_again() {
    let s = setup();
    let names = [
        "big/a", "big/b", "big/c", "big/d", "big/e", "big/f", "big/g", "big/h", "big/i", "big/j",
    ];
    let images: Vec<Image> = names
        .iter()
        .enumerate()
        .map(|(i, repo)| Image {
            repo,
            tag: "v1",
            layers: vec![layer(10 + i as u8, 6 << 20)],
        })
        .collect();
    let delivery = s.root.join("big");
    let digests = write_delivery(&delivery, &images, &[], &BTreeMap::new());
    let dest = s.root.join("dest");
    let mut child = Command::new(sealos_bin())
        .args(["registry", "import", "--max-procs", "1"])
        .arg(&delivery)
        .arg(&dest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let blobs = dest.join("docker/registry/v2/blobs/sha256");
    let count = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().flatten())
                    .filter(|d| d.path().join("data").is_file())
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(&blobs) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let layout = DistributionLayout::new(&dest);
    let tagged: Vec<&str> = names
        .iter()
        .copied()
        .filter(|r| layout.resolve_tag(r, "v1").ok().flatten().is_some())
        .collect();
    assert!(
        tagged.len() < names.len(),
        "the import finished before it was killed"
    );
    // Every tag there points at complete content.
    for repo in &tagged {
        let m = layout
            .read_manifest(repo, &digests[&format!("{repo}:v1")])
            .unwrap();
        for d in m.referenced_blobs() {
            assert!(
                layout.paths().blob_data(&d.digest).is_file(),
                "{repo}: {}",
                d.digest
            );
        }
    }
    let text = ok(&[
        "registry",
        "import",
        delivery.to_str().unwrap(),
        dest.to_str().unwrap(),
    ]);
    assert!(!text.contains(" 0 blobs already there"), "{text}");
    for (name, digest) in &digests {
        let (repo, tag) = name.split_once(':').unwrap();
        assert_eq!(
            layout.resolve_tag(repo, tag).unwrap().as_ref(),
            Some(digest),
            "{name}"
        );
    }
}
