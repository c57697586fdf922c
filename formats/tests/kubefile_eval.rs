//! Evaluator behaviour: ARG scoping, ENV accumulation, substitution rules, image config, COPY plans, and the
//! context listing of COPY sources.

use formats::kubefile::{
    BaseImage, BuildPlan, CopyFrom, EvalErrorKind, EvalOptions, FileKind, SCRATCH_PATH,
    SourceRules, base_images, evaluate, parse, resolve_sources,
};
use formats::manifest::Platform;

fn options() -> EvalOptions {
    EvalOptions {
        platform: Platform::parse("linux/arm64/v8").expect("platform"),
        build_platform: Platform::parse("linux/amd64").expect("platform"),
        ..EvalOptions::default()
    }
}

fn plan_with(text: &str, options: &EvalOptions) -> BuildPlan {
    let kubefile = parse(text).unwrap_or_else(|e| panic!("{e}"));
    evaluate(&kubefile, options).unwrap_or_else(|e| panic!("{e}"))
}

fn plan(text: &str) -> BuildPlan {
    plan_with(text, &options())
}

/// `entries` after the `PATH` a `FROM scratch` stage starts with.
fn with_path(entries: &[&str]) -> Vec<String> {
    std::iter::once(format!("PATH={SCRATCH_PATH}"))
        .chain(entries.iter().map(|e| e.to_string()))
        .collect()
}

