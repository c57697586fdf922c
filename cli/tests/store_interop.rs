//! Interop with the real tools: what `sealos save` writes, buildah and skopeo read; what buildah and skopeo
//! write, `sealos load` reads; skopeo and umoci read the store itself. Each test fails, naming the tool,
//! when a tool is missing.

#[path = "store_fixture.rs"]
mod fixture;

use std::path::Path;

use fixture::{Env, inspect_json, make_image, require_tool, run_tool};

/// `buildah --storage-driver vfs --root R --runroot RR ARGS` in a private storage under `dir`.
fn buildah(dir: &Path, args: &[&str]) -> String {
    let root = dir.join("buildah-root");
    let runroot = dir.join("buildah-runroot");
    let mut all = vec![
        "--storage-driver",
        "vfs",
        "--root",
        root.to_str().unwrap(),
        "--runroot",
        runroot.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run_tool("buildah", &all)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn buildah_pulls_the_oci_archive_sealos_saves() {
    require_tool("buildah");
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "from-sealos");
    let archive = env.path("app.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "myapp:v1"]);
    buildah(
        env.dir.path(),
        &["pull", &format!("oci-archive:{}", archive.display())],
    );
    let images = buildah(
        env.dir.path(),
        &["images", "--format", "{{.Name}}:{{.Tag}}"],
    );
    assert!(images.contains("docker.io/library/myapp:v1"), "{images}");
    let info = json(&buildah(
        env.dir.path(),
        &["inspect", "--type", "image", "docker.io/library/myapp:v1"],
    ));
    let env_vars = info["OCIv1"]["config"]["Env"].to_string();
    assert!(env_vars.contains("CONTENT=from-sealos"), "{env_vars}");
}

#[test]
fn skopeo_reads_the_docker_archive_sealos_saves_with_matching_diff_ids() {
    require_tool("skopeo");
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "docker");
    let ours = inspect_json(&env, &env.store(), "myapp:v1");
    let archive = env.path("docker.tar");
    env.ok(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        archive.to_str().unwrap(),
        "myapp:v1",
    ]);
    let spec = format!("docker-archive:{}", archive.display());
    let info = json(&run_tool("skopeo", &["inspect", &spec]));
    assert!(info["Env"].to_string().contains("CONTENT=docker"), "{info}");
    let config = json(&run_tool("skopeo", &["inspect", "--config", &spec]));
    assert_eq!(
        config["rootfs"]["diff_ids"],
        ours["images"][0]["config"]["rootfs"]["diff_ids"]
    );
    // The layers skopeo reports are the uncompressed tars, i.e. their digests are the diff_ids.
    assert_eq!(info["Layers"], config["rootfs"]["diff_ids"]);
}

#[test]
fn skopeo_and_umoci_read_the_store_as_an_oci_layout() {
    require_tool("skopeo");
    require_tool("umoci");
    let env = Env::new();
    let desc = make_image(&env.store(), "myapp:v1", "layout");
    let spec = format!("oci:{}:docker.io/library/myapp:v1", env.store().display());
    let info = json(&run_tool("skopeo", &["inspect", &spec]));
    assert_eq!(info["Digest"], desc.digest.to_string());
    assert!(info["Env"].to_string().contains("CONTENT=layout"), "{info}");
    let bundle = env.path("bundle");
    run_tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:docker.io/library/myapp:v1", env.store().display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "layout"
    );
}

#[test]
fn sealos_loads_the_oci_archive_buildah_pushes() {
    require_tool("buildah");
    require_tool("skopeo");
    let env = Env::new();
    let dir = env.dir.path();
    std::fs::write(env.path("payload.txt"), "from buildah\n").unwrap();
    let ctr = buildah(dir, &["from", "scratch"]).trim().to_string();
    buildah(
        dir,
        &[
            "copy",
            &ctr,
            env.path("payload.txt").to_str().unwrap(),
            "/payload.txt",
        ],
    );
    buildah(
        dir,
        &["config", "--env", "MADE_BY=buildah", "--label", "k=v", &ctr],
    );
    buildah(dir, &["commit", &ctr, "localhost/bimg:v1"]);
    buildah(dir, &["rm", &ctr]);
    let archive = env.path("buildah.tar");
    buildah(
        dir,
        &[
            "push",
            "localhost/bimg:v1",
            &format!("oci-archive:{}", archive.display()),
        ],
    );
    let theirs = json(&run_tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    ));
    let out = env.ok(&["load", "-i", archive.to_str().unwrap()]);
    // buildah writes no name into the archive: the image is named after the file.
    assert!(
        out.contains("Loaded image: localhost/buildah:latest"),
        "{out}"
    );
    let ours = inspect_json(&env, &env.store(), "localhost/buildah:latest");
    assert_eq!(ours["digest"], theirs["Digest"]);
    assert!(
        ours["images"][0]["env"]
            .to_string()
            .contains("MADE_BY=buildah")
    );
    assert_eq!(ours["images"][0]["labels"]["k"], "v");
}

#[test]
fn sealos_loads_the_docker_archive_skopeo_writes_with_the_same_diff_ids() {
    require_tool("skopeo");
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "via-skopeo");
    let ours = inspect_json(&env, &env.store(), "myapp:v1");
    let archive = env.path("skopeo.tar");
    run_tool(
        "skopeo",
        &[
            "copy",
            &format!("oci:{}:docker.io/library/myapp:v1", env.store().display()),
            &format!(
                "docker-archive:{}:example.com/team/copied:v2",
                archive.display()
            ),
        ],
    );
    let second = env.path("second");
    let out = env.sealos_in(&second, &["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", fixture::stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Loaded image: example.com/team/copied:v2")
    );
    let loaded = inspect_json(&env, &second, "example.com/team/copied:v2");
    let diff_ids = |v: &serde_json::Value| v["images"][0]["config"]["rootfs"]["diff_ids"].clone();
    assert_eq!(diff_ids(&loaded), diff_ids(&ours));
    assert_eq!(
        loaded["images"][0]["configDigest"],
        ours["images"][0]["configDigest"]
    );
}

#[test]
fn oci_archive_round_trip_through_a_second_store_keeps_manifest_digests() {
    require_tool("skopeo");
    let env = Env::new();
    let desc = make_image(&env.store(), "myapp:v1", "round");
    let archive = env.path("round.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "myapp:v1"]);
    let second = env.path("second");
    let out = env.sealos_in(&second, &["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", fixture::stderr(&out));
    assert_eq!(
        inspect_json(&env, &second, "myapp:v1")["digest"],
        desc.digest.to_string()
    );
    // And skopeo sees the same digest in the archive itself.
    let info = json(&run_tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", archive.display())],
    ));
    assert_eq!(info["Digest"], desc.digest.to_string());
}
