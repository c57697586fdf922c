//! `sealos run` and `reset` over SSH: Debian's OpenSSH server started by the test on 127.0.0.1 at a free
//! port, with a generated host key and user key. Checks that the rootfs arrived, the commands ran through
//! SSH, and the embedded registry served from the first master answers `skopeo inspect`.
//!
//! Needs `/usr/sbin/sshd` (openssh-server), `ssh` and `ssh-keygen` (openssh-client), `skopeo`, and root
//! (sshd must start as root to log a user in); each missing piece fails the test with its name.

mod build_common;
mod dist_fixture;
mod runtime_common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use build_common::{build_ok, examples_dir};
use dist_fixture::DistDir;
use formats::manifest::{Descriptor, ImageManifest, Platform, RawManifest};
use formats::media_type;
use runtime_common::*;

fn require_tool(path: &str, package: &str) {
    let found = if path.contains('/') {
        Path::new(path).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(path).is_file()))
    };
    assert!(
        found,
        "`{path}` is missing: install the Debian package `{package}` (see .ci/run)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_for_port(address: &str, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((address, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {address}:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An sshd that accepts the test's user key; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
}

/// Stops the embedded registry a failed test left running (reset stops it otherwise).
struct RegistryGuard(PathBuf);

impl Drop for RegistryGuard {
    fn drop(&mut self) {
        if let Ok(pid) = fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

/// Checks the tools and root, and makes the user key `dir/user_key`.
fn ssh_prerequisites(dir: &Path) -> PathBuf {
    require_tool("/usr/sbin/sshd", "openssh-server");
    require_tool("ssh", "openssh-client");
    require_tool("ssh-keygen", "openssh-client");
    let uid = Command::new("id").arg("-u").output().expect("run id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the SSH test starts sshd, which must run as root"
    );
    fs::create_dir_all(dir).unwrap();
    // sshd's privilege separation directory.
    fs::create_dir_all("/run/sshd").expect("create /run/sshd");
    let user_key = dir.join("user_key");
    keygen(&user_key);
    user_key
}

/// Starts `/usr/sbin/sshd` on `address` at a free port, accepting `user_key`, its files in `dir`; `prefix`
/// is a command that execs sshd (to run it in a namespace).
fn start_sshd(dir: &Path, user_key: &Path, address: &str, prefix: &[String]) -> Sshd {
    fs::create_dir_all(dir).unwrap();
    let host_key = dir.join("host_key");
    keygen(&host_key);
    fs::copy(user_key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress {address}\nHostKey {host}\nPidFile {pid}\n\
             AuthorizedKeysFile {keys}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n",
            host = host_key.display(),
            pid = dir.join("sshd.pid").display(),
            keys = dir.join("authorized_keys").display(),
        ),
    )
    .unwrap();
    let (program, args) = match prefix.split_first() {
        Some((p, rest)) => (p.as_str(), rest.to_vec()),
        None => ("/usr/sbin/sshd", Vec::new()),
    };
    let mut command = Command::new(program);
    command.args(args);
    if !prefix.is_empty() {
        command.arg("/usr/sbin/sshd");
    }
    let child = command
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-e")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start /usr/sbin/sshd");
    let sshd = Sshd { child, port };
    wait_for_port(address, port, "sshd");
    sshd
}

/// Writes a one-layer image `library/tiny:v1` in the Docker Distribution layout under `registry_dir`.
fn write_embedded_image(registry_dir: &Path) {
    let layout = DistDir::new(registry_dir);
    let layer = tar_with_entry("hello.txt", b"hello from the embedded registry\n");
    let (layer_digest, layer_size) = (layout.blob("library/tiny", &layer), layer.len() as u64);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}
    }))
    .unwrap();
    let (config_digest, config_size) = (layout.blob("library/tiny", &config), config.len() as u64);
    let manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
        vec![Descriptor::new(
            media_type::OCI_LAYER_TAR,
            layer_digest,
            layer_size,
        )],
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    layout.manifest("library/tiny", &raw, Some("v1"));
}

