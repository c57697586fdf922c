//! `sealos run`: open the images, unpack and render them here (so a malicious image is refused before
//! anything runs), copy them to the hosts, serve the embedded registry from the first master, run the plan
//! host by host in parallel, and record what was applied in the Clusterfile.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use builder::store::Store;

use crate::clusterfile::{
    AppliedImage, Clusterfile, ClusterfileError, HostSpec, RegistryStatus, env_to_pairs,
    pairs_to_env,
};
use crate::env::{Env, shell_quote};
use crate::exec::{self, ExecError, Host, LocalHost, Output, SshHost, SshOptions};
use crate::image::{self, ImageError, ImageKind};
use crate::image_check::{
    CheckedImage, EmbeddedImages, ImageCheck, ImageCheckError, check_images, kube_version_of,
    registry_dir,
};
use crate::plan::{self, Action, CLEAN_STEPS, PlanError, PlannedImage, Step, Target};
use crate::unpack::{UnpackImageError, render_templates, unpack_image};

/// The default `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/sealos/data";
/// The default cluster name.
pub const DEFAULT_CLUSTER: &str = "default";
/// The default port of the embedded registry.
pub const DEFAULT_REGISTRY_PORT: u16 = 5050;
/// The default SSH port.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// Where a cluster's files live, here and on its hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPaths {
    /// The cluster's name.
    pub cluster: String,
    /// `--data-dir` (on every host; also the local staging area).
    pub data_dir: PathBuf,
    /// Whether `data_dir` was given (`--data-dir`) rather than defaulted; see
    /// [`ClusterPaths::with_recorded_data_dir`].
    pub data_dir_given: bool,
    /// The directory holding one directory per cluster with its Clusterfile (`~/.sealos`).
    pub clusters_dir: PathBuf,
}

impl ClusterPaths {
    /// These paths with the data dir `file` records, the truth once a run has placed anything (`reset`
    /// removes it): an omitted `--data-dir` takes it, a different one given is an error naming both.
    pub fn with_recorded_data_dir(&self, file: &Clusterfile) -> Result<ClusterPaths, RunError> {
        let Some(recorded) = file.status.data_dir.as_deref().map(PathBuf::from) else {
            return Ok(self.clone());
        };
        if self.data_dir_given && self.data_dir != recorded {
            return Err(RunError::Usage(format!(
                "cluster `{}` keeps its data in `{}`, not `{}`: leave out --data-dir, or run \
                 `sealos reset --cluster {}` first to move it",
                self.cluster,
                recorded.display(),
                self.data_dir.display(),
                self.cluster
            )));
        }
        Ok(ClusterPaths {
            data_dir: recorded,
            ..self.clone()
        })
    }

    /// `<data-dir>/<cluster>`: everything `run` places on a host is under it.
    pub fn cluster_data(&self) -> PathBuf {
        self.data_dir.join(&self.cluster)
    }
    /// `<data-dir>/<cluster>/rootfs`.
    pub fn rootfs(&self) -> PathBuf {
        self.cluster_data().join("rootfs")
    }
    /// `<data-dir>/<cluster>/applications/<dir>`: an application image's directory.
    pub fn application(&self, dir: &str) -> PathBuf {
        self.cluster_data().join("applications").join(dir)
    }
    /// `<data-dir>/<cluster>/bin/sealos`: this binary, copied to the first master to serve the registry.
    pub fn binary(&self) -> PathBuf {
        self.cluster_data().join("bin/sealos")
    }
    /// `<data-dir>/<cluster>/run`: the registry's pid file and log.
    pub fn run_dir(&self) -> PathBuf {
        self.cluster_data().join("run")
    }
    /// `<data-dir>/.staging/<cluster>`: images unpacked here before they are copied.
    pub fn staging(&self) -> PathBuf {
        self.data_dir.join(".staging").join(&self.cluster)
    }
    /// `<clusters-dir>/<cluster>`.
    pub fn cluster_dir(&self) -> PathBuf {
        self.clusters_dir.join(&self.cluster)
    }
    /// `<clusters-dir>/<cluster>/Clusterfile`.
    pub fn clusterfile(&self) -> PathBuf {
        self.cluster_dir().join(crate::clusterfile::FILE_NAME)
    }
    /// `<clusters-dir>/<cluster>/known_hosts`: the host keys SSH accepted for this cluster.
    pub fn known_hosts(&self) -> PathBuf {
        self.cluster_dir().join("known_hosts")
    }
}

