//! `sealos create`, `run` and `reset` on the local machine (no hosts given, so no SSH), with the toy cluster
//! images of `Kubefile-examples/runtime-rootfs` and `runtime-app`, whose scripts record what ran where.

mod build_common;
mod runtime_common;

use std::fs;
use std::path::Path;

use formats::manifest::{Descriptor, ImageManifest, Platform, RawManifest};
use formats::media_type;
use formats::oci_layout::OciLayout;
use runtime_common::*;

#[test]
fn run_applies_rootfs_steps_in_order_in_their_directories_with_templates_and_env_precedence() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker, "-e", "GREETING=from-cli"]);
    let rootfs = c.rootfs();
    let scripts = rootfs.join("scripts");
    let home = std::env::var("HOME").expect("HOME");
    assert_eq!(
        c.order(),
        [
            format!("check {} {}", scripts.display(), c.markers().display()),
            format!("init-cri {}", scripts.display()),
            format!("init {} from-cli", scripts.display()),
            format!("cmd {} from-cli rootfs-value {home}", rootfs.display()),
        ],
        "check, init-cri, init, then CMD; `$$HOME` reaches the shell as `$HOME`"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/cluster.conf")).unwrap(),
        "greeting=from-cli\nmode=standalone\n",
        "the template is rendered with -e over image ENV, and `default` fills what is unset"
    );
    assert_eq!(
        fs::read_to_string(c.markers().join("greeting")).unwrap(),
        "from-cli\n",
        "-e overrides image ENV in the exported env"
    );
    assert_eq!(
        fs::read_to_string(c.markers().join("path")).unwrap(),
        "path-ok\n",
        "the image's PATH=/nonexistent does not replace the host's PATH"
    );
    let host_path = std::env::var("PATH").unwrap_or_default();
    let path = fs::read_to_string(c.markers().join("path-value")).unwrap();
    assert_eq!(
        path.trim_end().strip_prefix("/nonexistent:"),
        Some(host_path.as_str()),
        "the image's PATH entries the host lacks are prepended to the host's PATH: {path}"
    );
    let clusterfile = fs::read_to_string(c.clusterfile()).unwrap();
    assert!(clusterfile.contains("kind: Cluster"), "{clusterfile}");
    assert!(
        clusterfile.contains("docker.io/library/runtime-rootfs:v1"),
        "{clusterfile}"
    );
    assert!(clusterfile.contains("digest: sha256:"), "{clusterfile}");
}

#[test]
fn a_second_run_of_the_same_image_runs_nothing_unless_forced() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let first = c.order();
    let out = c.sealos_ok("run", &[ROOTFS]);
    assert!(
        out.contains("skipped docker.io/library/runtime-rootfs:v1"),
        "{out}"
    );
    assert_eq!(c.order(), first, "nothing ran again");
    c.sealos_ok("run", &[ROOTFS, "-f"]);
    assert_eq!(c.order().len(), first.len() * 2, "-f applies it again");
}

#[test]
fn an_application_runs_once_in_its_own_directory_and_cmd_overrides_its_cmd() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let before = c.order().len();
    c.sealos_ok("run", &[ROOTFS, APP, "-e", "EXTRA=x"]);
    let app_dir = c
        .data()
        .join("default/applications/docker.io_library_runtime-app_v1");
    assert_eq!(
        c.order()[before..],
        [format!("app {} demo x", app_dir.display())],
        "only the new image ran, in its own directory"
    );
    assert_eq!(
        fs::read_to_string(app_dir.join("etc/app.conf")).unwrap(),
        "app=demo\nextra=x\n"
    );
    assert!(
        !c.rootfs().join("run.sh").exists(),
        "application files stay out of the rootfs"
    );
    c.sealos_ok(
        "run",
        &[APP, "-f", "--cmd", "bash run.sh overridden $(APP_NAME)"],
    );
    assert_eq!(
        c.order().last().unwrap(),
        &format!("app {} overridden demo", app_dir.display())
    );
}

