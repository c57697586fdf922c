//! Test-only helpers shared by the crates' integration tests (a dev-dependency only, never shipped): find a
//! required tool or fail naming it, run a command and fail with its stderr, pick a free port, and run registry
//! servers on 127.0.0.1 that are killed when dropped: Debian's `docker-registry` (CNCF distribution) and our
//! `sealos registry serve`; check every manifest, index and config a test produces against the OCI spec's own
//! types ([`oci_spec_check`], [`oci_spec_check_layout`]); and write small real images into an OCI layout
//! ([`images`]); write Distribution trees file by file, as other tools leave them ([`distribution`]). Fixture
//! files shared by several crates are in the repository's `testdata/`.

pub mod distribution;
pub mod images;
pub mod moto;
mod oci_spec_check;
pub mod webdriver;

pub use oci_spec_check::{SpecKind, oci_spec_check, oci_spec_check_layout};

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The path of the program `name` on `PATH`, if there is one.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The path of a required tool; panics naming the tool (and its Debian package) when it is not on `PATH`.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "required tool `{name}` is not installed (on Debian: apt-get install {name}); this test cannot run \
             without it"
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

/// True when `GET /v2/` on `127.0.0.1:port` answers 200, or 401 (a registry that requires credentials), or,
/// when `tls`, 400 (Go's answer to plain HTTP on a TLS port: the server is up).
fn answers_v2(port: u16, tls: bool) -> bool {
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
    s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.")
        && (matches!(&head[9..12], b"200" | b"401") || (tls && &head[9..12] == b"400"))
}

/// Waits until `GET /v2/` answers (see [`answers_v2`]), panicking with `log()` when `child` exits or 30 s pass.
fn wait_ready(child: &mut Child, port: u16, tls: bool, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before it was ready:\n{}", log());
        }
        if answers_v2(port, tls) {
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

/// How many blob downloads (`GET .../blobs/sha256:...`) a request log shows: docker-registry's access log
/// or the request lines `sealos registry serve` logs at `info`.
fn count_blob_gets(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("GET") && l.contains("/blobs/sha256:"))
        .count()
}

/// Reads a log file the tests wrote; an absent or unreadable file reads as empty.
fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// How `docker-registry` authenticates clients (its configuration's `auth:` section).
#[derive(Debug, Clone, Copy)]
pub enum DockerAuth<'a> {
    /// Basic authentication against an htpasswd file of bcrypt entries.
    Htpasswd {
        /// The realm the server names in its challenge.
        realm: &'a str,
        /// The htpasswd file.
        path: &'a Path,
    },
    /// Bearer tokens from a token server, signed by a key whose certificate is in `root_cert_bundle`.
    Token {
        /// The token server's URL.
        realm: &'a str,
        /// The service name clients ask tokens for.
        service: &'a str,
        /// The issuer the tokens must name.
        issuer: &'a str,
        /// The PEM certificate(s) that sign valid tokens.
        root_cert_bundle: &'a Path,
    },
}

impl DockerAuth<'_> {
    /// The `auth:` section of a docker-registry configuration.
    fn config_yaml(&self) -> String {
        match self {
            DockerAuth::Htpasswd { realm, path } => format!(
                "auth:\n  htpasswd:\n    realm: {realm}\n    path: {}\n",
                path.display()
            ),
            DockerAuth::Token {
                realm,
                service,
                issuer,
                root_cert_bundle,
            } => format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    \
                 rootcertbundle: {}\n",
                root_cert_bundle.display()
            ),
        }
    }
}

/// HTTPS for `docker-registry` (its configuration's `http.tls` section).
#[derive(Debug, Clone, Copy)]
pub struct DockerTls<'a> {
    /// The PEM certificate chain the server presents.
    pub certificate: &'a Path,
    /// Its PEM private key.
    pub key: &'a Path,
    /// When given, clients must present a certificate signed by a CA in this PEM file (`clientcas`).
    pub client_ca: Option<&'a Path>,
}

impl DockerTls<'_> {
    /// The `tls:` part of the configuration's `http:` section.
    fn config_yaml(&self) -> String {
        let mut yaml = format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            self.certificate.display(),
            self.key.display()
        );
        if let Some(ca) = self.client_ca {
            yaml.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
        }
        yaml
    }
}

