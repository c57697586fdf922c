//! `sealos registry inventory` and `sealos registry save --inventory` against a real `sealos registry serve`
//! on 127.0.0.1: v1 of two images saved whole, the inventory of that directory (and of the registry) taken,
//! v2 (one layer changed in one image, the other only retagged) saved as a delta holding only the changed
//! layer, the new config and the manifests, with `delivery.json` naming exactly what it includes and what it
//! relies on; an index whose unchanged platform manifest the site holds relies on it.

mod upstream;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use formats::digest::Digest;
use formats::distribution::DistributionLayout;
use testsupport::{AnyRegistry, RegistryKind};
use upstream::{OCI_INDEX, client, push_image_layers, rt};

fn sealos(work: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(args)
        .env("SEALOS_ROOT", work.join("store"))
        .env("REGISTRY_AUTH_FILE", work.join("auth.json"))
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

fn ok(work: &Path, args: &[&str]) -> Output {
    let out = sealos(work, args);
    assert!(out.status.success(), "sealos {args:?} failed");
    out
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `layer` of `n` bytes named by `seed`, so layers differ.
fn layer(seed: &str) -> Vec<u8> {
    format!("{seed} ").repeat(300).into_bytes()
}

/// Every `data` file under a Distribution directory's blobs -> its size.
fn stored_blobs(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let blobs = DistributionLayout::new(dir)
        .paths()
        .blobs_dir()
        .join("sha256");
    for prefix in std::fs::read_dir(&blobs).unwrap() {
        for blob in std::fs::read_dir(prefix.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            let data = blob.path().join("data");
            if let Ok(m) = std::fs::metadata(&data) {
                out.insert(
                    format!("sha256:{}", blob.file_name().to_str().unwrap()),
                    m.len(),
                );
            }
        }
    }
    out
}

/// The `{digest: size}` object of a JSON document as a map.
fn sizes(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn blob_entry(bytes: &[u8]) -> (String, u64) {
    (Digest::sha256_of(bytes).to_string(), bytes.len() as u64)
}

/// The config our test images get for `layers` (as `push_image_layers` writes it).
fn config_of(arch: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", Digest::sha256_of(l)))
        .collect();
    format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes()
}

#[test]
fn delta_save_holds_only_what_the_inventory_lacks_and_delivery_json_lists_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let src = AnyRegistry::start(
        RegistryKind::Sealos,
        Path::new(env!("CARGO_BIN_EXE_sealos")),
    );
    let host = src.host();
    let c = client();

    // v1: two images of two layers each.
    let app_v1 = vec![layer("app base"), layer("app code v1")];
    let tools_v1 = vec![layer("tools base"), layer("tools bin")];
    let (app_v1_d, app_v1_m) = push_image_layers(&c, &host, "app", Some("v1"), "amd64", &app_v1);
    let (tools_d, tools_m) =
        push_image_layers(&c, &host, "lib/tools", Some("v1"), "amd64", &tools_v1);

    let whole = work.join("A");
    ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/app:v1,{host}/lib/tools:v1"),
            "--registry-dir",
            whole.to_str().unwrap(),
            "--tls-verify=false",
        ],
    );

    // The inventory of the directory: every tag, manifest and blob (manifests are not blobs).
    let inv_path = work.join("inv.json");
    let out = ok(
        work,
        &[
            "registry",
            "inventory",
            whole.to_str().unwrap(),
            "-o",
            inv_path.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 repositories, 2 tags, 6 blobs"),
        "{stderr}"
    );
    let inv = json_file(&inv_path);
    assert_eq!(inv["version"], 1);
    assert_eq!(inv["kind"], "sealos-inventory");
    assert_eq!(
        inv["repositories"]["app"]["tags"]["v1"],
        app_v1_d.to_string()
    );
    assert_eq!(
        inv["repositories"]["lib/tools"]["tags"]["v1"],
        tools_d.to_string()
    );
    assert_eq!(
        inv["repositories"]["app"]["manifests"],
        serde_json::json!([app_v1_d.to_string()])
    );
    let v1_blobs: BTreeMap<String, u64> = app_v1
        .iter()
        .chain(&tools_v1)
        .map(|l| blob_entry(l))
        .chain([
            blob_entry(&config_of("amd64", &app_v1)),
            blob_entry(&config_of("amd64", &tools_v1)),
        ])
        .collect();
    assert_eq!(sizes(&inv["blobs"]), v1_blobs);

    // The same site as a registry: the same repositories, tags, manifests and blobs.
    let out = ok(
        work,
        &["registry", "inventory", &host, "--tls-verify=false"],
    );
    let from_registry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_registry["kind"], "sealos-inventory");
    assert_eq!(from_registry["repositories"], inv["repositories"]);
    assert_eq!(from_registry["blobs"], inv["blobs"]);

    // v2: one layer of app changed; tools only retagged.
    let app_v2 = vec![layer("app base"), layer("app code v2")];
    let (app_v2_d, app_v2_m) = push_image_layers(&c, &host, "app", Some("v2"), "amd64", &app_v2);
    let (tools_v2_d, _) = push_image_layers(&c, &host, "lib/tools", Some("v2"), "amd64", &tools_v1);
    assert_eq!(tools_v2_d, tools_d);

    let delta = work.join("B");
    let out = ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/app:v2,{host}/lib/tools:v2"),
            "--registry-dir",
            delta.to_str().unwrap(),
            "--inventory",
            inv_path.to_str().unwrap(),
            "--tls-verify=false",
            "--format",
            "json",
        ],
    );

    // B holds the changed layer, the new config and the two tagged manifests, nothing else.
    let app_v2_config = config_of("amd64", &app_v2);
    let included: BTreeMap<String, u64> = [
        blob_entry(&app_v2[1]),
        blob_entry(&app_v2_config),
        blob_entry(&app_v2_m),
        blob_entry(&tools_m),
    ]
    .into_iter()
    .collect();
    assert_eq!(stored_blobs(&delta), included);
    let layout = DistributionLayout::new(&delta);
    assert_eq!(
        layout.resolve_tag("app", "v2").unwrap(),
        Some(app_v2_d.clone())
    );
    assert_eq!(
        layout.resolve_tag("lib/tools", "v2").unwrap(),
        Some(tools_d.clone())
    );
    assert_ne!(app_v1_m, app_v2_m);

    // delivery.json: exactly what is included, and exactly what is relied on.
    let delivery = json_file(&delta.join("delivery.json"));
    assert_eq!(delivery["version"], 1);
    assert_eq!(delivery["kind"], "sealos-delivery");
    assert_eq!(sizes(&delivery["included"]), included);
    let relied: BTreeMap<String, u64> = [
        blob_entry(&app_v2[0]),
        blob_entry(&tools_v1[0]),
        blob_entry(&tools_v1[1]),
        blob_entry(&config_of("amd64", &tools_v1)),
    ]
    .into_iter()
    .collect();
    assert_eq!(sizes(&delivery["relied"]), relied);
    let images: BTreeSet<(String, String, String)> = delivery["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["repository"].as_str().unwrap().to_string(),
                i["tag"].as_str().unwrap().to_string(),
                i["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        images,
        BTreeSet::from([
            ("app".into(), "v2".into(), app_v2_d.to_string()),
            ("lib/tools".into(), "v2".into(), tools_d.to_string()),
        ])
    );

    // The JSON summary compares the delta with the whole delivery.
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let included_bytes: u64 = included.values().sum();
    let relied_bytes: u64 = relied.values().sum();
    assert_eq!(doc["delta"]["included"], 4);
    assert_eq!(doc["delta"]["includedBytes"], included_bytes);
    assert_eq!(doc["delta"]["relied"], 4);
    assert_eq!(doc["delta"]["reliedBytes"], relied_bytes);
    assert_eq!(doc["delta"]["wholeBytes"], included_bytes + relied_bytes);

    // A rerun into the same directory writes the same delivery (nothing is skipped unrecorded), and the text
    // summary says what was included and relied on.
    let out = ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/app:v2,{host}/lib/tools:v2"),
            "--registry-dir",
            delta.to_str().unwrap(),
            "--inventory",
            inv_path.to_str().unwrap(),
            "--tls-verify=false",
        ],
    );
    let again = json_file(&delta.join("delivery.json"));
    assert_eq!(again["included"], delivery["included"]);
    assert_eq!(again["relied"], delivery["relied"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("delta: 4 blobs included (")
            && stderr.contains("4 relied on at the site ("),
        "{stderr}"
    );
}