/// How to log in to the hosts; unset fields come from the Clusterfile, then the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshLogin {
    /// `--user` (default `root`).
    pub user: Option<String>,
    /// `-i KEYFILE`.
    pub key: Option<PathBuf>,
    /// `-p PASSWORD`.
    pub password: Option<String>,
    /// `--port` (default 22), for hosts given without one.
    pub port: Option<u16>,
}

/// The embedded registry served from the first master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// The port (default 5050).
    pub port: u16,
    /// The address it listens on; `None`: the first master's address, `127.0.0.1` when the run is on this
    /// machine ([`registry_listen_address`]). It serves without authentication, so never every interface
    /// unless asked.
    pub address: Option<String>,
    /// The `sealos` binary copied to the first master to serve it (`std::env::current_exe()`).
    pub binary: PathBuf,
}

/// Everything `sealos run` is told.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where things go.
    pub paths: ClusterPaths,
    /// The images, in order.
    pub images: Vec<String>,
    /// `-e KEY=VALUE`, overriding image ENV.
    pub env: Env,
    /// `--cmd`, replacing the CMD of every image applied.
    pub cmd: Option<Vec<String>>,
    /// `--masters` (`IP[:PORT]`).
    pub masters: Vec<String>,
    /// `--nodes`.
    pub nodes: Vec<String>,
    /// SSH login.
    pub ssh: SshLogin,
    /// `-f`: apply images again even when applied before.
    pub force: bool,
    /// The embedded registry.
    pub registry: RegistryOptions,
    /// `--skip-image-check`: run even when images the install pulls are not embedded (each is still
    /// listed, as a warning).
    pub skip_image_check: bool,
}