/// A running `docker-registry serve` on 127.0.0.1 (deletes enabled, access log kept), killed when dropped.
pub struct DockerRegistry {
    child: Child,
    port: u16,
    root: PathBuf,
    log: PathBuf,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// Starts `docker-registry` storing into `root` (created if missing); waits until it answers. Panics naming
    /// the tool when it is not installed.
    pub fn start(root: &Path) -> DockerRegistry {
        Self::start_with(Some(root), None)
    }

    /// Starts `docker-registry` on a fresh, empty temporary data directory.
    pub fn start_fresh() -> DockerRegistry {
        Self::start_with(None, None)
    }

    /// Starts `docker-registry` on fresh storage, requiring credentials as `auth` says.
    pub fn start_with_auth(auth: DockerAuth<'_>) -> DockerRegistry {
        Self::start_with(None, Some(auth))
    }

    /// Starts `docker-registry` storing into `root` (a fresh temporary directory when `None`), with `auth`.
    pub fn start_with(root: Option<&Path>, auth: Option<DockerAuth<'_>>) -> DockerRegistry {
        Self::spawn(root, auth, None)
    }

    /// Starts `docker-registry` on fresh storage serving HTTPS as `tls` says.
    pub fn start_with_tls(tls: DockerTls<'_>) -> DockerRegistry {
        Self::spawn(None, None, Some(tls))
    }