#[test]
fn an_undefined_variable_is_an_error_naming_it_and_its_command_and_nothing_runs() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let before = c.order();
    let out = c.sealos("run", &[APP]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`EXTRA`"), "{stderr}");
    assert!(
        stderr.contains("bash run.sh $(APP_NAME) $(EXTRA)"),
        "{stderr}"
    );
    assert!(stderr.contains("-e EXTRA=VALUE"), "{stderr}");
    assert_eq!(c.order(), before, "nothing ran");
}

#[test]
fn a_command_substitution_in_a_command_is_refused_as_such_and_nothing_runs() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let before = c.order();
    let pwned = c.tmp.path().join("pwned");
    let command = format!("echo $(touch {})", pwned.display());
    let out = c.sealos("run", &[APP, "-e", "EXTRA=x", "--cmd", &command]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "`$(touch {0})` in `{command}` is shell command substitution, not a variable, and is not run: \
             write `$$(touch {0})` to hand `$(touch {0})` to the shell as written",
            pwned.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("-e $("), "{stderr}");
    assert!(!pwned.exists(), "the substitution ran");
    assert_eq!(c.order(), before, "nothing ran");
}

#[test]
fn an_env_value_with_command_substitution_is_passed_literally_and_runs_nothing() {
    let c = Cluster::new();
    let marker = c.marker_env();
    let pwned = c.tmp.path().join("pwned");
    let value = format!("$(touch {})", pwned.display());
    c.sealos_ok(
        "run",
        &[ROOTFS, APP, "-e", &marker, "-e", &format!("EXTRA={value}")],
    );
    assert!(!pwned.exists(), "the value was executed");
    assert!(
        c.order()
            .last()
            .unwrap()
            .ends_with(&format!("demo {value}")),
        "{:?}",
        c.order()
    );
    assert_eq!(
        fs::read_to_string(c.markers().join("extra")).unwrap(),
        "$(touch",
        "the value's words reach the command as text"
    );
}

#[test]
fn a_failing_step_stops_the_run_naming_host_image_step_and_exit_code() {
    let c = Cluster::new();
    let marker = c.marker_env();
    let out = c.sealos(
        "run",
        &[
            ROOTFS,
            APP,
            "-e",
            &marker,
            "--cmd",
            "exit 7",
            "--cmd",
            "touch never",
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "host localhost: image `docker.io/library/runtime-rootfs:v1`, step cmd failed with exit code 7"
        ),
        "{stderr}"
    );
    assert!(
        !c.rootfs().join("never").exists(),
        "the run stopped at the failure"
    );
}

#[test]
fn the_first_run_of_a_cluster_needs_a_rootfs_image() {
    let c = Cluster::new();
    let out = c.sealos("run", &[APP, "-e", "EXTRA=x"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rootfs"), "{stderr}");
    assert!(!c.data().join("default").exists());
}

#[test]
fn reset_runs_the_clean_scripts_and_removes_what_run_placed() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, APP, "-e", &marker, "-e", "EXTRA=x"]);
    let before = c.order().len();
    c.sealos_ok("reset", &["--force"]);
    let scripts = c.rootfs().join("scripts");
    assert_eq!(
        c.order()[before..],
        [
            format!("clean {} {}", scripts.display(), c.markers().display()),
            format!("clean-cri {}", scripts.display()),
        ]
    );
    assert!(
        !c.data().join("default").exists(),
        "the cluster's data is gone"
    );
    assert!(!c.clusterfile().exists(), "the Clusterfile is gone");
    let again = c.sealos("reset", &["--force"]);
    assert!(!again.status.success(), "there is nothing left to reset");
}

