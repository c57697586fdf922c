//! The local image commands as a user runs them: images, inspect, tag, rmi, prune, save, load; and how every
//! command behaves when its stdout is closed (`sealos images | head -1`).

#[path = "store_fixture.rs"]
mod fixture;

use std::io::BufRead as _;
use std::process::{Command, Stdio};

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

/// The write end of a pipe whose reader has exited, as `sealos images | head -0` leaves stdout.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
    let writer = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    Stdio::from(writer)
}

#[test]
fn a_closed_stdout_ends_printing_commands_quietly_with_status_0() {
    let env = Env::new();
    for i in 0..3 {
        make_image(&env.store(), &format!("app{i}:v1"), "one");
    }
    for args in [
        &["images"][..],
        &["images", "--format", "json"],
        &["images", "-q"],
        &["inspect", "app0:v1"],
        &["version"],
        &["completion", "bash"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
            .arg("--root")
            .arg(env.store())
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "sealos {args:?}: {}",
            fixture::stderr(&out)
        );
        assert_eq!(fixture::stderr(&out), "", "sealos {args:?} wrote to stderr");
    }
}

#[test]
fn completion_piped_into_a_reader_that_leaves_after_one_line_exits_0() {
    // The script is larger than a pipe's buffer, so sealos is still writing when the reader leaves.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["completion", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", fixture::stderr(&out));
    assert_eq!(fixture::stderr(&out), "");
}

#[test]
fn a_full_stdout_is_still_an_error() {
    let env = Env::new();
    make_image(&env.store(), "app:v1", "one");
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .arg("--root")
        .arg(env.store())
        .arg("images")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = fixture::stderr(&out);
    assert!(err.starts_with("error: cannot write to stdout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Kills the child when dropped, so a failed assertion leaves no server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn registry_serve_with_a_closed_stdout_still_serves() {
    use std::io::{Read as _, Write as _};
    let env = Env::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pid_file = env.path("serve.pid");
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_sealos"))
            .args(["registry", "serve", "inmem", "--address", "127.0.0.1"])
            .args(["-p", &port.to_string(), "--pid-file"])
            .arg(&pid_file)
            .stdout(closed_pipe())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pid_file.exists() {
        let exited = server.0.try_wait().unwrap();
        assert!(exited.is_none(), "the server stopped: {exited:?}");
        assert!(std::time::Instant::now() < deadline, "no pid file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