#[test]
fn an_index_relies_on_the_platform_manifest_the_site_already_holds() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let src = AnyRegistry::start(
        RegistryKind::Sealos,
        Path::new(env!("CARGO_BIN_EXE_sealos")),
    );
    let host = src.host();
    let c = client();
    let push_index = |tag: &str, amd: &[Vec<u8>], arm: &[Vec<u8>]| {
        let (amd_d, amd_m) = push_image_layers(&c, &host, "multi", None, "amd64", amd);
        let (arm_d, arm_m) = push_image_layers(&c, &host, "multi", None, "arm64", arm);
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{}","digest":"{amd_d}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{}","digest":"{arm_d}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            upstream::OCI_MANIFEST,
            amd_m.len(),
            upstream::OCI_MANIFEST,
            arm_m.len()
        )
        .into_bytes();
        rt().block_on(c.put_manifest(&host, "multi", tag, Bytes::from(index.clone()), OCI_INDEX))
            .unwrap();
        (index, amd_m, arm_m)
    };
    let arm = vec![layer("arm64 base")];
    let (_, _, arm_m) = push_index("1", &[layer("amd64 base v1")], &arm);
    let whole = work.join("A");
    ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/multi:1"),
            "--all",
            "--registry-dir",
            whole.to_str().unwrap(),
            "--tls-verify=false",
        ],
    );
    let inv_path = work.join("inv.json");
    ok(
        work,
        &[
            "registry",
            "inventory",
            &format!("dir:{}", whole.display()),
            "-o",
            inv_path.to_str().unwrap(),
        ],
    );
    assert_eq!(
        json_file(&inv_path)["repositories"]["multi"]["manifests"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "the index and both platform manifests"
    );

    let amd_v2 = vec![layer("amd64 base v2")];
    let (index2, amd2_m, _) = push_index("2", &amd_v2, &arm);
    let delta = work.join("B");
    ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/multi:2"),
            "--all",
            "--registry-dir",
            delta.to_str().unwrap(),
            "--inventory",
            inv_path.to_str().unwrap(),
            "--tls-verify=false",
        ],
    );
    let delivery = json_file(&delta.join("delivery.json"));
    let included: BTreeMap<String, u64> = [
        blob_entry(&index2),
        blob_entry(&amd2_m),
        blob_entry(&amd_v2[0]),
        blob_entry(&config_of("amd64", &amd_v2)),
    ]
    .into_iter()
    .collect();
    assert_eq!(sizes(&delivery["included"]), included);
    assert_eq!(stored_blobs(&delta), included);
    // The arm64 manifest is relied on as a whole: its blobs are not even looked at.
    assert_eq!(
        sizes(&delivery["relied"]),
        BTreeMap::from([blob_entry(&arm_m)])
    );
    // A rerun into the same directory walks what is already there and records the same delivery.
    ok(
        work,
        &[
            "registry",
            "save",
            "--images",
            &format!("{host}/multi:2"),
            "--all",
            "--registry-dir",
            delta.to_str().unwrap(),
            "--inventory",
            inv_path.to_str().unwrap(),
            "--tls-verify=false",
        ],
    );
    let again = json_file(&delta.join("delivery.json"));
    assert_eq!(again["included"], delivery["included"]);
    assert_eq!(again["relied"], delivery["relied"]);
}