#[test]
fn create_unpacks_renders_and_prints_the_commands_without_running_them() {
    let c = Cluster::new();
    let dir = c.tmp.path().join("created");
    let marker = c.marker_env();
    let out = c.sealos_ok(
        "create",
        &[ROOTFS, "-e", &marker, "--dir", dir.to_str().unwrap()],
    );
    assert_eq!(
        fs::read_to_string(dir.join("etc/cluster.conf")).unwrap(),
        "greeting=from-image\nmode=standalone\n"
    );
    for expected in [
        "[check] (all hosts)",
        "bash check.sh ${MARKER_DIR}",
        "[init] (all hosts)",
        "[cmd] (first master)",
        "bash scripts/cmd.sh ${GREETING} ${ROOTFS_ONLY} $HOME",
    ] {
        assert!(out.contains(expected), "`{expected}` missing from:\n{out}");
    }
    assert!(c.order().is_empty(), "create ran nothing");
    let short = c.sealos_ok(
        "create",
        &[ROOTFS, "--short", "--dir", dir.to_str().unwrap()],
    );
    assert_eq!(short.trim(), dir.to_str().unwrap());
}

/// An OCI layout at `dir` holding a rootfs image whose only layer writes `../escaped` and whose CMD would
/// create `marker`.
fn write_malicious_image(dir: &Path, marker: &Path) {
    write_rootfs_image(dir, &tar_with_entry("../escaped", b"owned\n"), marker);
}

