//! `sealos registry serve s3 --config FILE` end to end: the binary serves a bucket of a real S3-compatible
//! server (moto, `python3 -m moto.server`, installed by `.ci/run`), `sealos push` writes through it, a second
//! replica started on the same bucket serves the image to `sealos pull`.

#[path = "store_fixture.rs"]
mod store_fixture;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store_fixture::{Env, make_image};

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_moto() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with moto is needed (`pip install 'moto[server]'`; .ci/run installs it)");
    let moto = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not start: install it with `pip install 'moto[server]'`"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (moto, port)
}

/// Creates a bucket with a raw HTTP request (moto needs no signature for it).
fn create_bucket(port: u16, name: &str) {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "create bucket: {answer}"
    );
}

/// Starts `sealos registry serve s3 --config CONFIG` and returns it with its `host:port`.
fn serve(config: &std::path::Path) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", "serve", "s3", "--config"])
        .arg(config)
        .args(["-p", "0", "--address", "127.0.0.1", "--disable-logging"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (child, addr)
}

#[test]
fn two_s3_replicas_from_a_config_file_serve_what_sealos_pushed() {
    let env = Env::new();
    let (_moto, port) = start_moto();
    create_bucket(port, "images");
    let config = env.path("s3.toml");
    std::fs::write(
        &config,
        format!(
            "bucket = \"images\"\nendpoint = \"http://127.0.0.1:{port}\"\nprefix = \"hub\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n"
        ),
    )
    .unwrap();
    let (_a, addr_a) = serve(&config);
    let (_b, addr_b) = serve(&config);
    let pushed = make_image(&env.store(), "example.com/apps/hello:v1", "from s3");
    env.ok(&[
        "push",
        "--tls-verify=false",
        "example.com/apps/hello:v1",
        &format!("{addr_a}/apps/hello:v1"),
    ]);
    let other = env.path("other-store");
    let out = env.sealos_in(
        &other,
        &[
            "pull",
            "--tls-verify=false",
            &format!("{addr_b}/apps/hello:v1"),
        ],
    );
    assert!(
        out.status.success(),
        "pull: {}",
        store_fixture::stderr(&out)
    );
    let out = env.sealos_in(
        &other,
        &[
            "inspect",
            "--format",
            "json",
            &format!("{addr_b}/apps/hello:v1"),
        ],
    );
    assert!(out.status.success(), "{}", store_fixture::stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&pushed.digest.to_string()), "{text}");
    assert!(text.contains("from s3"), "{text}");
}

#[test]
fn s3_serve_without_a_bucket_explains_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_sealos"))
        .args(["registry", "serve", "s3", "-p", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--bucket"), "{err}");
}
