//! Test-only helpers shared by the crates' integration tests (a dev-dependency only, never shipped): find a
//! required tool or fail naming it, run a command and fail with its stderr, pick a free port, and run registry
//! servers on 127.0.0.1 that are killed when dropped: Debian's `docker-registry` (CNCF distribution) and our
//! `sealos registry serve`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of a required tool; panics naming the tool (and its Debian package) when it is not on `PATH`.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "required tool `{name}` is not installed (on Debian: apt-get install {name}); this test cannot \
                 run without it"
            )
        })
}

/// A command for a required tool (see [`require_tool`]).
pub fn tool(name: &str) -> Command {
    Command::new(require_tool(name))
}

/// `skopeo --insecure-policy`, for copying to and from the test registries.
pub fn skopeo() -> Command {
    let mut c = tool("skopeo");
    c.arg("--insecure-policy");
    c
}

/// Runs `cmd`, failing the test with its stderr when it does not succeed; returns stdout as text.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

/// True when `GET /v2/` on `127.0.0.1:port` answers 200.
fn answers_v2(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

/// Waits until `GET /v2/` answers 200, panicking with `log()` when `child` exits or 30 s pass.
fn wait_ready(child: &mut Child, port: u16, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before it was ready:\n{}", log());
        }
        if answers_v2(port) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer GET /v2/ on port {port} within 30 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `docker-registry serve` on 127.0.0.1, killed when dropped.
pub struct DockerRegistry {
    child: Child,
    port: u16,
    root: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts `docker-registry` storing into `root` (created if missing), with deletes enabled; waits until it
    /// answers. Panics naming the tool when it is not installed.
    pub fn start(root: &Path) -> DockerRegistry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        Self::start_in(bin, root.to_path_buf(), dir)
    }

    /// Starts `docker-registry` on a fresh, empty temporary data directory.
    pub fn start_fresh() -> DockerRegistry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let root = dir.path().join("data");
        Self::start_in(bin, root, dir)
    }

    fn start_in(bin: PathBuf, root: PathBuf, dir: tempfile::TempDir) -> DockerRegistry {
        fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        let port = free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                root.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log = dir.path().join("registry.log");
        let stderr = fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
        let mut registry = DockerRegistry {
            child,
            port,
            root,
            log,
            _dir: dir,
        };
        let log = registry.log.clone();
        wait_ready(&mut registry.child, port, "docker-registry", &|| {
            fs::read_to_string(&log).unwrap_or_default()
        });
        registry
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage root directory (the one holding `docker/registry/v2`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged on stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `sealos registry serve fs DIR -p 0 --address 127.0.0.1`, killed when dropped.
pub struct SealosRegistry {
    child: Child,
    host: String,
    /// Kept open so the server never writes into a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl SealosRegistry {
    /// Starts the `sealos` binary at `bin` (in a test of the `sealos` crate: `env!("CARGO_BIN_EXE_sealos")`)
    /// serving `dir`, plus `extra` arguments; reads the bound address it prints and waits until it answers.
    pub fn start(bin: &Path, dir: &Path, extra: &[&str]) -> SealosRegistry {
        let mut child = Command::new(bin)
            .args(["registry", "serve", "fs"])
            .arg(dir)
            .args(["-p", "0", "--address", "127.0.0.1", "--disable-logging"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut stdout = child.stdout.take().map(BufReader::new);
        let mut line = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_line(&mut line);
        }
        let Some(host) = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string)
        else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "`sealos registry serve` did not print `listening on ADDR:PORT` (got {line:?}, {status:?})"
            );
        };
        let port = host
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad address printed by sealos: {host}"));
        let mut server = SealosRegistry {
            child,
            host,
            _stdout: stdout,
        };
        wait_ready(
            &mut server.child,
            port,
            "sealos registry serve",
            &String::new,
        );
        server
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SealosRegistry {
    fn drop(&mut self) {
        self.kill9();
    }
}
