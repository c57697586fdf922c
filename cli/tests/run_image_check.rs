//! `sealos run` checks, before any host is touched, that every image the install will pull is in the
//! embedded registry, rendering the image's charts with the run's env; `sealos create` lists the same
//! images. The cluster image is built here with `docker.io/example/app:v1` pulled from a local upstream
//! (Debian's `docker-registry`, through a registries.conf mirror) and embedded. Its CMD runs `helm upgrade`,
//! which a stand-in `helm` on `PATH` records (and whose `helm template` is the real helm's).

mod build_common;
mod upstream;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use build_common::{build_ok, sealos, write_context};
use testsupport::DockerRegistry;
use upstream::push_multi_arch_seeded;

const IMAGE: &str = "check/app-cluster:v1";

const CHART_VALUES: &str = "image:\n  repository: example/app\n  tag: v1\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  template:
    spec:
      containers:
        - name: app
          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"
";

/// A temporary workspace: store, data dir, clusters dir, and a `bin/helm` that records `helm upgrade`.
struct Workspace {
    tmp: tempfile::TempDir,
    registry_port: String,
}

impl Workspace {
    /// Builds [`IMAGE`] (a rootfs image whose chart's values name `example/app:v1`, embedded from a local
    /// upstream) into a fresh store.
    fn new() -> Self {
        let reg = DockerRegistry::start_fresh();
        push_multi_arch_seeded(&reg.host(), "example/app", "v1", "app-v1 ");
        let w = Workspace {
            tmp: tempfile::tempdir().unwrap(),
            registry_port: testsupport::free_port().to_string(),
        };
        let ctx = w.path("ctx");
        write_context(
            &ctx,
            &[
                (
                    "Kubefile",
                    "FROM scratch\nLABEL sealos.io.type=\"rootfs\"\nENV HELM_OPTS=\"--set image.tag=v1\"\n\
                     COPY charts charts\nCMD [\"helm upgrade -i app charts/app $(HELM_OPTS)\"]\n",
                ),
                (
                    "charts/app/Chart.yaml",
                    "apiVersion: v2\nname: app\nversion: 0.1.0\n",
                ),
                ("charts/app/values.yaml", CHART_VALUES),
                ("charts/app/templates/deployment.yaml", DEPLOYMENT),
            ],
        );
        let conf = w.path("registries.conf");
        fs::write(
            &conf,
            format!(
                "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n[[registry.mirror]]\n\
                 location = \"{}\"\ninsecure = true\n",
                reg.host()
            ),
        )
        .unwrap();
        build_ok(
            &w.path("store"),
            &[
                "--registries-conf",
                conf.to_str().unwrap(),
                "-t",
                IMAGE,
                ctx.to_str().unwrap(),
            ],
        );
        let real_helm = testsupport::require_tool("helm");
        let bin = w.path("bin");
        fs::create_dir_all(&bin).unwrap();
        let helm = bin.join("helm");
        fs::write(
            &helm,
            format!(
                "#!/bin/sh\nif [ \"$1\" = template ]; then exec '{}' \"$@\"; fi\n\
                 printf '%s\\n' \"$*\" >> '{}'\n",
                real_helm.display(),
                w.helm_log().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&helm, fs::Permissions::from_mode(0o755)).unwrap();
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Every `helm` command the image's CMD ran, one a line.
    fn helm_log(&self) -> PathBuf {
        self.path("helm-ran")
    }

    fn helm_runs(&self) -> Vec<String> {
        fs::read_to_string(self.helm_log())
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    fn clusterfile(&self) -> PathBuf {
        self.path("clusters/default/Clusterfile")
    }

    /// `sealos --root STORE COMMAND ARGS... --data-dir DATA` with the stand-in helm first on `PATH`.
    fn sealos(&self, command: &str, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        sealos()
            .env("PATH", path)
            .env("SEALOS_CLUSTERS_DIR", self.path("clusters"))
            .arg("--root")
            .arg(self.path("store"))
            .arg(command)
            .args(args)
            .arg("--data-dir")
            .arg(self.path("data"))
            .output()
            .expect("run sealos")
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec![IMAGE, "--registry-port", &self.registry_port];
        args.extend_from_slice(extra);
        self.sealos("run", &args)
    }

    /// `sealos reset --force`, which also stops the embedded registry the run started.
    fn reset(&self) {
        let out = self.sealos("reset", &["--force"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "sealos failed:\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

const V2_TAG: &str = "HELM_OPTS=--set image.tag=v2";

#[test]
fn run_refuses_an_image_the_run_env_needs_but_the_build_did_not_embed_and_skip_overrides() {
    let w = Workspace::new();

    let out = w.run(&["-e", V2_TAG]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "the run went on: {stderr}");
    assert!(
        stderr.contains(
            "1 image(s) the install will pull are not in the embedded registry; nothing was run on any host"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "  docker.io/example/app:v2 (not embedded: would be pulled from docker.io)\n    needed by app/templates/deployment.yaml:"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("in docker.io/{IMAGE}")),
        "{stderr}"
    );
    assert!(stderr.contains("--skip-image-check"), "{stderr}");
    assert!(w.helm_runs().is_empty(), "the CMD ran: {:?}", w.helm_runs());
    assert!(
        !w.clusterfile().exists(),
        "the hosts were recorded, as if about to be touched"
    );
    assert!(!w.path("data/default").exists(), "something was placed");

    let out = w.run(&["-e", V2_TAG, "--skip-image-check"]);
    let stdout = assert_ok(&out);
    assert!(
        stdout.contains(
            "[image check] warning: --skip-image-check: running although 1 image(s) the install pulls \
             are not embedded:\n  docker.io/example/app:v2 (not embedded: would be pulled from docker.io)\n"
        ),
        "{stdout}"
    );
    assert_eq!(
        w.helm_runs(),
        ["upgrade -i app charts/app --set image.tag=v2"]
    );
    w.reset();

    let out = w.run(&["--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&assert_ok(&out)).unwrap();
    assert!(
        text(&out.stderr).contains("[image check] the one image the install pulls is embedded"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(json["images"][0]["reference"], "docker.io/example/app:v1");
    assert_eq!(json["images"][0]["embedded"], true);
    assert_eq!(
        json["images"][0]["availability"],
        format!("embedded (in docker.io/{IMAGE})")
    );
    assert_eq!(
        w.helm_runs()[1..],
        ["upgrade -i app charts/app --set image.tag=v1"]
    );
    w.reset();
}

#[test]
fn create_lists_the_images_the_install_pulls_embedded_or_not_without_failing() {
    let w = Workspace::new();
    let dir = w.path("created");
    let dir_arg = dir.to_str().unwrap();

    let stdout = assert_ok(&w.sealos("create", &[IMAGE, "--dir", dir_arg]));
    assert!(
        stdout.contains("images the install pulls: 1 (0 not embedded;"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  ok docker.io/example/app:v1: embedded (in docker.io/{IMAGE})\n      needed by app/templates/deployment.yaml:"
        )),
        "{stdout}"
    );

    let stdout = assert_ok(&w.sealos("create", &[IMAGE, "--dir", dir_arg, "-e", V2_TAG]));
    assert!(
        stdout.contains("images the install pulls: 1 (1 not embedded;"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "  MISSING docker.io/example/app:v2: not embedded: would be pulled from docker.io\n      needed by app/templates/deployment.yaml:"
        ),
        "{stdout}"
    );

    let json = assert_ok(&w.sealos(
        "create",
        &[IMAGE, "--dir", dir_arg, "-e", V2_TAG, "--format", "json"],
    ));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["images"][0]["reference"], "docker.io/example/app:v2");
    assert_eq!(json["images"][0]["embedded"], false);
    assert!(w.helm_runs().is_empty(), "create ran the CMD");
    assert!(!Path::new(&w.clusterfile()).exists());
}