fn eval_error(text: &str) -> String {
    let kubefile = parse(text).unwrap_or_else(|e| panic!("{e}"));
    match evaluate(&kubefile, &options()) {
        Ok(p) => panic!("expected an error, got {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn chart_default_env_is_resolved_and_cmd_is_left_alone() {
    let p = plan(
        "FROM scratch\nENV NAME=${NAME:-\"calico\"}\nENV NAMESPACE=${NAMESPACE:-\"tigera-operator\"}\n\
         CMD [\"helm upgrade -i $(NAME) -n $(NAMESPACE) $HOME\"]\n",
    );
    assert_eq!(
        p.config.env,
        with_path(&["NAME=calico", "NAMESPACE=tigera-operator"])
    );
    assert_eq!(
        p.config.cmd,
        Some(vec![
            "helm upgrade -i $(NAME) -n $(NAMESPACE) $HOME".to_string()
        ])
    );
}

#[test]
fn shell_form_commands_run_through_the_shell_without_substitution() {
    let p = plan("FROM scratch\nENV A=1\nENTRYPOINT echo $A\nCMD run $A\n");
    assert_eq!(
        p.config.entrypoint,
        Some(vec!["/bin/sh".into(), "-c".into(), "echo $A".into()])
    );
    assert_eq!(
        p.config.cmd,
        Some(vec!["/bin/sh".into(), "-c".into(), "run $A".into()])
    );
    let p = plan("FROM scratch\nSHELL [\"/bin/bash\", \"-ec\"]\nCMD run\n");
    assert_eq!(
        p.config.cmd,
        Some(vec!["/bin/bash".into(), "-ec".into(), "run".into()])
    );
}

#[test]
fn escaped_dollars_survive_into_labels_and_quoted_keys_lose_their_quotes() {
    let p = plan(
        "FROM scratch\nLABEL check=\"check.sh \\$registryData\" \"apps.sealos.io/type\"=rootfs\n",
    );
    assert_eq!(p.config.labels["check"], "check.sh $registryData");
    assert_eq!(p.config.labels["apps.sealos.io/type"], "rootfs");
}

#[test]
fn env_pairs_in_one_instruction_see_the_values_from_before_it() {
    let p = plan("FROM scratch\nENV a=old\nENV a=new b=$a\nENV c=${a}-${b}\n");
    assert_eq!(p.config.env, with_path(&["a=new", "b=old", "c=new-old"]));
}

#[test]
fn legacy_env_keeps_spaces_in_its_value() {
    let p = plan("FROM scratch\nENV hostname rancher.my.org\nENV greeting hello  big world\n");
    assert_eq!(
        p.config.env,
        with_path(&["hostname=rancher.my.org", "greeting=hello  big world"])
    );
}

#[test]
fn global_args_reach_from_but_not_the_stage_until_redeclared() {
    let p = plan(
        "ARG REPO=example.com/base\nARG TAG=v1\nFROM ${REPO}:${TAG} AS base\nENV seen=${TAG}\nARG TAG\nENV now=${TAG}\n",
    );
    assert_eq!(
        p.stages[0].base,
        BaseImage::Image {
            reference: "example.com/base:v1".into()
        }
    );
    assert_eq!(p.config.env, ["seen=", "now=v1"]);
}

#[test]
fn build_args_override_defaults_and_unused_ones_are_reported() {
    let options = EvalOptions {
        build_args: vec![("TAG".into(), "v2".into()), ("NOPE".into(), "x".into())],
        ..options()
    };
    let p = plan_with(
        "ARG TAG=v1\nFROM scratch\nARG TAG\nARG OTHER=${TAG}-x\nLABEL t=$TAG o=$OTHER\n",
        &options,
    );
    assert_eq!(p.config.labels["t"], "v2");
    assert_eq!(p.config.labels["o"], "v2-x");
    assert_eq!(p.unused_build_args, ["NOPE"]);
}

#[test]
fn env_wins_over_an_arg_of_the_same_name() {
    let p = plan("FROM scratch\nARG V=arg\nENV V=env\nLABEL v=$V\n");
    assert_eq!(p.config.labels["v"], "env");
}

#[test]
fn platform_args_are_predefined_globally_and_declared_in_stages() {
    let p = plan(
        "FROM --platform=$BUILDPLATFORM scratch\nLABEL before=\"$TARGETARCH\"\nARG TARGETARCH TARGETVARIANT TARGETPLATFORM\n\
         LABEL arch=$TARGETARCH variant=$TARGETVARIANT platform=$TARGETPLATFORM\n",
    );
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.config.labels["before"], "");
    assert_eq!(p.config.labels["arch"], "arm64");
    assert_eq!(p.config.labels["variant"], "v8");
    assert_eq!(p.config.labels["platform"], "linux/arm64/v8");
    assert_eq!(p.platform, "linux/arm64/v8");
}

#[test]
fn labels_merge_and_command_line_overrides_win() {
    let options = EvalOptions {
        labels: vec![("b".into(), "cli".into())],
        env: vec![("A".into(), "cli".into()), ("NEW".into(), "1".into())],
        annotations: vec![("org.opencontainers.image.title".into(), "t".into())],
        ..options()
    };
    let p = plan_with(
        "FROM scratch\nLABEL a=1 b=1\nLABEL a=2 c=3\nENV A=file\n",
        &options,
    );
    let labels: Vec<(&str, &str)> = p
        .config
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(labels, [("a", "2"), ("b", "cli"), ("c", "3")]);
    assert_eq!(p.config.env, with_path(&["A=cli", "NEW=1"]));
    assert_eq!(p.annotations["org.opencontainers.image.title"], "t");
}

#[test]
fn config_instructions_fill_the_image_config() {
    let p = plan(
        "FROM scratch\nARG PORT=8080\nWORKDIR /app\nWORKDIR sub/../data\nUSER ${PORT}:0\nEXPOSE $PORT 53/UDP\n\
         VOLUME [\"/var/$PORT\"]\nSTOPSIGNAL SIGINT\nHEALTHCHECK CMD curl localhost\nONBUILD COPY . /src\n",
    );
    let c = &p.config;
    assert_eq!(c.working_dir.as_deref(), Some("/app/data"));
    assert_eq!(c.user.as_deref(), Some("8080:0"));
    assert_eq!(
        c.exposed_ports.iter().collect::<Vec<_>>(),
        ["53/udp", "8080/tcp"]
    );
    assert_eq!(c.volumes.iter().collect::<Vec<_>>(), ["/var/8080"]);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(
        c.healthcheck,
        Some(vec!["CMD-SHELL".to_string(), "curl localhost".to_string()])
    );
    assert_eq!(c.on_build, ["COPY . /src"]);
    let expose = p.stages[0]
        .steps
        .iter()
        .find(|s| s.instruction == "EXPOSE")
        .expect("EXPOSE step");
    assert!(
        expose
            .note
            .as_deref()
            .is_some_and(|n| n.contains("not run as containers"))
    );
}

#[test]
fn copy_plans_resolve_destinations_against_workdir_and_name_their_source() {
    let p = plan(
        "FROM scratch AS build\nCOPY a /a\nFROM scratch\nWORKDIR /opt\nARG D=charts\n\
         COPY --from=build --chown=1:1 /a ${D}/\nCOPY --from=0 /a single\nCOPY --from=nginx:1.25 /etc/nginx .\nADD --link x y /z/\n",
    );
    let copies: Vec<_> = p.copies().map(|(_, _, c)| c.clone()).collect();
    assert_eq!(copies[1].from, CopyFrom::Stage { index: 0 });
    assert_eq!(
        (copies[1].destination.as_str(), copies[1].destination_is_dir),
        ("/opt/charts", true)
    );
    assert_eq!(copies[1].chown.as_deref(), Some("1:1"));
    assert_eq!(
        (copies[2].destination.as_str(), copies[2].destination_is_dir),
        ("/opt/single", false)
    );
    assert_eq!(
        copies[3].from,
        CopyFrom::Image {
            reference: "nginx:1.25".into()
        }
    );
    assert!(copies[4].add && copies[4].link && copies[4].sources == ["x", "y"]);
}

#[test]
fn stage_based_on_a_stage_inherits_its_config() {
    let p = plan("FROM scratch AS base\nENV A=1\nLABEL l=1\nFROM base\nENV B=2\n");
    assert_eq!(p.stages[1].base, BaseImage::Stage { index: 0 });
    assert_eq!(p.config.env, with_path(&["A=1", "B=2"]));
    assert_eq!(p.config.labels["l"], "1");
}

#[test]
fn entrypoint_resets_an_inherited_cmd_but_not_one_set_in_the_same_stage() {
    let p = plan("FROM scratch AS base\nCMD [\"a\"]\nFROM base\nENTRYPOINT [\"e\"]\n");
    assert_eq!(p.config.cmd, None);
    let p = plan("FROM scratch\nCMD [\"a\"]\nENTRYPOINT [\"e\"]\n");
    assert_eq!(p.config.cmd, Some(vec!["a".to_string()]));
}

#[test]
fn backtick_escape_applies_to_substitution() {
    let p = plan("# escape=`\nFROM scratch\nLABEL path=C:\\dir money=`$5\n");
    assert_eq!(p.config.labels["path"], "C:\\dir");
    assert_eq!(p.config.labels["money"], "$5");
}

#[test]
fn evaluation_errors_name_the_line() {
    assert_eq!(
        eval_error("FROM scratch\nCOPY . .\nRUN echo hi\n"),
        "Kubefile:3: RUN is not supported: cluster images are built without executing commands; put the command \
         in CMD (run at install time) or prepare the files in the build context"
    );
    assert_eq!(
        eval_error("FROM scratch\nCOPY --from=1 /a /b\n"),
        "Kubefile:2: COPY --from=1: no earlier stage has that name or index; name a stage with FROM ... AS 1"
    );
    assert_eq!(
        eval_error("FROM scratch\nCOPY a b c\n"),
        "Kubefile:2: COPY with several sources needs a destination ending in \"/\", got \"c\""
    );
    assert_eq!(
        eval_error("FROM scratch\nENV A=\"${B:?set B with --build-arg}\"\n"),
        "Kubefile:2: B is required: set B with --build-arg"
    );
    assert_eq!(
        eval_error("FROM scratch\nLABEL a=${B\n"),
        "Kubefile:2: in \"${B\": missing '}' to close '${'"
    );
    assert_eq!(
        eval_error("FROM scratch AS a\nFROM scratch AS A\n"),
        "Kubefile:2: stage name \"A\" is used twice"
    );
    assert_eq!(
        eval_error("FROM --platform=linux scratch\n"),
        "Kubefile:1: invalid platform `linux`: wrong number of `/`-separated parts; write \
         os/arch[/variant], like linux/amd64 or linux/arm64/v8"
    );
}

#[test]
fn context_sources_expand_globs_walk_directories_and_reject_missing_or_escaping_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for f in [
        "charts/a/Chart.yaml",
        "charts/a/templates/x.yaml",
        "bin/tool-1",
        "bin/tool-2",
        "one.txt",
    ] {
        std::fs::create_dir_all(root.join(f).parent().expect("parent")).expect("mkdir");
        std::fs::write(root.join(f), "data").expect("write");
    }
    let mut p = plan(
        "FROM scratch\nCOPY charts charts\nCOPY bin/tool-* /usr/bin/\nCOPY one.txt /etc/renamed\n",
    );
    resolve_sources(&mut p, root, "Kubefile", &SourceRules::default()).expect("sources exist");
    let files: Vec<Vec<(String, String, FileKind)>> = p
        .copies()
        .map(|(_, _, c)| {
            c.files
                .iter()
                .map(|f| (f.path.clone(), f.destination.clone(), f.kind))
                .collect()
        })
        .collect();
    let s = |a: &str, b: &str, k| (a.to_string(), b.to_string(), k);
    assert_eq!(
        files[0],
        [
            s("charts/a", "/charts/a", FileKind::Dir),
            s(
                "charts/a/Chart.yaml",
                "/charts/a/Chart.yaml",
                FileKind::File
            ),
            s("charts/a/templates", "/charts/a/templates", FileKind::Dir),
            s(
                "charts/a/templates/x.yaml",
                "/charts/a/templates/x.yaml",
                FileKind::File
            ),
        ]
    );
    assert_eq!(
        files[1],
        [
            s("bin/tool-1", "/usr/bin/tool-1", FileKind::File),
            s("bin/tool-2", "/usr/bin/tool-2", FileKind::File)
        ]
    );
    assert_eq!(files[2], [s("one.txt", "/etc/renamed", FileKind::File)]);

    let mut p = plan("FROM scratch\nCOPY one.txt /\nCOPY nothing-* /x/\n");
    let err = resolve_sources(&mut p, root, "ctx/Kubefile", &SourceRules::default())
        .expect_err("missing source");
    assert_eq!(err.line, 3);
    assert!(
        matches!(err.kind, EvalErrorKind::SourceNotFound { ref source_path, .. } if source_path == "nothing-*")
    );
    assert!(
        err.to_string()
            .starts_with("ctx/Kubefile:3: source \"nothing-*\" not found in the build context")
    );

    let mut p = plan("FROM scratch\nCOPY ../secret /x\n");
    let err =
        resolve_sources(&mut p, root, "Kubefile", &SourceRules::default()).expect_err("outside");
    assert_eq!(
        err.to_string(),
        "Kubefile:2: source \"../secret\" is outside the build context"
    );
}