/// Why a run (or reset) failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An image could not be opened.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// An image could not be unpacked or rendered.
    #[error(transparent)]
    Unpack(#[from] UnpackImageError),
    /// A command could not be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The Clusterfile could not be read or written.
    #[error(transparent)]
    Clusterfile(#[from] ClusterfileError),
    /// A host could not be reached or a copy failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// A step exited with an error.
    #[error("host {host}: image `{image}`, step {step} failed with exit code {code}")]
    StepFailed {
        /// The host.
        host: String,
        /// The image.
        image: String,
        /// The step.
        step: String,
        /// Its exit code.
        code: i32,
    },
    /// The run was asked for something it cannot do.
    #[error("{0}")]
    Usage(String),
    /// Images the install pulls are not embedded, or could not be listed.
    #[error(transparent)]
    ImageCheck(#[from] ImageCheckError),
    /// A local file-system operation failed.
    #[error("{op} `{path}`: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Images applied now (name, digest).
    pub applied: Vec<(String, String)>,
    /// Images skipped because they were applied before.
    pub skipped: Vec<String>,
    /// The hosts worked on.
    pub hosts: Vec<String>,
    /// Steps run (each once, whatever the number of hosts).
    pub steps: usize,
    /// The image check: every image the applied images' installs pull and where it comes from.
    pub image_check: ImageCheck,
}

/// Progress reports: announcements of what is about to happen, and hosts' output lines.
pub struct Reporter<'a> {
    /// Told before each copy and step (`copying rootfs to 2 hosts`, `[check] ...`).
    pub announce: &'a (dyn Fn(&str) + Sync),
    /// Every output line of every host.
    pub output: Output<'a>,
}

/// A cluster's hosts: the first is the first master.
pub(crate) struct Hosts {
    pub(crate) hosts: Vec<Box<dyn Host>>,
    pub(crate) env: Vec<Env>,
}

impl Hosts {
    fn all(&self) -> Vec<&dyn Host> {
        self.hosts.iter().map(|h| h.as_ref()).collect()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.name().to_string()).collect()
    }

    fn env_of(&self, host: &dyn Host) -> &Env {
        let i = self
            .hosts
            .iter()
            .position(|h| h.name() == host.name())
            .unwrap_or(0);
        &self.env[i]
    }

    pub(crate) fn targets(&self, target: Target) -> Vec<&dyn Host> {
        match target {
            Target::AllHosts => self.all(),
            Target::FirstMaster => self.all().into_iter().take(1).collect(),
        }
    }

    /// Runs `step` on its hosts in parallel; the first host (in order) that fails stops the run.
    pub(crate) fn run_step(&self, step: &Step, reporter: &Reporter<'_>) -> Result<(), RunError> {
        (reporter.announce)(&step.to_string());
        let targets = self.targets(step.target);
        let outcomes = exec::run_parallel(
            &targets,
            |host| step.script(self.env_of(host)),
            reporter.output,
        );
        for (host, outcome) in targets.iter().zip(outcomes) {
            let code = outcome??;
            if code != 0 {
                return Err(RunError::StepFailed {
                    host: host.name().to_string(),
                    image: step.image.clone(),
                    step: step.name.clone(),
                    code,
                });
            }
        }
        Ok(())
    }

    /// Runs `work` for every host of `target` in parallel; returns the first error in host order.
    fn each<T: Send>(
        &self,
        target: Target,
        work: impl Fn(&dyn Host) -> Result<T, ExecError> + Sync,
    ) -> Result<Vec<T>, RunError> {
        let targets = self.targets(target);
        let results: Vec<Result<T, ExecError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|h| {
                    let work = &work;
                    scope.spawn(move || work(*h))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(ExecError::Spawn {
                            host: "?".into(),
                            program: "worker thread".into(),
                            source: std::io::Error::other("the worker thread panicked"),
                        })
                    })
                })
                .collect()
        });
        results
            .into_iter()
            .map(|r| r.map_err(RunError::from))
            .collect()
    }
}

/// Splits `--masters`/`--nodes` values (`a,b:2222`) into `(address, port)`.
pub fn parse_host_list(values: &[String]) -> Result<Vec<(String, Option<u16>)>, RunError> {
    let mut out = Vec::new();
    for item in values.iter().flat_map(|v| v.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (addr, port) = match item.rsplit_once(':') {
            Some((a, p)) if !a.contains(':') => {
                let port = p.parse::<u16>().map_err(|_| {
                    RunError::Usage(format!("host `{item}`: `{p}` is not a port number"))
                })?;
                (a.to_string(), Some(port))
            }
            _ => (item.to_string(), None),
        };
        out.push((addr, port));
    }
    Ok(out)
}

/// Builds the hosts of `file` (its `spec.hosts`, masters first; none = the local machine).
pub(crate) fn hosts_of(
    file: &Clusterfile,
    paths: &ClusterPaths,
    login: &SshLogin,
) -> Result<Hosts, RunError> {
    let base_env = Env::new();
    if file.spec.hosts.is_empty() {
        return Ok(Hosts {
            hosts: vec![Box::new(LocalHost)],
            env: vec![base_env],
        });
    }
    let ssh = &file.spec.ssh;
    let options = Arc::new(SshOptions {
        user: login
            .user
            .clone()
            .or_else(|| ssh.user.clone())
            .unwrap_or_else(|| "root".into()),
        key: login
            .key
            .clone()
            .or_else(|| ssh.pk.as_ref().map(PathBuf::from)),
        password: login.password.clone().or_else(|| ssh.passwd.clone()),
        known_hosts: paths.known_hosts(),
    });
    let default_port = login.port.or(ssh.port).unwrap_or(DEFAULT_SSH_PORT);
    let mut ordered: Vec<&HostSpec> = file
        .spec
        .hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| r == "master"))
        .collect();
    ordered.extend(
        file.spec
            .hosts
            .iter()
            .filter(|h| !h.roles.iter().any(|r| r == "master")),
    );
    let mut hosts: Vec<Box<dyn Host>> = Vec::new();
    let mut env = Vec::new();
    for spec in ordered {
        for (address, port) in parse_host_list(&spec.ips)? {
            hosts.push(Box::new(SshHost::new(
                &address,
                port.unwrap_or(default_port),
                options.clone(),
            )));
            env.push(pairs_to_env(&spec.env));
        }
    }
    if hosts.is_empty() {
        return Err(RunError::Usage(
            "the Clusterfile lists host groups without addresses".into(),
        ));
    }
    Ok(Hosts { hosts, env })
}

