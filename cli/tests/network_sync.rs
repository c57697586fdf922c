//! `sealos registry sync --all` with many images at once into Debian's `docker-registry`: indexes whose
//! platforms share layers with each other and with other repositories' images. docker-registry rewrites a
//! repository's blob link on every mount, and a manifest `PUT` that reads it mid-rewrite fails with
//! `400 DIGEST_INVALID`; two mounts of one blob into one repository at once made `sync` fail now and
//! then. Runs twenty times, each into a fresh prefix. Needs `docker-registry`; fails naming it.

mod upstream;

use std::process::{Command, Stdio};

use testsupport::DockerRegistry;
use upstream::{OCI_INDEX, OCI_MANIFEST, client, push_image_layers, rt, seeded_layer};

/// Pushes an index of amd64 and arm64 images to `repo:tag`, each platform with `shared` and a layer of its
/// own.
fn push_shared_index(host: &str, repo: &str, tag: &str, shared: &[u8]) {
    let c = client();
    let entries: Vec<String> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let own = seeded_layer(&format!("{repo} {arch} "));
            let (d, bytes) =
                push_image_layers(&c, host, repo, None, arch, &[shared.to_vec(), own]);
            format!(
                r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                bytes.len()
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entries.join(",")
    );
    rt().block_on(c.put_manifest(host, repo, tag, index.into_bytes().into(), OCI_INDEX))
        .unwrap();
}

#[test]
fn sync_all_of_indexes_sharing_layers_never_fails_with_many_images_at_once() {
    let src = DockerRegistry::start_fresh();
    let dst = DockerRegistry::start_fresh();
    let shared = seeded_layer("shared by every platform ");
    let c = client();
    push_image_layers(
        &c,
        &src.host(),
        "base",
        Some("v1"),
        "amd64",
        std::slice::from_ref(&shared),
    );
    for repo in ["app", "tools", "web"] {
        push_shared_index(&src.host(), repo, "v1", &shared);
        push_shared_index(&src.host(), repo, "v2", &shared);
    }
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("registries.conf");
    std::fs::write(&conf, "").unwrap();
    for run in 0..20 {
        let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args([
                "registry",
                "sync",
                &src.host(),
                &format!("{}/run{run}", dst.host()),
                "--all",
                "--max-procs",
                "16",
                "--format",
                "json",
                "--registries-conf",
            ])
            .arg(&conf)
            .env("REGISTRY_AUTH_FILE", tmp.path().join("auth.json"))
            .stdin(Stdio::null())
            .output()
            .expect("run sealos");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "run {run} failed:\n{stderr}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["copied"], 7, "run {run}: {summary}");
        assert_eq!(summary["failed"], 0, "run {run}: {summary}");
    }
}