/// Builds `runtime-registry:v1`: the toy rootfs plus a `registry/` tree holding `library/tiny:v1`.
fn build_rootfs_with_registry(c: &Cluster) -> &'static str {
    let context = c.tmp.path().join("context");
    let status = Command::new("cp")
        .arg("-r")
        .arg(examples_dir().join("runtime-rootfs"))
        .arg(&context)
        .status()
        .expect("run cp");
    assert!(status.success());
    write_embedded_image(&context.join("registry"));
    let kubefile = context.join("Kubefile");
    let mut text = fs::read_to_string(&kubefile).unwrap();
    text.push_str("COPY registry registry\n");
    fs::write(&kubefile, text).unwrap();
    build_ok(
        &c.store(),
        &["-t", "runtime-registry:v1", context.to_str().unwrap()],
    );
    "runtime-registry:v1"
}

#[test]
fn run_over_ssh_places_the_rootfs_runs_the_steps_and_serves_the_embedded_registry() {
    require_tool("skopeo", "skopeo");
    let c = Cluster::new();
    let user_key = ssh_prerequisites(&c.tmp.path().join("keys"));
    let sshd = start_sshd(&c.tmp.path().join("sshd"), &user_key, "127.0.0.1", &[]);
    let image = build_rootfs_with_registry(&c);
    let registry_port = free_port();
    let _registry = RegistryGuard(c.data().join("default/run/registry.pid"));
    let marker = c.marker_env();
    let port = sshd.port.to_string();
    let rport = registry_port.to_string();
    let key = user_key.to_str().unwrap().to_string();
    let out = c.sealos_ok(
        "run",
        &[
            image,
            APP,
            "-e",
            &marker,
            "-e",
            "EXTRA=over-ssh",
            "-m",
            "127.0.0.1",
            "--port",
            &port,
            "-i",
            &key,
            "--user",
            "root",
            "--registry-port",
            &rport,
            "--registry-address",
            "127.0.0.1",
        ],
    );
    let host = format!("[127.0.0.1:{port}]");
    assert!(
        out.contains(&format!("{host} serving")),
        "output carries the host prefix:\n{out}"
    );

    let rootfs = c.rootfs();
    assert!(
        rootfs.join("scripts/check.sh").is_file(),
        "the rootfs arrived"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/cluster.conf")).unwrap(),
        "greeting=from-image\nmode=standalone\n"
    );
    assert!(
        rootfs
            .join("registry/docker/registry/v2/repositories/library/tiny")
            .is_dir(),
        "the first master has the registry tree"
    );
    assert!(
        c.data().join("default/bin/sealos").is_file(),
        "our binary was copied"
    );
    let steps: Vec<String> = c
        .order()
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(steps, ["check", "init-cri", "init", "cmd", "app"]);
    let known_hosts = fs::read_to_string(c.clusters().join("default/known_hosts")).unwrap();
    assert!(
        known_hosts.contains("ssh-ed25519"),
        "the host key was recorded in the cluster's own known_hosts: {known_hosts}"
    );

    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://127.0.0.1:{registry_port}/library/tiny:v1"
        ))
        .output()
        .expect("run skopeo");
    let registry_log =
        fs::read_to_string(c.data().join("default/run/registry.log")).unwrap_or_default();
    assert!(
        inspect.status.success(),
        "skopeo inspect failed: {}\nregistry log:\n{registry_log}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));

    c.sealos_ok("reset", &["--force", "-i", &key]);
    assert!(
        !c.data().join("default").exists(),
        "reset removed the cluster data"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", registry_port)).is_ok() {
        assert!(Instant::now() < deadline, "reset left the registry running");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_password_login_without_sshpass_fails_naming_it_before_anything_runs() {
    let c = Cluster::new();
    // A PATH with the tools a run needs here but without sshpass.
    let bin = c.tmp.path().join("bin-without-sshpass");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["ssh", "tar"] {
        let real = std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(tool))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| panic!("`{tool}` is missing: install it (see .ci/run)"));
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let out = build_common::sealos()
        .env("SEALOS_CLUSTERS_DIR", c.clusters())
        .env("PATH", &bin)
        .arg("--root")
        .arg(c.store())
        .args([
            "run",
            ROOTFS,
            "-m",
            "127.0.0.1",
            "--port",
            "1",
            "-p",
            "secret",
        ])
        .arg("-e")
        .arg(c.marker_env())
        .arg("--data-dir")
        .arg(c.data())
        .output()
        .expect("run sealos");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`sshpass` is not installed"), "{stderr}");
    assert!(stderr.contains("apt-get install sshpass"), "{stderr}");
    assert!(c.order().is_empty(), "nothing ran");
}

/// A network namespace joined to this one by a veth pair: this side `10.<a>.<b>.1`, the namespace
/// `10.<a>.<b>.2`. Deleted (with its veth pair) on drop.
struct NetNs {
    name: String,
    address: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    fn new(index: u8) -> NetNs {
        require_tool("ip", "iproute2");
        let id = std::process::id() % 50_000;
        let name = format!("sealos-test-{id}-{index}");
        let outer = format!("sro{id}{index}");
        let inner = format!("sri{id}{index}");
        let subnet = format!(
            "10.{}.{}",
            100 + (id % 100),
            u32::from(index) + 10 * (id / 100 % 20)
        );
        let ns = NetNs {
            name: name.clone(),
            address: format!("{subnet}.2"),
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &inner, "netns", &name]);
        ip(&["addr", "add", &format!("{subnet}.1/24"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{subnet}.2/24"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &name, "link", "set", &inner, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ns
    }

    /// A command prefix that execs its argument in this namespace, with `view` bind-mounted over `data`
    /// in a private mount namespace, so each host has its own `--data-dir`.
    fn prefix(&self, view: &Path, data: &Path) -> Vec<String> {
        fs::create_dir_all(view).unwrap();
        fs::create_dir_all(data).unwrap();
        [
            "ip",
            "netns",
            "exec",
            &self.name,
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "mount --bind '{}' '{}' && exec \"$0\" \"$@\"",
                view.display(),
                data.display()
            ),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn run_over_ssh_on_two_hosts_in_network_namespaces_puts_the_rootfs_on_both_and_apps_on_the_first() {
    require_tool("skopeo", "skopeo");
    require_tool("unshare", "util-linux");
    let c = Cluster::new();
    let user_key = ssh_prerequisites(&c.tmp.path().join("keys"));
    let image = build_rootfs_with_registry(&c);
    let (master_ns, node_ns) = (NetNs::new(1), NetNs::new(2));
    let master_view = c.tmp.path().join("master-data");
    let node_view = c.tmp.path().join("node-data");
    let master = start_sshd(
        &c.tmp.path().join("sshd-master"),
        &user_key,
        &master_ns.address,
        &master_ns.prefix(&master_view, &c.data()),
    );
    let node = start_sshd(
        &c.tmp.path().join("sshd-node"),
        &user_key,
        &node_ns.address,
        &node_ns.prefix(&node_view, &c.data()),
    );
    let registry_port = free_port();
    let _registry = RegistryGuard(master_view.join("default/run/registry.pid"));
    let masters = format!("{}:{}", master_ns.address, master.port);
    let nodes = format!("{}:{}", node_ns.address, node.port);
    let key = user_key.to_str().unwrap().to_string();
    let rport = registry_port.to_string();
    // The marker directory is inside each host's own data view, so each host records its own steps.
    let marker = format!("MARKER_DIR={}", c.data().join("markers").display());
    let out = c.sealos_ok(
        "run",
        &[
            image,
            APP,
            "-e",
            &marker,
            "-e",
            "EXTRA=x",
            "-m",
            &masters,
            "-n",
            &nodes,
            "-i",
            &key,
            "--registry-port",
            &rport,
        ],
    );
    assert!(out.contains(&format!("[{nodes}]")), "{out}");
    let steps = |view: &Path| -> Vec<String> {
        read_lines(&view.join("markers/order"))
            .iter()
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        steps(&master_view),
        ["check", "init-cri", "init", "cmd", "app"]
    );
    assert_eq!(
        steps(&node_view),
        ["check", "init-cri", "init"],
        "rootfs CMD and applications run on the first master only"
    );
    assert!(node_view.join("default/rootfs/scripts/check.sh").is_file());
    assert!(
        !node_view.join("default/rootfs/registry").exists(),
        "registry/ goes to the first master only"
    );
    assert!(master_view.join("default/rootfs/registry/docker").is_dir());
    assert!(!node_view.join("default/applications").exists());

    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}:{registry_port}/library/tiny:v1",
            master_ns.address
        ))
        .output()
        .expect("run skopeo");
    assert!(
        inspect.status.success(),
        "skopeo inspect of the first master's registry failed: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );

    c.sealos_ok("reset", &["--force", "-i", &key]);
    assert!(!master_view.join("default").exists());
    assert!(!node_view.join("default").exists());
    assert!(
        read_lines(&node_view.join("markers/order"))
            .iter()
            .any(|l| l.starts_with("clean ")),
        "clean ran on the node"
    );
}
