//! The local image commands as a user runs them: images, inspect, tag, rmi, prune, save, load.

#[path = "store_fixture.rs"]
mod fixture;

use fixture::{Env, inspect_json, make_image};

#[test]
fn images_lists_a_table_json_and_quiet_digests() {
    let env = Env::new();
    let desc = make_image(&env.store(), "myapp:v1", "one");
    let table = env.ok(&["images"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with("docker.io/library/myapp"), "{row}");
    assert!(
        row.contains(" v1 ") && row.contains(&desc.digest.hex()[..12]),
        "{row}"
    );
    assert!(row.contains("ago"), "{row}");

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["images", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "docker.io/library/myapp:v1");
    assert_eq!(json[0]["digest"], desc.digest.to_string());
    assert_eq!(json[0]["platforms"][0], "linux/amd64");
    assert_eq!(json[0]["created"], "2024-01-02T03:04:05Z");

    assert_eq!(env.ok(&["images", "-q"]), format!("{}\n", desc.digest));
}

#[test]
fn inspect_of_an_unknown_image_fails_with_a_hint() {
    let env = Env::new();
    let err = env.fails(&["inspect", "nope:v1"]);
    assert!(
        err.contains("error: image `nope:v1` not found in the local store"),
        "{err}"
    );
    assert!(err.contains("hint: run `sealos images`"), "{err}");
}

#[test]
fn inspect_shows_config_env_cmd_labels_and_layers_as_text_and_json() {
    let env = Env::new();
    let desc = make_image(&env.store(), "myapp:v1", "one");
    let text = env.ok(&["inspect", "myapp:v1"]);
    for want in [
        "Name:        docker.io/library/myapp:v1",
        &format!("Digest:      {}", desc.digest),
        "Platform linux/amd64",
        "CONTENT=one",
        "org.example.content=one",
        r#"Cmd:         ["cat","/hello.txt"]"#,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let json = inspect_json(&env, &env.store(), &desc.digest.to_string());
    assert_eq!(json["images"][0]["env"][0], "CONTENT=one");
    assert_eq!(json["images"][0]["layers"].as_array().unwrap().len(), 1);
}

#[test]
fn inspect_reads_transports_and_names_an_unreachable_registry() {
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "one");
    let archive = env.path("a.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "myapp:v1"]);
    let json = inspect_json(
        &env,
        &env.store(),
        &format!("oci-archive:{}", archive.display()),
    );
    assert_eq!(json["name"], "docker.io/library/myapp:v1");
    let json = inspect_json(
        &env,
        &env.store(),
        &format!("oci:{}:docker.io/library/myapp:v1", env.store().display()),
    );
    assert_eq!(json["images"][0]["env"][0], "CONTENT=one");
    // Registries are read by `inspect docker://` (tested in mirror.rs); one that cannot be reached is named.
    let err = env.fails(&["inspect", "docker://127.0.0.1:1/nginx"]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn tag_then_rmi_removes_names_and_collects_unused_blobs() {
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "one");
    env.ok(&[
        "tag",
        "myapp:v1",
        "myapp:v2",
        "registry.local:5000/app:prod",
    ]);
    let names = env.ok(&["images", "--format", "json"]);
    assert!(names.contains("registry.local:5000/app:prod"), "{names}");
    let out = env.ok(&["rmi", "myapp:v1", "myapp:v2"]);
    assert!(
        out.contains("untagged: docker.io/library/myapp:v1"),
        "{out}"
    );
    assert!(out.contains("deleted 0 blobs"), "{out}");
    let out = env.ok(&["rmi", "registry.local:5000/app:prod"]);
    assert!(out.contains("deleted 3 blobs"), "{out}");
    assert_eq!(env.ok(&["images", "-q"]), "");
    let err = env.fails(&["rmi", "myapp:v1"]);
    assert!(err.contains("not found in the local store"), "{err}");
}

#[test]
fn prune_removes_dangling_blobs() {
    let env = Env::new();
    make_image(&env.store(), "myapp:v1", "one");
    let layout = formats::oci_layout::OciLayout::open(env.store()).unwrap();
    layout.write_blob_bytes(b"dangling").unwrap();
    let out = env.ok(&["prune"]);
    assert!(out.contains("deleted 1 unreferenced blobs"), "{out}");
    assert!(env.ok(&["inspect", "myapp:v1"]).contains("CONTENT=one"));
}

#[test]
fn save_and_load_round_trip_through_every_format() {
    let env = Env::new();
    let desc = make_image(&env.store(), "myapp:v1", "one");
    let before = inspect_json(&env, &env.store(), "myapp:v1");
    for (format, out) in [
        ("oci-archive", "o.tar"),
        ("docker-archive", "d.tar"),
        ("oci-dir", "layout"),
    ] {
        let out = env.path(out);
        env.ok(&[
            "save",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
            "myapp:v1",
        ]);
        let second = env.path(&format!("store-{format}"));
        let loaded = env.sealos_in(&second, &["load", "-i", out.to_str().unwrap()]);
        assert!(
            loaded.status.success(),
            "{format}: {}",
            fixture::stderr(&loaded)
        );
        let stdout = String::from_utf8_lossy(&loaded.stdout);
        assert!(
            stdout.contains("Loaded image: docker.io/library/myapp:v1"),
            "{format}: {stdout}"
        );
        let after = inspect_json(&env, &second, "myapp:v1");
        let diff_ids =
            |v: &serde_json::Value| v["images"][0]["config"]["rootfs"]["diff_ids"].clone();
        assert_eq!(diff_ids(&before), diff_ids(&after), "{format}");
        if format != "docker-archive" {
            assert_eq!(after["digest"], desc.digest.to_string(), "{format}");
        }
    }
}

#[test]
fn load_refuses_a_docker_archive_with_a_dotdot_entry() {
    let env = Env::new();
    let bad = env.path("bad.tar");
    let mut bytes = fixture::tar_member("manifest.json", b"[]");
    bytes.extend(fixture::tar_member("../../x", b"evil"));
    bytes.extend([0u8; 1024]);
    std::fs::write(&bad, bytes).unwrap();
    let err = env.fails(&["load", "-i", bad.to_str().unwrap()]);
    assert!(
        err.contains("`../../x` points outside the archive"),
        "{err}"
    );
    assert!(!env.path("x").exists());
    assert_eq!(env.ok(&["images", "-q"]), "");
}
