//! `sealos build` sees the ENV of its base image as buildah does: inherited values are substituted in every
//! instruction (ENV, LABEL, WORKDIR, COPY...), also in `--dry-run`, and an ENV that overrides an inherited
//! one moves last in the config's `Env`. `FROM scratch` starts with buildah's default `PATH`. Each config is
//! compared with what `buildah --storage-driver vfs bud` writes for the same Kubefile.

mod build_common;
mod upstream;

use std::fs;
use std::path::Path;
use std::process::Command;

use build_common::{blob_json, require_tool, sealos, tagged, write_context};
use formats::kubefile::SCRATCH_PATH;
use testsupport::DockerRegistry;

const BASE_KUBEFILE: &str = "FROM scratch\n\
    ENV registryDomain=sealos.hub registryPort=5000 registryData=/var/lib/registry\n\
    COPY f.txt /f.txt\n";

/// A child of `{base}` using the inherited values in every kind of substituting instruction.
fn child_kubefile(base: &str) -> String {
    format!(
        "FROM {base}\n\
         ENV extra=\"$registryDomain:$registryPort\"\n\
         ENV registryDomain=other.hub P2=/opt/bin:$PATH\n\
         LABEL check=\"${{registryData}}/check\"\n\
         WORKDIR ${{registryData}}\n\
         COPY f.txt ${{registryDomain}}.txt\n"
    )
}

/// The Env buildah writes for [`child_kubefile`] over [`BASE_KUBEFILE`]: the overridden key moves last.
fn expected_child_env() -> Vec<String> {
    [
        format!("PATH={SCRATCH_PATH}"),
        "registryPort=5000".into(),
        "registryData=/var/lib/registry".into(),
        "extra=sealos.hub:5000".into(),
        "registryDomain=other.hub".into(),
        format!("P2=/opt/bin:{SCRATCH_PATH}"),
    ]
    .to_vec()
}

