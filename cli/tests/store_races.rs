//! A pull racing `rmi` and `prune` on the same local store loses nothing: every write to the store goes
//! through its writer guard, so garbage collection never takes the blobs of an image that is not tagged
//! yet, nor a blob the pull found already present and so did not download.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use formats::digest::Digest;
use formats::manifest::{Descriptor, ImageIndex, ImageManifest, ParsedManifest, RawManifest};
use formats::media_type;
use formats::oci_layout::{ANNOTATION_REF_NAME, OciLayout};
use testsupport::SealosRegistry;

const ITERATIONS: usize = 30;
/// The loop stops early past this, so the test stays well under a minute on a slow machine.
const BUDGET: Duration = Duration::from_secs(45);
const LAYER_SIZE: usize = 2 << 20;

fn sealos(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealos"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = sealos(root, args);
    assert!(
        out.status.success(),
        "sealos {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86_64" => "amd64",
        other => other,
    }
}

/// Bytes that differ per `seed` and do not compress.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Writes an image of `layers` (their seeds) into the seed layout, tagged `tag`.
fn seed_image(layout: &OciLayout, tag: &str, layers: &[u32]) {
    let blobs: Vec<Vec<u8>> = layers.iter().map(|s| noise(*s, LAYER_SIZE)).collect();
    let diff_ids: Vec<String> = blobs
        .iter()
        .map(|b| format!("\"{}\"", Digest::sha256_of(b)))
        .collect();
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","config":{{"Labels":{{"name":"{tag}"}}}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        host_arch(),
        diff_ids.join(",")
    );
    layout.write_blob_bytes(config.as_bytes()).unwrap();
    let mut descriptors = Vec::new();
    for b in &blobs {
        layout.write_blob_bytes(b).unwrap();
        descriptors.push(Descriptor::for_bytes(media_type::OCI_LAYER_TAR, b));
    }
    let manifest = ImageManifest::new(
        Descriptor::for_bytes(media_type::OCI_CONFIG, config.as_bytes()),
        descriptors,
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let desc = layout.write_manifest(&raw).unwrap();
    layout.set_tag(tag, desc).unwrap();
}

/// What is wrong with `name` in the store at `root` (an fsck of one image): its tag, its manifest, and every
/// blob the manifest names, present with the right size and content. Empty when nothing is.
fn problems(root: &Path, name: &str) -> Vec<String> {
    let layout = OciLayout::open(root).unwrap();
    let Some(desc) = layout.resolve(name).unwrap() else {
        return vec![format!("`{name}` is not tagged")];
    };
    let raw = match layout.read_manifest(&desc) {
        Ok(raw) => raw,
        Err(e) => return vec![format!("manifest {}: {e}", desc.digest)],
    };
    let blobs: Vec<Descriptor> = match &raw.parsed {
        ParsedManifest::Image(m) => std::iter::once(m.config.clone())
            .chain(m.layers.iter().cloned())
            .collect(),
        ParsedManifest::Index(i) => return vec![format!("unexpected index {:?}", i.manifests)],
    };
    blobs
        .iter()
        .filter_map(|d| {
            let path = layout.blob_path(&d.digest);
            match fs::read(&path) {
                Err(e) => Some(format!("blob {}: {e}", d.digest)),
                Ok(b) if b.len() as u64 != d.size || Digest::sha256_of(&b) != d.digest => {
                    Some(format!("blob {} has the wrong content", d.digest))
                }
                Ok(_) => None,
            }
        })
        .collect()
}

fn tags(root: &Path) -> Vec<String> {
    let index: ImageIndex =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    index
        .manifests
        .iter()
        .filter_map(|d| d.annotations.get(ANNOTATION_REF_NAME).cloned())
        .collect()
}

#[test]
fn pull_racing_prune_and_rmi_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let seed: PathBuf = tmp.path().join("seed");
    let store: PathBuf = tmp.path().join("store");
    let registry = SealosRegistry::start(
        Path::new(env!("CARGO_BIN_EXE_sealos")),
        &tmp.path().join("registry"),
        &[],
    );
    let host = registry.host().to_string();
    let x = format!("{host}/race/x:v1");
    let y = format!("{host}/race/y:v1");
    let z = format!("{host}/race/z:v1");
    // X and Y share their base layer (seed 1): a pull of X finds it present while Y is tagged, and must
    // keep it when Y is removed meanwhile.
    let layout = OciLayout::create(&seed).unwrap();
    seed_image(&layout, &x, &[1, 2, 3, 4]);
    seed_image(&layout, &y, &[1, 5]);
    seed_image(&layout, &z, &[6]);
    for name in [&x, &y, &z] {
        ok(&seed, &["push", name]);
    }
    ok(&store, &["pull", "-q", &z]);

    let start = Instant::now();
    let mut iterations = 0;
    let mut deferred = 0;
    while iterations < ITERATIONS && start.elapsed() < BUDGET {
        iterations += 1;
        let _ = sealos(&store, &["rmi", &x]);
        ok(&store, &["pull", "-q", &y]);
        ok(&store, &["prune"]);
        let mut pull = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .arg("--root")
            .arg(&store)
            .args(["pull", "-q", &x])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut removed_y = false;
        let status = loop {
            if let Some(status) = pull.try_wait().unwrap() {
                break status;
            }
            if !removed_y {
                removed_y = sealos(&store, &["rmi", &y]).status.success();
            }
            let out = sealos(&store, &["prune"]);
            assert!(
                out.status.success(),
                "prune failed during a pull: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if String::from_utf8_lossy(&out.stderr).contains("kept") {
                deferred += 1;
            }
        };
        let stderr = pull.wait_with_output().unwrap().stderr;
        assert!(
            status.success(),
            "iteration {iterations}: the pull failed: {}",
            String::from_utf8_lossy(&stderr)
        );
        let inspect = sealos(&store, &["inspect", &x]);
        assert!(
            inspect.status.success(),
            "iteration {iterations}: `sealos inspect` of the image just pulled failed: {}",
            String::from_utf8_lossy(&inspect.stderr)
        );
        let lost = problems(&store, &x);
        assert!(
            lost.is_empty(),
            "iteration {iterations}: the pull raced rmi/prune and lost blobs: {lost:#?}"
        );
        assert!(
            problems(&store, &z).is_empty(),
            "an image nobody touched lost blobs"
        );
    }
    assert!(iterations >= 5, "only {iterations} iterations ran");
    assert!(
        deferred > 0,
        "no prune ever ran while a pull was writing, so the race was not exercised"
    );
    // The store is still consistent and collectable once the race is over.
    ok(&store, &["rmi", &x]);
    let _ = sealos(&store, &["rmi", &y]);
    ok(&store, &["prune"]);
    assert_eq!(tags(&store), vec![z.clone()]);
    assert!(problems(&store, &z).is_empty());
    eprintln!("{iterations} iterations, {deferred} collections deferred by a live pull");
}