/// An OCI layout at `dir` holding `evil:v1`, a rootfs image whose only layer is `tar` and whose CMD would
/// create `marker`.
fn write_rootfs_image(dir: &Path, tar: &[u8], marker: &Path) {
    let layout = OciLayout::create(dir).unwrap();
    let (layer_digest, layer_size) = layout.write_blob_bytes(tar).unwrap();
    let config = serde_json::json!({
        "architecture": Platform::host().architecture,
        "os": "linux",
        "config": {
            "Labels": {"sealos.io.type": "rootfs"},
            "Cmd": [format!("touch {}", marker.display())]
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}
    });
    let (config_digest, config_size) = layout
        .write_blob_bytes(&serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest = ImageManifest::new(
        Descriptor::new(media_type::OCI_CONFIG, config_digest, config_size),
        vec![Descriptor::new(
            media_type::OCI_LAYER_TAR,
            layer_digest,
            layer_size,
        )],
    );
    let raw = RawManifest::from_created(&manifest, media_type::OCI_MANIFEST).unwrap();
    let descriptor = layout.write_manifest(&raw).unwrap();
    layout.set_tag("evil:v1", descriptor).unwrap();
}

#[test]
fn an_image_with_entries_escaping_its_directory_is_refused_before_anything_runs() {
    let c = Cluster::new();
    let evil = c.tmp.path().join("evil");
    let marker = c.tmp.path().join("evil-cmd-ran");
    write_malicious_image(&evil, &marker);
    let markers = c.marker_env();
    let source = format!("oci:{}", evil.display());
    let out = c.sealos("run", &[ROOTFS, &source, "-e", &markers]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing layer entry `../escaped`"),
        "{stderr}"
    );
    assert!(!marker.exists(), "the malicious image's command ran");
    assert!(
        c.order().is_empty(),
        "the good image's scripts ran too: {:?}",
        c.order()
    );
    assert!(!c.data().join(".staging/default/escaped").exists());
    assert!(!c.data().join(".staging/escaped").exists());
}

#[test]
fn an_image_whose_registry_entry_is_a_symlink_is_refused_by_run_and_create_before_anything_runs() {
    let c = Cluster::new();
    // Where the symlink points: a host directory laid out as a registry, which must never be served.
    let host_dir = c.tmp.path().join("host-dir");
    fs::create_dir_all(host_dir.join("docker/registry/v2/repositories/x/_manifests")).unwrap();
    let evil = c.tmp.path().join("evil");
    let marker = c.tmp.path().join("evil-cmd-ran");
    let tar = tar_with_symlink("registry", host_dir.to_str().unwrap());
    write_rootfs_image(&evil, &tar, &marker);
    let source = format!("oci:{}", evil.display());
    let expected = format!("`registry` is a symlink to `{}`", host_dir.display());

    let out = c.sealos("run", &[&source, "--registry-port", "0"]);
    let pid_file = c.data().join("default/run/registry.pid");
    if let Ok(pid) = fs::read_to_string(&pid_file) {
        // Stop what an unfixed `run` started before failing the test.
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "run accepted the image: {stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        !pid_file.exists(),
        "a registry was started over the symlink"
    );
    assert!(!marker.exists(), "the image's command ran");

    let created = c.tmp.path().join("created");
    let out = c.sealos("create", &[&source, "--dir", created.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "create accepted the image: {stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
}

/// Runs `sealos --root STORE CMD ARGS...` with the clusters dir in the environment and no `--data-dir`
/// added (stdin is not a terminal).
fn sealos_as_given(c: &Cluster, command: &str, args: &[&str]) -> std::process::Output {
    build_common::sealos()
        .env("SEALOS_CLUSTERS_DIR", c.clusters())
        .arg("--root")
        .arg(c.store())
        .arg(command)
        .args(args)
        .output()
        .expect("run sealos")
}

#[test]
fn a_second_run_with_another_data_dir_fails_naming_both_and_leaves_the_clusterfile_unchanged() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let before = fs::read_to_string(c.clusterfile()).unwrap();
    let other = c.tmp.path().join("other");
    let out = sealos_as_given(
        &c,
        "run",
        &[APP, "-e", &marker, "--data-dir", other.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("`{}`", c.data().display()))
            && stderr.contains(&format!("`{}`", other.display())),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(c.clusterfile()).unwrap(), before);
    assert!(!other.exists(), "nothing was placed in the other data dir");
}

#[test]
fn a_second_run_without_data_dir_uses_the_recorded_one() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let out = sealos_as_given(&c, "run", &[APP, "-e", &marker, "-e", "EXTRA=x"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        c.data()
            .join("default/applications/docker.io_library_runtime-app_v1")
            .is_dir(),
        "the application went to the recorded data dir"
    );
    let clusterfile = fs::read_to_string(c.clusterfile()).unwrap();
    assert!(
        clusterfile.contains(c.data().to_str().unwrap()),
        "{clusterfile}"
    );
}

#[test]
fn reset_without_force_and_stdin_not_a_terminal_refuses_and_removes_nothing() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let before = c.order().len();
    let out = c.sealos("reset", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(c.order().len(), before, "no clean script ran");
    assert!(c.rootfs().is_dir(), "the cluster's data is still there");
    assert!(c.clusterfile().exists(), "the Clusterfile is still there");
}

#[test]
fn reset_force_removes_the_recorded_data_dir_and_refuses_another() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let other = c.tmp.path().join("other");
    let out = sealos_as_given(
        &c,
        "reset",
        &["--force", "--data-dir", other.to_str().unwrap()],
    );
    assert!(!out.status.success(), "another --data-dir is refused");
    assert!(c.clusterfile().exists() && c.rootfs().is_dir());
    let out = sealos_as_given(&c, "reset", &["--force"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !c.data().join("default").exists(),
        "the recorded data dir's cluster data is gone"
    );
    assert!(!c.clusterfile().exists());
}

#[test]
fn reset_on_a_terminal_goes_on_only_when_the_cluster_name_is_typed() {
    let c = Cluster::new();
    let marker = c.marker_env();
    c.sealos_ok("run", &[ROOTFS, "-e", &marker]);
    let quote = |p: &Path| format!("'{}'", p.display());
    let command = format!(
        "{} --root {} reset --data-dir {}",
        quote(Path::new(env!("CARGO_BIN_EXE_sealos"))),
        quote(&c.store()),
        quote(&c.data())
    );
    // script(1) runs the command on a pseudo-terminal fed from its stdin; -e passes the exit code on.
    let on_terminal = |answer: &str| {
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("SEALOS_CLUSTERS_DIR", c.clusters())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run script(1) from util-linux");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{answer}").unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = on_terminal("nope");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Type the cluster's name"), "{text}");
    assert!(text.contains("cancelled"), "{text}");
    assert!(c.rootfs().is_dir() && c.clusterfile().exists());
    let out = on_terminal("default");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!c.data().join("default").exists(), "{text}");
    assert!(!c.clusterfile().exists());
}