#[test]
fn wrong_inventory_files_and_non_registry_directories_are_refused_before_anything_is_written() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let delivery = work.join("delivery.json");
    std::fs::write(
        &delivery,
        r#"{"version":1,"kind":"sealos-delivery","created":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let out_dir = work.join("out");
    let out = sealos(
        work,
        &[
            "registry",
            "save",
            "--images",
            "127.0.0.1:1/app:v1",
            "--registry-dir",
            out_dir.to_str().unwrap(),
            "--inventory",
            delivery.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("kind is `sealos-delivery`, expected `sealos-inventory`"),
        "{stderr}"
    );
    assert!(!out_dir.exists(), "nothing is written");

    let plain = work.join("plain");
    std::fs::create_dir(&plain).unwrap();
    let out = sealos(work, &["registry", "inventory", plain.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a Distribution-layout registry directory"),
        "{stderr}"
    );
}

/// Writes `files` (path, contents) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn a_cluster_image_rebuilt_with_one_file_changed_is_delivered_as_that_layer_alone() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let ctx = work.join("ctx");
    write_files(
        &ctx,
        &[
            (
                "Kubefile",
                "FROM scratch\nCOPY bin/ /opt/bin/\nCOPY manifests manifests/\nCMD [\"kubectl apply -f manifests\"]\n",
            ),
            ("bin/tool", &"a tool binary\n".repeat(2000)),
            (
                "manifests/app.yaml",
                "apiVersion: v1\nkind: ConfigMap\ndata:\n  v: \"1\"\n",
            ),
        ],
    );
    let ctx_s = ctx.to_str().unwrap();
    ok(work, &["build", "-q", "-t", "cluster/app:v1", ctx_s]);
    write_files(
        &ctx,
        &[(
            "manifests/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  v: \"2\"\n",
        )],
    );
    ok(work, &["build", "-q", "-t", "cluster/app:v2", ctx_s]);

    let save = |image: &str, dir: &Path, inventory: Option<&Path>| {
        let mut args = vec![
            "registry".to_string(),
            "save".into(),
            "--store-images".into(),
            image.into(),
            "--registry-dir".into(),
            dir.display().to_string(),
        ];
        if let Some(inv) = inventory {
            args.extend(["--inventory".into(), inv.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(work, &args);
    };
    let site = work.join("site");
    save("cluster/app:v1", &site, None);
    let whole_v2 = work.join("whole-v2");
    save("cluster/app:v2", &whole_v2, None);
    let inv = work.join("site.json");
    ok(
        work,
        &[
            "registry",
            "inventory",
            site.to_str().unwrap(),
            "-o",
            inv.to_str().unwrap(),
        ],
    );
    let delta = work.join("delta");
    save("cluster/app:v2", &delta, Some(&inv));

    // The oracle: v2 saved whole against v1 saved whole, blob by blob.
    let (v1, v2) = (stored_blobs(&site), stored_blobs(&whole_v2));
    let new: BTreeMap<String, u64> = v2
        .iter()
        .filter(|(d, _)| !v1.contains_key(*d))
        .map(|(d, s)| (d.clone(), *s))
        .collect();
    let shared: BTreeMap<String, u64> = v2
        .iter()
        .filter(|(d, _)| v1.contains_key(*d))
        .map(|(d, s)| (d.clone(), *s))
        .collect();
    assert_eq!(
        new.len(),
        3,
        "the changed layer, the config, the manifest: {new:?}"
    );
    assert_eq!(shared.len(), 1, "the unchanged bin/ layer: {shared:?}");
    assert_eq!(stored_blobs(&delta), new);
    let delivery = json_file(&delta.join("delivery.json"));
    assert_eq!(sizes(&delivery["included"]), new);
    assert_eq!(sizes(&delivery["relied"]), shared);
    let v2_digest = DistributionLayout::new(&whole_v2)
        .resolve_tag("cluster/app", "v2")
        .unwrap()
        .unwrap();
    assert_eq!(
        DistributionLayout::new(&delta)
            .resolve_tag("cluster/app", "v2")
            .unwrap(),
        Some(v2_digest)
    );
}