/// A context `ctx/` beside `host/` (standing in for `/etc`): `host/hostname`, `host/sub/x`.
fn context_beside_host() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = dir.path().join("ctx");
    let host = dir.path().join("host");
    for f in [
        "ctx/real/hostname",
        "ctx/real/sub/x",
        "host/hostname",
        "host/sub/x",
    ] {
        let path = dir.path().join(f);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, f).expect("write");
    }
    (dir, ctx, host)
}

fn listed(ctx: &std::path::Path, kubefile: &str) -> Result<Vec<(String, String)>, String> {
    let mut p = plan(kubefile);
    resolve_sources(&mut p, ctx, "Kubefile", &SourceRules::default()).map_err(|e| e.to_string())?;
    Ok(p.copies()
        .flat_map(|(_, _, c)| c.files.iter())
        .map(|f| (f.path.clone(), f.destination.clone()))
        .collect())
}

#[test]
fn sources_through_a_symlink_out_of_the_context_are_errors_naming_the_link() {
    let (_dir, ctx, host) = context_beside_host();
    std::os::unix::fs::symlink(&host, ctx.join("d")).expect("symlink");
    std::os::unix::fs::symlink("../../host", ctx.join("real/up")).expect("symlink");
    let host = host.display().to_string();
    for (source, link, target) in [
        ("d/hostname", "d", host.as_str()),
        ("d/*", "d", host.as_str()),
        ("d/sub", "d", host.as_str()),
        ("d/sub/x", "d", host.as_str()),
        ("real/up/hostname", "real/up", "../../host"),
        ("real/*/hostname", "real/up", "../../host"),
    ] {
        let err = listed(&ctx, &format!("FROM scratch\nCOPY {source} /x/\n")).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Kubefile:2: source {source:?} is not in the build context: {link:?} is a symlink to {target:?}, \
                 which leads out of it (symlinks are followed only inside the context: an absolute target starts \
                 at the context root, `..` stops there)"
            )
        );
    }
    // A source that is itself such a link, too.
    for source in ["d", "d/", "./d/."] {
        let err = listed(&ctx, &format!("FROM scratch\nCOPY {source} /x\n")).unwrap_err();
        assert!(err.contains("\"d\" is a symlink to"), "{err}");
    }
}