/// Runs `sealos --root STORE build --tls-verify=false --registries-conf EMPTY ARGS...`; must succeed.
fn sealos_build(store: &Path, args: &[&str]) -> String {
    let conf = store.with_extension("registries.conf");
    fs::write(&conf, "").unwrap();
    let out = sealos()
        .arg("--root")
        .arg(store)
        .arg("build")
        .arg("--tls-verify=false")
        .arg("--registries-conf")
        .arg(&conf)
        .args(args)
        .env("REGISTRY_AUTH_FILE", store.with_extension("auth.json"))
        .output()
        .expect("run sealos");
    assert!(
        out.status.success(),
        "sealos build {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `config` object of the image tagged `tag` in the OCI layout `dir` (a sealos store or buildah's
/// `oci:` output), single-platform.
fn config_of(dir: &Path, tag: &str) -> serde_json::Value {
    let desc =
        tagged(dir, tag).unwrap_or_else(|| panic!("{tag} is not tagged in {}", dir.display()));
    let manifest = blob_json(dir, desc["digest"].as_str().unwrap());
    let mut config =
        blob_json(dir, manifest["config"]["digest"].as_str().unwrap())["config"].clone();
    if let Some(labels) = config["Labels"].as_object_mut() {
        labels.remove("io.buildah.version");
    }
    config
}

/// `buildah bud` of `context` into the OCI layout `out` tagged `v1`, in a private vfs storage under `dir`.
fn buildah_bud(dir: &Path, context: &Path, out: &Path) {
    let out = Command::new("buildah")
        .arg("--storage-driver")
        .arg("vfs")
        .arg("--root")
        .arg(dir.join("buildah-root"))
        .arg("--runroot")
        .arg(dir.join("buildah-runroot"))
        .arg("bud")
        .arg("-f")
        .arg(context.join("Kubefile"))
        .arg("-t")
        .arg(format!("oci:{}:v1", out.display()))
        .arg(context)
        .env("BUILDAH_ISOLATION", "chroot")
        .output()
        .expect("run buildah");
    assert!(
        out.status.success(),
        "buildah bud failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A directory removed on drop whose whole path is lower case: buildah names an `oci:` base image after
/// its path, and a reference must be lower case.
struct LowerDir(std::path::PathBuf);

impl LowerDir {
    fn new() -> LowerDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new("/tmp").join(format!("sealos-env-{}-{nanos}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        LowerDir(dir)
    }
}

impl Drop for LowerDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn env_of(config: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(config["Env"].clone()).unwrap_or_default()
}

#[test]
fn inherited_env_is_substituted_everywhere_and_overrides_move_last_as_in_buildah() {
    require_tool("buildah");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let base_ctx = tmp.path().join("base");
    write_context(&base_ctx, &[("Kubefile", BASE_KUBEFILE), ("f.txt", "x\n")]);
    sealos_build(&store, &["-t", "base:v1", base_ctx.to_str().unwrap()]);

    // buildah: the same base, and the child built over it from an OCI layout.
    let lower = LowerDir::new();
    let buildah_base = lower.0.join("buildah-base");
    buildah_bud(tmp.path(), &base_ctx, &buildah_base);
    let from_layout = format!("oci:{}:v1", buildah_base.display());
    let buildah_ctx = tmp.path().join("buildah-child");
    write_context(
        &buildah_ctx,
        &[
            ("Kubefile", &child_kubefile(&from_layout)),
            ("f.txt", "x\n"),
        ],
    );
    let buildah_child = tmp.path().join("buildah-child-out");
    buildah_bud(tmp.path(), &buildah_ctx, &buildah_child);
    let theirs = config_of(&buildah_child, "v1");
    assert_eq!(env_of(&theirs), expected_child_env(), "buildah's order");
    assert_eq!(
        env_of(&config_of(&store, "docker.io/library/base:v1")),
        env_of(&config_of(&buildah_base, "v1")),
        "the base built FROM scratch has buildah's Env, PATH first"
    );

    // sealos: the same child over its own base in the store, and over buildah's base in the layout.
    let child_ctx = tmp.path().join("child");
    write_context(
        &child_ctx,
        &[("Kubefile", &child_kubefile("base:v1")), ("f.txt", "x\n")],
    );
    sealos_build(&store, &["-t", "child:v1", child_ctx.to_str().unwrap()]);
    sealos_build(&store, &["-t", "child:v2", buildah_ctx.to_str().unwrap()]);
    for tag in ["docker.io/library/child:v1", "docker.io/library/child:v2"] {
        let ours = config_of(&store, tag);
        assert_eq!(env_of(&ours), env_of(&theirs), "{tag}: Env as buildah's");
        assert_eq!(
            ours["Labels"], theirs["Labels"],
            "{tag}: Labels as buildah's"
        );
        assert_eq!(ours["Labels"]["check"], "/var/lib/registry/check");
        assert_eq!(ours["WorkingDir"], theirs["WorkingDir"]);
        assert_eq!(ours["WorkingDir"], "/var/lib/registry");
    }

    // COPY's destination was substituted with the overriding value, and dry-run shows the same values.
    let out = sealos()
        .arg("--root")
        .arg(&store)
        .args(["build", "--dry-run", "--format", "json"])
        .arg(&child_ctx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stage = &plan["plans"][0]["stages"][0];
    let texts: Vec<&str> = stage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"ENV extra=sealos.hub:5000"), "{texts:?}");
    assert!(
        texts.contains(&"LABEL check=/var/lib/registry/check"),
        "{texts:?}"
    );
    assert!(texts.contains(&"COPY f.txt other.hub.txt"), "{texts:?}");
    assert_eq!(
        stage["steps"][4]["copy"]["destination"],
        "/var/lib/registry/other.hub.txt"
    );
    assert_eq!(stage["inheritedEnv"][1], "registryDomain=sealos.hub");
}

#[test]
fn env_of_a_base_pulled_from_a_registry_is_substituted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let base_ctx = tmp.path().join("base");
    write_context(&base_ctx, &[("Kubefile", BASE_KUBEFILE), ("f.txt", "x\n")]);
    sealos_build(&store, &["-t", "base:v1", base_ctx.to_str().unwrap()]);
    let reg = DockerRegistry::start_fresh();
    let image = format!("{}/base:v1", reg.host());
    upstream::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:docker.io/library/base:v1", store.display()),
        &format!("docker://{image}"),
    ]);

    let fresh = tmp.path().join("fresh-store");
    let child_ctx = tmp.path().join("child");
    write_context(
        &child_ctx,
        &[("Kubefile", &child_kubefile(&image)), ("f.txt", "x\n")],
    );
    sealos_build(&fresh, &["-t", "child:v1", child_ctx.to_str().unwrap()]);
    let ours = config_of(&fresh, "docker.io/library/child:v1");
    assert_eq!(env_of(&ours), expected_child_env());
    assert_eq!(ours["Labels"]["check"], "/var/lib/registry/check");
}

#[test]
fn from_scratch_has_buildahs_default_path_in_config_and_substitution() {
    require_tool("buildah");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cases = [
        ("bare", "FROM scratch\nLABEL x=y\n"),
        (
            "path",
            "FROM scratch\nENV A=1\nENV X=/opt/bin:$PATH\nENV PATH=/opt/bin:$PATH\nENV A=2\nLABEL p=$PATH\n",
        ),
    ];
    for (name, kubefile) in cases {
        let ctx = tmp.path().join(name);
        write_context(&ctx, &[("Kubefile", kubefile)]);
        let tag = format!("{name}:v1");
        sealos_build(&store, &["-t", &tag, ctx.to_str().unwrap()]);
        let out = tmp.path().join(format!("{name}-buildah"));
        buildah_bud(tmp.path(), &ctx, &out);
        let ours = config_of(&store, &format!("docker.io/library/{tag}"));
        let theirs = config_of(&out, "v1");
        assert_eq!(env_of(&ours), env_of(&theirs), "{name}: Env as buildah's");
        assert_eq!(
            ours["Labels"], theirs["Labels"],
            "{name}: Labels as buildah's"
        );
    }
    let ours = config_of(&store, "docker.io/library/path:v1");
    let full = format!("/opt/bin:{SCRATCH_PATH}");
    assert_eq!(
        env_of(&ours),
        [
            format!("PATH={full}"),
            "A=2".to_string(),
            format!("X={full}"),
        ]
    );
    assert_eq!(ours["Labels"]["p"], full.as_str());
    assert_eq!(
        env_of(&config_of(&store, "docker.io/library/bare:v1")),
        [format!("PATH={SCRATCH_PATH}")]
    );
}