    fn spawn(
        root: Option<&Path>,
        auth: Option<DockerAuth<'_>>,
        tls: Option<DockerTls<'_>>,
    ) -> DockerRegistry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        let root = root.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", root.display()));
        let port = free_port();
        let config = dir.path().join("config.yml");
        let auth = auth.map(|a| a.config_yaml()).unwrap_or_default();
        let tls_yaml = tls.map(|t| t.config_yaml()).unwrap_or_default();
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_yaml}{auth}",
                root.display()
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log = dir.path().join("registry.log");
        let access_log = dir.path().join("access.log");
        let create = |p: &Path| {
            fs::File::create(p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()))
        };
        // docker-registry writes its access log on stdout and everything else on stderr.
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(create(&access_log))
            .stderr(create(&log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}"));
        let mut registry = DockerRegistry {
            child,
            port,
            root,
            log,
            access_log,
            _dir: dir,
        };
        let log = registry.log.clone();
        wait_ready(
            &mut registry.child,
            port,
            tls.is_some(),
            "docker-registry",
            &|| read_log(&log),
        );
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

    /// What the server logged on stderr so far (not the access log).
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// How many requests (GET, HEAD, PUT, POST, PATCH, DELETE) the access log shows so far.
    pub fn requests(&self) -> usize {
        const METHODS: [&str; 6] = [
            "\"GET /",
            "\"HEAD /",
            "\"PUT /",
            "\"POST /",
            "\"PATCH /",
            "\"DELETE /",
        ];
        read_log(&self.access_log)
            .lines()
            .filter(|l| METHODS.iter().any(|m| l.contains(m)))
            .count()
    }

    /// How many blob downloads (`GET /v2/.../blobs/sha256:...`) the access log shows so far.
    pub fn blob_gets(&self) -> usize {
        count_blob_gets(&read_log(&self.access_log))
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `sealos registry serve` keeps its data.
#[derive(Debug, Clone, Copy)]
pub enum Backend<'a> {
    /// A Distribution storage tree in this directory (`serve fs DIR`).
    Fs(&'a Path),
    /// Memory only, empty at start (`serve inmem`).
    InMemory,
    /// The S3 bucket an S3 settings file names (`serve s3 --config FILE`).
    S3Config(&'a Path),
}

/// A running `sealos registry serve BACKEND -p 0 --address 127.0.0.1`, killed when dropped.
pub struct SealosRegistry {
    child: Child,
    host: String,
    /// The file the server logs its requests into, when started with request logging.
    request_log: Option<(PathBuf, tempfile::TempDir)>,
    /// Kept open so the server never writes into a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl SealosRegistry {
    /// Starts the `sealos` binary at `bin` (in a test of the `sealos` crate: `env!("CARGO_BIN_EXE_sealos")`)
    /// serving `dir`, plus `extra` arguments, with logging disabled; reads the bound address it prints and
    /// waits until it answers.
    pub fn start(bin: &Path, dir: &Path, extra: &[&str]) -> SealosRegistry {
        Self::start_with(bin, Backend::Fs(dir), extra, false)
    }

    /// Starts the `sealos` binary at `bin` serving the S3 bucket the settings file `config` names
    /// (`serve s3 --config CONFIG`), with logging disabled.
    pub fn start_s3(bin: &Path, config: &Path) -> SealosRegistry {
        Self::start_with(bin, Backend::S3Config(config), &[], false)
    }

    /// Starts `sealos registry serve` on `backend` plus `extra` arguments. With `log_requests` the server logs
    /// every request (`--log-level info`) into a file that [`SealosRegistry::blob_gets`] counts; without, it
    /// logs nothing.
    pub fn start_with(
        bin: &Path,
        backend: Backend<'_>,
        extra: &[&str],
        log_requests: bool,
    ) -> SealosRegistry {
        let mut cmd = Command::new(bin);
        cmd.args(["registry", "serve"]);
        match backend {
            Backend::Fs(dir) => cmd.arg("fs").arg(dir),
            Backend::InMemory => cmd.arg("inmem"),
            Backend::S3Config(file) => cmd.args(["s3", "--config"]).arg(file),
        };
        cmd.args(["-p", "0", "--address", "127.0.0.1"]);
        let request_log = if log_requests {
            let dir =
                tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
            let path = dir.path().join("requests.log");
            let file = fs::File::create(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
            cmd.args(["--log-level", "info"])
                .env("NO_COLOR", "1")
                .stderr(file);
            Some((path, dir))
        } else {
            cmd.arg("--disable-logging").stderr(Stdio::inherit());
            None
        };
        let mut child = cmd
            .args(extra)
            .stdout(Stdio::piped())
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
            let log = request_log
                .as_ref()
                .map(|(p, _)| read_log(p))
                .unwrap_or_default();
            panic!(
                "`sealos registry serve` did not print `listening on ADDR:PORT` (got {line:?}, {status:?}):\n{log}"
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
            request_log,
            _stdout: stdout,
        };
        let log = server.request_log.as_ref().map(|(p, _)| p.clone());
        wait_ready(
            &mut server.child,
            port,
            false,
            "sealos registry serve",
            &|| log.as_deref().map(read_log).unwrap_or_default(),
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

    /// How many blob downloads (`GET .../blobs/sha256:...`) the server logged so far. Panics when the server
    /// was started without request logging (it would always read 0).
    pub fn blob_gets(&self) -> usize {
        let Some((path, _)) = &self.request_log else {
            panic!(
                "this sealos registry was started without request logging; use start_with(.., true)"
            );
        };
        count_blob_gets(&read_log(path))
    }

    /// What the server logged so far (its stderr). Panics when the server was started without request logging.
    pub fn log(&self) -> String {
        let Some((path, _)) = &self.request_log else {
            panic!("this sealos registry was started without logging; use start_with(.., true)");
        };
        read_log(path)
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

/// Which registry implementation a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// Debian's `docker-registry` (CNCF distribution).
    Docker,
    /// Ours: `sealos registry serve`.
    Sealos,
}

/// A running registry of either kind, with its requests logged; killed when dropped.
pub enum AnyRegistry {
    /// Debian's `docker-registry`.
    Docker(DockerRegistry),
    /// `sealos registry serve`.
    Sealos(SealosRegistry),
}

impl AnyRegistry {
    /// Starts a registry of `kind` with fresh, empty storage (`sealos` is the binary for [`RegistryKind::Sealos`]).
    pub fn start(kind: RegistryKind, sealos: &Path) -> AnyRegistry {
        match kind {
            RegistryKind::Docker => AnyRegistry::Docker(DockerRegistry::start_fresh()),
            RegistryKind::Sealos => AnyRegistry::Sealos(SealosRegistry::start_with(
                sealos,
                Backend::InMemory,
                &[],
                true,
            )),
        }
    }

    /// Serves the Distribution storage directory `dir` with a registry of `kind`.
    pub fn serve_dir(kind: RegistryKind, sealos: &Path, dir: &Path) -> AnyRegistry {
        match kind {
            RegistryKind::Docker => AnyRegistry::Docker(DockerRegistry::start(dir)),
            RegistryKind::Sealos => AnyRegistry::Sealos(SealosRegistry::start_with(
                sealos,
                Backend::Fs(dir),
                &[],
                true,
            )),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        match self {
            AnyRegistry::Docker(r) => r.host(),
            AnyRegistry::Sealos(r) => r.host().to_string(),
        }
    }

    /// How many blob downloads the registry's request log shows so far.
    pub fn blob_gets(&self) -> usize {
        match self {
            AnyRegistry::Docker(r) => r.blob_gets(),
            AnyRegistry::Sealos(r) => r.blob_gets(),
        }
    }
}