#[test]
fn symlinks_resolved_inside_the_context_are_followed_there() {
    let (_dir, ctx, _host) = context_beside_host();
    // An absolute target starts at the context root; a chain of links; `..` stopping at the root.
    std::os::unix::fs::symlink("/real", ctx.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("abs/sub", ctx.join("chain")).expect("symlink");
    std::os::unix::fs::symlink("../../../real", ctx.join("real/sub/top")).expect("symlink");
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        listed(&ctx, "FROM scratch\nCOPY abs/hostname /h\n").unwrap(),
        [s("real/hostname", "/h")]
    );
    assert_eq!(
        listed(&ctx, "FROM scratch\nCOPY chain/x /x\n").unwrap(),
        [s("real/sub/x", "/x")]
    );
    assert_eq!(
        listed(&ctx, "FROM scratch\nCOPY real/sub/top/hostname /h\n").unwrap(),
        [s("real/hostname", "/h")]
    );
    // A source that is a symlink is followed, as buildah does; the directory walked keeps its own symlinks.
    let walked = listed(&ctx, "FROM scratch\nCOPY chain /c/\n").unwrap();
    assert_eq!(
        walked,
        [s("real/sub/top", "/c/top"), s("real/sub/x", "/c/x")]
    );
    // Copied into a directory, a file keeps the name of the link that led to it, as buildah names it.
    std::os::unix::fs::symlink("real/hostname", ctx.join("named")).expect("symlink");
    assert_eq!(
        listed(&ctx, "FROM scratch\nCOPY named nam* /n/\n").unwrap(),
        [s("real/hostname", "/n/named")]
    );
    let globbed = listed(&ctx, "FROM scratch\nCOPY ch* a* /g/\n").unwrap();
    assert_eq!(
        globbed,
        [
            s("real/hostname", "/g/hostname"),
            s("real/sub", "/g/sub"),
            s("real/sub/top", "/g/sub/top"),
            s("real/sub/top", "/g/top"),
            s("real/sub/x", "/g/sub/x"),
            s("real/sub/x", "/g/x"),
        ]
    );
}