fn host_specs(opts: &RunOptions) -> Result<Vec<HostSpec>, RunError> {
    let spec = |values: &[String], role: &str| -> Result<Vec<HostSpec>, RunError> {
        let list = parse_host_list(values)?;
        Ok(if list.is_empty() {
            Vec::new()
        } else {
            vec![HostSpec {
                ips: list
                    .into_iter()
                    .map(|(a, p)| match p {
                        Some(p) => format!("{a}:{p}"),
                        None => a,
                    })
                    .collect(),
                roles: vec![role.to_string()],
                env: Vec::new(),
            }]
        })
    };
    let mut hosts = spec(&opts.masters, "master")?;
    let nodes = spec(&opts.nodes, "node")?;
    if hosts.is_empty() && !nodes.is_empty() {
        return Err(RunError::Usage(
            "--nodes needs at least one --masters host (the first master runs the applications \
             and serves the registry)"
                .into(),
        ));
    }
    hosts.extend(nodes);
    Ok(hosts)
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Where the embedded registry listens: `given` (`--registry-listen`) when set, else the first master's
/// address from the cluster's hosts (the nodes reach it there), else `127.0.0.1` (no hosts: the run is on this
/// machine). An IPv6 address is put in brackets, ready for `ADDRESS:PORT`.
pub fn registry_listen_address(
    file: &Clusterfile,
    given: Option<&str>,
) -> Result<String, RunError> {
    let address = match given {
        Some(a) => a.to_string(),
        None => {
            let masters = file
                .spec
                .hosts
                .iter()
                .filter(|h| h.roles.iter().any(|r| r == "master"));
            let others = file
                .spec
                .hosts
                .iter()
                .filter(|h| !h.roles.iter().any(|r| r == "master"));
            let mut first = None;
            for spec in masters.chain(others) {
                if let Some((address, _)) = parse_host_list(&spec.ips)?.into_iter().next() {
                    first = Some(address);
                    break;
                }
            }
            first.unwrap_or_else(|| "127.0.0.1".to_string())
        }
    };
    Ok(match address.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => format!("[{v6}]"),
        Err(_) => address,
    })
}

/// The `registry` step: starts `sealos registry serve filesystem --verify-blobs <rootfs>/registry` on
/// `address` in the background on the first master unless it is already serving, and waits until it listens.
/// Every blob is checked against its digest before it is first served: the tree came from images.
fn serve_registry_step(paths: &ClusterPaths, registry: &RegistryOptions, address: &str) -> Step {
    let run_dir = shell_quote(&path_str(&paths.run_dir()));
    let dir = shell_quote(&path_str(&paths.rootfs().join("registry")));
    let bin = shell_quote(&path_str(&paths.binary()));
    let addr = shell_quote(address);
    let port = registry.port;
    let script = format!(
        r#"mkdir -p {run_dir}
pid={run_dir}/registry.pid
if [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then echo "registry already serving {dir}"; exit 0; fi
rm -f "$pid"
nohup {bin} registry serve filesystem --verify-blobs --port {port} --address {addr} --pid-file "$pid" {dir} >{run_dir}/registry.log 2>&1 </dev/null &
server=$!
for _ in $(seq 1 200); do
  if [ -s "$pid" ]; then echo "serving {dir} on port {port}"; exit 0; fi
  kill -0 "$server" 2>/dev/null || break
  sleep 0.05
done
echo "the registry did not start:" >&2; cat {run_dir}/registry.log >&2; exit 1"#
    );
    Step {
        image: "embedded registry".into(),
        name: plan::REGISTRY_STEP.into(),
        target: Target::FirstMaster,
        workdir: path_str(&paths.rootfs()),
        action: Action::Builtin(script),
        env: Env::new(),
    }
}

/// The script that stops the embedded registry (used by `reset`).
pub(crate) fn stop_registry_step(paths: &ClusterPaths) -> Step {
    let pid = shell_quote(&path_str(&paths.run_dir().join("registry.pid")));
    let script = format!(
        r#"if [ -s {pid} ]; then
  p=$(cat {pid}); kill "$p" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.05; done
  kill -9 "$p" 2>/dev/null
fi
exit 0"#
    );
    Step {
        image: "embedded registry".into(),
        name: "stop-registry".into(),
        target: Target::FirstMaster,
        workdir: "/".into(),
        action: Action::Builtin(script),
        env: Env::new(),
    }
}

/// The image check of a run (see [`crate::image_check`]): every image the planned images' installs pull,
/// rendered for the cluster's Kubernetes version, looked up in their `registry/` trees and, for a cluster on
/// this machine, in the registry earlier runs placed. A missing image is an error unless `--skip-image-check`, which announces each one as a warning.
fn check_run_images(
    store: &Store,
    planned: &[PlannedImage],
    file: &Clusterfile,
    paths: &ClusterPaths,
    opts: &RunOptions,
    reporter: &Reporter<'_>,
) -> Result<ImageCheck, RunError> {
    let mut embedded = EmbeddedImages::default();
    for p in planned {
        embedded.add_tree(&registry_dir(&p.local_dir), &p.image.name)?;
    }
    if file.spec.hosts.is_empty() {
        let applied = paths.rootfs().join(crate::unpack::REGISTRY_DIR);
        embedded.add_tree(&applied, &format!("cluster `{}`", paths.cluster))?;
    }
    let checked: Vec<CheckedImage<'_>> = planned
        .iter()
        .map(|p| CheckedImage {
            name: &p.image.name,
            dir: &p.local_dir,
            env: &p.env,
            commands: &p.commands,
        })
        .collect();
    // The cluster's Kubernetes version: a rootfs image of this run, else one applied before (still in the
    // store).
    let kube_version = kube_version_of(planned.iter().map(|p| &p.image)).or_else(|| {
        let earlier: Vec<_> = file
            .status
            .images
            .iter()
            .filter(|i| i.kind == ImageKind::Rootfs)
            .filter_map(|i| image::open(store, &i.digest).ok())
            .collect();
        kube_version_of(&earlier)
    });
    let check = check_images(&checked, &embedded, kube_version.as_deref())?;
    for warning in &check.warnings {
        (reporter.announce)(&format!("[image check] warning: {warning}"));
    }
    let missing = check.missing().len();
    if missing == 0 {
        (reporter.announce)(&match check.images.len() {
            0 => "[image check] the install pulls no container images".to_string(),
            1 => "[image check] the one image the install pulls is embedded".to_string(),
            n => format!("[image check] all {n} images the install pulls are embedded"),
        });
        return Ok(check);
    }
    if !opts.skip_image_check {
        return Err(ImageCheckError::Missing { check }.into());
    }
    (reporter.announce)(&format!(
        "[image check] warning: --skip-image-check: running although {missing} image(s) the install \
         pulls are not embedded:\n{}",
        check.missing_list().trim_end()
    ));
    Ok(check)
}

/// Runs `opts.images` on the cluster; see the module docs.
pub fn run(
    store: &Store,
    opts: &RunOptions,
    reporter: &Reporter<'_>,
) -> Result<RunReport, RunError> {
    let clusterfile_path = opts.paths.clusterfile();
    let existing = Clusterfile::load(&clusterfile_path)?;
    let paths = &match &existing {
        Some(file) => opts.paths.with_recorded_data_dir(file)?,
        None => opts.paths.clone(),
    };
    let is_new = existing.as_ref().is_none_or(|f| f.status.images.is_empty());
    let mut file = existing.unwrap_or_else(|| Clusterfile::new(&paths.cluster));
    let hosts_given = host_specs(opts)?;
    if !hosts_given.is_empty() {
        if !is_new && file.spec.hosts != hosts_given {
            return Err(RunError::Usage(format!(
                "cluster `{}` already runs on other hosts; run `sealos reset --cluster {}` first, \
                 or leave out --masters/--nodes to use its hosts",
                paths.cluster, paths.cluster
            )));
        }
        file.spec.hosts = hosts_given;
    }
    let ssh = &opts.ssh;
    file.spec.ssh.user = ssh.user.clone().or(file.spec.ssh.user.take());
    file.spec.ssh.pk = ssh
        .key
        .as_ref()
        .map(|k| path_str(k))
        .or(file.spec.ssh.pk.take());
    file.spec.ssh.passwd = ssh.password.clone().or(file.spec.ssh.passwd.take());
    file.spec.ssh.port = ssh.port.or(file.spec.ssh.port);
    let mut cli_env = file.env();
    cli_env.extend(opts.env.clone());
    if let Some(bad) = cli_env.keys().find(|k| !plan::is_env_name(k)) {
        return Err(PlanError::BadName { name: bad.clone() }.into());
    }

    // Open every image and decide which are new.
    let applied: BTreeSet<&str> = file
        .status
        .images
        .iter()
        .map(|i| i.digest.as_str())
        .collect();
    let mut report = RunReport::default();
    let mut new_images = Vec::new();
    for name in &opts.images {
        let image = image::open(store, name)?;
        if !opts.force && applied.contains(image.digest.to_string().as_str()) {
            report.skipped.push(image.name.clone());
        } else {
            new_images.push(image);
        }
    }
    if is_new && !new_images.iter().any(|i| i.kind == ImageKind::Rootfs) {
        return Err(RunError::Usage(format!(
            "cluster `{}` does not exist yet and none of the images is a rootfs image (label \
             `sealos.io.type=rootfs`): the first run needs one",
            paths.cluster
        )));
    }
    let hosts = hosts_of(&file, paths, ssh)?;
    let registry_address = registry_listen_address(&file, opts.registry.address.as_deref())?;
    report.hosts = hosts.names();
    if new_images.is_empty() {
        return Ok(report);
    }

    // Unpack and render everything here first: nothing runs unless every image is sound.
    let staging = paths.staging();
    let mut planned = Vec::new();
    for image in new_images {
        let local_dir = staging.join(image.digest.hex());
        unpack_image(store, &image, &local_dir)?;
        let mut env = image.env.clone();
        env.extend(cli_env.clone());
        render_templates(&local_dir, &env)?;
        let host_dir = match image.kind {
            ImageKind::Rootfs | ImageKind::Patch => paths.rootfs(),
            ImageKind::Application => paths.application(&image.dir_name()),
        };
        let commands = image.commands(opts.cmd.as_deref());
        planned.push(PlannedImage {
            image,
            local_dir,
            host_dir: path_str(&host_dir),
            env,
            commands,
        });
    }
    let with_registry = planned
        .iter()
        .any(|p| p.local_dir.join("registry").is_dir());
    let steps = plan::build(
        &planned,
        with_registry.then(|| serve_registry_step(paths, &opts.registry, &registry_address)),
    );
    for step in &steps {
        for host in hosts.targets(step.target) {
            step.script(hosts.env_of(host))?;
        }
    }
    report.image_check = check_run_images(store, &planned, &file, paths, opts, reporter)?;

    // Record the hosts before touching them, so `reset` can undo a failed run.
    file.status.data_dir = Some(path_str(&paths.data_dir));
    file.save(&clusterfile_path)?;

    let rootfs = path_str(&paths.rootfs());
    for p in &planned {
        let local = p.local_dir.as_path();
        let has_registry = local.join("registry").is_dir();
        let target = match p.image.kind {
            ImageKind::Application => Target::FirstMaster,
            ImageKind::Rootfs | ImageKind::Patch => Target::AllHosts,
        };
        (reporter.announce)(&format!(
            "[copy] {} to {} on {}",
            p.image.name,
            p.host_dir,
            match target {
                Target::AllHosts => "all hosts",
                Target::FirstMaster => "the first master",
            }
        ));
        hosts.each(target, |h| {
            exec::copy_tree(h, local, &[], &["registry"], &p.host_dir, reporter.output)
        })?;
        if has_registry {
            (reporter.announce)(&format!(
                "[copy] {} registry/ to {rootfs}/registry on the first master",
                p.image.name
            ));
            hosts.each(Target::FirstMaster, |h| {
                exec::copy_tree(h, local, &["registry"], &[], &rootfs, reporter.output)
            })?;
        }
    }
    if with_registry {
        let binary = path_str(&paths.binary());
        hosts.each(Target::FirstMaster, |h| {
            exec::copy_file(h, &opts.registry.binary, &binary, 0o755, reporter.output)
        })?;
        file.status.registry = Some(RegistryStatus {
            port: opts.registry.port,
            address: registry_address.clone(),
        });
        file.save(&clusterfile_path)?;
    }

    for step in &steps {
        hosts.run_step(step, reporter)?;
        report.steps += 1;
    }

    for p in &planned {
        let digest = p.image.digest.to_string();
        file.status.images.retain(|i| i.digest != digest);
        let clean = CLEAN_STEPS
            .iter()
            .filter(|_| p.image.kind == ImageKind::Rootfs)
            .filter_map(|(step, _)| {
                plan::label_command(&p.image, &p.local_dir, step).map(|c| (step.to_string(), c))
            })
            .collect();
        file.status.images.push(AppliedImage {
            name: p.image.name.clone(),
            digest: digest.clone(),
            kind: p.image.kind,
            directory: p.host_dir.clone(),
            env: env_to_pairs(&p.env),
            clean,
        });
        if !file.spec.image.contains(&p.image.name) {
            file.spec.image.push(p.image.name.clone());
        }
        report.applied.push((p.image.name.clone(), digest));
    }
    file.spec.env = env_to_pairs(&cli_env);
    if let Some(cmd) = &opts.cmd {
        file.spec.command = cmd.clone();
    }
    file.save(&clusterfile_path)?;
    fs::remove_dir_all(&staging).map_err(io_err("remove staging directory", &staging))?;
    if let Some(parent) = staging.parent() {
        // Only when empty: another cluster may be staging beside it.
        let _kept_when_busy = fs::remove_dir(parent);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_split_on_commas_and_take_an_optional_port() {
        let hosts = parse_host_list(&["10.0.0.1,10.0.0.2:2222".into(), "h3".into()]).unwrap();
        assert_eq!(
            hosts,
            [
                ("10.0.0.1".to_string(), None),
                ("10.0.0.2".to_string(), Some(2222)),
                ("h3".to_string(), None)
            ]
        );
        let err = parse_host_list(&["10.0.0.1:ssh".into()]).unwrap_err();
        assert!(
            err.to_string().contains("`ssh` is not a port number"),
            "{err}"
        );
    }

    #[test]
    fn the_registry_listens_on_the_first_master_or_loopback_never_every_interface_by_default() {
        let mut file = Clusterfile::new("c");
        let listen = |file: &Clusterfile, given| registry_listen_address(file, given).unwrap();
        assert_eq!(listen(&file, None), "127.0.0.1", "a run on this machine");
        let spec = |ips: &[&str], role: &str| HostSpec {
            ips: ips.iter().map(|s| s.to_string()).collect(),
            roles: vec![role.to_string()],
            env: Vec::new(),
        };
        file.spec.hosts = vec![
            spec(&["10.0.0.9"], "node"),
            spec(&["10.0.0.2:2222", "10.0.0.3"], "master"),
        ];
        assert_eq!(listen(&file, None), "10.0.0.2");
        assert_eq!(listen(&file, Some("0.0.0.0")), "0.0.0.0");
        file.spec.hosts = vec![spec(&["fd00::2"], "master")];
        assert_eq!(listen(&file, None), "[fd00::2]");
        assert_eq!(listen(&file, Some("::")), "[::]");
    }
}