#[test]
fn scratch_starts_with_the_default_path_which_substitution_sees() {
    let p = plan("FROM scratch\nENV X=/opt/bin:$PATH\nENV PATH=/opt/bin:$PATH\n");
    let full = format!("/opt/bin:{SCRATCH_PATH}");
    assert_eq!(
        p.config.env,
        [format!("PATH={full}"), format!("X={full}")],
        "PATH keeps its first place when overridden, as buildah keeps it"
    );
    assert_eq!(plan("FROM scratch\n").config.env, with_path(&[]));
}

#[test]
fn env_inherited_from_the_base_image_is_substituted_in_every_instruction() {
    let mut options = options();
    options.base_env.insert(
        "base:v1".into(),
        vec![
            "registryDomain=sealos.hub".into(),
            "registryPort=5000".into(),
            "registryData=/var/lib/registry".into(),
        ],
    );
    let p = plan_with(
        "FROM base:v1\nARG port=$registryPort\nENV extra=\"$registryDomain:$port\"\n\
         LABEL check=\"${registryData}/check\"\nWORKDIR $registryData\n\
         COPY --from=$registryDomain/tools:v1 /bin/x ${registryDomain}/\nADD a.txt $registryPort.txt\n",
        &options,
    );
    let stage = &p.stages[0];
    assert_eq!(stage.inherited_env, options.base_env["base:v1"]);
    assert_eq!(stage.args["port"], "5000");
    assert_eq!(
        p.config.env,
        ["extra=sealos.hub:5000"],
        "inherited entries are not repeated"
    );
    assert_eq!(p.config.labels["check"], "/var/lib/registry/check");
    assert_eq!(p.config.working_dir.as_deref(), Some("/var/lib/registry"));
    let copies: Vec<_> = p.copies().map(|(_, _, c)| c.clone()).collect();
    assert_eq!(
        copies[0].from,
        CopyFrom::Image {
            reference: "sealos.hub/tools:v1".into()
        }
    );
    assert_eq!(copies[0].destination, "/var/lib/registry/sealos.hub");
    assert_eq!(copies[1].destination, "/var/lib/registry/5000.txt");

    // An image the options know nothing of lends nothing.
    let e = eval_error("FROM other:v1\nWORKDIR $registryData\n");
    assert!(e.contains("empty after substitution"), "{e}");
}

#[test]
fn base_images_are_listed_without_evaluating_what_needs_their_env() {
    let kubefile = parse(
        "ARG BASE=base:v1\nFROM scratch AS s\nFROM --platform=linux/amd64 $BASE\n\
         WORKDIR $unknown\nFROM s\nFROM other:v2\n",
    )
    .unwrap();
    assert!(evaluate(&kubefile, &options()).is_err());
    assert_eq!(
        base_images(&kubefile, &options()).unwrap(),
        [
            ("base:v1".to_string(), Some("linux/amd64".to_string()), 3),
            ("other:v2".to_string(), None, 6),
        ]
    );
}
